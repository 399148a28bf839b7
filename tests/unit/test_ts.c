#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "steward/buf.h"
#include "ts.h"

/* Test streams are made once by the installed ffmpeg, in a private
 * directory removed at the end. */
static char dir[64];
static bool have_x265;

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static blob load(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    blob b = {malloc((size_t)n), (size_t)n};
    assert_non_null(b.data);
    assert_int_equal(fread(b.data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return b;
}

/* Byte offsets of the video keyframes as ffprobe sees them (the position
 * of the TS packet that starts each key PES). */
static int key_positions(const char *name, long *pos, int max)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -select_streams v:0 -show_entries packet=pos,flags -of csv=p=0 "
             "%s/%s",
             dir, name);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[128];
    int n = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        long at;
        char flags[16];
        if (sscanf(line, "%ld,%15s", &at, flags) == 2 && flags[0] == 'K' && n < max)
            pos[n++] = at;
    }
    assert_int_equal(pclose(p), 0);
    return n;
}

/* ffmpeg decodes @len bytes without a single error message. */
static void assert_decodes(const uint8_t *data, size_t len, const char *tag)
{
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/out-%s.ts", dir, tag);
    snprintf(err, sizeof(err), "%s/out-%s.err", dir, tag);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    sh("ffmpeg -nostdin -v error -i %s -f null - 2>%s", path, err);
    struct stat st;
    assert_int_equal(stat(err, &st), 0);
    if (st.st_size != 0) {
        sh("cat %s >&2", err);
        fail_msg("ffmpeg reported errors decoding %s", path);
    }
}

/* Everything one reader received, with where each chunk began. */
typedef struct got {
    uint8_t *data;
    size_t len, cap;
    int chunks;
    unsigned flags[4096];
    size_t at[4096];
    uint64_t seq[4096];
} got;

static int drain(relay_ts_reader *r, got *g)
{
    relay_ts_chunk c[16];
    size_t n;
    int total = 0;
    do {
        int rc = relay_ts_read(r, c, 16, &n);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < n; i++) {
            size_t sz = stw_buf_size(c[i].buf);
            if (g->len + sz > g->cap) {
                g->cap = (g->len + sz) * 2;
                g->data = realloc(g->data, g->cap);
                assert_non_null(g->data);
            }
            if (g->chunks < 4096) {
                g->flags[g->chunks] = c[i].flags;
                g->at[g->chunks] = g->len;
                g->seq[g->chunks] = c[i].seq;
            }
            g->chunks++;
            memcpy(g->data + g->len, stw_buf_data(c[i].buf), sz);
            g->len += sz;
            stw_buf_unref(&c[i].buf);
        }
        total += (int)n;
    } while (n == 16);
    return total;
}

static size_t rand_size(void)
{
    switch (rand() % 4) {
    case 0:
        return 1 + (size_t)(rand() % 16);
    case 1:
        return 1 + (size_t)(rand() % 1000);
    default:
        return 1 + (size_t)(rand() % 20000);
    }
}

/* Feed [from, to) of @b in random pieces, draining @r (if any) after each. */
static void feed(relay_ts *ts, const blob *b, size_t from, size_t to, relay_ts_reader *r, got *g)
{
    for (size_t off = from; off < to;) {
        size_t n = rand_size();
        if (n > to - off)
            n = to - off;
        assert_int_equal(relay_ts_write(ts, b->data + off, n), 0);
        off += n;
        if (r != NULL)
            assert_true(drain(r, g) >= 0);
    }
}

static unsigned pid_of(const uint8_t *p)
{
    return ((unsigned)(p[1] & 0x1f) << 8) | p[2];
}

/* The key chunks are exactly ffprobe's keyframe positions, and the bytes
 * from the first keyframe on are the file's. */
