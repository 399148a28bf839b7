/*
 * src/relay/http_internal.h — shared between the files of the relay's HTTP
 * server (http*.c), private to them.
 *
 * Model
 *   One libevent (evhttp) loop thread serves everything; relay.h describes
 *   the scopes and the input table. The server is split by concern:
 *
 *     http.c          server setup, the loop thread, routing
 *     http_reply.c    replies, JSON errors, JSON text helpers, streaming starts
 *     http_sse.c      Server-Sent Events (GET /api/events)
 *     http_viewers.c  MJPEG viewers (GET /stream/{input}), snapshots, the hub
 *                     notify and on-demand grace timers of each input
 *     http_ts.c       MPEG-TS viewers (GET /stream/{input}.ts) of ffmpeg inputs
 *     http_api.c      the input table and the inputs/outputs REST API
 *     http_push.c     push outputs through the REST API
 *     http_motion.c   motion detection: its options, state, events, metrics
 *     http_debug.c    /healthz, /metrics, /system-resources,
 *                     /cleanup-resources, /debug/threads
 *     http_assets.c   the web UI's embedded files
 *     http_conn.c     connection caps, the request-head deadline, the bound on
 *                     what a client may buffer, the accept back-off
 *     http_guard.c    request policy: Host, Origin, CORS, Content-Type
 *     http_auth.c     users: authentication, permissions, failure delays
 *     http_parse.c    parsing of the path, Host, Content-Type and Origin (pure,
 *                     fuzzed by tests/fuzz/fuzz_http_request.c)
 *
 * Invariants
 *   Every function here runs on the loop thread only. srv->inputs holds
 *   srv->ninputs entries in creation order; an entry's viewers list holds
 *   exactly hi->nviewers attached viewers, and srv->nviewers is the sum.
 *   A detached viewer (hi == NULL, req == NULL) is in no list.
 *
 * Ownership
 *   relay_http and the http_input entries are owned by the http scope (its
 *   cleanup frees them); the loop frees the entry of an input it deletes.
 *   A viewer or event client is owned by its connection and freed in the
 *   connection's close callback. Requests passed to the handlers are
 *   borrowed: every handler answers exactly once (a reply, or the start of
 *   a stream). Everything libevent and jansson allocate goes through
 *   stw_malloc, so it is in the ledger.
 */
#ifndef STW_RELAY_HTTP_INTERNAL_H
#define STW_RELAY_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include <jansson.h>

#include "http_parse.h"
#include "relay.h"
#include "web_assets.h"

#define INFLIGHT_MAX 8
#define SSE_BACKLOG_MAX (64 * 1024)
#define SSE_KEEPALIVE_S 15
#define DELETE_DEADLINE_MS 2000

typedef struct viewer viewer;
typedef struct http_input http_input;
typedef struct sse_client sse_client;
typedef struct http_conn http_conn;
typedef struct relay_auth relay_auth;
typedef struct relay_http_rec relay_http_rec;

struct viewer {
    viewer *prev, *next;
    relay_http *srv;
    http_input *hi;             /* NULL once detached */
    struct evhttp_request *req; /* NULL once detached: libevent finishes it */
    struct evbuffer *out;       /* the connection's output buffer, borrowed */
    struct evbuffer_cb_entry *cbe;
    uint64_t drained;            /* bytes drained from out since the stream started */
    uint64_t ends[INFLIGHT_MAX]; /* stream offset where each queued frame ends */
    unsigned nends;
    uint64_t last_seq; /* hub sequence number of the last frame queued */
    int fd;
    uint64_t id;
    char peer[64];
    int64_t started_ms; /* wall clock */
    uint64_t frames, dropped;
    /* A .ts viewer (http_ts.c) reads the input's MPEG-TS through its own
     * reader, watched by rev while it is not paused for backlog; MJPEG
     * fan-out skips it. */
    bool ts;
    bool paused;
    struct relay_ts_reader *reader;
    struct event *rev;
    uint64_t bytes;
    char via[RELAY_VIA_MAX]; /* chain.h: the relays its request came through */
};

