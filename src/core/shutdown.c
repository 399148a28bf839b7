#include "steward/shutdown.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "scope_internal.h"
#include "steward/alloc.h"
#include "steward/fd.h"

struct stage {
    char *name;
    stw_scope *scope; /* borrowed */
    int deadline_ms;
};

struct stw_shutdown {
    struct stage *stages;
    size_t nstages;
    int sigfd;
    int trigger_fd;
    bool ran;
};

static void shutdown_sigset(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

int stw_shutdown_new(stw_shutdown **out)
{
    STW_BUG_ON(out == NULL);
    *out = NULL;
    stw_shutdown *sd = stw_calloc(1, sizeof(*sd));
    if (sd == NULL)
        return -ENOMEM;
    sigset_t set;
    shutdown_sigset(&set);
    /* Blocked before the signalfd exists, so no signal can slip between
     * the two and take its default action. */
    int rc = -pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0)
        goto free_sd;
    sd->sigfd = stw_fd_track(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), STW_KIND_FD,
                             "signalfd:shutdown");
    if (sd->sigfd < 0) {
        rc = sd->sigfd;
        goto free_sd;
    }
    sd->trigger_fd = stw_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK, "eventfd:shutdown-trigger");
    if (sd->trigger_fd < 0) {
        rc = sd->trigger_fd;
        goto close_sigfd;
    }
    *out = sd;
    return 0;

close_sigfd:
    stw_fd_close(&sd->sigfd);
free_sd:
    stw_free(sd);
    return rc;
}

void stw_shutdown_free(stw_shutdown **sdp)
{
    if (sdp == NULL || *sdp == NULL)
        return;
    stw_shutdown *sd = *sdp;
    *sdp = NULL;
    for (size_t i = 0; i < sd->nstages; i++)
        stw_free(sd->stages[i].name);
    stw_free(sd->stages);
    stw_fd_close(&sd->trigger_fd);
    stw_fd_close(&sd->sigfd);
    stw_free(sd);
}

int stw_shutdown_add_stage(stw_shutdown *sd, const char *name, stw_scope *scope, int deadline_ms)
{
    STW_BUG_ON(sd == NULL || name == NULL || scope == NULL);
    if (sd->ran)
        return -EBUSY;
    char *copy = stw_strdup(name);
    if (copy == NULL)
        return -ENOMEM;
    struct stage *stages = stw_realloc(sd->stages, (sd->nstages + 1) * sizeof(*stages));
    if (stages == NULL) {
        stw_free(copy);
        return -ENOMEM;
    }
    stages[sd->nstages++] =
        (struct stage){.name = copy, .scope = scope, .deadline_ms = deadline_ms};
    sd->stages = stages;
    return 0;
}

