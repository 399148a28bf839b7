#include "log.h"
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "redact.h"
#include "steward/alloc.h"
#include "steward/proc.h"

/* Longest poll timeout while a child runs: an exit that closes no pipe we
 * watch is still noticed this fast. */
#define POLL_MAX_MS 1000
/* After stderr's end of file the child is about to exit: look again soon. */
#define EOF_POLL_MS 10
#define READ_BUDGET (64 * 1024)
#define LOG_WINDOW_MS 60000
#define ERROR_LINES 3     /* stderr lines in last_error */
#define CUT_MARK " [...]" /* ends a line cut to fit */

enum state { ST_STARTING, ST_RUNNING, ST_BACKOFF, ST_ERROR, ST_STOPPED };

static const char *const state_name[] = {"starting", "running", "backoff", "error", "stopped"};

struct relay_child {
    relay_child_opts o; /* o.job points to job */
    char *job;
    char **argv; /* one allocation: the pointers, then the strings */

    /* Owner thread only. */
    enum state st;
    stw_proc *proc;
    int64_t started_ms;
    int64_t last_progress_ms;
    int64_t kill_at_ms; /* the watchdog sent SIGTERM; SIGKILL is due then (0 = no) */
    bool progressed;
    bool stderr_eof;
    int64_t eof_ms;
    bool spawn_due;
    int64_t next_ms;
    bool restart; /* the next spawn follows an exit or a failed spawn */
    int step_ms;  /* current backoff step */
    uint64_t rng; /* jitter */
    char line[RELAY_CHILD_LINE_MAX];
    size_t line_len;
    bool line_cut;      /* the line outgrew the buffer; the rest is dropped */
    unsigned lines_now; /* lines the current child wrote, for last_error */
    int64_t log_window_ms;
    unsigned log_count, log_suppressed;

    /* Written by the owner under lock; read by anyone under lock. */
    pthread_mutex_t lock;
    relay_child_info info;
    char ring[RELAY_CHILD_LINES][RELAY_CHILD_LINE_MAX];
    unsigned ring_next, ring_count;
};

static int64_t now_ms(void)
{
    return stw_now_ns() / 1000000;
}

/* ---- the shared snapshot ---- */

static void publish_state(relay_child *c, enum state st)
{
    c->st = st;
    pthread_mutex_lock(&c->lock);
    snprintf(c->info.state, sizeof(c->info.state), "%s", state_name[st]);
    c->info.pid = c->proc != NULL ? stw_proc_pid(c->proc) : 0;
    c->info.started_ms = c->proc != NULL ? c->started_ms : 0;
    c->info.next_ms = c->spawn_due ? c->next_ms : 0;
    pthread_mutex_unlock(&c->lock);
}