struct http_input {
    relay_input *in;
    relay_http *srv;
    struct event *notify;
    struct event *grace; /* on-demand stop timer */
    viewer *viewers;
    unsigned nviewers;
    char rec_state[RELAY_STATE_MAX]; /* the recorder state last announced */
};

struct sse_client {
    sse_client *prev, *next;
    relay_http *srv;
    struct evhttp_request *req;
    struct evbuffer *out; /* the connection's output buffer, borrowed */
    int fd;
};

struct relay_http {
    relay_config cfg;
    stw_scope *scope;
    stw_scope *sources;
    int listen_fd;
    int64_t started_ns;
    struct event_base *base;
    struct evhttp *http;
    struct event *cancel_ev;
    struct event *keepalive;
    bool closing; /* the loop is being torn down: no events, no timers */
    unsigned nviewers;
    uint64_t next_output_id;
    unsigned ninputs;
    http_input *inputs[RELAY_INPUTS_MAX]; /* in creation order */
    sse_client *sse;
    unsigned nsse;
    uint64_t sse_missed;
    /* http_conn.c: admitted connections (unordered), bufferevents waiting
     * for admission (each holding a reference), and the accept back-off. */
    http_conn **conns;
    unsigned nconns, cconns;
    struct bufferevent **pending;
    unsigned npending, cpending;
    struct event *admit_ev;
    struct event *accept_resume;
    struct evconnlistener *listener;
    int64_t accept_logged_ns;
    size_t read_cap; /* bytes a connection may have read but not parsed */
    uint64_t refused_total, refused_client, header_timeouts, accept_errors;
    uint64_t rejected_host, rejected_origin, state_save_failures;
    relay_auth *auth; /* http_auth.c: NULL without users (anonymous access) */
    uint64_t auth_failed, auth_locked, auth_busy; /* refused: credentials, locked, busy */
    struct ssl_ctx_st *tls;            /* tls.c: the listener's TLS context, NULL for plain HTTP */
    struct relay_http_service *svc;    /* http_service.c: notify, watchdog, signals */
    uint64_t reloads, reload_failures; /* http_reload.c */
    relay_http_rec *rec;               /* http_rec.c: the watcher and summary cache; NULL without */
};

/* ---- loop detection across relays (http_chain.c, chain.h) ---- */

/* Keep what @req's X-Steward-Relay says in @v (viewer_init). */
void relay_http__via_capture(viewer *v, struct evhttp_request *req);

/* Recompute @hi's input's downstream list from its viewers. */
void relay_http__via_update(http_input *hi);

/* ---- the service manager and the operator's signals (http_service.c) ---- */

/* On the loop, in setup: READY=1 on the first turn, the status and
 * watchdog timers, the SIGHUP/SIGUSR1 signalfd. 0 or a negative errno;
 * on failure what was made is freed by relay_http__service_teardown(). */
int relay_http__service_setup(relay_http *srv);
void relay_http__service_teardown(relay_http *srv);

/* The service's metrics (reloads, uptime) into @b, Prometheus text. */
void relay_http__service_metrics(relay_http *srv, struct evbuffer *b);

/* Send STATUS= now if it changed (or always with @force). */
void relay_http__service_status(relay_http *srv, bool force);

/* @hi as the API shows it (GET /api/inputs/NAME), into @b (http_api.c). */
void relay_http__input_json(struct evbuffer *b, http_input *hi);

/* SIGHUP: re-read the config file and apply it (http_reload.c). */
void relay_http__reload(relay_http *srv);

/* Users of a re-read config file (@file, borrowed, same users-or-none as
 * before) replace the current ones: caches cleared, checks in flight
 * fail (http_auth.c). */
void relay_http__auth_reload(relay_http *srv, const struct relay_file *file);

/* ---- connections (http_conn.c) ---- */

struct evconnlistener;

