/*
 * The checker's reports: what the program still holds, grouped by creation
 * site and by class (heap: definitely / indirectly lost / still reachable;
 * threads and children: their state), in text for people and JSON
 * ("steward.check/1", docs/checker-json.md) for scripts.
 *
 * Runs with the ledger guard held: everything allocated here (libdw while
 * symbolizing) is booked as the checker's own and never reported.
 */
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

/* The checked program as started (argv[0]), for the launcher's summary. */
static const char *program_name(void)
{
    extern char *program_invocation_name;
    return program_invocation_name != NULL ? program_invocation_name : "?";
}

#define MAX_RECORDS_SHOWN 10
#define MAX_GROWTH 20

static const char *const class_names[] = {
    [STW__DEFINITELY_LOST] = "definitely lost",
    [STW__INDIRECTLY_LOST] = "indirectly lost",
    [STW__STILL_REACHABLE] = "still reachable",
};

/* Records of one site that share a class (heap) or a state (threads,
 * processes), with where they sit in the snapshot's record array. */
typedef struct group {
    stw_site site;
    int kind;
    int cls;           /* heap class, -1 for other kinds */
    const char *state; /* thread/process state, NULL for other kinds */
    int64_t count;
    int64_t bytes;
    bool suppressed;
    bool inherited; /* descriptors open at start: listed on request, never leaks */
    bool leak;
    size_t first; /* index of the first record in the (sorted) record array */
} group;

typedef struct report {
    stw_snapshot *snap;
    uint8_t *cls;  /* per record: heap class */
    uint8_t *skip; /* per record: inherited descriptor, not the program's */
    uint8_t *hide; /* per record: not reported at all (a forked child's
                      parent's; freed while the report was being made) */
    const char **state;
    size_t cls_bytes, state_bytes;
    group *groups;
    size_t ngroups, groups_bytes;
    int64_t leaks, leaked_bytes;
    int64_t by_kind[STW_KIND_MAX];
    int64_t reachable, reachable_bytes;
    int64_t suppressed, inherited;
    stw__growth growth[MAX_GROWTH];
    int ngrowth;
    stw__scan_stats scan;
} report;

static int open_out(const char *path, bool append)
{
    if (path == NULL)
        return dup(STDERR_FILENO);
    char buf[4096];
    const char *p = strstr(path, "%p");
    if (p != NULL) {
        snprintf(buf, sizeof(buf), "%.*s%d%s", (int)(p - path), path, (int)getpid(), p + 2);
        path = buf;
    }
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
    return open(path, flags, 0644);
}

int stw__check_open_log(void)
{
    return open_out(stw__copts.log_path, true);
}

/* Kinds the pointer scan classifies (see scan.c). */
static bool classified(const stw_record *r)
{
    return r->kind == STW_KIND_HEAP || (r->kind == STW_KIND_MMAP && r->size > 0);
}

static const char *state_of(const stw_record *r)
{
    if (r->kind == STW_KIND_THREAD)
        return stw__thread_state(r->id);
    if (r->kind == STW_KIND_PROCESS)
        return stw__proc_state(r->id);
    return NULL;
}

static bool same_group(const group *g, const stw_record *r, int cls, const char *state,
                       bool inherited)
{
    return g->site == r->site && g->kind == r->kind && g->cls == cls && g->inherited == inherited &&
           (g->state == state || (g->state && state && strcmp(g->state, state) == 0));
}

