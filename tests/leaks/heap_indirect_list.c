/* leak-test: a lost list: the head is definitely lost, its three nodes indirectly
 * expect: heap 1 make_list class=definitely bytes=24
 * expect: heap 3 new_node class=indirectly bytes=96
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *next;
    long value[3];
};

struct list {
    struct node *first;
    long count;
    long spare;
};

static __attribute__((noinline)) struct node *new_node(long v, struct node *next)
{
    struct node *n = calloc(1, sizeof(*n));
    n->value[0] = v;
    n->next = next;
    return n;
}

/* The planted leak: the list header goes out of scope unfreed. Only it
 * pointed at the nodes, so they are lost through it (indirectly). */
static __attribute__((noinline)) long make_list(void)
{
    struct list *volatile l = malloc(sizeof(*l));
    l->first = NULL;
    for (long i = 0; i < 3; i++)
        l->first = new_node(i, l->first);
    l->count = 3;
    return l->count;
}

int main(void)
{
    printf("%ld nodes\n", make_list());
    return 0;
}
