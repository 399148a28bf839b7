/*
 * src/relay/ts.c — MPEG-TS packetiser, keyframe finder and bounded chunk
 * fan-out for one input (see ts.h for the model).
 */
#include "ts.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "steward/alloc.h"
#include "steward/common.h"
#include "steward/fd.h"

#define SYNC 0x47
#define PID_NONE 0xffffu
#define RATE_SLOTS 6 /* one per second: the bit rate covers the last five */
#define AUDIO_KEY_NS 1000000000LL

typedef struct entry {
    stw_buf *buf;
    uint64_t seq;
    unsigned flags;
    int64_t ns; /* stw_now_ns() when it was published */
} entry;

typedef struct rate_slot {
    int64_t sec;
    uint64_t bytes;
} rate_slot;

struct relay_ts {
    size_t max_bytes;

    /* Writer-only state: touched by relay_ts_write/relay_ts_reset alone. */
    bool synced;
    uint8_t part[RELAY_TS_PACKET]; /* packet being completed while synced */
    size_t part_len;
    uint8_t hold[2 * RELAY_TS_PACKET]; /* last 376 bytes seen while unsynced */
    uint64_t unsynced;                 /* bytes seen since the sync was lost */
    uint8_t *stage;                    /* packets of the chunk being filled */
    size_t stage_len;
    unsigned stage_flags;
    uint16_t pmt_pid, video_pid, audio_pid;
    uint8_t video_type, audio_type;
    bool rai_seen;
    uint8_t pat[RELAY_TS_PACKET], pmt[RELAY_TS_PACKET];
    bool have_pat, have_pmt;
    int64_t last_audio_key_ns;
    uint64_t gop_bytes;

    pthread_mutex_t lock; /* guards everything below up to the readers */
    entry *ring;          /* retained chunks, oldest at head */
    size_t cap, head, count;
    size_t bytes;
    uint64_t next_seq; /* sequence number of the next chunk */
    uint64_t key_seq;  /* last keyframe chunk, if key_valid */
    bool key_valid;    /* key_seq is retained and of this epoch */
    uint64_t epoch;    /* bumped by relay_ts_reset */
    stw_buf *psi;      /* PAT + PMT of this epoch, or NULL */
    rate_slot rate[RATE_SLOTS];
    int64_t first_ns;

    pthread_mutex_t readers_lock;
    relay_ts_reader *readers; /* guarded by readers_lock */
    _Atomic uint64_t nreaders;

    _Atomic uint64_t bytes_in, packets, chunks, resyncs, garbage, keyframes, last_gop, dropped;
    _Atomic unsigned video_type_pub, audio_type_pub;
};

struct relay_ts_reader {
    relay_ts *ts;
    relay_ts_reader *next, *prev; /* guarded by ts->readers_lock */
    int efd;
    atomic_bool signalled; /* an eventfd wake-up is pending */
    /* Used by the reader's thread only. */
    uint64_t epoch;
    uint64_t next_seq; /* next chunk to hand out, once positioned */
    bool positioned;   /* false: waiting for a keyframe */
    bool behind;       /* fell behind: -ESPIPE until resynced */
    bool need_psi;
    uint64_t skipped;
    int64_t start_ns, floor_ns; /* relay_ts_feed_open_at: where to start, once */
    int64_t first_ns;           /* the first chunk's publication time */
};

const char *relay_ts_codec_name(unsigned t)
{
    switch (t) {
    case 0x01:
        return "mpeg1video";
    case 0x02:
        return "mpeg2video";
    case 0x10:
        return "mpeg4";
    case 0x1b:
        return "h264";
    case 0x24:
        return "hevc";
    case 0x03:
        return "mp2";
    case 0x04:
        return "mp3";
    case 0x0f:
        return "aac";
    case 0x11:
        return "aac_latm";
    case 0x81:
        return "ac3";
    case 0x87:
        return "eac3";
    default:
        return NULL;
    }
}

static bool is_video_type(unsigned t)
{
    return t == 0x01 || t == 0x02 || t == 0x10 || t == 0x1b || t == 0x24;
}

static bool is_audio_type(unsigned t)
{
    return t == 0x03 || t == 0x04 || t == 0x0f || t == 0x11 || t == 0x81 || t == 0x87;
}

