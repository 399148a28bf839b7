/*
 * src/relay/mp4.h — what a recorded segment holds, read from its
 * fragmented MP4 boxes; private to the relay.
 *
 * Model
 *   A segment is an ISO BMFF file written as ftyp, moov (no samples), then
 *   moof + mdat pairs (one per fragment, about a second each). Its
 *   playable duration is the decode time the last complete fragment of the
 *   video track reaches, minus where its first started: fragments are read
 *   from their moof's tfdt and trun (or the tfhd/trex defaults). A fragment
 *   whose mdat is cut short (kill -9, power loss, a full disk) does not
 *   count: the file plays up to the fragment before it.
 *
 *   Only box headers, moov and moof are read (each at most 1 MiB); media
 *   data is skipped with pread offsets, so a minute of video costs about a
 *   hundred small reads.
 */
#ifndef STW_RELAY_MP4_H
#define STW_RELAY_MP4_H

#include <stdbool.h>
#include <stdint.h>

typedef struct relay_mp4_info {
    int64_t duration_ms;  /* playable, -1 if unknown */
    char video_codec[8];  /* "h264", "hevc", "" */
    char audio_codec[8];  /* "aac", "" */
    unsigned width, height;
    unsigned fragments;   /* complete fragments */
    bool cut;             /* the file ends inside a box (not finalised) */
} relay_mp4_info;

/* Read @fd (borrowed, a regular file of @size bytes) into *@out. Returns 0,
 * -EINVAL when it is not a fragmented MP4 (no moov), or the read errno. */
int relay_mp4_probe(int fd, uint64_t size, relay_mp4_info *out);

#endif
