/* leak-test: a popen stream is leaked: the stream and its child are reported, its pipe is not reported a second time as an untracked descriptor
 * expect: file 1 leak_popen label~popen
 * expect: process 1 leak_popen
 * exit: 0
 */
#include <stdio.h>
#include <unistd.h>

/* Global, so the FILE stays reachable; the pipe inside it was made by
 * glibc, past every descriptor hook. */
FILE *kept;

__attribute__((noinline)) static int leak_popen(void)
{
    kept = popen("exit 0", "r");
    return kept != NULL ? 0 : -1;
}

int main(void)
{
    if (leak_popen() != 0)
        return 1;
    /* Let the child finish, so its state is stable (a zombie). */
    char c;
    (void)!read(fileno(kept), &c, 1);
    printf("done\n");
    return 0;
}
