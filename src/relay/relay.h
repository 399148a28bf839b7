/*
 * src/relay/relay.h — private to the relay: its configuration, inputs,
 * hub, test-pattern source and HTTP server.
 *
 * Model
 *   steward relay is a tree of scopes (DESIGN.md section 4):
 *
 *     relay (root, owned by relay_main)
 *       http       one thread running the libevent loop: listener, API,
 *                  viewers; closed first at shutdown (stop accepting,
 *                  close viewers)
 *       sources    one child scope per input, each with its source thread;
 *                  closed second (stop the producers)
 *
 *   An input (relay_input) is a configuration (name, kind, URL, pattern
 *   parameters, on-demand flag), a hub and, while it runs, a source. Each
 *   input has an owner scope "input:NAME" under "sources" whose cleanup
 *   frees the input and its hub; the running source lives in a child scope
 *   of it ("source", in->scope), so a source can be stopped and started
 *   again (on-demand inputs) while the hub and its viewers stay; so does
 *   its motion processor while it runs ("motion", motion.h). Closing the
 *   owner scope stops the source and the processor, joins their threads
 *   and frees everything.
 *
 *   Inputs are created and deleted at run time through the REST API. The
 *   input table belongs to the HTTP loop thread: after relay_http_start()
 *   only that thread adds, removes, starts or stops inputs, so the table
 *   needs no lock. Deleting an input happens on the loop thread in this
 *   order: its viewers are detached and their streams ended, its hub's
 *   event is removed from the loop, then its owner scope is closed (with a
 *   deadline) and freed. Nothing on the loop refers to the input after
 *   that. At shutdown the HTTP scope is closed first, so the loop never
 *   sees a hub freed under it, then "sources" closes what inputs remain.
 *
 *   The configuration of the inputs is persisted in a state file
 *   (state.c), rewritten atomically by the loop after every change and
 *   read once at start.
 *
 * Threads
 *   relay_hub_* may be called from any thread. Everything in http*.c runs
 *   on the loop thread only; libevent is never called from another thread
 *   (the sources wake the loop through the hub's eventfd), so it is used
 *   without evthread locking.
 */
#ifndef STW_RELAY_H
#define STW_RELAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chain.h"
#include "log.h"
#include "motion.h"
#include "steward/frame.h"
#include "steward/pool.h"
#include "steward/scope.h"

/* mkdir -p @dir: every missing directory of it made with mode 0700.
 * 0 or a negative errno (an existing directory is fine). */
int relay_make_dirs(const char *dir);

/* ---- configuration ---- */

#define RELAY_INPUTS_MAX 64
#define RELAY_NAME_MAX 32
#define RELAY_URL_MAX 2048  /* bytes of an mjpeg URL, without the NUL */
#define RELAY_STATE_MAX 16  /* an input state string with its NUL */
#define RELAY_PATH_MAX 4096 /* the state file path with its NUL */
#define RELAY_ALLOW_MAX 8   /* --allow-host and --cors-origin values each */
#define RELAY_ALLOW_LEN 256 /* one of them with its NUL */

