#include "steward/frame.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "steward/alloc.h"
#include "steward/ledger.h"

struct stw_frame {
    atomic_uint refs;
    stw_buf *buf;
    stw_frame_meta meta;
};

int stw_frame_new(stw_buf *buf, const stw_frame_meta *meta, stw_frame **out)
{
    STW_BUG_ON(buf == NULL);
    stw_frame *f = stw_malloc(sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    atomic_init(&f->refs, 1);
    f->buf = stw_buf_ref(buf);
    if (meta != NULL)
        f->meta = *meta;
    else
        memset(&f->meta, 0, sizeof(f->meta));
    int rc = stw_ledger_record(STW_KIND_FRAME, (uintptr_t)f, 0, "frame");
    /* -EEXIST would mean a live frame's address was handed out twice. */
    STW_BUG_ON(rc == -EEXIST);
    *out = f;
    return 0;
}

stw_frame *stw_frame_ref(stw_frame *f)
{
    STW_BUG_ON(f == NULL);
    unsigned old = atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    if (old == 0 || old == UINT_MAX)
        STW_BUG("stw_frame_ref on a frame nobody holds (or refcount overflow)");
    return f;
}

void stw_frame_unref(stw_frame **fp)
{
    if (fp == NULL || *fp == NULL)
        return;
    stw_frame *f = *fp;
    *fp = NULL;
    unsigned old = atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel);
    if (old == 0)
        STW_BUG("stw_frame_unref below zero (reference dropped twice)");
    if (old != 1)
        return;
    stw_buf *buf = f->buf;
    /* Release the record before the memory: the address may be reused. */
    stw_ledger_release(STW_KIND_FRAME, (uintptr_t)f);
    stw_free(f);
    stw_buf_unref(&buf);
}

stw_buf *stw_frame_buf(const stw_frame *f)
{
    return f->buf;
}

const stw_frame_meta *stw_frame_meta_get(const stw_frame *f)
{
    return &f->meta;
}
