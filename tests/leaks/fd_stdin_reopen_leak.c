/* leak-test: stdin (inherited) is closed and a new file takes number 0; that one is the program's and leaks
 * expect: fd 1 reopen_stdin label~file:/dev/null
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) static int reopen_stdin(void)
{
    close(STDIN_FILENO);
    return open("/dev/null", O_RDONLY);
}

int main(void)
{
    if (reopen_stdin() != STDIN_FILENO)
        return 1;
    printf("done\n");
    return 0;
}
