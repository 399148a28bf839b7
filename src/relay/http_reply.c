/*
 * src/relay/http_reply.c — replies for the relay's HTTP server: JSON
 * bodies and errors, JSON text helpers, and the start of a streaming
 * response.
 *
 * Model
 *   Every answer goes through relay_http__reply(), which marks it
 *   uncacheable; errors are JSON {"error":"..."} with the status's reason
 *   phrase. JSON is written by hand into evbuffers (the shapes are fixed and
 *   small), so strings go through relay_http__json_str() for escaping.
 *
 * Ownership
 *   relay_http__reply() borrows its body; relay_http__reply_json() takes it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"
#include "steward/fd.h"
#include "steward/ledger.h"

/* A stw_write_fn appending to the evbuffer @ud. */
int relay_http__write_evbuffer(void *ud, const char *data, size_t len)
{
    return evbuffer_add(ud, data, len) == 0 ? 0 : -ENOMEM;
}

void relay_http__json_str(struct evbuffer *b, const char *s)
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

int64_t relay_http__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* @ms (wall clock) as a JSON ISO 8601 UTC string. */
void relay_http__json_time(struct evbuffer *b, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
    evbuffer_add_printf(b, "\"%s.%03dZ\"", s, (int)(ms % 1000));
}

void relay_http__send(struct evhttp_request *req, int code, const char *reason,
                      struct evbuffer *body)
{
    /* libevent 2.1 sends a HEAD answer's body, without Content-Length, and
     * the peer then reads it as the start of the next answer. */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[24];
        snprintf(len, sizeof(len), "%zu", body != NULL ? evbuffer_get_length(body) : 0);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
        evhttp_send_reply(req, code, reason, NULL);
        return;
    }
    evhttp_send_reply(req, code, reason, body);
}

void relay_http__reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                       struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    relay_http__send(req, code, reason, body);
}

void relay_http__reply_json(struct evhttp_request *req, int code, const char *reason,
                            struct evbuffer *b)
{
    relay_http__reply(req, code, reason, "application/json", b);
    evbuffer_free(b);
}

static const char *reason_of(int code)
{
    switch (code) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 408:
        return "Request Timeout";
    case 415:
        return "Unsupported Media Type";
    case 501:
        return "Not Implemented";
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
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    case 508:
        return "Loop Detected";
    default:
        return "Error";
    }
}

void relay_http__reply_error(struct evhttp_request *req, int code, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_reply(req, code, reason_of(code), NULL);
        return;
    }
    evbuffer_add(b, "{\"error\":", 9);
    relay_http__json_str(b, msg);
    evbuffer_add(b, "}\n", 2);
    relay_http__reply_json(req, code, reason_of(code), b);
}

void relay_http__reply_405(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    relay_http__reply_error(req, 405, "method not allowed");
}

/* Begin a response that streams until the peer or the relay ends it (a
 * viewer, an event client). Such a client only listens, so there is no read
 * timeout; a peer that takes nothing for cfg.timeout_s seconds is cut by
 * the write timeout. The socket is booked in the ledger until @closed. */
void relay_http__start_stream(relay_http *srv, struct evhttp_request *req,
                              struct evhttp_connection *conn, struct bufferevent *bev, int fd,
                              const char *label, void (*closed)(struct evhttp_connection *, void *),
                              void *arg)
{
    /* A client that reads nothing fills a small kernel buffer soon, and the
     * write timeout closes it; with the kernel's autotuned buffer
     * (megabytes) it would go unnoticed for hours. */
    int sndbuf = srv->cfg.viewer_sndbuf;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    evhttp_send_reply_start(req, 200, "OK");
    struct timeval wt = {.tv_sec = srv->cfg.timeout_s};
    bufferevent_set_timeouts(bev, NULL, &wt);
    stw_fd_track(fd, STW_KIND_SOCKET, label);
    evhttp_connection_set_closecb(conn, closed, arg);
}

/*
 * libevent 2.1 answers what it rejects by itself (a malformed request line
 * or header, a request over the header or body cap, an unknown method)
 * with an HTML page from evhttp_send_error(), and has no hook to change
 * that (evhttp_set_errorcb is 2.2). libevent calls the function through
 * its PLT, so this definition in the executable takes the place of its
 * own for every caller, libevent included (ELF symbol interposition, as
 * with malloc replacements). Same contract as libevent's: the answer ends
 * the connection.
 */
__attribute__((visibility("default"))) void evhttp_send_error(struct evhttp_request *req, int error,
                                                              const char *reason)
{
    (void)reason;
    const char *msg;
    switch (error) {
    case 400:
        msg = "malformed request, or headers larger than --max-header-bytes";
        break;
    case 413:
        msg = "request larger than --max-header-bytes or --max-body-bytes allows";
        break;
    case 501:
        msg = "method not implemented";
        break;
    case 503:
        msg = "service unavailable (out of memory)";
        break;
    default:
        msg = reason_of(error);
        break;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_clear_headers(h);
    evhttp_add_header(h, "Connection", "close");
    relay_http__reply_error(req, error, msg);
    /* A request line that did not parse leaves the version at 0.0, which
     * libevent's own page corrects and evhttp_send_reply() does not. The
     * answer is still queued, and alone, in the connection's buffer. */
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    struct evbuffer *out = bev != NULL ? bufferevent_get_output(bev) : NULL;
    char head[9];
    if (out != NULL && evbuffer_copyout(out, head, sizeof(head)) == (ev_ssize_t)sizeof(head) &&
        memcmp(head, "HTTP/0.0 ", sizeof(head)) == 0) {
        evbuffer_drain(out, sizeof(head));
        evbuffer_prepend(out, "HTTP/1.0 ", sizeof(head));
    }
}