static void check_keys(const char *name, bool strip_rai, const char *vcodec)
{
    blob b = load(name);
    if (strip_rai) {
        /* A stream that never sets random_access_indicator: the keyframes
         * must be found in the H.264/H.265 NAL units. */
        for (size_t i = 0; i + 188 <= b.len; i += 188)
            if ((b.data[i + 3] & 0x20) && b.data[i + 4] > 0)
                b.data[i + 5] &= (uint8_t)~0x40;
    }
    long pos[64];
    int nkeys = key_positions(name, pos, 64);
    assert_true(nkeys >= 3);

    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    relay_ts_reader *r = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &r), 0);
    got *g = calloc(1, sizeof(*g));
    srand(7);
    feed(ts, &b, 0, b.len, r, g);

    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.keyframes, (uint64_t)nkeys);
    assert_int_equal(st.bytes_in, b.len);
    assert_int_equal(st.packets, b.len / 188);
    assert_int_equal(st.garbage_bytes, 0);
    assert_int_equal(st.resyncs, 0);
    assert_string_equal(st.video_codec, vcodec);
    assert_true(st.last_gop_bytes > 0);
    assert_true(st.bitrate_bps > 0);

    /* PSI first, then the first keyframe, then the rest of the file. */
    assert_true(g->chunks > 2);
    assert_int_equal(g->flags[0], RELAY_TS_PSI);
    assert_int_equal(g->at[1], 376);
    assert_int_equal(pid_of(g->data), 0);
    assert_true(g->flags[1] & RELAY_TS_KEY);
    size_t body = g->len - 376;
    assert_int_equal(body, b.len - (size_t)pos[0]);
    assert_memory_equal(g->data + 376, b.data + pos[0], body);
    int k = 0;
    for (int i = 1; i < g->chunks && i < 4096; i++) {
        if (!(g->flags[i] & RELAY_TS_KEY))
            continue;
        assert_true(k < nkeys);
        assert_int_equal((long)(g->at[i] - 376) + pos[0], pos[k]);
        k++;
    }
    assert_int_equal(k, nkeys);
    for (int i = 2; i < g->chunks && i < 4096; i++)
        assert_int_equal(g->seq[i], g->seq[i - 1] + 1);

    relay_ts_reader_free(&r);
    assert_null(r);
    relay_ts_free(&ts);
    assert_null(ts);
    free(g->data);
    free(g);
    free(b.data);
}

static void test_keyframes_h264(void **state)
{
    (void)state;
    check_keys("h264.ts", false, "h264");
    check_keys("h264.ts", true, "h264");
    check_keys("av.ts", false, "h264");
}

static void test_keyframes_hevc(void **state)
{
    (void)state;
    if (!have_x265)
        skip();
    check_keys("hevc.ts", false, "hevc");
    check_keys("hevc.ts", true, "hevc");
}

/* A viewer joining mid-stream gets PAT, PMT, a keyframe, and a stream
 * ffmpeg decodes without a single error. */
static void late_joiner(const char *name, bool strip_rai, const char *tag)
{
    blob b = load(name);
    if (strip_rai)
        for (size_t i = 0; i + 188 <= b.len; i += 188)
            if ((b.data[i + 3] & 0x20) && b.data[i + 4] > 0)
                b.data[i + 5] &= (uint8_t)~0x40;
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    srand(11);
    size_t half = b.len * 45 / 100 + 77; /* not on a packet boundary */
    feed(ts, &b, 0, half, NULL, NULL);

    relay_ts_reader *r = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &r), 0);
    struct pollfd pfd = {.fd = relay_ts_reader_fd(r), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 1); /* a keyframe is already there */
    got *g = calloc(1, sizeof(*g));
    feed(ts, &b, half, b.len, r, g);
    assert_int_equal(drain(r, g), 0);
    assert_int_equal(poll(&pfd, 1, 0), 0);

    assert_true(g->chunks > 3);
    assert_int_equal(g->flags[0], RELAY_TS_PSI);
    assert_int_equal(pid_of(g->data), 0);
    assert_int_not_equal(pid_of(g->data + 188), 0);
    assert_true(g->flags[1] & RELAY_TS_KEY);
    assert_true(g->seq[1] > 1);
    assert_decodes(g->data, g->len, tag);

    relay_ts_reader_free(&r);
    relay_ts_free(&ts);
    free(g->data);
    free(g);
    free(b.data);
}

static void test_late_joiner_decodes(void **state)
{
    (void)state;
    late_joiner("h264.ts", false, "h264");
    late_joiner("av.ts", false, "av");
    late_joiner("av.ts", true, "av-norai");
    if (have_x265) {
        late_joiner("hevc.ts", false, "hevc");
        late_joiner("hevc.ts", true, "hevc-norai");
    }
}

/* Garbage between packets (never a sync byte) is dropped to the byte, and
 * the stream comes through unchanged. */
