/*
 * steward/cache.h — a bounded table with TTL and LRU eviction.
 *
 * Model
 *   A cache maps string keys to `void *` values and never holds more than
 *   `max_entries` of them: putting a new key into a full cache evicts the
 *   least recently used entry. With a TTL, an entry expires `ttl_ms` after
 *   it was put (a get does not extend it; putting the key again does).
 *   Expired entries are never returned: stw_cache_get() drops one it meets,
 *   and stw_cache_expire() drops them all (call it from a timer). This is
 *   the session table of seed 001 with its bound and its cleanup built in,
 *   and stw_cache_trim() is what POST /cleanup-resources calls.
 *
 *   Lookups hash the key with SipHash-1-3 under a per-cache random key, so
 *   keys chosen by remote clients cannot force long chains. The bucket
 *   array starts small and doubles as entries arrive, up to the power of
 *   two at or above max_entries; every operation is O(1) on average.
 *
 * Ownership
 *   Keys are borrowed by every call and copied by stw_cache_put(). Values
 *   are owned by the cache from a successful put until they are removed
 *   (replaced, evicted, expired, deleted, trimmed, or the cache is freed);
 *   then `value_free` is called on them exactly once. With a NULL
 *   `value_free` the cache owns nothing and just forgets them.
 *
 * Threads
 *   Every function is thread-safe (one internal mutex). value_free always
 *   runs after that mutex is released, so it may take its own locks and
 *   even call back into the cache. A value returned by stw_cache_get() is
 *   borrowed only until the next call, from any thread, that can remove
 *   it (put, get, del, expire, trim, free). With several threads, store
 *   refcounted values and use stw_cache_get_ref(), which takes a reference
 *   while the entry is still locked.
 *
 * Ledger
 *   Each cache is recorded under the user kind "cache" (id = the cache
 *   pointer); its table and entries are steward heap (STW_KIND_HEAP).
 */
#ifndef STEWARD_CACHE_H
#define STEWARD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct stw_cache stw_cache;

typedef struct stw_cache_opts {
    size_t max_entries;              /* hard bound, > 0 */
    int64_t ttl_ms;                  /* lifetime from put; 0 = no TTL */
    void (*value_free)(void *value); /* called once per removed value; may be NULL */
} stw_cache_opts;

/* Create a cache. @o is borrowed (copied). On success *@out is owned by the
 * caller (transfer full; free with stw_cache_free). Returns 0, -EINVAL for
 * max_entries == 0 or a negative ttl_ms, -ENOMEM (*@out untouched). */
STW_API int stw_cache_new(const stw_cache_opts *o, stw_cache **out);

/* Free the cache and every value still in it (value_free on each).
 * Accepts NULL and *@c == NULL; sets *@c = NULL. No other thread may be
 * using the cache. */
STW_API void stw_cache_free(stw_cache **c);

/* Insert @value (transfer full on success) under @key (borrowed, copied),
 * as the most recently used entry with a fresh TTL. An existing entry for
 * @key gets the new value and its old value is freed. When the cache is
 * full and @key is new, the least recently used entry is evicted first.
 * Returns 1 if an entry was evicted, 0 if not, or -ENOMEM (cache unchanged;
 * the caller still owns @value). */
STW_API int stw_cache_put(stw_cache *c, const char *key, void *value);

/* The value for @key, or NULL if absent or expired (an expired entry is
 * removed and its value freed). A hit becomes the most recently used
 * entry. The result is borrowed: see "Threads" above. */
STW_API void *stw_cache_get(stw_cache *c, const char *key);

/* As stw_cache_get(), but calls @ref(value) before the cache's lock is
 * released, so the caller holds its own reference (transfer full of that
 * reference) however soon another thread removes the entry. */
STW_API void *stw_cache_get_ref(stw_cache *c, const char *key, void (*ref)(void *value));

/* Remove @key and free its value. Returns 0 or -ENOENT. */
STW_API int stw_cache_del(stw_cache *c, const char *key);

/* Remove every expired entry; returns how many. 0 without a TTL. */
STW_API size_t stw_cache_expire(stw_cache *c);

/* Entries held, including expired ones not yet dropped (stw_cache_expire()
 * first for an exact count of live ones). */
STW_API size_t stw_cache_len(stw_cache *c);

/* Evict least recently used entries until at most @keep remain; returns
 * how many were evicted. */
STW_API size_t stw_cache_trim(stw_cache *c, size_t keep);

#ifdef __cplusplus
}
#endif
#endif
