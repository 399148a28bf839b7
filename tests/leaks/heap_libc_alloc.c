/* leak-test: blocks lost from libc's allocating functions, each attributed to the user function that called them
 * expect: heap 1 leak_calloc class=definitely bytes=120
 * expect: heap 1 leak_posix_memalign class=definitely bytes=200
 * expect: heap 1 leak_aligned_alloc class=definitely bytes=256
 * expect: heap 1 leak_strdup class=definitely bytes=14
 * expect: heap 1 leak_strndup class=definitely bytes=6
 * expect: heap 1 leak_asprintf class=definitely
 * expect: heap 1 leak_getline class=definitely
 * exit: 0
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each function makes one allocation and lets the pointer go out of scope.
 * strdup, asprintf and getline allocate inside libc (built without frame
 * pointers): the stack must still reach the function here. The volatile
 * stores keep the compiler from dropping the calls. */
static void *volatile sink;

static __attribute__((noinline)) void leak_calloc(void)
{
    sink = calloc(10, 12);
    sink = NULL;
}

static __attribute__((noinline)) void leak_posix_memalign(void)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, 200) != 0)
        abort();
    sink = p;
    sink = NULL;
}

static __attribute__((noinline)) void leak_aligned_alloc(void)
{
    sink = aligned_alloc(128, 256);
    sink = NULL;
}

static __attribute__((noinline)) void leak_strdup(void)
{
    sink = strdup("hello, world!");
    sink = NULL;
}

static __attribute__((noinline)) void leak_strndup(void)
{
    sink = strndup("truncated here", 5);
    sink = NULL;
}

static __attribute__((noinline)) void leak_asprintf(void)
{
    char *s = NULL;
    if (asprintf(&s, "%d-%s-%f", 42, "text", 2.5) < 0)
        abort();
    sink = s;
    sink = NULL;
}

static __attribute__((noinline)) void leak_getline(void)
{
    static char text[] = "first line\nsecond line\n";
    FILE *f = fmemopen(text, sizeof(text) - 1, "r");
    if (f == NULL)
        abort();
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) < 0)
        abort();
    fclose(f);
    sink = line;
    sink = NULL;
}

int main(void)
{
    leak_calloc();
    leak_posix_memalign();
    leak_aligned_alloc();
    leak_strdup();
    leak_strndup();
    leak_asprintf();
    leak_getline();
    printf("done\n");
    return 0;
}