static void test_garbage_skipped(void **state)
{
    (void)state;
    blob b = load("av.ts");
    long pos[64];
    assert_true(key_positions("av.ts", pos, 64) >= 3);
    blob dirty = {malloc(b.len * 2 + 4096), 0};
    srand(3);
    size_t inserted = 0;
    int bursts = 0;
    /* Garbage before the first packet, too. */
    for (size_t i = 0; i < b.len; i += 188) {
        if (i % (188 * 37) == 0) {
            size_t n = 1 + (size_t)(rand() % 400);
            for (size_t k = 0; k < n; k++) {
                uint8_t c = (uint8_t)(rand() % 256);
                dirty.data[dirty.len++] = c == 0x47 ? 0x48 : c;
            }
            inserted += n;
            bursts++;
        }
        memcpy(dirty.data + dirty.len, b.data + i, 188);
        dirty.len += 188;
    }
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    relay_ts_reader *r = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &r), 0);
    got *g = calloc(1, sizeof(*g));
    feed(ts, &dirty, 0, dirty.len, r, g);
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.garbage_bytes, inserted);
    assert_int_equal(st.resyncs, (uint64_t)bursts);
    assert_int_equal(st.packets, b.len / 188);
    assert_int_equal(g->len - 376, b.len - (size_t)pos[0]);
    assert_memory_equal(g->data + 376, b.data + pos[0], b.len - (size_t)pos[0]);
    relay_ts_reader_free(&r);
    relay_ts_free(&ts);
    free(g->data);
    free(g);
    free(dirty.data);
    free(b.data);
}

/* A reader that stops reading costs at most the cap: it then gets -ESPIPE,
 * and a resync puts it on a keyframe again. */
static void test_slow_reader_bounded(void **state)
{
    (void)state;
    blob b = load("big.ts");
    const size_t cap = 300 * 1024;
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(cap, &ts), 0);
    relay_ts_reader *slow = NULL, *fast = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &slow), 0);
    assert_int_equal(relay_ts_reader_new(ts, &fast), 0);
    got *gs = calloc(1, sizeof(*gs));
    got *gf = calloc(1, sizeof(*gf));
    stw_kind_stat heap0, heap;
    stw_ledger_kind_stat(STW_KIND_HEAP, &heap0);
    srand(5);
    size_t off = 0;
    bool slow_read = false;
    while (off < b.len) {
        size_t n = rand_size();
        if (n > b.len - off)
            n = b.len - off;
        assert_int_equal(relay_ts_write(ts, b.data + off, n), 0);
        off += n;
        assert_true(drain(fast, gf) >= 0);
        /* The slow reader reads once, after the first keyframe. */
        if (!slow_read && gf->chunks > 0) {
            assert_true(drain(slow, gs) > 0);
            slow_read = true;
        }
        relay_ts_stats st;
        relay_ts_get_stats(ts, &st);
        assert_true(st.retained_bytes <= cap);
        stw_ledger_kind_stat(STW_KIND_HEAP, &heap);
        assert_true((uint64_t)heap.live_bytes <=
                    (uint64_t)heap0.live_bytes + cap + RELAY_TS_CHUNK_MAX);
    }
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_true(st.bytes_in > 3 * cap);
    assert_true(st.keyframe_available);

    relay_ts_chunk c[4];
    size_t n = 99;
    assert_int_equal(relay_ts_read(slow, c, 4, &n), -ESPIPE);
    assert_int_equal(n, 0);
    assert_true(relay_ts_reader_skipped(slow) > 0);
    relay_ts_reader_resync(slow);
    assert_int_equal(relay_ts_read(slow, c, 4, &n), 0);
    assert_true(n >= 1);
    assert_int_equal(c[0].flags, RELAY_TS_KEY); /* no second PSI */
    for (size_t i = 0; i < n; i++)
        stw_buf_unref(&c[i].buf);
    /* The fast reader got all of it and still decodes. */
    assert_decodes(gf->data, gf->len, "fast");

    relay_ts_reader_free(&slow);
    relay_ts_reader_free(&fast);
    relay_ts_free(&ts);
    free(gs->data);
    free(gs);
    free(gf->data);
    free(gf);
    free(b.data);
}

/* One group of pictures larger than the cap: its start is dropped, no
 * keyframe is offered, and a new reader waits. */
