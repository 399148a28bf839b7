/* leak-test: a pointer overwritten by a second allocation loses the first block
 * expect: heap 1 overwrite class=definitely bytes=64
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The planted leak: @p is reassigned before the 64-byte block is freed, so
 * the only pointer to it is gone; the 32-byte block is freed. */
static __attribute__((noinline)) void overwrite(void)
{
    char *volatile p = malloc(64);
    memset(p, 'a', 64);
    p = malloc(32);
    memset(p, 'b', 32);
    free(p);
}

int main(void)
{
    overwrite();
    printf("done\n");
    return 0;
}
