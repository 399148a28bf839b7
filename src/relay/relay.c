/*
 * src/relay/relay.c — `steward relay`: options, the scope tree, ordered
 * shutdown and the leak verdict.
 *
 * Model
 *   relay_main builds the tree described in relay.h (root "relay", stage
 *   scopes "http" and "sources", one child of "sources" per input), starts
 *   the inputs and the HTTP loop, prints the address it serves, and waits
 *   for SIGINT or SIGTERM (include/steward/shutdown.h). Then the stages
 *   close in order: "http" (stop accepting, close every viewer), then
 *   "sources" (stop the producers, free hubs and pools). The ledger report
 *   follows, and the exit code is 0 only if every stage closed in time and
 *   nothing created after the baseline is still alive.
 *
 *   libevent's allocator is pointed at stw_malloc/stw_realloc/stw_free
 *   before anything else, so what the HTTP server holds (connections,
 *   buffers, events) is in the ledger and counts in the verdict.
 *   libevent's global state is released with libevent_global_shutdown()
 *   after the verdict, once no libevent object is left.
 *
 * Ownership
 *   The configuration lives on relay_main's stack; everything else
 *   created after the baseline is owned by a scope of the tree and freed
 *   by its cleanups during the stages, which is what makes the verdict
 *   meaningful.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "relay.h"
#include "steward/alloc.h"
#include "steward/ledger.h"
#include "steward/shutdown.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fprintf(f, "usage: steward relay [options]\n"
               "\n"
               "Serve camera inputs to many viewers over HTTP (MJPEG), with the ledger\n"
               "watching every resource; SIGINT/SIGTERM shut down in order and report.\n"
               "\n"
               "options:\n"
               "  --listen HOST:PORT          address to serve (default 127.0.0.1:8080;\n"
               "                              port 0 picks a free port, printed at start)\n"
               "  --no-default-input          do not create the \"test\" pattern input\n"
               "  --max-viewers N             streaming viewers in total (default 1000)\n"
               "  --max-viewers-per-input N   streaming viewers per input (default 100)\n"
               "  --inflight N                frames queued per viewer, 1..8 (default 2)\n"
               "  --viewer-sndbuf BYTES       SO_SNDBUF of viewer sockets (default 131072)\n"
               "  --timeout SECONDS           request and stalled-viewer timeout (default 30)\n"
               "  --max-header-bytes N        request header cap (default 8192)\n"
               "  --max-body-bytes N          request body cap (default 65536)\n"
               "  --size WxH                  test pattern size (default 640x480)\n"
               "  --fps N                     test pattern frame rate (default 25)\n"
               "  --quality N                 test pattern JPEG quality 1..100 (default 80)\n");
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_listen(const char *arg, relay_config *cfg)
{
    const char *colon = strrchr(arg, ':');
    if (colon == NULL)
        return false;
    const char *host = arg;
    size_t hlen = (size_t)(colon - arg);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    unsigned long port;
    if (hlen == 0 || hlen >= sizeof(cfg->host) || !parse_uint(colon + 1, 0, 65535, &port))
        return false;
    memcpy(cfg->host, host, hlen);
    cfg->host[hlen] = '\0';
    cfg->port = (int)port;
    return true;
}

/* Parse argv into @cfg. Returns 0, 1 for --help, or -EINVAL. */
static int parse_args(int argc, char **argv, relay_config *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--no-default-input") == 0) {
            cfg->default_input = false;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "steward relay: unknown option or missing value: '%s'\n", a);
            return -EINVAL;
        }
        bool ok = true;
        i++;
        if (strcmp(a, "--listen") == 0)
            ok = parse_listen(v, cfg);
        else if (strcmp(a, "--max-viewers") == 0 && (ok = parse_uint(v, 0, 100000, &n)))
            cfg->max_viewers = (unsigned)n;
        else if (strcmp(a, "--max-viewers-per-input") == 0 && (ok = parse_uint(v, 0, 100000, &n)))
            cfg->max_viewers_input = (unsigned)n;
        else if (strcmp(a, "--inflight") == 0 && (ok = parse_uint(v, 1, 8, &n)))
            cfg->inflight = (unsigned)n;
        else if (strcmp(a, "--viewer-sndbuf") == 0 && (ok = parse_uint(v, 4096, 64 << 20, &n)))
            cfg->viewer_sndbuf = (int)n;
        else if (strcmp(a, "--timeout") == 0 && (ok = parse_uint(v, 1, 3600, &n)))
            cfg->timeout_s = (int)n;
        else if (strcmp(a, "--max-header-bytes") == 0 && (ok = parse_uint(v, 256, 1 << 20, &n)))
            cfg->max_header_bytes = (int)n;
        else if (strcmp(a, "--max-body-bytes") == 0 && (ok = parse_uint(v, 0, 64 << 20, &n)))
            cfg->max_body_bytes = (int)n;
        else if (strcmp(a, "--fps") == 0 && (ok = parse_uint(v, 1, 120, &n)))
            cfg->fps = (unsigned)n;
        else if (strcmp(a, "--quality") == 0 && (ok = parse_uint(v, 1, 100, &n)))
            cfg->quality = (unsigned)n;
        else if (strcmp(a, "--size") == 0)
            ok = sscanf(v, "%ux%u", &cfg->width, &cfg->height) == 2 && cfg->width >= 16 &&
                 cfg->height >= 16 && cfg->width <= 4096 && cfg->height <= 4096;
        else if (ok) {
            fprintf(stderr, "steward relay: unknown option '%s'\n", a);
            return -EINVAL;
        }
        if (!ok) {
            fprintf(stderr, "steward relay: bad value for %s: '%s'\n", a, v);
            return -EINVAL;
        }
    }
    return 0;
}

