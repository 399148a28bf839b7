/*
 * MJPEG multipart parser on a bounded ring; see mjpeg.h for the model.
 *
 * Every search resumes where the previous one stopped (p->scan), so a
 * frame that arrives in many small reads is searched once, not once per
 * read: the cost of a frame is linear in its size.
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
#define MAX_LINE 256 /* a header or boundary line we look into */

enum state {
    LEARN,         /* no boundary yet: the first line that starts with "--" names it */
    SEEK_BOUNDARY, /* looking for "--BOUNDARY" */
    BOUNDARY_LINE, /* at "--BOUNDARY": the rest of its line */
    HEADERS,       /* part headers, one line at a time, up to the blank line */
    BODY,          /* the JPEG: by Content-Length, else up to the next boundary */
};

struct relay_mjpeg {
    stw_ring *ring;
    size_t max_frame;
    enum state state;
    char bnd[MAX_BOUNDARY + 3]; /* "--BOUNDARY"; "" while it is learned */
    size_t blen;
    bool bol;    /* the byte before the ring head ended a line (or there is none) */
    size_t scan; /* where the current search resumes, from the ring head */
    size_t line; /* HEADERS: where the current header line starts */
    long clen;   /* BODY: the part's Content-Length, -1 if none or not trusted */
    relay_mjpeg_stats stats;
    char chain[MAX_LINE + 1]; /* the last X-Steward-Relay-Chain value */
};

static void set_boundary(relay_mjpeg *p, const char *b, size_t n)
{
    p->blen = (size_t)snprintf(p->bnd, sizeof(p->bnd), "--%.*s", (int)n, b);
}

int relay_mjpeg_new(const char *boundary, size_t max_frame, relay_mjpeg **out)
{
    if (max_frame == 0)
        return -EINVAL;
    size_t blen = 0;
    if (boundary != NULL) {
        if (strncmp(boundary, "--", 2) == 0)
            boundary += 2;
        blen = strlen(boundary);
        if (blen == 0 || blen > MAX_BOUNDARY)
            return -EINVAL;
    }
    relay_mjpeg *p = stw_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    int rc = stw_ring_new(2 * max_frame + MAX_PART_HEADERS, &p->ring);
    if (rc != 0) {
        stw_free(p);
        return rc;
    }
    p->max_frame = max_frame;
    if (boundary != NULL)
        set_boundary(p, boundary, blen);
    p->state = boundary != NULL ? SEEK_BOUNDARY : LEARN;
    p->bol = true;
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
    p->state = p->blen > 0 ? SEEK_BOUNDARY : LEARN;
    p->bol = true;
    p->scan = 0;
}

void relay_mjpeg_get_stats(const relay_mjpeg *p, relay_mjpeg_stats *out)
{
    *out = p->stats;
}

const char *relay_mjpeg_get_boundary(const relay_mjpeg *p)
{
    return p->blen > 0 ? p->bnd + 2 : NULL;
}

/* Consume @n bytes from the head, remembering whether they ended a line.
 * Every search restarts at the new head. */
static void take(relay_mjpeg *p, size_t n)
{
    if (n == 0)
        return;
    uint8_t last;
    stw_ring_peek(p->ring, n - 1, &last, 1);
    p->bol = last == '\n';
    stw_ring_consume(p->ring, n);
    p->scan = 0;
}

static void drop(relay_mjpeg *p, size_t n)
{
    p->stats.garbage_bytes += n;
    take(p, n);
}

/* stw_ring_find, counting the bytes it examined: up to the end of a
 * match, or to the end of the data. */
static ssize_t find(relay_mjpeg *p, size_t from, const void *needle, size_t nlen)
{
    size_t have = stw_ring_len(p->ring);
    ssize_t at = stw_ring_find(p->ring, from, needle, nlen);
    size_t end = at >= 0 ? (size_t)at + nlen : have;
    p->stats.scanned += end > from ? end - from : 0;
    return at;
}

static int byte_at(const relay_mjpeg *p, size_t off)
{
    uint8_t b;
    return stw_ring_peek(p->ring, off, &b, 1) == 1 ? b : -1;
}

/* The next delimiter from p->scan on: "--BOUNDARY" at the start of a line
 * (after LF or CRLF), or followed by a line break — a camera that
 * restarted in the middle of a frame sends its next boundary line without
 * ending the cut one. Returns its offset, or -ENOENT with p->scan moved to
 * where the next search must start. */
static ssize_t find_delim(relay_mjpeg *p)
{
    size_t have = stw_ring_len(p->ring);
    for (;;) {
        ssize_t at = find(p, p->scan, p->bnd, p->blen);
        if (at < 0) {
            /* The tail may hold the first bytes of the next one. */
            if (have >= p->blen && have - p->blen + 1 > p->scan)
                p->scan = have - p->blen + 1;
            return -ENOENT;
        }
        size_t a = (size_t)at;
        bool line_start = a == 0 ? p->bol : byte_at(p, a - 1) == '\n';
        int next = byte_at(p, a + p->blen);
        if (line_start || next == '\r' || next == '\n') {
            p->scan = a;
            return at;
        }
        if (next < 0) {
            /* Decided by the next byte, not here yet. */
            p->scan = a;
            return -ENOENT;
        }
        p->scan = a + 1;
    }
}

