/*
 * The checker's heap block map (src/ledger/blocks.c), through the ledger
 * calls the checker makes. Built with a private copy of the ledger, as the
 * checker's library is, so the map can be switched on.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "../../src/ledger/ledger_internal.h"

/* Fake block addresses, 16-byte aligned, far from the real heap: the map
 * never dereferences them. */
#define BLK(n) ((uint64_t)0x300000000000 + (uint64_t)(n) * 48)

static stw_site site_a, site_b;

static int64_t site_live(stw_site site, int64_t *bytes)
{
    stw_snapshot *s = NULL;
    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(STW_KIND_HEAP)};
    assert_int_equal(stw_snapshot_new(&o, &s), 0);
    int64_t live = 0;
    *bytes = 0;
    for (size_t i = 0; i < s->nsites; i++) {
        if (s->sites[i].site == site) {
            live = s->sites[i].live;
            *bytes = s->sites[i].live_bytes;
        }
    }
    stw_snapshot_free(&s);
    return live;
}

static void test_insert_lookup_remove(void **state)
{
    (void)state;
    stw_record r;
    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(1), 100, site_a, NULL), 0);
    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(1), 100, site_a, NULL), -EEXIST);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(1), &r), 0);
    assert_int_equal(r.kind, STW_KIND_HEAP);
    assert_int_equal(r.id, BLK(1));
    assert_int_equal(r.size, 100);
    assert_int_equal(r.site, site_a);
    assert_int_equal(r.extent, 0);
    assert_null(r.label);
    /* Inside the block but not its start: an invalid free, not this block. */
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(1) + 16, NULL), -ENOENT);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(1) + 16), -ENOENT);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(1) + 8), -ENOENT);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(1)), 0);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(1)), -ENOENT);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(1), NULL), -ENOENT);
}

static void test_resize_label_and_huge_go_to_shards(void **state)
{
    (void)state;
    stw_record r;
    /* 16 MiB and more does not fit a slot: the shards hold it. */
    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(2), 32u << 20, site_a, NULL), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(2), &r), 0);
    assert_int_equal(r.size, 32u << 20);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(2)), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(2), NULL), -ENOENT);

    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(3), 64, site_a, NULL), 0);
    assert_int_equal(stw_ledger_resize(STW_KIND_HEAP, BLK(3), 200), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(3), &r), 0);
    assert_int_equal(r.size, 200);
    assert_int_equal(stw_ledger_resize(STW_KIND_HEAP, BLK(3), 64u << 20), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(3), &r), 0);
    assert_int_equal(r.size, 64u << 20);
    assert_int_equal(r.site, site_a);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(3)), 0);

    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(4), 10, site_a, NULL), 0);
    assert_int_equal(stw_ledger_set_label(STW_KIND_HEAP, BLK(4), "named"), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(4), &r), 0);
    assert_string_equal(r.label, "named");
    assert_int_equal(r.size, 10);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(4)), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(4), NULL), -ENOENT);
}

static void test_checkpoint_orders_blocks(void **state)
{
    (void)state;
    stw_record r;
    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(10), 8, site_a, NULL), 0);
    uint64_t c = stw_ledger_checkpoint();
    assert_int_equal(stw__ledger_insert(STW_KIND_HEAP, BLK(11), 8, site_a, NULL), 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(10), &r), 0);
    assert_true(r.seq <= c);
    assert_int_equal(stw_ledger_lookup(STW_KIND_HEAP, BLK(11), &r), 0);
    assert_true(r.seq > c);
    assert_true(r.birth_ns > 0);

    /* "Made since the checkpoint" sees the second block only. */
    stw_snapshot *s = NULL;
    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(STW_KIND_HEAP), .since_seq = c, .records = true};
    assert_int_equal(stw_snapshot_new(&o, &s), 0);
    size_t found10 = 0, found11 = 0;
    for (size_t i = 0; i < s->nrecords; i++) {
        found10 += s->records[i].id == BLK(10);
        found11 += s->records[i].id == BLK(11);
    }
    assert_int_equal(found10, 0);
    assert_int_equal(found11, 1);
    stw_snapshot_free(&s);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(10)), 0);
    assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(11)), 0);
}

/* A thread books blocks of site_b and exits: its counts reach the shared
 * per-site numbers, which a snapshot without records reads. */
static void *book_and_exit(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (stw__ledger_insert(STW_KIND_HEAP, BLK(1000 + i), 24, site_b, NULL) != 0)
            return (void *)1;
    /* Half of them freed again. */
    for (long i = 0; i < n; i += 2)
        if (stw__ledger_remove(STW_KIND_HEAP, BLK(1000 + i)) != 0)
            return (void *)1;
    return NULL;
}

static void test_per_site_counts(void **state)
{
    (void)state;
    pthread_t t;
    void *rc;
    assert_int_equal(pthread_create(&t, NULL, book_and_exit, (void *)(intptr_t)1000), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
    assert_null(rc);
    int64_t bytes;
    assert_int_equal(site_live(site_b, &bytes), 500);
    assert_int_equal(bytes, 500 * 24);
    stw_kind_stat k;
    stw_ledger_kind_stat(STW_KIND_HEAP, &k);
    assert_true(k.live >= 500);

    /* A snapshot with records walks the map and agrees. */
    stw_snapshot *s = NULL;
    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(STW_KIND_HEAP), .records = true};
    assert_int_equal(stw_snapshot_new(&o, &s), 0);
    long n = 0;
    for (size_t i = 0; i < s->nrecords; i++)
        n += s->records[i].site == site_b;
    assert_int_equal(n, 500);
    stw_snapshot_free(&s);

    for (long i = 1; i < 1000; i += 2)
        assert_int_equal(stw__ledger_remove(STW_KIND_HEAP, BLK(1000 + i)), 0);
    assert_int_equal(pthread_create(&t, NULL, book_and_exit, (void *)(intptr_t)0), 0);
    assert_int_equal(pthread_join(t, &rc), 0);
}

