/* leak-test: streams made over other descriptors or memory are never closed: fdopen, fdopendir, tmpfile, open_memstream; and a socketpair
 * expect: file 1 leak_fdopen label~fdopen:pipe
 * expect: dir 1 leak_fdopendir label~dir:/tmp
 * expect: file 1 leak_tmpfile label~tmpfile
 * expect: file 1 leak_memstream label~memstream
 * expect: socket 2 leak_socketpair label~(pair)
 * exit: 0
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* Globals keep the streams' own memory reachable: only the streams leak. */
FILE *kept_fdopen, *kept_tmpfile, *kept_memstream;
DIR *kept_dir;
char *membuf;
size_t memlen;

/* The pipe's read end becomes the stream's: one finding, the FILE. The
 * write end is closed. */
__attribute__((noinline)) static int leak_fdopen(void)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    close(p[1]);
    kept_fdopen = fdopen(p[0], "r");
    return kept_fdopen != NULL ? 0 : -1;
}

__attribute__((noinline)) static int leak_fdopendir(void)
{
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    kept_dir = fd >= 0 ? fdopendir(fd) : NULL;
    return kept_dir != NULL ? 0 : -1;
}

__attribute__((noinline)) static int leak_tmpfile(void)
{
    kept_tmpfile = tmpfile();
    return kept_tmpfile != NULL ? 0 : -1;
}

__attribute__((noinline)) static int leak_memstream(void)
{
    kept_memstream = open_memstream(&membuf, &memlen);
    return kept_memstream != NULL ? 0 : -1;
}

__attribute__((noinline)) static int leak_socketpair(void)
{
    int sv[2];
    return socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
}

int main(void)
{
    if (leak_fdopen() != 0 || leak_fdopendir() != 0 || leak_tmpfile() != 0 ||
        leak_memstream() != 0 || leak_socketpair() != 0)
        return 1;
    printf("done\n");
    return 0;
}
