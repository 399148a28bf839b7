#include "steward/alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "steward/ledger.h"

/* Fault injection state: a countdown shared by all threads, so a sweep
 * also covers allocations made by threads the scenario starts. */
static atomic_long fault_nth;
static atomic_long fault_seen;
static atomic_int fault_hit;

void stw_fault_fail_nth(long n)
{
    atomic_store(&fault_seen, 0);
    atomic_store(&fault_hit, 0);
    atomic_store(&fault_nth, n < 0 ? 0 : n);
}

long stw_fault_count(void)
{
    return atomic_load(&fault_seen);
}

int stw_fault_fired(void)
{
    return atomic_load(&fault_hit);
}

static int fault_should_fail(void)
{
    long nth = atomic_load_explicit(&fault_nth, memory_order_relaxed);
    if (nth == 0)
        return 0;
    long seen = atomic_fetch_add(&fault_seen, 1) + 1;
    if (seen == nth) {
        atomic_store(&fault_hit, 1);
        return 1;
    }
    return 0;
}

static void *book(void *p, size_t size)
{
    if (p == NULL)
        return NULL;
    int rc = stw_ledger_record(STW_KIND_HEAP, (uintptr_t)p, size, NULL);
    /* -EEXIST would mean libc handed out a live pointer twice. */
    STW_BUG_ON(rc == -EEXIST);
    return p;
}

void *stw_malloc(size_t size)
{
    if (fault_should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return book(malloc(size ? size : 1), size);
}

void *stw_calloc(size_t n, size_t size)
{
    if (fault_should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return book(calloc(n ? n : 1, size ? size : 1), n * size);
}

void *stw_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return stw_malloc(size);
    if (fault_should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    stw_record rec;
    if (stw_ledger_lookup(STW_KIND_HEAP, (uintptr_t)ptr, &rec) != 0)
        STW_BUG("stw_realloc of a pointer steward did not allocate");
    void *np = realloc(ptr, size ? size : 1);
    if (np == NULL)
        return NULL;
    if (np == ptr) {
        stw_ledger_resize(STW_KIND_HEAP, (uintptr_t)ptr, size);
        return np;
    }
    /* Keep the original creation site: the buffer is the same object. */
    stw_ledger_release(STW_KIND_HEAP, (uintptr_t)ptr);
    stw_ledger_record_site(STW_KIND_HEAP, (uintptr_t)np, size, rec.site, rec.label);
    return np;
}

char *stw_strdup(const char *s)
{
    return stw_strndup(s, strlen(s));
}

char *stw_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = stw_malloc(len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void stw_free(void *ptr)
{
    if (ptr == NULL)
        return;
    int rc = stw_ledger_release(STW_KIND_HEAP, (uintptr_t)ptr);
    if (rc == -ENOENT)
        STW_BUG("stw_free of a pointer that is not live (double free or foreign pointer)");
    free(ptr);
}
