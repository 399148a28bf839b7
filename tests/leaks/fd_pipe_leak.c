/* leak-test: both ends of a pipe are leaked (two records); a second pipe is closed
 * expect: fd 2 leak_pipe label~pipe
 * exit: 0
 */
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static int leak_pipe(void)
{
    int p[2];
    return pipe(p);
}

__attribute__((noinline)) static int pipe_and_close(void)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    (void)!write(p[1], "x", 1);
    char c;
    (void)!read(p[0], &c, 1);
    close(p[0]);
    close(p[1]);
    return 0;
}

int main(void)
{
    if (leak_pipe() != 0 || pipe_and_close() != 0)
        return 1;
    printf("piped\n");
    return 0;
}
