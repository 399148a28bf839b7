#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/scope.h"

/* Slack allowed past a deadline: a loaded 2-core machine delays a woken
 * thread by up to a second (seen under make stress-test). Each bound still
 * rules out what it tests against: a wait for the 5 or 10 s deadline that
 * a cancel or trigger should cut short, or a wait for ever. */
#define SLACK_MS 2000

static int64_t ms_since(int64_t t0)
{
    return (stw_now_ns() - t0) / 1000000;
}

/* Poll @v until it equals @want or @ms pass. */
static bool wait_for(atomic_int *v, int want, int ms)
{
    stw_deadline d = stw_deadline_in_ms(ms);
    while (atomic_load(v) != want) {
        if (stw_now_ns() >= d)
            return false;
        usleep(1000);
    }
    return true;
}

/* Live records of @kind born after @seq. */
static size_t live_since(int kind, uint64_t seq)
{
    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(kind), .since_seq = seq, .records = true};
    stw_snapshot *snap = NULL;
    assert_int_equal(stw_snapshot_new(&o, &snap), 0);
    size_t n = snap->nrecords;
    stw_snapshot_free(&snap);
    return n;
}

struct counters {
    atomic_int started;
    atomic_int exited;
};

static void worker_until_cancel(stw_scope *s, void *arg)
{
    struct counters *c = arg;
    atomic_fetch_add(&c->started, 1);
    while (stw_scope_sleep(s, stw_deadline_in_ms(1000)) != -ECANCELED)
        ;
    atomic_fetch_add(&c->exited, 1);
}

