#include "stw_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ffmpeg.h"
#include "mjpeg.h"
#include "steward/buf.h"
#include "steward/proc.h"
#include "ts.h"

static char dir[64];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

/* @name in the test directory; the result lives until the fourth call
 * after this one (copy it to keep it longer). */
static char *path_of(const char *name)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

/* ---- running a child ------------------------------------------------- */

typedef struct run {
    uint8_t *out;
    size_t out_len, out_cap;
    char err[65536];
    size_t err_len;
    int status;
    double seconds;
    /* Called with each piece of stdout when set (else it is collected). */
    void (*on_out)(void *ud, const uint8_t *data, size_t len);
    void *ud;
    size_t in_rate; /* stdin bytes per second, as a live source; 0 = at once */
} run;

static void append(run *r, const uint8_t *d, size_t n)
{
    if (r->on_out != NULL) {
        r->on_out(r->ud, d, n);
        return;
    }
    if (r->out_len + n > r->out_cap) {
        r->out_cap = (r->out_len + n) * 2;
        r->out = realloc(r->out, r->out_cap);
        assert_non_null(r->out);
    }
    memcpy(r->out + r->out_len, d, n);
    r->out_len += n;
}

/* Run @argv with @in (may be NULL) on stdin until it exits or @ms pass
 * (then it is stopped), collecting stdout and stderr. */
