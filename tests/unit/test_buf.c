#include "stw_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "steward/alloc.h"
#include "steward/buf.h"
#include "steward/frame.h"
#include "steward/ledger.h"

/* Free function for wrapped memory that counts its calls, so tests can
 * tell "freed exactly once" from "freed twice" and "never freed". */
struct wrapped {
    atomic_int frees;
    void *last_data;
    uint8_t bytes[64];
};

static void count_free(void *opaque, void *data)
{
    struct wrapped *w = opaque;
    w->last_data = data;
    atomic_fetch_add(&w->frees, 1);
}

static stw_buf *wrap_counted(struct wrapped *w)
{
    memset(w, 0, sizeof(*w));
    for (size_t i = 0; i < sizeof(w->bytes); i++)
        w->bytes[i] = (uint8_t)i;
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_wrap(w->bytes, sizeof(w->bytes), count_free, w, &b), 0);
    return b;
}

static bool live(int kind, const void *p)
{
    stw_record rec;
    return stw_ledger_lookup(kind, (uintptr_t)p, &rec) == 0;
}

static uint64_t recorded_size(int kind, const void *p)
{
    stw_record rec;
    assert_int_equal(stw_ledger_lookup(kind, (uintptr_t)p, &rec), 0);
    return rec.size;
}

static void test_buf_new_basic(void **state)
{
    (void)state;
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_new(100, &b), 0);
    assert_non_null(b);
    assert_int_equal(stw_buf_size(b), 100);
    assert_non_null(stw_buf_data(b));
    assert_int_equal((uintptr_t)stw_buf_data(b) % _Alignof(max_align_t), 0);
    memset(stw_buf_data(b), 0xab, 100);
    assert_true(stw_buf_is_writable(b));
    assert_true(live(STW_KIND_BUF, b));
    assert_int_equal(recorded_size(STW_KIND_BUF, b), 100);
    stw_buf *b2 = b;
    stw_buf_unref(&b);
    assert_null(b);
    assert_false(live(STW_KIND_BUF, b2));

    /* A zero-size buffer is still a buffer with a usable pointer. */
    assert_int_equal(stw_buf_new(0, &b), 0);
    assert_int_equal(stw_buf_size(b), 0);
    assert_non_null(stw_buf_data(b));
    stw_buf_unref(&b);

    stw_buf_unref(NULL);
    stw_buf_unref(&b);
    assert_null(b);
}

static void test_buf_new_too_large(void **state)
{
    (void)state;
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_new(SIZE_MAX - 8, &b), -ENOMEM);
    assert_null(b);
}

static void test_buf_wrap_frees_once_at_last_unref(void **state)
{
    (void)state;
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    assert_ptr_equal(stw_buf_data(b), w.bytes);
    assert_int_equal(stw_buf_size(b), sizeof(w.bytes));
    assert_int_equal(recorded_size(STW_KIND_BUF, b), sizeof(w.bytes));
    stw_buf *r = stw_buf_ref(b);
    assert_ptr_equal(r, b);
    stw_buf_unref(&b);
    assert_int_equal(atomic_load(&w.frees), 0);
    stw_buf_unref(&r);
    assert_int_equal(atomic_load(&w.frees), 1);
    assert_ptr_equal(w.last_data, w.bytes);
}

static void test_buf_wrap_default_free_is_stw_free(void **state)
{
    (void)state;
    void *mem = stw_malloc(32);
    assert_non_null(mem);
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_wrap(mem, 32, NULL, NULL, &b), 0);
    assert_true(live(STW_KIND_HEAP, mem));
    stw_buf_unref(&b);
    /* The buffer gave the memory back through stw_free. */
    assert_false(live(STW_KIND_HEAP, mem));
}

static void test_buf_wrap_failure_leaves_data_with_caller(void **state)
{
    (void)state;
    struct wrapped w;
    memset(&w, 0, sizeof(w));
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_wrap(NULL, 4, count_free, &w, &b), -EINVAL);
    stw_fault_fail_nth(1);
    assert_int_equal(stw_buf_wrap(w.bytes, sizeof(w.bytes), count_free, &w, &b), -ENOMEM);
    stw_fault_fail_nth(0);
    assert_null(b);
    assert_int_equal(atomic_load(&w.frees), 0);
}

