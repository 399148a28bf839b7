/*
 * src/relay/source_mjpeg.c — pull MJPEG over HTTP from a camera.
 *
 * Model
 *   One thread per mjpeg input runs libcurl's multi interface as its event
 *   loop: curl_multi_poll() waits on the connection and on the input
 *   scope's cancel fd together, so shutdown and deletion stop it at once.
 *   The response body goes through relay_mjpeg (a parser on a bounded
 *   ring) and every JPEG it yields is published to the hub as a frame,
 *   byte for byte as the camera sent it.
 *
 *   A camera that cannot be reached, answers with anything but a
 *   multipart 200, stalls (no byte for --camera-stall seconds) or sends no
 *   frame for --camera-frame-timeout seconds is disconnected. While it is away the
 *   input shows a "NO SIGNAL" card, refreshed once a second, and the
 *   source reconnects with exponential backoff (0.5 s doubling to 10 s,
 *   back to 0.5 s once a connection delivered frames). Every connection
 *   is closed when it ends: nothing is reused or left open.
 *
 *   libcurl allocates through steward's allocator (curl_global_init_mem),
 *   so its memory is in the ledger; relay_source_mjpeg_global_cleanup()
 *   hands the global part back at shutdown.
 *
 * Ownership
 *   The source state is owned by the input scope and freed by its cleanup
 *   after the thread returned. The URL is copied at start.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "canvas.h"
#include "mjpeg.h"
#include "relay.h"
#include "steward/alloc.h"

#define MAX_FRAME (8u << 20)
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000
#define CARD_W 640
#define CARD_H 480

typedef struct src_mjpeg {
    relay_input *in;
    char url[RELAY_URL_MAX + 1];
    int stall_s, frame_timeout_s;
    relay_mjpeg *parser; /* per connection: the boundary may change */
    char content_type[256];
    bool refused; /* this response is not a multipart 200 */
    uint64_t seq; /* frames published, cards included */
    uint64_t got; /* frames from the current connection */
    int64_t last_frame_ns;
    relay_canvas card;
    relay_jpeg *jpeg;
    char why[CURL_ERROR_SIZE]; /* why the last connection ended */
} src_mjpeg;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, stw_malloc, stw_free, stw_realloc,
                                        stw_strdup, stw_calloc);
}

void relay_source_mjpeg_global_cleanup(void)
{
    /* Only if some input ever started libcurl. */
    if (pthread_once(&curl_once, curl_init) == 0 && curl_init_rc == CURLE_OK)
        curl_global_cleanup();
}

static void publish(src_mjpeg *s, stw_buf *jpeg, unsigned w, unsigned h, bool card)
{
    stw_frame_meta meta = {.seq = s->seq++,
                           .captured_ns = stw_now_ns(),
                           .format = STW_FOURCC('M', 'J', 'P', 'G'),
                           .width = w,
                           .height = h};
    stw_frame *f = NULL;
    if (stw_frame_new(jpeg, &meta, &f) != 0)
        relay_hub_count_dropped(s->in->hub, 1);
    else if (card)
        relay_hub_publish_card(s->in->hub, f);
    else
        relay_hub_publish(s->in->hub, f);
}

/* The "NO SIGNAL" card: the input's name, how long the camera has been
 * away and why. */
