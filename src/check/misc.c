/*
 * Mappings and POSIX timers.
 *
 * mmap/mmap64 book a STW_KIND_MMAP record (id = address, size = length) for
 * each mapping the program makes itself; munmap and mremap keep the books
 * exact for partial ranges: unmapping the middle of a mapping splits its
 * record in two, unmapping its head moves the record to what remains, and
 * the pieces keep the original creation stack. glibc's malloc and the
 * dynamic loader map memory through internal calls that never reach these
 * hooks, so they book nothing.
 *
 * The checker's own mappings (the ledger's tables reach mmap through this
 * very hook) and those of libraries it runs under the ledger guard (libdw,
 * libunwind) pass straight through.
 *
 * Booked ranges are also kept in a sorted array behind one mutex, which is
 * what lets munmap find the records a range overlaps; the mutex is held
 * across the real call, so the kernel's view and the books change together
 * even when threads map and unmap the same addresses concurrently.
 *
 * timer_create/timer_delete book STW_KIND_TIMER records (id = the timer_t).
 */
/* The hooks must define mmap and mmap64 under their own names. */
#undef _FILE_OFFSET_BITS

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

/* Where this library lies in memory: its own calls are not the program's. */
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

static bool ready_for(int kind)
{
    if (!stw__check_ready()) {
        stw__check_init();
        if (!stw__check_ready())
            return false;
    }
    return (stw__copts.kinds & STW_KIND_BIT(kind)) != 0;
}

/* True for a call the program made: not from this library, not from code
 * the checker runs under the ledger guard. */
static bool programs_call(const void *caller)
{
    if (in_self(caller))
        return false;
    if (!stw_ledger_guard_enter())
        return false;
    stw_ledger_guard_exit();
    return true;
}

/* ---- labels ---- */

/* Descriptor numbers repeat: one permanent copy per label text will do. A
 * slot overwritten by another label only costs a fresh copy. */
#define LABEL_SLOTS 64
static const char *_Atomic label_cache[LABEL_SLOTS];

static const char *map_label(int flags, int fd)
{
    if ((flags & MAP_ANONYMOUS) || fd < 0)
        return (flags & MAP_SHARED) ? "mmap:anon shared" : "mmap:anon";
    const char *_Atomic *slot = &label_cache[(unsigned)fd % LABEL_SLOTS];
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "mmap:file fd=%d", fd);
    const char *c = atomic_load_explicit(slot, memory_order_acquire);
    if (c != NULL && strcmp(c, tmp) == 0)
        return c;
    c = stw__check_label("%s", tmp);
    atomic_store_explicit(slot, c, memory_order_release);
    return c;
}

/* ---- booked ranges ---- */

typedef struct range {
    uintptr_t start, end;
} range;

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static range *ranges; /* sorted by start, disjoint */
static size_t nranges, cap_ranges;
/* Set while this thread holds map_lock, so a fork from a signal handler
 * that interrupted it does not wait for itself. */
static STW_TLS bool map_holding;
static STW_TLS bool map_fork_locked;

static void lock(void)
{
    pthread_mutex_lock(&map_lock);
    map_holding = true;
}

static void unlock(void)
{
    map_holding = false;
    pthread_mutex_unlock(&map_lock);
}

