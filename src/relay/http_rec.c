/*
 * src/relay/http_rec.c — recordings over HTTP: the list, downloads with
 * Range, deletion (/api/recordings...), the directory watcher that tells
 * the event clients, recording state events and the recording metrics.
 *
 * Model
 *   Paths come from the request only through relay_rec_path_check() (the
 *   layout's own shapes, rec.h), and files are opened with openat() and
 *   O_NOFOLLOW under the recordings directory's descriptor: nothing from
 *   the API reaches outside the directory.
 *
 *   The watcher is an inotify descriptor on the loop (booked in the ledger
 *   as "inotify:recordings", freed at teardown like every loop event) with
 *   one watch per folder of the layout: the top, each input, each day,
 *   each session. A new folder gets its watch when it appears (and is read
 *   once, for what was made before the watch). It announces
 *   segment-created, segment-finished (written and closed: the janitor is
 *   nudged), segment-deleted, session-created and session-deleted, for
 *   the relay's own changes and for anyone else's (a user deleting a
 *   folder by hand). Watches are capped at WATCH_MAX; past that, folders
 *   are not watched (logged once).
 *
 *   A one-second timer compares each recorder's state with what was last
 *   announced, and the disk-full flag, and sends "recording-state" and
 *   "recordings-disk" events on change.
 *
 *   Segment summaries (mp4.h) are cached per path, size and mtime in a
 *   fixed table (CACHE_SLOTS, direct-mapped), so listing a day again
 *   reads nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"
#include "mp4.h"
#include "rec.h"
#include "recorder.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define WATCH_MAX 4096
#define CACHE_SLOTS 1024
#define LIST_MAX 8192 /* entries read from one folder */

typedef struct rec_watch {
    int wd;              /* -1: free slot */
    relay_rec_kind kind; /* what the watched folder is (RELAY_REC_BAD: the top) */
    char rel[64];        /* its path under the directory, "" for the top */
    char finished[32];   /* the segment last announced finished in it */
} rec_watch;

typedef struct rec_cache_slot {
    char rel[96];
    uint64_t size;
    int64_t mtime_ns;
    relay_mp4_info info;
} rec_cache_slot;

struct relay_http_rec {
    int ifd;
    struct event *iev;
    struct event *timer;
    rec_watch *watches; /* WATCH_MAX */
    unsigned nwatches;
    bool watch_full_logged;
    rec_cache_slot *cache; /* CACHE_SLOTS */
    bool disk_full;
    uint64_t finished, finished_bytes, created, deleted_seen, overflows;
};

/* ---- names ---- */

static int64_t wall_ms(void)
{
    return relay_http__wall_ms();
}

/* Read folder @fd's entries that are valid for @kind (the kind of what is
 * inside), sorted by name (which is by time). *@out is stw_malloc'd
 * (LIST_MAX x 32 at most); returns how many, or -ENOMEM. */
static long list_sorted(int fd, relay_rec_kind kind, char (**out)[32])
{
    *out = NULL;
    int dup_fd = stw_fd_track(openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), STW_KIND_FD,
                              "dir:recordings-list");
    if (dup_fd < 0)
        return dup_fd;
    DIR *d = fdopendir(dup_fd);
    if (d == NULL) {
        stw_fd_close(&dup_fd);
        return -ENOMEM;
    }
    size_t cap = 64, n = 0;
    char(*names)[32] = stw_malloc(cap * 32);
    struct dirent *de;
    while (names != NULL && n < LIST_MAX && (de = readdir(d)) != NULL) {
        const char *s = de->d_name;
        bool ok = strlen(s) < 32 &&
                  (kind == RELAY_REC_INPUT     ? relay_name_valid(s, strlen(s))
                   : kind == RELAY_REC_DAY     ? relay_rec_day_valid(s)
                   : kind == RELAY_REC_SESSION ? relay_rec_time_valid(s)
                                               : relay_rec_segment_valid(s));
        if (!ok)
            continue;
        if (n == cap) {
            char(*nn)[32] = stw_realloc(names, cap * 2 * 32);
            if (nn == NULL) {
                stw_free(names);
                names = NULL;
                break;
            }
            names = nn;
            cap *= 2;
        }
        snprintf(names[n++], 32, "%s", s);
    }
    stw_fd_untrack(dup_fd);
    closedir(d);
    if (names == NULL)
        return -ENOMEM;
    qsort(names, n, 32, (int (*)(const void *, const void *))strcmp);
    *out = names;
    return (long)n;
}

/* ---- summaries ---- */

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The summary of segment @name in the session folder @sfd at @rel. */
static int summary(relay_http *srv, int sfd, const char *rel, const char *name,
                   struct stat *st, relay_mp4_info *info)
{
    int fd = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    fd = stw_fd_track(fd, STW_KIND_FD, "file:recording-probe");
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        stw_fd_close(&fd);
        return -EINVAL;
    }
    int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    rec_cache_slot *c = srv->rec != NULL ? &srv->rec->cache[hash(rel) % CACHE_SLOTS] : NULL;
    if (c != NULL && strcmp(c->rel, rel) == 0 && c->size == (uint64_t)st->st_size &&
        c->mtime_ns == mt) {
        *info = c->info;
        stw_fd_close(&fd);
        return 0;
    }
    int rc = relay_mp4_probe(fd, (uint64_t)st->st_size, info);
    stw_fd_close(&fd);
    if (rc == 0 && c != NULL && strlen(rel) < sizeof(c->rel)) {
        snprintf(c->rel, sizeof(c->rel), "%s", rel);
        c->size = (uint64_t)st->st_size;
        c->mtime_ns = mt;
        c->info = *info;
    }
    return rc;
}

