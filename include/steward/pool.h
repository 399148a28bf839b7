/*
 * steward/pool.h — a bounded recycler of fixed-size buffers.
 *
 * Model
 *   A pool hands out owner buffers (see buf.h) of one size, at most
 *   @max_bufs of them in existence at once. When the last reference to a
 *   pool buffer is dropped (by whichever thread, through stw_buf_unref, a
 *   view going away, a frame or a socket cleanup), the buffer goes back to
 *   the pool instead of being freed, and the next stw_pool_get() hands it
 *   out again: steady-state streaming allocates nothing (FFmpeg's
 *   AVBufferPool). A recycled buffer keeps the bytes it had; nothing is
 *   cleared.
 *
 *   When all @max_bufs buffers are out, stw_pool_get() waits for one to come
 *   back, until its deadline. This is the back-pressure that keeps a slow
 *   consumer from growing memory: a producer that cannot get a buffer drops
 *   its frame instead of queueing it.
 *
 * Lifetime
 *   The pool is kept alive by its handles, by every buffer it has handed
 *   out, and by every thread inside stw_pool_get(). stw_pool_close() only
 *   marks the pool closed, frees its idle buffers, wakes waiters (they
 *   return -ECANCELED) and drops the caller's handle; each buffer still out
 *   is freed when it comes back, and the last one to come back frees the
 *   pool. So closing a pool never invalidates a buffer anyone holds.
 *
 *   A handle is needed for each thread that may call stw_pool_get(): take
 *   one with stw_pool_ref() before starting the thread, and drop it with
 *   stw_pool_unref() when the thread is done. A thread blocked in
 *   stw_pool_get() on a handle that another thread closes returns
 *   -ECANCELED safely, but no new call may start on a handle after it was
 *   dropped. Dropping the last handle closes the pool.
 *
 * Ledger
 *   The pool is recorded as STW_KIND_POOL (size 0). Its buffers, idle or
 *   out, are STW_KIND_BUF records labelled "buf:pool" with size @buf_size.
 *
 * Thread safety
 *   All functions may be called concurrently on handles the callers hold.
 */
#ifndef STEWARD_POOL_H
#define STEWARD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "steward/buf.h"
#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_pool stw_pool;

typedef struct stw_pool_stat {
    size_t buf_size;
    unsigned max;         /* max_bufs given at creation */
    unsigned total;       /* buffers that exist: idle + outstanding */
    unsigned idle;        /* in the pool, ready for stw_pool_get */
    unsigned outstanding; /* handed out and not yet back */
} stw_pool_stat;

/*
 * A new pool of buffers of @buf_size bytes, at most @max_bufs (>= 1) of
 * them at once. Buffers are allocated on demand, not up front. *@out is the
 * caller's handle (transfer full), released with stw_pool_close() or
 * stw_pool_unref(). Returns 0, -EINVAL (@max_bufs == 0) or -ENOMEM.
 */
STW_API int stw_pool_new(size_t buf_size, unsigned max_bufs, stw_pool **out);

/* Another handle on @p, which the caller holds (borrowed). Returns @p. */
STW_API stw_pool *stw_pool_ref(stw_pool *p);

/* Drop the handle *@p without closing the pool (unless it was the last
 * handle) and set *@p to NULL. Accepts NULL and *@p == NULL. */
STW_API void stw_pool_unref(stw_pool **p);

/*
 * Get a buffer of the pool's size with refcount 1 (transfer full): an idle
 * one if there is one, else a new one while fewer than max_bufs exist,
 * else wait for one to come back until @d.
 * Returns 0, -ETIMEDOUT when @d passed with all buffers out (at once for
 * STW_DEADLINE_NOW or any deadline already past), -ECANCELED when the pool
 * is or becomes closed, or -ENOMEM. On failure *@out is untouched.
 */
STW_API int stw_pool_get(stw_pool *p, stw_deadline d, stw_buf **out);

/*
 * Close the pool and drop the caller's handle *@p; sets *@p to NULL.
 * Accepts NULL and *@p == NULL; closing a pool another handle already
 * closed just drops this handle. Idle buffers are freed now, buffers still
 * out when they come back; the pool itself once no handle, buffer or
 * waiter is left.
 */
STW_API void stw_pool_close(stw_pool **p);

/* Free the idle buffers. Returns the number of bytes of buffer memory
 * freed (buffer count times buf_size). */
STW_API int64_t stw_pool_trim(stw_pool *p);

/* Current numbers of @p (borrowed) into *@out. */
STW_API void stw_pool_stats(const stw_pool *p, stw_pool_stat *out);

#ifdef __cplusplus
}
#endif
#endif
