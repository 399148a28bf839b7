/*
 * libsteward-check.so: initialisation, options, stack capture for hooks,
 * label storage, and the reports (at exit, on demand, periodically).
 *
 * The library carries its own private copy of the ledger (compiled with
 * STW_API hidden), so a program that itself uses libsteward keeps its own
 * books and the checker's are separate.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

stw__check_opts stw__copts = {.depth = 16};
int stw__kind_internal = -1;

static atomic_int state; /* 0 not started, 1 initialising, 2 ready, 3 off */
static bool forked_child;
static pid_t main_pid;
uint64_t stw__check_start_seq;

/* ---- frame-pointer-less modules ---- */

/* Code in libc, libstdc++ and the loader is built without frame pointers:
 * when the call that reached a hook came from there (strdup, fopen,
 * operator new, pthread_create, ...), the frame-pointer walk would skip the
 * user's own frame, so those stacks are taken with the DWARF unwinder. */
#define MAX_NOFP 8
static struct {
    uintptr_t lo, hi;
} nofp[MAX_NOFP];
static int nnofp;

static int find_nofp(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    const char *name = info->dlpi_name;
    if (name == NULL || nnofp >= MAX_NOFP)
        return 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "libc.so", 7) != 0 && strncmp(base, "libstdc++.so", 12) != 0 &&
        strncmp(base, "ld-linux", 8) != 0 && strncmp(base, "libgcc_s.so", 11) != 0)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && nnofp < MAX_NOFP) {
            nofp[nnofp].lo = info->dlpi_addr + ph->p_vaddr;
            nofp[nnofp].hi = nofp[nnofp].lo + ph->p_memsz;
            nnofp++;
        }
    }
    return 0;
}

static bool in_nofp(void *pc)
{
    uintptr_t a = (uintptr_t)pc;
    for (int i = 0; i < nnofp; i++)
        if (a >= nofp[i].lo && a < nofp[i].hi)
            return true;
    return false;
}

__attribute__((noinline)) int stw__check_record(int kind, uint64_t id, uint64_t size,
                                                const char *label, int skip)
{
    if (!stw_ledger_guard_enter())
        return stw__ledger_insert(stw__kind_internal, id, size, 0, label);
    void *pcs[STW_STACK_MAX];
    /* +1: this function. */
    int n = stw__stack_capture_with(STW__UNWIND_FP, pcs, stw__copts.depth, skip + 1);
    /* A walk that broke on something that is not a frame pointer ran into
     * code built without them (an -O2 build keeps rbp for other uses); one
     * that starts inside libc skipped the user's frame. The DWARF unwinder
     * gets through both. */
    if (n > 0 && (!stw__stack_fp_clean() || in_nofp(pcs[0])) && !stw__loader_busy()) {
        void *fp[STW_STACK_MAX];
        int nfp = n;
        bool learn = !in_nofp(pcs[0]);
        if (learn)
            memcpy(fp, pcs, sizeof(void *) * (size_t)n);
        n = stw__stack_capture_with(STW__UNWIND_AFTER_FP, pcs, stw__copts.depth, skip + 1);
        /* A walk that stopped where the thread's start code begins was
         * complete: learn that frame, so the next such walk needs no DWARF. */
        if (learn)
            stw__stack_learn_start(fp, nfp, pcs, n, n < stw__copts.depth, in_nofp);
    }
    stw_site site = stw__site_intern(kind, pcs, n);
    int rc = stw__ledger_insert(kind, id, size, site, label);
    stw_ledger_guard_exit();
    return rc;
}

/* ---- labels ---- */

const char *stw__check_label(const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return "?";
    size_t len = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;
    char *p = stw__arena_alloc(len + 1);
    if (p == NULL)
        return "(label storage full)";
    memcpy(p, tmp, len);
    p[len] = '\0';
    return p;
}

/* ---- real functions ---- */

void *stw__check_real(const char *name)
{
    bool g = stw_ledger_guard_enter();
    void *f = dlsym(RTLD_NEXT, name);
    if (g)
        stw_ledger_guard_exit();
    if (f == NULL) {
        char msg[128];
        int n = snprintf(msg, sizeof(msg), "steward check: cannot find libc's %s\n", name);
        (void)!write(STDERR_FILENO, msg, (size_t)n);
        abort();
    }
    return f;
}

/* ---- options ---- */

