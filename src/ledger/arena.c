#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ledger_internal.h"

static size_t page_round(size_t size)
{
    size_t pg = 4096;
    return (size + pg - 1) & ~(pg - 1);
}

#ifdef STW_PRELOAD
/* The checker's own mappings. In sampling mode its pointer scan reads the
 * program's anonymous memory (malloc's arenas and mmap'ed chunks, which
 * hold the unsampled blocks) as roots, and must leave these out: the
 * ledger's tables, snapshots and the scan's own arrays hold every block's
 * address. An open-addressing table keyed by start address, lock-free so
 * that a fork in the middle of an update cannot leave a lock held; a
 * mapping that finds no slot is only scanned as a root (conservative). */
#define OWN_SLOTS ((size_t)1 << 16)
#define OWN_TOMB ((uintptr_t)1)
typedef struct own_map {
    _Atomic uintptr_t base;
    _Atomic size_t len; /* 0 while being published */
} own_map;
static own_map *_Atomic own_tab;

/* By page number, not a mixing hash: mmap hands out neighbouring
 * addresses, so a process's few hundred mappings touch a few pages of the
 * table, not one page each. */
static size_t own_hash(uintptr_t p)
{
    return (size_t)(p >> 12) & (OWN_SLOTS - 1);
}

static void own_note(void *p, size_t len)
{
    own_map *t = atomic_load_explicit(&own_tab, memory_order_acquire);
    if (t == NULL) {
        void *m = mmap(NULL, OWN_SLOTS * sizeof(own_map), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return;
        own_map *expected = NULL;
        if (atomic_compare_exchange_strong(&own_tab, &expected, (own_map *)m)) {
            t = m;
            own_note(m, OWN_SLOTS * sizeof(own_map));
        } else {
            munmap(m, OWN_SLOTS * sizeof(own_map));
            t = expected;
        }
    }
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0, h = own_hash(a); i < OWN_SLOTS; i++) {
        own_map *s = &t[(h + i) & (OWN_SLOTS - 1)];
        uintptr_t b = atomic_load_explicit(&s->base, memory_order_relaxed);
        while ((b == 0 || b == OWN_TOMB) &&
               !atomic_compare_exchange_weak(&s->base, &b, a))
            ;
        if (b == 0 || b == OWN_TOMB) {
            atomic_store_explicit(&s->len, len, memory_order_release);
            return;
        }
    }
}

static void own_forget(void *p)
{
    own_map *t = atomic_load_explicit(&own_tab, memory_order_acquire);
    if (t == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0, h = own_hash(a); i < OWN_SLOTS; i++) {
        own_map *s = &t[(h + i) & (OWN_SLOTS - 1)];
        uintptr_t b = atomic_load_explicit(&s->base, memory_order_acquire);
        if (b == 0)
            return;
        if (b == a) {
            atomic_store_explicit(&s->len, 0, memory_order_relaxed);
            atomic_store_explicit(&s->base, OWN_TOMB, memory_order_release);
            return;
        }
    }
}

size_t stw__pages_own(uintptr_t (*out)[2], size_t max)
{
    own_map *t = atomic_load_explicit(&own_tab, memory_order_acquire);
    size_t n = 0;
    for (size_t i = 0; t != NULL && i < OWN_SLOTS && n < max; i++) {
        uintptr_t b = atomic_load_explicit(&t[i].base, memory_order_acquire);
        size_t len = atomic_load_explicit(&t[i].len, memory_order_acquire);
        if (b > OWN_TOMB && len > 0) {
            out[n][0] = b;
            out[n][1] = b + len;
            n++;
        }
    }
    return n;
}
#else
static void own_note(void *p, size_t len)
{
    (void)p;
    (void)len;
}

static void own_forget(void *p)
{
    (void)p;
}
#endif

