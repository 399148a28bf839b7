/*
 * Stopping the threads the parking signal cannot reach (stopworld.c):
 * threads that block it, or do not answer in time. While they run, a
 * block they hold only in a register, or have just taken out of one list
 * and not yet put into another, looks lost to the scan; their registers
 * are what the report needs, and only ptrace gives them.
 *
 * A thread cannot trace a thread of its own process, so a helper process
 * does it: made with a raw clone (no fork handlers run, no malloc lock is
 * taken: a parked thread may hold one), it seizes and interrupts each
 * thread, copies its general registers into pages it shares with the
 * program, and keeps the threads stopped until stw__pt_resume, then
 * detaches and exits. It makes raw system calls only. Its exit signal is
 * none: the program's SIGCHLD handler and waitpid(-1) never see it.
 *
 * When ptrace is refused (seccomp, Yama, the program is traced already)
 * the threads keep running and the scan covers them as before.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <elf.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

#define PT_WORDS (sizeof(struct user_regs_struct) / sizeof(uintptr_t))
/* How long the program waits for the helper to stop the threads, and to
 * let them go and exit, before it kills it (its tracees then run on). */
#define PT_WAIT_MS 2000

enum { PH_WAIT, PH_GO, PH_STOPPED, PH_RELEASE };

typedef struct pt_thread {
    long tid;
    int attached; /* seized: must be detached */
    int stopped;  /* registers copied */
    int resig;    /* a signal its stop took, to give back on detach */
    uintptr_t regs[PT_WORDS];
} pt_thread;

typedef struct pt_shared {
    _Atomic uint32_t phase;
    int n;
    pt_thread t[STW__PT_MAX];
} pt_shared;

static pt_shared *sh;
static long helper; /* its pid while it holds threads */
static bool ptracer_set;

/* Futexes between processes: not the _PRIVATE kind. */
static void phase_wait(pt_shared *s, uint32_t seen, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    syscall(SYS_futex, &s->phase, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void phase_set(pt_shared *s, uint32_t ph)
{
    atomic_store(&s->phase, ph);
    syscall(SYS_futex, &s->phase, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void stop_one(pt_thread *t)
{
    if (syscall(SYS_ptrace, PTRACE_SEIZE, t->tid, NULL, NULL) != 0)
        return;
    t->attached = 1;
    if (syscall(SYS_ptrace, PTRACE_INTERRUPT, t->tid, NULL, NULL) != 0)
        return;
    int st;
    long r;
    do
        r = syscall(SYS_wait4, t->tid, &st, __WALL, NULL);
    while (r < 0 && errno == EINTR);
    if (r != t->tid || !WIFSTOPPED(st)) {
        t->attached = 0; /* gone: nothing to detach */
        return;
    }
    /* Not the interrupt's stop but a signal's: the thread is stopped all
     * the same, and the signal goes back on detach. */
    if ((st >> 16) != PTRACE_EVENT_STOP)
        t->resig = WSTOPSIG(st);
    struct iovec iov = {t->regs, sizeof(t->regs)};
    if (syscall(SYS_ptrace, PTRACE_GETREGSET, t->tid, (void *)NT_PRSTATUS, &iov) == 0)
        t->stopped = 1;
}

static __attribute__((noreturn)) void helper_main(pt_shared *s, long parent)
{
    syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    while (atomic_load(&s->phase) == PH_WAIT && syscall(SYS_getppid) == parent)
        phase_wait(s, PH_WAIT, 10);
    for (int i = 0; i < s->n; i++)
        stop_one(&s->t[i]);
    phase_set(s, PH_STOPPED);
    /* As long as the scan takes; the program's death ends it too. */
    while (atomic_load(&s->phase) != PH_RELEASE && syscall(SYS_getppid) == parent)
        phase_wait(s, PH_STOPPED, 100);
    for (int i = 0; i < s->n; i++)
        if (s->t[i].attached)
            syscall(SYS_ptrace, PTRACE_DETACH, s->t[i].tid, NULL, (void *)(long)s->t[i].resig);
    syscall(SYS_exit_group, 0);
    __builtin_unreachable();
}

static void nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, NULL);
}

/* Reap the helper, killing it when it does not end by itself. */
static void reap_helper(void)
{
    int st;
    for (int i = 0; i < PT_WAIT_MS; i++) {
        if (syscall(SYS_wait4, helper, &st, __WALL | WNOHANG, NULL) == helper)
            goto done;
        nap_ms(1);
    }
    syscall(SYS_kill, helper, SIGKILL);
    syscall(SYS_wait4, helper, &st, __WALL, NULL);
done:
    helper = 0;
    if (ptracer_set)
        syscall(SYS_prctl, PR_SET_PTRACER, 0, 0, 0, 0);
    ptracer_set = false;
}

int stw__pt_stop(const long *tids, int n)
{
    if (n <= 0 || helper != 0)
        return 0;
    if (sh == NULL && (sh = stw__pages_shared(sizeof(*sh))) == NULL)
        return 0;
    if (n > STW__PT_MAX)
        n = STW__PT_MAX;
    memset(sh, 0, sizeof(*sh));
    for (int i = 0; i < n; i++)
        sh->t[i].tid = tids[i];
    sh->n = n;
    long parent = (long)getpid();
    /* Like fork, on a copy of this stack; exit signal none. */
    long pid = syscall(SYS_clone, (long)CLONE_UNTRACED, 0L, 0L, 0L, 0L);
    if (pid == 0)
        helper_main(sh, parent);
    if (pid < 0)
        return 0;
    helper = pid;
    /* Yama's ptrace_scope 1 lets only ancestors trace, unless named. */
    ptracer_set = syscall(SYS_prctl, PR_SET_PTRACER, pid, 0, 0, 0) == 0;
    phase_set(sh, PH_GO);
    for (int waited = 0; atomic_load(&sh->phase) != PH_STOPPED; waited += 10) {
        int st;
        if (waited >= PT_WAIT_MS || syscall(SYS_wait4, helper, &st, __WALL | WNOHANG, NULL) != 0) {
            /* Stuck (a thread in uninterruptible sleep) or dead: the
             * threads run on, as without it. */
            if (atomic_load(&sh->phase) != PH_STOPPED) {
                syscall(SYS_kill, helper, SIGKILL);
                reap_helper();
                sh->n = 0;
                return 0;
            }
            break;
        }
        phase_wait(sh, PH_GO, 10);
    }
    int stopped = 0;
    for (int i = 0; i < n; i++)
        stopped += sh->t[i].stopped;
    return stopped;
}

bool stw__pt_regs(long tid, const uintptr_t **words, size_t *nwords, uintptr_t *sp)
{
    if (sh == NULL || helper == 0)
        return false;
    for (int i = 0; i < sh->n; i++) {
        const pt_thread *t = &sh->t[i];
        if (t->tid != tid || !t->stopped)
            continue;
        const struct user_regs_struct *r = (const struct user_regs_struct *)t->regs;
        *words = t->regs;
        *nwords = PT_WORDS;
#if defined(__x86_64__)
        *sp = (uintptr_t)r->rsp;
#elif defined(__aarch64__)
        *sp = (uintptr_t)r->sp;
#else
        (void)r;
        return false;
#endif
        return true;
    }
    return false;
}

void stw__pt_resume(void)
{
    if (helper == 0)
        return;
    phase_set(sh, PH_RELEASE);
    reap_helper();
    sh->n = 0;
}
