/*
 * Private to the checker (libsteward-check.so): the preloaded library that
 * books a program's resources in its own copy of the ledger. Everything
 * here is hidden; the only symbols the library exports are the libc
 * functions it interposes.
 */
#ifndef STW_CHECK_INTERNAL_H
#define STW_CHECK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "steward/ledger.h"

/* An interposed libc function: the only symbols the library exports. */
#define STW_HOOK __attribute__((visibility("default")))

/* Options, read once from the environment the launcher sets (see
 * docs/checker.md, "Environment"). */
typedef struct stw__check_opts {
    uint64_t kinds;          /* STW_KIND_BIT mask of kinds tracked */
    int depth;               /* frames kept per stack */
    const char *log_path;    /* text report; NULL = stderr */
    const char *json_path;   /* JSON report, may contain %p for the pid */
    const char *status_path; /* summary lines for the launcher, one per process */
    bool traced_child;       /* exec'd below PROG under --trace-children */
    const char *supp_path;   /* suppressions file */
    int report_every_s;      /* periodic reports, 0 = off */
    long sample_bytes;       /* heap sampling: one block per this many bytes, 0 = all */
    bool quiet;              /* only the summary line */
    bool show_reachable;     /* list still-reachable heap blocks */
    bool show_inherited;     /* list descriptors inherited at start */
} stw__check_opts;

extern stw__check_opts stw__copts;

/* Kind for the checker's own allocations (made while the ledger guard is
 * held, e.g. by libdw during symbolization): booked so that their free is
 * recognised, never reported. */
extern int stw__kind_internal;

/* True once the checker is initialised and tracking. */
bool stw__check_ready(void);

/* True when a hook should book a resource of @kind: the checker is ready
 * (initialising it if needed), tracks @kind, and the calling thread is not
 * inside the checker (resources the checker makes for itself, e.g. libdw's,
 * are its own). */
bool stw__check_tracking(int kind);
void stw__check_init(void);

/* Capture the stack of the interposed call's caller and record (kind, id).
 * @skip: frames between the hook's caller and this function. */
int stw__check_record(int kind, uint64_t id, uint64_t size, const char *label, int skip);

/* Copy @s into the checker's permanent label storage (mmap'ed; labels of
 * fds and processes outlive the calls that made them). Never NULL. */
