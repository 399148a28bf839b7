/*
 * src/relay/recorder.c — one input's recorder (see recorder.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "child.h"
#include "ffmpeg.h"
#include "recorder.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/frame.h"
#include "steward/ledger.h"
#include "ts.h"

#define WATCHDOG_MS 20000
#define GRACE_MS 2000
#define EOF_MS 4000 /* a child finishing its segment after end of file */
#define ARGS_MAX 80
#define ENV_MAX 256
#define RESUME_FREE ((uint64_t)8 << 20) /* after ENOSPC, free bytes to resume at least */

extern char **environ;

struct relay_recorder {
    relay_input *in;
    relay_rec *rec;
    unsigned segment_s;
    stw_scope *scope;
    relay_child *job;
    bool ts; /* an ffmpeg input: MPEG-TS copied; else JPEG frames encoded */
    /* The command: argv points into store or at static strings. */
    const char *argv[ARGS_MAX + 1];
    char store[RELAY_PATH_MAX + 512];
    /* The child's environment: the relay's, with TZ=UTC0 so that ffmpeg's
     * strftime names segments in UTC like the folders. */
    const char *envp[ENV_MAX + 2];
    /* Recorder thread only. */
    relay_ff_log log;
    relay_ts_feed feed;
    stw_frame *pending; /* the frame being written */
    size_t pending_off;
    uint64_t last_seq, last_frames_in;
    unsigned spawns;
    /* Shared. */
    pthread_mutex_t lock; /* guards state, session */
    char state[RELAY_STATE_MAX];
    char session[64]; /* "{day}/{hms}", "" outside a session */
    _Atomic uint64_t bytes_done; /* by children that ended */
    _Atomic uint64_t bytes_child; /* by the current one */
    _Atomic unsigned sessions;
    atomic_bool enospc; /* a child said the disk is full: pause until space returns */
};

static int64_t now_ms(void)
{
    return stw_now_ns() / 1000000;
}

static void set_state(relay_recorder *r, const char *state, const char *session)
{
    pthread_mutex_lock(&r->lock);
    snprintf(r->state, sizeof(r->state), "%s", state);
    if (session != NULL)
        snprintf(r->session, sizeof(r->session), "%s", session);
    pthread_mutex_unlock(&r->lock);
}

void relay_recorder_state(relay_recorder *r, char *out)
{
    pthread_mutex_lock(&r->lock);
    memcpy(out, r->state, RELAY_STATE_MAX);
    pthread_mutex_unlock(&r->lock);
}

static bool rec_line(void *ud, const char *line)
{
    relay_recorder *r = ud;
    if (strstr(line, "No space left on device") != NULL)
        atomic_store(&r->enospc, true);
    bool progress = relay_ff_log_line(&r->log, line, strlen(line));
    if (progress && r->log.progress.total_size >= 0)
        atomic_store(&r->bytes_child, (uint64_t)r->log.progress.total_size);
    return !progress;
}

/* The command for a session in folder @dir (absolute). Returns 0 or
 * -ENAMETOOLONG. */
