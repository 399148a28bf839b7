/*
 * Heap records indexed by address: where the checker's ledger keeps its
 * heap blocks (stw__blocks_enable), instead of the hash shards.
 *
 * A malloc'ed block starts 16-byte aligned and at least 32 bytes after
 * the previous block's start (glibc's smallest chunk is 32 bytes), so
 * every 32-byte granule of the address space holds at most one block
 * start. Each granule has one 8-byte slot in a leaf that covers 4 MiB of
 * address space; leaves are reserved (MAP_NORESERVE) when a block first
 * lands in their range and cost memory only where blocks are. Nothing
 * ever grows, shrinks or rehashes: insert is one store, remove one
 * compare-and-swap, and no lock is taken. That is 8 bytes per 32 bytes
 * of heap at most, 8 per live block for the smallest blocks; the records
 * hold no addresses (the pointer scan need not skip them).
 *
 * A slot holds the block's site, its size (below 16 MiB; larger blocks
 * go to the shards) and an era: eras are short spans of time (about
 * 33 ms) that also end at every checkpoint, each with a sequence number
 * and a start time, which stand for the block's seq and birth time. So a
 * record made after a checkpoint has a seq above it, as in the shards;
 * within an era blocks share a seq. Era numbers keep 20 bits: after 2^20
 * eras (about 9.7 hours without checkpoints) an old block's birth is no
 * longer known exactly.
 *
 * Live counts and bytes per site are kept as the blocks come and go, so
 * the growth sampler reads per-site numbers instead of walking records.
 * Each thread gathers its changes in a small cache of its own and adds
 * them to the shared counters when a site's change reaches 256 blocks or
 * 16 KiB, when another site needs its entry, when an era ends (so
 * readers lag an active thread by about 33 ms) and when the thread exits:
 * a locked add per malloc and free would stall the program's own
 * pipeline on the slot's cache miss.
 *
 * Insert and remove are plain stores: a block belongs to one thread at a
 * time. Two threads freeing the same block at the same instant (a double
 * free racing itself) can both find it live; glibc's own checks are then
 * what stands between the program and a corrupt heap, as without the
 * checker.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "ledger_internal.h"

#define GRAIN_SHIFT 5
#define LEAF_SHIFT 22
#define ADDR_BITS 47
#define LEAF_SLOTS ((size_t)1 << (LEAF_SHIFT - GRAIN_SHIFT))
#define NLEAVES ((size_t)1 << (ADDR_BITS - LEAF_SHIFT))

#define SITE_BITS 18
#define SIZE_BITS 24
#define ERA_BITS 20
#define SIZE_SHIFT SITE_BITS
#define ERA_SHIFT (SITE_BITS + SIZE_BITS)
#define HALF_BIT (UINT64_C(1) << 62) /* address bit 4: which half of the granule */
#define LIVE_BIT (UINT64_C(1) << 63)
#define FIELD(v, shift, bits) (((v) >> (shift)) & ((UINT64_C(1) << (bits)) - 1))

#define NERAS ((size_t)1 << ERA_BITS)
#define ERA_NS (INT64_C(1) << 25) /* 33.5 ms */

typedef _Atomic uint64_t slot;

typedef struct era {
    _Atomic uint64_t full; /* the era's number, to tell a reused entry */
    uint64_t seq;
    int64_t start_ns;
} era;

typedef struct site_ctr {
    atomic_llong live;
    atomic_llong bytes;
    atomic_llong created;
} site_ctr;

static bool enabled;
static uint64_t weight_min; /* sampling: the bytes a block stands for at least */
static _Atomic(slot *) *dir;      /* leaf by address >> LEAF_SHIFT */
static _Atomic uint32_t *leaf_ids; /* leaves in the order made, +1 (0: not yet written) */
static atomic_size_t nleaf_ids;
static site_ctr *ctrs; /* by site id; 0 counts blocks without a site */
static era *eras;
static _Atomic uint64_t cur_era;
static atomic_llong era_end_ns;
static atomic_flag era_lock = ATOMIC_FLAG_INIT;

/* ---- per-thread counter cache ---- */

#define TC_SLOTS 64
#define TC_MAX_LIVE 256
#define TC_MAX_BYTES (16 * 1024)
#define TC_EMPTY UINT32_MAX

typedef struct tc_ent {
    uint32_t site;
    int32_t live;
    int32_t created;
    int64_t bytes;
} tc_ent;

static STW_TLS tc_ent tc[TC_SLOTS];
static STW_TLS uint64_t tc_era;
static STW_TLS bool tc_ready; /* entries marked empty, exit flush armed */
static pthread_key_t tc_key;
static bool tc_key_ok;

