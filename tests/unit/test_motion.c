/*
 * The motion detector (src/relay/motion.c) on synthetic pictures, encoded
 * to JPEG with the relay's own encoder and decoded back by the detector,
 * as the processor feeds it: a still scene, a moving block, a block that
 * stops, flicker, noise, a scene change, corrupt JPEGs; and its options'
 * JSON. Every case ends with the ledger at its baseline (STW_TEST).
 */
#include "stw_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "canvas.h"
#include "motion.h"
#include "steward/alloc.h"

#define W 640
#define H 480
#define CAP (W * H * 3)

typedef struct scene {
    relay_canvas c;
    relay_jpeg *enc;
    uint8_t *jpeg;
    long len;
} scene;

static void scene_init(scene *s)
{
    assert_int_equal(relay_canvas_init(&s->c, W, H), 0);
    assert_int_equal(relay_jpeg_new(W, H, 80, &s->enc), 0);
    s->jpeg = stw_malloc(CAP);
    assert_non_null(s->jpeg);
}

static void scene_release(scene *s)
{
    relay_canvas_release(&s->c);
    relay_jpeg_free(&s->enc);
    stw_free(s->jpeg);
}

/* A static background: grey bars of several levels. */
static void backdrop(scene *s)
{
    for (int i = 0; i < 8; i++) {
        uint8_t v = (uint8_t)(40 + i * 20);
        relay_canvas_fill(&s->c, i * W / 8, 0, W / 8 + 1, H, v, v, v);
    }
}

static void encode(scene *s)
{
    s->len = relay_jpeg_encode(s->enc, &s->c, s->jpeg, CAP);
    assert_true(s->len > 0);
}

/* Feed the current picture; the result in @r, the return code returned. */
static int feed(relay_motion_det *d, scene *s, relay_motion_result *r)
{
    encode(s);
    return relay_motion_det_feed_jpeg(d, s->jpeg, (size_t)s->len, r);
}

static relay_motion_spec spec_for(unsigned fps, unsigned end_after)
{
    relay_motion_spec sp = RELAY_MOTION_SPEC_DEFAULT;
    sp.enabled = true;
    sp.fps = fps;
    sp.end_after = end_after;
    return sp;
}

/* Frames to get past the warm-up at @fps. */
static unsigned warmup(unsigned fps)
{
    return fps * RELAY_MOTION_WARMUP_S + 1;
}

static void test_still_scene_no_event(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(2, 2);
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    backdrop(&s);
    relay_motion_result r;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(feed(d, &s, &r), 0);
        assert_int_equal(r.event, RELAY_MOTION_NONE);
        assert_false(r.active);
        assert_true(r.score < 0.01);
        assert_int_equal(r.width, W);
        assert_int_equal(r.height, H);
        /* 640 wide is analysed at 1/4. */
        assert_int_equal(r.scaled_w, W / 4);
        assert_int_equal(r.scaled_h, H / 4);
    }
    relay_motion_det_free(&d);
    assert_null(d);
    scene_release(&s);
}

/* True if @box covers the rectangle (@x, @y, @w, @h) give or take @slack
 * source pixels on each side. */
static bool covers(const relay_motion_box *b, int x, int y, int w, int h, int slack)
{
    return b->w > 0 && (int)b->x <= x + slack && (int)b->y <= y + slack &&
           (int)(b->x + b->w) >= x + w - slack && (int)(b->y + b->h) >= y + h - slack &&
           (int)b->x >= x - slack && (int)b->y >= y - slack &&
           (int)(b->x + b->w) <= x + w + slack && (int)(b->y + b->h) <= y + h + slack;
}

