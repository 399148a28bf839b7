#include "stw_test.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "relay.h"

#define A "0123456789abcdef"
#define B "fedcba9876543210"
#define C "00000000000000aa"

static void test_chain_has(void **state)
{
    (void)state;
    assert_true(relay_via_has(A, A));
    assert_true(relay_via_has(B "," A, A));
    assert_true(relay_via_has(" " B " , " A " ", A));
    assert_false(relay_via_has(B, A));
    assert_false(relay_via_has(NULL, A));
    assert_false(relay_via_has("", A));
    /* A prefix, a longer id, upper case, garbage: not our id. */
    assert_false(relay_via_has("0123456789abcde", A));
    assert_false(relay_via_has(A "0", A));
    assert_false(relay_via_has("0123456789ABCDEF", A));
    assert_false(relay_via_has("x" A, A));
    assert_false(relay_via_has(A, "short"));
}

static void test_chain_merge(void **state)
{
    (void)state;
    char acc[RELAY_VIA_MAX] = "";
    relay_via_merge(acc, NULL);
    assert_string_equal(acc, "");
    relay_via_merge(acc, A);
    assert_string_equal(acc, A);
    relay_via_merge(acc, B "," A ",junk,," C);
    assert_string_equal(acc, A "," B "," C);
    /* Bounded: at most RELAY_VIA_IDS ids, whatever a client sends. */
    char many[4096] = "";
    for (int i = 0; i < 40; i++) {
        char id[24];
        snprintf(id, sizeof(id), "%s%016x", i > 0 ? "," : "", 0x1000 + i);
        strcat(many, id);
    }
    relay_via_merge(acc, many);
    assert_int_equal(strlen(acc), RELAY_VIA_IDS * (RELAY_VIA_ID_LEN + 1) - 1);
    relay_via_merge(acc, many);
    assert_int_equal(strlen(acc), RELAY_VIA_IDS * (RELAY_VIA_ID_LEN + 1) - 1);
}

static void test_chain_input_header(void **state)
{
    (void)state;
    relay_input in;
    memset(&in, 0, sizeof(in));
    pthread_mutex_init(&in.lock, NULL);
    char line[RELAY_VIA_MAX + 64];
    relay_via_header(&in, A, line, sizeof(line));
    assert_string_equal(line, RELAY_LOOP_HEADER ": " A);
    relay_input_set_via(&in, B "," C);
    relay_via_header(&in, A, line, sizeof(line));
    assert_string_equal(line, RELAY_LOOP_HEADER ": " A "," B "," C);
    pthread_mutex_destroy(&in.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_chain_has),
        STW_TEST(test_chain_merge),
        STW_TEST(test_chain_input_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
