#include "stw_test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/buf.h"
#include "steward/frame.h"
#include "steward/ledger.h"
#include "steward/pool.h"

static bool live(int kind, const void *p)
{
    stw_record rec;
    return stw_ledger_lookup(kind, (uintptr_t)p, &rec) == 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static stw_pool_stat stats(stw_pool *p)
{
    stw_pool_stat s;
    stw_pool_stats(p, &s);
    return s;
}

static void test_pool_invalid(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(16, 0, &p), -EINVAL);
    assert_null(p);
    stw_pool_close(NULL);
    stw_pool_close(&p);
    stw_pool_unref(&p);
}

static void test_pool_recycles(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(1024, 4, &p), 0);
    assert_true(live(STW_KIND_POOL, p));
    stw_pool_stat s = stats(p);
    assert_int_equal(s.buf_size, 1024);
    assert_int_equal(s.max, 4);
    assert_int_equal(s.total, 0);

    stw_buf *b = NULL;
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    assert_int_equal(stw_buf_size(b), 1024);
    assert_true(stw_buf_is_writable(b));
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(STW_KIND_BUF, (uintptr_t)b, &rec), 0);
    assert_int_equal(rec.size, 1024);
    memset(stw_buf_data(b), 0x5a, 1024);
    stw_buf *first = b;
    uint8_t *first_data = stw_buf_data(b);
    s = stats(p);
    assert_int_equal(s.total, 1);
    assert_int_equal(s.outstanding, 1);
    assert_int_equal(s.idle, 0);

    stw_buf_unref(&b);
    s = stats(p);
    assert_int_equal(s.total, 1);
    assert_int_equal(s.idle, 1);
    assert_int_equal(s.outstanding, 0);
    /* Idle, the buffer is still held (by the pool) and still booked. */
    assert_true(live(STW_KIND_BUF, first));

    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    assert_ptr_equal(b, first);
    assert_ptr_equal(stw_buf_data(b), first_data);
    /* Recycled bytes are not cleared. */
    assert_int_equal(stw_buf_data(b)[1023], 0x5a);
    assert_int_equal(stats(p).total, 1);

    /* A view keeps a pool buffer out of the pool until the view goes. */
    stw_buf *v = NULL;
    assert_int_equal(stw_buf_view(b, 0, 10, &v), 0);
    stw_buf_unref(&b);
    assert_int_equal(stats(p).outstanding, 1);
    stw_buf_unref(&v);
    assert_int_equal(stats(p).idle, 1);

    /* So does a frame. */
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    stw_frame *f = NULL;
    assert_int_equal(stw_frame_new(b, NULL, &f), 0);
    stw_buf_unref(&b);
    assert_int_equal(stats(p).outstanding, 1);
    stw_frame_unref(&f);
    assert_int_equal(stats(p).idle, 1);

    stw_pool *id = p;
    stw_pool_close(&p);
    assert_null(p);
    assert_false(live(STW_KIND_POOL, id));
    assert_false(live(STW_KIND_BUF, first));
}

static void test_pool_bounded_times_out(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(64, 2, &p), 0);
    stw_buf *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &a), 0);
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    assert_ptr_not_equal(a, b);

    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &c), -ETIMEDOUT);
    assert_true(stw_now_ns() - t0 < 50 * 1000000LL);

    t0 = stw_now_ns();
    assert_int_equal(stw_pool_get(p, stw_deadline_in_ms(80), &c), -ETIMEDOUT);
    int64_t waited = stw_now_ns() - t0;
    assert_true(waited >= 80 * 1000000LL);
    assert_true(waited < 2000 * 1000000LL);
    assert_null(c);
    assert_int_equal(stats(p).total, 2);

    /* A deadline already in the past does not wait either. */
    assert_int_equal(stw_pool_get(p, stw_now_ns() - 1000, &c), -ETIMEDOUT);

    stw_buf_unref(&a);
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &c), 0);
    stw_buf_unref(&b);
    stw_buf_unref(&c);
    assert_int_equal(stw_pool_trim(p), 2 * 64);
    assert_int_equal(stats(p).total, 0);
    assert_int_equal(stw_pool_trim(p), 0);
    stw_pool_close(&p);
}

struct getter {
    stw_pool *p;
    stw_deadline d;
    int rc;
    stw_buf *b;
    atomic_int started;
};

static void *getter_thread(void *arg)
{
    struct getter *g = arg;
    atomic_store(&g->started, 1);
    g->rc = stw_pool_get(g->p, g->d, &g->b);
    return NULL;
}

static void wait_started(struct getter *g)
{
    while (!atomic_load(&g->started))
        sleep_ms(1);
    /* Give it time to block inside stw_pool_get. */
    sleep_ms(30);
}