/* ---- time arguments ---- */

/* Seconds since the epoch from "1733140000" or "2026-12-02T13:10:00Z"
 * (also without the Z, or with a fraction that is ignored). */
static bool parse_when(const char *s, int64_t *out)
{
    char *end;
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) <= 12) {
        long long v = strtoll(s, &end, 10);
        if (*end == '\0') {
            *out = v;
            return true;
        }
    }
    if (strlen(s) < 19 || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return false;
    char day[11], hms[9];
    memcpy(day, s, 10);
    day[10] = '\0';
    snprintf(hms, sizeof(hms), "%.2s-%.2s-%.2s", s + 11, s + 14, s + 17);
    int64_t t = relay_rec_session_time(day, hms);
    const char *rest = s + 19;
    if (*rest == '.')
        while (*++rest >= '0' && *rest <= '9')
            ;
    if (t < 0 || (*rest != '\0' && strcmp(rest, "Z") != 0))
        return false;
    *out = t;
    return true;
}

/* ---- GET /api/recordings ---- */

static void stats_json(relay_http *srv, struct evbuffer *b)
{
    relay_rec_stats st;
    relay_rec_get_stats(srv->cfg.rec, &st);
    evbuffer_add_printf(b,
                        "\"disk_full\":%s,\"free_bytes\":%llu,\"total_bytes\":%llu,"
                        "\"min_free_bytes\":%llu,\"used_bytes\":%llu,\"segments\":%llu",
                        st.disk_full ? "true" : "false", (unsigned long long)st.free_bytes,
                        (unsigned long long)st.total_bytes, (unsigned long long)st.min_free,
                        (unsigned long long)st.used_bytes,
                        (unsigned long long)st.segments_on_disk);
}

static void handle_top(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    char(*names)[32] = NULL;
    long n = b != NULL ? list_sorted(relay_rec_dirfd(srv->cfg.rec), RELAY_REC_INPUT, &names)
                       : -ENOMEM;
    if (n < 0) {
        if (b != NULL)
            evbuffer_free(b);
        relay_http__reply_error(req, 503, "cannot read the recordings directory");
        return;
    }
    evbuffer_add_printf(b, "{\"dir\":");
    relay_http__json_str(b, relay_rec_dir(srv->cfg.rec));
    evbuffer_add_printf(b, ",");
    stats_json(srv, b);
    evbuffer_add_printf(b, ",\"inputs\":[");
    for (long i = 0; i < n; i++) {
        evbuffer_add_printf(b, "%s", i ? "," : "");
        relay_http__json_str(b, names[i]);
    }
    evbuffer_add_printf(b, "]}\n");
    stw_free(names);
    relay_http__reply_json(req, 200, "OK", b);
}

static bool session_active(relay_http *srv, const char *input, const char *session);

/* ---- GET /api/recordings/{input}?from=&to= ---- */

static void segment_json(relay_http *srv, struct evbuffer *b, int sfd, const char *input,
                         const char *day, const char *hms, const char *name, int64_t from,
                         int64_t to, bool live, bool *first)
{
    char rel[96];
    snprintf(rel, sizeof(rel), "%s/%s/%s/%s", input, day, hms, name);
    struct stat st;
    relay_mp4_info info;
    int rc = summary(srv, sfd, rel, name, &st, &info);
    int64_t start = relay_rec_segment_time(name);
    int64_t dur = rc == 0 && info.duration_ms >= 0 ? info.duration_ms : 0;
    if (rc == -ENOENT || start + (dur + 999) / 1000 < from || start > to)
        return;
    /* Being written: the last segment of the session the input records now. */
    bool busy = live;
    evbuffer_add_printf(b, "%s{\"name\":", *first ? "" : ",");
    *first = false;
    relay_http__json_str(b, name);
    evbuffer_add_printf(b, ",\"path\":");
    relay_http__json_str(b, rel);
    evbuffer_add_printf(b, ",\"start\":");
    relay_http__json_time(b, start * 1000);
    evbuffer_add_printf(b, ",\"start_ms\":%lld,\"duration_ms\":%lld,\"size\":%lld,"
                           "\"recording\":%s,\"cut\":%s,\"fragments\":%u,\"codec\":",
                        (long long)start * 1000, (long long)dur, (long long)st.st_size,
                        busy ? "true" : "false", rc == 0 && info.cut ? "true" : "false",
                        rc == 0 ? info.fragments : 0);
    if (rc == 0 && info.video_codec[0] != '\0')
        relay_http__json_str(b, info.video_codec);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b, ",\"audio_codec\":");
    if (rc == 0 && info.audio_codec[0] != '\0')
        relay_http__json_str(b, info.audio_codec);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b, ",\"width\":%u,\"height\":%u}", rc == 0 ? info.width : 0,
                        rc == 0 ? info.height : 0);
}

