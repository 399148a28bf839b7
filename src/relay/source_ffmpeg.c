/*
 * src/relay/source_ffmpeg.c — cameras through ffmpeg: RTSP, RTMP, SRT, HLS,
 * UDP, files and V4L2.
 *
 * Model
 *   An ffmpeg input has two jobs (relay/child.h), each at most one ffmpeg
 *   child at any moment, both driven by the input's source thread:
 *
 *     ingest   the camera -> MPEG-TS on its stdout, streams copied as they
 *              came; the thread writes every byte into the input's
 *              relay_ts, from which .ts viewers, push outputs and the
 *              decoder read. Always on while the source runs.
 *     decoder  that TS on its stdin -> multipart JPEG on its stdout at a
 *              capped rate and width, parsed into frames for the hub (MJPEG
 *              viewers, snapshots, previews). On only while someone wants
 *              JPEG: the input has MJPEG viewers or a snapshot asked in the
 *              last WANT_JPEG_MS; stopped DECODER_LINGER_MS after that, so
 *              relaying a stream costs no decoding at all.
 *
 *   The thread polls both jobs' pipes, the decoder's TS reader and the
 *   scope's cancel fd, and calls relay_child_tick() for restarts, backoff
 *   and the watchdog. The ingest job's state is the input's: "starting"
 *   until bytes flow, "running", "no-signal" while it waits to restart,
 *   "error" when ffmpeg cannot be started at all. What ffmpeg says about
 *   the camera (codecs, size, rate) and its progress are parsed from its
 *   stderr (relay/ffmpeg.h); the other lines are kept, redacted, as the
 *   job's last_error.
 *
 *   A new ingest child starts a new TS stream (relay_ts_reset): readers
 *   continue at its first keyframe. A new decoder child gets a new reader,
 *   so its stdin starts with the PAT/PMT and a keyframe.
 *
 * Ownership
 *   The relay_ffin (jobs, parse state) and the relay_ts belong to the
 *   input (relay_ffmpeg_input_init/release) and outlive the source, which
 *   an on-demand input stops and starts. The source's own state (buffers,
 *   the decoder's reader and parser) is owned by its scope and freed by
 *   its cleanup after the thread returned. The thread stops both jobs
 *   before it returns: children are spawned with die_with_parent, tied to
 *   the thread that spawned them.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "card.h"
#include "child.h"
#include "ffmpeg.h"
#include "mjpeg.h"
#include "push.h"
#include "recorder.h"
#include "redact.h"
#include "relay.h"
#include "steward/alloc.h"
#include "ts.h"

#define READ_CHUNK (64 * 1024)
#define MAX_JPEG (8u << 20)
#define WANT_JPEG_MS 10000
#define DECODER_LINGER_MS 5000
#define JPEG_FPS 10
#define JPEG_MAX_WIDTH 1280
#define GRACE_MS 2000

struct relay_ffin {
    relay_child *ingest, *decoder;
    relay_ff_log ilog, dlog; /* source thread only */
    pthread_mutex_t lock;    /* guards media and progress */
    relay_ff_media media;
    relay_ff_progress progress;
    _Atomic int64_t jpeg_until_ms;
};

typedef struct src_ff {
    relay_input *in;
    struct relay_ffin *f;
    relay_ff_argv ingest_argv, decoder_argv;
    relay_ts_feed feed; /* the decoder's stdin */
    relay_mjpeg *parser;
    unsigned ingest_spawns, decoder_spawns;
    bool decoder_on;
    int64_t last_want_ms;
    uint64_t seq;
    char state[RELAY_STATE_MAX];
    /* The NO SIGNAL card MJPEG viewers see while the camera is away, at
     * the size of the last decoded frame. */
    relay_card card;
    unsigned frame_w, frame_h;
    int64_t last_frame_ns, last_card_ms, away_since_ms;
    uint8_t buf[READ_CHUNK];
} src_ff;

static int64_t now_ms(void)
{
    return stw_now_ns() / 1000000;
}

/* ---- stderr lines (source thread, inside the jobs' calls) ---- */

