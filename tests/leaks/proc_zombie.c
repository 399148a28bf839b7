/* leak-test: a child that exited but was never reaped (a zombie)
 * expect: process 1 make_zombie state=zombie label~process:fork
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* The planted leak: the child exits at once and nobody ever waits for it. */
static __attribute__((noinline)) pid_t make_zombie(void)
{
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0)
        _exit(0);
    return pid;
}

int main(void)
{
    pid_t pid = make_zombie();
    /* Wait until it is a zombie without reaping it: WNOWAIT leaves it
     * waitable, so this must not count as reaping. */
    siginfo_t si;
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) != 0)
        return 1;
    printf("child %s\n", si.si_code == CLD_EXITED ? "exited" : "?");
    return 0;
}