static int build_argv(relay_recorder *r, const char *dir)
{
    int n = 0;
    size_t used = 0;
#define ADD(s) (r->argv[n++] = (s))
#define ADDF(...)                                                                                  \
    do {                                                                                           \
        int k = snprintf(r->store + used, sizeof(r->store) - used, __VA_ARGS__);                   \
        if (k < 0 || (size_t)k >= sizeof(r->store) - used)                                         \
            return -ENAMETOOLONG;                                                                  \
        r->argv[n++] = r->store + used;                                                            \
        used += (size_t)k + 1;                                                                     \
    } while (0)
    ADD("ffmpeg");
    ADD("-hide_banner");
    ADD("-nostdin");
    ADD("-loglevel");
    ADD("info");
    ADD("-nostats");
    ADD("-progress");
    ADD("pipe:2");
    ADD("-stats_period");
    ADD("1");
    if (r->ts) {
        /* As a push: the stream starts with PAT/PMT and a keyframe. */
        ADD("-probesize");
        ADD("262144");
        ADD("-analyzeduration");
        ADD("1000000");
        ADD("-f");
        ADD("mpegts");
        ADD("-i");
        ADD("pipe:0");
        ADD("-map");
        ADD("0:v?");
        ADD("-map");
        ADD("0:a?");
        ADD("-c");
        ADD("copy");
        /* H.265 in MP4 as browsers and Apple players want it (hvc1: the
         * parameter sets in the sample entry), not ffmpeg's default hev1. */
        relay_ts_stats st;
        relay_ts_get_stats(r->in->ts, &st);
        if (st.video_codec != NULL && strcmp(st.video_codec, "hevc") == 0) {
            ADD("-tag:v");
            ADD("hvc1");
        }
    } else {
        /* Frames are stamped when they arrive: a dropped frame leaves a
         * gap in time, not a shorter recording. Probing is off, or the
         * first seconds would be held back (and named late). */
        ADD("-probesize");
        ADD("32");
        ADD("-analyzeduration");
        ADD("0");
        ADD("-fpsprobesize");
        ADD("0");
        ADD("-use_wallclock_as_timestamps");
        ADD("1");
        ADD("-framerate");
        ADD("1000");
        /* The raw mjpeg demuxer takes what the pipe has (image2pipe would
         * wait for 4 KiB, holding back small frames). */
        ADD("-f");
        ADD("mjpeg");
        ADD("-i");
        ADD("pipe:0");
        ADD("-map");
        ADD("0:v");
        if (strcmp(r->in->kind, "test") == 0) {
            ADD("-r");
            ADDF("%u", r->in->fps);
        } else {
            ADD("-fps_mode");
            ADD("vfr");
        }
        ADD("-c:v");
        ADD("libx264");
        ADD("-preset");
        ADD("ultrafast");
        ADD("-tune");
        ADD("zerolatency");
        ADD("-pix_fmt");
        ADD("yuv420p");
        /* A keyframe a second: fragments and segment cuts fall on it. */
        ADD("-force_key_frames");
        ADD("expr:gte(t,n_forced*1)");
    }
    ADD("-f");
    ADD("segment");
    ADD("-segment_time");
    ADDF("%u", r->segment_s);
    ADD("-segment_format");
    ADD("mp4");
    ADD("-segment_format_options");
    /* flush_packets: each fragment reaches the file when it is complete,
     * not when ffmpeg's 32 KiB write buffer happens to fill. */
    ADD("movflags=+frag_keyframe+empty_moov+default_base_moof:frag_duration=1000000:"
        "flush_packets=1");
    ADD("-reset_timestamps");
    ADD("1");
    ADD("-strftime");
    ADD("1");
    ADDF("%s/%%Y-%%m-%%dT%%H-%%M-%%SZ.mp4", dir);
    r->argv[n] = NULL;
#undef ADD
#undef ADDF
    return 0;
}

/* mkdirat @name under @dfd (0700) and open it, never through a symlink.
 * With @fresh, a folder that exists already is -EEXIST. */
static int make_sub(int dfd, const char *name, bool fresh)
{
    if (mkdirat(dfd, name, 0700) != 0 && (errno != EEXIST || fresh))
        return -errno;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -errno : stw_fd_track(fd, STW_KIND_FD, "dir:recorder-session");
}

/* mkdir -p {input}/@day/@hms under the recordings directory; with
 * @fresh, -EEXIST if the session folder exists. */
static int make_session_dir(relay_recorder *r, const char *day, const char *hms, bool fresh)
{
    int top = relay_rec_dirfd(r->rec);
    int ifd = make_sub(top, r->in->name, false);
    int dfd = ifd >= 0 ? make_sub(ifd, day, false) : ifd;
    int sfd = dfd >= 0 ? make_sub(dfd, hms, fresh) : dfd;
    int rc = sfd < 0 ? sfd : 0;
    stw_fd_close(&sfd);
    stw_fd_close(&dfd);
    stw_fd_close(&ifd);
    return rc;
}

/* Before a child is spawned into the current session: its folder exists
 * (someone may have removed it, or the janitor an empty one). */
