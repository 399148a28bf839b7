/* leak-test: mappings released in every shape: whole, in pieces, with a hole punched
 * and then the rest, one munmap spanning two mappings, MAP_FIXED over a mapping,
 * mremap that grows and moves (clean)
 * expect: none
 * exit: 0
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static long pg;

static char *map(size_t pages)
{
    char *p = mmap(NULL, pages * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    return p;
}

static __attribute__((noinline)) void shapes(void)
{
    /* Whole. */
    char *p = map(4);
    munmap(p, 4 * pg);

    /* Head first, then the rest. */
    p = map(4);
    munmap(p, pg);
    munmap(p + pg, 3 * pg);

    /* A hole in the middle, then both sides. */
    p = map(5);
    munmap(p + 2 * pg, pg);
    munmap(p, 2 * pg);
    munmap(p + 3 * pg, 2 * pg);

    /* MAP_FIXED replaces the middle of a mapping; one munmap takes all. */
    p = map(6);
    char *q = mmap(p + 2 * pg, 2 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (q != p + 2 * pg)
        abort();
    munmap(p, 6 * pg);

    /* Aligned allocation: map twice the size, trim both ends. */
    size_t want = 16 * pg;
    char *raw = map(32);
    char *aligned = (char *)(((unsigned long)raw + want - 1) & ~(want - 1));
    if (aligned > raw)
        munmap(raw, (size_t)(aligned - raw));
    if (raw + 32 * pg > aligned + want)
        munmap(aligned + want, (size_t)(raw + 32 * pg - (aligned + want)));
    munmap(aligned, want);

    /* mremap: grow (perhaps moving), shrink, then unmap. */
    p = map(2);
    p[0] = 7;
    p = mremap(p, 2 * pg, 64 * pg, MREMAP_MAYMOVE);
    if (p == MAP_FAILED || p[0] != 7)
        abort();
    p = mremap(p, 64 * pg, pg, 0);
    if (p == MAP_FAILED)
        abort();
    munmap(p, pg);

    /* Failed calls book nothing. */
    if (mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED)
        abort();
}

int main(void)
{
    pg = sysconf(_SC_PAGESIZE);
    shapes();
    printf("clean\n");
    return 0;
}
