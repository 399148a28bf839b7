#include "stw_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mjpeg.h"
#include "steward/buf.h"

#define MAX_FRAME 4096

/* A fake JPEG: SOI, @n payload bytes that never contain the boundary, EOI. */
static size_t make_jpeg(uint8_t *out, size_t n, unsigned seed)
{
    out[0] = 0xFF;
    out[1] = 0xD8;
    for (size_t i = 0; i < n; i++)
        out[2 + i] = (uint8_t)('a' + (seed + i * 7) % 26);
    out[2 + n] = 0xFF;
    out[3 + n] = 0xD9;
    return n + 4;
}

typedef struct sink {
    int frames;
    size_t sizes[64];
    uint8_t first[64];
    int fail_at; /* return an error on this frame (1-based), 0 = never */
} sink;

static int collect(void *ud, stw_buf *frame)
{
    sink *s = ud;
    if (s->frames < 64) {
        s->sizes[s->frames] = stw_buf_size(frame);
        s->first[s->frames] = stw_buf_data(frame)[2];
    }
    s->frames++;
    stw_buf_unref(&frame);
    return s->fail_at != 0 && s->frames == s->fail_at ? -ECANCELED : 0;
}

/* Append one part to @buf (at *@len): boundary line, headers, JPEG, CRLF. */
static void add_part(char *buf, size_t *len, const char *boundary, const uint8_t *jpeg, size_t jlen,
                     bool with_length)
{
    *len += (size_t)sprintf(buf + *len, "--%s\r\nContent-Type: image/jpeg\r\n", boundary);
    if (with_length)
        *len += (size_t)sprintf(buf + *len, "Content-Length: %zu\r\n", jlen);
    *len += (size_t)sprintf(buf + *len, "\r\n");
    memcpy(buf + *len, jpeg, jlen);
    *len += jlen;
    *len += (size_t)sprintf(buf + *len, "\r\n");
}

static void feed_in_chunks(relay_mjpeg *p, const char *data, size_t len, size_t chunk, sink *s)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_true(relay_mjpeg_feed(p, data + off, n, collect, s) >= 0);
    }
}

static void test_boundary_from_content_type(void **state)
{
    (void)state;
    char b[32];
    assert_int_equal(relay_mjpeg_boundary("multipart/x-mixed-replace; boundary=frame", b, 32), 0);
    assert_string_equal(b, "frame");
    assert_int_equal(
        relay_mjpeg_boundary("multipart/x-mixed-replace;boundary=\"my frame\"; x=1", b, 32), 0);
    assert_string_equal(b, "my frame");
    assert_int_equal(relay_mjpeg_boundary("Multipart/X-Mixed-Replace; Boundary=ab;q", b, 32), 0);
    assert_string_equal(b, "ab");
    assert_int_equal(relay_mjpeg_boundary("image/jpeg", b, 32), -EINVAL);
    assert_int_equal(relay_mjpeg_boundary("multipart/x-mixed-replace", b, 32), -EINVAL);
    assert_int_equal(relay_mjpeg_boundary("multipart/x-mixed-replace; boundary=", b, 32), -EINVAL);
    assert_int_equal(relay_mjpeg_boundary("multipart/x; boundary=abcdefgh", b, 4), -ENOSPC);
    relay_mjpeg *p = NULL;
    assert_int_equal(relay_mjpeg_new("", MAX_FRAME, &p), -EINVAL);
    assert_int_equal(relay_mjpeg_new("--", MAX_FRAME, &p), -EINVAL);
    assert_int_equal(relay_mjpeg_new("x", 0, &p), -EINVAL);
}

/* 20 frames, every chunking, with and without Content-Length. */
static void test_frames_any_chunking(void **state)
{
    (void)state;
    static char stream[200000];
    static const size_t chunks[] = {1, 3, 7, 100, 1000, 4096, 200000};
    for (int with_len = 0; with_len < 2; with_len++) {
        size_t len = 0;
        uint8_t jpeg[MAX_FRAME];
        for (unsigned i = 0; i < 20; i++) {
            size_t jlen = make_jpeg(jpeg, 100 + i * 50, i);
            add_part(stream, &len, "frame", jpeg, jlen, with_len);
        }
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            relay_mjpeg *p = NULL;
            assert_int_equal(relay_mjpeg_new(c % 2 ? "--frame" : "frame", MAX_FRAME, &p), 0);
            sink s = {0};
            feed_in_chunks(p, stream, len, chunks[c], &s);
            /* Without a length the last part ends only at the next boundary. */
            int want = with_len ? 20 : 19;
            assert_int_equal(s.frames, want);
            for (int i = 0; i < want; i++) {
                assert_int_equal(s.sizes[i], 104 + (size_t)i * 50);
                assert_int_equal(s.first[i], 'a' + (unsigned)i % 26);
            }
            relay_mjpeg_stats st;
            relay_mjpeg_get_stats(p, &st);
            assert_int_equal(st.frames, (uint64_t)want);
            assert_int_equal(st.bad_parts, 0);
            assert_int_equal(st.garbage_bytes, 0);
            relay_mjpeg_free(&p);
            assert_null(p);
        }
    }
}

