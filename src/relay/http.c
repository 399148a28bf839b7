/*
 * src/relay/http.c — the relay's HTTP server: REST API, events, metrics,
 * viewers and the web UI, all on one libevent (evhttp) loop thread.
 *
 * Model
 *   relay_http_start() binds the listening socket in the caller's thread
 *   (so the real port can be printed) and spawns the loop thread into the
 *   "http" scope. The loop watches the listener and its connections
 *   (evhttp), each input hub's eventfd (a new frame or a state change), a
 *   grace timer per on-demand input, the Server-Sent Events keep-alive
 *   timer and the scope's cancel fd (shutdown). Cancelling the scope
 *   breaks the loop; the thread then frees the evhttp, which closes every
 *   connection (viewers and event streams included, each through its close
 *   callback), and the event base.
 *
 * Inputs and outputs
 *   The loop thread owns the input table: it creates inputs (POST
 *   /api/inputs), deletes them (DELETE /api/inputs/{name}), starts and
 *   stops on-demand sources, and saves the state file after every change
 *   of the configuration. An input's outputs are its viewers. Deleting an
 *   output, or the input, *detaches* the viewer: it leaves the input's
 *   list and counts, and its response is ended (the final chunk, then the
 *   connection closes once the bytes are out, or the write timeout cuts a
 *   stalled peer). A detached viewer refers to nothing of the input any
 *   more; it lives until its connection's close callback frees it. Only
 *   then is the input's hub event removed and its owner scope closed,
 *   which joins the source thread (bounded by a deadline) and frees the
 *   hub: nothing on the loop can reach the input afterwards.
 *
 *   An on-demand input's source runs while it has viewers: the first viewer
 *   starts it, and when the last one leaves a timer of
 *   cfg.on_demand_grace_ms stops it unless a viewer came back meanwhile.
 *
 * Viewers (GET /stream/{input})
 *   A viewer is one streaming multipart/x-mixed-replace response. On every
 *   hub wake-up the loop takes the latest frame and, for each viewer that
 *   has not had it yet, appends a part whose JPEG bytes are the frame's
 *   buffer itself (evbuffer_add_reference with stw_buf_unref_cb): one frame
 *   goes to N sockets as N references and no copies; libevent drops each
 *   reference when those bytes have been written or the connection dies.
 *
 *   Each viewer has at most cfg.inflight frames queued in its output
 *   buffer. The loop knows how far each frame reaches in the byte stream
 *   and counts the bytes drained from the buffer (an evbuffer callback), so
 *   "frames still queued" is exact; a frame that finds the viewer full is
 *   skipped and counted as dropped (latest wins). What the kernel holds is
 *   bounded too: each viewer socket gets a small SO_SNDBUF
 *   (cfg.viewer_sndbuf; Linux doubles it for bookkeeping). A viewer whose
 *   socket accepts nothing for cfg.timeout_s seconds is closed (write
 *   timeout); a viewer that just watches and sends nothing is not (the read
 *   timeout is turned off once streaming starts).
 *
 * Events (GET /api/events)
 *   At most cfg.max_sse Server-Sent Events clients. Each event is written
 *   to every client whose output buffer holds less than SSE_BACKLOG_MAX
 *   bytes; a client further behind misses it (counted), so a stalled client
 *   costs a bounded amount of memory until the write timeout closes it. A
 *   comment line every 15 s keeps idle connections open through proxies.
 *
 * Ownership
 *   The relay_http state and the http_input entries are owned by the http
 *   scope (freed by its cleanup, which also closes the listening socket);
 *   the loop frees the entry of an input it deletes. Everything libevent
 *   and jansson allocate goes through stw_malloc, so it is in the ledger;
 *   the loop thread frees all of its libevent objects before it returns.
 *   A viewer or event client is owned by its connection: it is freed in the
 *   connection's close callback, whoever closes it (the peer, a timeout,
 *   shutdown). Their sockets are recorded in the ledger (STW_KIND_SOCKET,
 *   "socket:viewer", "socket:sse") while they exist; libevent closes them.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "relay.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"
#include "web_assets.h"

#define BOUNDARY "stwframe"
#define INFLIGHT_MAX 8
#define SSE_BACKLOG_MAX (64 * 1024)
#define SSE_KEEPALIVE_S 15
#define DELETE_DEADLINE_MS 2000
#define STACK_FRAMES 24

typedef struct viewer viewer;
typedef struct http_input http_input;
typedef struct sse_client sse_client;

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
};

struct http_input {
    relay_input *in;
    relay_http *srv;
    struct event *notify;
    struct event *grace; /* on-demand stop timer */
    viewer *viewers;
    unsigned nviewers;
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
};

/* ---- small helpers ---- */

/* A stw_write_fn appending to the evbuffer @ud. */
static int write_evbuffer(void *ud, const char *data, size_t len)
{
    return evbuffer_add(ud, data, len) == 0 ? 0 : -ENOMEM;
}

static void json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            evbuffer_add_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            evbuffer_add_printf(b, "\\u%04x", c);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* @ms (wall clock) as a JSON ISO 8601 UTC string. */
static void json_time(struct evbuffer *b, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
    evbuffer_add_printf(b, "\"%s.%03dZ\"", s, (int)(ms % 1000));
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void reply_json(struct evhttp_request *req, int code, const char *reason, struct evbuffer *b)
{
    reply(req, code, reason, "application/json", b);
    evbuffer_free(b);
}

static const char *reason_of(int code)
{
    switch (code) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Error";
    }
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add(b, "{\"error\":", 9);
    json_str(b, msg);
    evbuffer_add(b, "}\n", 2);
    reply_json(req, code, reason_of(code), b);
}

static void reply_405(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    reply_error(req, 405, "method not allowed");
}

static http_input *find_input(relay_http *srv, const char *name, size_t len)
{
    for (unsigned i = 0; i < srv->ninputs; i++)
        if (strlen(srv->inputs[i]->in->name) == len &&
            memcmp(srv->inputs[i]->in->name, name, len) == 0)
            return srv->inputs[i];
    return NULL;
}

/* ---- Server-Sent Events ---- */

