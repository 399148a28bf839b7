/*
 * Stack capture. The default walks the frame-pointer chain: a few loads per
 * frame, no locks, no allocation, which is what a malloc hook can afford.
 * Every frame pointer is checked against the calling thread's stack bounds
 * before it is read, so code built without frame pointers (whose rbp holds
 * anything) ends the walk instead of faulting. STW_UNWIND=libunwind selects
 * libunwind's DWARF unwinder instead: slower, but exact through such code.
 */
#define UNW_LOCAL_ONLY
#include <signal.h>
#include <stdatomic.h>
#include <libunwind.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_internal.h"

static int unwinder = STW__UNWIND_FP;
static volatile sig_atomic_t libunwind_forbidden;
static int depth_cfg = 16;

/* Per-thread stack bounds, looked up once per thread. */
static STW_TLS uintptr_t stack_lo;
static STW_TLS uintptr_t stack_hi;
static STW_TLS int stack_known; /* 0 unknown, 1 known, -1 lookup failed, 2 looking */
/* Whether this thread's last frame-pointer walk ended where a chain ends
 * (a zero frame pointer, or the depth asked for) rather than at a frame
 * pointer that could not be one: code built without frame pointers. */
static STW_TLS bool last_walk_clean;
/* The last walk's first return address and where on the stack it lay. */
static STW_TLS uintptr_t last_pc0, last_loc0;

/* Return addresses into a thread's start code (glibc's code that calls
 * main or a thread's routine), learned from complete DWARF stacks: a
 * frame-pointer chain whose last frame returns to one of them has reached
 * the thread's start, whatever the start code left in rbp (1 on glibc's
 * main thread, anything on others). */
#define NSTARTS 16
static _Atomic uintptr_t starts[NSTARTS];

static bool is_start(uintptr_t pc)
{
    for (int i = 0; i < NSTARTS; i++) {
        uintptr_t s = atomic_load_explicit(&starts[i], memory_order_relaxed);
        if (s == pc)
            return true;
        if (s == 0)
            return false;
    }
    return false;
}

void stw__stack_learn_start(void *const *fp, int nfp, void *const *dw, int ndw, bool complete,
                            bool (*runtime)(void *pc))
{
    /* Learned only where the chain ends at a frame the DWARF unwinder also
     * found, and all it found below is the C runtime's start code (the
     * outermost frame, _start, may lie in the program). */
    if (!complete || nfp <= 0 || ndw <= nfp || memcmp(fp, dw, sizeof(void *) * (size_t)nfp) != 0)
        return;
    if (!runtime(fp[nfp - 1]))
        return;
    for (int i = nfp; i < ndw - 1; i++)
        if (!runtime(dw[i]))
            return;
    uintptr_t pc = (uintptr_t)fp[nfp - 1];
    for (int i = 0; i < NSTARTS; i++) {
        uintptr_t expected = 0;
        if (atomic_compare_exchange_strong(&starts[i], &expected, pc) || expected == pc)
            return;
    }
}

void stw__stack_init(void)
{
    const char *u = getenv("STW_UNWIND");
    if (u != NULL && strcmp(u, "libunwind") == 0)
        unwinder = STW__UNWIND_LIBUNWIND;
    const char *d = getenv("STW_STACK_DEPTH");
    if (d != NULL) {
        int v = atoi(d);
        if (v >= 1 && v <= STW_STACK_MAX)
            depth_cfg = v;
    }
}

int stw__stack_depth(void)
{
    return depth_cfg;
}

static void lookup_bounds(void)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    /* pthread_getattr_np may allocate (it reads /proc/self/maps for the main
     * thread); callers hold the ledger's reentrancy guard, so a malloc hook
     * reached from here passes straight through. */
    /* pthread_getattr_np frees memory under a lock of its own; a free hook
     * that captures a stack must not come back here and take it again. */
    stack_known = 2;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        stack_known = -1;
        return;
    }
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
        stack_lo = (uintptr_t)addr;
        stack_hi = (uintptr_t)addr + size;
        stack_known = 1;
    } else {
        stack_known = -1;
    }
    pthread_attr_destroy(&attr);
}

