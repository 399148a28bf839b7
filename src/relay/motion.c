/*
 * src/relay/motion.c — the motion detector (motion.h): libjpeg decode at
 * reduced scale to grayscale, a running background, changed pixels, a
 * score and a box, hysteresis; and the motion options' JSON.
 *
 * Model
 *   The background is kept per pixel in 8.8 fixed point, so that a small
 *   learning rate still moves it. Each analysed frame moves it towards the
 *   frame by alpha = 1 - exp(-1 / (fps x tau)): the same time constant
 *   whatever the rate. A still object that stops moving fades into the
 *   background and so ends the motion.
 *
 *   libjpeg reports fatal errors through error_exit, which unwinds with
 *   longjmp back to the decode call (the decompressor is aborted, ready
 *   for the next frame); warnings (a truncated or corrupt stream that
 *   libjpeg would fill in with grey) make the frame count as undecodable
 *   too, since a half-grey picture would look like motion.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <jpeglib.h>

#include "motion.h"
#include "steward/alloc.h"

/* How many deviations a pixel must change by, on top of the threshold. */
#define DEV_WEIGHT 3

struct relay_motion_det {
    unsigned threshold, start_frames, end_frames;
    double min_area;
    unsigned nignore;
    relay_motion_box ignore[RELAY_MOTION_IGNORE_MAX];
    unsigned alpha; /* of 65536 */
    /* libjpeg */
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    jmp_buf jmp;
    unsigned warnings;
    /* pixels */
    uint8_t *gray;   /* the decoded frame */
    uint8_t *mask;   /* changed pixels */
    uint32_t *bg;    /* background, 8.8 fixed point (in 32 bits for the update) */
    uint32_t *dev;   /* mean absolute deviation from it, 8.8 fixed point */
    uint32_t *stack; /* the flood fill's, one entry a pixel */
    size_t cap;      /* pixels the buffers hold */
    unsigned w, h;   /* of the background, 0 before the first frame */
    unsigned warmup; /* frames left to learn the background before events */
    unsigned seen;   /* frames since the background was (re)set */
    unsigned warmup_frames;
    /* hysteresis */
    bool active;
    unsigned run, quiet;
    double peak;
    relay_motion_box span;
    unsigned src_w, src_h;
};

/* ---- options ---- */

int relay_motion_spec_parse(const void *o, relay_motion_spec *out, char *err, size_t errlen)
{
    const json_t *obj = o;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "motion must be an object");
        return 400;
    }
    static const char *const known[] = {"enabled",         "fps",           "threshold",
                                        "min_area",        "start_frames",  "end_after",
                                        "active",          "score",         "box",
                                        "width",           "height",        "last_event",
                                        "last_event_time", "since",         "frames_analysed",
                                        "frames_dropped",  "decode_errors", "running",
                                        "ignore",          "starts",        "ends"};
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok) {
            snprintf(err, errlen, "motion: unknown field \"%.40s\"", key);
            return 422;
        }
    }
    relay_motion_spec s = *out;
    json_t *en = json_object_get(obj, "enabled");
    if (en != NULL && !json_is_boolean(en)) {
        snprintf(err, errlen, "motion.enabled must be true or false");
        return 400;
    }
    if (en != NULL)
        s.enabled = json_is_true(en);
    static const struct {
        const char *key;
        unsigned lo, hi;
        size_t off;
    } ints[] = {
        {"fps", 1, 30, offsetof(relay_motion_spec, fps)},
        {"threshold", 1, 255, offsetof(relay_motion_spec, threshold)},
        {"start_frames", 1, 100, offsetof(relay_motion_spec, start_frames)},
        {"end_after", 1, 3600, offsetof(relay_motion_spec, end_after)},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_t *v = json_object_get(obj, ints[i].key);
        if (v == NULL)
            continue;
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "motion.%s must be an integer", ints[i].key);
            return 400;
        }
        json_int_t n = json_integer_value(v);
        if (n < (json_int_t)ints[i].lo || n > (json_int_t)ints[i].hi) {
            snprintf(err, errlen, "motion.%s must be in %u..%u", ints[i].key, ints[i].lo,
                     ints[i].hi);
            return 422;
        }
        *(unsigned *)((char *)&s + ints[i].off) = (unsigned)n;
    }
    json_t *ma = json_object_get(obj, "min_area");
    if (ma != NULL) {
        if (!json_is_number(ma)) {
            snprintf(err, errlen, "motion.min_area must be a number (percent of the picture)");
            return 400;
        }
        double v = json_number_value(ma);
        if (!(v >= 0.01 && v <= 100)) {
            snprintf(err, errlen, "motion.min_area must be in 0.01..100 (percent)");
            return 422;
        }
        s.min_area = v;
    }
    json_t *ig = json_object_get(obj, "ignore");
    if (ig != NULL) {
        if (!json_is_array(ig) || json_array_size(ig) > RELAY_MOTION_IGNORE_MAX) {
            snprintf(err, errlen, "motion.ignore must be an array of at most %d rectangles",
                     RELAY_MOTION_IGNORE_MAX);
            return 400;
        }
        s.nignore = 0;
        size_t i;
        json_t *r;
        json_array_foreach(ig, i, r)
        {
            static const char *const k[] = {"x", "y", "w", "h"};
            unsigned v[4];
            for (int j = 0; j < 4; j++) {
                json_t *n = json_object_get(r, k[j]);
                if (!json_is_integer(n)) {
                    snprintf(err, errlen,
                             "motion.ignore[%zu] must be {\"x\",\"y\",\"w\",\"h\"} integers", i);
                    return 400;
                }
                json_int_t x = json_integer_value(n);
                if (x < (j < 2 ? 0 : 1) || x > RELAY_MOTION_MAX_SIDE) {
                    snprintf(err, errlen, "motion.ignore[%zu].%s must be in %d..%d", i, k[j],
                             j < 2 ? 0 : 1, RELAY_MOTION_MAX_SIDE);
                    return 422;
                }
                v[j] = (unsigned)x;
            }
            if (json_object_size(r) != 4) {
                snprintf(err, errlen, "motion.ignore[%zu] has fields besides x, y, w, h", i);
                return 422;
            }
            s.ignore[s.nignore++] = (relay_motion_box){v[0], v[1], v[2], v[3]};
        }
    }
    *out = s;
    return 0;
}