static void test_moving_block_starts_and_ends(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(2, 2); /* end after 4 quiet frames */
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    relay_motion_result r;
    for (unsigned i = 0; i < warmup(2); i++) {
        backdrop(&s);
        assert_int_equal(feed(d, &s, &r), 0);
        assert_int_equal(r.event, RELAY_MOTION_NONE);
    }
    /* A bright 80 x 80 block crossing the picture, 40 pixels a frame. */
    int started = -1, x = 40, y = 200;
    for (int i = 0; i < 8; i++, x += 40) {
        backdrop(&s);
        relay_canvas_fill(&s.c, x, y, 80, 80, 250, 250, 250);
        assert_int_equal(feed(d, &s, &r), 0);
        if (i == 0) {
            /* One frame is not enough: start_frames is 2. */
            assert_int_equal(r.event, RELAY_MOTION_NONE);
            assert_false(r.active);
        }
        if (r.event == RELAY_MOTION_START) {
            assert_int_equal(started, -1);
            started = i;
            /* The box is where the block is now, in source pixels. */
            assert_true(covers(&r.box, x, y, 80, 80, 8));
            assert_true(r.score >= sp.min_area);
        }
        assert_true(r.box.w > 0);
    }
    assert_int_equal(started, 1);
    assert_true(r.active);
    /* It stops where it is. It fades into the background within a few
     * frames; motion-end comes end_after x fps (4) frames after the last
     * frame with motion, not one earlier, with the event's span and peak. */
    int ended = -1, last_moving = -1;
    for (int i = 0; i < 16; i++) {
        backdrop(&s);
        relay_canvas_fill(&s.c, x - 40, y, 80, 80, 250, 250, 250);
        assert_int_equal(feed(d, &s, &r), 0);
        if (ended < 0 && r.score >= sp.min_area / 2)
            last_moving = i;
        if (r.event == RELAY_MOTION_END) {
            assert_int_equal(ended, -1);
            ended = i;
            assert_true(r.peak >= sp.min_area);
            /* The span reaches from the first frame with motion to the last. */
            assert_true(r.span.x <= 80 + 8 && r.span.x + r.span.w >= (unsigned)(x + 40 - 8));
        }
        assert_int_not_equal(r.event, RELAY_MOTION_START);
    }
    assert_true(last_moving < 6);
    assert_int_equal(ended, last_moving + 4);
    assert_false(r.active);
    relay_motion_det_free(&d);
    scene_release(&s);
}

static void test_no_flapping(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(4, 2); /* end after 8 quiet frames */
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    relay_motion_result r;
    for (unsigned i = 0; i < warmup(4); i++) {
        backdrop(&s);
        assert_int_equal(feed(d, &s, &r), 0);
    }
    /* Moves, pauses for three frames, moves again...: one motion, not a
     * start and an end per pause. */
    int starts = 0, ends = 0, x = 20;
    for (int i = 0; i < 40; i++) {
        if (i % 4 == 0)
            x += 60;
        if (x > W - 100)
            x = 20;
        backdrop(&s);
        relay_canvas_fill(&s.c, x, 100, 60, 60, 255, 255, 255);
        assert_int_equal(feed(d, &s, &r), 0);
        starts += r.event == RELAY_MOTION_START;
        ends += r.event == RELAY_MOTION_END;
    }
    assert_int_equal(starts, 1);
    assert_int_equal(ends, 0);
    relay_motion_det_free(&d);
    scene_release(&s);
}

static void test_small_flicker_and_noise_no_event(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(2, 2);
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    relay_motion_result r;
    unsigned seed = 7;
    for (int i = 0; i < 60; i++) {
        backdrop(&s);
        /* Sensor noise of +-8 on every pixel... */
        for (size_t p = 0; p < (size_t)W * H * 3; p += 3) {
            seed = seed * 1103515245u + 12345u;
            int v = (int)s.c.rgb[p] + (int)((seed >> 16) % 17) - 8;
            uint8_t b = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            s.c.rgb[p] = s.c.rgb[p + 1] = s.c.rgb[p + 2] = b;
        }
        /* ...and a blinking 12 x 12 light: 0.05 % of the picture. */
        if (i % 2)
            relay_canvas_fill(&s.c, 500, 40, 12, 12, 255, 255, 255);
        assert_int_equal(feed(d, &s, &r), 0);
        assert_int_equal(r.event, RELAY_MOTION_NONE);
    }
    relay_motion_det_free(&d);
    scene_release(&s);
}

