/* leak-test: a forked child that does not exec and exits normally: the child reports
 * only what it made itself (not its copy of the parent's resources, nor the parent's
 * leak); the parent's planted heap leak and its reaped child are reported as usual
 * expect: heap 1 parent_leak class=definitely bytes=64
 * child-expect: heap 1 main class=definitely bytes=32
 * fork-site: main
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Stores through a volatile pointer keep the compiler from dropping the
 * allocation. */
static char *volatile sink;

static __attribute__((noinline)) void parent_leak(void)
{
    sink = malloc(64);
    memset(sink, 1, 64);
    sink = NULL; /* forgotten: definitely lost */
}

int main(void)
{
    parent_leak();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        /* A child that leaks on its own account too: its own report. */
        sink = malloc(32);
        sink = NULL;
        exit(0); /* exit(), not _exit(): destructors and atexit run */
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return 1;
    printf("child done\n");
    return 0;
}
