#include "stw_test.h"

#include <stdio.h>
#include <unistd.h>

#include "steward/alloc.h"

/* How long a test's leftovers get to disappear (threads finishing exit). */
#define STW_TEST_RETRY_MS 500

static stw_baseline base;

int stw_test_setup(void **state)
{
    (void)state;
    base = stw_verify_begin();
    return 0;
}

int stw_test_teardown(void **state)
{
    (void)state;
    int leaked = stw_verify_none(base, STW_TEST_RETRY_MS, STDERR_FILENO);
    if (leaked != 0) {
        fprintf(stderr, "ledger not back at baseline: %d resource(s) leaked\n", leaked);
        return -1;
    }
    return 0;
}

int stw_test_fault_sweep(int (*scenario)(void *ud), void *ud)
{
    for (long n = 1;; n++) {
        stw_baseline b = stw_verify_begin();
        stw_fault_fail_nth(n);
        int rc = scenario(ud);
        int fired = stw_fault_fired();
        long made = stw_fault_count();
        stw_fault_fail_nth(0);
        int leaked = stw_verify_none(b, STW_TEST_RETRY_MS, STDERR_FILENO);
        if (leaked != 0)
            fail_msg("allocation %ld failing leaked %d resource(s)", n, leaked);
        if (!fired) {
            /* The scenario made fewer than n allocations: the clean run. */
            if (rc != 0)
                fail_msg("scenario failed without any injected fault: %d", rc);
            return (int)made;
        }
        if (rc >= 0)
            fail_msg("allocation %ld failed but the scenario reported success", n);
    }
}
