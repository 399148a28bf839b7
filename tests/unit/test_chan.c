#include "stw_test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "steward/alloc.h"
#include "steward/buf.h"
#include "steward/chan.h"
#include "steward/frame.h"
#include "steward/ledger.h"
#include "steward/pool.h"

/* Items for most tests: heap objects booked in the ledger, so an item the
 * channel forgets to release shows up as a leak; the unref counts calls and
 * remembers the last value it released. */
struct item {
    int v;
};

static atomic_int unrefs;
static atomic_int last_unref_v;

static void item_unref(void *p)
{
    struct item *it = p;
    atomic_store(&last_unref_v, it->v);
    atomic_fetch_add(&unrefs, 1);
    stw_free(it);
}

static const stw_chan_ops item_ops = {.unref = item_unref};

static struct item *item_new(int v)
{
    struct item *it = stw_malloc(sizeof(*it));
    assert_non_null(it);
    it->v = v;
    return it;
}

/* Receive one item, check its value, free it. */
static void recv_expect(stw_chan *c, int v)
{
    void *p = NULL;
    assert_int_equal(stw_chan_recv(c, &p, STW_DEADLINE_NOW), 0);
    assert_non_null(p);
    assert_int_equal(((struct item *)p)->v, v);
    stw_free(p);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    assert_true(n >= 0);
    return n == 1 && (pfd.revents & POLLIN);
}

static stw_chan_stat stats(stw_chan *c)
{
    stw_chan_stat s;
    stw_chan_stats(c, &s);
    return s;
}

static void reset_counts(void)
{
    atomic_store(&unrefs, 0);
    atomic_store(&last_unref_v, -1);
}

static void test_chan_invalid(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    const stw_chan_ops no_unref = {.unref = NULL};
    assert_int_equal(stw_chan_new(0, STW_CHAN_BLOCK, &item_ops, &c), -EINVAL);
    assert_int_equal(stw_chan_new(2, STW_CHAN_LATEST, &item_ops, &c), -EINVAL);
    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, NULL, &c), -EINVAL);
    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, &no_unref, &c), -EINVAL);
    assert_int_equal(stw_chan_new(2, (stw_chan_policy)7, &item_ops, &c), -EINVAL);
    assert_null(c);
    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, &item_ops, &c), 0);
    assert_int_equal(stw_chan_send(c, NULL, STW_DEADLINE_NOW), -EINVAL);
    stw_chan_free(&c);
    assert_null(c);
    stw_chan_free(&c);
    stw_chan_free(NULL);
}

static void test_chan_fifo(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(4, STW_CHAN_BLOCK, &item_ops, &c), 0);
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(STW_KIND_CHAN, (uintptr_t)c, &rec), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(stw_chan_send(c, item_new(i), STW_DEADLINE_NOW), 0);
    struct item *extra = item_new(99);
    assert_int_equal(stw_chan_send(c, extra, STW_DEADLINE_NOW), -ETIMEDOUT);
    stw_chan_stat s = stats(c);
    assert_int_equal(s.len, 4);
    assert_int_equal(s.capacity, 4);
    assert_int_equal(s.sent, 4);
    for (int i = 0; i < 4; i++)
        recv_expect(c, i);
    void *p = NULL;
    assert_int_equal(stw_chan_recv(c, &p, STW_DEADLINE_NOW), -ETIMEDOUT);
    assert_null(p);

    /* Around the ring several times, with the queue at varying depth. */
    int next_in = 100, next_out = 100;
    for (int round = 0; round < 20; round++) {
        for (int k = 0; k < 1 + round % 4; k++)
            assert_int_equal(stw_chan_send(c, item_new(next_in++), STW_DEADLINE_NOW), 0);
        while (next_out < next_in)
            recv_expect(c, next_out++);
    }
    s = stats(c);
    assert_int_equal(s.sent, s.received);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.len, 0);
    assert_false(s.closed);

    /* The failed send left the item with us. */
    assert_int_equal(atomic_load(&unrefs), 0);
    stw_free(extra);
    stw_chan_free(&c);
}

