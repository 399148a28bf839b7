/* leak-test: a program built without frame pointers (-O2's default): the stack must still reach the caller's caller
 * cflags: -O2 -fomit-frame-pointer
 * expect: heap 1 outer_no_fp class=definitely bytes=48
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static char *inner_no_fp(int n)
{
    char *p = malloc((size_t)n);
    if (p != NULL)
        p[0] = 1;
    return p;
}

/* The planted leak's creation stack runs inner_no_fp <- outer_no_fp <-
 * main; outer_no_fp keeps rbp for its own use, so only CFI unwinding finds it. */
__attribute__((noinline)) static int outer_no_fp(int n)
{
    volatile int keep = n * 3;
    char *volatile p = inner_no_fp(n);
    int r = p != NULL ? p[0] + keep : 0;
    p = NULL;
    return r;
}

int main(void)
{
    printf("%d\n", outer_no_fp(48) > 0);
    return 0;
}