struct hammer {
    stw_buf *b;
    int rounds;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < h->rounds; i++) {
        stw_buf *r = stw_buf_ref(h->b);
        if ((i & 7) == 0) {
            /* Views take and drop references on the same counter. */
            stw_buf *v = NULL;
            if (stw_buf_view(r, 1, 2, &v) == 0)
                stw_buf_unref(&v);
        }
        stw_buf_unref(&r);
    }
    /* Each thread was given one reference of its own; dropping it races
     * with every other thread's, and exactly one of them is the last. */
    stw_buf_unref(&h->b);
    return NULL;
}

static void test_buf_concurrent_ref_unref(void **state)
{
    (void)state;
    enum { NTHREADS = 8 };
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    pthread_t th[NTHREADS];
    struct hammer h[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        h[i].b = stw_buf_ref(b);
        h[i].rounds = 20000;
    }
    stw_buf_unref(&b);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer_thread, &h[i]), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&w.frees), 1);
}

static void test_buf_view_keeps_parent_alive(void **state)
{
    (void)state;
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    stw_buf *v = NULL;
    assert_int_equal(stw_buf_view(b, 10, 20, &v), 0);
    assert_ptr_equal(stw_buf_data(v), w.bytes + 10);
    assert_int_equal(stw_buf_size(v), 20);
    /* A view owns no bytes of its own. */
    assert_int_equal(recorded_size(STW_KIND_BUF, v), 0);

    stw_buf_unref(&b);
    assert_int_equal(atomic_load(&w.frees), 0);
    assert_int_equal(stw_buf_data(v)[0], 10);
    assert_int_equal(stw_buf_data(v)[19], 29);
    stw_buf_unref(&v);
    assert_int_equal(atomic_load(&w.frees), 1);
}

static void test_buf_view_of_view_refers_to_root(void **state)
{
    (void)state;
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    stw_buf *v1 = NULL, *v2 = NULL;
    assert_int_equal(stw_buf_view(b, 8, 40, &v1), 0);
    assert_int_equal(stw_buf_view(v1, 2, 4, &v2), 0);
    assert_ptr_equal(stw_buf_data(v2), w.bytes + 10);
    assert_int_equal(stw_buf_size(v2), 4);
    /* Dropping the middle view frees it (it holds nothing v2 needs) and
     * never the memory, which v2 keeps alive through the root. */
    stw_buf *v1_id = v1;
    stw_buf_unref(&v1);
    assert_false(live(STW_KIND_BUF, v1_id));
    stw_buf_unref(&b);
    assert_int_equal(atomic_load(&w.frees), 0);
    assert_int_equal(stw_buf_data(v2)[3], 13);
    stw_buf_unref(&v2);
    assert_int_equal(atomic_load(&w.frees), 1);
}

static void test_buf_view_bounds(void **state)
{
    (void)state;
    stw_buf *b = NULL, *v = NULL;
    assert_int_equal(stw_buf_new(16, &b), 0);
    assert_int_equal(stw_buf_view(b, 0, 17, &v), -EINVAL);
    assert_int_equal(stw_buf_view(b, 17, 0, &v), -EINVAL);
    assert_int_equal(stw_buf_view(b, 8, 9, &v), -EINVAL);
    assert_int_equal(stw_buf_view(b, SIZE_MAX, 2, &v), -EINVAL);
    assert_int_equal(stw_buf_view(b, 2, SIZE_MAX, &v), -EINVAL);
    assert_null(v);
    /* A failed view took no reference. */
    assert_true(stw_buf_is_writable(b));
    assert_int_equal(stw_buf_view(b, 16, 0, &v), 0);
    assert_int_equal(stw_buf_size(v), 0);
    stw_buf_unref(&v);
    assert_int_equal(stw_buf_view(b, 0, 16, &v), 0);
    stw_buf_unref(&v);
    stw_buf_unref(&b);
}

static void test_buf_writable(void **state)
{
    (void)state;
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_new(8, &b), 0);
    assert_true(stw_buf_is_writable(b));

    stw_buf *r = stw_buf_ref(b);
    assert_false(stw_buf_is_writable(b));
    stw_buf_unref(&r);
    assert_true(stw_buf_is_writable(b));

    /* A live view shares the bytes: neither side may write. */
    stw_buf *v = NULL;
    assert_int_equal(stw_buf_view(b, 0, 4, &v), 0);
    assert_false(stw_buf_is_writable(b));
    assert_false(stw_buf_is_writable(v));
    /* Once the owner's holder is gone, the view is the only way in. */
    stw_buf_unref(&b);
    assert_true(stw_buf_is_writable(v));
    stw_buf *v2 = NULL;
    assert_int_equal(stw_buf_view(v, 0, 2, &v2), 0);
    assert_false(stw_buf_is_writable(v));
    assert_false(stw_buf_is_writable(v2));
    stw_buf_unref(&v2);
    assert_true(stw_buf_is_writable(v));
    stw_buf_unref(&v);
}

