/* leak-test: a DIR from opendir is never closed
 * expect: dir 1 leak_opendir label~dir:/tmp
 * exit: 0
 */
#include <dirent.h>
#include <stdio.h>

/* Global, so the DIR structure stays reachable and only the stream is reported. */
DIR *kept;

__attribute__((noinline)) static int leak_opendir(void)
{
    kept = opendir("/tmp");
    return kept != NULL ? 0 : -1;
}

int main(void)
{
    if (leak_opendir() != 0)
        return 1;
    printf("done\n");
    return 0;
}