static int build(report *rp)
{
    stw_snapshot *s = rp->snap;
    size_t n = s->nrecords;
    rp->cls_bytes = n * 3 + 1;
    rp->cls = stw__pages_alloc(rp->cls_bytes);
    rp->state_bytes = n * sizeof(char *) + 1;
    rp->state = stw__pages_alloc(rp->state_bytes);
    if (rp->cls == NULL || rp->state == NULL)
        return -ENOMEM;
    rp->skip = rp->cls + n;
    rp->hide = rp->cls + 2 * n;
    if (stw__scan_classify(s, rp->cls, &rp->scan) != 0)
        memset(rp->cls, STW__DEFINITELY_LOST, n);
    /* The moment is taken: the rest may symbolize (malloc, the loader). */
    stw__world_resume();
    for (size_t i = 0; i < n; i++) {
        const stw_record *r = &s->records[i];
        /* In a forked child: its parent's, not its own. */
        if (stw__forked.since != 0 && r->seq <= stw__forked.since)
            rp->hide[i] = 1;
        /* A block called lost that is no longer live was freed by a
         * thread that kept running while the report was made (one that
         * blocks the signal that parks threads, or any thread in a
         * periodic report): not a leak. */
        else if (r->kind == STW_KIND_HEAP && rp->cls[i] != STW__STILL_REACHABLE) {
            stw_record now;
            if (stw_ledger_lookup(r->kind, r->id, &now) != 0 || now.seq != r->seq ||
                now.size != r->size || now.site != r->site)
                rp->hide[i] = 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const stw_record *r = &s->records[i];
        rp->state[i] = state_of(r);
        rp->skip[i] =
            (r->kind == STW_KIND_FD || r->kind == STW_KIND_SOCKET) && stw__fd_inherited(r);
    }
    /* Records are sorted by site then seq; a site's records with the same
     * class/state are gathered into one group (a site rarely mixes). */
    for (size_t i = 0; i < n; i++) {
        const stw_record *r = &s->records[i];
        if (rp->hide[i])
            continue;
        if (rp->skip[i] && !stw__copts.show_inherited) {
            rp->inherited++;
            continue;
        }
        int cls = classified(r) ? rp->cls[i] : -1;
        group *g = NULL;
        for (size_t k = rp->ngroups; k-- > 0;) {
            if (rp->groups[k].site != r->site)
                break;
            if (same_group(&rp->groups[k], r, cls, rp->state[i], rp->skip[i])) {
                g = &rp->groups[k];
                break;
            }
        }
        if (g == NULL) {
            size_t need = (rp->ngroups + 1) * sizeof(group);
            if (need > rp->groups_bytes) {
                size_t nb = rp->groups_bytes ? rp->groups_bytes * 2 : 65536;
                group *ng = stw__pages_alloc(nb);
                if (ng == NULL)
                    return -ENOMEM;
                if (rp->groups != NULL) {
                    memcpy(ng, rp->groups, rp->ngroups * sizeof(group));
                    stw__pages_free(rp->groups, rp->groups_bytes);
                }
                rp->groups = ng;
                rp->groups_bytes = nb;
            }
            g = &rp->groups[rp->ngroups++];
            *g = (group){.site = r->site,
                         .kind = r->kind,
                         .cls = cls,
                         .state = rp->state[i],
                         .suppressed = r->site != 0 && stw__supp_match(r->site),
                         .inherited = rp->skip[i],
                         .first = i};
        }
        g->count++;
        g->bytes += (int64_t)r->size;
    }
    for (size_t k = 0; k < rp->ngroups; k++) {
        group *g = &rp->groups[k];
        if (g->inherited) {
            rp->inherited += g->count;
        } else if (g->cls == STW__STILL_REACHABLE) {
            /* Reachable is not a leak whether or not a rule matches (as in
             * LeakSanitizer): only leaks are ever counted as suppressed. */
            rp->reachable += g->count;
            rp->reachable_bytes += g->bytes;
        } else if (g->state != NULL && strncmp(g->state, "gone", 4) == 0) {
            /* Reaped behind the checker's back (SIGCHLD ignored): nothing
             * is left to leak. Listed with the non-leaks. */
        } else if (g->suppressed) {
            rp->suppressed += g->count;
        } else {
            g->leak = true;
            rp->leaks += g->count;
            rp->leaked_bytes += g->bytes;
            rp->by_kind[g->kind] += g->count;
        }
    }
    /* A forked child's samples are its parent's. */
    rp->ngrowth = stw__forked.since != 0 ? 0 : stw__growth_analyse(rp->growth, MAX_GROWTH);
    return 0;
}

static void release(report *rp)
{
    stw__pages_free(rp->cls, rp->cls_bytes);
    stw__pages_free(rp->state, rp->state_bytes);
    stw__pages_free(rp->groups, rp->groups_bytes);
    stw_snapshot_free(&rp->snap);
}

/* Largest first: leaks by count of bytes then records. */
static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    if (x->leak != y->leak)
        return x->leak ? -1 : 1;
    if (x->bytes != y->bytes)
        return x->bytes < y->bytes ? 1 : -1;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return x->site < y->site ? -1 : x->site > y->site;
}

/* ---- text ---- */

