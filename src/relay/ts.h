/*
 * relay/ts.h — one input's MPEG-TS stream, cut into packet-aligned chunks
 * and fanned out to any number of readers; private to the relay.
 *
 * Model
 *   One writer (the thread reading the ffmpeg child's stdout) hands in bytes
 *   in whatever pieces the pipe delivers (relay_ts_write). The writer side
 *   finds the 188-byte packets (in sync, every 188th byte must be 0x47;
 *   once it is not, bytes are dropped and counted as garbage until three
 *   sync bytes 188 apart are found), follows PAT -> PMT -> stream PIDs and
 *   types, keeps a copy of the latest PAT and PMT, and finds keyframe
 *   starts on the video PID: a random_access_indicator in the adaptation
 *   field or, for a stream that has never set one, a PES start whose first
 *   packet carries an H.264 IDR/SPS or H.265 IRAP/VPS NAL unit. A stream
 *   without video takes a keyframe at an audio PES start at most once a
 *   second. Only the first program of the PAT is followed, and only PAT and
 *   PMT sections that fit in one packet.
 *
 *   Complete packets are published as chunks: refcounted stw_bufs of at most
 *   RELAY_TS_CHUNK_MAX bytes, never splitting a packet, each with a sequence
 *   number (consecutive, from 1, never reused, not even across resets) and
 *   RELAY_TS_KEY when it starts with a keyframe. Every keyframe starts a new
 *   chunk; otherwise a chunk holds whatever one relay_ts_write() completed.
 *
 *   Retention is bounded by max_bytes (the bytes of the retained chunks):
 *   chunks older than the last keyframe are dropped first; if the current
 *   group of pictures alone exceeds the cap, its oldest chunks go too and no
 *   keyframe is available until the next one. The stream costs at most
 *   max_bytes of chunks, plus one chunk being filled, plus the PAT/PMT copy.
 *
 *   Readers pull (relay_ts_read). A new reader gets one RELAY_TS_PSI chunk
 *   (the cached PAT and PMT packets), then the chunks from the last retained
 *   keyframe on; without one it waits for the next keyframe. A reader that
 *   fell behind what is retained gets -ESPIPE and decides: resync
 *   (relay_ts_reader_resync: continue at the next keyframe it can reach) or
 *   give up. After relay_ts_reset() (the source restarted) every reader
 *   continues, without an error, with a fresh PAT/PMT and the next keyframe.
 *
 * Ownership
 *   relay_ts owns its retained chunks, its PAT/PMT copy and its reader
 *   list; each reader owns its eventfd. Chunks handed out are new
 *   references (transfer full). Readers must be freed before their stream.
 *
 * Threads
 *   relay_ts_write() and relay_ts_reset() belong to one writer thread.
 *   Each reader is used by one thread at a time (any thread, e.g. the
 *   libevent loop or a push thread). relay_ts_get_stats() and
 *   relay_ts_reader_new() may be called from any thread. A mutex guards the
 *   chunk list and is held only to append, drop or take references; the
 *   reader list has its own mutex, and waking a reader is one non-blocking
 *   eventfd write, done only when the reader has consumed its last wake-up.
 */
#ifndef STW_RELAY_TS_H
#define STW_RELAY_TS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "steward/buf.h"

#define RELAY_TS_PACKET 188
/* Largest chunk: the most whole packets that fit in 64 KiB. */
#define RELAY_TS_CHUNK_MAX (348 * RELAY_TS_PACKET)
#define RELAY_TS_MAX_BYTES_DEFAULT (8u << 20)

/* Chunk flags. */
#define RELAY_TS_KEY 0x1u /* the chunk's first packet starts a keyframe */
#define RELAY_TS_PSI 0x2u /* the cached PAT and PMT, sent to a reader first */

typedef struct relay_ts relay_ts;
typedef struct relay_ts_reader relay_ts_reader;

typedef struct relay_ts_chunk {
    stw_buf *buf;   /* a reference the receiver owns (transfer full) */
    uint64_t seq;   /* 0 for a RELAY_TS_PSI chunk */
    unsigned flags; /* RELAY_TS_KEY, RELAY_TS_PSI */
} relay_ts_chunk;

typedef struct relay_ts_stats {
    uint64_t bytes_in;       /* every byte given to relay_ts_write */
    uint64_t packets;        /* whole packets taken */
    uint64_t chunks;         /* chunks published */
    uint64_t resyncs;        /* times the packet sync was lost */
    uint64_t garbage_bytes;  /* bytes dropped outside packets */
    uint64_t keyframes;      /* keyframe starts found */
    uint64_t last_gop_bytes; /* bytes from the previous keyframe to the last one */
    uint64_t retained_bytes; /* bytes of the chunks held now */
    uint64_t retained_chunks;
    uint64_t dropped_chunks; /* chunks that could not be stored (no memory) */
    uint64_t bitrate_bps;    /* input bit rate over the last few seconds */
    uint64_t readers;
    unsigned video_type;     /* PMT stream_type of the video stream, 0 if none */
    unsigned audio_type;     /* PMT stream_type of the audio stream, 0 if none */
    const char *video_codec; /* "h264", "hevc", ... or NULL; static string */
    const char *audio_codec; /* "aac", "mp3", ... or NULL; static string */
    bool keyframe_available; /* a new reader would start right away */
    uint64_t retained_ms;    /* age of the oldest retained chunk */
} relay_ts_stats;

/* @max_bytes: retention cap; 0 means RELAY_TS_MAX_BYTES_DEFAULT, and it is
 * raised to at least two chunks. *@out is owned by the caller
 * (relay_ts_free). Returns 0 or -ENOMEM. */
