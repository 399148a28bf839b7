#include "stw_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "steward/alloc.h"
#include "steward/cache.h"

/* Test values: heap objects (so the ledger sees a leaked one) that count
 * how often the cache freed them; a second free would also abort in
 * stw_free. */
typedef struct tval {
    int id;
    atomic_int refs;
} tval;

static atomic_int vals_made;
static atomic_int vals_freed;

static tval *tval_new(int id)
{
    tval *v = stw_malloc(sizeof(*v));
    if (v == NULL)
        return NULL;
    v->id = id;
    atomic_init(&v->refs, 1);
    atomic_fetch_add(&vals_made, 1);
    return v;
}

static void tval_ref(void *p)
{
    atomic_fetch_add(&((tval *)p)->refs, 1);
}

static void tval_unref(void *p)
{
    tval *v = p;
    int old = atomic_fetch_sub(&v->refs, 1);
    assert_true(old >= 1);
    if (old == 1) {
        atomic_fetch_add(&vals_freed, 1);
        stw_free(v);
    }
}

static void counters_reset(void)
{
    atomic_store(&vals_made, 0);
    atomic_store(&vals_freed, 0);
}

static void sleep_until(int64_t t_ns)
{
    int64_t left;
    while ((left = t_ns - stw_now_ns()) > 0) {
        struct timespec ts = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
        nanosleep(&ts, NULL);
    }
}

static void test_cache_basic(void **state)
{
    (void)state;
    counters_reset();
    stw_cache *c = NULL;
    assert_int_equal(stw_cache_new(&(stw_cache_opts){.max_entries = 0}, &c), -EINVAL);
    assert_int_equal(stw_cache_new(&(stw_cache_opts){.max_entries = 4, .ttl_ms = -1}, &c), -EINVAL);
    assert_null(c);
    stw_cache_opts o = {.max_entries = 4, .value_free = tval_unref};
    assert_int_equal(stw_cache_new(&o, &c), 0);

    char key[16];
    strcpy(key, "alpha");
    tval *a = tval_new(1);
    assert_int_equal(stw_cache_put(c, key, a), 0);
    /* The key was copied: changing the caller's buffer changes nothing. */
    strcpy(key, "zzzzz");
    assert_ptr_equal(stw_cache_get(c, "alpha"), a);
    assert_null(stw_cache_get(c, "zzzzz"));
    assert_null(stw_cache_get(c, "alph"));
    assert_int_equal(stw_cache_len(c), 1);

    /* Replacing frees the old value; putting the same value again does not. */
    tval *a2 = tval_new(2);
    assert_int_equal(stw_cache_put(c, "alpha", a2), 0);
    assert_int_equal(atomic_load(&vals_freed), 1);
    assert_int_equal(stw_cache_put(c, "alpha", a2), 0);
    assert_int_equal(atomic_load(&vals_freed), 1);
    assert_ptr_equal(stw_cache_get(c, "alpha"), a2);
    assert_int_equal(stw_cache_len(c), 1);

    assert_int_equal(stw_cache_put(c, "", tval_new(3)), 0);
    assert_int_equal(((tval *)stw_cache_get(c, ""))->id, 3);

    assert_int_equal(stw_cache_del(c, "alpha"), 0);
    assert_int_equal(atomic_load(&vals_freed), 2);
    assert_int_equal(stw_cache_del(c, "alpha"), -ENOENT);
    assert_int_equal(stw_cache_len(c), 1);
    assert_int_equal(stw_cache_expire(c), 0);

    stw_cache_free(&c);
    assert_null(c);
    assert_int_equal(atomic_load(&vals_freed), 3);
    assert_int_equal(atomic_load(&vals_made), 3);
    stw_cache_free(&c);
    stw_cache_free(NULL);
}

