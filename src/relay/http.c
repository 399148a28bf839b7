/*
 * src/relay/http.c — the relay's HTTP server: setup, the loop thread and
 * routing. The endpoints live beside it (http_internal.h lists the files).
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
 *   A request reaches on_request() once libevent has read all of it. It is
 *   served only if its connection was admitted (http_conn.c) and it passes
 *   the request policy (http_guard.c); then its path is percent-decoded
 *   (http_parse.c) and routed to the file of its concern.
 *
 * Ownership
 *   The relay_http state and the http_input entries are owned by the http
 *   scope (freed by its cleanup, which also closes the listening socket).
 *   The loop thread frees all of its libevent objects before it returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "log.h"
#include "config.h"
#include "http_internal.h"
#include "push.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"
#include "tls.h"

/* A HEAD of a streaming path: the headers its GET starts with, no body. */
static void head_of_stream(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Connection", "close");
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void route(relay_http *srv, struct evhttp_request *req, const char *path, size_t len,
                  enum evhttp_cmd_type cmd)
{
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (strncmp(path, "/api/inputs/", 12) == 0) {
        relay_http__route_input(srv, req, path + 12, cmd);
        return;
    }
    if (strcmp(path, "/api/recordings") == 0 || strncmp(path, "/api/recordings/", 16) == 0) {
        relay_http__route_recordings(srv, req, path[15] == '/' ? path + 16 : "", cmd);
        return;
    }
    if (strcmp(path, "/api/inputs") == 0) {
        if (get)
            relay_http__handle_list_inputs(srv, req);
        else if (cmd == EVHTTP_REQ_POST)
            relay_http__handle_create_input(srv, req);
        else
            relay_http__reply_405(req, "GET, HEAD, POST");
        return;
    }
    if (strcmp(path, "/cleanup-resources") == 0) {
        if (cmd == EVHTTP_REQ_POST)
            relay_http__handle_cleanup(srv, req);
        else
            relay_http__reply_405(req, "POST");
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
        STREAM_TS,
        SNAPSHOT
    } what = NONE;
    http_input *hi = NULL;
    const relay_web_asset *asset = relay_http__find_asset(path);
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
    } else if (strncmp(path, "/stream/", 8) == 0 && len > 11 &&
               strcmp(path + len - 3, ".ts") == 0) {
        hi = relay_http__find_input(srv, path + 8, len - 11);
        what = hi != NULL ? STREAM_TS : NONE;
    } else if (strncmp(path, "/stream/", 8) == 0) {
        hi = relay_http__find_input(srv, path + 8, len - 8);
        what = hi != NULL ? STREAM : NONE;
    } else if (strncmp(path, "/snapshot/", 10) == 0 && len > 14 &&
               strcmp(path + len - 4, ".jpg") == 0) {
        hi = relay_http__find_input(srv, path + 10, len - 14);
        what = hi != NULL ? SNAPSHOT : NONE;
    }
    if (what == NONE) {
        relay_http__reply_error(req, 404, "not found");
        return;
    }
    if (!get) {
        relay_http__reply_405(req, "GET, HEAD");
        return;
    }
    if (cmd == EVHTTP_REQ_HEAD && (what == STREAM || what == STREAM_TS || what == EVENTS)) {
        head_of_stream(req, what == STREAM      ? "multipart/x-mixed-replace; boundary=stwframe"
                            : what == STREAM_TS ? "video/mp2t"
                                                : "text/event-stream");
        return;
    }
    switch (what) {
    case ASSET:
        relay_http__handle_asset(req, asset);
        break;
    case HEALTHZ:
        relay_http__handle_healthz(req);
        break;
    case METRICS:
        relay_http__handle_metrics(srv, req);
        break;
    case RESOURCES:
        relay_http__handle_resources(srv, req);
        break;
    case THREADS:
        relay_http__handle_threads(srv, req);
        break;
    case EVENTS:
        relay_http__handle_events(srv, req);
        break;
    case STREAM:
        relay_http__handle_stream(srv, req, hi);
        break;
    case STREAM_TS:
        relay_http__handle_ts(srv, req, hi);
        break;
    case SNAPSHOT:
        relay_http__handle_snapshot(req, hi);
        break;
    case NONE:
        break;
    }
}

void relay_http__route(relay_http *srv, struct evhttp_request *req, const char *path,
                       enum evhttp_cmd_type cmd)
{
    route(srv, req, path, strlen(path), cmd);
}

/* Admission, policy, then the route of the decoded path (input names are
 * [A-Za-z0-9_-], so "/stream/te%73t" is "/stream/test"). */