static void set_last_error(relay_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_last_error(relay_child *c, const char *fmt, ...)
{
    char raw[RELAY_CHILD_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    relay_redact(raw, c->info.last_error, sizeof(c->info.last_error));
    pthread_mutex_unlock(&c->lock);
}

/* ---- the relay's log, rate-limited per job ---- */

static void log_line(relay_child *c, int64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(relay_child *c, int64_t now, const char *fmt, ...)
{
    if (c->o.quiet)
        return;
    if (c->log_count > 0 && now - c->log_window_ms >= LOG_WINDOW_MS)
        c->log_count = 0;
    if (c->log_count == 0)
        c->log_window_ms = now;
    if (c->log_count >= RELAY_CHILD_LOG_BURST) {
        c->log_suppressed++;
        return;
    }
    c->log_count++;
    char raw[RELAY_CHILD_ERROR_MAX + 256], msg[RELAY_CHILD_ERROR_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    relay_redact(raw, msg, sizeof(msg));
    if (c->log_suppressed > 0)
        relay_log(RELAY_LOG_WARNING, "ffmpeg", NULL, "%s: %s (%u similar lines suppressed)", c->job,
                  msg, c->log_suppressed);
    else
        relay_log(RELAY_LOG_WARNING, "ffmpeg", NULL, "%s: %s", c->job, msg);
    c->log_suppressed = 0;
}

/* ---- stderr lines ---- */

static bool is_word_end(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\'' || ch == '"' || ch == '<' || ch == '>';
}

/* The collected line is complete. @keep: store it in the ring (ffmpeg's
 * '\r'-terminated progress lines are only handed to on_line: a few seconds
 * of them would push every message out of the ring). */
static void finish_line(relay_child *c, bool keep)
{
    size_t n = c->line_len;
    bool cut = c->line_cut;
    c->line_len = 0;
    c->line_cut = false;
    if (n == 0 && !cut)
        return;
    if (cut) {
        if (n > sizeof(c->line) - 1 - strlen(CUT_MARK))
            n = sizeof(c->line) - 1 - strlen(CUT_MARK);
        /* The last, partial word goes if it could be a URL or a name=value:
         * cut before its '@' or its end, a password would show, since the
         * redaction could not recognise it. */
        size_t w = n;
        while (w > 0 && !is_word_end(c->line[w - 1]))
            w--;
        if (memchr(c->line + w, ':', n - w) != NULL || memchr(c->line + w, '=', n - w) != NULL)
            n = w;
        memcpy(c->line + n, CUT_MARK, strlen(CUT_MARK));
        n += strlen(CUT_MARK);
    }
    c->line[n] = '\0';
    char out[RELAY_CHILD_LINE_MAX];
    relay_redact(c->line, out, sizeof(out));
    /* The owner may know better: ffmpeg's -progress key=value lines end in
     * '\n' and say nothing worth keeping. */
    if (c->o.on_line != NULL && !c->o.on_line(c->o.ud, out))
        keep = false;
    if (keep) {
        pthread_mutex_lock(&c->lock);
        memcpy(c->ring[c->ring_next], out, sizeof(out));
        c->ring_next = (c->ring_next + 1) % RELAY_CHILD_LINES;
        if (c->ring_count < RELAY_CHILD_LINES)
            c->ring_count++;
        pthread_mutex_unlock(&c->lock);
        c->lines_now++;
    }
}

static void feed(relay_child *c, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == '\n' || ch == '\r') {
            finish_line(c, ch == '\n');
        } else if (c->line_len < sizeof(c->line) - 1) {
            c->line[c->line_len++] = ch == '\0' ? ' ' : ch;
        } else {
            c->line_cut = true;
        }
    }
}

void relay_child_read_stderr(relay_child *c)
{
    int fd = relay_child_stderr_fd(c);
    if (fd < 0)
        return;
    size_t total = 0;
    char buf[4096];
    while (total < READ_BUDGET) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            feed(c, buf, (size_t)n);
            total += (size_t)n;
        } else if (n == 0) {
            c->stderr_eof = true;
            c->eof_ms = now_ms();
            finish_line(c, true);
            return;
        } else if (errno != EINTR) {
            /* EAGAIN: all read. Any other error ends the stream as EOF
             * would, so the owner stops polling it. */
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                c->stderr_eof = true;
                c->eof_ms = now_ms();
            }
            return;
        }
    }
}

/* The last @nlines kept lines, oldest first, joined by @sep. Under lock. */
static unsigned join_tail(const relay_child *c, unsigned nlines, const char *sep, char *out,
                          size_t len)
{
    if (len == 0)
        return 0;
    out[0] = '\0';
    if (nlines > c->ring_count)
        nlines = c->ring_count;
    /* Drop the oldest lines until the rest fits. */
    size_t seplen = strlen(sep);
    unsigned first = 0;
    for (; first < nlines; first++) {
        size_t need = 0;
        for (unsigned i = first; i < nlines; i++) {
            unsigned idx = (c->ring_next + RELAY_CHILD_LINES - nlines + i) % RELAY_CHILD_LINES;
            need += strlen(c->ring[idx]) + (i > first ? seplen : 0);
        }
        if (need < len)
            break;
    }
    size_t at = 0;
    for (unsigned i = first; i < nlines; i++) {
        unsigned idx = (c->ring_next + RELAY_CHILD_LINES - nlines + i) % RELAY_CHILD_LINES;
        at += (size_t)snprintf(out + at, len - at, "%s%s", i > first ? sep : "", c->ring[idx]);
    }
    return nlines - first;
}