static void tc_flush_one(tc_ent *t)
{
    if (t->site != TC_EMPTY && (t->live | t->created | t->bytes) != 0) {
        site_ctr *c = &ctrs[t->site];
        atomic_fetch_add_explicit(&c->live, t->live, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->bytes, t->bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->created, t->created, memory_order_relaxed);
    }
    t->live = t->created = 0;
    t->bytes = 0;
}

static void tc_flush_all(void)
{
    for (int i = 0; i < TC_SLOTS; i++)
        tc_flush_one(&tc[i]);
}

static void tc_on_exit(void *arg)
{
    (void)arg;
    tc_flush_all();
}

static void tc_init(void)
{
    for (int i = 0; i < TC_SLOTS; i++)
        tc[i].site = TC_EMPTY;
    tc_ready = true;
    /* Any non-NULL value arms the destructor; keys below 32 live in the
     * thread descriptor, so this does not allocate. */
    if (tc_key_ok)
        pthread_setspecific(tc_key, (void *)1);
}

static inline void tc_add(uint32_t site, int live, int created, int64_t bytes)
{
    if (__builtin_expect(!tc_ready, 0))
        tc_init();
    tc_ent *t = &tc[site & (TC_SLOTS - 1)];
    if (t->site != site) {
        tc_flush_one(t);
        t->site = site;
    }
    t->live += live;
    t->created += created;
    t->bytes += bytes;
    if (t->live >= TC_MAX_LIVE || t->live <= -TC_MAX_LIVE || t->bytes >= TC_MAX_BYTES ||
        t->bytes <= -TC_MAX_BYTES)
        tc_flush_one(t);
}

static int64_t coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Start a new era numbered with @seq. An insert that finds another thread
 * starting one keeps the current era (a time bound is a bound on
 * precision, not a promise); a checkpoint (@wait) must see its era begin. */
static uint64_t era_begin(uint64_t seq, int64_t now, bool wait)
{
    while (atomic_flag_test_and_set_explicit(&era_lock, memory_order_acquire)) {
        if (!wait)
            return atomic_load_explicit(&cur_era, memory_order_acquire);
        __builtin_ia32_pause();
    }
    uint64_t e = atomic_load_explicit(&cur_era, memory_order_relaxed) + 1;
    era *x = &eras[e & (NERAS - 1)];
    x->seq = seq;
    x->start_ns = now;
    atomic_store_explicit(&x->full, e, memory_order_release);
    atomic_store_explicit(&era_end_ns, now + ERA_NS, memory_order_relaxed);
    atomic_store_explicit(&cur_era, e, memory_order_release);
    atomic_flag_clear_explicit(&era_lock, memory_order_release);
    return e;
}

void stw__blocks_new_era(uint64_t seq)
{
    if (enabled)
        era_begin(seq, coarse_ns(), true);
}

void stw__blocks_atfork_child(void)
{
    atomic_flag_clear(&era_lock);
}

void stw__blocks_lock(void)
{
    while (atomic_flag_test_and_set_explicit(&era_lock, memory_order_acquire))
        __builtin_ia32_pause();
}

void stw__blocks_unlock(void)
{
    atomic_flag_clear_explicit(&era_lock, memory_order_release);
}

bool stw__blocks_enable(uint64_t sample_bytes)
{
    if (enabled)
        return true;
    dir = stw__pages_reserve(NLEAVES * sizeof(*dir));
    leaf_ids = stw__pages_reserve(NLEAVES * sizeof(*leaf_ids));
    ctrs = stw__pages_reserve(((size_t)1 << SITE_BITS) * sizeof(*ctrs));
    eras = stw__pages_reserve(NERAS * sizeof(*eras));
    if (dir == NULL || leaf_ids == NULL || ctrs == NULL || eras == NULL) {
        stw__pages_free(dir, NLEAVES * sizeof(*dir));
        stw__pages_free(leaf_ids, NLEAVES * sizeof(*leaf_ids));
        stw__pages_free(ctrs, ((size_t)1 << SITE_BITS) * sizeof(*ctrs));
        stw__pages_free(eras, NERAS * sizeof(*eras));
        return false;
    }
    tc_key_ok = pthread_key_create(&tc_key, tc_on_exit) == 0;
    weight_min = sample_bytes;
    int64_t now = coarse_ns();
    eras[0] = (era){.full = 0, .seq = 1, .start_ns = now};
    atomic_store(&era_end_ns, now + ERA_NS);
    enabled = true;
    return true;
}

bool stw__blocks_on(void)
{
    return enabled;
}

