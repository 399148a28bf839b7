/*
 * Threads: pthread_create books a STW_KIND_THREAD record (id = the
 * pthread_t) with the creator's stack; a successful join or detach releases
 * it, and a thread created detached releases its own record when it ends.
 *
 * The start routine runs inside a small wrapper that marks the thread
 * exited when the routine returns, calls pthread_exit or is cancelled (a
 * cleanup handler sees all three), so the exit report can tell a thread
 * that is still running from one that ended but was never joined.
 *
 * The wrapper does not call the program's routine until the creator has
 * booked the record: otherwise a thread that detaches itself first thing,
 * or ends at once, could act on a record that does not exist yet.
 *
 * Per-thread state lives in an mmap'ed open-addressing table keyed by
 * pthread_t behind one spinlock; nothing here calls malloc except for the
 * start context, which comes from glibc's own allocator (__libc_malloc) so
 * it is never booked as the program's memory.
 */
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

/* Where this library lies in memory: threads the checker starts for itself
 * are not the program's. */
extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));

static bool in_self(const void *pc)
{
    static _Atomic uintptr_t lo, hi;
    if (atomic_load_explicit(&hi, memory_order_acquire) == 0) {
        const ElfW(Ehdr) *eh = &__ehdr_start;
        const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
        uintptr_t bias = 0, l = UINTPTR_MAX, h = 0;
        bool first = true;
        for (int i = 0; i < eh->e_phnum; i++) {
            if (ph[i].p_type != PT_LOAD)
                continue;
            /* The ELF header is the start of the first loaded segment. */
            if (first)
                bias = (uintptr_t)eh - (ph[i].p_vaddr - ph[i].p_offset);
            first = false;
            if (bias + ph[i].p_vaddr < l)
                l = bias + ph[i].p_vaddr;
            if (bias + ph[i].p_vaddr + ph[i].p_memsz > h)
                h = bias + ph[i].p_vaddr + ph[i].p_memsz;
        }
        atomic_store_explicit(&lo, l, memory_order_relaxed);
        atomic_store_explicit(&hi, h, memory_order_release);
    }
    uintptr_t a = (uintptr_t)pc;
    return a >= atomic_load_explicit(&lo, memory_order_relaxed) &&
           a < atomic_load_explicit(&hi, memory_order_relaxed);
}

/* ---- per-thread state ---- */

enum {
    TS_EXITED = 1u << 0,   /* the start routine is over */
    TS_DETACHED = 1u << 1, /* created detached, or pthread_detach'ed */
    TS_LIVE = 1u << 2,     /* the ledger holds its record */
};

typedef struct tstate {
    _Atomic uint64_t key; /* pthread_t; 0 = empty slot */
    _Atomic unsigned flags;
} tstate;

/* Live or unjoined threads the program created; 2^16 slots (1 MiB of
 * address space, committed only as touched). */
#define TS_SLOTS (1u << 16)
#define TS_MAX (TS_SLOTS / 10 * 7)
static tstate *ts_tab;
static unsigned ts_count;
static atomic_flag ts_lock = ATOMIC_FLAG_INIT;
/* Set while this thread holds ts_lock, so a fork from a signal handler
 * that interrupted it does not wait for itself. */
static STW_TLS bool ts_holding;
static STW_TLS bool ts_fork_locked;
/* In a forked child the table describes the parent's threads. */
static bool ts_forked;

