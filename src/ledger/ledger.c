/*
 * The ledger's tables.
 *
 * Records live in STW__NSHARDS independent hash tables (linear probing,
 * backward-shift deletion), each behind its own spinlock and chosen by a
 * hash of (kind, id), so threads touching different resources rarely meet.
 * Tables are mmap'ed and doubled under their shard's lock when 70% full.
 *
 * Sites live in one array reserved up front (MAP_NORESERVE: untouched pages
 * cost nothing) and are found through a lock-free open-addressing index of
 * site ids: a new site is filled in first, then published with one CAS.
 * Sites carry no counters: a counter per site would be one cache line that
 * every thread allocating from that line of code writes. Snapshots add up
 * live counts and bytes per site from the records instead.
 *
 * The checker keeps its heap blocks elsewhere (blocks.c, indexed by
 * address, with per-site counters): millions of them made the shards'
 * tables grow, shrink and rehash on the program's every malloc.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "ledger_internal.h"

#define SITE_CAP (1u << 18)
#define SITE_SLOTS (SITE_CAP * 2)
#define SHARD_MIN_CAP 64

/* ---- process-wide state ---- */

static atomic_int init_state; /* 0 none, 1 running, 2 done */
static stw__site *sites;      /* index 0 unused: site 0 means unknown */
static _Atomic uint32_t *site_slots;
static atomic_uint nsites;
/* Birth sequence numbers are handed to threads in blocks, so the hot path
 * does not bounce one shared counter between cores. A checkpoint bumps the
 * epoch, which makes every thread take a fresh block (above the
 * checkpoint) before its next record: whatever is created after a
 * checkpoint returns gets a larger number than the checkpoint. */
#define SEQ_BLOCK 256
static atomic_ullong seq_counter;
static atomic_uint seq_epoch;

static char kind_names[STW_KIND_MAX][32] = {
    [STW_KIND_HEAP] = "heap",     [STW_KIND_THREAD] = "thread",   [STW_KIND_FD] = "fd",
    [STW_KIND_SOCKET] = "socket", [STW_KIND_PROCESS] = "process", [STW_KIND_MMAP] = "mmap",
    [STW_KIND_TIMER] = "timer",   [STW_KIND_FILE] = "file",       [STW_KIND_DIR] = "dir",
    [STW_KIND_BUF] = "buf",       [STW_KIND_FRAME] = "frame",     [STW_KIND_POOL] = "pool",
    [STW_KIND_SCOPE] = "scope",   [STW_KIND_CHAN] = "chan",
};
static atomic_int user_kinds;
static pthread_mutex_t kind_lock = PTHREAD_MUTEX_INITIALIZER;

/* Per-kind totals are kept per shard and changed under the shard's lock,
 * so the hot path touches no cache line shared by all threads; readers sum
 * the shards. Relaxed atomics only make those lock-free reads well-defined. */
typedef struct kind_counters {
    atomic_llong live;
    atomic_llong live_bytes;
    atomic_llong created;
    atomic_llong released;
} kind_counters;

typedef struct shard {
    atomic_flag lock;
    size_t cap;
    size_t count;
    stw__entry *tab;
    kind_counters kinds[STW_KIND_MAX];
} __attribute__((aligned(64))) shard;
static shard shards[STW__NSHARDS] = {[0 ... STW__NSHARDS - 1] = {.lock = ATOMIC_FLAG_INIT}};

/* Add @d to a counter only ever written under its shard's lock: a plain
 * load and store, no locked instruction. */
