/*
 * steward/shutdown.h — ordered shutdown on SIGINT/SIGTERM, with a leak
 * verdict.
 *
 * Model
 *   A shutdown is a list of *stages*, each a scope with its own deadline,
 *   closed one after the other in the order they were added (e.g. "http",
 *   "sources", "recordings", "watchers": stop taking work first, then stop
 *   the producers, then what consumes them). The program waits for a
 *   signal (or a trigger from code), runs the stages, and exits with the
 *   code stw_shutdown_run() returns:
 *
 *     stw_shutdown_new(&sd);     // in main, before any thread: blocks the signals
 *     ... build scopes, spawn threads, stw_shutdown_add_stage(...) ...
 *     stw_shutdown_wait(sd, STW_DEADLINE_NEVER);
 *     int code = stw_shutdown_run(sd, baseline, STDERR_FILENO);
 *     ... free the stage scopes, stw_shutdown_free(&sd) ...
 *     return code;
 *
 *   This replaces the Go pattern of seed 002 (signal goroutine, hand-made
 *   per-manager Shutdown(), a fixed sleep, counting goroutines): each stage
 *   is one stw_scope_close() with a deadline, and the verdict comes from
 *   the ledger, with the creation stack of whatever is left.
 *
 * Signals
 *   SIGINT and SIGTERM are taken through a signalfd, which only sees them
 *   while they are blocked in *every* thread: otherwise the kernel may
 *   deliver one to a thread that does not block it and the default action
 *   ends the process. stw_shutdown_new() and stw_shutdown_wait() block both
 *   in the calling thread (pthread_sigmask); threads inherit the mask of the
 *   thread that creates them, so the caller must create the shutdown (or
 *   block the signals itself) in the main thread before starting any
 *   thread. The mask is left blocked afterwards: the process is ending.
 *
 * Exit code (stw_shutdown_run)
 *   0: every stage closed within its deadline and nothing born after the
 *      baseline is still alive in the ledger;
 *   1: a stage missed its deadline, something leaked, or the ledger could
 *      not be read.
 *   Not counted as leaks: the shutdown object's own records (its memory,
 *   stage names, signalfd and trigger eventfd) and the bookkeeping (scope
 *   record, struct, name, cancel eventfd) of the closed stage scopes, of
 *   their children, and of the scopes above them (e.g. a root whose
 *   children are the stages), which the caller frees after
 *   stw_shutdown_run(). Everything else those scopes hold does count.
 *
 * Ledger
 *   The signalfd is recorded as STW_KIND_FD "signalfd:shutdown", the
 *   trigger eventfd as "eventfd:shutdown-trigger".
 *
 * Threads
 *   stw_shutdown_trigger() may be called from any thread and from a signal
 *   handler. The other functions belong to one thread at a time (the main
 *   thread, typically).
 */
#ifndef STEWARD_SHUTDOWN_H
#define STEWARD_SHUTDOWN_H

#include "steward/common.h"
#include "steward/ledger.h"
#include "steward/scope.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_shutdown stw_shutdown;

/*
 * Create a shutdown with no stages, blocking SIGINT and SIGTERM in the
 * calling thread (see Signals). On success *@out is owned by the caller
 * (transfer full). Returns 0, -ENOMEM, or the errno of signalfd()/
 * eventfd(); on failure *@out is NULL and nothing is left.
 */
STW_API int stw_shutdown_new(stw_shutdown **out);

/* Free @*sd (not the stage scopes). Accepts NULL and *sd == NULL; sets *sd
 * to NULL. The signal mask is not restored. */
STW_API void stw_shutdown_free(stw_shutdown **sd);

/*
 * Append a stage named @name (copied) that closes @scope (borrowed: it must
 * outlive stw_shutdown_run(); the stage closes it but never frees it) with
 * a deadline of @deadline_ms milliseconds from the moment the stage starts
 * (negative: no deadline). Returns 0, -ENOMEM (the stage list is
 * unchanged), or -EBUSY once stw_shutdown_run() has been called.
 */
STW_API int stw_shutdown_add_stage(stw_shutdown *sd, const char *name, stw_scope *scope,
                                   int deadline_ms);

/*
 * Wait until SIGINT or SIGTERM arrives, stw_shutdown_trigger() was called
 * (before or during the wait), or @d passes. Blocks both signals in the
 * calling thread first. Returns the signal number (consumed), 0 for a
 * trigger (which stays set: later waits return 0 at once), or -ETIMEDOUT.
 */
STW_API int stw_shutdown_wait(stw_shutdown *sd, stw_deadline d);

/* Start the shutdown without a signal: wakes stw_shutdown_wait(). Safe
 * from any thread and async-signal-safe. */
STW_API void stw_shutdown_trigger(stw_shutdown *sd);

/*
 * Close every stage in order, each with its deadline, then take a ledger
 * snapshot of what was born after @baseline (borrowed; NULL: everything
 * alive counts) and is still alive. To @report_fd (borrowed; < 0: no
 * output) it writes one line per stage (how long it took, what missed the
 * deadline), the ledger's text report (per kind: initial vs final counts
 * when @baseline is given; what is still alive with symbolized stacks),
 * and a closing verdict line. Returns the exit code (see Exit code). It
 * runs once; calling it again is a bug (STW_BUG).
 */
STW_API int stw_shutdown_run(stw_shutdown *sd, const stw_snapshot *baseline, int report_fd);

#ifdef __cplusplus
}
#endif
#endif