static void handle_list(relay_http *srv, struct evhttp_request *req, const char *input)
{
    int64_t from = 0, to = INT64_MAX / 2;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
        relay_http__reply_error(req, 400, "bad query string");
        return;
    }
    const char *f = evhttp_find_header(&q, "from"), *t = evhttp_find_header(&q, "to");
    bool ok = (f == NULL || parse_when(f, &from)) && (t == NULL || parse_when(t, &to));
    evhttp_clear_headers(&q);
    if (!ok) {
        relay_http__reply_error(req, 400,
                                "from and to must be seconds since the epoch or "
                                "YYYY-MM-DDTHH:MM:SSZ");
        return;
    }
    int ifd = relay_rec_open_dir(srv->cfg.rec, input, "dir:recordings-list");
    if (ifd < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "no recordings of \"%s\"", input);
        relay_http__reply_error(req, 404, msg);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    char(*days)[32] = NULL;
    long nd = b != NULL ? list_sorted(ifd, RELAY_REC_DAY, &days) : -ENOMEM;
    if (nd < 0) {
        stw_fd_close(&ifd);
        if (b != NULL)
            evbuffer_free(b);
        relay_http__reply_error(req, 503, "cannot read the recordings");
        return;
    }
    evbuffer_add_printf(b, "{\"input\":");
    relay_http__json_str(b, input);
    evbuffer_add_printf(b, ",\"from\":");
    relay_http__json_time(b, from * 1000);
    evbuffer_add_printf(b, ",\"sessions\":[");
    bool first_session = true;
    for (long d = 0; d < nd; d++) {
        /* A day folder holds sessions started that day (UTC). */
        int64_t day0 = relay_rec_session_time(days[d], "00-00-00");
        if (day0 > to)
            continue;
        int dfd = stw_fd_track(openat(ifd, days[d], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                         O_CLOEXEC),
                               STW_KIND_FD, "dir:recordings-list");
        char(*sessions)[32] = NULL;
        long ns = dfd >= 0 ? list_sorted(dfd, RELAY_REC_SESSION, &sessions) : 0;
        for (long s = 0; s < ns; s++) {
            int64_t st = relay_rec_session_time(days[d], sessions[s]);
            if (st > to)
                continue;
            int sfd = stw_fd_track(openat(dfd, sessions[s], O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                                O_CLOEXEC),
                                   STW_KIND_FD, "dir:recordings-list");
            char(*segs)[32] = NULL;
            long nf = sfd >= 0 ? list_sorted(sfd, RELAY_REC_SEGMENT, &segs) : 0;
            size_t mark = evbuffer_get_length(b);
            evbuffer_add_printf(b, "%s{\"id\":\"%s/%s\",\"start\":", first_session ? "" : ",",
                                days[d], sessions[s]);
            relay_http__json_time(b, st * 1000);
            evbuffer_add_printf(b, ",\"segments\":[");
            bool first = true;
            char sid[24];
            snprintf(sid, sizeof(sid), "%s/%s", days[d], sessions[s]);
            bool active = session_active(srv, input, sid);
            for (long k = 0; k < nf; k++)
                segment_json(srv, b, sfd, input, days[d], sessions[s], segs[k], from, to,
                             active && k == nf - 1, &first);
            evbuffer_add_printf(b, "]}");
            /* A session with nothing in the range is left out. */
            if (first && nf > 0) {
                struct evbuffer *keep = evbuffer_new();
                if (keep != NULL) {
                    evbuffer_remove_buffer(b, keep, mark);
                    evbuffer_free(b);
                    b = keep;
                }
            } else {
                first_session = false;
            }
            stw_free(segs);
            stw_fd_close(&sfd);
        }
        stw_free(sessions);
        stw_fd_close(&dfd);
    }
    stw_free(days);
    stw_fd_close(&ifd);
    evbuffer_add_printf(b, "]}\n");
    relay_http__reply_json(req, 200, "OK", b);
}

/* ---- GET a segment, with Range ---- */

static void close_download(const struct evbuffer_file_segment *seg, int flags, void *arg)
{
    (void)seg;
    (void)flags;
    int fd = (int)(intptr_t)arg;
    stw_fd_close(&fd);
}

/* Parse a single "bytes=A-B" / "bytes=A-" / "bytes=-N" of a file of @size.
 * Returns 1 with [*a, *b] set, 0 to ignore it (not one byte range), -1
 * when it cannot be satisfied. */
static int parse_range(const char *h, uint64_t size, uint64_t *a, uint64_t *b)
{
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        if (p[1] < '0' || p[1] > '9')
            return 0;
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (*end != '\0')
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *a = n >= size ? 0 : size - n;
        *b = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    unsigned long long first = strtoull(p, &end, 10);
    if (*end != '-')
        return 0;
    unsigned long long last = size > 0 ? size - 1 : 0;
    if (end[1] != '\0') {
        if (end[1] < '0' || end[1] > '9')
            return 0;
        last = strtoull(end + 1, &end, 10);
        if (*end != '\0')
            return 0;
        if (last < first)
            return 0;
        if (size > 0 && last >= size)
            last = size - 1;
    }
    if (first >= size)
        return -1;
    *a = first;
    *b = last;
    return 1;
}

