/* leak-test: clean: stdin is closed and reopened (the new fd is the program's, and is closed); stderr is redirected with dup2 and freopen (still a standard stream, not reported)
 * expect: none
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    close(STDIN_FILENO);
    int fd = open("/dev/null", O_RDONLY);
    if (fd != STDIN_FILENO)
        return 1;
    close(fd);

    int null = open("/dev/null", O_WRONLY);
    if (null < 0 || dup2(null, STDERR_FILENO) != STDERR_FILENO)
        return 1;
    close(null);
    fprintf(stderr, "this goes to /dev/null\n");

    /* freopen of a standard stream redirects it; it stays libc's. */
    if (freopen("/dev/null", "w", stderr) == NULL)
        return 1;
    fprintf(stderr, "and so does this\n");
    printf("done\n");
    return 0;
}
