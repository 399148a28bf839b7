/*
 * src/relay/push.c — push outputs (see push.h for the model).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "child.h"
#include "ffmpeg.h"
#include "push.h"
#include "redact.h"
#include "steward/alloc.h"
#include "ts.h"

#define WATCHDOG_MS 20000
#define GRACE_MS 2000

struct relay_push {
    relay_input *in;
    uint64_t id;
    stw_scope *scope;
    char url[RELAY_URL_MAX + 1];
    int64_t created_ms; /* wall clock */
    relay_ff_argv argv;
    relay_child *job;
    relay_ff_log log;   /* push thread only */
    relay_ts_feed feed; /* the child's stdin */
    unsigned spawns;
    _Atomic uint64_t bytes, skipped, feed_skipped;
    _Atomic int64_t bitrate_bps; /* from ffmpeg's progress, -1 unknown */
};

static int64_t now_ms(void)
{
    return stw_now_ns() / 1000000;
}

int relay_push_check_url(const char *url, char *err, size_t errlen)
{
    relay_ff_url u;
    char why[256];
    int rc = relay_ff_url_parse(url, RELAY_FF_OUTPUT, &u, why, sizeof(why));
    if (rc != 0)
        relay_redact(why, err, errlen);
    return rc;
}

static bool push_line(void *ud, const char *line)
{
    relay_push *p = ud;
    uint64_t blocks = p->log.progress.blocks;
    bool progress = relay_ff_log_line(&p->log, line, strlen(line));
    if (progress && p->log.progress.blocks != blocks)
        atomic_store(&p->bitrate_bps, p->log.progress.bitrate_kbps < 0
                                          ? -1
                                          : (int64_t)(p->log.progress.bitrate_kbps * 1000));
    return !progress;
}