static void test_cache_lru_order(void **state)
{
    (void)state;
    counters_reset();
    stw_cache *c;
    assert_int_equal(
        stw_cache_new(&(stw_cache_opts){.max_entries = 3, .value_free = tval_unref}, &c), 0);
    assert_int_equal(stw_cache_put(c, "a", tval_new(1)), 0);
    assert_int_equal(stw_cache_put(c, "b", tval_new(2)), 0);
    assert_int_equal(stw_cache_put(c, "c", tval_new(3)), 0);
    /* a becomes the most recently used, so b is now the oldest in use. */
    assert_non_null(stw_cache_get(c, "a"));
    assert_int_equal(stw_cache_put(c, "d", tval_new(4)), 1);
    assert_null(stw_cache_get(c, "b"));
    assert_int_equal(atomic_load(&vals_freed), 1);
    assert_int_equal(stw_cache_len(c), 3);
    /* Replacing an existing key in a full cache evicts nothing. */
    assert_int_equal(stw_cache_put(c, "c", tval_new(5)), 0);
    assert_int_equal(stw_cache_len(c), 3);
    /* Use order now, most recent first: c, d, a. */
    assert_int_equal(stw_cache_put(c, "e", tval_new(6)), 1);
    assert_null(stw_cache_get(c, "a"));
    /* e, c, d: trimming to one keeps e. */
    assert_int_equal(stw_cache_trim(c, 1), 2);
    assert_int_equal(stw_cache_len(c), 1);
    assert_int_equal(((tval *)stw_cache_get(c, "e"))->id, 6);
    assert_int_equal(stw_cache_trim(c, 5), 0);
    assert_int_equal(stw_cache_trim(c, 0), 1);
    assert_int_equal(stw_cache_len(c), 0);
    stw_cache_free(&c);
    assert_int_equal(atomic_load(&vals_freed), atomic_load(&vals_made));
}

static void test_cache_ttl(void **state)
{
    (void)state;
    counters_reset();
    const int64_t ttl = 80;
    stw_cache *c;
    assert_int_equal(
        stw_cache_new(&(stw_cache_opts){.max_entries = 8, .ttl_ms = ttl, .value_free = tval_unref},
                      &c),
        0);
    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_cache_put(c, "s1", tval_new(1)), 0);
    assert_int_equal(stw_cache_put(c, "s2", tval_new(2)), 0);
    /* Timing checks look at the clock after the call: if it still reads
     * before the expiry, the call certainly ran before it too. */
    tval *v = stw_cache_get(c, "s1");
    if (stw_now_ns() < t0 + ttl * 1000000)
        assert_non_null(v);
    sleep_until(t0 + (ttl + 5) * 1000000);
    /* A get does not extend the lifetime, and an expired entry is gone. */
    assert_null(stw_cache_get(c, "s1"));
    assert_int_equal(atomic_load(&vals_freed), 1);
    assert_int_equal(stw_cache_len(c), 1);
    int64_t t1 = stw_now_ns();
    assert_int_equal(stw_cache_put(c, "s3", tval_new(3)), 0);
    /* s2 expired, s3 did not: expire drops exactly one. */
    size_t dropped = stw_cache_expire(c);
    if (stw_now_ns() < t1 + ttl * 1000000)
        assert_int_equal(dropped, 1);
    else
        assert_true(dropped >= 1);
    /* Putting a key again renews its lifetime. */
    sleep_until(t1 + (ttl / 2) * 1000000);
    int64_t t2 = stw_now_ns();
    assert_int_equal(stw_cache_put(c, "s3", tval_new(4)), 0);
    sleep_until(t1 + (ttl + 5) * 1000000);
    v = stw_cache_get(c, "s3");
    if (stw_now_ns() < t2 + ttl * 1000000) {
        assert_non_null(v);
        assert_int_equal(v->id, 4);
    }
    sleep_until(t2 + (ttl + 5) * 1000000);
    stw_cache_expire(c);
    assert_int_equal(stw_cache_len(c), 0);
    stw_cache_free(&c);
    assert_int_equal(atomic_load(&vals_freed), 4);
}

/* A full cache evicts an expired entry before a live one, even when the
 * live one is the least recently used. */
static void test_cache_evicts_expired_first(void **state)
{
    (void)state;
    counters_reset();
    const int64_t ttl = 400;
    stw_cache *c;
    assert_int_equal(
        stw_cache_new(&(stw_cache_opts){.max_entries = 2, .ttl_ms = ttl, .value_free = tval_unref},
                      &c),
        0);
    int64_t t0 = stw_now_ns();
    assert_int_equal(stw_cache_put(c, "old", tval_new(1)), 0);
    sleep_until(t0 + (ttl / 2) * 1000000);
    int64_t t1 = stw_now_ns();
    assert_int_equal(stw_cache_put(c, "young", tval_new(2)), 0);
    /* On a machine too slow for the schedule "old" may already be gone;
     * then there is nothing to show. */
    if (stw_now_ns() >= t0 + ttl * 1000000) {
        stw_cache_free(&c);
        return;
    }
    assert_non_null(stw_cache_get(c, "old"));
    /* "old" is the most recently used but has expired; "young" has not. */
    sleep_until(t0 + (ttl + 20) * 1000000);
    assert_int_equal(stw_cache_put(c, "new", tval_new(3)), 1);
    void *young = stw_cache_get(c, "young");
    if (stw_now_ns() < t1 + ttl * 1000000)
        assert_non_null(young);
    assert_int_equal(stw_cache_len(c), 2);
    assert_int_equal(atomic_load(&vals_freed), 1);
    stw_cache_free(&c);
    assert_int_equal(atomic_load(&vals_freed), 3);
}

