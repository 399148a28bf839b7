/*
 * src/relay/http_debug.c — the relay's maintenance endpoints: /healthz,
 * /metrics (Prometheus text), /system-resources (the ledger as JSON),
 * /cleanup-resources and /debug/threads.
 *
 * Model
 *   Each handler takes a ledger snapshot (or reads /proc/self) on the loop
 *   thread and writes its answer into one evbuffer; none keeps state
 *   between requests. Symbolization (?stacks=1, ?symbolize=1) releases
 *   libdw's cached files before answering, so a long-running server keeps
 *   no debug-info files open between requests.
 *
 * Ownership
 *   Snapshots and buffers are freed before the handler returns.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http_internal.h"
#include "steward/ledger.h"

#define STACK_FRAMES 24

void relay_http__handle_healthz(struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"status\":\"ok\"}\n");
    relay_http__reply(req, 200, "OK", "application/json", b);
    evbuffer_free(b);
}

static void metric_head(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The supervised children of every input: whether each job has a child,
 * its restarts and the age of its child. */
static void job_metrics(relay_http *srv, struct evbuffer *b)
{
    static const char *const names[] = {"steward_relay_child_running",
                                        "steward_relay_child_restarts_total",
                                        "steward_relay_child_age_seconds"};
    static const char *const types[] = {"gauge", "counter", "gauge"};
    static const char *const help[] = {
        "1 while the job (ingest, decoder, push:ID) has a child process, else 0.",
        "Children started again after one ended or failed to start.",
        "Age of the job's current child."};
    relay_job_view jv[RELAY_PUSH_MAX + 3];
    for (unsigned k = 0; k < 3; k++) {
        metric_head(b, names[k], types[k], help[k]);
        for (unsigned i = 0; i < srv->ninputs; i++) {
            relay_input *in = srv->inputs[i]->in;
            unsigned n = relay_input_jobs(in, jv, RELAY_PUSH_MAX + 3);
            for (unsigned j = 0; j < n; j++) {
                evbuffer_add_printf(b, "%s{input=\"%s\",job=\"%s\"} ", names[k], in->name,
                                    jv[j].job);
                if (k == 0)
                    evbuffer_add_printf(b, "%d\n", jv[j].pid > 0);
                else if (k == 1)
                    evbuffer_add_printf(b, "%u\n", jv[j].restarts);
                else
                    evbuffer_add_printf(b, "%.3f\n", (double)jv[j].age_ms / 1000.0);
            }
        }
    }
}

