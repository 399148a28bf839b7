/* leak-test: a lost 2664-byte block carved last from the top chunk: glibc's main_arena.top points into its last bytes
 * expect: heap 1 carve_last class=definitely bytes=2664
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

/* 2664 is not a multiple of 16: the block's last 4 bytes share the top
 * chunk's header word, where main_arena.top (in libc's data) points. */
static __attribute__((noinline)) void carve_last(void)
{
    sink = malloc(2664);
    memset(sink, 1, 2664);
    sink = NULL;
}

int main(void)
{
    printf("carving\n");
    fflush(stdout);
    carve_last();
    return 0;
}
