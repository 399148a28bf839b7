#include "stw_test.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define MAX_SPAWNS 512

static int64_t now_ms(void)
{
    return stw_now_ns() / 1000000;
}

/* ---- helpers ---- */

/*
 * Every job script takes an exclusive lock on a file first and records
 * "DUP" if it cannot: the lock is held until the shell itself is gone, so
 * two children of one job alive at once leave the mark. Commands the
 * scripts run close the lock's descriptor (9>&-), so that only the shell,
 * the job's own child, holds it.
 */
static char lock_path[96], mark_path[96];

/* Fresh paths for every test: a test that fails midway leaves its child
 * running with the lock, and must not fail the tests after it too. */
static void make_paths(void)
{
    static int seq;
    seq++;
    snprintf(lock_path, sizeof(lock_path), "/tmp/steward-test-child-%d-%d.lock", (int)getpid(),
             seq);
    snprintf(mark_path, sizeof(mark_path), "/tmp/steward-test-child-%d-%d.mark", (int)getpid(),
             seq);
    unlink(mark_path);
}

static void locked_script(char *buf, size_t len, const char *body)
{
    snprintf(buf, len, "exec 9>%s; flock -n 9 || echo DUP >>%s; %s", lock_path, mark_path, body);
}

static bool duplicate_seen(void)
{
    bool dup = access(mark_path, F_OK) == 0;
    unlink(mark_path);
    unlink(lock_path);
    return dup;
}

/* Gone, or a zombie nobody here can reap. */
static bool pid_dead(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], stat[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren != NULL && (paren[2] == 'Z' || paren[2] == 'X');
}

static bool pid_is_zombie(pid_t pid)
{
    char path[64], stat[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren != NULL && paren[2] == 'Z';
}

/* Processes whose parent is this process, zombies included. */
static int count_children(void)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    int n = 0;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], stat[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[len] = '\0';
        const char *paren = strrchr(stat, ')');
        int ppid;
        char st;
        if (paren != NULL && sscanf(paren + 1, " %c %d", &st, &ppid) == 2 && ppid == self)
            n++;
    }
    closedir(d);
    return n;
}

/* The owner loop of a job, as the relay runs it, with what it observed. */
typedef struct run {
    relay_child *c;
    bool progress_on_stdout; /* stdout data counts as progress */
    int nspawns;
    pid_t pids[MAX_SPAWNS];
    int64_t started[MAX_SPAWNS];
    pid_t last_pid;
    pid_t stdout_eof_pid; /* stdout reached EOF for this child */
    int64_t longest_tick_ms;
    int ndelays;
    int delays[MAX_SPAWNS]; /* scheduled: next_ms - ended_ms */
    int64_t last_ended;
    bool saw_backoff, saw_error, saw_running;
    int want_spawns; /* for enough_spawns */
} run;

static void observe(run *r)
{
    relay_child_info info;
    relay_child_info_get(r->c, &info);
    if (strcmp(info.state, "backoff") == 0)
        r->saw_backoff = true;
    if (info.next_ms != 0 && info.ended_ms != r->last_ended) {
        r->last_ended = info.ended_ms;
        if (r->ndelays < MAX_SPAWNS)
            r->delays[r->ndelays++] = (int)(info.next_ms - info.ended_ms);
    }
    /* Nothing starts before it is due. */
    if (info.pid != 0 && info.pid != r->last_pid && r->last_ended != 0)
        assert_true(info.started_ms >= r->last_ended + r->delays[r->ndelays - 1]);
    if (strcmp(info.state, "error") == 0)
        r->saw_error = true;
    if (strcmp(info.state, "running") == 0)
        r->saw_running = true;
    if (info.pid != 0 && info.pid != r->last_pid) {
        /* A new child only once the previous one is gone and reaped. */
        if (r->last_pid != 0) {
            assert_int_equal(kill(r->last_pid, 0), -1);
            assert_int_equal(errno, ESRCH);
        }
        if (r->nspawns < MAX_SPAWNS) {
            r->pids[r->nspawns] = info.pid;
            r->started[r->nspawns] = info.started_ms;
        }
        r->nspawns++;
        r->last_pid = info.pid;
    }
}

