/*
 * src/relay/rec.c — the recordings directory and its janitor (rec.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "rec.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define SCAN_MAX (1u << 22) /* segments looked at in one scan */

typedef struct named_limits {
    char name[RELAY_NAME_MAX];
    relay_rec_limits limits;
} named_limits;

struct relay_rec {
    char dir[RELAY_PATH_MAX];
    int dirfd;
    int nudge_fd;
    relay_rec_limits global;
    uint64_t min_free_bytes;
    unsigned min_free_pct;
    pthread_mutex_t lock; /* guards inputs */
    named_limits inputs[RELAY_INPUTS_MAX];
    unsigned ninputs;
    _Atomic uint64_t deleted[RELAY_REC_DEL_REASONS];
    _Atomic uint64_t deleted_bytes, free_bytes, total_bytes, min_free, used_bytes, on_disk;
    _Atomic uint64_t disk_full_times;
    atomic_bool disk_full;
    /* Janitor thread only. */
    struct scan_item *items;
    size_t nitems, citems;
};

/* One segment found by a scan. */
typedef struct scan_item {
    relay_rec_entry e;
    char input[RELAY_NAME_MAX];
    char day[11], hms[9], seg[25];
} scan_item;

const char *relay_rec_dir(const relay_rec *r)
{
    return r->dir;
}

int relay_rec_dirfd(const relay_rec *r)
{
    return r->dirfd;
}

bool relay_rec_disk_full(const relay_rec *r)
{
    return atomic_load(&r->disk_full);
}

void relay_rec_nudge(relay_rec *r)
{
    uint64_t one = 1;
    if (write(r->nudge_fd, &one, sizeof(one)) < 0) {
        /* Already signalled (the counter is full): the janitor wakes anyway. */
    }
}

void relay_rec_count_delete(relay_rec *r, int reason, unsigned segments, uint64_t bytes)
{
    if (reason > 0 && reason < RELAY_REC_DEL_REASONS)
        atomic_fetch_add(&r->deleted[reason], segments);
    atomic_fetch_add(&r->deleted_bytes, bytes);
}

void relay_rec_set_input(relay_rec *r, const char *name, const relay_rec_limits *limits)
{
    pthread_mutex_lock(&r->lock);
    unsigned i = 0;
    while (i < r->ninputs && strcmp(r->inputs[i].name, name) != 0)
        i++;
    if (limits == NULL) {
        if (i < r->ninputs)
            r->inputs[i] = r->inputs[--r->ninputs];
    } else if (i < r->ninputs) {
        r->inputs[i].limits = *limits;
    } else if (r->ninputs < RELAY_INPUTS_MAX) {
        snprintf(r->inputs[i].name, sizeof(r->inputs[i].name), "%s", name);
        r->inputs[i].limits = *limits;
        r->ninputs++;
    }
    pthread_mutex_unlock(&r->lock);
    relay_rec_nudge(r);
}

void relay_rec_get_stats(relay_rec *r, relay_rec_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < RELAY_REC_DEL_REASONS; i++)
        out->deleted[i] = atomic_load(&r->deleted[i]);
    out->deleted_bytes = atomic_load(&r->deleted_bytes);
    out->free_bytes = atomic_load(&r->free_bytes);
    out->total_bytes = atomic_load(&r->total_bytes);
    out->min_free = atomic_load(&r->min_free);
    out->used_bytes = atomic_load(&r->used_bytes);
    out->segments_on_disk = atomic_load(&r->on_disk);
    out->disk_full = atomic_load(&r->disk_full);
    out->disk_full_times = atomic_load(&r->disk_full_times);
}

/* openat(@dfd, @name) as a directory, never through a symlink. */
static int open_sub(int dfd, const char *name, const char *label)
{
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return stw_fd_track(fd, STW_KIND_FD, label);
}

