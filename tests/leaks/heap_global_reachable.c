/* leak-test: blocks kept through globals and static TLS until exit are still reachable, not leaks
 * expect: none
 * exit: 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config {
    char *name;
    char **items;
    int nitems;
};

static struct config *global_config;
static __thread char *tls_buffer;
static char *table[4];

static __attribute__((noinline)) void load_config(void)
{
    struct config *c = malloc(sizeof(*c));
    c->name = strdup("relay");
    c->nitems = 3;
    c->items = calloc((size_t)c->nitems, sizeof(char *));
    for (int i = 0; i < c->nitems; i++)
        c->items[i] = strdup("item");
    global_config = c;
}

static __attribute__((noinline)) void fill(void)
{
    tls_buffer = malloc(256);
    for (int i = 0; i < 4; i++)
        table[i] = malloc(16 * (size_t)(i + 1));
}

int main(void)
{
    load_config();
    fill();
    printf("%s %d\n", global_config->name, global_config->nitems);
    /* Nothing is freed: every block is still pointed to at exit. */
    return 0;
}