__attribute__((noinline)) static int capture_fp(void **pcs, int max, int skip)
{
    if (stack_known == 0)
        lookup_bounds();
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    last_loc0 = 0;
    uintptr_t lo = fp;
    uintptr_t hi = stack_known == 1 ? stack_hi : fp + (64u << 10);
    int n = 0;
    bool clean = false;
    /* The first return address read lies in our caller, which is where the
     * caller's own skip count starts. */
    while (n < max) {
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & (sizeof(uintptr_t) - 1)) != 0)
            break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0];
        uintptr_t ret = frame[1];
        if (ret < 4096)
            break;
        if (skip > 0) {
            skip--;
        } else {
            if (n == 0) {
                last_pc0 = ret;
                last_loc0 = fp + sizeof(uintptr_t);
            }
            pcs[n++] = (void *)ret;
        }
        if (next == 0)
            clean = true;
        if (next <= fp)
            break;
        lo = fp;
        fp = next;
    }
    last_walk_clean = clean || n == max || (n > 0 && is_start((uintptr_t)pcs[n - 1]));
    return n;
}

__attribute__((noinline)) static int capture_libunwind(void **pcs, int max, int skip)
{
    void *tmp[STW_STACK_MAX + 8];
    int want = max + skip + 1;
    if (want > (int)(sizeof(tmp) / sizeof(tmp[0])))
        want = (int)(sizeof(tmp) / sizeof(tmp[0]));
    int got = unw_backtrace(tmp, want);
    int first = skip + 1;
    int n = 0;
    for (int i = first; i < got && n < max; i++)
        pcs[n++] = tmp[i];
    return n;
}

/* ---- DWARF stacks, cached per thread ----
 * Code built without frame pointers needs the DWARF unwinder on each of
 * its allocations. But a stack is known by the return addresses on it:
 * when a walk starts at the same return address in the same place on the
 * thread's stack, and every return address the unwinder found last time
 * from there is still in its place, the unwinder would find the same
 * frames again (it reads each return address at the place the frames
 * below determine). Frames whose size varies (alloca) move those places
 * and miss the cache. */
#define DC_SLOTS 32

typedef struct dcache {
    uintptr_t pc0, loc0;
    uint8_t n, max, skip;
    uint32_t off[STW_STACK_MAX]; /* where pcs[i] lies, from loc0 */
    void *pcs[STW_STACK_MAX];
} dcache;

static STW_TLS dcache dcs[DC_SLOTS];
/* A miss is unwound with unw_backtrace (libunwind's fast path); one in
 * DC_FILL_EVERY is unwound frame by frame to fill the cache, which costs
 * libunwind's locks and signal-mask calls per frame: a program whose
 * stacks rarely repeat (a compiler) must not pay that on every
 * allocation. (libunwind's per-thread cache would avoid the locks, but
 * its thread-exit destructor frees what later frees in the same exiting
 * thread may still unwind with.) */
#define DC_FILL_EVERY 64
static STW_TLS unsigned dc_misses;

static dcache *dc_slot(uintptr_t pc0, uintptr_t loc0)
{
    return &dcs[((pc0 ^ (loc0 >> 3)) * UINT64_C(0x9e3779b97f4a7c15)) >> 59];
}

/* Same frames as capture_libunwind (this function is frame 0), from the
 * cache when the last frame-pointer walk's start matches an entry. */