void *relay_motion_spec_json(const relay_motion_spec *s)
{
    json_t *ig = json_array();
    for (unsigned i = 0; ig != NULL && i < s->nignore; i++) {
        const relay_motion_box *b = &s->ignore[i];
        if (json_array_append_new(ig, json_pack("{s:i, s:i, s:i, s:i}", "x", (int)b->x, "y",
                                                (int)b->y, "w", (int)b->w, "h", (int)b->h))) {
            json_decref(ig);
            return NULL;
        }
    }
    /* "o" takes the array over, also when packing fails. */
    return json_pack("{s:b, s:i, s:i, s:f, s:i, s:i, s:o}", "enabled", s->enabled, "fps",
                     (int)s->fps, "threshold", (int)s->threshold, "min_area", s->min_area,
                     "start_frames", (int)s->start_frames, "end_after", (int)s->end_after, "ignore",
                     ig);
}

/* ---- the detector ---- */

static void on_error_exit(j_common_ptr c)
{
    relay_motion_det *d = c->client_data;
    longjmp(d->jmp, 1);
}

/* Warnings (level -1) and traces: counted, never printed. */
static void on_message(j_common_ptr c, int level)
{
    relay_motion_det *d = c->client_data;
    if (level < 0)
        d->warnings++;
}

static void on_output(j_common_ptr c)
{
    (void)c;
}

int relay_motion_det_new(const relay_motion_spec *spec, relay_motion_det **out)
{
    if (spec->fps < 1 || spec->threshold < 1 || spec->threshold > 255 || !(spec->min_area > 0) ||
        spec->start_frames < 1 || spec->end_after < 1)
        return -EINVAL;
    relay_motion_det *d = stw_calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->threshold = spec->threshold;
    d->min_area = spec->min_area;
    d->nignore = spec->nignore < RELAY_MOTION_IGNORE_MAX ? spec->nignore : RELAY_MOTION_IGNORE_MAX;
    memcpy(d->ignore, spec->ignore, sizeof(d->ignore));
    d->start_frames = spec->start_frames;
    d->end_frames = spec->end_after * spec->fps;
    d->warmup_frames = (unsigned)(spec->fps * RELAY_MOTION_WARMUP_S);
    double alpha = 1.0 - exp(-1.0 / (spec->fps * RELAY_MOTION_TAU_S));
    d->alpha = (unsigned)(alpha * 65536.0 + 0.5);
    if (d->alpha < 1)
        d->alpha = 1;
    d->cinfo.err = jpeg_std_error(&d->jerr);
    d->jerr.error_exit = on_error_exit;
    d->jerr.emit_message = on_message;
    d->jerr.output_message = on_output;
    d->cinfo.client_data = d;
    if (setjmp(d->jmp) != 0) {
        jpeg_destroy_decompress(&d->cinfo);
        stw_free(d);
        return -ENOMEM;
    }
    jpeg_create_decompress(&d->cinfo);
    *out = d;
    return 0;
}