int relay_rec_open_dir(relay_rec *r, const char *rel, const char *label)
{
    if (rel[0] != '\0' && relay_rec_path_check(rel) == RELAY_REC_BAD)
        return -EINVAL;
    int fd = open_sub(r->dirfd, ".", label);
    const char *p = rel;
    while (fd >= 0 && *p != '\0') {
        char part[32];
        size_t len = strcspn(p, "/");
        if (len >= sizeof(part)) {
            stw_fd_close(&fd);
            return -EINVAL;
        }
        memcpy(part, p, len);
        part[len] = '\0';
        int next = open_sub(fd, part, label);
        stw_fd_close(&fd);
        fd = next;
        p += len;
        if (*p == '/')
            p++;
    }
    return fd;
}

int relay_rec_claim(int dir_fd, const char *from, int64_t t, char *to)
{
    for (int i = 0; i < RELAY_REC_CLAIM_TRIES; i++) {
        time_t s = (time_t)(t + i);
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(to, 32, "%Y-%m-%dT%H-%M-%SZ.mp4", &tm);
        if (renameat2(dir_fd, from, dir_fd, to, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

void relay_rec_announce_closed(int dir_fd, const char *name)
{
    int fd = stw_fd_track(openat(dir_fd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC), STW_KIND_FD,
                          "file:recording-segment");
    stw_fd_close(&fd);
}

/* A staged segment idle for RELAY_REC_ORPHAN_S: its recorder is gone
 * (the relay died between the child making it and the recorder naming
 * it). Named for when it was made (its birth time where the filesystem
 * keeps one, else its last write); an empty one goes. */
static void adopt_staged(int sfd, const char *name, time_t now)
{
    struct statx sx;
    if (statx(sfd, name, AT_SYMLINK_NOFOLLOW, STATX_BTIME | STATX_MTIME | STATX_SIZE, &sx) != 0 ||
        !S_ISREG(sx.stx_mode) || now - sx.stx_mtime.tv_sec < RELAY_REC_ORPHAN_S)
        return;
    if (sx.stx_size == 0) {
        unlinkat(sfd, name, 0);
        return;
    }
    int64_t t = (sx.stx_mask & STATX_BTIME) ? sx.stx_btime.tv_sec : sx.stx_mtime.tv_sec;
    char to[32];
    if (relay_rec_claim(sfd, name, t, to) != 0)
        return;
    relay_rec_announce_closed(sfd, to);
    fprintf(stderr, "steward relay: recordings: segment %s was left unnamed: now %s\n", name, to);
}

void relay_rec_prune(int input_fd, const char *day, int day_fd, const char *session)
{
    struct stat st;
    /* A session made a moment ago waits for its first segment. */
    if (fstatat(day_fd, session, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        time(NULL) - st.st_mtime >= RELAY_REC_BUSY_S)
        unlinkat(day_fd, session, AT_REMOVEDIR);
    if (fstatat(input_fd, day, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        time(NULL) - st.st_mtime >= RELAY_REC_BUSY_S)
        unlinkat(input_fd, day, AT_REMOVEDIR);
}

/* The entries of directory @fd (borrowed; read from its start) that pass
 * @valid, in @out (at most @max, each 32 bytes). Returns how many. */
static size_t list_dir(int fd, bool (*valid)(const char *), char (*out)[32], size_t max)
{
    int dup_fd = stw_fd_track(openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), STW_KIND_FD,
                              "dir:recordings-scan");
    if (dup_fd < 0)
        return 0;
    DIR *d = fdopendir(dup_fd);
    if (d == NULL) {
        stw_fd_close(&dup_fd);
        return 0;
    }
    size_t n = 0;
    struct dirent *de;
    while (n < max && (de = readdir(d)) != NULL) {
        if (strlen(de->d_name) >= 32 || !valid(de->d_name))
            continue;
        snprintf(out[n++], 32, "%s", de->d_name);
    }
    stw_fd_untrack(dup_fd);
    closedir(d);
    return n;
}

static bool segment_or_staged(const char *s)
{
    return relay_rec_segment_valid(s) || relay_rec_staging_valid(s);
}

static bool input_valid(const char *s)
{
    return relay_name_valid(s, strlen(s));
}

static int add_item(relay_rec *r, const scan_item *it)
{
    if (r->nitems == r->citems) {
        if (r->citems >= SCAN_MAX)
            return -ENOSPC;
        size_t c = r->citems ? r->citems * 2 : 256;
        scan_item *n = stw_realloc(r->items, c * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        r->items = n;
        r->citems = c;
    }
    r->items[r->nitems++] = *it;
    return 0;
}

/* Walk the tree into r->items; remove empty sessions and days found. */
static void scan(relay_rec *r)
{
    r->nitems = 0;
    static char inputs[RELAY_INPUTS_MAX * 4][32];
    static char days[4096][32];
    static char sessions[4096][32];
    static char segs[8192][32];
    size_t ni = list_dir(r->dirfd, input_valid, inputs, sizeof(inputs) / sizeof(inputs[0]));
    time_t now = time(NULL);
    for (size_t a = 0; a < ni; a++) {
        int ifd = open_sub(r->dirfd, inputs[a], "dir:recordings-scan");
        if (ifd < 0)
            continue;
        size_t nd = list_dir(ifd, relay_rec_day_valid, days, sizeof(days) / sizeof(days[0]));
        for (size_t b = 0; b < nd; b++) {
            int dfd = open_sub(ifd, days[b], "dir:recordings-scan");
            if (dfd < 0)
                continue;
            size_t ns = list_dir(dfd, relay_rec_time_valid, sessions,
                                 sizeof(sessions) / sizeof(sessions[0]));
            for (size_t c = 0; c < ns; c++) {
                int sfd = open_sub(dfd, sessions[c], "dir:recordings-scan");
                if (sfd < 0)
                    continue;
                size_t nf =
                    list_dir(sfd, segment_or_staged, segs, sizeof(segs) / sizeof(segs[0]));
                for (size_t f = 0; f < nf; f++) {
                    if (relay_rec_staging_valid(segs[f])) {
                        adopt_staged(sfd, segs[f], now);
                        continue;
                    }
                    struct stat st;
                    if (fstatat(sfd, segs[f], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                        !S_ISREG(st.st_mode))
                        continue;
                    scan_item it = {.e = {.input = -1,
                                          .start = relay_rec_segment_time(segs[f]),
                                          .size = (uint64_t)st.st_size,
                                          .busy = now - st.st_mtime < RELAY_REC_BUSY_S}};
                    snprintf(it.input, sizeof(it.input), "%.31s", inputs[a]);
                    snprintf(it.day, sizeof(it.day), "%.10s", days[b]);
                    snprintf(it.hms, sizeof(it.hms), "%.8s", sessions[c]);
                    snprintf(it.seg, sizeof(it.seg), "%.24s", segs[f]);
                    if (add_item(r, &it) != 0)
                        break;
                }
                stw_fd_close(&sfd);
                if (nf == 0)
                    relay_rec_prune(ifd, days[b], dfd, sessions[c]);
            }
            stw_fd_close(&dfd);
            if (ns == 0)
                relay_rec_prune(r->dirfd, inputs[a], ifd, days[b]);
        }
        stw_fd_close(&ifd);
    }
}

static int by_start(const void *a, const void *b)
{
    const scan_item *x = a, *y = b;
    return x->e.start < y->e.start ? -1 : x->e.start > y->e.start;
}

/* Free and total bytes of the directory's filesystem, and the threshold. */
static void check_space(relay_rec *r, uint64_t *free_out, uint64_t *min_out)
{
    struct statvfs sv;
    if (fstatvfs(r->dirfd, &sv) != 0) {
        *free_out = UINT64_MAX;
        *min_out = 0;
        return;
    }
    uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    uint64_t pct = total / 100 * r->min_free_pct;
    uint64_t min = r->min_free_bytes > pct ? r->min_free_bytes : pct;
    atomic_store(&r->free_bytes, avail);
    atomic_store(&r->total_bytes, total);
    atomic_store(&r->min_free, min);
    *free_out = avail;
    *min_out = min;
}

/* Delete what relay_rec_select marked; returns the bytes freed. */
static uint64_t delete_marked(relay_rec *r)
{
    uint64_t freed = 0;
    for (size_t i = 0; i < r->nitems; i++) {
        scan_item *it = &r->items[i];
        if (it->e.reason == 0)
            continue;
        int ifd = relay_rec_open_dir(r, it->input, "dir:recordings-delete");
        int dfd = ifd >= 0 ? open_sub(ifd, it->day, "dir:recordings-delete") : -1;
        int sfd = dfd >= 0 ? open_sub(dfd, it->hms, "dir:recordings-delete") : -1;
        if (sfd >= 0 && unlinkat(sfd, it->seg, 0) == 0) {
            relay_rec_count_delete(r, it->e.reason, 1, it->e.size);
            freed += it->e.size;
            fprintf(stderr, "steward relay: recordings: deleted %s/%s/%s/%s (%s, %llu bytes)\n",
                    it->input, it->day, it->hms, it->seg, relay_rec_reason_name(it->e.reason),
                    (unsigned long long)it->e.size);
            stw_fd_close(&sfd);
            /* Only when the folder is now empty; a fresh one is kept. */
            if (dfd >= 0 && unlinkat(dfd, it->hms, AT_REMOVEDIR) == 0)
                unlinkat(ifd, it->day, AT_REMOVEDIR);
        }
        stw_fd_close(&sfd);
        stw_fd_close(&dfd);
        stw_fd_close(&ifd);
    }
    return freed;
}

/* One round: scan, select, delete, decide whether recording may go on. */
static void janitor_round(relay_rec *r, bool full_scan)
{
    uint64_t avail, min;
    check_space(r, &avail, &min);
    if (!full_scan && avail >= min) {
        if (atomic_load(&r->disk_full)) {
            atomic_store(&r->disk_full, false);
            fprintf(stderr,
                    "steward relay: recordings: %llu MiB free again (threshold %llu MiB): "
                    "recording resumes\n",
                    (unsigned long long)(avail >> 20), (unsigned long long)(min >> 20));
        }
        return;
    }
    scan(r);
    qsort(r->items, r->nitems, sizeof(*r->items), by_start);
    /* Each segment's input as an index into a copy of the limits. */
    relay_rec_limits lim[RELAY_INPUTS_MAX];
    char names[RELAY_INPUTS_MAX][RELAY_NAME_MAX];
    pthread_mutex_lock(&r->lock);
    unsigned nin = r->ninputs;
    for (unsigned k = 0; k < nin; k++) {
        lim[k] = r->inputs[k].limits;
        memcpy(names[k], r->inputs[k].name, RELAY_NAME_MAX);
    }
    pthread_mutex_unlock(&r->lock);
    relay_rec_entry *es = stw_malloc((r->nitems ? r->nitems : 1) * sizeof(*es));
    if (es == NULL)
        return;
    uint64_t used = 0;
    for (size_t i = 0; i < r->nitems; i++) {
        r->items[i].e.input = -1;
        for (unsigned k = 0; k < nin; k++)
            if (strcmp(names[k], r->items[i].input) == 0)
                r->items[i].e.input = (int)k;
        es[i] = r->items[i].e;
        used += es[i].size;
    }
    uint64_t missing = relay_rec_select(es, r->nitems, lim, nin, &r->global, (int64_t)time(NULL),
                                        avail, min);
    for (size_t i = 0; i < r->nitems; i++)
        r->items[i].e.reason = es[i].reason;
    stw_free(es);
    uint64_t freed = delete_marked(r);
    size_t left = 0;
    for (size_t i = 0; i < r->nitems; i++)
        left += r->items[i].e.reason == 0;
    atomic_store(&r->used_bytes, used - freed);
    atomic_store(&r->on_disk, left);
    check_space(r, &avail, &min);
    bool full = missing > 0 && avail < min;
    if (full && !atomic_load(&r->disk_full)) {
        atomic_store(&r->disk_full, true);
        atomic_fetch_add(&r->disk_full_times, 1);
        fprintf(stderr,
                "steward relay: recordings: disk full: %llu MiB free in %s, below the %llu MiB "
                "threshold, and no finished segment left to delete: recording paused\n",
                (unsigned long long)(avail >> 20), r->dir, (unsigned long long)(min >> 20));
    } else if (!full && avail >= min && atomic_load(&r->disk_full)) {
        atomic_store(&r->disk_full, false);
        fprintf(stderr,
                "steward relay: recordings: %llu MiB free again (threshold %llu MiB): "
                "recording resumes\n",
                (unsigned long long)(avail >> 20), (unsigned long long)(min >> 20));
    }
}

static void janitor_main(stw_scope *scope, void *arg)
{
    relay_rec *r = arg;
    int64_t last_scan = 0;
    while (!stw_scope_cancelled(scope)) {
        struct pollfd fds[2] = {{.fd = stw_scope_cancel_fd(scope), .events = POLLIN},
                                {.fd = r->nudge_fd, .events = POLLIN}};
        if (poll(fds, 2, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        bool nudged = false;
        if (fds[1].revents) {
            uint64_t v;
            nudged = read(r->nudge_fd, &v, sizeof(v)) > 0;
        }
        int64_t now = stw_now_ns() / 1000000000;
        bool full = nudged || last_scan == 0 || now - last_scan >= RELAY_REC_SCAN_S ||
                    atomic_load(&r->disk_full);
        if (full)
            last_scan = now;
        janitor_round(r, full);
    }
}

static void rec_free(void *arg)
{
    relay_rec *r = arg;
    stw_fd_close(&r->nudge_fd);
    stw_fd_close(&r->dirfd);
    stw_free(r->items);
    pthread_mutex_destroy(&r->lock);
    stw_free(r);
}

int relay_rec_start(stw_scope *scope, const relay_config *cfg, relay_rec **out)
{
    int rc = relay_make_dirs(cfg->rec_dir);
    if (rc != 0) {
        fprintf(stderr, "steward relay: recordings: cannot make %s: %s\n", cfg->rec_dir,
                stw_strerror(rc));
        return rc;
    }
    relay_rec *r = stw_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    snprintf(r->dir, sizeof(r->dir), "%s", cfg->rec_dir);
    r->global = (relay_rec_limits){.max_age_s = cfg->rec_max_age_s,
                                   .max_bytes = cfg->rec_max_bytes};
    r->min_free_bytes = cfg->rec_min_free_bytes;
    r->min_free_pct = cfg->rec_min_free_pct;
    pthread_mutex_init(&r->lock, NULL);
    r->nudge_fd = -1;
    r->dirfd = stw_fd_track(open(cfg->rec_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), STW_KIND_FD,
                            "dir:recordings");
    if (r->dirfd < 0) {
        rc = r->dirfd;
        fprintf(stderr, "steward relay: recordings: cannot open %s: %s\n", cfg->rec_dir,
                stw_strerror(rc));
        rec_free(r);
        return rc;
    }
    r->nudge_fd = stw_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC, "eventfd:recordings");
    if (r->nudge_fd < 0) {
        rc = r->nudge_fd;
        rec_free(r);
        return rc;
    }
    rc = stw_scope_defer(scope, rec_free, r);
    if (rc != 0) {
        rec_free(r);
        return rc;
    }
    uint64_t avail, min;
    check_space(r, &avail, &min);
    rc = stw_scope_spawn(scope, "rec-janitor", janitor_main, r);
    if (rc != 0)
        return rc;
    *out = r;
    return 0;
}
