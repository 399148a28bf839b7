/*
 * src/relay/ffmpeg.c — URL checks, argv vectors and stderr parsing for the
 * relay's ffmpeg children (see ffmpeg.h for the model).
 */
#include "ffmpeg.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const struct scheme_def {
    const char *prefix; /* lower case, up to and with the colon */
    relay_ff_scheme scheme;
} schemes[] = {
    {"rtsp:", RELAY_FF_RTSP},   {"rtsps:", RELAY_FF_RTSPS}, {"rtmp:", RELAY_FF_RTMP},
    {"rtmps:", RELAY_FF_RTMPS}, {"srt:", RELAY_FF_SRT},     {"http:", RELAY_FF_HLS},
    {"https:", RELAY_FF_HLS},   {"udp:", RELAY_FF_UDP},     {"file:", RELAY_FF_FILE},
    {"v4l2:", RELAY_FF_V4L2},
};

const char *relay_ff_scheme_name(relay_ff_scheme s)
{
    static const char *const names[] = {"rtsp", "rtsps", "rtmp", "rtmps", "srt",
                                        "hls",  "udp",   "file", "v4l2"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

const char *relay_ff_protocols(relay_ff_scheme s, bool output)
{
    switch (s) {
    case RELAY_FF_RTSP:
        return "rtsp,rtp,udp,tcp";
    case RELAY_FF_RTSPS:
        return "rtsp,rtsps,rtp,udp,tcp,tls";
    case RELAY_FF_RTMP:
        return "rtmp,tcp";
    case RELAY_FF_RTMPS:
        return "rtmps,tls,tcp";
    case RELAY_FF_SRT:
        return "srt,udp";
    case RELAY_FF_HLS:
        return output ? NULL : "http,https,tcp,tls,crypto,hls";
    case RELAY_FF_UDP:
        return output ? NULL : "udp,rtp";
    case RELAY_FF_FILE:
    case RELAY_FF_V4L2:
        return output ? NULL : "file";
    }
    return NULL;
}

/* Network URL: scheme "//" [userinfo "@"] host [":" port] [path...]. */
static int check_authority(const char *name, const char *rest, bool port_required, char *err,
                           size_t errlen)
{
    if (strncmp(rest, "//", 2) != 0) {
        say(err, errlen, "a %s URL starts with %s://", name, name);
        return -EINVAL;
    }
    const char *a = rest + 2;
    size_t alen = strcspn(a, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (a[i] == '@')
            at = a + i;
    const char *host = at != NULL ? at + 1 : a;
    const char *end = a + alen;
    const char *hend;
    if (host < end && *host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (hend == NULL) {
            say(err, errlen, "the %s URL has an unterminated [IPv6] host", name);
            return -EINVAL;
        }
        for (const char *c = host + 1; c < hend; c++)
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.') {
                say(err, errlen, "the %s URL has a malformed [IPv6] host", name);
                return -EINVAL;
            }
        if (hend == host + 1) {
            say(err, errlen, "the %s URL has no host", name);
            return -EINVAL;
        }
        hend++;
    } else {
        hend = host;
        while (hend < end && *hend != ':')
            hend++;
        if (hend == host) {
            say(err, errlen, "the %s URL has no host (as in %s://camera.local%s)", name, name,
                port_required ? ":9000" : "");
            return -EINVAL;
        }
        for (const char *c = host; c < hend; c++)
            if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_') {
                say(err, errlen, "the %s URL's host holds '%c', which no host name has", name, *c);
                return -EINVAL;
            }
    }
    if (hend < end && *hend != ':') {
        say(err, errlen, "the %s URL has text after its [IPv6] host", name);
        return -EINVAL;
    }
    if (hend == end) {
        if (port_required) {
            say(err, errlen, "a %s URL needs a port (as in %s://host:9000)", name, name);
            return -EINVAL;
        }
        return 0;
    }
    const char *p = hend + 1;
    long port = 0;
    if (p == end) {
        say(err, errlen, "the %s URL has an empty port", name);
        return -EINVAL;
    }
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p) || port > 65535) {
            say(err, errlen, "the %s URL's port is not a number from 1 to 65535", name);
            return -EINVAL;
        }
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) {
        say(err, errlen, "the %s URL's port is not a number from 1 to 65535", name);
        return -EINVAL;
    }
    return 0;
}