static void test_buf_make_writable(void **state)
{
    (void)state;
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_new(8, &b), 0);
    memcpy(stw_buf_data(b), "abcdefgh", 8);

    /* Already writable: nothing changes. */
    stw_buf *before = b;
    assert_int_equal(stw_buf_make_writable(&b), 0);
    assert_ptr_equal(b, before);

    /* Shared: the caller gets a private copy, the other holder keeps the
     * original, untouched. */
    stw_buf *other = stw_buf_ref(b);
    assert_int_equal(stw_buf_make_writable(&b), 0);
    assert_ptr_not_equal(b, other);
    assert_true(stw_buf_is_writable(b));
    assert_true(stw_buf_is_writable(other));
    assert_memory_equal(stw_buf_data(b), "abcdefgh", 8);
    stw_buf_data(b)[0] = 'X';
    assert_int_equal(stw_buf_data(other)[0], 'a');

    /* A shared view copies just its window. */
    stw_buf *v = NULL;
    assert_int_equal(stw_buf_view(other, 2, 3, &v), 0);
    assert_int_equal(stw_buf_make_writable(&v), 0);
    assert_int_equal(stw_buf_size(v), 3);
    assert_memory_equal(stw_buf_data(v), "cde", 3);
    assert_int_equal(recorded_size(STW_KIND_BUF, v), 3);
    assert_true(stw_buf_is_writable(other));

    /* Failure leaves the caller's reference as it was. */
    stw_buf *r = stw_buf_ref(other);
    stw_buf *keep = r;
    stw_fault_fail_nth(1);
    assert_int_equal(stw_buf_make_writable(&r), -ENOMEM);
    stw_fault_fail_nth(0);
    assert_ptr_equal(r, keep);
    stw_buf_unref(&r);

    stw_buf_unref(&v);
    stw_buf_unref(&other);
    stw_buf_unref(&b);
}

static void test_buf_unref_cb(void **state)
{
    (void)state;
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    /* The hand-off pattern: a reference for the socket, released by the
     * socket's cleanup callback. */
    void (*cleanup)(const void *, size_t, void *) = stw_buf_unref_cb;
    stw_buf *for_socket = stw_buf_ref(b);
    stw_buf_unref(&b);
    assert_int_equal(atomic_load(&w.frees), 0);
    cleanup(stw_buf_data(for_socket), stw_buf_size(for_socket), for_socket);
    assert_int_equal(atomic_load(&w.frees), 1);
}

static void test_frame_holds_buffer(void **state)
{
    (void)state;
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    stw_frame_meta m = {
        .seq = 42,
        .pts_ns = 1000,
        .captured_ns = 2000,
        .format = STW_FOURCC('M', 'J', 'P', 'G'),
        .width = 640,
        .height = 480,
    };
    stw_frame *f = NULL;
    assert_int_equal(stw_frame_new(b, &m, &f), 0);
    assert_true(live(STW_KIND_FRAME, f));
    assert_ptr_equal(stw_frame_buf(f), b);
    /* The frame took its own reference. */
    assert_false(stw_buf_is_writable(b));
    stw_buf_unref(&b);
    assert_int_equal(atomic_load(&w.frees), 0);

    /* The metadata was copied: changing the caller's struct changes nothing. */
    m.seq = 7;
    const stw_frame_meta *got = stw_frame_meta_get(f);
    assert_int_equal(got->seq, 42);
    assert_int_equal(got->pts_ns, 1000);
    assert_int_equal(got->captured_ns, 2000);
    assert_int_equal(got->format, 0x47504a4d);
    assert_int_equal(got->width, 640);
    assert_int_equal(got->height, 480);
    assert_int_equal(stw_buf_data(stw_frame_buf(f))[5], 5);

    stw_frame *f2 = stw_frame_ref(f);
    stw_frame *fid = f;
    stw_frame_unref(&f);
    assert_null(f);
    assert_true(live(STW_KIND_FRAME, fid));
    assert_int_equal(atomic_load(&w.frees), 0);
    stw_frame_unref(&f2);
    assert_false(live(STW_KIND_FRAME, fid));
    assert_int_equal(atomic_load(&w.frees), 1);

    stw_frame_unref(NULL);
    stw_frame_unref(&f2);
}

