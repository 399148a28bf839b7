/* Raw loopback sender: the physical limit for the relay benchmarks.
 *
 *   relay_rawsend JPEG_FILE FPS
 *
 * Listens on 127.0.0.1 (ephemeral port, printed as "port N" on stdout),
 * accepts every connection and, FPS times a second, starts writing one
 * pre-encoded frame to every connection: the same multipart part the relay
 * sends ("--stwframe", Content-Type, Content-Length, the JPEG, CRLF), built
 * once at start. No HTTP parsing, no encoding, no copies: one buffer shared
 * by every connection, non-blocking send() straight from it. A connection
 * still busy with the previous frame skips the tick (latest wins, as in the
 * relay), so a slow or stalled reader costs nothing but its socket buffer.
 * Runs until SIGTERM/SIGINT, then closes every socket and exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;   /* in the middle of a frame */
    size_t off; /* bytes of the frame written */
} conn;

enum { MAXC = 65536, TAG_LISTEN = 0xFFFFFFF0u, TAG_TIMER, TAG_SIGNAL };

static unsigned char *frame;
static size_t frame_len;

/* Write as much of the frame as the socket takes; 1 when done or dead. */
static int pump(conn *c)
{
    while (c->off < frame_len) {
        ssize_t s = send(c->fd, frame + c->off, frame_len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (s < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        c->off += (size_t)s;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: relay_rawsend JPEG_FILE FPS\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long jl = ftell(f);
    fseek(f, 0, SEEK_SET);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "--stwframe\r\nContent-Type: image/jpeg\r\nContent-Length: %ld\r\n\r\n", jl);
    frame_len = (size_t)hl + (size_t)jl + 2;
    frame = malloc(frame_len);
    if (!frame || fread(frame + hl, 1, (size_t)jl, f) != (size_t)jl) {
        fprintf(stderr, "relay_rawsend: cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    memcpy(frame, head, (size_t)hl);
    memcpy(frame + hl + jl, "\r\n", 2);
    int fps = atoi(argv[2]);
    if (fps < 1)
        fps = 25;

    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
        perror("relay_rawsend: listen");
        return 1;
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    long ns = 1000000000L / fps;
    struct itimerspec its = {.it_interval = {ns / 1000000000L, ns % 1000000000L},
                             .it_value = {ns / 1000000000L, ns % 1000000000L}};
    timerfd_settime(tfd, 0, &its, NULL);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TAG_LISTEN};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.data.u32 = TAG_TIMER;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.u32 = TAG_SIGNAL;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    conn *cs = calloc(MAXC, sizeof *cs);
    int *live = calloc(MAXC, sizeof *live); /* indexes of open connections */
    int nlive = 0;
    unsigned char sink[4096];
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    struct epoll_event evs[256];
    int running = 1;
    while (running) {
        int ne = epoll_wait(ep, evs, 256, -1);
        for (int e = 0; e < ne; e++) {
            uint32_t tag = evs[e].data.u32;
            if (tag == TAG_SIGNAL) {
                running = 0;
            } else if (tag == TAG_LISTEN) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (fd >= MAXC) {
                        close(fd);
                        continue;
                    }
                    cs[fd] = (conn){.fd = fd};
                    live[nlive++] = fd;
                    struct epoll_event ce = {.events = EPOLLIN, .data.u32 = (uint32_t)fd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
            } else if (tag == TAG_TIMER) {
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof ticks) < 0)
                    continue;
                for (int i = 0; i < nlive; i++) {
                    conn *c = &cs[live[i]];
                    if (c->busy)
                        continue; /* still writing the previous frame: skip */
                    c->off = 0;
                    int r = pump(c);
                    if (r == 0) {
                        c->busy = 1;
                        struct epoll_event ce = {.events = EPOLLIN | EPOLLOUT,
                                                 .data.u32 = (uint32_t)c->fd};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ce);
                    }
                }
            } else {
                conn *c = &cs[tag];
                if (c->fd != (int)tag)
                    continue;
                int dead = 0;
                if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    ssize_t r = read(c->fd, sink, sizeof sink); /* discard requests */
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                        dead = 1;
                }
                if (!dead && c->busy && (evs[e].events & EPOLLOUT)) {
                    int r = pump(c);
                    if (r < 0)
                        dead = 1;
                    else if (r == 1) {
                        c->busy = 0;
                        struct epoll_event ce = {.events = EPOLLIN, .data.u32 = (uint32_t)c->fd};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ce);
                    }
                }
                if (dead) {
                    close(c->fd);
                    c->fd = 0;
                    for (int i = 0; i < nlive; i++)
                        if (live[i] == (int)tag) {
                            live[i] = live[--nlive];
                            break;
                        }
                }
            }
        }
    }
    for (int i = 0; i < nlive; i++)
        close(live[i]);
    close(ls);
    close(tfd);
    close(sfd);
    close(ep);
    free(cs);
    free(live);
    free(frame);
    return 0;
}
