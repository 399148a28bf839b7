/*
 * Stopping the program's other threads while the exit report takes its
 * snapshot of the books and scans memory, so that the report reflects one
 * moment: a block another thread frees, or moves from one pointer to
 * another, while the scan runs would otherwise be reported lost.
 *
 * Each thread is sent STOP_SIGNAL with tgkill; its handler parks it on a
 * futex until the scan is over. Its registers are then in the signal frame
 * on its own stack, and its stack pointer (read by the scan from
 * /proc/self/task/TID/syscall, the futex wait) lies below that frame, so the
 * scan sees everything the thread held, registers included.
 *
 * A thread must not be parked while it holds a lock the stopped phase
 * needs. The ledger's locks (the shards' and the block map's era lock,
 * which the snapshot's checkpoint takes): they are all held by the
 * stopper while the signals go out and threads park, and parking is
 * closed before they are released, so no thread parks inside an insert
 * or remove, or while starting an era (a handler that runs later returns
 * at once); the same holds for threads stopped with ptrace. The loader's lock, libunwind's locks and
 * malloc's locks may be held by a parked thread: the stopped phase takes
 * none of them (the scan collects what needs dl_iterate_phdr and libunwind
 * beforehand, and the snapshot and scan take memory from mmap).
 *
 * A thread that blocks the signal, or does not answer within STOP_WAIT_MS
 * (it is exiting), is stopped with ptrace instead (ptstop.c), which also
 * gives its registers; where ptrace is refused it keeps running, and the
 * scan covers it conservatively (and the report re-checks what it calls
 * lost).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

#define MAX_STOPPED 4096
#define STOP_WAIT_MS 500

typedef struct stopped {
    _Atomic long tid;
    _Atomic int parked;
} stopped;

static stopped *tids; /* MAX_STOPPED slots, mmap'ed */
static _Atomic int ntids;
static _Atomic int accepting;     /* handlers park only while set */
static _Atomic uint32_t released; /* futex word: bumped to let them go */
static _Atomic int in_handler;
static bool world_stopped;
static bool handler_installed;

int stw__stop_signal(void)
{
    return SIGRTMAX - 2;
}

static long gettid_(void)
{
    return syscall(SYS_gettid);
}

static void on_stop(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    int saved = errno;
    atomic_fetch_add(&in_handler, 1);
    uint32_t gen = atomic_load(&released);
    if (si->si_code == SI_TKILL && si->si_pid == getpid() && atomic_load(&accepting)) {
        long self = gettid_();
        int n = atomic_load(&ntids);
        for (int i = 0; i < n; i++) {
            if (atomic_load(&tids[i].tid) != self)
                continue;
            if (atomic_exchange(&tids[i].parked, 1) == 0) {
                while (atomic_load(&released) == gen)
                    syscall(SYS_futex, &released, FUTEX_WAIT_PRIVATE, gen, NULL, NULL, 0);
            }
            break;
        }
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved;
}

static void nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, NULL);
}

/* /proc/self/task/TID, plus @suffix. */
static void task_path(char *path, long tid, const char *suffix)
{
    int len = 0;
    const char *pre = "/proc/self/task/";
    while (pre[len]) {
        path[len] = pre[len];
        len++;
    }
    char digits[24];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + tid % 10);
        tid /= 10;
    } while (tid > 0);
    while (nd > 0)
        path[len++] = digits[--nd];
    while (*suffix)
        path[len++] = *suffix++;
    path[len] = '\0';
}

static bool task_exists(long tid)
{
    char path[64];
    task_path(path, tid, "");
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    syscall(SYS_close, fd);
    return true;
}

/* True when thread @tid blocks @sig (per SigBlk in its status): it will
 * not answer, and waiting for it would only delay the report. */
