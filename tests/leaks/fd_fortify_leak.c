/* leak-test: built with _FORTIFY_SOURCE and 64-bit file offsets: leaks through __open64_2, fopen64 and fcntl64(F_DUPFD)
 * cflags: -O2 -D_FORTIFY_SOURCE=2 -D_FILE_OFFSET_BITS=64
 * expect: fd 1 leak_fortified_open label~file:/dev/null
 * expect: file 1 leak_fopen64 label~file:/dev/zero
 * expect: fd 1 leak_fcntl_dup label~(dup
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* Flags the compiler cannot see make the fortified open call __open64_2. */
static volatile int rdonly = O_RDONLY;
/* Each planting function stores its result here after the call, so that at
 * -O2 the call is not turned into a tail jump that would drop the
 * function's own frame from the stack. */
static volatile long sink;

__attribute__((noinline)) static int leak_fortified_open(void)
{
    int fd = open("/dev/null", rdonly);
    sink = fd;
    return fd;
}

__attribute__((noinline)) static FILE *leak_fopen64(void)
{
    FILE *f = fopen("/dev/zero", "r");
    sink = (long)f;
    return f;
}

__attribute__((noinline)) static int leak_fcntl_dup(int fd)
{
    int copy = fcntl(fd, F_DUPFD, 20);
    sink = copy;
    return copy;
}

int main(void)
{
    int fd = leak_fortified_open();
    if (fd < 0 || leak_fopen64() == NULL || leak_fcntl_dup(fd) < 20)
        return 1;
    printf("done\n");
    return 0;
}
