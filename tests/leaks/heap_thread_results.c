/* leak-test: 100 joined threads whose return values nobody frees: glibc's cache of exited threads' stacks keeps the descriptors of the last few, with their return values
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
    /* The planted leaks: each value is joined and dropped. In rounds of
     * ten threads at once, so that several stacks end up in the cache. */
    for (long round = 0; round < 10; round++) {
        pthread_t t[10];
        for (long i = 0; i < 10; i++)
            if (pthread_create(&t[i], NULL, work, (void *)(round * 10 + i)) != 0)
                abort();
        for (int i = 0; i < 10; i++) {
            void *res;
            pthread_join(t[i], &res);
            res = NULL;
        }
    }
    printf("joined 100\n");
    return 0;
}