/* A JPEG starts with FF D8 and, once trailing line breaks are removed,
 * ends with FF D9. */
static bool jpeg_at(const relay_mjpeg *p, size_t n)
{
    uint8_t head[2], tail[2];
    return n >= 4 && stw_ring_peek(p->ring, 0, head, 2) == 2 && head[0] == 0xFF &&
           head[1] == 0xD8 && stw_ring_peek(p->ring, n - 2, tail, 2) == 2 && tail[0] == 0xFF &&
           tail[1] == 0xD9;
}

/* Take @n bytes from the ring head as a frame (if they are a JPEG) and
 * consume them. Returns 1 for a frame handed out, 0 for a dropped part,
 * or the callback's / allocation error. */
static int emit(relay_mjpeg *p, size_t n, relay_mjpeg_frame_fn fn, void *ud)
{
    size_t end = n;
    /* Line breaks before the next boundary are not JPEG data. */
    while (end > 0) {
        int c = byte_at(p, end - 1);
        if (c != '\r' && c != '\n')
            break;
        end--;
    }
    if (!jpeg_at(p, end)) {
        take(p, end);
        p->stats.bad_parts++;
        return 0;
    }
    stw_buf *b = NULL;
    int rc = stw_buf_new(end, &b);
    if (rc != 0) {
        take(p, end);
        return rc;
    }
    stw_ring_peek(p->ring, 0, stw_buf_data(b), end);
    take(p, end);
    p->stats.frames++;
    rc = fn(ud, b);
    return rc < 0 ? rc : 1;
}

/* Content-Length from one header line of @n bytes at @off (no line
 * break); -1 if it is another header, -2 if the value is unparsable. */