static void test_chan_block_timeouts(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(1, STW_CHAN_BLOCK, &item_ops, &c), 0);
    void *p = NULL;
    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_chan_recv(c, &p, stw_deadline_in_ms(60)), -ETIMEDOUT);
    int64_t waited = stw_now_ns() - t0;
    assert_true(waited >= 60 * 1000000LL);
    assert_true(waited < 2000 * 1000000LL);

    assert_int_equal(stw_chan_send(c, item_new(1), STW_DEADLINE_NOW), 0);
    struct item *it = item_new(2);
    t0 = stw_now_ns();
    assert_int_equal(stw_chan_send(c, it, stw_deadline_in_ms(60)), -ETIMEDOUT);
    waited = stw_now_ns() - t0;
    assert_true(waited >= 60 * 1000000LL);
    assert_true(waited < 2000 * 1000000LL);
    t0 = stw_now_ns();
    assert_int_equal(stw_chan_send(c, it, STW_DEADLINE_NOW), -ETIMEDOUT);
    assert_true(stw_now_ns() - t0 < 50 * 1000000LL);
    stw_free(it);
    /* Freeing an open channel releases what it holds. */
    stw_chan_free(&c);
    assert_int_equal(atomic_load(&unrefs), 1);
    assert_int_equal(atomic_load(&last_unref_v), 1);
}

struct actor {
    stw_chan *c;
    struct item *it;
    stw_deadline d;
    int rc;
    void *got;
    atomic_int started;
};

static void *sender(void *arg)
{
    struct actor *a = arg;
    atomic_store(&a->started, 1);
    a->rc = stw_chan_send(a->c, a->it, a->d);
    return NULL;
}

static void *receiver(void *arg)
{
    struct actor *a = arg;
    atomic_store(&a->started, 1);
    a->rc = stw_chan_recv(a->c, &a->got, a->d);
    return NULL;
}

static void wait_blocked(struct actor *a)
{
    while (!atomic_load(&a->started))
        sleep_ms(1);
    sleep_ms(30);
}

static void test_chan_block_waits_for_room(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(1, STW_CHAN_BLOCK, &item_ops, &c), 0);
    assert_int_equal(stw_chan_send(c, item_new(1), STW_DEADLINE_NOW), 0);
    struct actor a = {.c = c, .it = item_new(2), .d = stw_deadline_in_ms(5000), .rc = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sender, &a), 0);
    wait_blocked(&a);
    /* Still blocked: the queue is full. */
    assert_int_equal(stats(c).sent, 1);
    recv_expect(c, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.rc, 0);
    recv_expect(c, 2);

    /* And a blocked receiver gets the next item. */
    struct actor r = {.c = c, .d = stw_deadline_in_ms(5000), .rc = 1};
    assert_int_equal(pthread_create(&th, NULL, receiver, &r), 0);
    wait_blocked(&r);
    assert_int_equal(stw_chan_send(c, item_new(3), STW_DEADLINE_NOW), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(((struct item *)r.got)->v, 3);
    stw_free(r.got);
    stw_chan_free(&c);
    assert_int_equal(atomic_load(&unrefs), 0);
}

static void test_chan_drop_oldest(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(2, STW_CHAN_DROP_OLDEST, &item_ops, &c), 0);
    assert_int_equal(stw_chan_send(c, item_new(1), STW_DEADLINE_NOW), 0);
    assert_int_equal(stw_chan_send(c, item_new(2), STW_DEADLINE_NOW), 0);
    assert_int_equal(stw_chan_send(c, item_new(3), STW_DEADLINE_NOW), 1);
    assert_int_equal(atomic_load(&unrefs), 1);
    assert_int_equal(atomic_load(&last_unref_v), 1);
    assert_int_equal(stw_chan_send(c, item_new(4), STW_DEADLINE_NEVER), 1);
    assert_int_equal(atomic_load(&unrefs), 2);
    assert_int_equal(atomic_load(&last_unref_v), 2);
    stw_chan_stat s = stats(c);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.sent, 4);
    assert_int_equal(s.len, 2);
    recv_expect(c, 3);
    recv_expect(c, 4);
    stw_chan_free(&c);
    assert_int_equal(atomic_load(&unrefs), 2);
}

