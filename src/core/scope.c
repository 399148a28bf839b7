#include "steward/scope.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "scope_internal.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

/* One thread spawned into a scope. Fields other than the immutable ones
 * (scope, fn, arg, name) are protected by scope->mu. */
struct scope_thread {
    struct scope_thread *prev, *next;
    stw_scope *scope;
    void (*fn)(stw_scope *s, void *arg);
    void *arg;
    pthread_t tid;
    bool recorded;  /* the ledger took its record, so it must be released */
    bool done;      /* fn returned; only the join is left */
    bool abandoned; /* a close gave up on it: it cleans up after itself */
    char name[STW_SCOPE_THREAD_NAME_MAX];
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *arg);
    void *arg;
};

enum scope_state {
    SCOPE_OPEN,    /* spawns, children and defers accepted */
    SCOPE_CLOSING, /* the first close is cancelling, joining, closing children */
    SCOPE_CLOSED,  /* the first close returned (the scope may still be unfinished) */
};

/*
 * Lifetime: refs counts the owner's hold (dropped by stw_scope_free), one
 * per abandoned thread still running, one per child struct still alive
 * (children point at their parent), and short holds taken while a close
 * works on a child without its parent's lock. The last unref frees.
 *
 * Locking: mu protects everything mutable below, except prev/next/
 * visited/released, which belong to the parent's list and are protected
 * by parent->mu. Locks are only ever nested parent first, then child.
 */
struct stw_scope {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; thread done, state and finished changes */
    char *name;
    stw_scope *parent; /* immutable, kept alive by this scope's reference */
    stw_scope *prev, *next;
    bool visited;  /* the parent's close has taken this child */
    bool released; /* the owner freed it; it lingers until abandoned threads end */
    stw_scope *children;
    struct scope_thread *threads;
    struct cleanup *cleanups; /* most recent first */
    atomic_bool cancelled;
    atomic_int refs;
    int cancel_fd;
    bool recorded;
    enum scope_state state;
    /* Close waits on: the closer itself, abandoned threads, unfinished
     * children. The cleanups run when it drops to zero. */
    int pending;
    bool finished;
    bool notify_parent; /* the parent's close counts this child as pending */
    /* The thread closing the scope or running its cleanups: a close from it
     * would wait for itself. */
    pthread_t worker;
    bool worker_set;
};

static _Thread_local stw_scope *tls_current;

/* ---- small helpers ---- */

static void thread_link(stw_scope *s, struct scope_thread *t)
{
    t->prev = NULL;
    t->next = s->threads;
    if (s->threads != NULL)
        s->threads->prev = t;
    s->threads = t;
}