static void run_argv(const char *const *argv, const uint8_t *in, size_t in_len, int ms, run *r)
{
    stw_proc *p = NULL;
    stw_proc_opts o = {.argv = argv,
                       .pipe_stdin = in != NULL,
                       .pipe_stdout = true,
                       .pipe_stderr = true,
                       /* A failing test must not leave a server or camera behind. */
                       .die_with_parent = true};
    assert_int_equal(stw_proc_spawn(&o, &p), 0);
    int64_t t0 = stw_now_ns();
    stw_deadline d = stw_deadline_in_ms(ms);
    int ifd = stw_proc_stdin_fd(p), ofd = stw_proc_stdout_fd(p), efd = stw_proc_stderr_fd(p);
    if (ifd >= 0)
        fcntl(ifd, F_SETFL, O_NONBLOCK);
    size_t in_off = 0;
    bool out_open = true, err_open = true;
    uint8_t buf[65536];
    while ((out_open || err_open) && stw_now_ns() < d) {
        size_t allowed = in_len;
        if (r->in_rate > 0)
            allowed = (size_t)((double)(stw_now_ns() - t0) / 1e9 * (double)r->in_rate);
        if (allowed > in_len)
            allowed = in_len;
        bool paced = ifd >= 0 && in_off >= allowed;
        struct pollfd pfd[3] = {{.fd = out_open ? ofd : -1, .events = POLLIN},
                                {.fd = err_open ? efd : -1, .events = POLLIN},
                                {.fd = paced ? -1 : ifd, .events = POLLOUT}};
        int pr = poll(pfd, 3, paced ? 20 : stw_deadline_poll_ms(d));
        if (pr < 0 || (pr == 0 && !paced))
            break;
        if (pfd[0].revents) {
            ssize_t n = read(ofd, buf, sizeof(buf));
            if (n > 0)
                append(r, buf, (size_t)n);
            else
                out_open = false;
        }
        if (pfd[1].revents) {
            ssize_t n = read(efd, r->err + r->err_len, sizeof(r->err) - 1 - r->err_len);
            if (n > 0)
                r->err_len += (size_t)n;
            else
                err_open = false;
            r->err[r->err_len] = '\0';
        }
        if (ifd >= 0 && (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = -1;
            if (pfd[2].revents & POLLOUT)
                n = write(ifd, in + in_off, allowed - in_off > 65536 ? 65536 : allowed - in_off);
            if (n > 0)
                in_off += (size_t)n;
            if (n < 0 && errno != EAGAIN)
                in_off = in_len; /* the child closed its stdin */
            if (in_off == in_len) {
                stw_proc_close_stdin(p);
                ifd = -1;
            }
        }
    }
    if (stw_proc_wait(p, d, &r->status) != 0)
        stw_proc_stop(p, 500, &r->status);
    r->seconds = (double)(stw_now_ns() - t0) / 1e9;
    stw_proc_free(&p);
}

static void run_free(run *r)
{
    free(r->out);
    free(r);
}

static bool exited_ok(const run *r)
{
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

static char *joined(const relay_ff_argv *a)
{
    static char s[8192];
    size_t n = 0;
    for (int i = 0; i < a->argc; i++)
        n += (size_t)snprintf(s + n, sizeof(s) - n, "%s%s", i ? " " : "", a->argv[i]);
    assert_null(a->argv[a->argc]);
    return s;
}

/* ---- URLs ------------------------------------------------------------ */

static void accept_url(const char *url, unsigned flags, relay_ff_scheme s, const char *want)
{
    relay_ff_url u;
    char err[256];
    int rc = relay_ff_url_parse(url, flags, &u, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s refused: %s", url, err);
    assert_int_equal(u.scheme, s);
    assert_string_equal(u.url, want);
}

static void refuse_url(const char *url, unsigned flags, int want_rc, const char *want_msg)
{
    relay_ff_url u;
    char err[256];
    int rc = relay_ff_url_parse(url, flags, &u, err, sizeof(err));
    if (rc != want_rc || strstr(err, want_msg) == NULL)
        fail_msg("%.80s: got %d \"%s\", wanted %d \"%s\"", url, rc, err, want_rc, want_msg);
}

static void test_url_accepted(void **state)
{
    (void)state;
    accept_url("rtsp://cam.local/stream1", 0, RELAY_FF_RTSP, "rtsp://cam.local/stream1");
    char err[64] = "stale";
    relay_ff_url u;
    assert_int_equal(relay_ff_url_parse("rtsp://cam/x", 0, &u, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(relay_ff_scheme_name(u.scheme), "rtsp");
    assert_string_equal(relay_ff_scheme_name(RELAY_FF_HLS), "hls");
    accept_url("RTSP://Cam.Local:8554/live", 0, RELAY_FF_RTSP, "rtsp://Cam.Local:8554/live");
    accept_url("rtsp://admin:s3cr%40t@10.0.0.2:554/h264?ch=1", 0, RELAY_FF_RTSP,
               "rtsp://admin:s3cr%40t@10.0.0.2:554/h264?ch=1");
    accept_url("rtsps://[fe80::1]:322/x", 0, RELAY_FF_RTSPS, "rtsps://[fe80::1]:322/x");
    accept_url("rtmp://a.rtmp.example/live/key", 0, RELAY_FF_RTMP,
               "rtmp://a.rtmp.example/live/key");
    accept_url("Rtmps://live.example:443/app/key", 0, RELAY_FF_RTMPS,
               "rtmps://live.example:443/app/key");
    accept_url("srt://10.1.1.1:9000?streamid=cam", 0, RELAY_FF_SRT,
               "srt://10.1.1.1:9000?streamid=cam");
    accept_url("http://cdn.example/live/index.m3u8?token=1", 0, RELAY_FF_HLS,
               "http://cdn.example/live/index.m3u8?token=1");
    accept_url("HTTPS://cdn.example/a/PLAYLIST.M3U8", 0, RELAY_FF_HLS,
               "https://cdn.example/a/PLAYLIST.M3U8");
    accept_url("https://cdn.example/live.m3u", 0, RELAY_FF_HLS, "https://cdn.example/live.m3u");
    /* Another relay's MPEG-TS (an edge pulling its origin). */
    accept_url("http://origin:8080/stream/door.ts", 0, RELAY_FF_HLS,
               "http://origin:8080/stream/door.ts");
    accept_url("http://cdn.example/hls/live", RELAY_FF_ASSUME_HLS, RELAY_FF_HLS,
               "http://cdn.example/hls/live");
    accept_url("udp://239.0.0.1:1234", 0, RELAY_FF_UDP, "udp://239.0.0.1:1234");
    accept_url("udp://0.0.0.0:5000?fifo_size=100000", 0, RELAY_FF_UDP,
               "udp://0.0.0.0:5000?fifo_size=100000");
    char file[300], url[320], want[320];
    snprintf(file, sizeof(file), "%s/my video.ts", dir);
    sh("cp %s '%s'", path_of("av.ts"), file);
    snprintf(want, sizeof(want), "file:%s", file);
    accept_url(file, 0, RELAY_FF_FILE, want);
    snprintf(url, sizeof(url), "file:%s", file);
    accept_url(url, 0, RELAY_FF_FILE, want);
    snprintf(url, sizeof(url), "FILE://%s", file);
    accept_url(url, 0, RELAY_FF_FILE, want);
    accept_url("rtmp://push.example/live/key", RELAY_FF_OUTPUT, RELAY_FF_RTMP,
               "rtmp://push.example/live/key");
    accept_url("srt://push.example:9000", RELAY_FF_OUTPUT, RELAY_FF_SRT, "srt://push.example:9000");
    accept_url("rtsp://push.example/live", RELAY_FF_OUTPUT, RELAY_FF_RTSP,
               "rtsp://push.example/live");
    struct stat st;
    if (stat("/dev/video0", &st) == 0 && S_ISCHR(st.st_mode))
        accept_url("v4l2:/dev/video0", 0, RELAY_FF_V4L2, "/dev/video0");
}

static void test_url_refused(void **state)
{
    (void)state;
    refuse_url("", 0, -EINVAL, "empty");
    refuse_url("concat:/a.ts|/b.ts", 0, -EPROTONOSUPPORT, "not accepted");
    refuse_url("subfile:,start,0,end,100,:/etc/passwd", 0, -EPROTONOSUPPORT, "not accepted");
    refuse_url("pipe:0", 0, -EPROTONOSUPPORT, "not accepted");
    refuse_url("data:video/mp4;base64,AAAA", 0, -EPROTONOSUPPORT, "not accepted");
    refuse_url("ftp://host/x.ts", 0, -EPROTONOSUPPORT, "not supported");
    refuse_url("tcp://host:1234", 0, -EPROTONOSUPPORT, "not supported");
    refuse_url("video.mp4", 0, -EINVAL, "nor an absolute file path");
    refuse_url("./video.mp4", 0, -EINVAL, "nor an absolute file path");
    refuse_url("file:video.mp4", 0, -EINVAL, "relative path");
    refuse_url("file:../etc/passwd", 0, -EINVAL, "relative path");
    refuse_url("file://host/x.mp4", 0, -EINVAL, "file://HOST/");
    refuse_url("rtsp://:554/", 0, -EINVAL, "no host");
    refuse_url("rtsp:///stream", 0, -EINVAL, "no host");
    refuse_url("rtsp://user:pw@/stream", 0, -EINVAL, "no host");
    refuse_url("rtsp:cam.local/x", 0, -EINVAL, "starts with rtsp://");
    refuse_url("rtsp://cam.local:0/", 0, -EINVAL, "port");
    refuse_url("rtsp://cam.local:99999/", 0, -EINVAL, "port");
    refuse_url("rtsp://cam.local:/", 0, -EINVAL, "empty port");
    refuse_url("rtsp://cam.local:55a/", 0, -EINVAL, "port");
    refuse_url("rtsp://cam local/", 0, -EINVAL, "space");
    refuse_url("rtsp://cam;local/", 0, -EINVAL, "host holds ';'");
    refuse_url("rtsp://[fe80::1/", 0, -EINVAL, "unterminated");
    refuse_url("rtsp://cam.local/\x01x", 0, -EINVAL, "control character");
    refuse_url("rtsp://cam.local/x\ny", 0, -EINVAL, "control character");
    refuse_url("rtsp://cam.local/x\x7f", 0, -EINVAL, "control character");
    refuse_url("srt://10.0.0.1", 0, -EINVAL, "needs a port");
    refuse_url("udp://:1234", 0, -EINVAL, "no host");
    refuse_url("udp://@:1234", 0, -EINVAL, "no host");
    refuse_url("http://cdn.example/video.mp4", 0, -EINVAL, "HLS playlists");
    refuse_url("https://cdn.example/", 0, -EINVAL, "HLS playlists");
    refuse_url("http://:80/a.m3u8", 0, -EINVAL, "no host");
    refuse_url("v4l2:/dev/sda", 0, -EINVAL, "v4l2:/dev/videoN");
    refuse_url("v4l2:/dev/video", 0, -EINVAL, "v4l2:/dev/videoN");
    refuse_url("v4l2:/dev/video0/../sda", 0, -EINVAL, "v4l2:/dev/videoN");
    refuse_url("v4l2:/dev/video987", 0, -ENOENT, "no camera device");
    refuse_url("/nonexistent/steward/video.mp4", 0, -ENOENT, "does not exist");
    refuse_url("file:/nonexistent/video.mp4", 0, -ENOENT, "does not exist");
    refuse_url(dir, 0, -EINVAL, "is a directory, not a regular file");
    refuse_url("/dev/null", 0, -EINVAL, "is a system file");
    refuse_url("/proc/self/environ", 0, -EINVAL, "is a system file");
    refuse_url("file:/sys/kernel/notes", 0, -EINVAL, "is a system file");
    char fifo[300];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    refuse_url(fifo, 0, -EINVAL, "is a named pipe, not a regular file");
    refuse_url("/tmp/x.ts", RELAY_FF_OUTPUT, -EPROTONOSUPPORT, "not to files");
    refuse_url("http://h/x.m3u8", RELAY_FF_OUTPUT, -EPROTONOSUPPORT, "not to http:");
    refuse_url("udp://h:1", RELAY_FF_OUTPUT, -EPROTONOSUPPORT, "not to udp:");
    static char longurl[RELAY_FF_URL_MAX + 16];
    memcpy(longurl, "rtsp://cam/", 11);
    memset(longurl + 11, 'a', sizeof(longurl) - 12);
    refuse_url(longurl, 0, -ENAMETOOLONG, "longer than");
    longurl[RELAY_FF_URL_MAX] = '\0';
    relay_ff_url u;
    assert_int_equal(relay_ff_url_parse(longurl, 0, &u, NULL, 0), 0); /* exactly the limit */
    /* A file the relay cannot read. */
    if (geteuid() != 0) {
        char p[300];
        snprintf(p, sizeof(p), "%s/secret.ts", dir);
        sh("touch %s && chmod 000 %s", p, p);
        refuse_url(p, 0, -EACCES, "not readable");
    }
}

/* ---- argv ------------------------------------------------------------ */

/* No input or output whitelist names a protocol that reads local files,
 * pipes or inline data, except "file" for local files and cameras. */
static void test_whitelists(void **state)
{
    (void)state;
    static const char *const local[] = {"file",    "pipe",  "fd",    "data", "concat", "concatf",
                                        "subfile", "cache", "async", "tee",  "http"};
    for (int s = RELAY_FF_RTSP; s <= RELAY_FF_V4L2; s++) {
        for (int out = 0; out < 2; out++) {
            const char *w = relay_ff_protocols((relay_ff_scheme)s, out);
            if (w == NULL) {
                assert_true(out && s >= RELAY_FF_HLS);
                continue;
            }
            char list[128];
            snprintf(list, sizeof(list), ",%s,", w);
            for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
                char item[32];
                snprintf(item, sizeof(item), ",%s,", local[i]);
                bool allowed = (s == RELAY_FF_FILE || s == RELAY_FF_V4L2)
                                   ? strcmp(local[i], "file") == 0
                                   : (s == RELAY_FF_HLS && strcmp(local[i], "http") == 0);
                if ((strstr(list, item) != NULL) != allowed)
                    fail_msg("%s (%s): whitelist %s and %s", relay_ff_scheme_name(s),
                             out ? "output" : "input", w, local[i]);
            }
        }
    }
}

static void parse_ok(const char *url, unsigned flags, relay_ff_url *u)
{
    char err[256];
    int rc = relay_ff_url_parse(url, flags, u, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: %s", url, err);
}

#define HEAD                                                                                       \
    "ffmpeg -hide_banner -nostdin -loglevel info -nostats -progress pipe:2 -stats_period 1 "
#define TAIL " -map 0:v? -map 0:a? -c copy -flush_packets 1 -f mpegts pipe:1"

static void test_argv(void **state)
{
    (void)state;
    relay_ff_url u;
    relay_ff_argv a;
    relay_ff_ingest_opts o = {.timeout_ms = 5000};

    parse_ok("RTSP://cam/x", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(joined(&a),
                        HEAD "-rtsp_transport tcp -timeout 5000000 "
                             "-protocol_whitelist rtsp,rtp,udp,tcp -i rtsp://cam/x" TAIL);
    o.rtsp_udp = true;
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(joined(&a),
                        HEAD "-rtsp_transport udp -timeout 5000000 "
                             "-protocol_whitelist rtsp,rtp,udp,tcp -i rtsp://cam/x" TAIL);
    parse_ok("rtsps://cam/x", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0); /* TLS is over TCP only */
    assert_string_equal(joined(&a), HEAD
                        "-rtsp_transport tcp -timeout 5000000 "
                        "-protocol_whitelist rtsp,rtsps,rtp,udp,tcp,tls -i rtsps://cam/x" TAIL);
    parse_ok("rtmp://h/app/key", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(joined(&a), HEAD "-rw_timeout 5000000 -protocol_whitelist rtmp,tcp "
                                         "-i rtmp://h/app/key" TAIL);
    parse_ok("rtmps://h/app/key", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, NULL), 0);
    assert_string_equal(joined(&a),
                        HEAD "-protocol_whitelist rtmps,tls,tcp -i rtmps://h/app/key" TAIL);
    parse_ok("srt://h:9000", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(joined(&a), HEAD "-timeout 5000000 -protocol_whitelist srt,udp "
                                         "-i srt://h:9000" TAIL);
    parse_ok("https://h/x.m3u8", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(joined(&a), HEAD
                        "-rw_timeout 5000000 -protocol_whitelist http,https,tcp,tls,crypto,hls "
                        "-i https://h/x.m3u8" TAIL);
    /* The loop-detection header goes with http(s) pulls only. */
    relay_ff_ingest_opts ho = {.timeout_ms = 5000, .http_headers = "X-Steward-Relay: ab\r\n"};
    parse_ok("http://origin/stream/door.ts", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &ho), 0);
    assert_string_equal(joined(&a), HEAD "-rw_timeout 5000000 -headers X-Steward-Relay: ab\r\n "
                                         "-protocol_whitelist http,https,tcp,tls,crypto,hls "
                                         "-i http://origin/stream/door.ts" TAIL);
    parse_ok("rtmp://h/app/key", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &ho), 0);
    assert_null(strstr(joined(&a), "-headers"));
    parse_ok("udp://239.1.1.1:5000", 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(joined(&a), HEAD "-timeout 5000000 -protocol_whitelist udp,rtp "
                                         "-i udp://239.1.1.1:5000" TAIL);
    parse_ok(path_of("av.ts"), 0, &u);
    relay_ff_ingest_opts lo = {.loop = true, .timeout_ms = 5000, .ffmpeg = "/usr/bin/ffmpeg"};
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &lo), 0);
    char want[1024];
    snprintf(want, sizeof(want),
             "/usr/bin/ffmpeg -hide_banner -nostdin -loglevel info -nostats -progress pipe:2 "
             "-stats_period 1 -re -stream_loop -1 -format_whitelist " RELAY_FF_FILE_FORMATS
             " -protocol_whitelist file -i file:%s" TAIL,
             path_of("av.ts"));
    assert_string_equal(joined(&a), want);
    /* V4L2 is encoded, not copied (the URL is made by hand: there may be
     * no camera here). */
    u.scheme = RELAY_FF_V4L2;
    snprintf(u.url, sizeof(u.url), "/dev/video0");
    assert_int_equal(relay_ff_ingest_argv(&a, &u, NULL), 0);
    assert_string_equal(joined(&a),
                        HEAD "-f v4l2 -protocol_whitelist file -i /dev/video0 -map 0:v? "
                             "-map 0:a? -c:v libx264 -preset veryfast -tune zerolatency "
                             "-g 50 -pix_fmt yuv420p -flush_packets 1 -f mpegts pipe:1");

    assert_int_equal(
        relay_ff_jpeg_argv(&a, &(relay_ff_jpeg_opts){.fps = 2, .max_width = 320, .quality = 7}), 0);
    assert_string_equal(joined(&a),
                        "ffmpeg -hide_banner -nostdin -loglevel error -nostats "
                        "-protocol_whitelist pipe -probesize 32768 -analyzeduration 200000 "
                        "-f mpegts -i pipe:0 -an -sn -dn "
                        "-vf fps=2,scale=w=min(320\\,iw):h=-2 -q:v 7 -f mpjpeg "
                        "-flush_packets 1 pipe:1");
    assert_int_equal(relay_ff_jpeg_argv(&a, &(relay_ff_jpeg_opts){.fps = 31}), -EINVAL);
    assert_int_equal(relay_ff_jpeg_argv(&a, &(relay_ff_jpeg_opts){.max_width = 8}), -EINVAL);
    assert_int_equal(relay_ff_jpeg_argv(&a, &(relay_ff_jpeg_opts){.quality = 1}), -EINVAL);

#define PUSH_IN_ARGS                                                                               \
    " -hide_banner -nostdin -loglevel info -nostats -progress pipe:2 -stats_period 1 "             \
    "-protocol_whitelist pipe -probesize 262144 -analyzeduration 1000000 -f mpegts -i pipe:0 "     \
    "-map 0:v? -map 0:a? "
#define PUSH_IN "ffmpeg" PUSH_IN_ARGS "-c copy "
    parse_ok("rtmp://h/live/key", RELAY_FF_OUTPUT, &u);
    assert_int_equal(relay_ff_push_argv(&a, &u, NULL), 0);
    assert_string_equal(joined(&a), PUSH_IN "-protocol_whitelist rtmp,tcp -f flv "
                                            "-flvflags no_duration_filesize rtmp://h/live/key");
    parse_ok("rtmps://h/live/key", RELAY_FF_OUTPUT, &u);
    assert_int_equal(relay_ff_push_argv(&a, &u, NULL), 0);
    assert_string_equal(joined(&a), PUSH_IN "-protocol_whitelist rtmps,tls,tcp -f flv "
                                            "-flvflags no_duration_filesize rtmps://h/live/key");
    parse_ok("rtsp://h/live", RELAY_FF_OUTPUT, &u);
    assert_int_equal(relay_ff_push_argv(&a, &u, NULL), 0);
    assert_string_equal(joined(&a), "ffmpeg" PUSH_IN_ARGS "-c:v copy -c:a aac -protocol_whitelist "
                                    "rtsp,rtp,udp,tcp -f rtsp -rtsp_transport tcp rtsp://h/live");
    relay_ff_push_opts po = {.ffmpeg = "/opt/ff"};
    assert_int_equal(relay_ff_push_argv(&a, &u, &po), 0);
    assert_string_equal(joined(&a), "/opt/ff" PUSH_IN_ARGS "-c:v copy -c:a aac -protocol_whitelist "
                                    "rtsp,rtp,udp,tcp -f rtsp -rtsp_transport tcp rtsp://h/live");
    parse_ok("srt://h:9000", RELAY_FF_OUTPUT, &u);
    assert_int_equal(relay_ff_push_argv(&a, &u, NULL), 0);
    assert_string_equal(joined(&a), PUSH_IN "-protocol_whitelist srt,udp -f mpegts srt://h:9000");
    parse_ok("udp://h:9000", 0, &u);
    assert_int_equal(relay_ff_push_argv(&a, &u, NULL), -EPROTONOSUPPORT);
    /* The longest URL still fits. */
    static char longurl[RELAY_FF_URL_MAX + 1];
    memcpy(longurl, "rtsp://cam/", 11);
    memset(longurl + 11, 'a', RELAY_FF_URL_MAX - 11);
    parse_ok(longurl, 0, &u);
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &o), 0);
    assert_string_equal(a.argv[a.argc - 12], longurl);
}

/* ---- real ffmpeg runs -------------------------------------------------- */

static int tcp_listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 16), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return s;
}

static int free_port(int type)
{
    int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* A server that accepts and never says a word: each scheme's time-out
 * option must end ffmpeg, and its whitelist must let the connection be
 * tried at all. */
static void test_timeouts_real(void **state)
{
    (void)state;
    int port;
    int ls = tcp_listener(&port);
    static const char *const fmts[] = {
        "rtsp://127.0.0.1:%d/x",         "rtsps://127.0.0.1:%d/x",
        "rtmp://127.0.0.1:%d/app/key",   "rtmps://127.0.0.1:%d/app/k",
        "http://127.0.0.1:%d/live.m3u8", "https://127.0.0.1:%d/live.m3u8"};
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        char url[128];
        snprintf(url, sizeof(url), fmts[i], port);
        relay_ff_url u;
        parse_ok(url, 0, &u);
        relay_ff_argv a;
        assert_int_equal(relay_ff_ingest_argv(&a, &u, &(relay_ff_ingest_opts){.timeout_ms = 1500}),
                         0);
        run *r = calloc(1, sizeof(*r));
        run_argv(a.argv, NULL, 0, 12000, r);
        if (exited_ok(r) || r->seconds < 1.2 || r->seconds > 8 ||
            strstr(r->err, "whitelist") != NULL)
            fail_msg("%s: %.1f s, status %d:\n%s", url, r->seconds, r->status, r->err);
        run_free(r);
    }
    close(ls);
    /* UDP: nothing ever arrives on the port. */
    char url[64];
    snprintf(url, sizeof(url), "udp://127.0.0.1:%d", free_port(SOCK_DGRAM));
    relay_ff_url u;
    parse_ok(url, 0, &u);
    relay_ff_argv a;
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &(relay_ff_ingest_opts){.timeout_ms = 1500}), 0);
    run *r = calloc(1, sizeof(*r));
    run_argv(a.argv, NULL, 0, 15000, r);
    if (exited_ok(r) || r->seconds > 10)
        fail_msg("%s: %.1f s, status %d:\n%s", url, r->seconds, r->status, r->err);
    run_free(r);
}

