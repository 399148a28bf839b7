/*
 * relay/ffmpeg.h — what the relay says to ffmpeg (validated URLs, argv
 * vectors) and what it reads back (stderr lines); private to the relay.
 * Nothing here starts a process, allocates or keeps state besides what the
 * caller passes in; only URL checks look at the file system (stat).
 *
 * Model
 *   A camera URL is untrusted text from the REST API. relay_ff_url_parse()
 *   accepts exactly these forms, scheme case-insensitive, and refuses
 *   everything else with a sentence saying why:
 *     rtsp://  rtsps://  rtmp://  rtmps://  srt://HOST:PORT  udp://HOST:PORT
 *     http(s)://...  an HLS playlist: the path ends in .m3u8 or .m3u, or the
 *                    caller says it is one (RELAY_FF_ASSUME_HLS)
 *     file:/abs/path, file:///abs/path or /abs/path: an existing regular file,
 *                    not under /proc, /sys or /dev
 *     v4l2:/dev/videoN: an existing character device
 *   Network URLs need a host (user:password@ is allowed) and a valid port if
 *   one is given; no URL may hold control characters or exceed
 *   RELAY_FF_URL_MAX bytes; network URLs may not hold spaces. The parsed
 *   URL is what ffmpeg gets: scheme in lower case (ffmpeg's protocol
 *   lookup is case-sensitive), files as "file:/abs/path" so no part of a
 *   file name can be read as a protocol.
 *
 *   Every ffmpeg the relay runs reads its input through an explicit
 *   -protocol_whitelist for exactly that scheme (so a playlist or redirect
 *   cannot lead it to file:, pipe: or another protocol), never reads the
 *   relay's stdin (-nostdin), and, except the JPEG decoder (-loglevel
 *   error), writes its progress as '\n'-terminated key=value lines on
 *   stderr once a second (-progress pipe:2 -stats_period 1). Local files
 *   are further limited to media container formats (-format_whitelist): a
 *   "file" that is an ffconcat list or a playlist is refused.
 *
 *   The three commands:
 *     ingest  camera -> MPEG-TS on stdout, streams copied as they came
 *             (V4L2 cameras deliver raw or MJPEG video, encoded to H.264);
 *     jpeg    MPEG-TS on stdin -> multipart JPEG (mpjpeg, boundary
 *             RELAY_FF_JPEG_BOUNDARY) on stdout, at a capped rate and width;
 *     push    MPEG-TS on stdin -> rtmp(s)/rtsp(s)/srt, streams copied (for
 *             RTSP the audio is encoded to AAC again: its muxer needs the
 *             audio configuration up front, which MPEG-TS does not carry),
 *             with the output protocol whitelisted too.
 *   Time-outs use the option each protocol honours in ffmpeg 5.1 (checked
 *   against a server that accepts and then stays silent): RTSP, SRT and
 *   UDP take -timeout in microseconds; RTMP and HTTP take -rw_timeout
 *   (RTMP's -timeout would make it listen instead).
 *
 *   relay_ff_log_line() reads one stderr line at a time: -progress blocks
 *   (frame=, fps=, bitrate=, total_size=, out_time_us=, speed=, ...,
 *   progress=continue|end; a block becomes visible when its progress= line
 *   arrives) and the input's stream descriptions ("Stream #0:0...: Video:
 *   h264 (High), yuv420p(progressive), 1280x720, 25 fps, ..." and
 *   "Audio: aac (LC), 48000 Hz, stereo, ..."). Output stream lines are not
 *   the camera's and are ignored.
 *
 * Ownership and threads
 *   No shared state: any thread may call anything here. One relay_ff_log
 *   per child, used by the thread that reads that child's stderr.
 *   relay_ff_url and relay_ff_argv live in caller memory (no allocation,
 *   nothing to release). The argv pointers point into the relay_ff_argv
 *   itself and to string literals: use it in place and do not copy it.
 *   Error messages go to a caller buffer @err of @errlen bytes (may be NULL
 *   / 0), always NUL-terminated, empty on success.
 */
#ifndef STW_RELAY_FFMPEG_H
#define STW_RELAY_FFMPEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_FF_URL_MAX 2048
#define RELAY_FF_ARGV_MAX 64
#define RELAY_FF_JPEG_BOUNDARY "ffmpeg" /* mpjpeg's default boundary */

/* Demuxers a local file may be read with: media containers and elementary
 * streams, but no format that opens further files or URLs (concat, hls,
 * dash, image2's numbered sequences, ...). */
#define RELAY_FF_FILE_FORMATS                                                                      \
    "mov,matroska,mpegts,mpeg,flv,avi,asf,h264,hevc,mjpeg,mp3,aac,wav,ogg,flac,m4v,ivf,nut,mxf"

typedef enum relay_ff_scheme {
    RELAY_FF_RTSP,
    RELAY_FF_RTSPS,
    RELAY_FF_RTMP,
    RELAY_FF_RTMPS,
    RELAY_FF_SRT,
    RELAY_FF_HLS, /* http:// or https:// */
    RELAY_FF_UDP,
    RELAY_FF_FILE,
    RELAY_FF_V4L2,
} relay_ff_scheme;

/* relay_ff_url_parse flags */
#define RELAY_FF_ASSUME_HLS 0x1u /* take an http(s) URL as a playlist */
#define RELAY_FF_OUTPUT 0x2u     /* a push target: rtmp(s), rtsp(s), srt only */

