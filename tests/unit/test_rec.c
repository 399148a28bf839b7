/*
 * The recordings layout's names, the retention rule (src/relay/rec_pure.c)
 * and the fragmented MP4 summary (src/relay/mp4.c) on files the installed
 * ffmpeg writes, whole and cut short.
 */
#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp4.h"
#include "preroll.h"
#include "rec.h"

/* The relay's input-name rule (relay.c), which rec_pure.c calls. */
bool relay_name_valid(const char *name, size_t len)
{
    if (len == 0 || len >= RELAY_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void test_paths(void **state)
{
    (void)state;
    assert_int_equal(relay_rec_path_check("cam1"), RELAY_REC_INPUT);
    assert_int_equal(relay_rec_path_check("cam1/2026-12-02"), RELAY_REC_DAY);
    assert_int_equal(relay_rec_path_check("cam1/2026-12-02/13-10-00"), RELAY_REC_SESSION);
    assert_int_equal(relay_rec_path_check("cam1/2026-12-02/13-10-00/2026-12-02T13-10-00Z.mp4"),
                     RELAY_REC_SEGMENT);
    static const char *const bad[] = {
        "", "/", "..", ".", "cam1/", "/cam1", "cam1//2026-12-02", "cam1/../etc",
        "../cam1", "cam1/2026-13-02", "cam1/2026-02-30", "cam1/2026-12-02/24-00-00",
        "cam1/2026-12-02/13-10-00/..", "cam1/2026-12-02/13-10-00/x.mp4",
        "cam1/2026-12-02/13-10-00/2026-12-02T13-10-00Z.mp4/x",
        "cam1/2026-12-02/13-10-00/2026-12-02T13-10-00Z.mp", "cam 1", "cam1/2026-12-0a",
        "cam1/2026-12-02/13-10-00/2026-12-02T13-10-00Z.mp4\n", "a/b/c/d/e",
        "cam1/2026-12-02/13:10:00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (relay_rec_path_check(bad[i]) != RELAY_REC_BAD)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(relay_rec_session_time("1970-01-01", "00-00-00"), 0);
    assert_int_equal(relay_rec_session_time("2000-03-01", "00-00-01"), 951868801);
    assert_int_equal(relay_rec_segment_time("2026-12-02T13-10-05Z.mp4"),
                     relay_rec_session_time("2026-12-02", "13-10-05"));
    assert_int_equal(relay_rec_segment_time("2026-12-02T13-10-05.mp4"), -1);
    /* Staging names: what the recorder's child writes before it is named;
     * never a segment, never a path the API takes. */
    assert_true(relay_rec_staging_valid(".part-1-0.mp4"));
    assert_true(relay_rec_staging_valid(".part-4294967295-123.mp4"));
    const char *not_staged[] = {"part-1-0.mp4", ".part--0.mp4", ".part-1-.mp4", ".part-1-0.mp",
                                ".part-1-0.mp4x", ".part-12345678901-0.mp4", ".part-1-0-2.mp4",
                                ".part-a-0.mp4", "2026-12-02T13-10-05Z.mp4"};
    for (size_t i = 0; i < sizeof(not_staged) / sizeof(not_staged[0]); i++)
        if (relay_rec_staging_valid(not_staged[i]))
            fail_msg("staging name accepted: %s", not_staged[i]);
    assert_false(relay_rec_segment_valid(".part-1-0.mp4"));
    assert_int_equal(relay_rec_path_check("cam1/2026-12-02/13-10-00/.part-1-0.mp4"), RELAY_REC_BAD);
}

static void test_select(void **state)
{
    (void)state;
    relay_rec_entry e[6];
    relay_rec_limits in[2] = {{.max_bytes = 250}, {.max_age_s = 100}};
    relay_rec_limits none = {0};
    /* Input 0: four segments of 100 bytes, the newest busy; input 1: two. */
    for (int i = 0; i < 4; i++)
        e[i] = (relay_rec_entry){.input = 0, .start = 1000 + i * 60, .size = 100, .busy = i == 3};
    e[4] = (relay_rec_entry){.input = 1, .start = 900, .size = 10};
    e[5] = (relay_rec_entry){.input = 1, .start = 1190, .size = 10};
    /* Sorted by start: swap e[4] first. */
    relay_rec_entry s[6] = {e[4], e[0], e[1], e[2], e[5], e[3]};
    uint64_t missing = relay_rec_select(s, 6, in, 2, &none, 1200, 1 << 20, 0);
    assert_int_equal(missing, 0);
    assert_int_equal(s[0].reason, RELAY_REC_DEL_AGE);  /* input 1, 300 s old */
    assert_int_equal(s[1].reason, RELAY_REC_DEL_SIZE); /* input 0's oldest two */
    assert_int_equal(s[2].reason, RELAY_REC_DEL_SIZE);
    assert_int_equal(s[3].reason, 0);
    assert_int_equal(s[4].reason, 0);
    assert_int_equal(s[5].reason, 0);

    /* Global bytes, then free space; busy ones never go. */
    relay_rec_limits g = {.max_bytes = 200};
    relay_rec_entry t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (relay_rec_entry){.input = -1, .start = i, .size = 100, .busy = i == 3};
    missing = relay_rec_select(t, 4, NULL, 0, &g, 10, 1000, 1250);
    assert_int_equal(missing, 0);
    assert_int_equal(t[0].reason, RELAY_REC_DEL_SIZE);
    assert_int_equal(t[1].reason, RELAY_REC_DEL_SIZE);
    assert_int_equal(t[2].reason, RELAY_REC_DEL_SPACE);
    assert_int_equal(t[3].reason, 0);
    /* Not enough even with everything gone: what is missing is said. */
    missing = relay_rec_select(t, 4, NULL, 0, &g, 10, 1000, 2000);
    assert_int_equal(missing, 700);
    assert_int_equal(t[3].reason, 0);
    /* No limits, enough space: nothing goes. */
    missing = relay_rec_select(t, 4, NULL, 0, &none, 10, 5000, 1000);
    assert_int_equal(missing, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[i].reason, 0);
}

/* Make a fragmented MP4 of @secs seconds (25 fps, a keyframe a second)
 * with the installed ffmpeg at @path. */
static void make_mp4(const char *path, int secs, const char *codec)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "
             "testsrc=size=160x120:rate=25 -t %d -c:v %s -g 25 -pix_fmt yuv420p -f mp4 "
             "-movflags +frag_keyframe+empty_moov+default_base_moof -frag_duration 1000000 %s",
             secs, codec, path);
    assert_int_equal(system(cmd), 0);
}

static void probe_file(const char *path, relay_mp4_info *info)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(relay_mp4_probe(fd, (uint64_t)st.st_size, info), 0);
    close(fd);
}