unsigned relay_child_tail(relay_child *c, unsigned nlines, char *out, size_t len)
{
    pthread_mutex_lock(&c->lock);
    unsigned n = join_tail(c, nlines, "\n", out, len);
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* ---- lifecycle ---- */

int relay_child_new(const relay_child_opts *o, relay_child **out)
{
    if (o == NULL || o->job == NULL || o->job[0] == '\0' || o->backoff_min_ms <= 0 ||
        o->backoff_max_ms < o->backoff_min_ms || o->healthy_ms < 0 || o->watchdog_ms < 0 ||
        o->grace_ms < 0)
        return -EINVAL;
    relay_child *c = stw_calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->job = stw_strdup(o->job);
    if (c->job == NULL) {
        stw_free(c);
        return -ENOMEM;
    }
    c->o = *o;
    c->o.job = c->job;
    c->step_ms = o->backoff_min_ms;
    c->spawn_due = true;
    c->rng = (uint64_t)(uintptr_t)c ^ (uint64_t)stw_now_ns() ^ 0x9E3779B97F4A7C15u;
    pthread_mutex_init(&c->lock, NULL);
    publish_state(c, ST_STARTING);
    *out = c;
    return 0;
}

int relay_child_set_argv(relay_child *c, const char *const *argv)
{
    if (argv == NULL || argv[0] == NULL)
        return -EINVAL;
    size_t n = 0, bytes = 0;
    for (; argv[n] != NULL; n++)
        bytes += strlen(argv[n]) + 1;
    char **copy = stw_malloc((n + 1) * sizeof(char *) + bytes);
    if (copy == NULL)
        return -ENOMEM;
    char *s = (char *)(copy + n + 1);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(argv[i]) + 1;
        memcpy(s, argv[i], len);
        copy[i] = s;
        s += len;
    }
    copy[n] = NULL;
    stw_free(c->argv);
    c->argv = copy;
    return 0;
}

/* The next delay: a uniform draw in [3/4, 1] of the current step, then
 * the step doubles up to the maximum. */
static int next_delay(relay_child *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    int step = c->step_ms;
    int quarter = step / 4;
    int delay = step - (quarter > 0 ? (int)(c->rng % (uint64_t)(quarter + 1)) : 0);
    c->step_ms = step > c->o.backoff_max_ms / 2 ? c->o.backoff_max_ms : step * 2;
    return delay;
}

static void schedule(relay_child *c, int64_t now, int delay)
{
    c->spawn_due = true;
    c->next_ms = now + delay;
    c->restart = true;
    pthread_mutex_lock(&c->lock);
    c->info.ended_ms = now;
    pthread_mutex_unlock(&c->lock);
}