void relay_motion_det_free(relay_motion_det **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    relay_motion_det *d = *dp;
    jpeg_destroy_decompress(&d->cinfo);
    stw_free(d->gray);
    stw_free(d->mask);
    stw_free(d->bg);
    stw_free(d->dev);
    stw_free(d->stack);
    stw_free(d);
    *dp = NULL;
}

/* Buffers for @n pixels. */
static int reserve(relay_motion_det *d, size_t n)
{
    if (n <= d->cap)
        return 0;
    uint8_t *g = stw_malloc(n), *m = stw_malloc(n);
    uint32_t *bg = stw_malloc(n * sizeof(*bg)), *dev = stw_malloc(n * sizeof(*dev));
    uint32_t *stack = stw_malloc(n * sizeof(*stack));
    if (g == NULL || m == NULL || bg == NULL || dev == NULL || stack == NULL) {
        stw_free(g);
        stw_free(m);
        stw_free(bg);
        stw_free(dev);
        stw_free(stack);
        return -ENOMEM;
    }
    stw_free(d->gray);
    stw_free(d->mask);
    stw_free(d->bg);
    stw_free(d->dev);
    stw_free(d->stack);
    d->gray = g;
    d->mask = m;
    d->bg = bg;
    d->dev = dev;
    d->stack = stack;
    d->cap = n;
    d->w = d->h = 0; /* the background is gone */
    return 0;
}

static void box_union(relay_motion_box *a, const relay_motion_box *b)
{
    if (b->w == 0)
        return;
    if (a->w == 0) {
        *a = *b;
        return;
    }
    unsigned x1 = a->x + a->w > b->x + b->w ? a->x + a->w : b->x + b->w;
    unsigned y1 = a->y + a->h > b->y + b->h ? a->y + a->h : b->y + b->h;
    a->x = a->x < b->x ? a->x : b->x;
    a->y = a->y < b->y ? a->y : b->y;
    a->w = x1 - a->x;
    a->h = y1 - a->y;
}

static void set_background(relay_motion_det *d, const uint8_t *gray, unsigned w, unsigned h)
{
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) {
        d->bg[i] = (uint32_t)gray[i] << 8;
        d->dev[i] = 0;
    }
    d->w = w;
    d->h = h;
    d->warmup = d->warmup_frames;
    d->seen = 0;
}

