/* leak-test: one file from open() is never closed; another is closed properly
 * expect: fd 1 leak_open label~file:/tmp/steward-fd-open-leak
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* The planted leak: the descriptor is returned and forgotten. */
__attribute__((noinline)) static int leak_open(const char *path)
{
    return open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
}

__attribute__((noinline)) static void open_and_close(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0)
        close(fd);
}

int main(void)
{
    const char *path = "/tmp/steward-fd-open-leak";
    if (leak_open(path) < 0)
        return 1;
    open_and_close(path);
    unlink(path);
    printf("done\n");
    return 0;
}