static void test_gop_over_cap(void **state)
{
    (void)state;
    blob b = load("longgop.ts");
    const size_t cap = 200 * 1024;
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(cap, &ts), 0);
    srand(9);
    feed(ts, &b, 0, b.len, NULL, NULL);
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.keyframes, 1);
    assert_false(st.keyframe_available);
    assert_true(st.retained_bytes <= cap);
    relay_ts_reader *r = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &r), 0);
    struct pollfd pfd = {.fd = relay_ts_reader_fd(r), .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0);
    relay_ts_chunk c[4];
    size_t n;
    assert_int_equal(relay_ts_read(r, c, 4, &n), 0);
    assert_int_equal(n, 0);
    /* The source restarts: the reader starts with the new stream. */
    relay_ts_reset(ts);
    blob h = load("h264.ts");
    got *g = calloc(1, sizeof(*g));
    feed(ts, &h, 0, h.len, r, g);
    assert_int_equal(g->flags[0], RELAY_TS_PSI);
    assert_true(g->flags[1] & RELAY_TS_KEY);
    assert_decodes(g->data, g->len, "after-reset");
    relay_ts_reader_free(&r);
    relay_ts_free(&ts);
    free(g->data);
    free(g);
    free(h.data);
    free(b.data);
}

/* A reader in the middle of a stream when the source restarts continues
 * with the new stream's PAT/PMT and first keyframe, no error. */
static void test_reset_midstream(void **state)
{
    (void)state;
    blob a = load("av.ts");
    blob h = load(have_x265 ? "hevc.ts" : "h264.ts");
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    relay_ts_reader *r = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &r), 0);
    got *g = calloc(1, sizeof(*g));
    srand(13);
    feed(ts, &a, 0, a.len / 2 + 3, r, g);
    int before = g->chunks;
    assert_true(before > 2);
    relay_ts_reset(ts);
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.video_type, 0);
    assert_int_equal(st.retained_bytes, 0);
    feed(ts, &h, 0, h.len, r, g);
    assert_int_equal(g->flags[before], RELAY_TS_PSI);
    assert_true(g->flags[before + 1] & RELAY_TS_KEY);
    assert_decodes(g->data + g->at[before], g->len - g->at[before], "reset");
    relay_ts_get_stats(ts, &st);
    assert_string_equal(st.video_codec, have_x265 ? "hevc" : "h264");
    assert_null(st.audio_codec);
    relay_ts_reader_free(&r);
    relay_ts_free(&ts);
    free(g->data);
    free(g);
    free(a.data);
    free(h.data);
}

/* Audio alone: every frame is a random access point, so keyframes are
 * taken at audio PES starts (at most one a second). */
static void test_audio_only(void **state)
{
    (void)state;
    late_joiner("audio.ts", false, "audio");
    blob b = load("audio.ts");
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    assert_int_equal(relay_ts_write(ts, b.data, b.len), 0);
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.keyframes, 1); /* all of it arrived within a second */
    assert_null(st.video_codec);
    assert_string_equal(st.audio_codec, "aac");
    assert_true(st.keyframe_available);
    relay_ts_free(&ts);
    free(b.data);
}

static void test_codecs_in_pmt(void **state)
{
    (void)state;
    blob b = load("av.ts");
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    assert_int_equal(relay_ts_write(ts, b.data, 188 * 40), 0);
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.video_type, 0x1b);
    assert_int_equal(st.audio_type, 0x0f);
    assert_string_equal(st.video_codec, "h264");
    assert_string_equal(st.audio_codec, "aac");
    relay_ts_free(&ts);
    free(b.data);
}

/* One writer (with a source restart half-way), readers on their own
 * threads waiting on their eventfds, and readers coming and going. */
typedef struct shared {
    relay_ts *ts;
    blob b;
    atomic_bool done;
} shared;

typedef struct reader_result {
    shared *sh;
    _Atomic uint64_t chunks;
    uint64_t bytes, psi, keys, espipe;
    bool order_ok;
} reader_result;