/* xorshift64* with a fixed seed. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Random operations against a model: keys in use order, most recent
 * first. Checks results, eviction reports, the bound and free counts. */
#define MODEL_MAX 40
#define MODEL_KEYS 150

static void test_cache_random_model(void **state)
{
    (void)state;
    counters_reset();
    stw_cache *c;
    assert_int_equal(
        stw_cache_new(&(stw_cache_opts){.max_entries = MODEL_MAX, .value_free = tval_unref}, &c),
        0);
    int order[MODEL_MAX];
    int ids[MODEL_KEYS];
    size_t n = 0;
    uint64_t seed = UINT64_C(0xcace0001);
    int next_id = 1;
    for (int step = 0; step < 50000; step++) {
        int k = (int)(rng_next(&seed) % MODEL_KEYS);
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        size_t pos = n;
        for (size_t i = 0; i < n; i++) {
            if (order[i] == k)
                pos = i;
        }
        int op = (int)(rng_next(&seed) % 10);
        if (op < 5) {
            int id = next_id++;
            int evicted = 0;
            if (pos < n) {
                memmove(order + 1, order, pos * sizeof(int));
            } else {
                if (n == MODEL_MAX) {
                    n--;
                    evicted = 1;
                }
                memmove(order + 1, order, n * sizeof(int));
                n++;
            }
            order[0] = k;
            ids[k] = id;
            assert_int_equal(stw_cache_put(c, key, tval_new(id)), evicted);
        } else if (op < 8) {
            tval *v = stw_cache_get(c, key);
            if (pos < n) {
                assert_non_null(v);
                assert_int_equal(v->id, ids[k]);
                memmove(order + 1, order, pos * sizeof(int));
                order[0] = k;
            } else {
                assert_null(v);
            }
        } else if (op < 9) {
            assert_int_equal(stw_cache_del(c, key), pos < n ? 0 : -ENOENT);
            if (pos < n) {
                memmove(order + pos, order + pos + 1, (n - pos - 1) * sizeof(int));
                n--;
            }
        } else if (rng_next(&seed) % 50 == 0) {
            size_t keep = (size_t)(rng_next(&seed) % (MODEL_MAX + 5));
            assert_int_equal(stw_cache_trim(c, keep), n > keep ? n - keep : 0);
            if (n > keep)
                n = keep;
        }
        assert_int_equal(stw_cache_len(c), n);
        assert_true(n <= MODEL_MAX);
        assert_int_equal(atomic_load(&vals_made) - atomic_load(&vals_freed), (int)n);
    }
    stw_cache_free(&c);
    assert_int_equal(atomic_load(&vals_freed), atomic_load(&vals_made));
}

static stw_cache *reentrant_cache;
static atomic_int reentrant_calls;

/* value_free runs without the cache lock: calling back must not deadlock. */
static void reentrant_free(void *value)
{
    if (reentrant_cache != NULL)
        stw_cache_len(reentrant_cache);
    atomic_fetch_add(&reentrant_calls, 1);
    stw_free(value);
}

static void test_cache_value_free_reenters(void **state)
{
    (void)state;
    atomic_store(&reentrant_calls, 0);
    assert_int_equal(
        stw_cache_new(&(stw_cache_opts){.max_entries = 1, .value_free = reentrant_free},
                      &reentrant_cache),
        0);
    assert_int_equal(stw_cache_put(reentrant_cache, "a", stw_malloc(8)), 0);
    assert_int_equal(stw_cache_put(reentrant_cache, "b", stw_malloc(8)), 1);
    assert_int_equal(stw_cache_put(reentrant_cache, "b", stw_malloc(8)), 0);
    assert_int_equal(stw_cache_del(reentrant_cache, "b"), 0);
    assert_int_equal(atomic_load(&reentrant_calls), 3);
    stw_cache *c = reentrant_cache;
    reentrant_cache = NULL;
    stw_cache_free(&c);
}