static stw_proc *http_server(int *port)
{
    static const char *const script =
        "import http.server, os, sys\n"
        "os.chdir(sys.argv[1])\n"
        "class H(http.server.SimpleHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        if self.path.startswith('/to-file'):\n"
        "            self.send_response(302)\n"
        "            self.send_header('Location', 'file:' + os.getcwd() + '/hls/index.m3u8')\n"
        "            self.end_headers(); return\n"
        "        if self.path.startswith('/to-hls'):\n"
        "            self.send_response(302)\n"
        "            self.send_header('Location', '/hls/index.m3u8')\n"
        "            self.end_headers(); return\n"
        "        return super().do_GET()\n"
        "    def log_message(self, *a): pass\n"
        "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
        "print(s.server_address[1], flush=True)\n"
        "s.serve_forever()\n";
    stw_proc *p = NULL;
    const char *argv[] = {"python3", "-c", script, dir, NULL};
    assert_int_equal(
        stw_proc_spawn(&(stw_proc_opts){.argv = argv, .pipe_stdout = true, .die_with_parent = true},
                       &p),
        0);
    char line[32] = {0};
    size_t n = 0;
    stw_deadline d = stw_deadline_in_ms(10000);
    while (n + 1 < sizeof(line) && strchr(line, '\n') == NULL) {
        struct pollfd pfd = {.fd = stw_proc_stdout_fd(p), .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, stw_deadline_poll_ms(d)), 1);
        ssize_t k = read(pfd.fd, line + n, sizeof(line) - 1 - n);
        assert_true(k > 0);
        n += (size_t)k;
    }
    *port = atoi(line);
    assert_true(*port > 0);
    return p;
}