static int open_segment(relay_http *srv, const char *rel, int *fd_out, struct stat *st)
{
    char dir[64];
    const char *slash = strrchr(rel, '/');
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - rel), rel);
    int sfd = relay_rec_open_dir(srv->cfg.rec, dir, "dir:recordings-get");
    if (sfd < 0)
        return sfd;
    int fd = openat(sfd, slash + 1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    stw_fd_close(&sfd);
    if (rc != 0)
        return rc;
    fd = stw_fd_track(fd, STW_KIND_FD, "file:recording-download");
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        stw_fd_close(&fd);
        return -EINVAL;
    }
    *fd_out = fd;
    return 0;
}

static void handle_download(relay_http *srv, struct evhttp_request *req, const char *rel)
{
    int fd;
    struct stat st;
    int rc = open_segment(srv, rel, &fd, &st);
    if (rc != 0) {
        relay_http__reply_error(req, rc == -ENOENT ? 404 : 403,
                                rc == -ENOENT ? "no such segment" : "not a segment file");
        return;
    }
    uint64_t size = (uint64_t)st.st_size, a = 0, b = size ? size - 1 : 0;
    const char *range = evhttp_find_header(evhttp_request_get_input_headers(req), "Range");
    int r = range != NULL ? parse_range(range, size, &a, &b) : 0;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char cr[96];
    if (r < 0) {
        stw_fd_close(&fd);
        snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
        evhttp_add_header(h, "Content-Range", cr);
        relay_http__reply_error(req, 416, "range not satisfiable");
        return;
    }
    evhttp_add_header(h, "Content-Type", "video/mp4");
    evhttp_add_header(h, "Accept-Ranges", "bytes");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    if (r > 0) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)a,
                 (unsigned long long)b, (unsigned long long)size);
        evhttp_add_header(h, "Content-Range", cr);
    }
    int code = r > 0 ? 206 : 200;
    const char *reason = r > 0 ? "Partial Content" : "OK";
    uint64_t len = size ? b - a + 1 : 0;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || len == 0) {
        stw_fd_close(&fd);
        char l[24];
        snprintf(l, sizeof(l), "%llu", (unsigned long long)len);
        evhttp_add_header(h, "Content-Length", l);
        evhttp_send_reply(req, code, reason, NULL);
        return;
    }
    /* The file goes out from the page cache (sendfile or a mapping), not
     * through the heap; the descriptor is closed when libevent is done. */
    struct evbuffer *body = evbuffer_new();
    struct evbuffer_file_segment *seg =
        body != NULL ? evbuffer_file_segment_new(fd, (ev_off_t)a, (ev_off_t)len, 0) : NULL;
    if (seg == NULL) {
        if (body != NULL)
            evbuffer_free(body);
        stw_fd_close(&fd);
        relay_http__reply_error(req, 503, "out of memory");
        return;
    }
    evbuffer_file_segment_add_cleanup_cb(seg, close_download, (void *)(intptr_t)fd);
    int added = evbuffer_add_file_segment(body, seg, 0, (ev_off_t)len);
    evbuffer_file_segment_free(seg); /* the buffer holds it now */
    if (added != 0) {
        evbuffer_free(body);
        relay_http__reply_error(req, 503, "out of memory");
        return;
    }
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
}

/* ---- DELETE ---- */

/* The session folder @input/@session that @input's recorder writes now. */
static bool session_active(relay_http *srv, const char *input, const char *session)
{
    http_input *hi = relay_http__find_input(srv, input, strlen(input));
    if (hi == NULL || hi->in->recorder == NULL)
        return false;
    char now[64];
    relay_recorder_session(hi->in->recorder, now);
    return strcmp(now, session) == 0;
}

/* Whether @seg is the newest segment of the session folder @sfd. */
static bool is_last(int sfd, const char *seg)
{
    char(*segs)[32] = NULL;
    long n = list_sorted(sfd, RELAY_REC_SEGMENT, &segs);
    bool last = n > 0 && strcmp(segs[n - 1], seg) == 0;
    stw_free(segs);
    return last;
}