static void set_nonblock(int fd)
{
    if (fd < 0)
        return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void spawn(relay_child *c, int64_t now)
{
    STW_BUG_ON(c->proc != NULL);
    stw_proc_opts po = {.argv = (const char *const *)c->argv,
                        .envp = c->o.envp,
                        .pipe_stdin = c->o.pipe_stdin,
                        .pipe_stdout = c->o.pipe_stdout,
                        .pipe_stderr = true,
                        .die_with_parent = true,
                        .label = c->job};
    stw_proc *p;
    int rc = stw_proc_spawn(&po, &p);
    bool restart = c->restart;
    c->spawn_due = false;
    pthread_mutex_lock(&c->lock);
    if (restart)
        c->info.restarts++;
    if (rc == 0)
        c->info.spawns++;
    pthread_mutex_unlock(&c->lock);
    if (rc != 0) {
        const char *prog = c->argv[0];
        if (rc == -ENOENT)
            set_last_error(c, "%s not found%s", prog, strchr(prog, '/') != NULL ? "" : " in PATH");
        else
            set_last_error(c, "cannot start %s: %s", prog, stw_strerror(rc));
        int delay = next_delay(c);
        schedule(c, now, delay);
        publish_state(c, ST_ERROR);
        pthread_mutex_lock(&c->lock);
        char why[RELAY_CHILD_ERROR_MAX];
        snprintf(why, sizeof(why), "%s", c->info.last_error);
        pthread_mutex_unlock(&c->lock);
        log_line(c, now, "%s; retrying in %d ms", why, delay);
        return;
    }
    c->proc = p;
    set_nonblock(stw_proc_stdin_fd(p));
    set_nonblock(stw_proc_stdout_fd(p));
    set_nonblock(stw_proc_stderr_fd(p));
    c->started_ms = now;
    c->last_progress_ms = now;
    c->kill_at_ms = 0;
    c->progressed = false;
    c->stderr_eof = false;
    c->lines_now = 0;
    c->line_len = 0;
    c->line_cut = false;
    publish_state(c, ST_STARTING);
}

/* Reap the child (stopping what is left of its group, waiting up to
 * @grace_ms if it still runs) and record how it ended; with @blame, its
 * last lines become last_error. */
static void reap_child(relay_child *c, int grace_ms, const char *why, bool blame)
{
    /* What it wrote last usually says why it ended. */
    relay_child_read_stderr(c);
    finish_line(c, true);
    int st = 0;
    int rc = stw_proc_stop(c->proc, grace_ms, &st);
    stw_proc_free(&c->proc);
    char desc[64];
    if (rc == 0)
        stw_proc_describe_status(st, desc, sizeof(desc));
    else
        snprintf(desc, sizeof(desc), "reaped by someone else");
    pthread_mutex_lock(&c->lock);
    snprintf(c->info.last_exit, sizeof(c->info.last_exit), "%s%s", desc, why);
    if (blame)
        join_tail(c, c->lines_now < ERROR_LINES ? c->lines_now : ERROR_LINES, " | ",
                  c->info.last_error, sizeof(c->info.last_error));
    pthread_mutex_unlock(&c->lock);
}

/* The child ended (or the watchdog ended it): reap it, schedule the next. */
static void child_ended(relay_child *c, int64_t now)
{
    char why[64] = "";
    if (c->kill_at_ms != 0)
        snprintf(why, sizeof(why), " (watchdog: no progress for %d ms)", c->o.watchdog_ms);
    int64_t started = c->started_ms;
    int64_t worked_until =
        c->o.watchdog_ms > 0 ? (c->progressed ? c->last_progress_ms : started) : now;
    /* Grace 0: either it has exited, or the watchdog's grace is over. */
    reap_child(c, 0, why, true);
    if (worked_until - started >= c->o.healthy_ms)
        c->step_ms = c->o.backoff_min_ms;
    int delay = next_delay(c);
    schedule(c, now, delay);
    publish_state(c, ST_BACKOFF);
    char exit_text[sizeof(c->info.last_exit)], err[RELAY_CHILD_ERROR_MAX];
    pthread_mutex_lock(&c->lock);
    snprintf(exit_text, sizeof(exit_text), "%s", c->info.last_exit);
    snprintf(err, sizeof(err), "%s", c->info.last_error);
    pthread_mutex_unlock(&c->lock);
    log_line(c, now, "%s %s after %lld ms%s%s; restarting in %d ms", c->argv[0], exit_text,
             (long long)(now - started), err[0] != '\0' ? ": " : "", err, delay);
}

int relay_child_tick(relay_child *c, int64_t now)
{
    if (c->proc != NULL) {
        if (!stw_proc_running(c->proc)) {
            child_ended(c, now);
        } else if (c->kill_at_ms != 0) {
            if (now >= c->kill_at_ms)
                child_ended(c, now);
        } else if (c->o.watchdog_ms > 0 && now - c->last_progress_ms >= c->o.watchdog_ms) {
            /* SIGTERM now, SIGKILL at a later tick: the owner's loop keeps
             * running meanwhile. */
            kill(-stw_proc_pid(c->proc), SIGTERM);
            c->kill_at_ms = now + c->o.grace_ms;
            if (c->o.grace_ms == 0)
                child_ended(c, now);
        }
    }
    if (c->proc == NULL && c->st != ST_STOPPED && c->spawn_due && c->argv != NULL &&
        now >= c->next_ms)
        spawn(c, now);

    if (c->proc != NULL) {
        int64_t wait = POLL_MAX_MS;
        if (c->stderr_eof && now - c->eof_ms < POLL_MAX_MS)
            wait = EOF_POLL_MS;
        int64_t due = c->kill_at_ms != 0     ? c->kill_at_ms
                      : c->o.watchdog_ms > 0 ? c->last_progress_ms + c->o.watchdog_ms
                                             : INT64_MAX;
        if (due - now < wait)
            wait = due - now;
        return wait < 0 ? 0 : (int)wait;
    }
    if (c->st != ST_STOPPED && c->spawn_due && c->argv != NULL)
        return c->next_ms - now < 0 ? 0 : (int)(c->next_ms - now);
    return -1;
}

void relay_child_progress(relay_child *c, int64_t now)
{
    if (c->proc == NULL)
        return;
    c->last_progress_ms = now;
    if (!c->progressed) {
        c->progressed = true;
        publish_state(c, ST_RUNNING);
    }
}

void relay_child_stop(relay_child *c)
{
    if (c->st == ST_STOPPED)
        return;
    c->spawn_due = false;
    if (c->proc != NULL && c->o.pipe_stdin && c->o.stdin_eof_ms > 0 &&
        stw_proc_close_stdin(c->proc) == 0) {
        /* A child reading a pipe (ffmpeg) ends by itself at end of file
         * and writes out what it must (a trailer) instead of being cut
         * short by SIGTERM. */
        stw_proc_wait(c->proc, stw_deadline_in_ms(c->o.stdin_eof_ms), NULL);
    }
    if (c->proc != NULL)
        reap_child(c, c->o.grace_ms, "", false);
    publish_state(c, ST_STOPPED);
}

void relay_child_resume(relay_child *c)
{
    if (c->st != ST_STOPPED)
        return;
    c->step_ms = c->o.backoff_min_ms;
    c->spawn_due = true;
    c->next_ms = 0;
    c->restart = false;
    publish_state(c, ST_STARTING);
}

void relay_child_free(relay_child **pc)
{
    if (pc == NULL || *pc == NULL)
        return;
    relay_child *c = *pc;
    *pc = NULL;
    if (c->proc != NULL) {
        /* No need to read what it says any more. */
        int st;
        stw_proc_stop(c->proc, c->o.grace_ms, &st);
        stw_proc_free(&c->proc);
    }
    pthread_mutex_destroy(&c->lock);
    stw_free(c->argv);
    stw_free(c->job);
    stw_free(c);
}

int relay_child_stdin_fd(const relay_child *c)
{
    return c->proc != NULL ? stw_proc_stdin_fd(c->proc) : -1;
}

int relay_child_stdout_fd(const relay_child *c)
{
    return c->proc != NULL ? stw_proc_stdout_fd(c->proc) : -1;
}

int relay_child_stderr_fd(const relay_child *c)
{
    return c->proc != NULL && !c->stderr_eof ? stw_proc_stderr_fd(c->proc) : -1;
}

void relay_child_info_get(relay_child *c, relay_child_info *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->info;
    pthread_mutex_unlock(&c->lock);
}
