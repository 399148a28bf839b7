#include "steward/chan.h"

#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/buf.h"
#include "steward/fd.h"
#include "steward/frame.h"
#include "steward/ledger.h"

struct stw_chan {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    void **items; /* ring of cap slots; len of them from head are queued */
    unsigned cap;
    unsigned head;
    unsigned len;
    stw_chan_policy policy;
    stw_chan_ops ops;
    bool closed;
    int efd;           /* -1 until stw_chan_fd() is first called */
    bool efd_readable; /* whether efd's counter is non-zero */
    uint64_t sent;
    uint64_t received;
    uint64_t dropped;
};

static void chan_unref_buf(void *item)
{
    stw_buf *b = item;
    stw_buf_unref(&b);
}

static void chan_unref_frame(void *item)
{
    stw_frame *f = item;
    stw_frame_unref(&f);
}

const stw_chan_ops stw_chan_ops_buf = {.unref = chan_unref_buf};
const stw_chan_ops stw_chan_ops_frame = {.unref = chan_unref_frame};

/* Make the eventfd's readability match "items queued or closed". Lock held,
 * so the fd and the queue never disagree for longer than a call. Writing 1
 * to an eventfd cannot fail short of counter overflow, and reading one
 * that is already zero fails with EAGAIN, which leaves the wanted state:
 * neither result needs handling. */
static void efd_sync(stw_chan *c)
{
    if (c->efd < 0)
        return;
    bool want = c->len > 0 || c->closed;
    if (want == c->efd_readable)
        return;
    uint64_t v = 1;
    ssize_t n = want ? write(c->efd, &v, sizeof(v)) : read(c->efd, &v, sizeof(v));
    (void)n;
    c->efd_readable = want;
}

int stw_chan_new(unsigned capacity, stw_chan_policy policy, const stw_chan_ops *ops, stw_chan **out)
{
    if (capacity == 0 || ops == NULL || ops->unref == NULL)
        return -EINVAL;
    if (policy != STW_CHAN_BLOCK && policy != STW_CHAN_DROP_OLDEST && policy != STW_CHAN_LATEST)
        return -EINVAL;
    if (policy == STW_CHAN_LATEST && capacity != 1)
        return -EINVAL;
    stw_chan *c = stw_calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    int rc = -ENOMEM;
    c->items = stw_calloc(capacity, sizeof(*c->items));
    if (c->items == NULL)
        goto free_chan;
    pthread_condattr_t attr;
    rc = -pthread_condattr_init(&attr);
    if (rc < 0)
        goto free_items;
    /* Deadlines are CLOCK_MONOTONIC; a wall-clock jump must not stretch
     * or cut a wait. */
    rc = -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = -pthread_cond_init(&c->not_empty, &attr);
    if (rc < 0) {
        pthread_condattr_destroy(&attr);
        goto free_items;
    }
    rc = -pthread_cond_init(&c->not_full, &attr);
    pthread_condattr_destroy(&attr);
    if (rc < 0)
        goto destroy_not_empty;
    rc = -pthread_mutex_init(&c->lock, NULL);
    if (rc < 0)
        goto destroy_not_full;
    c->cap = capacity;
    c->policy = policy;
    c->ops = *ops;
    c->efd = -1;
    int lrc = stw_ledger_record(STW_KIND_CHAN, (uintptr_t)c, 0, "chan");
    /* -EEXIST would mean a live channel's address was handed out twice. */
    STW_BUG_ON(lrc == -EEXIST);
    *out = c;
    return 0;

destroy_not_full:
    pthread_cond_destroy(&c->not_full);
destroy_not_empty:
    pthread_cond_destroy(&c->not_empty);
free_items:
    stw_free(c->items);
free_chan:
    stw_free(c);
    return rc;
}

/* Wait on @cond until signalled or @d passes. Returns true if @d has passed
 * (the caller re-checks its condition once more either way, so a wake-up
 * that raced with the timeout is never lost). */
