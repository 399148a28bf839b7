/*
 * Snapshots copy the ledger into mmap'ed arrays the caller owns, shard by
 * shard, so no shard lock is held for longer than one memcpy-like pass.
 */
#include <errno.h>
#include <string.h>

#include "ledger_internal.h"

typedef struct snap_impl {
    stw_snapshot pub; /* first, so a stw_snapshot * is a snap_impl * */
    size_t sites_bytes;
    size_t records_bytes;
} snap_impl;

static bool kind_wanted(uint64_t mask, int kind)
{
    return mask == 0 || (mask & STW_KIND_BIT(kind)) != 0;
}

static int cmp_site_stat(const void *a, const void *b)
{
    const stw_site_stat *x = a, *y = b;
    if (x->live_bytes != y->live_bytes)
        return x->live_bytes < y->live_bytes ? 1 : -1;
    if (x->live != y->live)
        return x->live < y->live ? 1 : -1;
    return x->site < y->site ? -1 : x->site > y->site;
}

/* Records by site then seq: radix-sort (key, index) pairs, then permute.
 * A comparison sort without malloc takes seconds on a million records. */
typedef struct rec_key {
    uint64_t key;
    uint64_t index;
} rec_key;

static int sort_records(stw_record *recs, size_t n)
{
    if (n < 2)
        return 0;
    size_t kbytes = n * sizeof(rec_key), rbytes = n * sizeof(stw_record);
    rec_key *keys = stw__pages_alloc(kbytes);
    stw_record *out = stw__pages_alloc(rbytes);
    int rc = -ENOMEM;
    if (keys == NULL || out == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        /* Sites fit in 24 bits (the intern table's size); 40 bits of seq
         * order a trillion records. */
        keys[i].key = ((uint64_t)recs[i].site << 40) | (recs[i].seq & ((UINT64_C(1) << 40) - 1));
        keys[i].index = i;
    }
    rc = stw__radix_sort(keys, n, sizeof(rec_key), offsetof(rec_key, key));
    if (rc != 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        out[i] = recs[keys[i].index];
    memcpy(recs, out, rbytes);
done:
    stw__pages_free(keys, kbytes);
    stw__pages_free(out, rbytes);
    return rc;
}

static snap_impl *snap_alloc(void)
{
    return stw__pages_alloc(sizeof(snap_impl));
}

/* Grow-by-doubling array in mmap'ed pages. */
static int reserve(void **arr, size_t *bytes, size_t need)
{
    if (need <= *bytes)
        return 0;
    size_t nb = *bytes ? *bytes : 4096;
    while (nb < need)
        nb *= 2;
    void *n = stw__pages_alloc(nb);
    if (n == NULL)
        return -ENOMEM;
    if (*arr != NULL) {
        memcpy(n, *arr, *bytes);
        stw__pages_free(*arr, *bytes);
    }
    *arr = n;
    *bytes = nb;
    return 0;
}

void stw_snapshot_free(stw_snapshot **snap)
{
    if (snap == NULL || *snap == NULL)
        return;
    snap_impl *s = (snap_impl *)*snap;
    stw__pages_free(s->pub.sites, s->sites_bytes);
    stw__pages_free(s->pub.records, s->records_bytes);
    stw__pages_free(s, sizeof(*s));
    *snap = NULL;
}

static stw_record to_record(const stw__entry *e)
{
    return (stw_record){.kind = e->kind,
                        .id = e->id,
                        .size = e->size,
                        .site = e->site,
                        .owner = e->owner,
                        .birth_ns = e->birth_ns,
                        .seq = e->seq,
                        .label = e->label};
}

/* Per-site sums, indexed by site id; site 0 ("unknown") is split by kind. */
typedef struct site_sum {
    int64_t live;
    int64_t bytes;
} site_sum;

/* What adding records to a snapshot needs, for the block map's walk. */
typedef struct collect {
    snap_impl *s;
    const stw_snapshot_opts *o;
    site_sum *sums;
    site_sum *unknown;
    uint32_t nsites;
} collect;

static int add_record(const stw_record *r, void *ud)
{
    collect *c = ud;
    if (!kind_wanted(c->o->kinds, r->kind) || r->seq <= c->o->since_seq)
        return 0;
    site_sum *sum = r->site != 0 && r->site <= c->nsites ? &c->sums[r->site] : &c->unknown[r->kind];
    sum->live++;
    sum->bytes += (int64_t)r->size;
    if (!c->o->records)
        return 0;
    snap_impl *s = c->s;
    if (reserve((void **)&s->pub.records, &s->records_bytes,
                (s->pub.nrecords + 1) * sizeof(stw_record)) != 0)
        return -ENOMEM;
    s->pub.records[s->pub.nrecords++] = *r;
    return 0;
}

int stw_snapshot_new(const stw_snapshot_opts *opts, stw_snapshot **out)
{
    stw_snapshot_opts o = opts ? *opts : (stw_snapshot_opts){0};
    stw__ledger_init();
    bool guarded = stw_ledger_guard_enter();
    int rc = -ENOMEM;
    snap_impl *s = snap_alloc();
    stw__entry *tmp = NULL;
    size_t tmp_bytes = 0;
    site_sum *sums = NULL;
    site_sum unknown[STW_KIND_MAX] = {{0}};
    if (s == NULL)
        goto out;
    s->pub.seq = stw_ledger_checkpoint();
    s->pub.taken_ns = stw_now_ns();
    for (int k = 0; k < STW_KIND_MAX; k++)
        if (kind_wanted(o.kinds, k))
            stw_ledger_kind_stat(k, &s->pub.kinds[k]);

    /* Sites interned while we scan get ids above nsites: their records
     * count as unknown-site rather than overrun the array. */
    uint32_t nsites = stw__site_count();
    size_t sums_bytes = (nsites + 1) * sizeof(site_sum);
    sums = stw__pages_alloc(sums_bytes);
    if (sums == NULL)
        goto fail;
    collect c = {.s = s, .o = &o, .sums = sums, .unknown = unknown, .nsites = nsites};
    for (int i = 0; i < STW__NSHARDS; i++) {
        long got;
        while ((got = stw__shard_copy(i, tmp, tmp_bytes / sizeof(stw__entry))) < 0) {
            if (reserve((void **)&tmp, &tmp_bytes, (size_t)(-got + 64) * sizeof(stw__entry)) != 0)
                goto fail;
        }
        for (long j = 0; j < got; j++) {
            stw_record r = to_record(&tmp[j]);
            if (add_record(&r, &c) != 0)
                goto fail;
        }
    }
    if (stw__blocks_on() && kind_wanted(o.kinds, STW_KIND_HEAP)) {
        if (o.records || o.since_seq != 0) {
            if (stw__blocks_each(add_record, &c) != 0)
                goto fail;
        } else {
            /* Per-site numbers are kept as blocks come and go: no walk. */
            for (uint32_t id = 0; id <= nsites; id++) {
                int64_t live, bytes;
                stw__blocks_site(id, &live, &bytes);
                site_sum *sum = id != 0 ? &sums[id] : &unknown[STW_KIND_HEAP];
                sum->live += live;
                sum->bytes += bytes;
            }
        }
    }

    for (uint32_t id = 0; id <= nsites + STW_KIND_MAX; id++) {
        stw_site_stat ss;
        if (id <= nsites) {
            const stw__site *st = stw__site_get(id);
            if (st == NULL || !kind_wanted(o.kinds, st->kind))
                continue;
            if (sums[id].live == 0 && !(o.all_sites && o.since_seq == 0))
                continue;
            ss = (stw_site_stat){id, st->kind, sums[id].live, sums[id].bytes};
        } else {
            int k = (int)(id - nsites - 1);
            if (k >= STW_KIND_MAX || unknown[k].live == 0)
                continue;
            ss = (stw_site_stat){0, k, unknown[k].live, unknown[k].bytes};
        }
        if (reserve((void **)&s->pub.sites, &s->sites_bytes,
                    (s->pub.nsites + 1) * sizeof(stw_site_stat)) != 0)
            goto fail;
        s->pub.sites[s->pub.nsites++] = ss;
    }
    stw__sort(s->pub.sites, s->pub.nsites, sizeof(stw_site_stat), cmp_site_stat);
    if (sort_records(s->pub.records, s->pub.nrecords) != 0)
        goto fail;
    *out = &s->pub;
    s = NULL;
    rc = 0;
fail:
    if (s != NULL) {
        stw_snapshot *p = &s->pub;
        stw_snapshot_free(&p);
    }
    stw__pages_free(sums, sums_bytes);
out:
    stw__pages_free(tmp, tmp_bytes);
    if (guarded)
        stw_ledger_guard_exit();
    return rc;
}

static const stw_site_stat *find_site(const stw_snapshot *s, stw_site site, int kind)
{
    for (size_t i = 0; i < s->nsites; i++)
        if (s->sites[i].site == site && s->sites[i].kind == kind)
            return &s->sites[i];
    return NULL;
}

static int push_site(snap_impl *d, stw_site_stat st)
{
    if (reserve((void **)&d->pub.sites, &d->sites_bytes,
                (d->pub.nsites + 1) * sizeof(stw_site_stat)) != 0)
        return -ENOMEM;
    d->pub.sites[d->pub.nsites++] = st;
    return 0;
}

int stw_snapshot_diff(const stw_snapshot *before, const stw_snapshot *after, stw_snapshot **out)
{
    snap_impl *d = snap_alloc();
    if (d == NULL)
        return -ENOMEM;
    d->pub.seq = after->seq;
    d->pub.taken_ns = after->taken_ns;
    for (int k = 0; k < STW_KIND_MAX; k++) {
        d->pub.kinds[k].live = after->kinds[k].live - before->kinds[k].live;
        d->pub.kinds[k].live_bytes = after->kinds[k].live_bytes - before->kinds[k].live_bytes;
        d->pub.kinds[k].created = after->kinds[k].created - before->kinds[k].created;
        d->pub.kinds[k].released = after->kinds[k].released - before->kinds[k].released;
    }
    for (size_t i = 0; i < after->nsites; i++) {
        stw_site_stat st = after->sites[i];
        const stw_site_stat *b = find_site(before, st.site, st.kind);
        if (b != NULL) {
            st.live -= b->live;
            st.live_bytes -= b->live_bytes;
        }
        if ((st.live != 0 || st.live_bytes != 0) && push_site(d, st) != 0)
            goto fail;
    }
    /* Sites that emptied out entirely appear only in @before. */
    for (size_t i = 0; i < before->nsites; i++) {
        const stw_site_stat *b = &before->sites[i];
        if (find_site(after, b->site, b->kind) != NULL)
            continue;
        stw_site_stat st = {
            .site = b->site, .kind = b->kind, .live = -b->live, .live_bytes = -b->live_bytes};
        if ((st.live != 0 || st.live_bytes != 0) && push_site(d, st) != 0)
            goto fail;
    }
    for (size_t i = 0; i < after->nrecords; i++) {
        if (after->records[i].seq <= before->seq)
            continue;
        if (reserve((void **)&d->pub.records, &d->records_bytes,
                    (d->pub.nrecords + 1) * sizeof(stw_record)) != 0)
            goto fail;
        d->pub.records[d->pub.nrecords++] = after->records[i];
    }
    stw__sort(d->pub.sites, d->pub.nsites, sizeof(stw_site_stat), cmp_site_stat);
    *out = &d->pub;
    return 0;
fail:;
    stw_snapshot *p = &d->pub;
    stw_snapshot_free(&p);
    return -ENOMEM;
}
