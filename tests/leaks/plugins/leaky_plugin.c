/* A plugin for tests/leaks/dlopen_lib.c: built as a shared object, loaded
 * with dlopen, and it leaks from a static function of its own. */
#include <stdlib.h>

__attribute__((noinline)) static void *plugin_make_state(void)
{
    return malloc(64);
}

void plugin_start(void)
{
    char *volatile p = plugin_make_state();
    p = NULL;
}