static long header_length(const relay_mjpeg *p, size_t off, size_t n)
{
    char h[MAX_LINE + 1];
    if (n > MAX_LINE)
        return -1;
    stw_ring_peek(p->ring, off, h, n);
    h[n] = '\0';
    if (strncasecmp(h, "Content-Length:", 15) != 0)
        return -1;
    char *end;
    const char *v = h + 15;
    while (*v == ' ' || *v == '\t')
        v++;
    long len = strtol(v, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    return (end != v && *end == '\0' && len >= 0) ? len : -2;
}

#define CHAIN_HEADER "X-Steward-Relay-Chain:"

/* Keep the value of a chain header line of @n bytes at @off. */
static void header_chain(relay_mjpeg *p, size_t off, size_t n)
{
    size_t hl = sizeof(CHAIN_HEADER) - 1;
    char h[MAX_LINE + 1];
    if (n > MAX_LINE || n < hl)
        return;
    stw_ring_peek(p->ring, off, h, n);
    h[n] = '\0';
    if (strncasecmp(h, CHAIN_HEADER, hl) != 0)
        return;
    const char *v = h + hl;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vn = strlen(v);
    while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t' || v[vn - 1] == '\r'))
        vn--;
    memcpy(p->chain, v, vn);
    p->chain[vn] = '\0';
}

const char *relay_mjpeg_chain(const relay_mjpeg *p)
{
    return p->chain;
}

/* The boundary is not known: look for the first line that starts with
 * "--" and take the rest of it as the boundary. Lines before it are
 * garbage. */
static int step_learn(relay_mjpeg *p)
{
    size_t have = stw_ring_len(p->ring);
    if (!p->bol || byte_at(p, 0) != '-' || (have >= 2 && byte_at(p, 1) != '-')) {
        if (have == 0 || (p->bol && have < 2 && byte_at(p, 0) == '-'))
            return 0;
        ssize_t eol = find(p, p->scan, "\n", 1);
        size_t n = eol >= 0 ? (size_t)eol + 1 : have;
        drop(p, n);
        return 1;
    }
    ssize_t eol = find(p, p->scan, "\n", 1);
    if (eol < 0) {
        p->scan = have;
        if (have <= 2 + MAX_BOUNDARY + MAX_LINE)
            return 0;
        drop(p, have);
        return 1;
    }
    size_t n = (size_t)eol;
    char line[2 + MAX_BOUNDARY + MAX_LINE + 1];
    size_t len = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
    stw_ring_peek(p->ring, 0, line, len);
    while (len > 2 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    bool ok = len > 2 && len <= 2 + MAX_BOUNDARY && n < sizeof(line) - 1;
    for (size_t i = 2; ok && i < len; i++)
        ok = (unsigned char)line[i] > ' ' && (unsigned char)line[i] < 0x7F;
    if (!ok) {
        drop(p, n + 1);
        return 1;
    }
    set_boundary(p, line + 2, len - 2);
    p->state = SEEK_BOUNDARY;
    p->scan = 0;
    return 1;
}

/* One step of the state machine. Returns 1 if it made progress, 0 if it
 * needs more bytes, or an error from emit(). */
static int step(relay_mjpeg *p, relay_mjpeg_frame_fn fn, void *ud, int *frames)
{
    size_t have = stw_ring_len(p->ring);
    switch (p->state) {
    case LEARN:
        return step_learn(p);
    case SEEK_BOUNDARY: {
        ssize_t at = find_delim(p);
        if (at < 0) {
            /* Keep only what may still become a boundary, with the line
             * break that may come before it. */
            if (p->scan > 2) {
                drop(p, p->scan - 2);
                /* What is kept was searched: wait for more bytes rather
                 * than search it again (that doubled the work per read,
                 * past the fuzzer's bound, with a long boundary). */
                p->scan = 2;
                return 0;
            }
            return 0;
        }
        size_t a = (size_t)at, crlf = 0;
        /* The line break just before the boundary belongs to it. */
        if (a >= 1 && byte_at(p, a - 1) == '\n')
            crlf = a >= 2 && byte_at(p, a - 2) == '\r' ? 2 : 1;
        if (a > crlf) {
            p->stats.garbage_bytes += a - crlf;
            p->stats.resyncs++;
        }
        take(p, a);
        p->state = BOUNDARY_LINE;
        return 1;
    }
    case BOUNDARY_LINE: {
        if (p->scan < p->blen)
            p->scan = p->blen;
        ssize_t eol = find(p, p->scan, "\n", 1);
        if (eol < 0) {
            p->scan = have;
            if (have > p->blen + MAX_LINE) {
                /* Not a boundary line after all. */
                drop(p, p->blen);
                p->state = SEEK_BOUNDARY;
                p->stats.resyncs++;
                return 1;
            }
            return 0;
        }
        /* "--BOUNDARY--" closes the multipart body; a camera may start
         * another one, so keep looking. */
        bool close = byte_at(p, p->blen) == '-' && byte_at(p, p->blen + 1) == '-';
        take(p, (size_t)eol + 1);
        p->state = close ? SEEK_BOUNDARY : HEADERS;
        p->line = 0;
        p->clen = -1;
        return 1;
    }
    case HEADERS: {
        /* A JPEG right after the boundary line: the part has no headers
         * and no blank line. */
        if (byte_at(p, p->line) == 0xFF && byte_at(p, p->line + 1) == 0xD8) {
            take(p, p->line);
            p->state = BODY;
            return 1;
        }
        if (p->scan < p->line)
            p->scan = p->line;
        ssize_t eol = find(p, p->scan, "\n", 1);
        if (eol < 0 || (size_t)eol > MAX_PART_HEADERS) {
            p->scan = have;
            if (have > MAX_PART_HEADERS) {
                /* Headers that never end: not a part we can use. */
                p->stats.bad_parts++;
                p->stats.resyncs++;
                drop(p, p->line);
                p->state = SEEK_BOUNDARY;
                return 1;
            }
            return 0;
        }
        size_t n = (size_t)eol - p->line;
        if (n > 0 && byte_at(p, (size_t)eol - 1) == '\r')
            n--;
        if (n == 0) {
            take(p, (size_t)eol + 1);
            if (p->clen > (long)p->max_frame) {
                /* Larger than any frame we accept: its bytes are
                 * skipped on the way to the next boundary. */
                p->stats.oversize++;
                p->state = SEEK_BOUNDARY;
            } else {
                p->state = BODY;
            }
            return 1;
        }
        long len = header_length(p, p->line, n);
        if (len != -1)
            p->clen = len;
        else
            header_chain(p, p->line, n);
        p->line = (size_t)eol + 1;
        p->scan = p->line;
        return 1;
    }
    case BODY: {
        ssize_t at = find_delim(p);
        size_t end;
        if (p->clen >= 0 && (at < 0 || at >= p->clen)) {
            size_t clen = (size_t)p->clen;
            if (have < clen)
                return 0;
            if (!jpeg_at(p, clen)) {
                /* A wrong Content-Length: the boundary says where the
                 * part ends. */
                p->stats.length_mismatch++;
                p->clen = -1;
                return 1;
            }
            end = clen;
        } else if (at >= 0) {
            if (p->clen >= 0)
                p->stats.length_mismatch++;
            end = (size_t)at;
        } else {
            if (have > p->max_frame + p->blen + 2) {
                /* Larger than any frame we accept: skip to the boundary. */
                p->stats.oversize++;
                drop(p, have - p->blen);
                p->state = SEEK_BOUNDARY;
                return 1;
            }
            return 0;
        }
        int rc = emit(p, end, fn, ud);
        p->state = SEEK_BOUNDARY;
        if (rc < 0)
            return rc;
        *frames += rc;
        return 1;
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
            drop(p, stw_ring_len(p->ring));
            p->state = p->blen > 0 ? SEEK_BOUNDARY : LEARN;
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
