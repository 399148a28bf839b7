/*
 * src/relay/http_conn.c — what a client may hold of the relay before and
 * between its requests: connection caps (in total and per client
 * address), the request-head deadline, the bound on what a connection may
 * buffer, and the accept back-off at the descriptor limit.
 *
 * Model
 *   libevent 2.1's evhttp accepts by itself and has no hook that sees a
 *   new connection's socket (evhttp_set_newreqcb is 2.2). It does let us
 *   make each connection's bufferevent (evhttp_set_bevcb), and it sets the
 *   socket on it right after, in the same callback. So conn_bev() makes
 *   the bufferevent, holds a reference on it and queues it; the admit
 *   event, made active there, runs before the loop polls again (so before
 *   any byte of the new connection is read) and admits or refuses the
 *   socket. A refused connection gets a JSON 503 written straight to the
 *   socket, which is then shut down: evhttp reads end-of-file and frees
 *   the connection as if the peer had left.
 *
 *   Every admitted connection has an entry (http_conn) with its socket's
 *   cookie (SO_COOKIE, unique per socket for the life of the system). evhttp
 *   does not say when it frees a connection, so entries are checked, not
 *   told: an entry whose descriptor no longer carries its cookie is stale
 *   and dropped. Counts are therefore upper bounds, made exact (swept)
 *   whenever a cap would refuse a connection and when /metrics reads them.
 *
 *   An entry waiting for a request head (a new connection, or a kept-alive
 *   one between requests) has a deadline of cfg.header_timeout_s: evhttp's
 *   own read timeout restarts on every byte, so a client sending one byte
 *   every few seconds would otherwise hold the connection for ever. The
 *   deadline is cleared when the request reaches the router (so it covers
 *   the body too, at most --max-body-bytes) and set again when its answer
 *   is complete.
 *
 *   What a client sends is bounded per connection by a read high
 *   watermark on its bufferevent: once that many bytes wait unparsed,
 *   libevent stops reading the socket and TCP flow control holds the
 *   client back. evhttp keeps the socket readable while it answers (to see
 *   the peer leave), so without the watermark a client streaming bytes at
 *   a viewer or an event stream, or pipelining requests, was buffered
 *   without bound. A flooding peer is then noticed by its writes failing
 *   or stalling (the write timeout), which is all a streaming answer
 *   needs.
 *
 *   accept() failing for lack of descriptors (EMFILE, ENFILE) or memory
 *   leaves the connection queued, so the listener would fire again at
 *   once: the loop spun and libevent logged every failure. The listener is
 *   disabled for ACCEPT_PAUSE_MS instead, and one line is logged per pause.
 *
 * Ownership
 *   Entries and the pending list are owned by relay_http and freed by
 *   relay_http__conn_release() on the loop thread at teardown. The pending
 *   references are dropped by the admit event in the same loop iteration.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/listener.h>

#include "log.h"
#include "http_internal.h"
#include "steward/alloc.h"
#include "tls.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define ACCEPT_PAUSE_MS 250

struct http_conn {
    int fd;
    uint64_t cookie;
    struct sockaddr_storage peer; /* the client; only its address is compared */
    bool in_head;                 /* waiting for a request: the deadline runs */
    bool first;                   /* no request yet on this connection */
    struct event *deadline;
    relay_http *srv;
};

/* The accept error callback gets evhttp as its argument, not ours; there is
 * one server per process. */
static relay_http *accept_srv;

static uint64_t sock_cookie(int fd)
{
    uint64_t c = 0;
    socklen_t len = sizeof(c);
    if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) != 0)
        return 0;
    return c;
}

static bool same_client(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
    return true;
}

static void conn_free(relay_http *srv, unsigned i)
{
    http_conn *c = srv->conns[i];
    if (c->deadline != NULL)
        event_free(c->deadline);
    stw_free(c);
    srv->conns[i] = srv->conns[--srv->nconns];
}

/* Drop the entries whose connection is gone. */
static void sweep(relay_http *srv)
{
    for (unsigned i = 0; i < srv->nconns;) {
        if (sock_cookie(srv->conns[i]->fd) != srv->conns[i]->cookie)
            conn_free(srv, i);
        else
            i++;
    }
}

