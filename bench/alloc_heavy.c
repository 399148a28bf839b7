/*
 * Allocation-heavy workload for the checker benchmark: THREADS threads each
 * make N small allocations (16..271 bytes) through a few call paths, keep a
 * sliding window of 1024 live blocks, and free everything at the end.
 *   alloc_heavy [N-per-thread] [threads]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 1024

static long per_thread = 2000000;

__attribute__((noinline)) static void *make_small(size_t n)
{
    return malloc(n);
}

__attribute__((noinline)) static void *make_record(size_t n)
{
    void *p = make_small(n);
    if (p != NULL)
        memset(p, 0, n < 32 ? n : 32);
    return p;
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void **window = calloc(WINDOW, sizeof(void *));
    for (long i = 0; i < per_thread; i++) {
        size_t slot = (size_t)i % WINDOW;
        free(window[slot]);
        seed = seed * 1103515245 + 12345;
        size_t n = 16 + (seed >> 16) % 256;
        window[slot] = (i & 1) ? make_small(n) : make_record(n);
    }
    for (size_t k = 0; k < WINDOW; k++)
        free(window[k]);
    free(window);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2;
    if (argc > 1)
        per_thread = atol(argv[1]);
    if (argc > 2)
        threads = atoi(argv[2]);
    if (per_thread <= 0 || threads <= 0 || threads > 64) {
        fprintf(stderr, "usage: alloc_heavy [allocations-per-thread] [threads 1..64]\n");
        return 2;
    }
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("%ld allocations in %d threads\n", per_thread * threads, threads);
    return 0;
}
