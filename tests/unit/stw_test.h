/*
 * Shared cmocka glue for steward's unit tests.
 *
 * Every test is wrapped by STW_TEST(fn): the setup takes a ledger baseline,
 * the teardown asserts that nothing born during the test is still alive
 * (retrying briefly for threads that are exiting) and prints the leaked
 * resources with their stacks when it fails.
 */
#ifndef STW_TEST_H
#define STW_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "steward/ledger.h"

int stw_test_setup(void **state);
int stw_test_teardown(void **state);

/* Run @scenario once per allocation with that allocation failing; the
 * scenario returns 0 on success or a negative errno. Asserts that every
 * failing run returns an error (never crashes) and leaves the ledger at its
 * baseline, and that the run without faults succeeds. Returns how many
 * allocation points were exercised. */
int stw_test_fault_sweep(int (*scenario)(void *ud), void *ud);

#define STW_TEST(fn) cmocka_unit_test_setup_teardown(fn, stw_test_setup, stw_test_teardown)

#endif