static bool ingest_line(void *ud, const char *line)
{
    struct relay_ffin *f = ud;
    uint64_t blocks = f->ilog.progress.blocks;
    int64_t size = f->ilog.progress.total_size;
    bool progress = relay_ff_log_line(&f->ilog, line, strlen(line));
    /* What -stats_period says at start is no diagnostic. */
    if (strncmp(line, "ffmpeg stats and -progress period", 33) == 0)
        return false;
    pthread_mutex_lock(&f->lock);
    f->media = f->ilog.input;
    f->progress = f->ilog.progress;
    pthread_mutex_unlock(&f->lock);
    /* A -progress block that says more bytes went out means ffmpeg is
     * moving: the watchdog's other food besides stdout bytes. A block
     * alone is not: ffmpeg prints one whenever its loop turns, also after
     * a read timed out, and a camera that hangs would keep it fed. */
    if (progress && f->ilog.progress.blocks != blocks && f->ilog.progress.total_size > size &&
        f->ilog.progress.total_size > 0)
        relay_child_progress(f->ingest, now_ms());
    return !progress;
}

static bool decoder_line(void *ud, const char *line)
{
    struct relay_ffin *f = ud;
    return !relay_ff_log_line(&f->dlog, line, strlen(line));
}

/* ---- the input's part ---- */

int relay_ffmpeg_input_init(relay_input *in)
{
    struct relay_ffin *f = stw_calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    relay_ff_log_init(&f->ilog);
    relay_ff_log_init(&f->dlog);
    char job[RELAY_NAME_MAX + 16];
    int timeout_ms = (int)(in->ff.timeout_s ? in->ff.timeout_s : RELAY_FF_TIMEOUT_DEFAULT) * 1000;
    snprintf(job, sizeof(job), "input %s", in->name);
    relay_child_opts io = {.job = job,
                           .backoff_min_ms = 500,
                           .backoff_max_ms = 30000,
                           .healthy_ms = 30000,
                           .watchdog_ms = timeout_ms + 2000,
                           .grace_ms = GRACE_MS,
                           .pipe_stdout = true,
                           .on_line = ingest_line,
                           .ud = f};
    int rc = relay_child_new(&io, &f->ingest);
    if (rc == 0) {
        snprintf(job, sizeof(job), "decoder %s", in->name);
        relay_child_opts dopt = {.job = job,
                                 .backoff_min_ms = 500,
                                 .backoff_max_ms = 10000,
                                 .healthy_ms = 30000,
                                 .watchdog_ms = 15000,
                                 /* Nothing to finalise: do not hold up
                                  * the ingest reads for long. */
                                 .grace_ms = 300,
                                 .pipe_stdin = true,
                                 .pipe_stdout = true,
                                 .on_line = decoder_line,
                                 .ud = f};
        rc = relay_child_new(&dopt, &f->decoder);
    }
    if (rc == 0)
        rc = relay_ts_new(0, &in->ts);
    if (rc != 0) {
        in->ffin = f;
        relay_ffmpeg_input_release(in);
        return rc;
    }
    /* Neither job runs until the source starts it. */
    relay_child_stop(f->ingest);
    relay_child_stop(f->decoder);
    in->ffin = f;
    return 0;
}

void relay_ffmpeg_input_release(relay_input *in)
{
    struct relay_ffin *f = in->ffin;
    if (f != NULL) {
        relay_child_free(&f->ingest);
        relay_child_free(&f->decoder);
        pthread_mutex_destroy(&f->lock);
        stw_free(f);
        in->ffin = NULL;
    }
    relay_ts_free(&in->ts);
}

void relay_input_want_jpeg(relay_input *in)
{
    if (in->ffin != NULL)
        atomic_store(&in->ffin->jpeg_until_ms, now_ms() + WANT_JPEG_MS);
}

/* ---- the decoder ---- */

static void decoder_detach(src_ff *s)
{
    relay_ts_feed_close(&s->feed);
    relay_mjpeg_free(&s->parser);
}

static int on_jpeg(void *ud, stw_buf *jpeg)
{
    src_ff *s = ud;
    unsigned w, h;
    if (relay_jpeg_size(stw_buf_data(jpeg), stw_buf_size(jpeg), &w, &h))
        s->frame_w = w, s->frame_h = h;
    s->last_frame_ns = stw_now_ns();
    stw_frame_meta meta = {
        .seq = s->seq++, .captured_ns = stw_now_ns(), .format = STW_FOURCC('M', 'J', 'P', 'G')};
    stw_frame *fr = NULL;
    if (stw_frame_new(jpeg, &meta, &fr) == 0)
        relay_hub_publish(s->in->hub, fr);
    else
        relay_hub_count_dropped(s->in->hub, 1);
    stw_buf_unref(&jpeg);
    relay_child_progress(s->f->decoder, now_ms());
    return 0;
}

