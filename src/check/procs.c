/*
 * Child processes: fork, _Fork, posix_spawn, posix_spawnp and popen book a
 * STW_KIND_PROCESS record (id = pid) in the parent; the wait family
 * releases it when it reports that child's end, pclose when it reaps the
 * popen child. system() is not hooked: it waits for its child itself.
 *
 * vfork is not hooked: the child borrows the parent's stack, so a hook
 * would return twice from one frame. Its children (and those of raw clone
 * calls) are found at exit instead, by reconciliation with /proc: a child
 * of this process that the ledger does not know is booked then, without a
 * creation stack. Children the process already had when it started
 * (inherited across exec) are not its doing and are left out.
 *
 * popen creates its child inside glibc, through calls no hook sees; the
 * pid is read from glibc's popen stream (struct _IO_proc_file: the FILE,
 * its vtable pointer, then the pid) and used only when /proc confirms that
 * pid is a child of this process.
 *
 * All /proc reading goes through raw system calls so that no hook (and no
 * descriptor bookkeeping) is involved.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

static bool tracking(void)
{
    return stw__check_tracking(STW_KIND_PROCESS);
}

/* ---- labels ---- */

/* Label storage is permanent: a program that spawns the same command over
 * and over reuses one copy. A slot may be overwritten by another label;
 * that only costs a fresh copy. */
#define LABEL_SLOTS 64
static const char *_Atomic label_cache[LABEL_SLOTS];

static const char *intern_label(const char *prefix, const char *what)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s%s", prefix, what != NULL ? what : "?");
    uint64_t h = UINT64_C(1469598103934665603);
    for (const char *p = tmp; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    const char *_Atomic *slot = &label_cache[h % LABEL_SLOTS];
    const char *c = atomic_load_explicit(slot, memory_order_acquire);
    if (c != NULL && strcmp(c, tmp) == 0)
        return c;
    c = stw__check_label("%s", tmp);
    atomic_store_explicit(slot, c, memory_order_release);
    return c;
}

/* ---- /proc, through raw system calls ---- */

static ssize_t read_small(const char *path, char *buf, size_t len)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = syscall(SYS_read, fd, buf, len - 1);
    syscall(SYS_close, fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

typedef struct pstat {
    char state;
    long ppid;
    unsigned long long start; /* clock ticks since boot */
    char comm[32];
} pstat;

/* Fields of /proc/PID/stat. The command may hold spaces and parentheses:
 * it ends at the last ')'. */
static bool read_stat(long pid, pstat *out)
{
    char path[48], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (read_small(path, buf, sizeof(buf)) <= 0)
        return false;
    char *open = strchr(buf, '(');
    char *close = strrchr(buf, ')');
    if (open == NULL || close == NULL || close < open || close[1] != ' ')
        return false;
    size_t clen = (size_t)(close - open - 1);
    if (clen >= sizeof(out->comm))
        clen = sizeof(out->comm) - 1;
    memcpy(out->comm, open + 1, clen);
    out->comm[clen] = '\0';
    char *p = close + 2;
    out->state = *p;
    /* Field 3 is the state; the start time is field 22. */
    int field = 3;
    out->ppid = -1;
    out->start = 0;
    while (*p != '\0' && field < 22) {
        p = strchr(p, ' ');
        if (p == NULL)
            return false;
        p++;
        field++;
        if (field == 4)
            out->ppid = strtol(p, NULL, 10);
    }
    out->start = strtoull(p, NULL, 10);
    return field == 22;
}

const char *stw__proc_state(uint64_t pid)
{
    pstat st;
    int saved = errno;
    bool ok = read_stat((long)pid, &st);
    errno = saved;
    /* A pid that is no longer our child was reaped by a call the checker
     * does not see (or automatically, with SIGCHLD ignored) and perhaps
     * reused by someone else. */
    if (!ok || st.ppid != (long)getpid() || st.state == 'X' || st.state == 'x')
        return "gone (reaped without the checker seeing it)";
    if (st.state == 'Z')
        return "zombie (exited, never reaped)";
    return "running";
}

/* ---- booking ---- */

/* Drop a record left for @pid by a child that was reaped behind our back:
 * the kernel just handed the same pid to a new child. */
static void forget_stale(pid_t pid)
{
    stw__ledger_remove(STW_KIND_PROCESS, (uint64_t)pid);
}

static void reaped(pid_t pid)
{
    if (pid > 0 && stw__check_ready())
        stw__ledger_remove(STW_KIND_PROCESS, (uint64_t)pid);
}

STW_HOOK pid_t fork(void)
{
    STW_REAL(pid_t, fork, (void));
    pid_t pid = real_fork();
    /* The child keeps books of its own from here (see preload.c). */
    if (pid == 0) {
        int saved = errno;
        stw__check_forked(1);
        errno = saved;
    }
    if (pid > 0) {
        int saved = errno;
        if (tracking()) {
            forget_stale(pid);
            stw__check_record(STW_KIND_PROCESS, (uint64_t)pid, 0, "process:fork", 1);
        }
        errno = saved;
    }
    return pid;
}

STW_HOOK pid_t _Fork(void)
{
    STW_REAL(pid_t, _Fork, (void));
    pid_t pid = real__Fork();
    if (pid > 0) {
        int saved = errno;
        if (tracking()) {
            forget_stale(pid);
            stw__check_record(STW_KIND_PROCESS, (uint64_t)pid, 0, "process:fork", 1);
        }
        errno = saved;
    }
    return pid;
}

static const char *spawn_label(const char *path, char *const argv[])
{
    const char *what = argv != NULL && argv[0] != NULL ? argv[0] : path;
    return intern_label("process:", what);
}

/* Book a child posix_spawn(p) started. */
static __attribute__((noinline)) void note_spawn(pid_t child, const char *path, char *const argv[])
{
    if (!tracking())
        return;
    forget_stale(child);
    /* skip 2: this function and the interposed posix_spawn(p). */
    stw__check_record(STW_KIND_PROCESS, (uint64_t)child, 0, spawn_label(path, argv), 2);
}

STW_HOOK int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                         const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    STW_REAL(int, posix_spawn,
             (pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
              char *const[], char *const[]));
    pid_t local;
    int rc = real_posix_spawn(pid != NULL ? pid : &local, path, fa, attr, argv, envp);
    int saved = errno;
    if (rc == 0)
        note_spawn(pid != NULL ? *pid : local, path, argv);
    errno = saved;
    return rc;
}

