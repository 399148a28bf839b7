/* leak-test: a double free and an invalid free, reported without crashing
 * expect: none
 * bad-frees: 2
 * native: aborts
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void free_twice(void)
{
    char *volatile p = malloc(24);
    free(p);
    free(p); /* glibc would abort here; the checker reports and skips it */
}

__attribute__((noinline)) static void free_stack_address(void)
{
    char local[16];
    char *volatile q = local + 1;
    free(q);
}

int main(void)
{
    free_twice();
    free_stack_address();
    printf("still running\n");
    return 0;
}