/* Index of the first range ending after @addr. */
static size_t first_after(uintptr_t addr)
{
    size_t lo = 0, hi = nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ranges[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool ranges_insert_at(size_t i, uintptr_t start, uintptr_t end)
{
    if (nranges == cap_ranges) {
        size_t ncap = cap_ranges ? cap_ranges * 2 : 256;
        range *n = stw__pages_alloc(ncap * sizeof(range));
        if (n == NULL)
            return false;
        if (ranges != NULL) {
            memcpy(n, ranges, nranges * sizeof(range));
            stw__pages_free(ranges, cap_ranges * sizeof(range));
        }
        ranges = n;
        cap_ranges = ncap;
    }
    memmove(&ranges[i + 1], &ranges[i], (nranges - i) * sizeof(range));
    ranges[i] = (range){start, end};
    nranges++;
    return true;
}

static void ranges_erase_at(size_t i)
{
    memmove(&ranges[i], &ranges[i + 1], (nranges - i - 1) * sizeof(range));
    nranges--;
}

/*
 * Under map_lock: [lo, hi) is no longer what it was (unmapped, or replaced
 * by a new mapping). Every booked range overlapping it loses that part;
 * what is left keeps its record's stack and label. Returns the record of
 * the range that contained @lo, if any, in @was (for mremap).
 */
static bool carve(uintptr_t lo, uintptr_t hi, stw_record *was)
{
    bool found = false;
    size_t i = first_after(lo);
    while (i < nranges && ranges[i].start < hi) {
        range r = ranges[i];
        stw_record rec;
        bool booked = stw_ledger_lookup(STW_KIND_MMAP, r.start, &rec) == 0;
        if (booked && was != NULL && r.start <= lo && !found) {
            *was = rec;
            found = true;
        }
        bool head = r.start<lo, tail = r.end> hi;
        if (head) {
            /* The record stays at r.start, shorter. */
            ranges[i].end = lo;
            if (booked)
                stw_ledger_resize(STW_KIND_MMAP, r.start, lo - r.start);
            i++;
        } else {
            ranges_erase_at(i);
            if (booked)
                stw__ledger_remove(STW_KIND_MMAP, r.start);
        }
        if (tail) {
            /* The part after the hole becomes a record of its own. */
            if (ranges_insert_at(i, hi, r.end)) {
                if (booked)
                    stw__ledger_insert(STW_KIND_MMAP, hi, r.end - hi, rec.site, rec.label);
                i++;
            }
        }
    }
    return found;
}

static size_t page_round(size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (len + pg - 1) & ~(pg - 1);
}

/* Under map_lock: the kernel just made [p, p+len): whatever the books
 * still held there is stale (MAP_FIXED replaced it). Returns whether the
 * range is in the index, i.e. may be booked. */
static bool add_range(void *p, size_t len)
{
    uintptr_t start = (uintptr_t)p, end = start + page_round(len);
    carve(start, end, NULL);
    return ranges_insert_at(first_after(start), start, end);
}

/* ---- mmap ---- */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

static void *do_mmap(mmap_fn real, void *caller, void *addr, size_t len, int prot, int flags,
                     int fd, off_t off, bool *book)
{
    *book = false;
    if (!programs_call(caller) || !ready_for(STW_KIND_MMAP))
        return real(addr, len, prot, flags, fd, off);
    lock();
    void *p = real(addr, len, prot, flags, fd, off);
    int saved = errno;
    if (p != MAP_FAILED)
        *book = add_range(p, len);
    unlock();
    errno = saved;
    return p;
}

STW_HOOK void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    STW_REAL(void *, mmap, (void *, size_t, int, int, int, off_t));
    bool book;
    void *p =
        do_mmap(real_mmap, __builtin_return_address(0), addr, len, prot, flags, fd, off, &book);
    if (book) {
        int saved = errno;
        stw__check_record(STW_KIND_MMAP, (uintptr_t)p, page_round(len), map_label(flags, fd), 1);
        errno = saved;
    }
    return p;
}

STW_HOOK void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    STW_REAL(void *, mmap64, (void *, size_t, int, int, int, off_t));
    bool book;
    void *p =
        do_mmap(real_mmap64, __builtin_return_address(0), addr, len, prot, flags, fd, off, &book);
    if (book) {
        int saved = errno;
        stw__check_record(STW_KIND_MMAP, (uintptr_t)p, page_round(len), map_label(flags, fd), 1);
        errno = saved;
    }
    return p;
}

STW_HOOK int munmap(void *addr, size_t len)
{
    STW_REAL(int, munmap, (void *, size_t));
    if (!programs_call(__builtin_return_address(0)) || !stw__check_ready())
        return real_munmap(addr, len);
    lock();
    int rc = real_munmap(addr, len);
    int saved = errno;
    if (rc == 0 && len > 0)
        carve((uintptr_t)addr, (uintptr_t)addr + page_round(len), NULL);
    unlock();
    errno = saved;
    return rc;
}

