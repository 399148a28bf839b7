/*
 * src/relay/recorder.h — one input's recorder: a supervised ffmpeg child
 * writing fragmented MP4 segments into session folders (rec.h); private to
 * the relay.
 *
 * Model
 *   A recorder is a thread in its own scope ("record", a child of the
 *   input's owner scope, so deleting the input stops it) running one job
 *   (relay/child.h): `ffmpeg ... -i pipe:0 ... -f segment` with the
 *   segment muxer cutting every segment_s seconds on a keyframe into
 *   DIR/{input}/{YYYY-MM-DD}/{HH-MM-SS}/{YYYY-MM-DDTHH-MM-SSZ}.mp4, each
 *   MP4 fragmented about once a second (frag_keyframe + frag_duration), so
 *   a child killed at any moment leaves a file that plays up to its last
 *   whole fragment. The child opens each segment under a staging name of
 *   its own (".part-{child}-{n}.mp4"); the recorder, reading the child's
 *   "Opening" lines, renames it to the second it was opened, or the first
 *   later second not taken (relay_rec_claim, rec.h): a burst of segments
 *   within one second (a backlog after a stall) never overwrites one.
 *   A segment the child has closed is closed once more under its name so
 *   that the watcher announces it finished (relay_rec_announce_closed).
 *
 *   What goes into the child's stdin depends on the input:
 *     ffmpeg inputs   the input's MPEG-TS (a relay_ts reader of its own, so
 *                     every child starts at PAT/PMT and a keyframe), copied
 *                     (-c copy): H.264/H.265 as the camera sent them;
 *     test, mjpeg     the hub's JPEG frames as they are published (latest
 *                     wins: a frame is skipped while the previous one is
 *                     still being written), time-stamped by the wall clock
 *                     and encoded to H.264 (libx264 ultrafast, a keyframe a
 *                     second) so that browsers play them.
 *
 *   Sessions: a session starts when the recorder sees source data (bytes
 *   of the MPEG-TS, or camera/pattern frames — not "NO SIGNAL" cards) and
 *   has none running; it ends when the source has sent nothing for
 *   RELAY_RECORDER_GAP_MS, when the janitor reports the disk full, and when
 *   the recorder stops. Ending a session closes the child's stdin, and
 *   ffmpeg finishes the segment it writes (its last fragment and the
 *   trailer) before it exits; one that does not within stdin_eof_ms gets
 *   SIGTERM, then SIGKILL. A child that dies (crash, kill -9, ENOSPC) is
 *   restarted with backoff in the same session (at least 1.5 s).
 *   recorder.c's want_session() is the one place a session is allowed to
 *   start or made to end.
 *
 *   Mode "motion" (in->record.motion, fixed for the recorder's life): a
 *   session also needs motion, from motion-start (relay_motion_active) to
 *   post_roll seconds after motion-end, motion within the post-roll
 *   continuing it (relay_rec_gate, rec.h). Its first child starts
 *   pre_roll seconds back, never before the last session ended: an
 *   ffmpeg input's reader at an older retained keyframe of the MPEG-TS
 *   (relay_ts_feed_open_at; the timestamps are the camera's), a JPEG
 *   input's from a ring of frame copies (preroll.h, at most
 *   RELAY_RECORDER_RING_FRAMES and RELAY_RECORDER_RING_BYTES) fed at a
 *   constant rate, one frame per slot, numbered by the child (-framerate)
 *   so that the pre-roll written at once keeps its length. The session
 *   folder and its first segment are named for the second the pre-roll
 *   starts (the recorder names the first child's first file so).
 *
 *   States: "waiting" (no source data), "armed" (mode "motion": source
 *   data, no motion), "recording", "disk-full", "starting" (a child runs,
 *   nothing written yet), "backoff"/"error" (the child's, relay/child.h).
 *
 * Threads
 *   relay_recorder_start/stop belong to the thread that owns the input
 *   table; relay_recorder_json() and relay_recorder_job_view() may be
 *   called from any thread while the recorder exists.
 */
#ifndef STW_RELAY_RECORDER_H
#define STW_RELAY_RECORDER_H

#include <stdint.h>

#include "rec.h"
#include "relay.h"

#define RELAY_RECORDER_GAP_MS 5000
/* Mode "motion", JPEG inputs: the pre-roll ring's bounds. */
#define RELAY_RECORDER_RING_FRAMES 1024
#define RELAY_RECORDER_RING_BYTES ((size_t)16 << 20)

typedef struct relay_recorder relay_recorder;

/* Start recording @in (borrowed, must outlive the recorder) into @rec
 * (borrowed) in segments of @segment_s seconds, in the mode and with the
 * rolls of in->record as they are now. *@out is owned by the
 * caller. Returns 0, -EINVAL, -ENOMEM or the errno of the scope or
 * thread; on failure nothing is left. */
int relay_recorder_start(relay_input *in, relay_rec *rec, unsigned segment_s,
                         relay_recorder **out);

/* Stop: the session ends (the segment is finished), the child is reaped,
 * the thread joined until @d, the recorder freed. Sets *@r to NULL;
 * accepts NULL. */
void relay_recorder_stop(relay_recorder **r, stw_deadline d);

/* The state (RELAY_STATE_MAX bytes into @out). Any thread. */
void relay_recorder_state(relay_recorder *r, char *out);

/* The session being recorded ("YYYY-MM-DD/HH-MM-SS", 64 bytes into
 * @out; "" outside a session). Any thread. */
void relay_recorder_session(relay_recorder *r, char *out);

/* The recorder as the text of a JSON object (transfer full: stw_free it):
 * {"state","session","segment","pid","restarts","sessions","bytes",
 * "last_exit","last_error","mode"}, in mode "motion" also "pre_roll",
 * "post_roll", "pre_roll_recorded_ms", "ring" and, in a session,
 * "post_roll_until_ms"; NULL without memory. Any thread. */
char *relay_recorder_json(relay_recorder *r);

/* Bytes the recorder's children reported written so far. Any thread. */
uint64_t relay_recorder_bytes(relay_recorder *r);

/* The pre-roll ring of a recorder in mode "motion" now: JPEG inputs'
 * copies of recent frames, ffmpeg inputs' retained MPEG-TS chunks. All
 * zero in mode "continuous". */
typedef struct relay_recorder_ring {
    uint64_t frames, bytes; /* held (frames, or MPEG-TS chunks) */
    uint64_t ms;            /* age of the oldest */
    uint64_t max_frames, max_bytes; /* the bounds (max_frames 0: none) */
} relay_recorder_ring;

void relay_recorder_ring_get(relay_recorder *r, relay_recorder_ring *out);

/* The job as relay_input_jobs() shows it ("record"). Any thread. */
void relay_recorder_job_view(relay_recorder *r, relay_job_view *out);

#endif
