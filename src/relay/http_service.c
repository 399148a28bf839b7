/*
 * src/relay/http_service.c — the loop's side of service.h: READY=1 on the
 * loop's first turn, STATUS= lines, the watchdog timer, and the operator's
 * signals (SIGHUP: reload, http_reload.c; SIGUSR1: reopen the log).
 *
 * Model
 *   Everything here runs on the loop thread, from events of the loop's
 *   own base: if the loop is stuck in one callback or the process is
 *   stopped, no WATCHDOG=1 goes out, which is what the watchdog is for.
 *   The status timer sends STATUS= only when the line changed.
 *
 * Ownership
 *   srv->svc and its events and signalfd are made by
 *   relay_http__service_setup() and freed by relay_http__service_teardown()
 *   on the loop thread; the fd is booked as "signalfd:relay-hup-usr1".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "http_internal.h"
#include "log.h"
#include "service.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define STATUS_PERIOD_MS 1000

struct relay_http_service {
    struct event *ready;
    struct event *watchdog;
    struct event *status;
    struct event *sig;
    int sigfd;
    char last[160];
};

/* "STATUS=3 inputs (2 running), 5 viewers, 7 connections". */
static void status_line(relay_http *srv, char *out, size_t len)
{
    unsigned running = 0;
    for (unsigned i = 0; i < srv->ninputs; i++) {
        char st[RELAY_STATE_MAX];
        relay_hub_state(srv->inputs[i]->in->hub, st);
        running += strcmp(st, "running") == 0;
    }
    snprintf(out, len, "STATUS=%u input%s (%u running), %u viewer%s, %u connection%s", srv->ninputs,
             srv->ninputs == 1 ? "" : "s", running, srv->nviewers, srv->nviewers == 1 ? "" : "s",
             relay_http__conn_count(srv), relay_http__conn_count(srv) == 1 ? "" : "s");
}

void relay_http__service_status(relay_http *srv, bool force)
{
    if (srv->svc == NULL)
        return;
    char line[sizeof(srv->svc->last)];
    status_line(srv, line, sizeof(line));
    if (!force && strcmp(line, srv->svc->last) == 0)
        return;
    snprintf(srv->svc->last, sizeof(srv->svc->last), "%s", line);
    relay_service_notify(line);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http *srv = arg;
    char line[sizeof(srv->svc->last)];
    status_line(srv, line, sizeof(line));
    snprintf(srv->svc->last, sizeof(srv->svc->last), "%s", line);
    if (relay_service_notifyf("READY=1\n%s", line))
        relay_log(RELAY_LOG_INFO, "service", NULL, "ready: told the service manager");
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    relay_service_notify("WATCHDOG=1");
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_http__service_status(arg, false);
    relay_log_flush();
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    relay_http *srv = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            relay_http__reload(srv);
        } else if (si.ssi_signo == SIGUSR1) {
            int rc = relay_log_reopen();
            if (rc != 0)
                relay_log(RELAY_LOG_ERROR, "log", NULL, "cannot reopen the log file: %s",
                          stw_strerror(rc));
            else
                relay_log(RELAY_LOG_INFO, "log", NULL, "log file reopened (SIGUSR1)");
        }
    }
}

static void timer_ms(struct timeval *tv, uint64_t ms)
{
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

int relay_http__service_setup(relay_http *srv)
{
    struct relay_http_service *s = stw_calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->sigfd = -1;
    srv->svc = s;
    sigset_t set;
    relay_service_sigset(&set);
    s->sigfd = stw_fd_track(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), STW_KIND_FD,
                            "signalfd:relay-hup-usr1");
    if (s->sigfd < 0)
        return s->sigfd;
    s->sig = event_new(srv->base, s->sigfd, EV_READ | EV_PERSIST, on_signal, srv);
    if (s->sig == NULL || event_add(s->sig, NULL) != 0)
        return -ENOMEM;
    struct timeval now = {0, 0}, tv;
    s->ready = evtimer_new(srv->base, on_ready, srv);
    if (s->ready == NULL || evtimer_add(s->ready, &now) != 0)
        return -ENOMEM;
    s->status = event_new(srv->base, -1, EV_PERSIST, on_status, srv);
    timer_ms(&tv, STATUS_PERIOD_MS);
    if (s->status == NULL || event_add(s->status, &tv) != 0)
        return -ENOMEM;
    uint64_t usec = relay_service_watchdog_usec();
    if (usec > 0) {
        s->watchdog = event_new(srv->base, -1, EV_PERSIST, on_watchdog, srv);
        /* Half the period, as sd_watchdog_enabled(3) recommends. */
        timer_ms(&tv, usec / 2000 > 0 ? usec / 2000 : 1);
        if (s->watchdog == NULL || event_add(s->watchdog, &tv) != 0)
            return -ENOMEM;
        relay_log(RELAY_LOG_INFO, "service", NULL, "watchdog: pinging every %llu ms",
                  (unsigned long long)(usec / 2000));
    }
    return 0;
}

void relay_http__service_teardown(relay_http *srv)
{
    struct relay_http_service *s = srv->svc;
    if (s == NULL)
        return;
    if (s->ready != NULL)
        event_free(s->ready);
    if (s->watchdog != NULL)
        event_free(s->watchdog);
    if (s->status != NULL)
        event_free(s->status);
    if (s->sig != NULL)
        event_free(s->sig);
    stw_fd_close(&s->sigfd);
    stw_free(s);
    srv->svc = NULL;
}

void relay_http__service_metrics(relay_http *srv, struct evbuffer *b)
{
    evbuffer_add_printf(b,
                        "# HELP steward_relay_reloads_total Config reloads (SIGHUP): "
                        "result=\"applied\" or \"refused\" (the running config stayed).\n"
                        "# TYPE steward_relay_reloads_total counter\n"
                        "steward_relay_reloads_total{result=\"applied\"} %llu\n"
                        "steward_relay_reloads_total{result=\"refused\"} %llu\n"
                        "# HELP steward_relay_uptime_seconds Time since the relay started.\n"
                        "# TYPE steward_relay_uptime_seconds gauge\n"
                        "steward_relay_uptime_seconds %.3f\n",
                        (unsigned long long)srv->reloads, (unsigned long long)srv->reload_failures,
                        (double)(stw_now_ns() - srv->started_ns) / 1e9);
}
