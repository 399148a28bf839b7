/* leak-test: a cache that keeps growing while reachable, and a table that grows then levels off
 * checker-args: --sample-interval=50 --report-signal=USR2
 * expect: none
 * growth: grow_cache growing
 * growth: fill_table levelled
 * log: report on demand
 * exit: 0
 */
#include <signal.h>
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

int main(void)
{
    /* Natively SIGUSR2 would kill us; under the checker it asks for a
     * report, and the checker's handler must stay in place. */
    struct sigaction old;
    sigaction(SIGUSR2, NULL, &old);
    if (old.sa_handler == SIG_DFL)
        signal(SIGUSR2, SIG_IGN);
    /* 2.4 s: the table fills during the first half only, the cache grows
     * throughout. */
    for (int tick = 0; tick < 120; tick++) {
        grow_cache();
        if (tick < 50)
            fill_table();
        if (tick == 60)
            raise(SIGUSR2);
        nap_ms(20);
    }
    printf("cache %d entries, table %d entries\n", cached, tabled);
    return 0;
}
