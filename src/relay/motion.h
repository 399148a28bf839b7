/*
 * src/relay/motion.h — motion detection on an input's frames, private to
 * the relay.
 *
 * Model
 *   Two layers, one file each:
 *
 *   The detector (motion.c) is plain code on one thread: it decodes a JPEG
 *   with libjpeg(-turbo) straight to grayscale at 1/2, 1/4 or 1/8 of its
 *   size (libjpeg skips most of the IDCT work at reduced scale), compares
 *   it with a running background (an exponential moving average per
 *   pixel, time constant RELAY_MOTION_TAU_S, and the pixel's mean absolute
 *   deviation from it over the same time), and marks a pixel changed when
 *   it differs from the background by more than the threshold plus three
 *   deviations: a pixel that always flickers (a clock overlay, leaves,
 *   water) must change by more to count. A changed pixel with fewer than
 *   two changed neighbours is noise and is dropped, and so is a connected
 *   region smaller than a quarter of min_area. The score is the share of
 *   the picture the remaining regions cover, in percent; the box bounds
 *   them, in the coordinates of the full-size source picture.
 *
 *   Hysteresis keeps events from flapping: motion starts after
 *   start_frames analysed frames in a row score at least min_area, and
 *   ends after end_frames frames in a row score less than half of
 *   min_area. A change of more than RELAY_MOTION_SCENE_PCT percent at once
 *   (lights switched, a camera's day/night switch, a reconnect) resets the
 *   background instead of counting as motion; so does a change of picture
 *   size. After a (re)set the detector learns for RELAY_MOTION_WARMUP_S
 *   seconds (of frames at its rate) before it raises any event.
 *
 *   The processor (motion_proc.c) runs one detector per input on a thread
 *   of its own, at a capped rate: it takes the hub's latest frame (the hub
 *   holds one frame, latest wins, so frames that arrive while it works or
 *   waits are skipped and counted, never queued), analyses it, sleeps out
 *   the rest of its period, and queues motion-start / motion-end events
 *   for the HTTP loop (Server-Sent Events) in a bounded ring. Its CPU is
 *   bounded by its rate. An ffmpeg input decodes JPEG only while someone
 *   wants it: the processor asks for it (relay_input_want_jpeg) while it
 *   runs.
 *
 * Ownership
 *   A detector is a heap object (new/free) owning its pixel buffers (the
 *   ledger's heap) and its libjpeg decompressor. An input owns one
 *   relay_motion (created and freed with it) holding what outlives a run:
 *   the state the API shows, the counters, the event ring. A run of the
 *   processor (thread, detector, eventfd) is owned by its scope "motion",
 *   a child of the input's owner scope: closing it joins the thread and
 *   frees the run; the input's owner scope closes it with the input.
 *
 * Threads
 *   A detector belongs to one thread. relay_motion_start/stop/running and
 *   relay_motion_take_events run on the thread that owns the input table
 *   (the HTTP loop, or relay_main before it runs). relay_motion_view_get
 *   and relay_motion_active are safe from any thread.
 */
#ifndef STW_RELAY_MOTION_H
#define STW_RELAY_MOTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steward/common.h"

#define RELAY_MOTION_TAU_S 4.0     /* the background's time constant, seconds */
#define RELAY_MOTION_WARMUP_S 3    /* learning after a (re)set, without events */
#define RELAY_MOTION_SCENE_PCT 70  /* a change this large resets the background */
#define RELAY_MOTION_MAX_SIDE 8192 /* a larger picture is refused */

/* ---- configuration (relay_spec and relay_input carry one) ---- */

#define RELAY_MOTION_IGNORE_MAX 8 /* rectangles left out of detection */

typedef struct relay_motion_box {
    unsigned x, y, w, h; /* source picture pixels; w == 0: no box */
} relay_motion_box;

typedef struct relay_motion_spec {
    bool enabled;
    unsigned fps;          /* analysed frames per second at most, 1..30 */
    unsigned threshold;    /* per-pixel luma change that counts, 1..255 */
    double min_area;       /* percent of the picture that must change, 0.01..100 */
    unsigned start_frames; /* frames in a row with motion before motion-start, 1..100 */
    unsigned end_after;    /* seconds without motion before motion-end, 1..3600 */
    /* Parts of the picture (source pixels) where changes do not count: a
     * timestamp overlay, a tree, a street. */
    unsigned nignore;
    relay_motion_box ignore[RELAY_MOTION_IGNORE_MAX];
} relay_motion_spec;

#define RELAY_MOTION_SPEC_DEFAULT                                                                  \
    ((relay_motion_spec){.enabled = false,                                                         \
                         .fps = 2,                                                                 \
                         .threshold = 25,                                                          \
                         .min_area = 0.5,                                                          \
                         .start_frames = 2,                                                        \
                         .end_after = 5})

/*
 * Fill @out from the JSON object @obj (a json_t *, borrowed) over the
 * values already in @out (so a partial object changes only what it
 * names). Returns 0, or the HTTP status (400: not an object or a wrong
 * type; 422: out of range or an unknown field) with a message in @err.
 */
int relay_motion_spec_parse(const void *obj, relay_motion_spec *out, char *err, size_t errlen);

/* @spec as a JSON object (a new json_t *, transfer full), or NULL. */
void *relay_motion_spec_json(const relay_motion_spec *spec);

/* ---- the detector ---- */

enum { RELAY_MOTION_NONE = 0, RELAY_MOTION_START = 1, RELAY_MOTION_END = 2 };

