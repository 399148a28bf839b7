/*
 * src/relay/http_ts.c — MPEG-TS viewers (GET /stream/{input}.ts) of ffmpeg
 * inputs: the camera's streams as they came, for ffplay, VLC, ffmpeg and
 * GStreamer.
 *
 * Model
 *   Each .ts viewer has its own reader of the input's relay_ts, so it
 *   starts with the PAT/PMT and the last keyframe (relay/ts.h) however
 *   late it joins. Its reader's eventfd is an event on the loop; on each
 *   wake-up the loop moves the chunks it has into the viewer's output
 *   buffer by reference (evbuffer_add_reference with stw_buf_unref_cb): N
 *   viewers cost N references to one chunk, never a copy.
 *
 *   Bounds: a viewer's output buffer holds at most TS_BACKLOG bytes. Past
 *   that the loop stops watching its reader (paused) until the socket has
 *   drained below half of it. Meanwhile the stream keeps a bounded amount
 *   (relay_ts retention); a viewer that fell behind that resumes at the
 *   next keyframe, what it skipped counted as dropped. A socket that takes
 *   nothing for cfg.timeout_s is closed by the write timeout, as for MJPEG
 *   viewers. So a stalled viewer costs its backlog and kernel buffer, then
 *   is dropped.
 *
 *   .ts viewers are outputs of their input like MJPEG viewers (same list,
 *   caps, on-demand start and grace period, output events, delete), but
 *   they do not count as wanting JPEG: an input with only .ts viewers runs
 *   no decoder.
 *
 * Ownership
 *   As every viewer, owned by its connection; its reader and event are
 *   released in the close callback (relay_http__ts_viewer_release).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"
#include "steward/alloc.h"
#include "ts.h"

#define TS_BACKLOG (1u << 20)
#define TS_READ_BATCH 16

static void ts_pump(viewer *v);

static void on_ts_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ts_pump(arg);
}

/* Out of backlog room: stop watching the reader until the buffer drains. */
static void pause_viewer(viewer *v)
{
    if (!v->paused) {
        event_del(v->rev);
        v->paused = true;
    }
}

static void ts_drained(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    viewer *v = arg;
    v->drained += info->n_deleted;
    if (v->paused && v->hi != NULL && evbuffer_get_length(b) < TS_BACKLOG / 2) {
        v->paused = false;
        event_add(v->rev, NULL);
        /* The eventfd may have fired while paused: look now. */
        event_active(v->rev, EV_READ, 0);
    }
}

/* Move what the reader has into the viewer's output, within its backlog. */
static void ts_pump(viewer *v)
{
    if (v->hi == NULL || v->req == NULL)
        return;
    relay_hub *hub = v->hi->in->hub;
    while (evbuffer_get_length(v->out) < TS_BACKLOG) {
        relay_ts_chunk c[TS_READ_BATCH];
        size_t n = 0;
        int rc = relay_ts_read(v->reader, c, TS_READ_BATCH, &n);
        if (rc == -ESPIPE) {
            uint64_t before = relay_ts_reader_skipped(v->reader);
            relay_ts_reader_resync(v->reader);
            v->dropped += relay_ts_reader_skipped(v->reader) - before + 1;
            relay_hub_count_dropped(hub, 1);
            continue;
        }
        if (rc != 0 || n == 0)
            return;
        struct evbuffer *part = evbuffer_new();
        for (size_t i = 0; i < n; i++) {
            stw_buf *b = c[i].buf;
            size_t len = stw_buf_size(b);
            if (part == NULL ||
                evbuffer_add_reference(part, stw_buf_data(b), len, stw_buf_unref_cb, b) != 0) {
                stw_buf_unref(&b);
                v->dropped++;
                continue;
            }
            v->bytes += len;
            v->frames++;
        }
        if (part != NULL) {
            evhttp_send_reply_chunk(v->req, part);
            evbuffer_free(part);
        }
    }
    pause_viewer(v);
}

void relay_http__ts_viewer_release(viewer *v)
{
    if (v->rev != NULL)
        event_free(v->rev);
    v->rev = NULL;
    relay_ts_reader_free(&v->reader);
}

void relay_http__handle_ts(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    if (hi->in->ts == NULL) {
        relay_http__reply_error(req, 404, "MPEG-TS is served for ffmpeg inputs only");
        return;
    }
    viewer *v = relay_http__viewer_open(srv, req, hi);
    if (v == NULL)
        return;
    if (relay_ts_reader_new(hi->in->ts, &v->reader) != 0 ||
        (v->rev = event_new(srv->base, relay_ts_reader_fd(v->reader), EV_READ | EV_PERSIST,
                            on_ts_ready, v)) == NULL ||
        (v->cbe = evbuffer_add_cb(v->out, ts_drained, v)) == NULL) {
        relay_http__ts_viewer_release(v);
        stw_free(v);
        relay_http__reply_error(req, 503, "out of memory");
        /* An on-demand input started for nobody stops after its grace. */
        relay_http__viewers_changed(hi);
        return;
    }
    v->ts = true;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "video/mp2t");
    evhttp_add_header(h, "Cache-Control", "no-store, no-cache, must-revalidate");
    evhttp_add_header(h, "Connection", "close");
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    relay_http__start_stream(srv, req, conn, evhttp_connection_get_bufferevent(conn), v->fd,
                             "socket:viewer", relay_http__viewer_closed, v);
    relay_http__viewer_link(hi, v);
    event_add(v->rev, NULL);
    ts_pump(v);
}
