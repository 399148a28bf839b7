/* leak-test: children created every hooked way and reaped correctly (clean)
 * expect: none
 * exit: 0
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static pid_t child_exiting(int code)
{
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0)
        _exit(code);
    return pid;
}

static __attribute__((noinline)) void fork_and_reap(void)
{
    int st;
    /* waitpid for that child, with and without a status pointer. */
    pid_t a = child_exiting(1);
    if (waitpid(a, &st, 0) != a || WEXITSTATUS(st) != 1)
        abort();
    a = child_exiting(0);
    if (waitpid(a, NULL, 0) != a)
        abort();

    /* waitpid(-1) with WNOHANG polling: 0 until the child is done. */
    a = child_exiting(2);
    pid_t got;
    while ((got = waitpid(-1, &st, WNOHANG)) == 0)
        usleep(1000);
    if (got != a)
        abort();

    /* A stopped child is reported (WUNTRACED) but still alive. */
    a = fork();
    if (a == 0) {
        raise(SIGSTOP);
        _exit(0);
    }
    if (waitpid(a, &st, WUNTRACED) != a || !WIFSTOPPED(st))
        abort();
    kill(a, SIGCONT);
    if (waitpid(a, &st, 0) != a || !WIFEXITED(st))
        abort();

    a = child_exiting(0);
    if (wait(&st) != a)
        abort();
    struct rusage ru;
    a = child_exiting(0);
    if (wait3(&st, 0, &ru) != a)
        abort();
    a = child_exiting(0);
    if (wait4(a, NULL, 0, &ru) != a)
        abort();

    /* waitid: first WNOWAIT (still waitable), then for real. */
    a = child_exiting(0);
    siginfo_t si;
    if (waitid(P_PID, (id_t)a, &si, WEXITED | WNOWAIT) != 0)
        abort();
    if (waitid(P_PID, (id_t)a, &si, WEXITED) != 0 || si.si_pid != a)
        abort();

    /* A child killed by a signal. */
    a = fork();
    if (a == 0) {
        for (;;)
            pause();
    }
    kill(a, SIGKILL);
    if (waitpid(a, &st, 0) != a || !WIFSIGNALED(st))
        abort();
}

static __attribute__((noinline)) void spawn_and_reap(void)
{
    char *argv[] = {"true", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "true", NULL, NULL, argv, environ) != 0)
        abort();
    int st;
    if (waitpid(pid, &st, 0) != pid)
        abort();
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
        abort();
    if (waitpid(pid, &st, 0) != pid)
        abort();
}

static __attribute__((noinline)) void system_and_popen(void)
{
    if (system("true") != 0)
        abort();
    FILE *p = popen("echo hello", "r");
    if (p == NULL)
        abort();
    char line[64];
    if (fgets(line, sizeof(line), p) == NULL)
        abort();
    if (pclose(p) != 0)
        abort();
    printf("popen said %s", line);
}

int main(void)
{
    fork_and_reap();
    spawn_and_reap();
    system_and_popen();
    printf("clean\n");
    return 0;
}
