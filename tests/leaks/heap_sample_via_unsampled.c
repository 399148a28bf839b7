/* leak-test: sampling mode: sampled blocks whose only reference lies in an unsampled block of the main arena, of a thread's arena and in an mmap'ed chunk are reachable
 * checker-args: --sample=1M
 * expect: none
 * log: of unsampled heap
 * repeat: 5
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* With --sample=1M a block of 1.5 MiB or more is always sampled; a 64-byte
 * block about once in 16,000, a 160 KiB one (an mmap'ed chunk) about one
 * time in six. */
#define BIG (2u << 20)

struct holder {
    void *payload;
    char pad[56];
};

static struct holder *from_main;
static struct holder *from_thread;
static void **from_mmap;

static void *big(void)
{
    void *p = malloc(BIG);
    memset(p, 'x', BIG);
    return p;
}

/* A thread's allocations come from an arena of its own (a heap mapped
 * apart from the brk heap). Its first allocation is always sampled: made
 * and freed first, so the holder is a later one. */
static void *thread_main(void *arg)
{
    (void)arg;
    free(malloc(16));
    struct holder *h = malloc(sizeof(*h));
    memset(h, 0, sizeof(*h));
    h->payload = big();
    from_thread = h;
    return NULL;
}

static __attribute__((noinline)) void make(void)
{
    free(malloc(16));
    from_main = malloc(sizeof(*from_main));
    memset(from_main, 0, sizeof(*from_main));
    from_main->payload = big();
    from_mmap = malloc(160 * 1024);
    memset(from_mmap, 0, 160 * 1024);
    from_mmap[1000] = big();
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
        exit(1);
}

int main(void)
{
    make();
    printf("%d\n", from_main->payload != NULL && from_thread->payload != NULL &&
                       from_mmap[1000] != NULL);
    return 0;
}
