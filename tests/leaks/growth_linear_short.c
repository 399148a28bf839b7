/* leak-test: a site that grows linearly for 3 seconds (a 64-byte node every 10 ms into a global list, never freed) is flagged as growing with the default sampling
 * expect: none
 * growth: append_node growing
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct node {
    struct node *next;
    char payload[56];
};

/* Reachable the whole time: an exit-time leak check calls none of it a leak. */
static struct node *head;

__attribute__((noinline)) static void append_node(void)
{
    struct node *n = calloc(1, sizeof(*n));
    n->next = head;
    head = n;
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(void)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* 3 s by the clock: on a loaded machine 10 ms naps last longer. */
    int nodes = 0;
    for (long t = 0; t < 3000; t = elapsed_ms(&t0)) {
        append_node();
        nodes++;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    printf("list built\n");
    return nodes > 0 ? 0 : 1;
}