static void test_close_joins_all(void **state)
{
    (void)state;
    uint64_t seq = stw_ledger_checkpoint();
    struct counters c = {0};
    stw_scope *s = NULL;
    assert_int_equal(stw_scope_new(NULL, "workers", &s), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(stw_scope_spawn(s, "worker", worker_until_cancel, &c), 0);
    assert_true(wait_for(&c.started, 8, 5000));
    assert_int_equal(live_since(STW_KIND_THREAD, seq), 8);
    assert_int_equal(atomic_load(&c.exited), 0);

    stw_scope_report rep;
    assert_int_equal(stw_scope_close(s, stw_deadline_in_ms(5000), &rep), 0);
    assert_int_equal(atomic_load(&c.exited), 8);
    assert_int_equal(rep.missed, 0);
    /* Joined means gone from the ledger at once, not after a retry. */
    assert_int_equal(live_since(STW_KIND_THREAD, seq), 0);
    assert_true(stw_scope_cancelled(s));
    stw_scope_free(&s);
    assert_null(s);
}

/* ---- cleanups ---- */

struct order {
    int ids[16];
    atomic_int n;
    stw_scope *scope;
};

struct cleanup_arg {
    struct order *o;
    int id;
};

static void log_cleanup(void *arg)
{
    struct cleanup_arg *a = arg;
    int i = atomic_fetch_add(&a->o->n, 1);
    if (i < 16)
        a->o->ids[i] = a->id;
}

static struct cleanup_arg late_arg;

/* Registers another cleanup while the cleanups run: it must run next. */
static void defer_more_cleanup(void *arg)
{
    struct cleanup_arg *a = arg;
    log_cleanup(a);
    late_arg = (struct cleanup_arg){.o = a->o, .id = 9};
    assert_int_equal(stw_scope_defer(a->o->scope, log_cleanup, &late_arg), 0);
}

static void test_cleanups_lifo_once(void **state)
{
    (void)state;
    struct order o = {0};
    struct cleanup_arg args[5];
    assert_int_equal(stw_scope_new(NULL, "cleanups", &o.scope), 0);
    for (int i = 0; i < 5; i++) {
        args[i] = (struct cleanup_arg){.o = &o, .id = i};
        assert_int_equal(
            stw_scope_defer(o.scope, i == 2 ? defer_more_cleanup : log_cleanup, &args[i]), 0);
    }
    assert_int_equal(atomic_load(&o.n), 0);
    assert_int_equal(stw_scope_close(o.scope, stw_deadline_in_ms(1000), NULL), 0);
    int want[] = {4, 3, 2, 9, 1, 0};
    assert_int_equal(atomic_load(&o.n), 6);
    assert_memory_equal(o.ids, want, sizeof(want));

    /* Closing again and freeing run nothing twice. */
    assert_int_equal(stw_scope_close(o.scope, STW_DEADLINE_NOW, NULL), 0);
    stw_scope_free(&o.scope);
    assert_int_equal(atomic_load(&o.n), 6);
}

/* ---- nesting ---- */

struct nest {
    const char *log[8];
    atomic_int n;
    atomic_int written; /* entries complete: what other threads wait on */
    struct counters threads;
    int threads_seen_exited[8];
};

struct nest_arg {
    struct nest *nest;
    const char *name;
};

static void nest_cleanup(void *arg)
{
    struct nest_arg *a = arg;
    int i = atomic_fetch_add(&a->nest->n, 1);
    a->nest->log[i] = a->name;
    a->nest->threads_seen_exited[i] = atomic_load(&a->nest->threads.exited);
    atomic_fetch_add(&a->nest->written, 1);
}

static void test_children_closed_before_parent_cleanups(void **state)
{
    (void)state;
    struct nest n = {0};
    struct nest_arg pa = {&n, "parent"}, ca = {&n, "child"}, ga = {&n, "grandchild"};
    stw_scope *p = NULL, *c = NULL, *g = NULL;
    assert_int_equal(stw_scope_new(NULL, "parent", &p), 0);
    assert_int_equal(stw_scope_new(p, "child", &c), 0);
    assert_int_equal(stw_scope_new(c, "grandchild", &g), 0);
    assert_int_equal(stw_scope_defer(p, nest_cleanup, &pa), 0);
    assert_int_equal(stw_scope_defer(c, nest_cleanup, &ca), 0);
    assert_int_equal(stw_scope_defer(g, nest_cleanup, &ga), 0);
    assert_int_equal(stw_scope_spawn(p, "p-worker", worker_until_cancel, &n.threads), 0);
    assert_int_equal(stw_scope_spawn(c, "c-worker", worker_until_cancel, &n.threads), 0);
    assert_int_equal(stw_scope_spawn(g, "g-worker", worker_until_cancel, &n.threads), 0);
    assert_true(wait_for(&n.threads.started, 3, 5000));

    /* Cancelling the parent reaches the grandchild. */
    assert_false(stw_scope_cancelled(g));
    assert_int_equal(stw_scope_close(p, stw_deadline_in_ms(5000), NULL), 0);
    assert_true(stw_scope_cancelled(g));
    assert_int_equal(atomic_load(&n.n), 3);
    assert_string_equal(n.log[0], "grandchild");
    assert_string_equal(n.log[1], "child");
    assert_string_equal(n.log[2], "parent");
    /* Every thread of the tree had returned before any cleanup ran. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(n.threads_seen_exited[i], 3);
    /* Children of a closing scope cannot be added. */
    stw_scope *late = NULL;
    assert_int_equal(stw_scope_new(p, "late", &late), -ECANCELED);
    assert_null(late);
    stw_scope_free(&p);
}

static void test_free_unclosed_tree(void **state)
{
    (void)state;
    struct nest n = {0};
    struct nest_arg pa = {&n, "parent"}, ea = {&n, "early"}, ca = {&n, "child"};
    stw_scope *p = NULL, *early = NULL, *c = NULL, *g = NULL;
    assert_int_equal(stw_scope_new(NULL, "parent", &p), 0);
    assert_int_equal(stw_scope_new(p, "early", &early), 0);
    assert_int_equal(stw_scope_new(p, "child", &c), 0);
    assert_int_equal(stw_scope_new(c, "grandchild", &g), 0);
    assert_int_equal(stw_scope_defer(p, nest_cleanup, &pa), 0);
    assert_int_equal(stw_scope_defer(early, nest_cleanup, &ea), 0);
    assert_int_equal(stw_scope_defer(c, nest_cleanup, &ca), 0);
    assert_int_equal(stw_scope_spawn(early, NULL, worker_until_cancel, &n.threads), 0);
    assert_int_equal(stw_scope_spawn(g, NULL, worker_until_cancel, &n.threads), 0);
    assert_true(wait_for(&n.threads.started, 2, 5000));

    /* A child freed by its holder before the parent: one scope per
     * connection under a long-lived root. */
    stw_scope_free(&early);
    assert_null(early);
    assert_int_equal(atomic_load(&n.n), 1);
    assert_string_equal(n.log[0], "early");
    assert_false(stw_scope_cancelled(p));

    /* Freeing an open parent closes and frees the whole tree. */
    stw_scope_free(&p);
    assert_int_equal(atomic_load(&n.n), 3);
    assert_string_equal(n.log[1], "child");
    assert_string_equal(n.log[2], "parent");
    assert_int_equal(atomic_load(&n.threads.exited), 2);
}

/* ---- deadlines ---- */

static atomic_bool stuck_release;

static void stuck_worker(stw_scope *s, void *arg)
{
    atomic_int *phase = arg;
    (void)s;
    atomic_store(phase, 1);
    /* Ignores cancellation on purpose. */
    while (!atomic_load(&stuck_release))
        usleep(1000);
    atomic_store(phase, 2);
}

struct stuck_cleanup {
    atomic_int ran;
    atomic_int *phase;
    int phase_seen;
};

static void stuck_cleanup(void *arg)
{
    struct stuck_cleanup *c = arg;
    c->phase_seen = atomic_load(c->phase);
    atomic_store(&c->ran, 1);
}

static void test_stuck_thread_times_out(void **state)
{
    (void)state;
    uint64_t seq = stw_ledger_checkpoint();
    atomic_store(&stuck_release, false);
    atomic_int phase = 0;
    struct counters polite = {0};
    struct stuck_cleanup cl = {.phase = &phase};
    stw_scope *s = NULL;
    assert_int_equal(stw_scope_new(NULL, "stuck-scope", &s), 0);
    assert_int_equal(stw_scope_defer(s, stuck_cleanup, &cl), 0);
    assert_int_equal(stw_scope_spawn(s, "stuck", stuck_worker, &phase), 0);
    assert_int_equal(stw_scope_spawn(s, "polite", worker_until_cancel, &polite), 0);
    assert_true(wait_for(&phase, 1, 5000));
    assert_true(wait_for(&polite.started, 1, 5000));

    stw_scope_report rep;
    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_scope_close(s, stw_deadline_in_ms(200), &rep), -ETIMEDOUT);
    int64_t took = ms_since(t0);
    assert_true(took >= 199);
    assert_true(took < 200 + SLACK_MS);
    assert_int_equal(rep.missed, 1);
    assert_int_equal(rep.listed, 1);
    assert_string_equal(rep.stragglers[0].thread, "stuck");
    assert_string_equal(rep.stragglers[0].scope, "stuck-scope");
    assert_int_equal(atomic_load(&polite.exited), 1);
    /* The cleanup waits for the straggler; its record is still there. */
    assert_int_equal(atomic_load(&cl.ran), 0);
    assert_int_equal(live_since(STW_KIND_THREAD, seq), 1);

    /* A second close reports the same, without waiting past its deadline. */
    t0 = stw_now_ns();
    assert_int_equal(stw_scope_close(s, stw_deadline_in_ms(20), &rep), -ETIMEDOUT);
    assert_true(ms_since(t0) < 20 + SLACK_MS);
    assert_int_equal(rep.missed, 1);

    /* Freeing does not wait for an abandoned thread either. */
    t0 = stw_now_ns();
    stw_scope_free(&s);
    assert_true(ms_since(t0) < SLACK_MS);
    assert_int_equal(atomic_load(&cl.ran), 0);

    /* Once it returns, the cleanup runs after it, and the teardown proves
     * its thread record and the scope's memory went. */
    atomic_store(&stuck_release, true);
    assert_true(wait_for(&cl.ran, 1, 5000));
    assert_int_equal(cl.phase_seen, 2);
}

