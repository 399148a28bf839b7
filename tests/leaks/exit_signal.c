/* leak-test: the program dies by SIGTERM with its default action; the report is still written
 * expect: heap 1 lose_one class=definitely bytes=200
 * exit: 143
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void lose_one(void)
{
    char *volatile p = malloc(200);
    p = NULL;
}

int main(void)
{
    lose_one();
    printf("about to die\n");
    fflush(stdout);
    raise(SIGTERM);
    return 0;
}