static uint64_t parse_kinds(const char *s)
{
    if (s == NULL || *s == '\0' || strcmp(s, "all") == 0)
        return ~UINT64_C(0);
    uint64_t mask = 0;
    char name[32];
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n > 0 && n < sizeof(name)) {
            memcpy(name, s, n);
            name[n] = '\0';
            int k = stw_kind_lookup(name);
            if (k >= 0)
                mask |= STW_KIND_BIT(k);
            /* "fd" covers sockets and streams too: they are descriptors. */
            if (strcmp(name, "fd") == 0)
                mask |= STW_KIND_BIT(STW_KIND_SOCKET) | STW_KIND_BIT(STW_KIND_FILE) |
                        STW_KIND_BIT(STW_KIND_DIR);
        }
        s += n;
        if (*s == ',')
            s++;
    }
    return mask;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

static void read_options(void)
{
    stw__copts.kinds = parse_kinds(env("STW_CHECK_KINDS"));
    const char *d = env("STW_STACK_DEPTH");
    if (d != NULL && atoi(d) >= 1 && atoi(d) <= STW_STACK_MAX)
        stw__copts.depth = atoi(d);
    stw__copts.log_path = env("STW_CHECK_LOG");
    stw__copts.json_path = env("STW_CHECK_JSON");
    stw__copts.status_path = env("STW_CHECK_STATUS");
    stw__copts.supp_path = env("STW_CHECK_SUPPRESSIONS");
    const char *e = env("STW_CHECK_REPORT_EVERY");
    stw__copts.report_every_s = e ? atoi(e) : 0;
    const char *sb = env("STW_CHECK_SAMPLE_BYTES");
    stw__copts.sample_bytes = sb ? atol(sb) : 0;
    stw__copts.quiet = env("STW_CHECK_QUIET") != NULL;
    stw__copts.show_reachable = env("STW_CHECK_SHOW_REACHABLE") != NULL;
    stw__copts.show_inherited = env("STW_CHECK_SHOW_INHERITED") != NULL;
    /* PROG is the launcher's child; any other checked process is a program
     * PROG (or its descendants) started under --trace-children. */
    const char *lp = env("STW_CHECK_LAUNCHER_PID");
    stw__copts.traced_child = lp != NULL && atol(lp) != (long)getppid();
}

/* Unless children are to be traced, take the checker out of LD_PRELOAD so
 * programs this one execs run exactly as they would without it. Edits the
 * environment string in place: no allocation, nothing for the program to
 * free. */
static void untrace_children(void)
{
    if (env("STW_CHECK_TRACE_CHILDREN") != NULL)
        return;
    char *pre = getenv("LD_PRELOAD");
    if (pre == NULL)
        return;
    char *hit = strstr(pre, "libsteward-check.so");
    if (hit == NULL)
        return;
    /* Remove the whole entry (from the previous separator to the next). */
    char *start = hit;
    while (start > pre && start[-1] != ':' && start[-1] != ' ')
        start--;
    char *end = hit + strlen("libsteward-check.so");
    while (*end == ':' || *end == ' ')
        end++;
    memmove(start, end, strlen(end) + 1);
}

static void atfork_child(void)
{
    /* A child that does not exec must not report its parent's resources as
     * its own leaks (Valgrind's --child-silent-after-fork). */
    forked_child = true;
    /* Another thread may have been inside libunwind at the fork: its lock
     * would stay taken in this copy, and the first DWARF unwind here
     * (booking a thread the child creates, say) would hang forever. */
    stw__stack_forbid_libunwind();
}

static void install_fatal_handlers(void);

stw__fork_info stw__forked;

__attribute__((noinline)) void stw__check_forked(int skip)
{
    if (!stw__check_ready() || !stw_ledger_guard_enter())
        return;
    void *pcs[STW_STACK_MAX];
    /* Frame pointers only: libunwind is off limits in a forked child. */
    int n = stw__stack_capture_with(STW__UNWIND_FP, pcs, stw__copts.depth, skip + 1);
    stw__forked.site = stw__site_intern(STW_KIND_PROCESS, pcs, n);
    stw__forked.parent = (int)getppid();
    stw__forked.since = stw_ledger_checkpoint();
    main_pid = getpid();
    forked_child = false;
    stw__growth_forked();
    stw__quarantine_forked();
    stw__fds_forked();
    stw_ledger_guard_exit();
}

