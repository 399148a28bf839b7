/*
 * src/relay/rec.h — the recordings directory: its layout, its bounds (the
 * janitor) and the rules for names that come from the API; private to the
 * relay.
 *
 * Model
 *   Every recording lives under one directory (--recordings DIR):
 *
 *     DIR/{input}/{YYYY-MM-DD}/{HH-MM-SS}/{YYYY-MM-DDTHH-MM-SSZ}.mp4
 *
 *   one folder per input per session (a session starts when recording
 *   starts or the source comes back after a gap), segments named by their
 *   start time. Every time is UTC. The recorders (recorder.h) write the
 *   segments: each under a staging name first, ".part-{child}-{n}.mp4",
 *   which no other file can have, then renamed with relay_rec_claim() to
 *   the second it started, or the first later second not taken (a burst
 *   can start several segments within one second), never over another
 *   file. The service here keeps the directory within bounds:
 *
 *   - retention: maximum age and maximum total bytes, per input and for
 *     the whole directory; the oldest segments go first;
 *   - a free-space guard: below min_free (the larger of min_free_bytes and
 *     min_free_pct of the filesystem) the oldest segments go; if nothing is
 *     left that may go, the service is "disk-full" and the recorders pause
 *     until space returns;
 *   - empty session and day folders are removed;
 *   - a staged segment left idle for RELAY_REC_ORPHAN_S (the relay died
 *     before its recorder named it) is named for the time it was made.
 *
 *   A segment modified in the last RELAY_REC_BUSY_S seconds is being
 *   written and is never deleted by the janitor.
 *
 *   The janitor is one thread in the service's scope: every second it
 *   checks the free space; it scans the tree when nudged (a segment was
 *   finished or deleted), when space is short, and at least every
 *   RELAY_REC_SCAN_S seconds.
 *
 * Names from the API
 *   relay_rec_path_check() accepts only the layout's own shapes ({input}
 *   as relay_name_valid, YYYY-MM-DD, HH-MM-SS, the segment name), so no
 *   name can hold "..", a slash or anything else; files are then opened
 *   with openat() under the directory's descriptor with O_NOFOLLOW at
 *   every level, so a symlink planted inside the tree is not followed out.
 *
 * Threads
 *   relay_rec_* may be called from any thread; the counters are atomic and
 *   the per-input limits are under a mutex.
 *
 * Ownership
 *   The service is owned by the scope given to relay_rec_start() (its
 *   cleanup joins the janitor and frees it), which the relay closes after
 *   the inputs' (so every recorder has stopped) and before the libraries.
 */
#ifndef STW_RELAY_REC_H
#define STW_RELAY_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"

#define RELAY_REC_BUSY_S 5
#define RELAY_REC_ORPHAN_S 30
#define RELAY_REC_CLAIM_TRIES 600 /* later seconds tried for a segment's name */
#define RELAY_REC_SCAN_S 30
#define RELAY_REC_SEGMENT_DEFAULT 60
#define RELAY_REC_SEGMENT_MIN 2
#define RELAY_REC_SEGMENT_MAX 3600
#define RELAY_REC_MIN_FREE_DEFAULT ((uint64_t)1 << 30)
#define RELAY_REC_MIN_FREE_PCT_DEFAULT 5

/* Why a segment was deleted (the /metrics label). */
enum { RELAY_REC_DEL_AGE = 1, RELAY_REC_DEL_SIZE, RELAY_REC_DEL_SPACE, RELAY_REC_DEL_API,
       RELAY_REC_DEL_REASONS };

/* The label of reason @r ("age", "size", "space", "api"). */
const char *relay_rec_reason_name(int r);

/* ---- names (pure) ---- */

/* What a path under the directory is. */
typedef enum relay_rec_kind {
    RELAY_REC_BAD = 0,
    RELAY_REC_INPUT,   /* {input} */
    RELAY_REC_DAY,     /* {input}/{YYYY-MM-DD} */
    RELAY_REC_SESSION, /* {input}/{YYYY-MM-DD}/{HH-MM-SS} */
    RELAY_REC_SEGMENT, /* {input}/{YYYY-MM-DD}/{HH-MM-SS}/{YYYY-MM-DDTHH-MM-SSZ}.mp4 */
} relay_rec_kind;

/* Check @path (borrowed, relative, '/'-separated, no leading or trailing
 * slash) against the layout. Returns its kind, RELAY_REC_BAD for anything
 * else (empty parts, "..", ".", other characters, a bad date). */
relay_rec_kind relay_rec_path_check(const char *path);

/* True for "YYYY-MM-DD", "HH-MM-SS" and a segment file name. */
bool relay_rec_day_valid(const char *s);
bool relay_rec_time_valid(const char *s);
bool relay_rec_segment_valid(const char *s);

/* True for a staging name: ".part-{digits}-{digits}.mp4". */
bool relay_rec_staging_valid(const char *s);

/* The UTC time (seconds since the epoch) a segment name, or a day and a
 * session time, stand for; -1 when invalid. */
int64_t relay_rec_segment_time(const char *name);
int64_t relay_rec_session_time(const char *day, const char *hms);

/* ---- retention (pure) ---- */

typedef struct relay_rec_entry {
    int input;      /* index into the limits array given to relay_rec_select, -1: none */
    int64_t start;  /* UTC seconds */
    uint64_t size;  /* bytes */
    bool busy;      /* being written: never selected */
    int reason;     /* out: 0 keep, RELAY_REC_DEL_* */
} relay_rec_entry;