static void publish_card(src_mjpeg *s)
{
    relay_canvas *c = &s->card;
    relay_canvas_fill(c, 0, 0, (int)c->w, (int)c->h, 24, 24, 32);
    int big = 8, small = 3;
    const char *title = "NO SIGNAL";
    relay_canvas_text(c, ((int)c->w - relay_canvas_text_width(title, big)) / 2, (int)c->h / 3, big,
                      title);
    char line[96];
    snprintf(line, sizeof(line), "%s", s->in->name);
    relay_canvas_text(c, ((int)c->w - relay_canvas_text_width(line, small)) / 2,
                      (int)c->h / 3 + 12 * big, small, line);
    if (s->last_frame_ns > 0) {
        long away = (long)((stw_now_ns() - s->last_frame_ns) / 1000000000);
        snprintf(line, sizeof(line), "LAST FRAME %ld S AGO", away);
        relay_canvas_text(c, ((int)c->w - relay_canvas_text_width(line, small)) / 2,
                          (int)c->h / 3 + 12 * big + 12 * small, small, line);
    }
    stw_buf *b = NULL, *view = NULL;
    if (stw_buf_new((size_t)c->w * c->h / 2 + 16384, &b) != 0)
        return;
    long len = relay_jpeg_encode(s->jpeg, c, stw_buf_data(b), stw_buf_size(b));
    if (len > 0 && stw_buf_view(b, 0, (size_t)len, &view) == 0) {
        publish(s, view, c->w, c->h, true);
        stw_buf_unref(&view);
    }
    stw_buf_unref(&b);
}

static int on_frame(void *ud, stw_buf *frame)
{
    src_mjpeg *s = ud;
    if (s->got++ == 0)
        relay_input_set_state(s->in, "running");
    s->last_frame_ns = stw_now_ns();
    publish(s, frame, 0, 0, false);
    stw_buf_unref(&frame);
    return 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    src_mjpeg *s = ud;
    size_t len = size * n;
    /* A new response (after a redirect or a 100) starts over. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
        s->content_type[0] = '\0';
    if (len > 13 && strncasecmp(data, "Content-Type:", 13) == 0) {
        const char *v = data + 13;
        size_t vlen = len - 13;
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen >= sizeof(s->content_type))
            vlen = sizeof(s->content_type) - 1;
        memcpy(s->content_type, v, vlen);
        s->content_type[vlen] = '\0';
    }
    return len;
}

/* The first body bytes decide whether this is a camera at all. */
static bool accept_response(src_mjpeg *s, CURL *e)
{
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char boundary[80];
    if (status != 200) {
        snprintf(s->why, sizeof(s->why), "HTTP status %ld", status);
        return false;
    }
    if (relay_mjpeg_boundary(s->content_type, boundary, sizeof(boundary)) != 0) {
        snprintf(s->why, sizeof(s->why), "not a multipart stream (Content-Type: %.100s)",
                 s->content_type[0] ? s->content_type : "none");
        return false;
    }
    if (relay_mjpeg_new(boundary, MAX_FRAME, &s->parser) != 0) {
        snprintf(s->why, sizeof(s->why), "cannot parse boundary \"%s\"", boundary);
        return false;
    }
    return true;
}

typedef struct write_ctx {
    src_mjpeg *s;
    CURL *e;
} write_ctx;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    write_ctx *w = ud;
    src_mjpeg *s = w->s;
    size_t len = size * n;
    if (s->parser == NULL && !accept_response(s, w->e)) {
        s->refused = true;
        return CURL_WRITEFUNC_ERROR;
    }
    if (relay_mjpeg_feed(s->parser, data, len, on_frame, s) < 0)
        relay_hub_count_dropped(s->in->hub, 1);
    return len;
}

/* One connection, from connect to close. Returns -ECANCELED when the
 * scope was cancelled, 0 otherwise (s->why says how it ended). */