void stw__check_atfork_before_ledger(void (*prepare)(void), void (*parent)(void),
                                     void (*child)(void))
{
    /* Fork handlers run prepare-last-registered-first: initialising the
     * ledger now registers its handlers before these, so at fork these
     * take their lock before the ledger's, in the order the hooks do. */
    stw__ledger_init();
    bool g = stw_ledger_guard_enter();
    pthread_atfork(prepare, parent, child);
    if (g)
        stw_ledger_guard_exit();
}

bool stw__check_tracking(int kind)
{
    if (!stw__check_ready()) {
        stw__check_init();
        if (!stw__check_ready())
            return false;
    }
    if ((stw__copts.kinds & STW_KIND_BIT(kind)) == 0)
        return false;
    if (!stw_ledger_guard_enter())
        return false;
    stw_ledger_guard_exit();
    return true;
}

bool stw__check_ready(void)
{
    return atomic_load_explicit(&state, memory_order_acquire) == 2;
}

void stw__check_init(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&state, &expected, 1))
        return; /* ready, or another thread (or this one, reentering) is at it */
    bool g = stw_ledger_guard_enter();
    read_options();
    /* Heap records by address: no table that grows with the heap. */
    stw__blocks_enable(stw__copts.sample_bytes > 0 ? (uint64_t)stw__copts.sample_bytes : 0);
    stw__kind_internal = stw_kind_register("steward-internal");
    stw__loader_init();
    dl_iterate_phdr(find_nofp, NULL);
    main_pid = getpid();
    untrace_children();
    pthread_atfork(NULL, NULL, atfork_child);
    stw__fds_init();
    stw__check_start_seq = stw_ledger_checkpoint();
    stw__supp_load(stw__copts.supp_path);
    install_fatal_handlers();
    atomic_store_explicit(&state, 2, memory_order_release);
    /* Started ready, still guarded: the thread is the checker's own. */
    stw__growth_start();
    if (g)
        stw_ledger_guard_exit();
}

__attribute__((constructor(101))) static void check_ctor(void)
{
    stw__check_init();
}

static atomic_int final_once;

void stw__check_final_report(int sig)
{
    if (forked_child || getpid() != main_pid || !stw__check_ready())
        return;
    if (atomic_exchange(&final_once, 1))
        return;
    stw__threads_settle();
    stw__procs_reconcile();
    char why[64];
    if (sig > 0)
        snprintf(why, sizeof(why), "at death by signal %d (%s)", sig, sigabbrev_np(sig));
    else
        snprintf(why, sizeof(why), "at exit");
    stw__check_report(true, why);
    /* Nothing after this is the program's doing. */
    atomic_store(&state, 3);
}

__attribute__((destructor(101))) static void check_dtor(void)
{
    stw__check_final_report(0);
}

STW_HOOK void _exit(int status)
{
    STW_REAL(void, _exit, (int));
    stw__check_final_report(0);
    real__exit(status);
    __builtin_unreachable();
}

STW_HOOK void _Exit(int status)
{
    STW_REAL(void, _Exit, (int));
    stw__check_final_report(0);
    real__Exit(status);
    __builtin_unreachable();
}

/* Signals that end a program by default. Where the program left them at
 * their default, a handler writes the report and then lets the signal do
 * what it would have done: the process still dies by that signal. */
static const int fatal_signals[] = {SIGTERM, SIGINT,  SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1,
                                    SIGABRT, SIGSEGV, SIGBUS, SIGFPE,  SIGILL,  SIGXCPU, SIGXFSZ};

stw__interrupted stw__fatal_ctx;

static void on_fatal(int sig, siginfo_t *si, void *ucv)
{
    (void)si;
    int saved = errno;
#if defined(__x86_64__)
    const ucontext_t *uc = ucv;
    if (atomic_load(&stw__fatal_ctx.tid) == 0) {
        int n = NGREG < 32 ? NGREG : 32;
        for (int i = 0; i < n; i++)
            stw__fatal_ctx.regs[i] = (uintptr_t)uc->uc_mcontext.gregs[i];
        stw__fatal_ctx.nregs = n;
        stw__fatal_ctx.sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
        atomic_store(&stw__fatal_ctx.tid, (long)syscall(SYS_gettid));
    }
#else
    (void)ucv;
#endif
    stw__check_fatal_report(sig);
    signal(sig, SIG_DFL);
    errno = saved;
    raise(sig);
}

static void install_fatal_handlers(void)
{
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        struct sigaction old;
        if (sigaction(fatal_signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_fatal;
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(fatal_signals[i], &sa, NULL);
    }
}
