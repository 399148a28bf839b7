#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ring.h"

/* xorshift64*: a fixed seed makes every random test reproducible. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static size_t rng_below(uint64_t *s, size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next(s) % n);
}

static void test_ring_basic(void **state)
{
    (void)state;
    stw_ring *r = NULL;
    assert_int_equal(stw_ring_new(0, &r), -EINVAL);
    assert_null(r);
    assert_int_equal(stw_ring_new(8, &r), 0);
    assert_int_equal(stw_ring_capacity(r), 8);
    assert_int_equal(stw_ring_len(r), 0);
    assert_int_equal(stw_ring_space(r), 8);

    assert_int_equal(stw_ring_write(r, "abcde", 5), 0);
    assert_int_equal(stw_ring_len(r), 5);
    assert_int_equal(stw_ring_space(r), 3);
    char out[8] = {0};
    assert_int_equal(stw_ring_peek(r, 1, out, 3), 3);
    assert_memory_equal(out, "bcd", 3);
    assert_int_equal(stw_ring_peek(r, 3, out, 10), 2);
    assert_memory_equal(out, "de", 2);
    assert_int_equal(stw_ring_peek(r, 5, out, 1), 0);

    stw_ring_consume(r, 2);
    assert_int_equal(stw_ring_len(r), 3);
    assert_int_equal(stw_ring_peek(r, 0, out, 8), 3);
    assert_memory_equal(out, "cde", 3);

    stw_ring_clear(r);
    assert_int_equal(stw_ring_len(r), 0);
    assert_int_equal(stw_ring_space(r), 8);
    stw_ring_free(&r);
    assert_null(r);
    stw_ring_free(&r);
    stw_ring_free(NULL);
}

static void test_ring_hard_cap(void **state)
{
    (void)state;
    stw_ring *r;
    assert_int_equal(stw_ring_new(10, &r), 0);
    assert_int_equal(stw_ring_write(r, "0123456", 7), 0);
    /* All or nothing: 4 bytes do not fit in 3, and nothing is written. */
    assert_int_equal(stw_ring_write(r, "abcd", 4), -ENOBUFS);
    assert_int_equal(stw_ring_len(r), 7);
    assert_int_equal(stw_ring_write(r, "abc", 3), 0);
    assert_int_equal(stw_ring_space(r), 0);
    assert_int_equal(stw_ring_write(r, "x", 1), -ENOBUFS);
    uint8_t *wp;
    assert_int_equal(stw_ring_write_ptr(r, &wp), 0);
    assert_null(wp);
    /* A stream that never stops cannot make the ring grow. */
    int refused = 0;
    for (int i = 0; i < 1000; i++) {
        if (stw_ring_write(r, "chunk", 5) == -ENOBUFS)
            refused++;
        if (i % 3 == 0)
            stw_ring_consume(r, stw_ring_len(r) < 4 ? stw_ring_len(r) : 4);
        assert_true(stw_ring_len(r) <= 10);
    }
    assert_true(refused > 0);
    stw_ring_free(&r);
}

static void test_ring_find_wrap(void **state)
{
    (void)state;
    stw_ring *r;
    assert_int_equal(stw_ring_new(16, &r), 0);
    assert_int_equal(stw_ring_write(r, "xxxxxxxxxxxx", 12), 0);
    stw_ring_consume(r, 10);
    /* Head at 10: "--bound" ends in storage at index 16 and wraps. */
    assert_int_equal(stw_ring_write(r, "ab--boundary", 12), 0);
    assert_int_equal(stw_ring_len(r), 14);
    assert_int_equal(stw_ring_find(r, 0, "--boundary", 10), 4);
    assert_int_equal(stw_ring_find(r, 4, "--boundary", 10), 4);
    assert_int_equal(stw_ring_find(r, 5, "--boundary", 10), -ENOENT);
    assert_int_equal(stw_ring_find(r, 0, "xa", 2), 1);
    assert_int_equal(stw_ring_find(r, 0, "z", 1), -ENOENT);
    assert_int_equal(stw_ring_find(r, 0, "", 0), -EINVAL);
    assert_int_equal(stw_ring_find(r, 100, "a", 1), -ENOENT);
    assert_int_equal(stw_ring_find(r, 0, "xxab--boundary!", 15), -ENOENT);
    assert_int_equal(stw_ring_find(r, 0, "xxab--boundary", 14), 0);
    char out[16];
    assert_int_equal(stw_ring_peek(r, 4, out, 10), 10);
    assert_memory_equal(out, "--boundary", 10);
    stw_ring_free(&r);
}

