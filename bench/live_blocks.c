/*
 * Memory overhead per live allocation: hold N 32-byte blocks live at once,
 * then print the process's peak RSS in KiB (from /proc/self/status) so the
 * benchmark can compare it with and without a checker.
 *   live_blocks [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    if (n <= 0) {
        fprintf(stderr, "usage: live_blocks [N > 0]\n");
        return 2;
    }
    void **keep = malloc(sizeof(void *) * (size_t)n);
    for (long i = 0; i < n; i++)
        keep[i] = malloc(32);
    char line[256];
    long hwm = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            hwm = atol(line + 6);
    if (f != NULL)
        fclose(f);
    for (long i = 0; i < n; i++)
        free(keep[i]);
    free(keep);
    printf("%ld\n", hwm);
    return 0;
}