static void handle_delete(relay_http *srv, struct evhttp_request *req, const char *rel,
                          relay_rec_kind kind)
{
    char input[RELAY_NAME_MAX], day[11], hms[9], seg[25] = "";
    if (sscanf(rel, "%31[^/]/%10[^/]/%8[^/]/%24s", input, day, hms, seg) < 3) {
        relay_http__reply_error(req, 400, "bad path");
        return;
    }
    char session[24];
    snprintf(session, sizeof(session), "%s/%s", day, hms);
    char dir[64];
    snprintf(dir, sizeof(dir), "%s/%s/%s", input, day, hms);
    int sfd = relay_rec_open_dir(srv->cfg.rec, dir, "dir:recordings-delete");
    if (sfd < 0) {
        relay_http__reply_error(req, 404, "no such session");
        return;
    }
    bool active = session_active(srv, input, session);
    unsigned removed = 0;
    uint64_t bytes = 0;
    int code = 200;
    const char *msg = NULL;
    if (kind == RELAY_REC_SEGMENT) {
        struct stat st;
        if (fstatat(sfd, seg, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            code = 404;
            msg = "no such segment";
        } else if (active && is_last(sfd, seg)) {
            code = 409;
            msg = "the segment is being recorded";
        } else if (unlinkat(sfd, seg, 0) == 0) {
            removed = 1;
            bytes = (uint64_t)st.st_size;
        } else {
            code = 500;
            msg = "cannot delete the segment";
        }
    } else if (active) {
        code = 409;
        msg = "the session is being recorded: stop recording first";
    } else {
        char(*segs)[32] = NULL;
        long nf = list_sorted(sfd, RELAY_REC_SEGMENT, &segs);
        for (long k = 0; k < nf; k++) {
            struct stat st;
            if (fstatat(sfd, segs[k], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                unlinkat(sfd, segs[k], 0) == 0) {
                removed++;
                bytes += (uint64_t)st.st_size;
            }
        }
        stw_free(segs);
    }
    stw_fd_close(&sfd);
    relay_rec_count_delete(srv->cfg.rec, RELAY_REC_DEL_API, removed, bytes);
    /* Empty folders go (a session by its owner's request at once). */
    int ifd = relay_rec_open_dir(srv->cfg.rec, input, "dir:recordings-delete");
    int dfd = ifd >= 0 ? stw_fd_track(openat(ifd, day, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                                           O_CLOEXEC),
                                      STW_KIND_FD, "dir:recordings-delete")
                       : -1;
    bool session_gone = false;
    if (dfd >= 0 && !active) {
        session_gone = unlinkat(dfd, hms, AT_REMOVEDIR) == 0;
        if (session_gone)
            unlinkat(ifd, day, AT_REMOVEDIR);
    }
    stw_fd_close(&dfd);
    stw_fd_close(&ifd);
    if (code == 200 && kind == RELAY_REC_SESSION && !session_gone) {
        code = 409;
        msg = "the session folder holds other files; its segments were deleted";
    }
    /* A session whose folder stays (other files in it) answers 409 with
     * what was deleted; every other failure deleted nothing. */
    if (msg != NULL && (code != 409 || removed == 0)) {
        relay_http__reply_error(req, code, msg);
        return;
    }
    relay_rec_nudge(srv->cfg.rec);
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"deleted\":");
    relay_http__json_str(b, rel);
    evbuffer_add_printf(b, ",\"segments\":%u,\"bytes\":%llu,\"session_removed\":%s", removed,
                        (unsigned long long)bytes, session_gone ? "true" : "false");
    if (msg != NULL) {
        evbuffer_add_printf(b, ",\"error\":");
        relay_http__json_str(b, msg);
    }
    evbuffer_add_printf(b, "}\n");
    relay_http__reply_json(req, code, code == 200 ? "OK" : "Conflict", b);
}

void relay_http__route_recordings(relay_http *srv, struct evhttp_request *req, const char *rest,
                                  enum evhttp_cmd_type cmd)
{
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (srv->cfg.rec == NULL) {
        relay_http__reply_error(req, 503, "recordings are not available");
        return;
    }
    if (rest[0] == '\0') {
        if (get)
            handle_top(srv, req);
        else
            relay_http__reply_405(req, "GET, HEAD");
        return;
    }
    relay_rec_kind kind = relay_rec_path_check(rest);
    if (kind == RELAY_REC_BAD) {
        relay_http__reply_error(req, 400,
                                "not a recordings path: {input}[/{YYYY-MM-DD}/{HH-MM-SS}"
                                "[/{YYYY-MM-DDTHH-MM-SSZ}.mp4]]");
        return;
    }
    if (kind == RELAY_REC_INPUT && get)
        handle_list(srv, req, rest);
    else if (kind == RELAY_REC_SEGMENT && get)
        handle_download(srv, req, rest);
    else if ((kind == RELAY_REC_SEGMENT || kind == RELAY_REC_SESSION) &&
             cmd == EVHTTP_REQ_DELETE)
        handle_delete(srv, req, rest, kind);
    else if (kind == RELAY_REC_SEGMENT)
        relay_http__reply_405(req, "GET, HEAD, DELETE");
    else if (kind == RELAY_REC_SESSION)
        relay_http__reply_405(req, "DELETE");
    else if (kind == RELAY_REC_INPUT)
        relay_http__reply_405(req, "GET, HEAD");
    else
        relay_http__reply_error(req, 404, "list an input's recordings instead");
}

/* ---- the watcher ---- */

static rec_watch *watch_of(relay_http_rec *w, int wd)
{
    for (unsigned i = 0; i < w->nwatches; i++)
        if (w->watches[i].wd == wd)
            return &w->watches[i];
    return NULL;
}

static bool add_watch(relay_http *srv, relay_rec_kind kind, const char *rel);
static void seg_event(relay_http *srv, const char *event, const char *session_rel,
                      const char *name, bool with_size);

/* Watch what folder @rel (of @kind) already holds. */
static void watch_children(relay_http *srv, relay_rec_kind kind, const char *rel)
{
    if (kind == RELAY_REC_SESSION)
        return;
    int fd = relay_rec_open_dir(srv->cfg.rec, rel, "dir:recordings-watch");
    if (fd < 0)
        return;
    relay_rec_kind inner = kind == RELAY_REC_BAD     ? RELAY_REC_INPUT
                           : kind == RELAY_REC_INPUT ? RELAY_REC_DAY
                                                     : RELAY_REC_SESSION;
    char(*names)[32] = NULL;
    long n = list_sorted(fd, inner, &names);
    stw_fd_close(&fd);
    for (long i = 0; i < n; i++) {
        char sub[64];
        snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        /* A session made before its day folder was watched (mkdir -p) is
         * still new to the event clients. */
        if (add_watch(srv, inner, sub) && inner == RELAY_REC_SESSION)
            seg_event(srv, "session-created", sub, NULL, false);
    }
    stw_free(names);
}

/* Watch folder @rel (of @kind) and what it holds. Returns true if it was
 * not watched before. */
static bool add_watch(relay_http *srv, relay_rec_kind kind, const char *rel)
{
    relay_http_rec *w = srv->rec;
    if (strlen(rel) >= sizeof(w->watches[0].rel))
        return false;
    if (w->nwatches >= WATCH_MAX) {
        if (!w->watch_full_logged)
            fprintf(stderr, "steward relay: recordings: more than %d folders; new ones are not "
                            "watched\n",
                    WATCH_MAX);
        w->watch_full_logged = true;
        return false;
    }
    char path[RELAY_PATH_MAX + 80];
    snprintf(path, sizeof(path), "%s/%s", relay_rec_dir(srv->cfg.rec), rel);
    uint32_t mask = IN_ONLYDIR | IN_DONT_FOLLOW | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                    IN_MOVED_TO;
    if (kind == RELAY_REC_SESSION)
        mask |= IN_CLOSE_WRITE;
    int wd = inotify_add_watch(w->ifd, path, mask);
    if (wd < 0)
        return false;
    rec_watch *e = watch_of(w, wd);
    bool fresh = e == NULL;
    if (fresh)
        e = &w->watches[w->nwatches++];
    e->wd = wd;
    e->kind = kind;
    snprintf(e->rel, sizeof(e->rel), "%s", rel);
    if (fresh)
        e->finished[0] = '\0';
    watch_children(srv, kind, rel);
    return fresh;
}

static void seg_event(relay_http *srv, const char *event, const char *session_rel,
                      const char *name, bool with_size)
{
    char input[RELAY_NAME_MAX] = "", session[24] = "";
    sscanf(session_rel, "%31[^/]/%23s", input, session);
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return;
    evbuffer_add_printf(b, "{\"input\":");
    relay_http__json_str(b, input);
    evbuffer_add_printf(b, ",\"session\":");
    relay_http__json_str(b, session);
    if (name != NULL) {
        char rel[96];
        snprintf(rel, sizeof(rel), "%s/%s", session_rel, name);
        evbuffer_add_printf(b, ",\"segment\":");
        relay_http__json_str(b, name);
        evbuffer_add_printf(b, ",\"path\":");
        relay_http__json_str(b, rel);
        if (with_size) {
            /* A segment gone by now (the recorder removes one that holds
             * no frame) is not announced: its segment-deleted follows. One
             * that is there but does not parse has no duration (-1). */
            int sfd = relay_rec_open_dir(srv->cfg.rec, session_rel, "dir:recordings-watch");
            struct stat st = {.st_size = -1};
            relay_mp4_info info = {.duration_ms = -1};
            int rc = sfd >= 0 ? summary(srv, sfd, rel, name, &st, &info) : -ENOENT;
            stw_fd_close(&sfd);
            if (st.st_size < 0) {
                evbuffer_free(b);
                return;
            }
            if (rc != 0)
                info.duration_ms = -1;
            evbuffer_add_printf(b, ",\"size\":%lld,\"duration_ms\":%lld",
                                (long long)st.st_size, (long long)info.duration_ms);
            srv->rec->finished_bytes += (uint64_t)st.st_size;
        }
    }
    evbuffer_add_printf(b, ",\"time\":");
    relay_http__json_time(b, wall_ms());
    evbuffer_add_printf(b, "}");
    relay_http__sse_broadcast(srv, event, b);
    evbuffer_free(b);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    relay_http *srv = arg;
    relay_http_rec *w = srv->rec;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                /* Events were lost, new folders among them: walk the tree
                 * again (folders watched already keep their watch). */
                w->overflows++;
                watch_children(srv, RELAY_REC_BAD, "");
                continue;
            }
            rec_watch *e = watch_of(w, ev->wd);
            if (e == NULL)
                continue;
            if (ev->mask & IN_IGNORED) {
                *e = w->watches[--w->nwatches];
                continue;
            }
            if (ev->len == 0)
                continue;
            const char *name = ev->name;
            char rel[128];
            snprintf(rel, sizeof(rel), "%s%s%.31s", e->rel, e->rel[0] ? "/" : "", name);
            bool dir = (ev->mask & IN_ISDIR) != 0;
            bool in = (ev->mask & (IN_CREATE | IN_MOVED_TO)) != 0;
            bool out = (ev->mask & (IN_DELETE | IN_MOVED_FROM)) != 0;
            relay_rec_kind inner = e->kind == RELAY_REC_BAD     ? RELAY_REC_INPUT
                                   : e->kind == RELAY_REC_INPUT ? RELAY_REC_DAY
                                   : e->kind == RELAY_REC_DAY   ? RELAY_REC_SESSION
                                                                : RELAY_REC_SEGMENT;
            if (dir && in && inner != RELAY_REC_SEGMENT && relay_rec_path_check(rel) == inner) {
                add_watch(srv, inner, rel);
                if (inner == RELAY_REC_SESSION)
                    seg_event(srv, "session-created", rel, NULL, false);
            } else if (dir && out && inner == RELAY_REC_SESSION) {
                seg_event(srv, "session-deleted", rel, NULL, false);
                relay_rec_nudge(srv->cfg.rec);
            } else if (!dir && inner == RELAY_REC_SEGMENT && relay_rec_segment_valid(name)) {
                if (ev->mask & IN_CLOSE_WRITE) {
                    /* The recorder closes a segment once more under its
                     * own name (the child may have closed it under its
                     * staging name): one announcement. */
                    if (strcmp(e->finished, name) == 0)
                        continue;
                    snprintf(e->finished, sizeof(e->finished), "%s", name);
                    w->finished++;
                    seg_event(srv, "segment-finished", e->rel, name, true);
                    relay_rec_nudge(srv->cfg.rec);
                } else if (in) {
                    w->created++;
                    seg_event(srv, "segment-created", e->rel, name, false);
                } else if (out) {
                    w->deleted_seen++;
                    seg_event(srv, "segment-deleted", e->rel, name, false);
                }
            }
        }
    }
}