static void push_main(stw_scope *scope, void *arg)
{
    relay_push *p = arg;
    relay_child_set_argv(p->job, p->argv.argv);
    while (!stw_scope_cancelled(scope)) {
        int64_t now = now_ms();
        int wait = relay_child_tick(p->job, now);
        relay_child_info info;
        relay_child_info_get(p->job, &info);
        if (info.spawns != p->spawns) {
            /* A new child: its stdin starts with PAT/PMT and a keyframe. */
            p->spawns = info.spawns;
            atomic_fetch_add(&p->skipped, p->feed.skipped);
            relay_ts_feed_close(&p->feed);
            relay_ff_log_init(&p->log);
            atomic_store(&p->bitrate_bps, -1);
            /* Without a reader the child gets nothing and the watchdog
             * restarts it: the next one tries again. */
            relay_ts_feed_open(p->in->ts, &p->feed);
        }
        int in_fd = relay_child_stdin_fd(p->job);
        struct pollfd fds[3] = {
            {.fd = stw_scope_cancel_fd(scope), .events = POLLIN},
            {.fd = relay_child_stderr_fd(p->job), .events = POLLIN},
            {.fd = -1},
        };
        if (in_fd >= 0 && p->feed.has_pending)
            fds[2] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        else if (in_fd >= 0 && p->feed.reader != NULL)
            fds[2] = (struct pollfd){.fd = relay_ts_reader_fd(p->feed.reader), .events = POLLIN};
        if (in_fd >= 0 && !p->feed.has_pending)
            relay_child_progress(p->job, now); /* waiting for the camera is no fault */
        if (poll(fds, 3, wait < 0 || wait > 1000 ? 1000 : wait) < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            relay_child_read_stderr(p->job);
        if (fds[2].revents && p->feed.reader != NULL && in_fd >= 0) {
            bool idle;
            long w = relay_ts_feed_write(&p->feed, in_fd, &idle);
            if (w > 0)
                atomic_fetch_add(&p->bytes, (uint64_t)w);
            atomic_store(&p->feed_skipped, p->feed.skipped);
            if (w > 0 || idle)
                relay_child_progress(p->job, now_ms());
        }
    }
    /* The child is tied to this thread: stop it before the thread ends. */
    relay_child_stop(p->job);
    relay_ts_feed_close(&p->feed);
}

static void push_free(void *arg)
{
    relay_push *p = arg;
    relay_child_free(&p->job);
    relay_ts_feed_close(&p->feed);
    stw_free(p);
}

int relay_push_start(relay_input *in, uint64_t id, const char *url, relay_push **out)
{
    if (in->ts == NULL || strlen(url) > RELAY_URL_MAX)
        return -EINVAL;
    relay_ff_url u;
    if (relay_ff_url_parse(url, RELAY_FF_OUTPUT, &u, NULL, 0) != 0)
        return -EINVAL;
    relay_push *p = stw_calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->in = in;
    p->id = id;
    snprintf(p->url, sizeof(p->url), "%s", url);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->created_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    atomic_store(&p->bitrate_bps, -1);
    relay_ff_log_init(&p->log);
    int rc = relay_ff_push_argv(&p->argv, &u, NULL);
    char job[RELAY_NAME_MAX + 32];
    snprintf(job, sizeof(job), "push %s/%llu", in->name, (unsigned long long)id);
    relay_child_opts o = {.job = job,
                          .backoff_min_ms = 500,
                          .backoff_max_ms = 30000,
                          .healthy_ms = 30000,
                          .watchdog_ms = WATCHDOG_MS,
                          .grace_ms = GRACE_MS,
                          /* A live push has nothing to finish but its last
                           * packets; the HTTP loop waits for this stop. */
                          .stdin_eof_ms = 250,
                          .pipe_stdin = true,
                          .on_line = push_line,
                          .ud = p};
    if (rc == 0)
        rc = relay_child_new(&o, &p->job);
    char sname[48];
    snprintf(sname, sizeof(sname), "push:%llu", (unsigned long long)id);
    if (rc == 0)
        rc = stw_scope_new(in->owner, sname, &p->scope);
    if (rc != 0) {
        relay_child_free(&p->job);
        stw_free(p);
        return rc;
    }
    /* From here on the scope owns @p: its cleanup frees it. */
    stw_scope *scope = p->scope;
    rc = stw_scope_defer(scope, push_free, p);
    if (rc != 0) {
        relay_child_free(&p->job);
        stw_free(p);
        stw_scope_free(&scope);
        return rc;
    }
    char tname[16];
    snprintf(tname, sizeof(tname), "push-%llu", (unsigned long long)id);
    rc = stw_scope_spawn(scope, tname, push_main, p);
    if (rc != 0) {
        stw_scope_close(scope, stw_deadline_in_ms(GRACE_MS), NULL);
        stw_scope_free(&scope);
        return rc;
    }
    *out = p;
    return 0;
}

void relay_push_stop(relay_push **pp, stw_deadline d)
{
    if (pp == NULL || *pp == NULL)
        return;
    relay_push *p = *pp;
    *pp = NULL;
    stw_scope *scope = p->scope;
    stw_scope_report rep;
    /* The scope's cleanup frees @p: nothing of it is touched after. */
    if (stw_scope_close(scope, d, &rep) == -ETIMEDOUT)
        relay_log(RELAY_LOG_WARNING, "push", NULL,
                  "a push thread did not stop in time; it is freed when it returns");
    stw_scope_free(&scope);
}

uint64_t relay_push_id(const relay_push *p)
{
    return p->id;
}

void relay_push_job_view(relay_push *p, relay_job_view *out)
{
    char name[32];
    snprintf(name, sizeof(name), "push:%llu", (unsigned long long)p->id);
    relay_job_view_of(p->job, name, out);
}

const char *relay_push_url(const relay_push *p)
{
    return p->url;
}

char *relay_push_json(relay_push *p)
{
    relay_child_info i;
    relay_child_info_get(p->job, &i);
    char shown[RELAY_URL_MAX + 1];
    relay_redact(p->url, shown, sizeof(shown));
    int64_t bps = atomic_load(&p->bitrate_bps);
    int64_t now = now_ms();
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:f, s:s?, s:s?, s:I, s:I}", "id",
        (json_int_t)p->id, "type", "push", "url", shown, "state", i.state, "pid", (int)i.pid,
        "restarts", (int)i.restarts, "bytes", (json_int_t)atomic_load(&p->bytes), "skipped",
        (json_int_t)(atomic_load(&p->skipped) + atomic_load(&p->feed_skipped)), "bitrate_kbps",
        bps < 0 ? 0.0 : (double)bps / 1000.0, "last_exit", i.last_exit[0] ? i.last_exit : NULL,
        "last_error", i.last_error[0] ? i.last_error : NULL, "age_ms",
        (json_int_t)(i.started_ms > 0 ? now - i.started_ms : 0), "created_ms",
        (json_int_t)p->created_ms);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}
