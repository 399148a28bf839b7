/* leak-test: the copy made by dup() leaks while the original is closed; an fcntl F_DUPFD copy is closed
 * expect: fd 1 leak_dup label~(dup
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static int leak_dup(int fd)
{
    return dup(fd);
}

int main(void)
{
    int fd = open("/dev/null", O_RDONLY);
    if (fd < 0 || leak_dup(fd) < 0)
        return 1;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (copy < 10 || fcntl(copy, F_GETFD) != FD_CLOEXEC)
        return 1;
    close(copy);
    close(fd);
    printf("done\n");
    return 0;
}
