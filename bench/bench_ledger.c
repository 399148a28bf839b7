/*
 * Ledger microbenchmark: the per-operation cost of what the checker will
 * do on every malloc/free (record with a captured stack, then release),
 * of stack capture alone, and of the same under several threads at once.
 * Prints one markdown table row per measurement, with malloc+free from
 * glibc as the yardstick.
 *
 *   bench_ledger [ops-per-thread]
 *   STW_UNWIND=libunwind bench_ledger   (measure the DWARF unwinder)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steward/ledger.h"

static long ops = 2000000;
static const char *unwinder;

/* A realistic call depth: the checker records from inside malloc,
 * several frames below the user's code. */
static __attribute__((noinline)) int deep(int n, int (*leaf)(uint64_t), uint64_t i)
{
    int r = n == 0 ? leaf(i) : deep(n - 1, leaf, i);
    __asm__ volatile("" ::: "memory");
    return r;
}

static int op_record_release(uint64_t i)
{
    /* Ids with the low bits a pointer would have. */
    uint64_t id = 0x100000000000ull + (i << 4);
    if (stw_ledger_record(STW_KIND_HEAP, id, 32, NULL) != 0)
        return 1;
    return stw_ledger_release(STW_KIND_HEAP, id) != 0;
}

static int op_record_release_nostack(uint64_t i)
{
    uint64_t id = 0x200000000000ull + (i << 4);
    if (stw_ledger_record_site(STW_KIND_HEAP, id, 32, 0, NULL) != 0)
        return 1;
    return stw_ledger_release(STW_KIND_HEAP, id) != 0;
}

static int op_capture(uint64_t i)
{
    void *pcs[STW_STACK_MAX];
    (void)i;
    return stw_stack_capture(pcs, 16, 0) <= 0;
}

static int op_malloc_free(uint64_t i)
{
    void *volatile p = malloc(32 + (i & 7));
    free(p);
    return p == NULL;
}

typedef struct job {
    int (*leaf)(uint64_t);
    uint64_t base;
    int failed;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    for (long i = 0; i < ops; i++)
        j->failed |= deep(8, j->leaf, j->base + (uint64_t)i);
    return NULL;
}

static double measure(int (*leaf)(uint64_t), int threads)
{
    pthread_t t[16];
    job jobs[16];
    int64_t t0 = stw_now_ns();
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){.leaf = leaf, .base = (uint64_t)k << 32};
        pthread_create(&t[k], NULL, run_job, &jobs[k]);
    }
    for (int k = 0; k < threads; k++) {
        pthread_join(t[k], NULL);
        if (jobs[k].failed) {
            fprintf(stderr, "bench_ledger: an operation failed\n");
            exit(1);
        }
    }
    /* Wall time per operation per thread: what each thread's malloc pays. */
    return (double)(stw_now_ns() - t0) / (double)ops;
}

static void row(const char *what, int (*leaf)(uint64_t), int threads)
{
    measure(leaf, threads); /* warm-up: sites interned, tables grown */
    double ns = measure(leaf, threads);
    printf("| %-42s | %-9s | %7d | %9.1f |\n", what, unwinder, threads, ns);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        ops = atol(argv[1]);
    if (ops <= 0) {
        fprintf(stderr, "usage: bench_ledger [ops-per-thread > 0]\n");
        return 2;
    }
    unwinder =
        getenv("STW_UNWIND") && strcmp(getenv("STW_UNWIND"), "libunwind") == 0 ? "libunwind" : "fp";
    for (int threads = 1; threads <= 4; threads *= 2) {
        if (strcmp(unwinder, "fp") == 0) {
            row("glibc malloc+free (yardstick)", op_malloc_free, threads);
            row("record+release, no stack", op_record_release_nostack, threads);
        }
        row("stack capture, depth 16", op_capture, threads);
        row("record (stack depth 16) + release", op_record_release, threads);
    }
    return 0;
}
