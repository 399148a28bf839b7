/*
 * src/relay/mp4.c — fragmented MP4 segment summary (mp4.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mp4.h"
#include "steward/alloc.h"

#define BOX_MAX (1u << 20)
#define TRACKS_MAX 4

typedef struct track {
    uint32_t id;
    uint32_t timescale;
    bool video, audio;
    uint32_t default_duration; /* trex */
    bool started;
    uint64_t first, end; /* decode times of the committed fragments */
    uint64_t pending_end;
    bool pending;
} track;

typedef struct probe {
    track t[TRACKS_MAX];
    unsigned nt;
    relay_mp4_info *out;
} probe;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Iterate the child boxes of [p, end): calls @fn with each box's type,
 * payload and length. Stops at the first malformed header. */
typedef void (*box_fn)(probe *pr, uint32_t type, const uint8_t *p, size_t len, void *ud);

static void children(probe *pr, const uint8_t *p, size_t len, box_fn fn, void *ud)
{
    size_t off = 0;
    while (len - off >= 8) {
        uint64_t size = be32(p + off);
        uint32_t type = be32(p + off + 4);
        size_t hdr = 8;
        if (size == 1) {
            if (len - off < 16)
                return;
            size = be64(p + off + 8);
            hdr = 16;
        } else if (size == 0) {
            size = len - off;
        }
        if (size < hdr || size > len - off)
            return;
        fn(pr, type, p + off + hdr, (size_t)size - hdr, ud);
        off += (size_t)size;
    }
}

#define FOURCC(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

static track *track_of(probe *pr, uint32_t id)
{
    for (unsigned i = 0; i < pr->nt; i++)
        if (pr->t[i].id == id)
            return &pr->t[i];
    return NULL;
}

/* ---- moov ---- */

static void stsd_entry(probe *pr, track *t, const uint8_t *p, size_t len)
{
    /* stsd: version/flags, count, then the first sample entry box. */
    if (len < 16)
        return;
    uint32_t fmt = be32(p + 12);
    const char *name = NULL;
    if (fmt == FOURCC('a', 'v', 'c', '1') || fmt == FOURCC('a', 'v', 'c', '3'))
        name = "h264";
    else if (fmt == FOURCC('h', 'v', 'c', '1') || fmt == FOURCC('h', 'e', 'v', '1'))
        name = "hevc";
    else if (fmt == FOURCC('m', 'p', '4', 'a'))
        name = "aac";
    if (t->video) {
        snprintf(pr->out->video_codec, sizeof(pr->out->video_codec), "%s", name ? name : "other");
        /* Visual sample entry: 8 header + 6 reserved + 2 index + 16 + w, h. */
        if (len >= 8 + 8 + 8 + 16 + 4) {
            const uint8_t *e = p + 8 + 8;
            pr->out->width = (unsigned)(e[24] << 8 | e[25]);
            pr->out->height = (unsigned)(e[26] << 8 | e[27]);
        }
    } else if (t->audio) {
        snprintf(pr->out->audio_codec, sizeof(pr->out->audio_codec), "%s", name ? name : "other");
    }
}

static void trak_box(probe *pr, uint32_t type, const uint8_t *p, size_t len, void *ud)
{
    track *t = ud;
    if (type == FOURCC('m', 'd', 'i', 'a') || type == FOURCC('m', 'i', 'n', 'f') ||
        type == FOURCC('s', 't', 'b', 'l')) {
        children(pr, p, len, trak_box, t);
    } else if (type == FOURCC('t', 'k', 'h', 'd') && len >= 4) {
        size_t at = p[0] == 1 ? 4 + 16 : 4 + 8;
        if (len >= at + 4)
            t->id = be32(p + at);
    } else if (type == FOURCC('m', 'd', 'h', 'd') && len >= 4) {
        size_t at = p[0] == 1 ? 4 + 16 : 4 + 8;
        if (len >= at + 4)
            t->timescale = be32(p + at);
    } else if (type == FOURCC('h', 'd', 'l', 'r') && len >= 12) {
        t->video = be32(p + 8) == FOURCC('v', 'i', 'd', 'e');
        t->audio = be32(p + 8) == FOURCC('s', 'o', 'u', 'n');
    } else if (type == FOURCC('s', 't', 's', 'd')) {
        stsd_entry(pr, t, p, len);
    }
}

static void moov_box(probe *pr, uint32_t type, const uint8_t *p, size_t len, void *ud)
{
    (void)ud;
    if (type == FOURCC('t', 'r', 'a', 'k') && pr->nt < TRACKS_MAX) {
        track *t = &pr->t[pr->nt];
        memset(t, 0, sizeof(*t));
        /* hdlr comes after tkhd/mdhd but stsd needs it: two passes. */
        children(pr, p, len, trak_box, t);
        children(pr, p, len, trak_box, t);
        pr->nt++;
    } else if (type == FOURCC('m', 'v', 'e', 'x')) {
        children(pr, p, len, moov_box, NULL);
    } else if (type == FOURCC('t', 'r', 'e', 'x') && len >= 16) {
        track *t = track_of(pr, be32(p + 4));
        if (t != NULL)
            t->default_duration = be32(p + 12);
    }
}

/* ---- moof ---- */

