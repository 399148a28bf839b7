/*
 * steward/ledger.h — the process-wide registry of live resources.
 *
 * Model
 *   The ledger holds one *record* per live resource: its kind (heap, thread,
 *   fd, ...), an id that is unique among live resources of that kind (a
 *   pointer, an fd number, a pid, a tid), a size in bytes (0 where size has
 *   no meaning), the *site* that created it, the *owner* scope, the birth
 *   time, a birth sequence number and an optional label ("eventfd:cancel",
 *   a thread name, a file path).
 *
 *   A site is an interned creation stack: the same kind created from the
 *   same call stack yields the same stw_site id for the life of the
 *   process. Snapshots add up live count and bytes per site, so "which
 *   call sites hold what" is one call.
 *   Stacks are captured when a record is made (frame-pointer walk by
 *   default, libunwind with STW_UNWIND=libunwind) and symbolized only when a
 *   report asks (libdw: function, file, line, module).
 *
 *   Every record gets a birth sequence number. stw_ledger_checkpoint()
 *   returns a value N such that everything created after the call returns
 *   gets seq > N; "created since checkpoint N and still alive" is every
 *   live record with seq > N. Numbers increase along each thread; across
 *   threads they order only what is ordered by a checkpoint. The
 *   goleak-style test helpers are built on that.
 *
 * Invariants
 *   - (kind, id) is unique among live records: recording a live pair again
 *     is refused with -EEXIST, releasing an unknown pair returns -ENOENT.
 *   - The ledger never calls malloc: its tables live in mmap'ed memory, so
 *     it can run inside malloc hooks. Symbolization (libdw) does allocate;
 *     it runs only in report functions.
 *   - Reentry is harmless: a thread already inside the ledger (e.g. a
 *     malloc hook reached from libunwind) gets -EDEADLK from record and
 *     release instead of recursing.
 *   - Records are sharded by id over independent locks; there is no global
 *     lock on the record/release path. Site interning is lock-free. (The
 *     checker's private ledger keeps heap blocks in a lock-free map indexed
 *     by address instead, src/ledger/blocks.c.)
 *   - All functions are safe to call from any thread at any time; the
 *     ledger initialises itself on first use.
 *
 * Ownership
 *   Labels are borrowed: the caller guarantees the string outlives the
 *   record (string literals, or memory owned by the resource itself).
 *   Snapshots are owned by the caller and freed with stw_snapshot_free().
 */
#ifndef STEWARD_LEDGER_H
#define STEWARD_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Built-in kinds. User kinds come from stw_kind_register(). */
typedef enum stw_kind {
    STW_KIND_HEAP = 0, /* id: pointer, size: bytes */
    STW_KIND_THREAD,   /* id: pthread_t, label: thread name */
    STW_KIND_FD,       /* id: fd number (files, pipes, eventfd, ...) */
    STW_KIND_SOCKET,   /* id: fd number */
    STW_KIND_PROCESS,  /* id: pid */
    STW_KIND_MMAP,     /* id: address, size: length */
    STW_KIND_TIMER,    /* id: timer handle */
    STW_KIND_FILE,     /* id: FILE * */
    STW_KIND_DIR,      /* id: DIR * */
    STW_KIND_BUF,      /* id: stw_buf *, size: bytes it owns */
    STW_KIND_FRAME,    /* id: stw_frame * */
    STW_KIND_POOL,     /* id: stw_pool * */
    STW_KIND_SCOPE,    /* id: stw_scope *, label: scope name */
    STW_KIND_CHAN,     /* id: stw_chan * */
    STW_KIND_BUILTIN_COUNT,
    STW_KIND_USER_FIRST = 32,
    STW_KIND_MAX = 64
} stw_kind;

/* Bit for @kind in a kinds mask; a mask of 0 means "all kinds". */
#define STW_KIND_BIT(kind) (UINT64_C(1) << (kind))

/* Interned creation stack; 0 means "unknown" (capture failed or table full). */
typedef uint32_t stw_site;

/* Deepest stack a site keeps. STW_STACK_DEPTH (env) chooses 1..this; default 16. */
#define STW_STACK_MAX 32

/* One live resource, as copied out of the ledger. */
typedef struct stw_record {
    int kind;
    uint64_t id;
    uint64_t size;
    stw_site site;
    uint64_t owner;    /* id of the owning scope's record, 0 if none */
    int64_t birth_ns;  /* CLOCK_MONOTONIC (coarse: a few ms resolution) */
    uint64_t seq;      /* birth sequence number, > 0 */
    const char *label; /* borrowed, may be NULL */
    uint64_t extent;   /* bytes it spans when that is not @size (a sampled heap
                        * block stands for more than it spans); 0: @size */
} stw_record;