/* Send "event: @event\ndata: @data\n\n" to every client not too far behind. */
static void sse_broadcast(relay_http *srv, const char *event, struct evbuffer *data)
{
    if (srv->closing || srv->sse == NULL)
        return;
    size_t len = evbuffer_get_length(data);
    const char *text = (const char *)evbuffer_pullup(data, -1);
    struct evbuffer *chunk = evbuffer_new();
    if (chunk == NULL || (len > 0 && text == NULL)) {
        srv->sse_missed += srv->nsse;
        if (chunk != NULL)
            evbuffer_free(chunk);
        return;
    }
    for (sse_client *c = srv->sse; c != NULL; c = c->next) {
        if (evbuffer_get_length(c->out) > SSE_BACKLOG_MAX) {
            srv->sse_missed++;
            continue;
        }
        evbuffer_add_printf(chunk, "event: %s\ndata: ", event);
        evbuffer_add(chunk, text, len);
        evbuffer_add(chunk, "\n\n", 2);
        evhttp_send_reply_chunk(c->req, chunk);
        evbuffer_drain(chunk, evbuffer_get_length(chunk));
    }
    evbuffer_free(chunk);
}

static void sse_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    sse_client *c = arg;
    relay_http *srv = c->srv;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->sse = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nsse--;
    stw_fd_untrack(c->fd);
    /* A request the peer abandoned mid-stream has been detached from its
     * connection and is ours to free; otherwise the connection frees it. */
    if (evhttp_request_get_connection(c->req) == NULL)
        evhttp_request_free(c->req);
    stw_free(c);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http *srv = arg;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    for (sse_client *c = srv->sse; c != NULL; c = c->next) {
        if (evbuffer_get_length(c->out) > SSE_BACKLOG_MAX)
            continue;
        evbuffer_add_printf(b, ": keep-alive\n\n");
        evhttp_send_reply_chunk(c->req, b);
    }
    evbuffer_free(b);
}

/* Begin a response that streams until the peer or the relay ends it (a
 * viewer, an event client). Such a client only listens, so there is no read
 * timeout; a peer that takes nothing for cfg.timeout_s seconds is cut by
 * the write timeout. The socket is booked in the ledger until @closed. */
static void start_stream(relay_http *srv, struct evhttp_request *req,
                         struct evhttp_connection *conn, struct bufferevent *bev, int fd,
                         const char *label, void (*closed)(struct evhttp_connection *, void *),
                         void *arg)
{
    evhttp_send_reply_start(req, 200, "OK");
    struct timeval wt = {.tv_sec = srv->cfg.timeout_s};
    bufferevent_set_timeouts(bev, NULL, &wt);
    stw_fd_track(fd, STW_KIND_SOCKET, label);
    evhttp_connection_set_closecb(conn, closed, arg);
}

