/*
 * src/relay/motion_proc.c — an input's motion processor: one thread that
 * analyses the input's frames at a capped rate (motion.h).
 *
 * Model
 *   The thread waits on an eventfd the hub makes readable on every publish
 *   (relay_hub_watch), takes the hub's latest frame when there is a new
 *   one, decodes and analyses it, then sleeps until its next slot
 *   (1 / fps after the previous one). Frames published meanwhile replace
 *   each other in the hub and are counted as dropped by the cap: the
 *   processor holds at most the one frame it analyses and never queues.
 *   Cards (the relay's NO SIGNAL picture) are not the camera's and are
 *   skipped.
 *
 *   Events (motion-start, motion-end) go into the input's ring of
 *   RELAY_MOTION_EVENTS_MAX for the HTTP loop, which the thread wakes
 *   through the hub's notify fd (relay_hub_poke); a loop that is not
 *   taking them loses the oldest (counted as missed). While motion is on
 *   and no frame comes for end_after seconds (the camera went away, an
 *   on-demand source stopped), motion ends with reason "no-frames"; a
 *   thread that is stopped ends it with reason "stopped".
 *
 *   An ffmpeg input decodes JPEG only on demand: the thread renews the
 *   demand (relay_input_want_jpeg) at least every second.
 *
 * Ownership
 *   relay_motion belongs to the input (relay_input_new / its cleanup). A
 *   run (motion_run: detector, eventfd) is owned by its scope "motion",
 *   whose cleanup unregisters the eventfd from the hub, closes it and
 *   frees the run after the thread returned. m->scope is the loop
 *   thread's; everything the API reads is under m->lock.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "motion.h"
#include "relay.h"
#include "steward/alloc.h"
#include "steward/fd.h"

#define WANT_EVERY_MS 1000

struct relay_motion {
    stw_scope *scope;     /* the running processor's, NULL when stopped (loop thread) */
    pthread_mutex_t lock; /* guards everything below */
    relay_motion_view view;
    relay_motion_event ring[RELAY_MOTION_EVENTS_MAX];
    unsigned head, count;
};

typedef struct motion_run {
    relay_input *in;
    relay_motion *m;
    relay_motion_spec spec;
    relay_motion_det *det;
    int efd;
    bool watching;
} motion_run;