static void *reader_thread(void *arg)
{
    reader_result *res = arg;
    relay_ts_reader *r = NULL;
    if (relay_ts_reader_new(res->sh->ts, &r) != 0)
        return NULL;
    res->order_ok = true;
    uint64_t last = 0;
    relay_ts_chunk c[8];
    for (;;) {
        bool finished = atomic_load(&res->sh->done);
        struct pollfd pfd = {.fd = relay_ts_reader_fd(r), .events = POLLIN};
        poll(&pfd, 1, 50);
        size_t n = 0;
        int rc = relay_ts_read(r, c, 8, &n);
        if (rc == -ESPIPE) {
            res->espipe++;
            relay_ts_reader_resync(r);
            last = 0;
        }
        for (size_t i = 0; i < n; i++) {
            if (c[i].flags & RELAY_TS_PSI) {
                res->psi++;
                last = 0;
            } else {
                if (last != 0 && c[i].seq != last + 1)
                    res->order_ok = false;
                if (last == 0 && !(c[i].flags & RELAY_TS_KEY))
                    res->order_ok = false; /* every start is a keyframe */
                last = c[i].seq;
            }
            if (c[i].flags & RELAY_TS_KEY)
                res->keys++;
            res->bytes += stw_buf_size(c[i].buf);
            res->chunks++;
            stw_buf_unref(&c[i].buf);
        }
        if (finished && n == 0)
            break;
    }
    relay_ts_reader_free(&r);
    return NULL;
}