/* Take over admission for @l (borrowed, bound to srv->http): caps, head
 * deadlines, read bound, accept back-off. Returns 0 or -ENOMEM; on failure
 * what was made is freed by relay_http__conn_release(). */
int relay_http__conn_setup(relay_http *srv, struct evconnlistener *l);

/* Free the entries and events (teardown, after evhttp_free). */
void relay_http__conn_release(relay_http *srv);

/* @req (borrowed) reached the router: clear its connection's head
 * deadline and set it again once the answer is complete. False if the
 * connection was not admitted (refused, timed out): do not serve it. */
bool relay_http__conn_request(relay_http *srv, struct evhttp_request *req);

/* Open connections now (stale entries dropped first). */
unsigned relay_http__conn_count(relay_http *srv);

/* ---- request policy (http_guard.c) ---- */

/* Check @req's Host, and for a mutating method its Origin,
 * Sec-Fetch-Site and Content-Type; answer preflights (OPTIONS with an
 * Origin). Adds the CORS headers an allowed origin gets. Returns true if
 * the router should go on, false once it has answered. */
bool relay_http__guard(relay_http *srv, struct evhttp_request *req, enum evhttp_cmd_type cmd);

/* ---- users and permissions (http_auth.c) ---- */

/* Make srv->auth for the config file's users (none: stays NULL), owned by
 * srv->scope, and start its verifier thread there. Before the loop runs.
 * Returns 0 or a negative errno. */
int relay_http__auth_setup(relay_http *srv);

/* On the loop: watch the verifier's results (setup), and free that and
 * every waiting entry (teardown, after evhttp_free). */
int relay_http__auth_watch(relay_http *srv);
void relay_http__auth_unwatch(relay_http *srv);

/* Route @req to its handler (http.c), once authorized later. */
void relay_http__route(relay_http *srv, struct evhttp_request *req, const char *path,
                       enum evhttp_cmd_type cmd);

/* Check that @req (decoded @path, @cmd) comes from a user with the
 * permission the path needs. Returns true if the router should go on,
 * false once it has answered (401, 403, 429, 503) or will (a delayed 401,
 * or a password being checked: then it routes the request itself). */
bool relay_http__authorize(relay_http *srv, struct evhttp_request *req, const char *path,
                           enum evhttp_cmd_type cmd);

/* ---- replies and JSON text (http_reply.c) ---- */

/* A stw_write_fn appending to the evbuffer @ud (borrowed). */
int relay_http__write_evbuffer(void *ud, const char *data, size_t len);

/* Append @s (borrowed; NULL is "") to @b as a quoted, escaped JSON string. */
void relay_http__json_str(struct evbuffer *b, const char *s);

/* The wall clock in ms since the epoch. */
int64_t relay_http__wall_ms(void);

/* Append @ms (wall clock) to @b as a quoted ISO 8601 UTC string. */
void relay_http__json_time(struct evbuffer *b, int64_t ms);

/* Answer @req with @body (borrowed: the caller frees it); a HEAD gets
 * the headers and Content-Length only. */
void relay_http__send(struct evhttp_request *req, int code, const char *reason,
                      struct evbuffer *body);

/* relay_http__send() as @type, never cached. */
void relay_http__reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                       struct evbuffer *body);

/* Answer @req with the JSON in @b (transfer full: freed here). */
void relay_http__reply_json(struct evhttp_request *req, int code, const char *reason,
                            struct evbuffer *b);

/* Answer @code with {"error":@msg} (@msg borrowed). */
void relay_http__reply_error(struct evhttp_request *req, int code, const char *msg);

/* Answer 405 with an Allow header of @allow. */
void relay_http__reply_405(struct evhttp_request *req, const char *allow);

/* Begin a response that streams until the peer or the relay ends it (a
 * viewer, an event client): SO_SNDBUF of cfg.viewer_sndbuf, headers out,
 * write timeout only, the socket @fd booked in the ledger as @label until
 * @closed runs with @arg. Every streaming answer starts here, so each is
 * bounded the same way. */
