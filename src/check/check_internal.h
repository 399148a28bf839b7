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
    const char *status_path; /* summary line for the launcher */
    const char *supp_path;   /* suppressions file */
    int report_every_s;      /* periodic reports, 0 = off */
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
void stw__check_init(void);

/* Capture the stack of the interposed call's caller and record (kind, id).
 * @skip: frames between the hook's caller and this function. */
int stw__check_record(int kind, uint64_t id, uint64_t size, const char *label, int skip);

/* Copy @s into the checker's permanent label storage (mmap'ed; labels of
 * fds and processes outlive the calls that made them). Never NULL. */
const char *stw__check_label(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write the report now (at exit, on SIGUSR2 or periodically).
 * @final: the exit report (classification, summary, status file). */
void stw__check_report(bool final, const char *why);

/* ---- heap.c ---- */
/* Invalid and double frees seen so far. */
long stw__heap_bad_frees(void);

/* Resolve a libc function behind our interposer (dlsym RTLD_NEXT), with the
 * ledger guard held so that dlsym's own allocations are not recorded as
 * the program's. Aborts with a message if it cannot be found. */
void *stw__check_real(const char *name);

#define STW_REAL(ret, name, params)                                                                \
    static ret(*real_##name) params;                                                               \
    if (__builtin_expect(real_##name == NULL, 0))                                                  \
        real_##name = (ret(*) params)stw__check_real(#name);

#endif