/* Two threads book and free blocks in interleaved granules at once. */
static void *churn(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg;
    for (int round = 0; round < 50; round++) {
        for (uint64_t i = 0; i < 2000; i++)
            if (stw__ledger_insert(STW_KIND_HEAP, base + i * 64, 16, site_a, NULL) != 0)
                return (void *)1;
        for (uint64_t i = 0; i < 2000; i++)
            if (stw__ledger_remove(STW_KIND_HEAP, base + i * 64) != 0)
                return (void *)1;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t a, b;
    void *ra, *rb;
    /* Neighbouring 32-byte granules, one thread each. */
    assert_int_equal(pthread_create(&a, NULL, churn, (void *)(uintptr_t)0x310000000000), 0);
    assert_int_equal(pthread_create(&b, NULL, churn, (void *)(uintptr_t)0x310000000020), 0);
    assert_int_equal(pthread_join(a, &ra), 0);
    assert_int_equal(pthread_join(b, &rb), 0);
    assert_null(ra);
    assert_null(rb);
    stw_snapshot *s = NULL;
    stw_snapshot_opts o = {.kinds = STW_KIND_BIT(STW_KIND_HEAP), .records = true};
    assert_int_equal(stw_snapshot_new(&o, &s), 0);
    assert_int_equal(s->nrecords, 0);
    stw_snapshot_free(&s);
}

/* ---- the checker's own mappings (arena.c, sampling mode's scan) ---- */

#define OWN_MAX 65536
/* One listing buffer per thread of the test. */
static uintptr_t own_bufs[3][OWN_MAX][2];
#define own own_bufs[0]

/* 1 when [p, p + len) is listed as one of the checker's mappings. */
static int own_listed(const void *p, size_t len)
{
    size_t n = stw__pages_own(own, OWN_MAX);
    for (size_t i = 0; i < n; i++)
        if (own[i][0] == (uintptr_t)p && own[i][1] == (uintptr_t)p + len)
            return 1;
    return 0;
}

static void test_own_mappings_listed(void **state)
{
    (void)state;
    size_t before = stw__pages_own(own, OWN_MAX);
    assert_true(before > 0); /* the block map's directory, at least */
    void *a = stw__pages_alloc(100);
    void *b = stw__pages_reserve(3 * 4096 + 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(own_listed(a, 4096)); /* rounded to pages */
    assert_true(own_listed(b, 4 * 4096));
    assert_int_equal(stw__pages_own(own, OWN_MAX), before + 2);
    stw__pages_free(a, 100);
    assert_false(own_listed(a, 4096));
    assert_true(own_listed(b, 4 * 4096));
    stw__pages_free(b, 3 * 4096 + 1);
    assert_int_equal(stw__pages_own(own, OWN_MAX), before);
}

static void *own_churn(void *arg)
{
    uintptr_t(*buf)[2] = own_bufs[(uintptr_t)arg];
    void *keep[64];
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++)
            keep[i] = stw__pages_alloc(4096 * (size_t)(1 + i % 3));
        size_t n = stw__pages_own(buf, OWN_MAX);
        for (int i = 0; i < 64; i++) {
            size_t j = 0;
            while (j < n && !(buf[j][0] == (uintptr_t)keep[i] &&
                              buf[j][1] == (uintptr_t)keep[i] + 4096 * (size_t)(1 + i % 3)))
                j++;
            if (keep[i] == NULL || j == n)
                return (void *)1;
        }
        for (int i = 0; i < 64; i++)
            stw__pages_free(keep[i], 4096 * (size_t)(1 + i % 3));
    }
    return NULL;
}

/* Two threads mapping and unmapping at once (the table takes no lock):
 * every live mapping is listed, and when all are gone the table holds
 * what it held before (freed slots are reused, not leaked). */
static void test_own_mappings_threads(void **state)
{
    (void)state;
    size_t before = stw__pages_own(own, OWN_MAX);
    pthread_t a, b;
    void *ra, *rb;
    assert_int_equal(pthread_create(&a, NULL, own_churn, (void *)(uintptr_t)1), 0);
    assert_int_equal(pthread_create(&b, NULL, own_churn, (void *)(uintptr_t)2), 0);
    assert_int_equal(pthread_join(a, &ra), 0);
    assert_int_equal(pthread_join(b, &rb), 0);
    assert_null(ra);
    assert_null(rb);
    assert_int_equal(stw__pages_own(own, OWN_MAX), before);
}

int main(void)
{
    if (!stw__blocks_enable(0)) {
        fprintf(stderr, "cannot reserve the block map\n");
        return 1;
    }
    site_a = stw_ledger_site_here(STW_KIND_HEAP, 0);
    site_b = stw_ledger_site_here(STW_KIND_HEAP, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_lookup_remove),
        cmocka_unit_test(test_resize_label_and_huge_go_to_shards),
        cmocka_unit_test(test_checkpoint_orders_blocks),
        cmocka_unit_test(test_per_site_counts),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_own_mappings_listed),
        cmocka_unit_test(test_own_mappings_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