const char *stw__check_label(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Register fork handlers for a lock of the caller's that hooks take
 * before the ledger's own locks: they run before the ledger's at fork. */
void stw__check_atfork_before_ledger(void (*prepare)(void), void (*parent)(void),
                                     void (*child)(void));

/* Checkpoint taken when the checker started: what the program made since. */
extern uint64_t stw__check_start_seq;

/* A child forked without exec is checked in its own right: what it made
 * after the fork (records with seq > since) is its own; what it inherited
 * from its parent is not reported. since == 0 in the first process. */
typedef struct stw__fork_info {
    uint64_t since;
    int parent;    /* the parent's pid */
    stw_site site; /* where fork() was called */
} stw__fork_info;
extern stw__fork_info stw__forked;
/* From the fork hook, in the child: start the child's own books. @skip:
 * frames above this call that are the checker's. */
void stw__check_forked(int skip);

/* ---- report.c ---- */
/* Write the report now (at exit, on demand or periodically) to the log and
 * the JSON file. @final: the exit report, which also reconciles
 * descriptors and writes the status file the launcher reads. */
void stw__check_report(bool final, const char *why);
/* The text log (STW_CHECK_LOG, else a dup of stderr), opened for append;
 * the caller closes it. Negative errno on failure. */
int stw__check_open_log(void);

/* The exit report, written once per process whichever way it ends (exit,
 * _exit, a fatal signal: @sig, 0 for a normal exit). Silent in forked
 * children that did not exec. */
void stw__check_final_report(int sig);

/* ---- growth.c ---- */
/* From a fatal signal's handler: have the checker's thread write the final
 * report and wait (bounded) until it is written. */
void stw__check_fatal_report(int sig);

/* The program's state where a fatal signal interrupted it: the handler's
 * own frames and the signal frame lie below @sp on that thread's stack and
 * hold stale words, so the scan takes this thread's stack from @sp up and
 * its registers from @regs instead. Set by the handler before it asks for
 * the report (tid last); tid 0 when no signal came. */
typedef struct stw__interrupted {
    uintptr_t sp;
    uintptr_t regs[32];
    int nregs;
    _Atomic long tid;
} stw__interrupted;
extern stw__interrupted stw__fatal_ctx;
/* Start the checker's own thread (sampling per-site live bytes for growth
 * analysis, periodic and on-demand reports). Called once at init. */
void stw__growth_start(void);
/* A site flagged by growth analysis. */
typedef struct stw__growth {
    stw_site site;
    int kind;
    bool growing; /* true: still rising at the end; false: rose, then levelled off */
    int samples;
    int64_t first_bytes, mid_bytes, last_bytes, peak_bytes;
    double bytes_per_s; /* over the second half of the run */
} stw__growth;
/* In a forked child: the checker's thread did not come along. */
void stw__growth_forked(void);
/* Sites whose live bytes rose over the run, strongest first; at most @max. */
int stw__growth_analyse(stw__growth *out, int max);

/* ---- fds.c ---- */
/* Book the descriptors open at start as inherited (not the program's). */
void stw__fds_init(void);
/* Descriptors open now (per /proc/self/fd) that the ledger does not know:
 * created by calls the checker does not hook. Records each as STW_KIND_FD
 * with a label saying so, so the exit report lists it. Returns how many. */
int stw__fds_reconcile(void);
/* In a child forked without exec: its descriptors are its own books now. */
void stw__fds_forked(void);
/* True for a record of an inherited descriptor. */
bool stw__fd_inherited(const stw_record *r);

/* ---- threads.c ---- */
/* State of a thread record at report time: "running", "exited, never
 * joined or detached". Never NULL. */
const char *stw__thread_state(uint64_t id);

/* Before the exit report: give detached threads that are finishing their
 * routine up to 100 ms to end, so they are not reported. */
void stw__threads_settle(void);
/* Every thread of the process (/proc/self/task) to @fn until it returns
 * false; raw system calls only, no allocation (threads.c). */
void stw__each_task(bool (*fn)(long tid, void *ud), void *ud);

/* ---- procs.c ---- */
/* Before the exit report: book children the hooks did not see (vfork,
 * clone) from /proc, without a stack. */
void stw__procs_reconcile(void);
/* State of a child process record: "running", "zombie (exited, never
 * reaped)". Never NULL. */
const char *stw__proc_state(uint64_t pid);

/* ---- growth.c: the checker's own thread ---- */
/* The checker's thread: its stack (and, at its top, its thread descriptor
 * and TLS) is [*lo, *hi) and its kernel thread id *tid. Its words are the
 * checker's, never the program's: the scan must not take them for roots.
 * False while the thread has not started. */
bool stw__checker_thread(uintptr_t *lo, uintptr_t *hi, long *tid);

/* ---- scan.c: conservative pointer scan ---- */
enum stw__heap_class {
    STW__DEFINITELY_LOST = 0,
    STW__INDIRECTLY_LOST = 1,
    STW__STILL_REACHABLE = 2,
};
/* What one scan read, in bytes (the report's figure). */
typedef struct stw__scan_stats {
    bool sampling;         /* the unsampled heap was a root */
    uint64_t blocks;       /* heap blocks and mappings the scan classified */
    uint64_t blocks_read;  /* of them, those whose contents it read */
    uint64_t block_bytes;  /* their real extents (each block once) */
    uint64_t global_bytes; /* modules' writable data */
    uint64_t stack_bytes;  /* thread stacks, registers, TLS, thread descriptors */
    uint64_t heap_bytes;   /* sampling mode: malloc's memory outside sampled blocks */
} stw__scan_stats;
/* Classify the heap records of @s (s->records, any order; non-heap records
 * are ignored): cls[i] gets the class of s->records[i]. Roots are the
 * writable data of every loaded module, every thread's stack and the
 * calling thread's registers, and in sampling mode the heap memory outside
 * the sampled blocks. @st (may be NULL) gets what was read. 0 or -ENOMEM
 * (then everything is "definitely lost"). */
int stw__scan_classify(const stw_snapshot *s, uint8_t *cls, stw__scan_stats *st);
/* Gather what the scan needs from dl_iterate_phdr and libunwind (modules'
 * data, the calling thread's exit() frame) before the world is stopped: a
 * parked thread may hold the loader's or libunwind's lock. The next
 * stw__scan_classify uses it (and gathers it itself when not called). */
void stw__scan_prepare(void);
/* Remember which words of the loaded modules' writable data point into no
 * mapping at start (the loader leaves such dangling words behind): the scan
 * ignores them while they keep that value. Called once by the constructor. */
void stw__scan_note_stale_words(void);

/* ---- loader.c ---- */
/* True while the calling thread is inside dl_iterate_phdr (the loader's
 * lock held): its stacks are taken by frame pointers only. */
bool stw__loader_busy(void);
/* Keep libunwind's caches per thread (no lock ordered against the
 * loader's). Called once at init. */
void stw__loader_init(void);

/* ---- stopworld.c ---- */
/* Park every other thread of the program (not the checker's own, nor one
 * in a fatal signal's handler) in a handler of stw__stop_signal() until
 * stw__world_resume. Between the two the caller must not take the loader's,
 * libunwind's or malloc's locks. Returns how many were parked; threads that
 * block the signal or do not answer in time are stopped with ptrace
 * instead (ptstop.c), or keep running where ptrace is refused. */
int stw__world_stop(void);
void stw__world_resume(void);
int stw__stop_signal(void);

/* ---- ptstop.c: the threads parking cannot stop ---- */
#define STW__PT_MAX 256
/* Stop threads @tids[0..n) with ptrace, from a helper process, and keep
 * their general registers; the caller holds the ledger's locks (no thread
 * stops inside the ledger). At most STW__PT_MAX. Returns how many were
 * stopped: 0 when ptrace is refused, and then they keep running. */
int stw__pt_stop(const long *tids, int n);
/* The registers stw__pt_stop kept for @tid, as words, and its stack
 * pointer. False when it was not stopped (or has been let go). The words
 * stay valid until stw__pt_resume. */
bool stw__pt_regs(long tid, const uintptr_t **words, size_t *nwords, uintptr_t *sp);
/* Let them go and reap the helper. */
void stw__pt_resume(void);

/* ---- suppress.c ---- */
/* Load the default suppressions and the user's file (may be NULL).
 * Returns 0 or -errno for an unreadable file. */
int stw__supp_load(const char *path);
/* True when any frame of @site matches a leak:PATTERN (function, module
 * or file name; '*' wildcards; '^'/'$' anchors as in LSan). */
bool stw__supp_match(stw_site site);

/* ---- quarantine.c: recently freed heap records, bad-free reports ---- */
/* Invalid and double frees seen so far. */
long stw__heap_bad_frees(void);
/* In a forked child: its parent's bad frees are not its own. */
void stw__quarantine_forked(void);
/* Remember that @p (@size bytes, allocated at @site, 0 if unknown) was just
 * freed, with the stack of the free; @skip: frames above this call that
 * are the checker's. Guard held. */
void stw__quarantine_add(uintptr_t p, uint64_t size, stw_site site, int skip);
/* Report a bad free or realloc of @p (@what_freed when @p was freed
 * before, else @what_invalid): the stack of the call (@skip frames above
 * this one are the checker's), the first free's, and where the block was
 * allocated. Counts it in stw__heap_bad_frees. */
void stw__bad_free(const char *what_freed, const char *what_invalid, uintptr_t p, int skip);

/* Resolve a libc function behind our interposer (dlsym RTLD_NEXT), with the
 * ledger guard held so that dlsym's own allocations are not recorded as
 * the program's. Aborts with a message if it cannot be found. */
void *stw__check_real(const char *name);

#define STW_REAL(ret, name, params)                                                                \
    static ret(*real_##name) params;                                                               \
    if (__builtin_expect(real_##name == NULL, 0))                                                  \
        real_##name = (ret(*) params)stw__check_real(#name);

#endif