static void handle_events(relay_http *srv, struct evhttp_request *req)
{
    if (srv->nsse >= srv->cfg.max_sse) {
        reply_error(req, 503, "too many event clients");
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    sse_client *c = bev != NULL ? stw_calloc(1, sizeof(*c)) : NULL;
    struct evbuffer *hello = c != NULL ? evbuffer_new() : NULL;
    if (hello == NULL) {
        stw_free(c);
        reply_error(req, 503, "out of memory");
        return;
    }
    c->srv = srv;
    c->req = req;
    c->fd = bufferevent_getfd(bev);
    c->out = bufferevent_get_output(bev);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Connection", "close");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    start_stream(srv, req, conn, bev, c->fd, "socket:sse", sse_closed, c);
    c->next = srv->sse;
    if (srv->sse != NULL)
        srv->sse->prev = c;
    srv->sse = c;
    srv->nsse++;
    evbuffer_add_printf(hello, "retry: 2000\n: steward relay events\n\n");
    evhttp_send_reply_chunk(req, hello);
    evbuffer_free(hello);
}

/* ---- inputs as JSON ---- */

static void input_json(struct evbuffer *b, http_input *hi)
{
    relay_input *in = hi->in;
    relay_hub_stat st;
    char state[RELAY_STATE_MAX];
    relay_hub_stats(in->hub, &st);
    relay_hub_state(in->hub, state);
    evbuffer_add_printf(b, "{\"name\":");
    json_str(b, in->name);
    evbuffer_add_printf(b, ",\"kind\":\"%s\",\"state\":", in->kind);
    json_str(b, state);
    if (strcmp(in->kind, "mjpeg") == 0) {
        relay_camera_stat cs;
        char err[RELAY_ERROR_MAX];
        relay_hub_camera(in->hub, &cs, err);
        evbuffer_add_printf(b, ",\"url\":");
        json_str(b, in->url);
        evbuffer_add_printf(b, ",\"last_error\":");
        if (err[0] != '\0')
            json_str(b, err);
        else
            evbuffer_add_printf(b, "null");
        evbuffer_add_printf(b,
                            ",\"camera\":{\"connects\":%llu,\"garbage_bytes\":%llu,"
                            "\"bad_parts\":%llu,\"oversize\":%llu,\"length_mismatch\":%llu}",
                            (unsigned long long)cs.connects, (unsigned long long)cs.garbage_bytes,
                            (unsigned long long)cs.bad_parts, (unsigned long long)cs.oversize,
                            (unsigned long long)cs.length_mismatch);
    } else {
        evbuffer_add_printf(b, ",\"width\":%u,\"height\":%u,\"fps\":%u,\"quality\":%u", in->width,
                            in->height, in->fps, in->quality);
    }
    evbuffer_add_printf(b,
                        ",\"on_demand\":%s,\"viewers\":%u,\"outputs\":%u,\"seq\":%llu,"
                        "\"frames_in\":%llu,\"cards\":%llu,\"frames_out\":%llu,\"dropped\":%llu,"
                        "\"created\":",
                        in->on_demand ? "true" : "false", hi->nviewers, hi->nviewers,
                        (unsigned long long)st.seq, (unsigned long long)st.frames_in,
                        (unsigned long long)st.cards,
                        (unsigned long long)st.frames_out, (unsigned long long)st.dropped);
    json_time(b, in->created_ms);
    evbuffer_add_printf(b, "}");
}

static void output_json(struct evbuffer *b, const viewer *v)
{
    evbuffer_add_printf(b, "{\"id\":%llu,\"type\":\"viewer\",\"peer\":", (unsigned long long)v->id);
    json_str(b, v->peer);
    evbuffer_add_printf(b, ",\"started\":");
    json_time(b, v->started_ms);
    evbuffer_add_printf(b, ",\"frames\":%llu,\"dropped\":%llu,\"queued\":%u}",
                        (unsigned long long)v->frames, (unsigned long long)v->dropped, v->nends);
}

/* Broadcast @event with {"input":NAME,"id":ID,"reason":REASON}. */
static void sse_output_event(relay_http *srv, const char *event, const char *input, uint64_t id,
                             const char *reason)
{
    if (srv->closing || srv->sse == NULL)
        return;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    evbuffer_add_printf(b, "{\"input\":");
    json_str(b, input);
    evbuffer_add_printf(b, ",\"id\":%llu", (unsigned long long)id);
    if (reason != NULL) {
        evbuffer_add_printf(b, ",\"reason\":");
        json_str(b, reason);
    }
    evbuffer_add_printf(b, "}");
    sse_broadcast(srv, event, b);
    evbuffer_free(b);
}

/* ---- viewers ---- */

static void out_drained(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    viewer *v = arg;
    v->drained += info->n_deleted;
}

/* Queue frame @f (borrowed) with sequence @seq on @v, unless @v already has
 * cfg.inflight frames queued: then count it as dropped. */
static void viewer_push(viewer *v, stw_frame *f, uint64_t seq)
{
    relay_http *srv = v->srv;
    relay_hub *hub = v->hi->in->hub;
    unsigned done = 0;
    while (done < v->nends && v->ends[done] <= v->drained)
        done++;
    memmove(v->ends, v->ends + done, (v->nends - done) * sizeof(v->ends[0]));
    v->nends -= done;
    v->last_seq = seq;
    if (v->nends >= srv->cfg.inflight) {
        relay_hub_count_dropped(hub, 1);
        v->dropped++;
        return;
    }
    struct evbuffer *part = evbuffer_new();
    if (part == NULL) {
        relay_hub_count_dropped(hub, 1);
        v->dropped++;
        return;
    }
    stw_buf *ref = stw_buf_ref(stw_frame_buf(f));
    size_t size = stw_buf_size(ref);
    if (evbuffer_add_printf(part,
                            "--" BOUNDARY "\r\nContent-Type: image/jpeg\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            size) < 0 ||
        evbuffer_add_reference(part, stw_buf_data(ref), size, stw_buf_unref_cb, ref) != 0) {
        stw_buf_unref(&ref);
        evbuffer_free(part);
        relay_hub_count_dropped(hub, 1);
        v->dropped++;
        return;
    }
    /* The closing CRLF is added by reference, not copied: evbuffer_add after
     * a reference chain allocates a new chain as large as the referenced
     * data, rounded up to a power of two. A copied CRLF (or libevent's chunk
     * trailer right after the JPEG) cost a mostly unused 64 KiB block per
     * queued 1080p frame per viewer; after a 2-byte reference the chunk
     * trailer gets libevent's smallest chain. */
    if (evbuffer_add_reference(part, "\r\n", 2, NULL, NULL) != 0) {
        evbuffer_free(part); /* drops the frame's reference */
        relay_hub_count_dropped(hub, 1);
        v->dropped++;
        return;
    }
    evhttp_send_reply_chunk(v->req, part);
    evbuffer_free(part);
    v->ends[v->nends++] = v->drained + evbuffer_get_length(v->out);
    v->frames++;
    relay_hub_count_out(hub, 1);
}

/* The viewer count of @hi changed: an on-demand input without viewers
 * stops after the grace period, unless one comes back first. */
static void viewers_changed(http_input *hi)
{
    relay_http *srv = hi->srv;
    if (srv->closing || !hi->in->on_demand)
        return;
    if (hi->nviewers > 0) {
        evtimer_del(hi->grace);
    } else if (hi->in->scope != NULL) {
        struct timeval tv = {.tv_sec = srv->cfg.on_demand_grace_ms / 1000,
                             .tv_usec = (srv->cfg.on_demand_grace_ms % 1000) * 1000};
        evtimer_add(hi->grace, &tv);
    }
}

/* Take @v out of its input's list and counts; tell the event clients. */
static void viewer_unlink(viewer *v, const char *reason)
{
    http_input *hi = v->hi;
    relay_http *srv = v->srv;
    if (v->prev != NULL)
        v->prev->next = v->next;
    else
        hi->viewers = v->next;
    if (v->next != NULL)
        v->next->prev = v->prev;
    v->prev = v->next = NULL;
    hi->nviewers--;
    srv->nviewers--;
    relay_hub_viewers_add(hi->in->hub, -1);
    v->hi = NULL;
    sse_output_event(srv, "output-deleted", hi->in->name, v->id, reason);
    viewers_changed(hi);
}

/* End @v's stream on purpose (its output or its input was deleted). The
 * final chunk is queued and the connection closes once it is written;
 * libevent owns the request from now on, and the close callback frees @v,
 * possibly before this returns. */
static void viewer_detach(viewer *v, const char *reason)
{
    viewer_unlink(v, reason);
    struct evhttp_request *req = v->req;
    v->req = NULL;
    evhttp_send_reply_end(req);
}

/* The viewer's connection is going away (peer closed, timeout, shutdown,
 * or the end of a detached viewer's stream was written). */
static void viewer_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    viewer *v = arg;
    evbuffer_remove_cb_entry(v->out, v->cbe);
    if (v->hi != NULL)
        viewer_unlink(v, "closed");
    stw_fd_untrack(v->fd);
    /* A request the peer abandoned mid-stream has been detached from its
     * connection and is ours to free; otherwise the connection frees it. */
    if (v->req != NULL && evhttp_request_get_connection(v->req) == NULL)
        evhttp_request_free(v->req);
    stw_free(v);
}

/* Start @hi's source if it is stopped (an on-demand input). */
static int input_ensure_running(http_input *hi)
{
    evtimer_del(hi->grace);
    if (hi->in->scope != NULL)
        return 0;
    return relay_input_start(hi->in, &hi->srv->cfg);
}

static void handle_stream(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    if (srv->nviewers >= srv->cfg.max_viewers || hi->nviewers >= srv->cfg.max_viewers_input) {
        reply_error(req, 503, "too many viewers");
        return;
    }
    int rc = input_ensure_running(hi);
    if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot start the source: %s", stw_strerror(rc));
        reply_error(req, 503, msg);
        viewers_changed(hi);
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    viewer *v = bev != NULL ? stw_calloc(1, sizeof(*v)) : NULL;
    if (v == NULL) {
        reply_error(req, 503, "out of memory");
        viewers_changed(hi);
        return;
    }
    v->srv = srv;
    v->hi = hi;
    v->req = req;
    v->fd = bufferevent_getfd(bev);
    v->out = bufferevent_get_output(bev);
    v->id = ++srv->next_output_id;
    v->started_ms = wall_ms();
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(v->peer, sizeof(v->peer), strchr(addr != NULL ? addr : "", ':') ? "[%s]:%u" : "%s:%u",
             addr != NULL ? addr : "?", (unsigned)port);
    int sndbuf = srv->cfg.viewer_sndbuf;
    setsockopt(v->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "multipart/x-mixed-replace; boundary=" BOUNDARY);
    evhttp_add_header(h, "Cache-Control", "no-store, no-cache, must-revalidate");
    evhttp_add_header(h, "Pragma", "no-cache");
    evhttp_add_header(h, "Connection", "close");
    /* Registered before the headers are queued, so every byte that ever
     * leaves the buffer is counted. */
    v->cbe = evbuffer_add_cb(v->out, out_drained, v);
    if (v->cbe == NULL) {
        stw_free(v);
        reply_error(req, 503, "out of memory");
        viewers_changed(hi);
        return;
    }
    start_stream(srv, req, conn, bev, v->fd, "socket:viewer", viewer_closed, v);
    v->next = hi->viewers;
    if (hi->viewers != NULL)
        hi->viewers->prev = v;
    hi->viewers = v;
    hi->nviewers++;
    srv->nviewers++;
    relay_hub_viewers_add(hi->in->hub, 1);
    sse_output_event(srv, "output-created", hi->in->name, v->id, NULL);

    uint64_t seq;
    stw_frame *f = relay_hub_latest(hi->in->hub, &seq);
    if (f != NULL) {
        viewer_push(v, f, seq);
        stw_frame_unref(&f);
    }
}

/* A hub published or its state changed: tell the event clients about the
 * state, give the latest frame to every viewer that lacks it. */
static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_input *hi = arg;
    relay_hub_drain_notify(hi->in->hub);
    char state[RELAY_STATE_MAX];
    if (relay_hub_take_state(hi->in->hub, state) && hi->srv->sse != NULL) {
        struct evbuffer *b = evbuffer_new();
        if (b != NULL) {
            evbuffer_add_printf(b, "{\"name\":");
            json_str(b, hi->in->name);
            evbuffer_add_printf(b, ",\"state\":");
            json_str(b, state);
            evbuffer_add_printf(b, "}");
            sse_broadcast(hi->srv, "input-state", b);
            evbuffer_free(b);
        }
    }
    uint64_t seq;
    stw_frame *f = relay_hub_latest(hi->in->hub, &seq);
    if (f == NULL)
        return;
    for (viewer *v = hi->viewers, *next; v != NULL; v = next) {
        next = v->next;
        if (v->last_seq != seq)
            viewer_push(v, f, seq);
    }
    stw_frame_unref(&f);
}