static void lock(void)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(&ts_lock, memory_order_acquire)) {
        if (++spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
    ts_holding = true;
}

static void unlock(void)
{
    ts_holding = false;
    atomic_flag_clear_explicit(&ts_lock, memory_order_release);
}

static size_t ts_home(uint64_t key)
{
    return (size_t)((key >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 40) & (TS_SLOTS - 1);
}

/* Under ts_lock (or lock-free for readers that can stand a stale answer). */
static tstate *ts_find(uint64_t key)
{
    if (ts_tab == NULL)
        return NULL;
    for (size_t i = ts_home(key), n = 0; n < TS_SLOTS; i = (i + 1) & (TS_SLOTS - 1), n++) {
        uint64_t k = atomic_load_explicit(&ts_tab[i].key, memory_order_acquire);
        if (k == key)
            return &ts_tab[i];
        if (k == 0)
            return NULL;
    }
    return NULL;
}

/* Under ts_lock. NULL when the table cannot take another thread. */
static tstate *ts_insert(uint64_t key, unsigned flags)
{
    if (ts_tab == NULL) {
        ts_tab = stw__pages_reserve(sizeof(tstate) * TS_SLOTS);
        if (ts_tab == NULL)
            return NULL;
    }
    tstate *e = ts_find(key);
    if (e != NULL) {
        /* A stale entry (its thread was joined behind our back). */
        atomic_store_explicit(&e->flags, flags, memory_order_relaxed);
        return e;
    }
    if (ts_count >= TS_MAX)
        return NULL;
    size_t i = ts_home(key);
    while (atomic_load_explicit(&ts_tab[i].key, memory_order_relaxed) != 0)
        i = (i + 1) & (TS_SLOTS - 1);
    atomic_store_explicit(&ts_tab[i].flags, flags, memory_order_relaxed);
    atomic_store_explicit(&ts_tab[i].key, key, memory_order_release);
    ts_count++;
    return &ts_tab[i];
}

/* Under ts_lock. Backward-shift deletion keeps probe chains intact. */
static void ts_erase(tstate *e)
{
    size_t i = (size_t)(e - ts_tab);
    size_t j = i;
    for (;;) {
        j = (j + 1) & (TS_SLOTS - 1);
        uint64_t k = atomic_load_explicit(&ts_tab[j].key, memory_order_relaxed);
        if (k == 0)
            break;
        size_t home = ts_home(k);
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            atomic_store_explicit(&ts_tab[i].flags,
                                  atomic_load_explicit(&ts_tab[j].flags, memory_order_relaxed),
                                  memory_order_relaxed);
            atomic_store_explicit(&ts_tab[i].key, k, memory_order_release);
            i = j;
        }
    }
    atomic_store_explicit(&ts_tab[i].key, 0, memory_order_release);
    ts_count--;
}

static void release_record(uint64_t id)
{
    stw__ledger_remove(STW_KIND_THREAD, id);
}

const char *stw__thread_state(uint64_t id)
{
    /* Lock-free: the report may run in a signal handler. */
    tstate *e = ts_find(id);
    if (e != NULL && (atomic_load_explicit(&e->flags, memory_order_relaxed) & TS_EXITED))
        return "exited, never joined or detached";
    return "running";
}

/* ---- the wrapper ---- */

typedef struct start_ctx {
    void *(*fn)(void *);
    void *arg;
    bool detached;
    _Atomic int booked; /* futex word: the creator has booked the thread */
    _Atomic int refs;   /* creator and thread; the last one frees */
} start_ctx;

static void ctx_unref(start_ctx *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        __libc_free(c);
}

static void thread_ended(void *unused)
{
    (void)unused;
    uint64_t self = (uint64_t)pthread_self();
    bool rel = false;
    lock();
    tstate *e = ts_find(self);
    if (e != NULL) {
        unsigned f = atomic_load_explicit(&e->flags, memory_order_relaxed) | TS_EXITED;
        if (f & TS_DETACHED) {
            rel = (f & TS_LIVE) != 0;
            ts_erase(e);
        } else {
            atomic_store_explicit(&e->flags, f, memory_order_relaxed);
        }
    }
    unlock();
    if (rel)
        release_record(self);
}

static void *thread_main(void *p)
{
    start_ctx *c = p;
    while (atomic_load_explicit(&c->booked, memory_order_acquire) == 0)
        syscall(SYS_futex, &c->booked, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    void *(*fn)(void *) = c->fn;
    void *arg = c->arg;
    ctx_unref(c);
    void *ret;
    pthread_cleanup_push(thread_ended, NULL);
    ret = fn(arg);
    pthread_cleanup_pop(1);
    return ret;
}

/* ---- hooks ---- */

static bool tracking(void)
{
    return stw__check_tracking(STW_KIND_THREAD);
}

STW_HOOK int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg)
{
    STW_REAL(int, pthread_create, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *));
    if (!tracking() || in_self(__builtin_return_address(0)))
        return real_pthread_create(thread, attr, fn, arg);
    int saved = errno;
    start_ctx *c = __libc_malloc(sizeof(*c));
    if (c == NULL) {
        errno = saved;
        return real_pthread_create(thread, attr, fn, arg);
    }
    int ds = PTHREAD_CREATE_JOINABLE;
    if (attr != NULL)
        pthread_attr_getdetachstate(attr, &ds);
    c->fn = fn;
    c->arg = arg;
    c->detached = ds == PTHREAD_CREATE_DETACHED;
    atomic_init(&c->booked, 0);
    atomic_init(&c->refs, 2);
    errno = saved;
    int rc = real_pthread_create(thread, attr, thread_main, c);
    saved = errno;
    if (rc != 0) {
        __libc_free(c);
        errno = saved;
        return rc;
    }
    uint64_t id = (uint64_t)*thread;
    int brc = stw__check_record(STW_KIND_THREAD, id, 0, "thread", 1);
    if (brc == -EEXIST) {
        /* Left by a thread joined behind our back (through a call we do
         * not see) whose pthread_t is being reused: stale. */
        release_record(id);
        brc = stw__check_record(STW_KIND_THREAD, id, 0, "thread", 1);
    }
    unsigned flags = (brc == 0 ? TS_LIVE : 0u) | (c->detached ? TS_DETACHED : 0u);
    lock();
    bool kept = ts_insert(id, flags) != NULL;
    unlock();
    /* Without a state entry nobody could release the record of a detached
     * thread; forget it rather than report it. */
    if (!kept && brc == 0 && c->detached)
        release_record(id);
    atomic_store_explicit(&c->booked, 1, memory_order_release);
    syscall(SYS_futex, &c->booked, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    ctx_unref(c);
    errno = saved;
    return rc;
}

/* The thread @t was joined: its record and state go. The record goes even
 * without a state entry (the table was full when it was created). */
static void joined(pthread_t t)
{
    if (!stw__check_ready())
        return;
    lock();
    tstate *e = ts_find((uint64_t)t);
    if (e != NULL)
        ts_erase(e);
    unlock();
    release_record((uint64_t)t);
}

STW_HOOK int pthread_join(pthread_t t, void **ret)
{
    STW_REAL(int, pthread_join, (pthread_t, void **));
    int rc = real_pthread_join(t, ret);
    int saved = errno;
    if (rc == 0)
        joined(t);
    errno = saved;
    return rc;
}

STW_HOOK int pthread_tryjoin_np(pthread_t t, void **ret)
{
    STW_REAL(int, pthread_tryjoin_np, (pthread_t, void **));
    int rc = real_pthread_tryjoin_np(t, ret);
    int saved = errno;
    if (rc == 0)
        joined(t);
    errno = saved;
    return rc;
}

STW_HOOK int pthread_timedjoin_np(pthread_t t, void **ret, const struct timespec *abstime)
{
    STW_REAL(int, pthread_timedjoin_np, (pthread_t, void **, const struct timespec *));
    int rc = real_pthread_timedjoin_np(t, ret, abstime);
    int saved = errno;
    if (rc == 0)
        joined(t);
    errno = saved;
    return rc;
}

STW_HOOK int pthread_clockjoin_np(pthread_t t, void **ret, clockid_t clock,
                                  const struct timespec *abstime)
{
    STW_REAL(int, pthread_clockjoin_np, (pthread_t, void **, clockid_t, const struct timespec *));
    int rc = real_pthread_clockjoin_np(t, ret, clock, abstime);
    int saved = errno;
    if (rc == 0)
        joined(t);
    errno = saved;
    return rc;
}

STW_HOOK int pthread_detach(pthread_t t)
{
    STW_REAL(int, pthread_detach, (pthread_t));
    int rc = real_pthread_detach(t);
    int saved = errno;
    if (rc == 0 && stw__check_ready()) {
        /* Without a state entry there may still be a record. */
        bool rel = true;
        lock();
        tstate *e = ts_find((uint64_t)t);
        if (e != NULL) {
            unsigned f = atomic_load_explicit(&e->flags, memory_order_relaxed);
            rel = (f & TS_LIVE) != 0;
            /* A thread that already ended is gone for good now; one still
             * running keeps its entry until its routine ends. */
            if (f & TS_EXITED)
                ts_erase(e);
            else
                atomic_store_explicit(&e->flags, (f | TS_DETACHED) & ~(unsigned)TS_LIVE,
                                      memory_order_relaxed);
        }
        unlock();
        if (rel)
            release_record((uint64_t)t);
    }
    errno = saved;
    return rc;
}

STW_HOOK int pthread_setname_np(pthread_t t, const char *name)
{
    STW_REAL(int, pthread_setname_np, (pthread_t, const char *));
    int rc = real_pthread_setname_np(t, name);
    int saved = errno;
    if (rc == 0 && stw__check_ready()) {
        stw_record r;
        /* Label storage is permanent: only spend it on threads we book. */
        if (stw_ledger_lookup(STW_KIND_THREAD, (uint64_t)t, &r) == 0)
            stw_ledger_set_label(STW_KIND_THREAD, (uint64_t)t,
                                 stw__check_label("thread:%.15s", name));
    }
    errno = saved;
    return rc;
}

/* ---- fork and exit ---- */

static void fork_prepare(void)
{
    /* A fork from a signal handler that interrupted this thread inside
     * the lock must not wait for itself. */
    ts_fork_locked = !ts_holding;
    if (ts_fork_locked)
        lock();
}

static void fork_parent(void)
{
    if (ts_fork_locked)
        unlock();
}

static void fork_child(void)
{
    ts_forked = true;
    ts_holding = false;
    atomic_flag_clear_explicit(&ts_lock, memory_order_release);
}

__attribute__((constructor(102))) static void threads_ctor(void)
{
    /* ts_lock is taken before the ledger's locks, as every hook does. */
    stw__check_atfork_before_ledger(fork_prepare, fork_parent, fork_child);
}

/* A detached thread that signalled the main thread it is done may not
 * have left its start routine when main returns; give such threads a
 * moment (at most 100 ms, only while some are still running) so that a
 * correct program is not reported for a thread that is ending. */
static bool detached_running(void)
{
    if (ts_tab == NULL)
        return false;
    for (size_t i = 0; i < TS_SLOTS; i++) {
        if (atomic_load_explicit(&ts_tab[i].key, memory_order_acquire) == 0)
            continue;
        unsigned f = atomic_load_explicit(&ts_tab[i].flags, memory_order_relaxed);
        if ((f & (TS_DETACHED | TS_LIVE | TS_EXITED)) == (TS_DETACHED | TS_LIVE))
            return true;
    }
    return false;
}

void stw__threads_settle(void)
{
    if (!stw__check_ready() || ts_forked)
        return;
    for (int i = 0; i < 100 && detached_running(); i++) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Call @fn(@tid, @ud) for every thread of the process, as
 * /proc/self/task lists them, with raw system calls only (no allocation:
 * the exit report and the stop-the-world run it with the world half
 * stopped). Stops early when @fn returns false. */
void stw__each_task(bool (*fn)(long tid, void *ud), void *ud)
{
    int fd =
        (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096] __attribute__((aligned(8)));
    long n;
    bool more = true;
    while (more && (n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
        for (long off = 0; more && off < n;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            off += d->reclen;
            if (d->name[0] < '0' || d->name[0] > '9')
                continue;
            long tid = 0;
            for (const char *q = d->name; *q >= '0' && *q <= '9'; q++)
                tid = tid * 10 + (*q - '0');
            more = fn(tid, ud);
        }
    }
    syscall(SYS_close, fd);
}
