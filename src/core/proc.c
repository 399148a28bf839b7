#include "steward/proc.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

struct stw_proc {
    pid_t pid;
    int pidfd;   /* -1 once reaped, or when the kernel has no pidfd_open */
    int fds[3];  /* parent ends: stdin (write), stdout and stderr (read) */
    bool reaped; /* the pid is gone: waited for, or reaped by someone else */
    bool stolen; /* someone else reaped it, status unknown */
    int status;
    char *label; /* opts.label or argv[0], the PROCESS record's label */
};

static const char *const stream_label[3] = {"proc:stdin", "proc:stdout", "proc:stderr"};

/* Give @*fd a number >= 3 so that the dup2 actions that build the child's
 * 0, 1 and 2 cannot overwrite each other's sources, as they could if the
 * parent runs with some of its standard descriptors closed. 0 or -errno. */
static int move_above_stdio(int *fd, const char *label)
{
    if (*fd > STDERR_FILENO)
        return 0;
    int nfd = stw_fd_track(fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1), STW_KIND_FD, label);
    if (nfd < 0)
        return nfd;
    stw_fd_close(fd);
    *fd = nfd;
    return 0;
}

/* Pipes for the streams the caller asked for: parent ends in p->fds,
 * child ends in @child. On failure the caller closes what was opened. */