static void test_chan_latest(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(1, STW_CHAN_LATEST, &item_ops, &c), 0);
    assert_int_equal(stw_chan_send(c, item_new(1), STW_DEADLINE_NOW), 0);
    assert_int_equal(stw_chan_send(c, item_new(2), STW_DEADLINE_NOW), 1);
    assert_int_equal(stw_chan_send(c, item_new(3), STW_DEADLINE_NOW), 1);
    assert_int_equal(stats(c).len, 1);
    assert_int_equal(atomic_load(&unrefs), 2);
    recv_expect(c, 3);
    void *p = NULL;
    assert_int_equal(stw_chan_recv(c, &p, STW_DEADLINE_NOW), -ETIMEDOUT);
    assert_int_equal(stw_chan_send(c, item_new(4), STW_DEADLINE_NOW), 0);
    recv_expect(c, 4);
    assert_int_equal(stats(c).dropped, 2);
    stw_chan_free(&c);
}

static void test_chan_close_wakes_and_releases(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *full = NULL, *empty = NULL;
    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, &item_ops, &full), 0);
    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, &item_ops, &empty), 0);
    assert_int_equal(stw_chan_send(full, item_new(1), STW_DEADLINE_NOW), 0);
    assert_int_equal(stw_chan_send(full, item_new(2), STW_DEADLINE_NOW), 0);

    struct actor s = {.c = full, .it = item_new(3), .d = STW_DEADLINE_NEVER, .rc = 1};
    struct actor r = {.c = empty, .d = STW_DEADLINE_NEVER, .rc = 1};
    pthread_t ts, tr;
    assert_int_equal(pthread_create(&ts, NULL, sender, &s), 0);
    assert_int_equal(pthread_create(&tr, NULL, receiver, &r), 0);
    wait_blocked(&s);
    wait_blocked(&r);

    int64_t t0 = stw_now_ns();
    stw_chan_close(full);
    stw_chan_close(empty);
    assert_int_equal(pthread_join(ts, NULL), 0);
    assert_int_equal(pthread_join(tr, NULL), 0);
    assert_true(stw_now_ns() - t0 < 2000 * 1000000LL);
    assert_int_equal(s.rc, -EPIPE);
    assert_int_equal(r.rc, -EPIPE);
    assert_null(r.got);
    /* The two held items were released by close; the sender kept its own. */
    assert_int_equal(atomic_load(&unrefs), 2);
    assert_int_equal(stats(full).len, 0);
    assert_true(stats(full).closed);

    /* After close everything fails at once, and closing again is a no-op. */
    assert_int_equal(stw_chan_send(full, s.it, STW_DEADLINE_NEVER), -EPIPE);
    void *p = NULL;
    assert_int_equal(stw_chan_recv(full, &p, STW_DEADLINE_NEVER), -EPIPE);
    stw_chan_close(full);
    assert_int_equal(atomic_load(&unrefs), 2);
    stw_free(s.it);
    stw_chan_free(&full);
    stw_chan_free(&empty);
    assert_int_equal(atomic_load(&unrefs), 2);
}

