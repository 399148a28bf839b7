/* leak-test: a FILE from fopen is never closed (one FILE record, no separate fd record)
 * expect: file 1 leak_fopen label~file:/tmp/steward-fd-file-leak
 * exit: 0
 */
#include <stdio.h>
#include <unistd.h>

/* The FILE structure itself stays reachable from libc's list of open
 * streams, so only the stream is reported, not its memory. */
__attribute__((noinline)) static int leak_fopen(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs("never closed\n", f);
    fflush(f);
    return 0;
}

int main(void)
{
    const char *path = "/tmp/steward-fd-file-leak";
    if (leak_fopen(path) != 0)
        return 1;
    unlink(path);
    printf("done\n");
    return 0;
}
