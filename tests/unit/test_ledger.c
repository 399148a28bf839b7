#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/ledger.h"

/* Ids far from any real pointer or fd, so tests never collide with
 * resources the process books for itself. */
#define ID(n) (UINT64_C(0x5700000000000000) + (uint64_t)(n))

static void test_record_release(void **state)
{
    (void)state;
    stw_kind_stat before, after;
    stw_ledger_kind_stat(STW_KIND_TIMER, &before);
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(1), 100, "t1"), 0);
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(1), 100, "t1"), -EEXIST);
    /* The same id under another kind is a different resource. */
    assert_int_equal(stw_ledger_record(STW_KIND_MMAP, ID(1), 4096, NULL), 0);
    stw_ledger_kind_stat(STW_KIND_TIMER, &after);
    assert_int_equal(after.live - before.live, 1);
    assert_int_equal(after.live_bytes - before.live_bytes, 100);

    stw_record r;
    assert_int_equal(stw_ledger_lookup(STW_KIND_TIMER, ID(1), &r), 0);
    assert_int_equal(r.kind, STW_KIND_TIMER);
    assert_int_equal(r.size, 100);
    assert_string_equal(r.label, "t1");
    assert_true(r.seq > 0);
    assert_true(r.site != 0);

    assert_int_equal(stw_ledger_resize(STW_KIND_TIMER, ID(1), 250), 0);
    assert_int_equal(stw_ledger_set_label(STW_KIND_TIMER, ID(1), "renamed"), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_TIMER, ID(1), &r), 0);
    assert_int_equal(r.size, 250);
    assert_string_equal(r.label, "renamed");
    stw_ledger_kind_stat(STW_KIND_TIMER, &after);
    assert_int_equal(after.live_bytes - before.live_bytes, 250);

    assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(1)), 0);
    assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(1)), -ENOENT);
    assert_int_equal(stw_ledger_lookup(STW_KIND_TIMER, ID(1), NULL), -ENOENT);
    assert_int_equal(stw_ledger_release(STW_KIND_MMAP, ID(1)), 0);
    stw_ledger_kind_stat(STW_KIND_TIMER, &after);
    assert_int_equal(after.live, before.live);
    assert_int_equal(after.live_bytes, before.live_bytes);
    assert_int_equal(after.created - before.created, 1);
    assert_int_equal(after.released - before.released, 1);
}

static void test_bad_kind(void **state)
{
    (void)state;
    assert_int_equal(stw_ledger_record(-1, ID(2), 0, NULL), -EINVAL);
    assert_int_equal(stw_ledger_record(STW_KIND_MAX, ID(2), 0, NULL), -EINVAL);
    /* A user slot that was never registered is not a kind. */
    assert_int_equal(stw_ledger_record(STW_KIND_MAX - 1, ID(2), 0, NULL), -EINVAL);
    assert_string_equal(stw_kind_name(STW_KIND_MAX - 1), "?");
}

static void test_user_kinds(void **state)
{
    (void)state;
    int k = stw_kind_register("session");
    assert_true(k >= STW_KIND_USER_FIRST);
    assert_int_equal(stw_kind_register("session"), k);
    assert_string_equal(stw_kind_name(k), "session");
    assert_int_equal(stw_kind_lookup("session"), k);
    assert_int_equal(stw_kind_lookup("heap"), STW_KIND_HEAP);
    assert_int_equal(stw_kind_lookup("no-such-kind"), -ENOENT);
    assert_int_equal(stw_ledger_record(k, ID(3), 7, NULL), 0);
    assert_int_equal(stw_ledger_release(k, ID(3)), 0);
}

static __attribute__((noinline)) stw_site site_from_a(void)
{
    stw_site s = stw_ledger_site_here(STW_KIND_HEAP, 0);
    __asm__ volatile("" ::: "memory");
    return s;
}

static __attribute__((noinline)) stw_site site_from_b(void)
{
    stw_site s = stw_ledger_site_here(STW_KIND_HEAP, 0);
    __asm__ volatile("" ::: "memory");
    return s;
}

