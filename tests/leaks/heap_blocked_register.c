/* leak-test: a block whose only reference is a register of a thread that blocks every signal and never enters the kernel (it cannot be parked): the exit report must read that thread's registers, not call the block lost
 * expect: thread 1 start_spinner state=running
 * repeat: 3
 * exit: 0
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Memory only ever holds the block's address masked, so no stale copy can
 * make it reachable: the unmasked address lives in one register, in a
 * loop that neither returns nor spills it. */
#define MASK ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

static _Atomic uintptr_t masked;
static atomic_int spinning;

/* Overwrites what malloc's frames left below the stack pointer. */
static __attribute__((noinline)) void scrub(void)
{
    volatile char junk[16384];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = 0;
}

static __attribute__((noinline)) void fetch(void)
{
    char *p = malloc(100);
    memset(p, 'r', 100);
    atomic_store(&masked, (uintptr_t)p ^ MASK);
}

static void *spinner(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    fetch();
    scrub();
    uintptr_t v = atomic_exchange(&masked, 0);
    atomic_store(&spinning, 1);
#if defined(__x86_64__)
    __asm__ volatile("xor %1, %0\n"
                     "1: pause\n"
                     "jmp 1b\n"
                     : "+r"(v)
                     : "r"(MASK)
                     : "memory");
#else
    __asm__ volatile("eor %0, %0, %1\n"
                     "1: yield\n"
                     "b 1b\n"
                     : "+r"(v)
                     : "r"(MASK)
                     : "memory");
#endif
    return NULL;
}

/* The planted finding: a thread still running at exit. */
static __attribute__((noinline)) void start_spinner(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, spinner, NULL) != 0)
        abort();
}

int main(void)
{
    start_spinner();
    while (atomic_load(&spinning) == 0)
        ;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    printf("exiting with the spinner holding its block in a register\n");
    return 0;
}