static slot *leaf_of(uintptr_t a, bool make)
{
    size_t li = a >> LEAF_SHIFT;
    slot *leaf = atomic_load_explicit(&dir[li], memory_order_acquire);
    if (leaf != NULL || !make)
        return leaf;
    slot *fresh = stw__pages_reserve(LEAF_SLOTS * sizeof(slot));
    if (fresh == NULL)
        return NULL;
    slot *expected = NULL;
    if (!atomic_compare_exchange_strong(&dir[li], &expected, fresh)) {
        stw__pages_free(fresh, LEAF_SLOTS * sizeof(slot));
        return expected;
    }
    size_t k = atomic_fetch_add(&nleaf_ids, 1);
    atomic_store_explicit(&leaf_ids[k], (uint32_t)li + 1, memory_order_release);
    return fresh;
}

static inline slot *slot_of(slot *leaf, uintptr_t a)
{
    return &leaf[(a >> GRAIN_SHIFT) & (LEAF_SLOTS - 1)];
}

static inline bool slot_is(uint64_t v, uintptr_t a)
{
    return (v & LIVE_BIT) != 0 && ((v & HALF_BIT) != 0) == ((a & 16) != 0);
}

/* What a block of @size bytes counts for. */
static inline int64_t weight(uint64_t size)
{
    return (int64_t)(size < weight_min ? weight_min : size);
}

static inline bool fits(uintptr_t a, uint64_t size, stw_site site)
{
    return (a & 15) == 0 && a < ((uintptr_t)1 << ADDR_BITS) && size < (UINT64_C(1) << SIZE_BITS) &&
           site < (UINT32_C(1) << SITE_BITS);
}

int stw__blocks_insert(uintptr_t a, uint64_t size, stw_site site)
{
    if (!fits(a, size, site))
        return -E2BIG;
    slot *leaf = leaf_of(a, true);
    if (leaf == NULL)
        return -ENOMEM;
    int64_t now = coarse_ns();
    uint64_t e = atomic_load_explicit(&cur_era, memory_order_acquire);
    if (__builtin_expect(now >= atomic_load_explicit(&era_end_ns, memory_order_relaxed), 0))
        e = era_begin(stw__seq_fresh(), now, false);
    if (e != tc_era) {
        /* Once an era at most: readers see this thread's counts. */
        tc_era = e;
        tc_flush_all();
    }
    slot *s = slot_of(leaf, a);
    uint64_t old = atomic_load_explicit(s, memory_order_relaxed);
    if (slot_is(old, a))
        return -EEXIST;
    /* The block is its allocating thread's until it is handed on, and a
     * slot holds one block start: a plain store is enough. */
    atomic_store_explicit(s,
                          LIVE_BIT | ((a & 16) ? HALF_BIT : 0) |
                              ((e & (NERAS - 1)) << ERA_SHIFT) | (size << SIZE_SHIFT) | site,
                          memory_order_release);
    tc_add(site, 1, 1, weight(size));
    return 0;
}

/* The full era number of the 20 bits @low, the latest not after now. */
static uint64_t era_full(uint64_t low)
{
    uint64_t now = atomic_load_explicit(&cur_era, memory_order_acquire);
    return now - ((now - low) & (NERAS - 1));
}

static void to_record(uintptr_t a, uint64_t v, stw_record *r)
{
    uint64_t e = era_full(FIELD(v, ERA_SHIFT, ERA_BITS));
    const era *x = &eras[e & (NERAS - 1)];
    bool known = atomic_load_explicit(&x->full, memory_order_acquire) == e;
    uint64_t size = FIELD(v, SIZE_SHIFT, SIZE_BITS);
    *r = (stw_record){
        .kind = STW_KIND_HEAP,
        .id = a,
        .size = (uint64_t)weight(size),
        .extent = size < weight_min ? (size ? size : 1) : 0,
        .site = (stw_site)FIELD(v, 0, SITE_BITS),
        .owner = 0,
        .birth_ns = known ? x->start_ns : 0,
        .seq = known ? x->seq : 1,
        .label = NULL,
    };
}

int stw__blocks_remove(uintptr_t a, stw_record *out)
{
    if ((a & 15) != 0 || a >= ((uintptr_t)1 << ADDR_BITS))
        return -ENOENT;
    slot *leaf = leaf_of(a, false);
    if (leaf == NULL)
        return -ENOENT;
    slot *s = slot_of(leaf, a);
    uint64_t v = atomic_load_explicit(s, memory_order_relaxed);
    if (!slot_is(v, a))
        return -ENOENT;
    atomic_store_explicit(s, 0, memory_order_relaxed);
    tc_add((uint32_t)FIELD(v, 0, SITE_BITS), -1, 0, -weight(FIELD(v, SIZE_SHIFT, SIZE_BITS)));
    if (out != NULL)
        to_record(a, v, out);
    return 0;
}