static void keep_session_dir(relay_recorder *r)
{
    char session[64];
    pthread_mutex_lock(&r->lock);
    memcpy(session, r->session, sizeof(session));
    pthread_mutex_unlock(&r->lock);
    char *slash = strchr(session, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    make_session_dir(r, session, slash + 1, false);
}

/* Make the session folder for now and point the job at it. Returns 0,
 * -EEXIST (try again later) or an error (reported, state "error"). */
static int begin_session(relay_recorder *r)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char day[16], hms[16];
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    strftime(hms, sizeof(hms), "%H-%M-%S", &tm);
    /* A session of this second exists (recording stopped and started
     * again, a restart of the relay): its segment names could be taken
     * again. The caller retries in a moment, in the next second. */
    int rc = make_session_dir(r, day, hms, true);
    if (rc == -EEXIST)
        return rc;
    char dir[RELAY_PATH_MAX + 64];
    if (rc == 0 && snprintf(dir, sizeof(dir), "%s/%s/%s/%s", relay_rec_dir(r->rec), r->in->name,
                            day, hms) >= (int)sizeof(dir))
        rc = -ENAMETOOLONG;
    if (rc == 0)
        rc = build_argv(r, dir);
    if (rc == 0)
        rc = relay_child_set_argv(r->job, r->argv);
    if (rc != 0) {
        fprintf(stderr, "steward relay: input %s: cannot start a recording session: %s\n",
                r->in->name, stw_strerror(rc));
        set_state(r, "error", "");
        return rc;
    }
    relay_child_resume(r->job);
    char session[64];
    snprintf(session, sizeof(session), "%s/%s", day, hms);
    set_state(r, "starting", session);
    atomic_fetch_add(&r->sessions, 1);
    fprintf(stderr, "steward relay: input %s: recording session %s started\n", r->in->name,
            session);
    return 0;
}

static void drop_pending(relay_recorder *r)
{
    stw_frame_unref(&r->pending);
    r->pending_off = 0;
}

/* End the session: end of file to the child, which finishes its segment. */
static void end_session(relay_recorder *r, const char *state)
{
    relay_child_stop(r->job);
    relay_ts_feed_close(&r->feed);
    drop_pending(r);
    atomic_fetch_add(&r->bytes_done, atomic_exchange(&r->bytes_child, 0));
    char session[64];
    pthread_mutex_lock(&r->lock);
    snprintf(session, sizeof(session), "%s", r->session);
    pthread_mutex_unlock(&r->lock);
    set_state(r, state, "");
    fprintf(stderr, "steward relay: input %s: recording session %s ended (%s)\n", r->in->name,
            session, state);
}

/* How much the source has delivered so far: MPEG-TS bytes, or frames
 * from the camera or pattern (cards excluded). */
static uint64_t source_count(relay_recorder *r)
{
    if (r->ts) {
        relay_ts_stats st;
        relay_ts_get_stats(r->in->ts, &st);
        return st.bytes_in;
    }
    relay_hub_stat hs;
    relay_hub_stats(r->in->hub, &hs);
    return hs.frames_in;
}

/* After ENOSPC: whether the filesystem has room again (the guard's
 * threshold, and at least RESUME_FREE). */
static bool space_back(relay_recorder *r)
{
    struct statvfs sv;
    if (fstatvfs(relay_rec_dirfd(r->rec), &sv) != 0)
        return true;
    relay_rec_stats st;
    relay_rec_get_stats(r->rec, &st);
    uint64_t need = st.min_free > RESUME_FREE ? st.min_free : RESUME_FREE;
    return (uint64_t)sv.f_bavail * sv.f_frsize >= need;
}

static bool paused_for_space(relay_recorder *r)
{
    return atomic_load(&r->enospc) || relay_rec_disk_full(r->rec);
}

/* Whether a session should run now. The one gate: a motion-triggered
 * mode adds its condition here. */
static bool want_session(relay_recorder *r, bool source)
{
    return source && !paused_for_space(r);
}

/* JPEG frames: take the newest camera frame when the last one is written,
 * write what the pipe takes. Returns bytes written or a negative errno. */
