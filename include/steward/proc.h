/*
 * steward/proc.h — a supervised child process (ffmpeg and friends).
 *
 * Model
 *   One stw_proc is one child, from spawn to reap; it never stands for two
 *   children. A restart is stw_proc_free() (which stops and reaps the old
 *   child) followed by a new stw_proc_spawn(), so "two ffmpeg for one job"
 *   cannot happen by accident.
 *
 *   The child is started without a shell (argv[0] is searched in PATH as
 *   posix_spawnp does) as the leader of its own process group, with an empty signal
 *   mask and every signal at its default disposition, even if the parent
 *   blocks SIGTERM for a signalfd or ignores SIGPIPE. The descriptors it
 *   inherits are exactly 0, 1 and 2: every other descriptor of the parent
 *   is closed in the child, so a child never keeps a relay socket alive.
 *   Unpiped stdin reads /dev/null; unpiped stdout/stderr are the parent's.
 *
 *   Stopping signals the whole group (SIGTERM, a grace period, then
 *   SIGKILL), so grandchildren the child started go down with it. While
 *   the child has exited but is not yet reaped its pid, and therefore its
 *   group id, cannot be reused, and stw_proc_stop() uses that window to
 *   SIGKILL any stragglers left in the group before reaping, then waits
 *   (up to 200 ms) until none of them is alive, so whatever they held is
 *   free when stw_proc_stop() returns. The child is always reaped: no
 *   zombie outlives its stw_proc.
 *
 *   Waiting uses a pidfd and poll() where the kernel has pidfd_open(), and
 *   otherwise polls waitid(WNOHANG) with short sleeps.
 *
 * Dying with the parent
 *   With die_with_parent the child gets SIGKILL when its parent goes away,
 *   however it goes (SIGKILL, a crash, the OOM killer), so a relay that
 *   dies cannot leave an orphaned ffmpeg behind. It is Linux's
 *   PR_SET_PDEATHSIG, set in the child between clone and exec (posix_spawn
 *   cannot), and it survives the exec; a child whose parent died before
 *   that point kills itself instead of running unwatched. The other
 *   guarantees above (own group, clean signal state, only fds 0-2, exec
 *   errors returned by spawn) are the same on this path.
 *
 *   The kernel ties the signal to the *thread* that spawned the child, not
 *   to the process: if that thread exits, the child is killed even though
 *   the process lives on. So the thread that spawns with die_with_parent
 *   must outlive the child: stop (or wait for) the child before the thread
 *   returns, as the relay's job threads do. The setting is also cleared by
 *   the kernel when the child execs a set-user-ID or set-group-ID program
 *   or one with file capabilities.
 *
 * Threads
 *   An stw_proc has one owner that serialises calls on it; different procs
 *   may be used from different threads, and spawns may run concurrently
 *   (all pipes are created close-on-exec). Something else reaping the
 *   child (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere) breaks the
 *   model: waits then fail with -ECHILD.
 *
 * Ledger
 *   The child is recorded as STW_KIND_PROCESS (id = pid, label = a copy of
 *   opts.label or argv[0], owned by the proc) from spawn until it is
 *   reaped; the pipes and the pidfd are recorded as STW_KIND_FD until they
 *   are closed. During a die_with_parent spawn the child's stack
 *   (STW_KIND_MMAP) and an exec-error pipe are recorded too; both are gone
 *   when spawn returns.
 */
#ifndef STEWARD_PROC_H
#define STEWARD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_proc stw_proc;

/* Grace period stw_proc_free() gives a still running child between SIGTERM
 * and SIGKILL. */
#define STW_PROC_FREE_GRACE_MS 2000

typedef struct stw_proc_opts {
    const char *const *argv; /* NULL-terminated, argv[0] required; borrowed */
    const char *const *envp; /* NULL-terminated; NULL = inherit; borrowed */
    const char *cwd;         /* NULL = inherit; borrowed */
    bool pipe_stdin;         /* false: stdin is /dev/null */
    bool pipe_stdout;        /* false: stdout is inherited */
    bool pipe_stderr;        /* false: stderr is inherited */
    bool die_with_parent;    /* SIGKILL the child when the spawning thread
                              * exits or the process dies (see above) */
    const char *label;       /* the PROCESS record's label ("input cam1");
                              * NULL = argv[0]; copied */
} stw_proc_opts;

/* Start a child. @o and everything it points to are borrowed for the
 * call. On success *@out is owned by the caller (transfer full; release
 * with stw_proc_free). Returns 0; -EINVAL for a missing argv[0]; -ENOENT,
 * -EACCES, ... when the program cannot be executed (the exec failure is
 * reported here, no child is left behind); -ENOMEM, -EMFILE, -EAGAIN when
 * resources run out. On failure nothing is left open or allocated and
 * *@out is untouched. */
STW_API int stw_proc_spawn(const stw_proc_opts *o, stw_proc **out);

/* The child's pid (also its process group id). Stays valid as a number
 * after the child is reaped, but then may name another process. */
STW_API pid_t stw_proc_pid(const stw_proc *p);

/* The parent's end of a piped stream (borrowed: the proc closes it), or -1
 * when that stream was not piped or was closed. Parent ends are
 * close-on-exec; put them in non-blocking mode yourself if the event loop
 * wants that. */
STW_API int stw_proc_stdin_fd(const stw_proc *p);
STW_API int stw_proc_stdout_fd(const stw_proc *p);
STW_API int stw_proc_stderr_fd(const stw_proc *p);

/* Close the child's stdin so it sees end of file. Returns 0, or -EBADF if
 * stdin was not piped or is already closed. */
STW_API int stw_proc_close_stdin(stw_proc *p);

/* Wait until the child exits or deadline @d passes, and reap it. Returns
 * 0 with its wait status in *@status (may be NULL; decode with the
 * WIFEXITED family or stw_proc_describe_status), -ETIMEDOUT if it is still
 * running at @d, or -ECHILD if something else reaped it. Once reaped,
 * further calls return 0 and the same status at once. A natural exit
 * observed here does not signal the group: background grandchildren keep
 * running (use stw_proc_stop to take the group down). */
STW_API int stw_proc_wait(stw_proc *p, stw_deadline d, int *status);

/* Stop the child: SIGTERM to its process group, up to @grace_ms (< 0 means
 * 0) for the child to exit, then SIGKILL to the group; once the child has
 * exited, SIGKILL whatever is left of the group, and reap. Always returns
 * 0 with the wait status in *@status (may be NULL) unless something else
 * reaped the child (-ECHILD). Safe to call again and after the child
 * exited or was reaped by stw_proc_wait (then it only reports the status;
 * a reaped child's group id may already be reused, so it is not signalled). */
STW_API int stw_proc_stop(stw_proc *p, int grace_ms, int *status);

/* True until the child has exited. Does not reap. */
STW_API bool stw_proc_running(stw_proc *p);

/* Stop the child if it has not been reaped (stw_proc_stop with
 * STW_PROC_FREE_GRACE_MS; this can block that long), close the pipes and
 * release everything. Accepts NULL and *@p == NULL; sets *@p = NULL. */
STW_API void stw_proc_free(stw_proc **p);

/* Describe a wait status in @buf (@len bytes, always NUL-terminated when
 * @len > 0): "exited with code 3", "killed by SIGKILL", "killed by SIGSEGV
 * (core dumped)". Returns 0, or -ENOSPC if the text was truncated. */
STW_API int stw_proc_describe_status(int status, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
