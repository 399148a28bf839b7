/* leak-test: three 100-byte blocks lost from one function, one block freed
 * expect: heap 3 lose_three class=definitely bytes=300
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void lose_three(void)
{
    for (volatile int i = 0; i < 3; i++) {
        char *p = malloc(100);
        p[0] = (char)i;
        /* p goes out of scope: nothing points at the block any more. */
    }
}

int main(void)
{
    lose_three();
    void *kept = malloc(10);
    free(kept);
    printf("done\n");
    return 0;
}