int relay_ts_new(size_t max_bytes, relay_ts **out)
{
    relay_ts *ts = stw_calloc(1, sizeof(*ts));
    if (ts == NULL)
        return -ENOMEM;
    ts->stage = stw_malloc(RELAY_TS_CHUNK_MAX);
    if (ts->stage == NULL) {
        stw_free(ts);
        return -ENOMEM;
    }
    if (max_bytes == 0)
        max_bytes = RELAY_TS_MAX_BYTES_DEFAULT;
    if (max_bytes < 2 * RELAY_TS_CHUNK_MAX)
        max_bytes = 2 * RELAY_TS_CHUNK_MAX;
    ts->max_bytes = max_bytes;
    ts->synced = true;
    ts->pmt_pid = ts->video_pid = ts->audio_pid = PID_NONE;
    ts->next_seq = 1;
    ts->epoch = 1;
    pthread_mutex_init(&ts->lock, NULL);
    pthread_mutex_init(&ts->readers_lock, NULL);
    *out = ts;
    return 0;
}

static void drop_all_locked(relay_ts *ts)
{
    while (ts->count > 0) {
        stw_buf_unref(&ts->ring[ts->head].buf);
        ts->head = (ts->head + 1) % ts->cap;
        ts->count--;
    }
    ts->head = 0;
    ts->bytes = 0;
    ts->key_valid = false;
}

void relay_ts_free(relay_ts **tsp)
{
    if (tsp == NULL || *tsp == NULL)
        return;
    relay_ts *ts = *tsp;
    STW_BUG_ON(ts->readers != NULL);
    drop_all_locked(ts);
    stw_free(ts->ring);
    stw_buf_unref(&ts->psi);
    stw_free(ts->stage);
    pthread_mutex_destroy(&ts->lock);
    pthread_mutex_destroy(&ts->readers_lock);
    stw_free(ts);
    *tsp = NULL;
}

static void signal_reader(relay_ts_reader *r)
{
    if (atomic_exchange(&r->signalled, true))
        return;
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the fd is readable anyway. */
    ssize_t n = write(r->efd, &one, sizeof(one));
    (void)n;
}

static void wake_readers(relay_ts *ts)
{
    pthread_mutex_lock(&ts->readers_lock);
    for (relay_ts_reader *r = ts->readers; r != NULL; r = r->next)
        signal_reader(r);
    pthread_mutex_unlock(&ts->readers_lock);
}

static void rate_add_locked(relay_ts *ts, uint64_t n)
{
    int64_t now = stw_now_ns();
    if (ts->first_ns == 0)
        ts->first_ns = now;
    int64_t sec = now / 1000000000LL;
    rate_slot *s = &ts->rate[sec % RATE_SLOTS];
    if (s->sec != sec) {
        s->sec = sec;
        s->bytes = 0;
    }
    s->bytes += n;
}

/* Drop the oldest chunks until the retained bytes fit the cap, the ones
 * before the last keyframe first. */
static void trim_locked(relay_ts *ts)
{
    while (ts->bytes > ts->max_bytes && ts->count > 1) {
        entry *e = &ts->ring[ts->head];
        if (ts->key_valid && e->seq == ts->key_seq)
            ts->key_valid = false; /* the GOP alone is over the cap */
        ts->bytes -= stw_buf_size(e->buf);
        stw_buf_unref(&e->buf);
        ts->head = (ts->head + 1) % ts->cap;
        ts->count--;
    }
}

static int grow_locked(relay_ts *ts)
{
    size_t ncap = ts->cap ? ts->cap * 2 : 64;
    entry *n = stw_malloc(ncap * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < ts->count; i++)
        n[i] = ts->ring[(ts->head + i) % ts->cap];
    stw_free(ts->ring);
    ts->ring = n;
    ts->cap = ncap;
    ts->head = 0;
    return 0;
}