static void test_stuck_grandchild_postpones_ancestors(void **state)
{
    (void)state;
    atomic_store(&stuck_release, false);
    atomic_int phase = 0;
    struct nest n = {0};
    struct nest_arg pa = {&n, "parent"}, ca = {&n, "child"}, ga = {&n, "grandchild"};
    stw_scope *p = NULL, *c = NULL, *g = NULL;
    assert_int_equal(stw_scope_new(NULL, "parent", &p), 0);
    assert_int_equal(stw_scope_new(p, "child", &c), 0);
    assert_int_equal(stw_scope_new(c, "grandchild", &g), 0);
    assert_int_equal(stw_scope_defer(p, nest_cleanup, &pa), 0);
    assert_int_equal(stw_scope_defer(c, nest_cleanup, &ca), 0);
    assert_int_equal(stw_scope_defer(g, nest_cleanup, &ga), 0);
    assert_int_equal(stw_scope_spawn(g, "deep-stuck", stuck_worker, &phase), 0);
    assert_true(wait_for(&phase, 1, 5000));

    stw_scope_report rep;
    assert_int_equal(stw_scope_close(p, stw_deadline_in_ms(100), &rep), -ETIMEDOUT);
    assert_int_equal(rep.missed, 1);
    assert_string_equal(rep.stragglers[0].thread, "deep-stuck");
    assert_string_equal(rep.stragglers[0].scope, "grandchild");
    assert_int_equal(atomic_load(&n.n), 0);
    stw_scope_free(&p);

    atomic_store(&stuck_release, true);
    assert_true(wait_for(&n.written, 3, 5000));
    assert_string_equal(n.log[0], "grandchild");
    assert_string_equal(n.log[1], "child");
    assert_string_equal(n.log[2], "parent");
}