/* The grace period of an on-demand input ran out. */
static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_input *hi = arg;
    if (hi->nviewers == 0)
        relay_input_stop(hi->in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
}

/* ---- the input table ---- */

static void save_state(relay_http *srv)
{
    if (srv->cfg.state_path[0] == '\0')
        return;
    relay_input *list[RELAY_INPUTS_MAX];
    for (unsigned i = 0; i < srv->ninputs; i++)
        list[i] = srv->inputs[i]->in;
    int rc = relay_state_save(srv->cfg.state_path, list, srv->ninputs);
    if (rc != 0)
        fprintf(stderr, "steward relay: cannot save state file %s: %s\n", srv->cfg.state_path,
                stw_strerror(rc));
}

/* Watch @in on the loop: a new entry, not yet in the table. Returns it or
 * NULL (out of memory); @in is untouched on failure. */
static http_input *input_attach(relay_http *srv, relay_input *in)
{
    http_input *hi = stw_calloc(1, sizeof(*hi));
    if (hi == NULL)
        return NULL;
    hi->in = in;
    hi->srv = srv;
    hi->notify =
        event_new(srv->base, relay_hub_notify_fd(in->hub), EV_READ | EV_PERSIST, on_notify, hi);
    hi->grace = evtimer_new(srv->base, on_grace, hi);
    if (hi->notify == NULL || hi->grace == NULL || event_add(hi->notify, NULL) != 0) {
        if (hi->notify != NULL)
            event_free(hi->notify);
        if (hi->grace != NULL)
            event_free(hi->grace);
        stw_free(hi);
        return NULL;
    }
    return hi;
}

/* Stop watching @hi's input and free the entry (not the input). */
static void input_detach(http_input *hi)
{
    if (hi->notify != NULL)
        event_free(hi->notify);
    if (hi->grace != NULL)
        event_free(hi->grace);
    stw_free(hi);
}

static void handle_list_inputs(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"inputs\":[");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        input_json(b, srv->inputs[i]);
    }
    evbuffer_add_printf(b,
                        "],\"viewers\":%u,\"max_viewers\":%u,\"max_viewers_per_input\":%u,"
                        "\"max_inputs\":%u}\n",
                        srv->nviewers, srv->cfg.max_viewers, srv->cfg.max_viewers_input,
                        srv->cfg.max_inputs);
    reply_json(req, 200, "OK", b);
}

static void handle_get_input(struct evhttp_request *req, http_input *hi)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    input_json(b, hi);
    evbuffer_add(b, "\n", 1);
    reply_json(req, 200, "OK", b);
}

/* The request body as JSON, or NULL after answering 413 or 400. */
static json_t *read_body(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > (size_t)srv->cfg.max_body_bytes) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body larger than %d bytes", srv->cfg.max_body_bytes);
        reply_error(req, 413, msg);
        return NULL;
    }
    const char *text = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t jerr;
    json_t *root = text != NULL ? json_loadb(text, len, 0, &jerr) : NULL;
    if (root == NULL) {
        char msg[256];
        if (text == NULL)
            snprintf(msg, sizeof(msg), "out of memory");
        else
            snprintf(msg, sizeof(msg), "invalid JSON: line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        reply_error(req, text == NULL ? 503 : 400, msg);
    }
    return root;
}