void relay_http__start_stream(relay_http *srv, struct evhttp_request *req,
                              struct evhttp_connection *conn, struct bufferevent *bev, int fd,
                              const char *label, void (*closed)(struct evhttp_connection *, void *),
                              void *arg);

/* ---- Server-Sent Events (http_sse.c) ---- */

/* Send @event with the JSON in @data (borrowed) to every event client that
 * is not too far behind; the others miss it (counted). */
void relay_http__sse_broadcast(relay_http *srv, const char *event, struct evbuffer *data);

/* Broadcast @event with {"input":@input,"id":@id[,"reason":@reason]}. */
void relay_http__sse_output_event(relay_http *srv, const char *event, const char *input,
                                  uint64_t id, const char *reason);

/* The keep-alive timer's callback (@arg: the relay_http). */
void relay_http__sse_keepalive(evutil_socket_t fd, short what, void *arg);

/* GET /api/events. */
void relay_http__handle_events(relay_http *srv, struct evhttp_request *req);

/* ---- viewers (http_viewers.c) ---- */

/* Watch @hi's hub eventfd and create its grace timer on srv->base. Returns
 * 0 or -ENOMEM; on failure what was made stays in @hi for
 * relay_http__input_unwatch(). */
int relay_http__input_watch(http_input *hi);

/* Free @hi's events (either may be NULL) and set them to NULL. */
void relay_http__input_unwatch(http_input *hi);

/* End @v's stream on purpose (its output or its input was deleted): @v
 * leaves its input, the final chunk is queued, and @v is freed by its
 * connection's close callback, possibly before this returns. */
void relay_http__viewer_detach(viewer *v, const char *reason);

/* Add @v (set up, streaming) to @hi's viewers and counts, tell the event
 * clients. */
void relay_http__viewer_link(http_input *hi, viewer *v);

/* @hi's viewer count changed: an on-demand input without viewers stops
 * after the grace period unless one comes back first. */
void relay_http__viewers_changed(http_input *hi);

/* Start @hi's source if it is stopped (an on-demand input). 0 or the
 * source's error (then the grace timer is rearmed as needed). */
int relay_http__input_ensure_running(http_input *hi);

/* A viewer's connection is closing (the close callback of every viewer,
 * @arg the viewer): unlink and free it. */
void relay_http__viewer_closed(struct evhttp_connection *conn, void *arg);

/* Fill in @v's id, peer, fd and output buffer from @req's connection.
 * False when the connection is gone. */
bool relay_http__viewer_init(relay_http *srv, viewer *v, struct evhttp_request *req);

/* A new viewer of @hi for @req: within the viewer caps, its source
 * started, initialised (relay_http__viewer_init) but not yet streaming
 * or linked. NULL once it has answered the error (503). */
viewer *relay_http__viewer_open(relay_http *srv, struct evhttp_request *req, http_input *hi);

/* GET /stream/{input} and GET /snapshot/{input}.jpg; @hi is borrowed. */
void relay_http__handle_stream(relay_http *srv, struct evhttp_request *req, http_input *hi);
void relay_http__handle_snapshot(struct evhttp_request *req, http_input *hi);

/* ---- MPEG-TS viewers (http_ts.c) ---- */

/* GET /stream/{input}.ts; @hi is borrowed. */
void relay_http__handle_ts(relay_http *srv, struct evhttp_request *req, http_input *hi);

/* Release what a .ts viewer holds (its reader and event); from the
 * viewer's close callback. */
void relay_http__ts_viewer_release(viewer *v);

/* ---- the input table and the REST API (http_api.c) ---- */

/* The entry of the input named by the @len bytes at @name, or NULL. */
http_input *relay_http__find_input(relay_http *srv, const char *name, size_t len);

/* GET and POST /api/inputs. */
void relay_http__handle_list_inputs(relay_http *srv, struct evhttp_request *req);
void relay_http__handle_create_input(relay_http *srv, struct evhttp_request *req);