typedef struct relay_ff_url {
    relay_ff_scheme scheme;
    char url[RELAY_FF_URL_MAX + 8]; /* as given to ffmpeg */
} relay_ff_url;

/*
 * Check @url (borrowed) and fill *@out. Returns 0; -ENAMETOOLONG (over
 * RELAY_FF_URL_MAX); -EPROTONOSUPPORT (a scheme that is not accepted, or
 * not as a push target with RELAY_FF_OUTPUT); -ENOENT (no such file or
 * device); -EACCES (not readable); -EINVAL (anything else malformed: empty,
 * control characters, relative path, no host, bad port, not a regular
 * file, http(s) that is not a playlist). The reason is written to @err.
 */
int relay_ff_url_parse(const char *url, unsigned flags, relay_ff_url *out, char *err,
                       size_t errlen);

/* "rtsp", "rtsps", "rtmp", "rtmps", "srt", "hls", "udp", "file", "v4l2". */
const char *relay_ff_scheme_name(relay_ff_scheme s);

/* The -protocol_whitelist for reading (@output false) or writing a URL of
 * @s; NULL for an output scheme ffmpeg cannot push to. Static string. */
const char *relay_ff_protocols(relay_ff_scheme s, bool output);

typedef struct relay_ff_argv {
    const char *argv[RELAY_FF_ARGV_MAX + 1]; /* NULL-terminated */
    int argc;
    char store[RELAY_FF_URL_MAX + 1024]; /* formatted arguments */
    size_t used;
    int err; /* first failure while building */
} relay_ff_argv;

typedef struct relay_ff_ingest_opts {
    const char *ffmpeg; /* program (PATH is searched); NULL = "ffmpeg" */
    bool rtsp_udp;      /* RTSP over UDP instead of interleaved TCP */
    int timeout_ms;     /* network I/O time-out; 0 = ffmpeg's default */
    bool loop;          /* files: start over at the end (-stream_loop -1) */
    const char *http_headers; /* http(s): extra request headers ("Name: value\r\n"...), or NULL */
} relay_ff_ingest_opts;

/* argv to pull @u (parsed) as MPEG-TS on stdout. @o may be NULL (defaults).
 * Returns 0 or -ENOSPC (cannot happen for a parsed URL within the limit). */
int relay_ff_ingest_argv(relay_ff_argv *a, const relay_ff_url *u, const relay_ff_ingest_opts *o);

typedef struct relay_ff_jpeg_opts {
    const char *ffmpeg; /* NULL = "ffmpeg" */
    int fps;            /* frames per second out, 1..30; 0 = 5 */
    int max_width;      /* pixels, 16..7680, scaled down keeping aspect; 0 = 640 */
    int quality;        /* -q:v 2 (best)..31; 0 = 5 */
} relay_ff_jpeg_opts;

/* argv for the JPEG decoder: MPEG-TS on stdin, mpjpeg on stdout. Returns
 * 0, -EINVAL (a value out of range), -ENOSPC. */
int relay_ff_jpeg_argv(relay_ff_argv *a, const relay_ff_jpeg_opts *o);

typedef struct relay_ff_push_opts {
    const char *ffmpeg; /* NULL = "ffmpeg" */
} relay_ff_push_opts;

/* argv to push MPEG-TS from stdin to @u, which must have been parsed with
 * RELAY_FF_OUTPUT. @o may be NULL (defaults). Returns 0, -EPROTONOSUPPORT
 * (not a push scheme), -ENOSPC. */
int relay_ff_push_argv(relay_ff_argv *a, const relay_ff_url *u, const relay_ff_push_opts *o);

/* One -progress block. */
typedef struct relay_ff_progress {
    int64_t frame;       /* frames out so far, -1 if unknown */
    double fps;          /* -1 if unknown */
    double bitrate_kbps; /* -1 if N/A */
    int64_t total_size;  /* bytes out, -1 if N/A */
    int64_t out_time_us; /* position of the output, -1 if N/A */
    double speed;        /* x real time, -1 if N/A */
    int64_t drop_frames, dup_frames;
    bool end;        /* progress=end: ffmpeg is finishing */
    uint64_t blocks; /* blocks completed so far */
} relay_ff_progress;

/* What the input's stream lines said; zero / "" until seen. */
typedef struct relay_ff_media {
    char video_codec[24];   /* "h264", "hevc", "mjpeg", ... */
    char video_profile[32]; /* "High", "Main", ... or "" */
    char pix_fmt[24];
    int width, height;
    double fps; /* "25 fps", else the tbr value */
    char audio_codec[24];
    int sample_rate;
    int channels;
} relay_ff_media;

typedef struct relay_ff_log {
    relay_ff_progress progress; /* the last complete block */
    relay_ff_media input;
    /* Parser state. */
    relay_ff_progress pending;
    int section; /* 0 none, 1 in "Input #", 2 in "Output #" */
} relay_ff_log;

/* Start reading a new child's stderr. */
void relay_ff_log_init(relay_ff_log *l);

/* Take one line (@line borrowed, @len bytes, without or with its trailing
 * newline). Returns true if it was progress output (a -progress key=value
 * line, or the summary "frame= ... speed=" line ffmpeg prints at the end),
 * which callers drop; false for anything else, diagnostics worth keeping
 * (stream lines are parsed and still returned false). */
bool relay_ff_log_line(relay_ff_log *l, const char *line, size_t len);

#endif
