/* leak-test: a thread pool with a work queue and an orderly shutdown (clean)
 * expect: none
 * exit: 0
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NWORKERS 4
#define NJOBS 200

typedef struct job {
    struct job *next;
    int value;
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static job *queue;
static int stopping;
static long total;

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (queue == NULL && !stopping)
            pthread_cond_wait(&cv, &mu);
        if (queue == NULL)
            break; /* stopping and drained */
        job *j = queue;
        queue = j->next;
        pthread_mutex_unlock(&mu);
        long v = j->value;
        free(j);
        pthread_mutex_lock(&mu);
        total += v;
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static __attribute__((noinline)) void pool_start(pthread_t *t)
{
    for (int i = 0; i < NWORKERS; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            abort();
}

static __attribute__((noinline)) void pool_stop(pthread_t *t)
{
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(t[i], NULL);
}

int main(void)
{
    pthread_t t[NWORKERS];
    pool_start(t);
    for (int i = 1; i <= NJOBS; i++) {
        job *j = malloc(sizeof(*j));
        j->value = i;
        pthread_mutex_lock(&mu);
        j->next = queue;
        queue = j;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
    pool_stop(t);
    printf("total %ld\n", total);
    return 0;
}