static inline void bump(atomic_llong *c, long long d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* Heap records in the shards while the block map is on: blocks it cannot
 * hold (huge, labelled, owned, or booked before it was on). While there
 * are none, a heap record the map does not know is not live at all. */
static atomic_long shard_heap;

static STW_TLS int guard_depth;
static STW_TLS uint64_t cur_owner;
static STW_TLS uint64_t seq_next, seq_end;
static STW_TLS unsigned seq_epoch_seen;

uint64_t stw__seq_fresh(void)
{
    return atomic_fetch_add(&seq_counter, 1) + 1;
}

static uint64_t next_seq(void)
{
    unsigned ep = atomic_load_explicit(&seq_epoch, memory_order_acquire);
    if (seq_next == seq_end || ep != seq_epoch_seen) {
        seq_epoch_seen = ep;
        seq_next = atomic_fetch_add(&seq_counter, SEQ_BLOCK) + 1;
        seq_end = seq_next + SEQ_BLOCK;
    }
    return seq_next++;
}

/* Birth times need millisecond truth, not nanoseconds: the coarse clock
 * costs a few nanoseconds instead of a full vDSO clock read. */
static int64_t birth_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- guard ---- */

bool stw_ledger_guard_enter(void)
{
    if (guard_depth != 0)
        return false;
    guard_depth = 1;
    return true;
}

void stw_ledger_guard_exit(void)
{
    guard_depth = 0;
}

bool stw_ledger_guard_depth(void)
{
    return guard_depth != 0;
}

/* ---- init and fork ---- */

static void shard_lock(shard *s)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire)) {
        if (++spins < 64)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
}

static void shard_unlock(shard *s)
{
    atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

/* A fork while another thread holds a shard lock would leave the child's
 * copy locked forever; taking every lock around fork() prevents that. */
static void fork_prepare(void)
{
    for (int i = 0; i < STW__NSHARDS; i++)
        shard_lock(&shards[i]);
}

static void fork_release(void)
{
    for (int i = STW__NSHARDS - 1; i >= 0; i--)
        shard_unlock(&shards[i]);
}

void stw__ledger_lock_all(void)
{
    fork_prepare();
    stw__blocks_lock();
}

void stw__ledger_unlock_all(void)
{
    stw__blocks_unlock();
    fork_release();
}

static void fork_child(void)
{
    fork_release();
    stw__blocks_atfork_child();
}

void stw__ledger_init(void)
{
    int st = atomic_load_explicit(&init_state, memory_order_acquire);
    if (st == 2)
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        while (atomic_load_explicit(&init_state, memory_order_acquire) != 2)
            sched_yield();
        return;
    }
    stw__stack_init();
    sites = stw__pages_reserve(sizeof(stw__site) * SITE_CAP);
    site_slots = stw__pages_reserve(sizeof(uint32_t) * SITE_SLOTS);
    if (sites == NULL || site_slots == NULL) {
        /* Without site storage every record gets site 0 ("unknown"). */
        sites = NULL;
        site_slots = NULL;
    }
    atomic_store(&nsites, 0);
    pthread_atfork(fork_prepare, fork_release, fork_child);
    atomic_store_explicit(&init_state, 2, memory_order_release);
}

static inline void ensure_init(void)
{
    if (__builtin_expect(atomic_load_explicit(&init_state, memory_order_acquire) != 2, 0))
        stw__ledger_init();
}

/* ---- kinds ---- */

static bool kind_valid(int kind)
{
    if (kind < 0 || kind >= STW_KIND_MAX)
        return false;
    if (kind < STW_KIND_BUILTIN_COUNT)
        return true;
    return kind >= STW_KIND_USER_FIRST &&
           kind < STW_KIND_USER_FIRST + atomic_load_explicit(&user_kinds, memory_order_acquire);
}

int stw_kind_register(const char *name)
{
    pthread_mutex_lock(&kind_lock);
    int n = atomic_load(&user_kinds);
    for (int i = 0; i < n; i++) {
        if (strncmp(kind_names[STW_KIND_USER_FIRST + i], name, 31) == 0) {
            pthread_mutex_unlock(&kind_lock);
            return STW_KIND_USER_FIRST + i;
        }
    }
    if (STW_KIND_USER_FIRST + n >= STW_KIND_MAX) {
        pthread_mutex_unlock(&kind_lock);
        return -ENOSPC;
    }
    int kind = STW_KIND_USER_FIRST + n;
    strncpy(kind_names[kind], name, 31);
    kind_names[kind][31] = '\0';
    atomic_store_explicit(&user_kinds, n + 1, memory_order_release);
    pthread_mutex_unlock(&kind_lock);
    return kind;
}

const char *stw_kind_name(int kind)
{
    return kind_valid(kind) ? kind_names[kind] : "?";
}