static void handle_create_input(relay_http *srv, struct evhttp_request *req)
{
    json_t *body = read_body(srv, req);
    if (body == NULL)
        return;
    relay_spec spec;
    char err[256];
    int code = relay_spec_parse(body, &srv->cfg, &spec, err, sizeof(err));
    json_decref(body);
    if (code != 0) {
        reply_error(req, code, err);
        return;
    }
    if (find_input(srv, spec.name, strlen(spec.name)) != NULL) {
        snprintf(err, sizeof(err), "input \"%s\" already exists", spec.name);
        reply_error(req, 409, err);
        return;
    }
    if (srv->ninputs >= srv->cfg.max_inputs) {
        snprintf(err, sizeof(err), "too many inputs (the limit is %u)", srv->cfg.max_inputs);
        reply_error(req, 507, err);
        return;
    }
    spec.created_ms = 0;
    relay_input *in = NULL;
    int rc = relay_input_new(srv->sources, &spec, &in);
    http_input *hi = NULL;
    if (rc == 0) {
        hi = input_attach(srv, in);
        rc = hi != NULL ? 0 : -ENOMEM;
    }
    if (rc == 0 && !in->on_demand)
        rc = relay_input_start(in, &srv->cfg);
    if (rc != 0) {
        if (hi != NULL)
            input_detach(hi);
        relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
        snprintf(err, sizeof(err), "cannot create the input: %s", stw_strerror(rc));
        reply_error(req, rc == -ENOMEM ? 503 : 500, err);
        return;
    }
    srv->inputs[srv->ninputs++] = hi;
    save_state(srv);
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    input_json(b, hi);
    sse_broadcast(srv, "input-created", b);
    evbuffer_add(b, "\n", 1);
    char loc[RELAY_NAME_MAX + 16];
    snprintf(loc, sizeof(loc), "/api/inputs/%s", in->name);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    reply_json(req, 201, "Created", b);
}

static void handle_delete_input(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    unsigned closed = 0;
    while (hi->viewers != NULL) {
        viewer_detach(hi->viewers, "input deleted");
        closed++;
    }
    unsigned i = 0;
    while (srv->inputs[i] != hi)
        i++;
    memmove(&srv->inputs[i], &srv->inputs[i + 1], (srv->ninputs - i - 1) * sizeof(hi));
    srv->ninputs--;
    relay_input *in = hi->in;
    char name[RELAY_NAME_MAX];
    snprintf(name, sizeof(name), "%s", in->name);
    input_detach(hi);
    relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
    save_state(srv);
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"name\":");
    json_str(b, name);
    evbuffer_add_printf(b, "}");
    sse_broadcast(srv, "input-deleted", b);
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add_printf(b, "{\"deleted\":");
    json_str(b, name);
    evbuffer_add_printf(b, ",\"outputs_closed\":%u}\n", closed);
    reply_json(req, 200, "OK", b);
}

static void handle_list_outputs(struct evhttp_request *req, http_input *hi)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"input\":");
    json_str(b, hi->in->name);
    evbuffer_add_printf(b, ",\"outputs\":[");
    for (viewer *v = hi->viewers; v != NULL; v = v->next) {
        output_json(b, v);
        if (v->next != NULL)
            evbuffer_add(b, ",", 1);
    }
    evbuffer_add_printf(b, "]}\n");
    reply_json(req, 200, "OK", b);
}

static void handle_output(struct evhttp_request *req, http_input *hi, viewer *v, bool del)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    if (!del) {
        output_json(b, v);
        evbuffer_add(b, "\n", 1);
        reply_json(req, 200, "OK", b);
        return;
    }
    uint64_t id = v->id;
    viewer_detach(v, "deleted");
    evbuffer_add_printf(b, "{\"deleted\":%llu,\"input\":", (unsigned long long)id);
    json_str(b, hi->in->name);
    evbuffer_add_printf(b, ",\"outputs\":%u}\n", hi->nviewers);
    reply_json(req, 200, "OK", b);
}

/* ---- maintenance endpoints ---- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long pages = -1, rss = -1;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void ledger_counts(struct evbuffer *b, const stw_kind_stat *st)
{
    evbuffer_add(b, "{", 1);
    bool first = true;
    for (int k = 0; k < STW_KIND_BUILTIN_COUNT; k++) {
        evbuffer_add_printf(b, "%s\"%s\":{\"live\":%lld,\"bytes\":%lld}", first ? "" : ",",
                            stw_kind_name(k), (long long)st[k].live, (long long)st[k].live_bytes);
        first = false;
    }
    evbuffer_add(b, "}", 1);
}

/* POST /cleanup-resources: trim the idle buffers of every input's pool and
 * give the C library's free heap back to the system. */
static void handle_cleanup(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    stw_kind_stat before[STW_KIND_BUILTIN_COUNT], after[STW_KIND_BUILTIN_COUNT];
    for (int k = 0; k < STW_KIND_BUILTIN_COUNT; k++)
        stw_ledger_kind_stat(k, &before[k]);
    long rss_before = rss_kb();
    int64_t bytes = 0;
    unsigned buffers = 0, pools = 0;
    evbuffer_add_printf(b, "{\"pools\":[");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        pthread_mutex_lock(&in->lock);
        stw_pool *p = in->pool != NULL ? stw_pool_ref(in->pool) : NULL;
        pthread_mutex_unlock(&in->lock);
        if (p == NULL)
            continue;
        stw_pool_stat s0, s1;
        stw_pool_stats(p, &s0);
        int64_t freed = stw_pool_trim(p);
        stw_pool_stats(p, &s1);
        stw_pool_unref(&p);
        unsigned nb = s0.total > s1.total ? s0.total - s1.total : 0;
        evbuffer_add_printf(b, "%s{\"input\":", pools ? "," : "");
        json_str(b, in->name);
        evbuffer_add_printf(b, ",\"freed_bytes\":%lld,\"freed_buffers\":%u,\"buffers_left\":%u}",
                            (long long)freed, nb, s1.total);
        pools++;
        bytes += freed;
        buffers += nb;
    }
    int released = malloc_trim(0);
    long rss_after = rss_kb();
    for (int k = 0; k < STW_KIND_BUILTIN_COUNT; k++)
        stw_ledger_kind_stat(k, &after[k]);
    evbuffer_add_printf(b,
                        "],\"inputs_without_pool\":%u,\"freed_bytes\":%lld,\"freed_buffers\":%u,"
                        "\"malloc_trim_released\":%s,\"rss_kb\":{\"before\":%ld,\"after\":%ld},"
                        "\"ledger\":{\"before\":",
                        srv->ninputs - pools, (long long)bytes, buffers,
                        released ? "true" : "false", rss_before, rss_after);
    ledger_counts(b, before);
    evbuffer_add_printf(b, ",\"after\":");
    ledger_counts(b, after);
    evbuffer_add_printf(b, "}}\n");
    reply_json(req, 200, "OK", b);
}