static void drive(run *r, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        int64_t now = now_ms();
        if (now >= end)
            break;
        int64_t t0 = stw_now_ns();
        int t = relay_child_tick(r->c, now);
        int64_t took = (stw_now_ns() - t0) / 1000000;
        if (took > r->longest_tick_ms)
            r->longest_tick_ms = took;
        observe(r);
        struct pollfd p[2];
        int n = 0, err_at = -1, out_at = -1;
        if (relay_child_stderr_fd(r->c) >= 0) {
            err_at = n;
            p[n++] = (struct pollfd){.fd = relay_child_stderr_fd(r->c), .events = POLLIN};
        }
        if (relay_child_stdout_fd(r->c) >= 0 && r->stdout_eof_pid != r->last_pid) {
            out_at = n;
            p[n++] = (struct pollfd){.fd = relay_child_stdout_fd(r->c), .events = POLLIN};
        }
        int64_t wait = end - now;
        if (t >= 0 && t < wait)
            wait = t;
        if (poll(p, (nfds_t)n, (int)wait) <= 0)
            continue;
        if (err_at >= 0 && p[err_at].revents != 0)
            relay_child_read_stderr(r->c);
        if (out_at >= 0 && p[out_at].revents != 0) {
            char buf[4096];
            ssize_t got = read(p[out_at].fd, buf, sizeof(buf));
            if (got > 0 && r->progress_on_stdout)
                relay_child_progress(r->c, now_ms());
            if (got == 0)
                r->stdout_eof_pid = r->last_pid;
        }
    }
}

/* Drive until @pred holds or @ms pass; returns whether it held. */
static bool drive_until(run *r, int ms, bool (*pred)(run *r))
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (pred(r))
            return true;
        drive(r, 5);
    }
    return pred(r);
}

static bool has_child(run *r)
{
    relay_child_info info;
    relay_child_info_get(r->c, &info);
    return info.pid != 0;
}

static bool enough_spawns(run *r)
{
    return r->nspawns >= r->want_spawns;
}

/* The child the watchdog had to SIGKILL is reaped. */
static bool killed_hard(run *r)
{
    relay_child_info info;
    relay_child_info_get(r->c, &info);
    return strncmp(info.last_exit, "killed by SIGKILL", 17) == 0;
}

static relay_child_opts fast_opts(void)
{
    return (relay_child_opts){.job = "input test",
                              .backoff_min_ms = 20,
                              .backoff_max_ms = 200,
                              .healthy_ms = 10000,
                              .watchdog_ms = 0,
                              .grace_ms = 200,
                              .quiet = true};
}

/* ---- tests ---- */

static void test_child_bad_options(void **state)
{
    (void)state;
    relay_child *c = NULL;
    relay_child_opts o = fast_opts();
    o.job = NULL;
    assert_int_equal(relay_child_new(&o, &c), -EINVAL);
    o = fast_opts();
    o.backoff_min_ms = 0;
    assert_int_equal(relay_child_new(&o, &c), -EINVAL);
    o = fast_opts();
    o.backoff_max_ms = 10;
    assert_int_equal(relay_child_new(&o, &c), -EINVAL);
    o = fast_opts();
    o.grace_ms = -1;
    assert_int_equal(relay_child_new(&o, &c), -EINVAL);
    assert_int_equal(relay_child_new(NULL, &c), -EINVAL);
    assert_null(c);

    o = fast_opts();
    assert_int_equal(relay_child_new(&o, &c), 0);
    /* No command yet: nothing to do, nothing due. */
    assert_int_equal(relay_child_tick(c, now_ms()), -1);
    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "starting");
    assert_int_equal(info.pid, 0);
    assert_int_equal(relay_child_stderr_fd(c), -1);
    assert_int_equal(relay_child_set_argv(c, ARGV(NULL)), -EINVAL);
    assert_int_equal(relay_child_set_argv(c, NULL), -EINVAL);
    relay_child_free(&c);
    assert_null(c);
    relay_child_free(&c);
    relay_child_free(NULL);
}

