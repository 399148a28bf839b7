/* leak-test: every way a thread can be finished correctly: join, tryjoin, timedjoin,
 * pthread_exit, cancellation, detach after create, self-detach, detached attribute
 * expect: none
 * exit: 0
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static sem_t finished; /* posted by each detached thread as its last act */

static void *plain(void *arg)
{
    return arg;
}

static void *exits_early(void *arg)
{
    pthread_exit(arg);
}

/* Blocks in a cancellation point until cancelled. */
static void *cancellable(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

static void *detached_worker(void *arg)
{
    (void)arg;
    sem_post(&finished);
    return NULL;
}

static void *self_detaching(void *arg)
{
    pthread_detach(pthread_self());
    return detached_worker(arg);
}

static void *named(void *arg)
{
    pthread_setname_np(pthread_self(), "clean-named");
    return arg;
}

static __attribute__((noinline)) void join_variants(void)
{
    pthread_t t[5];
    void *r;
    pthread_create(&t[0], NULL, plain, NULL);
    pthread_join(t[0], &r);

    pthread_create(&t[1], NULL, exits_early, NULL);
    pthread_join(t[1], &r);

    pthread_create(&t[2], NULL, named, NULL);
    while (pthread_tryjoin_np(t[2], &r) != 0)
        usleep(1000);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_create(&t[3], NULL, plain, NULL);
    if (pthread_timedjoin_np(t[3], &r, &ts) != 0)
        abort();

    pthread_create(&t[4], NULL, cancellable, NULL);
    pthread_cancel(t[4]);
    pthread_join(t[4], &r);
    if (r != PTHREAD_CANCELED)
        abort();
}

static __attribute__((noinline)) void detach_variants(void)
{
    pthread_t t;
    pthread_create(&t, NULL, detached_worker, NULL);
    pthread_detach(t);

    pthread_create(&t, NULL, self_detaching, NULL);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 3; i++)
        pthread_create(&t, &attr, detached_worker, NULL);
    pthread_attr_destroy(&attr);

    /* Five detached threads: wait until each has done its work. They may
     * still be returning when main exits, which must not count. */
    for (int i = 0; i < 5; i++)
        sem_wait(&finished);
}

int main(void)
{
    sem_init(&finished, 0, 0);
    join_variants();
    detach_variants();
    printf("clean\n");
    return 0;
}