static const char *noun(int kind, int64_t n)
{
    static const char *const names[][2] = {
        [STW_KIND_HEAP] = {"heap block", "heap blocks"},
        [STW_KIND_THREAD] = {"thread", "threads"},
        [STW_KIND_FD] = {"file descriptor", "file descriptors"},
        [STW_KIND_SOCKET] = {"socket", "sockets"},
        [STW_KIND_PROCESS] = {"child process", "child processes"},
        [STW_KIND_MMAP] = {"mapping", "mappings"},
        [STW_KIND_TIMER] = {"timer", "timers"},
        [STW_KIND_FILE] = {"FILE stream", "FILE streams"},
        [STW_KIND_DIR] = {"DIR stream", "DIR streams"},
    };
    if (kind >= 0 && kind < (int)(sizeof(names) / sizeof(names[0])) && names[kind][0] != NULL)
        return names[kind][n == 1 ? 0 : 1];
    return stw_kind_name(kind);
}

static void text_stack(stw__out *o, int pid, stw_site site)
{
    void *pcs[STW_STACK_MAX];
    int n = stw_site_stack(site, NULL, pcs, STW_STACK_MAX);
    if (n <= 0) {
        stw__out_printf(o,
                        "==%d==    (no creation stack: made by a call the checker does not "
                        "see)\n",
                        pid);
        return;
    }
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "==%d==    ", pid);
    /* Frames below main belong to the C runtime. */
    for (int i = 0; i < n && !stw__out_text_frame(o, prefix, i, pcs[i], true); i++)
        ;
}

static void text_group(stw__out *o, int pid, const report *rp, const group *g)
{
    const char *what = g->inherited  ? "inherited at start (not a leak)"
                       : g->cls >= 0 ? class_names[g->cls]
                                     : g->state;
    stw__out_printf(o, "==%d== %lld %s", pid, (long long)g->count, noun(g->kind, g->count));
    if (g->kind == STW_KIND_HEAP || g->kind == STW_KIND_MMAP)
        stw__out_printf(o, " (%lld bytes)", (long long)g->bytes);
    if (what != NULL)
        stw__out_printf(o, " %s", what);
    stw__out_puts(o, g->kind == STW_KIND_HEAP ? ", allocated at:\n" : ", created at:\n");
    text_stack(o, pid, g->site);
    /* Labels say which file, socket or command; sizes say which block. */
    int shown = 0;
    const stw_snapshot *s = rp->snap;
    for (size_t i = g->first; i < s->nrecords && shown < MAX_RECORDS_SHOWN; i++) {
        const stw_record *r = &s->records[i];
        if (r->site != g->site)
            break;
        int cls = classified(r) ? rp->cls[i] : -1;
        if (rp->hide[i] || !same_group(g, r, cls, rp->state[i], rp->skip[i]))
            continue;
        if (r->label == NULL && g->kind == STW_KIND_HEAP && g->count == 1)
            break;
        stw__out_printf(o, "==%d==      - ", pid);
        if (r->label != NULL)
            stw__out_printf(o, "%s", r->label);
        else
            stw__out_printf(o, "%#llx", (unsigned long long)r->id);
        if (r->size != 0)
            stw__out_printf(o, ", %llu bytes", (unsigned long long)r->size);
        stw__out_puts(o, "\n");
        shown++;
    }
    if (g->count > shown && shown == MAX_RECORDS_SHOWN)
        stw__out_printf(o, "==%d==      ... and %lld more\n", pid, (long long)(g->count - shown));
    stw__out_printf(o, "==%d==\n", pid);
}

static void text_summary(stw__out *o, int pid, const report *rp)
{
    stw__out_printf(o, "==%d== SUMMARY: %lld leak%s", pid, (long long)rp->leaks,
                    rp->leaks == 1 ? "" : "s");
    bool first = true;
    for (int k = 0; k < STW_KIND_MAX; k++) {
        if (rp->by_kind[k] == 0)
            continue;
        stw__out_printf(o, "%s%s: %lld", first ? " (" : ", ", stw_kind_name(k),
                        (long long)rp->by_kind[k]);
        first = false;
    }
    if (!first)
        stw__out_puts(o, ")");
    stw__out_printf(o,
                    ", %lld bytes lost; %lld still reachable (%lld bytes); %lld suppressed; %ld "
                    "bad free%s\n",
                    (long long)rp->leaked_bytes, (long long)rp->reachable,
                    (long long)rp->reachable_bytes, (long long)rp->suppressed,
                    stw__heap_bad_frees(), stw__heap_bad_frees() == 1 ? "" : "s");
}