static http_conn *find(relay_http *srv, int fd, unsigned *index)
{
    for (unsigned i = 0; i < srv->nconns; i++) {
        if (srv->conns[i]->fd == fd) {
            if (index != NULL)
                *index = i;
            return srv->conns[i];
        }
    }
    return NULL;
}

/* Answer @code with {"error":@msg} on @fd without evhttp (nothing else has
 * been written on it), then shut it down: evhttp sees end-of-file and frees
 * the connection. Best effort: a full socket buffer loses the answer. */
static void refuse(int fd, int code, const char *reason, const char *msg)
{
    char buf[384];
    int body = (int)strlen(msg) + 13;
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                     "{\"error\":\"%s\"}\n",
                     code, reason, body, msg);
    if (n > 0 && (size_t)n < sizeof(buf))
        (void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_RDWR);
}

static void arm(http_conn *c)
{
    struct timeval tv = {.tv_sec = c->srv->cfg.header_timeout_s};
    c->in_head = true;
    evtimer_add(c->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    http_conn *c = arg;
    relay_http *srv = c->srv;
    unsigned i;
    if (find(srv, c->fd, &i) != c)
        return;
    if (c->in_head && sock_cookie(c->fd) == c->cookie) {
        /* Between two requests a kept-alive connection is just closed: an
         * answer nobody asked for could be read as the next one's. */
        if (c->first)
            refuse(c->fd, 408, "Request Timeout", "request head not received in time");
        else
            shutdown(c->fd, SHUT_RDWR);
        srv->header_timeouts++;
    }
    conn_free(srv, i);
}

static unsigned clients_like(relay_http *srv, const struct sockaddr_storage *peer)
{
    unsigned n = 0;
    for (unsigned i = 0; i < srv->nconns; i++)
        n += same_client(&srv->conns[i]->peer, peer);
    return n;
}

static void admit(relay_http *srv, int fd)
{
    uint64_t cookie = sock_cookie(fd);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    memset(&peer, 0, sizeof(peer));
    if (cookie == 0 || getpeername(fd, (struct sockaddr *)&peer, &plen) != 0)
        return; /* gone already: evhttp sees the error */
    unsigned i;
    if (find(srv, fd, &i) != NULL)
        conn_free(srv, i); /* the descriptor was reused: that one is gone */
    if (srv->nconns >= srv->cfg.max_connections ||
        clients_like(srv, &peer) >= srv->cfg.max_conn_per_client)
        sweep(srv);
    if (srv->nconns >= srv->cfg.max_connections) {
        srv->refused_total++;
        refuse(fd, 503, "Service Unavailable", "too many connections");
        return;
    }
    if (clients_like(srv, &peer) >= srv->cfg.max_conn_per_client) {
        srv->refused_client++;
        refuse(fd, 503, "Service Unavailable", "too many connections from this address");
        return;
    }
    if (srv->nconns == srv->cconns) {
        unsigned cap = srv->cconns ? srv->cconns * 2 : 64;
        http_conn **a = stw_realloc(srv->conns, cap * sizeof(*a));
        if (a == NULL) {
            refuse(fd, 503, "Service Unavailable", "out of memory");
            return;
        }
        srv->conns = a;
        srv->cconns = cap;
    }
    http_conn *c = stw_calloc(1, sizeof(*c));
    if (c == NULL || (c->deadline = evtimer_new(srv->base, on_deadline, c)) == NULL) {
        stw_free(c);
        refuse(fd, 503, "Service Unavailable", "out of memory");
        return;
    }
    c->fd = fd;
    c->cookie = cookie;
    c->peer = peer;
    c->first = true;
    c->srv = srv;
    srv->conns[srv->nconns++] = c;
    arm(c);
}

static void on_admit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http *srv = arg;
    for (unsigned i = 0; i < srv->npending; i++) {
        int sfd = bufferevent_getfd(srv->pending[i]);
        if (sfd >= 0 && !srv->closing)
            admit(srv, sfd);
        bufferevent_decref(srv->pending[i]);
    }
    srv->npending = 0;
}