void relay_http__handle_metrics(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    stw_snapshot *snap = NULL;
    if (b == NULL || stw_snapshot_new(NULL, &snap) != 0) {
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"steward_relay_frames_in_total", "counter", "Frames published by the input's source."},
        {"steward_relay_frames_out_total", "counter", "Frames handed to viewer sockets."},
        {"steward_relay_frames_dropped_total", "counter",
         "Frames skipped for a busy viewer or lost by the source."},
        {"steward_relay_viewers", "gauge", "Streaming viewers now."},
    };
    for (unsigned k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        metric_head(b, m[k].name, m[k].type, m[k].help);
        for (unsigned i = 0; i < srv->ninputs; i++) {
            relay_hub_stat st;
            relay_hub_stats(srv->inputs[i]->in->hub, &st);
            uint64_t val[] = {st.frames_in, st.frames_out, st.dropped, srv->inputs[i]->nviewers};
            evbuffer_add_printf(b, "%s{input=\"%s\"} %llu\n", m[k].name, srv->inputs[i]->in->name,
                                (unsigned long long)val[k]);
        }
    }
    job_metrics(srv, b);
    relay_http__motion_metrics(srv, b);
    relay_http__service_metrics(srv, b);
    metric_head(b, "steward_relay_viewers_all", "gauge", "Streaming viewers of all inputs.");
    evbuffer_add_printf(b, "steward_relay_viewers_all %u\n", srv->nviewers);
    static const struct {
        const char *name, *type, *help;
    } h[] = {
        {"steward_relay_connections", "gauge", "Open HTTP connections."},
        {"steward_relay_connections_max", "gauge", "--max-connections."},
        {"steward_relay_connections_per_client_max", "gauge", "--max-connections-per-client."},
        {"steward_relay_connections_refused_total", "counter",
         "Connections refused at accept: reason=\"limit\" (--max-connections) or "
         "\"per_client\" (--max-connections-per-client)."},
        {"steward_relay_header_timeouts_total", "counter",
         "Connections closed for not sending a request head within --header-timeout."},
        {"steward_relay_accept_errors_total", "counter",
         "accept() failures (descriptor limit and others); each pauses accepting briefly."},
        {"steward_relay_requests_rejected_total", "counter",
         "Requests refused by policy: reason=\"host\" (Host not allowed) or \"origin\" "
         "(cross-site)."},
        {"steward_relay_state_save_failures_total", "counter",
         "State file saves that failed (the change was refused and undone)."},
        {"steward_relay_sse_missed_total", "counter",
         "Events not sent to an event client that was too far behind."},
    };
    uint64_t v[] = {relay_http__conn_count(srv), srv->cfg.max_connections,
                    srv->cfg.max_conn_per_client};
    for (unsigned k = 0; k < sizeof(h) / sizeof(h[0]); k++) {
        metric_head(b, h[k].name, h[k].type, h[k].help);
        if (k < 3)
            evbuffer_add_printf(b, "%s %llu\n", h[k].name, (unsigned long long)v[k]);
    }
    evbuffer_add_printf(
        b,
        "steward_relay_connections_refused_total{reason=\"limit\"} %llu\n"
        "steward_relay_connections_refused_total{reason=\"per_client\"} %llu\n"
        "steward_relay_header_timeouts_total %llu\n"
        "steward_relay_accept_errors_total %llu\n"
        "steward_relay_requests_rejected_total{reason=\"host\"} %llu\n"
        "steward_relay_requests_rejected_total{reason=\"origin\"} %llu\n"
        "steward_relay_state_save_failures_total %llu\n"
        "steward_relay_sse_missed_total %llu\n",
        (unsigned long long)srv->refused_total, (unsigned long long)srv->refused_client,
        (unsigned long long)srv->header_timeouts, (unsigned long long)srv->accept_errors,
        (unsigned long long)srv->rejected_host, (unsigned long long)srv->rejected_origin,
        (unsigned long long)srv->state_save_failures, (unsigned long long)srv->sse_missed);
    metric_head(b, "steward_relay_auth_refused_total", "counter",
                "Requests refused by authentication: reason=\"credentials\" (a wrong user, "
                "password or token), \"locked\" (too many failures from the address), "
                "\"busy\" (the password check queue was full).");
    evbuffer_add_printf(b,
                        "steward_relay_auth_refused_total{reason=\"credentials\"} %llu\n"
                        "steward_relay_auth_refused_total{reason=\"locked\"} %llu\n"
                        "steward_relay_auth_refused_total{reason=\"busy\"} %llu\n",
                        (unsigned long long)srv->auth_failed, (unsigned long long)srv->auth_locked,
                        (unsigned long long)srv->auth_busy);
    relay_http__rec_metrics(srv, b);
    stw_report_prometheus(snap, relay_http__write_evbuffer, b);
    stw_snapshot_free(&snap);
    relay_http__reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}

void relay_http__jobs_json(relay_http *srv, struct evbuffer *b)
{
    relay_job_view jv[RELAY_PUSH_MAX + 3];
    bool first = true;
    evbuffer_add(b, "[", 1);
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        unsigned n = relay_input_jobs(in, jv, RELAY_PUSH_MAX + 3);
        for (unsigned j = 0; j < n; j++, first = false) {
            evbuffer_add_printf(b, "%s{\"input\":", first ? "" : ",");
            relay_http__json_str(b, in->name);
            evbuffer_add_printf(b, ",\"job\":");
            relay_http__json_str(b, jv[j].job);
            evbuffer_add_printf(b, ",\"state\":");
            relay_http__json_str(b, jv[j].state);
            evbuffer_add_printf(b, ",\"pid\":%d,\"restarts\":%u,\"age_ms\":%lld}", jv[j].pid,
                                jv[j].restarts, (long long)jv[j].age_ms);
        }
    }
    evbuffer_add(b, "]", 1);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long pages = -1, rss = -1;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void ledger_counts(struct evbuffer *b, const stw_kind_stat *st)
{
    evbuffer_add(b, "{", 1);
    bool first = true;
    for (int k = 0; k < STW_KIND_BUILTIN_COUNT; k++) {
        evbuffer_add_printf(b, "%s\"%s\":{\"live\":%lld,\"bytes\":%lld}", first ? "" : ",",
                            stw_kind_name(k), (long long)st[k].live, (long long)st[k].live_bytes);
        first = false;
    }
    evbuffer_add(b, "}", 1);
}

