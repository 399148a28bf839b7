/*
 * The dynamic loader's lock and the stacks the checker takes.
 *
 * dl_iterate_phdr holds the loader's lock while its callback runs, and the
 * DWARF unwinder calls dl_iterate_phdr to find unwind tables. With
 * libunwind's default global cache, a thread that misses the cache calls
 * dl_iterate_phdr while holding the cache's lock; a thread inside a
 * program's dl_iterate_phdr callback that allocates then needs that cache
 * lock while holding the loader's lock, and the two wait for each other
 * forever. A thread inside dl_iterate_phdr therefore takes its stacks by
 * frame pointers only and never enters the unwinder: it then never waits
 * for an unwinder lock while holding the loader's, which breaks the cycle
 * (the regression program hung in 4 of 30 runs with per-thread caches
 * alone, in none with this). libunwind is also asked for per-thread caches,
 * so unwinding threads contend less with each other.
 * (dlopen and dlclose are not interposed: dlopen resolves $ORIGIN and
 * RUNPATH by its caller's address, which an interposer would change.)
 */
#include <link.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

static STW_TLS int in_iterate;

bool stw__loader_busy(void)
{
    return in_iterate != 0;
}

void stw__loader_init(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

STW_HOOK int dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
    STW_REAL(int, dl_iterate_phdr, (int (*)(struct dl_phdr_info *, size_t, void *), void *));
    in_iterate++;
    int rc = real_dl_iterate_phdr(cb, data);
    in_iterate--;
    return rc;
}
