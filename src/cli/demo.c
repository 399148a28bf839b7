/*
 * steward demo: a small workload that books memory and descriptors in the
 * ledger, reports what is alive mid-run with creation stacks, releases
 * everything and shows the initial-vs-final report. Lives in the run-time
 * module with the relay (see main.c for why).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define EXIT_LEAKS STW_EXIT_LEAKS

/* Two distinct call sites, so the report groups records by where they were born. */
static __attribute__((noinline)) void *demo_make_session(size_t n)
{
    return stw_malloc(n);
}

static __attribute__((noinline)) char *demo_make_name(int i)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "camera-%d", i);
    return stw_strdup(tmp);
}

static int demo(bool json)
{
    stw_snapshot *base = NULL, *mid = NULL, *end = NULL;
    int rc = EXIT_LEAKS;
    void *sessions[8] = {0};
    char *names[4] = {0};
    int pipefd[2] = {-1, -1};
    int efd = -1;

    if (stw_snapshot_new(NULL, &base) != 0)
        return EXIT_LEAKS;
    stw_baseline b = stw_verify_begin();

    for (int i = 0; i < 8; i++)
        sessions[i] = demo_make_session(1024 * (size_t)(i + 1));
    for (int i = 0; i < 4; i++)
        names[i] = demo_make_name(i);
    stw_pipe(pipefd, 0, "pipe:demo");
    efd = stw_eventfd(0, 0, "eventfd:demo");

    stw_snapshot_opts so = {.records = true};
    if (stw_snapshot_new(&so, &mid) == 0) {
        stw_report_opts ro = {.baseline = base,
                              .symbolize = true,
                              .records = true,
                              .max_frames = 4,
                              .title = "demo, mid-run"};
        if (json)
            stw_report_json(mid, &ro, stw_write_fd, (void *)(intptr_t)STDOUT_FILENO);
        else
            stw_report_text(mid, &ro, stw_write_fd, (void *)(intptr_t)STDOUT_FILENO);
        stw_snapshot_free(&mid);
    }

    for (int i = 0; i < 8; i++)
        stw_free(sessions[i]);
    for (int i = 0; i < 4; i++)
        stw_free(names[i]);
    stw_fd_close(&pipefd[0]);
    stw_fd_close(&pipefd[1]);
    stw_fd_close(&efd);

    if (stw_snapshot_new(NULL, &end) == 0) {
        stw_report_opts ro = {.baseline = base, .title = "demo, after release"};
        if (!json)
            stw_report_text(end, &ro, stw_write_fd, (void *)(intptr_t)STDOUT_FILENO);
        stw_snapshot_free(&end);
    }
    int leaked = stw_verify_none(b, 100, STDERR_FILENO);
    if (!json)
        printf("demo: %d resource(s) leaked\n", leaked);
    rc = leaked == 0 ? 0 : EXIT_LEAKS;
    stw_snapshot_free(&base);
    return rc;
}

int stw_cli_demo(int argc, char **argv)
{
    bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json) {
        fprintf(stderr, "steward demo: unknown option '%s'\n", argv[1]);
        return STW_EXIT_USAGE;
    }
    return demo(json);
}