static bool is_playlist(const char *rest)
{
    size_t n = strcspn(rest, "?#");
    return (n >= 5 && strncasecmp(rest + n - 5, ".m3u8", 5) == 0) ||
           (n >= 4 && strncasecmp(rest + n - 4, ".m3u", 4) == 0);
}

/* MPEG-TS over HTTP, such as another relay's /stream/NAME.ts. */
static bool is_ts_stream(const char *rest)
{
    size_t n = strcspn(rest, "?#");
    return n >= 3 && strncasecmp(rest + n - 3, ".ts", 3) == 0;
}

static int check_file(const char *path, char *err, size_t errlen)
{
    static const char *const system_dirs[] = {"/proc/", "/sys/", "/dev/"};
    if (path[0] != '/') {
        say(err, errlen,
            "\"%s\" is a relative path: give an absolute path (/path/video.mp4) "
            "or file:/path/video.mp4",
            path);
        return -EINVAL;
    }
    /* Kernel files look regular (/proc/self/environ) but are no media. */
    for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
        if (strncmp(path, system_dirs[i], strlen(system_dirs[i])) == 0) {
            say(err, errlen, "%s is a system file, not a media file", path);
            return -EINVAL;
        }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            say(err, errlen, "the file %s does not exist", path);
        else
            say(err, errlen, "the file %s cannot be opened: %s", path, strerror(e));
        return e == ENOTDIR ? -ENOENT : -e;
    }
    if (!S_ISREG(st.st_mode)) {
        say(err, errlen, "%s is %s, not a regular file", path,
            S_ISDIR(st.st_mode)    ? "a directory"
            : S_ISCHR(st.st_mode)  ? "a character device"
            : S_ISBLK(st.st_mode)  ? "a block device"
            : S_ISFIFO(st.st_mode) ? "a named pipe"
            : S_ISSOCK(st.st_mode) ? "a socket"
                                   : "something else");
        return -EINVAL;
    }
    if (access(path, R_OK) != 0) {
        say(err, errlen, "the file %s is not readable by the relay", path);
        return -EACCES;
    }
    return 0;
}

static int check_v4l2(const char *dev, char *err, size_t errlen)
{
    const char *prefix = "/dev/video";
    size_t digits = 0;
    if (strncmp(dev, prefix, strlen(prefix)) == 0)
        digits = strspn(dev + strlen(prefix), "0123456789");
    if (digits == 0 || digits > 3 || dev[strlen(prefix) + digits] != '\0') {
        say(err, errlen, "a V4L2 camera is given as v4l2:/dev/videoN");
        return -EINVAL;
    }
    struct stat st;
    if (stat(dev, &st) != 0) {
        say(err, errlen, "there is no camera device %s", dev);
        return -ENOENT;
    }
    if (!S_ISCHR(st.st_mode)) {
        say(err, errlen, "%s is not a character device", dev);
        return -EINVAL;
    }
    return 0;
}

