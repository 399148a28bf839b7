#include "steward/buf.h"

#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "buf_internal.h"
#include "steward/alloc.h"
#include "steward/ledger.h"

/* How a buffer holds its bytes. Set once by the constructor; it decides
 * what the last unref does, so no caller can get it wrong. */
enum buf_class {
    BUF_HEAP,    /* bytes follow the header in the same allocation */
    BUF_WRAPPED, /* caller's bytes, released through free_fn */
    BUF_POOLED,  /* bytes follow the header; last unref goes to the recycler */
    BUF_VIEW,    /* window into a root owner's bytes; holds a ref on the root */
};

struct stw_buf {
    atomic_uint refs;
    enum buf_class cls;
    uint8_t *data;
    size_t size;
    union {
        struct {
            stw_buf_free_fn free_fn;
            void *opaque;
        } wrap;
        struct {
            stw__buf_recycle_fn recycle;
            void *owner;
            stw_buf *next;
        } pool;
        struct {
            stw_buf *root;
        } view;
    } u;
};

/* Inline bytes start here, so they get malloc's fundamental alignment. */
#define BUF_HDR_SIZE                                                                               \
    ((sizeof(struct stw_buf) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

static const char *const buf_labels[] = {
    [BUF_HEAP] = "buf",
    [BUF_WRAPPED] = "buf:wrap",
    [BUF_POOLED] = "buf:pool",
    [BUF_VIEW] = "buf:view",
};

static void buf_book(stw_buf *b, size_t owned)
{
    int rc = stw_ledger_record(STW_KIND_BUF, (uintptr_t)b, owned, buf_labels[b->cls]);
    /* -EEXIST would mean a live buffer's address was handed out twice. */
    STW_BUG_ON(rc == -EEXIST);
}

/* Release the ledger record first: once freed, the address may be reused
 * and recorded by another thread. */
static void buf_free_header(stw_buf *b)
{
    stw_ledger_release(STW_KIND_BUF, (uintptr_t)b);
    stw_free(b);
}

static stw_buf *buf_alloc_inline(size_t size, enum buf_class cls)
{
    if (size > SIZE_MAX - BUF_HDR_SIZE)
        return NULL;
    stw_buf *b = stw_malloc(BUF_HDR_SIZE + size);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->cls = cls;
    b->data = (uint8_t *)b + BUF_HDR_SIZE;
    b->size = size;
    return b;
}

int stw_buf_new(size_t size, stw_buf **out)
{
    stw_buf *b = buf_alloc_inline(size, BUF_HEAP);
    if (b == NULL)
        return -ENOMEM;
    buf_book(b, size);
    *out = b;
    return 0;
}

static void buf_stw_free(void *opaque, void *data)
{
    (void)opaque;
    stw_free(data);
}

int stw_buf_wrap(void *data, size_t size, stw_buf_free_fn free_fn, void *opaque, stw_buf **out)
{
    if (data == NULL && size > 0)
        return -EINVAL;
    stw_buf *b = stw_malloc(sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    atomic_init(&b->refs, 1);
    b->cls = BUF_WRAPPED;
    b->data = data;
    b->size = size;
    b->u.wrap.free_fn = free_fn != NULL ? free_fn : buf_stw_free;
    b->u.wrap.opaque = opaque;
    buf_book(b, size);
    *out = b;
    return 0;
}

int stw_buf_view(stw_buf *parent, size_t off, size_t len, stw_buf **out)
{
    STW_BUG_ON(parent == NULL);
    if (off > parent->size || len > parent->size - off)
        return -EINVAL;
    stw_buf *v = stw_malloc(sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    atomic_init(&v->refs, 1);
    v->cls = BUF_VIEW;
    v->data = parent->data + off;
    v->size = len;
    /* Chains of views would keep every intermediate view alive for as long
     * as the last one; pointing at the root keeps exactly the memory. */
    stw_buf *root = parent->cls == BUF_VIEW ? parent->u.view.root : parent;
    v->u.view.root = stw_buf_ref(root);
    buf_book(v, 0);
    *out = v;
    return 0;
}

stw_buf *stw_buf_ref(stw_buf *b)
{
    STW_BUG_ON(b == NULL);
    unsigned old = atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    /* A reference can only be copied from a live one; 0 means the buffer
     * was already released (or sits idle in its pool). */
    if (old == 0 || old == UINT_MAX)
        STW_BUG("stw_buf_ref on a buffer nobody holds (or refcount overflow)");
    return b;
}

static void buf_last_unref(stw_buf *b)
{
    switch (b->cls) {
    case BUF_HEAP:
        buf_free_header(b);
        return;
    case BUF_WRAPPED: {
        stw_buf_free_fn free_fn = b->u.wrap.free_fn;
        void *opaque = b->u.wrap.opaque;
        void *data = b->data;
        buf_free_header(b);
        free_fn(opaque, data);
        return;
    }
    case BUF_POOLED:
        b->u.pool.recycle(b->u.pool.owner, b);
        return;
    case BUF_VIEW: {
        stw_buf *root = b->u.view.root;
        buf_free_header(b);
        stw_buf_unref(&root);
        return;
    }
    }
    STW_BUG("buffer of unknown class");
}

void stw_buf_unref(stw_buf **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    stw_buf *b = *bp;
    *bp = NULL;
    /* acq_rel: the releasing half publishes this holder's writes, the
     * acquiring half lets the last holder see everyone's before freeing. */
    unsigned old = atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel);
    if (old == 0)
        STW_BUG("stw_buf_unref below zero (reference dropped twice)");
    if (old == 1)
        buf_last_unref(b);
}

void stw_buf_unref_cb(const void *data, size_t len, void *buf)
{
    (void)data;
    (void)len;
    stw_buf *b = buf;
    stw_buf_unref(&b);
}

uint8_t *stw_buf_data(stw_buf *b)
{
    return b->data;
}

size_t stw_buf_size(const stw_buf *b)
{
    return b->size;
}

bool stw_buf_is_writable(const stw_buf *b)
{
    if (atomic_load_explicit(&b->refs, memory_order_acquire) != 1)
        return false;
    /* A view reaches its root's bytes; anyone else holding the root (its
     * owner or another view) can see them too. */
    if (b->cls == BUF_VIEW)
        return atomic_load_explicit(&b->u.view.root->refs, memory_order_acquire) == 1;
    return true;
}

int stw_buf_make_writable(stw_buf **bp)
{
    stw_buf *b = *bp;
    if (stw_buf_is_writable(b))
        return 0;
    stw_buf *copy;
    int rc = stw_buf_new(b->size, &copy);
    if (rc < 0)
        return rc;
    if (b->size > 0)
        memcpy(copy->data, b->data, b->size);
    stw_buf_unref(bp);
    *bp = copy;
    return 0;
}

int stw__buf_new_pooled(size_t size, stw__buf_recycle_fn recycle, void *owner, stw_buf **out)
{
    stw_buf *b = buf_alloc_inline(size, BUF_POOLED);
    if (b == NULL)
        return -ENOMEM;
    b->u.pool.recycle = recycle;
    b->u.pool.owner = owner;
    b->u.pool.next = NULL;
    buf_book(b, size);
    *out = b;
    return 0;
}

void stw__buf_revive(stw_buf *b)
{
    STW_BUG_ON(b->cls != BUF_POOLED);
    STW_BUG_ON(atomic_load(&b->refs) != 0);
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
}

void stw__buf_destroy(stw_buf *b)
{
    STW_BUG_ON(b->cls != BUF_POOLED);
    STW_BUG_ON(atomic_load(&b->refs) != 0);
    buf_free_header(b);
}

stw_buf **stw__buf_link(stw_buf *b)
{
    STW_BUG_ON(b->cls != BUF_POOLED);
    return &b->u.pool.next;
}