int relay_motion_new(relay_motion **out)
{
    relay_motion *m = stw_calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

void relay_motion_free(relay_motion **mp)
{
    if (mp == NULL || *mp == NULL)
        return;
    pthread_mutex_destroy(&(*mp)->lock);
    stw_free(*mp);
    *mp = NULL;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Queue @ev for the loop and wake it. */
static void post(motion_run *r, const relay_motion_event *ev)
{
    relay_motion *m = r->m;
    pthread_mutex_lock(&m->lock);
    if (m->count == RELAY_MOTION_EVENTS_MAX) {
        m->head = (m->head + 1) % RELAY_MOTION_EVENTS_MAX;
        m->count--;
        m->view.missed++;
    }
    m->ring[(m->head + m->count++) % RELAY_MOTION_EVENTS_MAX] = *ev;
    m->view.last_event = ev->type;
    m->view.last_event_ms = ev->time_ms;
    if (ev->type == RELAY_MOTION_START) {
        m->view.starts++;
        m->view.since_ms = ev->time_ms;
    } else {
        m->view.ends++;
        m->view.since_ms = 0;
        m->view.active = false;
        m->view.box = (relay_motion_box){0};
    }
    pthread_mutex_unlock(&m->lock);
    relay_hub_poke(r->in->hub);
}

static void end_event(const relay_motion_result *res, const char *reason, relay_motion_event *ev)
{
    *ev = (relay_motion_event){.type = RELAY_MOTION_END,
                               .time_ms = wall_ms(),
                               .score = res->peak,
                               .box = res->span,
                               .width = res->width,
                               .height = res->height,
                               .reason = reason};
}

/* Analyse @f and publish what it shows. */
static void analyse(motion_run *r, stw_frame *f)
{
    relay_motion *m = r->m;
    stw_buf *b = stw_frame_buf(f);
    relay_motion_result res;
    int rc = relay_motion_det_feed_jpeg(r->det, stw_buf_data(b), stw_buf_size(b), &res);
    pthread_mutex_lock(&m->lock);
    if (rc != 0) {
        m->view.errors++;
        pthread_mutex_unlock(&m->lock);
        return;
    }
    m->view.analysed++;
    m->view.score = res.score;
    m->view.width = res.width;
    m->view.height = res.height;
    m->view.active = res.active;
    if (res.active && res.box.w > 0)
        m->view.box = res.box;
    pthread_mutex_unlock(&m->lock);
    relay_motion_event ev;
    if (res.event == RELAY_MOTION_START) {
        ev = (relay_motion_event){.type = RELAY_MOTION_START,
                                  .time_ms = wall_ms(),
                                  .score = res.score,
                                  .box = res.box,
                                  .width = res.width,
                                  .height = res.height};
        post(r, &ev);
    } else if (res.event == RELAY_MOTION_END) {
        end_event(&res, "quiet", &ev);
        post(r, &ev);
    }
}

/* Motion in progress ends for @reason (no frames, or the processor stops). */
static void cut(motion_run *r, const char *reason)
{
    relay_motion_result res;
    if (!relay_motion_det_end(r->det, &res))
        return;
    relay_motion_event ev;
    end_event(&res, reason, &ev);
    post(r, &ev);
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
}

static void motion_main(stw_scope *scope, void *arg)
{
    motion_run *r = arg;
    relay_input *in = r->in;
    int64_t period = 1000000000ll / r->spec.fps;
    int64_t next = stw_now_ns(), last_frame = next, last_want = 0;
    uint64_t last_seq = 0;
    bool seen = false;
    for (;;) {
        int64_t now = stw_now_ns();
        if (now - last_want >= WANT_EVERY_MS * 1000000ll) {
            relay_input_want_jpeg(in);
            last_want = now;
        }
        drain(r->efd);
        uint64_t seq;
        bool card;
        stw_frame *f = relay_hub_latest_source(in->hub, &seq, &card);
        if (f != NULL && (!seen || seq != last_seq)) {
            if (seen && seq > last_seq + 1) {
                pthread_mutex_lock(&r->m->lock);
                r->m->view.dropped += seq - last_seq - 1;
                pthread_mutex_unlock(&r->m->lock);
            }
            seen = true;
            last_seq = seq;
            if (!card) {
                analyse(r, f);
                last_frame = stw_now_ns();
            }
            stw_frame_unref(&f);
            /* The next slot; one missed is not made up for. */
            next += period;
            now = stw_now_ns();
            if (next < now)
                next = now;
            if (stw_scope_sleep(scope, next) == -ECANCELED)
                break;
            continue;
        }
        stw_frame_unref(&f);
        if (now - last_frame >= (int64_t)r->spec.end_after * 1000000000ll) {
            cut(r, "no-frames");
            last_frame = now;
        }
        if (stw_scope_wait_fd(scope, r->efd, POLLIN, now + WANT_EVERY_MS * 1000000ll) == -ECANCELED)
            break;
    }
    cut(r, "stopped");
}

static void run_free(void *arg)
{
    motion_run *r = arg;
    if (r->watching)
        relay_hub_unwatch(r->in->hub, r->efd);
    stw_fd_close(&r->efd);
    relay_motion_det_free(&r->det);
    pthread_mutex_lock(&r->m->lock);
    r->m->view.running = false;
    r->m->view.active = false;
    pthread_mutex_unlock(&r->m->lock);
    stw_free(r);
}

int relay_motion_start(relay_input *in)
{
    relay_motion *m = in->motion;
    if (m->scope != NULL)
        return -EALREADY;
    motion_run *r = stw_calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->in = in;
    r->m = m;
    r->spec = in->motion_spec;
    r->efd = -1;
    int rc = relay_motion_det_new(&r->spec, &r->det);
    if (rc != 0) {
        stw_free(r);
        return rc;
    }
    stw_scope *scope = NULL;
    rc = stw_scope_new(in->owner, "motion", &scope);
    if (rc == 0)
        rc = stw_scope_defer(scope, run_free, r);
    if (rc != 0) {
        run_free(r);
        stw_scope_free(&scope);
        return rc;
    }
    /* From here on the scope frees the run. */
    r->efd = stw_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC, "eventfd:relay-motion");
    rc = r->efd < 0 ? r->efd : relay_hub_watch(in->hub, r->efd);
    r->watching = rc == 0;
    pthread_mutex_lock(&m->lock);
    m->view.running = true;
    pthread_mutex_unlock(&m->lock);
    /* Thread names are cut to 15 bytes by stw_scope_spawn. */
    char tname[RELAY_NAME_MAX + 8];
    snprintf(tname, sizeof(tname), "mot-%s", in->name);
    if (rc == 0)
        rc = stw_scope_spawn(scope, tname, motion_main, r);
    if (rc != 0) {
        stw_scope_free(&scope);
        return rc;
    }
    m->scope = scope;
    return 0;
}

void relay_motion_stop(relay_input *in, stw_deadline d)
{
    relay_motion *m = in->motion;
    if (m->scope == NULL)
        return;
    stw_scope_report rep;
    if (stw_scope_close(m->scope, d, &rep) == -ETIMEDOUT)
        fprintf(stderr,
                "steward relay: input %s: the motion thread did not stop in time; it finishes "
                "on its own\n",
                in->name);
    stw_scope_free(&m->scope);
}

bool relay_motion_running(relay_input *in)
{
    return in->motion->scope != NULL;
}

unsigned relay_motion_take_events(relay_input *in, relay_motion_event *out, unsigned max)
{
    relay_motion *m = in->motion;
    pthread_mutex_lock(&m->lock);
    unsigned n = 0;
    while (n < max && m->count > 0) {
        out[n++] = m->ring[m->head];
        m->head = (m->head + 1) % RELAY_MOTION_EVENTS_MAX;
        m->count--;
    }
    pthread_mutex_unlock(&m->lock);
    return n;
}

void relay_motion_view_get(relay_input *in, relay_motion_view *out)
{
    relay_motion *m = in->motion;
    pthread_mutex_lock(&m->lock);
    *out = m->view;
    pthread_mutex_unlock(&m->lock);
}

bool relay_motion_active(relay_input *in, int64_t *since_ms, uint64_t *starts)
{
    relay_motion *m = in->motion;
    pthread_mutex_lock(&m->lock);
    bool active = m->view.since_ms != 0;
    if (since_ms != NULL)
        *since_ms = m->view.since_ms;
    if (starts != NULL)
        *starts = m->view.starts;
    pthread_mutex_unlock(&m->lock);
    return active;
}