/* Publish the staged packets as one chunk. */
static int flush_stage(relay_ts *ts)
{
    if (ts->stage_len == 0)
        return 0;
    size_t len = ts->stage_len;
    unsigned flags = ts->stage_flags;
    ts->stage_len = 0;
    ts->stage_flags = 0;
    stw_buf *b = NULL;
    int rc = stw_buf_new(len, &b);
    pthread_mutex_lock(&ts->lock);
    rate_add_locked(ts, len);
    uint64_t seq = ts->next_seq++;
    if (rc == 0 && ts->count == ts->cap)
        rc = grow_locked(ts);
    if (rc != 0) {
        /* A hole in the sequence: readers past it see -ESPIPE, and the
         * keyframe it may have carried is gone. */
        drop_all_locked(ts);
        pthread_mutex_unlock(&ts->lock);
        stw_buf_unref(&b);
        atomic_fetch_add(&ts->dropped, 1);
        return rc;
    }
    memcpy(stw_buf_data(b), ts->stage, len);
    if (ts->count == 0)
        ts->head = 0;
    ts->ring[(ts->head + ts->count) % ts->cap] = (entry){b, seq, flags, stw_now_ns()};
    ts->count++;
    ts->bytes += len;
    if (flags & RELAY_TS_KEY) {
        ts->key_seq = seq;
        ts->key_valid = true;
    }
    trim_locked(ts);
    pthread_mutex_unlock(&ts->lock);
    atomic_fetch_add(&ts->chunks, 1);
    wake_readers(ts);
    return 0;
}

/* The PAT/PMT pair handed to new readers; rebuilt only when either table
 * changes, not for every repetition. */
static int update_psi(relay_ts *ts)
{
    if (!ts->have_pat || !ts->have_pmt)
        return 0;
    stw_buf *b = NULL;
    if (stw_buf_new(2 * RELAY_TS_PACKET, &b) != 0) {
        ts->have_pmt = false; /* the next repetition of the PMT retries */
        return -ENOMEM;
    }
    memcpy(stw_buf_data(b), ts->pat, RELAY_TS_PACKET);
    memcpy(stw_buf_data(b) + RELAY_TS_PACKET, ts->pmt, RELAY_TS_PACKET);
    pthread_mutex_lock(&ts->lock);
    stw_buf *old = ts->psi;
    ts->psi = b;
    pthread_mutex_unlock(&ts->lock);
    stw_buf_unref(&old);
    return 0;
}

/* Store @pkt as the cached table @dst; true if it differs in more than the
 * continuity counter. */
static bool store_table(uint8_t *dst, bool *have, const uint8_t *pkt)
{
    bool same = *have && memcmp(dst, pkt, 3) == 0 && (dst[3] & 0xf0) == (pkt[3] & 0xf0) &&
                memcmp(dst + 4, pkt + 4, RELAY_TS_PACKET - 4) == 0;
    if (same)
        return false;
    memcpy(dst, pkt, RELAY_TS_PACKET);
    *have = true;
    return true;
}

/* The section of a PSI packet that starts in it: [*sec, *sec + *len). */
static bool section_of(const uint8_t *p, size_t off, const uint8_t **sec, size_t *len)
{
    if (off >= RELAY_TS_PACKET)
        return false;
    off += 1 + (size_t)p[off]; /* pointer_field */
    if (off + 3 > RELAY_TS_PACKET)
        return false;
    size_t slen = (((size_t)p[off + 1] & 0x0f) << 8) | p[off + 2];
    if (slen < 9 || off + 3 + slen > RELAY_TS_PACKET)
        return false; /* sections spanning packets are not followed */
    *sec = p + off;
    *len = 3 + slen - 4; /* without the CRC */
    return true;
}

static int parse_pat(relay_ts *ts, const uint8_t *p, size_t off)
{
    const uint8_t *s;
    size_t len;
    if (!section_of(p, off, &s, &len) || s[0] != 0x00)
        return 0;
    for (size_t i = 8; i + 4 <= len; i += 4) {
        unsigned prog = ((unsigned)s[i] << 8) | s[i + 1];
        unsigned pid = (((unsigned)s[i + 2] & 0x1f) << 8) | s[i + 3];
        if (prog != 0) {
            if (pid != ts->pmt_pid)
                ts->have_pmt = false;
            ts->pmt_pid = (uint16_t)pid;
            return store_table(ts->pat, &ts->have_pat, p) ? update_psi(ts) : 0;
        }
    }
    return 0;
}