static void thread_unlink(stw_scope *s, struct scope_thread *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        s->threads = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void child_link(stw_scope *parent, stw_scope *c)
{
    c->prev = NULL;
    c->next = parent->children;
    if (parent->children != NULL)
        parent->children->prev = c;
    parent->children = c;
}

static void child_unlink(stw_scope *parent, stw_scope *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        parent->children = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Wait on s->cv (s->mu held) until woken or @d; false once @d has passed. */
static bool cv_wait(stw_scope *s, stw_deadline d)
{
    if (d == STW_DEADLINE_NEVER) {
        pthread_cond_wait(&s->cv, &s->mu);
        return true;
    }
    struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
    return pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT;
}

/* ppoll() until @d, retrying on EINTR. Returns the ready count, 0 at the
 * deadline, or -errno. */
static int poll_until(struct pollfd *fds, nfds_t n, stw_deadline d)
{
    for (;;) {
        struct timespec ts, *tsp = NULL;
        if (d != STW_DEADLINE_NEVER) {
            int64_t left = d - stw_now_ns();
            if (left < 0)
                left = 0;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        int rc = ppoll(fds, n, tsp, NULL);
        if (rc >= 0)
            return rc;
        if (errno != EINTR)
            return -errno;
    }
}

static int sync_init(stw_scope *s)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return -rc;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&s->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_mutex_init(&s->mu, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&s->cv);
        return -rc;
    }
    return 0;
}

/* ---- lifetime ---- */

static void scope_ref(stw_scope *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

/* Take a hold on a child found in its parent's list (parent->mu held). A
 * child whose count already reached zero is being destroyed: its destroy
 * waits for parent->mu to unlink it, so it must not be revived. */
static bool scope_tryref(stw_scope *s)
{
    int n = atomic_load(&s->refs);
    while (n > 0)
        if (atomic_compare_exchange_weak(&s->refs, &n, n + 1))
            return true;
    return false;
}

static void scope_destroy(stw_scope *s)
{
    STW_BUG_ON(s->threads != NULL || s->children != NULL || s->cleanups != NULL);
    if (s->recorded)
        stw_ledger_release(STW_KIND_SCOPE, (uintptr_t)s);
    stw_fd_close(&s->cancel_fd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    stw_free(s->name);
    stw_free(s);
}

static void scope_unref(stw_scope *s)
{
    while (s != NULL) {
        int old = atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
        STW_BUG_ON(old <= 0);
        if (old > 1)
            return;
        stw_scope *parent = s->parent;
        /* Unlink before anything is freed: walkers of the parent's list
         * rely on a linked child's memory staying valid under parent->mu. */
        if (parent != NULL) {
            pthread_mutex_lock(&parent->mu);
            child_unlink(parent, s);
            pthread_mutex_unlock(&parent->mu);
        }
        scope_destroy(s);
        s = parent;
    }
}

/*
 * Drop one pending hold of @s. The last one runs the cleanups (LIFO,
 * including any registered meanwhile), marks the scope finished and, when
 * the parent's close is waiting for it, drops one of the parent's holds
 * in turn. Runs on the closer or on the last abandoned thread.
 */
static void scope_pending_dec(stw_scope *s)
{
    while (s != NULL) {
        pthread_mutex_lock(&s->mu);
        STW_BUG_ON(s->pending <= 0);
        if (--s->pending > 0) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        s->worker = pthread_self();
        s->worker_set = true;
        struct cleanup *c;
        while ((c = s->cleanups) != NULL) {
            s->cleanups = c->next;
            pthread_mutex_unlock(&s->mu);
            c->fn(c->arg);
            stw_free(c);
            pthread_mutex_lock(&s->mu);
        }
        s->finished = true;
        s->worker_set = false;
        bool notify = s->notify_parent;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        s = notify ? s->parent : NULL;
    }
}

/* ---- creation ---- */

int stw_scope_new(stw_scope *parent, const char *name, stw_scope **out)
{
    STW_BUG_ON(out == NULL);
    *out = NULL;
    /* A child's own bookkeeping belongs to its parent in the ledger. */
    uint64_t prev_owner = 0;
    if (parent != NULL)
        prev_owner = stw_ledger_set_owner((uintptr_t)parent);
    int rc = -ENOMEM;
    stw_scope *s = stw_calloc(1, sizeof(*s));
    if (s == NULL)
        goto out;
    s->name = stw_strdup(name != NULL ? name : "scope");
    if (s->name == NULL)
        goto free_scope;
    s->cancel_fd = stw_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK, "eventfd:scope-cancel");
    if (s->cancel_fd < 0) {
        rc = s->cancel_fd;
        goto free_name;
    }
    rc = sync_init(s);
    if (rc != 0)
        goto close_fd;
    atomic_init(&s->refs, 1);
    atomic_init(&s->cancelled, false);
    s->state = SCOPE_OPEN;
    s->recorded = stw_ledger_record(STW_KIND_SCOPE, (uintptr_t)s, 0, s->name) == 0;
    if (parent != NULL) {
        pthread_mutex_lock(&parent->mu);
        if (atomic_load(&parent->cancelled) || parent->state != SCOPE_OPEN) {
            pthread_mutex_unlock(&parent->mu);
            rc = -ECANCELED;
            goto unrecord;
        }
        s->parent = parent;
        scope_ref(parent);
        child_link(parent, s);
        pthread_mutex_unlock(&parent->mu);
    }
    *out = s;
    rc = 0;
    goto out;

unrecord:
    if (s->recorded)
        stw_ledger_release(STW_KIND_SCOPE, (uintptr_t)s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
close_fd:
    stw_fd_close(&s->cancel_fd);
free_name:
    stw_free(s->name);
free_scope:
    stw_free(s);
out:
    if (parent != NULL)
        stw_ledger_set_owner(prev_owner);
    return rc;
}

const char *stw_scope_name(const stw_scope *s)
{
    STW_BUG_ON(s == NULL);
    return s->name;
}

stw_scope *stw_scope_current(void)
{
    return tls_current;
}

/* ---- threads ---- */

static void thread_finish(struct scope_thread *t)
{
    stw_scope *s = t->scope;
    pthread_mutex_lock(&s->mu);
    if (!t->abandoned) {
        t->done = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    thread_unlink(s, t);
    pthread_mutex_unlock(&s->mu);
    /* Nobody will join a detached thread: its record ends here. */
    if (t->recorded)
        stw_ledger_release(STW_KIND_THREAD, (uint64_t)pthread_self());
    stw_free(t);
    scope_pending_dec(s);
    scope_unref(s);
}

static void *thread_main(void *p)
{
    struct scope_thread *t = p;
    stw_scope *s = t->scope;
    /* The spawner records and links the thread under the lock after
     * pthread_create(): waiting for the lock once means fn never runs
     * before its own ledger record exists. */
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_setname_np(pthread_self(), t->name);
    tls_current = s;
    stw_ledger_set_owner((uintptr_t)s);
    t->fn(s, t->arg);
    /* What runs below (possibly the scope's cleanups) is no longer the
     * thread's own work, and must not look like a close from inside. */
    stw_ledger_set_owner(0);
    tls_current = NULL;
    thread_finish(t);
    return NULL;
}

/* Join the threads that already returned (s->mu held). They have left the
 * lock behind for good, so the join waits only for their exit. */
static void reap_done(stw_scope *s)
{
    struct scope_thread *t = s->threads, *next;
    for (; t != NULL; t = next) {
        next = t->next;
        if (!t->done)
            continue;
        thread_unlink(s, t);
        /* Release before the join: once joined, the pthread_t may be
         * handed to a new thread and recorded again. */
        if (t->recorded)
            stw_ledger_release(STW_KIND_THREAD, (uint64_t)t->tid);
        pthread_join(t->tid, NULL);
        stw_free(t);
    }
}

int stw_scope_spawn(stw_scope *s, const char *name, void (*fn)(stw_scope *s, void *arg), void *arg)
{
    STW_BUG_ON(s == NULL || fn == NULL);
    if (atomic_load(&s->cancelled))
        return -ECANCELED;
    uint64_t prev_owner = stw_ledger_set_owner((uintptr_t)s);
    int rc = -ENOMEM;
    struct scope_thread *t = stw_calloc(1, sizeof(*t));
    if (t == NULL)
        goto out;
    t->scope = s;
    t->fn = fn;
    t->arg = arg;
    strncpy(t->name, name != NULL ? name : s->name, sizeof(t->name) - 1);

    pthread_mutex_lock(&s->mu);
    reap_done(s);
    if (atomic_load(&s->cancelled) || s->state != SCOPE_OPEN) {
        rc = -ECANCELED;
        goto unlock;
    }
    rc = -pthread_create(&t->tid, NULL, thread_main, t);
    if (rc != 0)
        goto unlock;
    /* Recorded under the lock: the record can only be released by a join
     * or an abandonment, and both need the lock and the thread in the list. */
    t->recorded = stw_ledger_record(STW_KIND_THREAD, (uint64_t)t->tid, 0, t->name) == 0;
    thread_link(s, t);
    t = NULL;
unlock:
    pthread_mutex_unlock(&s->mu);
    stw_free(t);
out:
    stw_ledger_set_owner(prev_owner);
    return rc;
}

/* ---- cleanups and cancellation ---- */

int stw_scope_defer(stw_scope *s, void (*fn)(void *arg), void *arg)
{
    STW_BUG_ON(s == NULL || fn == NULL);
    uint64_t prev_owner = stw_ledger_set_owner((uintptr_t)s);
    struct cleanup *c = stw_malloc(sizeof(*c));
    stw_ledger_set_owner(prev_owner);
    if (c == NULL)
        return -ENOMEM;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&s->mu);
    if (s->finished) {
        pthread_mutex_unlock(&s->mu);
        stw_free(c);
        return -ECANCELED;
    }
    c->next = s->cleanups;
    s->cleanups = c;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void stw_scope_cancel(stw_scope *s)
{
    STW_BUG_ON(s == NULL);
    if (!atomic_exchange(&s->cancelled, true)) {
        /* The counter is never read, so it stays readable for good. */
        uint64_t one = 1;
        (void)!write(s->cancel_fd, &one, sizeof(one));
    }
    /* Always walk the children: a second caller must not return before
     * the first one's propagation reached them. */
    pthread_mutex_lock(&s->mu);
    for (stw_scope *c = s->children; c != NULL; c = c->next)
        stw_scope_cancel(c);
    pthread_mutex_unlock(&s->mu);
}

bool stw_scope_cancelled(const stw_scope *s)
{
    STW_BUG_ON(s == NULL);
    return atomic_load(&((stw_scope *)s)->cancelled);
}

int stw_scope_cancel_fd(stw_scope *s)
{
    STW_BUG_ON(s == NULL);
    return s->cancel_fd;
}

int stw_scope_sleep(stw_scope *s, stw_deadline d)
{
    STW_BUG_ON(s == NULL);
    struct pollfd p = {.fd = s->cancel_fd, .events = POLLIN};
    for (;;) {
        if (stw_scope_cancelled(s))
            return -ECANCELED;
        if (stw_now_ns() >= d)
            return 0;
        int rc = poll_until(&p, 1, d);
        if (rc < 0)
            return rc;
    }
}

int stw_scope_wait_fd(stw_scope *s, int fd, short events, stw_deadline d)
{
    STW_BUG_ON(s == NULL);
    if (fd < 0)
        return -EBADF;
    struct pollfd p[2] = {{.fd = s->cancel_fd, .events = POLLIN}, {.fd = fd, .events = events}};
    for (;;) {
        if (stw_scope_cancelled(s))
            return -ECANCELED;
        int rc = poll_until(p, 2, d);
        if (rc < 0)
            return rc;
        if (stw_scope_cancelled(s))
            return -ECANCELED;
        if (p[1].revents & POLLNVAL)
            return -EBADF;
        if (p[1].revents != 0)
            return p[1].revents;
        if (stw_now_ns() >= d)
            return -ETIMEDOUT;
    }
}

/* ---- close ---- */

static bool all_done(const stw_scope *s)
{
    for (const struct scope_thread *t = s->threads; t != NULL; t = t->next)
        if (!t->done)
            return false;
    return true;
}

/* Join what returned by @d; abandon the rest, each keeping a reference
 * and a pending hold so the cleanups wait for it. */
static void join_threads(stw_scope *s, stw_deadline d)
{
    struct scope_thread *joinable = NULL, *t, *next;
    pthread_mutex_lock(&s->mu);
    while (!all_done(s) && cv_wait(s, d))
        ;
    for (t = s->threads; t != NULL; t = next) {
        next = t->next;
        if (t->done) {
            thread_unlink(s, t);
            t->next = joinable;
            joinable = t;
        } else {
            t->abandoned = true;
            pthread_detach(t->tid);
            s->pending++;
            scope_ref(s);
        }
    }
    pthread_mutex_unlock(&s->mu);
    for (t = joinable; t != NULL; t = next) {
        next = t->next;
        if (t->recorded)
            stw_ledger_release(STW_KIND_THREAD, (uint64_t)t->tid);
        pthread_join(t->tid, NULL);
        stw_free(t);
    }
}

static int close_impl(stw_scope *s, stw_deadline d, bool until_finished);

/* Close each child with the same deadline. No child can be added now (the
 * scope is closing), but the owner of one may free it meanwhile, so each is
 * taken with a hold and the list is walked again from the start. */
static void close_children(stw_scope *s, stw_deadline d)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        stw_scope *c = s->children;
        while (c != NULL && (c->visited || !scope_tryref(c)))
            c = c->next;
        if (c == NULL) {
            pthread_mutex_unlock(&s->mu);
            return;
        }
        c->visited = true;
        pthread_mutex_unlock(&s->mu);

        (void)close_impl(c, d, true);

        pthread_mutex_lock(&s->mu);
        pthread_mutex_lock(&c->mu);
        if (!c->finished) {
            c->notify_parent = true;
            s->pending++;
        }
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&s->mu);
        scope_unref(c);
    }
}

/* True if the calling thread was spawned into @s or one of its descendants
 * (its scope chain is alive: the thread's own scope holds its parent). */
static bool inside(const stw_scope *s)
{
    for (const stw_scope *c = tls_current; c != NULL; c = c->parent)
        if (c == s)
            return true;
    return false;
}

/*
 * The first close does the work. A later or concurrent one waits until
 * the scope finished (@until_finished) or merely until the first close
 * returned, bounded by @d either way.
 */
static int close_impl(stw_scope *s, stw_deadline d, bool until_finished)
{
    if (inside(s))
        return -EDEADLK;
    pthread_mutex_lock(&s->mu);
    if (s->worker_set && pthread_equal(s->worker, pthread_self())) {
        pthread_mutex_unlock(&s->mu);
        return -EDEADLK;
    }
    if (s->state != SCOPE_OPEN) {
        while (!(until_finished ? s->finished : s->state == SCOPE_CLOSED) && cv_wait(s, d))
            ;
        int rc = s->finished ? 0 : -ETIMEDOUT;
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    s->state = SCOPE_CLOSING;
    s->pending = 1;
    s->worker = pthread_self();
    s->worker_set = true;
    pthread_mutex_unlock(&s->mu);

    stw_scope_cancel(s);
    join_threads(s, d);
    close_children(s, d);
    scope_pending_dec(s);

    pthread_mutex_lock(&s->mu);
    s->state = SCOPE_CLOSED;
    if (s->worker_set && pthread_equal(s->worker, pthread_self()))
        s->worker_set = false;
    int rc = s->finished ? 0 : -ETIMEDOUT;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Name every thread of @s and its descendants that has not returned. */
static void report_walk(stw_scope *s, stw_scope_report *rep)
{
    pthread_mutex_lock(&s->mu);
    for (const struct scope_thread *t = s->threads; t != NULL; t = t->next) {
        if (t->done)
            continue;
        if (rep->listed < STW_SCOPE_REPORT_MAX) {
            stw_scope_straggler *st = &rep->stragglers[rep->listed++];
            memcpy(st->thread, t->name, sizeof(st->thread));
            strncpy(st->scope, s->name, sizeof(st->scope) - 1);
            st->scope[sizeof(st->scope) - 1] = '\0';
        }
        rep->missed++;
    }
    for (stw_scope *c = s->children; c != NULL; c = c->next)
        report_walk(c, rep);
    pthread_mutex_unlock(&s->mu);
}

int stw_scope_close(stw_scope *s, stw_deadline d, stw_scope_report *rep)
{
    STW_BUG_ON(s == NULL);
    int rc = close_impl(s, d, true);
    if (rep != NULL) {
        memset(rep, 0, sizeof(*rep));
        if (rc == -ETIMEDOUT)
            report_walk(s, rep);
    }
    return rc;
}

void stw_scope_free(stw_scope **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    stw_scope *s = *sp;
    *sp = NULL;
    if (close_impl(s, STW_DEADLINE_NEVER, false) == -EDEADLK)
        STW_BUG("stw_scope_free() from a thread or cleanup of the scope itself");
    for (;;) {
        pthread_mutex_lock(&s->mu);
        stw_scope *c = s->children;
        while (c != NULL && c->released)
            c = c->next;
        pthread_mutex_unlock(&s->mu);
        if (c == NULL)
            break;
        stw_scope_free(&c);
    }
    if (s->parent != NULL) {
        pthread_mutex_lock(&s->parent->mu);
        STW_BUG_ON(s->released);
        s->released = true;
        pthread_mutex_unlock(&s->parent->mu);
    }
    scope_unref(s);
}

/* One of the records @s itself holds until it is freed. */
static bool own_record(const stw_scope *s, int kind, uint64_t id)
{
    if ((kind == STW_KIND_SCOPE || kind == STW_KIND_HEAP) && id == (uintptr_t)s)
        return true;
    if (kind == STW_KIND_HEAP && id == (uintptr_t)s->name)
        return true;
    return kind == STW_KIND_FD && s->cancel_fd >= 0 && id == (uint64_t)s->cancel_fd;
}

static bool subtree_record(stw_scope *s, int kind, uint64_t id)
{
    if (own_record(s, kind, id))
        return true;
    bool hit = false;
    pthread_mutex_lock(&s->mu);
    for (stw_scope *c = s->children; c != NULL && !hit; c = c->next)
        hit = subtree_record(c, kind, id);
    pthread_mutex_unlock(&s->mu);
    return hit;
}

bool stw__scope_is_skeleton(stw_scope *s, int kind, uint64_t id)
{
    for (const stw_scope *a = s->parent; a != NULL; a = a->parent)
        if (own_record(a, kind, id))
            return true;
    return subtree_record(s, kind, id);
}