/* Register a user-defined kind. @name is copied (at most 31 bytes kept).
 * Registering an existing name returns the existing kind.
 * Returns the kind (>= STW_KIND_USER_FIRST) or -ENOSPC when all are taken. */
STW_API int stw_kind_register(const char *name);

/* Name of @kind ("heap", "thread", ...); "?" for an unknown kind. */
STW_API const char *stw_kind_name(int kind);

/* Kind for @name, or -ENOENT. */
STW_API int stw_kind_lookup(const char *name);

/*
 * Record a live resource created by the caller, capturing the caller's
 * stack as its site and the calling thread's current owner (see
 * stw_ledger_set_owner). @label: borrowed, may be NULL.
 * Returns 0, -EEXIST if (kind, id) is already live, -EINVAL for a bad kind,
 * -EDEADLK on reentry, -ENOMEM if the ledger cannot grow its table.
 */
STW_API int stw_ledger_record(int kind, uint64_t id, uint64_t size, const char *label);

/* As stw_ledger_record with an explicit, already captured @site. */
STW_API int stw_ledger_record_site(int kind, uint64_t id, uint64_t size, stw_site site,
                                   const char *label);

/* Forget a live resource. Returns 0, -ENOENT if it was not live, -EDEADLK on reentry. */
STW_API int stw_ledger_release(int kind, uint64_t id);

/* Change the size of a live record (site totals follow). 0 or -ENOENT. */
STW_API int stw_ledger_resize(int kind, uint64_t id, uint64_t new_size);

/* Change the label of a live record (@label borrowed). 0 or -ENOENT. */
STW_API int stw_ledger_set_label(int kind, uint64_t id, const char *label);

/* Copy the live record (kind, id) into @out. 0 or -ENOENT. */
STW_API int stw_ledger_lookup(int kind, uint64_t id, stw_record *out);

/* The calling thread's current owner: records it makes are tagged with it.
 * Scopes set it for the threads they spawn. Returns the previous owner. */
STW_API uint64_t stw_ledger_set_owner(uint64_t owner);
STW_API uint64_t stw_ledger_owner(void);

/* A checkpoint: every record made after this returns has seq > the result. */
STW_API uint64_t stw_ledger_checkpoint(void);

/* Per-kind live totals, read without locks (may lag a concurrent update). */
typedef struct stw_kind_stat {
    int64_t live;
    int64_t live_bytes;
    int64_t created;
    int64_t released;
} stw_kind_stat;
STW_API void stw_ledger_kind_stat(int kind, stw_kind_stat *out);

/* ---- sites and stacks ---- */

/* Capture the caller's stack (skipping @skip frames above the caller) and
 * intern it for @kind. Returns the site or 0. */
STW_API stw_site stw_ledger_site_here(int kind, int skip);

/* Raw capture into @pcs (at most @max entries). Returns the depth. */
STW_API int stw_stack_capture(void **pcs, int max, int skip);

/* Kind and stack of @site. Returns the depth copied into @pcs (<= @max), or -ENOENT. */
STW_API int stw_site_stack(stw_site site, int *kind, void **pcs, int max);

/* Symbolized frame. Strings are empty when unknown. */
typedef struct stw_symbol {
    char func[160];
    char file[256];
    int line;
    char module[160];
    uintptr_t offset; /* pc - function start, 0 when unknown */
} stw_symbol;

/* Symbolize one return address (looked up at pc-1 so it names the call).
 * Allocates internally (libdw); do not call from a malloc hook. 0 or -ENOENT. */
STW_API int stw_symbolize(void *pc, stw_symbol *out);

/* End the symbolizer's session: libdw keeps the process's ELF and debug
 * files open and their tables in memory between calls; this closes and
 * frees them (the next stw_symbolize() starts a new session). Call it after
 * a report in a long-running process. */
STW_API void stw_symbolize_release(void);

/* ---- snapshots ---- */

/* Per-site numbers at snapshot time (or their difference in a diff). */
typedef struct stw_site_stat {
    stw_site site;
    int kind;
    int64_t live;
    int64_t live_bytes;
} stw_site_stat;