static int parse_pmt(relay_ts *ts, const uint8_t *p, size_t off)
{
    const uint8_t *s;
    size_t len;
    if (!section_of(p, off, &s, &len) || s[0] != 0x02)
        return 0;
    size_t i = 12 + ((((size_t)s[10] & 0x0f) << 8) | s[11]);
    uint16_t vpid = PID_NONE, apid = PID_NONE;
    uint8_t vtype = 0, atype = 0;
    while (i + 5 <= len) {
        uint8_t type = s[i];
        uint16_t pid = (uint16_t)((((unsigned)s[i + 1] & 0x1f) << 8) | s[i + 2]);
        size_t info = (((size_t)s[i + 3] & 0x0f) << 8) | s[i + 4];
        if (vpid == PID_NONE && is_video_type(type)) {
            vpid = pid;
            vtype = type;
        } else if (apid == PID_NONE && is_audio_type(type)) {
            apid = pid;
            atype = type;
        }
        i += 5 + info;
    }
    if (vpid != ts->video_pid)
        ts->rai_seen = false;
    ts->video_pid = vpid;
    ts->video_type = vtype;
    ts->audio_pid = apid;
    ts->audio_type = atype;
    atomic_store(&ts->video_type_pub, vtype);
    atomic_store(&ts->audio_type_pub, atype);
    return store_table(ts->pmt, &ts->have_pmt, p) ? update_psi(ts) : 0;
}

/* Does the PES that starts in this payload open with a keyframe NAL unit?
 * Only the first packet is looked at: encoders put the parameter sets
 * (SPS/VPS) or the IDR slice right after the PES header. */
static bool pes_starts_keyframe(const uint8_t *pl, size_t n, uint8_t type)
{
    if (n < 9 || pl[0] != 0 || pl[1] != 0 || pl[2] != 1)
        return false;
    size_t i = 9 + (size_t)pl[8];
    for (; i + 3 < n; i++) {
        if (pl[i] != 0 || pl[i + 1] != 0 || pl[i + 2] != 1)
            continue;
        uint8_t h = pl[i + 3];
        if (type == 0x1b) {
            unsigned t = h & 0x1f;
            if (t == 5 || t == 7)
                return true;
        } else if (type == 0x24) {
            unsigned t = (h >> 1) & 0x3f;
            if ((t >= 16 && t <= 21) || t == 32)
                return true;
        }
        i += 2;
    }
    return false;
}

static int take_packet(relay_ts *ts, const uint8_t *p)
{
    unsigned pid = (((unsigned)p[1] & 0x1f) << 8) | p[2];
    bool pusi = p[1] & 0x40;
    unsigned afc = (p[3] >> 4) & 3;
    size_t off = 4;
    bool rai = false;
    if (afc & 2) {
        size_t aflen = p[4];
        rai = aflen > 0 && (p[5] & 0x40);
        off = 5 + aflen;
    }
    bool payload = (afc & 1) && off < RELAY_TS_PACKET;
    atomic_fetch_add(&ts->packets, 1);

    bool key = false;
    int rc = 0;
    if (pid == 0 && pusi && payload) {
        rc = parse_pat(ts, p, off);
    } else if (pid == ts->pmt_pid && pusi && payload) {
        rc = parse_pmt(ts, p, off);
    } else if (pid == ts->video_pid) {
        if (rai)
            ts->rai_seen = true;
        key = rai || (!ts->rai_seen && pusi && payload &&
                      pes_starts_keyframe(p + off, RELAY_TS_PACKET - off, ts->video_type));
    } else if (pid == ts->audio_pid && ts->video_pid == PID_NONE && pusi && ts->have_pmt) {
        int64_t now = stw_now_ns();
        if (ts->last_audio_key_ns == 0 || now - ts->last_audio_key_ns >= AUDIO_KEY_NS) {
            ts->last_audio_key_ns = now;
            key = true;
        }
    }

    int r = 0;
    if (key) {
        atomic_fetch_add(&ts->keyframes, 1);
        atomic_store(&ts->last_gop, ts->gop_bytes);
        ts->gop_bytes = 0;
        r = flush_stage(ts);
        ts->stage_flags = RELAY_TS_KEY;
    } else if (ts->stage_len + RELAY_TS_PACKET > RELAY_TS_CHUNK_MAX) {
        r = flush_stage(ts);
    }
    memcpy(ts->stage + ts->stage_len, p, RELAY_TS_PACKET);
    ts->stage_len += RELAY_TS_PACKET;
    ts->gop_bytes += RELAY_TS_PACKET;
    return rc < 0 ? rc : r;
}

/* One byte while the sync is lost. A sync byte inside garbage is no proof:
 * a candidate is taken once the bytes 188 and 376 after it are sync bytes
 * too, and then its two packets are taken at once. */