static void test_child_restarts_with_backoff(void **state)
{
    (void)state;
    make_paths();
    char script[512];
    locked_script(script, sizeof(script), "echo starting >&2; exit 1");
    relay_child *c;
    relay_child_opts o = fast_opts();
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    run r = {.c = c, .want_spawns = 6};
    assert_true(drive_until(&r, 20000, enough_spawns));
    /* 20, 40, 80, 160, 200, 200 ms, each cut by up to a quarter. */
    assert_true(r.nspawns >= 5);
    assert_true(r.ndelays >= r.nspawns - 1);
    assert_true(r.saw_backoff);
    for (int i = 0; i < r.ndelays; i++) {
        int step = 20 << (i < 4 ? i : 4);
        if (step > 200)
            step = 200;
        if (r.delays[i] < step * 3 / 4 || r.delays[i] > step)
            fail_msg("delay %d is %d ms (step %d)", i, r.delays[i], step);
    }
    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_int_equal(info.spawns, (unsigned)r.nspawns);
    assert_int_equal(info.restarts, (unsigned)r.nspawns - 1);
    assert_string_equal(info.last_exit, "exited with code 1");
    assert_string_equal(info.last_error, "starting");
    relay_child_free(&c);
    assert_false(duplicate_seen());
}

static void test_child_backoff_resets_when_healthy(void **state)
{
    (void)state;
    make_paths();
    char script[512];
    locked_script(script, sizeof(script), "sleep 0.08 9>&-; exit 1");
    relay_child *c;
    relay_child_opts o = fast_opts();
    o.backoff_max_ms = 5000;
    o.healthy_ms = 50; /* every child lives 80 ms: healthy */
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    run r = {.c = c, .want_spawns = 6};
    assert_true(drive_until(&r, 20000, enough_spawns));
    /* Without the reset the delays would grow: 20, 40, 80, 160, ... */
    assert_true(r.nspawns >= 5);
    assert_true(r.ndelays >= 4);
    for (int i = 0; i < r.ndelays; i++) {
        if (r.delays[i] < 15 || r.delays[i] > 20)
            fail_msg("delay %d is %d ms", i, r.delays[i]);
    }
    relay_child_free(&c);
    assert_false(duplicate_seen());
}

static void test_child_watchdog(void **state)
{
    (void)state;
    make_paths();
    char script[512];
    locked_script(script, sizeof(script), "echo connecting >&2; sleep 60 9>&-");
    relay_child *c;
    relay_child_opts o = fast_opts();
    o.watchdog_ms = 100;
    o.backoff_min_ms = 10;
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    run r = {.c = c, .want_spawns = 3};
    assert_true(drive_until(&r, 20000, enough_spawns));
    assert_true(r.nspawns >= 3);
    assert_false(r.saw_running);
    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_true(info.restarts >= 2);
    if (info.last_exit[0] != '\0')
        assert_string_equal(info.last_exit, "killed by SIGTERM (watchdog: no progress for 100 ms)");
    relay_child_free(&c);
    assert_false(duplicate_seen());

    /* A child that ignores SIGTERM gets SIGKILL after the grace period,
     * and the owner's loop never blocks for it. */
    locked_script(script, sizeof(script), "trap '' TERM; sleep 60 9>&-");
    /* Time for the shell to set its trap, even on a loaded machine (where
     * starting sh can take longer than 300 ms): a shell that is still
     * starting dies of the SIGTERM, and the next try is 10 s away. */
    o.watchdog_ms = 2000;
    o.grace_ms = 1000;
    o.backoff_min_ms = 10000;
    o.backoff_max_ms = 10000;
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    r = (run){.c = c};
    assert_true(drive_until(&r, 10000, killed_hard));
    assert_int_equal(r.nspawns, 1);
    assert_true(r.longest_tick_ms < 500);
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "backoff");
    assert_string_equal(info.last_exit, "killed by SIGKILL (watchdog: no progress for 2000 ms)");
    assert_true(pid_dead(r.pids[0]));
    relay_child_free(&c);
    assert_false(duplicate_seen());

    /* Progress keeps a child alive, and makes it "running". */
    locked_script(script, sizeof(script), "while :; do echo frame; sleep 0.02 9>&-; done");
    o = fast_opts();
    o.watchdog_ms = 400;
    o.pipe_stdout = true;
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    r = (run){.c = c, .progress_on_stdout = true};
    drive(&r, 1000);
    assert_int_equal(r.nspawns, 1);
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "running");
    assert_int_equal(info.restarts, 0);
    relay_child_free(&c);
    assert_false(duplicate_seen());
}

static bool child_is_zombie(run *r)
{
    return r->last_pid != 0 && pid_is_zombie(r->last_pid);
}

