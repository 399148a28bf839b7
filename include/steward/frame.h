/*
 * steward/frame.h — a media frame: one buffer plus its metadata.
 *
 * Model
 *   A stw_frame is an immutable, atomically refcounted pair of a buffer
 *   reference and a stw_frame_meta (sequence number, timestamps, format,
 *   picture size). Sources make one frame per captured picture or chunk;
 *   the hub and every viewer share it by reference (stw_frame_ref), so a
 *   frame fanned out to N viewers is one buffer and N+1 references. The
 *   frame holds exactly one reference on its buffer, dropped when the last
 *   frame reference goes.
 *
 *   Frames never change after stw_frame_new(), so any thread holding a
 *   reference may read the metadata and the bytes without locks. The bytes
 *   are shared: to modify them, take the buffer (stw_buf_ref), make it
 *   writable (stw_buf_make_writable) and build a new frame.
 *
 * Ledger
 *   Each frame is recorded as STW_KIND_FRAME (size 0: its bytes are counted
 *   by its buffer's STW_KIND_BUF record).
 *
 * Invariants
 *   - Dropping a frame reference that is not held is a bug: STW_BUG().
 *   - A frame's buffer lives at least as long as the frame.
 */
#ifndef STEWARD_FRAME_H
#define STEWARD_FRAME_H

#include <stdint.h>

#include "steward/buf.h"
#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Four-character code of a pixel or stream format, V4L2 byte order:
 * STW_FOURCC('M','J','P','G') is V4L2_PIX_FMT_MJPEG. */
#define STW_FOURCC(a, b, c, d)                                                                     \
    ((uint32_t)(uint8_t)(a) | ((uint32_t)(uint8_t)(b) << 8) | ((uint32_t)(uint8_t)(c) << 16) |     \
     ((uint32_t)(uint8_t)(d) << 24))

typedef struct stw_frame_meta {
    uint64_t seq;        /* position in its stream, from the source */
    int64_t pts_ns;      /* presentation time, stream clock */
    int64_t captured_ns; /* CLOCK_MONOTONIC time it was captured or received */
    uint32_t format;     /* STW_FOURCC */
    uint32_t width, height;
} stw_frame_meta;

typedef struct stw_frame stw_frame;

/*
 * A new frame over @buf (borrowed: the frame takes its own reference, the
 * caller keeps theirs) with a copy of @meta (borrowed; NULL means all
 * zero). *@out is a new reference (transfer full).
 * Returns 0 or -ENOMEM; on failure no reference on @buf was taken.
 */
STW_API int stw_frame_new(stw_buf *buf, const stw_frame_meta *meta, stw_frame **out);

/* Take another reference on @f, which the caller holds. Returns @f. */
STW_API stw_frame *stw_frame_ref(stw_frame *f);

/* Drop the caller's reference *@f (transfer full) and set *@f to NULL.
 * Accepts NULL and *@f == NULL. The last one drops the buffer reference. */
STW_API void stw_frame_unref(stw_frame **f);

/* The frame's buffer (borrowed: valid while the caller holds @f; take a
 * reference with stw_buf_ref to keep it longer). */
STW_API stw_buf *stw_frame_buf(const stw_frame *f);

/* The frame's metadata (borrowed, valid while the caller holds @f). */
STW_API const stw_frame_meta *stw_frame_meta_get(const stw_frame *f);

#ifdef __cplusplus
}
#endif
#endif