static void test_sites_interned_and_symbolized(void **state)
{
    (void)state;
    /* volatile: the compiler must not unroll or peel the loop into two
     * call instructions, which would be two sites. */
    stw_site a[2];
    for (volatile int i = 0; i < 2; i++)
        a[i] = site_from_a();
    stw_site a1 = a[0], a2 = a[1];
    stw_site b = site_from_b();
    assert_true(a1 != 0);
    assert_int_equal(a1, a2);
    assert_true(b != a1);
    /* The same stack under another kind is another site. */
    void *pcs[STW_STACK_MAX];
    int kind = -1;
    int n = stw_site_stack(a1, &kind, pcs, STW_STACK_MAX);
    assert_true(n >= 2);
    assert_int_equal(kind, STW_KIND_HEAP);
    stw_symbol sym;
    assert_int_equal(stw_symbolize(pcs[0], &sym), 0);
    /* A static function of the test binary is named from its symbol table. */
    assert_string_equal(sym.func, "site_from_a");
    assert_non_null(strstr(sym.file, "test_ledger.c"));
    assert_true(sym.line > 0);
    assert_string_equal(sym.module, "test_ledger");
    assert_int_equal(stw_symbolize(pcs[1], &sym), 0);
    assert_string_equal(sym.func, "test_sites_interned_and_symbolized");
    assert_int_equal(stw_site_stack(0, NULL, pcs, 4), -ENOENT);
}

static int count_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

/* Symbolizing opens the process's ELF files; releasing closes them all,
 * and symbolizing again still works. */
static void test_symbolize_release(void **state)
{
    (void)state;
    stw_symbolize_release();
    int before = count_fds();
    stw_symbol sym;
    stw_site site = site_from_a();
    void *pcs[STW_STACK_MAX];
    int n = stw_site_stack(site, NULL, pcs, STW_STACK_MAX);
    assert_true(n > 0);
    assert_int_equal(stw_symbolize(pcs[0], &sym), 0);
    assert_true(count_fds() > before);
    stw_symbolize_release();
    assert_int_equal(count_fds(), before);
    assert_int_equal(stw_symbolize(pcs[0], &sym), 0);
    assert_string_equal(sym.func, "site_from_a");
    stw_symbolize_release();
}

static void test_checkpoint_and_snapshot(void **state)
{
    (void)state;
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(10), 1, NULL), 0);
    uint64_t cp = stw_ledger_checkpoint();
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(11), 10, "new1"), 0);
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(12), 20, "new2"), 0);
    assert_int_equal(stw_ledger_record(STW_KIND_MMAP, ID(13), 4096, "other kind"), 0);

    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(STW_KIND_TIMER), .since_seq = cp, .records = true};
    stw_snapshot *s = NULL;
    assert_int_equal(stw_snapshot_new(&o, &s), 0);
    assert_int_equal(s->nrecords, 2);
    assert_int_equal(s->records[0].id, ID(11));
    assert_int_equal(s->records[1].id, ID(12));
    /* Both were created at one site (the same line), so one site with 2 live. */
    assert_int_equal(s->nsites, 2);
    int64_t live = 0, bytes = 0;
    for (size_t i = 0; i < s->nsites; i++) {
        assert_int_equal(s->sites[i].kind, STW_KIND_TIMER);
        live += s->sites[i].live;
        bytes += s->sites[i].live_bytes;
    }
    assert_int_equal(live, 2);
    assert_int_equal(bytes, 30);
    /* Sorted by live bytes, largest first. */
    assert_true(s->sites[0].live_bytes >= s->sites[1].live_bytes);
    stw_snapshot_free(&s);
    assert_null(s);
    stw_snapshot_free(&s);
    stw_snapshot_free(NULL);

    for (uint64_t i = 10; i <= 12; i++)
        assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(i)), 0);
    assert_int_equal(stw_ledger_release(STW_KIND_MMAP, ID(13)), 0);
}

