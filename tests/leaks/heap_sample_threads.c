/* leak-test: sampling mode: blocks lost by threads that were joined are lost although their pointers stay on the cached stacks; blocks the threads published stay reachable
 * checker-args: --sample=64k
 * expect: heap 8 lose_in_thread class=definitely bytes=1638400
 * repeat: 20
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 8
/* Above 1.5 times the period: always sampled. */
#define BIG (200 * 1024)

static void *kept[NTHREADS];

/* The pointer stays in this dead frame of the thread's stack, which glibc
 * caches for reuse after the join: no root. */
static __attribute__((noinline)) void lose_in_thread(void)
{
    void *volatile p = malloc(BIG);
    memset(p, 'l', BIG);
    __asm__ volatile("" : : "r"((void *)p) : "memory");
}

static void *worker(void *arg)
{
    long i = (long)arg;
    lose_in_thread();
    kept[i] = malloc(BIG);
    memset(kept[i], 'k', BIG);
    return NULL;
}

int main(void)
{
    /* Small stacks, so that glibc keeps all of them in its cache after the
     * joins: a stack it unmaps leaves stale pointers into itself in freed
     * chunks (the thread's DTV), which sampling mode reads as heap, and a
     * block mapped there later would look reachable through them. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t t[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], &attr, worker, (void *)i) != 0)
            return 1;
    pthread_attr_destroy(&attr);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    int n = 0;
    for (int i = 0; i < NTHREADS; i++)
        n += kept[i] != NULL;
    printf("%d kept\n", n);
    return 0;
}
