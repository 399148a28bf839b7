/*
 * relay/child.h — one supervised ffmpeg job, private to the relay.
 *
 * Model
 *   A job (one input's ingest, one push output, one on-demand decoder) runs
 *   exactly one child process at a time, over and over: relay_child starts
 *   it, notices when it ends, and starts it again after a backoff. It is
 *   driven by its owner thread's poll() loop, never by a thread of its own:
 *
 *       relay_child_set_argv(c, argv);
 *       for (;;) {
 *           int ms = relay_child_tick(c, now_ms());
 *           poll relay_child_stdout_fd(c) / relay_child_stderr_fd(c)
 *                (when >= 0) and the thread's cancel fd, for ms;
 *           stderr readable: relay_child_read_stderr(c);
 *           stdout readable: read it; on frames: relay_child_progress(c, now);
 *       }
 *       relay_child_free(&c);
 *
 *   States (relay_child_info.state):
 *     "starting"  a child runs and has not shown progress yet
 *     "running"   a child runs and relay_child_progress() was called for it
 *     "backoff"   no child: the last one ended, the next starts at next_ms
 *     "error"     no child: the last spawn failed (program missing, ...);
 *                 retried like "backoff"
 *     "stopped"   no child, none will start until relay_child_resume()
 *   A new job is "starting" with its first spawn due at the first tick
 *   after relay_child_set_argv().
 *
 * Invariants
 *   - Never two children: a child is spawned only when the previous one
 *     has been stopped and reaped (stw_proc_stop/stw_proc_free), with its
 *     whole process group killed. A child that exits, crashes or is killed
 *     from outside is reaped at the next tick.
 *   - Children are spawned with die_with_parent (SIGKILL when the owner
 *     thread or the process dies, see steward/proc.h), in their own process
 *     group, with stderr piped. So the owner thread must outlive its child:
 *     relay_child_stop() or relay_child_free() before the thread returns.
 *   - Restarts back off exponentially from backoff_min_ms to
 *     backoff_max_ms (each delay drawn in [3/4, 1] of the current step, so
 *     jobs that failed together do not restart together). A child that
 *     worked for healthy_ms resets the backoff to backoff_min_ms. "Worked"
 *     is measured from its spawn to its last progress when the watchdog is
 *     on, to its exit when it is off.
 *   - Watchdog: a child without progress for watchdog_ms (counted from its
 *     spawn, then from its last progress) gets SIGTERM on its group, then
 *     SIGKILL after grace_ms, without blocking the owner, and is restarted.
 *   - Bounded memory: stderr is read through a fixed line buffer; the last
 *     RELAY_CHILD_LINES lines (each cut to RELAY_CHILD_LINE_MAX - 1 bytes,
 *     ending in " [...]" when cut) are kept in a fixed ring. Every line is
 *     redacted (relay/redact.h) before it is stored, logged or handed out;
 *     a cut line also loses its partial last word when that could hold a
 *     password the cut made unrecognisable. Lines ffmpeg ends with '\r'
 *     (its progress lines) go to on_line but not into the ring: they would
 *     push every message out of it.
 *   - The relay's own log (its stderr) gets one line per child that ends
 *     or fails to start, never one per ffmpeg line, and at most
 *     RELAY_CHILD_LOG_BURST of them per minute per job.
 *
 * Threads
 *   Everything is owner-thread only, except relay_child_info_get() and
 *   relay_child_tail(), which any thread may call (a mutex guards what they
 *   read), up to relay_child_free(). The owner is the thread that calls
 *   relay_child_tick(), and so spawns the children. on_line runs on the
 *   owner thread, inside relay_child_read_stderr(), relay_child_tick() or
 *   relay_child_stop().
 *
 * Time
 *   Every now_ms is the owner's CLOCK_MONOTONIC in milliseconds
 *   (stw_now_ns() / 1000000); the times in relay_child_info are on the same
 *   clock.
 *
 * Ledger
 *   The child is a STW_KIND_PROCESS record labelled with the job name, its
 *   pipes STW_KIND_FD records (steward/proc.h); the job's memory is heap
 *   allocated once in relay_child_new() and relay_child_set_argv().
 */
#ifndef STW_RELAY_CHILD_H
#define STW_RELAY_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RELAY_CHILD_LINES 16     /* stderr lines kept */
#define RELAY_CHILD_LINE_MAX 256 /* bytes per kept line, with its NUL */
#define RELAY_CHILD_ERROR_MAX 512
#define RELAY_CHILD_LOG_BURST 5 /* relay log lines per job per minute */

typedef struct relay_child relay_child;

/* Called with each stderr line of the child (redacted, without its line
 * break, cut to RELAY_CHILD_LINE_MAX - 1 bytes; borrowed for the call) on
 * the owner thread, before the line is kept. Returns whether to keep it in
 * the ring (false for progress output the owner has parsed). It must not
 * call back into the relay_child. */
typedef bool (*relay_child_line_fn)(void *ud, const char *line);