static __attribute__((noinline)) void make_timers(uint64_t first, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(first + (uint64_t)i), 8, NULL), 0);
}

static void test_diff(void **state)
{
    (void)state;
    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(STW_KIND_TIMER), .records = true};
    stw_snapshot *a = NULL, *b = NULL, *d = NULL;
    make_timers(100, 3);
    assert_int_equal(stw_snapshot_new(&o, &a), 0);
    make_timers(200, 5);
    assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(100)), 0);
    assert_int_equal(stw_snapshot_new(&o, &b), 0);
    assert_int_equal(stw_snapshot_diff(a, b, &d), 0);
    assert_int_equal(d->kinds[STW_KIND_TIMER].live, 4);
    assert_int_equal(d->kinds[STW_KIND_TIMER].created, 5);
    assert_int_equal(d->kinds[STW_KIND_TIMER].released, 1);
    assert_int_equal(d->nrecords, 5);
    /* Two call lines, two sites: one grew by 5, the other lost one. */
    assert_int_equal(d->nsites, 2);
    assert_int_equal(d->sites[0].live, 5);
    assert_int_equal(d->sites[0].live_bytes, 40);
    assert_int_equal(d->sites[1].live, -1);
    assert_int_equal(d->sites[1].live_bytes, -8);
    stw_snapshot_free(&a);
    stw_snapshot_free(&b);
    stw_snapshot_free(&d);
    for (int i = 1; i < 3; i++)
        stw_ledger_release(STW_KIND_TIMER, ID(100 + i));
    for (int i = 0; i < 5; i++)
        stw_ledger_release(STW_KIND_TIMER, ID(200 + i));
}

static long rss_pages(void)
{
    long size = 0, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = -1;
        fclose(f);
    }
    return resident;
}

/* AddressSanitizer zeroes the shadow of every mapping made (an eighth of
 * its size) and keeps those pages after the munmap: the tables' doublings
 * (about 40 MB mapped in all) leave about 5 MB of the sanitizer's own. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_SHADOW_SLACK (8 * 1024 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_SHADOW_SLACK (8 * 1024 * 1024)
#endif
#endif
#ifndef ASAN_SHADOW_SLACK
#define ASAN_SHADOW_SLACK 0
#endif

static void test_growth_many_records(void **state)
{
    (void)state;
    enum { N = 200000 };
    long rss_before = rss_pages();
    stw_kind_stat before, mid;
    stw_ledger_kind_stat(STW_KIND_MMAP, &before);
    for (int i = 0; i < N; i++)
        assert_int_equal(stw_ledger_record_site(STW_KIND_MMAP, ID(1000000 + i), 1, 0, NULL), 0);
    stw_ledger_kind_stat(STW_KIND_MMAP, &mid);
    assert_int_equal(mid.live - before.live, N);
    /* Every record is still findable after all the table doublings. */
    for (int i = 0; i < N; i += 997)
        assert_int_equal(stw_ledger_lookup(STW_KIND_MMAP, ID(1000000 + i), NULL), 0);
    /* Release in a different order than insertion to exercise deletion. */
    for (int i = N - 1; i >= 0; i -= 2)
        assert_int_equal(stw_ledger_release(STW_KIND_MMAP, ID(1000000 + i)), 0);
    for (int i = 0; i < N; i += 2)
        assert_int_equal(stw_ledger_release(STW_KIND_MMAP, ID(1000000 + i)), 0);
    stw_ledger_kind_stat(STW_KIND_MMAP, &mid);
    assert_int_equal(mid.live, before.live);
    /* The tables shrank back: 200k records took ~20 MB of them; far less
     * than that may stay resident once they are gone. */
    long rss_after = rss_pages();
    assert_true(rss_before > 0 && rss_after > 0);
    assert_true((rss_after - rss_before) * 4096 < 4 * 1024 * 1024 + ASAN_SHADOW_SLACK);
}

enum { HAMMER_THREADS = 4, HAMMER_OPS = 50000 };

