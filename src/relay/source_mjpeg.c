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
 *   Redirects are followed (http and https only, at most 5) and the
 *   URL's user:password answers Basic or Digest authentication. The
 *   answer must be a 200 with a multipart body: a multipart Content-Type
 *   names the boundary; application/octet-stream (or none), as ffmpeg's
 *   and VLC's mpjpeg serve it, lets the parser learn it from the body.
 *
 *   A camera that cannot be reached, answers with anything else, stalls
 *   (no byte for --camera-stall seconds, timed here, not by libcurl's
 *   low-speed limit, whose averaging window made 2 s mean 8) or sends no
 *   frame for --camera-frame-timeout seconds is disconnected, and the
 *   input says why: state "no-signal" (unreachable, silent, closed) or
 *   "error" (the camera refused: an HTTP error, a redirect loop, a stream
 *   that is no MJPEG), with the reason in last_error. While it is away
 *   the input shows a "NO SIGNAL" card of the camera's last frame size,
 *   refreshed once a second, and the source reconnects with exponential
 *   backoff (0.5 s doubling to 10 s, back to 0.5 s once a connection
 *   delivered frames). Every connection is closed when it ends: nothing is
 *   reused or left open.
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
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "card.h"
#include "mjpeg.h"
#include "redact.h"
#include "relay.h"
#include "steward/alloc.h"

#define MAX_FRAME (8u << 20)
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000
#define MAX_REDIRECTS 5L
#define LEARN_LIMIT (64u << 10) /* body bytes that must name the boundary */