static void test_ring_zero_copy(void **state)
{
    (void)state;
    stw_ring *r;
    assert_int_equal(stw_ring_new(10, &r), 0);
    uint8_t *wp;
    const uint8_t *rp;
    assert_int_equal(stw_ring_read_ptr(r, &rp), 0);
    assert_null(rp);
    assert_int_equal(stw_ring_write_ptr(r, &wp), 10);
    memcpy(wp, "abcdef", 6);
    stw_ring_commit(r, 6);
    assert_int_equal(stw_ring_read_ptr(r, &rp), 6);
    assert_memory_equal(rp, "abcdef", 6);
    stw_ring_consume(r, 4);
    /* Data at [4,6): free space runs from 6 to the end of storage. */
    assert_int_equal(stw_ring_write_ptr(r, &wp), 4);
    memcpy(wp, "ghij", 4);
    stw_ring_commit(r, 4);
    /* Then wraps to [0,4) up to the head. */
    assert_int_equal(stw_ring_write_ptr(r, &wp), 4);
    memcpy(wp, "kl", 2);
    stw_ring_commit(r, 2);
    assert_int_equal(stw_ring_len(r), 8);
    assert_int_equal(stw_ring_read_ptr(r, &rp), 6);
    assert_memory_equal(rp, "efghij", 6);
    stw_ring_consume(r, 6);
    assert_int_equal(stw_ring_read_ptr(r, &rp), 2);
    assert_memory_equal(rp, "kl", 2);
    stw_ring_consume(r, 2);
    /* Empty again: the whole capacity is one span. */
    assert_int_equal(stw_ring_write_ptr(r, &wp), 10);
    stw_ring_free(&r);
}

/* Random operations against a plain array that is memmove'd on consume:
 * any wraparound slip shows up as a content mismatch. */
static void test_ring_random_model(void **state)
{
    (void)state;
    uint64_t seed = UINT64_C(0x5eed0001);
    for (size_t cap = 1; cap <= 37; cap += 6) {
        stw_ring *r;
        assert_int_equal(stw_ring_new(cap, &r), 0);
        uint8_t model[64];
        size_t mlen = 0;
        uint8_t tmp[64];
        for (int step = 0; step < 20000; step++) {
            size_t op = rng_below(&seed, 7);
            if (op == 0 || op == 1) {
                size_t n = rng_below(&seed, cap + 3);
                for (size_t i = 0; i < n; i++)
                    tmp[i] = (uint8_t)('a' + rng_below(&seed, 3));
                int rc = stw_ring_write(r, tmp, n);
                if (mlen + n > cap) {
                    assert_int_equal(rc, -ENOBUFS);
                } else {
                    assert_int_equal(rc, 0);
                    memcpy(model + mlen, tmp, n);
                    mlen += n;
                }
            } else if (op == 2) {
                size_t n = rng_below(&seed, mlen + 1);
                stw_ring_consume(r, n);
                memmove(model, model + n, mlen - n);
                mlen -= n;
            } else if (op == 3) {
                size_t off = rng_below(&seed, cap + 1), n = rng_below(&seed, cap + 1);
                size_t want = off >= mlen ? 0 : (n < mlen - off ? n : mlen - off);
                assert_int_equal(stw_ring_peek(r, off, tmp, n), want);
                assert_memory_equal(tmp, model + off, want);
            } else if (op == 4) {
                uint8_t *wp;
                size_t span = stw_ring_write_ptr(r, &wp);
                assert_true(span <= cap - mlen);
                assert_true(span > 0 || mlen == cap);
                size_t n = rng_below(&seed, span + 1);
                for (size_t i = 0; i < n; i++)
                    wp[i] = model[mlen + i] = (uint8_t)('a' + rng_below(&seed, 3));
                stw_ring_commit(r, n);
                mlen += n;
            } else if (op == 5) {
                const uint8_t *rp;
                size_t span = stw_ring_read_ptr(r, &rp);
                assert_true(span <= mlen);
                assert_true(span > 0 || mlen == 0);
                assert_memory_equal(rp, model, span);
            } else {
                size_t nlen = 1 + rng_below(&seed, 4);
                for (size_t i = 0; i < nlen; i++)
                    tmp[i] = (uint8_t)('a' + rng_below(&seed, 3));
                size_t from = rng_below(&seed, mlen + 2);
                ssize_t expect = -ENOENT;
                for (size_t i = from; i + nlen <= mlen; i++) {
                    if (memcmp(model + i, tmp, nlen) == 0) {
                        expect = (ssize_t)i;
                        break;
                    }
                }
                assert_int_equal(stw_ring_find(r, from, tmp, nlen), expect);
            }
            assert_int_equal(stw_ring_len(r), mlen);
            assert_int_equal(stw_ring_space(r), cap - mlen);
            if (rng_below(&seed, 500) == 0) {
                stw_ring_clear(r);
                mlen = 0;
            }
        }
        stw_ring_free(&r);
    }
}