static void *hammer(void *arg)
{
    uint64_t base = ID(10000000) + (uint64_t)(uintptr_t)arg * 10000000;
    for (int i = 0; i < HAMMER_OPS; i++) {
        /* Keep a window of 64 live records per thread. */
        if (stw_ledger_record(STW_KIND_TIMER, base + (uint64_t)i, 16, NULL) != 0)
            return (void *)1;
        if (i >= 64 && stw_ledger_release(STW_KIND_TIMER, base + (uint64_t)i - 64) != 0)
            return (void *)2;
    }
    for (int i = HAMMER_OPS - 64; i < HAMMER_OPS; i++)
        if (stw_ledger_release(STW_KIND_TIMER, base + (uint64_t)i) != 0)
            return (void *)3;
    return NULL;
}

static void test_concurrent_hammer(void **state)
{
    (void)state;
    stw_kind_stat before, after;
    stw_ledger_kind_stat(STW_KIND_TIMER, &before);
    pthread_t t[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)i), 0);
    for (int i = 0; i < HAMMER_THREADS; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_null(rv);
    }
    stw_ledger_kind_stat(STW_KIND_TIMER, &after);
    assert_int_equal(after.live, before.live);
    assert_int_equal(after.live_bytes, before.live_bytes);
    assert_int_equal(after.created - before.created, HAMMER_THREADS * HAMMER_OPS);
}

/* Many threads interning the same stacks must agree on one id per stack. */
static __attribute__((noinline)) stw_site shared_site(void)
{
    stw_site s = stw_ledger_site_here(STW_KIND_FRAME, 0);
    __asm__ volatile("" ::: "memory");
    return s;
}

static void *intern_race(void *arg)
{
    stw_site *out = arg;
    for (volatile int i = 0; i < 1000; i++) {
        stw_site s = shared_site();
        if (i == 0)
            *out = s;
        else if (s != *out)
            *out = 0;
    }
    return NULL;
}

static void test_concurrent_interning(void **state)
{
    (void)state;
    pthread_t t[4];
    stw_site got[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, intern_race, &got[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    /* The stacks differ below intern_race (thread start), but the part
     * captured is identical, so all threads must see one site. */
    for (int i = 0; i < 4; i++) {
        assert_true(got[i] != 0);
        assert_int_equal(got[i], got[0]);
    }
}

static int append(void *ud, const char *data, size_t len)
{
    char *buf = ud;
    size_t have = strlen(buf);
    if (have + len >= 65536)
        return -ENOSPC;
    memcpy(buf + have, data, len);
    buf[have + len] = '\0';
    return 0;
}

static __attribute__((noinline)) void leaky_helper(void)
{
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(500), 64, "leaky \"timer\""), 0);
}

static void test_reports(void **state)
{
    (void)state;
    static char buf[65536];
    stw_snapshot *base = NULL, *s = NULL;
    assert_int_equal(stw_snapshot_new(NULL, &base), 0);
    leaky_helper();
    stw_snapshot_opts o = {.since_seq = base->seq, .records = true};
    assert_int_equal(stw_snapshot_new(&o, &s), 0);
    stw_report_opts ro = {.baseline = base, .symbolize = true, .records = true, .title = "t"};

    buf[0] = '\0';
    assert_int_equal(stw_report_text(s, &ro, append, buf), 0);
    assert_non_null(strstr(buf, "== steward ledger: t =="));
    assert_non_null(strstr(buf, "leaky_helper"));
    assert_non_null(strstr(buf, "test_ledger.c:"));
    assert_non_null(strstr(buf, "1 timer, 64 bytes"));
    assert_non_null(strstr(buf, "\"leaky \"timer\"\""));

    buf[0] = '\0';
    assert_int_equal(stw_report_json(s, &ro, append, buf), 0);
    assert_non_null(strstr(buf, "{\"schema\":\"steward.ledger/1\""));
    assert_non_null(strstr(buf, "\"func\":\"leaky_helper\""));
    assert_non_null(strstr(buf, "\"label\":\"leaky \\\"timer\\\"\""));
    assert_non_null(strstr(buf, "\"kind\":\"timer\",\"live\":"));
    assert_non_null(strstr(buf, "\"initial_live\":"));

    buf[0] = '\0';
    assert_int_equal(stw_report_prometheus(s, append, buf), 0);
    assert_non_null(strstr(buf, "# TYPE steward_live_resources gauge\n"));
    char want[128];
    snprintf(want, sizeof(want), "steward_live_resources{kind=\"timer\"} %lld\n",
             (long long)s->kinds[STW_KIND_TIMER].live);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "# TYPE steward_created_total counter\n"));

    stw_snapshot_free(&s);
    stw_snapshot_free(&base);
    assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(500)), 0);
}

