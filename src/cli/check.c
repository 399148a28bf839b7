/*
 * steward check [options] -- PROG [ARGS]: run PROG with the checker
 * preloaded and report what it failed to release.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

static void check_usage(FILE *f)
{
    fprintf(f,
            "usage: steward check [options] -- PROG [ARGS...]\n"
            "\n"
            "Runs PROG with libsteward-check.so preloaded and reports every resource it\n"
            "did not release: heap blocks, threads, file descriptors, sockets, FILE and DIR\n"
            "streams, child processes, mappings and timers, each with its creation stack.\n"
            "\n"
            "options (--opt=VALUE and --opt VALUE are the same):\n"
            "  --error-exitcode=N     exit with N when leaks were found (default: PROG's status)\n"
            "  --json=FILE            also write the report as JSON (%%p = pid)\n"
            "  --log-file=FILE        write the text report to FILE instead of stderr\n"
            "  --kinds=LIST           track only these kinds (heap,thread,fd,process,mmap,timer)\n"
            "  --depth=N              frames per stack, 1..32 (default 16)\n"
            "  --suppressions=FILE    LeakSanitizer-style 'leak:PATTERN' lines\n"
            "  --report-every=SECONDS also report periodically while PROG runs\n"
            "  --sample=BYTES         production mode: book about one heap block per BYTES\n"
            "                         allocated (k/M suffixes); heap numbers become estimates\n"
            "  --sample-interval=MS   longest interval between growth samples (default 1000,\n"
            "                         0 = off)\n"
            "  --report-signal=SIG    report at once whenever PROG receives SIG (e.g. USR2)\n"
            "  --show-reachable       list still-reachable heap blocks too\n"
            "  --show-inherited       list descriptors PROG inherited at start\n"
            "  --trace-children       check programs PROG execs as well\n"
            "  -q, --quiet            print only the summary line\n");
}

/* "USR2", "SIGUSR2" or "12" to a signal number; 0 if it is none. */
static int signal_number(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s != '\0' && *end == '\0')
        return n > 0 && n < NSIG && n != SIGKILL && n != SIGSTOP ? (int)n : 0;
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (int sig = 1; sig < NSIG; sig++) {
        const char *name = sigabbrev_np(sig);
        if (name != NULL && strcmp(name, s) == 0 && sig != SIGKILL && sig != SIGSTOP)
            return sig;
    }
    return 0;
}

static void copy_file_to(const char *path, FILE *to)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, to);
    fclose(f);
}

static volatile pid_t child_pid;

static void forward_signal(int sig)
{
    int saved = errno;
    if (child_pid > 0)
        kill(child_pid, sig);
    errno = saved;
}

typedef struct {
    long programs, leaky; /* processes that reported; those that leaked */
    long leaks, bad;      /* summed over all of them */
    bool main_seen;       /* PROG itself reported */
} status_sum;

/* Sum the status lines the checked processes wrote (one each, see
 * write_status in src/check/report.c). With LIST, name those that leaked:
 * under --trace-children the line a test suite's run needs to say which of
 * its programs to look at. */