static void test_chan_fd_poll(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(4, STW_CHAN_DROP_OLDEST, &item_ops, &c), 0);
    int fd = stw_chan_fd(c);
    assert_true(fd >= 0);
    assert_int_equal(stw_chan_fd(c), fd);
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(STW_KIND_FD, (uint64_t)fd, &rec), 0);
    assert_false(readable(fd));

    assert_int_equal(stw_chan_send(c, item_new(1), STW_DEADLINE_NOW), 0);
    assert_true(readable(fd));
    assert_int_equal(stw_chan_send(c, item_new(2), STW_DEADLINE_NOW), 0);
    recv_expect(c, 1);
    assert_true(readable(fd));
    recv_expect(c, 2);
    assert_false(readable(fd));

    /* A full drop-oldest channel stays readable through drops. */
    for (int i = 0; i < 6; i++)
        assert_true(stw_chan_send(c, item_new(10 + i), STW_DEADLINE_NOW) >= 0);
    assert_true(readable(fd));
    for (int i = 2; i < 6; i++)
        recv_expect(c, 10 + i);
    assert_false(readable(fd));

    /* A timed-out receive leaves it unreadable. */
    void *p = NULL;
    assert_int_equal(stw_chan_recv(c, &p, STW_DEADLINE_NOW), -ETIMEDOUT);
    assert_false(readable(fd));

    /* Closed: readable for good, so a loop waiting on it learns of it. */
    stw_chan_close(c);
    assert_true(readable(fd));
    assert_true(readable(fd));
    stw_chan_free(&c);
    assert_int_equal(stw_ledger_lookup(STW_KIND_FD, (uint64_t)fd, &rec), -ENOENT);
}

static void test_chan_fd_created_late(void **state)
{
    (void)state;
    reset_counts();
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, &item_ops, &c), 0);
    assert_int_equal(stw_chan_send(c, item_new(1), STW_DEADLINE_NOW), 0);
    /* An fd asked for while items are queued starts out readable. */
    int fd = stw_chan_fd(c);
    assert_true(fd >= 0);
    assert_true(readable(fd));
    recv_expect(c, 1);
    assert_false(readable(fd));
    stw_chan_free(&c);

    assert_int_equal(stw_chan_new(2, STW_CHAN_BLOCK, &item_ops, &c), 0);
    stw_chan_close(c);
    fd = stw_chan_fd(c);
    assert_true(readable(fd));
    stw_chan_free(&c);
}

/*
 * Multi-producer, multi-consumer stress. Every item records its fate with a
 * compare-and-swap from 0, so an item received or released twice (or both)
 * is caught, and one never accounted for is left at 0.
 */
enum { FATE_NONE, FATE_RECEIVED, FATE_RELEASED, FATE_KEPT };
enum { NPROD = 4, NCONS = 4, PER_PROD = 3000 };

struct sitem {
    atomic_int fate;
};

static struct sitem sitems[NPROD * PER_PROD];
static atomic_int fate_errors;
static atomic_int released;

static void mark(struct sitem *it, int fate)
{
    int expected = FATE_NONE;
    if (!atomic_compare_exchange_strong(&it->fate, &expected, fate))
        atomic_fetch_add(&fate_errors, 1);
}

static void sitem_unref(void *p)
{
    mark(p, FATE_RELEASED);
    atomic_fetch_add(&released, 1);
}

static const stw_chan_ops sitem_ops = {.unref = sitem_unref};

struct stress {
    stw_chan *c;
    int id;
    int attempted;
    int received;
    int kept;
    int drops;
};

static void *stress_producer(void *arg)
{
    struct stress *s = arg;
    for (int i = 0; i < PER_PROD; i++) {
        struct sitem *it = &sitems[s->id * PER_PROD + i];
        s->attempted++;
        int rc = stw_chan_send(s->c, it, stw_deadline_in_ms(20000));
        if (rc == 1)
            s->drops++;
        if (rc < 0) {
            /* A failed send leaves the item with us. */
            mark(it, FATE_KEPT);
            s->kept++;
            if (rc == -EPIPE)
                break;
        }
    }
    return NULL;
}

static void *stress_consumer(void *arg)
{
    struct stress *s = arg;
    int fd = s->id == 0 ? stw_chan_fd(s->c) : -1;
    for (;;) {
        void *p = NULL;
        int rc;
        if (fd >= 0) {
            /* One consumer waits the event-loop way. */
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) <= 0)
                continue;
            rc = stw_chan_recv(s->c, &p, STW_DEADLINE_NOW);
        } else {
            rc = stw_chan_recv(s->c, &p, stw_deadline_in_ms(100));
        }
        if (rc == -EPIPE)
            break;
        if (rc == 0) {
            mark(p, FATE_RECEIVED);
            s->received++;
        }
    }
    return NULL;
}