static void text_growth(stw__out *o, int pid, const report *rp)
{
    for (int i = 0; i < rp->ngrowth; i++) {
        const stw__growth *g = &rp->growth[i];
        stw__out_printf(o,
                        "==%d== %s: %s at this site %s from %lld to %lld bytes over %d samples "
                        "(%.0f bytes/s in the second half), allocated at:\n",
                        pid, g->growing ? "GROWING" : "levelled off", stw_kind_name(g->kind),
                        g->growing ? "keeps growing" : "rose, then levelled off",
                        (long long)g->first_bytes, (long long)g->last_bytes, g->samples,
                        g->bytes_per_s);
        text_stack(o, pid, g->site);
        stw__out_printf(o, "==%d==\n", pid);
    }
}

/* How much memory the pointer scan read: blocks' real extents, and roots. */
static void text_scan(stw__out *o, int pid, const report *rp)
{
    const stw__scan_stats *st = &rp->scan;
    uint64_t total = st->block_bytes + st->global_bytes + st->stack_bytes + st->heap_bytes;
    if (st->blocks == 0)
        return;
    stw__out_printf(o,
                    "==%d== pointer scan: %llu bytes read: %llu in %llu of %llu live blocks, "
                    "%llu of globals, %llu of stacks and registers",
                    pid, (unsigned long long)total, (unsigned long long)st->block_bytes,
                    (unsigned long long)st->blocks_read, (unsigned long long)st->blocks,
                    (unsigned long long)st->global_bytes, (unsigned long long)st->stack_bytes);
    if (st->sampling)
        stw__out_printf(o, ", %llu of unsampled heap", (unsigned long long)st->heap_bytes);
    stw__out_printf(o, "\n==%d==\n", pid);
}

/* A program PROG started under --trace-children that leaked nothing says
 * nothing (a test suite of thousands of clean programs would otherwise
 * bury the one that leaked); the launcher counts it all the same. */
static bool nothing_to_say(const report *rp)
{
    if (!stw__copts.traced_child || rp->leaks != 0 || stw__heap_bad_frees() != 0)
        return false;
    for (int i = 0; i < rp->ngrowth; i++)
        if (rp->growth[i].growing)
            return false;
    return true;
}

static void write_text(const report *rp, const char *why)
{
    if (nothing_to_say(rp))
        return;
    int fd = stw__check_open_log();
    if (fd < 0)
        return;
    int pid = (int)getpid();
    stw__out o;
    stw__out_init(&o, stw_write_fd, (void *)(intptr_t)fd);
    if (!stw__copts.quiet) {
        if (stw__copts.traced_child)
            stw__out_printf(&o, "==%d== steward check, report %s (%s)\n", pid, why,
                            program_name());
        else
            stw__out_printf(&o, "==%d== steward check, report %s\n", pid, why);
        if (stw__forked.since != 0) {
            stw__out_printf(&o, "==%d== forked from process %d, at:\n", pid, stw__forked.parent);
            text_stack(&o, pid, stw__forked.site);
        }
        stw__out_printf(&o, "==%d==\n", pid);
        for (size_t k = 0; k < rp->ngroups; k++) {
            const group *g = &rp->groups[k];
            if (g->leak || (stw__copts.show_reachable && g->cls == STW__STILL_REACHABLE) ||
                (stw__copts.show_inherited && g->inherited))
                text_group(&o, pid, rp, g);
        }
        text_growth(&o, pid, rp);
        text_scan(&o, pid, rp);
    }
    text_summary(&o, pid, rp);
    stw__out_flush(&o);
    close(fd);
}

/* ---- JSON ---- */

static void json_stack(stw__out *o, stw_site site)
{
    void *pcs[STW_STACK_MAX];
    int n = stw_site_stack(site, NULL, pcs, STW_STACK_MAX);
    stw__out_puts(o, "[");
    for (int i = 0; i < n; i++)
        stw__out_json_frame(o, i == 0, pcs[i], true);
    stw__out_puts(o, "]");
}

