/* leak-test: an anonymous mapping and a file mapping never unmapped; a third mapping
 * loses its head and tail to munmap and keeps only its middle page
 * expect: mmap 1 map_scratch bytes=65536 label~mmap:anon
 * expect: mmap 1 map_file bytes=4096 label~mmap:file
 * expect: mmap 1 trim_to_middle bytes=4096 label~mmap:anon
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The planted leaks: the addresses are dropped without munmap. */
static __attribute__((noinline)) void map_scratch(void)
{
    char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    p[0] = 1;
}

static __attribute__((noinline)) void map_file(void)
{
    int fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0)
        abort();
    void *volatile p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        abort();
    close(fd); /* the mapping outlives the descriptor */
    p = NULL;  /* dropped: no copy left for the pointer scan to find */
}

/* Three pages; the first and last are unmapped, the middle one leaks. */
static __attribute__((noinline)) void trim_to_middle(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    munmap(p, pg);
    munmap(p + 2 * pg, pg);
}

int main(void)
{
    map_scratch();
    map_file();
    trim_to_middle();
    printf("mapped\n");
    return 0;
}
