/*
 * steward/buf.h — atomically refcounted byte buffers and views of them.
 *
 * Model
 *   A stw_buf is a shared, reference-counted handle on a run of bytes. Any
 *   thread may take a reference (stw_buf_ref) on a buffer it already holds a
 *   reference to, and every reference is dropped exactly once
 *   (stw_buf_unref). When the last reference goes, the memory is released:
 *   freed (stw_buf_new), handed to the free function given at wrap time
 *   (stw_buf_wrap), or returned to its pool (stw_pool_get, see pool.h).
 *
 *   There are two kinds of buffer, and which one a handle is lives in the
 *   object, set by the function that made it; the user never marks it:
 *     - an *owner* owns its memory (stw_buf_new, stw_buf_wrap, pools);
 *     - a *view* (stw_buf_view) is a window [off, off + len) into an owner's
 *       memory. It holds one reference on that owner for its whole life and
 *       never frees the owner's memory itself: the memory goes when the last
 *       reference to the owner goes, and a live view is such a reference.
 *       A view of a view refers directly to the owner (the root), so chains
 *       never grow.
 *   This is the owned/borrowed split of seed 003 made structural: a pointer
 *   into someone else's memory is always a view, and dropping a view can
 *   only drop a reference.
 *
 *   The bytes of a buffer are shared by everyone holding it. Write only to a
 *   buffer that is writable (stw_buf_is_writable: the caller is the sole
 *   holder of the memory) or first make it so with stw_buf_make_writable
 *   (copy on write).
 *
 *   Zero-copy hand-off: to give a buffer's bytes to something that releases
 *   them later through a callback (libevent's evbuffer_add_reference), take
 *   a reference for it and let its cleanup callback drop that reference:
 *
 *       stw_buf *ref = stw_buf_ref(b);
 *       if (evbuffer_add_reference(out, stw_buf_data(ref), stw_buf_size(ref),
 *                                  stw_buf_unref_cb, ref) != 0)
 *           stw_buf_unref(&ref);      (libevent did not take it)
 *
 *   stw_buf_unref_cb has exactly the signature of libevent's
 *   evbuffer_ref_cleanup_cb, so one buffer can go to N sockets with N
 *   references and no copies, and every socket error path releases its one.
 *
 * Ledger
 *   Every buffer object is recorded as STW_KIND_BUF while it exists: size is
 *   the bytes it owns (0 for views, whose bytes belong to their root). The
 *   memory of stw_buf_new buffers comes from stw_malloc, so it also shows as
 *   STW_KIND_HEAP. Idle pool buffers stay recorded: they are still held.
 *
 * Invariants
 *   - Dropping a reference that is not held (refcount below zero) or taking
 *     one on a dead buffer is a bug: STW_BUG() aborts.
 *   - The memory of an owner is released exactly once, after every view of
 *     it is gone.
 *   - stw_buf_data() and stw_buf_size() never change for the life of a
 *     handle; only stw_buf_make_writable() swaps the caller's handle.
 */
#ifndef STEWARD_BUF_H
#define STEWARD_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_buf stw_buf;

/* Releases the memory of a wrapped buffer: @opaque and @data as given to
 * stw_buf_wrap(). Called exactly once, by whichever thread drops the last
 * reference. */
typedef void (*stw_buf_free_fn)(void *opaque, void *data);

/*
 * A new buffer of @size bytes (contents uninitialised; @size may be 0).
 * On success *@out is a new reference (transfer full) with refcount 1.
 * Returns 0 or -ENOMEM (*@out untouched).
 */
STW_API int stw_buf_new(size_t size, stw_buf **out);

/*
 * Wrap @size bytes at @data in a buffer. On success the buffer takes
 * ownership of @data (transfer full): @free_fn(@opaque, @data) runs once,
 * when the last reference is dropped. A NULL @free_fn means @data came from
 * stw_malloc() and is released with stw_free(). @data may be NULL only when
 * @size is 0.
 * On failure (-ENOMEM, or -EINVAL for NULL @data with @size > 0) nothing
 * happened: the caller still owns @data and @free_fn is not called.
 */
STW_API int stw_buf_wrap(void *data, size_t size, stw_buf_free_fn free_fn, void *opaque,
                         stw_buf **out);

/*
 * A view of @len bytes of @parent starting at @off (@parent borrowed). The
 * view holds its own reference on the root owner of @parent, so the caller
 * may drop @parent at any time. *@out is a new reference (transfer full).
 * Returns 0, -EINVAL if [@off, @off + @len) does not lie inside @parent, or
 * -ENOMEM; on failure *@out is untouched and no reference was taken.
 */
STW_API int stw_buf_view(stw_buf *parent, size_t off, size_t len, stw_buf **out);

/* Take another reference on @b, which the caller holds (borrowed). Returns
 * @b, now carrying one more reference the caller owns. */
STW_API stw_buf *stw_buf_ref(stw_buf *b);

/* Drop the caller's reference *@b (transfer full) and set *@b to NULL.
 * Accepts NULL and *@b == NULL. The last reference releases the memory. */
STW_API void stw_buf_unref(stw_buf **b);

/* Drop the reference @buf (a stw_buf *): the evbuffer_ref_cleanup_cb
 * signature. @data and @len are ignored. */
STW_API void stw_buf_unref_cb(const void *data, size_t len, void *buf);

/* First byte of @b (borrowed; valid while the caller holds @b). Never NULL,
 * even for a size 0 buffer, except a wrap of (NULL, 0). */
STW_API uint8_t *stw_buf_data(stw_buf *b);

/* Size in bytes of @b. */
STW_API size_t stw_buf_size(const stw_buf *b);

/*
 * True if the caller's reference is the only way to reach @b's memory: @b's
 * refcount is 1 and, for a view, the view is the only reference to its
 * root; for an owner, refcount 1 also means no view of it is alive (views
 * hold references). Only then may the caller write to the bytes.
 */
STW_API bool stw_buf_is_writable(const stw_buf *b);

/*
 * Copy on write. If *@b is writable, do nothing. Otherwise replace *@b with
 * a new buffer holding a private copy of its bytes and drop the caller's
 * reference on the old one. Returns 0, or -ENOMEM with *@b unchanged and
 * still referenced.
 */
STW_API int stw_buf_make_writable(stw_buf **b);

#ifdef __cplusplus
}
#endif
#endif
