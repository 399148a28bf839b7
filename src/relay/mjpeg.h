/*
 * relay/mjpeg.h — parser for MJPEG over HTTP (multipart/x-mixed-replace),
 * private to the relay.
 *
 * Model
 *   A camera's response body is a sequence of parts, each "--BOUNDARY",
 *   part headers, a blank line, one JPEG. Lines end in CRLF or in a bare
 *   LF (both are common). Bytes are fed in whatever chunks the socket
 *   delivers; every complete JPEG is handed out as a refcounted stw_buf.
 *   The parser's memory is a stw_ring of fixed capacity: a camera that
 *   sends garbage, a frame larger than the cap, or headers that never end
 *   cannot make it grow. Instead it drops what cannot be a frame and
 *   resynchronises on the next boundary, counting what it dropped.
 *
 *   The boundary comes from the response's Content-Type, or, for servers
 *   that announce a multipart body as application/octet-stream (ffmpeg's
 *   and VLC's mpjpeg), from the body's first line that starts with "--".
 *
 *   A part with a Content-Length is taken by length when that many bytes
 *   are a JPEG; when they are not, or a boundary comes first, the length
 *   was wrong and the part ends at the next boundary. A part without one
 *   ends at the next boundary. A part is a frame only if it looks like a
 *   JPEG (starts with FF D8, ends with FF D9 once trailing line breaks are
 *   removed); anything else is counted as a bad part. A frame cut short by
 *   a new boundary (the camera restarted mid-frame) is dropped the same
 *   way.
 *
 *   Cost: each search resumes where the last one stopped, so the work per
 *   frame is linear in its size however small the reads (stats.scanned
 *   counts it).
 *
 * Ownership
 *   Frames passed to the callback are transfer full: the callback owns the
 *   buffer and unrefs it when done.
 */
#ifndef STW_RELAY_MJPEG_H
#define STW_RELAY_MJPEG_H

#include <stddef.h>
#include <stdint.h>

#include "steward/buf.h"

typedef struct relay_mjpeg relay_mjpeg;

typedef struct relay_mjpeg_stats {
    uint64_t frames;          /* JPEGs handed out */
    uint64_t garbage_bytes;   /* bytes dropped while looking for a boundary */
    uint64_t bad_parts;       /* parts that were not a JPEG, or cut short */
    uint64_t oversize;        /* parts larger than the frame cap, skipped */
    uint64_t resyncs;         /* times the parser had to search for a boundary */
    uint64_t length_mismatch; /* parts whose Content-Length was wrong */
    uint64_t scanned;         /* bytes examined by searches: linear in the input */
} relay_mjpeg_stats;

/* Called once per complete frame; @frame is transfer full. Return 0 to go
 * on, or a negative errno to stop feeding (relay_mjpeg_feed returns it). */
typedef int (*relay_mjpeg_frame_fn)(void *ud, stw_buf *frame);

/* @boundary: as in the Content-Type header, with or without a leading
 * "--" (copied), or NULL to learn it from the body. @max_frame: the
 * largest JPEG accepted; the ring holds twice that. Returns 0, -EINVAL
 * (empty or over-long boundary, zero cap), -ENOMEM. */
int relay_mjpeg_new(const char *boundary, size_t max_frame, relay_mjpeg **out);
void relay_mjpeg_free(relay_mjpeg **p);

/* Feed @len bytes (borrowed). Returns the number of frames handed out, or
 * the callback's error, or -ENOMEM when a frame could not be allocated
 * (the frame is dropped; the parser stays usable). */
int relay_mjpeg_feed(relay_mjpeg *p, const void *data, size_t len, relay_mjpeg_frame_fn fn,
                     void *ud);

/* Forget any partial part: the connection was closed or restarted. */
void relay_mjpeg_reset(relay_mjpeg *p);

void relay_mjpeg_get_stats(const relay_mjpeg *p, relay_mjpeg_stats *out);

/* The value of the last X-Steward-Relay-Chain part header seen ("" if
 * none yet): a steward relay names in every part the relays the frames
 * came through (see RELAY_CHAIN_HEADER in relay.h). Borrowed, lives as
 * long as @p; a value longer than a header line the parser looks into is
 * not taken. */
const char *relay_mjpeg_chain(const relay_mjpeg *p);

/* The boundary in use, without the "--" (borrowed, lives as long as @p),
 * or NULL while it is still to be learned from the body. */
const char *relay_mjpeg_get_boundary(const relay_mjpeg *p);

/* Extract the boundary from a Content-Type value such as
 * `multipart/x-mixed-replace; boundary="frame"` into @out (@len bytes).
 * Returns 0, -EINVAL if it is not multipart or has no boundary, -ENOSPC. */
int relay_mjpeg_boundary(const char *content_type, char *out, size_t len);

#endif
