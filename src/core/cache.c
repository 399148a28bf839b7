#include "steward/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#include "steward/alloc.h"
#include "steward/ledger.h"

/* A circular doubly linked list node; each list has a sentinel in the cache. */
struct link {
    struct link *prev, *next;
};

#define entry_of(ptr, member) ((struct entry *)((char *)(ptr)-offsetof(struct entry, member)))

struct entry {
    struct entry *hnext; /* bucket chain */
    struct link lru;     /* by use: most recent after the sentinel */
    struct link age;     /* by put time: oldest after the sentinel */
    uint64_t hash;
    int64_t expires_ns; /* INT64_MAX without a TTL */
    void *value;
    size_t klen;
    char key[];
};

struct stw_cache {
    pthread_mutex_t lock;
    stw_cache_opts o;
    uint64_t k0, k1; /* SipHash key */
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t max_buckets;
    size_t count;
    struct link lru; /* next = most recently used, prev = least */
    struct link age; /* next = oldest put, prev = newest */
};

#define CACHE_MIN_BUCKETS 16
/* Beyond this many buckets chains just get longer; it keeps the doubling
 * arithmetic far from overflow. */
#define CACHE_MAX_BUCKETS ((size_t)1 << 30)

static pthread_once_t cache_kind_once = PTHREAD_ONCE_INIT;
static int cache_kind = -1;

static void cache_kind_init(void)
{
    cache_kind = stw_kind_register("cache");
}

/* The user kind, or a negative errno when the ledger has no room for it;
 * caches then show up only through their heap. */
static int cache_kind_get(void)
{
    pthread_once(&cache_kind_once, cache_kind_init);
    return cache_kind;
}

/* ---- SipHash-1-3 (Aumasson & Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t words = len / 8;
    for (size_t i = 0; i < words; i++, p += 8) {
        uint64_t m = load_le64(p);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- lists ---- */

static void link_init(struct link *head)
{
    head->prev = head;
    head->next = head;
}

static void link_remove(struct link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
}

static void link_insert_after(struct link *pos, struct link *l)
{
    l->prev = pos;
    l->next = pos->next;
    pos->next->prev = l;
    pos->next = l;
}

static void link_insert_before(struct link *pos, struct link *l)
{
    link_insert_after(pos->prev, l);
}

/* ---- table (all called with the lock held) ---- */

static struct entry *table_find(const stw_cache *c, const char *key, size_t klen, uint64_t hash)
{
    for (struct entry *e = c->buckets[hash & (c->nbuckets - 1)]; e != NULL; e = e->hnext) {
        if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
    return NULL;
}

/* Double the bucket array if @need entries would exceed one per bucket and
 * the bound allows it. 0 or -ENOMEM (table unchanged). */
static int table_reserve(stw_cache *c, size_t need)
{
    if (need <= c->nbuckets || c->nbuckets >= c->max_buckets)
        return 0;
    size_t n = c->nbuckets * 2;
    struct entry **nb = stw_calloc(n, sizeof(*nb));
    if (nb == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct entry *e = c->buckets[i];
        while (e != NULL) {
            struct entry *next = e->hnext;
            struct entry **slot = &nb[e->hash & (n - 1)];
            e->hnext = *slot;
            *slot = e;
            e = next;
        }
    }
    stw_free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
    return 0;
}

static void table_insert(stw_cache *c, struct entry *e)
{
    struct entry **slot = &c->buckets[e->hash & (c->nbuckets - 1)];
    e->hnext = *slot;
    *slot = e;
    link_insert_after(&c->lru, &e->lru);
    link_insert_before(&c->age, &e->age);
    c->count++;
}

/* Take @e out of the table and both lists and push it on @dead, to be
 * freed once the lock is released. */
static void table_remove(stw_cache *c, struct entry *e, struct entry **dead)
{
    struct entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    link_remove(&e->lru);
    link_remove(&e->age);
    c->count--;
    e->hnext = *dead;
    *dead = e;
}

static bool entry_expired(const struct entry *e, int64_t now)
{
    return e->expires_ns <= now;
}

static int64_t cache_now(const stw_cache *c)
{
    return c->o.ttl_ms > 0 ? stw_now_ns() : 0;
}

static int64_t cache_expiry(const stw_cache *c, int64_t now)
{
    if (c->o.ttl_ms <= 0 || c->o.ttl_ms > (INT64_MAX - now) / 1000000)
        return INT64_MAX;
    return now + c->o.ttl_ms * 1000000;
}

/* Free removed entries and their values; called without the lock. */
static void free_dead(const stw_cache_opts *o, struct entry *dead)
{
    while (dead != NULL) {
        struct entry *next = dead->hnext;
        if (o->value_free != NULL)
            o->value_free(dead->value);
        stw_free(dead);
        dead = next;
    }
}

/* ---- public API ---- */

static void cache_seed(stw_cache *c)
{
    uint64_t k[2];
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) == (ssize_t)sizeof(k)) {
        c->k0 = k[0];
        c->k1 = k[1];
        return;
    }
    /* Early boot without entropy: a weaker key still varies per process
     * and per cache, which is all the fallback has to offer. */
    c->k0 = (uint64_t)stw_now_ns() ^ UINT64_C(0x9e3779b97f4a7c15);
    c->k1 = (uint64_t)(uintptr_t)c * UINT64_C(0xbf58476d1ce4e5b9);
}

