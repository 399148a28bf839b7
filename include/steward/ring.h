/*
 * steward/ring.h — a byte ring with a hard capacity, for stream parsing.
 *
 * Model
 *   A ring holds at most `capacity` bytes, fixed when it is created: it
 *   never grows. Bytes go in at the tail (stw_ring_write, stw_ring_read_fd,
 *   or stw_ring_write_ptr + stw_ring_commit) and leave from the head
 *   (stw_ring_consume). Offsets in peek/find count from the head, so a
 *   parser can look ahead (find a multipart boundary, peek a header) before
 *   it decides how much to consume. A stream that sends more than the
 *   parser can make sense of fills the ring, and the writer gets -ENOBUFS:
 *   the unbounded `buffer += chunk` of a naive MJPEG reader cannot happen by
 *   construction, and the owner decides what a full ring means (drop the
 *   connection, resynchronise, ...).
 *
 *   When a ring becomes empty its head moves back to the start of the
 *   storage, so the contiguous spans offered by stw_ring_write_ptr() and
 *   stw_ring_read_ptr() are as large as possible.
 *
 * Threads
 *   A ring is single-threaded by design: it has no lock, and its owner
 *   serialises every call (one parser per connection owns one ring).
 *
 * Ledger
 *   Each ring is recorded under the user kind "ring" (id = the ring
 *   pointer, size = its capacity); its storage is steward heap
 *   (STW_KIND_HEAP) like every other allocation.
 *
 * Invariants
 *   - 0 <= len <= capacity; len + space == capacity.
 *   - Consuming or committing more than is available is a bug (STW_BUG).
 */
#ifndef STEWARD_RING_H
#define STEWARD_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_ring stw_ring;

/* Create a ring of @capacity bytes (> 0). On success *@out is owned by the
 * caller (transfer full; free with stw_ring_free). Returns 0, -EINVAL for a
 * zero capacity, -ENOMEM (and *@out untouched) on allocation failure. */
STW_API int stw_ring_new(size_t capacity, stw_ring **out);

/* Free the ring and its bytes. Accepts NULL and *@r == NULL; sets *@r = NULL. */
STW_API void stw_ring_free(stw_ring **r);

/* Bytes held, free space, and the fixed capacity. @r is borrowed. */
STW_API size_t stw_ring_len(const stw_ring *r);
STW_API size_t stw_ring_space(const stw_ring *r);
STW_API size_t stw_ring_capacity(const stw_ring *r);

/* Append @len bytes of @data (borrowed, copied), all or nothing.
 * Returns 0, or -ENOBUFS (ring unchanged) when they do not fit. */
STW_API int stw_ring_write(stw_ring *r, const void *data, size_t len);

/* Copy up to @len bytes starting @off bytes after the head into @dst,
 * without consuming them. Returns the number of bytes copied (0 when @off
 * is at or beyond the end of the data). */
STW_API size_t stw_ring_peek(const stw_ring *r, size_t off, void *dst, size_t len);

/* Drop @len bytes from the head; @len > stw_ring_len() is a bug. */
STW_API void stw_ring_consume(stw_ring *r, size_t len);

/* Offset (from the head) of the first occurrence of @needle (@nlen bytes,
 * borrowed) that starts at or after @from, searching across the wrap
 * point. Returns the offset, -ENOENT when there is none, -EINVAL when
 * @nlen is 0. */
STW_API ssize_t stw_ring_find(const stw_ring *r, size_t from, const void *needle, size_t nlen);

/* Zero-copy write: *@p is set to the largest contiguous free span at the
 * tail, and its length is returned (0 when full; *@p is then NULL). The
 * span is borrowed until the next call on the ring. Fill some prefix of it
 * and then make those bytes part of the ring with stw_ring_commit(). */
STW_API size_t stw_ring_write_ptr(stw_ring *r, uint8_t **p);

/* Append the @len bytes written through stw_ring_write_ptr(); @len larger
 * than the span that call returned is a bug. */
STW_API void stw_ring_commit(stw_ring *r, size_t len);

/* Zero-copy read: *@p is set to the largest contiguous span of data at the
 * head, and its length is returned (0 when empty; *@p is then NULL). The
 * span is borrowed until the next call that changes the ring; release the
 * bytes with stw_ring_consume(). */
STW_API size_t stw_ring_read_ptr(const stw_ring *r, const uint8_t **p);

/* Read from @fd (borrowed; a socket or pipe, blocking or not) straight into
 * the ring, at most @max bytes (0 = as many as fit), in one read() or
 * readv() across the wrap point. EINTR is retried.
 * Returns the number of bytes read (> 0), 0 at end of file, -ENOBUFS when
 * the ring is full (nothing is read), -EAGAIN when a non-blocking @fd has
 * no data, or another -errno from read(). */
STW_API ssize_t stw_ring_read_fd(stw_ring *r, int fd, size_t max);

/* Drop everything. */
STW_API void stw_ring_clear(stw_ring *r);

#ifdef __cplusplus
}
#endif
#endif
