/*
 * src/relay/http.c — the relay's HTTP server: API, metrics and viewers,
 * all on one libevent (evhttp) loop thread.
 *
 * Model
 *   relay_http_start() binds the listening socket in the caller's thread
 *   (so the real port can be printed) and spawns the loop thread into the
 *   "http" scope. The loop watches three kinds of fd: the listener and its
 *   connections (evhttp), each input hub's eventfd (a new frame), and the
 *   scope's cancel fd (shutdown). Cancelling the scope breaks the loop; the
 *   thread then frees the evhttp, which closes every connection (viewers
 *   included, each through its close callback), and the event base.
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
 * Ownership
 *   The relay_http state is owned by the http scope (freed by its cleanup,
 *   which also closes the listening socket). Everything libevent allocates
 *   goes through stw_malloc (event_set_mem_functions in relay.c), so it is
 *   in the ledger; the loop thread frees all of it before it returns. A
 *   viewer is owned by its connection: it is freed in the connection's
 *   close callback, whoever closes it (the peer, a timeout, shutdown).
 *   A viewer's socket is recorded in the ledger (STW_KIND_SOCKET,
 *   "socket:viewer") while the viewer exists; libevent closes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "relay.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define BOUNDARY "stwframe"
#define INFLIGHT_MAX 8

typedef struct viewer viewer;
typedef struct http_input http_input;

struct viewer {
    viewer *prev, *next;
    http_input *hi;
    struct evhttp_request *req;
    struct evbuffer *out; /* the connection's output buffer, borrowed */
    struct evbuffer_cb_entry *cbe;
    uint64_t drained;            /* bytes drained from out since the stream started */
    uint64_t ends[INFLIGHT_MAX]; /* stream offset where each queued frame ends */
    unsigned nends;
    uint64_t last_seq; /* hub sequence number of the last frame queued */
    int fd;
};

struct http_input {
    relay_input *in;
    relay_http *srv;
    struct event *notify;
    viewer *viewers;
    unsigned nviewers;
};

struct relay_http {
    relay_config cfg;
    stw_scope *scope;
    int listen_fd;
    int64_t started_ns;
    struct event_base *base;
    struct evhttp *http;
    struct event *cancel_ev;
    unsigned nviewers;
    unsigned ninputs;
    http_input inputs[RELAY_INPUTS_MAX];
};

/* ---- small helpers ---- */

/* A stw_write_fn appending to the evbuffer @ud. */
static int write_evbuffer(void *ud, const char *data, size_t len)
{
    return evbuffer_add(ud, data, len) == 0 ? 0 : -ENOMEM;
}

static void json_string(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            evbuffer_add_printf(b, "\\%c", c);
        else if (c < 0x20)
            evbuffer_add_printf(b, "\\u%04x", c);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add(b, "{\"error\":", 9);
    json_string(b, msg);
    evbuffer_add(b, "}\n", 2);
    if (code == 405)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
    reply(req, code, reason, "application/json", b);
    evbuffer_free(b);
}

static http_input *find_input(relay_http *srv, const char *name, size_t len)
{
    for (unsigned i = 0; i < srv->ninputs; i++)
        if (strlen(srv->inputs[i].in->name) == len &&
            memcmp(srv->inputs[i].in->name, name, len) == 0)
            return &srv->inputs[i];
    return NULL;
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
    relay_http *srv = v->hi->srv;
    relay_hub *hub = v->hi->in->hub;
    unsigned done = 0;
    while (done < v->nends && v->ends[done] <= v->drained)
        done++;
    memmove(v->ends, v->ends + done, (v->nends - done) * sizeof(v->ends[0]));
    v->nends -= done;
    v->last_seq = seq;
    if (v->nends >= srv->cfg.inflight) {
        relay_hub_count_dropped(hub, 1);
        return;
    }
    struct evbuffer *part = evbuffer_new();
    if (part == NULL) {
        relay_hub_count_dropped(hub, 1);
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
        return;
    }
    evbuffer_add(part, "\r\n", 2);
    evhttp_send_reply_chunk(v->req, part);
    evbuffer_free(part);
    v->ends[v->nends++] = v->drained + evbuffer_get_length(v->out);
    relay_hub_count_out(hub, 1);
}

/* The viewer's connection is going away (peer closed, timeout, shutdown). */
static void viewer_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    viewer *v = arg;
    http_input *hi = v->hi;
    evbuffer_remove_cb_entry(v->out, v->cbe);
    if (v->prev != NULL)
        v->prev->next = v->next;
    else
        hi->viewers = v->next;
    if (v->next != NULL)
        v->next->prev = v->prev;
    hi->nviewers--;
    hi->srv->nviewers--;
    relay_hub_viewers_add(hi->in->hub, -1);
    stw_fd_untrack(v->fd);
    /* A request the peer abandoned mid-stream has been detached from its
     * connection and is ours to free; otherwise the connection frees it. */
    if (evhttp_request_get_connection(v->req) == NULL)
        evhttp_request_free(v->req);
    stw_free(v);
}

