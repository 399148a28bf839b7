/*
 * buf_internal.h — what a buffer recycler (pool.c) needs from buf.c.
 *
 * A pooled buffer is an owner whose last unref does not free it but hands
 * it, with refcount 0, to its recycler. The recycler then either keeps it
 * idle (linked through stw__buf_link) and later revives it for a new
 * holder, or destroys it. While idle the buffer stays recorded in the
 * ledger as STW_KIND_BUF: its memory is still held, by the pool.
 */
#ifndef STEWARD_BUF_INTERNAL_H
#define STEWARD_BUF_INTERNAL_H

#include "steward/buf.h"

/* Called by the thread dropping the last reference of a pooled buffer @b;
 * @owner as given to stw__buf_new_pooled. @b has refcount 0. */
typedef void (*stw__buf_recycle_fn)(void *owner, stw_buf *b);

/* A new pooled buffer of @size bytes with refcount 1 (transfer full).
 * 0 or -ENOMEM. */
int stw__buf_new_pooled(size_t size, stw__buf_recycle_fn recycle, void *owner, stw_buf **out);

/* Give an idle pooled buffer (refcount 0) its first reference again. */
void stw__buf_revive(stw_buf *b);

/* Free an idle pooled buffer (refcount 0) and its memory. */
void stw__buf_destroy(stw_buf *b);

/* The link field of an idle pooled buffer, for the recycler's free list.
 * Meaningless while the buffer is referenced. */
stw_buf **stw__buf_link(stw_buf *b);

#endif
