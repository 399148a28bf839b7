/*
 * Private to src/ledger: the pieces the ledger's files share. Nothing here
 * allocates with malloc; memory comes from mmap through the arena helpers.
 */
#ifndef STW_LEDGER_INTERNAL_H
#define STW_LEDGER_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steward/ledger.h"

/* Thread-locals of the ledger. The checker's preloaded copy (built with
 * STW_PRELOAD) is loaded at start, where the static TLS block has room,
 * and must never reach __tls_get_addr (it can call malloc, which the
 * checker interposes). libsteward.so may be loaded later, with dlopen
 * (the relay module), where a large initial-exec block does not fit:
 * "cannot allocate memory in static TLS block"; it takes the default. */
#ifdef STW_PRELOAD
#define STW_TLS __thread __attribute__((tls_model("initial-exec")))
#else
#define STW_TLS __thread
#endif

/* ---- arena.c: mmap-backed memory ---- */

/* Zeroed pages, rounded up to the page size; NULL on failure. */
void *stw__pages_alloc(size_t size);
void stw__pages_free(void *p, size_t size);
/* Zeroed pages shared with the processes forked after (MAP_SHARED); freed
 * with stw__pages_free. NULL on failure. */
void *stw__pages_shared(size_t size);
/* Reserve address space without committing memory (MAP_NORESERVE). */
void *stw__pages_reserve(size_t size);
/* The checker's build (STW_PRELOAD) only: the mappings the two calls
 * above made and that are still mapped, as [start, end) pairs in no
 * order, at most @max of them; how many were written. */
size_t stw__pages_own(uintptr_t (*out)[2], size_t max);
/* Permanent bump allocation (never freed), 16-byte aligned; NULL when exhausted. */
void *stw__arena_alloc(size_t size);

/* Tiny sort without malloc (glibc's qsort may allocate). */
void stw__sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
/* Stable LSD radix sort by the uint64_t at byte @key_off of each element:
 * for the large arrays (records, heap blocks). 0 or -ENOMEM. */
int stw__radix_sort(void *base, size_t n, size_t size, size_t key_off);

/* True while the calling thread is inside the ledger (guard held). */
bool stw_ledger_guard_depth(void);

/* ---- stack.c ---- */

/* STW__UNWIND_AFTER_FP: the DWARF unwinder, right after a frame-pointer
 * capture with the same skip on the same thread (whose start it uses to
 * find the stack in a per-thread cache). */
enum stw__unwinder { STW__UNWIND_FP, STW__UNWIND_LIBUNWIND, STW__UNWIND_AFTER_FP };
void stw__stack_init(void);
/* Depth configured for record(): STW_STACK_DEPTH, 1..STW_STACK_MAX. */
int stw__stack_depth(void);
/* After a frame-pointer capture on this thread: true if the walk ended
 * where a chain ends, false if it hit something that is not a frame pointer
 * (code built without them), so a DWARF unwind would see more. */
bool stw__stack_fp_clean(void);
/* After a frame-pointer walk (@fp, @nfp frames) that was not clean and a
 * DWARF unwind of the same stack (@dw, @ndw; @complete: it reached the
 * stack's end): when the walk found the same frames and stopped only at
 * the thread's start code (all frames below are @runtime's), later walks
 * that end at that frame count as clean. */
void stw__stack_learn_start(void *const *fp, int nfp, void *const *dw, int ndw, bool complete,
                            bool (*runtime)(void *pc));
/* stw_stack_capture with an explicit unwinder (enum stw__unwinder). */
int stw__stack_capture_with(int how, void **pcs, int max, int skip);
/* In a child forked from a threaded parent: libunwind's internal locks may
 * have been held by a parent thread at the fork and stay held for good, so
 * every capture from now on walks frame pointers only. Async-signal-safe. */
void stw__stack_forbid_libunwind(void);

/* ---- ledger.c: locks ---- */
/* Take (release) every lock that guards records, and the block map's era
 * lock: no other thread is inside an insert or remove, or starting an
 * era, while they are held. Used by the checker while it stops the
 * program's threads (a thread stopped holding one of them would stop the
 * report too). fork() takes the shard locks only (the child clears the
 * era lock). */
void stw__ledger_lock_all(void);
void stw__ledger_unlock_all(void);

/* ---- ledger.c: sites ---- */

typedef struct stw__site {
    uint64_t hash;
    uint8_t kind;
    uint8_t depth;
    atomic_bool valid; /* published in the intern table */
    void *pcs[STW_STACK_MAX];
} stw__site;