static void test_mp4(void **state)
{
    (void)state;
    char path[] = "/tmp/stw-test-rec-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    make_mp4(path, 4, "libx264");
    relay_mp4_info info;
    probe_file(path, &info);
    assert_int_equal(info.duration_ms, 4000);
    assert_string_equal(info.video_codec, "h264");
    assert_int_equal(info.width, 160);
    assert_int_equal(info.height, 120);
    assert_int_equal(info.fragments, 4);
    assert_false(info.cut);
    /* Cut in the middle of the last fragment: three seconds remain. */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* (past the trailing mfra box, into the last mdat) */
    assert_int_equal(truncate(path, st.st_size - 400), 0);
    probe_file(path, &info);
    assert_true(info.cut);
    assert_int_equal(info.fragments, 3);
    assert_int_equal(info.duration_ms, 3000);
    /* Not an MP4 at all. */
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_int_equal(write(fd, "garbage garbage garbage", 23), 23);
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_int_equal(relay_mp4_probe(fd, 23, &info), -EINVAL);
    close(fd);
    unlink(path);
}

/* Every truncation and random corruption of a real segment: an answer,
 * never a crash or a read out of bounds (run it under ASan or Valgrind
 * to see the latter). */
static void test_mp4_damaged(void **state)
{
    (void)state;
    char path[] = "/tmp/stw-test-rec-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    make_mp4(path, 2, "libx264");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t len = (size_t)st.st_size;
    unsigned char *orig = malloc(len), *buf = malloc(len);
    assert_non_null(orig);
    assert_non_null(buf);
    assert_int_equal(read(fd, orig, len), (ssize_t)len);
    close(fd);
    char bad[] = "/tmp/stw-test-rec-bad-XXXXXX";
    int bfd = mkstemp(bad);
    assert_true(bfd >= 0);
    relay_mp4_info info;
    int64_t last = -1;
    /* Truncations: the playable duration never grows as the file shrinks. */
    for (size_t cut = len; cut > 0; cut -= cut > 4096 ? 509 : 37) {
        assert_int_equal(ftruncate(bfd, 0), 0);
        assert_int_equal(pwrite(bfd, orig, cut, 0), (ssize_t)cut);
        int rc = relay_mp4_probe(bfd, cut, &info);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0) {
            assert_true(info.duration_ms >= 0 && info.duration_ms <= 2000);
            if (last >= 0)
                assert_true(info.duration_ms <= last);
            last = info.duration_ms;
        }
        if (cut <= 37)
            break;
    }
    /* Random bytes changed: any answer, no crash. */
    srand(7);
    for (int round = 0; round < 300; round++) {
        memcpy(buf, orig, len);
        for (int k = 0; k < 8; k++)
            buf[(size_t)rand() % len] = (unsigned char)rand();
        assert_int_equal(ftruncate(bfd, 0), 0);
        assert_int_equal(pwrite(bfd, buf, len, 0), (ssize_t)len);
        int rc = relay_mp4_probe(bfd, len, &info);
        assert_true(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    }
    close(bfd);
    unlink(bad);
    unlink(path);
    free(orig);
    free(buf);
}