static int unsynced_byte(relay_ts *ts, uint8_t c)
{
    const size_t span = 2 * RELAY_TS_PACKET;
    size_t at = ts->unsynced % span;
    bool found = ts->unsynced >= span && c == SYNC && ts->hold[at] == SYNC &&
                 ts->hold[(at + RELAY_TS_PACKET) % span] == SYNC;
    if (!found) {
        ts->hold[at] = c;
        ts->unsynced++;
        return 0;
    }
    uint8_t pkts[2 * RELAY_TS_PACKET];
    memcpy(pkts, ts->hold + at, span - at);
    memcpy(pkts + span - at, ts->hold, at);
    atomic_fetch_add(&ts->garbage, ts->unsynced - span);
    ts->unsynced = 0;
    ts->synced = true;
    ts->part[0] = c;
    ts->part_len = 1;
    int rc = take_packet(ts, pkts);
    int rc2 = take_packet(ts, pkts + RELAY_TS_PACKET);
    return rc < 0 ? rc : rc2;
}

int relay_ts_write(relay_ts *ts, const void *data, size_t len)
{
    const uint8_t *p = data;
    int rc = 0, r;
    atomic_fetch_add(&ts->bytes_in, len);
    while (len > 0) {
        if (!ts->synced) {
            r = unsynced_byte(ts, *p++);
            len--;
        } else if (ts->part_len == 0 && *p != SYNC) {
            ts->synced = false;
            atomic_fetch_add(&ts->resyncs, 1);
            continue;
        } else if (ts->part_len == 0 && len >= RELAY_TS_PACKET) {
            /* Whole packets straight from the input: the common case. */
            r = take_packet(ts, p);
            p += RELAY_TS_PACKET;
            len -= RELAY_TS_PACKET;
        } else {
            size_t n = RELAY_TS_PACKET - ts->part_len;
            if (n > len)
                n = len;
            memcpy(ts->part + ts->part_len, p, n);
            ts->part_len += n;
            p += n;
            len -= n;
            r = 0;
            if (ts->part_len == RELAY_TS_PACKET) {
                ts->part_len = 0;
                r = take_packet(ts, ts->part);
            }
        }
        if (r < 0)
            rc = r;
    }
    r = flush_stage(ts);
    return r < 0 ? r : rc;
}

void relay_ts_reset(relay_ts *ts)
{
    ts->synced = true;
    ts->part_len = 0;
    ts->unsynced = 0;
    ts->stage_len = 0;
    ts->stage_flags = 0;
    ts->pmt_pid = ts->video_pid = ts->audio_pid = PID_NONE;
    ts->video_type = ts->audio_type = 0;
    ts->rai_seen = false;
    ts->have_pat = ts->have_pmt = false;
    ts->last_audio_key_ns = 0;
    ts->gop_bytes = 0;
    atomic_store(&ts->video_type_pub, 0);
    atomic_store(&ts->audio_type_pub, 0);
    pthread_mutex_lock(&ts->lock);
    drop_all_locked(ts);
    stw_buf *old = ts->psi;
    ts->psi = NULL;
    ts->epoch++;
    pthread_mutex_unlock(&ts->lock);
    stw_buf_unref(&old);
}

void relay_ts_get_stats(relay_ts *ts, relay_ts_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->bytes_in = atomic_load(&ts->bytes_in);
    out->packets = atomic_load(&ts->packets);
    out->chunks = atomic_load(&ts->chunks);
    out->resyncs = atomic_load(&ts->resyncs);
    out->garbage_bytes = atomic_load(&ts->garbage);
    out->keyframes = atomic_load(&ts->keyframes);
    out->last_gop_bytes = atomic_load(&ts->last_gop);
    out->dropped_chunks = atomic_load(&ts->dropped);
    out->readers = atomic_load(&ts->nreaders);
    out->video_type = atomic_load(&ts->video_type_pub);
    out->audio_type = atomic_load(&ts->audio_type_pub);
    out->video_codec = relay_ts_codec_name(out->video_type);
    out->audio_codec = relay_ts_codec_name(out->audio_type);
    int64_t now = stw_now_ns();
    int64_t sec = now / 1000000000LL;
    pthread_mutex_lock(&ts->lock);
    out->retained_bytes = ts->bytes;
    out->retained_chunks = ts->count;
    out->keyframe_available = ts->key_valid && ts->psi != NULL;
    out->retained_ms = ts->count > 0 ? (uint64_t)(now - ts->ring[ts->head].ns) / 1000000 : 0;
    uint64_t bytes = 0;
    for (int i = 0; i < RATE_SLOTS; i++)
        if (ts->rate[i].sec > sec - (RATE_SLOTS - 1) && ts->rate[i].sec <= sec)
            bytes += ts->rate[i].bytes;
    int64_t from = ts->first_ns;
    pthread_mutex_unlock(&ts->lock);
    if (from != 0) {
        /* The window starts at the oldest slot still counted, or at the
         * first byte; under a second counts as a second. */
        int64_t start = (sec - (RATE_SLOTS - 1) + 1) * 1000000000LL;
        if (start < from)
            start = from;
        int64_t span = now - start;
        if (span < 1000000000LL)
            span = 1000000000LL;
        out->bitrate_bps = (uint64_t)((double)bytes * 8.0 * 1e9 / (double)span);
    }
}