int stw_kind_lookup(const char *name)
{
    for (int k = 0; k < STW_KIND_MAX; k++)
        if (kind_valid(k) && strcmp(kind_names[k], name) == 0)
            return k;
    return -ENOENT;
}

/* ---- sites ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

static bool site_equal(const stw__site *s, uint64_t h, int kind, void *const *pcs, int depth)
{
    return s->hash == h && s->kind == kind && s->depth == depth &&
           memcmp(s->pcs, pcs, sizeof(void *) * (size_t)depth) == 0;
}

stw_site stw__site_intern(int kind, void *const *pcs, int depth)
{
    ensure_init();
    if (sites == NULL || !kind_valid(kind))
        return 0;
    /* One multiply per frame, one full mix at the end: interning runs on
     * every allocation, and equal hashes are confirmed by comparing stacks. */
    uint64_t h = (uint64_t)kind * UINT64_C(0x9e3779b97f4a7c15) + (uint64_t)depth;
    for (int i = 0; i < depth; i++)
        h = (h ^ (uint64_t)(uintptr_t)pcs[i]) * UINT64_C(0x100000001b3);
    h = mix64(h);
    uint32_t mine = 0; /* a site filled in but not yet published */
    for (uint32_t probe = 0, idx = (uint32_t)h & (SITE_SLOTS - 1); probe < SITE_SLOTS;
         probe++, idx = (idx + 1) & (SITE_SLOTS - 1)) {
        uint32_t id = atomic_load_explicit(&site_slots[idx], memory_order_acquire);
        if (id == 0) {
            if (mine == 0) {
                mine = atomic_fetch_add(&nsites, 1) + 1;
                if (mine >= SITE_CAP)
                    return 0;
                stw__site *s = &sites[mine];
                s->hash = h;
                s->kind = (uint8_t)kind;
                s->depth = (uint8_t)depth;
                memcpy(s->pcs, pcs, sizeof(void *) * (size_t)depth);
            }
            uint32_t expected = 0;
            if (atomic_compare_exchange_strong(&site_slots[idx], &expected, mine)) {
                atomic_store_explicit(&sites[mine].valid, true, memory_order_release);
                return mine;
            }
            id = expected;
        }
        if (site_equal(&sites[id], h, kind, pcs, depth))
            return id; /* a concurrent twin won; ours stays unpublished */
    }
    return 0;
}

const stw__site *stw__site_get(stw_site site)
{
    if (sites == NULL || site == 0 || site >= SITE_CAP || site > atomic_load(&nsites))
        return NULL;
    const stw__site *s = &sites[site];
    return atomic_load_explicit(&s->valid, memory_order_acquire) ? s : NULL;
}

uint32_t stw__site_count(void)
{
    uint32_t n = atomic_load(&nsites);
    return n >= SITE_CAP ? SITE_CAP - 1 : n;
}

__attribute__((noinline)) stw_site stw_ledger_site_here(int kind, int skip)
{
    void *pcs[STW_STACK_MAX];
    ensure_init();
    int n = stw_stack_capture(pcs, stw__stack_depth(), skip + 1);
    return stw__site_intern(kind, pcs, n);
}

int stw_site_stack(stw_site site, int *kind, void **pcs, int max)
{
    const stw__site *s = stw__site_get(site);
    if (s == NULL)
        return -ENOENT;
    if (kind != NULL)
        *kind = s->kind;
    int n = s->depth < max ? s->depth : max;
    if (n > 0)
        memcpy(pcs, s->pcs, sizeof(void *) * (size_t)n);
    return n;
}

/* ---- record shards ---- */

static inline uint64_t key_hash(int kind, uint64_t id)
{
    return mix64(id ^ ((uint64_t)kind << 56) ^ (uint64_t)kind);
}

/* Heap blocks are sharded by the 64 MiB region they lie in: glibc gives
 * each thread its own arena of that size and alignment, so a thread's
 * blocks share a shard and its lock stays in that thread's cache instead of
 * bouncing between cores. Everything else is spread by its hash. */
static inline shard *shard_of(int kind, uint64_t id, uint64_t h)
{
    if (kind == STW_KIND_HEAP)
        return &shards[mix64((id >> 26) ^ UINT64_C(0x5bd1e995)) >> 58];
    return &shards[h >> 58];
}