static run *ingest(const char *url, unsigned flags, int ms)
{
    relay_ff_url u;
    parse_ok(url, flags, &u);
    relay_ff_argv a;
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &(relay_ff_ingest_opts){.timeout_ms = 3000}), 0);
    run *r = calloc(1, sizeof(*r));
    run_argv(a.argv, NULL, 0, ms, r);
    return r;
}

/* The whitelists hold against a hostile playlist and a redirect, and the
 * legitimate playlist is read. */
static void test_hls_whitelist_real(void **state)
{
    (void)state;
    int port;
    stw_proc *srv = http_server(&port);
    char url[256];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hls/index.m3u8", port);
    run *r = ingest(url, 0, 30000);
    if (!exited_ok(r) || r->out_len < 50000 || r->out[0] != 0x47)
        fail_msg("the HLS playlist was not read: %zu bytes, status %d\n%s", r->out_len, r->status,
                 r->err);
    relay_ff_log log;
    relay_ff_log_init(&log);
    for (char *line = strtok(r->err, "\n"); line != NULL; line = strtok(NULL, "\n"))
        relay_ff_log_line(&log, line, strlen(line));
    assert_string_equal(log.input.video_codec, "h264");
    assert_string_equal(log.input.audio_codec, "aac");
    assert_true(log.progress.end);
    run_free(r);

    /* A redirect to another playlist on the same server is fine. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/to-hls/x.m3u8", port);
    r = ingest(url, 0, 30000);
    if (!exited_ok(r) || r->out_len < 50000)
        fail_msg("the redirected playlist was not read: %s", r->err);
    run_free(r);

    /* Segments named file:/... */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hls/evil.m3u8", port);
    r = ingest(url, 0, 30000);
    if (r->out_len != 0 || strstr(r->err, "Protocol 'file' not on whitelist") == NULL)
        fail_msg("file: segments were not refused: %zu bytes\n%s", r->out_len, r->err);
    run_free(r);

    /* A redirect to file: */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/to-file/x.m3u8", port);
    r = ingest(url, 0, 30000);
    assert_false(exited_ok(r));
    assert_int_equal(r->out_len, 0);
    run_free(r);

    /* A local file that is a playlist of http segments: not a media format,
     * and http is not on a file's whitelist either. */
    sh("sed 's#^index#http://127.0.0.1:%d/hls/index#' %s > %s", port, path_of("hls/index.m3u8"),
       path_of("remote.m3u8"));
    r = ingest(path_of("remote.m3u8"), 0, 30000);
    if (r->out_len != 0 || strstr(r->err, "not on whitelist") == NULL)
        fail_msg("a local playlist was followed: %zu bytes\n%s", r->out_len, r->err);
    run_free(r);
    /* An ffconcat list of local files is refused the same way. */
    sh("printf 'ffconcat version 1.0\\nfile av.ts\\n' > %s", path_of("list.ffconcat"));
    r = ingest(path_of("list.ffconcat"), 0, 30000);
    if (r->out_len != 0 || strstr(r->err, "Format not on whitelist") == NULL)
        fail_msg("an ffconcat list was followed: %zu bytes\n%s", r->out_len, r->err);
    run_free(r);

    stw_proc_free(&srv);
}