int relay_ts_reader_new(relay_ts *ts, relay_ts_reader **out)
{
    relay_ts_reader *r = stw_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    int fd = stw_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC, "eventfd:relay-ts-reader");
    if (fd < 0) {
        stw_free(r);
        return fd;
    }
    r->ts = ts;
    r->efd = fd;
    r->need_psi = true;
    pthread_mutex_lock(&ts->readers_lock);
    r->next = ts->readers;
    if (ts->readers != NULL)
        ts->readers->prev = r;
    ts->readers = r;
    pthread_mutex_unlock(&ts->readers_lock);
    atomic_fetch_add(&ts->nreaders, 1);
    pthread_mutex_lock(&ts->lock);
    bool ready = ts->key_valid && ts->psi != NULL;
    pthread_mutex_unlock(&ts->lock);
    /* The retained keyframe is ready to be read now. */
    if (ready)
        signal_reader(r);
    *out = r;
    return 0;
}

void relay_ts_reader_free(relay_ts_reader **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    relay_ts_reader *r = *rp;
    relay_ts *ts = r->ts;
    pthread_mutex_lock(&ts->readers_lock);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        ts->readers = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    pthread_mutex_unlock(&ts->readers_lock);
    atomic_fetch_sub(&ts->nreaders, 1);
    stw_fd_close(&r->efd);
    stw_free(r);
    *rp = NULL;
}

int relay_ts_reader_fd(const relay_ts_reader *r)
{
    return r->efd;
}

uint64_t relay_ts_reader_skipped(const relay_ts_reader *r)
{
    return r->skipped;
}

void relay_ts_reader_resync(relay_ts_reader *r)
{
    r->positioned = false;
    r->behind = false;
}

/* For a reader of relay_ts_feed_open_at: the newest retained keyframe
 * chunk published at or before @start_ns and not before @floor_ns, else
 * the oldest one after @start_ns; 0 if there is none. */
static uint64_t key_at_locked(relay_ts *ts, int64_t start_ns, int64_t floor_ns, int64_t *ns)
{
    uint64_t before = 0, after = 0;
    int64_t before_ns = 0, after_ns = 0;
    for (size_t i = 0; i < ts->count; i++) {
        const entry *e = &ts->ring[(ts->head + i) % ts->cap];
        if (!(e->flags & RELAY_TS_KEY) || e->ns < floor_ns)
            continue;
        if (e->ns <= start_ns) {
            before = e->seq;
            before_ns = e->ns;
        } else if (after == 0) {
            after = e->seq;
            after_ns = e->ns;
        }
    }
    if (ns != NULL)
        *ns = before != 0 ? before_ns : after_ns;
    return before != 0 ? before : after;
}

int64_t relay_ts_key_time(relay_ts *ts, int64_t start_ns, int64_t floor_ns)
{
    int64_t ns = 0;
    pthread_mutex_lock(&ts->lock);
    key_at_locked(ts, start_ns, floor_ns, &ns);
    pthread_mutex_unlock(&ts->lock);
    return ns;
}