static void test_scene_change_resets(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(2, 2);
    sp.start_frames = 1;
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    relay_motion_result r;
    for (unsigned i = 0; i < warmup(2); i++) {
        backdrop(&s);
        assert_int_equal(feed(d, &s, &r), 0);
    }
    /* The lights go off: everything changes at once. */
    relay_canvas_fill(&s.c, 0, 0, W, H, 250, 250, 250);
    assert_int_equal(feed(d, &s, &r), 0);
    assert_true(r.reset);
    assert_int_equal(r.event, RELAY_MOTION_NONE);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(feed(d, &s, &r), 0);
        assert_int_equal(r.event, RELAY_MOTION_NONE);
    }
    relay_motion_det_free(&d);
    scene_release(&s);
}

static void test_corrupt_jpeg_is_an_error(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(2, 2);
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    relay_motion_result r;
    backdrop(&s);
    relay_canvas_fill(&s.c, 100, 100, 200, 200, 255, 0, 0);
    encode(&s);
    uint8_t *bad = stw_malloc((size_t)s.len);
    assert_non_null(bad);
    /* Not a JPEG at all, too short, empty. */
    memset(bad, 'x', (size_t)s.len);
    assert_int_equal(relay_motion_det_feed_jpeg(d, bad, (size_t)s.len, &r), -EBADMSG);
    assert_int_equal(relay_motion_det_feed_jpeg(d, s.jpeg, 3, &r), -EBADMSG);
    /* Cut short: header only, and half the data (libjpeg warns and would
     * fill in grey). */
    assert_int_equal(relay_motion_det_feed_jpeg(d, s.jpeg, 200, &r), -EBADMSG);
    assert_int_equal(relay_motion_det_feed_jpeg(d, s.jpeg, (size_t)s.len / 2, &r), -EBADMSG);
    /* Garbage in the entropy-coded data, at many places: an error or a
     * picture, never a crash. */
    int errors = 0;
    for (long at = 700; at < s.len - 2; at += 97) {
        memcpy(bad, s.jpeg, (size_t)s.len);
        for (int k = 0; k < 16 && at + k < s.len - 2; k++)
            bad[at + k] ^= (uint8_t)(0x5a + k * 31);
        int rc = relay_motion_det_feed_jpeg(d, bad, (size_t)s.len, &r);
        assert_true(rc == 0 || rc == -EBADMSG);
        errors += rc != 0;
    }
    assert_true(errors > 0);
    /* A picture larger than the detector takes: SOF0 says 9000 x 9000. */
    memcpy(bad, s.jpeg, (size_t)s.len);
    for (long i = 2; i + 9 < s.len; i++)
        if (bad[i] == 0xFF && bad[i + 1] == 0xC0) {
            bad[i + 5] = 9000 >> 8, bad[i + 6] = 9000 & 0xFF;
            bad[i + 7] = 9000 >> 8, bad[i + 8] = 9000 & 0xFF;
            break;
        }
    assert_int_equal(relay_motion_det_feed_jpeg(d, bad, (size_t)s.len, &r), -E2BIG);
    /* The decoder goes on with good frames afterwards. */
    assert_int_equal(relay_motion_det_feed_jpeg(d, s.jpeg, (size_t)s.len, &r), 0);
    assert_int_equal(r.width, W);
    stw_free(bad);
    relay_motion_det_free(&d);
    scene_release(&s);
}