typedef struct relay_motion_result {
    int event;              /* RELAY_MOTION_NONE, _START or _END, raised by this frame */
    bool active;            /* motion now (after this frame) */
    bool reset;             /* the background was (re)set: first frame, new size, scene change */
    double score;           /* changed share of this frame, percent */
    relay_motion_box box;   /* of this frame's changed pixels */
    double peak;            /* _END: the event's highest score */
    relay_motion_box span;  /* _END: the union of the event's boxes */
    unsigned width, height; /* the source picture */
    unsigned scaled_w, scaled_h; /* what was analysed */
} relay_motion_result;

typedef struct relay_motion_det relay_motion_det;

/* A detector for @spec's threshold, min_area, start_frames and ignored
 * rectangles, with end_frames = end_after x fps (borrowed, copied). *@out is owned by the
 * caller. Returns 0, -EINVAL or -ENOMEM. */
int relay_motion_det_new(const relay_motion_spec *spec, relay_motion_det **out);

/* Free *@d and its decompressor; sets it to NULL; accepts NULL. */
void relay_motion_det_free(relay_motion_det **d);

/*
 * Decode the JPEG @data (@len bytes, borrowed) and analyse it into @out.
 * Returns 0, -EBADMSG for a JPEG libjpeg cannot decode or decodes only
 * with warnings (truncated, corrupt: nothing is changed, the frame does
 * not count), -E2BIG for a picture over RELAY_MOTION_MAX_SIDE, -ENOMEM.
 */
int relay_motion_det_feed_jpeg(relay_motion_det *d, const uint8_t *data, size_t len,
                               relay_motion_result *out);

/* Analyse the grayscale picture @gray (@w x @h, borrowed) that stands for
 * a @src_w x @src_h source picture. Returns 0, -EINVAL, -ENOMEM. */
int relay_motion_det_feed_gray(relay_motion_det *d, const uint8_t *gray, unsigned w, unsigned h,
                               unsigned src_w, unsigned src_h, relay_motion_result *out);

/* The motion in progress, as a _END result of reason "stopped" would
 * report it (peak and span); false if there is none. Clears it. */
bool relay_motion_det_end(relay_motion_det *d, relay_motion_result *out);

/* ---- the processor of an input ---- */

struct relay_input;

/* A motion event for the HTTP loop. */
typedef struct relay_motion_event {
    int type;             /* RELAY_MOTION_START or _END */
    int64_t time_ms;      /* wall clock */
    double score;         /* start: the frame's; end: the event's peak */
    relay_motion_box box; /* start: the frame's; end: the union over the event */
    unsigned width, height;
    const char *reason; /* end: "quiet", "no-frames", "stopped" (static) */
} relay_motion_event;

#define RELAY_MOTION_EVENTS_MAX 16 /* queued for the loop; the oldest goes first */

/* What the API and /metrics show. The counters run over the input's life,
 * across stops and starts of its processor. */
typedef struct relay_motion_view {
    bool running; /* a processor thread exists */
    bool active;
    double score;         /* of the last analysed frame */
    relay_motion_box box; /* active: of the last frame with motion */
    unsigned width, height;
    int64_t last_event_ms; /* wall clock, 0: none yet */
    int last_event;        /* RELAY_MOTION_START, _END or _NONE */
    int64_t since_ms;      /* wall clock of the current motion-start, 0 when idle */
    uint64_t analysed, dropped, errors, starts, ends, missed;
} relay_motion_view;

/* An input's motion state: its view, its event ring and its processor
 * while one runs. */
typedef struct relay_motion relay_motion;

/* For relay_input_new and the input's cleanup: 0 or -ENOMEM; free accepts
 * NULL and sets *@m to NULL; the processor must be stopped by then (the
 * input's owner scope, closed first, closes it). */
int relay_motion_new(relay_motion **out);
void relay_motion_free(relay_motion **m);

/*
 * Start @in's processor with in->motion_spec in a new scope "motion"
 * under in->owner. Returns 0, -EALREADY if it runs, -EINVAL, or the error
 * of the scope, allocation or spawn (then nothing is left).
 */
int relay_motion_start(struct relay_input *in);

/*
 * Stop @in's processor: close its scope until @d and free it. Motion in
 * progress ends with an event of reason "stopped", queued like the others.
 * Does nothing without one.
 */
void relay_motion_stop(struct relay_input *in, stw_deadline d);

/* True while @in's processor runs (loop thread). */
bool relay_motion_running(struct relay_input *in);

/* Move up to @max queued events of @in into @out, oldest first. Returns
 * how many. */
unsigned relay_motion_take_events(struct relay_input *in, relay_motion_event *out, unsigned max);

/* @in's motion state now. Any thread, while the input exists. */
void relay_motion_view_get(struct relay_input *in, relay_motion_view *out);

/*
 * The hook for consumers that follow motion (a recorder's "motion" mode,
 * with its own pre- and post-roll): true while @in has motion. *@since_ms
 * (may be NULL) gets the wall clock of the motion-start, *@starts (may be
 * NULL) the number of motion-starts so far, so that a caller polling less
 * often than events come still sees a short motion it missed. Any thread,
 * while the input exists (a recorder of the input, whose scope is under
 * the input's owner scope, always is); cheap (one mutex). False while
 * detection is off.
 *
 * A recorder in mode "motion" (recorder.h) polls this at its own pace
 * (every loop of its thread, 200 ms at most): it records from since_ms
 * minus its pre-roll (out of its own bounded ring) while it is true or
 * @starts moved since the last poll, and for its post-roll after it
 * turned false.
 */
bool relay_motion_active(struct relay_input *in, int64_t *since_ms, uint64_t *starts);

#endif
