/*
 * src/relay/source_test.c — the built-in test pattern: a bouncing ball,
 * a UTC clock and a frame counter, JPEG-encoded and published to a hub.
 *
 * Model
 *   One thread per test input draws into an RGB canvas it owns, encodes it
 *   with libjpeg straight into a buffer from the input's stw_pool (a
 *   custom destination manager, so there is no intermediate copy), wraps
 *   the encoded bytes in a view of that buffer and publishes a frame over
 *   the view. The buffer goes back to the pool when the last viewer socket
 *   and the hub have dropped the frame.
 *
 *   The thread paces itself with stw_scope_sleep() on absolute deadlines,
 *   so shutdown (cancelling the input scope) wakes it at once. A frame
 *   that misses its slot is not made up later: the clock moves on.
 *
 *   Back-pressure: the pool holds at most (viewers per input x frames in
 *   flight + a few) buffers, which is the most the viewers can pin. When
 *   none is free the source drops that frame (counted as dropped in the
 *   hub) rather than allocate more; a JPEG that would not fit in a pool
 *   buffer is dropped the same way.
 *
 * Ownership
 *   The source state (canvas, pool handle) is owned by the input scope and
 *   freed by its cleanup after the thread returned. libjpeg's own memory
 *   lives from jpeg_create_compress to jpeg_destroy_compress, both on the
 *   source thread.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>

#include "relay.h"
#include "steward/alloc.h"
#include "steward/pool.h"

typedef struct src_test {
    relay_input *in;
    unsigned w, h, fps, quality;
    uint8_t *canvas; /* w * h * 3, RGB */
    stw_pool *pool;
    /* libjpeg state, used by the source thread only */
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_destination_mgr dest;
    jmp_buf jmp;
    bool overflow;
    JOCTET spill[4096];
} src_test;

/* 5x7 glyphs, one byte per row, bit 4 is the leftmost pixel. */
static const uint8_t glyphs[][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, /* 9 */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, /* : */
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}, /* # */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, /* . */
};

static int glyph_index(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c == ':')
        return 10;
    if (c == '#')
        return 11;
    if (c == '.')
        return 12;
    return -1;
}

static void fill_rect(src_test *s, int x0, int y0, int w, int h, uint8_t r, uint8_t g, uint8_t b)
{
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < (int)s->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < (int)s->w; x++) {
            uint8_t *p = s->canvas + ((size_t)y * s->w + (size_t)x) * 3;
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
}

static void draw_text(src_test *s, int x, int y, int scale, const char *text)
{
    for (; *text != '\0'; text++, x += 6 * scale) {
        int gi = glyph_index(*text);
        if (gi < 0)
            continue;
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++)
                if (glyphs[gi][row] & (0x10 >> col))
                    fill_rect(s, x + col * scale, y + row * scale, scale, scale, 255, 255, 255);
    }
}

/* Frame @n: colour bars, the ball where the bounce puts it at @n, the
 * wall clock (UTC, so no time zone file is read) and the counter. */
static void draw(src_test *s, uint64_t n)
{
    static const uint8_t bars[8][3] = {{192, 192, 192}, {192, 192, 0}, {0, 192, 192}, {0, 192, 0},
                                       {192, 0, 192},   {192, 0, 0},   {0, 0, 192},   {16, 16, 16}};
    for (unsigned i = 0; i < 8; i++)
        fill_rect(s, (int)(i * s->w / 8), 0, (int)(s->w / 8 + 1), (int)s->h, bars[i][0], bars[i][1],
                  bars[i][2]);

    int r = (int)(s->h / 10 > 4 ? s->h / 10 : 4);
    int span_x = (int)s->w - 2 * r, span_y = (int)s->h - 2 * r;
    int px = span_x > 0 ? (int)((n * 7) % (uint64_t)(2 * span_x)) : 0;
    int py = span_y > 0 ? (int)((n * 5) % (uint64_t)(2 * span_y)) : 0;
    int cx = r + (px < span_x ? px : 2 * span_x - px);
    int cy = r + (py < span_y ? py : 2 * span_y - py);
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= r * r)
                fill_rect(s, cx + dx, cy + dy, 1, 1, 255, 96, 0);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char text[48];
    int scale = s->h >= 240 ? 4 : 2;
    fill_rect(s, 0, 0, (int)s->w, 7 * scale * 2 + 3 * scale, 0, 0, 0);
    snprintf(text, sizeof(text), "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
    draw_text(s, scale, scale, scale, text);
    snprintf(text, sizeof(text), "#%llu", (unsigned long long)n);
    draw_text(s, scale, 9 * scale, scale, text);
}

/* libjpeg's default error_exit ends the process; ours unwinds to encode(). */
static void jpeg_error_exit(j_common_ptr c)
{
    src_test *s = c->client_data;
    longjmp(s->jmp, 1);
}

static void dest_init(j_compress_ptr c)
{
    (void)c;
}

/* The pool buffer is full: note it and let libjpeg finish into a spill
 * area, so the frame is dropped cleanly instead of unwinding mid-write. */
static boolean dest_empty(j_compress_ptr c)
{
    src_test *s = c->client_data;
    s->overflow = true;
    s->dest.next_output_byte = s->spill;
    s->dest.free_in_buffer = sizeof(s->spill);
    return TRUE;
}

static void dest_term(j_compress_ptr c)
{
    (void)c;
}