static void test_sizes_and_scales(void **state)
{
    (void)state;
    relay_motion_spec sp = spec_for(2, 2);
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    static const struct {
        unsigned w, h, sw, sh;
    } cases[] = {
        {1920, 1080, 240, 135}, {320, 240, 160, 120}, {160, 120, 160, 120}, {1280, 720, 320, 180}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        relay_canvas c;
        relay_jpeg *e = NULL;
        assert_int_equal(relay_canvas_init(&c, cases[i].w, cases[i].h), 0);
        assert_int_equal(relay_jpeg_new(cases[i].w, cases[i].h, 70, &e), 0);
        size_t cap = (size_t)cases[i].w * cases[i].h * 3;
        uint8_t *buf = stw_malloc(cap);
        assert_non_null(buf);
        long len = relay_jpeg_encode(e, &c, buf, cap);
        assert_true(len > 0);
        relay_motion_result r;
        assert_int_equal(relay_motion_det_feed_jpeg(d, buf, (size_t)len, &r), 0);
        /* A new size sets a new background. */
        assert_true(r.reset);
        assert_int_equal(r.width, cases[i].w);
        assert_int_equal(r.scaled_w, cases[i].sw);
        assert_int_equal(r.scaled_h, cases[i].sh);
        stw_free(buf);
        relay_jpeg_free(&e);
        relay_canvas_release(&c);
    }
    relay_motion_det_free(&d);
}

static void test_ignored_rectangle(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    relay_motion_spec sp = spec_for(2, 2);
    /* The top band, as a timestamp overlay would be. */
    sp.ignore[sp.nignore++] = (relay_motion_box){0, 0, W, 100};
    relay_motion_det *d = NULL;
    assert_int_equal(relay_motion_det_new(&sp, &d), 0);
    relay_motion_result r;
    for (unsigned i = 0; i < warmup(2); i++) {
        backdrop(&s);
        assert_int_equal(feed(d, &s, &r), 0);
    }
    /* A block moving inside the band: nothing. */
    for (int i = 0; i < 10; i++) {
        backdrop(&s);
        relay_canvas_fill(&s.c, 20 + i * 50, 10, 80, 80, 255, 255, 255);
        assert_int_equal(feed(d, &s, &r), 0);
        assert_int_equal(r.event, RELAY_MOTION_NONE);
        assert_true(r.score == 0);
    }
    /* Half in, half out: the box has only the part outside. */
    int starts = 0;
    for (int i = 0; i < 6; i++) {
        backdrop(&s);
        relay_canvas_fill(&s.c, 20 + i * 60, 60, 80, 80, 255, 255, 255);
        assert_int_equal(feed(d, &s, &r), 0);
        if (r.box.w > 0)
            assert_true(r.box.y >= 100);
        starts += r.event == RELAY_MOTION_START;
    }
    assert_int_equal(starts, 1);
    relay_motion_det_free(&d);
    scene_release(&s);
}

/* Create a detector and feed it two frames; for the fault sweep. */
static int det_scenario(void *ud)
{
    scene *s = ud;
    relay_motion_spec sp = spec_for(2, 2);
    relay_motion_det *d = NULL;
    int rc = relay_motion_det_new(&sp, &d);
    if (rc != 0)
        return rc;
    relay_motion_result r;
    rc = relay_motion_det_feed_jpeg(d, s->jpeg, (size_t)s->len, &r);
    if (rc == 0)
        rc = relay_motion_det_feed_jpeg(d, s->jpeg, (size_t)s->len, &r);
    relay_motion_det_free(&d);
    return rc;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    scene s;
    scene_init(&s);
    backdrop(&s);
    encode(&s);
    assert_true(stw_test_fault_sweep(det_scenario, &s) >= 2);
    scene_release(&s);
}

static bool spec_eq(const relay_motion_spec *a, const relay_motion_spec *b)
{
    if (a->nignore != b->nignore)
        return false;
    for (unsigned i = 0; i < a->nignore; i++)
        if (memcmp(&a->ignore[i], &b->ignore[i], sizeof(a->ignore[i])) != 0)
            return false;
    return a->enabled == b->enabled && a->fps == b->fps && a->threshold == b->threshold &&
           a->min_area == b->min_area && a->start_frames == b->start_frames &&
           a->end_after == b->end_after;
}

static int parse(const char *text, relay_motion_spec *sp, char *err)
{
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o);
    int code = relay_motion_spec_parse(o, sp, err, 128);
    json_decref(o);
    return code;
}