int relay_motion_det_feed_gray(relay_motion_det *d, const uint8_t *gray, unsigned w, unsigned h,
                               unsigned src_w, unsigned src_h, relay_motion_result *out)
{
    if (w == 0 || h == 0 || src_w < w || src_h < h)
        return -EINVAL;
    size_t n = (size_t)w * h;
    if (gray != d->gray) {
        int rc = reserve(d, n);
        if (rc != 0)
            return rc;
        memcpy(d->gray, gray, n);
    }
    memset(out, 0, sizeof(*out));
    out->width = src_w;
    out->height = src_h;
    out->scaled_w = w;
    out->scaled_h = h;
    bool resized = d->w != w || d->h != h || d->src_w != src_w || d->src_h != src_h;
    d->src_w = src_w;
    d->src_h = src_h;
    if (resized) {
        set_background(d, d->gray, w, h);
        out->reset = true;
        out->active = d->active;
        return 0;
    }
    const uint8_t *g = d->gray;
    uint8_t *m = d->mask;
    int thr = (int)d->threshold;
    for (size_t i = 0; i < n; i++) {
        int diff = (int)g[i] - (int)(d->bg[i] >> 8);
        /* A pixel that always flickers (a clock overlay, leaves, water)
         * has a large deviation and must change by more to count. */
        int t = thr + (int)((d->dev[i] * DEV_WEIGHT) >> 8);
        m[i] = diff > t || diff < -t;
    }
    /* Nothing in the ignored rectangles counts: scaled pixel x covers
     * source pixels [x * src_w / w, (x+1) * src_w / w), so any overlap
     * leaves it out. */
    for (unsigned k = 0; k < d->nignore; k++) {
        const relay_motion_box *b = &d->ignore[k];
        uint64_t rx0 = (uint64_t)b->x * w / src_w, ry0 = (uint64_t)b->y * h / src_h;
        uint64_t rx1 = (((uint64_t)b->x + b->w) * w + src_w - 1) / src_w;
        uint64_t ry1 = (((uint64_t)b->y + b->h) * h + src_h - 1) / src_h;
        for (uint64_t y = ry0; y < ry1 && y < h; y++)
            for (uint64_t x = rx0; x < rx1 && x < w; x++)
                m[y * w + x] = 0;
    }
    /* Keep a changed pixel (bit 0) only with at least two changed
     * neighbours (bit 1): sensor noise and JPEG ringing come as isolated
     * pixels. */
    for (unsigned y = 0; y < h; y++) {
        for (unsigned x = 0; x < w; x++) {
            if (!(m[(size_t)y * w + x] & 1))
                continue;
            unsigned nb = 0;
            for (int dy = -1; dy <= 1; dy++) {
                int yy = (int)y + dy;
                if (yy < 0 || yy >= (int)h)
                    continue;
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = (int)x + dx;
                    if ((dx != 0 || dy != 0) && xx >= 0 && xx < (int)w)
                        nb += m[(size_t)yy * w + (size_t)xx] & 1;
                }
            }
            if (nb >= 2)
                m[(size_t)y * w + x] |= 2;
        }
    }
    /* Then only regions (8-connected) of at least a quarter of min_area
     * count: specks (a digit of a clock overlay, a flicker) do not widen
     * the box of what really moves. */
    size_t min_blob = (size_t)((double)n * d->min_area / 400.0);
    if (min_blob < 3)
        min_blob = 3;
    size_t changed = 0;
    unsigned x0 = w, y0 = h, x1 = 0, y1 = 0;
    for (size_t start = 0; start < n; start++) {
        if ((m[start] & 6) != 2)
            continue;
        size_t top = 0, size = 0;
        unsigned bx0 = w, by0 = h, bx1 = 0, by1 = 0;
        d->stack[top++] = (uint32_t)start;
        m[start] |= 4;
        while (top > 0) {
            uint32_t i = d->stack[--top];
            unsigned x = i % w, y = i / w;
            size++;
            bx0 = x < bx0 ? x : bx0;
            by0 = y < by0 ? y : by0;
            bx1 = x > bx1 ? x : bx1;
            by1 = y > by1 ? y : by1;
            for (int dy = -1; dy <= 1; dy++) {
                int yy = (int)y + dy;
                if (yy < 0 || yy >= (int)h)
                    continue;
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = (int)x + dx;
                    if (xx < 0 || xx >= (int)w)
                        continue;
                    size_t j = (size_t)yy * w + (size_t)xx;
                    /* Each pixel is pushed once (bit 2), so n entries suffice. */
                    if ((m[j] & 6) == 2) {
                        m[j] |= 4;
                        d->stack[top++] = (uint32_t)j;
                    }
                }
            }
        }
        if (size < min_blob)
            continue;
        changed += size;
        x0 = bx0 < x0 ? bx0 : x0;
        y0 = by0 < y0 ? by0 : y0;
        x1 = bx1 > x1 ? bx1 : x1;
        y1 = by1 > y1 ? by1 : y1;
    }
    double score = 100.0 * (double)changed / (double)n;
    if (score > RELAY_MOTION_SCENE_PCT) {
        /* Lights, a day/night switch or a new scene: start over. */
        set_background(d, g, w, h);
        out->reset = true;
        changed = 0;
        score = 0;
    } else {
        /* Right after a (re)set the averages are over the frames seen so
         * far (1/k), so that they are good by the end of the warm-up. */
        uint32_t a = d->alpha;
        if (d->seen < 65536)
            d->seen++;
        if (65536u / (d->seen + 1) > a)
            a = 65536u / (d->seen + 1);
        for (size_t i = 0; i < n; i++) {
            int64_t cur = (int64_t)g[i] << 8;
            int64_t bg = d->bg[i];
            int64_t ad = cur > bg ? cur - bg : bg - cur;
            int64_t dev = d->dev[i];
            d->bg[i] = (uint32_t)(bg + ((cur - bg) * (int64_t)a) / 65536);
            d->dev[i] = (uint32_t)(dev + ((ad - dev) * (int64_t)a) / 65536);
        }
    }
    out->score = score;
    if (changed > 0) {
        /* Scaled pixel x covers source pixels [x * src_w / w, (x+1) * src_w / w). */
        unsigned sx0 = (unsigned)((uint64_t)x0 * src_w / w);
        unsigned sy0 = (unsigned)((uint64_t)y0 * src_h / h);
        unsigned sx1 = (unsigned)(((uint64_t)x1 + 1) * src_w / w);
        unsigned sy1 = (unsigned)(((uint64_t)y1 + 1) * src_h / h);
        if (sx1 > src_w)
            sx1 = src_w;
        if (sy1 > src_h)
            sy1 = src_h;
        out->box = (relay_motion_box){sx0, sy0, sx1 - sx0, sy1 - sy0};
    }

    bool moving = d->active ? score >= d->min_area / 2 : score >= d->min_area;
    if (d->warmup > 0) {
        /* Still learning what is normal here. */
        d->warmup--;
        moving = false;
    }
    if (!d->active) {
        d->run = moving ? d->run + 1 : 0;
        if (d->run >= d->start_frames) {
            d->active = true;
            d->quiet = 0;
            d->peak = score;
            d->span = out->box;
            out->event = RELAY_MOTION_START;
        }
    } else if (moving) {
        d->quiet = 0;
        d->peak = score > d->peak ? score : d->peak;
        box_union(&d->span, &out->box);
    } else if (++d->quiet >= d->end_frames) {
        out->event = RELAY_MOTION_END;
        out->peak = d->peak;
        out->span = d->span;
        d->active = false;
        d->run = 0;
    }
    out->active = d->active;
    return 0;
}

