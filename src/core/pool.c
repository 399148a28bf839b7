#include "steward/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "buf_internal.h"
#include "steward/alloc.h"
#include "steward/ledger.h"

/*
 * Everything below is guarded by lock. The pool may be freed by whichever
 * thread makes it unreachable: the last handle dropped, the last buffer
 * returned, or the last waiter leaving stw_pool_get(). That thread decides
 * under the lock (pool_is_dead) and frees after unlocking; once dead,
 * nobody else can reach the pool, so nobody else can be waiting for the
 * lock.
 */
struct stw_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a buffer came back, a slot freed, or closed */
    size_t buf_size;
    unsigned max;
    unsigned handles; /* user handles (stw_pool_new/ref) not yet dropped */
    unsigned total;   /* buffers in existence, including ones being allocated */
    unsigned nidle;
    stw_buf *idle;   /* LIFO, so the most recently used (cache-warm) goes out first */
    unsigned inside; /* threads inside stw_pool_get() */
    bool closed;
};

static bool pool_is_dead(const stw_pool *p)
{
    return p->handles == 0 && p->total == 0 && p->inside == 0;
}

static void pool_destroy(stw_pool *p)
{
    stw_ledger_release(STW_KIND_POOL, (uintptr_t)p);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    stw_free(p);
}

/* Take the whole idle list; the caller frees it with free_list() after
 * unlocking. Lock held. */
static stw_buf *take_idle(stw_pool *p, unsigned *n)
{
    stw_buf *list = p->idle;
    *n = p->nidle;
    p->total -= p->nidle;
    p->idle = NULL;
    p->nidle = 0;
    return list;
}

static void free_list(stw_buf *list)
{
    while (list != NULL) {
        stw_buf *next = *stw__buf_link(list);
        stw__buf_destroy(list);
        list = next;
    }
}

static void pool_recycle(void *owner, stw_buf *b)
{
    stw_pool *p = owner;
    stw_buf *destroy = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        p->total--;
        destroy = b;
    } else {
        *stw__buf_link(b) = p->idle;
        p->idle = b;
        p->nidle++;
        pthread_cond_signal(&p->cond);
    }
    bool dead = pool_is_dead(p);
    pthread_mutex_unlock(&p->lock);
    if (destroy != NULL)
        stw__buf_destroy(destroy);
    if (dead)
        pool_destroy(p);
}

int stw_pool_new(size_t buf_size, unsigned max_bufs, stw_pool **out)
{
    if (max_bufs == 0)
        return -EINVAL;
    stw_pool *p = stw_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        goto free_pool;
    /* Deadlines are CLOCK_MONOTONIC; a wall-clock jump must not stretch
     * or cut a wait. */
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&p->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        goto free_pool;
    rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0)
        goto destroy_cond;
    p->buf_size = buf_size;
    p->max = max_bufs;
    p->handles = 1;
    int lrc = stw_ledger_record(STW_KIND_POOL, (uintptr_t)p, 0, "pool");
    /* -EEXIST would mean a live pool's address was handed out twice. */
    STW_BUG_ON(lrc == -EEXIST);
    *out = p;
    return 0;

destroy_cond:
    pthread_cond_destroy(&p->cond);
free_pool:
    stw_free(p);
    return -rc;
}

stw_pool *stw_pool_ref(stw_pool *p)
{
    STW_BUG_ON(p == NULL);
    pthread_mutex_lock(&p->lock);
    STW_BUG_ON(p->handles == 0);
    p->handles++;
    pthread_mutex_unlock(&p->lock);
    return p;
}

/* Drop one handle, closing the pool if asked or if it was the last. */
static void pool_drop_handle(stw_pool **pp, bool close)
{
    if (pp == NULL || *pp == NULL)
        return;
    stw_pool *p = *pp;
    *pp = NULL;
    stw_buf *idle = NULL;
    unsigned n;
    pthread_mutex_lock(&p->lock);
    if (p->handles == 0)
        STW_BUG("pool handle dropped twice");
    p->handles--;
    if (close || p->handles == 0) {
        p->closed = true;
        idle = take_idle(p, &n);
        pthread_cond_broadcast(&p->cond);
    }
    bool dead = pool_is_dead(p);
    pthread_mutex_unlock(&p->lock);
    free_list(idle);
    if (dead)
        pool_destroy(p);
}

void stw_pool_unref(stw_pool **pp)
{
    pool_drop_handle(pp, false);
}

void stw_pool_close(stw_pool **pp)
{
    pool_drop_handle(pp, true);
}

/* Wait on @c until signalled or @d passes. Returns true if @d has passed
 * (the caller re-checks its condition once more either way). */
static bool wait_until(pthread_cond_t *c, pthread_mutex_t *m, stw_deadline d)
{
    if (d == STW_DEADLINE_NEVER) {
        pthread_cond_wait(c, m);
        return false;
    }
    if (stw_now_ns() >= d)
        return true;
    struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
    return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT;
}

int stw_pool_get(stw_pool *p, stw_deadline d, stw_buf **out)
{
    STW_BUG_ON(p == NULL || out == NULL);
    int rc;
    bool expired = false;
    pthread_mutex_lock(&p->lock);
    p->inside++;
    for (;;) {
        if (p->closed) {
            rc = -ECANCELED;
            break;
        }
        if (p->idle != NULL) {
            stw_buf *b = p->idle;
            p->idle = *stw__buf_link(b);
            p->nidle--;
            stw__buf_revive(b);
            *out = b;
            rc = 0;
            break;
        }
        if (p->total < p->max) {
            /* Reserve the slot, then allocate unlocked: a large buffer can
             * take a while, and returns must not wait for it. */
            p->total++;
            pthread_mutex_unlock(&p->lock);
            rc = stw__buf_new_pooled(p->buf_size, pool_recycle, p, out);
            pthread_mutex_lock(&p->lock);
            if (rc < 0) {
                p->total--;
                pthread_cond_signal(&p->cond);
            }
            break;
        }
        if (expired) {
            rc = -ETIMEDOUT;
            break;
        }
        expired = wait_until(&p->cond, &p->lock, d);
    }
    p->inside--;
    bool dead = pool_is_dead(p);
    pthread_mutex_unlock(&p->lock);
    if (dead)
        pool_destroy(p);
    return rc;
}

int64_t stw_pool_trim(stw_pool *p)
{
    unsigned n;
    pthread_mutex_lock(&p->lock);
    stw_buf *idle = take_idle(p, &n);
    size_t size = p->buf_size;
    pthread_mutex_unlock(&p->lock);
    free_list(idle);
    return (int64_t)n * (int64_t)size;
}

void stw_pool_stats(const stw_pool *cp, stw_pool_stat *out)
{
    /* The lock is not part of the pool's observable state. */
    stw_pool *p = (stw_pool *)cp;
    pthread_mutex_lock(&p->lock);
    out->buf_size = p->buf_size;
    out->max = p->max;
    out->total = p->total;
    out->idle = p->nidle;
    out->outstanding = p->total - p->nidle;
    pthread_mutex_unlock(&p->lock);
}