int stw_cache_new(const stw_cache_opts *o, stw_cache **out)
{
    if (o == NULL || o->max_entries == 0 || o->ttl_ms < 0)
        return -EINVAL;
    stw_cache *c = stw_calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->o = *o;
    c->max_buckets = CACHE_MIN_BUCKETS;
    while (c->max_buckets < o->max_entries && c->max_buckets < CACHE_MAX_BUCKETS)
        c->max_buckets *= 2;
    c->nbuckets = CACHE_MIN_BUCKETS;
    c->buckets = stw_calloc(c->nbuckets, sizeof(*c->buckets));
    if (c->buckets == NULL)
        goto free_cache;
    int rc = pthread_mutex_init(&c->lock, NULL);
    if (rc != 0)
        goto free_buckets;
    link_init(&c->lru);
    link_init(&c->age);
    cache_seed(c);
    int kind = cache_kind_get();
    if (kind >= 0)
        STW_BUG_ON(stw_ledger_record(kind, (uintptr_t)c, 0, "cache") == -EEXIST);
    *out = c;
    return 0;

free_buckets:
    stw_free(c->buckets);
free_cache:
    stw_free(c);
    return -ENOMEM;
}

void stw_cache_free(stw_cache **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    stw_cache *c = *cp;
    *cp = NULL;
    struct entry *dead = NULL;
    while (c->lru.next != &c->lru)
        table_remove(c, entry_of(c->lru.next, lru), &dead);
    free_dead(&c->o, dead);
    int kind = cache_kind_get();
    if (kind >= 0)
        stw_ledger_release(kind, (uintptr_t)c);
    pthread_mutex_destroy(&c->lock);
    stw_free(c->buckets);
    stw_free(c);
}

int stw_cache_put(stw_cache *c, const char *key, void *value)
{
    size_t klen = strlen(key);
    if (klen > SIZE_MAX - sizeof(struct entry) - 1)
        return -ENOMEM;
    uint64_t hash = siphash13(c->k0, c->k1, key, klen);
    /* Allocate before locking so other threads do not wait on malloc. */
    struct entry *ne = stw_malloc(sizeof(*ne) + klen + 1);
    if (ne == NULL)
        return -ENOMEM;
    ne->hash = hash;
    ne->value = value;
    ne->klen = klen;
    memcpy(ne->key, key, klen + 1);

    struct entry *dead = NULL;
    void *old = NULL;
    int evicted = 0;
    pthread_mutex_lock(&c->lock);
    int64_t now = cache_now(c);
    struct entry *e = table_find(c, key, klen, hash);
    if (e != NULL) {
        old = e->value;
        e->value = value;
        e->expires_ns = cache_expiry(c, now);
        link_remove(&e->lru);
        link_insert_after(&c->lru, &e->lru);
        link_remove(&e->age);
        link_insert_before(&c->age, &e->age);
        pthread_mutex_unlock(&c->lock);
        stw_free(ne);
        /* Putting the value that is already there must not free it. */
        if (old != value && c->o.value_free != NULL)
            c->o.value_free(old);
        return 0;
    }
    bool full = c->count >= c->o.max_entries;
    if (table_reserve(c, full ? c->count : c->count + 1) != 0) {
        pthread_mutex_unlock(&c->lock);
        stw_free(ne);
        return -ENOMEM;
    }
    if (full) {
        /* An expired entry is a better victim than a live one. */
        struct entry *victim = entry_of(c->age.next, age);
        if (!entry_expired(victim, now))
            victim = entry_of(c->lru.prev, lru);
        table_remove(c, victim, &dead);
        evicted = 1;
    }
    ne->expires_ns = cache_expiry(c, now);
    table_insert(c, ne);
    pthread_mutex_unlock(&c->lock);
    free_dead(&c->o, dead);
    return evicted;
}

void *stw_cache_get_ref(stw_cache *c, const char *key, void (*ref)(void *value))
{
    size_t klen = strlen(key);
    uint64_t hash = siphash13(c->k0, c->k1, key, klen);
    struct entry *dead = NULL;
    void *value = NULL;
    pthread_mutex_lock(&c->lock);
    struct entry *e = table_find(c, key, klen, hash);
    if (e != NULL && entry_expired(e, cache_now(c))) {
        table_remove(c, e, &dead);
    } else if (e != NULL) {
        link_remove(&e->lru);
        link_insert_after(&c->lru, &e->lru);
        value = e->value;
        if (ref != NULL)
            ref(value);
    }
    pthread_mutex_unlock(&c->lock);
    free_dead(&c->o, dead);
    return value;
}

void *stw_cache_get(stw_cache *c, const char *key)
{
    return stw_cache_get_ref(c, key, NULL);
}

int stw_cache_del(stw_cache *c, const char *key)
{
    size_t klen = strlen(key);
    uint64_t hash = siphash13(c->k0, c->k1, key, klen);
    struct entry *dead = NULL;
    pthread_mutex_lock(&c->lock);
    struct entry *e = table_find(c, key, klen, hash);
    if (e != NULL)
        table_remove(c, e, &dead);
    pthread_mutex_unlock(&c->lock);
    free_dead(&c->o, dead);
    return e != NULL ? 0 : -ENOENT;
}

size_t stw_cache_expire(stw_cache *c)
{
    if (c->o.ttl_ms <= 0)
        return 0;
    struct entry *dead = NULL;
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    int64_t now = cache_now(c);
    /* Every entry has the same TTL, so put order is expiry order: stop at
     * the first entry that is still alive. */
    while (c->age.next != &c->age) {
        struct entry *e = entry_of(c->age.next, age);
        if (!entry_expired(e, now))
            break;
        table_remove(c, e, &dead);
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    free_dead(&c->o, dead);
    return n;
}

size_t stw_cache_len(stw_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

size_t stw_cache_trim(stw_cache *c, size_t keep)
{
    struct entry *dead = NULL;
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    while (c->count > keep) {
        table_remove(c, entry_of(c->lru.prev, lru), &dead);
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    free_dead(&c->o, dead);
    return n;
}