typedef struct relay_config {
    char host[64];
    int port;                             /* 0: ephemeral */
    bool default_input;                   /* create the "test" input */
    unsigned max_viewers;                 /* all inputs together */
    unsigned max_viewers_input;           /* per input */
    unsigned inflight;                    /* frames in flight per viewer */
    int viewer_sndbuf;                    /* SO_SNDBUF of a viewer socket, bytes */
    int timeout_s;                        /* request read/write, viewer write stall */
    int max_header_bytes;                 /* request line + headers */
    int max_body_bytes;                   /* request body */
    unsigned width, height, fps, quality; /* the test pattern defaults */
    unsigned max_inputs;                  /* 1..RELAY_INPUTS_MAX */
    unsigned max_sse;                     /* Server-Sent Events clients */
    int on_demand_grace_ms;               /* idle time before an on-demand source stops */
    int camera_stall_s;                   /* mjpeg: no byte for this long = disconnected */
    int camera_frame_timeout_s;           /* mjpeg: no frame for this long = disconnected */
    char state_path[RELAY_PATH_MAX];      /* "" when there is no state file */
    int header_timeout_s;                 /* a request must be complete in this time */
    unsigned max_connections;             /* open HTTP connections, all clients */
    unsigned max_conn_per_client;         /* open HTTP connections of one client address */
    /* Host names accepted besides IP literals and localhost (DNS
     * rebinding), and the origins allowed cross-site (CORS). */
    char allow_host[RELAY_ALLOW_MAX][RELAY_ALLOW_LEN];
    unsigned nallow_host;
    char cors_origin[RELAY_ALLOW_MAX][RELAY_ALLOW_LEN];
    unsigned ncors_origin;
    /* What this relay's own requests to cameras carry in RELAY_LOOP_HEADER
     * (random per run), so that an input pointed at the relay itself is
     * refused instead of feeding on its own output. */
    char instance[24];
    size_t max_input_bytes; /* what all inputs together may claim (relay_spec_claim) */
    /* What the config file declares (config.h): users, TLS, inputs.
     * Borrowed, lives until the relay exits; NULL without --config. */
    const struct relay_file *file;
    bool insecure_no_auth; /* serve a non-loopback address without users */
    relay_log_opts log;    /* --log-*: read at start, not on reload */
    /* Recordings (rec.h): the directory, the global retention and the
     * free-space guard (the larger of the two thresholds). */
    char rec_dir[RELAY_PATH_MAX];
    uint64_t rec_max_bytes;      /* 0: none */
    int64_t rec_max_age_s;       /* 0: none */
    uint64_t rec_min_free_bytes; /* bytes */
    unsigned rec_min_free_pct;   /* percent of the filesystem */
    struct relay_rec *rec;       /* the service; NULL until it runs; borrowed */
} relay_config;

#define RELAY_LOOP_HEADER "X-Steward-Relay"
/* The other half of loop detection (chain.h has the first): with every
 * stream a relay serves, in the response and, for another relay, in every
 * MJPEG part, its own id and then the chain of the input served
 * (relay_hub_chain), comma-separated: the relays upstream. A relay whose
 * MJPEG input finds its own id there receives its own frames back around
 * a ring (closed after the pulls of the ring were made, which the request
 * lists cannot see), and drops that pull. */
#define RELAY_CHAIN_HEADER "X-Steward-Relay-Chain"

/* Set the option @opt ("--max-viewers"...) from the text @value, checked as
 * on the command line. Returns 0, -EINVAL for a bad value, -ENOENT for an
 * option that takes no value or does not exist. */
int relay_option_set(relay_config *cfg, const char *opt, const char *value);

/* What the relay would start with now (SIGHUP): the defaults, the
 * --config file read again into @file (caller's storage), the command line
 * over it. Returns 0, or a negative errno with the reason in @err. */
struct relay_file;
int relay_config_reread(relay_config *cfg, struct relay_file *file, char *err, size_t errlen);

/* ---- hub ---- */

typedef struct relay_hub relay_hub;

typedef struct relay_hub_stat {
    uint64_t seq;        /* frames published so far, cards included; seq of the latest */
    uint64_t frames_in;  /* published by the source, from its camera or pattern */
    uint64_t cards;      /* "NO SIGNAL" cards published in their place */
    uint64_t frames_out; /* handed to viewer sockets */
    uint64_t dropped;    /* skipped for a busy viewer, or lost by the source */
    unsigned viewers;    /* streaming viewers now */
} relay_hub_stat;

/* A new hub for @name (borrowed, must outlive the hub) with an eventfd
 * that becomes readable on every publish. *@out is owned by the caller
 * (transfer full). Returns 0, -ENOMEM or the eventfd errno. */
int relay_hub_new(const char *name, relay_hub **out);

/* Drop the latest frame, close the eventfd, free *@h; sets it to NULL.
 * Accepts NULL. No other thread may use the hub any more. */
void relay_hub_free(relay_hub **h);

/* Make @f (transfer full) the latest frame, drop the previous one, bump
 * the sequence number and wake the notify fd. */
void relay_hub_publish(relay_hub *h, stw_frame *f);

/* As relay_hub_publish, for a frame the relay made itself while the source
 * delivers nothing (the "NO SIGNAL" card): the input's state stays. */
void relay_hub_publish_card(relay_hub *h, stw_frame *f);

/* The latest frame (a new reference, transfer full) or NULL before the
 * first publish; *@seq (may be NULL) gets its sequence number. */
stw_frame *relay_hub_latest(relay_hub *h, uint64_t *seq);

/* As relay_hub_latest; *@card (may be NULL) gets whether the frame is a
 * card the relay made (relay_hub_publish_card), not the source's. */
stw_frame *relay_hub_latest_source(relay_hub *h, uint64_t *seq, bool *card);

#define RELAY_HUB_WATCHERS 4

