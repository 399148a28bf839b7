/* leak-test: an unjoined thread that finished: the block it dropped is lost, the value it returned is still reachable
 * expect: thread 1 spawn state=exited
 * expect: heap 1 drop_scratch class=definitely bytes=333
 * exit: 0
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int finished;
static void *volatile sink;

static __attribute__((noinline)) void drop_scratch(void)
{
    sink = malloc(333);
    memset(sink, 0, 333);
    sink = NULL;
}

/* Returns a block: a thread that is never joined keeps its result in its
 * descriptor, where pthread_join would still find it. */
static void *work(void *arg)
{
    (void)arg;
    drop_scratch();
    char *result = malloc(50);
    strcpy(result, "result");
    atomic_store(&finished, 1);
    return result;
}

/* The planted leak: the thread is neither joined nor detached. */
static __attribute__((noinline)) void spawn(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, work, NULL) != 0)
        abort();
}

int main(void)
{
    spawn();
    while (!atomic_load(&finished))
        usleep(1000);
    /* Let the thread finish exiting. */
    usleep(100 * 1000);
    printf("done\n");
    return 0;
}