static void test_pool_waiter_gets_returned_buffer(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(64, 1, &p), 0);
    stw_buf *b = NULL;
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    stw_buf *first = b;

    struct getter g = {.p = stw_pool_ref(p), .d = stw_deadline_in_ms(5000)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, getter_thread, &g), 0);
    wait_started(&g);
    stw_buf_unref(&b);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(g.rc, 0);
    assert_ptr_equal(g.b, first);
    stw_buf_unref(&g.b);
    stw_pool_unref(&g.p);
    stw_pool_close(&p);
}

static void test_pool_close_with_outstanding(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(256, 4, &p), 0);
    stw_buf *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &a), 0);
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &c), 0);
    stw_buf *cid = c;
    stw_buf_unref(&c);
    stw_pool *id = p;
    stw_pool_close(&p);
    assert_null(p);
    /* Idle buffers went with the close; the pool waits for the others. */
    assert_false(live(STW_KIND_BUF, cid));
    assert_true(live(STW_KIND_POOL, id));
    stw_buf *bid = b;
    stw_buf_unref(&b);
    /* Returned after close: freed, not kept. */
    assert_false(live(STW_KIND_BUF, bid));
    assert_true(live(STW_KIND_POOL, id));
    /* Buffers out of a closed pool are as good as any. */
    memset(stw_buf_data(a), 1, 256);
    stw_buf_unref(&a);
    assert_false(live(STW_KIND_POOL, id));
}

static void test_pool_last_handle_closes(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(16, 2, &p), 0);
    stw_pool *p2 = stw_pool_ref(p);
    stw_buf *b = NULL;
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);
    stw_pool *id = p;
    stw_pool_unref(&p);
    /* Another handle is left: still open. */
    stw_buf *c = NULL;
    assert_int_equal(stw_pool_get(p2, STW_DEADLINE_NOW, &c), 0);
    stw_buf_unref(&c);
    assert_int_equal(stats(p2).idle, 1);
    stw_pool_unref(&p2);
    assert_true(live(STW_KIND_POOL, id));
    stw_buf_unref(&b);
    assert_false(live(STW_KIND_POOL, id));
}

static void test_pool_close_wakes_waiters(void **state)
{
    (void)state;
    enum { NWAITERS = 3 };
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(64, 1, &p), 0);
    stw_buf *b = NULL;
    assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &b), 0);

    /* The waiters use the very handle that is closed under them: the pool
     * must stay valid until the last of them has left stw_pool_get. */
    struct getter g[NWAITERS];
    pthread_t th[NWAITERS];
    for (int i = 0; i < NWAITERS; i++) {
        g[i] = (struct getter){.p = p, .d = STW_DEADLINE_NEVER, .rc = 1};
        assert_int_equal(pthread_create(&th[i], NULL, getter_thread, &g[i]), 0);
    }
    for (int i = 0; i < NWAITERS; i++)
        wait_started(&g[i]);
    stw_pool *id = p;
    int64_t t0 = stw_now_ns();
    stw_pool_close(&p);
    /* The last buffer returns at once, racing with the waiters' exit. */
    stw_buf_unref(&b);
    for (int i = 0; i < NWAITERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(g[i].rc, -ECANCELED);
        assert_null(g[i].b);
    }
    assert_true(stw_now_ns() - t0 < 2000 * 1000000LL);
    assert_false(live(STW_KIND_POOL, id));
}

static void test_pool_get_after_close_on_other_handle(void **state)
{
    (void)state;
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(8, 1, &p), 0);
    stw_pool *mine = stw_pool_ref(p);
    stw_pool_close(&p);
    stw_buf *b = NULL;
    assert_int_equal(stw_pool_get(mine, STW_DEADLINE_NEVER, &b), -ECANCELED);
    assert_null(b);
    stw_pool_unref(&mine);
}

struct worker {
    stw_pool *p;
    int rounds;
    int got;
    int timeouts;
    int errors;
};

static void *pool_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        stw_buf *b = NULL;
        int rc = stw_pool_get(w->p, stw_deadline_in_ms(20000), &b);
        if (rc == -ETIMEDOUT) {
            w->timeouts++;
            continue;
        }
        if (rc != 0 || !stw_buf_is_writable(b)) {
            w->errors++;
            stw_buf_unref(&b);
            continue;
        }
        w->got++;
        /* Nobody else may hold this buffer: a stamp must survive. */
        memset(stw_buf_data(b), (int)(uintptr_t)w & 0xff, stw_buf_size(b));
        stw_buf *extra = stw_buf_ref(b);
        if (stw_buf_data(b)[0] != ((uintptr_t)w & 0xff) ||
            stw_buf_data(b)[stw_buf_size(b) - 1] != ((uintptr_t)w & 0xff))
            w->errors++;
        stw_buf_unref(&b);
        stw_buf_unref(&extra);
    }
    stw_pool_unref(&w->p);
    return NULL;
}