/* Make the eventfd @fd (borrowed) readable on every publish by the source
 * until relay_hub_unwatch(); after that returns the hub never writes to
 * it again. Returns 0 or -ENOSPC (RELAY_HUB_WATCHERS already). Any
 * thread. */
int relay_hub_watch(relay_hub *h, int fd);
void relay_hub_unwatch(relay_hub *h, int fd);

/* Wake the loop (the notify fd) without a frame or a state change: it
 * looks for what else the input has to tell (motion events). */
void relay_hub_poke(relay_hub *h);

/* The eventfd (borrowed): readable after a publish until drained. */
int relay_hub_notify_fd(const relay_hub *h);

/* Reset the notify fd to not readable. */
void relay_hub_drain_notify(relay_hub *h);

/* Counters, safe from any thread. */
void relay_hub_count_out(relay_hub *h, uint64_t n);
void relay_hub_count_dropped(relay_hub *h, uint64_t n);
void relay_hub_viewers_add(relay_hub *h, int delta);
void relay_hub_stats(const relay_hub *h, relay_hub_stat *out);

/* Set the state (copied, truncated to RELAY_STATE_MAX - 1 bytes) and wake
 * the loop; a state equal to the current one changes nothing. */
void relay_hub_set_state(relay_hub *h, const char *state);

/* What a camera source reports besides its frames: totals over all its
 * connections. */
typedef struct relay_camera_stat {
    uint64_t connects;        /* connections attempted */
    uint64_t garbage_bytes;   /* bytes that belonged to no part */
    uint64_t bad_parts;       /* parts that were not a whole JPEG */
    uint64_t oversize;        /* frames larger than the cap, skipped */
    uint64_t length_mismatch; /* parts whose Content-Length was wrong */
} relay_camera_stat;

#define RELAY_ERROR_MAX 256 /* last_error with its NUL */

/* Set the camera counters (copied) and, unless NULL, the last error
 * (copied, truncated; "" clears it). Any thread. */
void relay_hub_set_camera(relay_hub *h, const relay_camera_stat *st, const char *last_error);

/* Copy them out: @err gets RELAY_ERROR_MAX bytes. Any thread. */
void relay_hub_camera(relay_hub *h, relay_camera_stat *st, char *err);

/* The relays this input's frames came through, nearest first: the
 * RELAY_CHAIN_HEADER of the stream its source reads ("" when the source is
 * no steward relay). Set by the source thread, read by the loop; any
 * thread. @chain is copied (cut to RELAY_CHAIN_MAX - 1 bytes at a comma);
 * @out gets RELAY_CHAIN_MAX bytes. */
#define RELAY_CHAIN_MAX RELAY_VIA_MAX
void relay_hub_set_chain(relay_hub *h, const char *chain);
void relay_hub_chain(relay_hub *h, char *out);

/* Copy the state into @out (RELAY_STATE_MAX bytes). take_state also returns
 * whether it changed since the last take, and clears that (loop only). */
bool relay_hub_take_state(relay_hub *h, char *out);
void relay_hub_state(relay_hub *h, char *out);

/* ---- inputs ---- */

/* Options of an ffmpeg input (relay_spec and relay_input). */
typedef struct relay_ff_spec {
    bool rtsp_udp;      /* RTSP over UDP instead of interleaved TCP */
    bool loop;          /* files: start over at the end */
    unsigned timeout_s; /* network I/O time-out and watchdog, 1..600 */
} relay_ff_spec;

#define RELAY_FF_TIMEOUT_DEFAULT 10

#define RELAY_PUSH_MAX 8 /* push outputs per input */

/* A push output as the state file keeps it. */
typedef struct relay_push_spec {
    uint64_t id;
    char url[RELAY_URL_MAX + 1];
} relay_push_spec;

/* Recording of an input (rec.h, recorder.h): on or off, the segment
 * length, the input's own retention, and the mode: "continuous" (while
 * the source sends) or "motion" (around motion only: pre_roll seconds
 * before motion-start, kept in a bounded ring, to post_roll seconds after
 * motion-end; needs the motion processor on). */