static void test_garbage_resync(void **state)
{
    (void)state;
    static char stream[100000];
    size_t len = 0;
    uint8_t jpeg[MAX_FRAME];
    len += (size_t)sprintf(stream, "HTTP noise before anything\r\n");
    add_part(stream, &len, "b", jpeg, make_jpeg(jpeg, 200, 1), true);
    memcpy(stream + len, "#### garbage between parts ####", 31);
    len += 31;
    add_part(stream, &len, "b", jpeg, make_jpeg(jpeg, 300, 2), true);
    /* A part that is not a JPEG at all. */
    len += (size_t)sprintf(stream + len, "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n");
    add_part(stream, &len, "b", jpeg, make_jpeg(jpeg, 400, 3), false);
    len += (size_t)sprintf(stream + len, "--b\r\n");
    relay_mjpeg *p = NULL;
    assert_int_equal(relay_mjpeg_new("b", MAX_FRAME, &p), 0);
    sink s = {0};
    feed_in_chunks(p, stream, len, 13, &s);
    assert_int_equal(s.frames, 3);
    relay_mjpeg_stats st;
    relay_mjpeg_get_stats(p, &st);
    assert_true(st.garbage_bytes >= 31);
    assert_int_equal(st.bad_parts, 1);
    relay_mjpeg_free(&p);
}

/* The camera dies mid-frame and starts over: the cut frame is dropped, the
 * next one arrives whole. */
static void test_cut_mid_frame(void **state)
{
    (void)state;
    static char stream[100000];
    uint8_t jpeg[MAX_FRAME];
    for (int with_len = 0; with_len < 2; with_len++) {
        size_t len = 0;
        size_t jlen = make_jpeg(jpeg, 1000, 5);
        add_part(stream, &len, "cam", jpeg, jlen, with_len);
        /* Take back the end of that part: only half the JPEG was sent. */
        len -= jlen / 2 + 2;
        add_part(stream, &len, "cam", jpeg, make_jpeg(jpeg, 500, 6), true);
        relay_mjpeg *p = NULL;
        assert_int_equal(relay_mjpeg_new("cam", MAX_FRAME, &p), 0);
        sink s = {0};
        feed_in_chunks(p, stream, len, 64, &s);
        assert_int_equal(s.frames, 1);
        assert_int_equal(s.sizes[0], 504);
        relay_mjpeg_stats st;
        relay_mjpeg_get_stats(p, &st);
        assert_int_equal(st.bad_parts, 1);
        relay_mjpeg_free(&p);
    }
}

static void test_oversize_skipped(void **state)
{
    (void)state;
    static char stream[200000];
    static uint8_t big[3 * MAX_FRAME];
    uint8_t jpeg[MAX_FRAME];
    for (int with_len = 0; with_len < 2; with_len++) {
        size_t len = 0;
        add_part(stream, &len, "x", big, make_jpeg(big, 2 * MAX_FRAME, 7), with_len);
        add_part(stream, &len, "x", jpeg, make_jpeg(jpeg, 100, 8), true);
        relay_mjpeg *p = NULL;
        assert_int_equal(relay_mjpeg_new("x", MAX_FRAME, &p), 0);
        sink s = {0};
        feed_in_chunks(p, stream, len, 500, &s);
        assert_int_equal(s.frames, 1);
        assert_int_equal(s.sizes[0], 104);
        relay_mjpeg_stats st;
        relay_mjpeg_get_stats(p, &st);
        assert_true(st.oversize >= 1);
        relay_mjpeg_free(&p);
    }
}

/* Endless garbage never grows the parser, and it still finds the next
 * boundary afterwards. */