static void test_child_killed_from_outside(void **state)
{
    (void)state;
    make_paths();
    char script[512];
    locked_script(script, sizeof(script), "sleep 60 9>&-");
    relay_child *c;
    relay_child_opts o = fast_opts();
    o.pipe_stdin = true;
    o.pipe_stdout = true;
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    run r = {.c = c};
    assert_true(drive_until(&r, 5000, has_child));
    pid_t first = r.last_pid;
    assert_true(relay_child_stdin_fd(c) >= 0);
    /* The ledger names the job, not the program. */
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(STW_KIND_PROCESS, (uint64_t)first, &rec), 0);
    assert_string_equal(rec.label, "input test");
    assert_true(relay_child_stdout_fd(c) >= 0);
    assert_int_equal(kill(first, SIGKILL), 0);
    /* Wait for the kill to land without ticking, then one tick notices. */
    stw_deadline d = stw_deadline_in_ms(5000);
    while (!pid_is_zombie(first) && stw_now_ns() < d)
        usleep(1000);
    assert_true(child_is_zombie(&r));
    relay_child_tick(c, now_ms());
    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "backoff");
    assert_int_equal(info.pid, 0);
    assert_string_equal(info.last_exit, "killed by SIGKILL");
    assert_true(pid_dead(first));
    assert_int_equal(relay_child_stdin_fd(c), -1);
    assert_int_equal(relay_child_stdout_fd(c), -1);
    assert_int_equal(relay_child_stderr_fd(c), -1);
    /* ... and restarts it after the backoff. */
    r.last_pid = 0;
    assert_true(drive_until(&r, 5000, has_child));
    assert_true(r.last_pid != first);
    relay_child_info_get(c, &info);
    assert_int_equal(info.restarts, 1);
    assert_int_equal(info.spawns, 2);
    relay_child_free(&c);
    assert_false(duplicate_seen());
}

static void test_child_missing_program(void **state)
{
    (void)state;
    relay_child *c;
    relay_child_opts o = fast_opts();
    assert_int_equal(relay_child_new(&o, &c), 0);
    const char *path = getenv("PATH");
    char *saved = strdup(path != NULL ? path : "/usr/bin:/bin");
    setenv("PATH", "/nonexistent", 1);
    assert_int_equal(relay_child_set_argv(c, ARGV("ffmpeg", "-i", "rtsp://a:b@cam/s")), 0);
    int t = relay_child_tick(c, now_ms());
    setenv("PATH", saved, 1);
    free(saved);
    assert_true(t > 0 && t <= 20);
    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "error");
    assert_int_equal(info.pid, 0);
    assert_string_equal(info.last_error, "ffmpeg not found in PATH");
    assert_true(info.next_ms > 0);

    assert_int_equal(relay_child_set_argv(c, ARGV("/nonexistent/ffmpeg")), 0);
    run r = {.c = c};
    drive(&r, 200);
    assert_int_equal(r.nspawns, 0);
    assert_true(r.saw_error);
    relay_child_info_get(c, &info);
    assert_string_equal(info.last_error, "/nonexistent/ffmpeg not found");
    assert_true(info.restarts >= 2);
    assert_int_equal(info.spawns, 0);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);

    /* Fixing the command fixes the job at the next retry. */
    assert_int_equal(relay_child_set_argv(c, ARGV("sleep", "60")), 0);
    assert_true(drive_until(&r, 5000, has_child));
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "starting");
    relay_child_free(&c);
}

static atomic_bool sampling;
static atomic_int most_children;
static atomic_int samples;

static void *sampler(void *arg)
{
    relay_child *c = arg;
    while (atomic_load(&sampling)) {
        relay_child_info info;
        relay_child_info_get(c, &info);
        int n = count_children();
        if (n > atomic_load(&most_children))
            atomic_store(&most_children, n);
        atomic_fetch_add(&samples, 1);
    }
    return NULL;
}

/* A storm of exits, watchdog kills and kills from outside, with a thread
 * reading the snapshot and counting this process's children all along. */
static void test_child_never_two(void **state)
{
    (void)state;
    make_paths();
    char script[512];
    locked_script(script, sizeof(script),
                  "case $(($$ % 3)) in 0) exit 2;; 1) sleep 60 9>&-;; 2) sleep 0.01 9>&-;; esac");
    relay_child *c;
    relay_child_opts o = fast_opts();
    o.backoff_min_ms = 1;
    o.backoff_max_ms = 4;
    o.watchdog_ms = 30;
    o.grace_ms = 20;
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    atomic_store(&sampling, true);
    atomic_store(&most_children, 0);
    atomic_store(&samples, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sampler, c), 0);
    run r = {.c = c};
    stw_deadline d = stw_deadline_in_ms(20000);
    for (int i = 0; (i < 30 || r.nspawns < 10) && stw_now_ns() < d; i++) {
        drive(&r, 40);
        if (i % 4 == 0 && r.last_pid != 0)
            kill(r.last_pid, SIGKILL);
    }
    atomic_store(&sampling, false);
    pthread_join(t, NULL);
    assert_true(r.nspawns >= 10);
    assert_true(atomic_load(&samples) > 10);
    assert_true(atomic_load(&most_children) <= 1);
    relay_child_free(&c);
    assert_int_equal(count_children(), 0);
    assert_false(duplicate_seen());
}

