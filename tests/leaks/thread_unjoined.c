/* leak-test: threads that ended but were never joined or detached: two that returned
 * (one of them named), one that called pthread_exit, one that was cancelled
 * expect: thread 2 spawn_workers state=exited
 * expect: thread 2 spawn_enders state=exited
 * exit: 0
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_int done;

static void *work(void *arg)
{
    if (arg != NULL)
        pthread_setname_np(pthread_self(), "named-worker");
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *exits(void *arg)
{
    (void)arg;
    atomic_fetch_add(&done, 1);
    pthread_exit(NULL);
}

static void *waits_for_cancel(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* The planted leaks: the pthread_t values are dropped, so nobody can
 * ever join these threads; their stacks stay allocated. */
static __attribute__((noinline)) void spawn_workers(void)
{
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, work, i ? (void *)1 : NULL) != 0)
            abort();
    }
}

static __attribute__((noinline)) void spawn_enders(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, exits, NULL) != 0)
        abort();
    if (pthread_create(&t, NULL, waits_for_cancel, NULL) != 0)
        abort();
    pthread_cancel(t);
}

int main(void)
{
    spawn_workers();
    spawn_enders();
    while (atomic_load(&done) < 3)
        usleep(1000);
    /* Let all of them get out of their start routines. */
    usleep(100000);
    printf("workers done\n");
    return 0;
}
