#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "steward/alloc.h"

static void test_booked(void **state)
{
    (void)state;
    stw_kind_stat before, mid;
    stw_ledger_kind_stat(STW_KIND_HEAP, &before);
    char *p = stw_malloc(100);
    char *q = stw_calloc(10, 10);
    char *s = stw_strdup("camera");
    char *t = stw_strndup("camera-front", 6);
    assert_non_null(p);
    assert_non_null(q);
    for (int i = 0; i < 100; i++)
        assert_int_equal(q[i], 0);
    assert_string_equal(s, "camera");
    assert_string_equal(t, "camera");
    stw_ledger_kind_stat(STW_KIND_HEAP, &mid);
    assert_int_equal(mid.live - before.live, 4);
    assert_int_equal(mid.live_bytes - before.live_bytes, 100 + 100 + 7 + 7);
    stw_free(p);
    stw_free(q);
    stw_free(s);
    stw_free(t);
    stw_free(NULL);
    stw_ledger_kind_stat(STW_KIND_HEAP, &mid);
    assert_int_equal(mid.live, before.live);
}

static void test_calloc_overflow(void **state)
{
    (void)state;
    errno = 0;
    assert_null(stw_calloc(SIZE_MAX / 2, 4));
    assert_int_equal(errno, ENOMEM);
}

static void test_realloc_keeps_site(void **state)
{
    (void)state;
    char *p = stw_malloc(16);
    stw_record r1, r2;
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, (uintptr_t)p, &r1), 0);
    strcpy(p, "steward");
    /* Large enough that glibc must move the block. */
    p = stw_realloc(p, 1 << 20);
    assert_non_null(p);
    assert_string_equal(p, "steward");
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, (uintptr_t)p, &r2), 0);
    assert_int_equal(r2.site, r1.site);
    assert_int_equal(r2.size, 1 << 20);
    p = stw_realloc(p, 8);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, (uintptr_t)p, &r2), 0);
    assert_int_equal(r2.size, 8);
    stw_free(p);
    p = stw_realloc(NULL, 4);
    assert_non_null(p);
    stw_free(p);
}

static void test_fault_nth(void **state)
{
    (void)state;
    stw_fault_fail_nth(3);
    void *a = stw_malloc(1), *b = stw_malloc(1), *c = stw_malloc(1), *d = stw_malloc(1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_non_null(d);
    assert_true(stw_fault_fired());
    assert_int_equal(stw_fault_count(), 4);
    stw_fault_fail_nth(0);
    stw_free(a);
    stw_free(b);
    stw_free(d);
}

static void test_failed_realloc_keeps_block(void **state)
{
    (void)state;
    char *p = stw_strdup("kept");
    stw_fault_fail_nth(1);
    assert_null(stw_realloc(p, 4096));
    stw_fault_fail_nth(0);
    assert_string_equal(p, "kept");
    stw_free(p);
}

/* A scenario for the sweep helper: three allocations, all or nothing. */
static int three_allocs(void *ud)
{
    (void)ud;
    char *a = stw_malloc(8);
    if (a == NULL)
        return -ENOMEM;
    char *b = stw_strdup("b");
    if (b == NULL)
        goto free_a;
    char *c = stw_calloc(2, 2);
    if (c == NULL)
        goto free_b;
    stw_free(c);
    stw_free(b);
    stw_free(a);
    return 0;
free_b:
    stw_free(b);
free_a:
    stw_free(a);
    return -ENOMEM;
}

static void test_fault_sweep(void **state)
{
    (void)state;
    assert_int_equal(stw_test_fault_sweep(three_allocs, NULL), 3);
}

static void expect_abort(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Keep the expected crash quiet and off the test log. */
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        fn();
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void double_free(void)
{
    void *p = stw_malloc(4);
    stw_free(p);
    stw_free(p);
}

static void foreign_free(void)
{
    void *p = malloc(4);
    stw_free(p);
}

static void test_misuse_aborts(void **state)
{
    (void)state;
    expect_abort(double_free);
    expect_abort(foreign_free);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_booked),
        STW_TEST(test_calloc_overflow),
        STW_TEST(test_realloc_keeps_site),
        STW_TEST(test_fault_nth),
        STW_TEST(test_failed_realloc_keeps_block),
        STW_TEST(test_fault_sweep),
        STW_TEST(test_misuse_aborts),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
