/* leak-test: a cache that keeps growing while reachable, and a table that grows then levels off
 * checker-args: --sample-interval 50 --report-signal=USR2
 * expect: none
 * growth: grow_cache growing
 * growth: fill_table levelled
 * log: report on demand
 * exit: 0
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Reachable the whole time: no exit-time leak check calls this a leak. */
static void *volatile cache[4096]; /* volatile: kept, not optimised away */
static int cached;
static void *volatile table[4096];
static int tabled;

__attribute__((noinline)) static void grow_cache(void)
{
    cache[cached++] = calloc(1, 16384);
}

__attribute__((noinline)) static void fill_table(void)
{
    table[tabled++] = calloc(1, 16384);
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(void)
{
    /* Natively SIGUSR2 would kill us; under the checker it asks for a
     * report, and the checker's handler must stay in place. */
    struct sigaction old;
    sigaction(SIGUSR2, NULL, &old);
    if (old.sa_handler == SIG_DFL)
        signal(SIGUSR2, SIG_IGN);
    /* 2.4 s by the clock, not by ticks: the checker samples by the clock,
     * and on a loaded machine 20 ms naps last longer. The table fills
     * during the first 0.8 s only (its last entries well before the
     * run's midpoint), the cache grows throughout. */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool reported = false;
    for (long t = 0; t < 2400; t = elapsed_ms(&t0)) {
        if (cached < 4096)
            grow_cache();
        if (t < 800 && tabled < 4096)
            fill_table();
        if (t >= 1200 && !reported) {
            raise(SIGUSR2);
            reported = true;
        }
        nap_ms(20);
    }
    printf("cache grew, table filled\n");
    return 0;
}
