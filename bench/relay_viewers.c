/* Viewer load generator for the relay benchmarks (bench/relay_bench.py).
 *
 *   relay_viewers HOST PORT [-n N] [--stall S] [--path P] [-t SECONDS]
 *                 [--warmup SECONDS] [--pid SERVER_PID]
 *
 * Opens N reading and S stalled TCP connections to HOST:PORT (non-blocking,
 * one epoll loop, one thread). With --path each sends "GET P HTTP/1.1"
 * (the relay); without it nothing is sent (tcpserversink and the raw sender
 * stream as soon as they accept). Reading viewers read as fast as they can
 * and count bytes and complete JPEG frames (EOI markers FF D9: JPEG entropy
 * data stuffs every FF with 00, so the marker appears once per frame).
 * Stalled viewers set a tiny SO_RCVBUF before connecting, send the request
 * and never read.
 *
 * Timeline: connect everything, --batch connections every --interval-ms
 * (default 4 per 5 ms) with at most --pending (default 16) connections
 * opened and not yet served (no byte received): tcpserversink listens with
 * a backlog of 5, and a connection that overflows an accept queue waits
 * for the kernel's SYN or SYN-ACK retransmissions (1 s, 2 s, 4 s...). Wait
 * until every connection has received its first byte (at most 30 s), run
 * --warmup seconds uncounted, then count for -t seconds. Stalled viewers notice their first byte
 * with EPOLLIN once and never read it. With --pid, the server's CPU time (utime+stime from
 * /proc/PID/stat) is taken over the counted window, and its VmRSS and the
 * kernel's TCP memory (/proc/net/sockstat "TCP: ... mem PAGES") are sampled
 * every 100 ms from before the first connect to the end.
 *
 * Prints one JSON object on stdout. Every socket is closed before exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct viewer viewer;
static double now(void);
static int open_viewer(viewer *w, int ep, unsigned idx, const struct sockaddr_in *sa);

struct viewer {
    int fd;
    int stalled;
    double t_open;
    int connected; /* connect completed */
    int sent;      /* request fully sent (or none to send) */
    int got_first; /* first byte received */
    int closed;    /* EOF or error after connecting */
    int last_ff;   /* previous byte read was 0xFF */
    size_t req_off;
    uint64_t bytes; /* counted window only */
    uint64_t frames;
};