/* Anonymous read-write pages, booked as the checker's own. */
static void *map_pages(size_t size, int flags)
{
    void *p = mmap(NULL, page_round(size), PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    own_note(p, page_round(size));
    return p;
}

void *stw__pages_alloc(size_t size)
{
    return map_pages(size, MAP_PRIVATE);
}

void stw__pages_free(void *p, size_t size)
{
    if (p != NULL) {
        own_forget(p);
        munmap(p, page_round(size));
    }
}

void *stw__pages_shared(size_t size)
{
    return map_pages(size, MAP_SHARED);
}

void *stw__pages_reserve(size_t size)
{
    return map_pages(size, MAP_PRIVATE | MAP_NORESERVE);
}

/* The arena holds small permanent things (kind names); 1 MiB reserved is
 * far more than they need, and untouched pages cost nothing. */
#define ARENA_SIZE (1u << 20)
static char *arena_base;
static atomic_size_t arena_used;

void *stw__arena_alloc(size_t size)
{
    char *base = __atomic_load_n(&arena_base, __ATOMIC_ACQUIRE);
    if (base == NULL) {
        char *fresh = stw__pages_reserve(ARENA_SIZE);
        if (fresh == NULL)
            return NULL;
        char *expected = NULL;
        if (!__atomic_compare_exchange_n(&arena_base, &expected, fresh, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            stw__pages_free(fresh, ARENA_SIZE);
            base = expected;
        } else {
            base = fresh;
        }
    }
    size = (size + 15) & ~(size_t)15;
    size_t off = atomic_fetch_add(&arena_used, size);
    if (off + size > ARENA_SIZE)
        return NULL;
    return base + off;
}

static void swap_bytes(char *a, char *b, size_t size)
{
    while (size--) {
        char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

static void sift_down(char *base, size_t root, size_t n, size_t size,
                      int (*cmp)(const void *, const void *))
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0)
            child++;
        if (cmp(base + root * size, base + child * size) >= 0)
            return;
        swap_bytes(base + root * size, base + child * size, size);
        root = child;
    }
}

void stw__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    char *b = base;
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(b, i, n, size, cmp);
    for (size_t end = n - 1; end > 0; end--) {
        swap_bytes(b, b + end * size, size);
        sift_down(b, 0, end, size, cmp);
    }
}

/* LSD radix sort of @n elements of @size bytes by the uint64_t at
 * @key_off, skipping digits all keys share: a million blocks sort in
 * milliseconds, where a comparison sort without malloc (heap sort) takes a
 * second. Digits are 16 bits for large @n and 8 bits below 64 Ki elements,
 * whose 256 counters stay on the stack: clearing 512 KiB of 16-bit counters
 * four times cost a short-lived checked program more than its whole run.
 * 0 or -ENOMEM. */
int stw__radix_sort(void *base, size_t n, size_t size, size_t key_off)
{
    if (n < 2)
        return 0;
    const bool wide = n >= 65536;
    const int bits = wide ? 16 : 8;
    const size_t ndig = (size_t)1 << bits, mask = ndig - 1;
    size_t tmp_bytes = n * size, cnt_bytes = wide ? ndig * sizeof(size_t) : 0;
    size_t small_cnt[256];
    char *tmp = stw__pages_alloc(tmp_bytes);
    size_t *cnt = wide ? stw__pages_alloc(cnt_bytes) : small_cnt;
    if (tmp == NULL || cnt == NULL) {
        stw__pages_free(tmp, tmp_bytes);
        if (wide)
            stw__pages_free(cnt, cnt_bytes);
        return -ENOMEM;
    }
    char *src = base, *dst = tmp;
    for (int shift = 0; shift < 64; shift += bits) {
        memset(cnt, 0, ndig * sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            uint64_t k;
            memcpy(&k, src + i * size + key_off, sizeof(k));
            cnt[(k >> shift) & mask]++;
        }
        uint64_t first;
        memcpy(&first, src + key_off, sizeof(first));
        if (cnt[(first >> shift) & mask] == n)
            continue;
        size_t sum = 0;
        for (size_t d = 0; d < ndig; d++) {
            size_t c = cnt[d];
            cnt[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t k;
            memcpy(&k, src + i * size + key_off, sizeof(k));
            memcpy(dst + cnt[(k >> shift) & mask]++ * size, src + i * size, size);
        }
        char *t = src;
        src = dst;
        dst = t;
    }
    if (src != base)
        memcpy(base, src, n * size);
    stw__pages_free(tmp, tmp_bytes);
    if (wide)
        stw__pages_free(cnt, cnt_bytes);
    return 0;
}