static void handle_stream(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    if (srv->nviewers >= srv->cfg.max_viewers || hi->nviewers >= srv->cfg.max_viewers_input) {
        reply_error(req, 503, "Service Unavailable", "too many viewers");
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    viewer *v = bev != NULL ? stw_calloc(1, sizeof(*v)) : NULL;
    if (v == NULL) {
        reply_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    v->hi = hi;
    v->req = req;
    v->fd = bufferevent_getfd(bev);
    v->out = bufferevent_get_output(bev);
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
        reply_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    evhttp_send_reply_start(req, 200, "OK");
    struct timeval wt = {.tv_sec = srv->cfg.timeout_s};
    bufferevent_set_timeouts(bev, NULL, &wt);
    stw_fd_track(v->fd, STW_KIND_SOCKET, "socket:viewer");
    evhttp_connection_set_closecb(conn, viewer_closed, v);
    v->next = hi->viewers;
    if (hi->viewers != NULL)
        hi->viewers->prev = v;
    hi->viewers = v;
    hi->nviewers++;
    srv->nviewers++;
    relay_hub_viewers_add(hi->in->hub, 1);

    uint64_t seq;
    stw_frame *f = relay_hub_latest(hi->in->hub, &seq);
    if (f != NULL) {
        viewer_push(v, f, seq);
        stw_frame_unref(&f);
    }
}

/* A hub published: give its latest frame to every viewer that lacks it. */
static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_input *hi = arg;
    relay_hub_drain_notify(hi->in->hub);
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

/* ---- other endpoints ---- */

static void handle_snapshot(struct evhttp_request *req, http_input *hi)
{
    stw_frame *f = relay_hub_latest(hi->in->hub, NULL);
    if (f == NULL) {
        reply_error(req, 503, "Service Unavailable", "no frame yet");
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
        reply_error(req, 503, "Service Unavailable", "out of memory");
        return;
    }
    reply(req, 200, "OK", "image/jpeg", b);
    evbuffer_free(b);
}

static void handle_inputs(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"inputs\":[");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i].in;
        relay_hub_stat st;
        relay_hub_stats(in->hub, &st);
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        json_string(b, in->name);
        evbuffer_add_printf(b,
                            ",\"kind\":\"%s\",\"state\":\"%s\",\"width\":%u,\"height\":%u,"
                            "\"fps\":%u,\"viewers\":%u,\"seq\":%llu,\"frames_in\":%llu,"
                            "\"frames_out\":%llu,\"dropped\":%llu}",
                            in->kind, st.frames_in > 0 ? "running" : "starting", in->width,
                            in->height, in->fps, srv->inputs[i].nviewers,
                            (unsigned long long)st.seq, (unsigned long long)st.frames_in,
                            (unsigned long long)st.frames_out, (unsigned long long)st.dropped);
    }
    evbuffer_add_printf(b, "],\"viewers\":%u,\"max_viewers\":%u,\"max_viewers_per_input\":%u}\n",
                        srv->nviewers, srv->cfg.max_viewers, srv->cfg.max_viewers_input);
    reply(req, 200, "OK", "application/json", b);
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
            relay_hub_stats(srv->inputs[i].in->hub, &st);
            uint64_t val[] = {st.frames_in, st.frames_out, st.dropped, srv->inputs[i].nviewers};
            evbuffer_add_printf(b, "%s{input=\"%s\"} %llu\n", m[k].name, srv->inputs[i].in->name,
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
        json_string(b, threads->records[i].label);
        evbuffer_add_printf(b, ",\"age_ms\":%lld}",
                            (long long)((now - threads->records[i].birth_ns) / 1000000));
    }
    evbuffer_add_printf(b, "],\"ledger\":");
    stw_report_opts ro = {.max_sites = 10, .max_frames = 8, .symbolize = stacks};
    stw_report_json(snap, &ro, write_evbuffer, b);
    evbuffer_add_printf(b, "}\n");
    stw_snapshot_free(&threads);
    stw_snapshot_free(&snap);
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

/* The start page until the full web UI lands: every input with a live
 * preview and its state, refreshed from /api/inputs, and the endpoints. */