STW_HOOK void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    STW_REAL(void *, mremap, (void *, size_t, size_t, int, ...));
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    if (!programs_call(__builtin_return_address(0)) || !stw__check_ready())
        return real_mremap(old, old_len, new_len, flags, want);
    lock();
    void *p = real_mremap(old, old_len, new_len, flags, want);
    int saved = errno;
    if (p != MAP_FAILED) {
        uintptr_t o = (uintptr_t)old;
        stw_record was;
        bool known;
        /* With old_len 0 (a second mapping of shared memory) or
         * MREMAP_DONTUNMAP the old range stays mapped. */
        if (old_len == 0 || (flags & MREMAP_DONTUNMAP)) {
            size_t i = first_after(o);
            known = i < nranges && ranges[i].start <= o &&
                    stw_ledger_lookup(STW_KIND_MMAP, ranges[i].start, &was) == 0;
        } else {
            known = carve(o, o + page_round(old_len), &was);
        }
        /* The new range carries on the record it came from: same stack and
         * label. A mapping we never booked stays unbooked. */
        uintptr_t n = (uintptr_t)p;
        carve(n, n + page_round(new_len), NULL);
        if (known && ranges_insert_at(first_after(n), n, n + page_round(new_len)))
            stw__ledger_insert(STW_KIND_MMAP, n, page_round(new_len), was.site, was.label);
    }
    unlock();
    errno = saved;
    return p;
}

/* ---- timers ---- */

static const char *clock_label(clockid_t c)
{
    switch (c) {
    case CLOCK_REALTIME:
        return "timer:CLOCK_REALTIME";
    case CLOCK_MONOTONIC:
        return "timer:CLOCK_MONOTONIC";
    case CLOCK_PROCESS_CPUTIME_ID:
        return "timer:CLOCK_PROCESS_CPUTIME_ID";
    case CLOCK_THREAD_CPUTIME_ID:
        return "timer:CLOCK_THREAD_CPUTIME_ID";
    case CLOCK_BOOTTIME:
        return "timer:CLOCK_BOOTTIME";
    case CLOCK_REALTIME_ALARM:
        return "timer:CLOCK_REALTIME_ALARM";
    case CLOCK_BOOTTIME_ALARM:
        return "timer:CLOCK_BOOTTIME_ALARM";
    case CLOCK_TAI:
        return "timer:CLOCK_TAI";
    default:
        /* CPU clocks of other processes and threads (clock_getcpuclockid). */
        return "timer:cpu clock";
    }
}

STW_HOOK int timer_create(clockid_t clock, struct sigevent *sev, timer_t *out)
{
    STW_REAL(int, timer_create, (clockid_t, struct sigevent *, timer_t *));
    int rc = real_timer_create(clock, sev, out);
    if (rc != 0)
        return rc;
    int saved = errno;
    if (ready_for(STW_KIND_TIMER) && programs_call(__builtin_return_address(0)))
        stw__check_record(STW_KIND_TIMER, (uint64_t)(uintptr_t)*out, 0, clock_label(clock), 1);
    errno = saved;
    return rc;
}

STW_HOOK int timer_delete(timer_t t)
{
    STW_REAL(int, timer_delete, (timer_t));
    int rc = real_timer_delete(t);
    int saved = errno;
    if (rc == 0 && stw__check_ready())
        stw__ledger_remove(STW_KIND_TIMER, (uint64_t)(uintptr_t)t);
    errno = saved;
    return rc;
}

/* ---- fork ---- */

static void fork_prepare(void)
{
    map_fork_locked = !map_holding;
    if (map_fork_locked)
        lock();
}

static void fork_parent(void)
{
    if (map_fork_locked)
        unlock();
}

static void fork_child(void)
{
    map_holding = false;
    pthread_mutex_init(&map_lock, NULL);
}

__attribute__((constructor(102))) static void misc_ctor(void)
{
    /* map_lock is taken before the ledger's locks, as the hooks do. */
    stw__check_atfork_before_ledger(fork_prepare, fork_parent, fork_child);
}