static int open_pipes(stw_proc *p, const stw_proc_opts *o, int child[3])
{
    const bool want[3] = {o->pipe_stdin, o->pipe_stdout, o->pipe_stderr};
    for (int i = 0; i < 3; i++) {
        if (!want[i])
            continue;
        int pfd[2];
        int rc = stw_pipe(pfd, O_CLOEXEC, stream_label[i]);
        if (rc != 0)
            return rc;
        /* The child reads its stdin and writes its stdout and stderr. */
        p->fds[i] = i == 0 ? pfd[1] : pfd[0];
        child[i] = i == 0 ? pfd[0] : pfd[1];
        rc = move_above_stdio(&child[i], stream_label[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int build_actions(posix_spawn_file_actions_t *fa, const stw_proc_opts *o, const int child[3])
{
    int rc = posix_spawn_file_actions_init(fa);
    if (rc != 0)
        return -rc;
    if (child[0] >= 0)
        rc = posix_spawn_file_actions_adddup2(fa, child[0], STDIN_FILENO);
    else
        rc = posix_spawn_file_actions_addopen(fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    for (int i = 1; i < 3 && rc == 0; i++) {
        if (child[i] >= 0)
            rc = posix_spawn_file_actions_adddup2(fa, child[i], i);
    }
    /* The child must not hold the parent's sockets and files open (a relay
     * socket kept alive by ffmpeg is a leak nobody can see). */
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
    if (rc == 0 && o->cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(fa);
        return -rc;
    }
    return 0;
}

static int build_attr(posix_spawnattr_t *attr)
{
    int rc = posix_spawnattr_init(attr);
    if (rc != 0)
        return -rc;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    /* A parent that blocks SIGTERM for its signalfd, or ignores SIGPIPE,
     * must not hand that to the child: it would ignore our stop request. */
    rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(attr, &all);
    if (rc != 0) {
        posix_spawnattr_destroy(attr);
        return -rc;
    }
    return 0;
}

/* Whether @path names a file execve() would accept (as far as the
 * permission bits tell). 0 or -errno, -EACCES for a non-regular file. */
static int check_executable(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) != 0)
        return -errno;
    return 0;
}

/* Join @dir and @file into @buf as the child will see them: relative to
 * @cwd when one is given. False if the result does not fit. */
static bool child_path(char *buf, size_t cap, const char *cwd, const char *dir, size_t dlen,
                       const char *file)
{
    bool rel = dlen == 0 || dir[0] != '/';
    int n = snprintf(buf, cap, "%s%s%.*s%s%s", rel && cwd != NULL ? cwd : "",
                     rel && cwd != NULL ? "/" : "", (int)dlen, dir, dlen > 0 ? "/" : "", file);
    return n >= 0 && (size_t)n < cap;
}

/*
 * Find @file the way posix_spawnp() will, and report why it cannot be
 * executed. glibc's posix_spawnp already returns the exec error, but only
 * where its vfork-style clone works (not under valgrind or qemu-user, not
 * in older or other C libraries); checking first makes "program not found"
 * an error from spawn everywhere. A file that disappears between the check
 * and the exec still ends as exit code 127 on those platforms.
 *
 * On success @exec (@cap bytes) holds the path to hand to execve() once the
 * child has changed to @cwd: the PATH search is done here, because the
 * child of the die-with-parent path may not allocate.
 */
static int check_program(const char *file, const char *cwd, char *exec, size_t cap)
{
    char buf[PATH_MAX];
    if (file[0] == '\0')
        return -ENOENT;
    if (strchr(file, '/') != NULL) {
        if (!child_path(exec, cap, NULL, "", 0, file))
            return -ENAMETOOLONG;
        if (file[0] == '/')
            return check_executable(file);
        if (!child_path(buf, sizeof(buf), cwd, "", 0, file))
            return -ENAMETOOLONG;
        return check_executable(buf);
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    int err = -ENOENT;
    for (const char *dir = path;; dir++) {
        const char *end = strchrnul(dir, ':');
        /* An empty PATH entry means the current directory. */
        const char *d = dir == end ? "." : dir;
        size_t dlen = dir == end ? 1 : (size_t)(end - dir);
        if (child_path(buf, sizeof(buf), cwd, d, dlen, file)) {
            int rc = check_executable(buf);
            if (rc == 0)
                return child_path(exec, cap, NULL, d, dlen, file) ? 0 : -ENAMETOOLONG;
            /* Like execvp: a file found but not executable beats "not found". */
            if (rc == -EACCES)
                err = rc;
        }
        if (*end == '\0')
            return err;
        dir = end;
    }
}

/*
 * The die-with-parent path. posix_spawn cannot set PR_SET_PDEATHSIG, so
 * this clones the child itself, the way glibc's posix_spawn does: CLONE_VM
 * | CLONE_VFORK on a stack of its own, the parent thread suspended until
 * the child has called execve() or exited. The child shares the parent's
 * memory, so it may only make async-signal-safe calls, must not touch
 * anything the parent or its other threads use, and is not instrumented
 * (a sanitizer would book its stack frames in shadow memory the parent
 * keeps). An exec failure travels back as an errno through a
 * close-on-exec pipe, which also works where CLONE_VFORK is emulated by
 * a fork (valgrind).
 */
#define SPAWN_STACK_SIZE (64 * 1024)

#if defined(__clang__) || __GNUC__ >= 8
#define CHILD_SIDE __attribute__((no_sanitize("address", "undefined"), noinline))
#else
#define CHILD_SIDE __attribute__((noinline))
#endif

struct spawn_args {
    const char *path;  /* to execve(), after the chdir */
    char *const *argv; /* borrowed from the caller */
    char *const *envp; /* borrowed from the caller, or environ */
    const char *cwd;   /* NULL = stay */
    int child[3];      /* child ends >= 3 for 0, 1, 2; -1 = not piped */
    int errfd;         /* write end of the exec-error pipe, >= 3 */
    pid_t parent;      /* getpid() before the clone */
};

static CHILD_SIDE __attribute__((noreturn)) void child_fail(int errfd, int err)
{
    ssize_t n;
    do
        n = write(errfd, &err, sizeof(err));
    while (n < 0 && errno == EINTR);
    _exit(127);
}

/* Close every descriptor from @from to @to (inclusive) in the child. */
static CHILD_SIDE void child_close_range(unsigned from, unsigned to)
{
    if (from > to)
        return;
    if (close_range(from, to, 0) == 0)
        return;
    /* Kernels before 5.9: close one by one up to the descriptor limit. */
    struct rlimit rl;
    unsigned max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max)
        max = (unsigned)rl.rlim_cur;
    for (unsigned fd = from; fd <= to && fd < max; fd++)
        close((int)fd);
}

static CHILD_SIDE int child_main(void *arg)
{
    const struct spawn_args *a = arg;
    /* First, so the window in which the parent's death goes unnoticed is as
     * short as it can be; the getppid() test closes it: had the parent
     * died before the prctl, the child would already be someone else's. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        child_fail(a->errfd, errno);
    if (getppid() != a->parent)
        _exit(127);
    if (setpgid(0, 0) != 0)
        child_fail(a->errfd, errno);

    /* The parent blocked every signal around the clone, so no handler of
     * its can run here on shared memory. Reset every disposition (the
     * handlers would survive until exec, SIG_IGN beyond it), then let the
     * program start with an empty mask. glibc's reserved signals fail with
     * EINVAL, which is fine. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    }

    if (a->child[0] < 0) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0)
            child_fail(a->errfd, errno);
        if (null == STDIN_FILENO) {
            if (fcntl(null, F_SETFD, 0) != 0)
                child_fail(a->errfd, errno);
        } else if (dup2(null, STDIN_FILENO) < 0) {
            child_fail(a->errfd, errno);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (a->child[i] >= 0 && dup2(a->child[i], i) < 0)
            child_fail(a->errfd, errno);
    }
    /* Nothing but 0, 1, 2 and the error pipe (close-on-exec) survives. */
    child_close_range(STDERR_FILENO + 1, (unsigned)a->errfd - 1);
    child_close_range((unsigned)a->errfd + 1, ~0U);
    if (a->cwd != NULL && chdir(a->cwd) != 0)
        child_fail(a->errfd, errno);

    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(a->path, a->argv, a->envp);
    child_fail(a->errfd, errno);
}

/* Start the child of @o with PR_SET_PDEATHSIG = SIGKILL; its stdio ends
 * are @child (>= 3 or -1). Sets p->pid. 0 or -errno; no child is left on
 * failure. */
static int spawn_die_with_parent(stw_proc *p, const stw_proc_opts *o, const char *path,
                                 const int child[3])
{
    int ep[2];
    int rc = stw_pipe(ep, O_CLOEXEC, "proc:exec-error");
    if (rc != 0)
        return rc;
    rc = move_above_stdio(&ep[1], "proc:exec-error");
    if (rc != 0)
        goto close_pipe;
    void *stack = mmap(NULL, SPAWN_STACK_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        rc = -errno;
        goto close_pipe;
    }
    stw_ledger_record(STW_KIND_MMAP, (uint64_t)(uintptr_t)stack, SPAWN_STACK_SIZE,
                      "proc:spawn-stack");

    struct spawn_args a = {
        .path = path,
        .argv = (char *const *)o->argv,
        .envp = o->envp != NULL ? (char *const *)o->envp : environ,
        .cwd = o->cwd,
        .child = {child[0], child[1], child[2]},
        .errfd = ep[1],
        .parent = getpid(),
    };
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The stack grows down on every architecture this builds for. */
    pid_t pid =
        clone(child_main, (char *)stack + SPAWN_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    int clone_err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* The child has exec'd or exited: its stack is free. */
    stw_ledger_release(STW_KIND_MMAP, (uint64_t)(uintptr_t)stack);
    munmap(stack, SPAWN_STACK_SIZE);
    stw_fd_close(&ep[1]);
    if (pid < 0) {
        rc = -clone_err;
        goto close_pipe;
    }
    /* Where CLONE_VFORK is emulated by a fork the child may not have run
     * yet: make it a group leader from here too, so a stop cannot miss it. */
    setpgid(pid, pid);

    int err = 0;
    ssize_t n;
    do
        n = read(ep[0], &err, sizeof(err));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(err)) {
        /* It failed before or at the exec and has exited: reap it. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        rc = err > 0 ? -err : -EIO;
        goto close_pipe;
    }
    p->pid = pid;
    rc = 0;
close_pipe:
    stw_fd_close(&ep[0]);
    stw_fd_close(&ep[1]);
    return rc;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        return stw_fd_track(fd, STW_KIND_FD, "proc:pidfd");
#else
    (void)pid;
#endif
    return -1;
}

int stw_proc_spawn(const stw_proc_opts *o, stw_proc **out)
{
    if (o == NULL || o->argv == NULL || o->argv[0] == NULL)
        return -EINVAL;
    char path[PATH_MAX];
    int rc = check_program(o->argv[0], o->cwd, path, sizeof(path));
    if (rc != 0)
        return rc;
    int child[3] = {-1, -1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    stw_proc *p = stw_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->pid = -1;
    p->pidfd = -1;
    p->fds[0] = p->fds[1] = p->fds[2] = -1;
    p->label = stw_strdup(o->label != NULL ? o->label : o->argv[0]);
    rc = -ENOMEM;
    if (p->label == NULL)
        goto free_proc;

    rc = open_pipes(p, o, child);
    if (rc != 0)
        goto close_pipes;
    if (o->die_with_parent) {
        rc = spawn_die_with_parent(p, o, path, child);
        goto close_pipes;
    }
    rc = build_actions(&fa, o, child);
    if (rc != 0)
        goto close_pipes;
    rc = build_attr(&attr);
    if (rc != 0)
        goto destroy_actions;

    /* glibc's posix_spawnp waits for the exec (CLONE_VFORK) and returns its
     * error, so an exec failure is an error here, not an exit code 127. */
    char *const *envp = o->envp != NULL ? (char *const *)o->envp : environ;
    rc = -posix_spawnp(&p->pid, o->argv[0], &fa, &attr, (char *const *)o->argv, envp);
    posix_spawnattr_destroy(&attr);
destroy_actions:
    posix_spawn_file_actions_destroy(&fa);
close_pipes:
    for (int i = 0; i < 3; i++) {
        stw_fd_close(&child[i]);
        if (rc != 0)
            stw_fd_close(&p->fds[i]);
    }
    if (rc != 0)
        goto free_label;

    stw_ledger_record(STW_KIND_PROCESS, (uint64_t)p->pid, 0, p->label);
    p->pidfd = open_pidfd(p->pid);
    *out = p;
    return 0;

free_label:
    stw_free(p->label);
free_proc:
    stw_free(p);
    return rc;
}

pid_t stw_proc_pid(const stw_proc *p)
{
    return p->pid;
}

int stw_proc_stdin_fd(const stw_proc *p)
{
    return p->fds[0];
}

int stw_proc_stdout_fd(const stw_proc *p)
{
    return p->fds[1];
}

int stw_proc_stderr_fd(const stw_proc *p)
{
    return p->fds[2];
}

int stw_proc_close_stdin(stw_proc *p)
{
    if (p->fds[0] < 0)
        return -EBADF;
    return stw_fd_close(&p->fds[0]);
}

/* The pid no longer names our child: drop its record and the pidfd. */
static void mark_reaped(stw_proc *p, int status, bool stolen)
{
    p->reaped = true;
    p->stolen = stolen;
    p->status = status;
    stw_ledger_release(STW_KIND_PROCESS, (uint64_t)p->pid);
    stw_fd_close(&p->pidfd);
}

/* Wait until the child has exited, without reaping it, so its pid and
 * process group id stay reserved. 0, -ETIMEDOUT or -ECHILD. */
static int wait_exit(stw_proc *p, stw_deadline d)
{
    if (p->pidfd >= 0) {
        for (;;) {
            struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
            int n = poll(&pfd, 1, stw_deadline_poll_ms(d));
            if (n > 0)
                return 0;
            if (n == 0 && stw_now_ns() >= d)
                return -ETIMEDOUT;
            if (n < 0 && errno != EINTR)
                return -errno;
        }
    }
    /* Without pidfds: poll waitid, sleeping 1 ms at first and backing off
     * to 10 ms, so short-lived children are noticed quickly. */
    int64_t step = 1000000;
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (si.si_pid != 0)
            return 0;
        int64_t left = d - stw_now_ns();
        if (left <= 0)
            return -ETIMEDOUT;
        int64_t ns = left < step ? left : step;
        struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
        nanosleep(&ts, NULL);
        if (step < 10000000)
            step *= 2;
    }
}

/* True while a process of group @pgid is alive. kill(-pgid, 0) alone
 * cannot say: a straggler that died is a zombie of init's until init reaps
 * it, which some inits (containers' in particular) do only every few
 * seconds, and a zombie holds nothing. So when the group is not empty,
 * look for a member that is not a zombie in /proc. */
static bool group_alive(pid_t pgid)
{
    if (kill(-pgid, 0) != 0)
        return false;
    int dfd = stw_fd_track(open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC), STW_KIND_FD,
                           "dir:proc-group-scan");
    if (dfd < 0)
        return true;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        stw_fd_close(&dfd);
        return true;
    }
    bool alive = false;
    struct dirent *e;
    while (!alive && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[sizeof("/proc//stat") + sizeof(e->d_name)], buf[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        int fd = stw_fd_track(open(path, O_RDONLY | O_CLOEXEC), STW_KIND_FD, "file:proc-stat");
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        stw_fd_close(&fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        /* "pid (comm) S ppid pgrp ...": comm may hold anything, even ')'. */
        const char *rp = strrchr(buf, ')');
        char state;
        long ppid, pgrp;
        if (rp != NULL && sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 &&
            pgrp == (long)pgid && state != 'Z' && state != 'X')
            alive = true;
    }
    stw_fd_untrack(dfd);
    closedir(d);
    return alive;
}

/* A SIGKILLed straggler of the group has been sent the signal, not yet
 * died of it: on a busy machine it can go on holding what it inherited (a
 * lock, a listening port, a camera's only session) for milliseconds, and a
 * supervisor restarting at once would meet it. Wait until no member is
 * alive, up to STRAGGLER_WAIT_MS (a process in uninterruptible sleep can
 * outlast any wait; this bounds the caller's). */
#define STRAGGLER_WAIT_MS 200

static void wait_group_gone(pid_t pgid)
{
    stw_deadline d = stw_deadline_in_ms(STRAGGLER_WAIT_MS);
    while (group_alive(pgid) && stw_now_ns() < d) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Reap a child wait_exit() saw exit; waitpid does not block then. */
static int reap(stw_proc *p)
{
    int st;
    pid_t r;
    do
        r = waitpid(p->pid, &st, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int err = errno;
        mark_reaped(p, 0, true);
        return -err;
    }
    mark_reaped(p, st, false);
    return 0;
}

static int reaped_result(const stw_proc *p, int *status)
{
    if (p->stolen)
        return -ECHILD;
    if (status != NULL)
        *status = p->status;
    return 0;
}

int stw_proc_wait(stw_proc *p, stw_deadline d, int *status)
{
    if (!p->reaped) {
        int rc = wait_exit(p, d);
        if (rc == -ETIMEDOUT)
            return rc;
        if (rc == 0)
            rc = reap(p);
        else
            mark_reaped(p, 0, true);
        if (rc != 0)
            return rc;
    }
    return reaped_result(p, status);
}

int stw_proc_stop(stw_proc *p, int grace_ms, int *status)
{
    if (!p->reaped) {
        pid_t pgid = p->pid;
        kill(-pgid, SIGTERM);
        int rc = wait_exit(p, stw_deadline_in_ms(grace_ms < 0 ? 0 : grace_ms));
        if (rc == -ETIMEDOUT) {
            kill(-pgid, SIGKILL);
            rc = wait_exit(p, STW_DEADLINE_NEVER);
        }
        if (rc == 0) {
            /* The leader is a zombie, so the group id is still ours: take
             * down whatever it left behind before the id can be reused. */
            kill(-pgid, SIGKILL);
            rc = reap(p);
            wait_group_gone(pgid);
        } else {
            mark_reaped(p, 0, true);
        }
        if (rc != 0)
            return rc;
    }
    return reaped_result(p, status);
}

bool stw_proc_running(stw_proc *p)
{
    if (p->reaped)
        return false;
    int rc = wait_exit(p, STW_DEADLINE_NOW);
    if (rc == -ETIMEDOUT)
        return true;
    if (rc != 0)
        mark_reaped(p, 0, true);
    return false;
}

void stw_proc_free(stw_proc **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    stw_proc *p = *pp;
    *pp = NULL;
    if (!p->reaped)
        stw_proc_stop(p, STW_PROC_FREE_GRACE_MS, NULL);
    for (int i = 0; i < 3; i++)
        stw_fd_close(&p->fds[i]);
    stw_free(p->label);
    stw_free(p);
}

int stw_proc_describe_status(int status, char *buf, size_t len)
{
    int n;
    if (WIFEXITED(status)) {
        n = snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status) || WIFSTOPPED(status)) {
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : WSTOPSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        const char *verb = WIFSIGNALED(status) ? "killed" : "stopped";
        const char *core = WIFSIGNALED(status) && WCOREDUMP(status) ? " (core dumped)" : "";
        if (abbrev != NULL)
            n = snprintf(buf, len, "%s by SIG%s%s", verb, abbrev, core);
        else
            n = snprintf(buf, len, "%s by signal %d%s", verb, sig, core);
    } else {
        n = snprintf(buf, len, "unknown wait status 0x%x", (unsigned)status);
    }
    return n >= 0 && (size_t)n < len ? 0 : -ENOSPC;
}
