/*
 * MJPEG multipart parser on a bounded ring; see mjpeg.h for the model.
 */
#include "mjpeg.h"

#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "steward/alloc.h"
#include "steward/ring.h"

#define MAX_BOUNDARY 70 /* RFC 2046 */
#define MAX_PART_HEADERS 4096

enum state {
    SEEK_BOUNDARY, /* looking for "--BOUNDARY" */
    HEADERS,       /* after the boundary line, up to the blank line */
    BODY_LENGTH,   /* Content-Length bytes of JPEG */
    BODY_SCAN,     /* JPEG up to the next boundary */
    SKIP,          /* an oversize part: drop `skip` bytes */
};

struct relay_mjpeg {
    stw_ring *ring;
    size_t max_frame;
    enum state state;
    size_t body_len;              /* BODY_LENGTH: bytes announced */
    size_t skip;                  /* SKIP: bytes still to drop */
    char delim[MAX_BOUNDARY + 5]; /* "\r\n--BOUNDARY" */
    size_t delim_len;
    char line[MAX_BOUNDARY + 5]; /* "--BOUNDARY\r\n": also found without the CRLF before it */
    size_t line_len;
    relay_mjpeg_stats stats;
};

int relay_mjpeg_new(const char *boundary, size_t max_frame, relay_mjpeg **out)
{
    if (boundary == NULL || max_frame == 0)
        return -EINVAL;
    if (strncmp(boundary, "--", 2) == 0)
        boundary += 2;
    size_t blen = strlen(boundary);
    if (blen == 0 || blen > MAX_BOUNDARY)
        return -EINVAL;
    relay_mjpeg *p = stw_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    int rc = stw_ring_new(2 * max_frame + MAX_PART_HEADERS, &p->ring);
    if (rc != 0) {
        stw_free(p);
        return rc;
    }
    p->max_frame = max_frame;
    p->delim_len = (size_t)snprintf(p->delim, sizeof(p->delim), "\r\n--%s", boundary);
    p->line_len = (size_t)snprintf(p->line, sizeof(p->line), "--%s\r\n", boundary);
    *out = p;
    return 0;
}

void relay_mjpeg_free(relay_mjpeg **p)
{
    if (p == NULL || *p == NULL)
        return;
    stw_ring_free(&(*p)->ring);
    stw_free(*p);
    *p = NULL;
}

void relay_mjpeg_reset(relay_mjpeg *p)
{
    stw_ring_clear(p->ring);
    p->state = SEEK_BOUNDARY;
}

void relay_mjpeg_get_stats(const relay_mjpeg *p, relay_mjpeg_stats *out)
{
    *out = p->stats;
}

/* The boundary line may come first in the body without the leading CRLF:
 * search for "--BOUNDARY" and let the CRLF before it be optional. */
static const char *dash_boundary(const relay_mjpeg *p, size_t *len)
{
    *len = p->delim_len - 2;
    return p->delim + 2;
}

/* Drop everything that cannot start a boundary, keeping a tail that might
 * be the first bytes of one. */
static void drop_garbage(relay_mjpeg *p, size_t keep_tail)
{
    size_t len = stw_ring_len(p->ring);
    if (len > keep_tail) {
        stw_ring_consume(p->ring, len - keep_tail);
        p->stats.garbage_bytes += len - keep_tail;
    }
}

/* stw_ring_find, counting the bytes it may examine. */
static ssize_t find(relay_mjpeg *p, size_t from, const void *needle, size_t nlen)
{
    size_t have = stw_ring_len(p->ring);
    p->stats.scanned += have > from ? have - from : 0;
    return stw_ring_find(p->ring, from, needle, nlen);
}

static bool looks_like_jpeg(const uint8_t *d, size_t n)
{
    return n >= 4 && d[0] == 0xFF && d[1] == 0xD8 && d[n - 2] == 0xFF && d[n - 1] == 0xD9;
}

/* Take @n bytes from the ring head as a frame (if they are a JPEG) and
 * consume them. Returns 1 for a frame handed out, 0 for a dropped part,
 * or the callback's / allocation error. */