static void test_cache_ledger(void **state)
{
    (void)state;
    stw_cache *c;
    assert_int_equal(stw_cache_new(&(stw_cache_opts){.max_entries = 2}, &c), 0);
    int kind = stw_kind_lookup("cache");
    assert_true(kind >= STW_KIND_USER_FIRST);
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(kind, (uintptr_t)c, &rec), 0);
    /* Without value_free the cache owns nothing: the values stay ours. */
    static int x, y, z;
    assert_int_equal(stw_cache_put(c, "x", &x), 0);
    assert_int_equal(stw_cache_put(c, "y", &y), 0);
    assert_int_equal(stw_cache_put(c, "z", &z), 1);
    stw_cache *keep = c;
    stw_cache_free(&c);
    assert_int_equal(stw_ledger_lookup(kind, (uintptr_t)keep, &rec), -ENOENT);
}

#define HAMMER_THREADS 6
#define HAMMER_OPS 20000
#define HAMMER_KEYS 200

struct hammer {
    stw_cache *c;
    int seed;
    int bad;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    uint64_t seed = (uint64_t)h->seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
    for (int i = 0; i < HAMMER_OPS; i++) {
        int k = (int)(rng_next(&seed) % HAMMER_KEYS);
        char key[16];
        snprintf(key, sizeof(key), "key-%d", k);
        int op = (int)(rng_next(&seed) % 8);
        if (op < 3) {
            tval *v = tval_new(k);
            if (stw_cache_put(h->c, key, v) < 0)
                tval_unref(v);
        } else if (op < 7) {
            /* The reference keeps the value alive however soon another
             * thread replaces or evicts it. */
            tval *v = stw_cache_get_ref(h->c, key, tval_ref);
            if (v != NULL) {
                if (v->id != k)
                    h->bad++;
                tval_unref(v);
            }
        } else if (op < 8 && i % 4 == 0) {
            stw_cache_del(h->c, key);
        } else if (i % 1000 == 0) {
            stw_cache_trim(h->c, 10);
        }
        if (stw_cache_len(h->c) > 64)
            h->bad++;
    }
    return NULL;
}

static void test_cache_threads(void **state)
{
    (void)state;
    counters_reset();
    stw_cache *c;
    assert_int_equal(
        stw_cache_new(&(stw_cache_opts){.max_entries = 64, .ttl_ms = 5, .value_free = tval_unref},
                      &c),
        0);
    struct hammer h[HAMMER_THREADS];
    pthread_t t[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i] = (struct hammer){.c = c, .seed = i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < HAMMER_THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(h[i].bad, 0);
    }
    assert_true(stw_cache_len(c) <= 64);
    stw_cache_free(&c);
    assert_int_equal(atomic_load(&vals_freed), atomic_load(&vals_made));
}

/* Enough keys to make the bucket array grow twice, then every removal path. */
static int cache_scenario(void *ud)
{
    (void)ud;
    stw_cache *c;
    int rc = stw_cache_new(&(stw_cache_opts){.max_entries = 48, .value_free = stw_free}, &c);
    if (rc != 0)
        return rc;
    for (int i = 0; i < 60 && rc >= 0; i++) {
        char key[16];
        snprintf(key, sizeof(key), "session-%d", i);
        int *v = stw_malloc(sizeof(*v));
        if (v == NULL) {
            rc = -ENOMEM;
            break;
        }
        *v = i;
        rc = stw_cache_put(c, key, v);
        if (rc < 0)
            stw_free(v);
    }
    if (rc >= 0) {
        int *v = stw_cache_get(c, "session-59");
        rc = v != NULL && *v == 59 && stw_cache_get(c, "session-0") == NULL ? 0 : -EIO;
    }
    if (rc == 0)
        rc = stw_cache_del(c, "session-30");
    if (rc == 0 && (stw_cache_trim(c, 5) != 42 || stw_cache_len(c) != 5))
        rc = -EIO;
    stw_cache_free(&c);
    return rc;
}

static void test_cache_fault_sweep(void **state)
{
    (void)state;
    assert_true(stw_test_fault_sweep(cache_scenario, NULL) > 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_cache_basic),        STW_TEST(test_cache_lru_order),
        STW_TEST(test_cache_ttl),          STW_TEST(test_cache_evicts_expired_first),
        STW_TEST(test_cache_random_model), STW_TEST(test_cache_value_free_reenters),
        STW_TEST(test_cache_ledger),       STW_TEST(test_cache_threads),
        STW_TEST(test_cache_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