typedef struct relay_child_opts {
    const char *job;             /* "input cam1", "push cam1/3": log prefix and the
                                  * child's ledger label; copied; required */
    int backoff_min_ms;          /* first delay between restarts, > 0 (e.g. 500) */
    int backoff_max_ms;          /* longest delay, >= backoff_min_ms (e.g. 30000) */
    int healthy_ms;              /* a child that worked this long resets the backoff
                                  * (e.g. 30000); 0 = every child */
    int watchdog_ms;             /* no progress for this long: restart it; 0 = off */
    int grace_ms;                /* SIGTERM to SIGKILL, >= 0 (e.g. 3000) */
    int stdin_eof_ms;            /* with pipe_stdin: relay_child_stop() closes stdin first
                                  * and gives the child this long to end by itself
                                  * (finishing what it writes) before SIGTERM; 0 = none */
    const char *const *envp;     /* the children's environment, NULL-terminated;
                                  * borrowed, must outlive the job; NULL = the
                                  * relay's */
    bool pipe_stdin;             /* the owner writes the child's stdin */
    bool pipe_stdout;            /* the owner reads the child's stdout */
    bool quiet;                  /* no lines in the relay's log (tests) */
    relay_child_line_fn on_line; /* may be NULL */
    void *ud;                    /* for on_line; borrowed */
} relay_child_opts;

typedef struct relay_child_info {
    char state[16];     /* "starting", "running", "backoff", "error", "stopped" */
    pid_t pid;          /* the child's, 0 when there is none */
    int64_t started_ms; /* when the child was spawned, 0 when there is none */
    int64_t ended_ms;   /* when the last child was reaped or a spawn failed, 0 */
    int64_t next_ms;    /* when the next spawn is due, 0 when none is */
    unsigned restarts;  /* spawns after an exit or failed spawn (not resumes) */
    unsigned spawns;    /* children started so far */
    char last_exit[96]; /* "exited with code 1", "killed by SIGKILL", "" */
    char last_error[RELAY_CHILD_ERROR_MAX]; /* why the last child ended or did
                                             * not start: its last stderr lines
                                             * joined by " | ", or a spawn
                                             * error; redacted; "" */
} relay_child_info;

/* A new job for @o (borrowed for the call; job is copied). *@out is owned
 * by the caller (transfer full; release with relay_child_free). Returns 0,
 * -EINVAL for bad options, -ENOMEM; on failure *@out is untouched. */
int relay_child_new(const relay_child_opts *o, relay_child **out);

/* Stop and reap the child if there is one (SIGTERM, grace_ms, SIGKILL to
 * its group; this can block that long), release everything, set *@c to
 * NULL. Accepts NULL and *@c == NULL. */
void relay_child_free(relay_child **c);

/* The command of the next spawn (@argv NULL-terminated, argv[0] required,
 * searched in PATH; borrowed, copied). A running child is not affected:
 * stop it if the change must take effect now. Returns 0, -EINVAL or
 * -ENOMEM (the previous command stays). */
int relay_child_set_argv(relay_child *c, const char *const *argv);

/* Do what is due at @now_ms: reap a child that has ended (drain its last
 * stderr lines, record how it ended, schedule the restart), enforce the
 * watchdog, spawn when due and no child exists. Returns the ms after which
 * it wants to be called again (poll's timeout), or -1 when nothing is due
 * (stopped, or no command yet). While a child runs this is at most 1000,
 * so an exit nobody signalled (stderr held open by a grandchild) is still
 * noticed. */
int relay_child_tick(relay_child *c, int64_t now_ms);

/* The parent ends of the child's pipes (borrowed, non-blocking,
 * close-on-exec), or -1 when there is no child, the stream is not piped,
 * or (stderr) it reached end of file. Valid until the next tick, stop or
 * free. */
int relay_child_stdin_fd(const relay_child *c);
int relay_child_stdout_fd(const relay_child *c);
int relay_child_stderr_fd(const relay_child *c);

/* Read what the child wrote to stderr without blocking (at most 64 KiB per
 * call, so a chatty child cannot starve the loop): split it into lines at
 * '\n' or '\r' (ffmpeg ends its progress lines with '\r'), redact them,
 * keep them in the ring and pass each to on_line. */
void relay_child_read_stderr(relay_child *c);

/* The owner saw the child make progress (a frame, a progress line) at
 * @now_ms: feeds the watchdog and the healthy timer, and makes a
 * "starting" child "running". */
void relay_child_progress(relay_child *c, int64_t now_ms);

/* Stop and reap the child now (blocks up to grace_ms) and start nothing
 * until relay_child_resume(); state "stopped". Idempotent. */
void relay_child_stop(relay_child *c);

/* Leave "stopped": the next tick spawns at once, with the backoff reset.
 * Does nothing unless stopped. */
void relay_child_resume(relay_child *c);

/* A snapshot of the job's state into *@out. Any thread. */
void relay_child_info_get(relay_child *c, relay_child_info *out);

/* The job's last @nlines (at most RELAY_CHILD_LINES) stderr lines, across
 * restarts (so a crash loop still shows what the children said), oldest
 * first, joined by '\n', into @out (@len bytes, always NUL-terminated when
 * @len > 0; older lines are dropped first when they do not fit). Returns
 * the number of lines written. Any thread. */
unsigned relay_child_tail(relay_child *c, unsigned nlines, char *out, size_t len);

#endif