static status_sum read_status(FILE *sf, pid_t main_pid, bool list)
{
    status_sum sum = {0};
    char line[640];
    while (fgets(line, sizeof(line), sf) != NULL) {
        long l, b, p;
        long long bytes;
        int off = 0;
        if (sscanf(line, "leaks=%ld bad_frees=%ld pid=%ld bytes=%lld prog=%n", &l, &b, &p, &bytes,
                   &off) != 4 || off == 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        sum.programs++;
        sum.leaks += l;
        sum.bad += b;
        if (p == (long)main_pid)
            sum.main_seen = true;
        if (l > 0 || b > 0) {
            if (list && sum.leaky < 100)
                fprintf(stderr,
                        "steward check: pid %ld %s: %ld leak(s), %lld bytes lost, "
                        "%ld bad free(s)\n",
                        p, line + off, l, bytes, b);
            sum.leaky++;
        }
    }
    if (list && sum.leaky > 100)
        fprintf(stderr, "steward check: ... and %ld more programs with leaks\n", sum.leaky - 100);
    return sum;
}

enum {
    OPT_ERROR_EXITCODE = 256,
    OPT_JSON,
    OPT_LOG_FILE,
    OPT_KINDS,
    OPT_DEPTH,
    OPT_SUPPRESSIONS,
    OPT_REPORT_EVERY,
    OPT_SAMPLE,
    OPT_SAMPLE_INTERVAL,
    OPT_REPORT_SIGNAL,
    OPT_SHOW_REACHABLE,
    OPT_SHOW_INHERITED,
    OPT_TRACE_CHILDREN,
};

static const struct option check_options[] = {
    {"error-exitcode", required_argument, NULL, OPT_ERROR_EXITCODE},
    {"json", required_argument, NULL, OPT_JSON},
    {"log-file", required_argument, NULL, OPT_LOG_FILE},
    {"kinds", required_argument, NULL, OPT_KINDS},
    {"depth", required_argument, NULL, OPT_DEPTH},
    {"suppressions", required_argument, NULL, OPT_SUPPRESSIONS},
    {"report-every", required_argument, NULL, OPT_REPORT_EVERY},
    {"sample", required_argument, NULL, OPT_SAMPLE},
    {"sample-interval", required_argument, NULL, OPT_SAMPLE_INTERVAL},
    {"report-signal", required_argument, NULL, OPT_REPORT_SIGNAL},
    {"show-reachable", no_argument, NULL, OPT_SHOW_REACHABLE},
    {"show-inherited", no_argument, NULL, OPT_SHOW_INHERITED},
    {"trace-children", no_argument, NULL, OPT_TRACE_CHILDREN},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option and its value (either "--opt value" or "--opt=value": getopt
 * hands over both alike). 0, or STW_EXIT_USAGE after a message. */
static int check_option(int opt, const char *v, const char **log_file, int *error_exitcode)
{
    char *end;
    long n;
    char buf[32];
    switch (opt) {
    case OPT_ERROR_EXITCODE:
        n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 1 || n > 255) {
            fprintf(stderr, "steward check: --error-exitcode wants 1..255, got '%s'\n", v);
            return STW_EXIT_USAGE;
        }
        *error_exitcode = (int)n;
        return 0;
    case OPT_JSON:
        setenv("STW_CHECK_JSON", v, 1);
        return 0;
    case OPT_LOG_FILE:
        *log_file = v;
        return 0;
    case OPT_KINDS:
        setenv("STW_CHECK_KINDS", v, 1);
        return 0;
    case OPT_DEPTH:
        n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 1 || n > 32) {
            fprintf(stderr, "steward check: --depth wants 1..32, got '%s'\n", v);
            return STW_EXIT_USAGE;
        }
        setenv("STW_STACK_DEPTH", v, 1);
        return 0;
    case OPT_SUPPRESSIONS:
        if (access(v, R_OK) != 0) {
            fprintf(stderr, "steward check: cannot read suppressions '%s': %s\n", v,
                    strerror(errno));
            return STW_EXIT_USAGE;
        }
        setenv("STW_CHECK_SUPPRESSIONS", v, 1);
        return 0;
    case OPT_REPORT_EVERY:
        n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 1) {
            fprintf(stderr, "steward check: --report-every wants seconds >= 1, got '%s'\n", v);
            return STW_EXIT_USAGE;
        }
        setenv("STW_CHECK_REPORT_EVERY", v, 1);
        return 0;
    case OPT_SAMPLE:
        n = strtol(v, &end, 10);
        if (*end == 'k' || *end == 'K')
            n *= 1024, end++;
        else if (*end == 'm' || *end == 'M')
            n *= 1024 * 1024, end++;
        if (*v == '\0' || *end != '\0' || n < 1) {
            fprintf(stderr, "steward check: --sample wants bytes >= 1 (k/M suffixes), got '%s'\n",
                    v);
            return STW_EXIT_USAGE;
        }
        snprintf(buf, sizeof(buf), "%ld", n);
        setenv("STW_CHECK_SAMPLE_BYTES", buf, 1);
        return 0;
    case OPT_SAMPLE_INTERVAL:
        n = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || n < 0) {
            fprintf(stderr, "steward check: --sample-interval wants milliseconds >= 0, got '%s'\n",
                    v);
            return STW_EXIT_USAGE;
        }
        setenv("STW_CHECK_SAMPLE_MS", v, 1);
        return 0;
    case OPT_REPORT_SIGNAL:
        n = signal_number(v);
        if (n <= 0) {
            fprintf(stderr,
                    "steward check: --report-signal wants a signal such as USR2, got '%s'\n", v);
            return STW_EXIT_USAGE;
        }
        snprintf(buf, sizeof(buf), "%ld", n);
        setenv("STW_CHECK_REPORT_SIGNAL", buf, 1);
        return 0;
    case OPT_SHOW_REACHABLE:
        setenv("STW_CHECK_SHOW_REACHABLE", "1", 1);
        return 0;
    case OPT_SHOW_INHERITED:
        setenv("STW_CHECK_SHOW_INHERITED", "1", 1);
        return 0;
    case OPT_TRACE_CHILDREN:
        setenv("STW_CHECK_TRACE_CHILDREN", "1", 1);
        return 0;
    case 'q':
        setenv("STW_CHECK_QUIET", "1", 1);
        return 0;
    }
    return STW_EXIT_USAGE;
}

