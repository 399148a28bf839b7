/*
 * src/relay/recorder.c — one input's recorder (see recorder.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "mp4.h"
#include "motion.h"
#include "preroll.h"
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
#define RESUME_FREE ((uint64_t)8 << 20) /* after ENOSPC, free bytes to resume at least */
#define KEEP_EXTRA_NS 1000000000LL      /* the ring keeps a second more than the pre-roll */

struct relay_recorder {
    relay_input *in;
    relay_rec *rec;
    unsigned segment_s;
    stw_scope *scope;
    relay_child *job;
    bool ts; /* an ffmpeg input: MPEG-TS copied; else JPEG frames encoded */
    relay_record_spec spec; /* mode, pre- and post-roll, as started */
    /* The command: argv points into store or at static strings. */
    const char *argv[ARGS_MAX + 1];
    char store[RELAY_PATH_MAX + 512];
    /* Recorder thread only. */
    relay_ff_log log;
    relay_ts_feed feed;
    stw_buf *pending; /* the frame being written */
    size_t pending_off;
    /* Mode "motion". The gate, and for JPEG inputs the pre-roll ring and
     * the constant-rate feed: slot n of the child's input is the newest
     * ring frame captured at or before slot0_ns + n / rate, so that
     * pre-roll frames written in a burst keep their place in time. */
    relay_rec_gate gate;
    relay_preroll ring;
    unsigned rate;
    int64_t slot0_ns;
    uint64_t slot_n;
    bool first_child; /* the session's first child: it gets the pre-roll */
    int64_t motion_ns; /* the session's motion-start, stw_now_ns clock */
    int64_t end_ns;    /* the last session's end: the next pre-roll stops there */
    /* The first segment of a mode "motion" session is named for the time
     * its pre-roll starts; 0 once it has its name (or for other modes). */
    time_t first_t;
    char dir[RELAY_PATH_MAX + 64]; /* the session's folder, absolute */
    uint64_t last_seq, last_frames_in;
    unsigned spawns;
    /* Shared. */
    pthread_mutex_t lock; /* guards state, session */
    char state[RELAY_STATE_MAX];
    char session[64]; /* "{day}/{hms}", "" outside a session */
    _Atomic uint64_t bytes_done;  /* segments finished */
    _Atomic uint64_t bytes_child; /* the segment being written, as far as now */
    /* The segment the child writes: its path (the staging name the child
     * announced, then its own once seg_claim() gave it), and a descriptor
     * of our own on it once it exists. Recorder thread only. The segment
     * muxer reports no total_size, so the sizes come from here. */
    char seg_path[PATH_MAX];
    int seg_fd;
    bool seg_staged;     /* seg_path is still the staging name */
    time_t seg_t;        /* the second its name says (a later one if taken) */
    unsigned seg_spawns; /* the child count when seg_path was announced */
    _Atomic unsigned sessions;
    atomic_bool enospc; /* a child said the disk is full: pause until space returns */
    _Atomic uint64_t ring_frames_pub, ring_bytes_pub, ring_ms_pub;
    _Atomic int64_t preroll_ms; /* recorded before the motion-start, last session */
    _Atomic int64_t until_ms;   /* wall clock the post-roll runs to; 0 outside */
};