static void test_pool_concurrent(void **state)
{
    (void)state;
    enum { NTHREADS = 8, MAX = 3, ROUNDS = 3000 };
    stw_pool *p = NULL;
    assert_int_equal(stw_pool_new(128, MAX, &p), 0);
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.p = stw_pool_ref(p), .rounds = ROUNDS};
        assert_int_equal(pthread_create(&th[i], NULL, pool_worker, &w[i]), 0);
    }
    unsigned max_seen = 0;
    for (int i = 0; i < 200; i++) {
        stw_pool_stat s = stats(p);
        if (s.total > max_seen)
            max_seen = s.total;
        assert_true(s.idle + s.outstanding == s.total);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].errors, 0);
        assert_int_equal(w[i].timeouts, 0);
        assert_int_equal(w[i].got, ROUNDS);
    }
    stw_pool_stat s = stats(p);
    assert_true(max_seen <= MAX);
    assert_true(s.total <= MAX);
    assert_int_equal(s.outstanding, 0);
    stw_pool_close(&p);
}

static void test_pool_unref_below_zero_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* An idle pool buffer keeps its memory, so the bogus second unref
         * reads a real counter, at zero. */
        stw_pool *p = NULL;
        stw_buf *b = NULL;
        if (stw_pool_new(8, 1, &p) != 0 || stw_pool_get(p, STW_DEADLINE_NOW, &b) != 0)
            _exit(2);
        stw_buf *alias = b;
        stw_buf_unref(&b);
        stw_buf_unref(&alias);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_pool_ref_of_idle_buffer_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        stw_pool *p = NULL;
        stw_buf *b = NULL;
        if (stw_pool_new(8, 1, &p) != 0 || stw_pool_get(p, STW_DEADLINE_NOW, &b) != 0)
            _exit(2);
        stw_buf *stale = b;
        stw_buf_unref(&b);
        stw_buf_ref(stale);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static int pool_scenario(void *ud)
{
    (void)ud;
    stw_pool *p = NULL;
    stw_buf *a = NULL, *b = NULL, *v = NULL;
    stw_frame *f = NULL;
    int rc = stw_pool_new(512, 2, &p);
    if (rc < 0)
        return rc;
    rc = stw_pool_get(p, STW_DEADLINE_NOW, &a);
    if (rc < 0)
        goto close_pool;
    rc = stw_pool_get(p, STW_DEADLINE_NOW, &b);
    if (rc < 0)
        goto unref_a;
    rc = stw_buf_view(b, 0, 100, &v);
    if (rc < 0)
        goto unref_b;
    rc = stw_frame_new(v, NULL, &f);
    if (rc < 0)
        goto unref_v;
    /* The buffer comes back from the pool: no allocation, nothing idle. */
    stw_buf_unref(&a);
    rc = stw_pool_get(p, STW_DEADLINE_NOW, &a);
    if (rc < 0)
        goto unref_f;
    rc = stw_pool_trim(p) == 0 ? 0 : -EIO;
unref_f:
    stw_frame_unref(&f);
unref_v:
    stw_buf_unref(&v);
unref_b:
    stw_buf_unref(&b);
unref_a:
    stw_buf_unref(&a);
close_pool:
    stw_pool_close(&p);
    return rc;
}

static int pool_retry_scenario(void *ud)
{
    (void)ud;
    stw_pool *p = NULL;
    stw_buf *a = NULL;
    int rc = stw_pool_new(32, 1, &p);
    if (rc < 0)
        return rc;
    /* A failed allocation gives its slot back: the retry must not report
     * the pool as exhausted. */
    rc = stw_pool_get(p, STW_DEADLINE_NOW, &a);
    if (rc == -ENOMEM)
        assert_int_equal(stw_pool_get(p, STW_DEADLINE_NOW, &a), 0);
    stw_buf_unref(&a);
    stw_pool_close(&p);
    return rc;
}

static void test_pool_fault_sweep(void **state)
{
    (void)state;
    assert_int_equal(stw_test_fault_sweep(pool_scenario, NULL), 5);
    assert_int_equal(stw_test_fault_sweep(pool_retry_scenario, NULL), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_pool_invalid),
        STW_TEST(test_pool_recycles),
        STW_TEST(test_pool_bounded_times_out),
        STW_TEST(test_pool_waiter_gets_returned_buffer),
        STW_TEST(test_pool_close_with_outstanding),
        STW_TEST(test_pool_last_handle_closes),
        STW_TEST(test_pool_close_wakes_waiters),
        STW_TEST(test_pool_get_after_close_on_other_handle),
        STW_TEST(test_pool_concurrent),
        STW_TEST(test_pool_unref_below_zero_aborts),
        STW_TEST(test_pool_ref_of_idle_buffer_aborts),
        STW_TEST(test_pool_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
