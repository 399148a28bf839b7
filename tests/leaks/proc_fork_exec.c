/* leak-test: fork + exec of a child that leaks; with --trace-children the child reports its own leak, the parent stays clean
 * checker-args: --trace-children
 * expect: none
 * log: child_leak
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static void child_leak(void)
{
    char *volatile p = malloc(80);
    p = NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        child_leak();
        return 0;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        char *const args[] = {argv[0], "child", NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    printf("child done\n");
    return 0;
}