typedef struct src_mjpeg {
    relay_input *in;
    char url[RELAY_URL_MAX + 1];
    struct curl_slist *headers; /* RELAY_LOOP_HEADER with our instance and via list */
    char instance[24];
    int stall_s, frame_timeout_s;
    relay_mjpeg *parser; /* per connection: the boundary may change */
    char content_type[256];
    char reason[64];    /* the status line's reason phrase */
    char location[256]; /* the Location header, of a redirect */
    char chain[RELAY_CHAIN_MAX]; /* RELAY_CHAIN_HEADER: the relays upstream */
    bool refused;       /* this connection's end is the camera's error */
    uint64_t seq;       /* frames published, cards included */
    uint64_t got;       /* frames from the current connection */
    int64_t last_frame_ns;
    int64_t last_byte_ns; /* of the current connection */
    relay_camera_stat stat;
    relay_mjpeg_stats parsed;  /* the current parser's, already in stat */
    unsigned frame_w, frame_h; /* of the camera's last frame, 0 before */
    relay_card card;
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

static void publish(src_mjpeg *s, stw_buf *jpeg, unsigned w, unsigned h)
{
    stw_frame_meta meta = {.seq = s->seq++,
                           .captured_ns = stw_now_ns(),
                           .format = STW_FOURCC('M', 'J', 'P', 'G'),
                           .width = w,
                           .height = h};
    stw_frame *f = NULL;
    if (stw_frame_new(jpeg, &meta, &f) != 0)
        relay_hub_count_dropped(s->in->hub, 1);
    else
        relay_hub_publish(s->in->hub, f);
}

/* The "NO SIGNAL" card: the input's name, how long the camera has been
 * away and why, at the camera's last frame size. */
static void publish_card(src_mjpeg *s)
{
    relay_card_publish(&s->card, s->in->hub, s->in->name, s->frame_w, s->frame_h, s->last_frame_ns,
                       s->why, s->seq++);
}

/* A loop closed around a ring of relays: say so, and drop the pull. */
static bool loop_back(src_mjpeg *s)
{
    if (!relay_via_has(s->chain, s->instance))
        return false;
    snprintf(s->why, sizeof(s->why),
             "relay loop: this relay's own stream comes back through %.150s", s->chain);
    s->refused = true;
    relay_hub_set_chain(s->in->hub, "");
    return true;
}

/* The relays the frames came through, as the part headers name them now
 * (a chain grows after the connection was made when a relay upstream
 * connects further up). 0, or -ELOOP when our own id is among them. */
static int follow_chain(src_mjpeg *s)
{
    char now[RELAY_CHAIN_MAX] = "";
    relay_via_merge(now, relay_mjpeg_chain(s->parser));
    if (now[0] == '\0' || strcmp(now, s->chain) == 0)
        return 0;
    memcpy(s->chain, now, sizeof(now));
    if (loop_back(s))
        return -ELOOP;
    relay_hub_set_chain(s->in->hub, s->chain);
    return 0;
}

static int on_frame(void *ud, stw_buf *frame)
{
    src_mjpeg *s = ud;
    if (follow_chain(s) != 0) {
        stw_buf_unref(&frame);
        return -ELOOP;
    }
    s->got++;
    s->last_frame_ns = stw_now_ns();
    unsigned w, h;
    if (relay_jpeg_size(stw_buf_data(frame), stw_buf_size(frame), &w, &h))
        s->frame_w = w, s->frame_h = h;
    else
        w = h = 0;
    /* Publishing sets the state to running. */
    publish(s, frame, w, h);
    stw_buf_unref(&frame);
    return 0;
}

/* Add what the current parser counted since the last call to the input's
 * counters; @err (NULL: unchanged) becomes its last_error. */
static void report(src_mjpeg *s, const char *err)
{
    if (s->parser != NULL) {
        relay_mjpeg_stats now;
        relay_mjpeg_get_stats(s->parser, &now);
        s->stat.garbage_bytes += now.garbage_bytes - s->parsed.garbage_bytes;
        s->stat.bad_parts += now.bad_parts - s->parsed.bad_parts;
        s->stat.oversize += now.oversize - s->parsed.oversize;
        s->stat.length_mismatch += now.length_mismatch - s->parsed.length_mismatch;
        s->parsed = now;
    }
    relay_hub_set_camera(s->in->hub, &s->stat, err);
}

/* If the header line @data (@len bytes, CRLF included) is @name (with its
 * colon, any case): *@v gets its value, trimmed; returns the value's
 * length. -1 for another header. */
static int header_value(const char *data, size_t len, const char *name, const char **v)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(data, name, nl) != 0)
        return -1;
    const char *p = data + nl;
    size_t n = len - nl;
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    *v = p;
    return n > INT_MAX ? INT_MAX : (int)n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    src_mjpeg *s = ud;
    size_t len = size * n;
    s->last_byte_ns = stw_now_ns();
    /* A new response (after a redirect, an authentication challenge or a
     * 100) starts over. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        s->content_type[0] = '\0';
        s->chain[0] = '\0';
        /* "HTTP/1.1 401 Unauthorized\r\n": keep the reason phrase. */
        const char *r = memchr(data, ' ', len);
        r = r != NULL ? memchr(r + 1, ' ', len - (size_t)(r + 1 - data)) : NULL;
        r = r != NULL ? r + 1 : data + len;
        size_t n = len - (size_t)(r - data);
        while (n > 0 && (r[n - 1] == '\r' || r[n - 1] == '\n' || r[n - 1] == ' '))
            n--;
        snprintf(s->reason, sizeof(s->reason), "%.*s", (int)n, r);
    }
    const char *v;
    int vlen;
    if ((vlen = header_value(data, len, "Content-Type:", &v)) >= 0)
        snprintf(s->content_type, sizeof(s->content_type), "%.*s", vlen, v);
    if ((vlen = header_value(data, len, RELAY_CHAIN_HEADER ":", &v)) >= 0) {
        /* Untrusted and passed on to the relays downstream: only well-formed
         * ids go through (the same list rules as X-Steward-Relay). */
        char raw[RELAY_CHAIN_MAX * 2];
        snprintf(raw, sizeof(raw), "%.*s", vlen, v);
        s->chain[0] = '\0';
        relay_via_merge(s->chain, raw);
    }
    if ((vlen = header_value(data, len, "Location:", &v)) >= 0)
        snprintf(s->location, sizeof(s->location), "%.*s", vlen, v);
    return len;
}

static void status_error(src_mjpeg *s, long status)
{
    snprintf(s->why, sizeof(s->why), "camera answered %ld%s%s", status, s->reason[0] ? " " : "",
             s->reason);
}