static void json_group(stw__out *o, const report *rp, const group *g)
{
    stw__out_puts(o, "{\"kind\":");
    stw__out_json_string(o, stw_kind_name(g->kind));
    stw__out_puts(o, ",\"class\":");
    if (g->cls >= 0)
        stw__out_json_string(o, class_names[g->cls]);
    else
        stw__out_puts(o, "null");
    stw__out_puts(o, ",\"state\":");
    if (g->state != NULL)
        stw__out_json_string(o, g->state);
    else
        stw__out_puts(o, "null");
    stw__out_printf(o, ",\"count\":%lld,\"bytes\":%lld,\"site\":%u,\"suppressed\":%s,\"stack\":",
                    (long long)g->count, (long long)g->bytes, g->site,
                    g->suppressed ? "true" : "false");
    json_stack(o, g->site);
    stw__out_puts(o, ",\"records\":[");
    const stw_snapshot *s = rp->snap;
    int shown = 0;
    int64_t now = stw_now_ns();
    for (size_t i = g->first; i < s->nrecords && shown < 100; i++) {
        const stw_record *r = &s->records[i];
        if (r->site != g->site)
            break;
        int cls = classified(r) ? rp->cls[i] : -1;
        if (rp->hide[i] || !same_group(g, r, cls, rp->state[i], rp->skip[i]))
            continue;
        stw__out_printf(o, "%s{\"id\":\"%#llx\",\"size\":%llu,\"age_ms\":%lld,\"label\":",
                        shown ? "," : "", (unsigned long long)r->id, (unsigned long long)r->size,
                        (long long)((now - r->birth_ns) / 1000000));
        if (r->label != NULL)
            stw__out_json_string(o, r->label);
        else
            stw__out_puts(o, "null");
        stw__out_puts(o, "}");
        shown++;
    }
    stw__out_puts(o, "]}");
}

static void write_json(const report *rp, const char *why, bool final)
{
    /* A forked child never overwrites its parent's report: without %p in
     * the name it writes NAME.PID. */
    const char *path = stw__copts.json_path;
    char own[4096];
    if (stw__forked.since != 0 && strstr(path, "%p") == NULL) {
        snprintf(own, sizeof(own), "%s.%d", path, (int)getpid());
        path = own;
    }
    int fd = open_out(path, false);
    if (fd < 0)
        return;
    stw__out o;
    stw__out_init(&o, stw_write_fd, (void *)(intptr_t)fd);
    stw__out_printf(&o, "{\"schema\":\"steward.check/1\",\"pid\":%d,\"final\":%s,\"why\":",
                    (int)getpid(), final ? "true" : "false");
    stw__out_json_string(&o, why);
    if (stw__forked.since != 0) {
        stw__out_printf(&o, ",\"forked_from\":{\"pid\":%d,\"stack\":", stw__forked.parent);
        json_stack(&o, stw__forked.site);
        stw__out_printf(&o, "}");
    }
    stw__out_printf(&o,
                    ",\"summary\":{\"leaks\":%lld,\"leaked_bytes\":%lld,\"still_reachable\":%lld,"
                    "\"still_reachable_bytes\":%lld,\"suppressed\":%lld,\"bad_frees\":%ld,"
                    "\"inherited_fds\":%lld,\"by_kind\":{",
                    (long long)rp->leaks, (long long)rp->leaked_bytes, (long long)rp->reachable,
                    (long long)rp->reachable_bytes, (long long)rp->suppressed,
                    stw__heap_bad_frees(), (long long)rp->inherited);
    bool first = true;
    for (int k = 0; k < STW_KIND_MAX; k++) {
        if (rp->by_kind[k] == 0)
            continue;
        stw__out_printf(&o, "%s", first ? "" : ",");
        stw__out_json_string(&o, stw_kind_name(k));
        stw__out_printf(&o, ":%lld", (long long)rp->by_kind[k]);
        first = false;
    }
    const stw__scan_stats *st = &rp->scan;
    stw__out_printf(&o,
                    "}},\"scan\":{\"bytes\":%llu,\"block_bytes\":%llu,\"blocks_read\":%llu,"
                    "\"blocks\":%llu,\"global_bytes\":%llu,\"stack_bytes\":%llu,"
                    "\"unsampled_heap_bytes\":%llu,\"sampled\":%s",
                    (unsigned long long)(st->block_bytes + st->global_bytes + st->stack_bytes +
                                         st->heap_bytes),
                    (unsigned long long)st->block_bytes, (unsigned long long)st->blocks_read,
                    (unsigned long long)st->blocks, (unsigned long long)st->global_bytes,
                    (unsigned long long)st->stack_bytes, (unsigned long long)st->heap_bytes,
                    st->sampling ? "true" : "false");
    stw__out_puts(&o, "},\"leaks\":[");
    first = true;
    for (size_t k = 0; k < rp->ngroups; k++) {
        if (!rp->groups[k].leak)
            continue;
        if (!first)
            stw__out_puts(&o, ",");
        json_group(&o, rp, &rp->groups[k]);
        first = false;
    }
    stw__out_puts(&o, "],\"not_leaks\":[");
    first = true;
    for (size_t k = 0; k < rp->ngroups; k++) {
        if (rp->groups[k].leak)
            continue;
        if (!first)
            stw__out_puts(&o, ",");
        json_group(&o, rp, &rp->groups[k]);
        first = false;
    }
    stw__out_puts(&o, "],\"growth\":[");
    for (int i = 0; i < rp->ngrowth; i++) {
        const stw__growth *g = &rp->growth[i];
        stw__out_printf(&o, "%s{\"kind\":", i ? "," : "");
        stw__out_json_string(&o, stw_kind_name(g->kind));
        stw__out_printf(&o,
                        ",\"trend\":\"%s\",\"samples\":%d,\"first_bytes\":%lld,\"mid_bytes\":%lld,"
                        "\"last_bytes\":%lld,\"peak_bytes\":%lld,\"bytes_per_s\":%.1f,\"site\":%u,"
                        "\"stack\":",
                        g->growing ? "growing" : "levelled", g->samples, (long long)g->first_bytes,
                        (long long)g->mid_bytes, (long long)g->last_bytes, (long long)g->peak_bytes,
                        g->bytes_per_s, g->site);
        json_stack(&o, g->site);
        stw__out_puts(&o, "}");
    }
    stw__out_puts(&o, "]}\n");
    stw__out_flush(&o);
    close(fd);
}