static void on_request(struct evhttp_request *req, void *arg)
{
    relay_http *srv = arg;
    if (!relay_http__conn_request(srv, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        relay_http__reply_error(req, 503, "connection not admitted");
        return;
    }
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!relay_http__guard(srv, req, cmd))
        return;
    /* One of our own inputs reading us, directly or through other relays
     * (chain.h): it would feed on its own output. */
    const char *loop = evhttp_find_header(evhttp_request_get_input_headers(req), RELAY_LOOP_HEADER);
    if (relay_via_has(loop, srv->cfg.instance)) {
        relay_http__reply_error(req, 508,
                                "an input of this relay points at the relay itself, directly or "
                                "through other relays");
        return;
    }
    const char *raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (raw == NULL || raw[0] != '/') {
        relay_http__reply_error(req, 400, "bad request target");
        return;
    }
    size_t len = strlen(raw);
    char *path = stw_malloc(len + 1);
    if (path == NULL) {
        relay_http__reply_error(req, 503, "out of memory");
        return;
    }
    if (relay_http__decode_path(raw, path, &len) == 0) {
        if (relay_http__authorize(srv, req, path, cmd))
            route(srv, req, path, len, cmd);
    } else
        relay_http__reply_error(req, 400, "bad request target");
    stw_free(path);
}

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
    /* libevent answers a body over the cap itself (in JSON: see
     * evhttp_send_error in http_reply.c). Lingering close: it reads and
     * drops the rest of such a body before closing, so the peer gets the
     * answer instead of a reset. */
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->cfg.max_body_bytes);
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
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
    if (relay_http__conn_setup(srv, l) != 0)
        return -ENOMEM;
    if (relay_http__auth_watch(srv) != 0)
        return -ENOMEM;
    srv->cancel_ev = event_new(srv->base, stw_scope_cancel_fd(srv->scope), EV_READ, on_cancel, srv);
    if (srv->cancel_ev == NULL || event_add(srv->cancel_ev, NULL) != 0)
        return -ENOMEM;
    srv->keepalive = event_new(srv->base, -1, EV_PERSIST, relay_http__sse_keepalive, srv);
    struct timeval ka = {.tv_sec = SSE_KEEPALIVE_S};
    if (srv->keepalive == NULL || event_add(srv->keepalive, &ka) != 0)
        return -ENOMEM;
    for (unsigned i = 0; i < srv->ninputs; i++)
        if (relay_http__input_watch(srv->inputs[i]) != 0)
            return -ENOMEM;
    int rc = relay_http__rec_watch(srv);
    return rc != 0 ? rc : relay_http__service_setup(srv);
}

/* The shutdown log names every child still running before the stages
 * stop them, so that the report after them can be read against it. */
static void log_children(relay_http *srv)
{
    relay_job_view jv[RELAY_PUSH_MAX + 3];
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        unsigned n = relay_input_jobs(in, jv, RELAY_PUSH_MAX + 3);
        for (unsigned j = 0; j < n; j++)
            if (jv[j].pid > 0 || jv[j].restarts > 0)
                fprintf(stderr,
                        "shutdown: child of input %s, %s: pid %d, %s for %.1f s, %u restart(s)\n",
                        in->name, jv[j].job, jv[j].pid, jv[j].state, (double)jv[j].age_ms / 1000.0,
                        jv[j].restarts);
    }
}

static void teardown(relay_http *srv)
{
    log_children(srv);
    /* Frees the listener and every connection: viewers and event clients
     * go through their close callbacks, queued frame references through
     * libevent's cleanup callbacks. No event is sent and no timer armed
     * from those callbacks any more. */
    srv->closing = true;
    if (srv->http != NULL)
        evhttp_free(srv->http);
    srv->http = NULL;
    relay_http__conn_release(srv);
    relay_http__auth_unwatch(srv);
    relay_http__service_teardown(srv);
    relay_http__rec_unwatch(srv);
    for (unsigned i = 0; i < srv->ninputs; i++)
        relay_http__input_unwatch(srv->inputs[i]);
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
        relay_log(RELAY_LOG_ERROR, "http", NULL, "%s", stw_strerror(rc));
    teardown(srv);
}

static void srv_free(void *arg)
{
    relay_http *srv = arg;
    stw_fd_close(&srv->listen_fd);
    relay_tls_free(&srv->tls);
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
        /* Output ids stay unique across restarts: push outputs keep theirs. */
        for (unsigned k = 0; k < inputs[i]->npush; k++)
            if (relay_push_id(inputs[i]->push[k]) > srv->next_output_id)
                srv->next_output_id = relay_push_id(inputs[i]->push[k]);
    }
    if (cfg->file != NULL && cfg->file->tls_cert[0] != '\0') {
        char err[512];
        rc = relay_tls_new(cfg->file->tls_cert, cfg->file->tls_key, &srv->tls, err, sizeof(err));
        if (rc != 0) {
            relay_log(RELAY_LOG_ERROR, "tls", NULL, "%s", err);
            goto free_srv;
        }
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
    /* From here the scope frees srv. */
    rc = relay_http__auth_setup(srv);
    if (rc != 0)
        return rc;
    return stw_scope_spawn(scope, "http-loop", loop_main, srv);

free_srv:
    srv_free(srv);
    return rc;
}
