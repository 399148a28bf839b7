/* leak-test: a joinable thread still running at exit (blocked on a condition nobody signals)
 * expect: thread 1 start_waiter state=running label~thread
 * exit: 0
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started;

/* Announces that it runs, then waits forever: main exits under it. */
static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    started = 1;
    pthread_cond_broadcast(&cv);
    for (;;)
        pthread_cond_wait(&cv, &mu);
    return NULL;
}

/* The planted leak: a joinable thread that is never joined nor stopped. */
static __attribute__((noinline)) void start_waiter(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, waiter, NULL) != 0)
        abort();
}

int main(void)
{
    start_waiter();
    pthread_mutex_lock(&mu);
    while (!started)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    /* exit() runs the checker's report while the thread still waits. */
    exit(0);
}
