/* Private to src/cli: the subcommands of the steward executable. */
#ifndef STW_CLI_H
#define STW_CLI_H

#define STW_EXIT_LEAKS 1
#define STW_EXIT_USAGE 2

/* steward check [options] -- PROG [ARGS]; argv[0] is "check". */
int stw_cli_check(int argc, char **argv);

#endif