/* Announce recorder state and disk-full changes. */
static void on_rec_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http *srv = arg;
    for (unsigned i = 0; i < srv->ninputs; i++) {
        http_input *hi = srv->inputs[i];
        char state[RELAY_STATE_MAX] = "off";
        if (hi->in->recorder != NULL)
            relay_recorder_state(hi->in->recorder, state);
        if (strcmp(state, hi->rec_state) == 0)
            continue;
        snprintf(hi->rec_state, sizeof(hi->rec_state), "%s", state);
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            continue;
        evbuffer_add_printf(b, "{\"input\":");
        relay_http__json_str(b, hi->in->name);
        evbuffer_add_printf(b, ",\"recording\":");
        char *rj = hi->in->recorder != NULL ? relay_recorder_json(hi->in->recorder) : NULL;
        evbuffer_add_printf(b, "%s}", rj != NULL ? rj : "{\"state\":\"off\"}");
        stw_free(rj);
        relay_http__sse_broadcast(srv, "recording-state", b);
        evbuffer_free(b);
    }
    bool full = relay_rec_disk_full(srv->cfg.rec);
    if (full != srv->rec->disk_full) {
        srv->rec->disk_full = full;
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            return;
        evbuffer_add_printf(b, "{");
        stats_json(srv, b);
        evbuffer_add_printf(b, "}");
        relay_http__sse_broadcast(srv, "recordings-disk", b);
        evbuffer_free(b);
    }
}