__attribute__((noinline)) static int capture_cached(void **pcs, int max, int skip)
{
    uintptr_t pc0 = last_pc0, loc0 = last_loc0;
    bool usable = loc0 != 0 && stack_known == 1 && loc0 < stack_hi && skip < 256;
    dcache *d = usable ? dc_slot(pc0, loc0) : NULL;
    if (d != NULL && d->pc0 == pc0 && d->loc0 == loc0 && d->max == max && d->skip == skip) {
        bool same = true;
        for (int i = 1; i < d->n && same; i++) {
            uintptr_t at = loc0 + d->off[i];
            same = at + sizeof(uintptr_t) <= stack_hi &&
                   *(const uintptr_t *)at == (uintptr_t)d->pcs[i];
        }
        if (same) {
            memcpy(pcs, d->pcs, sizeof(void *) * d->n);
            return d->n;
        }
    }
    if (!usable || dc_misses++ % DC_FILL_EVERY != 0) {
        void *tmp[STW_STACK_MAX + 8];
        int want = max + skip + 1;
        if (want > (int)(sizeof(tmp) / sizeof(tmp[0])))
            want = (int)(sizeof(tmp) / sizeof(tmp[0]));
        int got = unw_backtrace(tmp, want);
        int n = 0;
        for (int i = skip + 1; i < got && n < max; i++)
            pcs[n++] = tmp[i];
        return n;
    }
    unw_context_t uc;
    unw_cursor_t cur;
    uintptr_t locs[STW_STACK_MAX];
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0)
        return 0;
    int n = 0, frame = 0;
    bool cacheable = usable;
    int first = skip + 1;
    while (n < max && unw_step(&cur) > 0) {
        frame++;
        unw_word_t ip, sp;
        if (unw_get_reg(&cur, UNW_REG_IP, &ip) != 0 || unw_get_reg(&cur, UNW_REG_SP, &sp) != 0)
            break;
        if (frame < first)
            continue;
        /* The return address to this frame lay just below the stack
         * pointer it returned with; not so across a signal frame. */
        if (unw_is_signal_frame(&cur) > 0)
            cacheable = false;
        locs[n] = (uintptr_t)sp - sizeof(uintptr_t);
        pcs[n++] = (void *)ip;
    }
    if (cacheable && n > 0 && (uintptr_t)pcs[0] == pc0 && locs[0] == loc0) {
        for (int i = 1; i < n; i++)
            if (locs[i] <= loc0 || locs[i] - loc0 > UINT32_MAX)
                return n;
        d->n = (uint8_t)n;
        d->max = (uint8_t)max;
        d->skip = (uint8_t)skip;
        d->pc0 = pc0;
        d->loc0 = loc0;
        for (int i = 0; i < n; i++) {
            d->off[i] = (uint32_t)(locs[i] - loc0);
            d->pcs[i] = pcs[i];
        }
    }
    return n;
}

__attribute__((noinline)) int stw__stack_capture_with(int how, void **pcs, int max, int skip)
{
    if (max <= 0)
        return 0;
    if (max > STW_STACK_MAX)
        max = STW_STACK_MAX;
    if (skip < 0)
        skip = 0;
    /* +1: this function's frame. The barrier keeps the calls out of tail
     * position, so this frame exists and the skip count stays exact. */
    int n;
    if (how == STW__UNWIND_LIBUNWIND && !libunwind_forbidden)
        n = capture_libunwind(pcs, max, skip + 1);
    else if (how == STW__UNWIND_AFTER_FP && !libunwind_forbidden)
        n = capture_cached(pcs, max, skip + 1);
    else
        n = capture_fp(pcs, max, skip + 1);
    __asm__ volatile("" ::: "memory");
    return n;
}

void stw__stack_forbid_libunwind(void)
{
    libunwind_forbidden = 1;
}

bool stw__stack_fp_clean(void)
{
    return last_walk_clean;
}

__attribute__((noinline)) int stw_stack_capture(void **pcs, int max, int skip)
{
    int n = stw__stack_capture_with(unwinder, pcs, max, skip + 1);
    __asm__ volatile("" ::: "memory");
    return n;
}
