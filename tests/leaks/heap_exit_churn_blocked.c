/* leak-test: threads that block every signal, still allocating and freeing when main returns (they cannot be parked: the report re-validates what it calls lost): the exit report must reflect one moment (nothing they freed meanwhile is "lost")
 * expect: thread 4 start_churn state=running
 * repeat: 20
 * exit: 0
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 64

/* Each thread keeps its blocks in a global table (reachable) and swaps
 * them out as fast as it can; a node also moves through a short list. */
struct node {
    struct node *next;
    char payload[40];
};

static void *_Atomic slots[4][SLOTS];
static struct node *_Atomic lists[4];
static atomic_int started;

static void *churn(void *arg)
{
    int t = (int)(long)arg;
    unsigned seed = (unsigned)t * 7919u + 1;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    atomic_fetch_add(&started, 1);
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t size = 16 + (seed >> 16) % 2000;
        void *p = malloc(size);
        memset(p, 0, size < 64 ? size : 64);
        free(atomic_exchange(&slots[t][(seed >> 8) % SLOTS], p));
        struct node *n = malloc(sizeof(*n));
        n->next = atomic_exchange(&lists[t], NULL);
        if (n->next != NULL) {
            free(n->next);
            n->next = NULL;
        }
        atomic_store(&lists[t], n);
    }
    return NULL;
}

/* The planted findings: four threads still running at exit. */
static __attribute__((noinline)) void start_churn(void)
{
    for (long t = 0; t < 4; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, churn, (void *)t) != 0)
            abort();
    }
}

int main(void)
{
    start_churn();
    while (atomic_load(&started) < 4)
        ;
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL);
    printf("exiting while they churn\n");
    return 0;
}
