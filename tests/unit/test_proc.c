#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steward/fd.h"
#include "steward/proc.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Read from @fd until EOF, @cap - 1 bytes, or @ms milliseconds; the result
 * is NUL-terminated. Returns the byte count. */
static size_t read_until_eof(int fd, char *buf, size_t cap, int ms)
{
    stw_deadline d = stw_deadline_in_ms(ms);
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, stw_deadline_poll_ms(d)) <= 0)
            break;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* Read one line (without its newline) within @ms milliseconds. */
static void read_line(int fd, char *buf, size_t cap, int ms)
{
    stw_deadline d = stw_deadline_in_ms(ms);
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, stw_deadline_poll_ms(d)) <= 0)
            break;
        if (read(fd, buf + n, 1) != 1 || buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
}

/* A process is gone when kill() no longer finds it, or when it is a zombie
 * waiting for init (the test cannot reap an orphan). */
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

static bool pid_dies_within(pid_t pid, int ms)
{
    stw_deadline d = stw_deadline_in_ms(ms);
    while (!pid_dead(pid)) {
        if (stw_now_ns() >= d)
            return false;
        usleep(5000);
    }
    return true;
}

static int count_fd_records(const char *label)
{
    stw_snapshot *s;
    stw_snapshot_opts so = {.kinds = STW_KIND_BIT(STW_KIND_FD), .records = true};
    assert_int_equal(stw_snapshot_new(&so, &s), 0);
    int n = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        if (s->records[i].label != NULL && strcmp(s->records[i].label, label) == 0)
            n++;
    }
    stw_snapshot_free(&s);
    return n;
}

