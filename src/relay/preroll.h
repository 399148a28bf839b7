/*
 * src/relay/preroll.h — a bounded ring of recent JPEG frames with their
 * capture times: the pre-roll of a JPEG input (test pattern, MJPEG camera)
 * recording in mode "motion"; private to the relay.
 *
 * Model
 *   Frames are appended in time order (a time older than the newest is
 *   taken as the newest's). The ring is bounded three ways at once: at most
 *   max_frames frames, at most max_bytes bytes of them, and (relay_preroll_
 *   trim) nothing older than a given time; the oldest go first. Whatever
 *   the bounds, the newest frame is kept (a single frame over max_bytes is
 *   refused at append instead). Readers look frames up by time: where a
 *   pre-roll starts (the oldest frame at or after a time) and which frame
 *   stands for a moment (the newest at or before it).
 *
 * Ownership
 *   The ring owns its entries array (the ledger's heap) and one reference
 *   of each frame's buffer; relay_preroll_append takes the caller's
 *   reference (transfer full); relay_preroll_at returns a borrowed one.
 *   The frames are copies, not the source's pool buffers: a ring holding
 *   seconds of frames must not starve the source's pool.
 *
 * Threads
 *   One thread uses a ring (the recorder's).
 */
#ifndef STW_RELAY_PREROLL_H
#define STW_RELAY_PREROLL_H

#include <stddef.h>
#include <stdint.h>

#include "steward/buf.h"

typedef struct relay_preroll_ent {
    stw_buf *buf;
    int64_t ns; /* captured, stw_now_ns clock */
} relay_preroll_ent;

typedef struct relay_preroll {
    relay_preroll_ent *ent; /* max_frames of them */
    unsigned max_frames, head, n;
    size_t max_bytes, bytes;
} relay_preroll;

/* An empty ring of at most @max_frames (>= 1) frames and @max_bytes bytes.
 * Returns 0, -EINVAL or -ENOMEM. */
int relay_preroll_init(relay_preroll *p, unsigned max_frames, size_t max_bytes);

/* Drop every frame and free the array; the ring is empty and unusable
 * until initialised again. Accepts a ring never initialised (all zero). */
void relay_preroll_free(relay_preroll *p);

/* Drop every frame; the ring stays usable. */
void relay_preroll_clear(relay_preroll *p);

/* Append @buf (transfer full) captured at @ns; the oldest frames go to
 * keep within max_frames and max_bytes. A frame larger than max_bytes is
 * refused: -E2BIG (the reference is dropped). Returns 0. */
int relay_preroll_append(relay_preroll *p, stw_buf *buf, int64_t ns);

/* Drop frames captured before @from_ns, keeping at least the newest. */
void relay_preroll_trim(relay_preroll *p, int64_t from_ns);

/* The @i-th frame, 0 the oldest (borrowed); @i < p->n. */
const relay_preroll_ent *relay_preroll_get(const relay_preroll *p, unsigned i);

/* The capture time of the oldest frame at or after @from_ns and after
 * @floor_ns (where a pre-roll starts), or 0 if there is none. */
int64_t relay_preroll_start(const relay_preroll *p, int64_t from_ns, int64_t floor_ns);

/* The frame that stands for the moment @t_ns: the newest captured at or
 * before it, else the oldest; NULL when the ring is empty. Borrowed. */
stw_buf *relay_preroll_at(const relay_preroll *p, int64_t t_ns);

/* The frame rate over the ring (frames per second, rounded, clamped to
 * @lo..@hi), or @dflt with fewer than 3 frames. */
unsigned relay_preroll_rate(const relay_preroll *p, unsigned lo, unsigned hi, unsigned dflt);

#endif