typedef struct relay_rec_limits {
    int64_t max_age_s;  /* 0: none */
    uint64_t max_bytes; /* 0: none */
} relay_rec_limits;

/*
 * Mark in @e (@n entries sorted by start, oldest first) what must go, in
 * this order: segments older than their input's or the global max age;
 * the oldest of an input over its max bytes; the oldest over the global
 * max bytes; then, while @free_bytes plus what was marked is below
 * @min_free, the oldest of what is left. Busy entries stay. @in_limits
 * has one entry per input index. Returns the bytes still missing to reach
 * @min_free (0 when none).
 */
uint64_t relay_rec_select(relay_rec_entry *e, size_t n, const relay_rec_limits *in_limits,
                          size_t nin, const relay_rec_limits *global, int64_t now_s,
                          uint64_t free_bytes, uint64_t min_free);

/* ---- the motion gate of a recorder in mode "motion" (pure) ---- */

/*
 * Decides, poll by poll, whether a motion-mode session should run: from a
 * motion-start until post_roll_ms after motion-end. Motion that resumes
 * within the post-roll keeps the same session (the same span). A
 * motion-start that came and went between two polls (the count of starts
 * moved while motion is not active now) counts as motion that ended at
 * this poll. Starts counted before the first poll do not count.
 */
typedef struct relay_rec_gate {
    int64_t post_roll_ms;
    uint64_t starts;   /* motion-starts seen at the last poll */
    int64_t until_ms;  /* the span lasts until then; 0: no span yet */
    int64_t since_ms;  /* the motion-start that opened the current span */
    bool primed;       /* a poll was made */
} relay_rec_gate;

/* A gate with @post_roll_ms of post-roll and no span. */
relay_rec_gate relay_rec_gate_init(int64_t post_roll_ms);

/* One poll at @now_ms (wall clock): motion @active now, since @since_ms
 * (its motion-start, 0 if unknown), @starts motion-starts so far. Returns
 * true while a session should run; g->since_ms is where the span began. */
bool relay_rec_gate_step(relay_rec_gate *g, int64_t now_ms, bool active, int64_t since_ms,
                         uint64_t starts);

/* ---- the service ---- */

typedef struct relay_rec relay_rec;

typedef struct relay_rec_stats {
    uint64_t deleted[RELAY_REC_DEL_REASONS]; /* segments deleted, by reason */
    uint64_t deleted_bytes;
    uint64_t free_bytes, total_bytes; /* the filesystem's, at the last check */
    uint64_t min_free;                /* the threshold in bytes now */
    uint64_t used_bytes;              /* segments under the directory, at the last scan */
    uint64_t segments_on_disk;
    bool disk_full;
    uint64_t disk_full_times;         /* pauses so far */
} relay_rec_stats;

/* Make the directory (mode 0700, with its parents), open it and start the
 * janitor in @scope (borrowed; the service is freed by its cleanup).
 * Returns 0 or a negative errno (the directory cannot be made or opened)
 * with the reason printed on stderr. */
int relay_rec_start(stw_scope *scope, const relay_config *cfg, relay_rec **out);

/* The directory's path and descriptor (borrowed, valid while the service
 * lives). */
const char *relay_rec_dir(const relay_rec *r);
int relay_rec_dirfd(const relay_rec *r);

/* True while recording is paused for want of space. */
bool relay_rec_disk_full(const relay_rec *r);

/* Set (or with @limits NULL, forget) the retention of input @name. */
void relay_rec_set_input(relay_rec *r, const char *name, const relay_rec_limits *limits);

/* Wake the janitor for a scan now. */
void relay_rec_nudge(relay_rec *r);

/* Count @segments deleted (@bytes together) for @reason. */
void relay_rec_count_delete(relay_rec *r, int reason, unsigned segments, uint64_t bytes);

void relay_rec_get_stats(relay_rec *r, relay_rec_stats *out);

/* Open the directory @rel (a path relay_rec_path_check accepts, or "" for
 * the top) under @r with O_NOFOLLOW at every level. Returns the new
 * descriptor (booked in the ledger as @label; the caller closes it with
 * stw_fd_close) or a negative errno. */
int relay_rec_open_dir(relay_rec *r, const char *rel, const char *label);

/* Remove @day_fd's session @session if it is empty, then the day folder
 * @day of @input_fd if that is empty. Errors are ignored (a folder that is
 * not empty stays). */
void relay_rec_prune(int input_fd, const char *day, int day_fd, const char *session);

/* Rename the staged segment @from in the session folder @dir_fd to the
 * segment name of second @t, or of the first later second not taken (up
 * to RELAY_REC_CLAIM_TRIES), with RENAME_NOREPLACE: never over another
 * file. @dir_fd and @from are borrowed; @to (the caller's, 32 bytes)
 * receives the name. Returns 0 or a negative errno (-ENOENT: @from is not
 * there; -EEXIST: every second tried is taken), and then nothing moved. */
int relay_rec_claim(int dir_fd, const char *from, int64_t t, char *to);

/* Open the segment @name of @dir_fd (both borrowed) for writing and close
 * it, writing nothing (the descriptor is booked in the ledger meanwhile): watchers (inotify IN_CLOSE_WRITE, http_rec.c) learn that it is
 * finished under this name even when its writer closed it under its
 * staging name. Errors are ignored. */
void relay_rec_announce_closed(int dir_fd, const char *name);

#endif