/* POST /cleanup-resources: trim the idle buffers of every input's pool and
 * give the C library's free heap back to the system. */
void relay_http__handle_cleanup(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    stw_kind_stat before[STW_KIND_BUILTIN_COUNT], after[STW_KIND_BUILTIN_COUNT];
    for (int k = 0; k < STW_KIND_BUILTIN_COUNT; k++)
        stw_ledger_kind_stat(k, &before[k]);
    long rss_before = rss_kb();
    int64_t bytes = 0;
    unsigned buffers = 0, pools = 0;
    evbuffer_add_printf(b, "{\"pools\":[");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        pthread_mutex_lock(&in->lock);
        stw_pool *p = in->pool != NULL ? stw_pool_ref(in->pool) : NULL;
        pthread_mutex_unlock(&in->lock);
        if (p == NULL)
            continue;
        stw_pool_stat s0, s1;
        stw_pool_stats(p, &s0);
        int64_t freed = stw_pool_trim(p);
        stw_pool_stats(p, &s1);
        stw_pool_unref(&p);
        unsigned nb = s0.total > s1.total ? s0.total - s1.total : 0;
        evbuffer_add_printf(b, "%s{\"input\":", pools ? "," : "");
        relay_http__json_str(b, in->name);
        evbuffer_add_printf(b, ",\"freed_bytes\":%lld,\"freed_buffers\":%u,\"buffers_left\":%u}",
                            (long long)freed, nb, s1.total);
        pools++;
        bytes += freed;
        buffers += nb;
    }
    int released = malloc_trim(0);
    long rss_after = rss_kb();
    for (int k = 0; k < STW_KIND_BUILTIN_COUNT; k++)
        stw_ledger_kind_stat(k, &after[k]);
    evbuffer_add_printf(b,
                        "],\"inputs_without_pool\":%u,\"freed_bytes\":%lld,\"freed_buffers\":%u,"
                        "\"malloc_trim_released\":%s,\"rss_kb\":{\"before\":%ld,\"after\":%ld},"
                        "\"ledger\":{\"before\":",
                        srv->ninputs - pools, (long long)bytes, buffers,
                        released ? "true" : "false", rss_before, rss_after);
    ledger_counts(b, before);
    evbuffer_add_printf(b, ",\"after\":");
    ledger_counts(b, after);
    evbuffer_add_printf(b, "}}\n");
    relay_http__reply_json(req, 200, "OK", b);
}