STW_HOOK int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    STW_REAL(int, posix_spawnp,
             (pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
              char *const[], char *const[]));
    pid_t local;
    int rc = real_posix_spawnp(pid != NULL ? pid : &local, file, fa, attr, argv, envp);
    int saved = errno;
    if (rc == 0)
        note_spawn(pid != NULL ? *pid : local, file, argv);
    errno = saved;
    return rc;
}

/* ---- popen ---- */

/* glibc's popen stream: struct _IO_proc_file { struct _IO_FILE_plus file;
 * pid_t pid; ... }, where _IO_FILE_plus is the FILE and a vtable pointer.
 * Trusted only when /proc says the pid is our child. */
static pid_t popen_pid(FILE *f)
{
    pid_t pid;
    memcpy(&pid, (const char *)f + sizeof(FILE) + sizeof(void *), sizeof(pid));
    if (pid <= 0)
        return 0;
    pstat st;
    if (!read_stat(pid, &st) || st.ppid != (long)getpid())
        return 0;
    return pid;
}

STW_HOOK FILE *popen(const char *command, const char *type)
{
    STW_REAL(FILE *, popen, (const char *, const char *));
    FILE *f = real_popen(command, type);
    if (f == NULL || !stw__check_ready())
        return f;
    int saved = errno;
    if ((stw__copts.kinds & STW_KIND_BIT(STW_KIND_FILE)) != 0 && stw_ledger_guard_enter()) {
        stw_ledger_guard_exit();
        stw__check_record(STW_KIND_FILE, (uint64_t)(uintptr_t)f, 0, intern_label("popen:", command),
                          1);
    }
    if (tracking()) {
        pid_t pid = popen_pid(f);
        if (pid > 0) {
            forget_stale(pid);
            stw__check_record(STW_KIND_PROCESS, (uint64_t)pid, 0, intern_label("process:", command),
                              1);
        }
    }
    errno = saved;
    return f;
}

STW_HOOK int pclose(FILE *f)
{
    STW_REAL(int, pclose, (FILE *));
    /* The pid must be read before pclose frees the stream. */
    pid_t pid = 0;
    if (stw__check_ready() && f != NULL) {
        int saved = errno;
        pid = popen_pid(f);
        stw__ledger_remove(STW_KIND_FILE, (uint64_t)(uintptr_t)f);
        errno = saved;
    }
    int rc = real_pclose(f);
    int saved = errno;
    /* pclose reaps the child unless it failed to wait (then the child is
     * still there to be reaped, or already was by someone else). */
    if (rc != -1)
        reaped(pid);
    errno = saved;
    return rc;
}

/* ---- reaping ---- */

static bool ended(int status)
{
    return WIFEXITED(status) || WIFSIGNALED(status);
}

STW_HOOK pid_t wait(int *status)
{
    STW_REAL(pid_t, wait, (int *));
    int local;
    pid_t pid = real_wait(status != NULL ? status : &local);
    int saved = errno;
    if (pid > 0 && ended(status != NULL ? *status : local))
        reaped(pid);
    errno = saved;
    return pid;
}