/* evhttp's bufferevent factory, once per accepted connection. */
static struct bufferevent *conn_bev(struct event_base *base, void *arg)
{
    relay_http *srv = arg;
    /* As evhttp makes its own: it closes the socket itself. A TLS one
     * closes it (and frees its SSL) when freed, and evhttp then does not. */
    struct bufferevent *bev =
        srv->tls != NULL ? relay_tls_bev(srv->tls, base) : bufferevent_socket_new(base, -1, 0);
    if (bev == NULL)
        return NULL;
    bufferevent_setwatermark(bev, EV_READ, 0, srv->read_cap);
    if (srv->npending == srv->cpending) {
        unsigned cap = srv->cpending ? srv->cpending * 2 : 16;
        struct bufferevent **a = stw_realloc(srv->pending, cap * sizeof(*a));
        if (a == NULL)
            return bev; /* not admitted: its requests are refused */
        srv->pending = a;
        srv->cpending = cap;
    }
    bufferevent_incref(bev);
    srv->pending[srv->npending++] = bev;
    event_active(srv->admit_ev, EV_TIMEOUT, 1);
    return bev;
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http *srv = arg;
    if (!srv->closing)
        evconnlistener_enable(srv->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    relay_http *srv = accept_srv;
    int err = EVUTIL_SOCKET_ERROR();
    if (srv == NULL || srv->listener != l)
        return;
    srv->accept_errors++;
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
        relay_log(RELAY_LOG_ERROR, "http", NULL, "accept: %s", strerror(err));
        return;
    }
    evconnlistener_disable(l);
    struct timeval tv = {.tv_usec = ACCEPT_PAUSE_MS * 1000};
    evtimer_add(srv->accept_resume, &tv);
    int64_t now = stw_now_ns();
    if (now - srv->accept_logged_ns >= 1000000000LL) {
        relay_log(RELAY_LOG_ERROR, "http", NULL,
                  "accept: %s; not accepting for %d ms (%llu such pauses so far)", strerror(err),
                  ACCEPT_PAUSE_MS, (unsigned long long)srv->accept_errors);
        srv->accept_logged_ns = now;
    }
}

int relay_http__conn_setup(relay_http *srv, struct evconnlistener *l)
{
    /* A request head and its largest body fit, plus one more head of a
     * pipelining client; evhttp needs no more to make progress. */
    srv->read_cap = (size_t)srv->cfg.max_header_bytes * 2 + (size_t)srv->cfg.max_body_bytes;
    srv->listener = l;
    srv->admit_ev = event_new(srv->base, -1, 0, on_admit, srv);
    srv->accept_resume = evtimer_new(srv->base, on_accept_resume, srv);
    if (srv->admit_ev == NULL || srv->accept_resume == NULL)
        return -ENOMEM;
    accept_srv = srv;
    evconnlistener_set_error_cb(l, on_accept_error);
    evhttp_set_bevcb(srv->http, conn_bev, srv);
    return 0;
}

void relay_http__conn_release(relay_http *srv)
{
    for (unsigned i = 0; i < srv->npending; i++)
        bufferevent_decref(srv->pending[i]);
    srv->npending = 0;
    while (srv->nconns > 0)
        conn_free(srv, srv->nconns - 1);
    stw_free(srv->conns);
    stw_free(srv->pending);
    srv->conns = NULL;
    srv->pending = NULL;
    srv->cconns = srv->cpending = 0;
    if (srv->admit_ev != NULL)
        event_free(srv->admit_ev);
    if (srv->accept_resume != NULL)
        event_free(srv->accept_resume);
    srv->admit_ev = srv->accept_resume = NULL;
    if (accept_srv == srv)
        accept_srv = NULL;
}

static int req_fd(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    return bev != NULL ? bufferevent_getfd(bev) : -1;
}

static void on_complete(struct evhttp_request *req, void *arg)
{
    relay_http *srv = arg;
    http_conn *c = srv->closing ? NULL : find(srv, req_fd(req), NULL);
    if (c != NULL)
        arm(c);
}

bool relay_http__conn_request(relay_http *srv, struct evhttp_request *req)
{
    http_conn *c = find(srv, req_fd(req), NULL);
    if (c == NULL)
        return false;
    c->in_head = false;
    c->first = false;
    evtimer_del(c->deadline);
    evhttp_request_set_on_complete_cb(req, on_complete, srv);
    return true;
}

unsigned relay_http__conn_count(relay_http *srv)
{
    sweep(srv);
    return srv->nconns;
}