/* Mode "motion": a session from the motion-start to post-roll after the
 * motion ended; motion resuming within the post-roll is the same span; a
 * motion-start missed between polls still opens one; starts from before
 * the first poll do not. */
static void test_gate(void **state)
{
    (void)state;
    relay_rec_gate g = relay_rec_gate_init(3000);
    /* Starts counted before the recorder polled do not count. */
    assert_false(relay_rec_gate_step(&g, 1000, false, 0, 4));
    assert_false(relay_rec_gate_step(&g, 1200, false, 0, 4));
    /* Motion: the span begins at its motion-start. */
    assert_true(relay_rec_gate_step(&g, 1400, true, 1300, 5));
    assert_int_equal(g.since_ms, 1300);
    assert_true(relay_rec_gate_step(&g, 5000, true, 1300, 5));
    /* It ended: 3 s of post-roll from the last poll that saw it. */
    assert_true(relay_rec_gate_step(&g, 5200, false, 0, 5));
    assert_true(relay_rec_gate_step(&g, 7999, false, 0, 5));
    /* Back within the post-roll: the same span (since stays). */
    assert_true(relay_rec_gate_step(&g, 7500, true, 7400, 6));
    assert_int_equal(g.since_ms, 1300);
    assert_true(relay_rec_gate_step(&g, 10499, false, 0, 6));
    assert_false(relay_rec_gate_step(&g, 10500, false, 0, 6));
    assert_false(relay_rec_gate_step(&g, 20000, false, 0, 6));
    /* A new motion: a new span. */
    assert_true(relay_rec_gate_step(&g, 21000, true, 20900, 7));
    assert_int_equal(g.since_ms, 20900);
    assert_false(relay_rec_gate_step(&g, 30000, false, 0, 7));
    /* A motion that started and ended between two polls. */
    assert_true(relay_rec_gate_step(&g, 40000, false, 0, 8));
    assert_int_equal(g.since_ms, 40000);
    assert_true(relay_rec_gate_step(&g, 42999, false, 0, 8));
    assert_false(relay_rec_gate_step(&g, 43000, false, 0, 8));
    /* A motion-start in the future of this poll (clock steps) is now. */
    assert_true(relay_rec_gate_step(&g, 50000, true, 60000, 9));
    assert_int_equal(g.since_ms, 50000);

    /* No post-roll: the session ends at the first poll without motion. */
    relay_rec_gate z = relay_rec_gate_init(0);
    assert_false(relay_rec_gate_step(&z, 100, false, 0, 0));
    assert_true(relay_rec_gate_step(&z, 200, true, 150, 1));
    assert_true(relay_rec_gate_step(&z, 300, true, 150, 1));
    assert_false(relay_rec_gate_step(&z, 400, false, 0, 1));
    /* A negative post-roll is none. */
    assert_int_equal(relay_rec_gate_init(-5).post_roll_ms, 0);
}