/* /api/inputs/@rest with method @cmd. */
void relay_http__route_input(relay_http *srv, struct evhttp_request *req, const char *rest,
                             enum evhttp_cmd_type cmd);

/* Write the state file with the table's inputs, without @skip (may be
 * NULL) and with @extra (may be NULL). Returns 0 (also when there is no
 * state file) or the save's negative errno, reported on stderr. */
int relay_http__save_state(relay_http *srv, const http_input *skip, relay_input *extra);

/* Answer a change that could not be saved, and so was not made: 507 when
 * the disk is full, 500 otherwise. */
void relay_http__reply_unsaved(struct evhttp_request *req, int rc);

/* The request's JSON body (a new json_t *, transfer full), or NULL once it
 * has answered the error (not JSON, too large, duplicate keys). */
json_t *relay_http__read_body(relay_http *srv, struct evhttp_request *req);

/* ---- motion detection (http_motion.c) ---- */

/* Append @in's "motion" object (options and state) to @b. */
void relay_http__motion_json(struct evbuffer *b, relay_input *in);

/* GET, PUT or PATCH /api/inputs/{name}/motion. */
void relay_http__handle_motion(relay_http *srv, struct evhttp_request *req, http_input *hi,
                               enum evhttp_cmd_type cmd);

/* Send @hi's queued motion events to the event clients. */
void relay_http__motion_flush(http_input *hi);

/* The motion metrics of every input with motion detection. */
void relay_http__motion_metrics(relay_http *srv, struct evbuffer *b);

/* ---- push outputs (http_push.c) ---- */

/* POST /api/inputs/{name}/outputs {"type":"push","url":...}. */
void relay_http__handle_create_push(relay_http *srv, struct evhttp_request *req, http_input *hi);

/* GET or DELETE /api/inputs/{name}/outputs/@id when @id is a push output:
 * answers and returns true; false when @hi has no push @id. */
bool relay_http__route_push(relay_http *srv, struct evhttp_request *req, http_input *hi,
                            uint64_t id, enum evhttp_cmd_type cmd);

/* Append @hi's push outputs to the JSON array being written in @b, with a
 * comma before the first unless @first. */
void relay_http__push_list_json(struct evbuffer *b, http_input *hi, bool first);

/* ---- recordings (http_rec.c) ---- */

/* /api/recordings/@rest ("" for /api/recordings) with method @cmd. */
void relay_http__route_recordings(relay_http *srv, struct evhttp_request *req, const char *rest,
                                  enum evhttp_cmd_type cmd);

/* Start the directory watcher and the recording state timer on the loop
 * (setup; nothing without a recordings service). 0 or a negative errno;
 * on failure what was made is freed by relay_http__rec_unwatch(). */
int relay_http__rec_watch(relay_http *srv);
void relay_http__rec_unwatch(relay_http *srv);

/* Append the recording metrics to @b. */
void relay_http__rec_metrics(relay_http *srv, struct evbuffer *b);

/* ---- maintenance endpoints (http_debug.c) ---- */

void relay_http__handle_healthz(struct evhttp_request *req);

/* Every input's supervised child jobs as a JSON array
 * ([{"input","job","state","pid","restarts","age_ms"}]) appended to @b. */
void relay_http__jobs_json(relay_http *srv, struct evbuffer *b);
void relay_http__handle_metrics(relay_http *srv, struct evhttp_request *req);
void relay_http__handle_resources(relay_http *srv, struct evhttp_request *req);
void relay_http__handle_cleanup(relay_http *srv, struct evhttp_request *req);
void relay_http__handle_threads(relay_http *srv, struct evhttp_request *req);

/* ---- the web UI (http_assets.c) ---- */

/* The embedded file served at @path, or NULL. */
const relay_web_asset *relay_http__find_asset(const char *path);

/* Answer @req with @a (static bytes, referenced, not copied). */
void relay_http__handle_asset(struct evhttp_request *req, const relay_web_asset *a);

#endif
