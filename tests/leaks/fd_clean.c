/* leak-test: clean: every descriptor, socket and stream made through the hooked calls is released
 * expect: none
 * exit: 0
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "failed: %s (line %d)\n", #c, __LINE__);                               \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

static void open_close_loop(void)
{
    for (int i = 0; i < 1000; i++) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(close(fd) == 0);
    }
}

/* fdopen hands the descriptor to the stream; fclose closes both. */
static void fdopen_fclose(void)
{
    int fd = open("/dev/null", O_WRONLY);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK(f != NULL);
    CHECK(fclose(f) == 0);
}

/* dup2 onto an open descriptor closes it implicitly. */
static void dup2_over_existing(void)
{
    int a = open("/dev/null", O_RDONLY);
    int b = open("/dev/zero", O_RDONLY);
    CHECK(a >= 0 && b >= 0);
    CHECK(dup2(a, b) == b);
    CHECK(dup2(a, a) == a);
    CHECK(dup3(b, a, O_CLOEXEC) == a);
    close(a);
    close(b);
}

static void close_range_many(void)
{
    int first = open("/dev/null", O_RDONLY);
    CHECK(first >= 0);
    int last = first;
    for (int i = 0; i < 8; i++)
        last = open("/dev/null", O_RDONLY);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    last = p[1] > last ? p[1] : last;
    last = s > last ? s : last;
    /* CLOEXEC only marks; nothing is closed. */
    CHECK(close_range((unsigned)first, (unsigned)last, CLOSE_RANGE_CLOEXEC) == 0);
    CHECK(close_range((unsigned)first, (unsigned)last, 0) == 0);
    CHECK(fcntl(first, F_GETFD) == -1 && errno == EBADF);
}

static void socketpair_closed(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(write(sv[0], "x", 1) == 1);
    char c;
    CHECK(read(sv[1], &c, 1) == 1);
    close(sv[0]);
    close(sv[1]);
}

static void tcp_roundtrip(void)
{
    int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t alen = sizeof(a);
    CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(lfd, 1) == 0 && getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    int cfd = socket(AF_INET6, SOCK_STREAM, 0);
    CHECK(connect(cfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    int afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(afd >= 0);
    close(afd);
    close(cfd);
    close(lfd);
}

static void event_descriptors(void)
{
    int e = eventfd(0, 0);
    int ep = epoll_create(1);
    CHECK(e >= 0 && ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev) == 0);
    close(e);
    close(ep);
}

static void streams(void)
{
    DIR *d = opendir("/");
    CHECK(d != NULL);
    CHECK(readdir(d) != NULL);
    closedir(d);

    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY);
    CHECK(dfd >= 0);
    d = fdopendir(dfd);
    CHECK(d != NULL);
    closedir(d);

    FILE *t = tmpfile();
    CHECK(t != NULL);
    fputs("scratch", t);
    fclose(t);

    char buf[64];
    FILE *m = fmemopen(buf, sizeof(buf), "w");
    CHECK(m != NULL);
    fprintf(m, "%d", 42);
    fclose(m);

    char *out = NULL;
    size_t outlen = 0;
    m = open_memstream(&out, &outlen);
    CHECK(m != NULL);
    fprintf(m, "hello");
    fclose(m);
    free(out);

    /* freopen replaces the descriptor under the same FILE. */
    FILE *f = fopen("/dev/null", "r");
    CHECK(f != NULL);
    f = freopen("/dev/zero", "r", f);
    CHECK(f != NULL && fgetc(f) == 0);
    fclose(f);
}

/* The checker must leave errno exactly as the real calls do. */
static void errno_untouched(void)
{
    errno = 1234;
    int fd = open("/dev/null", O_RDONLY);
    CHECK(fd >= 0 && errno == 1234);
    CHECK(close(fd) == 0 && errno == 1234);
    CHECK(open("/nonexistent/x", O_RDONLY) == -1 && errno == ENOENT);
    CHECK(close(-1) == -1 && errno == EBADF);
    CHECK(dup2(-1, 50) == -1 && errno == EBADF);
    CHECK(fcntl(-1, F_DUPFD, 0) == -1 && errno == EBADF);
    CHECK(fopen("/nonexistent/x", "r") == NULL && errno == ENOENT);
}

/* fcntl commands other than F_DUPFD pass through with their argument,
 * whatever its type. */
static void fcntl_passthrough(void)
{
    char path[] = "/tmp/steward-fd-clean-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_APPEND) == 0);
    CHECK((fcntl(fd, F_GETFL) & O_APPEND) != 0);
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    CHECK(fcntl(fd, F_SETLK, &lk) == 0);
    lk.l_type = F_UNLCK;
    CHECK(fcntl(fd, F_SETLK, &lk) == 0);
    close(fd);

    fd = creat("/tmp/steward-fd-clean-creat", 0600);
    CHECK(fd >= 0);
    close(fd);
    unlink("/tmp/steward-fd-clean-creat");
}

/* closefrom releases everything above the mark. */
static void closefrom_high(void)
{
    int fd = open("/dev/null", O_RDONLY);
    CHECK(fd >= 0);
    CHECK(dup2(fd, 200) == 200 && dup2(fd, 201) == 201 && fcntl(fd, F_DUPFD, 202) >= 202);
    close(fd);
    closefrom(200);
    CHECK(fcntl(200, F_GETFD) == -1);
}

int main(void)
{
    fcntl_passthrough();
    closefrom_high();
    open_close_loop();
    fdopen_fclose();
    dup2_over_existing();
    close_range_many();
    socketpair_closed();
    tcp_roundtrip();
    event_descriptors();
    streams();
    errno_untouched();
    printf("clean\n");
    return 0;
}