static stw_buf *frame_of(size_t len, uint8_t tag)
{
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_new(len, &b), 0);
    memset(stw_buf_data(b), tag, len);
    return b;
}

static uint8_t tag_of(stw_buf *b)
{
    assert_non_null(b);
    return stw_buf_data(b)[0];
}

/* The pre-roll ring of JPEG inputs: bounded by frames, bytes and time
 * (the oldest go first, the newest always stays), looked up by time. */
static void test_preroll(void **state)
{
    (void)state;
    const int64_t ms = 1000000;
    relay_preroll p;
    assert_int_equal(relay_preroll_init(&p, 0, 100), -EINVAL);
    assert_int_equal(relay_preroll_init(&p, 4, 1000), 0);
    assert_null(relay_preroll_at(&p, 5 * ms));
    assert_int_equal(relay_preroll_start(&p, 0, 0), 0);
    assert_int_equal(relay_preroll_rate(&p, 1, 30, 10), 10);
    /* Frames 1..6 at 100 ms apart, 100 bytes each: at most 4 are kept. */
    for (int i = 1; i <= 6; i++)
        assert_int_equal(relay_preroll_append(&p, frame_of(100, (uint8_t)i), i * 100 * ms), 0);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.bytes, 400);
    assert_int_equal(relay_preroll_get(&p, 0)->ns, 300 * ms);
    assert_int_equal(relay_preroll_rate(&p, 1, 30, 10), 10);
    assert_int_equal(relay_preroll_rate(&p, 1, 5, 10), 5);
    /* Looked up by time: the newest at or before, else the oldest. */
    assert_int_equal(tag_of(relay_preroll_at(&p, 450 * ms)), 4);
    assert_int_equal(tag_of(relay_preroll_at(&p, 500 * ms)), 5);
    assert_int_equal(tag_of(relay_preroll_at(&p, 10000 * ms)), 6);
    assert_int_equal(tag_of(relay_preroll_at(&p, 1 * ms)), 3);
    /* Where a pre-roll starts: at or after from, after the floor. */
    assert_int_equal(relay_preroll_start(&p, 350 * ms, 0), 400 * ms);
    assert_int_equal(relay_preroll_start(&p, 0, 400 * ms), 500 * ms);
    assert_int_equal(relay_preroll_start(&p, 700 * ms, 0), 0);
    /* Bytes: a 700-byte frame pushes out what it must (1000 at most). */
    assert_int_equal(relay_preroll_append(&p, frame_of(700, 7), 700 * ms), 0);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.bytes, 1000);
    assert_int_equal(tag_of(relay_preroll_at(&p, 0)), 4);
    /* A frame over the byte bound is refused, the ring unchanged. */
    assert_int_equal(relay_preroll_append(&p, frame_of(1001, 8), 800 * ms), -E2BIG);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.bytes, 1000);
    /* Time goes forward only: an older capture time is the newest's. */
    assert_int_equal(relay_preroll_append(&p, frame_of(10, 9), 650 * ms), 0);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.bytes, 910);
    assert_int_equal(relay_preroll_get(&p, p.n - 1)->ns, 700 * ms);
    /* Trimmed by time, the newest stays whatever the time. */
    relay_preroll_trim(&p, 650 * ms);
    assert_int_equal(p.n, 2);
    assert_int_equal(tag_of(relay_preroll_at(&p, 0)), 7);
    relay_preroll_trim(&p, 100000 * ms);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.bytes, 10);
    assert_int_equal(tag_of(relay_preroll_at(&p, 0)), 9);
    /* Many frames through a small ring: the bounds hold throughout. */
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(
            relay_preroll_append(&p, frame_of((size_t)(1 + i % 300), 1), (1000 + i) * ms), 0);
        assert_true(p.n <= 4 && p.bytes <= 1000);
    }
    relay_preroll_clear(&p);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.bytes, 0);
    relay_preroll_free(&p);
    relay_preroll_free(&p); /* twice is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {STW_TEST(test_paths), STW_TEST(test_select),
                                       STW_TEST(test_mp4), STW_TEST(test_mp4_damaged),
                                       STW_TEST(test_gate), STW_TEST(test_preroll)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