int relay_ff_url_parse(const char *url, unsigned flags, relay_ff_url *out, char *err, size_t errlen)
{
    say(err, errlen, "%s", "");
    if (url == NULL || url[0] == '\0') {
        say(err, errlen, "the URL is empty");
        return -EINVAL;
    }
    size_t len = strnlen(url, RELAY_FF_URL_MAX + 1);
    if (len > RELAY_FF_URL_MAX) {
        say(err, errlen, "the URL is longer than %d bytes", RELAY_FF_URL_MAX);
        return -ENAMETOOLONG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c < 0x20 || c == 0x7f) {
            say(err, errlen, "the URL holds a control character (byte 0x%02x at %zu)", c, i);
            return -EINVAL;
        }
    }

    if (url[0] == '/') {
        if (flags & RELAY_FF_OUTPUT) {
            say(err, errlen,
                "outputs are pushed to rtmp://, rtmps://, rtsp://, rtsps:// or "
                "srt:// URLs, not to files");
            return -EPROTONOSUPPORT;
        }
        int rc = check_file(url, err, errlen);
        if (rc != 0)
            return rc;
        out->scheme = RELAY_FF_FILE;
        snprintf(out->url, sizeof(out->url), "file:%s", url);
        return 0;
    }

    size_t slen = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (slen == 0 || url[slen] != ':' || !isalpha((unsigned char)url[0])) {
        say(err, errlen,
            "\"%.64s\" is neither a URL (rtsp://, rtmp://, srt://, http(s)://...m3u8, "
            "udp://, v4l2:) nor an absolute file path",
            url);
        return -EINVAL;
    }
    const struct scheme_def *def = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strlen(schemes[i].prefix) == slen + 1 && strncasecmp(url, schemes[i].prefix, slen) == 0)
            def = &schemes[i];
    if (def == NULL) {
        static const char *const reading[] = {"concat", "subfile", "pipe",   "data",   "fd",
                                              "cache",  "async",   "crypto", "gopher", "tee"};
        for (size_t i = 0; i < sizeof(reading) / sizeof(reading[0]); i++)
            if (strlen(reading[i]) == slen && strncasecmp(url, reading[i], slen) == 0) {
                say(err, errlen,
                    "%.*s: URLs can read other files, pipes or inline data "
                    "through ffmpeg; they are not accepted",
                    (int)slen, url);
                return -EPROTONOSUPPORT;
            }
        say(err, errlen,
            "the scheme \"%.*s:\" is not supported (rtsp, rtsps, rtmp, rtmps, srt, "
            "http(s) HLS, udp, file, v4l2)",
            (int)slen > 32 ? 32 : (int)slen, url);
        return -EPROTONOSUPPORT;
    }
    relay_ff_scheme s = def->scheme;
    const char *rest = url + slen + 1;
    if (flags & RELAY_FF_OUTPUT) {
        if (relay_ff_protocols(s, true) == NULL) {
            say(err, errlen,
                "outputs are pushed to rtmp://, rtmps://, rtsp://, rtsps:// or "
                "srt:// URLs, not to %.*s:",
                (int)slen, url);
            return -EPROTONOSUPPORT;
        }
    }

    if (s == RELAY_FF_FILE) {
        const char *path = rest;
        if (strncmp(path, "///", 3) == 0)
            path += 2;
        else if (strncmp(path, "//", 2) == 0) {
            say(err, errlen, "file://HOST/ URLs are not supported: give file:/path/video.mp4");
            return -EINVAL;
        }
        int rc = check_file(path, err, errlen);
        if (rc != 0)
            return rc;
        out->scheme = s;
        snprintf(out->url, sizeof(out->url), "file:%s", path);
        return 0;
    }
    if (s == RELAY_FF_V4L2) {
        int rc = check_v4l2(rest, err, errlen);
        if (rc != 0)
            return rc;
        out->scheme = s;
        snprintf(out->url, sizeof(out->url), "%s", rest);
        return 0;
    }

    char lname[8];
    snprintf(lname, sizeof(lname), "%.*s", (int)slen, def->prefix);
    if (strchr(url, ' ') != NULL) {
        say(err, errlen, "the %s URL holds a space (write it as %%20)", lname);
        return -EINVAL;
    }
    int rc = check_authority(lname, rest, s == RELAY_FF_SRT || s == RELAY_FF_UDP, err, errlen);
    if (rc != 0)
        return rc;
    if (s == RELAY_FF_HLS && !(flags & RELAY_FF_ASSUME_HLS) && !is_playlist(rest) &&
        !is_ts_stream(rest)) {
        say(err, errlen,
            "%s inputs are HLS playlists or MPEG-TS streams: the path should end in .m3u8, "
            ".m3u or .ts (e.g. another relay's /stream/NAME.ts)",
            lname);
        return -EINVAL;
    }
    out->scheme = s;
    snprintf(out->url, sizeof(out->url), "%s%s", def->prefix, rest);
    return 0;
}

/* ---- argv ---------------------------------------------------------------- */