typedef struct stw_snapshot_opts {
    uint64_t kinds;     /* STW_KIND_BIT mask; 0 = all */
    uint64_t since_seq; /* only records with seq > since_seq (0 = all) */
    bool records;       /* also copy the matching live records */
    bool all_sites;     /* include interned sites with nothing live (not with since_seq) */
} stw_snapshot_opts;

/*
 * A consistent-enough copy of the ledger: each shard is copied under its
 * own lock, so a resource created or released during the copy may or may
 * not appear, but no record is torn. Site numbers are summed from the
 * records that match the options, so they describe exactly the selection.
 * Per-kind numbers are process-wide totals for the selected kinds. Arrays
 * are sorted: sites by live bytes then live count (descending), records by
 * site then seq. Cost: one pass over all live records.
 */
typedef struct stw_snapshot {
    int64_t taken_ns;
    uint64_t seq; /* checkpoint at the time of the copy */
    stw_kind_stat kinds[STW_KIND_MAX];
    size_t nsites;
    stw_site_stat *sites;
    size_t nrecords;
    stw_record *records;
} stw_snapshot;

/* Take a snapshot. @opts may be NULL (all kinds, no records).
 * Returns 0 and a snapshot the caller owns, or -ENOMEM. */
STW_API int stw_snapshot_new(const stw_snapshot_opts *opts, stw_snapshot **out);

/* @after minus @before: per-kind and per-site deltas; sites whose numbers
 * did not change are left out. Records are those of @after whose seq is
 * above @before->seq. Caller owns @out. 0 or -ENOMEM. */
STW_API int stw_snapshot_diff(const stw_snapshot *before, const stw_snapshot *after,
                              stw_snapshot **out);

/* Free a snapshot; accepts NULL and *snap == NULL, sets *snap to NULL. */
STW_API void stw_snapshot_free(stw_snapshot **snap);

/* ---- reports ---- */

/* Output callback: write all of @len bytes; return 0 or a negative errno. */
typedef int (*stw_write_fn)(void *ud, const char *data, size_t len);

/* A stw_write_fn writing to the file descriptor (int)(intptr_t)@ud. */
STW_API int stw_write_fd(void *ud, const char *data, size_t len);

typedef struct stw_report_opts {
    const stw_snapshot *baseline; /* if set: "initial vs final" per kind */
    int max_sites;                /* sites listed in detail, 0 = 20 */
    int max_frames;               /* frames per stack, 0 = all captured */
    bool symbolize;               /* resolve function/file/line (slower) */
    bool records;                 /* list individual records under each site */
    const char *title;            /* first line of the text report, may be NULL */
} stw_report_opts;

/*
 * Human-readable report: per-kind table (with initial counts if a baseline
 * is given), then the sites holding live resources, largest first, each
 * with its stack. Returns 0 or the first error from @write.
 */
STW_API int stw_report_text(const stw_snapshot *snap, const stw_report_opts *opts,
                            stw_write_fn write, void *ud);

/* JSON report; schema in docs/ledger-json.md ("steward.ledger/1"). */
STW_API int stw_report_json(const stw_snapshot *snap, const stw_report_opts *opts,
                            stw_write_fn write, void *ud);

/* Prometheus text exposition (version 0.0.4): steward_live_resources,
 * steward_live_bytes, steward_created_total, steward_released_total by kind. */
STW_API int stw_report_prometheus(const stw_snapshot *snap, stw_write_fn write, void *ud);

/* ---- leak assertions for tests (goleak's VerifyNone for C) ---- */

typedef struct stw_baseline {
    uint64_t seq;
    uint64_t kinds; /* kinds that count as leaks; 0 = all */
} stw_baseline;

/* Remember "now": later stw_verify_none() looks only at resources born after. */
STW_API stw_baseline stw_verify_begin(void);

/*
 * Count records born after @base that are still alive. While the count is
 * non-zero, retry for up to @retry_ms (threads that are already exiting
 * release their record a moment after they were joined or detached).
 * When leaks remain, a report with symbolized stacks goes to @fd (if >= 0).
 * Returns the number of leaked records (0 = clean).
 */
STW_API int stw_verify_none(stw_baseline base, int retry_ms, int fd);

/* ---- reentrancy guard, for hooks that call into the ledger ---- */

/* Enter the calling thread's guard: returns true if it was free (caller
 * must call stw_ledger_guard_exit), false if the thread is already inside. */
STW_API bool stw_ledger_guard_enter(void);
STW_API void stw_ledger_guard_exit(void);

#ifdef __cplusplus
}
#endif
#endif