/* One line per checked process, appended in a single write (so the lines
 * of programs exiting together under --trace-children do not mix): the
 * launcher sums them for its exit status and names the programs that
 * leaked. The program name is last: it may hold spaces. */
static void write_status(const report *rp)
{
    /* A forked child adds its own line (the launcher tells PROG's by its
     * pid), so its leaks count for --error-exitcode too. */
    if (stw__copts.status_path == NULL)
        return;
    int fd = open(stw__copts.status_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char line[512];
    int n = snprintf(line, sizeof(line), "leaks=%lld bad_frees=%ld pid=%d bytes=%lld prog=%s\n",
                     (long long)rp->leaks, stw__heap_bad_frees(), (int)getpid(),
                     (long long)rp->leaked_bytes, program_name());
    if (n >= (int)sizeof(line)) {
        n = (int)sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    stw_write_fd((void *)(intptr_t)fd, line, (size_t)n);
    close(fd);
}

/* One report at a time: an on-demand or periodic report on the checker's
 * thread may still be writing when the program exits, and two writers of
 * the same JSON file (each truncating it) leave it corrupt. */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

void stw__check_report(bool final, const char *why)
{
    if (!stw__check_ready())
        return;
    if (!stw_ledger_guard_enter())
        return;
    pthread_mutex_lock(&report_lock);
    if (final) {
        stw__fds_reconcile();
        /* One moment for the books and the memory they are checked
         * against: the other threads stay parked from the snapshot to the
         * end of the scan. */
        stw__scan_prepare();
        stw__world_stop();
    }
    report rp = {0};
    uint64_t kinds = stw__copts.kinds & ~STW_KIND_BIT(stw__kind_internal);
    stw_snapshot_opts so = {.kinds = kinds, .records = true};
    int brc = stw_snapshot_new(&so, &rp.snap);
    /* A new era right after the snapshot: a block freed and made again at
     * the same address by a thread that kept running then has another
     * sequence number, and the re-check in build() tells it apart (heap
     * sequence numbers are eras in the block map, not per block). */
    stw_ledger_checkpoint();
    if (brc == 0)
        brc = build(&rp);
    stw__world_resume();
    /* A forked child that made nothing it did not release stays silent
     * (most children exec or _exit at once). */
    bool quiet_child = stw__forked.since != 0 && rp.leaks == 0 && stw__heap_bad_frees() == 0;
    if (brc == 0 && !quiet_child) {
        stw__sort(rp.groups, rp.ngroups, sizeof(group), cmp_group);
        write_text(&rp, why);
        if (stw__copts.json_path != NULL)
            write_json(&rp, why, final);
        if (final)
            write_status(&rp);
    }
    release(&rp);
    pthread_mutex_unlock(&report_lock);
    stw_ledger_guard_exit();
}