static void test_endless_garbage(void **state)
{
    (void)state;
    relay_mjpeg *p = NULL;
    assert_int_equal(relay_mjpeg_new("edge", MAX_FRAME, &p), 0);
    stw_kind_stat before, after;
    stw_ledger_kind_stat(STW_KIND_HEAP, &before);
    char junk[1000];
    srand(1);
    sink s = {0};
    for (int i = 0; i < 1000; i++) {
        for (size_t k = 0; k < sizeof(junk); k++)
            junk[k] = (char)(rand() % 255 + 1);
        assert_int_equal(relay_mjpeg_feed(p, junk, sizeof(junk), collect, &s), 0);
    }
    stw_ledger_kind_stat(STW_KIND_HEAP, &after);
    assert_int_equal(after.live_bytes, before.live_bytes);
    static char stream[10000];
    size_t len = 0;
    uint8_t jpeg[MAX_FRAME];
    add_part(stream, &len, "edge", jpeg, make_jpeg(jpeg, 300, 9), true);
    assert_int_equal(relay_mjpeg_feed(p, stream, len, collect, &s), 1);
    relay_mjpeg_stats st;
    relay_mjpeg_get_stats(p, &st);
    assert_true(st.garbage_bytes >= 990000);
    relay_mjpeg_free(&p);
}

static void test_callback_error_stops(void **state)
{
    (void)state;
    static char stream[20000];
    size_t len = 0;
    uint8_t jpeg[MAX_FRAME];
    for (unsigned i = 0; i < 5; i++)
        add_part(stream, &len, "f", jpeg, make_jpeg(jpeg, 100, i), true);
    relay_mjpeg *p = NULL;
    assert_int_equal(relay_mjpeg_new("f", MAX_FRAME, &p), 0);
    sink s = {.fail_at = 2};
    assert_int_equal(relay_mjpeg_feed(p, stream, len, collect, &s), -ECANCELED);
    assert_int_equal(s.frames, 2);
    relay_mjpeg_reset(p);
    relay_mjpeg_free(&p);
}

/* The relay chain part header: the last value seen, whatever the case of
 * the name and the chunking; parts without it keep the last one. */
