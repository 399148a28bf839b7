/* A plugin for tests/leaks/loader_lock_unwind.c: loaded and unloaded over
 * and over (each load or unload makes unwinders drop what they cached). */
#include <stdlib.h>
#include <string.h>

char *plugin_copy(const char *s)
{
    return strdup(s);
}
