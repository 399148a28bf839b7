/*
 * src/relay/http_viewers.c — MJPEG viewers (GET /stream/{input}),
 * snapshots, and each input's hub notify and on-demand grace timer.
 *
 * Model
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
 *   Deleting an output, or its input, *detaches* the viewer: it leaves the
 *   input's list and counts, and its response is ended (the final chunk,
 *   then the connection closes once the bytes are out, or the write timeout
 *   cuts a stalled peer). A detached viewer refers to nothing of the input
 *   any more.
 *
 *   An on-demand input's source runs while it has viewers: the first viewer
 *   starts it, and when the last one leaves a timer of
 *   cfg.on_demand_grace_ms stops it unless a viewer came back meanwhile.
 *
 * Ownership
 *   A viewer is owned by its connection: viewer_closed() (the close
 *   callback) frees it, whoever closes the connection (the peer, a timeout,
 *   shutdown, the end of a detached stream). Its socket is booked in the
 *   ledger as "socket:viewer" while it exists; libevent closes it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define BOUNDARY "stwframe"

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
void relay_http__viewers_changed(http_input *hi)
{
    relay_http *srv = hi->srv;
    if (srv->closing || !hi->in->on_demand)
        return;
    if (hi->nviewers > 0 || hi->in->npush > 0 || hi->in->recorder != NULL) {
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
    if (!v->ts)
        relay_hub_viewers_add(hi->in->hub, -1);
    v->hi = NULL;
    relay_http__sse_output_event(srv, "output-deleted", hi->in->name, v->id, reason);
    relay_http__viewers_changed(hi);
}

/* End @v's stream on purpose (its output or its input was deleted). The
 * final chunk is queued and the connection closes once it is written;
 * libevent owns the request from now on, and the close callback frees @v,
 * possibly before this returns. */
void relay_http__viewer_detach(viewer *v, const char *reason)
{
    viewer_unlink(v, reason);
    struct evhttp_request *req = v->req;
    v->req = NULL;
    evhttp_send_reply_end(req);
}

/* The viewer's connection is going away (peer closed, timeout, shutdown,
 * or the end of a detached viewer's stream was written). */
void relay_http__viewer_closed(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    viewer *v = arg;
    evbuffer_remove_cb_entry(v->out, v->cbe);
    if (v->hi != NULL)
        viewer_unlink(v, "closed");
    if (v->ts)
        relay_http__ts_viewer_release(v);
    stw_fd_untrack(v->fd);
    /* A request the peer abandoned mid-stream has been detached from its
     * connection and is ours to free; otherwise the connection frees it. */
    if (v->req != NULL && evhttp_request_get_connection(v->req) == NULL)
        evhttp_request_free(v->req);
    stw_free(v);
}

int relay_http__input_ensure_running(http_input *hi)
{
    evtimer_del(hi->grace);
    int rc = hi->in->scope != NULL ? 0 : relay_input_start(hi->in, &hi->srv->cfg);
    if (rc != 0)
        relay_http__viewers_changed(hi);
    return rc;
}

bool relay_http__viewer_init(relay_http *srv, viewer *v, struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (bev == NULL)
        return false;
    v->srv = srv;
    v->req = req;
    v->fd = bufferevent_getfd(bev);
    v->out = bufferevent_get_output(bev);
    v->id = ++srv->next_output_id;
    v->started_ms = relay_http__wall_ms();
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(v->peer, sizeof(v->peer), strchr(addr != NULL ? addr : "", ':') ? "[%s]:%u" : "%s:%u",
             addr != NULL ? addr : "?", (unsigned)port);
    return true;
}

void relay_http__viewer_link(http_input *hi, viewer *v)
{
    relay_http *srv = hi->srv;
    v->hi = hi;
    v->next = hi->viewers;
    if (hi->viewers != NULL)
        hi->viewers->prev = v;
    hi->viewers = v;
    hi->nviewers++;
    srv->nviewers++;
    /* The hub counts the viewers that want JPEG: an ffmpeg input decodes
     * only for them. */
    if (!v->ts)
        relay_hub_viewers_add(hi->in->hub, 1);
    relay_http__sse_output_event(srv, "output-created", hi->in->name, v->id, NULL);
}

viewer *relay_http__viewer_open(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    if (srv->nviewers >= srv->cfg.max_viewers || hi->nviewers >= srv->cfg.max_viewers_input) {
        relay_http__reply_error(req, 503, "too many viewers");
        return NULL;
    }
    int rc = relay_http__input_ensure_running(hi);
    if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "cannot start the source: %s", stw_strerror(rc));
        relay_http__reply_error(req, 503, msg);
        return NULL;
    }
    viewer *v = stw_calloc(1, sizeof(*v));
    if (v == NULL || !relay_http__viewer_init(srv, v, req)) {
        stw_free(v);
        relay_http__reply_error(req, 503, "out of memory");
        relay_http__viewers_changed(hi);
        return NULL;
    }
    return v;
}

void relay_http__handle_stream(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    viewer *v = relay_http__viewer_open(srv, req, hi);
    if (v == NULL)
        return;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);

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
        relay_http__reply_error(req, 503, "out of memory");
        relay_http__viewers_changed(hi);
        return;
    }
    relay_http__start_stream(srv, req, conn, bev, v->fd, "socket:viewer", relay_http__viewer_closed,
                             v);
    relay_http__viewer_link(hi, v);

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
            relay_http__json_str(b, hi->in->name);
            evbuffer_add_printf(b, ",\"state\":");
            relay_http__json_str(b, state);
            evbuffer_add_printf(b, "}");
            relay_http__sse_broadcast(hi->srv, "input-state", b);
            evbuffer_free(b);
        }
    }
    uint64_t seq;
    stw_frame *f = relay_hub_latest(hi->in->hub, &seq);
    if (f == NULL)
        return;
    for (viewer *v = hi->viewers, *next; v != NULL; v = next) {
        next = v->next;
        if (!v->ts && v->last_seq != seq)
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
    if (hi->nviewers == 0 && hi->in->npush == 0 && hi->in->recorder == NULL)
        relay_input_stop(hi->in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
}

void relay_http__handle_snapshot(struct evhttp_request *req, http_input *hi)
{
    relay_input_want_jpeg(hi->in);
    stw_frame *f = relay_hub_latest(hi->in->hub, NULL);
    if (f == NULL) {
        relay_http__reply_error(req, 503, hi->in->scope == NULL ? "input is idle" : "no frame yet");
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
        relay_http__reply_error(req, 503, "out of memory");
        return;
    }
    relay_http__reply(req, 200, "OK", "image/jpeg", b);
    evbuffer_free(b);
}

int relay_http__input_watch(http_input *hi)
{
    struct event_base *base = hi->srv->base;
    hi->notify =
        event_new(base, relay_hub_notify_fd(hi->in->hub), EV_READ | EV_PERSIST, on_notify, hi);
    if (hi->notify == NULL || event_add(hi->notify, NULL) != 0)
        return -ENOMEM;
    hi->grace = evtimer_new(base, on_grace, hi);
    return hi->grace != NULL ? 0 : -ENOMEM;
}

void relay_http__input_unwatch(http_input *hi)
{
    if (hi->notify != NULL)
        event_free(hi->notify);
    if (hi->grace != NULL)
        event_free(hi->grace);
    hi->notify = hi->grace = NULL;
}
