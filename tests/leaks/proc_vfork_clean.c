/* leak-test: vfork + exec + waitpid (clean: vfork is not hooked, its children are found
 * at exit by reconciliation with /proc, and a reaped one must not be)
 * expect: none
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static __attribute__((noinline)) void run_true(void)
{
    pid_t pid = vfork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        execlp("true", "true", (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        abort();
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        run_true();
    printf("clean\n");
    return 0;
}