static bool task_blocks(long tid, int sig)
{
    char path[80], buf[4096];
    task_path(path, tid, "/status");
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    long n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strstr(buf, "SigBlk:");
    if (p == NULL)
        return false;
    p += 7;
    while (*p == ' ' || *p == '\t')
        p++;
    uint64_t mask = 0;
    for (; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
        mask = mask * 16 + (uint64_t)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
    return (mask >> (sig - 1)) & 1;
}

typedef struct signal_ctx {
    long self, skip1, skip2;
    pid_t pid;
    int added;
} signal_ctx;

static bool signal_one(long tid, void *ud)
{
    signal_ctx *sc = ud;
    if (tid == sc->self || tid == sc->skip1 || tid == sc->skip2)
        return true;
    int k = atomic_load(&ntids);
    bool known = false;
    for (int i = 0; i < k && !known; i++)
        known = atomic_load(&tids[i].tid) == tid;
    if (known || k >= MAX_STOPPED)
        return true;
    atomic_store(&tids[k].tid, tid);
    atomic_store(&tids[k].parked, 0);
    atomic_store(&ntids, k + 1);
    if (syscall(SYS_tgkill, sc->pid, tid, stw__stop_signal()) != 0)
        atomic_store(&tids[k].parked, -1); /* gone already */
    else if (task_blocks(tid, stw__stop_signal()))
        atomic_store(&tids[k].parked, -2); /* will not answer */
    else
        sc->added++;
    return true;
}

/* Signal every thread not yet known. Returns how many were added. */
static int signal_new_threads(long self, long skip1, long skip2)
{
    signal_ctx sc = {.self = self, .skip1 = skip1, .skip2 = skip2, .pid = getpid()};
    stw__each_task(signal_one, &sc);
    return sc.added;
}

/* True once every signalled thread is parked or gone. */
static bool all_parked(void)
{
    int n = atomic_load(&ntids);
    for (int i = 0; i < n; i++) {
        if (atomic_load(&tids[i].parked) != 0)
            continue;
        if (!task_exists(atomic_load(&tids[i].tid))) {
            atomic_store(&tids[i].parked, -1);
            continue;
        }
        return false;
    }
    return true;
}

int stw__world_stop(void)
{
    if (world_stopped)
        return 0;
    if (tids == NULL) {
        tids = stw__pages_reserve(sizeof(stopped) * MAX_STOPPED);
        if (tids == NULL)
            return -ENOMEM;
    }
    if (!handler_installed) {
        /* Installed for good: a signal still pending on a thread that
         * blocks it must never meet the default action (termination). */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_stop;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigfillset(&sa.sa_mask);
        if (sigaction(stw__stop_signal(), &sa, NULL) != 0)
            return -errno;
        handler_installed = true;
    }
    uintptr_t lo, hi;
    long own = 0;
    if (!stw__checker_thread(&lo, &hi, &own))
        own = 0;
    long fatal = atomic_load(&stw__fatal_ctx.tid);
    long self = gettid_();
    atomic_store(&ntids, 0);
    stw__ledger_lock_all();
    atomic_store(&accepting, 1);
    /* Threads made meanwhile by threads not yet parked: a second look. */
    for (int pass = 0; pass < 3; pass++) {
        if (signal_new_threads(self, own, fatal) == 0 && pass > 0)
            break;
        for (int waited = 0; waited < STOP_WAIT_MS && !all_parked(); waited++)
            nap_ms(1);
    }
    /* Closed before the ledger's locks go: a thread that meets the signal
     * from now on may hold one, and must not park with it. */
    atomic_store(&accepting, 0);
    /* The ones that did not park: stopped by ptrace, also while no thread
     * can be inside the ledger. */
    long rest[STW__PT_MAX];
    int nrest = 0;
    for (int i = 0; i < atomic_load(&ntids) && nrest < STW__PT_MAX; i++) {
        int p = atomic_load(&tids[i].parked);
        if (p == 0 || p == -2)
            rest[nrest++] = atomic_load(&tids[i].tid);
    }
    int traced = stw__pt_stop(rest, nrest);
    stw__ledger_unlock_all();
    world_stopped = true;
    int parked = 0;
    for (int i = 0; i < atomic_load(&ntids); i++)
        parked += atomic_load(&tids[i].parked) == 1;
    return parked + traced;
}

void stw__world_resume(void)
{
    if (!world_stopped)
        return;
    world_stopped = false;
    stw__pt_resume();
    atomic_fetch_add(&released, 1);
    syscall(SYS_futex, &released, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
    /* Let them leave the handler before a later stop reuses the table. */
    for (int i = 0; i < 1000 && atomic_load(&in_handler) > 0; i++)
        nap_ms(1);
}