static bool wait_until(pthread_cond_t *cond, pthread_mutex_t *m, stw_deadline d)
{
    if (d == STW_DEADLINE_NEVER) {
        pthread_cond_wait(cond, m);
        return false;
    }
    if (stw_now_ns() >= d)
        return true;
    struct timespec ts = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000};
    return pthread_cond_timedwait(cond, m, &ts) == ETIMEDOUT;
}

static void *pop_oldest(stw_chan *c)
{
    void *item = c->items[c->head];
    c->items[c->head] = NULL;
    c->head = (c->head + 1) % c->cap;
    c->len--;
    return item;
}

int stw_chan_send(stw_chan *c, void *item, stw_deadline d)
{
    if (item == NULL)
        return -EINVAL;
    void *dropped = NULL;
    bool expired = false;
    int rc;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        if (c->closed) {
            rc = -EPIPE;
            break;
        }
        if (c->len < c->cap) {
            rc = 0;
            break;
        }
        if (c->policy != STW_CHAN_BLOCK) {
            dropped = pop_oldest(c);
            c->dropped++;
            rc = 1;
            break;
        }
        if (expired) {
            rc = -ETIMEDOUT;
            break;
        }
        expired = wait_until(&c->not_full, &c->lock, d);
    }
    if (rc >= 0) {
        c->items[(c->head + c->len) % c->cap] = item;
        c->len++;
        c->sent++;
        pthread_cond_signal(&c->not_empty);
        efd_sync(c);
    }
    pthread_mutex_unlock(&c->lock);
    /* Outside the lock: releasing may take other locks (a pool's) or be
     * slow, and must not stall the channel. */
    if (dropped != NULL)
        c->ops.unref(dropped);
    return rc;
}

int stw_chan_recv(stw_chan *c, void **item, stw_deadline d)
{
    bool expired = false;
    int rc;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        /* Close empties the queue, so items left here mean "open". */
        if (c->len > 0) {
            *item = pop_oldest(c);
            c->received++;
            pthread_cond_signal(&c->not_full);
            efd_sync(c);
            rc = 0;
            break;
        }
        if (c->closed) {
            rc = -EPIPE;
            break;
        }
        if (expired) {
            rc = -ETIMEDOUT;
            break;
        }
        expired = wait_until(&c->not_empty, &c->lock, d);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void stw_chan_close(stw_chan *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->closed = true;
    unsigned head = c->head;
    unsigned n = c->len;
    c->len = 0;
    pthread_cond_broadcast(&c->not_empty);
    pthread_cond_broadcast(&c->not_full);
    efd_sync(c);
    pthread_mutex_unlock(&c->lock);
    /* Once closed nobody writes the ring again, so the held items can be
     * released without the lock (their unref may be slow or take locks). */
    for (unsigned i = 0; i < n; i++) {
        unsigned slot = (head + i) % c->cap;
        void *item = c->items[slot];
        c->items[slot] = NULL;
        c->ops.unref(item);
    }
}

void stw_chan_free(stw_chan **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    stw_chan *c = *cp;
    *cp = NULL;
    stw_chan_close(c);
    stw_fd_close(&c->efd);
    stw_ledger_release(STW_KIND_CHAN, (uintptr_t)c);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->not_full);
    pthread_cond_destroy(&c->not_empty);
    stw_free(c->items);
    stw_free(c);
}

int stw_chan_fd(stw_chan *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->efd < 0) {
        int fd = stw_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC, "eventfd:chan");
        if (fd < 0) {
            pthread_mutex_unlock(&c->lock);
            return fd;
        }
        c->efd = fd;
        c->efd_readable = false;
        efd_sync(c);
    }
    int fd = c->efd;
    pthread_mutex_unlock(&c->lock);
    return fd;
}

void stw_chan_stats(const stw_chan *cc, stw_chan_stat *out)
{
    /* The lock is not part of the channel's observable state. */
    stw_chan *c = (stw_chan *)cc;
    pthread_mutex_lock(&c->lock);
    out->len = c->len;
    out->capacity = c->cap;
    out->policy = c->policy;
    out->closed = c->closed;
    out->sent = c->sent;
    out->received = c->received;
    out->dropped = c->dropped;
    pthread_mutex_unlock(&c->lock);
}
