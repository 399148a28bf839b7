/* leak-test: a descriptor made with a raw openat system call, which no hook sees; found at exit by reconciliation with /proc/self/fd
 * expect: fd 1 - label~untracked:/dev/null
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noinline)) static long raw_open(void)
{
    return syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY);
}

int main(void)
{
    if (raw_open() < 0)
        return 1;
    printf("done\n");
    return 0;
}