#define RELAY_REC_PRE_ROLL_DEFAULT 5
#define RELAY_REC_PRE_ROLL_MAX 30
#define RELAY_REC_POST_ROLL_DEFAULT 10
#define RELAY_REC_POST_ROLL_MAX 3600
typedef struct relay_record_spec {
    bool on;
    unsigned segment_s;  /* RELAY_REC_SEGMENT_MIN..MAX, default 60 */
    int64_t max_age_s;   /* 0: only the global limit */
    uint64_t max_bytes;  /* 0: only the global limit */
    bool motion;         /* mode "motion" (else "continuous") */
    unsigned pre_roll_s;  /* 0..RELAY_REC_PRE_ROLL_MAX */
    unsigned post_roll_s; /* 0..RELAY_REC_POST_ROLL_MAX */
} relay_record_spec;

#define RELAY_RECORD_SPEC_DEFAULT                                                                  \
    ((relay_record_spec){.segment_s = RELAY_REC_SEGMENT_DEFAULT,                                   \
                         .pre_roll_s = RELAY_REC_PRE_ROLL_DEFAULT,                                 \
                         .post_roll_s = RELAY_REC_POST_ROLL_DEFAULT})

/* What the API and the state file say an input is. */
typedef struct relay_spec {
    char name[RELAY_NAME_MAX];
    const char *kind; /* "test", "mjpeg" or "ffmpeg" (static strings) */
    char url[RELAY_URL_MAX + 1];
    unsigned width, height, fps, quality; /* test only */
    bool still;                           /* test only: no moving ball ("pattern":"still") */
    relay_ff_spec ff;                     /* ffmpeg only */
    relay_motion_spec motion;             /* the motion processor's options */
    unsigned npush;                       /* ffmpeg only: push outputs */
    relay_push_spec push[RELAY_PUSH_MAX];
    bool on_demand;
    int64_t created_ms; /* wall clock, ms since the epoch; 0: now */
    bool declared;      /* by the config file: not deletable, not in the state file */
    relay_record_spec record;
} relay_spec;

struct relay_ts;
struct relay_child;
struct relay_recorder;

typedef struct relay_input {
    char name[RELAY_NAME_MAX];   /* [A-Za-z0-9_-]+ */
    const char *kind;            /* "test", "mjpeg" or "ffmpeg" */
    char url[RELAY_URL_MAX + 1]; /* mjpeg: http(s) URL; ffmpeg: see ffmpeg.h; test: "" */
    unsigned width, height, fps, quality;
    bool still;
    relay_ff_spec ff;
    /* The motion processor (motion.h): its options (the loop thread's),
     * and its state, owned by the input and freed with it. */
    relay_motion_spec motion_spec;
    relay_motion *motion;
    /* ffmpeg inputs (NULL for the others), owned by the input and freed
     * with it, so that .ts viewers and push outputs keep their readers
     * while an on-demand source stops and starts: the MPEG-TS stream, and
     * the ingest and decoder jobs with what ffmpeg said (source_ffmpeg.c). */
    struct relay_ts *ts;
    struct relay_ffin *ffin;
    /* Push outputs (push.h), in creation order; the loop thread's (and
     * relay_main's before the loop runs). Stopped by their scopes, which
     * are children of owner, before the input is freed. */
    struct relay_push *push[RELAY_PUSH_MAX];
    unsigned npush;
    bool on_demand;     /* stop the source when the last viewer left */
    relay_record_spec record;
    /* The recorder while recording is on (recorder.h); the loop thread's
     * (and relay_main's before the loop runs). Its scope is a child of
     * owner: it stops before the input is freed. */
    struct relay_recorder *recorder;
    int64_t created_ms; /* wall clock, ms since the epoch */
    bool declared;      /* by the config file: not deletable, not in the state file */
    size_t claim;       /* relay_spec_claim() of its spec */
    relay_hub *hub;     /* owned */
    stw_scope *owner;   /* "input:NAME", child of the sources scope, owns this */
    /* The running source's scope (child of owner), NULL while stopped. The
     * source start functions defer their cleanups on it and spawn into it;
     * it changes only on the loop thread, while no source runs. */
    stw_scope *scope;
    pthread_mutex_t lock;    /* guards pool and via */
    stw_pool *pool;          /* a handle on the source's pool, or NULL */
    char via[RELAY_VIA_MAX]; /* chain.h: the relays downstream, for its pulls */
} relay_input;

/* The memory an input of @spec may come to hold at most, by its kind: a
 * test pattern its canvas, encoder and frames (8 bytes a pixel); a camera
 * its parser and frames (2 x 8 MiB); an ffmpeg input its MPEG-TS
 * retention and its decoder's frames (2 x 8 MiB); plus what its recording
 * holds (relay_record_claim). Creating an input, or changing its recording,
 * that would take the sum over cfg.max_input_bytes is refused. */