static void test_relay_chain_header(void **state)
{
    (void)state;
    static char stream[20000];
    size_t len = 0;
    uint8_t jpeg[MAX_FRAME];
    size_t jl = make_jpeg(jpeg, 100, 1);
    add_part(stream, &len, "f", jpeg, jl, true);
    len += (size_t)sprintf(stream + len,
                           "--f\r\nContent-Type: image/jpeg\r\nX-Steward-Relay-Chain: a1,b2\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           jl);
    memcpy(stream + len, jpeg, jl);
    len += jl;
    len += (size_t)sprintf(stream + len, "\r\n");
    size_t mid = len;
    len += (size_t)sprintf(stream + len, "--f\r\nx-steward-relay-chain:   c3 \r\n\r\n");
    memcpy(stream + len, jpeg, jl);
    len += jl;
    len += (size_t)sprintf(stream + len, "\r\n");
    add_part(stream, &len, "f", jpeg, jl, true);
    for (size_t chunk = 1; chunk <= 64; chunk *= 4) {
        relay_mjpeg *p = NULL;
        assert_int_equal(relay_mjpeg_new("f", MAX_FRAME, &p), 0);
        assert_string_equal(relay_mjpeg_chain(p), "");
        sink s = {0};
        feed_in_chunks(p, stream, mid, chunk, &s);
        assert_int_equal(s.frames, 2);
        assert_string_equal(relay_mjpeg_chain(p), "a1,b2");
        feed_in_chunks(p, stream + mid, len - mid, chunk, &s);
        assert_int_equal(s.frames, 4);
        assert_string_equal(relay_mjpeg_chain(p), "c3");
        relay_mjpeg_free(&p);
    }
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An 8 MB frame in 1,460-byte reads (one TCP segment each): the parser
 * must not search the bytes it already searched, with or without a
 * Content-Length. Rescanning cost 7.3 s of CPU per frame here. */
static void test_big_frame_small_reads_linear(void **state)
{
    (void)state;
    const size_t big = 8u << 20, chunk = 1460;
    char *stream = malloc(big + 4096);
    uint8_t *jpeg = malloc(big);
    assert_non_null(stream);
    assert_non_null(jpeg);
    for (int with_len = 0; with_len < 2; with_len++) {
        size_t len = 0;
        size_t jlen = make_jpeg(jpeg, big - 4, 3);
        /* Binary like a real JPEG, line breaks included, but no "--". */
        for (size_t i = 2; i + 2 < jlen; i++)
            jpeg[i] = (uint8_t)(i * 131 % 251) == '-' ? '.' : (uint8_t)(i * 131 % 251);
        add_part(stream, &len, "frame", jpeg, jlen, with_len);
        len += (size_t)sprintf(stream + len, "--frame\r\n");
        relay_mjpeg *p = NULL;
        assert_int_equal(relay_mjpeg_new("frame", big, &p), 0);
        sink s = {0};
        double t0 = cpu_seconds();
        feed_in_chunks(p, stream, len, chunk, &s);
        double cpu = cpu_seconds() - t0;
        relay_mjpeg_stats st;
        relay_mjpeg_get_stats(p, &st);
        print_message("with_len=%d: %zu bytes, %llu examined, %.3f s CPU\n", with_len, len,
                      (unsigned long long)st.scanned, cpu);
        assert_int_equal(s.frames, 1);
        assert_int_equal(s.sizes[0], jlen);
        /* Each byte is searched a few times at most (one pass per needle),
         * never once per read. */
        assert_true(st.scanned <= 4 * (uint64_t)len);
        assert_true(cpu < 1.0);
        relay_mjpeg_free(&p);
    }
    free(jpeg);
    free(stream);
}

/* The longest boundary (70 characters) and 20 KB of other parts before
 * the real one, one byte per read: each read searches the bytes that may
 * still start a boundary once, not twice (dropping what could not hold
 * one and searching the kept tail again cost twice the boundary's length
 * per read: about 142 bytes per byte fed here). */
static void test_long_boundary_byte_reads(void **state)
{
    (void)state;
    static char stream[32768];
    char bnd[71];
    uint8_t jpeg[64];
    memset(bnd, 'a', 70);
    bnd[70] = '\0';
    size_t len = 0, jlen = make_jpeg(jpeg, 32, 5);
    while (len < 20000)
        add_part(stream, &len, "b", jpeg, jlen, true);
    add_part(stream, &len, bnd, jpeg, jlen, true);
    len += (size_t)sprintf(stream + len, "--%s\r\n", bnd);
    relay_mjpeg *p = NULL;
    assert_int_equal(relay_mjpeg_new(bnd, MAX_FRAME, &p), 0);
    sink s = {0};
    feed_in_chunks(p, stream, len, 1, &s);
    relay_mjpeg_stats st;
    relay_mjpeg_get_stats(p, &st);
    print_message("%zu bytes in 1-byte reads, %llu examined\n", len,
                  (unsigned long long)st.scanned);
    assert_int_equal(s.frames, 1);
    assert_int_equal(s.sizes[0], jlen);
    assert_true(st.scanned <= (uint64_t)len * (2 + 70));
    relay_mjpeg_free(&p);
}

/* Parts whose lines end in a bare LF, as many small cameras send them. */
static void test_lf_only(void **state)
{
    (void)state;
    static char stream[100000];
    uint8_t jpeg[MAX_FRAME];
    static const size_t chunks[] = {1, 5, 64, 100000};
    for (int with_len = 0; with_len < 2; with_len++) {
        size_t len = 0;
        for (unsigned i = 0; i < 5; i++) {
            size_t jlen = make_jpeg(jpeg, 200 + i, i);
            len += (size_t)sprintf(stream + len, "--lf\nContent-Type: image/jpeg\n");
            if (with_len)
                len += (size_t)sprintf(stream + len, "Content-Length: %zu\n", jlen);
            len += (size_t)sprintf(stream + len, "\n");
            memcpy(stream + len, jpeg, jlen);
            len += jlen;
            stream[len++] = '\n';
        }
        len += (size_t)sprintf(stream + len, "--lf\n");
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            relay_mjpeg *p = NULL;
            assert_int_equal(relay_mjpeg_new("lf", MAX_FRAME, &p), 0);
            sink s = {0};
            feed_in_chunks(p, stream, len, chunks[c], &s);
            assert_int_equal(s.frames, 5);
            for (int i = 0; i < 5; i++)
                assert_int_equal(s.sizes[i], 204 + (size_t)i);
            relay_mjpeg_stats st;
            relay_mjpeg_get_stats(p, &st);
            assert_int_equal(st.bad_parts, 0);
            assert_int_equal(st.garbage_bytes, 0);
            relay_mjpeg_free(&p);
        }
    }
}

/* A Content-Length that is too small or too large: the boundary decides,
 * and every frame still arrives whole. */
static void test_wrong_content_length(void **state)
{
    (void)state;
    static char stream[100000];
    uint8_t jpeg[MAX_FRAME];
    static const long delta[] = {-10, -1, 1, 7, 1000};
    for (size_t d = 0; d < sizeof(delta) / sizeof(delta[0]); d++) {
        size_t len = 0;
        for (unsigned i = 0; i < 4; i++) {
            size_t jlen = make_jpeg(jpeg, 300 + i, i);
            /* Every other part lies about its length. */
            long claim = (long)jlen + (i % 2 ? delta[d] : 0);
            len += (size_t)sprintf(stream + len, "--w\r\nContent-Length: %ld\r\n\r\n", claim);
            memcpy(stream + len, jpeg, jlen);
            len += jlen;
            len += (size_t)sprintf(stream + len, "\r\n");
        }
        len += (size_t)sprintf(stream + len, "--w\r\n");
        relay_mjpeg *p = NULL;
        assert_int_equal(relay_mjpeg_new("w", MAX_FRAME, &p), 0);
        sink s = {0};
        feed_in_chunks(p, stream, len, 17, &s);
        assert_int_equal(s.frames, 4);
        for (int i = 0; i < 4; i++)
            assert_int_equal(s.sizes[i], 304 + (size_t)i);
        relay_mjpeg_stats st;
        relay_mjpeg_get_stats(p, &st);
        assert_int_equal(st.length_mismatch, 2);
        assert_int_equal(st.bad_parts, 0);
        relay_mjpeg_free(&p);
    }
}

/* ffmpeg's and VLC's mpjpeg: no boundary in the Content-Type, the body's
 * first "--" line names it (after some junk here), and a part that has no
 * headers at all. */
static void test_learn_boundary(void **state)
{
    (void)state;
    static char stream[100000];
    uint8_t jpeg[MAX_FRAME];
    static const size_t chunks[] = {1, 2, 9, 100000};
    size_t len = (size_t)sprintf(stream, "junk line\r\n-x\r\n");
    for (unsigned i = 0; i < 3; i++)
        add_part(stream, &len, "ffmpeg", jpeg, make_jpeg(jpeg, 100 + i, i), true);
    len += (size_t)sprintf(stream + len, "--ffmpeg\r\n");
    size_t jlen = make_jpeg(jpeg, 150, 3);
    memcpy(stream + len, jpeg, jlen);
    len += jlen;
    len += (size_t)sprintf(stream + len, "\r\n--ffmpeg--\r\n");
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        relay_mjpeg *p = NULL;
        assert_int_equal(relay_mjpeg_new(NULL, MAX_FRAME, &p), 0);
        assert_null(relay_mjpeg_get_boundary(p));
        sink s = {0};
        feed_in_chunks(p, stream, len, chunks[c], &s);
        assert_string_equal(relay_mjpeg_get_boundary(p), "ffmpeg");
        assert_int_equal(s.frames, 4);
        assert_int_equal(s.sizes[3], 154);
        relay_mjpeg_stats st;
        relay_mjpeg_get_stats(p, &st);
        assert_int_equal(st.garbage_bytes, 15);
        assert_int_equal(st.bad_parts, 0);
        relay_mjpeg_free(&p);
    }
}