static void *churn_thread(void *arg)
{
    shared *sh = arg;
    while (!atomic_load(&sh->done)) {
        relay_ts_reader *r = NULL;
        if (relay_ts_reader_new(sh->ts, &r) == 0) {
            relay_ts_chunk c[4];
            size_t n = 0;
            relay_ts_read(r, c, 4, &n);
            for (size_t i = 0; i < n; i++)
                stw_buf_unref(&c[i].buf);
            relay_ts_reader_free(&r);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    shared sh = {.b = load("av.ts")};
    assert_int_equal(relay_ts_new(256 * 1024, &sh.ts), 0);
    enum { READERS = 4 };
    pthread_t th[READERS], churn;
    reader_result res[READERS];
    for (int i = 0; i < READERS; i++) {
        res[i] = (reader_result){.sh = &sh};
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &res[i]), 0);
    }
    assert_int_equal(pthread_create(&churn, NULL, churn_thread, &sh), 0);
    srand(17);
    for (int round = 0; round < 4; round++) {
        if (round == 2) {
            /* Every reader is into the first stream before it restarts. */
            for (int i = 0; i < READERS; i++)
                while (atomic_load(&res[i].chunks) == 0)
                    usleep(1000);
            relay_ts_reset(sh.ts);
        }
        for (size_t off = 0; off < sh.b.len;) {
            size_t n = rand_size();
            if (n > sh.b.len - off)
                n = sh.b.len - off;
            assert_int_equal(relay_ts_write(sh.ts, sh.b.data + off, n), 0);
            off += n;
            if (rand() % 8 == 0)
                usleep(200);
        }
    }
    atomic_store(&sh.done, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    pthread_join(churn, NULL);
    for (int i = 0; i < READERS; i++) {
        assert_true(res[i].order_ok);
        assert_true(res[i].psi >= 2); /* the first one and after the reset */
        /* How much a reader sees depends on the scheduler (a slow one is
         * moved on to later keyframes), but never less than a keyframe of
         * each stream. */
        assert_true(res[i].keys >= 2);
        assert_true(res[i].bytes > 0);
    }
    relay_ts_stats st;
    relay_ts_get_stats(sh.ts, &st);
    assert_int_equal(st.readers, 0);
    relay_ts_free(&sh.ts);
    free(sh.b.data);
}

/* A feed writes the stream into a non-blocking pipe (a child's stdin): a
 * chunk cut short by a full pipe goes on where it stopped, a slow consumer
 * is moved to a keyframe and the chunks it missed are counted, a consumer
 * that went away is an error. */
static void test_feed_pipe(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    blob b = load("big.ts");
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(300 * 1024, &ts), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    relay_ts_feed f;
    assert_int_equal(relay_ts_feed_open(ts, &f), 0);
    bool idle = false;
    assert_int_equal(relay_ts_feed_write(&f, p[1], &idle), 0);
    assert_true(idle); /* nothing published yet */

    /* A consumer that keeps up gets every byte from the first keyframe. */
    got *g = calloc(1, sizeof(*g));
    g->cap = b.len * 2;
    g->data = malloc(g->cap);
    srand(21);
    /* Up to a keyframe, so that the last frame it gets is whole. */
    long pos[64];
    assert_true(key_positions("big.ts", pos, 64) >= 5);
    size_t half = (size_t)pos[3];
    for (size_t off = 0; off < half;) {
        size_t n = rand_size();
        if (n > half - off)
            n = half - off;
        assert_int_equal(relay_ts_write(ts, b.data + off, n), 0);
        off += n;
        for (;;) {
            long w = relay_ts_feed_write(&f, p[1], &idle);
            assert_true(w >= 0);
            ssize_t r;
            while ((r = read(p[0], g->data + g->len, g->cap - g->len)) > 0)
                g->len += (size_t)r;
            if (idle)
                break;
        }
    }
    assert_int_equal(f.skipped, 0);
    assert_int_equal(pid_of(g->data), 0);
    assert_decodes(g->data, g->len, "feed");

    /* A consumer that stops reading: the feed stalls on the full pipe while
     * the stream moves on past the retention cap. */
    size_t stalled_at = g->len;
    feed(ts, &b, half, b.len, NULL, NULL);
    long w = relay_ts_feed_write(&f, p[1], &idle);
    assert_true(w >= 0);
    assert_false(idle); /* the pipe is full, with a chunk half written */
    assert_true(f.has_pending && f.off > 0);
    size_t before_drain = g->len;
    for (int i = 0; i < 1000; i++) {
        ssize_t r;
        while ((r = read(p[0], g->data + g->len, g->cap - g->len)) > 0)
            g->len += (size_t)r;
        w = relay_ts_feed_write(&f, p[1], &idle);
        assert_true(w >= 0);
        if (idle)
            break;
    }
    assert_true(idle);
    assert_true(g->len > before_drain);
    assert_true(f.skipped > 0); /* it was moved to a later keyframe */
    /* The pending chunk was finished before the jump: the byte stream stays
     * whole packets. */
    assert_int_equal((g->len - stalled_at) % 188, 0);

    /* The consumer goes away. */
    relay_ts_reset(ts);
    feed(ts, &b, 0, 300000, NULL, NULL);
    close(p[0]);
    assert_int_equal(relay_ts_feed_write(&f, p[1], &idle), -EPIPE);
    assert_false(f.has_pending);
    close(p[1]);
    relay_ts_feed_close(&f);
    assert_null(f.reader);
    relay_ts_feed_close(&f); /* closing twice is fine */
    relay_ts_free(&ts);
    free(g->data);
    free(g);
    free(b.data);
}

static blob sweep_data;

static int scenario(void *ud)
{
    (void)ud;
    relay_ts *ts = NULL;
    int rc = relay_ts_new(0, &ts);
    if (rc != 0)
        return rc;
    relay_ts_reader *r = NULL;
    rc = relay_ts_reader_new(ts, &r);
    if (rc != 0) {
        relay_ts_free(&ts);
        return rc;
    }
    int got_key = 0;
    for (size_t off = 0; off < sweep_data.len && rc == 0; off += 30000) {
        size_t n = sweep_data.len - off < 30000 ? sweep_data.len - off : 30000;
        rc = relay_ts_write(ts, sweep_data.data + off, n);
        relay_ts_chunk c[8];
        size_t k = 0;
        if (rc == 0)
            rc = relay_ts_read(r, c, 8, &k);
        for (size_t i = 0; i < k; i++) {
            if (c[i].flags & RELAY_TS_KEY)
                got_key = 1;
            stw_buf_unref(&c[i].buf);
        }
    }
    relay_ts_reader_free(&r);
    relay_ts_free(&ts);
    if (rc == 0 && !got_key)
        rc = -ENOMEM; /* the PAT/PMT copy could not be made */
    return rc;
}

static void test_fault_sweep(void **state)
{
    (void)state;
    blob b = load("h264.ts");
    sweep_data.data = b.data;
    sweep_data.len = b.len < 120000 ? b.len : 120000;
    assert_true(stw_test_fault_sweep(scenario, NULL) >= 5);
    free(b.data);
}

static int make_streams(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/stw-ts-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    const char *ff = "ffmpeg -nostdin -v error -y";
    const char *src = "-f lavfi -i testsrc=size=320x240:rate=25";
    sh("%s %s -t 4 -c:v libx264 -pix_fmt yuv420p -g 25 -sc_threshold 0 -f mpegts %s/h264.ts", ff,
       src, dir);
    sh("%s %s -f lavfi -i sine=frequency=440:sample_rate=48000 -t 4 -c:v libx264 -pix_fmt yuv420p "
       "-g 25 -sc_threshold 0 -c:a aac -f mpegts %s/av.ts",
       ff, src, dir);
    /* Constant 1.5 Mbit/s (filler data): GOPs of about 190 KB. */
    const char *cbr = "-b:v 1500k -minrate 1500k -maxrate 1500k -bufsize 500k "
                      "-x264-params nal-hrd=cbr";
    sh("%s %s -t 6 -c:v libx264 -pix_fmt yuv420p -g 25 -sc_threshold 0 %s -f mpegts %s/big.ts", ff,
       src, cbr, dir);
    sh("%s %s -t 4 -c:v libx264 -pix_fmt yuv420p -g 1000 %s -f mpegts %s/longgop.ts", ff, src, cbr,
       dir);
    sh("%s -f lavfi -i sine=sample_rate=48000 -t 4 -c:a aac -f mpegts %s/audio.ts", ff, dir);
    have_x265 = system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx265") == 0;
    if (have_x265)
        sh("%s %s -t 4 -c:v libx265 -pix_fmt yuv420p -g 25 -x265-params "
           "log-level=error:scenecut=0 -f mpegts %s/hevc.ts",
           ff, src, dir);
    return 0;
}

static int remove_streams(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A recording's pre-roll: a feed opened "back in time" starts at the
 * newest retained keyframe published at or before the time asked for, not
 * before the floor (else at the oldest after it), and what it hands out
 * decodes; relay_ts_key_time names the same keyframe. */
static void test_feed_open_at(void **state)
{
    (void)state;
    blob b = load("h264.ts");
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    srand(13);
    size_t third = b.len / 3 + 41, two = 2 * (b.len / 3) + 5;
    feed(ts, &b, 0, third, NULL, NULL);
    usleep(20000);
    int64_t t1 = stw_now_ns();
    usleep(20000);
    feed(ts, &b, third, two, NULL, NULL);
    usleep(20000);
    int64_t t2 = stw_now_ns();
    usleep(20000);
    feed(ts, &b, two, b.len, NULL, NULL);
    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_true(st.retained_ms >= 80);

    /* The default: the last keyframe. */
    relay_ts_reader *r = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &r), 0);
    got *g0 = calloc(1, sizeof(*g0));
    assert_true(drain(r, g0) > 1);
    relay_ts_reader_free(&r);

    struct {
        int64_t start, floor;
        bool before_t1, before_t2;
    } cases[] = {
        {t1, 0, true, true},   /* the last keyframe of the first third */
        {t2, t1, false, true}, /* of the second third */
        {t1, t1, false, true}, /* none at or before t1 after the floor: the first after */
        {1, 0, true, true},    /* before everything: the oldest retained */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int64_t key = relay_ts_key_time(ts, cases[k].start, cases[k].floor);
        assert_true(key > 0);
        assert_true((key <= t1) == cases[k].before_t1);
        assert_true((key <= t2) == cases[k].before_t2);
        assert_true(key >= cases[k].floor);
        relay_ts_feed f;
        assert_int_equal(relay_ts_feed_open_at(ts, &f, cases[k].start, cases[k].floor), 0);
        assert_int_equal(relay_ts_reader_first_ns(f.reader), 0);
        got *g = calloc(1, sizeof(*g));
        assert_true(drain(f.reader, g) > 1);
        assert_int_equal(relay_ts_reader_first_ns(f.reader), key);
        assert_int_equal(g->flags[0], RELAY_TS_PSI);
        assert_true(g->flags[1] & RELAY_TS_KEY);
        /* Further back than a plain reader, and it decodes. */
        assert_true(g->seq[1] < g0->seq[1]);
        assert_true(g->len > g0->len);
        assert_decodes(g->data, g->len, "open-at");
        relay_ts_feed_close(&f);
        free(g->data);
        free(g);
    }
    free(g0->data);
    free(g0);
    relay_ts_free(&ts);
    free(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_keyframes_h264),      STW_TEST(test_keyframes_hevc),
        STW_TEST(test_late_joiner_decodes), STW_TEST(test_garbage_skipped),
        STW_TEST(test_slow_reader_bounded), STW_TEST(test_gop_over_cap),
        STW_TEST(test_reset_midstream),     STW_TEST(test_codecs_in_pmt),
        STW_TEST(test_audio_only),          STW_TEST(test_threads),
        STW_TEST(test_feed_pipe),           STW_TEST(test_fault_sweep),
        STW_TEST(test_feed_open_at),
    };
    return cmocka_run_group_tests_name("ts", tests, make_streams, remove_streams);
}