int stw_cli_check(int argc, char **argv)
{
    int error_exitcode = -1;
    const char *log_file = NULL;
    /* '+': options end at PROG (its own options are its own); ':': a
     * missing value is told apart from an unknown option. optind 0 makes
     * glibc start afresh. */
    optind = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:hq", check_options, NULL)) != -1) {
        if (opt == 'h') {
            check_usage(stdout);
            return 0;
        }
        if (opt == '?' || opt == ':') {
            const char *a = argv[optind - 1];
            if (opt == ':')
                fprintf(stderr, "steward check: option '%s' wants a value\n", a);
            else if (optopt != 0 && strncmp(a, "--", 2) != 0)
                fprintf(stderr, "steward check: unknown option '-%c'\n", optopt);
            else
                fprintf(stderr, "steward check: unknown option '%s'\n", a);
            check_usage(stderr);
            return STW_EXIT_USAGE;
        }
        int rc = check_option(opt, optarg, &log_file, &error_exitcode);
        if (rc != 0)
            return rc;
    }
    int i = optind;
    if (i >= argc) {
        fprintf(stderr, "steward check: no program given\n");
        check_usage(stderr);
        return STW_EXIT_USAGE;
    }

    char lib[PATH_MAX];
    if (stw_cli_find_lib("libsteward-check.so", "STW_CHECK_LIB", lib, sizeof(lib)) != 0) {
        fprintf(stderr, "steward check: cannot find libsteward-check.so (set STW_CHECK_LIB)\n");
        return STW_EXIT_USAGE;
    }
    const char *old = getenv("LD_PRELOAD");
    char preload[PATH_MAX * 2];
    snprintf(preload, sizeof(preload), "%s%s%s", lib, old && *old ? ":" : "", old ? old : "");
    setenv("LD_PRELOAD", preload, 1);

    char tmpdir[] = "/tmp/steward-check.XXXXXX";
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "steward check: cannot create a temporary directory: %s\n",
                strerror(errno));
        return STW_EXIT_USAGE;
    }
    char status_path[PATH_MAX], log_path[PATH_MAX];
    snprintf(status_path, sizeof(status_path), "%s/status", tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/log", tmpdir);
    setenv("STW_CHECK_STATUS", status_path, 1);
    char self[24];
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    setenv("STW_CHECK_LAUNCHER_PID", self, 1);
    setenv("STW_CHECK_LOG", log_file ? log_file : log_path, 1);

    /* Like time(1): Ctrl-C goes to PROG (same process group); we stay to
     * report on it. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGQUIT);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[i], NULL, &attr, &argv[i], environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "steward check: cannot run '%s': %s\n", argv[i], strerror(rc));
        rmdir(tmpdir);
        return 127;
    }
    /* Like timeout(1): a SIGTERM (or HUP, ALRM, USR1, USR2) sent to us is
     * meant for PROG. Forward it and stay to report; dying of it would
     * leave PROG running without its checker's report being read. */
    child_pid = pid;
    static const int forwarded[] = {SIGTERM, SIGHUP, SIGALRM, SIGUSR1, SIGUSR2};
    for (size_t k = 0; k < sizeof(forwarded) / sizeof(forwarded[0]); k++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = forward_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(forwarded[k], &sa, NULL);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

    if (log_file == NULL)
        copy_file_to(log_path, stderr);
    long leaks = -1, bad = 0;
    FILE *sf = fopen(status_path, "r");
    if (sf != NULL) {
        status_sum sum = read_status(sf, pid, false);
        if (sum.programs > 1) {
            rewind(sf);
            read_status(sf, pid, true);
        }
        fclose(sf);
        if (sum.main_seen) {
            leaks = sum.leaks;
            bad = sum.bad;
        }
        if (sum.programs > 1)
            fprintf(stderr,
                    "steward check: %ld programs checked, %ld with leaks or bad frees "
                    "(%ld leaks, %ld bad frees in all)\n",
                    sum.programs, sum.leaky, sum.leaks, sum.bad);
    }
    unlink(status_path);
    unlink(log_path);
    rmdir(tmpdir);
    if (leaks < 0) {
        fprintf(stderr, "steward check: %s ended (%s %d) before the checker could report\n",
                argv[i], WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? code : WTERMSIG(st));
        return code;
    }
    if ((leaks > 0 || bad > 0) && error_exitcode > 0)
        return error_exitcode;
    return code;
}