/* ---- the whole path: file -> TS -> fan-out -> JPEG decoder -> parser ---- */

static int count_frame(void *ud, stw_buf *frame)
{
    int *dims = ud;
    const uint8_t *j = stw_buf_data(frame);
    size_t n = stw_buf_size(frame);
    assert_true(n > 100 && j[0] == 0xff && j[1] == 0xd8);
    /* The baseline frame header (SOF0) says the size. */
    for (size_t i = 2; i + 9 < n; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) {
            dims[1] = (j[i + 5] << 8) | j[i + 6];
            dims[2] = (j[i + 7] << 8) | j[i + 8];
            break;
        }
    dims[0]++;
    stw_buf_unref(&frame);
    return 0;
}

static void feed_mjpeg(void *ud, const uint8_t *data, size_t len)
{
    void **args = ud;
    assert_true(relay_mjpeg_feed(args[0], data, len, count_frame, args[1]) >= 0);
}

static void feed_ts(void *ud, const uint8_t *data, size_t len)
{
    assert_int_equal(relay_ts_write(ud, data, len), 0);
}

static void test_ingest_file_to_jpeg(void **state)
{
    (void)state;
    /* Ingest a 1280x720 file at its own pace into the TS fan-out. */
    relay_ff_url u;
    parse_ok(path_of("hd.ts"), 0, &u);
    relay_ff_argv a;
    assert_int_equal(relay_ff_ingest_argv(&a, &u, NULL), 0);
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    relay_ts_reader *rd = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &rd), 0);
    run *r = calloc(1, sizeof(*r));
    r->on_out = feed_ts;
    r->ud = ts;
    run_argv(a.argv, NULL, 0, 30000, r);
    if (!exited_ok(r))
        fail_msg("ingest failed: %s", r->err);
    assert_true(r->seconds > 1.5); /* -re: two seconds of video */

    relay_ff_log log;
    relay_ff_log_init(&log);
    int progress = 0, other = 0;
    for (char *line = strtok(r->err, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (relay_ff_log_line(&log, line, strlen(line)))
            progress++;
        else
            other++;
    }
    assert_true(progress > 10 && other > 3);
    assert_string_equal(log.input.video_codec, "h264");
    assert_string_equal(log.input.video_profile, "High");
    assert_int_equal(log.input.width, 1280);
    assert_int_equal(log.input.height, 720);
    assert_true(log.input.fps == 25.0);
    assert_string_equal(log.input.audio_codec, "aac");
    assert_int_equal(log.input.sample_rate, 44100);
    assert_int_equal(log.input.channels, 2);
    assert_true(log.progress.end);
    assert_true(log.progress.blocks >= 2);
    assert_int_equal(log.progress.frame, 50);
    run_free(r);

    relay_ts_stats st;
    relay_ts_get_stats(ts, &st);
    assert_int_equal(st.keyframes, 2);
    assert_string_equal(st.video_codec, "h264");
    assert_string_equal(st.audio_codec, "aac");

    /* What a viewer arriving now gets, through the JPEG decoder: it starts
     * at the last keyframe, so the second second of video. */
    uint8_t *stream = NULL;
    size_t len = 0;
    relay_ts_chunk c[64];
    size_t n;
    do {
        assert_int_equal(relay_ts_read(rd, c, 64, &n), 0);
        for (size_t i = 0; i < n; i++) {
            size_t sz = stw_buf_size(c[i].buf);
            stream = realloc(stream, len + sz);
            memcpy(stream + len, stw_buf_data(c[i].buf), sz);
            len += sz;
            stw_buf_unref(&c[i].buf);
        }
    } while (n == 64);
    assert_true(len > 20000);
    relay_ts_reader_free(&rd);
    relay_ts_free(&ts);

    assert_int_equal(
        relay_ff_jpeg_argv(&a, &(relay_ff_jpeg_opts){.fps = 5, .max_width = 640, .quality = 5}), 0);
    relay_mjpeg *mj = NULL;
    assert_int_equal(relay_mjpeg_new(RELAY_FF_JPEG_BOUNDARY, 1 << 20, &mj), 0);
    int dims[3] = {0};
    void *args[2] = {mj, dims};
    r = calloc(1, sizeof(*r));
    r->on_out = feed_mjpeg;
    r->ud = args;
    run_argv(a.argv, stream, len, 30000, r);
    if (!exited_ok(r))
        fail_msg("the JPEG decoder failed: %s", r->err);
    assert_int_equal(r->err_len, 0); /* -loglevel error: nothing to say */
    /* One second at 5 fps. */
    if (dims[0] < 4 || dims[0] > 6)
        fail_msg("%d JPEGs for 1 s at 5 fps", dims[0]);
    assert_int_equal(dims[1], 360);
    assert_int_equal(dims[2], 640);
    relay_mjpeg_stats ms;
    relay_mjpeg_get_stats(mj, &ms);
    assert_int_equal(ms.bad_parts, 0);
    assert_int_equal(ms.garbage_bytes, 0);
    relay_mjpeg_free(&mj);
    run_free(r);

    /* A source narrower than the cap is not enlarged. */
    {
        FILE *f = fopen(path_of("av.ts"), "rb");
        assert_non_null(f);
        static uint8_t small[200000];
        size_t sl = fread(small, 1, sizeof(small), f);
        fclose(f);
        assert_int_equal(relay_mjpeg_new(RELAY_FF_JPEG_BOUNDARY, 1 << 20, &mj), 0);
        memset(dims, 0, sizeof(dims));
        args[0] = mj;
        r = calloc(1, sizeof(*r));
        r->on_out = feed_mjpeg;
        r->ud = args;
        run_argv(a.argv, small, sl, 30000, r);
        assert_true(exited_ok(r));
        assert_true(dims[0] >= 5);
        assert_int_equal(dims[1], 240);
        assert_int_equal(dims[2], 320);
        relay_mjpeg_free(&mj);
        run_free(r);
    }
    free(stream);
}