/* Encode the canvas into @dst (@cap bytes). Returns the JPEG size, or
 * -ENOSPC when it did not fit, -EIO when libjpeg failed. */
static long encode(src_test *s, uint8_t *dst, size_t cap)
{
    s->overflow = false;
    s->dest.next_output_byte = dst;
    s->dest.free_in_buffer = cap;
    if (setjmp(s->jmp) != 0) {
        jpeg_abort_compress(&s->cinfo);
        return -EIO;
    }
    jpeg_start_compress(&s->cinfo, TRUE);
    while (s->cinfo.next_scanline < s->cinfo.image_height) {
        JSAMPROW row = s->canvas + (size_t)s->cinfo.next_scanline * s->w * 3;
        jpeg_write_scanlines(&s->cinfo, &row, 1);
    }
    jpeg_finish_compress(&s->cinfo);
    if (s->overflow)
        return -ENOSPC;
    return (long)(cap - s->dest.free_in_buffer);
}

/* Encode frame @n into a pool buffer and publish it. Returns 0, or a
 * negative errno for a frame that was dropped. */
static int make_frame(src_test *s, uint64_t n)
{
    stw_buf *b = NULL, *view = NULL;
    stw_frame *f = NULL;
    int rc = stw_pool_get(s->pool, STW_DEADLINE_NOW, &b);
    if (rc != 0)
        return rc;
    draw(s, n);
    long len = encode(s, stw_buf_data(b), stw_buf_size(b));
    if (len < 0) {
        rc = (int)len;
        goto unref_buf;
    }
    rc = stw_buf_view(b, 0, (size_t)len, &view);
    if (rc != 0)
        goto unref_buf;
    stw_frame_meta meta = {.seq = n,
                           .pts_ns = (int64_t)(n * 1000000000ull / s->fps),
                           .captured_ns = stw_now_ns(),
                           .format = STW_FOURCC('M', 'J', 'P', 'G'),
                           .width = s->w,
                           .height = s->h};
    rc = stw_frame_new(view, &meta, &f);
    if (rc == 0)
        relay_hub_publish(s->in->hub, f);
    stw_buf_unref(&view);
unref_buf:
    stw_buf_unref(&b);
    return rc;
}

static void source_main(stw_scope *scope, void *arg)
{
    src_test *s = arg;
    s->cinfo.err = jpeg_std_error(&s->jerr);
    s->jerr.error_exit = jpeg_error_exit;
    s->cinfo.client_data = s;
    jpeg_create_compress(&s->cinfo);
    s->dest.init_destination = dest_init;
    s->dest.empty_output_buffer = dest_empty;
    s->dest.term_destination = dest_term;
    s->cinfo.dest = &s->dest;
    s->cinfo.image_width = s->w;
    s->cinfo.image_height = s->h;
    s->cinfo.input_components = 3;
    s->cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&s->cinfo);
    jpeg_set_quality(&s->cinfo, (int)s->quality, TRUE);

    int64_t period = 1000000000ll / s->fps;
    int64_t next = stw_now_ns();
    int overflow_logged = 0;
    for (uint64_t n = 0;; n++) {
        int rc = make_frame(s, n);
        if (rc != 0) {
            relay_hub_count_dropped(s->in->hub, 1);
            if (rc == -ENOSPC && !overflow_logged++)
                fprintf(stderr, "steward relay: input %s: a frame did not fit in %zu bytes\n",
                        s->in->name, (size_t)s->w * s->h / 2 + 16384);
        }
        next += period;
        int64_t now = stw_now_ns();
        if (next < now)
            next = now;
        if (stw_scope_sleep(scope, next) == -ECANCELED)
            break;
    }
    jpeg_destroy_compress(&s->cinfo);
}

static void src_free(void *arg)
{
    src_test *s = arg;
    stw_pool_close(&s->pool);
    stw_free(s->canvas);
    stw_free(s);
}

int relay_source_test_start(relay_input *in, const relay_config *cfg)
{
    if (cfg->width < 16 || cfg->height < 16 || cfg->width > 4096 || cfg->height > 4096 ||
        cfg->fps < 1 || cfg->fps > 120 || cfg->quality < 1 || cfg->quality > 100)
        return -EINVAL;
    src_test *s = stw_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->in = in;
    s->w = cfg->width;
    s->h = cfg->height;
    s->fps = cfg->fps;
    s->quality = cfg->quality;
    int rc = -ENOMEM;
    s->canvas = stw_malloc((size_t)s->w * s->h * 3);
    if (s->canvas == NULL)
        goto free_state;
    /* Every buffer a viewer can pin, plus the hub's, the one being encoded
     * and a little slack; allocated on demand, never more. */
    rc = stw_pool_new((size_t)s->w * s->h / 2 + 16384, cfg->max_viewers_input * cfg->inflight + 4,
                      &s->pool);
    if (rc != 0)
        goto free_canvas;
    rc = stw_scope_defer(in->scope, src_free, s);
    if (rc != 0)
        goto close_pool;
    /* Thread names are cut to 15 bytes by stw_scope_spawn. */
    char tname[RELAY_NAME_MAX + 8];
    snprintf(tname, sizeof(tname), "src-%s", in->name);
    return stw_scope_spawn(in->scope, tname, source_main, s);

close_pool:
    stw_pool_close(&s->pool);
free_canvas:
    stw_free(s->canvas);
free_state:
    stw_free(s);
    return rc;
}
