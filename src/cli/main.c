/*
 * steward — command-line entry point.
 *
 *   steward --version        print the version
 *   steward demo [--json]    run a small program under the ledger and report
 *   steward check ... -- PROG run PROG under the leak checker (see check.c)
 *   steward relay [options]  the camera relay server (see src/relay/relay.c)
 *
 * Exit codes: 0 success, 1 leaks found, 2 usage error.
 *
 * This executable links nothing but libc: `steward check` is started once
 * per checked program (thousands of times by a test suite under
 * --trace-children), and loading the relay's libraries (libcurl, TLS,
 * libevent, ...) cost it some 20 ms each time. `demo` and `relay` live in
 * libsteward-relay.so, loaded here on demand.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "steward/common.h"

#define EXIT_USAGE STW_EXIT_USAGE

static void usage(FILE *f)
{
    fprintf(f, "usage: steward --version\n"
               "       steward demo [--json]\n"
               "       steward check [options] -- PROG [ARGS...]\n"
               "       steward relay [options]\n"
               "\n"
               "  demo   run a small workload that books memory and descriptors in the\n"
               "         ledger, show what is alive mid-run with creation stacks, then\n"
               "         release everything and show the initial-vs-final report\n"
               "  check  run PROG and report every resource it did not release\n"
               "         (steward check --help lists the options)\n"
               "  relay  serve camera inputs (a test pattern by default) to HTTP viewers\n"
               "         (steward relay --help lists the options)\n");
}

typedef int (*stw_cli_entry)(int argc, char **argv);

/* Run ENTRY of the run-time module with the subcommand's arguments. */
static int run_module(const char *entry, int argc, char **argv)
{
    char path[PATH_MAX];
    if (stw_cli_find_lib("libsteward-relay.so", "STW_RELAY_LIB", path, sizeof(path)) != 0) {
        fprintf(stderr, "steward %s: cannot find libsteward-relay.so (set STW_RELAY_LIB)\n",
                argv[0]);
        return EXIT_USAGE;
    }
    /* Never closed: the module's threads and ledger live until exit. */
    void *mod = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (mod == NULL) {
        fprintf(stderr, "steward %s: %s\n", argv[0], dlerror());
        return EXIT_USAGE;
    }
    stw_cli_entry fn = (stw_cli_entry)dlsym(mod, entry);
    if (fn == NULL) {
        fprintf(stderr, "steward %s: %s\n", argv[0], dlerror());
        return EXIT_USAGE;
    }
    return fn(argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("steward %s\n", STW_VERSION_STRING);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "check") == 0)
        return stw_cli_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "demo") == 0)
        return run_module("stw_cli_demo", argc - 1, argv + 1);
    if (strcmp(argv[1], "relay") == 0)
        return run_module("stw_relay_main", argc - 1, argv + 1);
    fprintf(stderr, "steward: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