void stw__blocks_prefetch(uintptr_t a)
{
    if (!enabled || (a & 15) != 0 || a >= ((uintptr_t)1 << ADDR_BITS))
        return;
    slot *leaf = leaf_of(a, false);
    if (leaf != NULL)
        __builtin_prefetch(slot_of(leaf, a), 1, 3);
}

int stw__blocks_lookup(uintptr_t a, stw_record *out)
{
    if ((a & 15) != 0 || a >= ((uintptr_t)1 << ADDR_BITS))
        return -ENOENT;
    slot *leaf = leaf_of(a, false);
    if (leaf == NULL)
        return -ENOENT;
    uint64_t v = atomic_load_explicit(slot_of(leaf, a), memory_order_acquire);
    if (!slot_is(v, a))
        return -ENOENT;
    if (out != NULL)
        to_record(a, v, out);
    return 0;
}

int stw__blocks_resize(uintptr_t a, uint64_t size)
{
    if (size >= (UINT64_C(1) << SIZE_BITS))
        return -E2BIG;
    slot *leaf = (a & 15) == 0 && a < ((uintptr_t)1 << ADDR_BITS) ? leaf_of(a, false) : NULL;
    if (leaf == NULL)
        return -ENOENT;
    slot *s = slot_of(leaf, a);
    uint64_t v = atomic_load_explicit(s, memory_order_acquire), n;
    do {
        if (!slot_is(v, a))
            return -ENOENT;
        n = (v & ~(((UINT64_C(1) << SIZE_BITS) - 1) << SIZE_SHIFT)) | (size << SIZE_SHIFT);
    } while (!atomic_compare_exchange_weak_explicit(s, &v, n, memory_order_acq_rel,
                                                    memory_order_acquire));
    tc_add((uint32_t)FIELD(v, 0, SITE_BITS), 0, 0, weight(size) - weight(FIELD(v, SIZE_SHIFT, SIZE_BITS)));
    return 0;
}

int stw__blocks_each(int (*fn)(const stw_record *r, void *ud), void *ud)
{
    if (!enabled)
        return 0;
    size_t n = atomic_load_explicit(&nleaf_ids, memory_order_acquire);
    for (size_t k = 0; k < n; k++) {
        uint32_t id = atomic_load_explicit(&leaf_ids[k], memory_order_acquire);
        if (id == 0)
            continue; /* being published by another thread: holds nothing yet */
        uintptr_t base = (uintptr_t)(id - 1) << LEAF_SHIFT;
        slot *leaf = atomic_load_explicit(&dir[id - 1], memory_order_acquire);
        /* Eight slots at a time: most of a leaf is empty. */
        for (size_t i = 0; i < LEAF_SLOTS; i += 8) {
            const uint64_t *w = (const uint64_t *)&leaf[i];
            if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) == 0)
                continue;
            for (size_t j = i; j < i + 8; j++) {
                uint64_t v = atomic_load_explicit(&leaf[j], memory_order_acquire);
                if (!(v & LIVE_BIT))
                    continue;
                uintptr_t a = base + (j << GRAIN_SHIFT) + ((v & HALF_BIT) ? 16 : 0);
                stw_record r;
                to_record(a, v, &r);
                int rc = fn(&r, ud);
                if (rc != 0)
                    return rc;
            }
        }
    }
    return 0;
}

void stw__blocks_site(stw_site site, int64_t *live, int64_t *bytes)
{
    if (!enabled || site >= (UINT32_C(1) << SITE_BITS)) {
        *live = *bytes = 0;
        return;
    }
    *live = atomic_load_explicit(&ctrs[site].live, memory_order_relaxed);
    *bytes = atomic_load_explicit(&ctrs[site].bytes, memory_order_relaxed);
}

void stw__blocks_kind_stat(stw_kind_stat *out)
{
    *out = (stw_kind_stat){0};
    if (!enabled)
        return;
    uint32_t n = stw__site_count();
    for (uint32_t i = 0; i <= n && i < (UINT32_C(1) << SITE_BITS); i++) {
        const site_ctr *c = &ctrs[i];
        long long live = atomic_load_explicit(&c->live, memory_order_relaxed);
        long long created = atomic_load_explicit(&c->created, memory_order_relaxed);
        out->live += live;
        out->live_bytes += atomic_load_explicit(&c->bytes, memory_order_relaxed);
        out->created += created;
        out->released += created - live;
    }
}
