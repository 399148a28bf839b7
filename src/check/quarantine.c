/*
 * Recently freed heap records, and the reports of invalid and double frees.
 *
 * Every free of a booked block leaves its record here: the address, the
 * size, the site that allocated it and the stack that freed it. A bad free
 * is then reported as Valgrind and ASan do: a double free with the stack
 * of the first free and where the block was allocated; an invalid free of
 * an address inside a block (live or recently freed) with that block's
 * size and allocation site.
 *
 * The quarantine keeps records, not memory: the block itself goes back to
 * libc at once. It is a direct-mapped table of QUAR_SLOTS entries indexed
 * by address, so it is bounded and an old entry is simply overwritten,
 * which can only turn a double free into an invalid free in the report,
 * never hide one. A writer clears the address first and publishes it last;
 * a reader re-checks it after copying, so it never pairs one free's
 * address with another's stacks.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

#define QUAR_SLOTS 65536
#define QUAR_DEPTH 6

typedef struct quar {
    _Atomic uintptr_t addr;
    uint64_t size;
    stw_site alloc_site; /* 0: not known (the checker's own block) */
    int depth;
    void *pcs[QUAR_DEPTH]; /* the free's stack, raw: every free pays for this */
} quar;

static quar *tab;
static atomic_long bad_frees;

long stw__heap_bad_frees(void)
{
    return atomic_load(&bad_frees);
}

void stw__quarantine_forked(void)
{
    atomic_store(&bad_frees, 0);
}

static size_t slot_of(uintptr_t p)
{
    return (size_t)((p >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 48) & (QUAR_SLOTS - 1);
}

__attribute__((noinline)) void stw__quarantine_add(uintptr_t p, uint64_t size, stw_site site,
                                                   int skip)
{
    if (tab == NULL) {
        quar *t = stw__pages_reserve(sizeof(quar) * QUAR_SLOTS);
        quar *expected = NULL;
        if (t != NULL && !__atomic_compare_exchange_n(&tab, &expected, t, false, __ATOMIC_ACQ_REL,
                                                      __ATOMIC_ACQUIRE))
            stw__pages_free(t, sizeof(quar) * QUAR_SLOTS);
        if (tab == NULL)
            return;
    }
    quar *q = &tab[slot_of(p)];
    atomic_store_explicit(&q->addr, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    q->size = size;
    q->alloc_site = site;
    /* +1: this function. */
    q->depth = stw__stack_capture_with(STW__UNWIND_FP, q->pcs, QUAR_DEPTH, skip + 1);
    atomic_store_explicit(&q->addr, p, memory_order_release);
}

/* Copy slot @q into @out if it still holds @p afterwards. */
static bool read_slot(quar *q, uintptr_t p, quar *out)
{
    if (atomic_load_explicit(&q->addr, memory_order_acquire) != p)
        return false;
    out->size = q->size;
    out->alloc_site = q->alloc_site;
    out->depth = q->depth;
    memcpy(out->pcs, q->pcs, sizeof(out->pcs));
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&q->addr, memory_order_relaxed) == p && out->depth >= 0 &&
           out->depth <= QUAR_DEPTH;
}

bool stw__quarantine_has(uintptr_t p)
{
    quar tmp;
    return tab != NULL && p != 0 && read_slot(&tab[slot_of(p)], p, &tmp);
}

/* ---- reports ---- */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "==%d== ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len >= sizeof(line))
        len = sizeof(line) - 1;
    stw_write_fd((void *)(intptr_t)fd, line, len);
}

static void print_frames(int fd, void *const *pcs, int n)
{
    stw__out o;
    char prefix[32];
    stw__out_init(&o, stw_write_fd, (void *)(intptr_t)fd);
    snprintf(prefix, sizeof(prefix), "==%d==    ", (int)getpid());
    for (int i = 0; i < n && !stw__out_text_frame(&o, prefix, i, pcs[i], true); i++)
        ;
    stw__out_flush(&o);
}

static void print_site(int fd, stw_site site)
{
    void *pcs[STW_STACK_MAX];
    int n = site != 0 ? stw_site_stack(site, NULL, pcs, STW_STACK_MAX) : 0;
    if (n > 0)
        print_frames(fd, pcs, n);
    else
        say(fd, "   (stack not known)\n");
}

/* The live heap block that contains @p, if any (bad frees are rare: a
 * snapshot of the books is affordable). */
static bool live_block_around(uintptr_t p, stw_record *out)
{
    stw_snapshot_opts so = {.kinds = STW_KIND_BIT(STW_KIND_HEAP), .records = true};
    stw_snapshot *s = NULL;
    if (stw_snapshot_new(&so, &s) != 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < s->nrecords && !found; i++) {
        const stw_record *r = &s->records[i];
        if (p >= r->id && p < r->id + (r->size ? r->size : 1)) {
            *out = *r;
            found = true;
        }
    }
    stw_snapshot_free(&s);
    return found;
}

/* A recently freed block that contains @p (not at its start). */
static bool freed_block_around(uintptr_t p, uintptr_t *start, quar *out)
{
    if (tab == NULL)
        return false;
    for (size_t i = 0; i < QUAR_SLOTS; i++) {
        uintptr_t a = atomic_load_explicit(&tab[i].addr, memory_order_acquire);
        if (a == 0 || p <= a || p >= a + (tab[i].size ? tab[i].size : 1))
            continue;
        if (read_slot(&tab[i], a, out)) {
            *start = a;
            return true;
        }
    }
    return false;
}

__attribute__((noinline)) void stw__bad_free(const char *what_freed, const char *what_invalid,
                                             uintptr_t p, int skip)
{
    atomic_fetch_add(&bad_frees, 1);
    if (!stw_ledger_guard_enter())
        return;
    void *pcs[STW_STACK_MAX];
    /* +1: this function. */
    int n = stw__stack_capture_with(STW__UNWIND_FP, pcs, stw__copts.depth, skip + 1);
    quar q;
    bool freed = tab != NULL && read_slot(&tab[slot_of(p)], p, &q);
    int fd = stw__check_open_log();
    if (fd < 0) {
        stw_ledger_guard_exit();
        return;
    }
    say(fd, "%s %p\n", freed ? what_freed : what_invalid, (void *)p);
    print_frames(fd, pcs, n);
    stw_record live;
    uintptr_t start;
    if (freed) {
        say(fd, " first freed at:\n");
        print_frames(fd, q.pcs, q.depth);
        say(fd, " block of %llu bytes allocated at:\n", (unsigned long long)q.size);
        print_site(fd, q.alloc_site);
    } else if (live_block_around(p, &live)) {
        say(fd, " address is %llu bytes inside a block of %llu bytes allocated at:\n",
            (unsigned long long)(p - live.id), (unsigned long long)live.size);
        print_site(fd, live.site);
    } else if (freed_block_around(p, &start, &q)) {
        say(fd, " address is %llu bytes inside a block of %llu bytes freed at:\n",
            (unsigned long long)(p - start), (unsigned long long)q.size);
        print_frames(fd, q.pcs, q.depth);
        say(fd, " block allocated at:\n");
        print_site(fd, q.alloc_site);
    } else {
        say(fd, " address is not inside any heap block the checker knows\n");
    }
    close(fd);
    stw_ledger_guard_exit();
}
