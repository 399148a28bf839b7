/* Private to src/cli: the subcommands of the steward executable. */
#ifndef STW_CLI_H
#define STW_CLI_H

#include <stddef.h>

#define STW_EXIT_LEAKS 1
#define STW_EXIT_USAGE 2

/* steward check [options] -- PROG [ARGS]; argv[0] is "check". */
int stw_cli_check(int argc, char **argv);

/* steward demo [--json]; argv[0] is "demo". In libsteward-relay.so, whose
 * entry points are the only symbols it exports. */
__attribute__((visibility("default"))) int stw_cli_demo(int argc, char **argv);

/* Find the library NAME that steward loads at run time: the path in the
 * environment variable ENV when it is set and readable, else next to the
 * executable (build tree) or in LIBDIR/steward of an installed layout.
 * Writes the path to OUT (LEN bytes). 0, or -ENOENT when nowhere. */
int stw_cli_find_lib(const char *name, const char *env, char *out, size_t len);

#endif