bool relay_name_valid(const char *name, size_t len)
{
    if (len == 0 || len >= RELAY_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void input_free(void *arg)
{
    relay_input *in = arg;
    relay_hub_free(&in->hub);
    stw_free(in);
}

/* Create the test input @name under @sources and start its source.
 * On failure nothing of it is left. */
static int input_create_test(stw_scope *sources, const char *name, const relay_config *cfg,
                             relay_input **out)
{
    if (!relay_name_valid(name, strlen(name)))
        return -EINVAL;
    char sname[RELAY_NAME_MAX + 8];
    snprintf(sname, sizeof(sname), "input:%s", name);
    stw_scope *sc = NULL;
    int rc = stw_scope_new(sources, sname, &sc);
    if (rc != 0)
        return rc;
    relay_input *in = stw_calloc(1, sizeof(*in));
    if (in == NULL) {
        rc = -ENOMEM;
        goto free_scope;
    }
    snprintf(in->name, sizeof(in->name), "%s", name);
    in->kind = "test";
    in->scope = sc;
    in->width = cfg->width;
    in->height = cfg->height;
    in->fps = cfg->fps;
    rc = relay_hub_new(in->name, &in->hub);
    if (rc != 0)
        goto free_input;
    rc = stw_scope_defer(sc, input_free, in);
    if (rc != 0)
        goto free_hub;
    /* From here the scope owns the input: closing it undoes everything. */
    rc = relay_source_test_start(in, cfg);
    if (rc != 0)
        goto free_scope;
    *out = in;
    return 0;

free_hub:
    relay_hub_free(&in->hub);
free_input:
    stw_free(in);
free_scope:
    stw_scope_free(&sc);
    return rc;
}

static void print_address(const relay_config *cfg, int port)
{
    bool v6 = strchr(cfg->host, ':') != NULL;
    printf("steward relay: serving http://%s%s%s:%d/\n", v6 ? "[" : "", cfg->host, v6 ? "]" : "",
           port);
    fflush(stdout);
}

int stw_relay_main(int argc, char **argv)
{
    relay_config cfg = {.host = "127.0.0.1",
                        .port = 8080,
                        .default_input = true,
                        .max_viewers = 1000,
                        .max_viewers_input = 100,
                        .inflight = 2,
                        .viewer_sndbuf = 128 * 1024,
                        .timeout_s = 30,
                        .max_header_bytes = 8192,
                        .max_body_bytes = 65536,
                        .width = 640,
                        .height = 480,
                        .fps = 25,
                        .quality = 80};
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : EXIT_USAGE;
    }

    /* Before any thread exists: the signals must be blocked in all of them. */
    stw_shutdown *sd = NULL;
    rc = stw_shutdown_new(&sd);
    if (rc != 0) {
        fprintf(stderr, "steward relay: %s\n", stw_strerror(rc));
        return 1;
    }
    event_set_mem_functions(stw_malloc, stw_realloc, stw_free);
    stw_snapshot *baseline = NULL;
    rc = stw_snapshot_new(NULL, &baseline);
    if (rc != 0)
        goto free_shutdown;

    stw_scope *root = NULL, *http = NULL, *sources = NULL;
    rc = stw_scope_new(NULL, "relay", &root);
    if (rc == 0)
        rc = stw_scope_new(root, "http", &http);
    if (rc == 0)
        rc = stw_scope_new(root, "sources", &sources);
    if (rc == 0)
        rc = stw_shutdown_add_stage(sd, "http", http, 5000);
    if (rc == 0)
        rc = stw_shutdown_add_stage(sd, "sources", sources, 5000);
    relay_input *inputs[RELAY_INPUTS_MAX];
    unsigned ninputs = 0;
    if (rc == 0 && cfg.default_input)
        rc = input_create_test(sources, "test", &cfg, &inputs[ninputs++]);
    int port = 0;
    if (rc == 0)
        rc = relay_http_start(http, &cfg, inputs, ninputs, &port);
    if (rc != 0) {
        fprintf(stderr, "steward relay: cannot start on %s:%d: %s\n", cfg.host, cfg.port,
                stw_strerror(rc));
        stw_scope_free(&root);
        goto free_baseline;
    }
    print_address(&cfg, port);

    int sig = stw_shutdown_wait(sd, STW_DEADLINE_NEVER);
    fprintf(stderr, "steward relay: %s, shutting down\n",
            sig > 0 ? strsignal(sig) : "shutdown requested");
    int code = stw_shutdown_run(sd, baseline, STDERR_FILENO);
    stw_scope_free(&root);
    stw_snapshot_free(&baseline);
    stw_shutdown_free(&sd);
    libevent_global_shutdown();
    return code;

free_baseline:
    stw_snapshot_free(&baseline);
free_shutdown:
    stw_shutdown_free(&sd);
    libevent_global_shutdown();
    return 1;
}