/* ---- push -------------------------------------------------------------- */

/* Push a live 8 s stream to @url while an ffmpeg receiver (@recv_argv,
 * which writes -progress to @progress_file) listens there. */
static void push_to_receiver(const char *url, const char *const *recv_argv,
                             const char *progress_file)
{
    stw_proc *rcv = NULL;
    assert_int_equal(
        stw_proc_spawn(
            &(stw_proc_opts){.argv = recv_argv, .pipe_stderr = true, .die_with_parent = true},
            &rcv),
        0);
    usleep(1000 * 1000); /* let it listen */
    relay_ff_url u;
    parse_ok(url, RELAY_FF_OUTPUT, &u);
    relay_ff_argv a;
    assert_int_equal(relay_ff_push_argv(&a, &u, NULL), 0);
    FILE *f = fopen(path_of("push.ts"), "rb");
    static uint8_t in[1000000];
    size_t n = fread(in, 1, sizeof(in), f);
    fclose(f);
    run *r = calloc(1, sizeof(*r));
    /* Twice the stream's own rate: a live source, not one burst (SRT in
     * live mode drops what is unsent when the sender closes). */
    r->in_rate = 2 * n / 8;
    run_argv(a.argv, in, n, 30000, r);
    if (!exited_ok(r))
        fail_msg("push to %s failed: %s", url, r->err);
    relay_ff_log log;
    relay_ff_log_init(&log);
    for (char *line = strtok(r->err, "\n"); line != NULL; line = strtok(NULL, "\n"))
        relay_ff_log_line(&log, line, strlen(line));
    assert_true(log.progress.end);
    assert_int_equal(log.progress.frame, 200);
    if (log.progress.total_size <= 0 && strncmp(url, "rtsp", 4) != 0)
        fail_msg("%s: total_size %lld", url, (long long)log.progress.total_size);
    run_free(r);
    int st;
    if (stw_proc_wait(rcv, stw_deadline_in_ms(10000), &st) != 0)
        stw_proc_stop(rcv, 500, &st);
    char rerr[4096];
    ssize_t rn = read(stw_proc_stderr_fd(rcv), rerr, sizeof(rerr) - 1);
    rerr[rn > 0 ? rn : 0] = '\0';
    stw_proc_free(&rcv);
    /* What arrived, from the receiver's own progress report. */
    FILE *pf = fopen(progress_file, "r");
    assert_non_null(pf);
    relay_ff_log_init(&log);
    char line[256];
    while (fgets(line, sizeof(line), pf) != NULL)
        relay_ff_log_line(&log, line, strlen(line));
    fclose(pf);
    assert_true(log.progress.end);
    if (log.progress.frame < 100)
        fail_msg("%s: the receiver got %lld video packets of 200:\n%s", url,
                 (long long)log.progress.frame, rerr);
}

static void test_push_real(void **state)
{
    (void)state;
    char url[128], listen_url[160];
#define RECV_TAIL "-map", "0:v", "-c", "copy", "-progress", progress, "-f", "null", "-", NULL
    char progress[256];
    snprintf(progress, sizeof(progress), "%s", path_of("recv-progress.txt"));
    int port = free_port(SOCK_STREAM);
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/key", port);
    const char *rtmp_recv[] = {"ffmpeg", "-nostdin", "-v", "error",  "-listen",
                               "1",      "-i",       url,  RECV_TAIL};
    push_to_receiver(url, rtmp_recv, progress);

    port = free_port(SOCK_DGRAM);
    snprintf(url, sizeof(url), "srt://127.0.0.1:%d", port);
    snprintf(listen_url, sizeof(listen_url), "srt://127.0.0.1:%d?mode=listener", port);
    const char *srt_recv[] = {"ffmpeg", "-nostdin", "-v", "error", "-i", listen_url, RECV_TAIL};
    push_to_receiver(url, srt_recv, progress);

    port = free_port(SOCK_STREAM);
    snprintf(url, sizeof(url), "rtsp://127.0.0.1:%d/live", port);
    const char *rtsp_recv[] = {"ffmpeg", "-nostdin", "-v", "error",  "-rtsp_flags",
                               "listen", "-i",       url,  RECV_TAIL};
    push_to_receiver(url, rtsp_recv, progress);
#undef RECV_TAIL
}

/* ---- live ingest from an ffmpeg "camera" -------------------------------- */

/* Pull @url while @camera (started @listen_ms earlier) serves or sends the stream; the
 * ingest's MPEG-TS goes through the fan-out, and what a viewer arriving at
 * the end gets must decode cleanly. */