static stw__entry *find_slot(shard *s, int kind, uint64_t id, uint64_t h)
{
    if (s->tab == NULL)
        return NULL;
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        stw__entry *e = &s->tab[i];
        if (!e->used)
            return NULL;
        if (e->id == id && e->kind == kind)
            return e;
    }
}

static void place(stw__entry *tab, size_t cap, const stw__entry *src)
{
    size_t mask = cap - 1;
    size_t i = key_hash(src->kind, src->id) & mask;
    while (tab[i].used)
        i = (i + 1) & mask;
    tab[i] = *src;
}

/* Move the shard's records into a table of @ncap slots (a power of two
 * that holds them below the growth threshold). */
static int rehash(shard *s, size_t ncap)
{
    stw__entry *ntab = stw__pages_alloc(ncap * sizeof(stw__entry));
    if (ntab == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->tab[i].used)
            place(ntab, ncap, &s->tab[i]);
    stw__pages_free(s->tab, s->cap * sizeof(stw__entry));
    s->tab = ntab;
    s->cap = ncap;
    return 0;
}

static int grow(shard *s)
{
    return rehash(s, s->cap ? s->cap * 2 : SHARD_MIN_CAP);
}

/* A table that once held a burst of records gives its memory back when it
 * is mostly empty again: below 1/8 full it halves (growth happens at 7/10,
 * so a count hovering near a boundary cannot make it flip back and
 * forth). A failed shrink only keeps the larger table. */
#define SHRINK_MIN_CAP 256

static void maybe_shrink(shard *s)
{
    if (s->cap > SHRINK_MIN_CAP && s->count * 8 < s->cap)
        rehash(s, s->cap / 2);
}

static int shard_insert(int kind, uint64_t id, uint64_t size, stw_site site, const char *label);

int stw__ledger_insert(int kind, uint64_t id, uint64_t size, stw_site site, const char *label)
{
    ensure_init();
    if (!kind_valid(kind))
        return -EINVAL;
    if (kind == STW_KIND_HEAP && stw__blocks_on() && label == NULL && cur_owner == 0) {
        int rc = stw__blocks_insert((uintptr_t)id, size, site);
        if (rc != -E2BIG && rc != -ENOMEM)
            return rc;
        /* The map does not take it: it goes to the shards, where a
         * lookup that misses the map looks next. */
        atomic_fetch_add(&shard_heap, 1);
        rc = shard_insert(kind, id, size, site, label);
        if (rc != 0)
            atomic_fetch_sub(&shard_heap, 1);
        return rc;
    }
    int rc = shard_insert(kind, id, size, site, label);
    if (rc == 0 && kind == STW_KIND_HEAP)
        atomic_fetch_add(&shard_heap, 1);
    return rc;
}

static int shard_insert(int kind, uint64_t id, uint64_t size, stw_site site, const char *label)
{
    uint64_t h = key_hash(kind, id);
    shard *s = shard_of(kind, id, h);
    shard_lock(s);
    if (find_slot(s, kind, id, h) != NULL) {
        shard_unlock(s);
        return -EEXIST;
    }
    if ((s->count + 1) * 10 > s->cap * 7) {
        int rc = grow(s);
        if (rc != 0) {
            shard_unlock(s);
            return rc;
        }
    }
    stw__entry e = {
        .id = id,
        .size = size,
        .seq = next_seq(),
        .birth_ns = birth_now(),
        .owner = cur_owner,
        .label = label,
        .site = site,
        .kind = (uint8_t)kind,
        .used = 1,
    };
    place(s->tab, s->cap, &e);
    s->count++;
    kind_counters *kc = &s->kinds[kind];
    bump(&kc->live, 1);
    bump(&kc->live_bytes, (long long)size);
    bump(&kc->created, 1);
    shard_unlock(s);
    return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void erase(shard *s, stw__entry *e)
{
    size_t mask = s->cap - 1;
    size_t i = (size_t)(e - s->tab);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!s->tab[j].used)
            break;
        size_t home = key_hash(s->tab[j].kind, s->tab[j].id) & mask;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            s->tab[i] = s->tab[j];
            i = j;
        }
    }
    s->tab[i].used = 0;
    s->count--;
}