static int count_tasks(void)
{
    int n = 0;
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* One frame of a creation stack. By default it is named with dladdr():
 * exported functions only, plus module and offset, and no file is opened.
 * @full uses the ledger's libdw symbolizer (static functions, file:line);
 * libdw keeps the debug info files it opened cached, and open, until the
 * process exits. */
static void stack_frame_json(struct evbuffer *b, void *pc, bool first, bool full)
{
    evbuffer_add_printf(b, "%s{\"pc\":\"%p\"", first ? "" : ",", pc);
    stw_symbol sym;
    Dl_info info;
    if (full && stw_symbolize(pc, &sym) == 0) {
        evbuffer_add_printf(b, ",\"func\":");
        relay_http__json_str(b, sym.func);
        evbuffer_add_printf(b, ",\"file\":");
        relay_http__json_str(b, sym.file);
        evbuffer_add_printf(b, ",\"line\":%d,\"module\":", sym.line);
        relay_http__json_str(b, sym.module);
    } else if (dladdr((char *)pc - 1, &info) != 0) {
        if (info.dli_sname != NULL) {
            evbuffer_add_printf(b, ",\"func\":");
            relay_http__json_str(b, info.dli_sname);
        }
        const char *slash = info.dli_fname != NULL ? strrchr(info.dli_fname, '/') : NULL;
        evbuffer_add_printf(b, ",\"module\":");
        relay_http__json_str(b, slash != NULL ? slash + 1 : info.dli_fname);
        evbuffer_add_printf(b, ",\"offset\":\"0x%zx\"",
                            (size_t)((char *)pc - (char *)info.dli_fbase));
    }
    evbuffer_add(b, "}", 1);
}

/* GET /debug/threads: every thread the ledger knows (spawned into a scope)
 * with the stack that created it; ?symbolize=1 for file:line. */
void relay_http__handle_threads(relay_http *srv, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    bool full = query != NULL && strstr(query, "symbolize=1") != NULL;
    stw_snapshot_opts topts = {.kinds = STW_KIND_BIT(STW_KIND_THREAD), .records = true};
    stw_snapshot *threads = NULL;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || stw_snapshot_new(&topts, &threads) != 0) {
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    int64_t now = stw_now_ns();
    evbuffer_add_printf(b,
                        "{\"schema\":\"steward.relay.threads/1\",\"pid\":%d,\"uptime_ms\":%lld,"
                        "\"stack_kind\":\"creation\",\"note\":\"stacks are where each thread was "
                        "created (the ledger's record); live stacks of other threads need "
                        "ptrace and are not taken. The main thread and threads not spawned "
                        "through a scope are not listed: compare os_threads.\",\"symbolized\":%s,"
                        "\"os_threads\":%d,\"threads\":[",
                        (int)getpid(), (long long)((now - srv->started_ns) / 1000000),
                        full ? "true" : "false", count_tasks());
    for (size_t i = 0; i < threads->nrecords; i++) {
        const stw_record *r = &threads->records[i];
        stw_record owner;
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        relay_http__json_str(b, r->label);
        evbuffer_add_printf(b, ",\"id\":\"0x%llx\",\"age_ms\":%lld,\"scope\":",
                            (unsigned long long)r->id, (long long)((now - r->birth_ns) / 1000000));
        if (r->owner != 0 && stw_ledger_lookup(STW_KIND_SCOPE, r->owner, &owner) == 0)
            relay_http__json_str(b, owner.label);
        else
            evbuffer_add_printf(b, "null");
        evbuffer_add_printf(b, ",\"stack\":[");
        void *pcs[STACK_FRAMES];
        int kind;
        int depth = r->site != 0 ? stw_site_stack(r->site, &kind, pcs, STACK_FRAMES) : 0;
        for (int k = 0; k < depth; k++)
            stack_frame_json(b, pcs[k], k == 0, full);
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add_printf(b, "]}\n");
    stw_snapshot_free(&threads);
    /* A long-running server must not keep debug-info files open between
     * requests (nor be charged for them at shutdown). */
    if (full)
        stw_symbolize_release();
    relay_http__reply_json(req, 200, "OK", b);
}

void relay_http__handle_resources(relay_http *srv, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    bool stacks = query != NULL && strstr(query, "stacks=1") != NULL;
    stw_snapshot_opts topts = {.kinds = STW_KIND_BIT(STW_KIND_THREAD), .records = true};
    stw_snapshot *snap = NULL, *threads = NULL;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || stw_snapshot_new(NULL, &snap) != 0 ||
        stw_snapshot_new(&topts, &threads) != 0) {
        stw_snapshot_free(&snap);
        if (b != NULL)
            evbuffer_free(b);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    int64_t now = stw_now_ns();
    evbuffer_add_printf(b,
                        "{\"schema\":\"steward.relay.resources/1\",\"pid\":%d,\"uptime_ms\":%lld,"
                        "\"viewers\":%u,\"threads\":[",
                        (int)getpid(), (long long)((now - srv->started_ns) / 1000000),
                        srv->nviewers);
    for (size_t i = 0; i < threads->nrecords; i++) {
        evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
        relay_http__json_str(b, threads->records[i].label);
        evbuffer_add_printf(b, ",\"age_ms\":%lld}",
                            (long long)((now - threads->records[i].birth_ns) / 1000000));
    }
    evbuffer_add_printf(b, "],\"children\":");
    relay_http__jobs_json(srv, b);
    evbuffer_add_printf(b, ",\"ledger\":");
    stw_report_opts ro = {.max_sites = 10, .max_frames = 8, .symbolize = stacks};
    stw_report_json(snap, &ro, relay_http__write_evbuffer, b);
    evbuffer_add_printf(b, "}\n");
    stw_snapshot_free(&threads);
    stw_snapshot_free(&snap);
    if (stacks)
        stw_symbolize_release();
    relay_http__reply(req, 200, "OK", "application/json", b);
    evbuffer_free(b);
}