static void test_ring_read_fd(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(stw_pipe(fds, O_CLOEXEC | O_NONBLOCK, "test:pipe"), 0);
    stw_ring *r;
    assert_int_equal(stw_ring_new(16, &r), 0);

    assert_int_equal(stw_ring_read_fd(r, fds[0], 0), -EAGAIN);
    /* Move the tail near the end of storage so one read spans the wrap. */
    assert_int_equal(stw_ring_write(r, "0123456789abcd", 14), 0);
    stw_ring_consume(r, 12);
    assert_int_equal(write(fds[1], "HELLO-WORLD", 11), 11);
    assert_int_equal(stw_ring_read_fd(r, fds[0], 0), 11);
    char out[16];
    assert_int_equal(stw_ring_peek(r, 0, out, 16), 13);
    assert_memory_equal(out, "cdHELLO-WORLD", 13);
    assert_int_equal(stw_ring_find(r, 0, "O-W", 3), 6);

    /* @max limits the read; a full ring reads nothing. */
    assert_int_equal(write(fds[1], "0123456789", 10), 10);
    assert_int_equal(stw_ring_read_fd(r, fds[0], 2), 2);
    assert_int_equal(stw_ring_read_fd(r, fds[0], 0), 1);
    assert_int_equal(stw_ring_space(r), 0);
    assert_int_equal(stw_ring_read_fd(r, fds[0], 0), -ENOBUFS);
    stw_ring_clear(r);
    assert_int_equal(stw_ring_read_fd(r, fds[0], 0), 7);
    assert_int_equal(stw_ring_peek(r, 0, out, 16), 7);
    assert_memory_equal(out, "3456789", 7);

    stw_fd_close(&fds[1]);
    assert_int_equal(stw_ring_read_fd(r, fds[0], 0), 0);
    assert_int_equal(stw_ring_read_fd(r, -1, 0), -EBADF);
    stw_fd_close(&fds[0]);
    stw_ring_free(&r);
}

static void test_ring_ledger(void **state)
{
    (void)state;
    stw_ring *r;
    assert_int_equal(stw_ring_new(4096, &r), 0);
    int kind = stw_kind_lookup("ring");
    assert_true(kind >= STW_KIND_USER_FIRST);
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(kind, (uintptr_t)r, &rec), 0);
    assert_int_equal(rec.size, 4096);
    stw_ring *keep = r;
    stw_ring_free(&r);
    assert_int_equal(stw_ledger_lookup(kind, (uintptr_t)keep, &rec), -ENOENT);
}

