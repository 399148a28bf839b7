#include "steward/ring.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/ledger.h"

struct stw_ring {
    size_t cap;
    size_t head; /* index of the first byte of data */
    size_t len;  /* bytes of data, from head, wrapping at cap */
    uint8_t data[];
};

static pthread_once_t ring_kind_once = PTHREAD_ONCE_INIT;
static int ring_kind = -1;

static void ring_kind_init(void)
{
    ring_kind = stw_kind_register("ring");
}

/* The user kind, or a negative errno when the ledger has no room for it;
 * rings then live on as plain heap, which the ledger still sees. */
static int ring_kind_get(void)
{
    pthread_once(&ring_kind_once, ring_kind_init);
    return ring_kind;
}

/* Index of the byte @off positions after the head. Both terms are below
 * cap, so the sum cannot overflow for any capacity malloc could give. */
static size_t ring_index(const stw_ring *r, size_t off)
{
    size_t i = r->head + off;
    return i >= r->cap ? i - r->cap : i;
}

int stw_ring_new(size_t capacity, stw_ring **out)
{
    if (capacity == 0)
        return -EINVAL;
    if (capacity > SIZE_MAX / 2 - sizeof(stw_ring))
        return -ENOMEM;
    stw_ring *r = stw_malloc(sizeof(*r) + capacity);
    if (r == NULL)
        return -ENOMEM;
    r->cap = capacity;
    r->head = 0;
    r->len = 0;
    int kind = ring_kind_get();
    if (kind >= 0)
        STW_BUG_ON(stw_ledger_record(kind, (uintptr_t)r, capacity, "ring") == -EEXIST);
    *out = r;
    return 0;
}

void stw_ring_free(stw_ring **r)
{
    if (r == NULL || *r == NULL)
        return;
    int kind = ring_kind_get();
    if (kind >= 0)
        stw_ledger_release(kind, (uintptr_t)*r);
    stw_free(*r);
    *r = NULL;
}

size_t stw_ring_len(const stw_ring *r)
{
    return r->len;
}

size_t stw_ring_space(const stw_ring *r)
{
    return r->cap - r->len;
}

size_t stw_ring_capacity(const stw_ring *r)
{
    return r->cap;
}

int stw_ring_write(stw_ring *r, const void *data, size_t len)
{
    if (len > r->cap - r->len)
        return -ENOBUFS;
    const uint8_t *src = data;
    size_t tail = ring_index(r, r->len);
    size_t first = r->cap - tail;
    if (first > len)
        first = len;
    memcpy(r->data + tail, src, first);
    memcpy(r->data, src + first, len - first);
    r->len += len;
    return 0;
}

size_t stw_ring_peek(const stw_ring *r, size_t off, void *dst, size_t len)
{
    if (off >= r->len)
        return 0;
    if (len > r->len - off)
        len = r->len - off;
    uint8_t *out = dst;
    size_t start = ring_index(r, off);
    size_t first = r->cap - start;
    if (first > len)
        first = len;
    memcpy(out, r->data + start, first);
    memcpy(out + first, r->data, len - first);
    return len;
}

void stw_ring_consume(stw_ring *r, size_t len)
{
    STW_BUG_ON(len > r->len);
    r->len -= len;
    /* An empty ring restarts at index 0 so the next contiguous spans are
     * as long as the whole capacity. */
    r->head = r->len == 0 ? 0 : ring_index(r, len);
}

/* True if @needle matches the data starting @off bytes after the head;
 * the caller guarantees off + nlen <= len. */
static bool ring_match_at(const stw_ring *r, size_t off, const uint8_t *needle, size_t nlen)
{
    size_t start = ring_index(r, off);
    size_t first = r->cap - start;
    if (first >= nlen)
        return memcmp(r->data + start, needle, nlen) == 0;
    return memcmp(r->data + start, needle, first) == 0 &&
           memcmp(r->data, needle + first, nlen - first) == 0;
}

ssize_t stw_ring_find(const stw_ring *r, size_t from, const void *needle, size_t nlen)
{
    if (nlen == 0)
        return -EINVAL;
    if (nlen > r->len || from > r->len - nlen)
        return -ENOENT;
    const uint8_t *n = needle;
    size_t last = r->len - nlen; /* last offset where a match can start */
    size_t off = from;
    while (off <= last) {
        /* Jump to the next candidate first byte with memchr over the
         * contiguous part of the data that starts at @off. */
        size_t start = ring_index(r, off);
        size_t span = r->cap - start;
        if (span > last - off + 1)
            span = last - off + 1;
        const uint8_t *hit = memchr(r->data + start, n[0], span);
        if (hit == NULL) {
            off += span;
            continue;
        }
        off += (size_t)(hit - (r->data + start));
        if (ring_match_at(r, off, n, nlen))
            return (ssize_t)off;
        off++;
    }
    return -ENOENT;
}

size_t stw_ring_write_ptr(stw_ring *r, uint8_t **p)
{
    if (r->len == r->cap) {
        *p = NULL;
        return 0;
    }
    size_t tail = ring_index(r, r->len);
    *p = r->data + tail;
    /* Free space runs from the tail to the end of storage, or, once the
     * data has wrapped, from the tail up to the head. */
    return tail >= r->head ? r->cap - tail : r->head - tail;
}

void stw_ring_commit(stw_ring *r, size_t len)
{
    uint8_t *p;
    STW_BUG_ON(len > stw_ring_write_ptr(r, &p));
    r->len += len;
}

size_t stw_ring_read_ptr(const stw_ring *r, const uint8_t **p)
{
    if (r->len == 0) {
        *p = NULL;
        return 0;
    }
    *p = r->data + r->head;
    size_t first = r->cap - r->head;
    return first < r->len ? first : r->len;
}

ssize_t stw_ring_read_fd(stw_ring *r, int fd, size_t max)
{
    size_t space = r->cap - r->len;
    if (space == 0)
        return -ENOBUFS;
    if (max == 0 || max > space)
        max = space;
    if (max > SSIZE_MAX)
        max = SSIZE_MAX;
    size_t tail = ring_index(r, r->len);
    size_t first = r->cap - tail;
    if (first > max)
        first = max;
    struct iovec iov[2] = {
        {.iov_base = r->data + tail, .iov_len = first},
        {.iov_base = r->data, .iov_len = max - first},
    };
    ssize_t n;
    do
        n = readv(fd, iov, iov[1].iov_len > 0 ? 2 : 1);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    r->len += (size_t)n;
    return n;
}

void stw_ring_clear(stw_ring *r)
{
    r->len = 0;
    r->head = 0;
}
