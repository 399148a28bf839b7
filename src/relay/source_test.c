/*
 * src/relay/source_test.c — the built-in test pattern: a bouncing ball
 * (none with "pattern": "still"), a UTC clock and a frame counter,
 * JPEG-encoded and published to a hub.
 *
 * Model
 *   One thread per test input draws into an RGB canvas it owns, encodes it
 *   (canvas.h) straight into a buffer from the input's stw_pool, wraps
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
 *   The source state (canvas, encoder, pool handle) is owned by the input
 *   scope and freed by its cleanup after the thread returned; the encoder
 *   is used by the source thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "canvas.h"
#include "relay.h"
#include "steward/alloc.h"
#include "steward/pool.h"

typedef struct src_test {
    relay_input *in;
    unsigned fps;
    relay_canvas canvas;
    relay_jpeg *jpeg;
    stw_pool *pool;
} src_test;

/* Frame @n: colour bars, the ball where the bounce puts it at @n (unless
 * @still: a picture without motion, for motion detection), the wall clock
 * (UTC, so no time zone file is read) and the counter. */
static void draw(relay_canvas *c, uint64_t n, bool still)
{
    static const uint8_t bars[8][3] = {{192, 192, 192}, {192, 192, 0}, {0, 192, 192}, {0, 192, 0},
                                       {192, 0, 192},   {192, 0, 0},   {0, 0, 192},   {16, 16, 16}};
    for (unsigned i = 0; i < 8; i++)
        relay_canvas_fill(c, (int)(i * c->w / 8), 0, (int)(c->w / 8 + 1), (int)c->h, bars[i][0],
                          bars[i][1], bars[i][2]);

    int r = (int)(c->h / 10 > 4 ? c->h / 10 : 4);
    int span_x = (int)c->w - 2 * r, span_y = (int)c->h - 2 * r;
    int px = span_x > 0 ? (int)((n * 7) % (uint64_t)(2 * span_x)) : 0;
    int py = span_y > 0 ? (int)((n * 5) % (uint64_t)(2 * span_y)) : 0;
    int cx = r + (px < span_x ? px : 2 * span_x - px);
    int cy = r + (py < span_y ? py : 2 * span_y - py);
    for (int dy = -r; dy <= r && !still; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (dx * dx + dy * dy <= r * r)
                relay_canvas_fill(c, cx + dx, cy + dy, 1, 1, 255, 96, 0);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char text[48];
    int scale = c->h >= 240 ? 4 : 2;
    relay_canvas_fill(c, 0, 0, (int)c->w, 7 * scale * 2 + 3 * scale, 0, 0, 0);
    snprintf(text, sizeof(text), "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
    relay_canvas_text(c, scale, scale, scale, text);
    snprintf(text, sizeof(text), "#%llu", (unsigned long long)n);
    relay_canvas_text(c, scale, 9 * scale, scale, text);
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
    draw(&s->canvas, n, s->in->still);
    long len = relay_jpeg_encode(s->jpeg, &s->canvas, stw_buf_data(b), stw_buf_size(b));
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
                           .width = s->canvas.w,
                           .height = s->canvas.h};
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
    int64_t period = 1000000000ll / s->fps;
    int64_t next = stw_now_ns();
    int overflow_logged = 0;
    for (uint64_t n = 0;; n++) {
        int rc = make_frame(s, n);
        if (rc != 0) {
            relay_hub_count_dropped(s->in->hub, 1);
            if (rc == -ENOSPC && !overflow_logged++)
                relay_log(RELAY_LOG_WARNING, "test", s->in->name,
                          "a frame did not fit in %zu bytes",
                          (size_t)s->canvas.w * s->canvas.h / 2 + 16384);
        }
        next += period;
        int64_t now = stw_now_ns();
        if (next < now)
            next = now;
        if (stw_scope_sleep(scope, next) == -ECANCELED)
            break;
    }
}

static void src_free(void *arg)
{
    src_test *s = arg;
    stw_pool_close(&s->pool);
    relay_jpeg_free(&s->jpeg);
    relay_canvas_release(&s->canvas);
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
    s->fps = cfg->fps;
    int rc = relay_canvas_init(&s->canvas, cfg->width, cfg->height);
    if (rc != 0)
        goto free_state;
    rc = relay_jpeg_new(cfg->width, cfg->height, cfg->quality, &s->jpeg);
    if (rc != 0)
        goto release_canvas;
    /* Every buffer a viewer can pin, plus the hub's, the one being encoded
     * and a little slack; allocated on demand, never more. */
    rc = stw_pool_new((size_t)cfg->width * cfg->height / 2 + 16384,
                      cfg->max_viewers_input * cfg->inflight + 4, &s->pool);
    if (rc != 0)
        goto free_jpeg;
    rc = stw_scope_defer(in->scope, src_free, s);
    if (rc != 0)
        goto close_pool;
    /* So POST /cleanup-resources can trim it. */
    relay_input_set_pool(in, s->pool);
    /* Thread names are cut to 15 bytes by stw_scope_spawn. */
    char tname[RELAY_NAME_MAX + 8];
    snprintf(tname, sizeof(tname), "src-%s", in->name);
    return stw_scope_spawn(in->scope, tname, source_main, s);

close_pool:
    stw_pool_close(&s->pool);
free_jpeg:
    relay_jpeg_free(&s->jpeg);
release_canvas:
    relay_canvas_release(&s->canvas);
free_state:
    stw_free(s);
    return rc;
}