static void test_options_json(void **state)
{
    (void)state;
    char err[128];
    relay_motion_spec sp = RELAY_MOTION_SPEC_DEFAULT;
    assert_false(sp.enabled);
    assert_int_equal(sp.fps, 2);
    /* A partial object changes what it names only. */
    assert_int_equal(parse("{\"enabled\":true,\"min_area\":1.5}", &sp, err), 0);
    assert_true(sp.enabled);
    assert_true(sp.min_area == 1.5);
    assert_int_equal(sp.fps, 2);
    assert_int_equal(parse("{\"fps\":5,\"min_area\":2}", &sp, err), 0);
    assert_int_equal(sp.fps, 5);
    assert_true(sp.min_area == 2.0);
    /* Wrong types are 400, out of range and unknown fields 422, and a
     * refused object changes nothing. */
    relay_motion_spec before = sp;
    assert_int_equal(parse("[]", &sp, err), 400);
    assert_int_equal(parse("{\"enabled\":1}", &sp, err), 400);
    assert_int_equal(parse("{\"fps\":\"2\"}", &sp, err), 400);
    assert_int_equal(parse("{\"fps\":2.5}", &sp, err), 400);
    assert_int_equal(parse("{\"fps\":0}", &sp, err), 422);
    assert_int_equal(parse("{\"fps\":31}", &sp, err), 422);
    assert_int_equal(parse("{\"threshold\":256}", &sp, err), 422);
    assert_int_equal(parse("{\"min_area\":0}", &sp, err), 422);
    assert_int_equal(parse("{\"min_area\":101}", &sp, err), 422);
    assert_int_equal(parse("{\"fps\":3,\"end_after\":0}", &sp, err), 422);
    assert_int_equal(parse("{\"ignore\":{}}", &sp, err), 400);
    assert_int_equal(parse("{\"ignore\":[{\"x\":0,\"y\":0,\"w\":0,\"h\":5}]}", &sp, err), 422);
    assert_int_equal(parse("{\"ignore\":[{\"x\":0,\"y\":0,\"w\":5}]}", &sp, err), 400);
    assert_int_equal(parse("{\"ignore\":[{\"x\":0,\"y\":0,\"w\":5,\"h\":5,\"z\":1}]}", &sp, err),
                     422);
    assert_int_equal(parse("{\"sensitivity\":3}", &sp, err), 422);
    assert_non_null(strstr(err, "sensitivity"));
    assert_true(spec_eq(&sp, &before));
    assert_int_equal(parse("{\"ignore\":[{\"x\":0,\"y\":0,\"w\":640,\"h\":70},"
                           "{\"x\":10,\"y\":20,\"w\":30,\"h\":40}]}",
                           &sp, err),
                     0);
    assert_int_equal(sp.nignore, 2);
    assert_int_equal(sp.ignore[1].h, 40);
    /* What the state file keeps reads back the same. */
    json_t *o = relay_motion_spec_json(&sp);
    assert_non_null(o);
    relay_motion_spec back = RELAY_MOTION_SPEC_DEFAULT;
    assert_int_equal(relay_motion_spec_parse(o, &back, err, sizeof(err)), 0);
    json_decref(o);
    assert_true(spec_eq(&sp, &back));
    /* Bad options make no detector. */
    relay_motion_det *d = NULL;
    sp.threshold = 0;
    assert_int_equal(relay_motion_det_new(&sp, &d), -EINVAL);
    assert_null(d);
}

int main(void)
{
    json_set_alloc_funcs(stw_malloc, stw_free);
    const struct CMUnitTest tests[] = {
        STW_TEST(test_still_scene_no_event), STW_TEST(test_moving_block_starts_and_ends),
        STW_TEST(test_no_flapping),          STW_TEST(test_small_flicker_and_noise_no_event),
        STW_TEST(test_scene_change_resets),  STW_TEST(test_corrupt_jpeg_is_an_error),
        STW_TEST(test_sizes_and_scales),     STW_TEST(test_ignored_rectangle),
        STW_TEST(test_allocation_failures),  STW_TEST(test_options_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
