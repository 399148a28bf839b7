/* leak-test: a child still running when the parent exits, plus a posix_spawn'ed one
 * expect: process 1 start_sleeper state=running label~process:fork
 * expect: process 1 spawn_sleep state=running label~process:sleep
 * exit: 0
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern char **environ;

/* The child detaches from the parent's output (so nobody waits on a pipe
 * it holds) and ends by itself a moment after the parent is gone. */
static __attribute__((noinline)) void start_sleeper(void)
{
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        sleep(1);
        _exit(0);
    }
}

static __attribute__((noinline)) void spawn_sleep(void)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = {"sleep", "1", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "sleep", &fa, NULL, argv, environ) != 0)
        abort();
    posix_spawn_file_actions_destroy(&fa);
}

int main(void)
{
    start_sleeper();
    spawn_sleep();
    printf("leaving two children behind\n");
    return 0;
}
