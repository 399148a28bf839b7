/* leak-test: children forked without exec are checked: each writes its own report at its exit, labelled with its pid and the fork site, listing only what it made after the fork
 * expect: none
 * child-expect: heap 2 child_work class=definitely bytes=154
 * child-expect: fd 2 child_work label~/dev/null
 * fork-site: spawn_child
 * log: forked from process
 * log: spawn_child
 * exit: 0
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *volatile sink;
static char *kept; /* the parent's, still reachable in both */

/* The planted leaks, one set per child: a block and a descriptor. */
static __attribute__((noinline)) void child_work(void)
{
    sink = malloc(77);
    memset(sink, 2, 77);
    sink = NULL;
    int fd = open("/dev/null", O_RDONLY);
    (void)fd;
}

static __attribute__((noinline)) pid_t spawn_child(int how)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        child_work();
        if (how == 0)
            exit(0);
        _exit(0);
    }
    return pid;
}

int main(void)
{
    kept = malloc(100);
    int parent_fd = open("/dev/null", O_RDONLY);
    for (int how = 0; how < 2; how++) {
        pid_t pid = spawn_child(how);
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
            return 1;
    }
    close(parent_fd);
    free(kept);
    printf("children done\n");
    return 0;
}
