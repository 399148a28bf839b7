/* leak-test: a block reachable only from a local of a thread still blocked at exit; the thread is the leak
 * expect: thread 1 start_holder state=running
 * exit: 0
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool holding;

/* Keeps its buffer in a local and waits for ever: the buffer is in use,
 * reachable from this thread's stack only, and must not be reported. */
static void *holder(void *arg)
{
    (void)arg;
    char *volatile buf = malloc(1000);
    memset(buf, 'x', 1000);
    pthread_mutex_lock(&lock);
    holding = true;
    pthread_cond_broadcast(&cond);
    for (;;)
        pthread_cond_wait(&cond, &lock);
    return NULL;
}

/* The planted leak: a thread nobody joins, still running at exit. */
static __attribute__((noinline)) void start_holder(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, holder, NULL) != 0)
        abort();
}

int main(void)
{
    start_holder();
    pthread_mutex_lock(&lock);
    while (!holding)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    printf("exiting with the holder waiting\n");
    return 0;
}