int relay_http__rec_watch(relay_http *srv)
{
    if (srv->cfg.rec == NULL)
        return 0;
    relay_http_rec *w = stw_calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    srv->rec = w;
    w->ifd = -1;
    w->watches = stw_calloc(WATCH_MAX, sizeof(*w->watches));
    w->cache = stw_calloc(CACHE_SLOTS, sizeof(*w->cache));
    if (w->watches == NULL || w->cache == NULL)
        return -ENOMEM;
    w->ifd = stw_fd_track(inotify_init1(IN_NONBLOCK | IN_CLOEXEC), STW_KIND_FD,
                          "inotify:recordings");
    if (w->ifd < 0)
        return w->ifd;
    w->iev = event_new(srv->base, w->ifd, EV_READ | EV_PERSIST, on_inotify, srv);
    if (w->iev == NULL || event_add(w->iev, NULL) != 0)
        return -ENOMEM;
    w->timer = event_new(srv->base, -1, EV_PERSIST, on_rec_timer, srv);
    struct timeval tv = {.tv_sec = 1};
    if (w->timer == NULL || event_add(w->timer, &tv) != 0)
        return -ENOMEM;
    add_watch(srv, RELAY_REC_BAD, "");
    return 0;
}

void relay_http__rec_unwatch(relay_http *srv)
{
    relay_http_rec *w = srv->rec;
    if (w == NULL)
        return;
    srv->rec = NULL;
    if (w->iev != NULL)
        event_free(w->iev);
    if (w->timer != NULL)
        event_free(w->timer);
    stw_fd_close(&w->ifd); /* drops every watch with it */
    stw_free(w->watches);
    stw_free(w->cache);
    stw_free(w);
}

/* ---- /metrics ---- */