static void run_stress(stw_chan_policy policy, unsigned cap, bool close_early)
{
    memset(sitems, 0, sizeof(sitems));
    atomic_store(&fate_errors, 0);
    atomic_store(&released, 0);
    stw_chan *c = NULL;
    assert_int_equal(stw_chan_new(cap, policy, &sitem_ops, &c), 0);
    int fd = stw_chan_fd(c);
    assert_true(fd >= 0);
    struct stress prod[NPROD], cons[NCONS];
    pthread_t tp[NPROD], tc[NCONS];
    for (int i = 0; i < NCONS; i++) {
        cons[i] = (struct stress){.c = c, .id = i};
        assert_int_equal(pthread_create(&tc[i], NULL, stress_consumer, &cons[i]), 0);
    }
    for (int i = 0; i < NPROD; i++) {
        prod[i] = (struct stress){.c = c, .id = i};
        assert_int_equal(pthread_create(&tp[i], NULL, stress_producer, &prod[i]), 0);
    }
    if (close_early) {
        /* Close while producers are still sending and consumers receiving. */
        while (stats(c).sent < NPROD * PER_PROD / 4)
            sched_yield();
        stw_chan_close(c);
    }
    for (int i = 0; i < NPROD; i++)
        assert_int_equal(pthread_join(tp[i], NULL), 0);
    if (!close_early) {
        /* Let the consumers drain, then check the fd agrees it is empty. */
        while (stats(c).len > 0)
            sleep_ms(1);
        assert_false(readable(fd));
        stw_chan_close(c);
    }
    assert_true(readable(fd));
    for (int i = 0; i < NCONS; i++)
        assert_int_equal(pthread_join(tc[i], NULL), 0);

    int attempted = 0, received = 0, kept = 0, drops = 0;
    for (int i = 0; i < NPROD; i++) {
        attempted += prod[i].attempted;
        kept += prod[i].kept;
        drops += prod[i].drops;
    }
    for (int i = 0; i < NCONS; i++)
        received += cons[i].received;
    int accounted = 0;
    for (size_t i = 0; i < NPROD * PER_PROD; i++)
        if (atomic_load(&sitems[i].fate) != FATE_NONE)
            accounted++;
    stw_chan_stat s = stats(c);
    assert_int_equal(atomic_load(&fate_errors), 0);
    assert_int_equal(accounted, attempted);
    assert_int_equal(attempted, received + atomic_load(&released) + kept);
    assert_int_equal(s.sent, (uint64_t)(attempted - kept));
    assert_int_equal(s.received, (uint64_t)received);
    assert_int_equal(s.dropped, (uint64_t)drops);
    if (!close_early) {
        assert_int_equal(attempted, NPROD * PER_PROD);
        assert_int_equal(kept, 0);
        if (policy == STW_CHAN_BLOCK)
            assert_int_equal(received, NPROD * PER_PROD);
    }
    stw_chan_free(&c);
}

static void test_chan_stress_block(void **state)
{
    (void)state;
    reset_counts();
    run_stress(STW_CHAN_BLOCK, 8, false);
}

static void test_chan_stress_drop_oldest(void **state)
{
    (void)state;
    reset_counts();
    run_stress(STW_CHAN_DROP_OLDEST, 4, false);
}

static void test_chan_stress_latest(void **state)
{
    (void)state;
    reset_counts();
    run_stress(STW_CHAN_LATEST, 1, false);
}

static void test_chan_stress_close_midway(void **state)
{
    (void)state;
    reset_counts();
    run_stress(STW_CHAN_BLOCK, 2, true);
    run_stress(STW_CHAN_DROP_OLDEST, 2, true);
}

/* Frames from a pool through a latest-only channel, the viewer pattern: a
 * slow receiver never holds more than one frame, and the pool never runs
 * dry because dropped frames give their buffers back. */
