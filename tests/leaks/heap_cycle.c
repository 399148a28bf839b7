/* leak-test: two blocks pointing at each other and at nothing else: one definitely, one indirectly lost
 * expect: heap 1 make_cycle class=definitely bytes=48
 * expect: heap 1 make_cycle class=indirectly bytes=48
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

struct peer {
    struct peer *other;
    char name[40];
};

/* The planted leak: a two-block cycle. Each block is pointed to, but only
 * from the other: the block allocated first is reported as definitely lost,
 * the second as lost through it. */
static __attribute__((noinline)) void make_cycle(void)
{
    struct peer *volatile a = malloc(sizeof(*a));
    struct peer *volatile b = malloc(sizeof(*b));
    a->other = b;
    b->other = a;
    snprintf(a->name, sizeof(a->name), "a");
    snprintf(b->name, sizeof(b->name), "b");
}

int main(void)
{
    make_cycle();
    printf("done\n");
    return 0;
}