bool relay_motion_det_end(relay_motion_det *d, relay_motion_result *out)
{
    if (!d->active)
        return false;
    memset(out, 0, sizeof(*out));
    out->event = RELAY_MOTION_END;
    out->peak = d->peak;
    out->span = d->span;
    out->width = d->src_w;
    out->height = d->src_h;
    d->active = false;
    d->run = d->quiet = 0;
    return true;
}

/* 1, 2, 4 or 8: analyse at most ~320 pixels across (1/4 of VGA, 1/8 of
 * 1080p), which is plenty to see a person and costs little. */
static unsigned scale_denom(unsigned w)
{
    return w > 1280 ? 8 : w > 320 ? 4 : w > 160 ? 2 : 1;
}

int relay_motion_det_feed_jpeg(relay_motion_det *d, const uint8_t *data, size_t len,
                               relay_motion_result *out)
{
    if (len < 4 || len > (size_t)1 << 30)
        return -EBADMSG;
    struct jpeg_decompress_struct *c = &d->cinfo;
    d->warnings = 0;
    if (setjmp(d->jmp) != 0) {
        /* libjpeg gave up (error_exit): the decompressor is reusable. */
        jpeg_abort_decompress(c);
        return -EBADMSG;
    }
    jpeg_mem_src(c, data, (unsigned long)len);
    if (jpeg_read_header(c, TRUE) != JPEG_HEADER_OK) {
        jpeg_abort_decompress(c);
        return -EBADMSG;
    }
    unsigned src_w = c->image_width, src_h = c->image_height;
    if (src_w > RELAY_MOTION_MAX_SIDE || src_h > RELAY_MOTION_MAX_SIDE) {
        jpeg_abort_decompress(c);
        return -E2BIG;
    }
    c->out_color_space = JCS_GRAYSCALE;
    c->scale_num = 1;
    c->scale_denom = scale_denom(src_w);
    c->dct_method = JDCT_IFAST;
    c->do_fancy_upsampling = FALSE;
    c->do_block_smoothing = FALSE;
    jpeg_start_decompress(c);
    unsigned w = c->output_width, h = c->output_height;
    if (w == 0 || h == 0 || c->output_components != 1) {
        jpeg_abort_decompress(c);
        return -EBADMSG;
    }
    if (reserve(d, (size_t)w * h) != 0) {
        jpeg_abort_decompress(c);
        return -ENOMEM;
    }
    while (c->output_scanline < h) {
        JSAMPROW row = d->gray + (size_t)c->output_scanline * w;
        if (jpeg_read_scanlines(c, &row, 1) != 1)
            break;
    }
    if (c->output_scanline < h || d->warnings > 0) {
        jpeg_abort_decompress(c);
        return -EBADMSG;
    }
    jpeg_finish_decompress(c);
    if (d->warnings > 0)
        return -EBADMSG;
    return relay_motion_det_feed_gray(d, d->gray, w, h, src_w, src_h, out);
}