typedef struct lines {
    int n;
    size_t longest;
    bool leaked;
    bool saw_progress;
} lines;

static bool on_line(void *ud, const char *line)
{
    lines *l = ud;
    l->n++;
    if (strlen(line) > l->longest)
        l->longest = strlen(line);
    if (strstr(line, "hun") != NULL || strstr(line, "s3cr") != NULL)
        l->leaked = true;
    if (strncmp(line, "frame=", 6) == 0)
        l->saw_progress = true;
    return true;
}

static bool job_in_backoff(run *r)
{
    relay_child_info info;
    relay_child_info_get(r->c, &info);
    return strcmp(info.state, "backoff") == 0;
}

static void test_child_stderr_ring(void **state)
{
    (void)state;
    /* What the fake ffmpeg says, from a file. */
    char text_path[64];
    snprintf(text_path, sizeof(text_path), "/tmp/steward-test-child-%d.txt", (int)getpid());
    FILE *f = fopen(text_path, "w");
    assert_non_null(f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "line %d\n", i);
    for (int i = 0; i < 1000; i++)
        fputc('a', f);
    fputc('\n', f);
    /* A URL with its password at every position around the cut. */
    for (int pad = 230; pad < 256; pad++) {
        for (int i = 0; i < pad; i++)
            fputc('b', f);
        fprintf(f, " rtsp://admin:hunter2@cam/s?password=s3cret more\n");
    }
    fprintf(f, "frame=  100 fps= 25 q=-1.0 size=N/A\r");
    fprintf(f, "Input #0 from 'rtsp://admin:hunter2@cam/live'\n");
    fprintf(f, "Connection refused\n");
    fprintf(f, "tail without a newline");
    fclose(f);
    char script[160];
    snprintf(script, sizeof(script), "cat %s >&2; exit 3", text_path);

    lines l = {0};
    relay_child *c;
    relay_child_opts o = fast_opts();
    o.on_line = on_line;
    o.ud = &l;
    o.backoff_min_ms = 10000;
    o.backoff_max_ms = 10000;
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", script)), 0);
    run r = {.c = c};
    assert_true(drive_until(&r, 5000, job_in_backoff));
    unlink(text_path);

    assert_int_equal(l.n, 40 + 1 + 26 + 4);
    assert_true(l.longest <= RELAY_CHILD_LINE_MAX - 1);
    assert_false(l.leaked);
    assert_true(l.saw_progress);

    char tail[RELAY_CHILD_LINES * RELAY_CHILD_LINE_MAX];
    assert_int_equal(relay_child_tail(c, 100, tail, sizeof(tail)), RELAY_CHILD_LINES);
    assert_null(strstr(tail, "hun"));
    assert_null(strstr(tail, "s3cr"));
    assert_null(strstr(tail, "frame="));
    assert_non_null(strstr(tail, "'rtsp://admin:***@cam/live'"));
    assert_non_null(strstr(tail, "bbbb [...]\n"));
    const char *last = strrchr(tail, '\n');
    assert_non_null(last);
    assert_string_equal(last + 1, "tail without a newline");
    /* Only the newest lines fit a small buffer. */
    char small[48];
    assert_int_equal(relay_child_tail(c, 3, small, sizeof(small)), 2);
    assert_string_equal(small, "Connection refused\ntail without a newline");

    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_string_equal(info.last_exit, "exited with code 3");
    assert_string_equal(info.last_error, "Input #0 from 'rtsp://admin:***@cam/live' | "
                                         "Connection refused | tail without a newline");
    relay_child_free(&c);
}

