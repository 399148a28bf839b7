/*
 * steward/chan.h — a bounded, pollable queue of references.
 *
 * Model
 *   A channel carries *references* (void *items: stw_frame *, stw_buf *, or
 *   anything with an unref operation) from senders to receivers, first in,
 *   first out, holding at most `capacity` of them. What happens when it is
 *   full is declared once, at creation, by its policy:
 *     STW_CHAN_BLOCK        the sender waits for room until its deadline;
 *     STW_CHAN_DROP_OLDEST  the oldest queued item is dropped (released
 *                           through ops->unref) to make room;
 *     STW_CHAN_LATEST       capacity 1: a new item replaces the held one,
 *                           so the receiver always gets the newest (a slow
 *                           viewer costs one frame, never a backlog).
 *   So a channel never grows, and nothing it drops is leaked.
 *
 *   Closing a channel (stw_chan_close) wakes every waiting sender and
 *   receiver, releases every item still queued through ops->unref, and makes
 *   every later send and receive fail with -EPIPE at once. Items are not
 *   drained after close: closing means "stop", and what nobody received is
 *   released right there.
 *
 *   stw_chan_fd() gives an eventfd that is readable exactly while items are
 *   queued or the channel is closed, so an event loop can wait on it and
 *   then call stw_chan_recv() with STW_DEADLINE_NOW.
 *
 * Ownership
 *   Every item in the channel is one reference the channel owns. A
 *   successful send transfers the caller's reference to the channel (transfer
 *   full); a failed send leaves it with the caller. A successful receive
 *   transfers it to the receiver. Each item sent is therefore, exactly once,
 *   either received or released by the channel (dropped or at close).
 *
 * Lifetime
 *   stw_chan_new/stw_chan_free: the channel is not refcounted. The owner
 *   closes it (waking everyone), makes sure no other thread is still inside
 *   any stw_chan_* call on it (joins them, e.g. by closing their scope),
 *   and then frees it. This is the scope order: cancel, join, clean up.
 *
 * Ledger
 *   Recorded as STW_KIND_CHAN (size 0); the eventfd, once created, as
 *   STW_KIND_FD labelled "eventfd:chan".
 *
 * Thread safety
 *   Any number of threads may send, receive, close and read stats at once.
 *   ops->unref is called without the channel's lock held.
 */
#ifndef STEWARD_CHAN_H
#define STEWARD_CHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum stw_chan_policy {
    STW_CHAN_BLOCK,
    STW_CHAN_DROP_OLDEST,
    STW_CHAN_LATEST,
} stw_chan_policy;

/* How the channel releases an item it drops or still holds at close:
 * @unref takes the item's reference (transfer full). */
typedef struct stw_chan_ops {
    void (*unref)(void *item);
} stw_chan_ops;

/* Ready-made ops for channels of stw_buf * and of stw_frame * items. */
STW_API extern const stw_chan_ops stw_chan_ops_buf;
STW_API extern const stw_chan_ops stw_chan_ops_frame;

typedef struct stw_chan stw_chan;

typedef struct stw_chan_stat {
    unsigned len; /* items queued now */
    unsigned capacity;
    stw_chan_policy policy;
    bool closed;
    uint64_t sent;     /* successful sends */
    uint64_t received; /* successful receives */
    uint64_t dropped;  /* items dropped by DROP_OLDEST / LATEST to make room */
} stw_chan_stat;

/*
 * A new, open, empty channel. @capacity >= 1, and exactly 1 for
 * STW_CHAN_LATEST. @ops is copied (the caller keeps its own) and
 * @ops->unref must be set. *@out is owned by the caller (transfer full),
 * freed with stw_chan_free(). Returns 0, -EINVAL or -ENOMEM.
 */
STW_API int stw_chan_new(unsigned capacity, stw_chan_policy policy, const stw_chan_ops *ops,
                         stw_chan **out);

/*
 * Queue @item (non-NULL). On success the channel owns the caller's
 * reference (transfer full) and the return is 0, or 1 when an older item
 * was dropped to make room (DROP_OLDEST and LATEST), so producers can count
 * drops. A BLOCK channel that is full waits for room until @d.
 * On failure the caller still owns @item: -ETIMEDOUT (BLOCK, still full at
 * @d; at once for STW_DEADLINE_NOW), -EPIPE (closed, before or while
 * waiting), -EINVAL (@item is NULL).
 */
STW_API int stw_chan_send(stw_chan *c, void *item, stw_deadline d);

/*
 * Take the oldest item, waiting for one until @d. On success *@item is the
 * caller's reference (transfer full) and the return is 0. Otherwise *@item
 * is untouched: -ETIMEDOUT (still empty at @d; at once for
 * STW_DEADLINE_NOW) or -EPIPE (closed, before or while waiting).
 */
STW_API int stw_chan_recv(stw_chan *c, void **item, stw_deadline d);

/* Close @c: wake all waiters, release every queued item through
 * ops->unref, fail every later send and receive with -EPIPE. Idempotent. */
STW_API void stw_chan_close(stw_chan *c);

/* Close *@c if still open, close its eventfd, free it; sets *@c to NULL.
 * Accepts NULL and *@c == NULL. No other thread may be inside a stw_chan_*
 * call on it, or start one. */
STW_API void stw_chan_free(stw_chan **c);

/*
 * A descriptor readable (POLLIN) exactly while items are queued or the
 * channel is closed. Created on the first call; later calls return the same
 * one. It stays owned by the channel (borrowed, valid until stw_chan_free):
 * poll it, never read, write or close it. Returns the fd or -errno
 * (EMFILE, ...) if it could not be created.
 */
STW_API int stw_chan_fd(stw_chan *c);

/* Current numbers of @c (borrowed) into *@out. */
STW_API void stw_chan_stats(const stw_chan *c, stw_chan_stat *out);

#ifdef __cplusplus
}
#endif
#endif