static void test_chan_frames_from_pool(void **state)
{
    (void)state;
    reset_counts();
    stw_pool *pool = NULL;
    stw_chan *c = NULL;
    assert_int_equal(stw_pool_new(1024, 3, &pool), 0);
    assert_int_equal(stw_chan_new(1, STW_CHAN_LATEST, &stw_chan_ops_frame, &c), 0);
    for (uint64_t seq = 0; seq < 50; seq++) {
        stw_buf *b = NULL;
        assert_int_equal(stw_pool_get(pool, STW_DEADLINE_NOW, &b), 0);
        stw_frame_meta m = {.seq = seq};
        stw_frame *f = NULL;
        assert_int_equal(stw_frame_new(b, &m, &f), 0);
        stw_buf_unref(&b);
        int rc = stw_chan_send(c, f, STW_DEADLINE_NOW);
        assert_int_equal(rc, seq == 0 ? 0 : 1);
    }
    stw_pool_stat ps;
    stw_pool_stats(pool, &ps);
    assert_true(ps.total <= 2);
    assert_int_equal(ps.outstanding, 1);
    void *p = NULL;
    assert_int_equal(stw_chan_recv(c, &p, STW_DEADLINE_NOW), 0);
    stw_frame *f = p;
    assert_int_equal(stw_frame_meta_get(f)->seq, 49);
    stw_frame_unref(&f);

    /* Buffers with their own ops, released by the channel at close. */
    stw_chan *bc = NULL;
    assert_int_equal(stw_chan_new(4, STW_CHAN_BLOCK, &stw_chan_ops_buf, &bc), 0);
    for (int i = 0; i < 3; i++) {
        stw_buf *b = NULL;
        assert_int_equal(stw_pool_get(pool, STW_DEADLINE_NOW, &b), 0);
        assert_int_equal(stw_chan_send(bc, b, STW_DEADLINE_NOW), 0);
    }
    stw_pool_stats(pool, &ps);
    assert_int_equal(ps.outstanding, 3);
    stw_chan_free(&bc);
    stw_pool_stats(pool, &ps);
    assert_int_equal(ps.outstanding, 0);
    stw_chan_free(&c);
    stw_pool_close(&pool);
}

static int chan_scenario(void *ud)
{
    (void)ud;
    stw_chan *c = NULL;
    int rc = stw_chan_new(2, STW_CHAN_DROP_OLDEST, &item_ops, &c);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 4; i++) {
        struct item *it = stw_malloc(sizeof(*it));
        if (it == NULL) {
            rc = -ENOMEM;
            break;
        }
        it->v = i;
        rc = stw_chan_send(c, it, STW_DEADLINE_NOW);
        if (rc < 0) {
            stw_free(it);
            break;
        }
    }
    if (rc >= 0) {
        void *p = NULL;
        rc = stw_chan_recv(c, &p, STW_DEADLINE_NOW);
        if (rc == 0 && ((struct item *)p)->v != 2)
            rc = -EIO;
        stw_free(p);
    }
    stw_chan_free(&c);
    return rc;
}

static void test_chan_fault_sweep(void **state)
{
    (void)state;
    reset_counts();
    assert_int_equal(stw_test_fault_sweep(chan_scenario, NULL), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_chan_invalid),
        STW_TEST(test_chan_fifo),
        STW_TEST(test_chan_block_timeouts),
        STW_TEST(test_chan_block_waits_for_room),
        STW_TEST(test_chan_drop_oldest),
        STW_TEST(test_chan_latest),
        STW_TEST(test_chan_close_wakes_and_releases),
        STW_TEST(test_chan_fd_poll),
        STW_TEST(test_chan_fd_created_late),
        STW_TEST(test_chan_stress_block),
        STW_TEST(test_chan_stress_drop_oldest),
        STW_TEST(test_chan_stress_latest),
        STW_TEST(test_chan_stress_close_midway),
        STW_TEST(test_chan_frames_from_pool),
        STW_TEST(test_chan_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