size_t relay_spec_claim(const relay_spec *spec);

/* What recording @rec holds for an input of @kind: a JPEG input in mode
 * "motion" its pre-roll ring at most (recorder.h); nothing otherwise (an
 * ffmpeg input's pre-roll is its MPEG-TS retention). */
size_t relay_record_claim(const char *kind, const relay_record_spec *rec);

/* True if @name is a valid input name (1..31 of [A-Za-z0-9_-]). */
bool relay_name_valid(const char *name, size_t len);

/* A new, stopped input for @spec (copied) with its owner scope under
 * @sources and its hub (state "idle"). *@out is owned by its owner scope.
 * Returns 0, -EINVAL for an invalid name or kind, -ENOMEM, or the errno of
 * the scope or eventfd; on failure nothing is left. */
int relay_input_new(stw_scope *sources, const relay_spec *spec, relay_input **out);

/* Start @in's source with @cfg (its pattern parameters replaced by the
 * input's) in a new in->scope, state "starting". Returns 0, -EALREADY if
 * it runs, -ENOSYS if the kind is not built, or the source's error; on
 * failure in->scope is NULL again and the state is "error". */
int relay_input_start(relay_input *in, const relay_config *cfg);

/* Start the push outputs @spec lists (borrowed) on @in; one that cannot
 * start is reported on stderr and left out. Only on the thread that owns
 * the input table. */
void relay_input_start_pushes(relay_input *in, const relay_spec *spec);

/* Make @in's recorder match in->record with @cfg's recordings service:
 * start it, stop it (the segment is finished), or restart it when the
 * segment length changed; and give the service the input's retention.
 * Returns 0, -ENODEV when recording is on but there is no service, or
 * the recorder's error. Only on the thread that owns the input table. */
int relay_input_apply_record(relay_input *in, const relay_config *cfg);

/* Stop @in's source: close in->scope until @d (stragglers are reported on
 * stderr and left to finish on their own), free it, drop the pool handle,
 * state "idle". Does nothing if it is stopped. */
void relay_input_stop(relay_input *in, stw_deadline d);

/* Close @*in's owner scope until @d and free it: the source stops, the
 * input and its hub are freed. Sets *@in to NULL. Only when nothing else
 * refers to the input any more. */
void relay_input_free(relay_input **in, stw_deadline d);

/* True if something besides viewers keeps @in's source running: push
 * outputs, motion detection. The loop thread. */
bool relay_input_consumed(const relay_input *in);

/* Thread-safe: set @in's state and post the change to the loop, which
 * tells the Server-Sent Events clients ("input-state"). */
void relay_input_set_state(relay_input *in, const char *state);

/* For sources: let /cleanup-resources trim @pool (borrowed; the input takes
 * its own handle, dropped when the source stops). NULL drops it now. */
void relay_input_set_pool(relay_input *in, stw_pool *pool);

/* ---- specs and the state file (state.c) ---- */

/*
 * Fill @out from the JSON object @obj (a json_t *, borrowed), with
 * @cfg's pattern defaults for missing fields. @flags: RELAY_SPEC_STORED
 * when @obj comes from the state file (an ffmpeg input's local file that
 * is missing now is kept: its source reports it). Returns 0, or the HTTP
 * status for the error (400: not an object or a field of the wrong type;
 * 422: a value out of range, a bad name, kind or URL, an unknown field)
 * with a message in @err (@errlen bytes).
 */
#define RELAY_SPEC_STORED 0x1u
int relay_spec_parse(const void *obj, const relay_config *cfg, unsigned flags, relay_spec *out,
                     char *err, size_t errlen);

/* The recording fields of the JSON object @obj ("record",
 * "record_segment", "record_max_age", "record_max_bytes", "record_mode",
 * "record_pre_roll", "record_post_roll"), those present over what @out
 * holds. Returns 0, or 400/422 with a message in @err. */
int relay_record_parse(const void *obj, relay_record_spec *out, char *err, size_t errlen);

/* Why @rec cannot run with @motion (a static message: mode "motion" with
 * motion detection off), or NULL. */
const char *relay_record_mode_check(const relay_record_spec *rec, const relay_motion_spec *motion);

/* The spec of @in as a JSON object (a new json_t *, transfer full), or NULL. */
void *relay_spec_json(const relay_input *in);