int stw_shutdown_wait(stw_shutdown *sd, stw_deadline d)
{
    STW_BUG_ON(sd == NULL);
    sigset_t set;
    shutdown_sigset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct pollfd p[2] = {{.fd = sd->sigfd, .events = POLLIN},
                          {.fd = sd->trigger_fd, .events = POLLIN}};
    for (;;) {
        struct signalfd_siginfo si;
        if (read(sd->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            return (int)si.ssi_signo;
        int rc = poll(p, 2, stw_deadline_poll_ms(d));
        if (rc < 0 && errno != EINTR)
            return -errno;
        /* The trigger is never read, so it stays set for later waits. */
        if (rc > 0 && (p[1].revents & POLLIN))
            return 0;
        if (rc == 0 && stw_now_ns() >= d)
            return -ETIMEDOUT;
    }
}

void stw_shutdown_trigger(stw_shutdown *sd)
{
    STW_BUG_ON(sd == NULL);
    uint64_t one = 1;
    (void)!write(sd->trigger_fd, &one, sizeof(one));
}

/* ---- run ---- */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...)
{
    if (fd < 0)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    stw_write_fd((void *)(intptr_t)fd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Close one stage and log how it went. Returns true if it was in time. */
static bool run_stage(const struct stage *st, size_t i, size_t n, int fd)
{
    stw_scope_report rep;
    int64_t t0 = stw_now_ns();
    int rc = stw_scope_close(st->scope, stw_deadline_in_ms(st->deadline_ms), &rep);
    long long ms = (long long)((stw_now_ns() - t0) / 1000000);
    if (rc == 0) {
        say(fd, "shutdown: stage %zu/%zu \"%s\": closed in %lld ms\n", i + 1, n, st->name, ms);
        return true;
    }
    if (rc == -ETIMEDOUT)
        say(fd, "shutdown: stage %zu/%zu \"%s\": missed its %d ms deadline (gave up after %lld ms)",
            i + 1, n, st->name, st->deadline_ms, ms);
    else
        say(fd, "shutdown: stage %zu/%zu \"%s\": cannot close: %s", i + 1, n, st->name,
            stw_strerror(rc));
    say(fd, ", %d thread(s) still running\n", rep.missed);
    for (int k = 0; k < rep.listed; k++)
        say(fd, "shutdown:   thread \"%s\" in scope \"%s\"\n", rep.stragglers[k].thread,
            rep.stragglers[k].scope);
    if (rep.missed > rep.listed)
        say(fd, "shutdown:   ... and %d more\n", rep.missed - rep.listed);
    return false;
}

/* Records the caller frees after run, so they are not leaks: the shutdown
 * object's own, and the bookkeeping of the closed stage scopes. */
static bool is_own(const stw_shutdown *sd, const stw_record *r)
{
    if (r->kind == STW_KIND_HEAP) {
        if (r->id == (uintptr_t)sd || r->id == (uintptr_t)sd->stages)
            return true;
        for (size_t i = 0; i < sd->nstages; i++)
            if (r->id == (uintptr_t)sd->stages[i].name)
                return true;
    }
    if (r->kind == STW_KIND_FD &&
        (r->id == (uint64_t)sd->sigfd || r->id == (uint64_t)sd->trigger_fd))
        return true;
    for (size_t i = 0; i < sd->nstages; i++)
        if (stw__scope_is_skeleton(sd->stages[i].scope, r->kind, r->id))
            return true;
    return false;
}

/* @snap without the records is_own() accepts, with per-kind and per-site
 * numbers adjusted to match. The arrays of @view are the caller's to free. */
static int build_view(const stw_shutdown *sd, const stw_snapshot *snap, stw_snapshot *view)
{
    *view = *snap;
    view->records = NULL;
    view->sites = NULL;
    view->nrecords = 0;
    view->nsites = 0;
    if (snap->nrecords > 0) {
        view->records = stw_malloc(snap->nrecords * sizeof(*view->records));
        if (view->records == NULL)
            return -ENOMEM;
    }
    if (snap->nsites > 0) {
        view->sites = stw_malloc(snap->nsites * sizeof(*view->sites));
        if (view->sites == NULL) {
            stw_free(view->records);
            view->records = NULL;
            return -ENOMEM;
        }
        memcpy(view->sites, snap->sites, snap->nsites * sizeof(*view->sites));
    }
    for (size_t i = 0; i < snap->nrecords; i++) {
        const stw_record *r = &snap->records[i];
        if (!is_own(sd, r)) {
            view->records[view->nrecords++] = *r;
            continue;
        }
        view->kinds[r->kind].live--;
        view->kinds[r->kind].live_bytes -= (int64_t)r->size;
        for (size_t j = 0; j < snap->nsites; j++) {
            stw_site_stat *st = &view->sites[j];
            if (st->site == r->site && st->kind == r->kind) {
                st->live--;
                st->live_bytes -= (int64_t)r->size;
                break;
            }
        }
    }
    for (size_t j = 0; j < snap->nsites; j++)
        if (view->sites[j].live > 0)
            view->sites[view->nsites++] = view->sites[j];
    return 0;
}

/* Report what outlived the stages. Returns how many resources born after
 * @baseline are still alive (not counting is_own()), or -errno. */
static int report_leaks(const stw_shutdown *sd, const stw_snapshot *baseline, int fd)
{
    stw_snapshot_opts o = {.since_seq = baseline != NULL ? baseline->seq : 0, .records = true};
    stw_snapshot *snap = NULL;
    int rc = stw_snapshot_new(&o, &snap);
    if (rc != 0) {
        say(fd, "shutdown: cannot read the ledger: %s\n", stw_strerror(rc));
        return rc;
    }
    int leaked = 0, own = 0;
    for (size_t i = 0; i < snap->nrecords; i++) {
        if (is_own(sd, &snap->records[i]))
            own++;
        else
            leaked++;
    }
    if (fd >= 0) {
        /* Without memory for the filtered copy, the unfiltered snapshot
         * still tells the truth, only with the caller's records in it. */
        stw_snapshot view;
        bool filtered = build_view(sd, snap, &view) == 0;
        stw_report_opts ro = {
            .baseline = baseline, .symbolize = true, .records = true, .title = "at shutdown"};
        stw_report_text(filtered ? &view : snap, &ro, stw_write_fd, (void *)(intptr_t)fd);
        /* The process is about to exit: leave no debug-info file open. */
        stw_symbolize_release();
        if (filtered) {
            stw_free(view.records);
            stw_free(view.sites);
        }
        say(fd,
            "shutdown: %d resource(s) born after the baseline still alive (not counting %d "
            "of the shutdown object and the closed stage scopes)\n",
            leaked, own);
    }
    stw_snapshot_free(&snap);
    return leaked;
}

int stw_shutdown_run(stw_shutdown *sd, const stw_snapshot *baseline, int report_fd)
{
    STW_BUG_ON(sd == NULL);
    if (sd->ran)
        STW_BUG("stw_shutdown_run() called twice");
    sd->ran = true;
    int late = 0;
    for (size_t i = 0; i < sd->nstages; i++)
        if (!run_stage(&sd->stages[i], i, sd->nstages, report_fd))
            late++;
    int leaked = report_leaks(sd, baseline, report_fd);
    int code = late == 0 && leaked == 0 ? 0 : 1;
    if (leaked < 0)
        say(report_fd, "shutdown: exit code %d (%d stage(s) late, leaks unknown)\n", code, late);
    else
        say(report_fd, "shutdown: %s: exit code %d (%d stage(s) late, %d leaked)\n",
            code == 0 ? "clean" : "NOT CLEAN", code, late, leaked);
    return code;
}