static void test_verify_none_finds_leak(void **state)
{
    (void)state;
    stw_baseline b = stw_verify_begin();
    assert_int_equal(stw_verify_none(b, 0, -1), 0);
    void *p = stw_malloc(33);
    int devnull = -1;
    assert_int_equal(stw_verify_none(b, 20, devnull), 1);
    stw_free(p);
    assert_int_equal(stw_verify_none(b, 0, -1), 0);
}

static void *release_later(void *arg)
{
    usleep(50000);
    stw_ledger_release(STW_KIND_THREAD, (uint64_t)(uintptr_t)arg);
    return NULL;
}

static void test_verify_none_retries(void **state)
{
    (void)state;
    stw_baseline b = stw_verify_begin();
    assert_int_equal(stw_ledger_record(STW_KIND_THREAD, ID(600), 0, "exiting"), 0);
    pthread_t t;
    pthread_create(&t, NULL, release_later, (void *)(uintptr_t)ID(600));
    /* The record disappears 50 ms later: a retry window covers it. */
    assert_int_equal(stw_verify_none(b, 2000, -1), 0);
    pthread_join(t, NULL);
}

static void test_reentry_guard(void **state)
{
    (void)state;
    assert_true(stw_ledger_guard_enter());
    assert_false(stw_ledger_guard_enter());
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(700), 0, NULL), -EDEADLK);
    assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(700)), -EDEADLK);
    stw_ledger_guard_exit();
    assert_int_equal(stw_ledger_record(STW_KIND_TIMER, ID(700), 0, NULL), 0);
    assert_int_equal(stw_ledger_release(STW_KIND_TIMER, ID(700)), 0);
}

static atomic_int stop_hammer;

static void *hammer_until_stopped(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; !atomic_load(&stop_hammer); i++) {
        stw_ledger_record(STW_KIND_TIMER, ID(800000) + (i & 1023), 0, NULL);
        stw_ledger_release(STW_KIND_TIMER, ID(800000) + (i & 1023));
    }
    return NULL;
}

static void test_fork_while_busy(void **state)
{
    (void)state;
    pthread_t t;
    atomic_store(&stop_hammer, 0);
    pthread_create(&t, NULL, hammer_until_stopped, NULL);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* Without the atfork handlers a shard could be locked forever here. */
            alarm(5);
            for (int k = 0; k < 1000; k++) {
                stw_ledger_record(STW_KIND_TIMER, ID(900000 + k), 0, NULL);
                stw_ledger_release(STW_KIND_TIMER, ID(900000 + k));
            }
            _exit(0);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    atomic_store(&stop_hammer, 1);
    pthread_join(t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_record_release),
        STW_TEST(test_bad_kind),
        STW_TEST(test_user_kinds),
        STW_TEST(test_sites_interned_and_symbolized),
        STW_TEST(test_symbolize_release),
        STW_TEST(test_checkpoint_and_snapshot),
        STW_TEST(test_diff),
        STW_TEST(test_growth_many_records),
        STW_TEST(test_concurrent_hammer),
        STW_TEST(test_concurrent_interning),
        STW_TEST(test_reports),
        STW_TEST(test_verify_none_finds_leak),
        STW_TEST(test_verify_none_retries),
        STW_TEST(test_reentry_guard),
        STW_TEST(test_fork_while_busy),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