typedef struct traf_state {
    track *t;
    uint32_t default_duration;
    bool has_tfdt;
    uint64_t tfdt;
    uint64_t dur;
} traf_state;

static void traf_box(probe *pr, uint32_t type, const uint8_t *p, size_t len, void *ud)
{
    traf_state *s = ud;
    if (type == FOURCC('t', 'f', 'h', 'd') && len >= 8) {
        uint32_t flags = be32(p) & 0xffffff;
        s->t = track_of(pr, be32(p + 4));
        s->default_duration = s->t != NULL ? s->t->default_duration : 0;
        size_t at = 8;
        if (flags & 0x1)
            at += 8;
        if (flags & 0x2)
            at += 4;
        if ((flags & 0x8) && len >= at + 4)
            s->default_duration = be32(p + at);
    } else if (type == FOURCC('t', 'f', 'd', 't') && len >= 8) {
        s->has_tfdt = true;
        s->tfdt = p[0] == 1 && len >= 12 ? be64(p + 4) : be32(p + 4);
    } else if (type == FOURCC('t', 'r', 'u', 'n') && len >= 8) {
        uint32_t flags = be32(p) & 0xffffff;
        uint32_t count = be32(p + 4);
        size_t at = 8;
        if (flags & 0x1)
            at += 4;
        if (flags & 0x4)
            at += 4;
        size_t per = 0;
        per += (flags & 0x100) ? 4 : 0;
        per += (flags & 0x200) ? 4 : 0;
        per += (flags & 0x400) ? 4 : 0;
        per += (flags & 0x800) ? 4 : 0;
        if (!(flags & 0x100)) {
            s->dur += (uint64_t)count * s->default_duration;
            return;
        }
        for (uint32_t i = 0; i < count && at + 4 <= len; i++, at += per)
            s->dur += be32(p + at);
    }
}

static void moof_box(probe *pr, uint32_t type, const uint8_t *p, size_t len, void *ud)
{
    (void)ud;
    if (type != FOURCC('t', 'r', 'a', 'f'))
        return;
    traf_state s = {0};
    children(pr, p, len, traf_box, &s);
    if (s.t == NULL)
        return;
    uint64_t start = s.has_tfdt ? s.tfdt : (s.t->pending ? s.t->pending_end : s.t->end);
    if (!s.t->started && !s.t->pending) {
        s.t->first = start;
        s.t->end = start;
    }
    s.t->pending_end = start + s.dur;
    s.t->pending = true;
}

/* The media data after a moof arrived whole: its fragment counts. */
static void commit(probe *pr)
{
    bool any = false;
    for (unsigned i = 0; i < pr->nt; i++) {
        track *t = &pr->t[i];
        if (!t->pending)
            continue;
        t->end = t->pending_end;
        t->started = true;
        t->pending = false;
        any = true;
    }
    pr->out->fragments += any;
}

static int read_at(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        got += (size_t)n;
    }
    return 0;
}

int relay_mp4_probe(int fd, uint64_t size, relay_mp4_info *out)
{
    memset(out, 0, sizeof(*out));
    out->duration_ms = -1;
    probe pr = {.out = out};
    bool moov = false;
    uint64_t off = 0;
    uint8_t *buf = NULL;
    int rc = 0;
    while (off < size) {
        uint8_t h[16];
        if (size - off < 8) {
            out->cut = true;
            break;
        }
        rc = read_at(fd, h, size - off >= 16 ? 16 : 8, off);
        if (rc != 0)
            break;
        uint64_t bsize = be32(h);
        uint32_t type = be32(h + 4);
        size_t hdr = 8;
        if (bsize == 1) {
            if (size - off < 16) {
                out->cut = true;
                break;
            }
            bsize = be64(h + 8);
            hdr = 16;
        } else if (bsize == 0) {
            bsize = size - off;
        }
        if (bsize < hdr) {
            rc = -EINVAL;
            break;
        }
        if (bsize > size - off) {
            out->cut = true; /* the box was being written */
            break;
        }
        if ((type == FOURCC('m', 'o', 'o', 'v') || type == FOURCC('m', 'o', 'o', 'f')) &&
            bsize - hdr <= BOX_MAX) {
            size_t len = (size_t)(bsize - hdr);
            uint8_t *nb = stw_realloc(buf, len ? len : 1);
            if (nb == NULL) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
            rc = read_at(fd, buf, len, off + hdr);
            if (rc != 0)
                break;
            if (type == FOURCC('m', 'o', 'o', 'v')) {
                moov = true;
                children(&pr, buf, len, moov_box, NULL);
            } else {
                children(&pr, buf, len, moof_box, NULL);
            }
        } else if (type == FOURCC('m', 'd', 'a', 't')) {
            commit(&pr);
        }
        off += bsize;
    }
    stw_free(buf);
    if (rc == -ENODATA) {
        out->cut = true;
        rc = 0;
    }
    if (rc != 0)
        return rc;
    if (!moov)
        return -EINVAL;
    track *best = NULL;
    for (unsigned i = 0; i < pr.nt; i++)
        if (pr.t[i].started && pr.t[i].timescale > 0 && (best == NULL || pr.t[i].video))
            best = &pr.t[i];
    if (best != NULL && best->end >= best->first)
        out->duration_ms = (int64_t)((best->end - best->first) * 1000 / best->timescale);
    else
        out->duration_ms = 0;
    return 0;
}
