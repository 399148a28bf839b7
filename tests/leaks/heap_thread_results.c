/* leak-test: 100 joined threads whose return values nobody frees: glibc's cache of exited threads' descriptors still holds some of them
 * expect: heap 100 make_result class=definitely bytes=4800
 * exit: 0
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((noinline)) void *make_result(int i)
{
    char *r = malloc(48);
    snprintf(r, 48, "result %d", i);
    return r;
}

static void *work(void *arg)
{
    return make_result((int)(long)arg);
}

int main(void)
{
    /* The planted leaks: each value is joined and dropped. */
    for (long i = 0; i < 100; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, work, (void *)i) != 0)
            abort();
        void *res;
        pthread_join(t, &res);
        res = NULL;
    }
    printf("joined 100\n");
    return 0;
}
