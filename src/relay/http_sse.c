/*
 * src/relay/http_sse.c — Server-Sent Events (GET /api/events).
 *
 * Model
 *   At most cfg.max_sse clients. Each event is written to every client
 *   whose output buffer holds less than SSE_BACKLOG_MAX bytes; a client
 *   further behind misses it (counted), so a stalled client costs a bounded
 *   amount of memory until the write timeout closes it. A comment line
 *   every SSE_KEEPALIVE_S seconds keeps idle connections open through
 *   proxies.
 *
 * Ownership
 *   A client is owned by its connection: sse_closed() (the close callback)
 *   unlinks and frees it, whoever closes the connection (the peer, a
 *   timeout, shutdown). Its socket is booked in the ledger as "socket:sse"
 *   while it exists; libevent closes it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

/* Send "event: @event\ndata: @data\n\n" to every client not too far behind. */
void relay_http__sse_broadcast(relay_http *srv, const char *event, struct evbuffer *data)
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

/* Broadcast @event with {"input":NAME,"id":ID,"reason":REASON}. */
void relay_http__sse_output_event(relay_http *srv, const char *event, const char *input,
                                  uint64_t id, const char *reason)
{
    if (srv->closing || srv->sse == NULL)
        return;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    evbuffer_add_printf(b, "{\"input\":");
    relay_http__json_str(b, input);
    evbuffer_add_printf(b, ",\"id\":%llu", (unsigned long long)id);
    if (reason != NULL) {
        evbuffer_add_printf(b, ",\"reason\":");
        relay_http__json_str(b, reason);
    }
    evbuffer_add_printf(b, "}");
    relay_http__sse_broadcast(srv, event, b);
    evbuffer_free(b);
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

void relay_http__sse_keepalive(evutil_socket_t fd, short what, void *arg)
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

void relay_http__handle_events(relay_http *srv, struct evhttp_request *req)
{
    if (srv->nsse >= srv->cfg.max_sse) {
        relay_http__reply_error(req, 503, "too many event clients");
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    sse_client *c = bev != NULL ? stw_calloc(1, sizeof(*c)) : NULL;
    struct evbuffer *hello = c != NULL ? evbuffer_new() : NULL;
    if (hello == NULL) {
        stw_free(c);
        relay_http__reply_error(req, 503, "out of memory");
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
    relay_http__start_stream(srv, req, conn, bev, c->fd, "socket:sse", sse_closed, c);
    c->next = srv->sse;
    if (srv->sse != NULL)
        srv->sse->prev = c;
    srv->sse = c;
    srv->nsse++;
    evbuffer_add_printf(hello, "retry: 2000\n: steward relay events\n\n");
    evhttp_send_reply_chunk(req, hello);
    evbuffer_free(hello);
}
