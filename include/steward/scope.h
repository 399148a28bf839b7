/*
 * steward/scope.h — structured concurrency and ownership in one object.
 *
 * Model
 *   A scope is a node in an ownership tree (libdill bundles, Trio
 *   nurseries, Racket custodians, Linux devres). Threads are spawned *into*
 *   a scope, cleanups are registered *on* it, child scopes nest under it.
 *   Closing a scope is the one way everything it holds ends:
 *
 *     1. cancel: the scope and all its descendants are marked cancelled and
 *        their cancel fds become readable, so every blocking wait that
 *        honours the scope (stw_scope_sleep, stw_scope_wait_fd, a poll on
 *        stw_scope_cancel_fd) returns -ECANCELED;
 *     2. join: its own threads are joined until the deadline;
 *     3. children: each child scope is closed with the same deadline;
 *     4. cleanups: the cleanups registered with stw_scope_defer run, last
 *        registered first, exactly once.
 *
 *   Setup failure and teardown are the same path: a scope whose setup
 *   failed half-way (a spawn or defer returned an error) is closed and
 *   freed like any other, and undoes exactly what was done.
 *
 *   A thread that misses the deadline is *abandoned*, not killed: it is
 *   detached, named in the close report, and keeps the scope's internal
 *   state alive (the struct, its cancel fd) so nothing is freed under it.
 *   The scope's cleanups, and those of its ancestors being closed, are
 *   postponed until the last abandoned thread below them returns; that
 *   thread then runs them, releases its ledger record and, if the owner has
 *   already freed the scope, frees what remains. Cleanups therefore never
 *   run while a thread of the scope (or of a descendant) still runs.
 *
 *   A scope is *finished* once its threads have all returned, its children
 *   are finished and its cleanups have run. stw_scope_close() returns 0 if
 *   the scope finished by the deadline, -ETIMEDOUT otherwise.
 *
 * Ledger
 *   The scope is recorded as STW_KIND_SCOPE (id: the stw_scope pointer,
 *   label: its name) and its cancel eventfd as STW_KIND_FD
 *   ("eventfd:scope-cancel"). Each spawned thread is recorded as
 *   STW_KIND_THREAD (id: pthread_t, label: its name) from spawn until it is
 *   joined, or until it returns if it was abandoned. A spawned thread's
 *   ledger owner is the scope, so everything it creates is tagged with it;
 *   the scope's thread records and cleanup entries are tagged with it too,
 *   and a child scope's record with its parent.
 *
 * Threads
 *   Every function may be called from any thread, including threads inside
 *   the scope, except as noted: closing or freeing a scope from one of its
 *   own threads (or a thread of a descendant scope) would wait for itself;
 *   stw_scope_close() returns -EDEADLK and stw_scope_free() aborts
 *   (STW_BUG). The same holds for a cleanup that closes its own scope.
 *
 * Ownership
 *   stw_scope_new() returns a scope its caller owns when it has no parent.
 *   A child is owned by its parent: freeing the parent frees it. The caller
 *   may free a child earlier itself (e.g. one scope per connection under a
 *   long-lived root), but never concurrently with the parent's free, and
 *   the pointer is dangling once the parent is freed.
 */
#ifndef STEWARD_SCOPE_H
#define STEWARD_SCOPE_H

#include <stdbool.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_scope stw_scope;

/* Longest thread name Linux keeps, plus the terminating NUL. */
#define STW_SCOPE_THREAD_NAME_MAX 16
/* Threads a close report names; the count covers all of them. */
#define STW_SCOPE_REPORT_MAX 16

/* One thread still running when a close gave up waiting. */
typedef struct stw_scope_straggler {
    char thread[STW_SCOPE_THREAD_NAME_MAX]; /* thread name */
    char scope[32];                         /* name of the scope it runs in, truncated */
} stw_scope_straggler;

/* What a close left behind: filled by stw_scope_close() when @rep != NULL. */
typedef struct stw_scope_report {
    int missed; /* threads of the scope and its descendants still running */
    int listed; /* entries filled in stragglers[], min(missed, STW_SCOPE_REPORT_MAX) */
    stw_scope_straggler stragglers[STW_SCOPE_REPORT_MAX];
} stw_scope_report;

