/* leak-test: the program leaves through _exit(), skipping atexit and destructors
 * expect: heap 2 lose_two class=definitely bytes=96
 * expect: fd 1 open_and_forget label~/dev/null
 * exit: 3
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static void lose_two(void)
{
    for (volatile int i = 0; i < 2; i++) {
        char *volatile p = malloc(48);
        p = NULL;
    }
}

__attribute__((noinline)) static void open_and_forget(void)
{
    volatile int fd = open("/dev/null", O_RDONLY);
    (void)fd;
}

int main(void)
{
    lose_two();
    open_and_forget();
    printf("bye\n");
    fflush(stdout);
    _exit(3);
}
