/* leak-test: a leak inside a plugin loaded with dlopen (and kept loaded), named from the plugin's symbol table
 * shared: plugins/leaky_plugin.c
 * args: {tmp}/leaky_plugin.so
 * cflags: -ldl
 * expect: heap 1 plugin_make_state class=definitely bytes=64
 * exit: 0
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (h == NULL) {
        printf("cannot load the plugin: %s\n", dlerror());
        return 1;
    }
    void (*start)(void) = (void (*)(void))dlsym(h, "plugin_start");
    if (start == NULL)
        return 1;
    start();
    /* A plugin that is unloaded takes its symbols with it; real programs
     * usually keep theirs for the process's life, as this one does. */
    printf("plugin ran\n");
    return 0;
}
