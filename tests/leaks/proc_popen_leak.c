/* leak-test: a popen stream never pclose'd: the stream and its child are both leaked
 * expect: file 1 open_pipe_to_child label~popen:
 * expect: process 1 open_pipe_to_child state=running label~process:sleep
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>

/* The planted leak: the stream (and with it the child) is dropped. */
static __attribute__((noinline)) FILE *open_pipe_to_child(void)
{
    FILE *f = popen("sleep 0.3", "r");
    if (f == NULL)
        abort();
    return f;
}

/* A correct use next to it: read to the end, then pclose. */
static __attribute__((noinline)) void read_and_close(void)
{
    FILE *f = popen("echo ok", "r");
    char line[16];
    if (f == NULL || fgets(line, sizeof(line), f) == NULL || pclose(f) != 0)
        abort();
    printf("child said %s", line);
}

FILE *kept; /* reachable, so only the stream record and the child count */

int main(void)
{
    read_and_close();
    kept = open_pipe_to_child();
    return 0;
}