void stw__ledger_init(void);
/* The site with id @site, or NULL. */
const stw__site *stw__site_get(stw_site site);
/* Highest site id handed out so far. */
uint32_t stw__site_count(void);
stw_site stw__site_intern(int kind, void *const *pcs, int depth);

/* ---- ledger.c: record shards, for snapshot.c ---- */

typedef struct stw__entry {
    uint64_t id;
    uint64_t size;
    uint64_t seq;
    int64_t birth_ns;
    uint64_t owner;
    const char *label;
    uint32_t site;
    uint8_t kind;
    uint8_t used;
} stw__entry;

#define STW__NSHARDS 64

/* Copy the live entries of shard @i into @dst (room for @cap) under the
 * shard's lock. Returns how many were copied, or minus the number needed
 * when @cap is too small (nothing copied). */
long stw__shard_copy(int i, stw__entry *dst, size_t cap);

/* A fresh birth sequence number, above every one handed out so far. */
uint64_t stw__seq_fresh(void);

/* ---- blocks.c: heap records by address (the checker's) ---- */

/* Keep heap records (kind STW_KIND_HEAP, id a malloc'ed address) in the
 * block map from now on. @sample_bytes > 0: every block is a sample that
 * stands for at least that many bytes (its record's size, and what the
 * per-site numbers count; the record's extent is the real size). False when its address space cannot be reserved
 * (the shards keep them then). Call once, before threads race to book. */
bool stw__blocks_enable(uint64_t sample_bytes);
bool stw__blocks_on(void);
/* 0, -EEXIST, or -E2BIG/-ENOMEM: the map cannot hold it (the caller
 * books it in the shards instead). */
int stw__blocks_insert(uintptr_t addr, uint64_t size, stw_site site);
/* 0 (the removed record in @out, may be NULL) or -ENOENT. */
int stw__blocks_remove(uintptr_t addr, stw_record *out);
int stw__blocks_lookup(uintptr_t addr, stw_record *out);
/* Start loading @addr's slot: a free about to remove it overlaps that
 * cache miss with its other work. */
void stw__blocks_prefetch(uintptr_t addr);
/* 0, -ENOENT, or -E2BIG (the new size does not fit: record unchanged). */
int stw__blocks_resize(uintptr_t addr, uint64_t size);
/* Call @fn for every live block (any order) until it returns non-zero,
 * which is returned. Blocks made or freed meanwhile may or may not be seen. */
int stw__blocks_each(int (*fn)(const stw_record *r, void *ud), void *ud);
/* Live blocks and bytes of @site (site 0: blocks without a site). */
void stw__blocks_site(stw_site site, int64_t *live, int64_t *bytes);
/* Heap totals of the map. */
void stw__blocks_kind_stat(stw_kind_stat *out);
/* Checkpoint @seq - 1 was taken: blocks from now on get seq @seq. */
void stw__blocks_new_era(uint64_t seq);
void stw__blocks_atfork_child(void);
/* Take (release) the lock that starting an era takes. Held by the checker
 * while it stops the program's threads, so that no stopped thread holds
 * it: the report's checkpoint waits for it. */
void stw__blocks_lock(void);
void stw__blocks_unlock(void);

/* Insert/remove without the reentrancy guard, for callers that hold it. */
int stw__ledger_insert(int kind, uint64_t id, uint64_t size, stw_site site, const char *label);
int stw__ledger_remove(int kind, uint64_t id);
/* Remove, handing back what the record was (for @out). */
int stw__ledger_take(int kind, uint64_t id, stw_record *out);

/* ---- report.c: buffered formatted output without malloc ---- */

typedef struct stw__out {
    stw_write_fn write;
    void *ud;
    int err;
    size_t len;
    char buf[4096];
} stw__out;

void stw__out_init(stw__out *o, stw_write_fn write, void *ud);
void stw__out_printf(stw__out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stw__out_puts(stw__out *o, const char *s);
/* Write @s as a JSON string literal, quotes included. */
void stw__out_json_string(stw__out *o, const char *s);
int stw__out_flush(stw__out *o);
/* One stack frame as a text line "PREFIX#i pc func file:line (module)".
 * Returns true when the frame is main (callers stop there). */
bool stw__out_text_frame(stw__out *o, const char *prefix, int i, void *pc, bool symbolize);
/* One stack frame as a JSON object {"pc","func","file","line","module"},
 * preceded by a comma unless @first. */
void stw__out_json_frame(stw__out *o, bool first, void *pc, bool symbolize);

#endif