/* The builders below add without checking each step: the first failure
 * sticks in a->err and makes every later add a no-op (git's strbuf idea),
 * and the builder returns it at the end. */
static void argv_init(relay_ff_argv *a, const char *ffmpeg)
{
    a->argc = 0;
    a->used = 0;
    a->err = 0;
    a->argv[a->argc++] = ffmpeg != NULL ? ffmpeg : "ffmpeg";
    a->argv[a->argc] = NULL;
}

static void add(relay_ff_argv *a, const char *s)
{
    if (a->err != 0)
        return;
    if (a->argc >= RELAY_FF_ARGV_MAX) {
        a->err = -ENOSPC;
        return;
    }
    a->argv[a->argc++] = s;
    a->argv[a->argc] = NULL;
}

/* A formatted argument, stored in the argv's own buffer. */
static void addf(relay_ff_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(relay_ff_argv *a, const char *fmt, ...)
{
    if (a->err != 0)
        return;
    size_t room = sizeof(a->store) - a->used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->store + a->used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        a->err = -ENOSPC;
        return;
    }
    const char *arg = a->store + a->used;
    a->used += (size_t)n + 1;
    add(a, arg);
}

static void add_all(relay_ff_argv *a, const char *const *list)
{
    for (; *list != NULL; list++)
        add(a, *list);
}

/* Everything the relay's children have in common: no banner, never the
 * relay's stdin, and progress blocks on stderr once a second. */
static const char *const common_head[] = {
    "-hide_banner", "-nostdin", "-loglevel",     "info", "-nostats",
    "-progress",    "pipe:2",   "-stats_period", "1",    NULL};

int relay_ff_ingest_argv(relay_ff_argv *a, const relay_ff_url *u, const relay_ff_ingest_opts *o)
{
    static const relay_ff_ingest_opts defaults = {0};
    if (o == NULL)
        o = &defaults;
    argv_init(a, o->ffmpeg);
    add_all(a, common_head);
    long long us = (long long)o->timeout_ms * 1000;
    switch (u->scheme) {
    case RELAY_FF_RTSP:
    case RELAY_FF_RTSPS:
        add(a, "-rtsp_transport");
        add(a, o->rtsp_udp && u->scheme == RELAY_FF_RTSP ? "udp" : "tcp");
        if (o->timeout_ms > 0) {
            add(a, "-timeout");
            addf(a, "%lld", us);
        }
        break;
    case RELAY_FF_SRT:
    case RELAY_FF_UDP:
        if (o->timeout_ms > 0) {
            add(a, "-timeout");
            addf(a, "%lld", us);
        }
        break;
    case RELAY_FF_RTMP:
    case RELAY_FF_RTMPS:
    case RELAY_FF_HLS:
        if (o->timeout_ms > 0) {
            add(a, "-rw_timeout");
            addf(a, "%lld", us);
        }
        if (u->scheme == RELAY_FF_HLS && o->http_headers != NULL) {
            add(a, "-headers");
            addf(a, "%s", o->http_headers);
        }
        break;
    case RELAY_FF_FILE:
        add(a, "-re");
        if (o->loop) {
            add(a, "-stream_loop");
            add(a, "-1");
        }
        add(a, "-format_whitelist");
        add(a, RELAY_FF_FILE_FORMATS);
        break;
    case RELAY_FF_V4L2:
        add(a, "-f");
        add(a, "v4l2");
        break;
    }
    add(a, "-protocol_whitelist");
    add(a, relay_ff_protocols(u->scheme, false));
    add(a, "-i");
    addf(a, "%s", u->url);
    static const char *const maps[] = {"-map", "0:v?", "-map", "0:a?", NULL};
    add_all(a, maps);
    if (u->scheme == RELAY_FF_V4L2) {
        static const char *const enc[] = {"-c:v",     "libx264",     "-preset", "veryfast",
                                          "-tune",    "zerolatency", "-g",      "50",
                                          "-pix_fmt", "yuv420p",     NULL};
        add_all(a, enc);
    } else {
        add(a, "-c");
        add(a, "copy");
    }
    /* Packets leave as soon as they are muxed: a low-rate camera would
     * otherwise wait in ffmpeg's 32 KiB output buffer. */
    static const char *const tail[] = {"-flush_packets", "1", "-f", "mpegts", "pipe:1", NULL};
    add_all(a, tail);
    return a->err;
}