/* Switch the decoder on or off with the demand for JPEG; give a new
 * decoder child a new reader and parser. */
static void decoder_manage(src_ff *s, int64_t now)
{
    relay_hub_stat st;
    relay_hub_stats(s->in->hub, &st);
    bool want = st.viewers > 0 || atomic_load(&s->f->jpeg_until_ms) > now;
    if (want)
        s->last_want_ms = now;
    if (want && !s->decoder_on) {
        relay_child_resume(s->f->decoder);
        s->decoder_on = true;
    } else if (!want && s->decoder_on && now - s->last_want_ms > DECODER_LINGER_MS) {
        relay_child_stop(s->f->decoder);
        decoder_detach(s);
        s->decoder_on = false;
    }
}

static void decoder_respawned(src_ff *s)
{
    decoder_detach(s);
    relay_ff_log_init(&s->f->dlog);
    if (relay_ts_feed_open(s->in->ts, &s->feed) != 0 ||
        relay_mjpeg_new(RELAY_FF_JPEG_BOUNDARY, MAX_JPEG, &s->parser) != 0) {
        /* Without them the child gets nothing and the watchdog restarts
         * it: the next try allocates again. */
        decoder_detach(s);
    }
}

/* ---- the thread ---- */

/* While the camera is away (no ingest child delivering for 3 s) and
 * someone watches JPEG, show the NO SIGNAL card, refreshed each second. */
static void maybe_card(src_ff *s, int64_t now)
{
    if (strcmp(s->state, "running") == 0) {
        s->away_since_ms = 0;
        return;
    }
    if (s->away_since_ms == 0)
        s->away_since_ms = now;
    if (!s->decoder_on || now - s->away_since_ms < 3000 || now - s->last_card_ms < 1000)
        return;
    s->last_card_ms = now;
    relay_child_info info;
    relay_child_info_get(s->f->ingest, &info);
    const char *why = info.last_error[0] ? info.last_error : info.last_exit;
    /* The card has room for one line: ffmpeg's last says most. */
    const char *last = strrchr(why, '|');
    char line[64];
    snprintf(line, sizeof(line), "%.60s", last != NULL ? last + 2 : why);
    relay_card_publish(&s->card, s->in->hub, s->in->name, s->frame_w, s->frame_h, s->last_frame_ns,
                       line, s->seq++);
}

/* The ingest job's state is the input's. */
static void follow_state(src_ff *s)
{
    relay_child_info info;
    relay_child_info_get(s->f->ingest, &info);
    const char *st = strcmp(info.state, "running") == 0    ? "running"
                     : strcmp(info.state, "starting") == 0 ? "starting"
                     : strcmp(info.state, "error") == 0    ? "error"
                     : strcmp(info.state, "stopped") == 0  ? "idle"
                                                           : "no-signal";
    if (info.spawns != s->ingest_spawns) {
        /* A new child: a new stream, new stream information. */
        s->ingest_spawns = info.spawns;
        relay_ts_reset(s->in->ts);
        relay_ff_log_init(&s->f->ilog);
        /* A running decoder would meet a new stream mid-flight: start it
         * afresh on the new one. */
        if (s->decoder_on) {
            relay_child_stop(s->f->decoder);
            relay_child_resume(s->f->decoder);
        }
    }
    if (strcmp(st, s->state) != 0) {
        snprintf(s->state, sizeof(s->state), "%s", st);
        relay_input_set_state(s->in, st);
    }
}

static void read_ingest(src_ff *s, int fd)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(fd, s->buf, sizeof(s->buf));
        if (n <= 0)
            return; /* EAGAIN, or the end: the tick reaps the child */
        relay_ts_write(s->in->ts, s->buf, (size_t)n);
        relay_child_progress(s->f->ingest, now_ms());
        if ((size_t)n < sizeof(s->buf))
            return;
    }
}

static void read_decoder(src_ff *s, int fd)
{
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(fd, s->buf, sizeof(s->buf));
        if (n <= 0)
            return;
        if (s->parser != NULL && relay_mjpeg_feed(s->parser, s->buf, (size_t)n, on_jpeg, s) < 0)
            relay_hub_count_dropped(s->in->hub, 1);
        if ((size_t)n < sizeof(s->buf))
            return;
    }
}

enum { P_CANCEL, P_IN_OUT, P_IN_ERR, P_DEC_OUT, P_DEC_ERR, P_DEC_IN, P_FEED, P_N };

