/* leak-test: the parent leaks a file while a vfork child (sharing its memory, as Python's subprocess does) closes every descriptor before exec: the child must not erase the parent's books
 * expect: fd 1 leak_before_vfork label~file:/dev/null
 * exit: 0
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static int leak_before_vfork(void)
{
    return open("/dev/null", O_RDONLY);
}

int main(void)
{
    if (leak_before_vfork() < 0)
        return 1;
    fflush(stdout);
    pid_t pid = vfork();
    if (pid == 0) {
        close_range(3, ~0U, 0);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 1;
    printf("child done\n");
    return 0;
}