static void test_frame_null_meta_and_failure(void **state)
{
    (void)state;
    stw_buf *b = NULL;
    assert_int_equal(stw_buf_new(4, &b), 0);
    stw_frame *f = NULL;
    assert_int_equal(stw_frame_new(b, NULL, &f), 0);
    assert_int_equal(stw_frame_meta_get(f)->seq, 0);
    assert_int_equal(stw_frame_meta_get(f)->format, 0);
    stw_frame_unref(&f);

    stw_fault_fail_nth(1);
    assert_int_equal(stw_frame_new(b, NULL, &f), -ENOMEM);
    stw_fault_fail_nth(0);
    assert_null(f);
    /* No reference was taken on failure. */
    assert_true(stw_buf_is_writable(b));
    stw_buf_unref(&b);
}

struct frame_fan {
    stw_frame *f;
    atomic_long bytes;
};

static void *frame_reader(void *arg)
{
    struct frame_fan *fan = arg;
    for (int i = 0; i < 5000; i++) {
        stw_frame *mine = stw_frame_ref(fan->f);
        stw_buf *b = stw_buf_ref(stw_frame_buf(mine));
        stw_frame_unref(&mine);
        atomic_fetch_add(&fan->bytes, (long)stw_buf_size(b));
        stw_buf_unref(&b);
    }
    return NULL;
}

static void test_frame_concurrent_fan_out(void **state)
{
    (void)state;
    enum { NTHREADS = 6 };
    struct wrapped w;
    stw_buf *b = wrap_counted(&w);
    struct frame_fan fan = {.f = NULL};
    atomic_init(&fan.bytes, 0);
    assert_int_equal(stw_frame_new(b, NULL, &fan.f), 0);
    stw_buf_unref(&b);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, frame_reader, &fan), 0);
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(atomic_load(&fan.bytes), (long)NTHREADS * 5000 * 64);
    assert_int_equal(atomic_load(&w.frees), 0);
    stw_frame_unref(&fan.f);
    assert_int_equal(atomic_load(&w.frees), 1);
}

/* Every allocating operation of buf and frame, unwound on the first error. */
static int buf_frame_scenario(void *ud)
{
    (void)ud;
    stw_buf *b = NULL, *v1 = NULL, *v2 = NULL, *w = NULL;
    stw_frame *f = NULL;
    int rc = stw_buf_new(64, &b);
    if (rc < 0)
        return rc;
    memset(stw_buf_data(b), 1, 64);
    rc = stw_buf_view(b, 4, 32, &v1);
    if (rc < 0)
        goto unref_b;
    rc = stw_buf_view(v1, 4, 8, &v2);
    if (rc < 0)
        goto unref_v1;
    rc = stw_frame_new(v2, NULL, &f);
    if (rc < 0)
        goto unref_v2;
    void *mem = stw_malloc(16);
    if (mem == NULL) {
        rc = -ENOMEM;
        goto unref_f;
    }
    rc = stw_buf_wrap(mem, 16, NULL, NULL, &w);
    if (rc < 0) {
        stw_free(mem);
        goto unref_f;
    }
    rc = stw_buf_make_writable(&v1);
    if (rc == 0 && stw_buf_data(v1)[0] != 1)
        rc = -EIO;
    stw_buf_unref(&w);
unref_f:
    stw_frame_unref(&f);
unref_v2:
    stw_buf_unref(&v2);
unref_v1:
    stw_buf_unref(&v1);
unref_b:
    stw_buf_unref(&b);
    return rc;
}

static void test_buf_fault_sweep(void **state)
{
    (void)state;
    int points = stw_test_fault_sweep(buf_frame_scenario, NULL);
    assert_int_equal(points, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_buf_new_basic),
        STW_TEST(test_buf_new_too_large),
        STW_TEST(test_buf_wrap_frees_once_at_last_unref),
        STW_TEST(test_buf_wrap_default_free_is_stw_free),
        STW_TEST(test_buf_wrap_failure_leaves_data_with_caller),
        STW_TEST(test_buf_concurrent_ref_unref),
        STW_TEST(test_buf_view_keeps_parent_alive),
        STW_TEST(test_buf_view_of_view_refers_to_root),
        STW_TEST(test_buf_view_bounds),
        STW_TEST(test_buf_writable),
        STW_TEST(test_buf_make_writable),
        STW_TEST(test_buf_unref_cb),
        STW_TEST(test_frame_holds_buffer),
        STW_TEST(test_frame_null_meta_and_failure),
        STW_TEST(test_frame_concurrent_fan_out),
        STW_TEST(test_buf_fault_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