/*
 * Write the configuration of @inputs (@n of them, borrowed) to @path
 * atomically: a temporary file in the same directory (created 0700 with
 * its parents if missing), fsync, rename over @path, fsync the directory.
 * Returns 0 or a negative errno; on failure @path is unchanged.
 */
int relay_state_save(const char *path, relay_input *const *inputs, unsigned n);

/* Remove the temporary files an interrupted relay_state_save() of @path
 * left beside it. Returns how many, or a negative errno if the directory
 * cannot be read (a missing one has none). */
int relay_state_clean_temps(const char *path);

/*
 * Read @path into @specs (at most @max). Returns 0 with *@n set, -ENOENT
 * when there is no file, -EINVAL when it is corrupt (bad JSON, a bad or
 * duplicate entry, too many) with the reason in @err, or another negative
 * errno when it cannot be read.
 */
int relay_state_load(const char *path, const relay_config *cfg, relay_spec *specs, unsigned max,
                     unsigned *n, char *err, size_t errlen);

/* ---- the test-pattern source ---- */

/* Start the test pattern of @cfg on @in: its state is freed and its
 * thread joined by @in->scope. Returns 0, -ENOMEM, -EINVAL or a spawn
 * error; on failure whatever was set up is undone by closing the scope. */
int relay_source_test_start(relay_input *in, const relay_config *cfg);

/* The ffmpeg source (source_ffmpeg.c), same contract: @in->ingest pulls
 * the camera as MPEG-TS into @in->ts, and @in->decoder turns it into JPEG
 * frames for the hub while someone wants them. */
int relay_source_ffmpeg_start(relay_input *in, const relay_config *cfg);

/* The ffmpeg parts of a new ffmpeg input (@in->ts, @in->ffin), and their
 * release, which accepts an input without them (source_ffmpeg.c). 0 or a
 * negative errno. */
int relay_ffmpeg_input_init(relay_input *in);
void relay_ffmpeg_input_release(relay_input *in);

/* Someone wants JPEG frames of @in for the next few seconds (a snapshot):
 * an ffmpeg input keeps its decoder running that long. Any thread; a
 * no-op for other kinds. */
void relay_input_want_jpeg(relay_input *in);

/* One supervised child job of an input, as /metrics, /system-resources
 * and the shutdown log show it. */
typedef struct relay_job_view {
    char job[48];   /* "ingest", "decoder", "push:ID" */
    char state[16]; /* relay/child.h's states */
    int pid;        /* 0: no child now */
    unsigned restarts;
    int64_t age_ms; /* of the current child, 0 without one */
} relay_job_view;

/* The view of job @c (relay/child.h; any thread) named @name (copied). */
void relay_job_view_of(struct relay_child *c, const char *name, relay_job_view *out);

/* The jobs of @in (none for the kinds without children) into @out (at
 * most @max). Returns how many. The loop thread (it owns the pushes). */
unsigned relay_input_jobs(relay_input *in, relay_job_view *out, unsigned max);

/* What an ffmpeg input's jobs and stream look like now, as the text of a
 * JSON object (transfer full: stw_free it), passwords redacted:
 * {"ingest":JOB,"decoder":JOB,"media":{...},"ts":{...}}; NULL for other
 * kinds or without memory. Any thread. */
char *relay_ffmpeg_input_json(relay_input *in);

/* The MJPEG-over-HTTP pull source (source_mjpeg.c), same contract. */
int relay_source_mjpeg_start(relay_input *in, const relay_config *cfg);

/* Release libcurl's global state (allocated through the ledger) once every
 * mjpeg source has stopped; a no-op if none ever started. */
void relay_source_mjpeg_global_cleanup(void);

/* ---- the HTTP server ---- */

typedef struct relay_http relay_http;

/*
 * Bind @cfg's address now (so the caller can print the real port), then
 * run the server on a thread of @scope. The server takes over @inputs
 * (@ninputs of them, created under @sources): from now on the loop thread
 * owns the input table, creates new inputs under @sources and deletes
 * them. *@port_out gets the bound port. The server, its listener and every
 * connection are freed by the thread when @scope is cancelled; the inputs
 * that remain are freed when @sources is closed, after @scope.
 * Returns 0 or a negative errno.
 */
int relay_http_start(stw_scope *scope, stw_scope *sources, const relay_config *cfg,
                     relay_input *const *inputs, unsigned ninputs, int *port_out);

/* steward relay [options]: argv[0] is "relay". Returns the exit code. */
__attribute__((visibility("default"))) int stw_relay_main(int argc, char **argv);

#endif
