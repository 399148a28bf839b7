/* leak-test: bad frees are reported with where the block was allocated; a bad realloc's report starts at its caller
 * expect: none
 * bad-frees: 3
 * native: aborts
 * log: double free of
 * log: block of 24 bytes allocated at:
 * log: alloc_twice_freed
 * log: address is 8 bytes inside a block of 40 bytes allocated at:
 * log: alloc_for_interior
 * log: realloc of freed block
 * log: realloc_after_free
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

/* Each allocating function appears only in an allocation stack, and
 * realloc_after_free only in the stack of the bad realloc itself. */
__attribute__((noinline)) static char *alloc_twice_freed(void)
{
    return malloc(24);
}

__attribute__((noinline)) static char *alloc_for_interior(void)
{
    return malloc(40);
}

__attribute__((noinline)) static char *alloc_for_realloc(void)
{
    return malloc(16);
}

__attribute__((noinline)) static void free_twice(char *p)
{
    free(p);
    free(p); /* glibc would abort here */
}

__attribute__((noinline)) static void free_interior(char *p)
{
    free(p + 8);
}

__attribute__((noinline)) static void *realloc_after_free(char *p)
{
    return realloc(p, 64);
}

int main(void)
{
    char *volatile a = alloc_twice_freed();
    free_twice(a);
    char *volatile b = alloc_for_interior();
    free_interior(b);
    free(b);
    char *volatile c = alloc_for_realloc();
    free(c);
    void *volatile r = realloc_after_free(c);
    printf("still running: %s\n", r == NULL ? "refused" : "moved");
    return 0;
}