static void ingest_live(const char *url, const char *const *camera, int listen_ms)
{
    stw_proc *cam = NULL;
    assert_int_equal(
        stw_proc_spawn(
            &(stw_proc_opts){.argv = camera, .pipe_stderr = true, .die_with_parent = true}, &cam),
        0);
    usleep((useconds_t)listen_ms * 1000); /* until a listening camera listens */
    relay_ff_url u;
    parse_ok(url, 0, &u);
    relay_ff_argv a;
    assert_int_equal(relay_ff_ingest_argv(&a, &u, &(relay_ff_ingest_opts){.timeout_ms = 2000}), 0);
    relay_ts *ts = NULL;
    assert_int_equal(relay_ts_new(0, &ts), 0);
    run *r = calloc(1, sizeof(*r));
    r->on_out = feed_ts;
    r->ud = ts;
    run_argv(a.argv, NULL, 0, 30000, r);
    int st;
    if (stw_proc_wait(cam, stw_deadline_in_ms(10000), &st) != 0)
        stw_proc_stop(cam, 500, &st);
    stw_proc_free(&cam);

    relay_ts_stats ts_st;
    relay_ts_get_stats(ts, &ts_st);
    if (ts_st.keyframes < 3 || ts_st.video_codec == NULL || ts_st.audio_codec == NULL)
        fail_msg("%s: %llu keyframes, video %s, audio %s\n%s", url,
                 (unsigned long long)ts_st.keyframes, ts_st.video_codec ? ts_st.video_codec : "-",
                 ts_st.audio_codec ? ts_st.audio_codec : "-", r->err);
    assert_string_equal(ts_st.video_codec, "h264");
    assert_string_equal(ts_st.audio_codec, "aac");
    assert_int_equal(ts_st.garbage_bytes, 0);
    relay_ff_log log;
    relay_ff_log_init(&log);
    for (char *line = strtok(r->err, "\n"); line != NULL; line = strtok(NULL, "\n"))
        relay_ff_log_line(&log, line, strlen(line));
    assert_string_equal(log.input.video_codec, "h264");
    assert_int_equal(log.input.width, 320);
    assert_int_equal(log.input.height, 240);
    assert_string_equal(log.input.audio_codec, "aac");
    assert_true(log.progress.blocks >= 2);
    run_free(r);

    relay_ts_reader *rd = NULL;
    assert_int_equal(relay_ts_reader_new(ts, &rd), 0);
    relay_ts_chunk c[256];
    size_t n = 0;
    assert_int_equal(relay_ts_read(rd, c, 256, &n), 0);
    assert_true(n >= 2 && n < 256);
    assert_int_equal(c[0].flags, RELAY_TS_PSI);
    assert_true(c[1].flags & RELAY_TS_KEY);
    FILE *f = fopen(path_of("live.ts"), "wb");
    for (size_t i = 0; i < n; i++) {
        fwrite(stw_buf_data(c[i].buf), 1, stw_buf_size(c[i].buf), f);
        stw_buf_unref(&c[i].buf);
    }
    fclose(f);
    relay_ts_reader_free(&rd);
    relay_ts_free(&ts);
    sh("ffmpeg -nostdin -v error -i %s -f null - 2>%s", path_of("live.ts"), path_of("live.err"));
    struct stat es;
    assert_int_equal(stat(path_of("live.err"), &es), 0);
    if (es.st_size != 0) {
        sh("cat %s >&2", path_of("live.err"));
        fail_msg("%s: the last GOP does not decode cleanly", url);
    }
}

static void test_ingest_live_real(void **state)
{
    (void)state;
    char url[128], cam_url[160], cmd[512];
    char src[256];
    snprintf(src, sizeof(src), "%s", path_of("av.ts"));

    int port = free_port(SOCK_STREAM);
    snprintf(url, sizeof(url), "rtmp://127.0.0.1:%d/live/cam", port);
    const char *rtmp_cam[] = {"ffmpeg", "-nostdin", "-v",  "error",   "-re", "-i", src, "-c",
                              "copy",   "-f",       "flv", "-listen", "1",   url,  NULL};
    ingest_live(url, rtmp_cam, 1000);

    port = free_port(SOCK_DGRAM);
    snprintf(url, sizeof(url), "srt://127.0.0.1:%d", port);
    snprintf(cam_url, sizeof(cam_url), "srt://127.0.0.1:%d?mode=listener", port);
    const char *srt_cam[] = {"ffmpeg", "-nostdin", "-v", "error",  "-re",   "-i", src,
                             "-c",     "copy",     "-f", "mpegts", cam_url, NULL};
    ingest_live(url, srt_cam, 1000);

    /* UDP has no connection: the camera starts sending once the ingest
     * listens, and the ingest ends by its time-out after the last packet. */
    port = free_port(SOCK_DGRAM);
    snprintf(url, sizeof(url), "udp://127.0.0.1:%d", port);
    snprintf(cmd, sizeof(cmd),
             "sleep 1; exec ffmpeg -nostdin -v error -re -i %s -c copy -f mpegts "
             "'udp://127.0.0.1:%d?pkt_size=1316'",
             src, port);
    const char *udp_cam[] = {"sh", "-c", cmd, NULL};
    ingest_live(url, udp_cam, 0);
}

/* ffmpeg honours the output whitelist where the push argv puts it: with
 * another list in its place the same push is refused. */
static void test_push_whitelist_enforced(void **state)
{
    (void)state;
    static const char *const urls[] = {"rtmp://127.0.0.1:1/live/key", "srt://127.0.0.1:1",
                                       "rtsp://127.0.0.1:1/live"};
    FILE *f = fopen(path_of("av.ts"), "rb");
    static uint8_t in[400000];
    size_t n = fread(in, 1, sizeof(in), f);
    fclose(f);
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        relay_ff_url u;
        parse_ok(urls[i], RELAY_FF_OUTPUT, &u);
        relay_ff_argv a;
        assert_int_equal(relay_ff_push_argv(&a, &u, NULL), 0);
        int at = -1;
        for (int k = 1; k < a.argc; k++)
            if (strcmp(a.argv[k], relay_ff_protocols(u.scheme, true)) == 0)
                at = k;
        assert_true(at > 0);
        a.argv[at] = "file";
        run *r = calloc(1, sizeof(*r));
        run_argv(a.argv, in, n, 20000, r);
        if (exited_ok(r) || strstr(r->err, "not on whitelist 'file'") == NULL)
            fail_msg("%s was pushed past the whitelist:\n%s", urls[i], r->err);
        run_free(r);
    }
}

/* ---- stderr lines captured from ffmpeg 5.1 ------------------------------- */