static int scenario(void *ud)
{
    (void)ud;
    static char stream[20000];
    size_t len = 0;
    uint8_t jpeg[MAX_FRAME];
    for (unsigned i = 0; i < 3; i++)
        add_part(stream, &len, "f", jpeg, make_jpeg(jpeg, 100, i), true);
    relay_mjpeg *p = NULL;
    int rc = relay_mjpeg_new("f", MAX_FRAME, &p);
    if (rc != 0)
        return rc;
    sink s = {0};
    rc = relay_mjpeg_feed(p, stream, len, collect, &s);
    relay_mjpeg_free(&p);
    return rc < 0 ? rc : (s.frames == 3 ? 0 : -ENOMEM);
}

static void test_fault_sweep(void **state)
{
    (void)state;
    assert_true(stw_test_fault_sweep(scenario, NULL) >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_boundary_from_content_type),
        STW_TEST(test_frames_any_chunking),
        STW_TEST(test_garbage_resync),
        STW_TEST(test_cut_mid_frame),
        STW_TEST(test_oversize_skipped),
        STW_TEST(test_endless_garbage),
        STW_TEST(test_callback_error_stops),
        STW_TEST(test_big_frame_small_reads_linear),
        STW_TEST(test_long_boundary_byte_reads),
        STW_TEST(test_lf_only),
        STW_TEST(test_wrong_content_length),
        STW_TEST(test_learn_boundary),
        STW_TEST(test_fault_sweep),
        STW_TEST(test_relay_chain_header),
    };
    return cmocka_run_group_tests_name("mjpeg", tests, NULL, NULL);
}