/* ---- cancellation ---- */

static void test_cancel_fd_readable(void **state)
{
    (void)state;
    stw_scope *s = NULL;
    assert_int_equal(stw_scope_new(NULL, "cancel-fd", &s), 0);
    struct pollfd p = {.fd = stw_scope_cancel_fd(s), .events = POLLIN};
    assert_true(p.fd >= 0);
    assert_int_equal(poll(&p, 1, 0), 0);
    assert_false(stw_scope_cancelled(s));
    stw_scope_cancel(s);
    assert_true(stw_scope_cancelled(s));
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_true(p.revents & POLLIN);
    /* Idempotent, and it stays readable. */
    stw_scope_cancel(s);
    assert_int_equal(poll(&p, 1, 0), 1);
    stw_scope_free(&s);
}

struct canceller {
    stw_scope *target;
    int after_ms;
};

static void cancel_later(stw_scope *s, void *arg)
{
    struct canceller *c = arg;
    if (stw_scope_sleep(s, stw_deadline_in_ms(c->after_ms)) == 0)
        stw_scope_cancel(c->target);
}

static void test_sleep_cancelled_promptly(void **state)
{
    (void)state;
    stw_scope *s = NULL, *helper = NULL;
    assert_int_equal(stw_scope_new(NULL, "sleeper", &s), 0);
    assert_int_equal(stw_scope_new(NULL, "helper", &helper), 0);

    /* Without cancellation, the deadline ends the sleep. */
    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_scope_sleep(s, stw_deadline_in_ms(30)), 0);
    assert_true(ms_since(t0) >= 30);
    assert_true(ms_since(t0) < 30 + SLACK_MS);

    struct canceller c = {.target = s, .after_ms = 50};
    assert_int_equal(stw_scope_spawn(helper, "canceller", cancel_later, &c), 0);
    t0 = stw_now_ns();
    assert_int_equal(stw_scope_sleep(s, stw_deadline_in_ms(10000)), -ECANCELED);
    assert_true(ms_since(t0) >= 45);
    assert_true(ms_since(t0) < 50 + SLACK_MS);
    /* Already cancelled: returns at once, even with no deadline. */
    assert_int_equal(stw_scope_sleep(s, STW_DEADLINE_NEVER), -ECANCELED);

    stw_scope_free(&helper);
    stw_scope_free(&s);
}

static void test_wait_fd(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(stw_pipe(fds, O_CLOEXEC, "pipe:test"), 0);
    stw_scope *s = NULL;
    assert_int_equal(stw_scope_new(NULL, "waiter", &s), 0);

    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_scope_wait_fd(s, fds[0], POLLIN, stw_deadline_in_ms(30)), -ETIMEDOUT);
    assert_true(ms_since(t0) >= 30);
    assert_true(ms_since(t0) < 30 + SLACK_MS);

    assert_int_equal(write(fds[1], "x", 1), 1);
    int rc = stw_scope_wait_fd(s, fds[0], POLLIN, stw_deadline_in_ms(1000));
    assert_true(rc > 0);
    assert_true(rc & POLLIN);
    assert_int_equal(stw_scope_wait_fd(s, -1, POLLIN, STW_DEADLINE_NOW), -EBADF);

    /* Cancellation wins even over a ready fd. */
    stw_scope_cancel(s);
    assert_int_equal(stw_scope_wait_fd(s, fds[0], POLLIN, stw_deadline_in_ms(1000)), -ECANCELED);

    stw_scope_free(&s);
    stw_fd_close(&fds[0]);
    stw_fd_close(&fds[1]);
}