static int64_t now_ms(void)
{
    return stw_now_ns() / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* Size of the segment being written, once the child has made it. */
static void seg_update(relay_recorder *r)
{
    if (r->seg_fd < 0 && r->seg_path[0] != '\0')
        r->seg_fd = stw_fd_track(open(r->seg_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW),
                                 STW_KIND_FD, "file:recording-segment");
    struct stat st;
    if (r->seg_fd >= 0 && fstat(r->seg_fd, &st) == 0)
        atomic_store(&r->bytes_child, (uint64_t)st.st_size);
}

/* A finished segment without one complete fragment holds no frame (the
 * disk filled, or the child died, before the first one was written):
 * nothing plays it, so it goes. By its current name (a first segment may
 * have been renamed), and only while that name is still this file. */
static bool seg_drop_if_empty(relay_recorder *r)
{
    struct stat st;
    if (r->seg_fd < 0 || fstat(r->seg_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    relay_mp4_info info;
    int rc = relay_mp4_probe(r->seg_fd, (uint64_t)st.st_size, &info);
    if ((rc == 0 && info.fragments > 0) || (rc != 0 && rc != -EINVAL))
        return false;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", r->seg_fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    struct stat now;
    if (lstat(path, &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
        return false;
    if (unlink(path) != 0)
        return false;
    fprintf(stderr, "steward relay: input %s: segment %s holds no frame (%lld bytes): removed\n",
            r->in->name, path, (long long)st.st_size);
    return true;
}

/* Open the folder of the segment being written (booked in the ledger;
 * the caller closes it with stw_fd_close) and point @base at the file's
 * name in seg_path; a negative errno if it cannot. */
static int seg_dir(relay_recorder *r, const char **base)
{
    char *slash = strrchr(r->seg_path, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    int fd = stw_fd_track(open(r->seg_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC),
                          STW_KIND_FD, "dir:recorder-session");
    *slash = '/';
    *base = slash + 1;
    return fd;
}

/* Give the staged segment its name (relay_rec_claim, rec.h): the second
 * it was opened, seg_t, or the first later second not taken. The child
 * writes under a staging name no other segment has: named by its clock
 * (strftime), a burst (a backlog after a stall) opened several segments
 * within one second under one name, each truncating the one before.
 * With @closed (the child has closed it), watchers are told under the new
 * name. Returns false while the child has not made the file yet. */
static bool seg_claim(relay_recorder *r, bool closed)
{
    if (r->seg_path[0] == '\0')
        return false;
    if (r->seg_staged)
        seg_update(r); /* hold it by descriptor before its name changes */
    if (r->seg_fd < 0)
        return false;
    const char *base;
    int dfd = seg_dir(r, &base);
    if (dfd < 0)
        return false;
    char to[32];
    if (r->seg_staged && relay_rec_claim(dfd, base, r->seg_t, to) == 0) {
        snprintf(r->seg_path + (base - r->seg_path),
                 sizeof(r->seg_path) - (size_t)(base - r->seg_path), "%s", to);
        r->seg_staged = false;
    }
    if (closed && !r->seg_staged)
        relay_rec_announce_closed(dfd, base);
    stw_fd_close(&dfd);
    return !r->seg_staged;
}

/* The segment is finished (a next one opened, or its child ended): its
 * size counts as written. @closed: no child writes it any more (the
 * segment muxer closes a segment before it opens the next; a stopped
 * child is reaped). */
static void seg_settle(relay_recorder *r, bool closed)
{
    seg_update(r);
    atomic_fetch_add(&r->bytes_done, atomic_exchange(&r->bytes_child, 0));
    if (closed && !seg_drop_if_empty(r))
        seg_claim(r, true);
    stw_fd_close(&r->seg_fd);
    r->seg_path[0] = '\0';
    r->seg_staged = false;
}

static bool rec_line(void *ud, const char *line)
{
    relay_recorder *r = ud;
    if (strstr(line, "No space left on device") != NULL)
        atomic_store(&r->enospc, true);
    /* "[segment @ 0x...] Opening '/dir/.part-K-N.mp4' for writing" */
    const char *o = strstr(line, "] Opening '");
    const char *e = o != NULL ? strstr(o, "' for writing") : NULL;
    if (e != NULL && (size_t)(e - (o + 11)) < sizeof(r->seg_path)) {
        seg_settle(r, true);
        memcpy(r->seg_path, o + 11, (size_t)(e - (o + 11)));
        r->seg_path[e - (o + 11)] = '\0';
        r->seg_staged = true;
        r->seg_t = r->first_t != 0 ? r->first_t : time(NULL);
        r->first_t = 0;
        relay_child_info info;
        relay_child_info_get(r->job, &info);
        r->seg_spawns = info.spawns;
        return true;
    }
    bool progress = relay_ff_log_line(&r->log, line, strlen(line));
    if (progress)
        seg_update(r);
    return !progress;
}

static unsigned ring_rate(relay_recorder *r);

/* The command for child number @child of the session in r->dir: it
 * writes segments under staging names of its own (seg_claim() names
 * them). Returns 0 or -ENAMETOOLONG. */
static int build_argv(relay_recorder *r, unsigned child)
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
        if (r->spec.motion) {
            /* A frame per slot of the constant rate (feed_slots): the
             * pre-roll, written at once, keeps its duration. */
            ADD("-framerate");
            ADDF("%u", r->rate);
        } else {
            ADD("-use_wallclock_as_timestamps");
            ADD("1");
            ADD("-framerate");
            ADD("1000");
        }
        /* The raw mjpeg demuxer takes what the pipe has (image2pipe would
         * wait for 4 KiB, holding back small frames). */
        ADD("-f");
        ADD("mjpeg");
        ADD("-i");
        ADD("pipe:0");
        ADD("-map");
        ADD("0:v");
        if (strcmp(r->in->kind, "test") == 0 || r->spec.motion) {
            ADD("-r");
            ADDF("%u", r->spec.motion ? r->rate : r->in->fps);
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
    ADDF("%s/.part-%u-%%d.mp4", r->dir, child);
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

static int64_t preroll_start_ns(relay_recorder *r);

/* Make the session folder for now (mode "motion": for where the pre-roll
 * starts) and point the job at it. Returns 0, -EEXIST (try again later)
 * or an error (reported, state "error"). */
static int begin_session(relay_recorder *r)
{
    time_t now = time(NULL), t = now;
    if (r->spec.motion) {
        int64_t back = (stw_now_ns() - preroll_start_ns(r)) / 1000000000LL;
        t = now - (time_t)(back > 0 ? back : 0);
    }
    struct tm tm;
    char day[16], hms[16];
    int rc;
    /* A session of this second exists (recording stopped and started
     * again, a restart of the relay, a pre-roll reaching back to where the
     * last session ended): its segment names could be taken again. Mode
     * "motion" takes a later second up to now; the caller retries in a
     * moment, in the next second. */
    for (;;) {
        gmtime_r(&t, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        strftime(hms, sizeof(hms), "%H-%M-%S", &tm);
        rc = make_session_dir(r, day, hms, true);
        if (rc != -EEXIST || t >= now)
            break;
        t++;
    }
    if (rc == -EEXIST)
        return rc;
    /* The pre-roll in the first segment started at t. */
    r->first_t = r->spec.motion ? t : 0;
    if (rc == 0 && snprintf(r->dir, sizeof(r->dir), "%s/%s/%s/%s", relay_rec_dir(r->rec),
                            r->in->name, day, hms) >= (int)sizeof(r->dir))
        rc = -ENAMETOOLONG;
    r->first_child = true;
    atomic_store(&r->preroll_ms, 0);
    if (r->spec.motion && !r->ts)
        r->rate = ring_rate(r);
    if (rc == 0)
        rc = build_argv(r, r->spawns + 1);
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
    stw_buf_unref(&r->pending);
    r->pending_off = 0;
}

/* End the session: end of file to the child, which finishes its segment. */
static void end_session(relay_recorder *r, const char *state)
{
    relay_child_stop(r->job);
    relay_ts_feed_close(&r->feed);
    drop_pending(r);
    seg_settle(r, true);
    char session[64];
    pthread_mutex_lock(&r->lock);
    snprintf(session, sizeof(session), "%s", r->session);
    pthread_mutex_unlock(&r->lock);
    set_state(r, state, "");
    r->end_ns = stw_now_ns();
    atomic_store(&r->until_ms, 0);
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

/* Whether a session should run now. The one gate: in mode "motion", from
 * a motion-start to post_roll after motion-end (relay_rec_gate). */
static bool want_session(relay_recorder *r, bool source)
{
    if (!r->spec.motion)
        return source && !paused_for_space(r);
    int64_t since = 0;
    uint64_t starts = 0;
    bool active = relay_motion_active(r->in, &since, &starts);
    int64_t now = wall_ms();
    bool motion = relay_rec_gate_step(&r->gate, now, active, since, starts);
    atomic_store(&r->until_ms, motion ? (active ? -1 : r->gate.until_ms) : 0);
    if (motion && r->motion_ns == 0)
        r->motion_ns = stw_now_ns() - (now - r->gate.since_ms) * 1000000;
    if (!motion)
        r->motion_ns = 0;
    return source && motion && !paused_for_space(r);
}

/* ---- the pre-roll ring of JPEG inputs in mode "motion" ---- */

static void ring_publish(relay_recorder *r, int64_t now)
{
    atomic_store(&r->ring_frames_pub, r->ring.n);
    atomic_store(&r->ring_bytes_pub, r->ring.bytes);
    atomic_store(&r->ring_ms_pub,
                 r->ring.n > 0 ? (uint64_t)(now - relay_preroll_get(&r->ring, 0)->ns) / 1000000
                               : 0);
}

/* Copy the hub's newest camera or pattern frame (not a card) into the
 * ring, which keeps the pre-roll plus a second (within its bounds). */
static void ring_collect(relay_recorder *r)
{
    uint64_t seq;
    bool card = false;
    stw_frame *f = relay_hub_latest_source(r->in->hub, &seq, &card);
    int64_t now = stw_now_ns();
    if (f != NULL && seq != r->last_seq && !card) {
        stw_buf *src = stw_frame_buf(f);
        size_t len = stw_buf_size(src);
        stw_buf *b = NULL;
        if (stw_buf_new(len, &b) == 0) {
            memcpy(stw_buf_data(b), stw_buf_data(src), len);
            int64_t ns = stw_frame_meta_get(f)->captured_ns;
            relay_preroll_append(&r->ring, b, ns > 0 && ns <= now ? ns : now);
        }
    }
    if (f != NULL)
        r->last_seq = seq;
    stw_frame_unref(&f);
    relay_preroll_trim(&r->ring,
                       now - (int64_t)r->spec.pre_roll_s * 1000000000LL - KEEP_EXTRA_NS);
    ring_publish(r, now);
}

/* The rate of the constant-rate feed: the pattern's; a camera's measured
 * over the ring (1..30 frames a second, 10 while unknown). */
static unsigned ring_rate(relay_recorder *r)
{
    if (strcmp(r->in->kind, "test") == 0 && r->in->fps > 0)
        return r->in->fps;
    return relay_preroll_rate(&r->ring, 1, 30, 10);
}

/* Where the session's pre-roll starts (stw_now_ns clock): JPEG inputs
 * at the oldest ring frame within pre_roll of the motion-start, ffmpeg
 * inputs at the retained keyframe relay_ts_feed_open_at takes; never
 * before the last session ended; now without any. */
static int64_t preroll_start_ns(relay_recorder *r)
{
    int64_t from = r->motion_ns - (int64_t)r->spec.pre_roll_s * 1000000000LL;
    if (r->ts) {
        int64_t ns = relay_ts_key_time(r->in->ts, from, r->end_ns + 1);
        return ns > 0 ? ns : stw_now_ns();
    }
    int64_t ns = relay_preroll_start(&r->ring, from, r->end_ns);
    return ns > 0 ? ns : stw_now_ns();
}

/* Where a child's feed starts: the session's first child at the start of
 * the pre-roll, a restarted one now. */
static void slots_start(relay_recorder *r)
{
    r->slot0_ns = r->first_child ? preroll_start_ns(r) : stw_now_ns();
    r->slot_n = 0;
    if (!r->first_child)
        return;
    int64_t got = r->motion_ns - r->slot0_ns;
    atomic_store(&r->preroll_ms, got > 0 ? got / 1000000 : 0);
}

/* Write what the pipe takes of the pending frame; dropped once written
 * whole (r->pending stays set while the pipe is full). Returns bytes
 * written or a negative errno (the frame dropped). */
static long write_pending(relay_recorder *r, int fd)
{
    size_t len = stw_buf_size(r->pending);
    long total = 0;
    while (r->pending_off < len) {
        ssize_t w = write(fd, stw_buf_data(r->pending) + r->pending_off, len - r->pending_off);
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

/* JPEG frames in mode "motion": one frame per slot up to now, each the
 * newest ring frame of its time (repeated when the source was slower).
 * Returns bytes written or a negative errno. */
static long feed_slots(relay_recorder *r, int fd)
{
    long total = 0;
    int64_t now = stw_now_ns();
    while (total < (1L << 20)) {
        if (r->pending == NULL) {
            int64_t t = r->slot0_ns + (int64_t)(r->slot_n * 1000000000ULL / r->rate);
            stw_buf *b = t <= now ? relay_preroll_at(&r->ring, t) : NULL;
            if (b == NULL)
                return total;
            r->pending = stw_buf_ref(b);
            r->pending_off = 0;
            r->slot_n++;
        }
        long w = write_pending(r, fd);
        if (w < 0)
            return w;
        total += w;
        if (r->pending != NULL)
            return total; /* the pipe is full */
    }
    return total;
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
        r->pending = stw_buf_ref(stw_frame_buf(f));
        r->pending_off = 0;
        stw_frame_unref(&f);
    }
    return write_pending(r, fd);
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
    bool ring = r->spec.motion && !r->ts;
    bool preroll_known = true; /* ffmpeg inputs: known once the reader is positioned */
    set_state(r, "waiting", "");
    while (!stw_scope_cancelled(scope)) {
        if (ring)
            ring_collect(r);
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
            end_session(r, paused_for_space(r) ? "disk-full"
                           : source && r->spec.motion ? "armed"
                                                      : "waiting");
            active = false;
        } else if (!active && want) {
            active = begin_session(r) == 0;
        } else if (!active) {
            /* "armed": mode "motion", the source sends, no motion yet. */
            set_state(r,
                      paused_for_space(r) ? "disk-full"
                      : source && r->spec.motion ? "armed"
                                                 : "waiting",
                      NULL);
        }
        if (!active) {
            struct pollfd pf = {.fd = stw_scope_cancel_fd(scope), .events = POLLIN};
            poll(&pf, 1, ring ? frame_ms : 200);
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
            /* The segment of a child that ended (it was reaped), unless
             * the new child has announced one already. */
            if (r->seg_spawns != info.spawns)
                seg_settle(r, true);
            /* The next child's staging names are its own. */
            if (build_argv(r, info.spawns + 1) == 0)
                relay_child_set_argv(r->job, r->argv);
            relay_ff_log_init(&r->log);
            relay_ts_feed_close(&r->feed);
            drop_pending(r);
            if (r->ts && r->spec.motion && r->first_child) {
                int64_t from = r->motion_ns - (int64_t)r->spec.pre_roll_s * 1000000000LL;
                relay_ts_feed_open_at(r->in->ts, &r->feed, from, r->end_ns + 1);
                preroll_known = false;
            } else if (r->ts) {
                relay_ts_feed_open(r->in->ts, &r->feed);
            }
            if (ring)
                slots_start(r);
            /* Only the first child's file holds the pre-roll: a restarted
             * one's is named for when it opened it. */
            if (!r->first_child)
                r->first_t = 0;
            r->first_child = false;
        }
        if (r->seg_staged)
            seg_claim(r, false);
        if (!preroll_known && r->feed.reader != NULL &&
            relay_ts_reader_first_ns(r->feed.reader) != 0) {
            int64_t got = r->motion_ns - relay_ts_reader_first_ns(r->feed.reader);
            atomic_store(&r->preroll_ms, got > 0 ? got / 1000000 : 0);
            preroll_known = true;
        }
        if (info.pid > 0)
            set_state(r, info.state[0] == 'r' ? "recording" : info.state, NULL);
        else
            set_state(r, info.state, NULL);
        int in_fd = relay_child_stdin_fd(r->job);
        bool has_pending = r->ts ? r->feed.has_pending : r->pending != NULL;
        if (ring && !has_pending && in_fd >= 0) {
            /* The next slot may be due already (a burst of pre-roll). */
            long w = feed_slots(r, in_fd);
            if (w > 0)
                relay_child_progress(r->job, now_ms());
            has_pending = r->pending != NULL;
        }
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
        else if (ring)
            w = feed_slots(r, in_fd);
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
    seg_settle(r, true);
    relay_preroll_clear(&r->ring);
}

static void rec_free(void *arg)
{
    relay_recorder *r = arg;
    relay_child_free(&r->job);
    relay_ts_feed_close(&r->feed);
    drop_pending(r);
    relay_preroll_free(&r->ring);
    pthread_mutex_destroy(&r->lock);
    stw_free(r);
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
    r->seg_fd = -1;
    r->segment_s = segment_s;
    r->ts = in->ts != NULL;
    r->spec = in->record;
    r->gate = relay_rec_gate_init((int64_t)r->spec.post_roll_s * 1000);
    r->rate = 10;
    if (r->spec.motion && !r->ts) {
        int rc = relay_preroll_init(&r->ring, RELAY_RECORDER_RING_FRAMES,
                                    RELAY_RECORDER_RING_BYTES);
        if (rc != 0) {
            stw_free(r);
            return rc;
        }
    }
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->state, sizeof(r->state), "waiting");
    relay_ff_log_init(&r->log);
    char job[RELAY_NAME_MAX + 16];
    snprintf(job, sizeof(job), "record %s", in->name);
    relay_child_opts o = {.job = job,
                          .backoff_min_ms = 1500,
                          .backoff_max_ms = 30000,
                          .healthy_ms = 30000,
                          .watchdog_ms = WATCHDOG_MS,
                          .grace_ms = GRACE_MS,
                          .stdin_eof_ms = EOF_MS,
                          .pipe_stdin = true,
                          .on_line = rec_line,
                          .ud = r};
    int rc = relay_child_new(&o, &r->job);
    if (rc == 0)
        rc = stw_scope_new(in->owner, "record", &r->scope);
    if (rc != 0) {
        relay_child_free(&r->job);
        pthread_mutex_destroy(&r->lock);
        relay_preroll_free(&r->ring);
        stw_free(r);
        return rc;
    }
    stw_scope *scope = r->scope;
    rc = stw_scope_defer(scope, rec_free, r);
    if (rc != 0) {
        relay_child_free(&r->job);
        pthread_mutex_destroy(&r->lock);
        relay_preroll_free(&r->ring);
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
    json_t *o = json_pack("{s:s, s:s?, s:i, s:i, s:i, s:i, s:I, s:s?, s:s?, s:s}", "state", state,
                          "session", session[0] ? session : NULL, "segment", (int)r->segment_s,
                          "pid", (int)i.pid, "restarts", (int)i.restarts, "sessions",
                          (int)atomic_load(&r->sessions), "bytes",
                          (json_int_t)relay_recorder_bytes(r), "last_exit",
                          i.last_exit[0] ? i.last_exit : NULL, "last_error",
                          i.last_error[0] ? i.last_error : NULL, "mode",
                          r->spec.motion ? "motion" : "continuous");
    if (o == NULL)
        return NULL;
    if (r->spec.motion) {
        relay_recorder_ring ring;
        relay_recorder_ring_get(r, &ring);
        int64_t until = atomic_load(&r->until_ms);
        json_t *m = json_pack("{s:i, s:i, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "pre_roll",
                              (int)r->spec.pre_roll_s, "post_roll", (int)r->spec.post_roll_s,
                              "pre_roll_recorded_ms", (json_int_t)atomic_load(&r->preroll_ms),
                              "ring", "frames", (json_int_t)ring.frames, "bytes",
                              (json_int_t)ring.bytes, "ms", (json_int_t)ring.ms, "max_frames",
                              (json_int_t)ring.max_frames, "max_bytes", (json_int_t)ring.max_bytes);
        /* -1: motion goes on; a wall clock: the post-roll ends then. */
        if (m != NULL && until != 0)
            json_object_set_new(m, "post_roll_until_ms", json_integer(until));
        if (m == NULL || json_object_update(o, m) != 0) {
            json_decref(m);
            json_decref(o);
            return NULL;
        }
        json_decref(m);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

void relay_recorder_ring_get(relay_recorder *r, relay_recorder_ring *out)
{
    *out = (relay_recorder_ring){0};
    if (!r->spec.motion)
        return;
    if (r->ts) {
        /* The MPEG-TS the input retains anyway is the ring. */
        relay_ts_stats st;
        relay_ts_get_stats(r->in->ts, &st);
        out->frames = st.retained_chunks;
        out->bytes = st.retained_bytes;
        out->ms = st.retained_ms;
        out->max_bytes = RELAY_TS_MAX_BYTES_DEFAULT;
        return;
    }
    out->frames = atomic_load(&r->ring_frames_pub);
    out->bytes = atomic_load(&r->ring_bytes_pub);
    out->ms = atomic_load(&r->ring_ms_pub);
    out->max_frames = RELAY_RECORDER_RING_FRAMES;
    out->max_bytes = RELAY_RECORDER_RING_BYTES;
}