static int count_tasks(void)
{
    int n = 0;
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* One frame of a creation stack. By default it is named with dladdr():
 * exported functions only, plus module and offset, and no file is opened.
 * @full uses the ledger's libdw symbolizer (static functions, file:line);
 * libdw keeps the debug info files it opened cached, and open, until the
 * process exits. */
static void stack_frame_json(struct evbuffer *b, void *pc, bool first, bool full)
{
    evbuffer_add_printf(b, "%s{\"pc\":\"%p\"", first ? "" : ",", pc);
    stw_symbol sym;
    Dl_info info;
    if (full && stw_symbolize(pc, &sym) == 0) {
        evbuffer_add_printf(b, ",\"func\":");
        json_str(b, sym.func);
        evbuffer_add_printf(b, ",\"file\":");
        json_str(b, sym.file);
        evbuffer_add_printf(b, ",\"line\":%d,\"module\":", sym.line);
        json_str(b, sym.module);
    } else if (dladdr((char *)pc - 1, &info) != 0) {
        if (info.dli_sname != NULL) {
            evbuffer_add_printf(b, ",\"func\":");
            json_str(b, info.dli_sname);
        }
        const char *slash = info.dli_fname != NULL ? strrchr(info.dli_fname, '/') : NULL;
        evbuffer_add_printf(b, ",\"module\":");
        json_str(b, slash != NULL ? slash + 1 : info.dli_fname);
        evbuffer_add_printf(b, ",\"offset\":\"0x%zx\"",
                            (size_t)((char *)pc - (char *)info.dli_fbase));
    }
    evbuffer_add(b, "}", 1);
}

/* GET /debug/threads: every thread the ledger knows (spawned into a scope)
 * with the stack that created it; ?symbolize=1 for file:line. */
static void handle_threads(relay_http *srv, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    bool full = query != NULL && strstr(query, "symbolize=1") != NULL;
    stw_snapshot_opts topts = {.kinds = STW_KIND_BIT(STW_KIND_THREAD), .records = true};
    stw_snapshot *threads = NULL;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || stw_snapshot_new(&topts, &threads) != 0) {
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    int64_t now = stw_now_ns();
    evbuffer_add_printf(b,
                        "{\"schema\":\"steward.relay.threads/1\",\"pid\":%d,\"uptime_ms\":%lld,"
                        "\"stack_kind\":\"creation\",\"note\":\"stacks are where each thread was "
                        "created (the ledger's record); live stacks of other threads need "
                        "ptrace and are not taken. The main thread and threads not spawned "
                        "through a scope are not listed: compare os_threads.\",\"symbolized\":%s,"
                        "\"os_threads\":%d,\"threads\":[",
                        (int)getpid(), (long long)((now - srv->started_ns) / 1000000),
                        full ? "true" : "false", count_tasks());
    for (size_t i = 0; i < threads->nrecords; i++) {
        const stw_record *r = &threads->records[i];
        stw_record owner;
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        json_str(b, r->label);
        evbuffer_add_printf(b, ",\"id\":\"0x%llx\",\"age_ms\":%lld,\"scope\":",
                            (unsigned long long)r->id, (long long)((now - r->birth_ns) / 1000000));
        if (r->owner != 0 && stw_ledger_lookup(STW_KIND_SCOPE, r->owner, &owner) == 0)
            json_str(b, owner.label);
        else
            evbuffer_add_printf(b, "null");
        evbuffer_add_printf(b, ",\"stack\":[");
        void *pcs[STACK_FRAMES];
        int kind;
        int depth = r->site != 0 ? stw_site_stack(r->site, &kind, pcs, STACK_FRAMES) : 0;
        for (int k = 0; k < depth; k++)
            stack_frame_json(b, pcs[k], k == 0, full);
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add_printf(b, "]}\n");
    stw_snapshot_free(&threads);
    /* A long-running server must not keep debug-info files open between
     * requests (nor be charged for them at shutdown). */
    if (full)
        stw_symbolize_release();
    reply_json(req, 200, "OK", b);
}

/* ---- other endpoints ---- */

static void handle_snapshot(struct evhttp_request *req, http_input *hi)
{
    stw_frame *f = relay_hub_latest(hi->in->hub, NULL);
    if (f == NULL) {
        reply_error(req, 503, hi->in->scope == NULL ? "input is idle" : "no frame yet");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    stw_buf *ref = stw_buf_ref(stw_frame_buf(f));
    stw_frame_unref(&f);
    if (b == NULL ||
        evbuffer_add_reference(b, stw_buf_data(ref), stw_buf_size(ref), stw_buf_unref_cb, ref)) {
        stw_buf_unref(&ref);
        if (b != NULL)
            evbuffer_free(b);
        reply_error(req, 503, "out of memory");
        return;
    }
    reply(req, 200, "OK", "image/jpeg", b);
    evbuffer_free(b);
}

static void metric_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void handle_metrics(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    stw_snapshot *snap = NULL;
    if (b == NULL || stw_snapshot_new(NULL, &snap) != 0) {
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"steward_relay_frames_in_total", "counter", "Frames published by the input's source."},
        {"steward_relay_frames_out_total", "counter", "Frames handed to viewer sockets."},
        {"steward_relay_frames_dropped_total", "counter",
         "Frames skipped for a busy viewer or lost by the source."},
        {"steward_relay_viewers", "gauge", "Streaming viewers now."},
    };
    for (unsigned k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        metric_head(b, m[k].name, m[k].type, m[k].help);
        for (unsigned i = 0; i < srv->ninputs; i++) {
            relay_hub_stat st;
            relay_hub_stats(srv->inputs[i]->in->hub, &st);
            uint64_t val[] = {st.frames_in, st.frames_out, st.dropped, srv->inputs[i]->nviewers};
            evbuffer_add_printf(b, "%s{input=\"%s\"} %llu\n", m[k].name, srv->inputs[i]->in->name,
                                (unsigned long long)val[k]);
        }
    }
    metric_head(b, "steward_relay_viewers_all", "gauge", "Streaming viewers of all inputs.");
    evbuffer_add_printf(b, "steward_relay_viewers_all %u\n", srv->nviewers);
    stw_report_prometheus(snap, write_evbuffer, b);
    stw_snapshot_free(&snap);
    reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

static void handle_resources(relay_http *srv, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    bool stacks = query != NULL && strstr(query, "stacks=1") != NULL;
    stw_snapshot_opts topts = {.kinds = STW_KIND_BIT(STW_KIND_THREAD), .records = true};
    stw_snapshot *snap = NULL, *threads = NULL;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || stw_snapshot_new(NULL, &snap) != 0 ||
        stw_snapshot_new(&topts, &threads) != 0) {
        stw_snapshot_free(&snap);
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    int64_t now = stw_now_ns();
    evbuffer_add_printf(b,
                        "{\"schema\":\"steward.relay.resources/1\",\"pid\":%d,\"uptime_ms\":%lld,"
                        "\"viewers\":%u,\"threads\":[",
                        (int)getpid(), (long long)((now - srv->started_ns) / 1000000),
                        srv->nviewers);
    for (size_t i = 0; i < threads->nrecords; i++) {
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        json_str(b, threads->records[i].label);
        evbuffer_add_printf(b, ",\"age_ms\":%lld}",
                            (long long)((now - threads->records[i].birth_ns) / 1000000));
    }
    evbuffer_add_printf(b, "],\"ledger\":");
    stw_report_opts ro = {.max_sites = 10, .max_frames = 8, .symbolize = stacks};
    stw_report_json(snap, &ro, write_evbuffer, b);
    evbuffer_add_printf(b, "}\n");
    stw_snapshot_free(&threads);
    stw_snapshot_free(&snap);
    if (stacks)
        stw_symbolize_release();
    reply(req, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void handle_healthz(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"status\":\"ok\"}\n");
    reply(req, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

/* The web UI: GET / and /ui/{app.js,style.css,uplot.js,uplot.css}, from
 * the table web/embed.py compiles into the binary. The bytes are static,
 * so the reply references them instead of copying. no-cache (not no-store)
 * lets a browser keep them but revalidate, so a rebuilt binary's UI is seen
 * at the next load. */
static const relay_web_asset *find_asset(const char *path)
{
    for (size_t i = 0; i < relay_web_nassets; i++)
        if (strcmp(relay_web_assets[i].path, path) == 0)
            return &relay_web_assets[i];
    return NULL;
}

static void handle_asset(struct evhttp_request *req, const relay_web_asset *a)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_reference(b, a->bytes, a->len, NULL, NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", a->type);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* Parse "/api/inputs/NAME[/outputs[/ID]]" after the prefix: *@name and
 * *@nlen get NAME; *@sub is 0 (the input), 1 (its outputs) or 2 (one
 * output, *@id). Returns false for anything else. */
static bool parse_input_path(const char *rest, const char **name, size_t *nlen, int *sub,
                             uint64_t *id)
{
    const char *slash = strchr(rest, '/');
    *name = rest;
    *nlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    *sub = 0;
    if (slash == NULL)
        return *nlen > 0;
    if (strncmp(slash, "/outputs", 8) != 0)
        return false;
    const char *tail = slash + 8;
    if (*tail == '\0' || strcmp(tail, "/") == 0) {
        *sub = 1;
        return true;
    }
    if (*tail != '/' || tail[1] < '0' || tail[1] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(tail + 1, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *id = v;
    *sub = 2;
    return true;
}

/* /api/inputs/... */
static void route_input(relay_http *srv, struct evhttp_request *req, const char *rest,
                        enum evhttp_cmd_type cmd)
{
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    const char *name;
    size_t nlen;
    int sub;
    uint64_t id = 0;
    if (!parse_input_path(rest, &name, &nlen, &sub, &id)) {
        reply_error(req, 404, "not found");
        return;
    }
    http_input *hi = find_input(srv, name, nlen);
    if (hi == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "no input \"%.*s\"", (int)(nlen < 40 ? nlen : 40), name);
        reply_error(req, 404, msg);
        return;
    }
    if (sub == 0) {
        if (get)
            handle_get_input(req, hi);
        else if (cmd == EVHTTP_REQ_DELETE)
            handle_delete_input(srv, req, hi);
        else
            reply_405(req, "GET, HEAD, DELETE");
        return;
    }
    if (sub == 1) {
        if (get)
            handle_list_outputs(req, hi);
        else
            reply_405(req, "GET, HEAD");
        return;
    }
    viewer *v = hi->viewers;
    while (v != NULL && v->id != id)
        v = v->next;
    if (v == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "input \"%s\" has no output %llu", hi->in->name,
                 (unsigned long long)id);
        reply_error(req, 404, msg);
        return;
    }
    if (get || cmd == EVHTTP_REQ_DELETE)
        handle_output(req, hi, v, cmd == EVHTTP_REQ_DELETE);
    else
        reply_405(req, "GET, HEAD, DELETE");
}

/* Route by path. Input names are [A-Za-z0-9_-], so paths are compared
 * as they come, without percent-decoding. */
static void on_request(struct evhttp_request *req, void *arg)
{
    relay_http *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (path == NULL) {
        reply_error(req, 400, "bad request target");
        return;
    }
    size_t len = strlen(path);
    if (strncmp(path, "/api/inputs/", 12) == 0) {
        route_input(srv, req, path + 12, cmd);
        return;
    }
    if (strcmp(path, "/api/inputs") == 0) {
        if (get)
            handle_list_inputs(srv, req);
        else if (cmd == EVHTTP_REQ_POST)
            handle_create_input(srv, req);
        else
            reply_405(req, "GET, HEAD, POST");
        return;
    }
    if (strcmp(path, "/cleanup-resources") == 0) {
        if (cmd == EVHTTP_REQ_POST)
            handle_cleanup(srv, req);
        else
            reply_405(req, "POST");
        return;
    }
    enum {
        NONE,
        ASSET,
        HEALTHZ,
        METRICS,
        RESOURCES,
        THREADS,
        EVENTS,
        STREAM,
        SNAPSHOT
    } what = NONE;
    http_input *hi = NULL;
    const relay_web_asset *asset = find_asset(path);
    if (asset != NULL) {
        what = ASSET;
    } else if (strcmp(path, "/healthz") == 0) {
        what = HEALTHZ;
    } else if (strcmp(path, "/metrics") == 0) {
        what = METRICS;
    } else if (strcmp(path, "/system-resources") == 0) {
        what = RESOURCES;
    } else if (strcmp(path, "/debug/threads") == 0) {
        what = THREADS;
    } else if (strcmp(path, "/api/events") == 0) {
        what = EVENTS;
    } else if (strncmp(path, "/stream/", 8) == 0) {
        hi = find_input(srv, path + 8, len - 8);
        what = hi != NULL ? STREAM : NONE;
    } else if (strncmp(path, "/snapshot/", 10) == 0 && len > 14 &&
               strcmp(path + len - 4, ".jpg") == 0) {
        hi = find_input(srv, path + 10, len - 14);
        what = hi != NULL ? SNAPSHOT : NONE;
    }
    if (what == NONE) {
        reply_error(req, 404, "not found");
        return;
    }
    if ((what == STREAM || what == EVENTS) && cmd != EVHTTP_REQ_GET) {
        reply_405(req, "GET");
        return;
    }
    if (!get) {
        reply_405(req, "GET, HEAD");
        return;
    }
    switch (what) {
    case ASSET:
        handle_asset(req, asset);
        break;
    case HEALTHZ:
        handle_healthz(req);
        break;
    case METRICS:
        handle_metrics(srv, req);
        break;
    case RESOURCES:
        handle_resources(srv, req);
        break;
    case THREADS:
        handle_threads(srv, req);
        break;
    case EVENTS:
        handle_events(srv, req);
        break;
    case STREAM:
        handle_stream(srv, req, hi);
        break;
    case SNAPSHOT:
        handle_snapshot(req, hi);
        break;
    case NONE:
        break;
    }
}

/* ---- the loop thread ---- */

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http *srv = arg;
    event_base_loopbreak(srv->base);
}

/* Build the server on the loop's base. Returns 0 or -ENOMEM; on failure
 * whatever was made is left for teardown(). */
static int setup(relay_http *srv)
{
    srv->base = event_base_new();
    if (srv->base == NULL)
        return -ENOMEM;
    srv->http = evhttp_new(srv->base);
    if (srv->http == NULL)
        return -ENOMEM;
    evhttp_set_max_headers_size(srv->http, srv->cfg.max_header_bytes);
    /* libevent answers a body over its cap with an HTML 413 and never calls
     * us; leaving it a margin lets read_body() answer the configured cap in
     * JSON. Bodies beyond the margin still get libevent's answer. */
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->cfg.max_body_bytes + (1 << 20));
    evhttp_set_timeout(srv->http, srv->cfg.timeout_s);
    /* Every method reaches on_request, which answers 405 in JSON. */
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                              EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, on_request, srv);
    /* Without LEV_OPT_CLOSE_ON_FREE: the socket is ours (stw_fd_close in
     * srv_free), the listener only accepts on it. */
    struct evconnlistener *l =
        evconnlistener_new(srv->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, srv->listen_fd);
    if (l == NULL)
        return -ENOMEM;
    if (evhttp_bind_listener(srv->http, l) == NULL) {
        evconnlistener_free(l);
        return -ENOMEM;
    }
    srv->cancel_ev = event_new(srv->base, stw_scope_cancel_fd(srv->scope), EV_READ, on_cancel, srv);
    if (srv->cancel_ev == NULL || event_add(srv->cancel_ev, NULL) != 0)
        return -ENOMEM;
    srv->keepalive = event_new(srv->base, -1, EV_PERSIST, on_keepalive, srv);
    struct timeval ka = {.tv_sec = SSE_KEEPALIVE_S};
    if (srv->keepalive == NULL || event_add(srv->keepalive, &ka) != 0)
        return -ENOMEM;
    for (unsigned i = 0; i < srv->ninputs; i++) {
        http_input *hi = srv->inputs[i];
        hi->notify = event_new(srv->base, relay_hub_notify_fd(hi->in->hub), EV_READ | EV_PERSIST,
                               on_notify, hi);
        if (hi->notify == NULL || event_add(hi->notify, NULL) != 0)
            return -ENOMEM;
        hi->grace = evtimer_new(srv->base, on_grace, hi);
        if (hi->grace == NULL)
            return -ENOMEM;
    }
    return 0;
}

static void teardown(relay_http *srv)
{
    /* Frees the listener and every connection: viewers and event clients
     * go through their close callbacks, queued frame references through
     * libevent's cleanup callbacks. No event is sent and no timer armed
     * from those callbacks any more. */
    srv->closing = true;
    if (srv->http != NULL)
        evhttp_free(srv->http);
    srv->http = NULL;
    for (unsigned i = 0; i < srv->ninputs; i++) {
        http_input *hi = srv->inputs[i];
        if (hi->notify != NULL)
            event_free(hi->notify);
        if (hi->grace != NULL)
            event_free(hi->grace);
        hi->notify = hi->grace = NULL;
    }
    if (srv->keepalive != NULL)
        event_free(srv->keepalive);
    if (srv->cancel_ev != NULL)
        event_free(srv->cancel_ev);
    if (srv->base != NULL)
        event_base_free(srv->base);
    srv->base = NULL;
}

static void loop_main(stw_scope *scope, void *arg)
{
    (void)scope;
    relay_http *srv = arg;
    int rc = setup(srv);
    if (rc == 0)
        event_base_dispatch(srv->base);
    else
        fprintf(stderr, "steward relay: http: %s\n", stw_strerror(rc));
    teardown(srv);
}

static void srv_free(void *arg)
{
    relay_http *srv = arg;
    stw_fd_close(&srv->listen_fd);
    for (unsigned i = 0; i < srv->ninputs; i++)
        stw_free(srv->inputs[i]);
    stw_free(srv);
}

/* Parse "HOST" into @ss: an IPv4 or IPv6 literal, or "localhost". */
static int parse_host(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -EINVAL;
}

int relay_http_start(stw_scope *scope, stw_scope *sources, const relay_config *cfg,
                     relay_input *const *inputs, unsigned ninputs, int *port_out)
{
    if (ninputs > RELAY_INPUTS_MAX || cfg->inflight < 1 || cfg->inflight > INFLIGHT_MAX)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int rc = parse_host(cfg->host, cfg->port, &ss, &sslen);
    if (rc != 0)
        return rc;
    relay_http *srv = stw_calloc(1, sizeof(*srv));
    if (srv == NULL)
        return -ENOMEM;
    srv->cfg = *cfg;
    srv->scope = scope;
    srv->sources = sources;
    srv->started_ns = stw_now_ns();
    srv->listen_fd = -1;
    for (unsigned i = 0; i < ninputs; i++) {
        http_input *hi = stw_calloc(1, sizeof(*hi));
        if (hi == NULL) {
            rc = -ENOMEM;
            goto free_srv;
        }
        hi->in = inputs[i];
        hi->srv = srv;
        srv->inputs[srv->ninputs++] = hi;
    }
    srv->listen_fd =
        stw_fd_track(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
                     STW_KIND_SOCKET, "socket:relay-listen");
    if (srv->listen_fd < 0) {
        rc = srv->listen_fd;
        goto free_srv;
    }
    int one = 1;
    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(srv->listen_fd, (struct sockaddr *)&ss, sslen) != 0 ||
        listen(srv->listen_fd, 128) != 0 ||
        getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sslen) != 0) {
        rc = -errno;
        goto free_srv;
    }
    *port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    rc = stw_scope_defer(scope, srv_free, srv);
    if (rc != 0)
        goto free_srv;
    return stw_scope_spawn(scope, "http-loop", loop_main, srv);

free_srv:
    srv_free(srv);
    return rc;
}