/* Start a non-blocking connect; 0 on success, -1 (viewer closed) on failure. */
static int open_viewer(viewer *w, int ep, unsigned idx, const struct sockaddr_in *sa)
{
    w->connected = w->sent = w->got_first = w->closed = w->last_ff = 0;
    w->req_off = 0;
    w->t_open = now();
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0) {
        w->closed = 1;
        return -1;
    }
    if (w->stalled) {
        int small = 1; /* the kernel rounds it up to its minimum */
        setsockopt(w->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    int r = connect(w->fd, (const struct sockaddr *)sa, sizeof *sa);
    if (r < 0 && errno != EINPROGRESS) {
        close(w->fd);
        w->fd = -1;
        w->closed = 1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, w->fd, &ev);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime+stime of PID in seconds, -1 if unreadable. */
static double proc_cpu(int pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14)
     * stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key: N kB" field of /proc/PID/status, -1 if unreadable. */
static long proc_status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* "TCP: inuse .. orphan .. tw .. alloc .. mem PAGES" */
static long tcp_mem_pages(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "TCP:", 4) == 0) {
            char *m = strstr(line, " mem ");
            if (m)
                v = strtol(m + 5, NULL, 10);
        }
    }
    fclose(f);
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: relay_viewers HOST PORT [-n N] [--stall S] [--path P] [-t SECONDS] "
            "[--warmup SECONDS] [--pid SERVER_PID] [--batch N] [--interval-ms MS] [--pending N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int n = 1, nstall = 0, pid = 0;
    const char *path = NULL;
    double secs = 5, warmup = 1, interval = 0.005;
    int batch = 4, max_pending = 16;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "-n"))
            n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--stall"))
            nstall = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--path"))
            path = argv[++i];
        else if (!strcmp(argv[i], "-t"))
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atof(argv[++i]);
        else if (!strcmp(argv[i], "--pid"))
            pid = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pending"))
            max_pending = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interval-ms"))
            interval = atof(argv[++i]) / 1000;
        else
            usage();
    }
    int total = n + nstall;
    char req[512] = "";
    if (path)
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: relay_viewers\r\n\r\n", path, host,
                 port);
    size_t reqlen = strlen(req);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "relay_viewers: bad IPv4 address %s\n", host);
        return 2;
    }
    viewer *v = calloc((size_t)(total > 0 ? total : 1), sizeof *v);
    uint64_t *per = calloc((size_t)(n > 0 ? n : 1), sizeof *per);
    enum { BUFSZ = 1 << 20 };
    unsigned char *buf = malloc(BUFSZ);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!v || !per || !buf || ep < 0) {
        perror("relay_viewers: setup");
        return 1;
    }

    long mem_before = tcp_mem_pages(), mem_peak = mem_before;
    long rss_before = pid ? proc_status_kb(pid, "VmRSS") : -1, rss_peak = rss_before;
    int failed = 0, opened = 0, retries = 0;
    double t0 = now(), next_batch = t0, next_sample = t0;
    double ready_at = 0, count_start = 0, count_end = 0;
    double cpu_start = -1, cpu_end = -1;
    int counting = 0, done = 0;
    struct epoll_event evs[512];

    while (!done) {
        double t = now();
        /* open the next batch of connections */
        int pending = 0;
        for (int i = 0; i < opened; i++)
            pending += !v[i].closed && !v[i].got_first;
        if (opened < total && t >= next_batch) {
            for (int k = 0; k < batch && opened < total && pending < max_pending;
                 k++, opened++, pending++) {
                v[opened].stalled = opened >= n;
                if (open_viewer(&v[opened], ep, (unsigned)opened, &sa) < 0)
                    failed++;
            }
            next_batch = t + interval;
        }
        /* reconnect connections the server never started serving */
        if (!ready_at) {
            for (int i = 0; i < opened; i++) {
                viewer *w = &v[i];
                if (w->closed || w->got_first || t - w->t_open < 10)
                    continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
                close(w->fd);
                retries++;
                if (open_viewer(w, ep, (unsigned)i, &sa) < 0)
                    failed++;
            }
        }
        /* sample the server and the kernel */
        if (t >= next_sample) {
            long m = tcp_mem_pages();
            if (m > mem_peak)
                mem_peak = m;
            if (pid) {
                long r = proc_status_kb(pid, "VmRSS");
                if (r > rss_peak)
                    rss_peak = r;
            }
            next_sample = t + 0.1;
        }
        /* phases */
        if (!ready_at && opened == total) {
            int ready = 1;
            for (int i = 0; i < total && ready; i++) {
                viewer *w = &v[i];
                if (w->closed)
                    continue;
                if (!w->got_first)
                    ready = 0;
            }
            if (ready || t - t0 > 30)
                ready_at = t;
        }
        if (ready_at && !counting && !count_end && t >= ready_at + warmup) {
            counting = 1;
            count_start = t;
            if (pid)
                cpu_start = proc_cpu(pid);
        }
        if (counting && t >= count_start + secs) {
            if (pid)
                cpu_end = proc_cpu(pid);
            counting = 0;
            count_end = t;
            done = 1;
            break;
        }

        int ne = epoll_wait(ep, evs, 512, 20);
        for (int e = 0; e < ne; e++) {
            viewer *w = &v[evs[e].data.u32];
            if (w->closed)
                continue;
            if (!w->connected && (evs[e].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    failed++;
                    w->closed = 1;
                    epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
                    continue;
                }
                w->connected = 1;
            }
            if (w->connected && !w->sent) {
                while (w->req_off < reqlen) {
                    ssize_t s = send(w->fd, req + w->req_off, reqlen - w->req_off, MSG_NOSIGNAL);
                    if (s <= 0)
                        break;
                    w->req_off += (size_t)s;
                }
                if (w->req_off == reqlen) {
                    w->sent = 1;
                    struct epoll_event ev = {.events = (w->stalled && w->got_first) ? 0 : EPOLLIN,
                                             .data.u32 = evs[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
                }
            }
            if (w->stalled) {
                if (evs[e].events & (EPOLLHUP | EPOLLERR)) {
                    w->closed = 1;
                    epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
                } else if ((evs[e].events & EPOLLIN) && !w->got_first) {
                    /* served: from now on never read, never woken */
                    w->got_first = 1;
                    struct epoll_event ev = {.events = 0, .data.u32 = evs[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
                }
                continue;
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = read(w->fd, buf, BUFSZ);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                w->closed = 1;
                epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
                continue;
            }
            w->got_first = 1;
            /* count EOI markers, also across reads */
            uint64_t fr = 0;
            const unsigned char *p = buf, *end = buf + r;
            if (w->last_ff && p[0] == 0xD9)
                fr++;
            while (p < end) {
                const unsigned char *f = memchr(p, 0xFF, (size_t)(end - p));
                if (!f)
                    break;
                if (f + 1 < end && f[1] == 0xD9)
                    fr++;
                p = f + 1;
            }
            w->last_ff = buf[r - 1] == 0xFF;
            if (counting) {
                w->bytes += (uint64_t)r;
                w->frames += fr;
            }
        }
    }

    long hwm = pid ? proc_status_kb(pid, "VmHWM") : -1;
    double win = count_end - count_start;
    uint64_t bytes = 0, frames = 0;
    int closed = 0, connected = 0;
    for (int i = 0; i < total; i++) {
        if (v[i].connected)
            connected++;
        if (v[i].closed && v[i].connected)
            closed++;
        if (i < n) {
            bytes += v[i].bytes;
            frames += v[i].frames;
            per[i] = v[i].frames;
        }
    }
    qsort(per, (size_t)n, sizeof *per, cmp_u64);
    int unserved = 0;
    for (int i = 0; i < total; i++)
        unserved += !v[i].got_first;
    printf("{\"viewers\":%d,\"stalled\":%d,\"connected\":%d,\"failed\":%d,\"closed\":%d,"
           "\"retries\":%d,\"unserved\":%d,\"ready_s\":%.3f,\"seconds\":%.3f,\"bytes\":%llu,"
           "\"frames\":%llu,",
           n, nstall, connected, failed, closed, retries, unserved, ready_at - t0, win,
           (unsigned long long)bytes, (unsigned long long)frames);
    if (n > 0)
        printf("\"fps_viewer_min\":%.2f,\"fps_viewer_median\":%.2f,\"fps_viewer_max\":%.2f,",
               (double)per[0] / win, (double)per[n / 2] / win, (double)per[n - 1] / win);
    printf("\"server_cpu_s\":%.3f,\"server_hwm_kb\":%ld,\"server_rss_before_kb\":%ld,\"server_rss_"
           "peak_kb\":%ld,"
           "\"tcp_mem_pages_before\":%ld,\"tcp_mem_pages_peak\":%ld}\n",
           (cpu_start >= 0 && cpu_end >= 0) ? cpu_end - cpu_start : -1.0, hwm, rss_before, rss_peak,
           mem_before, mem_peak);
    fflush(stdout);
    for (int i = 0; i < total; i++)
        if (v[i].fd > 0)
            close(v[i].fd);
    close(ep);
    free(v);
    free(per);
    free(buf);
    return 0;
}