static const char index_html[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>steward relay</title>"
    "<style>body{font:14px sans-serif;margin:2em}figure{display:inline-block;margin:0 1em 1em 0}"
    "img{width:320px;background:#222}figcaption{margin-top:.3em}</style></head><body>"
    "<h1>steward relay</h1><div id=\"inputs\">loading&hellip;</div>"
    "<p><a href=\"/api/inputs\">/api/inputs</a> &middot; <a href=\"/metrics\">/metrics</a> "
    "&middot; <a href=\"/system-resources\">/system-resources</a> &middot; "
    "<a href=\"/healthz\">/healthz</a></p>"
    "<script>"
    "const box=document.getElementById('inputs');const shown=new Set();"
    "async function tick(){try{const r=await fetch('/api/inputs');const j=await r.json();"
    "for(const i of j.inputs){let f=document.getElementById('in-'+i.name);"
    "if(!f){f=document.createElement('figure');f.id='in-'+i.name;"
    "const img=document.createElement('img');img.src='/stream/'+encodeURIComponent(i.name);"
    "img.alt=i.name;f.appendChild(img);f.appendChild(document.createElement('figcaption'));"
    "if(!shown.size)box.textContent='';box.appendChild(f);shown.add(i.name);}"
    "f.querySelector('figcaption').textContent=i.name+' ('+i.kind+'): '+i.state+', '"
    "+i.viewers+' viewer(s)';}}catch(e){box.textContent='relay not answering: '+e;}}"
    "tick();setInterval(tick,2000);"
    "</script></body></html>\n";

static void handle_index(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_reference(b, index_html, sizeof(index_html) - 1, NULL, NULL);
    reply(req, 200, "OK", "text/html; charset=utf-8", b);
    evbuffer_free(b);
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
        reply_error(req, 400, "Bad Request", "bad request target");
        return;
    }
    size_t len = strlen(path);
    enum { NONE, INDEX, HEALTHZ, METRICS, RESOURCES, INPUTS, STREAM, SNAPSHOT } what = NONE;
    http_input *hi = NULL;
    if (strcmp(path, "/") == 0) {
        what = INDEX;
    } else if (strcmp(path, "/healthz") == 0) {
        what = HEALTHZ;
    } else if (strcmp(path, "/metrics") == 0) {
        what = METRICS;
    } else if (strcmp(path, "/system-resources") == 0) {
        what = RESOURCES;
    } else if (strcmp(path, "/api/inputs") == 0) {
        what = INPUTS;
    } else if (strncmp(path, "/stream/", 8) == 0) {
        hi = find_input(srv, path + 8, len - 8);
        what = hi != NULL ? STREAM : NONE;
    } else if (strncmp(path, "/snapshot/", 10) == 0 && len > 14 &&
               strcmp(path + len - 4, ".jpg") == 0) {
        hi = find_input(srv, path + 10, len - 14);
        what = hi != NULL ? SNAPSHOT : NONE;
    }
    if (what == NONE) {
        reply_error(req, 404, "Not Found", "not found");
        return;
    }
    if (!get || (what == STREAM && cmd != EVHTTP_REQ_GET)) {
        reply_error(req, 405, "Method Not Allowed", "method not allowed");
        return;
    }
    switch (what) {
    case INDEX:
        handle_index(req);
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
    case INPUTS:
        handle_inputs(srv, req);
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
    evhttp_set_max_body_size(srv->http, srv->cfg.max_body_bytes);
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
    for (unsigned i = 0; i < srv->ninputs; i++) {
        http_input *hi = &srv->inputs[i];
        hi->notify = event_new(srv->base, relay_hub_notify_fd(hi->in->hub), EV_READ | EV_PERSIST,
                               on_notify, hi);
        if (hi->notify == NULL || event_add(hi->notify, NULL) != 0)
            return -ENOMEM;
    }
    return 0;
}

static void teardown(relay_http *srv)
{
    /* Frees the listener and every connection: viewers go through
     * viewer_closed, their queued frame references through libevent's
     * cleanup callbacks. */
    if (srv->http != NULL)
        evhttp_free(srv->http);
    srv->http = NULL;
    for (unsigned i = 0; i < srv->ninputs; i++)
        if (srv->inputs[i].notify != NULL)
            event_free(srv->inputs[i].notify);
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

int relay_http_start(stw_scope *scope, const relay_config *cfg, relay_input *const *inputs,
                     unsigned ninputs, int *port_out)
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
    srv->started_ns = stw_now_ns();
    srv->ninputs = ninputs;
    for (unsigned i = 0; i < ninputs; i++) {
        srv->inputs[i].in = inputs[i];
        srv->inputs[i].srv = srv;
    }
    srv->listen_fd =
        stw_fd_track(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
                     STW_KIND_SOCKET, "socket:relay-listen");
    if (srv->listen_fd < 0) {
        rc = srv->listen_fd;
        stw_free(srv);
        return rc;
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