static void source_main(stw_scope *scope, void *arg)
{
    src_ff *s = arg;
    struct relay_ffin *f = s->f;
    relay_child_set_argv(f->ingest, s->ingest_argv.argv);
    relay_child_set_argv(f->decoder, s->decoder_argv.argv);
    relay_child_resume(f->ingest);
    while (!stw_scope_cancelled(scope)) {
        int64_t now = now_ms();
        int wait = relay_child_tick(f->ingest, now);
        follow_state(s);
        decoder_manage(s, now);
        maybe_card(s, now);
        if (s->decoder_on) {
            int dw = relay_child_tick(f->decoder, now);
            relay_child_info di;
            relay_child_info_get(f->decoder, &di);
            if (di.spawns != s->decoder_spawns) {
                s->decoder_spawns = di.spawns;
                decoder_respawned(s);
            }
            if (dw >= 0 && (wait < 0 || dw < wait))
                wait = dw;
        }
        /* Demand for JPEG is polled, not signalled: a second at most. */
        if (wait < 0 || wait > 1000)
            wait = 1000;
        struct pollfd p[P_N];
        for (int i = 0; i < P_N; i++)
            p[i] = (struct pollfd){.fd = -1};
        p[P_CANCEL] = (struct pollfd){.fd = stw_scope_cancel_fd(scope), .events = POLLIN};
        p[P_IN_OUT] = (struct pollfd){.fd = relay_child_stdout_fd(f->ingest), .events = POLLIN};
        p[P_IN_ERR] = (struct pollfd){.fd = relay_child_stderr_fd(f->ingest), .events = POLLIN};
        if (s->decoder_on) {
            int in_fd = relay_child_stdin_fd(f->decoder);
            p[P_DEC_OUT] =
                (struct pollfd){.fd = relay_child_stdout_fd(f->decoder), .events = POLLIN};
            p[P_DEC_ERR] =
                (struct pollfd){.fd = relay_child_stderr_fd(f->decoder), .events = POLLIN};
            if (in_fd >= 0 && s->feed.has_pending)
                p[P_DEC_IN] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
            else if (in_fd >= 0 && s->feed.reader != NULL)
                p[P_FEED] =
                    (struct pollfd){.fd = relay_ts_reader_fd(s->feed.reader), .events = POLLIN};
        }
        if (poll(p, P_N, wait) < 0 && errno != EINTR)
            break;
        if (p[P_IN_OUT].revents)
            read_ingest(s, p[P_IN_OUT].fd);
        if (p[P_IN_ERR].revents)
            relay_child_read_stderr(f->ingest);
        if (p[P_DEC_OUT].revents)
            read_decoder(s, p[P_DEC_OUT].fd);
        if (p[P_DEC_ERR].revents)
            relay_child_read_stderr(f->decoder);
        bool idle;
        /* A write error means the decoder is gone: its tick reaps it. */
        if ((p[P_DEC_IN].revents || p[P_FEED].revents) && s->feed.reader != NULL)
            relay_ts_feed_write(&s->feed, relay_child_stdin_fd(f->decoder), &idle);
    }
    /* The children are tied to this thread: stop them before it ends. */
    relay_child_stop(f->decoder);
    relay_child_stop(f->ingest);
    decoder_detach(s);
}

static void src_free(void *arg)
{
    src_ff *s = arg;
    relay_card_release(&s->card);
    decoder_detach(s);
    stw_free(s);
}

int relay_source_ffmpeg_start(relay_input *in, const relay_config *cfg)
{
    if (in->ffin == NULL || in->ts == NULL)
        return -EINVAL;
    src_ff *s = stw_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->in = in;
    s->f = in->ffin;
    char err[256];
    relay_ff_url url;
    int rc = relay_ff_url_parse(in->url, 0, &url, err, sizeof(err));
    if (rc == 0) {
        /* Pulls over HTTP (another relay's .ts) say who asks (chain.h),
         * with the downstream relays known when the source starts. */
        char loop[RELAY_VIA_MAX + 64];
        relay_via_header(in, cfg->instance, loop, sizeof(loop) - 2);
        strcat(loop, "\r\n");
        relay_ff_ingest_opts io = {.rtsp_udp = in->ff.rtsp_udp,
                                   .timeout_ms = (int)in->ff.timeout_s * 1000,
                                   .loop = in->ff.loop,
                                   .http_headers = loop};
        rc = relay_ff_ingest_argv(&s->ingest_argv, &url, &io);
    }
    if (rc == 0) {
        relay_ff_jpeg_opts jo = {.fps = JPEG_FPS, .max_width = JPEG_MAX_WIDTH};
        rc = relay_ff_jpeg_argv(&s->decoder_argv, &jo);
    }
    if (rc != 0) {
        char shown[sizeof(err)];
        relay_redact(err, shown, sizeof(shown));
        relay_log(RELAY_LOG_ERROR, "ffmpeg", in->name, "%s", shown);
        stw_free(s);
        return rc;
    }
    rc = stw_scope_defer(in->scope, src_free, s);
    if (rc != 0) {
        stw_free(s);
        return rc;
    }
    char tname[RELAY_NAME_MAX + 8];
    snprintf(tname, sizeof(tname), "ff-%s", in->name);
    return stw_scope_spawn(in->scope, tname, source_main, s);
}