/* Find (kind, id) under its shard's lock and let @fn act on it there.
 * Inlined with a constant @fn, so the hot path pays no indirect call. */
static inline int with_entry(int kind, uint64_t id, void (*fn)(shard *s, stw__entry *e, void *ud),
                             void *ud)
{
    ensure_init();
    if (!kind_valid(kind))
        return -EINVAL;
    uint64_t h = key_hash(kind, id);
    shard *s = shard_of(kind, id, h);
    shard_lock(s);
    stw__entry *e = find_slot(s, kind, id, h);
    if (e != NULL)
        fn(s, e, ud);
    shard_unlock(s);
    return e != NULL ? 0 : -ENOENT;
}

static void do_remove(shard *s, stw__entry *e, void *ud)
{
    (void)ud;
    kind_counters *kc = &s->kinds[e->kind];
    bump(&kc->live, -1);
    bump(&kc->live_bytes, -(long long)e->size);
    bump(&kc->released, 1);
    erase(s, e);
    maybe_shrink(s);
}

/* True when a heap record of @id is not in the block map and may be in
 * the shards. */
static bool heap_in_shards(void)
{
    return atomic_load_explicit(&shard_heap, memory_order_relaxed) != 0;
}

int stw__ledger_remove(int kind, uint64_t id)
{
    if (kind == STW_KIND_HEAP && stw__blocks_on()) {
        if (stw__blocks_remove((uintptr_t)id, NULL) == 0)
            return 0;
        if (!heap_in_shards())
            return -ENOENT;
    }
    int rc = with_entry(kind, id, do_remove, NULL);
    if (rc == 0 && kind == STW_KIND_HEAP)
        atomic_fetch_sub(&shard_heap, 1);
    return rc;
}

static void do_take(shard *s, stw__entry *e, void *ud)
{
    stw_record *out = ud;
    out->kind = e->kind;
    out->id = e->id;
    out->size = e->size;
    out->site = e->site;
    out->owner = e->owner;
    out->birth_ns = e->birth_ns;
    out->seq = e->seq;
    out->label = e->label;
    do_remove(s, e, NULL);
}

int stw__ledger_take(int kind, uint64_t id, stw_record *out)
{
    /* Heap blocks live in the block map when it is on (blocks.c). */
    if (kind == STW_KIND_HEAP && stw__blocks_on()) {
        if (stw__blocks_remove((uintptr_t)id, out) == 0)
            return 0;
        if (!heap_in_shards())
            return -ENOENT;
    }
    int rc = with_entry(kind, id, do_take, out);
    if (rc == 0 && kind == STW_KIND_HEAP)
        atomic_fetch_sub(&shard_heap, 1);
    return rc;
}

__attribute__((noinline)) int stw_ledger_record(int kind, uint64_t id, uint64_t size,
                                                const char *label)
{
    if (!stw_ledger_guard_enter())
        return -EDEADLK;
    ensure_init();
    void *pcs[STW_STACK_MAX];
    int n = stw_stack_capture(pcs, stw__stack_depth(), 1);
    stw_site site = stw__site_intern(kind, pcs, n);
    int rc = stw__ledger_insert(kind, id, size, site, label);
    stw_ledger_guard_exit();
    return rc;
}

int stw_ledger_record_site(int kind, uint64_t id, uint64_t size, stw_site site, const char *label)
{
    if (!stw_ledger_guard_enter())
        return -EDEADLK;
    int rc = stw__ledger_insert(kind, id, size, site, label);
    stw_ledger_guard_exit();
    return rc;
}

int stw_ledger_release(int kind, uint64_t id)
{
    if (!stw_ledger_guard_enter())
        return -EDEADLK;
    int rc = stw__ledger_remove(kind, id);
    stw_ledger_guard_exit();
    return rc;
}

static void do_resize(shard *s, stw__entry *e, void *ud)
{
    uint64_t new_size = *(const uint64_t *)ud;
    bump(&s->kinds[e->kind].live_bytes, (long long)new_size - (long long)e->size);
    e->size = new_size;
}