void relay_http__rec_metrics(relay_http *srv, struct evbuffer *b)
{
    if (srv->cfg.rec == NULL)
        return;
    relay_rec_stats st;
    relay_rec_get_stats(srv->cfg.rec, &st);
    evbuffer_add_printf(b,
                        "# HELP steward_recording_bytes_written_total Bytes the recorders of "
                        "the input wrote.\n# TYPE steward_recording_bytes_written_total "
                        "counter\n");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        if (in->recorder != NULL)
            evbuffer_add_printf(b, "steward_recording_bytes_written_total{input=\"%s\"} %llu\n",
                                in->name, (unsigned long long)relay_recorder_bytes(in->recorder));
    }
    evbuffer_add_printf(b,
                        "# HELP steward_recording_recording Whether the input records now "
                        "(1), or waits, is paused or failing (0).\n"
                        "# TYPE steward_recording_recording gauge\n");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        char state[RELAY_STATE_MAX];
        if (in->recorder == NULL)
            continue;
        relay_recorder_state(in->recorder, state);
        evbuffer_add_printf(b, "steward_recording_recording{input=\"%s\",state=\"%s\"} %d\n",
                            in->name, state, strcmp(state, "recording") == 0);
    }
    static const char *const ring_help[2][2] = {
        {"steward_recording_preroll_bytes",
         "Bytes the pre-roll ring of an input recording in mode motion holds (JPEG inputs: "
         "frame copies; ffmpeg inputs: the MPEG-TS the input retains)."},
        {"steward_recording_preroll_frames",
         "Frames (ffmpeg inputs: MPEG-TS chunks) in the pre-roll ring."}};
    for (int k = 0; k < 2; k++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", ring_help[k][0],
                            ring_help[k][1], ring_help[k][0]);
        for (unsigned i = 0; i < srv->ninputs; i++) {
            relay_input *in = srv->inputs[i]->in;
            if (in->recorder == NULL || !in->record.motion)
                continue;
            relay_recorder_ring ring;
            relay_recorder_ring_get(in->recorder, &ring);
            evbuffer_add_printf(b, "%s{input=\"%s\"} %llu\n", ring_help[k][0], in->name,
                                (unsigned long long)(k == 0 ? ring.bytes : ring.frames));
        }
    }
    relay_http_rec *w = srv->rec;
    evbuffer_add_printf(
        b,
        "# HELP steward_recording_segments_total Segments finished (written and closed).\n"
        "# TYPE steward_recording_segments_total counter\n"
        "steward_recording_segments_total %llu\n"
        "# HELP steward_recording_segment_bytes_total Bytes of the segments finished.\n"
        "# TYPE steward_recording_segment_bytes_total counter\n"
        "steward_recording_segment_bytes_total %llu\n"
        "# HELP steward_recording_deletions_total Segments deleted by the relay, by reason.\n"
        "# TYPE steward_recording_deletions_total counter\n",
        (unsigned long long)(w != NULL ? w->finished : 0),
        (unsigned long long)(w != NULL ? w->finished_bytes : 0));
    for (int r = 1; r < RELAY_REC_DEL_REASONS; r++)
        evbuffer_add_printf(b, "steward_recording_deletions_total{reason=\"%s\"} %llu\n",
                            relay_rec_reason_name(r), (unsigned long long)st.deleted[r]);
    evbuffer_add_printf(
        b,
        "# HELP steward_recording_deleted_bytes_total Bytes of the segments the relay deleted.\n"
        "# TYPE steward_recording_deleted_bytes_total counter\n"
        "steward_recording_deleted_bytes_total %llu\n"
        "# HELP steward_recording_segments_deleted_seen_total Segment deletions the watcher "
        "saw, by anyone.\n# TYPE steward_recording_segments_deleted_seen_total counter\n"
        "steward_recording_segments_deleted_seen_total %llu\n"
        "# HELP steward_recording_free_bytes Free bytes of the recordings filesystem.\n"
        "# TYPE steward_recording_free_bytes gauge\nsteward_recording_free_bytes %llu\n"
        "# HELP steward_recording_min_free_bytes The free-space threshold.\n"
        "# TYPE steward_recording_min_free_bytes gauge\nsteward_recording_min_free_bytes %llu\n"
        "# HELP steward_recording_used_bytes Bytes of the segments on disk (last scan).\n"
        "# TYPE steward_recording_used_bytes gauge\nsteward_recording_used_bytes %llu\n"
        "# HELP steward_recording_disk_full 1 while recording is paused for want of space.\n"
        "# TYPE steward_recording_disk_full gauge\nsteward_recording_disk_full %d\n"
        "# HELP steward_recording_disk_full_total Times recording was paused for want of "
        "space.\n# TYPE steward_recording_disk_full_total counter\n"
        "steward_recording_disk_full_total %llu\n",
        (unsigned long long)st.deleted_bytes,
        (unsigned long long)(w != NULL ? w->deleted_seen : 0), (unsigned long long)st.free_bytes,
        (unsigned long long)st.min_free, (unsigned long long)st.used_bytes, st.disk_full ? 1 : 0,
        (unsigned long long)st.disk_full_times);
}