int relay_ts_read(relay_ts_reader *r, relay_ts_chunk *out, size_t max, size_t *n)
{
    relay_ts *ts = r->ts;
    *n = 0;
    if (max == 0)
        return 0;
    /* Consume the wake-up first: a chunk published from here on signals
     * again, so none is missed. */
    atomic_store(&r->signalled, false);
    uint64_t v;
    ssize_t rd = read(r->efd, &v, sizeof(v));
    (void)rd;

    size_t got = 0;
    bool more = false;
    int rc = 0;
    pthread_mutex_lock(&ts->lock);
    if (r->epoch != ts->epoch) {
        /* A new reader, or the source restarted since the last read. */
        r->epoch = ts->epoch;
        r->positioned = false;
        r->behind = false;
        r->need_psi = true;
    }
    uint64_t oldest = ts->count > 0 ? ts->ring[ts->head].seq : ts->next_seq;
    if (!r->positioned) {
        uint64_t at = r->start_ns != 0 && r->need_psi && ts->psi != NULL
                          ? key_at_locked(ts, r->start_ns, r->floor_ns, NULL)
                          : 0;
        bool ready = at != 0 || (ts->key_valid && ts->key_seq >= r->next_seq &&
                                 (!r->need_psi || ts->psi != NULL));
        if (ready) {
            uint64_t key = at != 0 ? at : ts->key_seq;
            if (r->need_psi) {
                out[got++] = (relay_ts_chunk){stw_buf_ref(ts->psi), 0, RELAY_TS_PSI};
                r->need_psi = false;
            } else if (r->next_seq != 0) {
                r->skipped += key - r->next_seq; /* jumped to the keyframe */
            }
            r->next_seq = key;
            r->positioned = true;
            r->start_ns = 0;
            if (r->first_ns == 0)
                r->first_ns = ts->ring[(ts->head + (size_t)(key - oldest)) % ts->cap].ns;
        }
    } else if (r->behind || r->next_seq < oldest) {
        /* What was dropped unread counts now; the rest of the jump to a
         * keyframe counts when the resynced reader gets there. */
        if (r->next_seq < oldest) {
            r->skipped += oldest - r->next_seq;
            r->next_seq = oldest;
        }
        r->behind = true;
        rc = -ESPIPE;
    }
    if (r->positioned && rc == 0) {
        while (got < max && r->next_seq < ts->next_seq) {
            size_t i = (size_t)(r->next_seq - oldest);
            if (i >= ts->count)
                break; /* a dropped chunk at the tail: nothing yet */
            entry *e = &ts->ring[(ts->head + i) % ts->cap];
            out[got++] = (relay_ts_chunk){stw_buf_ref(e->buf), e->seq, e->flags};
            r->next_seq++;
        }
        more = r->next_seq < oldest + ts->count;
    }
    pthread_mutex_unlock(&ts->lock);
    *n = got;
    if (more)
        signal_reader(r);
    return rc;
}

/* ---- feeding a pipe ---- */

int relay_ts_feed_open(relay_ts *ts, relay_ts_feed *f)
{
    *f = (relay_ts_feed){0};
    return relay_ts_reader_new(ts, &f->reader);
}

int relay_ts_feed_open_at(relay_ts *ts, relay_ts_feed *f, int64_t start_ns, int64_t floor_ns)
{
    int rc = relay_ts_feed_open(ts, f);
    if (rc == 0) {
        f->reader->start_ns = start_ns > 0 ? start_ns : 1;
        f->reader->floor_ns = floor_ns;
        signal_reader(f->reader);
    }
    return rc;
}

int64_t relay_ts_reader_first_ns(const relay_ts_reader *r)
{
    return r->first_ns;
}

static void feed_drop(relay_ts_feed *f)
{
    if (f->has_pending)
        stw_buf_unref(&f->pending.buf);
    f->has_pending = false;
    f->off = 0;
}

void relay_ts_feed_close(relay_ts_feed *f)
{
    feed_drop(f);
    relay_ts_reader_free(&f->reader);
}

long relay_ts_feed_write(relay_ts_feed *f, int fd, bool *idle)
{
    long written = 0;
    *idle = false;
    /* A fast reader must not keep its thread from its other work. */
    while (written < (1L << 20)) {
        if (!f->has_pending) {
            size_t n = 0;
            int rc = f->reader != NULL ? relay_ts_read(f->reader, &f->pending, 1, &n) : 0;
            f->skipped = f->reader != NULL ? relay_ts_reader_skipped(f->reader) : f->skipped;
            if (rc == -ESPIPE) {
                relay_ts_reader_resync(f->reader);
                continue;
            }
            if (rc != 0 || n == 0) {
                *idle = true;
                return written;
            }
            f->has_pending = true;
            f->off = 0;
        }
        const uint8_t *data = stw_buf_data(f->pending.buf);
        size_t len = stw_buf_size(f->pending.buf);
        ssize_t w = write(fd, data + f->off, len - f->off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return written;
            int err = -errno;
            feed_drop(f);
            return err;
        }
        written += w;
        f->off += (size_t)w;
        if (f->off == len)
            feed_drop(f);
    }
    return written;
}