static void test_log_captured(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "ffmpeg stats and -progress period set to 1.",
        "Input #0, mpegts, from 'file:/tmp/hd.ts':",
        "  Duration: 00:00:03.02, start: 1.400000, bitrate: 302 kb/s",
        "  Program 1 ",
        "    Metadata:",
        "      service_name    : Service01",
        ("  Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), "
         "yuv420p(progressive), 1280x720 [SAR 1:1 DAR 16:9], 25 fps, 25 tbr, 90k tbn"),
        ("  Stream #0:1[0x101]: Audio: aac (LC) ([15][0][0][0] / 0x000F), 44100 Hz, stereo, "
         "fltp, 129 kb/s"),
        "Output #0, mpegts, to 'pipe:1':",
        ("  Stream #0:0: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(progressive), "
         "640x360 [SAR 1:1 DAR 16:9], q=2-31, 30 fps, 25 tbr, 90k tbn"),
        "  Stream #0:1: Audio: mp3, 8000 Hz, mono, fltp",
        "Stream mapping:",
        "  Stream #0:0 -> #0:0 (copy)",
        "frame=1",
        "fps=0.00",
        "stream_0_0_q=-1.0",
        "bitrate=N/A",
        "total_size=0",
        "out_time_us=0",
        "out_time_ms=0",
        "out_time=00:00:00.000000",
        "dup_frames=0",
        "drop_frames=0",
        "speed=N/A",
        "progress=continue",
        "frame=28\n",
        "fps=27.98\r\n",
        "stream_0_0_q=-1.0",
        "bitrate= 163.5kbits/s",
        "total_size=20868",
        "out_time_us=1021344",
        "out_time_ms=1021344",
        "out_time=00:00:01.021344",
        "dup_frames=0",
        "drop_frames=2",
        "speed=1.02x",
    };
    relay_ff_log l;
    relay_ff_log_init(&l);
    int progress = 0;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        progress += relay_ff_log_line(&l, lines[i], strlen(lines[i]));
    assert_int_equal(progress, 23);
    assert_string_equal(l.input.video_codec, "h264");
    assert_string_equal(l.input.video_profile, "High");
    assert_string_equal(l.input.pix_fmt, "yuv420p");
    assert_int_equal(l.input.width, 1280);
    assert_int_equal(l.input.height, 720);
    assert_true(l.input.fps == 25.0);
    assert_string_equal(l.input.audio_codec, "aac");
    assert_int_equal(l.input.sample_rate, 44100);
    assert_int_equal(l.input.channels, 2);
    /* Only the first block is complete: the second waits for progress=. */
    assert_int_equal(l.progress.blocks, 1);
    assert_int_equal(l.progress.frame, 1);
    assert_true(l.progress.bitrate_kbps < 0);
    assert_true(l.progress.speed < 0);
    assert_false(l.progress.end);
    assert_true(relay_ff_log_line(&l, "progress=end", 12));
    assert_int_equal(l.progress.blocks, 2);
    assert_int_equal(l.progress.frame, 28);
    assert_true(l.progress.fps > 27.97 && l.progress.fps < 27.99);
    assert_true(l.progress.bitrate_kbps > 163.4 && l.progress.bitrate_kbps < 163.6);
    assert_int_equal(l.progress.total_size, 20868);
    assert_int_equal(l.progress.out_time_us, 1021344);
    assert_true(l.progress.speed > 1.01 && l.progress.speed < 1.03);
    assert_int_equal(l.progress.drop_frames, 2);
    assert_true(l.progress.end);
    /* The summary line at the end is progress too; diagnostics are not. */
    const char *sum = "frame=  100 fps= 25 q=-1.0 Lsize=      93kB time=00:00:04.03 bitrate= "
                      "189.1kbits/s speed=   1x    ";
    assert_true(relay_ff_log_line(&l, sum, strlen(sum)));
    const char *sum2 = "size=     112kB time=00:00:03.04 bitrate= 301.6kbits/s speed=1.56e+03x";
    assert_true(relay_ff_log_line(&l, sum2, strlen(sum2)));
    static const char *const diag[] = {
        "[rtsp @ 0x55d] method DESCRIBE failed: 404 Not Found",
        "rtsp://127.0.0.1:8554/x: Server returned 404 Not Found",
        "[hls @ 0x5615] Error when loading first segment 'file:/tmp/x.ts'",
        "[file @ 0x5615] Protocol 'file' not on whitelist 'http,https,tcp,tls,crypto,hls'!",
        "frame=abc extra words",
        "Frame=1",
        "key=value",
        "",
    };
    for (size_t i = 0; i < sizeof(diag) / sizeof(diag[0]); i++)
        assert_false(relay_ff_log_line(&l, diag[i], strlen(diag[i])));

    /* HEVC with a fractional rate, mono audio named by count, an MJPEG
     * camera whose first token has a colour range, a language tag. */
    relay_ff_log_init(&l);
    static const char *const more[] = {
        "Input #0, rtsp, from 'rtsp://cam/x':",
        ("  Stream #0:0: Video: hevc (Main) (HEVC / 0x43564548), yuv420p(tv), 640x360 [SAR 1:1 "
         "DAR 16:9], 29.97 fps, 29.97 tbr, 90k tbn"),
        "  Stream #0:1(und): Audio: pcm_mulaw, 8000 Hz, 1 channels, s16, 64 kb/s",
    };
    for (size_t i = 0; i < 3; i++)
        assert_false(relay_ff_log_line(&l, more[i], strlen(more[i])));
    assert_string_equal(l.input.video_codec, "hevc");
    assert_string_equal(l.input.video_profile, "Main");
    assert_int_equal(l.input.width, 640);
    assert_true(l.input.fps > 29.96 && l.input.fps < 29.98);
    assert_string_equal(l.input.audio_codec, "pcm_mulaw");
    assert_int_equal(l.input.sample_rate, 8000);
    assert_int_equal(l.input.channels, 1);
    relay_ff_log_init(&l);
    const char *mj = "Input #0, video4linux2,v4l2, from '/dev/video0':";
    const char *mjs =
        "  Stream #0:0: Video: mjpeg (Baseline), yuvj422p(pc, bt470bg/unknown/unknown), "
        "1920x1080, 30 fps, 30 tbr, 1000k tbn";
    relay_ff_log_line(&l, mj, strlen(mj));
    relay_ff_log_line(&l, mjs, strlen(mjs));
    assert_string_equal(l.input.video_codec, "mjpeg");
    assert_string_equal(l.input.pix_fmt, "yuvj422p");
    assert_int_equal(l.input.width, 1920);
    assert_int_equal(l.input.height, 1080);
    assert_true(l.input.fps == 30.0);
    assert_string_equal(l.input.audio_codec, "");
    /* A very long line is cut, not overrun. */
    static char huge[5000];
    memset(huge, 'x', sizeof(huge));
    assert_false(relay_ff_log_line(&l, huge, sizeof(huge)));
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/stw-ff-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    const char *ff = "ffmpeg -nostdin -v error -y";
    sh("%s -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine=sample_rate=48000 -t 4 "
       "-c:v libx264 -pix_fmt yuv420p -g 25 -c:a aac -f mpegts %s",
       ff, path_of("av.ts"));
    sh("%s -f lavfi -i testsrc=size=1280x720:rate=25 -f lavfi -i sine=sample_rate=44100 -t 2 -ac 2 "
       "-c:v libx264 -pix_fmt yuv420p -g 25 -c:a aac -f mpegts %s",
       ff, path_of("hd.ts"));
    sh("%s -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine=sample_rate=48000 -t 8 "
       "-c:v libx264 -pix_fmt yuv420p -g 25 -c:a aac -f mpegts %s",
       ff, path_of("push.ts"));
    sh("mkdir -p %s && %s -i %s -c copy -f hls -hls_time 1 -hls_list_size 0 %s", path_of("hls"), ff,
       path_of("av.ts"), path_of("hls/index.m3u8"));
    sh("sed 's#^index#file:%s/hls/index#' %s > %s", dir, path_of("hls/index.m3u8"),
       path_of("hls/evil.m3u8"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_url_accepted),
        STW_TEST(test_url_refused),
        STW_TEST(test_argv),
        STW_TEST(test_whitelists),
        STW_TEST(test_log_captured),
        STW_TEST(test_timeouts_real),
        STW_TEST(test_hls_whitelist_real),
        STW_TEST(test_ingest_file_to_jpeg),
        STW_TEST(test_ingest_live_real),
        STW_TEST(test_push_real),
        STW_TEST(test_push_whitelist_enforced),
    };
    return cmocka_run_group_tests_name("ffmpeg", tests, setup, teardown);
}