int relay_ff_jpeg_argv(relay_ff_argv *a, const relay_ff_jpeg_opts *o)
{
    static const relay_ff_jpeg_opts defaults = {0};
    if (o == NULL)
        o = &defaults;
    int fps = o->fps ? o->fps : 5;
    int width = o->max_width ? o->max_width : 640;
    int q = o->quality ? o->quality : 5;
    if (fps < 1 || fps > 30 || width < 16 || width > 7680 || q < 2 || q > 31)
        return -EINVAL;
    argv_init(a, o->ffmpeg);
    static const char *const head[] = {
        "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-protocol_whitelist", "pipe",
        /* The stream starts with its PAT/PMT and a keyframe: a short probe
         * gives the first JPEG within about a second, not after 5 s. */
        "-probesize", "32768", "-analyzeduration", "200000", "-f", "mpegts", "-i", "pipe:0", "-an",
        "-sn", "-dn", NULL};
    add_all(a, head);
    /* Never wider than asked nor wider than the source; the height follows
     * the aspect ratio, rounded to even for the 4:2:0 JPEG. */
    add(a, "-vf");
    addf(a, "fps=%d,scale=w=min(%d\\,iw):h=-2", fps, width);
    add(a, "-q:v");
    addf(a, "%d", q);
    static const char *const tail[] = {"-f", "mpjpeg", "-flush_packets", "1", "pipe:1", NULL};
    add_all(a, tail);
    return a->err;
}

int relay_ff_push_argv(relay_ff_argv *a, const relay_ff_url *u, const relay_ff_push_opts *o)
{
    static const relay_ff_push_opts defaults = {0};
    if (o == NULL)
        o = &defaults;
    const char *protos = relay_ff_protocols(u->scheme, true);
    if (protos == NULL)
        return -EPROTONOSUPPORT;
    argv_init(a, o->ffmpeg);
    add_all(a, common_head);
    /* The relay's TS starts with PAT/PMT and a keyframe (SPS/PPS inline,
     * ADTS headers on AAC): a second of probing finds every stream, where
     * ffmpeg's default five would hold back the first frame for them. */
    static const char *const in[] = {"-protocol_whitelist",
                                     "pipe",
                                     "-probesize",
                                     "262144",
                                     "-analyzeduration",
                                     "1000000",
                                     "-f",
                                     "mpegts",
                                     "-i",
                                     "pipe:0",
                                     "-map",
                                     "0:v?",
                                     "-map",
                                     "0:a?",
                                     NULL};
    add_all(a, in);
    bool rtsp = u->scheme == RELAY_FF_RTSP || u->scheme == RELAY_FF_RTSPS;
    if (rtsp) {
        /* The RTSP muxer needs the audio configuration before the first
         * packet (for the SDP); AAC copied out of MPEG-TS only has it in
         * each ADTS header, so the audio is encoded again (cheap). */
        static const char *const codecs[] = {"-c:v", "copy", "-c:a", "aac", NULL};
        add_all(a, codecs);
    } else {
        add(a, "-c");
        add(a, "copy");
    }
    add(a, "-protocol_whitelist");
    add(a, protos);
    add(a, "-f");
    switch (u->scheme) {
    case RELAY_FF_RTMP:
    case RELAY_FF_RTMPS:
        add(a, "flv");
        /* A live push has no duration or size to write back at the end. */
        add(a, "-flvflags");
        add(a, "no_duration_filesize");
        break;
    case RELAY_FF_RTSP:
    case RELAY_FF_RTSPS:
        add(a, "rtsp");
        add(a, "-rtsp_transport");
        add(a, "tcp");
        break;
    default:
        add(a, "mpegts");
        break;
    }
    addf(a, "%s", u->url);
    return a->err;
}

/* ---- stderr -------------------------------------------------------------- */