static int emit(relay_mjpeg *p, size_t n, relay_mjpeg_frame_fn fn, void *ud)
{
    uint8_t head[2], tail[2];
    /* Trailing line breaks before the next boundary are not JPEG data. */
    while (n >= 2) {
        stw_ring_peek(p->ring, n - 2, tail, 2);
        if (tail[0] == '\r' && tail[1] == '\n')
            n -= 2;
        else
            break;
    }
    if (n < 4 || stw_ring_peek(p->ring, 0, head, 2) != 2 || head[0] != 0xFF || head[1] != 0xD8) {
        stw_ring_consume(p->ring, n);
        p->stats.bad_parts++;
        return 0;
    }
    stw_buf *b = NULL;
    int rc = stw_buf_new(n, &b);
    if (rc != 0) {
        stw_ring_consume(p->ring, n);
        return rc;
    }
    stw_ring_peek(p->ring, 0, stw_buf_data(b), n);
    stw_ring_consume(p->ring, n);
    if (!looks_like_jpeg(stw_buf_data(b), n)) {
        stw_buf_unref(&b);
        p->stats.bad_parts++;
        return 0;
    }
    p->stats.frames++;
    rc = fn(ud, b);
    return rc < 0 ? rc : 1;
}

/* Content-Length from the part headers in the first @hlen ring bytes;
 * -1 if absent or unparsable. */
static long part_length(const relay_mjpeg *p, size_t hlen)
{
    char h[MAX_PART_HEADERS + 1];
    size_t n = stw_ring_peek(p->ring, 0, h, hlen < MAX_PART_HEADERS ? hlen : MAX_PART_HEADERS);
    h[n] = '\0';
    for (char *line = h; line != NULL && *line;) {
        char *next = strstr(line, "\r\n");
        if (next != NULL)
            *next = '\0';
        if (strncasecmp(line, "Content-Length:", 15) == 0) {
            char *end;
            const char *v = line + 15;
            while (*v == ' ' || *v == '\t')
                v++;
            long len = strtol(v, &end, 10);
            while (*end == ' ' || *end == '\t')
                end++;
            return (end != v && *end == '\0' && len >= 0) ? len : -1;
        }
        line = next != NULL ? next + 2 : NULL;
    }
    return -1;
}

/* Where the current part ends: at the next "\r\n--BOUNDARY", or earlier at
 * a "--BOUNDARY\r\n" that comes without its CRLF — a camera that restarted
 * in the middle of a frame. -ENOENT if neither is in the ring yet. */
static ssize_t part_end(relay_mjpeg *p)
{
    ssize_t end = find(p, 0, p->delim, p->delim_len);
    ssize_t cut = find(p, 0, p->line, p->line_len);
    /* The proper delimiter's own "--BOUNDARY\r\n" lies at end + 2. */
    if (cut >= 0 && (end < 0 || cut < end + 2))
        return cut;
    return end;
}

/* One step of the state machine. Returns 1 if it made progress, 0 if it
 * needs more bytes, or an error from emit(). */
