/*
 * src/relay/push.h — push outputs: an input's MPEG-TS pushed on to an
 * RTMP(S), RTSP(S) or SRT server by one supervised ffmpeg child; private to
 * the relay.
 *
 * Model
 *   A push output is a thread in its own scope ("push:ID", a child of the
 *   input's owner scope, so deleting the input stops its pushes first)
 *   that runs one job (relay/child.h): `ffmpeg -f mpegts -i pipe:0 -c copy
 *   ... URL` (relay/ffmpeg.h), fed from its own reader of the input's
 *   relay_ts. Each new child gets a new reader, so its stdin starts with
 *   the PAT/PMT and a keyframe. A target that is down, refuses or drops the
 *   connection ends the child; the job restarts it with backoff (0.5 s to
 *   30 s, with jitter), never two at a time. A child that accepts nothing
 *   on its stdin for the watchdog period while there is data for it is
 *   restarted; one that waits for a camera that sends nothing is not.
 *   When the child falls behind what the stream keeps, it skips to the
 *   next keyframe (counted in "skipped").
 *
 * Ownership
 *   relay_push_start() returns a handle owned by the caller (the loop's
 *   output table); relay_push_stop() closes the scope, which stops the
 *   child and the thread and frees the push. Closing the input's owner
 *   scope does the same for every push it still has: the handles are then
 *   dangling and must not be used.
 *
 * Threads
 *   relay_push_start/stop belong to one thread (the HTTP loop, or
 *   relay_main before it runs); relay_push_json() and the accessors may be
 *   called from any thread while the push exists.
 */
#ifndef STW_RELAY_PUSH_H
#define STW_RELAY_PUSH_H

#include <stdint.h>

#include "relay.h"

typedef struct relay_push relay_push;

/* Check @url (borrowed) as a push target. Returns 0, or a negative errno
 * with the reason (passwords redacted) in @err (@errlen bytes). */
int relay_push_check_url(const char *url, char *err, size_t errlen);

/* Start pushing @in's stream (an ffmpeg input: in->ts; borrowed, must
 * outlive the push) to @url (copied), as output @id. *@out is owned by
 * the caller. Returns 0, -EINVAL (not an ffmpeg input, or a bad URL),
 * -ENOMEM, or the errno of the scope or thread; on failure nothing is
 * left. */
int relay_push_start(relay_input *in, uint64_t id, const char *url, relay_push **out);

/* Stop the push: its child (SIGTERM, grace, SIGKILL, reaped), its thread
 * (joined until @d; a straggler is reported and frees the push when it
 * returns), then the push itself. Sets *@p to NULL; accepts NULL. */
void relay_push_stop(relay_push **p, stw_deadline d);

uint64_t relay_push_id(const relay_push *p);

/* The push's job as relay_input_jobs() shows it. Any thread. */
void relay_push_job_view(relay_push *p, relay_job_view *out);

/* The URL as given, with its password (borrowed): only for the state
 * file, never to be shown. */
const char *relay_push_url(const relay_push *p);

/* The push as the text of a JSON object (transfer full: stw_free it),
 * URL redacted: {"id","type":"push","url","state","pid","restarts",
 * "bytes","skipped","bitrate_kbps","last_exit","last_error","started"};
 * NULL without memory. */
char *relay_push_json(relay_push *p);

#endif