static long feed_frames(relay_recorder *r, int fd)
{
    if (r->pending == NULL) {
        uint64_t seq;
        stw_frame *f = relay_hub_latest(r->in->hub, &seq);
        relay_hub_stat hs;
        relay_hub_stats(r->in->hub, &hs);
        bool fresh = f != NULL && seq != r->last_seq && hs.frames_in != r->last_frames_in;
        if (f != NULL)
            r->last_seq = seq;
        r->last_frames_in = hs.frames_in;
        if (!fresh) {
            stw_frame_unref(&f);
            return 0;
        }
        r->pending = f;
        r->pending_off = 0;
    }
    stw_buf *b = stw_frame_buf(r->pending);
    size_t len = stw_buf_size(b);
    long total = 0;
    while (r->pending_off < len) {
        ssize_t w = write(fd, stw_buf_data(b) + r->pending_off, len - r->pending_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return total;
        if (w < 0) {
            drop_pending(r);
            return -errno;
        }
        r->pending_off += (size_t)w;
        total += w;
    }
    drop_pending(r);
    return total;
}

static void rec_main(stw_scope *scope, void *arg)
{
    relay_recorder *r = arg;
    uint64_t last_count = source_count(r);
    int64_t last_data = 0;
    bool active = false;
    int frame_ms = 10;
    if (!r->ts && strcmp(r->in->kind, "test") == 0 && r->in->fps > 0)
        frame_ms = (int)(500 / r->in->fps) > 2 ? (int)(500 / r->in->fps) : 2;
    set_state(r, "waiting", "");
    while (!stw_scope_cancelled(scope)) {
        int64_t now = now_ms();
        uint64_t c = source_count(r);
        if (c != last_count) {
            last_count = c;
            last_data = now;
        }
        bool source = last_data > 0 && now - last_data < RELAY_RECORDER_GAP_MS;
        if (atomic_load(&r->enospc) && !active && space_back(r)) {
            atomic_store(&r->enospc, false);
            fprintf(stderr, "steward relay: input %s: space is back in %s: recording resumes\n",
                    r->in->name, relay_rec_dir(r->rec));
        }
        bool want = want_session(r, source);
        if (active && !want) {
            if (atomic_load(&r->enospc))
                fprintf(stderr,
                        "steward relay: input %s: no space left on device in %s: the segment "
                        "is closed, recording paused until %llu MiB are free\n",
                        r->in->name, relay_rec_dir(r->rec),
                        (unsigned long long)(RESUME_FREE >> 20));
            end_session(r, paused_for_space(r) ? "disk-full" : "waiting");
            active = false;
        } else if (!active && want) {
            active = begin_session(r) == 0;
        } else if (!active) {
            set_state(r, paused_for_space(r) ? "disk-full" : "waiting", NULL);
        }
        if (!active) {
            struct pollfd pf = {.fd = stw_scope_cancel_fd(scope), .events = POLLIN};
            poll(&pf, 1, 200);
            continue;
        }
        if (relay_child_stdin_fd(r->job) < 0)
            keep_session_dir(r);
        int wait = relay_child_tick(r->job, now);
        relay_child_info info;
        relay_child_info_get(r->job, &info);
        if (info.spawns != r->spawns) {
            /* A new child: a new reader (PAT/PMT and a keyframe first). */
            r->spawns = info.spawns;
            atomic_fetch_add(&r->bytes_done, atomic_exchange(&r->bytes_child, 0));
            relay_ff_log_init(&r->log);
            relay_ts_feed_close(&r->feed);
            drop_pending(r);
            if (r->ts)
                relay_ts_feed_open(r->in->ts, &r->feed);
        }
        if (info.pid > 0)
            set_state(r, info.state[0] == 'r' ? "recording" : info.state, NULL);
        else
            set_state(r, info.state, NULL);
        int in_fd = relay_child_stdin_fd(r->job);
        bool has_pending = r->ts ? r->feed.has_pending : r->pending != NULL;
        struct pollfd fds[3] = {
            {.fd = stw_scope_cancel_fd(scope), .events = POLLIN},
            {.fd = relay_child_stderr_fd(r->job), .events = POLLIN},
            {.fd = -1},
        };
        if (in_fd >= 0 && has_pending)
            fds[2] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        else if (in_fd >= 0 && r->ts && r->feed.reader != NULL)
            fds[2] = (struct pollfd){.fd = relay_ts_reader_fd(r->feed.reader), .events = POLLIN};
        if (in_fd >= 0 && !has_pending)
            relay_child_progress(r->job, now); /* waiting for the source is no fault */
        int timeout = wait < 0 || wait > 200 ? 200 : wait;
        if (!r->ts && in_fd >= 0 && !has_pending && timeout > frame_ms)
            timeout = frame_ms;
        if (poll(fds, 3, timeout) < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            relay_child_read_stderr(r->job);
        if (in_fd < 0)
            continue;
        long w = 0;
        bool idle = false;
        if (r->ts && r->feed.reader != NULL && (fds[2].revents || r->feed.has_pending))
            w = relay_ts_feed_write(&r->feed, in_fd, &idle);
        else if (!r->ts)
            w = feed_frames(r, in_fd);
        if (w > 0 || idle)
            relay_child_progress(r->job, now_ms());
    }
    /* The child is tied to this thread: it finishes its segment first. */
    if (active)
        end_session(r, "stopped");
    relay_child_stop(r->job);
    relay_ts_feed_close(&r->feed);
    drop_pending(r);
}

static void rec_free(void *arg)
{
    relay_recorder *r = arg;
    relay_child_free(&r->job);
    relay_ts_feed_close(&r->feed);
    drop_pending(r);
    pthread_mutex_destroy(&r->lock);
    stw_free(r);
}

/* The relay's environment with TZ=UTC0 in place of any TZ. */
static void make_env(relay_recorder *r)
{
    unsigned n = 0;
    for (char **e = environ; e != NULL && *e != NULL && n < ENV_MAX; e++)
        if (strncmp(*e, "TZ=", 3) != 0)
            r->envp[n++] = *e;
    r->envp[n++] = "TZ=UTC0";
    r->envp[n] = NULL;
}

int relay_recorder_start(relay_input *in, relay_rec *rec, unsigned segment_s,
                         relay_recorder **out)
{
    if (segment_s < RELAY_REC_SEGMENT_MIN || segment_s > RELAY_REC_SEGMENT_MAX || rec == NULL)
        return -EINVAL;
    relay_recorder *r = stw_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->in = in;
    r->rec = rec;
    r->segment_s = segment_s;
    r->ts = in->ts != NULL;
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->state, sizeof(r->state), "waiting");
    relay_ff_log_init(&r->log);
    make_env(r);
    char job[RELAY_NAME_MAX + 16];
    snprintf(job, sizeof(job), "record %s", in->name);
    relay_child_opts o = {.job = job,
                          /* At least 1.1 s between children: segment names
                           * have a second's resolution. */
                          .backoff_min_ms = 1500,
                          .backoff_max_ms = 30000,
                          .healthy_ms = 30000,
                          .watchdog_ms = WATCHDOG_MS,
                          .grace_ms = GRACE_MS,
                          .stdin_eof_ms = EOF_MS,
                          .pipe_stdin = true,
                          .envp = r->envp,
                          .on_line = rec_line,
                          .ud = r};
    int rc = relay_child_new(&o, &r->job);
    if (rc == 0)
        rc = stw_scope_new(in->owner, "record", &r->scope);
    if (rc != 0) {
        relay_child_free(&r->job);
        pthread_mutex_destroy(&r->lock);
        stw_free(r);
        return rc;
    }
    stw_scope *scope = r->scope;
    rc = stw_scope_defer(scope, rec_free, r);
    if (rc != 0) {
        relay_child_free(&r->job);
        pthread_mutex_destroy(&r->lock);
        stw_free(r);
        stw_scope_free(&scope);
        return rc;
    }
    rc = stw_scope_spawn(scope, "record", rec_main, r);
    if (rc != 0) {
        stw_scope_close(scope, stw_deadline_in_ms(GRACE_MS), NULL);
        stw_scope_free(&scope);
        return rc;
    }
    *out = r;
    return 0;
}

void relay_recorder_stop(relay_recorder **rp, stw_deadline d)
{
    if (rp == NULL || *rp == NULL)
        return;
    relay_recorder *r = *rp;
    *rp = NULL;
    stw_scope *scope = r->scope;
    if (stw_scope_close(scope, d, NULL) == -ETIMEDOUT)
        fprintf(stderr, "steward relay: a recorder thread did not stop in time; it is freed when "
                        "it returns\n");
    stw_scope_free(&scope);
}

void relay_recorder_session(relay_recorder *r, char *out)
{
    pthread_mutex_lock(&r->lock);
    memcpy(out, r->session, sizeof(r->session));
    pthread_mutex_unlock(&r->lock);
}

uint64_t relay_recorder_bytes(relay_recorder *r)
{
    return atomic_load(&r->bytes_done) + atomic_load(&r->bytes_child);
}

void relay_recorder_job_view(relay_recorder *r, relay_job_view *out)
{
    relay_job_view_of(r->job, "record", out);
}

char *relay_recorder_json(relay_recorder *r)
{
    relay_child_info i;
    relay_child_info_get(r->job, &i);
    char state[RELAY_STATE_MAX], session[64];
    pthread_mutex_lock(&r->lock);
    memcpy(state, r->state, sizeof(state));
    memcpy(session, r->session, sizeof(session));
    pthread_mutex_unlock(&r->lock);
    json_t *o = json_pack("{s:s, s:s?, s:i, s:i, s:i, s:i, s:I, s:s?, s:s?}", "state", state,
                          "session", session[0] ? session : NULL, "segment", (int)r->segment_s,
                          "pid", (int)i.pid, "restarts", (int)i.restarts, "sessions",
                          (int)atomic_load(&r->sessions), "bytes",
                          (json_int_t)relay_recorder_bytes(r), "last_exit",
                          i.last_exit[0] ? i.last_exit : NULL, "last_error",
                          i.last_error[0] ? i.last_error : NULL);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}