int relay_ts_new(size_t max_bytes, relay_ts **out);

/* Free the stream and every chunk it retains; sets *@ts to NULL; accepts
 * NULL. Every reader must have been freed (STW_BUG otherwise). */
void relay_ts_free(relay_ts **ts);

/* Writer: take @len bytes (borrowed) of the source's output. Whole packets
 * are published before it returns; a partial packet waits for the next
 * call. Returns 0, or -ENOMEM when a chunk could not be stored (it is
 * counted in dropped_chunks and, since retained chunks never have a gap,
 * everything retained is dropped with it: positioned readers get -ESPIPE,
 * new ones wait for the next keyframe; the stream stays usable) or when
 * the PAT/PMT copy could not be made (the next PMT repetition retries). */
int relay_ts_write(relay_ts *ts, const void *data, size_t len);

/* Writer: the source restarted (new child, new continuity). Forget the
 * partial packet, the PAT/PMT, the PIDs and the retained chunks; every
 * reader continues with the new stream's PAT/PMT and first keyframe. */
void relay_ts_reset(relay_ts *ts);

/* Copy the counters into *@out (consistent enough for monitoring). */
void relay_ts_get_stats(relay_ts *ts, relay_ts_stats *out);

/* A new reader of @ts (borrowed; must outlive the reader). *@out is owned
 * by the caller (relay_ts_reader_free). Returns 0, -ENOMEM, or an eventfd
 * error. */
int relay_ts_reader_new(relay_ts *ts, relay_ts_reader **out);

/* Unlink and free the reader and its eventfd; sets *@r to NULL; accepts
 * NULL. */
void relay_ts_reader_free(relay_ts_reader **r);

/* The reader's eventfd (borrowed, non-blocking): readable once chunks were
 * published since the last relay_ts_read, or when that read left some
 * behind. relay_ts_read drains it; the caller only polls it. A wake-up may
 * find nothing to hand out (a reader still waiting for a keyframe). */
int relay_ts_reader_fd(const relay_ts_reader *r);

/*
 * Hand out up to @max next chunks into @out[0..*@n); each .buf is a new
 * reference the caller owns (transfer full) and must unref. *@n == 0 means
 * nothing yet (wait for the eventfd). If more remain after @max, the
 * eventfd stays readable. Returns 0, or -ESPIPE when the reader fell behind
 * what is retained (*@n == 0, and again on every read until
 * relay_ts_reader_resync; or free the reader).
 */
int relay_ts_read(relay_ts_reader *r, relay_ts_chunk *out, size_t max, size_t *n);

/* After -ESPIPE: continue at the next keyframe this reader can reach (the
 * last retained one if it lies ahead, else the next published). */
void relay_ts_reader_resync(relay_ts_reader *r);

/* Chunks this reader missed so far by falling behind: the ones dropped
 * before it read them, and, once resynced, the ones it jumped over to
 * reach a keyframe. */
uint64_t relay_ts_reader_skipped(const relay_ts_reader *r);

/* A reader that feeds a pipe (a child's stdin) without blocking: the
 * chunk being written is kept between calls, and a reader that fell
 * behind skips to the next keyframe (what it skipped is counted). Used by
 * one thread. */
typedef struct relay_ts_feed {
    relay_ts_reader *reader; /* owned; NULL while closed */
    relay_ts_chunk pending;  /* valid while has_pending */
    size_t off;              /* bytes of pending already written */
    bool has_pending;
    uint64_t skipped; /* relay_ts_reader_skipped() of the reader, as of the last read */
} relay_ts_feed;

/* Open @f (caller memory, any content) on @ts (borrowed, must outlive the
 * feed): a new reader, so the pipe starts with PAT/PMT and a keyframe.
 * Returns 0 or the error of relay_ts_reader_new (then @f is closed). */
int relay_ts_feed_open(relay_ts *ts, relay_ts_feed *f);

/* Open @f as relay_ts_feed_open does, but start back in time (a
 * recording's pre-roll): at the newest retained keyframe published at or
 * before @start_ns (stw_now_ns clock) and not before @floor_ns, else at
 * the oldest retained keyframe after @start_ns; with none retained, as
 * relay_ts_feed_open. Going back costs nothing: the chunks are the ones
 * the stream retains anyway (max_bytes). */
int relay_ts_feed_open_at(relay_ts *ts, relay_ts_feed *f, int64_t start_ns, int64_t floor_ns);

/* The publication time of the keyframe relay_ts_feed_open_at(@start_ns,
 * @floor_ns) would start at now; 0 if there is none. Any thread. */
int64_t relay_ts_key_time(relay_ts *ts, int64_t start_ns, int64_t floor_ns);

/* When (stw_now_ns clock) the first chunk this reader handed out after
 * its PAT/PMT was published; 0 before it was positioned. */
int64_t relay_ts_reader_first_ns(const relay_ts_reader *r);

/* Drop the pending chunk and free the reader. Accepts a closed feed. */
void relay_ts_feed_close(relay_ts_feed *f);

/* Write what the reader has to @fd (non-blocking) until it would block.
 * Returns the bytes written (>= 0), or a negative errno when @fd failed
 * (the pending chunk is dropped: the child is gone). *@idle is set when
 * nothing is left to write (wait on the reader's eventfd; otherwise wait
 * for @fd to be writable). */
long relay_ts_feed_write(relay_ts_feed *f, int fd, bool *idle);

/* Name of a PMT stream_type ("h264", "hevc", "aac", ...) or NULL. */
const char *relay_ts_codec_name(unsigned stream_type);

#endif