static void never_runs(stw_scope *s, void *arg)
{
    (void)s;
    atomic_store((atomic_int *)arg, 1);
}

static void set_flag(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_spawn_into_cancelled_fails(void **state)
{
    (void)state;
    atomic_int ran = 0, cleaned = 0, late_cleanup = 0;
    stw_scope *s = NULL, *child = NULL;
    assert_int_equal(stw_scope_new(NULL, "cancelled", &s), 0);
    stw_scope_cancel(s);
    assert_int_equal(stw_scope_spawn(s, "nope", never_runs, &ran), -ECANCELED);
    assert_int_equal(stw_scope_new(s, "child", &child), -ECANCELED);
    assert_null(child);
    /* Cleanups are still accepted until they have run. */
    assert_int_equal(stw_scope_defer(s, set_flag, &cleaned), 0);
    assert_int_equal(stw_scope_close(s, STW_DEADLINE_NOW, NULL), 0);
    assert_int_equal(atomic_load(&cleaned), 1);
    /* After that the caller keeps what it tried to hand over. */
    assert_int_equal(stw_scope_defer(s, set_flag, &late_cleanup), -ECANCELED);
    stw_scope_free(&s);
    assert_int_equal(atomic_load(&late_cleanup), 0);
    assert_int_equal(atomic_load(&ran), 0);

    /* A closed scope refuses spawns even if nobody cancelled it by hand. */
    assert_int_equal(stw_scope_new(NULL, "closed", &s), 0);
    assert_int_equal(stw_scope_close(s, STW_DEADLINE_NOW, NULL), 0);
    assert_int_equal(stw_scope_spawn(s, "nope", never_runs, &ran), -ECANCELED);
    stw_scope_free(&s);
    assert_int_equal(atomic_load(&ran), 0);
}

/* ---- misuse ---- */

struct self_close {
    stw_scope *target;
    atomic_int rc;
    atomic_int done;
};

static void close_from_inside(stw_scope *s, void *arg)
{
    struct self_close *sc = arg;
    (void)s;
    atomic_store(&sc->rc, stw_scope_close(sc->target, STW_DEADLINE_NOW, NULL));
    atomic_store(&sc->done, 1);
}

static struct self_close cleanup_close;

static void close_own_scope_cleanup(void *arg)
{
    (void)arg;
    atomic_store(&cleanup_close.rc,
                 stw_scope_close(cleanup_close.target, STW_DEADLINE_NEVER, NULL));
}

static void test_close_from_inside_is_edeadlk(void **state)
{
    (void)state;
    stw_scope *s = NULL, *c = NULL;
    assert_int_equal(stw_scope_new(NULL, "outer", &s), 0);
    assert_int_equal(stw_scope_new(s, "inner", &c), 0);
    struct self_close own = {.target = s}, from_child = {.target = s};
    assert_int_equal(stw_scope_spawn(s, "self-closer", close_from_inside, &own), 0);
    assert_int_equal(stw_scope_spawn(c, "child-closer", close_from_inside, &from_child), 0);
    assert_true(wait_for(&own.done, 1, 5000));
    assert_true(wait_for(&from_child.done, 1, 5000));
    assert_int_equal(atomic_load(&own.rc), -EDEADLK);
    assert_int_equal(atomic_load(&from_child.rc), -EDEADLK);
    /* Nothing changed: the scope is still open. */
    assert_false(stw_scope_cancelled(s));

    cleanup_close.target = s;
    atomic_store(&cleanup_close.rc, 1);
    assert_int_equal(stw_scope_defer(s, close_own_scope_cleanup, NULL), 0);
    assert_int_equal(stw_scope_close(s, stw_deadline_in_ms(5000), NULL), 0);
    assert_int_equal(atomic_load(&cleanup_close.rc), -EDEADLK);
    stw_scope_free(&s);
}

static void free_own_scope(stw_scope *s, void *arg)
{
    (void)s;
    stw_scope_free((stw_scope **)arg);
}

static void test_free_from_inside_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A hang would end with SIGALRM, not the SIGABRT expected. */
        alarm(10);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        stw_scope *s = NULL, *alias = NULL;
        if (stw_scope_new(NULL, "doomed", &s) != 0)
            _exit(2);
        alias = s;
        if (stw_scope_spawn(s, "self-freer", free_own_scope, &alias) != 0)
            _exit(3);
        stw_scope_close(s, STW_DEADLINE_NEVER, NULL);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

/* ---- identity ---- */

struct identity {
    stw_scope *current;
    uint64_t owner;
    uint64_t alloc_owner;
    char pname[32];
    stw_record self;
    int self_rc;
    char self_label[32]; /* the record's label is borrowed from the thread */
};

static void identify(stw_scope *s, void *arg)
{
    struct identity *id = arg;
    (void)s;
    id->current = stw_scope_current();
    id->owner = stw_ledger_owner();
    void *p = stw_malloc(8);
    stw_record r;
    if (p != NULL && stw_ledger_lookup(STW_KIND_HEAP, (uintptr_t)p, &r) == 0)
        id->alloc_owner = r.owner;
    stw_free(p);
    pthread_getname_np(pthread_self(), id->pname, sizeof(id->pname));
    id->self_rc = stw_ledger_lookup(STW_KIND_THREAD, (uint64_t)pthread_self(), &id->self);
    if (id->self_rc == 0 && id->self.label != NULL)
        snprintf(id->self_label, sizeof(id->self_label), "%s", id->self.label);
}

static void test_identity_and_ledger_tags(void **state)
{
    (void)state;
    stw_scope *s = NULL, *c = NULL;
    assert_int_equal(stw_scope_new(NULL, "named", &s), 0);
    assert_int_equal(stw_scope_new(s, "kid", &c), 0);
    assert_string_equal(stw_scope_name(s), "named");
    assert_null(stw_scope_current());

    stw_record r;
    assert_int_equal(stw_ledger_lookup(STW_KIND_SCOPE, (uintptr_t)s, &r), 0);
    assert_string_equal(r.label, "named");
    assert_int_equal(stw_ledger_lookup(STW_KIND_SCOPE, (uintptr_t)c, &r), 0);
    assert_string_equal(r.label, "kid");
    assert_int_equal(r.owner, (uintptr_t)s);

    struct identity id = {0};
    assert_int_equal(stw_scope_spawn(s, "a-very-long-thread-name", identify, &id), 0);
    assert_int_equal(stw_scope_close(s, stw_deadline_in_ms(5000), NULL), 0);
    assert_ptr_equal(id.current, s);
    assert_int_equal(id.owner, (uintptr_t)s);
    assert_int_equal(id.alloc_owner, (uintptr_t)s);
    assert_string_equal(id.pname, "a-very-long-thr");
    assert_int_equal(id.self_rc, 0);
    assert_string_equal(id.self_label, "a-very-long-thr");
    assert_int_equal(id.self.owner, (uintptr_t)s);
    stw_scope_free(&s);
}

/* ---- concurrency ---- */

struct hammer {
    stw_scope *target;
    atomic_int spawned;
    atomic_int ran;
    atomic_int failures; /* cmocka asserts only work on the main thread */
};

static void short_job(stw_scope *s, void *arg)
{
    struct hammer *h = arg;
    atomic_fetch_add(&h->ran, 1);
    (void)s;
}

/* Spawns from inside the target scope too. */
static void job_that_spawns(stw_scope *s, void *arg)
{
    struct hammer *h = arg;
    atomic_fetch_add(&h->ran, 1);
    if (stw_scope_spawn(s, "nested", short_job, h) == 0)
        atomic_fetch_add(&h->spawned, 1);
}

static void spawner(stw_scope *s, void *arg)
{
    struct hammer *h = arg;
    (void)s;
    for (int i = 0; i < 25; i++) {
        if (stw_scope_spawn(h->target, "job", job_that_spawns, h) == 0)
            atomic_fetch_add(&h->spawned, 1);
        else
            atomic_fetch_add(&h->failures, 1);
        /* Defers race with the spawns and with the jobs' own spawns. */
        if (stw_scope_defer(h->target, set_flag, &h->ran) == 0)
            atomic_fetch_add(&h->spawned, 1);
        else
            atomic_fetch_add(&h->failures, 1);
    }
}

static void test_concurrent_spawns(void **state)
{
    (void)state;
    struct hammer h = {0};
    stw_scope *spawners = NULL;
    assert_int_equal(stw_scope_new(NULL, "target", &h.target), 0);
    assert_int_equal(stw_scope_new(NULL, "spawners", &spawners), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(stw_scope_spawn(spawners, "spawner", spawner, &h), 0);
    assert_int_equal(stw_scope_close(spawners, stw_deadline_in_ms(10000), NULL), 0);
    stw_scope_free(&spawners);
    assert_int_equal(atomic_load(&h.failures), 0);
    /* 100 jobs, 100 nested jobs, 100 cleanups. */
    assert_true(wait_for(&h.spawned, 300, 10000));
    assert_true(wait_for(&h.ran, 200, 10000));
    assert_int_equal(stw_scope_close(h.target, stw_deadline_in_ms(10000), NULL), 0);
    assert_int_equal(atomic_load(&h.ran), 300);
    stw_scope_free(&h.target);
}

struct closer_arg {
    stw_scope *s;
    int rc;
};

static void *close_concurrently(void *arg)
{
    struct closer_arg *a = arg;
    a->rc = stw_scope_close(a->s, stw_deadline_in_ms(5000), NULL);
    return NULL;
}

static void test_concurrent_close(void **state)
{
    (void)state;
    struct counters c = {0};
    atomic_int cleaned = 0;
    stw_scope *s = NULL, *kid = NULL;
    assert_int_equal(stw_scope_new(NULL, "contended", &s), 0);
    assert_int_equal(stw_scope_new(s, "contended-kid", &kid), 0);
    assert_int_equal(stw_scope_defer(s, set_flag, &cleaned), 0);
    assert_int_equal(stw_scope_defer(kid, set_flag, &cleaned), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(stw_scope_spawn(s, NULL, worker_until_cancel, &c), 0);
        assert_int_equal(stw_scope_spawn(kid, NULL, worker_until_cancel, &c), 0);
    }
    assert_true(wait_for(&c.started, 8, 5000));
    pthread_t th[4];
    struct closer_arg args[4];
    for (int i = 0; i < 4; i++) {
        /* Closing the child and the parent at the same time. */
        args[i] = (struct closer_arg){.s = i % 2 ? kid : s, .rc = 1};
        assert_int_equal(pthread_create(&th[i], NULL, close_concurrently, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, 0);
    }
    assert_int_equal(atomic_load(&c.exited), 8);
    assert_int_equal(atomic_load(&cleaned), 2);
    stw_scope_free(&s);
}

/* ---- fault injection ---- */

static void free_cleanup(void *arg)
{
    stw_free(arg);
}

/* New scope, spawn 2 threads, defer 2 cleanups, close: every step's
 * failure is handled by the same close and free. */
static int sweep_scenario(void *ud)
{
    struct counters *c = ud;
    stw_scope *s = NULL;
    int rc = stw_scope_new(NULL, "sweep", &s);
    if (rc != 0)
        return rc;
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = stw_scope_spawn(s, "sweeper", worker_until_cancel, c);
    for (int i = 0; i < 2 && rc == 0; i++) {
        void *mem = stw_malloc(64);
        if (mem == NULL) {
            rc = -ENOMEM;
            break;
        }
        rc = stw_scope_defer(s, free_cleanup, mem);
        if (rc != 0)
            stw_free(mem);
    }
    int crc = stw_scope_close(s, stw_deadline_in_ms(5000), NULL);
    stw_scope_free(&s);
    return rc != 0 ? rc : crc;
}

static void test_fault_sweep(void **state)
{
    (void)state;
    struct counters c = {0};
    int points = stw_test_fault_sweep(sweep_scenario, &c);
    /* scope, name, 2 threads, 2 buffers, 2 cleanup entries */
    assert_true(points >= 8);
    assert_int_equal(atomic_load(&c.started), atomic_load(&c.exited));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_close_joins_all),
        STW_TEST(test_cleanups_lifo_once),
        STW_TEST(test_children_closed_before_parent_cleanups),
        STW_TEST(test_free_unclosed_tree),
        STW_TEST(test_stuck_thread_times_out),
        STW_TEST(test_stuck_grandchild_postpones_ancestors),
        STW_TEST(test_cancel_fd_readable),
        STW_TEST(test_sleep_cancelled_promptly),
        STW_TEST(test_wait_fd),
        STW_TEST(test_spawn_into_cancelled_fails),
        STW_TEST(test_close_from_inside_is_edeadlk),
        STW_TEST(test_free_from_inside_aborts),
        STW_TEST(test_identity_and_ledger_tags),
        STW_TEST(test_concurrent_spawns),
        STW_TEST(test_concurrent_close),
        STW_TEST(test_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
