/*
 * Heap interposition: the malloc family, booked in the checker's ledger.
 *
 * The real allocator is reached through glibc's __libc_* entry points, not
 * dlsym, so the very first allocation of the process (made before any
 * constructor ran, sometimes by the dynamic loader) already works.
 *
 * A block is removed from the ledger before libc frees it and added after
 * libc returned it: in between another thread may get the same address
 * back, and the ledger must never see it live twice.
 *
 * free() of an address that is not live is never passed to libc (glibc
 * would abort the program): it is reported as a double free when the
 * address was freed before, else as an invalid free, with where the block
 * was allocated (quarantine.c keeps recently freed records).
 */
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static bool tracking(void)
{
    return (stw__copts.kinds & STW_KIND_BIT(STW_KIND_HEAP)) != 0;
}

/* ---- sampling mode (STW_CHECK_SAMPLE_BYTES) ----
 * About one block per sample_bytes of allocation is booked, with its stack
 * and a size standing for the bytes it represents. Unbooked blocks cost a
 * thread-local subtraction on malloc and one counter load on free: a
 * counting filter of booked addresses says which frees need the ledger. */
#define FILTER_SLOTS (1u << 18)
static _Atomic uint8_t *filter;
static bool sampling; /* set once at init, before any hook books anything */
static STW_TLS int64_t sample_left;
static STW_TLS uint32_t sample_rng;

static _Atomic uint8_t *filter_slot(uintptr_t p)
{
    /* Indexed by address, not by a hash of it: frees of nearby blocks touch
     * nearby bytes, so the filter stays in cache. Addresses 4 MiB apart
     * share a slot; a shared slot only sends a free to the ledger. */
    return &filter[(size_t)(p >> 4) & (FILTER_SLOTS - 1)];
}

/* Distance to the next sample: uniform in [rate/2, 3*rate/2), so periodic
 * allocation patterns cannot hide between samples. */
static int64_t next_sample(int64_t rate)
{
    if (sample_rng == 0)
        sample_rng = (uint32_t)(uintptr_t)&sample_rng | 1;
    sample_rng ^= sample_rng << 13;
    sample_rng ^= sample_rng >> 17;
    sample_rng ^= sample_rng << 5;
    return rate / 2 + (int64_t)(sample_rng % (uint32_t)(rate > 1 ? rate : 1));
}

