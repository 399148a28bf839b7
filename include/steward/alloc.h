/*
 * steward/alloc.h — steward's own heap, booked in the ledger, with fault
 * injection.
 *
 * Model
 *   Every allocation steward makes for itself goes through these functions,
 *   so the ledger can say what steward holds (kind STW_KIND_HEAP, id = the
 *   pointer, size = the requested bytes) and tests can prove it returned to
 *   baseline. They behave like their libc namesakes; stw_free(NULL) is a
 *   no-op.
 *
 *   Fault injection (curl's torture mode, FFmpeg's av_max_alloc): after
 *   stw_fault_fail_nth(n), the n-th allocation counted from that call fails
 *   with NULL, once. Tests sweep n = 1, 2, ... over a scenario until the
 *   scenario makes fewer than n allocations, asserting at each step a clean
 *   error and an unchanged ledger.
 *
 * Invariants
 *   - Freeing a pointer these functions did not return, or freeing it
 *     twice, is a bug: STW_BUG() aborts with the location.
 */
#ifndef STEWARD_ALLOC_H
#define STEWARD_ALLOC_H

#include <stddef.h>

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Transfer full: the caller owns the result and frees it with stw_free(). */
STW_API void *stw_malloc(size_t size);
STW_API void *stw_calloc(size_t n, size_t size);
/* On failure returns NULL and @ptr stays valid and owned by the caller. */
STW_API void *stw_realloc(void *ptr, size_t size);
STW_API char *stw_strdup(const char *s);
STW_API char *stw_strndup(const char *s, size_t n);
/* Transfer full of @ptr; NULL is allowed. */
STW_API void stw_free(void *ptr);

/* Make the @n-th allocation from now fail (n >= 1); 0 disarms. */
STW_API void stw_fault_fail_nth(long n);
/* Allocations attempted since the last stw_fault_fail_nth() call. */
STW_API long stw_fault_count(void);
/* True once the armed failure has been delivered. */
STW_API int stw_fault_fired(void);

#ifdef __cplusplus
}
#endif
#endif