STW_HOOK pid_t waitpid(pid_t which, int *status, int options)
{
    STW_REAL(pid_t, waitpid, (pid_t, int *, int));
    int local;
    pid_t pid = real_waitpid(which, status != NULL ? status : &local, options);
    int saved = errno;
    /* WNOHANG with nothing to report returns 0; a stopped or continued
     * child (WUNTRACED, WCONTINUED) is still there. */
    if (pid > 0 && ended(status != NULL ? *status : local))
        reaped(pid);
    errno = saved;
    return pid;
}

STW_HOOK pid_t wait3(int *status, int options, struct rusage *ru)
{
    STW_REAL(pid_t, wait3, (int *, int, struct rusage *));
    int local;
    pid_t pid = real_wait3(status != NULL ? status : &local, options, ru);
    int saved = errno;
    if (pid > 0 && ended(status != NULL ? *status : local))
        reaped(pid);
    errno = saved;
    return pid;
}

STW_HOOK pid_t wait4(pid_t which, int *status, int options, struct rusage *ru)
{
    STW_REAL(pid_t, wait4, (pid_t, int *, int, struct rusage *));
    int local;
    pid_t pid = real_wait4(which, status != NULL ? status : &local, options, ru);
    int saved = errno;
    if (pid > 0 && ended(status != NULL ? *status : local))
        reaped(pid);
    errno = saved;
    return pid;
}

STW_HOOK int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
    STW_REAL(int, waitid, (idtype_t, id_t, siginfo_t *, int));
    siginfo_t local;
    siginfo_t *si = info != NULL ? info : &local;
    int rc = real_waitid(idtype, id, si, options);
    int saved = errno;
    /* WNOWAIT leaves the child waitable: it is not reaped yet. */
    if (rc == 0 && (options & WNOWAIT) == 0 && si->si_pid > 0 &&
        (si->si_code == CLD_EXITED || si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED))
        reaped(si->si_pid);
    errno = saved;
    return rc;
}

/* ---- reconciliation at exit ---- */

static pid_t main_pid;
/* Children born up to this clock tick (the resolution of their start
 * times) may have been inherited across exec; 0 when there were none. */
static unsigned long long start_ticks;

struct dirent64_raw {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* Book every child of this process the ledger does not know and that was
 * born after the checker started. */
/* True when the process has no child at all, running or zombie: then
 * there is nothing for reconcile() to find, and a short-lived program is
 * spared reading the stat of every process on the machine. The raw call:
 * not the program's, not to be booked; it neither reaps nor waits. */
static bool no_children(void)
{
    siginfo_t si;
    long rc = syscall(SYS_waitid, P_ALL, 0, &si,
                      WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT, NULL);
    return rc < 0 && errno == ECHILD;
}

static void reconcile(void)
{
    if (no_children())
        return;
    int dfd = (int)syscall(SYS_openat, AT_FDCWD, "/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return;
    long self = (long)getpid();
    char buf[8192];
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            const struct dirent64_raw *d = (const struct dirent64_raw *)(buf + off);
            off += d->reclen;
            char *end;
            long pid = strtol(d->name, &end, 10);
            pstat st;
            if (*end != '\0' || pid <= 0 || pid == self || !read_stat(pid, &st) ||
                st.ppid != self || (start_ticks != 0 && st.start <= start_ticks))
                continue;
            stw_record r;
            if (stw_ledger_lookup(STW_KIND_PROCESS, (uint64_t)pid, &r) == 0)
                continue;
            char what[96];
            snprintf(what, sizeof(what),
                     "%s (made by a call the checker does not hook: vfork, "
                     "clone)",
                     st.comm);
            stw__ledger_insert(STW_KIND_PROCESS, (uint64_t)pid, 0, 0,
                               intern_label("process:", what));
        }
    }
    syscall(SYS_close, dfd);
}

__attribute__((constructor(102))) static void procs_ctor(void)
{
    main_pid = getpid();
    /* Whether there are any children at all, without reaping or waiting
     * (the raw call: not the program's, not to be booked). */
    int saved = errno;
    bool none = no_children();
    errno = saved;
    if (none)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    long hz = sysconf(_SC_CLK_TCK);
    start_ticks = (unsigned long long)ts.tv_sec * (unsigned long long)hz +
                  (unsigned long long)ts.tv_nsec / (1000000000ull / (unsigned long long)hz);
}

void stw__procs_reconcile(void)
{
    /* Only the process the checker reports for: forked children stay
     * silent. */
    if (getpid() != main_pid || !stw__check_ready() ||
        (stw__copts.kinds & STW_KIND_BIT(STW_KIND_PROCESS)) == 0)
        return;
    int saved = errno;
    reconcile();
    errno = saved;
}