/* ---- what the API shows ---- */

void relay_job_view_of(struct relay_child *c, const char *name, relay_job_view *out)
{
    relay_child_info i;
    relay_child_info_get(c, &i);
    snprintf(out->job, sizeof(out->job), "%s", name);
    snprintf(out->state, sizeof(out->state), "%s", i.state);
    out->pid = (int)i.pid;
    out->restarts = i.restarts;
    out->age_ms = i.started_ms > 0 ? now_ms() - i.started_ms : 0;
}

unsigned relay_input_jobs(relay_input *in, relay_job_view *out, unsigned max)
{
    unsigned n = 0;
    if (in->ffin != NULL && n < max)
        relay_job_view_of(in->ffin->ingest, "ingest", &out[n++]);
    if (in->ffin != NULL && n < max)
        relay_job_view_of(in->ffin->decoder, "decoder", &out[n++]);
    for (unsigned i = 0; i < in->npush && n < max; i++)
        relay_push_job_view(in->push[i], &out[n++]);
    if (in->recorder != NULL && n < max)
        relay_recorder_job_view(in->recorder, &out[n++]);
    return n;
}

static json_t *job_json(relay_child *c)
{
    relay_child_info i;
    relay_child_info_get(c, &i);
    int64_t now = now_ms();
    return json_pack("{s:s, s:i, s:i, s:i, s:s?, s:s?, s:I}", "state", i.state, "pid", (int)i.pid,
                     "restarts", (int)i.restarts, "spawns", (int)i.spawns, "last_exit",
                     i.last_exit[0] ? i.last_exit : NULL, "last_error",
                     i.last_error[0] ? i.last_error : NULL, "age_ms",
                     (json_int_t)(i.started_ms > 0 ? now - i.started_ms : 0));
}

char *relay_ffmpeg_input_json(relay_input *in)
{
    struct relay_ffin *f = in->ffin;
    if (f == NULL || in->ts == NULL)
        return NULL;
    relay_ff_media m;
    relay_ff_progress pr;
    pthread_mutex_lock(&f->lock);
    m = f->media;
    pr = f->progress;
    pthread_mutex_unlock(&f->lock);
    relay_ts_stats ts;
    relay_ts_get_stats(in->ts, &ts);
    json_t *media = json_pack(
        "{s:s?, s:s?, s:i, s:i, s:f, s:s?, s:i, s:i, s:f}", "video_codec",
        m.video_codec[0] ? m.video_codec : ts.video_codec, "video_profile",
        m.video_profile[0] ? m.video_profile : NULL, "width", m.width, "height", m.height, "fps",
        m.fps, "audio_codec", m.audio_codec[0] ? m.audio_codec : ts.audio_codec, "sample_rate",
        m.sample_rate, "channels", m.channels, "bitrate_kbps", (double)ts.bitrate_bps / 1000.0);
    json_t *tsj = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "bytes_in", (json_int_t)ts.bytes_in, "keyframes",
        (json_int_t)ts.keyframes, "last_gop_bytes", (json_int_t)ts.last_gop_bytes, "retained_bytes",
        (json_int_t)ts.retained_bytes, "garbage_bytes", (json_int_t)ts.garbage_bytes, "readers",
        (json_int_t)ts.readers, "keyframe_available", ts.keyframe_available);
    json_t *o = json_pack("{s:o, s:o, s:o*, s:o*, s:f}", "ingest", job_json(f->ingest), "decoder",
                          job_json(f->decoder), "media", media, "ts", tsj, "speed", pr.speed);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}