static int pull_once(stw_scope *scope, src_mjpeg *s)
{
    int rc = 0;
    s->got = 0;
    s->refused = false;
    s->content_type[0] = '\0';
    s->why[0] = '\0';
    CURL *e = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (e == NULL || m == NULL) {
        snprintf(s->why, sizeof(s->why), "out of memory");
        goto cleanup;
    }
    write_ctx w = {.s = s, .e = e};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    /* A camera that sends nothing for STALL_S seconds is gone. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)s->stall_s);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "steward-relay/" STW_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &w);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (curl_multi_add_handle(m, e) != CURLM_OK) {
        snprintf(s->why, sizeof(s->why), "cannot start the transfer");
        goto cleanup;
    }
    int64_t started = stw_now_ns();
    struct curl_waitfd cancel = {.fd = stw_scope_cancel_fd(scope), .events = CURL_WAIT_POLLIN};
    for (;;) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK || running == 0)
            break;
        if (curl_multi_poll(m, &cancel, 1, 1000, NULL) != CURLM_OK)
            break;
        if (stw_scope_cancelled(scope)) {
            rc = -ECANCELED;
            break;
        }
        int64_t since = s->got > 0 ? s->last_frame_ns : started;
        if (stw_now_ns() - since > (int64_t)s->frame_timeout_s * 1000000000) {
            snprintf(s->why, sizeof(s->why), "no frame for %d s", s->frame_timeout_s);
            break;
        }
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && s->why[0] == '\0')
            snprintf(s->why, sizeof(s->why), "%s",
                     msg->data.result == CURLE_OK ? "the camera closed the stream"
                     : errbuf[0]                  ? errbuf
                                                  : curl_easy_strerror(msg->data.result));
    curl_multi_remove_handle(m, e);
cleanup:
    curl_easy_cleanup(e);
    curl_multi_cleanup(m);
    relay_mjpeg_free(&s->parser);
    return rc;
}

static void source_main(stw_scope *scope, void *arg)
{
    src_mjpeg *s = arg;
    int backoff_ms = BACKOFF_MIN_MS;
    while (!stw_scope_cancelled(scope)) {
        relay_input_set_state(s->in, "connecting");
        if (pull_once(scope, s) == -ECANCELED)
            break;
        if (s->got > 0)
            backoff_ms = BACKOFF_MIN_MS;
        fprintf(stderr, "steward relay: input %s: %s; retrying in %d ms\n", s->in->name,
                s->why[0] ? s->why : "disconnected", backoff_ms);
        relay_input_set_state(s->in, "no-signal");
        /* Show the card at once and keep its clock moving while we wait. */
        stw_deadline retry = stw_deadline_in_ms(backoff_ms);
        for (;;) {
            publish_card(s);
            stw_deadline tick = stw_deadline_in_ms(1000);
            if (stw_scope_sleep(scope, tick < retry ? tick : retry) == -ECANCELED ||
                stw_now_ns() >= retry)
                break;
        }
        backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
    }
}

static void src_free(void *arg)
{
    src_mjpeg *s = arg;
    relay_jpeg_free(&s->jpeg);
    relay_canvas_release(&s->card);
    stw_free(s);
}

int relay_source_mjpeg_start(relay_input *in, const relay_config *cfg)
{
    size_t ulen = strlen(in->url);
    if (ulen == 0 || ulen > RELAY_URL_MAX ||
        (strncmp(in->url, "http://", 7) != 0 && strncmp(in->url, "https://", 8) != 0))
        return -EINVAL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return -EIO;
    src_mjpeg *s = stw_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->in = in;
    memcpy(s->url, in->url, ulen + 1);
    s->stall_s = cfg->camera_stall_s > 0 ? cfg->camera_stall_s : 5;
    s->frame_timeout_s = cfg->camera_frame_timeout_s > 0 ? cfg->camera_frame_timeout_s : 10;
    int rc = relay_canvas_init(&s->card, CARD_W, CARD_H);
    if (rc != 0)
        goto free_state;
    rc = relay_jpeg_new(CARD_W, CARD_H, 80, &s->jpeg);
    if (rc != 0)
        goto release_card;
    rc = stw_scope_defer(in->scope, src_free, s);
    if (rc != 0)
        goto free_jpeg;
    char tname[RELAY_NAME_MAX + 8];
    snprintf(tname, sizeof(tname), "cam-%s", in->name);
    return stw_scope_spawn(in->scope, tname, source_main, s);

free_jpeg:
    relay_jpeg_free(&s->jpeg);
release_card:
    relay_canvas_release(&s->card);
free_state:
    stw_free(s);
    return rc;
}
