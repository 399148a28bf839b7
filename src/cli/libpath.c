/*
 * Where the steward executable finds the libraries it loads at run time:
 * next to itself (build tree) or in the library directory of an installed
 * layout, the same places meson installs them to.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int stw_cli_find_lib(const char *name, const char *env, char *out, size_t len)
{
    const char *over = env != NULL ? getenv(env) : NULL;
    if (over != NULL && access(over, R_OK) == 0) {
        snprintf(out, len, "%s", over);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -errno;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -ENOENT;
    *slash = '\0';
    static const char *const dirs[] = {"",
#ifdef STW_LIB_REL_DIR
                                       STW_LIB_REL_DIR, /* where meson install puts them */
#endif
                                       "../lib/steward/", "../lib/x86_64-linux-gnu/steward/"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        int w = snprintf(out, len, "%s/%s%s", exe, dirs[i], name);
        if (w > 0 && (size_t)w < len && access(out, R_OK) == 0)
            return 0;
    }
    return -ENOENT;
}