/* The first body bytes of a 200 decide whether this is a camera at all. */
static bool accept_response(src_mjpeg *s)
{
    char boundary[80] = "";
    const char *ct = s->content_type;
    bool octet = ct[0] == '\0' || strncasecmp(ct, "application/octet-stream", 24) == 0;
    if (!octet && relay_mjpeg_boundary(ct, boundary, sizeof(boundary)) != 0) {
        snprintf(s->why, sizeof(s->why), "not a multipart stream (Content-Type: %.100s)", ct);
        return false;
    }
    int rc = relay_mjpeg_new(octet ? NULL : boundary, MAX_FRAME, &s->parser);
    if (rc != 0) {
        if (rc == -EINVAL)
            snprintf(s->why, sizeof(s->why), "cannot use the boundary \"%s\"", boundary);
        else
            snprintf(s->why, sizeof(s->why), "no memory for the parser");
        return false;
    }
    memset(&s->parsed, 0, sizeof(s->parsed));
    /* The relays this stream came through, for whoever pulls it from us. */
    if (loop_back(s))
        return false;
    relay_hub_set_chain(s->in->hub, s->chain);
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
    s->last_byte_ns = stw_now_ns();
    if (s->parser == NULL) {
        long status = 0;
        curl_easy_getinfo(w->e, CURLINFO_RESPONSE_CODE, &status);
        /* The body of a redirect or of an authentication challenge is not
         * the stream; libcurl follows or answers it, and a final one is
         * reported when the transfer ends. */
        if ((status >= 300 && status < 400) || status == 401 || status == 407)
            return len;
        if (status != 200)
            status_error(s, status);
        if (status != 200 || !accept_response(s)) {
            s->refused = true;
            return CURL_WRITEFUNC_ERROR;
        }
    }
    int fed = relay_mjpeg_feed(s->parser, data, len, on_frame, s);
    if (fed == -ELOOP) {
        report(s, s->why);
        return CURL_WRITEFUNC_ERROR;
    }
    if (fed < 0)
        relay_hub_count_dropped(s->in->hub, 1);
    if (relay_mjpeg_get_boundary(s->parser) == NULL) {
        relay_mjpeg_stats st;
        relay_mjpeg_get_stats(s->parser, &st);
        if (st.garbage_bytes > LEARN_LIMIT) {
            snprintf(s->why, sizeof(s->why),
                     "not a multipart stream (Content-Type: %.60s, no \"--boundary\" line in the "
                     "first %u KiB)",
                     s->content_type[0] ? s->content_type : "none", LEARN_LIMIT >> 10);
            s->refused = true;
            report(s, NULL);
            return CURL_WRITEFUNC_ERROR;
        }
    }
    return len;
}

/* Why no frame came although bytes did: what the parser saw. */
static void no_frame_why(src_mjpeg *s)
{
    int n = snprintf(s->why, sizeof(s->why), "no frame for %d s", s->frame_timeout_s);
    if (s->parser == NULL || s->got > 0 || n < 0)
        return;
    relay_mjpeg_stats st;
    relay_mjpeg_get_stats(s->parser, &st);
    const char *b = relay_mjpeg_get_boundary(s->parser);
    if (st.bad_parts > 0 || st.oversize > 0)
        snprintf(s->why + n, sizeof(s->why) - (size_t)n,
                 ": %llu parts were not JPEG, %llu over the %u MiB cap",
                 (unsigned long long)st.bad_parts, (unsigned long long)st.oversize,
                 MAX_FRAME >> 20);
    else if (st.garbage_bytes > 0)
        snprintf(s->why + n, sizeof(s->why) - (size_t)n,
                 ": %llu bytes without the boundary \"%.70s\"",
                 (unsigned long long)st.garbage_bytes, b != NULL ? b : "?");
    else
        return;
    /* The camera sends, but nothing we can show: its fault. */
    s->refused = true;
}

/* How a transfer that libcurl ended went. */
static void done_why(src_mjpeg *s, CURL *e, CURLcode res, const char *errbuf)
{
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (res == CURLE_TOO_MANY_REDIRECTS) {
        snprintf(s->why, sizeof(s->why), "too many redirects (more than %ld)", MAX_REDIRECTS);
        s->refused = true;
    } else if (res == CURLE_UNSUPPORTED_PROTOCOL && status >= 300 && status < 400) {
        snprintf(s->why, sizeof(s->why), "redirected to a URL that is not http(s): %.200s",
                 s->location);
        s->refused = true;
    } else if ((res == CURLE_OK || res == CURLE_WRITE_ERROR) && status != 200 && status != 0) {
        status_error(s, status);
        s->refused = true;
    } else if (res == CURLE_OK) {
        snprintf(s->why, sizeof(s->why), "the camera closed the stream");
    } else {
        snprintf(s->why, sizeof(s->why), "%s", errbuf[0] ? errbuf : curl_easy_strerror(res));
    }
}

/* One connection, from connect to close. Returns -ECANCELED when the
 * scope was cancelled, 0 otherwise (s->why says how it ended). */
