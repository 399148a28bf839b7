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

void *stw__pages_alloc(size_t size)
{
    void *p =
        mmap(NULL, page_round(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void stw__pages_free(void *p, size_t size)
{
    if (p != NULL)
        munmap(p, page_round(size));
}

void *stw__pages_reserve(size_t size)
{
    void *p = mmap(NULL, page_round(size), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
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
