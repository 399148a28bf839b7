/*
 * src/relay/preroll.c — the bounded ring of recent JPEG frames (see
 * preroll.h).
 */
#include "preroll.h"

#include <errno.h>
#include <string.h>

#include "steward/alloc.h"

int relay_preroll_init(relay_preroll *p, unsigned max_frames, size_t max_bytes)
{
    *p = (relay_preroll){0};
    if (max_frames == 0 || max_bytes == 0)
        return -EINVAL;
    p->ent = stw_calloc(max_frames, sizeof(*p->ent));
    if (p->ent == NULL)
        return -ENOMEM;
    p->max_frames = max_frames;
    p->max_bytes = max_bytes;
    return 0;
}

static void pop(relay_preroll *p)
{
    relay_preroll_ent *e = &p->ent[p->head];
    p->bytes -= stw_buf_size(e->buf);
    stw_buf_unref(&e->buf);
    p->head = (p->head + 1) % p->max_frames;
    p->n--;
}

void relay_preroll_clear(relay_preroll *p)
{
    while (p->n > 0)
        pop(p);
    p->head = 0;
}

void relay_preroll_free(relay_preroll *p)
{
    if (p->ent != NULL)
        relay_preroll_clear(p);
    stw_free(p->ent);
    *p = (relay_preroll){0};
}

const relay_preroll_ent *relay_preroll_get(const relay_preroll *p, unsigned i)
{
    return &p->ent[(p->head + i) % p->max_frames];
}

int relay_preroll_append(relay_preroll *p, stw_buf *buf, int64_t ns)
{
    size_t len = stw_buf_size(buf);
    if (len > p->max_bytes) {
        stw_buf_unref(&buf);
        return -E2BIG;
    }
    if (p->n > 0 && ns < relay_preroll_get(p, p->n - 1)->ns)
        ns = relay_preroll_get(p, p->n - 1)->ns;
    while (p->n > 0 && (p->n == p->max_frames || p->bytes + len > p->max_bytes))
        pop(p);
    p->ent[(p->head + p->n) % p->max_frames] = (relay_preroll_ent){buf, ns};
    p->n++;
    p->bytes += len;
    return 0;
}

void relay_preroll_trim(relay_preroll *p, int64_t from_ns)
{
    while (p->n > 1 && relay_preroll_get(p, 0)->ns < from_ns)
        pop(p);
}

int64_t relay_preroll_start(const relay_preroll *p, int64_t from_ns, int64_t floor_ns)
{
    for (unsigned i = 0; i < p->n; i++) {
        int64_t ns = relay_preroll_get(p, i)->ns;
        if (ns >= from_ns && ns > floor_ns)
            return ns;
    }
    return 0;
}

stw_buf *relay_preroll_at(const relay_preroll *p, int64_t t_ns)
{
    if (p->n == 0)
        return NULL;
    for (unsigned i = p->n; i-- > 0;)
        if (relay_preroll_get(p, i)->ns <= t_ns)
            return relay_preroll_get(p, i)->buf;
    return relay_preroll_get(p, 0)->buf;
}

unsigned relay_preroll_rate(const relay_preroll *p, unsigned lo, unsigned hi, unsigned dflt)
{
    if (p->n < 3)
        return dflt;
    int64_t span = relay_preroll_get(p, p->n - 1)->ns - relay_preroll_get(p, 0)->ns;
    if (span <= 0)
        return dflt;
    double fps = (double)(p->n - 1) * 1e9 / (double)span;
    unsigned rate = (unsigned)(fps + 0.5);
    return rate < lo ? lo : rate > hi ? hi : rate;
}