static void progress_clear(relay_ff_progress *p)
{
    uint64_t blocks = p->blocks;
    *p = (relay_ff_progress){.frame = -1,
                             .fps = -1,
                             .bitrate_kbps = -1,
                             .total_size = -1,
                             .out_time_us = -1,
                             .speed = -1,
                             .blocks = blocks};
}

void relay_ff_log_init(relay_ff_log *l)
{
    memset(l, 0, sizeof(*l));
    progress_clear(&l->progress);
    progress_clear(&l->pending);
}

static bool num(const char *s, double *out)
{
    while (*s == ' ')
        s++;
    char *end;
    double v = strtod(s, &end);
    if (end == s)
        return false;
    *out = v;
    return true;
}

static bool inum(const char *s, int64_t *out)
{
    while (*s == ' ')
        s++;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0)
        return false;
    *out = v;
    return true;
}

/* key=value with a bare key, as -progress writes them. */
static bool progress_kv(relay_ff_log *l, const char *key, size_t klen, const char *val)
{
    relay_ff_progress *p = &l->pending;
    double d;
    int64_t i;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
    if (KEY("frame"))
        p->frame = inum(val, &i) ? i : -1;
    else if (KEY("fps"))
        p->fps = num(val, &d) ? d : -1;
    else if (KEY("bitrate"))
        p->bitrate_kbps = num(val, &d) ? d : -1; /* "1234.5kbits/s" or "N/A" */
    else if (KEY("total_size"))
        p->total_size = inum(val, &i) ? i : -1;
    else if (KEY("out_time_us"))
        p->out_time_us = inum(val, &i) ? i : -1;
    else if (KEY("speed"))
        p->speed = num(val, &d) ? d : -1; /* "1.01x" or "N/A" */
    else if (KEY("dup_frames"))
        p->dup_frames = inum(val, &i) ? i : 0;
    else if (KEY("drop_frames"))
        p->drop_frames = inum(val, &i) ? i : 0;
    else if (KEY("progress")) {
        p->end = strcmp(val, "end") == 0;
        p->blocks = l->progress.blocks + 1;
        l->progress = *p;
        progress_clear(p);
    } else if (!KEY("out_time_ms") && !KEY("out_time")) {
        /* stream_0_0_q=... per output stream */
        if (!(klen > 9 && memcmp(key, "stream_", 7) == 0 && key[klen - 2] == '_' &&
              key[klen - 1] == 'q'))
            return false;
    }
#undef KEY
    return true;
}

static int channels_of(const char *t)
{
    static const struct {
        const char *name;
        int n;
    } layouts[] = {{"mono", 1},    {"stereo", 2},    {"2.1", 3},      {"3.0", 3}, {"quad", 4},
                   {"4.0", 4},     {"5.0", 5},       {"5.1", 6},      {"6.1", 7}, {"7.1", 8},
                   {"downmix", 2}, {"hexagonal", 6}, {"octagonal", 8}};
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        size_t n = strlen(layouts[i].name);
        if (strncmp(t, layouts[i].name, n) == 0 && (t[n] == '\0' || t[n] == '('))
            return layouts[i].n;
    }
    int c;
    char word[16];
    if (sscanf(t, "%d %15s", &c, word) == 2 && strncmp(word, "channels", 8) == 0)
        return c;
    return 0;
}

/* Split @s at top-level commas (not inside parentheses) into @tok. */
static int split_top(char *s, char **tok, int max)
{
    int n = 0, depth = 0;
    char *start = s;
    for (char *c = s;; c++) {
        if (*c == '(' || *c == '[')
            depth++;
        else if ((*c == ')' || *c == ']') && depth > 0)
            depth--;
        if (*c == '\0' || (*c == ',' && depth == 0)) {
            bool last = *c == '\0';
            *c = '\0';
            while (*start == ' ')
                start++;
            if (n < max)
                tok[n++] = start;
            if (last)
                break;
            start = c + 1;
        }
    }
    return n;
}