/*
 * Create a scope named @name (copied; NULL means "scope") under @parent
 * (borrowed; NULL for a root). On success *@out is the new scope: transfer
 * full for a root, owned by @parent otherwise (see Ownership).
 * Returns 0, -ECANCELED if @parent is cancelled or closing, -ENOMEM, or
 * the errno of eventfd(). On failure *@out is NULL and nothing is left.
 */
STW_API int stw_scope_new(stw_scope *parent, const char *name, stw_scope **out);

/*
 * Close @*s with an infinite deadline unless a close already ran (a scope
 * closed before with a timeout is not waited for again), free its child
 * scopes, and drop the caller's hold. Memory still used by abandoned
 * threads is freed when the last of them returns. Accepts NULL and
 * *s == NULL; sets *s to NULL. Calling it from a thread of the scope is a
 * bug (STW_BUG).
 */
STW_API void stw_scope_free(stw_scope **s);

/* The scope's name: borrowed, valid as long as the scope. */
STW_API const char *stw_scope_name(const stw_scope *s);

/*
 * Start a thread running @fn(@s, @arg) in @s. The thread is named @name
 * (borrowed, copied and truncated to 15 bytes; NULL uses the scope's
 * name), runs with stw_scope_current() == @s and the ledger owner set to
 * @s. @arg is borrowed by the thread: the caller keeps it valid until the
 * scope is closed. The thread is joined by stw_scope_close(), or by a
 * later spawn into the same scope once it has returned.
 * Returns 0, -ECANCELED if @s is cancelled or closing (then @fn never
 * runs), -ENOMEM, or the errno of pthread_create() (e.g. -EAGAIN).
 */
STW_API int stw_scope_spawn(stw_scope *s, const char *name, void (*fn)(stw_scope *s, void *arg),
                            void *arg);

/*
 * Register @fn(@arg) to run when @s is closed, after its threads and
 * children ended, in reverse order of registration (see Model). It is
 * allowed until the cleanups have run, from any thread and from a running
 * cleanup. Returns 0 (the scope now owns the call) or -ENOMEM, or
 * -ECANCELED when the scope's cleanups already ran. On failure @fn is NOT
 * called: the caller keeps ownership of @arg and must release it.
 */
STW_API int stw_scope_defer(stw_scope *s, void (*fn)(void *arg), void *arg);

/*
 * Mark @s and all its descendants cancelled and make their cancel fds
 * readable. Idempotent; never blocks for long; safe from any thread.
 * Cancel alone stops nothing: threads notice it and return.
 */
STW_API void stw_scope_cancel(stw_scope *s);

/* True once @s (or an ancestor, which cancels it) was cancelled. */
STW_API bool stw_scope_cancelled(const stw_scope *s);

/*
 * An fd that becomes readable (POLLIN) when @s is cancelled and stays so.
 * Borrowed: do not read or close it; valid as long as the scope.
 */
STW_API int stw_scope_cancel_fd(stw_scope *s);

/*
 * Sleep until @d. Returns 0 when @d is reached, -ECANCELED as soon as @s
 * is cancelled (at once if it already is). Cancellation wins a tie.
 */
STW_API int stw_scope_sleep(stw_scope *s, stw_deadline d);

/*
 * Wait until @fd (borrowed) reports one of @events (POLLIN, POLLOUT, ...),
 * @d passes, or @s is cancelled. Returns the revents (> 0; POLLERR and
 * POLLHUP may be set too), -ETIMEDOUT, -ECANCELED (also when @fd became
 * ready at the same moment), or -EBADF if @fd is not open.
 */
STW_API int stw_scope_wait_fd(stw_scope *s, int fd, short events, stw_deadline d);

/*
 * Close @s: cancel, join its threads until @d, close its children with
 * the same deadline, run its cleanups in reverse (see Model).
 * Returns 0 if the scope finished by @d; -ETIMEDOUT if threads of it or of
 * a descendant were still running at @d (they are abandoned and named in
 * @rep); -EDEADLK, without changing anything, when called from a thread
 * of @s or of a descendant, or from a cleanup of @s. @rep (may be NULL) is
 * filled in both success and timeout cases.
 * Closing again (or concurrently) is allowed: it waits until the scope
 * finishes or @d, whichever comes first, and reports the same way.
 */
STW_API int stw_scope_close(stw_scope *s, stw_deadline d, stw_scope_report *rep);

/* The scope the calling thread was spawned into, or NULL. Borrowed. */
STW_API stw_scope *stw_scope_current(void);

#ifdef __cplusplus
}
#endif
#endif