/* An MJPEG-style parser: frames "--B<len:4 digits><payload>" pushed through
 * a pipe by a writer thread in odd-sized chunks, parsed by the reader with a
 * ring much smaller than the stream. */
#define PARSE_FRAMES 300

struct parse_job {
    int fds[2];
    int frames_ok;
    int rc;
};

static void *parse_writer(void *arg)
{
    struct parse_job *j = arg;
    char frame[128];
    uint64_t seed = (uint64_t)(uintptr_t)j | 1;
    for (int i = 0; i < PARSE_FRAMES; i++) {
        size_t plen = 1 + rng_below(&seed, 60);
        int h = snprintf(frame, sizeof(frame), "--B%04zu", plen);
        for (size_t k = 0; k < plen; k++)
            frame[h + (int)k] = (char)('a' + (i + (int)k) % 26);
        size_t total = (size_t)h + plen, done = 0;
        while (done < total) {
            size_t n = 1 + rng_below(&seed, 17);
            if (n > total - done)
                n = total - done;
            ssize_t w = write(j->fds[1], frame + done, n);
            if (w <= 0)
                goto out;
            done += (size_t)w;
        }
    }
out:
    stw_fd_close(&j->fds[1]);
    return NULL;
}

static void *parse_reader(void *arg)
{
    struct parse_job *j = arg;
    stw_ring *r;
    j->rc = stw_ring_new(80, &r);
    if (j->rc != 0)
        return NULL;
    int expect = 0;
    for (;;) {
        ssize_t n = stw_ring_read_fd(r, j->fds[0], 0);
        if (n <= 0) {
            j->rc = (int)n;
            break;
        }
        for (;;) {
            ssize_t at = stw_ring_find(r, 0, "--B", 3);
            char hdr[8], payload[64];
            if (at != 0 || stw_ring_peek(r, 3, hdr, 4) < 4)
                break;
            hdr[4] = '\0';
            size_t plen = (size_t)atoi(hdr);
            if (stw_ring_len(r) < 7 + plen)
                break;
            stw_ring_peek(r, 7, payload, plen);
            bool ok = true;
            for (size_t k = 0; k < plen; k++)
                ok = ok && payload[k] == (char)('a' + (expect + (int)k) % 26);
            if (ok)
                j->frames_ok++;
            expect++;
            stw_ring_consume(r, 7 + plen);
        }
    }
    stw_ring_free(&r);
    return NULL;
}

static void test_ring_threads_parse(void **state)
{
    (void)state;
    enum { N = 4 };
    struct parse_job jobs[N];
    pthread_t w[N], rd[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (struct parse_job){.frames_ok = 0, .rc = -1};
        assert_int_equal(stw_pipe(jobs[i].fds, O_CLOEXEC, "test:pipe"), 0);
        assert_int_equal(pthread_create(&rd[i], NULL, parse_reader, &jobs[i]), 0);
        assert_int_equal(pthread_create(&w[i], NULL, parse_writer, &jobs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(w[i], NULL);
        pthread_join(rd[i], NULL);
        stw_fd_close(&jobs[i].fds[0]);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].frames_ok, PARSE_FRAMES);
    }
}

static int ring_scenario(void *ud)
{
    (void)ud;
    stw_ring *r;
    int rc = stw_ring_new(32, &r);
    if (rc != 0)
        return rc;
    rc = stw_ring_write(r, "abc--xyz", 8);
    if (rc == 0 && stw_ring_find(r, 0, "--", 2) != 3)
        rc = -EIO;
    stw_ring_free(&r);
    return rc;
}

static void test_ring_fault_sweep(void **state)
{
    (void)state;
    assert_true(stw_test_fault_sweep(ring_scenario, NULL) >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_ring_basic),        STW_TEST(test_ring_hard_cap),
        STW_TEST(test_ring_find_wrap),    STW_TEST(test_ring_zero_copy),
        STW_TEST(test_ring_random_model), STW_TEST(test_ring_read_fd),
        STW_TEST(test_ring_ledger),       STW_TEST(test_ring_threads_parse),
        STW_TEST(test_ring_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
