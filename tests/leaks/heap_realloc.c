/* leak-test: a buffer grown by realloc and then dropped is lost at its last size
 * expect: heap 1 grow class=definitely bytes=4000
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *kept;

/* The planted leak: the final 4000-byte block; the earlier sizes were
 * handed back by realloc and are not leaks. */
static __attribute__((noinline)) size_t grow(void)
{
    char *volatile p = NULL;
    for (size_t n = 500; n <= 4000; n *= 2) {
        p = realloc(p, n);
        memset(p, 'g', n);
    }
    return strlen("grown");
}

/* Not a leak: shrunk in place or moved, the block stays reachable from a
 * global until exit. */
static __attribute__((noinline)) void shrink_and_keep(void)
{
    char *p = malloc(1 << 16);
    memset(p, 's', 1 << 16);
    kept = realloc(p, 100);
}

int main(void)
{
    size_t n = grow();
    shrink_and_keep();
    printf("%zu %c\n", n, kept[0]);
    return 0;
}