static void test_proc_exit_status(void **state)
{
    (void)state;
    stw_proc *p;
    assert_int_equal(stw_proc_spawn(&(stw_proc_opts){.argv = ARGV("/bin/sh", "-c", "exit 3")}, &p),
                     0);
    pid_t pid = stw_proc_pid(p);
    assert_true(pid > 0);
    assert_int_equal(stw_proc_stdin_fd(p), -1);
    assert_int_equal(stw_proc_stdout_fd(p), -1);
    assert_int_equal(stw_proc_stderr_fd(p), -1);
    stw_record rec;
    if (stw_proc_running(p)) {
        assert_int_equal(stw_ledger_lookup(STW_KIND_PROCESS, (uint64_t)pid, &rec), 0);
        assert_string_equal(rec.label, "/bin/sh");
    }
    int st = -1;
    assert_int_equal(stw_proc_wait(p, stw_deadline_in_ms(10000), &st), 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    char text[64];
    assert_int_equal(stw_proc_describe_status(st, text, sizeof(text)), 0);
    assert_string_equal(text, "exited with code 3");
    /* Reaped: no record, no pidfd, and waiting again answers at once. */
    assert_int_equal(stw_ledger_lookup(STW_KIND_PROCESS, (uint64_t)pid, &rec), -ENOENT);
    assert_int_equal(count_fd_records("proc:pidfd"), 0);
    assert_false(stw_proc_running(p));
    st = -1;
    assert_int_equal(stw_proc_wait(p, STW_DEADLINE_NOW, &st), 0);
    assert_int_equal(WEXITSTATUS(st), 3);
    stw_proc_free(&p);
    assert_null(p);
    stw_proc_free(&p);
    stw_proc_free(NULL);

    /* A label names the job in the ledger instead of the program. */
    assert_int_equal(
        stw_proc_spawn(&(stw_proc_opts){.argv = ARGV("sleep", "30"), .label = "input cam1"}, &p),
        0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_PROCESS, (uint64_t)stw_proc_pid(p), &rec), 0);
    assert_string_equal(rec.label, "input cam1");
    stw_proc_free(&p);

    assert_int_equal(stw_proc_spawn(&(stw_proc_opts){.argv = ARGV("true")}, &p), 0);
    assert_int_equal(stw_proc_wait(p, STW_DEADLINE_NEVER, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    stw_proc_free(&p);
}

static void test_proc_spawn_errors(void **state)
{
    (void)state;
    for (int dwp = 0; dwp < 2; dwp++) {
        stw_proc *p = NULL;
        stw_proc_opts o = {.argv = ARGV("/nonexistent/steward-no-such-program"),
                           .pipe_stdin = true,
                           .pipe_stdout = true,
                           .pipe_stderr = true,
                           .die_with_parent = dwp};
        assert_int_equal(stw_proc_spawn(&o, &p), -ENOENT);
        o.argv = ARGV("steward-no-such-program-in-path");
        assert_int_equal(stw_proc_spawn(&o, &p), -ENOENT);
        o.argv = ARGV("/etc/passwd");
        assert_int_equal(stw_proc_spawn(&o, &p), -EACCES);
        o.argv = ARGV("/tmp");
        assert_int_equal(stw_proc_spawn(&o, &p), -EACCES);
        /* Errors only the exec itself can see come back from spawn too. */
        o.argv = ARGV("/bin/true");
        o.cwd = "/nonexistent/steward-no-such-dir";
        assert_int_equal(stw_proc_spawn(&o, &p), -ENOENT);
        char script[] = "/tmp/steward-test-noexec-XXXXXX";
        int fd = mkstemp(script);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "no shebang\n", 11), 11);
        close(fd);
        assert_int_equal(chmod(script, 0700), 0);
        o = (stw_proc_opts){.argv = ARGV(script), .pipe_stdout = true, .die_with_parent = dwp};
        assert_int_equal(stw_proc_spawn(&o, &p), -ENOEXEC);
        unlink(script);
        /* A relative program path is looked up in the child's directory. */
        o = (stw_proc_opts){.argv = ARGV("./true"), .cwd = "/", .die_with_parent = dwp};
        assert_int_equal(stw_proc_spawn(&o, &p), -ENOENT);
        assert_null(p);
        o.cwd = "/bin";
        assert_int_equal(stw_proc_spawn(&o, &p), 0);
        int st;
        assert_int_equal(stw_proc_wait(p, stw_deadline_in_ms(10000), &st), 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        stw_proc_free(&p);
        /* An empty PATH entry is the child's directory as well. */
        const char *path = getenv("PATH");
        char *saved = path != NULL ? strdup(path) : NULL;
        setenv("PATH", ":/nonexistent", 1);
        o = (stw_proc_opts){.argv = ARGV("true"), .cwd = "/bin", .die_with_parent = dwp};
        int rc = stw_proc_spawn(&o, &p);
        if (saved != NULL)
            setenv("PATH", saved, 1);
        free(saved);
        assert_int_equal(rc, 0);
        assert_int_equal(stw_proc_wait(p, stw_deadline_in_ms(10000), &st), 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        stw_proc_free(&p);
        o.argv = (const char *const[]){NULL};
        assert_int_equal(stw_proc_spawn(&o, &p), -EINVAL);
        assert_int_equal(stw_proc_spawn(NULL, &p), -EINVAL);
        assert_int_equal(count_fd_records("proc:stdin"), 0);
        assert_int_equal(count_fd_records("proc:exec-error"), 0);
        /* The child that failed to exec is reaped: no zombie is left. */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
    }
}

static void test_proc_pipes(void **state)
{
    (void)state;
    stw_proc *p;
    stw_proc_opts o = {.argv = ARGV("cat"), .pipe_stdin = true, .pipe_stdout = true};
    assert_int_equal(stw_proc_spawn(&o, &p), 0);
    assert_true(stw_proc_stdin_fd(p) >= 0);
    assert_true(stw_proc_stdout_fd(p) >= 0);
    assert_int_equal(stw_proc_stderr_fd(p), -1);
    /* Parent ends must not leak into other children. */
    assert_true(fcntl(stw_proc_stdout_fd(p), F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write(stw_proc_stdin_fd(p), "hello proc\n", 11), 11);
    assert_int_equal(stw_proc_close_stdin(p), 0);
    assert_int_equal(stw_proc_stdin_fd(p), -1);
    assert_int_equal(stw_proc_close_stdin(p), -EBADF);
    char buf[64];
    assert_int_equal(read_until_eof(stw_proc_stdout_fd(p), buf, sizeof(buf), 10000), 11);
    assert_string_equal(buf, "hello proc\n");
    int st;
    assert_int_equal(stw_proc_wait(p, stw_deadline_in_ms(10000), &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    stw_proc_free(&p);

    o = (stw_proc_opts){.argv = ARGV("/bin/sh", "-c", "echo out; echo err >&2"),
                        .pipe_stdout = true,
                        .pipe_stderr = true};
    assert_int_equal(stw_proc_spawn(&o, &p), 0);
    assert_int_equal(stw_proc_close_stdin(p), -EBADF);
    assert_int_equal(read_until_eof(stw_proc_stdout_fd(p), buf, sizeof(buf), 10000), 4);
    assert_string_equal(buf, "out\n");
    assert_int_equal(read_until_eof(stw_proc_stderr_fd(p), buf, sizeof(buf), 10000), 4);
    assert_string_equal(buf, "err\n");
    stw_proc_free(&p);
}

/* The process group of @pid from /proc/PID/stat, or -1. */
static pid_t pgrp_of(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    int ppid, pgrp;
    char st;
    if (paren == NULL || sscanf(paren + 1, " %c %d %d", &st, &ppid, &pgrp) != 3)
        return -1;
    return (pid_t)pgrp;
}

static void test_proc_env_cwd_fds(void **state)
{
    (void)state;
    /* A descriptor the parent forgot to mark close-on-exec. */
    int leaky[2];
    assert_int_equal(stw_pipe(leaky, 0, "test:leaky"), 0);
    for (int dwp = 0; dwp < 2; dwp++) {
        char script[200];
        snprintf(script, sizeof(script),
                 "echo \"$FOO $(pwd)\"; test -e /proc/self/fd/%d && echo open || echo closed; "
                 "ls /proc/self/fd | wc -l; read x; echo \"stdin=[$x]\"",
                 leaky[1]);
        stw_proc *p;
        stw_proc_opts o = {.argv = ARGV("/bin/sh", "-c", script),
                           .envp = ARGV("FOO=bar", "PATH=/usr/bin:/bin"),
                           .cwd = "/",
                           .pipe_stdout = true,
                           .die_with_parent = dwp};
        assert_int_equal(stw_proc_spawn(&o, &p), 0);
        char buf[128];
        read_until_eof(stw_proc_stdout_fd(p), buf, sizeof(buf), 10000);
        /* stdin not piped reads /dev/null: `read` gets EOF at once. ls sees
         * 0, 1, 2 and its own directory descriptor. */
        assert_string_equal(buf, "bar /\nclosed\n4\nstdin=[]\n");
        stw_proc_free(&p);

        o = (stw_proc_opts){.argv = ARGV("sleep", "30"), .die_with_parent = dwp};
        assert_int_equal(stw_proc_spawn(&o, &p), 0);
        assert_int_equal(pgrp_of(stw_proc_pid(p)), stw_proc_pid(p));
        stw_proc_free(&p);
    }
    stw_fd_close(&leaky[0]);
    stw_fd_close(&leaky[1]);
}

static void test_proc_wait_timeout_and_stop(void **state)
{
    (void)state;
    stw_proc *p;
    assert_int_equal(stw_proc_spawn(&(stw_proc_opts){.argv = ARGV("sleep", "30")}, &p), 0);
    int64_t t0 = stw_now_ns();
    int st = 12345;
    assert_int_equal(stw_proc_wait(p, stw_deadline_in_ms(50), &st), -ETIMEDOUT);
    int64_t waited_ms = (stw_now_ns() - t0) / 1000000;
    assert_true(waited_ms >= 50);
    assert_true(waited_ms < 5000);
    assert_int_equal(st, 12345);
    assert_int_equal(stw_proc_wait(p, STW_DEADLINE_NOW, &st), -ETIMEDOUT);
    assert_true(stw_proc_running(p));

    t0 = stw_now_ns();
    assert_int_equal(stw_proc_stop(p, 5000, &st), 0);
    assert_true((stw_now_ns() - t0) / 1000000 < 4000);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    assert_false(stw_proc_running(p));
    /* Idempotent: the same status, no signal to a group id that may be reused. */
    int st2 = -1;
    assert_int_equal(stw_proc_stop(p, 5000, &st2), 0);
    assert_int_equal(st2, st);
    assert_int_equal(stw_proc_wait(p, STW_DEADLINE_NOW, &st2), 0);
    assert_int_equal(st2, st);
    stw_proc_free(&p);
}

static void test_proc_stop_after_exit(void **state)
{
    (void)state;
    stw_proc *p;
    assert_int_equal(stw_proc_spawn(&(stw_proc_opts){.argv = ARGV("true")}, &p), 0);
    stw_deadline d = stw_deadline_in_ms(10000);
    while (stw_proc_running(p) && stw_now_ns() < d)
        usleep(1000);
    assert_false(stw_proc_running(p));
    int st;
    assert_int_equal(stw_proc_stop(p, 1000, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(stw_proc_stop(p, 1000, NULL), 0);
    stw_proc_free(&p);
}

static void test_proc_stop_ignores_term(void **state)
{
    (void)state;
    stw_proc *p;
    stw_proc_opts o = {
        .argv = ARGV("/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"),
        .pipe_stdout = true};
    assert_int_equal(stw_proc_spawn(&o, &p), 0);
    char line[32];
    read_line(stw_proc_stdout_fd(p), line, sizeof(line), 10000);
    assert_string_equal(line, "ready");
    int64_t t0 = stw_now_ns();
    int st;
    assert_int_equal(stw_proc_stop(p, 200, &st), 0);
    int64_t took_ms = (stw_now_ns() - t0) / 1000000;
    assert_true(took_ms >= 200);
    assert_true(took_ms < 5000);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    char text[64];
    assert_int_equal(stw_proc_describe_status(st, text, sizeof(text)), 0);
    assert_string_equal(text, "killed by SIGKILL");
    stw_proc_free(&p);
}

/* The child exits on SIGTERM, but its grandchild ignores SIGTERM: stopping
 * must still leave nothing of the group alive. */
static void test_proc_stop_kills_group(void **state)
{
    (void)state;
    stw_proc *p;
    stw_proc_opts o = {.argv = ARGV("/bin/sh", "-c",
                                    "sh -c 'trap \"\" TERM; echo armed; "
                                    "while :; do sleep 0.05; done' & "
                                    "echo $!; wait"),
                       .pipe_stdout = true};
    assert_int_equal(stw_proc_spawn(&o, &p), 0);
    /* Two lines in either order: the grandchild's pid, and "armed" once
     * the grandchild ignores SIGTERM. */
    char a[32], b[32];
    read_line(stw_proc_stdout_fd(p), a, sizeof(a), 10000);
    read_line(stw_proc_stdout_fd(p), b, sizeof(b), 10000);
    bool a_armed = strcmp(a, "armed") == 0;
    assert_string_equal(a_armed ? a : b, "armed");
    pid_t grandchild = (pid_t)atoi(a_armed ? b : a);
    assert_true(grandchild > 0);
    assert_false(pid_dead(grandchild));
    int st;
    assert_int_equal(stw_proc_stop(p, 3000, &st), 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGTERM);
    assert_true(pid_dies_within(grandchild, 3000));
    stw_proc_free(&p);
}

static void test_proc_free_running(void **state)
{
    (void)state;
    stw_proc *p;
    assert_int_equal(stw_proc_spawn(&(stw_proc_opts){.argv = ARGV("sleep", "30"),
                                                     .pipe_stdin = true,
                                                     .pipe_stdout = true,
                                                     .pipe_stderr = true},
                                    &p),
                     0);
    pid_t pid = stw_proc_pid(p);
    int64_t t0 = stw_now_ns();
    stw_proc_free(&p);
    assert_true((stw_now_ns() - t0) / 1000000 < STW_PROC_FREE_GRACE_MS);
    /* Reaped, not a zombie: the pid is gone. */
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_seen++;
}

/* A parent that blocks and ignores SIGTERM (as a signalfd-based main loop
 * does), and has a handler for SIGUSR1, must still get a child that dies
 * on either signal: on both spawn paths. */
static void test_proc_clean_signal_state(void **state)
{
    (void)state;
    sigset_t term, old_mask;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &term, &old_mask), 0);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_act;
    assert_int_equal(sigaction(SIGTERM, &ign, &old_act), 0);
    struct sigaction usr = {.sa_handler = on_usr1}, old_usr;
    assert_int_equal(sigaction(SIGUSR1, &usr, &old_usr), 0);
    stw_proc *p[4];
    int rc[4];
    for (int i = 0; i < 4; i++)
        rc[i] = stw_proc_spawn(
            &(stw_proc_opts){.argv = ARGV("sleep", "30"), .die_with_parent = i >= 2}, &p[i]);
    sigaction(SIGTERM, &old_act, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rc[i], 0);
    /* Let the children get past exec, where the mask would matter. */
    usleep(20000);
    for (int i = 0; i < 4; i++) {
        int st;
        if (i % 2 == 0) {
            assert_int_equal(stw_proc_stop(p[i], 5000, &st), 0);
            assert_true(WIFSIGNALED(st));
            assert_int_equal(WTERMSIG(st), SIGTERM);
        } else {
            assert_int_equal(kill(stw_proc_pid(p[i]), SIGUSR1), 0);
            assert_int_equal(stw_proc_wait(p[i], stw_deadline_in_ms(5000), &st), 0);
            assert_true(WIFSIGNALED(st));
            assert_int_equal(WTERMSIG(st), SIGUSR1);
        }
        stw_proc_free(&p[i]);
    }
    sigaction(SIGUSR1, &old_usr, NULL);
    assert_int_equal(usr1_seen, 0);
}

static void test_proc_describe_status(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(stw_proc_describe_status(3 << 8, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "exited with code 3");
    assert_int_equal(stw_proc_describe_status(SIGKILL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "killed by SIGKILL");
    assert_int_equal(stw_proc_describe_status(SIGSEGV | 0x80, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "killed by SIGSEGV (core dumped)");
    assert_int_equal(stw_proc_describe_status((SIGSTOP << 8) | 0x7f, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "stopped by SIGSTOP");
    assert_int_equal(stw_proc_describe_status(3 << 8, buf, 8), -ENOSPC);
    assert_string_equal(buf, "exited ");
}

#define SPAWN_THREADS 6
#define SPAWN_EACH 10

struct spawner {
    int idx;
    int ok;
};

static void *spawner_main(void *arg)
{
    struct spawner *s = arg;
    char script[64];
    snprintf(script, sizeof(script), "echo %d; exit %d", s->idx, s->idx);
    for (int i = 0; i < SPAWN_EACH; i++) {
        stw_proc *p;
        stw_proc_opts o = {.argv = ARGV("/bin/sh", "-c", script),
                           .pipe_stdout = true,
                           .die_with_parent = s->idx % 2 == 1};
        if (stw_proc_spawn(&o, &p) != 0)
            continue;
        char buf[16];
        read_until_eof(stw_proc_stdout_fd(p), buf, sizeof(buf), 10000);
        int st;
        if (stw_proc_wait(p, stw_deadline_in_ms(10000), &st) == 0 && WIFEXITED(st) &&
            WEXITSTATUS(st) == s->idx && atoi(buf) == s->idx)
            s->ok++;
        stw_proc_free(&p);
    }
    return NULL;
}

static void test_proc_threads(void **state)
{
    (void)state;
    struct spawner s[SPAWN_THREADS];
    pthread_t t[SPAWN_THREADS];
    for (int i = 0; i < SPAWN_THREADS; i++) {
        s[i] = (struct spawner){.idx = i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, spawner_main, &s[i]), 0);
    }
    for (int i = 0; i < SPAWN_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].ok, SPAWN_EACH);
    }
}

static int proc_scenario(void *ud)
{
    stw_proc *p;
    stw_proc_opts o = {.argv = ARGV("/bin/sh", "-c", "exit 7"),
                       .pipe_stdin = true,
                       .pipe_stdout = true,
                       .pipe_stderr = true,
                       .die_with_parent = ud != NULL};
    int rc = stw_proc_spawn(&o, &p);
    if (rc != 0)
        return rc;
    int st;
    rc = stw_proc_wait(p, stw_deadline_in_ms(10000), &st);
    if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 7))
        rc = -EIO;
    stw_proc_free(&p);
    return rc;
}

static void test_proc_fault_sweep(void **state)
{
    (void)state;
    assert_true(stw_test_fault_sweep(proc_scenario, NULL) >= 2);
    assert_true(stw_test_fault_sweep(proc_scenario, "die_with_parent") >= 2);
}

/* Wait up to @ms for @pid, a child of this process, to exit and reap it.
 * Returns its wait status, or -1 if it is still running. */
static int reap_within(pid_t pid, int ms)
{
    stw_deadline d = stw_deadline_in_ms(ms);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (stw_now_ns() >= d)
            return -1;
        usleep(2000);
    }
}

/*
 * A helper process spawns `sleep 60` and is then killed with SIGKILL, so
 * it runs no cleanup at all. With die_with_parent the sleep must be gone
 * within a second; without it, it lives on (which is what the option is
 * for). The test process is a child subreaper meanwhile, so the orphaned
 * sleep becomes its child: it can check how the sleep ended and reap it.
 */
static pid_t spawn_orphan_candidate(bool dwp, pid_t *helper)
{
    int pfd[2];
    assert_int_equal(stw_pipe(pfd, O_CLOEXEC, "test:helper"), 0);
    pid_t h = fork();
    assert_true(h >= 0);
    if (h == 0) {
        stw_proc *p;
        stw_proc_opts o = {.argv = ARGV("sleep", "60"), .die_with_parent = dwp};
        pid_t pid = stw_proc_spawn(&o, &p) == 0 ? stw_proc_pid(p) : -1;
        if (write(pfd[1], &pid, sizeof(pid)) != sizeof(pid))
            _exit(1);
        for (;;)
            pause();
    }
    pid_t grandchild = -1;
    struct pollfd pl = {.fd = pfd[0], .events = POLLIN};
    assert_int_equal(poll(&pl, 1, 10000), 1);
    assert_int_equal(read(pfd[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
    stw_fd_close(&pfd[0]);
    stw_fd_close(&pfd[1]);
    assert_true(grandchild > 0);
    *helper = h;
    return grandchild;
}

static void test_proc_die_with_parent(void **state)
{
    (void)state;
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    for (int dwp = 1; dwp >= 0; dwp--) {
        pid_t helper;
        pid_t grandchild = spawn_orphan_candidate(dwp, &helper);
        assert_false(pid_dead(grandchild));
        assert_int_equal(kill(helper, SIGKILL), 0);
        int st = reap_within(helper, 10000);
        assert_true(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        if (dwp) {
            st = reap_within(grandchild, 1000);
            assert_true(st != -1);
            assert_true(WIFSIGNALED(st));
            assert_int_equal(WTERMSIG(st), SIGKILL);
        } else {
            assert_int_equal(reap_within(grandchild, 200), -1);
            kill(grandchild, SIGKILL);
            st = reap_within(grandchild, 10000);
            assert_true(st != -1 && WIFSIGNALED(st));
        }
    }
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void *spawn_and_return(void *arg)
{
    stw_proc **p = arg;
    stw_proc_opts o = {.argv = ARGV("sleep", "30"), .die_with_parent = true};
    if (stw_proc_spawn(&o, p) != 0)
        *p = NULL;
    return NULL;
}

/* The documented sharp edge: the signal follows the spawning thread, so a
 * thread that returns without stopping its child takes the child down. */
static void test_proc_die_with_spawning_thread(void **state)
{
    (void)state;
    stw_proc *p = NULL;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, spawn_and_return, &p), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(p);
    int st;
    assert_int_equal(stw_proc_wait(p, stw_deadline_in_ms(1000), &st), 0);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    stw_proc_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_proc_exit_status),
        STW_TEST(test_proc_spawn_errors),
        STW_TEST(test_proc_pipes),
        STW_TEST(test_proc_env_cwd_fds),
        STW_TEST(test_proc_wait_timeout_and_stop),
        STW_TEST(test_proc_stop_after_exit),
        STW_TEST(test_proc_stop_ignores_term),
        STW_TEST(test_proc_stop_kills_group),
        STW_TEST(test_proc_free_running),
        STW_TEST(test_proc_clean_signal_state),
        STW_TEST(test_proc_describe_status),
        STW_TEST(test_proc_threads),
        STW_TEST(test_proc_fault_sweep),
        STW_TEST(test_proc_die_with_parent),
        STW_TEST(test_proc_die_with_spawning_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