static void test_child_free_running(void **state)
{
    (void)state;
    relay_child *c;
    relay_child_opts o = fast_opts();
    o.pipe_stdout = true;
    assert_int_equal(relay_child_new(&o, &c), 0);
    /* It leaves a grandchild in its group. */
    assert_int_equal(relay_child_set_argv(c, ARGV("/bin/sh", "-c", "sleep 60 & echo $!; sleep 60")),
                     0);
    /* One tick spawns it; no loop reads its stdout but the test. */
    assert_int_equal(relay_child_tick(c, now_ms()), 1000);
    run r = {.c = c};
    observe(&r);
    assert_true(r.last_pid > 0);
    char buf[32] = "";
    struct pollfd p = {.fd = relay_child_stdout_fd(c), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_true(read(p.fd, buf, sizeof(buf) - 1) > 0);
    pid_t grandchild = (pid_t)atoi(buf);
    assert_true(grandchild > 0);
    pid_t child = r.last_pid;
    int64_t t0 = now_ms();
    relay_child_free(&c);
    assert_true(now_ms() - t0 < 1000);
    /* Reaped, not a zombie; the grandchild went with it. */
    assert_int_equal(kill(child, 0), -1);
    assert_int_equal(errno, ESRCH);
    stw_deadline d = stw_deadline_in_ms(3000);
    while (!pid_dead(grandchild) && stw_now_ns() < d)
        usleep(2000);
    assert_true(pid_dead(grandchild));
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_child_stop_resume(void **state)
{
    (void)state;
    relay_child *c;
    relay_child_opts o = fast_opts();
    assert_int_equal(relay_child_new(&o, &c), 0);
    assert_int_equal(relay_child_set_argv(c, ARGV("sleep", "60")), 0);
    run r = {.c = c};
    assert_true(drive_until(&r, 5000, has_child));
    pid_t first = r.last_pid;
    relay_child_stop(c);
    relay_child_stop(c);
    assert_int_equal(kill(first, 0), -1);
    relay_child_info info;
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "stopped");
    assert_int_equal(info.pid, 0);
    assert_int_equal(info.next_ms, 0);
    assert_string_equal(info.last_exit, "killed by SIGTERM");
    assert_int_equal(relay_child_tick(c, now_ms()), -1);
    drive(&r, 100);
    assert_int_equal(r.nspawns, 1);

    /* A new command while stopped is what resume starts. */
    assert_int_equal(relay_child_set_argv(c, ARGV("sleep", "61")), 0);
    relay_child_resume(c);
    relay_child_resume(c);
    assert_int_equal(relay_child_tick(c, now_ms()), 1000);
    relay_child_info_get(c, &info);
    assert_string_equal(info.state, "starting");
    assert_true(info.pid > 0 && info.pid != first);
    assert_int_equal(info.restarts, 0);
    assert_int_equal(info.spawns, 2);
    char cmdline[64] = "";
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)info.pid);
    /* The exec may still be under way: wait for the new command line. */
    stw_deadline d = stw_deadline_in_ms(3000);
    while (stw_now_ns() < d) {
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        size_t n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        fclose(f);
        cmdline[n] = '\0';
        if (strcmp(cmdline, "sleep") == 0 && strcmp(cmdline + 6, "61") == 0)
            break;
        usleep(1000);
    }
    assert_string_equal(cmdline + 6, "61");
    relay_child_free(&c);
}

static int child_scenario(void *ud)
{
    (void)ud;
    relay_child *c;
    relay_child_opts o = fast_opts();
    int rc = relay_child_new(&o, &c);
    if (rc != 0)
        return rc;
    rc = relay_child_set_argv(c, ARGV("/bin/sh", "-c", "exit 0"));
    if (rc == 0) {
        relay_child_tick(c, now_ms());
        relay_child_info info;
        relay_child_info_get(c, &info);
        /* A failed spawn is the error state, never a crash. */
        if (strcmp(info.state, "error") == 0)
            rc = -ENOMEM;
    }
    relay_child_free(&c);
    return rc;
}

static void test_child_fault_sweep(void **state)
{
    (void)state;
    assert_true(stw_test_fault_sweep(child_scenario, NULL) >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_child_bad_options),
        STW_TEST(test_child_restarts_with_backoff),
        STW_TEST(test_child_backoff_resets_when_healthy),
        STW_TEST(test_child_watchdog),
        STW_TEST(test_child_killed_from_outside),
        STW_TEST(test_child_missing_program),
        STW_TEST(test_child_never_two),
        STW_TEST(test_child_stderr_ring),
        STW_TEST(test_child_free_running),
        STW_TEST(test_child_stop_resume),
        STW_TEST(test_child_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