static void word(char *dst, size_t cap, const char *src)
{
    size_t n = strcspn(src, " ,(");
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void parse_video(relay_ff_media *m, char *desc)
{
    char *tok[16];
    int n = split_top(desc, tok, 16);
    if (n == 0)
        return;
    word(m->video_codec, sizeof(m->video_codec), tok[0]);
    const char *prof = strchr(tok[0], '(');
    if (prof != NULL && prof[1] != '[') {
        size_t len = strcspn(prof + 1, ")");
        snprintf(m->video_profile, sizeof(m->video_profile), "%.*s", (int)len, prof + 1);
    }
    double tbr = 0;
    for (int i = 1; i < n; i++) {
        int w, h;
        char after;
        double v;
        char unit[8];
        if (sscanf(tok[i], "%dx%d%c", &w, &h, &after) >= 2 && isdigit((unsigned char)tok[i][0]) &&
            w > 0 && h > 0 && m->width == 0) {
            m->width = w;
            m->height = h;
        } else if (sscanf(tok[i], "%lf %7s", &v, unit) == 2) {
            bool k = strchr(tok[i], 'k') != NULL && strchr(tok[i], 'k') < strchr(tok[i], ' ');
            if (strcmp(unit, "fps") == 0)
                m->fps = k ? v * 1000 : v;
            else if (strcmp(unit, "tbr") == 0)
                tbr = k ? v * 1000 : v;
        } else if (i == 1 && m->pix_fmt[0] == '\0') {
            word(m->pix_fmt, sizeof(m->pix_fmt), tok[i]);
        }
    }
    if (m->fps == 0)
        m->fps = tbr;
}

static void parse_audio(relay_ff_media *m, char *desc)
{
    char *tok[16];
    int n = split_top(desc, tok, 16);
    if (n == 0)
        return;
    word(m->audio_codec, sizeof(m->audio_codec), tok[0]);
    for (int i = 1; i < n; i++) {
        int hz;
        char unit[4];
        if (sscanf(tok[i], "%d %3s", &hz, unit) == 2 && strcmp(unit, "Hz") == 0)
            m->sample_rate = hz;
        else if (m->channels == 0 && m->sample_rate != 0)
            m->channels = channels_of(tok[i]);
    }
}

static bool stream_line(relay_ff_log *l, const char *s)
{
    /* "Stream #0:1[0x101](und): Audio: aac (LC) (...), 48000 Hz, stereo" */
    if (strncmp(s, "Stream #", 8) != 0)
        return false;
    if (l->section != 1)
        return true;
    const char *kind = strstr(s, ": Video: ");
    bool video = kind != NULL;
    if (!video)
        kind = strstr(s, ": Audio: ");
    if (kind == NULL)
        return true;
    char desc[512];
    snprintf(desc, sizeof(desc), "%s", kind + 9);
    if (video && l->input.video_codec[0] == '\0')
        parse_video(&l->input, desc);
    else if (!video && l->input.audio_codec[0] == '\0')
        parse_audio(&l->input, desc);
    return true;
}

bool relay_ff_log_line(relay_ff_log *l, const char *line, size_t len)
{
    char buf[1024];
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';

    /* -progress: "key=value", key in [a-z0-9_], nothing else on the line. */
    size_t klen = strspn(buf, "abcdefghijklmnopqrstuvwxyz0123456789_");
    if (klen > 0 && buf[klen] == '=') {
        /* Values are single words, some padded in front ("bitrate= 163.5kbits/s"). */
        const char *val = buf + klen + 1;
        while (*val == ' ')
            val++;
        if (strchr(val, ' ') == NULL && progress_kv(l, buf, klen, val))
            return true;
    }
    /* The summary ffmpeg prints when it ends, -nostats or not. */
    if (strncmp(buf, "frame=", 6) == 0 || strncmp(buf, "size=", 5) == 0) {
        if (strstr(buf, " time=") != NULL && strstr(buf, "speed=") != NULL)
            return true;
    }

    const char *s = buf;
    while (*s == ' ')
        s++;
    if (strncmp(s, "Input #", 7) == 0)
        l->section = 1;
    else if (strncmp(s, "Output #", 8) == 0 || strncmp(s, "Stream mapping:", 15) == 0)
        l->section = 2;
    else
        stream_line(l, s);
    return false;
}
