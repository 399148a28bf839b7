/*
 * src/relay/relay.c — `steward relay`: options, the scope tree, ordered
 * shutdown and the leak verdict.
 *
 * Model
 *   relay_main builds the tree described in relay.h (root "relay", stage
 *   scopes "http" and "sources", one child of "sources" per input), loads
 *   the inputs from the state file (or creates the default "test" input
 *   when there is none), starts them and the HTTP loop, prints the address
 *   it serves, and waits
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
 *   after the verdict, once no libevent object is left. jansson allocates
 *   through stw_malloc/stw_free too.
 *
 *   This file also holds the input lifecycle (relay.h): an input's owner
 *   scope, its hub, and starting and stopping its source in a child scope.
 *   A corrupt state file is never dropped silently: it is reported on
 *   stderr and renamed aside to PATH.corrupt-TIMESTAMP before the relay
 *   starts with the default input.
 *
 * Ownership
 *   The configuration lives on relay_main's stack; everything else
 *   created after the baseline is owned by a scope of the tree and freed
 *   by its cleanups during the stages, which is what makes the verdict
 *   meaningful.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "push.h"
#include "rec.h"
#include "recorder.h"
#include "relay.h"
#include "service.h"
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
               "  --config PATH               read a YAML config file: limits, users, TLS,\n"
               "                              inputs that always exist (docs/relay-config.md);\n"
               "                              the options below override it\n"
               "  --print-config              print the effective configuration (secrets\n"
               "                              hidden) and exit\n"
               "  --hash-password             read a password from stdin, print its argon2id\n"
               "                              hash for a user's password_hash, and exit\n"
               "  --new-token                 print a new bearer token and its hash for a\n"
               "                              user's token_hashes, and exit\n"
               "  --listen HOST:PORT          address to serve (default 127.0.0.1:8080;\n"
               "                              port 0 picks a free port, printed at start)\n"
               "  --insecure-no-auth          serve a non-loopback address without users\n"
               "                              (anyone who reaches it may do everything)\n"
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
               "  --quality N                 test pattern JPEG quality 1..100 (default 80)\n"
               "  --state PATH                where the inputs are kept across restarts\n"
               "                              (default $XDG_STATE_HOME/steward/relay.json or\n"
               "                              ~/.local/state/steward/relay.json; \"none\": off)\n"
               "  --recordings DIR            where recordings go (default\n"
               "                              $XDG_STATE_HOME/steward/recordings or\n"
               "                              ~/.local/state/steward/recordings)\n"
               "  --recordings-max-bytes N    all recordings together at most N bytes\n"
               "                              (suffix K, M, G, T; default 0: no limit)\n"
               "  --recordings-max-age S      delete recordings older than S seconds\n"
               "                              (default 0: no limit)\n"
               "  --recordings-min-free N     keep N bytes (suffix K, M, G, T) or N%% of\n"
               "                              the filesystem free; the oldest recordings go,\n"
               "                              then recording pauses (default: the larger of\n"
               "                              1G and 5%%)\n"
               "  --on-demand-grace-ms N      idle time before an on-demand input's source\n"
               "                              stops (default 10000)\n"
               "  --max-inputs N              inputs at most, 1..64 (default 64)\n"
               "  --max-input-memory MIB      what all inputs together may claim: 8 bytes a\n"
               "                              test-pattern pixel, 16 MiB a camera or ffmpeg\n"
               "                              input (default 1024)\n"
               "  --max-sse-clients N         /api/events clients at most (default 32)\n"
               "  --camera-stall SECONDS      a camera silent this long is reconnected\n"
               "                              (default 5)\n"
               "  --camera-frame-timeout S    a camera without a frame this long is\n"
               "                              reconnected (default 10)\n"
               "  --header-timeout SECONDS    a request (line, headers and body) must arrive\n"
               "                              within this time (default 10)\n"
               "  --max-connections N         open HTTP connections in total (default 1100)\n"
               "  --max-connections-per-client N\n"
               "                              open HTTP connections of one client address\n"
               "                              (default 128)\n"
               "  --allow-host NAME           also accept requests whose Host is NAME (with or\n"
               "                              without a port; repeatable, up to 8; IP\n"
               "                              addresses and localhost are always accepted)\n"
               "  --cors-origin ORIGIN        allow cross-site requests from ORIGIN, e.g.\n"
               "                              https://nvr.example (repeatable, up to 8; none\n"
               "                              by default)\n"
               "  --log-level LEVEL           error, warning, notice, info (default) or debug\n"
               "  --log-format FORMAT         text (default; syslog priority prefixes when\n"
               "                              stderr is the journal) or json (one object a line)\n"
               "  --log-file PATH             log to PATH instead of stderr; SIGUSR1 reopens it\n"
               "  --log-max-size BYTES        rotate the log file at this size, k/M suffixes\n"
               "                              (default 10M; 0: never)\n"
               "  --log-keep N                rotated log files kept: PATH.1.. (default 5)\n"
               "  --log-repeat-interval S     identical errors within S seconds are counted,\n"
               "                              not repeated (default 60; 0: log them all)\n"
               "\n"
               "Every option taking a value accepts --opt VALUE and --opt=VALUE. SIGHUP\n"
               "re-reads the --config file; SIGUSR1 reopens the log file.\n");
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

/* A byte count with an optional K, M, G or T suffix (powers of 1024). */
static bool parse_bytes(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return false;
    static const char units[] = "KMGT";
    const char *u = *end != '\0' ? strchr(units, *end) : NULL;
    if (*end != '\0' && (u == NULL || end[1] != '\0'))
        return false;
    unsigned shift = u != NULL ? 10 * (unsigned)(u - units + 1) : 0;
    if (shift > 0 && v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

/* --recordings-min-free: BYTES (with a suffix) or N% of the filesystem. */
static bool parse_min_free(relay_config *cfg, const char *v)
{
    size_t len = strlen(v);
    if (len > 1 && v[len - 1] == '%') {
        char num[16];
        unsigned long pct;
        if (len - 1 >= sizeof(num))
            return false;
        memcpy(num, v, len - 1);
        num[len - 1] = '\0';
        if (!parse_uint(num, 0, 99, &pct))
            return false;
        cfg->rec_min_free_pct = (unsigned)pct;
        cfg->rec_min_free_bytes = 0;
        return true;
    }
    if (!parse_bytes(v, &cfg->rec_min_free_bytes))
        return false;
    cfg->rec_min_free_pct = 0;
    return true;
}

/* --state PATH: "none" disables the state file. */
static bool set_state_path(relay_config *cfg, const char *v)
{
    if (strcmp(v, "none") == 0) {
        cfg->state_path[0] = '\0';
        return true;
    }
    size_t len = strlen(v);
    if (len == 0 || len >= sizeof(cfg->state_path))
        return false;
    memcpy(cfg->state_path, v, len + 1);
    return true;
}

/* $XDG_STATE_HOME/steward/relay.json, else ~/.local/state/steward/relay.json,
 * else none (no usable environment). */
static void default_state_path(relay_config *cfg)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n = -1;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(cfg->state_path, sizeof(cfg->state_path), "%s/steward/relay.json", xdg);
    else if (home != NULL && home[0] == '/')
        n = snprintf(cfg->state_path, sizeof(cfg->state_path), "%s/.local/state/steward/relay.json",
                     home);
    if (n < 0 || (size_t)n >= sizeof(cfg->state_path))
        cfg->state_path[0] = '\0';
    n = -1;
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(cfg->rec_dir, sizeof(cfg->rec_dir), "%s/steward/recordings", xdg);
    else if (home != NULL && home[0] == '/')
        n = snprintf(cfg->rec_dir, sizeof(cfg->rec_dir), "%s/.local/state/steward/recordings",
                     home);
    if (n < 0 || (size_t)n >= sizeof(cfg->rec_dir))
        snprintf(cfg->rec_dir, sizeof(cfg->rec_dir), "steward-recordings");
}

/* Append @v to a --allow-host or --cors-origin list: printable, no spaces,
 * commas or slashes past an origin's scheme, at most RELAY_ALLOW_MAX. */
static bool add_name(char list[][RELAY_ALLOW_LEN], unsigned *n, const char *v)
{
    size_t len = strlen(v);
    if (*n >= RELAY_ALLOW_MAX || len == 0 || len >= RELAY_ALLOW_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (v[i] <= ' ' || v[i] >= 0x7f || v[i] == ',')
            return false;
    memcpy(list[*n], v, len + 1);
    (*n)++;
    return true;
}

int relay_option_set(relay_config *cfg, const char *a, const char *v)
{
    unsigned long n;
    bool ok = true;
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
    else if (strcmp(a, "--on-demand-grace-ms") == 0 && (ok = parse_uint(v, 0, 3600000, &n)))
        cfg->on_demand_grace_ms = (int)n;
    else if (strcmp(a, "--max-inputs") == 0 && (ok = parse_uint(v, 1, RELAY_INPUTS_MAX, &n)))
        cfg->max_inputs = (unsigned)n;
    else if (strcmp(a, "--max-input-memory") == 0 && (ok = parse_uint(v, 16, 1 << 20, &n)))
        cfg->max_input_bytes = (size_t)n << 20;
    else if (strcmp(a, "--max-sse-clients") == 0 && (ok = parse_uint(v, 0, 10000, &n)))
        cfg->max_sse = (unsigned)n;
    else if (strcmp(a, "--camera-stall") == 0 && (ok = parse_uint(v, 1, 3600, &n)))
        cfg->camera_stall_s = (int)n;
    else if (strcmp(a, "--camera-frame-timeout") == 0 && (ok = parse_uint(v, 1, 3600, &n)))
        cfg->camera_frame_timeout_s = (int)n;
    else if (strcmp(a, "--header-timeout") == 0 && (ok = parse_uint(v, 1, 3600, &n)))
        cfg->header_timeout_s = (int)n;
    else if (strcmp(a, "--max-connections") == 0 && (ok = parse_uint(v, 1, 1000000, &n)))
        cfg->max_connections = (unsigned)n;
    else if (strcmp(a, "--max-connections-per-client") == 0 && (ok = parse_uint(v, 1, 1000000, &n)))
        cfg->max_conn_per_client = (unsigned)n;
    else if (strcmp(a, "--allow-host") == 0)
        ok = add_name(cfg->allow_host, &cfg->nallow_host, v);
    else if (strcmp(a, "--cors-origin") == 0)
        ok = add_name(cfg->cors_origin, &cfg->ncors_origin, v);
    else if (strcmp(a, "--state") == 0)
        ok = set_state_path(cfg, v);
    else if (strcmp(a, "--recordings") == 0)
        ok = v[0] != '\0' && strlen(v) < sizeof(cfg->rec_dir) &&
             snprintf(cfg->rec_dir, sizeof(cfg->rec_dir), "%s", v) > 0;
    else if (strcmp(a, "--recordings-max-bytes") == 0)
        ok = parse_bytes(v, &cfg->rec_max_bytes);
    else if (strcmp(a, "--recordings-max-age") == 0 && (ok = parse_uint(v, 0, 315360000, &n)))
        cfg->rec_max_age_s = (int64_t)n;
    else if (strcmp(a, "--recordings-min-free") == 0)
        ok = parse_min_free(cfg, v);
    else if (strcmp(a, "--size") == 0)
        ok = sscanf(v, "%ux%u", &cfg->width, &cfg->height) == 2 && cfg->width >= 16 &&
             cfg->height >= 16 && cfg->width <= 4096 && cfg->height <= 4096;
    else if (strncmp(a, "--log-", 6) == 0)
        return relay_log_option(&cfg->log, a, v);
    else if (ok)
        return -ENOENT;
    return ok ? 0 : -EINVAL;
}

/* What the command line asks besides serving. */
enum { RUN_SERVE, RUN_HELP, RUN_PRINT_CONFIG, RUN_HASH_PASSWORD, RUN_NEW_TOKEN };

/* The options without a value have their own codes; every option with one
 * goes to relay_option_set() under its name (code OPT_VALUE). */
enum {
    OPT_VALUE = 0x100,
    OPT_CONFIG,
    OPT_NO_DEFAULT,
    OPT_INSECURE,
    OPT_PRINT,
    OPT_HASH,
    OPT_TOKEN
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"no-default-input", no_argument, NULL, OPT_NO_DEFAULT},
    {"insecure-no-auth", no_argument, NULL, OPT_INSECURE},
    {"print-config", no_argument, NULL, OPT_PRINT},
    {"hash-password", no_argument, NULL, OPT_HASH},
    {"new-token", no_argument, NULL, OPT_TOKEN},
    {"listen", required_argument, NULL, OPT_VALUE},
    {"max-viewers", required_argument, NULL, OPT_VALUE},
    {"max-viewers-per-input", required_argument, NULL, OPT_VALUE},
    {"inflight", required_argument, NULL, OPT_VALUE},
    {"viewer-sndbuf", required_argument, NULL, OPT_VALUE},
    {"timeout", required_argument, NULL, OPT_VALUE},
    {"max-header-bytes", required_argument, NULL, OPT_VALUE},
    {"max-body-bytes", required_argument, NULL, OPT_VALUE},
    {"fps", required_argument, NULL, OPT_VALUE},
    {"quality", required_argument, NULL, OPT_VALUE},
    {"size", required_argument, NULL, OPT_VALUE},
    {"on-demand-grace-ms", required_argument, NULL, OPT_VALUE},
    {"max-inputs", required_argument, NULL, OPT_VALUE},
    {"max-input-memory", required_argument, NULL, OPT_VALUE},
    {"max-sse-clients", required_argument, NULL, OPT_VALUE},
    {"camera-stall", required_argument, NULL, OPT_VALUE},
    {"camera-frame-timeout", required_argument, NULL, OPT_VALUE},
    {"header-timeout", required_argument, NULL, OPT_VALUE},
    {"max-connections", required_argument, NULL, OPT_VALUE},
    {"max-connections-per-client", required_argument, NULL, OPT_VALUE},
    {"allow-host", required_argument, NULL, OPT_VALUE},
    {"cors-origin", required_argument, NULL, OPT_VALUE},
    {"state", required_argument, NULL, OPT_VALUE},
    {"log-level", required_argument, NULL, OPT_VALUE},
    {"log-format", required_argument, NULL, OPT_VALUE},
    {"log-file", required_argument, NULL, OPT_VALUE},
    {"log-max-size", required_argument, NULL, OPT_VALUE},
    {"log-keep", required_argument, NULL, OPT_VALUE},
    {"log-repeat-interval", required_argument, NULL, OPT_VALUE},
    {"recordings", required_argument, NULL, OPT_VALUE},
    {"recordings-max-bytes", required_argument, NULL, OPT_VALUE},
    {"recordings-max-age", required_argument, NULL, OPT_VALUE},
    {"recordings-min-free", required_argument, NULL, OPT_VALUE},
    {NULL, 0, NULL, 0},
};

/* Parse argv into @cfg, over what the config file set: a list option
 * given here replaces the file's list. Returns a RUN_ value or -EINVAL.
 * Runs again on SIGHUP (relay_config_reread), so it resets getopt. */
static int parse_args(int argc, char **argv, relay_config *cfg)
{
    int run = RUN_SERVE;
    bool allow_reset = false, cors_reset = false;
    opterr = 0;
    optind = 0;
    int c, idx = -1;
    /* "+": stop at the first operand (there are none: an error below);
     * ":": a missing value comes back as ':'. */
    while ((c = getopt_long(argc, argv, "+:h", long_opts, &idx)) != -1) {
        const char *bad = argv[optind - 1];
        switch (c) {
        case 'h':
            return RUN_HELP;
        case OPT_CONFIG:
            break; /* read before the other options */
        case OPT_NO_DEFAULT:
            cfg->default_input = false;
            break;
        case OPT_INSECURE:
            cfg->insecure_no_auth = true;
            break;
        case OPT_PRINT:
            run = RUN_PRINT_CONFIG;
            break;
        case OPT_HASH:
            run = RUN_HASH_PASSWORD;
            break;
        case OPT_TOKEN:
            run = RUN_NEW_TOKEN;
            break;
        case OPT_VALUE: {
            char a[64];
            snprintf(a, sizeof(a), "--%s", long_opts[idx].name);
            if (strcmp(a, "--allow-host") == 0 && !allow_reset) {
                cfg->nallow_host = 0;
                allow_reset = true;
            }
            if (strcmp(a, "--cors-origin") == 0 && !cors_reset) {
                cfg->ncors_origin = 0;
                cors_reset = true;
            }
            if (relay_option_set(cfg, a, optarg) != 0) {
                fprintf(stderr, "steward relay: bad value for %s: '%s'\n", a, optarg);
                return -EINVAL;
            }
            break;
        }
        case ':':
            fprintf(stderr, "steward relay: missing value for '%s'\n", bad);
            return -EINVAL;
        default:
            fprintf(stderr, "steward relay: unknown option '%s'\n", bad);
            return -EINVAL;
        }
        idx = -1;
    }
    if (optind < argc) {
        fprintf(stderr, "steward relay: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    return run;
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

static void release_libraries(void *arg)
{
    (void)arg;
    relay_source_mjpeg_global_cleanup();
}

void relay_input_set_pool(relay_input *in, stw_pool *pool)
{
    stw_pool *ref = pool != NULL ? stw_pool_ref(pool) : NULL;
    pthread_mutex_lock(&in->lock);
    stw_pool *old = in->pool;
    in->pool = ref;
    pthread_mutex_unlock(&in->lock);
    stw_pool_unref(&old);
}

static void input_free(void *arg)
{
    relay_input *in = arg;
    relay_ffmpeg_input_release(in);
    stw_pool_unref(&in->pool);
    relay_motion_free(&in->motion);
    relay_hub_free(&in->hub);
    pthread_mutex_destroy(&in->lock);
    stw_free(in);
}

bool relay_input_consumed(const relay_input *in)
{
    return in->npush > 0 || in->motion_spec.enabled || in->recorder != NULL;
}

size_t relay_record_claim(const char *kind, const relay_record_spec *rec)
{
    bool ring = rec->on && rec->motion && strcmp(kind, "ffmpeg") != 0;
    return ring ? RELAY_RECORDER_RING_BYTES : 0;
}

size_t relay_spec_claim(const relay_spec *spec)
{
    size_t rec = relay_record_claim(spec->kind, &spec->record);
    if (strcmp(spec->kind, "test") == 0)
        return (size_t)spec->width * spec->height * 8 + rec;
    return ((size_t)16 << 20) + rec;
}

int relay_input_new(stw_scope *sources, const relay_spec *spec, relay_input **out)
{
    if (!relay_name_valid(spec->name, strlen(spec->name)) || spec->kind == NULL ||
        (strcmp(spec->kind, "test") != 0 && strcmp(spec->kind, "mjpeg") != 0 &&
         strcmp(spec->kind, "ffmpeg") != 0))
        return -EINVAL;
    char sname[RELAY_NAME_MAX + 8];
    snprintf(sname, sizeof(sname), "input:%s", spec->name);
    stw_scope *owner = NULL;
    int rc = stw_scope_new(sources, sname, &owner);
    if (rc != 0)
        return rc;
    relay_input *in = stw_calloc(1, sizeof(*in));
    if (in == NULL) {
        rc = -ENOMEM;
        goto free_scope;
    }
    snprintf(in->name, sizeof(in->name), "%s", spec->name);
    in->kind = strcmp(spec->kind, "test") == 0    ? "test"
               : strcmp(spec->kind, "mjpeg") == 0 ? "mjpeg"
                                                  : "ffmpeg";
    in->ff = spec->ff;
    snprintf(in->url, sizeof(in->url), "%s", spec->url);
    in->width = spec->width;
    in->height = spec->height;
    in->fps = spec->fps;
    in->quality = spec->quality;
    in->still = spec->still;
    /* A spec made in code without motion options (all zero) gets the
     * defaults, so that the state file never holds what its loader refuses. */
    in->motion_spec = spec->motion.fps != 0 ? spec->motion : RELAY_MOTION_SPEC_DEFAULT;
    in->on_demand = spec->on_demand;
    in->record = spec->record;
    if (in->record.segment_s == 0) /* a spec made in code, not parsed */
        in->record = RELAY_RECORD_SPEC_DEFAULT;
    in->declared = spec->declared;
    in->claim = relay_spec_claim(spec);
    in->created_ms = spec->created_ms;
    if (in->created_ms == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        in->created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    in->owner = owner;
    pthread_mutex_init(&in->lock, NULL);
    rc = relay_hub_new(in->name, &in->hub);
    if (rc != 0)
        goto free_input;
    rc = relay_motion_new(&in->motion);
    if (rc != 0)
        goto free_hub;
    if (strcmp(in->kind, "ffmpeg") == 0 && (rc = relay_ffmpeg_input_init(in)) != 0)
        goto free_hub;
    rc = stw_scope_defer(owner, input_free, in);
    if (rc != 0)
        goto free_hub;
    *out = in;
    return 0;

free_hub:
    relay_ffmpeg_input_release(in);
    relay_motion_free(&in->motion);
    relay_hub_free(&in->hub);
free_input:
    pthread_mutex_destroy(&in->lock);
    stw_free(in);
free_scope:
    stw_scope_free(&owner);
    return rc;
}

int relay_input_start(relay_input *in, const relay_config *cfg)
{
    if (in->scope != NULL)
        return -EALREADY;
    int rc = stw_scope_new(in->owner, "source", &in->scope);
    if (rc != 0) {
        relay_input_set_state(in, "error");
        return rc;
    }
    relay_config icfg = *cfg;
    icfg.width = in->width;
    icfg.height = in->height;
    icfg.fps = in->fps;
    icfg.quality = in->quality;
    relay_input_set_state(in, "starting");
    if (strcmp(in->kind, "test") == 0)
        rc = relay_source_test_start(in, &icfg);
    else if (strcmp(in->kind, "mjpeg") == 0)
        rc = relay_source_mjpeg_start(in, &icfg);
    else
        rc = relay_source_ffmpeg_start(in, &icfg);
    if (rc != 0) {
        /* Whatever the source set up is undone by its scope. */
        stw_scope_free(&in->scope);
        relay_input_set_pool(in, NULL);
        relay_input_set_state(in, "error");
    }
    return rc;
}

void relay_input_start_pushes(relay_input *in, const relay_spec *spec)
{
    for (unsigned i = 0; i < spec->npush && in->npush < RELAY_PUSH_MAX; i++) {
        int rc = relay_push_start(in, spec->push[i].id, spec->push[i].url, &in->push[in->npush]);
        if (rc == 0)
            in->npush++;
        else
            relay_log(RELAY_LOG_ERROR, "push", in->name, "cannot start push output %llu: %s",
                      (unsigned long long)spec->push[i].id, stw_strerror(rc));
    }
}

int relay_input_apply_record(relay_input *in, const relay_config *cfg)
{
    relay_rec *rec = cfg->rec;
    if (rec != NULL) {
        relay_rec_limits l = {.max_age_s = in->record.max_age_s,
                              .max_bytes = in->record.max_bytes};
        relay_rec_set_input(rec, in->name, &l);
    }
    if (in->recorder != NULL && !in->record.on)
        relay_recorder_stop(&in->recorder, stw_deadline_in_ms(10000));
    if (!in->record.on || in->recorder != NULL)
        return 0;
    if (rec == NULL)
        return -ENODEV;
    return relay_recorder_start(in, rec, in->record.segment_s, &in->recorder);
}

void relay_input_stop(relay_input *in, stw_deadline d)
{
    if (in->scope == NULL)
        return;
    stw_scope_report rep;
    if (stw_scope_close(in->scope, d, &rep) == -ETIMEDOUT)
        relay_log(RELAY_LOG_WARNING, "input", in->name,
                  "%d source thread(s) did not stop in time (first: %s); they finish on their own",
                  rep.missed, rep.listed > 0 ? rep.stragglers[0].thread : "?");
    stw_scope_free(&in->scope);
    relay_input_set_pool(in, NULL);
    relay_input_set_state(in, "idle");
}

void relay_input_free(relay_input **inp, stw_deadline d)
{
    if (inp == NULL || *inp == NULL)
        return;
    relay_input *in = *inp;
    *inp = NULL;
    stw_scope *owner = in->owner;
    stw_scope_report rep;
    /* The owner's cleanup frees @in: nothing of it is touched after. */
    if (stw_scope_close(owner, d, &rep) == -ETIMEDOUT)
        relay_log(RELAY_LOG_WARNING, "input", NULL,
                  "a deleted input's %d source thread(s) did not stop in time (first: %s); it is "
                  "freed when they return",
                  rep.missed, rep.listed > 0 ? rep.stragglers[0].thread : "?");
    stw_scope_free(&owner);
}

/* Rename a corrupt state file aside, to PATH.corrupt-YYYYMMDDTHHMMSSZ. */
static void keep_corrupt_state(const char *path, const char *why)
{
    char aside[RELAY_PATH_MAX + 32];
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(aside, sizeof(aside), "%s.corrupt-%s", path, stamp);
    if (rename(path, aside) == 0)
        relay_log(RELAY_LOG_ERROR, "state", NULL,
                  "state file %s is corrupt (%s); kept as %s, starting with the default input",
                  path, why, aside);
    else
        relay_log(RELAY_LOG_ERROR, "state", NULL,
                  "state file %s is corrupt (%s) and cannot be renamed aside (%s); starting with "
                  "the default input",
                  path, why, strerror(errno));
}

/* Create (and start, unless on demand) the inputs the relay begins with:
 * those of the state file, or the default one. Returns 0 or a negative
 * errno; on failure the inputs made so far are left to @sources. */
static int initial_inputs(stw_scope *sources, const relay_config *cfg, relay_input **inputs,
                          unsigned *ninputs)
{
    static relay_spec specs[RELAY_INPUTS_MAX];
    unsigned n = 0;
    char err[256] = "";
    int rc = -ENOENT;
    const relay_file *file = cfg->file;
    unsigned declared = file != NULL ? file->ninputs : 0;
    if (declared > cfg->max_inputs) {
        fprintf(stderr, "steward relay: config %s declares %u inputs, more than --max-inputs %u\n",
                file->path, declared, cfg->max_inputs);
        return -EINVAL;
    }
    if (cfg->state_path[0] != '\0')
        relay_state_clean_temps(cfg->state_path);
    if (cfg->state_path[0] != '\0')
        rc = relay_state_load(cfg->state_path, cfg, specs, cfg->max_inputs - declared, &n, err,
                              sizeof(err));
    if (rc == -EINVAL) {
        keep_corrupt_state(cfg->state_path, err);
    } else if (rc != 0 && rc != -ENOENT) {
        fprintf(stderr, "steward relay: cannot read state file %s: %s\n", cfg->state_path,
                stw_strerror(rc));
        return rc;
    }
    if (rc != 0) {
        n = 0;
        if (cfg->default_input && declared == 0) {
            specs[0] = (relay_spec){.name = "test",
                                    .kind = "test",
                                    .width = cfg->width,
                                    .height = cfg->height,
                                    .fps = cfg->fps,
                                    .quality = cfg->quality,
                                    .motion = RELAY_MOTION_SPEC_DEFAULT};
            n = 1;
        }
    }
    *ninputs = 0;
    for (unsigned i = 0; i < declared + n; i++) {
        const relay_spec *spec = i < declared ? &file->inputs[i] : &specs[i - declared];
        bool dup = false;
        for (unsigned j = 0; j < declared && i >= declared; j++)
            dup = dup || strcmp(file->inputs[j].name, spec->name) == 0;
        if (dup) {
            /* The file wins; the entry leaves the state file at its next save. */
            relay_log(RELAY_LOG_WARNING, "state", spec->name,
                      "input of the state file is declared by the config file %s: using the "
                      "config's",
                      file->path);
            continue;
        }
        rc = relay_input_new(sources, spec, &inputs[*ninputs]);
        if (rc != 0)
            return rc;
        relay_input *in = inputs[(*ninputs)++];
        relay_input_start_pushes(in, spec);
        if (in->motion_spec.enabled && (rc = relay_motion_start(in)) != 0)
            fprintf(stderr, "steward relay: input %s: cannot start motion detection: %s\n",
                    in->name, stw_strerror(rc));
        rc = relay_input_apply_record(in, cfg);
        if (rc != 0)
            fprintf(stderr, "steward relay: input %s: cannot record: %s\n", in->name,
                    stw_strerror(rc));
        /* Push outputs, motion detection and recording keep an on-demand
         * input running, as viewers do. */
        if (in->on_demand && !relay_input_consumed(in))
            continue;
        /* One input whose source cannot start must not keep the others
         * down: it stays configured, in state "error", and says why. */
        rc = relay_input_start(in, cfg);
        if (rc != 0)
            relay_log(RELAY_LOG_ERROR, "input", in->name, "cannot start its source: %s",
                      stw_strerror(rc));
    }
    return 0;
}

static void print_address(const relay_config *cfg, int port)
{
    bool v6 = strchr(cfg->host, ':') != NULL;
    bool tls = cfg->file != NULL && cfg->file->tls_cert[0] != '\0';
    printf("steward relay: serving %s://%s%s%s:%d/\n", tls ? "https" : "http", v6 ? "[" : "",
           cfg->host, v6 ? "]" : "", port);
    fflush(stdout);
}

static void config_defaults(relay_config *cfg)
{
    *cfg = (relay_config){.host = "127.0.0.1",
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
                          .quality = 80,
                          .max_inputs = RELAY_INPUTS_MAX,
                          .max_input_bytes = (size_t)1024 << 20,
                          .max_sse = 32,
                          .on_demand_grace_ms = 10000,
                          .camera_stall_s = 5,
                          .camera_frame_timeout_s = 10,
                          .header_timeout_s = 10,
                          .max_connections = 1100,
                          .max_conn_per_client = 128,
                          .rec_min_free_bytes = RELAY_REC_MIN_FREE_DEFAULT,
                          .rec_min_free_pct = RELAY_REC_MIN_FREE_PCT_DEFAULT};
    cfg->log = (relay_log_opts)RELAY_LOG_OPTS_DEFAULT;
    default_state_path(cfg);
}

/* The command line, kept for relay_config_reread(). */
static int saved_argc;
static char **saved_argv;

int relay_config_reread(relay_config *cfg, relay_file *file, char *err, size_t errlen)
{
    const char *config = relay_config_path(saved_argc, saved_argv);
    if (config == NULL) {
        snprintf(err, errlen, "the relay was started without --config: nothing to re-read");
        return -ENOENT;
    }
    config_defaults(cfg);
    int rc = relay_config_load(config, cfg, file, err, errlen);
    if (rc != 0)
        return rc;
    if (parse_args(saved_argc, saved_argv, cfg) < 0) {
        snprintf(err, errlen, "the command line no longer applies over the file");
        return -EINVAL;
    }
    return 0;
}

int stw_relay_main(int argc, char **argv)
{
    relay_config cfg;
    config_defaults(&cfg);
    saved_argc = argc;
    saved_argv = argv;
    /* Large, and borrowed by cfg until exit. */
    static relay_file file;
    const char *config = relay_config_path(argc, argv);
    int rc = 0;
    if (config != NULL) {
        char err[768];
        rc = relay_config_load(config, &cfg, &file, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "steward relay: config: %s\n", err);
            return EXIT_USAGE;
        }
    }
    int run = parse_args(argc, argv, &cfg);
    if (run < 0 || run == RUN_HELP) {
        usage(run == RUN_HELP ? stdout : stderr);
        return run == RUN_HELP ? 0 : EXIT_USAGE;
    }
    if (run == RUN_PRINT_CONFIG) {
        relay_config_print(stdout, &cfg);
        return 0;
    }
    if (run == RUN_HASH_PASSWORD)
        return relay_auth_hash_password(stdin, stdout) == 0 ? 0 : 1;
    if (run == RUN_NEW_TOKEN)
        return relay_auth_new_token(stdout) == 0 ? 0 : 1;
    rc = relay_auth_check_listen(&cfg);
    if (rc != 0)
        return EXIT_USAGE;
    uint64_t id = 0;
    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = (uint64_t)stw_now_ns() ^ ((uint64_t)getpid() << 32);
    snprintf(cfg.instance, sizeof(cfg.instance), "%016llx", (unsigned long long)id);

    /* A viewer that hangs up with frames unread makes the next write fail
     * with EPIPE; by default that signal would end the whole relay. Set
     * before any thread exists, so every thread inherits it. */
    signal(SIGPIPE, SIG_IGN);

    /* Before any thread exists: the signals must be blocked in all of them. */
    stw_shutdown *sd = NULL;
    rc = stw_shutdown_new(&sd);
    if (rc == 0)
        rc = relay_service_block_signals();
    if (rc != 0) {
        fprintf(stderr, "steward relay: %s\n", stw_strerror(rc));
        stw_shutdown_free(&sd);
        return 1;
    }
    /* Before the baseline: the log file lives until after the verdict. */
    rc = relay_log_setup(&cfg.log);
    if (rc != 0) {
        fprintf(stderr, "steward relay: cannot open log file %s: %s\n", cfg.log.file,
                stw_strerror(rc));
        stw_shutdown_free(&sd);
        return 1;
    }
    event_set_mem_functions(stw_malloc, stw_realloc, stw_free);
    json_set_alloc_funcs(stw_malloc, stw_free);
    stw_snapshot *baseline = NULL;
    rc = stw_snapshot_new(NULL, &baseline);
    if (rc != 0)
        goto free_shutdown;

    stw_scope *root = NULL, *http = NULL, *sources = NULL, *recs = NULL, *libs = NULL;
    rc = stw_scope_new(NULL, "relay", &root);
    if (rc == 0)
        rc = stw_scope_new(root, "http", &http);
    if (rc == 0)
        rc = stw_scope_new(root, "sources", &sources);
    /* The recordings service outlives every recorder (they are in the
     * inputs' scopes) and goes before the libraries. */
    if (rc == 0)
        rc = stw_scope_new(root, "recordings", &recs);
    /* Libraries' global state goes last, once nothing uses them, and before
     * the verdict: libcurl allocates through the ledger. */
    if (rc == 0)
        rc = stw_scope_new(root, "libraries", &libs);
    if (rc == 0)
        rc = stw_scope_defer(libs, release_libraries, NULL);
    if (rc == 0)
        rc = stw_shutdown_add_stage(sd, "http", http, 5000);
    if (rc == 0)
        rc = stw_shutdown_add_stage(sd, "sources", sources, 5000);
    if (rc == 0)
        rc = stw_shutdown_add_stage(sd, "recordings", recs, 3000);
    if (rc == 0)
        rc = stw_shutdown_add_stage(sd, "libraries", libs, 1000);
    /* A recordings directory that cannot be used leaves the relay serving
     * without recordings (said on stderr; recording is refused with 503). */
    if (rc == 0 && relay_rec_start(recs, &cfg, &cfg.rec) != 0) {
        cfg.rec = NULL;
        fprintf(stderr, "steward relay: recordings are off: %s cannot be used\n", cfg.rec_dir);
    }
    relay_input *inputs[RELAY_INPUTS_MAX];
    unsigned ninputs = 0;
    if (rc == 0)
        rc = initial_inputs(sources, &cfg, inputs, &ninputs);
    int port = 0;
    if (rc == 0)
        rc = relay_http_start(http, sources, &cfg, inputs, ninputs, &port);
    if (rc != 0) {
        fprintf(stderr, "steward relay: cannot start on %s:%d: %s\n", cfg.host, cfg.port,
                stw_strerror(rc));
        stw_scope_free(&root);
        goto free_baseline;
    }
    print_address(&cfg, port);

    int sig = stw_shutdown_wait(sd, STW_DEADLINE_NEVER);
    relay_service_notifyf("STOPPING=1\nSTATUS=shutting down (%s)",
                          sig > 0 ? strsignal(sig) : "shutdown requested");
    relay_log(RELAY_LOG_NOTICE, "relay", NULL, "%s, shutting down",
              sig > 0 ? strsignal(sig) : "shutdown requested");
    int code = stw_shutdown_run(sd, baseline, STDERR_FILENO);
    stw_scope_free(&root);
    stw_snapshot_free(&baseline);
    stw_shutdown_free(&sd);
    libevent_global_shutdown();
    relay_log_close();
    return code;

free_baseline:
    stw_snapshot_free(&baseline);
free_shutdown:
    stw_shutdown_free(&sd);
    libevent_global_shutdown();
    relay_log_close();
    return 1;
}