static int step(relay_mjpeg *p, relay_mjpeg_frame_fn fn, void *ud, int *frames)
{
    size_t blen;
    const char *bnd = dash_boundary(p, &blen);
    size_t have = stw_ring_len(p->ring);
    switch (p->state) {
    case SEEK_BOUNDARY: {
        ssize_t at = find(p, 0, bnd, blen);
        if (at < 0) {
            /* Keep what could be the start of "\r\n--BOUNDARY". */
            drop_garbage(p, blen + 1);
            return 0;
        }
        if (at > 0) {
            /* A CRLF just before the boundary is part of it, not garbage. */
            size_t skip = (size_t)at;
            uint8_t crlf[2];
            if (skip >= 2 && stw_ring_peek(p->ring, skip - 2, crlf, 2) == 2 && crlf[0] == '\r' &&
                crlf[1] == '\n')
                skip -= 2, stw_ring_consume(p->ring, 2);
            p->stats.garbage_bytes += skip;
            stw_ring_consume(p->ring, skip);
            if (skip > 0)
                p->stats.resyncs++;
        }
        /* The rest of the boundary line: "--" (the end), or CRLF. */
        ssize_t eol = find(p, blen, "\r\n", 2);
        if (eol < 0) {
            if (have > blen + 256) {
                stw_ring_consume(p->ring, blen);
                p->stats.resyncs++;
                return 1;
            }
            return 0;
        }
        stw_ring_consume(p->ring, (size_t)eol + 2);
        p->state = HEADERS;
        return 1;
    }
    case HEADERS: {
        ssize_t end = find(p, 0, "\r\n\r\n", 4);
        size_t hlen;
        if (end < 0) {
            /* No part headers at all: the blank line comes at once. */
            uint8_t two[2];
            if (stw_ring_peek(p->ring, 0, two, 2) == 2 && two[0] == '\r' && two[1] == '\n') {
                stw_ring_consume(p->ring, 2);
                p->state = BODY_SCAN;
                return 1;
            }
            if (have > MAX_PART_HEADERS) {
                p->stats.bad_parts++;
                p->stats.resyncs++;
                p->state = SEEK_BOUNDARY;
                return 1;
            }
            return 0;
        }
        hlen = (size_t)end;
        if (hlen > MAX_PART_HEADERS) {
            p->stats.bad_parts++;
            p->stats.resyncs++;
            stw_ring_consume(p->ring, hlen);
            p->state = SEEK_BOUNDARY;
            return 1;
        }
        long clen = part_length(p, hlen + 2);
        stw_ring_consume(p->ring, hlen + 4);
        if (clen > (long)p->max_frame) {
            p->stats.oversize++;
            p->skip = (size_t)clen;
            p->state = SKIP;
        } else if (clen >= 0) {
            p->body_len = (size_t)clen;
            p->state = BODY_LENGTH;
        } else {
            p->state = BODY_SCAN;
        }
        return 1;
    }
    case BODY_LENGTH: {
        /* A boundary inside the announced length means the camera cut the
         * frame short and started over. */
        ssize_t cut = part_end(p);
        if (cut >= 0 && (size_t)cut < p->body_len) {
            stw_ring_consume(p->ring, (size_t)cut);
            p->stats.bad_parts++;
            p->state = SEEK_BOUNDARY;
            return 1;
        }
        if (have < p->body_len)
            return 0;
        int rc = emit(p, p->body_len, fn, ud);
        p->state = SEEK_BOUNDARY;
        if (rc < 0)
            return rc;
        *frames += rc;
        return 1;
    }
    case BODY_SCAN: {
        ssize_t at = part_end(p);
        if (at < 0) {
            if (have > p->max_frame + p->delim_len) {
                /* Larger than any frame we accept: skip to the boundary. */
                p->stats.oversize++;
                drop_garbage(p, p->delim_len - 1);
                p->state = SEEK_BOUNDARY;
                return 1;
            }
            return 0;
        }
        int rc = emit(p, (size_t)at, fn, ud);
        p->state = SEEK_BOUNDARY;
        if (rc < 0)
            return rc;
        *frames += rc;
        return 1;
    }
    case SKIP: {
        size_t n = have < p->skip ? have : p->skip;
        stw_ring_consume(p->ring, n);
        p->skip -= n;
        p->stats.garbage_bytes += n;
        if (p->skip == 0)
            p->state = SEEK_BOUNDARY;
        return n > 0;
    }
    }
    return 0;
}

int relay_mjpeg_feed(relay_mjpeg *p, const void *data, size_t len, relay_mjpeg_frame_fn fn,
                     void *ud)
{
    const uint8_t *d = data;
    int frames = 0;
    while (len > 0) {
        size_t room = stw_ring_space(p->ring);
        size_t n = len < room ? len : room;
        if (n > 0 && stw_ring_write(p->ring, d, n) == 0) {
            d += n;
            len -= n;
        }
        int rc;
        while ((rc = step(p, fn, ud, &frames)) > 0)
            ;
        if (rc < 0)
            return rc;
        if (n == 0 && stw_ring_space(p->ring) == 0) {
            /* Full and no progress: nothing in here can become a frame. */
            p->stats.resyncs++;
            drop_garbage(p, 0);
            p->state = SEEK_BOUNDARY;
        }
    }
    return frames;
}

int relay_mjpeg_boundary(const char *ct, char *out, size_t len)
{
    if (ct == NULL || strncasecmp(ct, "multipart/", 10) != 0)
        return -EINVAL;
    const char *b = strcasestr(ct, "boundary=");
    if (b == NULL)
        return -EINVAL;
    b += 9;
    size_t n;
    if (*b == '"') {
        b++;
        const char *q = strchr(b, '"');
        if (q == NULL)
            return -EINVAL;
        n = (size_t)(q - b);
    } else {
        n = strcspn(b, "; \t\r\n");
    }
    if (n == 0)
        return -EINVAL;
    if (n >= len)
        return -ENOSPC;
    memcpy(out, b, n);
    out[n] = '\0';
    return 0;
}