/* True when the block should be booked; @size becomes what it stands for. */
static bool sample_take(uintptr_t p, size_t *size)
{
    int64_t rate = (int64_t)stw__copts.sample_bytes;
    /* sample_skip_alloc already counted this block and found it due. */
    sample_left = next_sample(rate);
    if (filter == NULL) {
        _Atomic uint8_t *f = stw__pages_reserve(FILTER_SLOTS);
        _Atomic uint8_t *expected = NULL;
        if (f != NULL && !__atomic_compare_exchange_n(&filter, &expected, f, false,
                                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            stw__pages_free((void *)f, FILTER_SLOTS);
        if (filter == NULL)
            return false;
    }
    _Atomic uint8_t *slot = filter_slot(p);
    /* A saturated slot would lose count: skip this sample instead. */
    if (atomic_load_explicit(slot, memory_order_relaxed) == 255)
        return false;
    atomic_fetch_add_explicit(slot, 1, memory_order_relaxed);
    /* The block map books the real size and counts the weight itself
     * (the pointer scan must read only the block's own bytes). */
    if ((int64_t)*size < rate && !stw__blocks_on())
        *size = (size_t)rate;
    return true;
}

/* The fast paths, inlined into the hooks: an unsampled malloc costs a
 * subtraction, an unsampled free one byte load. */
static inline bool sample_skip_alloc(size_t size)
{
    if (!sampling)
        return false;
    sample_left -= (int64_t)size;
    return sample_left > 0;
}

static inline bool sample_skip_free(uintptr_t p)
{
    return sampling &&
           (filter == NULL || atomic_load_explicit(filter_slot(p), memory_order_relaxed) == 0);
}

/* Sampling mode's free: drop the record if the block was booked. */
static void sample_forget(uintptr_t p)
{
    if (filter == NULL)
        return;
    _Atomic uint8_t *slot = filter_slot(p);
    if (atomic_load_explicit(slot, memory_order_relaxed) == 0)
        return;
    if (stw__ledger_remove(STW_KIND_HEAP, p) == 0)
        atomic_fetch_sub_explicit(slot, 1, memory_order_relaxed);
}

/* Book a fresh block. Inside the checker's own code (guard held) the block
 * is booked without a stack under the internal kind. */
static __attribute__((noinline)) void note_alloc(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (!stw__check_ready()) {
        stw__check_init();
        if (!stw__check_ready())
            return;
    }
    if (!tracking())
        return;
    if (stw__copts.sample_bytes > 0) {
        sampling = true;
        /* The checker's own blocks are not booked in sampling mode: their
         * frees find nothing in the filter and pass straight through. */
        if (stw_ledger_guard_depth() || !sample_take((uintptr_t)p, &size))
            return;
    } else if (!stw_ledger_guard_enter()) {
        stw__ledger_insert(stw__kind_internal, (uintptr_t)p, size, 0, NULL);
        return;
    } else {
        stw_ledger_guard_exit();
    }
    /* skip 2: note_alloc and the interposed function itself. */
    stw__check_record(STW_KIND_HEAP, (uintptr_t)p, size, NULL, 2);
}

/* Forget a block before libc gets it back. Returns false when the block
 * is not live (the caller must then not hand it to libc). */
static __attribute__((noinline)) bool note_free(void *p)
{
    if (!stw__check_ready() || !tracking())
        return true;
    uintptr_t a = (uintptr_t)p;
    if (stw__copts.sample_bytes > 0) {
        /* Most blocks were never booked: a bad free cannot be told apart. */
        sample_forget(a);
        return true;
    }
    stw_record r;
    if (stw__ledger_take(STW_KIND_HEAP, a, &r) == 0 ||
        stw__ledger_take(stw__kind_internal, a, &r) == 0) {
        /* The checker's own frees (guard held) need no stack. */
        if (stw_ledger_guard_enter()) {
            /* skip 2: note_free, free. */
            stw__quarantine_add(a, r.size, r.kind == STW_KIND_HEAP ? r.site : 0, 2);
            stw_ledger_guard_exit();
        }
        return true;
    }
    /* skip 2: note_free, free. */
    stw__bad_free("double free of", "invalid free of", a, 2);
    return false;
}

STW_HOOK void *malloc(size_t size)
{
    void *p = __libc_malloc(size);
    if (!sample_skip_alloc(size))
        note_alloc(p, size);
    return p;
}

STW_HOOK void *calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    if (!sample_skip_alloc(n * size))
        note_alloc(p, n * size);
    return p;
}

STW_HOOK void free(void *p)
{
    if (p == NULL)
        return;
    /* In sampling mode most blocks have no slot to prefetch. */
    if (sample_skip_free((uintptr_t)p)) {
        __libc_free(p);
        return;
    }
    stw__blocks_prefetch((uintptr_t)p);
    if (note_free(p))
        __libc_free(p);
}

STW_HOOK void *realloc(void *p, size_t size)
{
    if (p == NULL) {
        void *n = __libc_malloc(size);
        if (!sample_skip_alloc(size))
            note_alloc(n, size);
        return n;
    }
    if (size == 0) {
        free(p);
        return NULL;
    }
    if (stw__check_ready() && tracking() && stw__copts.sample_bytes > 0) {
        /* The new block is a new allocation of @size bytes for the sampler. */
        sample_forget((uintptr_t)p);
        void *n = __libc_realloc(p, size);
        if (!sample_skip_alloc(size))
            note_alloc(n, size);
        return n;
    }
    stw_record old;
    bool known = !stw__check_ready() || !tracking() ||
                 stw_ledger_lookup(STW_KIND_HEAP, (uintptr_t)p, &old) == 0 ||
                 stw_ledger_lookup(stw__kind_internal, (uintptr_t)p, &old) == 0;
    if (!known) {
        /* skip 1: realloc itself; the report starts at its caller. */
        stw__bad_free("realloc of freed block", "realloc of invalid pointer", (uintptr_t)p, 1);
        errno = ENOMEM;
        return NULL;
    }
    if (stw__check_ready() && tracking()) {
        stw__ledger_remove(STW_KIND_HEAP, (uintptr_t)p);
        stw__ledger_remove(stw__kind_internal, (uintptr_t)p);
    }
    void *n = __libc_realloc(p, size);
    if (n == NULL) {
        /* The old block is still the caller's: book it again. */
        if (stw__check_ready() && tracking())
            stw__ledger_insert(old.kind, (uintptr_t)p, old.size, old.site, old.label);
        return NULL;
    }
    if (n != p && stw__check_ready() && tracking() && stw_ledger_guard_enter()) {
        /* Moved: the old address is freed memory now. */
        stw__quarantine_add((uintptr_t)p, old.size, old.kind == STW_KIND_HEAP ? old.site : 0, 1);
        stw_ledger_guard_exit();
    }
    note_alloc(n, size);
    return n;
}

STW_HOOK void *reallocarray(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * size);
}

STW_HOOK void *memalign(size_t align, size_t size)
{
    void *p = __libc_memalign(align, size);
    if (!sample_skip_alloc(size))
        note_alloc(p, size);
    return p;
}

STW_HOOK void *aligned_alloc(size_t align, size_t size)
{
    void *p = __libc_memalign(align, size);
    if (!sample_skip_alloc(size))
        note_alloc(p, size);
    return p;
}

STW_HOOK int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(align, size);
    if (p == NULL)
        return ENOMEM;
    if (!sample_skip_alloc(size))
        note_alloc(p, size);
    *out = p;
    return 0;
}

STW_HOOK void *valloc(size_t size)
{
    void *p = __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
    if (!sample_skip_alloc(size))
        note_alloc(p, size);
    return p;
}

/* libc's string duplicators allocate from inside libc, which has no frame
 * pointers: the walk from malloc would start there and need the DWARF
 * unwinder on every call. Done here, the walk starts in their caller. */
STW_HOOK char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __libc_malloc(n);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    if (!sample_skip_alloc(n))
        note_alloc(p, n);
    return p;
}

STW_HOOK char *strndup(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = __libc_malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    if (!sample_skip_alloc(n + 1))
        note_alloc(p, n + 1);
    return p;
}

STW_HOOK wchar_t *wcsdup(const wchar_t *s)
{
    size_t n = (wcslen(s) + 1) * sizeof(wchar_t);
    wchar_t *p = __libc_malloc(n);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    if (!sample_skip_alloc(n))
        note_alloc(p, n);
    return p;
}

/* The names glibc's own headers and some libraries call. */
STW_HOOK char *__strdup(const char *s) __attribute__((alias("strdup"), copy(strdup)));
STW_HOOK char *__strndup(const char *s, size_t max) __attribute__((alias("strndup"), copy(strndup)));

STW_HOOK void *pvalloc(size_t size)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = (size + pg - 1) & ~(pg - 1);
    void *p = __libc_memalign(pg, rounded ? rounded : pg);
    if (!sample_skip_alloc(rounded))
        note_alloc(p, rounded);
    return p;
}
