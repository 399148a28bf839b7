/* leak-test: exit() called deep in the program: blocks held by live callers are reachable, a dropped one is lost
 * expect: heap 1 lose_before_exit class=definitely bytes=77
 * exit: 3
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

/* The planted leak. */
static __attribute__((noinline)) void lose_before_exit(void)
{
    sink = malloc(77);
    sink = NULL;
}

/* Called with a block its caller still uses: exiting here leaves that
 * block in a live frame, which is not a leak. */
static __attribute__((noinline)) void fail(const char *what)
{
    lose_before_exit();
    printf("fatal: %s\n", what);
    fflush(stdout);
    exit(3);
}

static __attribute__((noinline)) void process(void)
{
    char *volatile work = malloc(300);
    strcpy(work, "work in progress");
    fail(work);
}

int main(void)
{
    process();
    return 0;
}