int stw_ledger_resize(int kind, uint64_t id, uint64_t new_size)
{
    if (kind == STW_KIND_HEAP && stw__blocks_on()) {
        int rc = stw__blocks_resize((uintptr_t)id, new_size);
        if (rc == -E2BIG) {
            /* Too large for the map now: move it to the shards. */
            stw_record r;
            if (stw__blocks_remove((uintptr_t)id, &r) != 0)
                return -ENOENT;
            atomic_fetch_add(&shard_heap, 1);
            rc = shard_insert(kind, id, new_size, r.site, NULL);
            if (rc != 0)
                atomic_fetch_sub(&shard_heap, 1);
            return rc;
        }
        if (rc != -ENOENT || !heap_in_shards())
            return rc;
    }
    return with_entry(kind, id, do_resize, &new_size);
}

static void do_label(shard *s, stw__entry *e, void *ud)
{
    (void)s;
    e->label = ud;
}

int stw_ledger_set_label(int kind, uint64_t id, const char *label)
{
    stw_record r;
    if (kind == STW_KIND_HEAP && stw__blocks_on() && stw__blocks_remove((uintptr_t)id, &r) == 0) {
        /* Map records carry no label: a labelled block lives in the shards. */
        atomic_fetch_add(&shard_heap, 1);
        int rc = shard_insert(kind, id, r.size, r.site, label);
        if (rc != 0)
            atomic_fetch_sub(&shard_heap, 1);
        return rc;
    }
    return with_entry(kind, id, do_label, (void *)label);
}

static void do_copy(shard *s, stw__entry *e, void *ud)
{
    (void)s;
    stw_record *r = ud;
    *r = (stw_record){
        .kind = e->kind,
        .id = e->id,
        .size = e->size,
        .site = e->site,
        .owner = e->owner,
        .birth_ns = e->birth_ns,
        .seq = e->seq,
        .label = e->label,
    };
}

int stw_ledger_lookup(int kind, uint64_t id, stw_record *out)
{
    stw_record tmp;
    if (kind == STW_KIND_HEAP && stw__blocks_on()) {
        if (stw__blocks_lookup((uintptr_t)id, out) == 0)
            return 0;
        if (!heap_in_shards())
            return -ENOENT;
    }
    return with_entry(kind, id, do_copy, out != NULL ? out : &tmp);
}

uint64_t stw_ledger_set_owner(uint64_t owner)
{
    uint64_t prev = cur_owner;
    cur_owner = owner;
    return prev;
}

uint64_t stw_ledger_owner(void)
{
    return cur_owner;
}

uint64_t stw_ledger_checkpoint(void)
{
    /* A number of its own, so that the block map's new era (seq + 1)
     * lies above this checkpoint and every era before it at or below. */
    uint64_t seq = stw__seq_fresh();
    stw__blocks_new_era(seq + 1);
    atomic_fetch_add(&seq_epoch, 1);
    return seq;
}

void stw_ledger_kind_stat(int kind, stw_kind_stat *out)
{
    if (kind < 0 || kind >= STW_KIND_MAX) {
        *out = (stw_kind_stat){0};
        return;
    }
    *out = (stw_kind_stat){0};
    if (kind == STW_KIND_HEAP)
        stw__blocks_kind_stat(out);
    for (int i = 0; i < STW__NSHARDS; i++) {
        kind_counters *kc = &shards[i].kinds[kind];
        out->live += atomic_load_explicit(&kc->live, memory_order_relaxed);
        out->live_bytes += atomic_load_explicit(&kc->live_bytes, memory_order_relaxed);
        out->created += atomic_load_explicit(&kc->created, memory_order_relaxed);
        out->released += atomic_load_explicit(&kc->released, memory_order_relaxed);
    }
}

long stw__shard_copy(int i, stw__entry *dst, size_t cap)
{
    shard *s = &shards[i];
    shard_lock(s);
    if (s->count > cap) {
        long need = (long)s->count;
        shard_unlock(s);
        return -need;
    }
    long n = 0;
    for (size_t k = 0; k < s->cap; k++)
        if (s->tab[k].used)
            dst[n++] = s->tab[k];
    shard_unlock(s);
    return n;
}