static int pull_once(stw_scope *scope, src_mjpeg *s)
{
    int rc = 0;
    s->got = 0;
    s->refused = false;
    s->content_type[0] = '\0';
    s->reason[0] = '\0';
    s->location[0] = '\0';
    s->why[0] = '\0';
    s->stat.connects++;
    report(s, NULL);
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
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* user:password in the URL answers Basic or Digest, whichever the
     * camera asks for. */
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_ANY);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "steward-relay/" STW_VERSION_STRING);
    /* Who watches this input now goes with every connect (chain.h). */
    char loop[RELAY_VIA_MAX + 64];
    relay_via_header(s->in, s->instance, loop, sizeof(loop));
    struct curl_slist *h = curl_slist_append(NULL, loop);
    if (h != NULL) {
        curl_slist_free_all(s->headers);
        s->headers = h;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
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
    s->last_byte_ns = started;
    const int64_t stall_ns = (int64_t)s->stall_s * 1000000000;
    const int64_t frame_ns = (int64_t)s->frame_timeout_s * 1000000000;
    struct curl_waitfd cancel = {.fd = stw_scope_cancel_fd(scope), .events = CURL_WAIT_POLLIN};
    for (;;) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK || running == 0)
            break;
        /* Wake up in time for the stall and frame deadlines, so that
         * --camera-stall N means N seconds. */
        int64_t now = stw_now_ns();
        int64_t stall_at = s->last_byte_ns + stall_ns;
        int64_t frame_at = (s->got > 0 ? s->last_frame_ns : started) + frame_ns;
        if (now >= stall_at) {
            snprintf(s->why, sizeof(s->why), "no data for %d s", s->stall_s);
            break;
        }
        if (now >= frame_at) {
            no_frame_why(s);
            break;
        }
        int64_t next = stall_at < frame_at ? stall_at : frame_at;
        long wait_ms = (long)((next - now) / 1000000) + 1;
        if (curl_multi_poll(m, &cancel, 1, wait_ms < 1000 ? (int)wait_ms : 1000, NULL) != CURLM_OK)
            break;
        if (stw_scope_cancelled(scope)) {
            rc = -ECANCELED;
            break;
        }
        report(s, NULL);
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && s->why[0] == '\0')
            done_why(s, e, msg->data.result, errbuf);
    curl_multi_remove_handle(m, e);
    report(s, s->why[0] ? s->why : NULL);
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
        /* The state stays what it was ("starting", or why the last
         * connection ended) until a frame says "running". */
        if (pull_once(scope, s) == -ECANCELED)
            break;
        if (s->got > 0)
            backoff_ms = BACKOFF_MIN_MS;
        char why[sizeof(s->why)];
        relay_redact(s->why[0] ? s->why : "disconnected", why, sizeof(why));
        relay_log(RELAY_LOG_WARNING, "mjpeg", s->in->name, "%s; retrying in %d ms", why,
                  backoff_ms);
        relay_input_set_state(s->in, s->refused ? "error" : "no-signal");
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
    curl_slist_free_all(s->headers);
    relay_card_release(&s->card);
    stw_free(s);
}

int relay_source_mjpeg_start(relay_input *in, const relay_config *cfg)
{
    size_t ulen = strlen(in->url);
    if (ulen == 0 || ulen > RELAY_URL_MAX ||
        (strncasecmp(in->url, "http://", 7) != 0 && strncasecmp(in->url, "https://", 8) != 0))
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
    char loop[64];
    snprintf(loop, sizeof(loop), RELAY_LOOP_HEADER ": %s", cfg->instance);
    snprintf(s->instance, sizeof(s->instance), "%s", cfg->instance);
    s->headers = curl_slist_append(NULL, loop);
    int rc = s->headers != NULL ? relay_card_prepare(&s->card, 0, 0) : -ENOMEM;
    if (rc != 0)
        goto free_card;
    rc = stw_scope_defer(in->scope, src_free, s);
    if (rc != 0)
        goto free_card;
    /* A restarted source starts with a clean slate. */
    relay_hub_set_camera(in->hub, &s->stat, "");
    char tname[RELAY_NAME_MAX + 8];
    snprintf(tname, sizeof(tname), "cam-%s", in->name);
    return stw_scope_spawn(in->scope, tname, source_main, s);

free_card:
    curl_slist_free_all(s->headers);
    relay_card_release(&s->card);
    stw_free(s);
    return rc;
}
