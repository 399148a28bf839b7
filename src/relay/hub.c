/*
 * src/relay/hub.c — one input's meeting point between its source thread
 * and the HTTP loop.
 *
 * Model
 *   The hub keeps exactly one frame: the latest published. Publishing
 *   replaces it (the hub's reference on the previous one is dropped; any
 *   viewer still sending it holds its own), so the hub costs one frame
 *   whatever the viewers do. Each publish bumps a sequence number and
 *   makes an eventfd readable; the HTTP loop watches that fd, drains it
 *   and fans out whatever is latest then, so bursts of publishes coalesce
 *   into one wake-up (latest wins).
 *
 *   The hub also carries its input's state ("starting", "running",
 *   "idle", "no-signal", "error"). Anyone may set it (relay_input_set_state);
 *   the change is posted to the loop through the same eventfd, and the loop
 *   takes it with relay_hub_take_state() to tell Server-Sent Events
 *   clients. Several changes between two wake-ups coalesce into the last
 *   one. A publish means the source is delivering, so it moves any other
 *   state to "running"; a source says "no-signal" or "error" itself when
 *   frames stop, and publishes its stand-in card with
 *   relay_hub_publish_card(), which leaves the state alone and counts as
 *   a card, not as a frame in. A camera source also leaves its counters
 *   and why its last connection ended here (relay_hub_set_camera).
 *
 * Ownership
 *   The hub owns its latest frame reference and its eventfd. It is owned
 *   by the input, freed by the input scope's cleanup after the source
 *   thread has returned and after the HTTP loop (closed earlier) stopped.
 *
 *   Other consumers of frames on their own threads (the motion processor)
 *   register an eventfd of theirs with relay_hub_watch(): every publish
 *   from the source (not a card) makes it readable, and they take the
 *   latest frame when they are ready for one, so they too skip rather
 *   than queue.
 *
 * Threads
 *   A mutex guards the latest frame and its sequence number; the counters
 *   are atomics so /metrics reads them without taking it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "relay.h"
#include "steward/alloc.h"
#include "steward/fd.h"

struct relay_hub {
    const char *name;
    pthread_mutex_t lock;
    stw_frame *latest;           /* guarded by lock */
    uint64_t seq;                /* guarded by lock */
    char state[RELAY_STATE_MAX]; /* guarded by lock */
    bool state_changed;          /* guarded by lock: not yet taken by the loop */
    int efd;
    relay_camera_stat camera;         /* guarded by lock */
    char last_error[RELAY_ERROR_MAX]; /* guarded by lock */
    char chain[RELAY_CHAIN_MAX];      /* guarded by lock */
    _Atomic uint64_t frames_in, cards, frames_out, dropped;
    _Atomic int viewers;
    bool latest_card;                 /* guarded by lock: latest is a card */
    int watchers[RELAY_HUB_WATCHERS]; /* guarded by lock: eventfds, -1 free */
};

int relay_hub_new(const char *name, relay_hub **out)
{
    relay_hub *h = stw_calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    int fd = stw_eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC, "eventfd:relay-hub");
    if (fd < 0) {
        stw_free(h);
        return fd;
    }
    h->name = name;
    h->efd = fd;
    for (unsigned i = 0; i < RELAY_HUB_WATCHERS; i++)
        h->watchers[i] = -1;
    snprintf(h->state, sizeof(h->state), "idle");
    pthread_mutex_init(&h->lock, NULL);
    *out = h;
    return 0;
}

void relay_hub_free(relay_hub **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    relay_hub *h = *hp;
    stw_frame_unref(&h->latest);
    stw_fd_close(&h->efd);
    pthread_mutex_destroy(&h->lock);
    stw_free(h);
    *hp = NULL;
}

static void publish(relay_hub *h, stw_frame *f, bool delivering)
{
    pthread_mutex_lock(&h->lock);
    stw_frame *old = h->latest;
    h->latest = f;
    h->latest_card = !delivering;
    h->seq++;
    if (delivering && strcmp(h->state, "running") != 0) {
        snprintf(h->state, sizeof(h->state), "running");
        h->state_changed = true;
    }
    uint64_t one = 1;
    /* Under the lock, so that a watcher removed is never written to again
     * (its fd number may be reused at once). */
    for (unsigned i = 0; delivering && i < RELAY_HUB_WATCHERS; i++)
        if (h->watchers[i] >= 0) {
            ssize_t w = write(h->watchers[i], &one, sizeof(one));
            (void)w;
        }
    pthread_mutex_unlock(&h->lock);
    /* The old frame may be the last reference to a pool buffer: returning
     * it to the pool takes the pool's lock, which needs no hub lock. */
    stw_frame_unref(&old);
    atomic_fetch_add(delivering ? &h->frames_in : &h->cards, 1);
    /* EAGAIN means the counter is saturated: the fd is readable anyway. */
    ssize_t n = write(h->efd, &one, sizeof(one));
    (void)n;
}

void relay_hub_publish(relay_hub *h, stw_frame *f)
{
    publish(h, f, true);
}

void relay_hub_publish_card(relay_hub *h, stw_frame *f)
{
    publish(h, f, false);
}

void relay_hub_set_state(relay_hub *h, const char *state)
{
    pthread_mutex_lock(&h->lock);
    if (strncmp(h->state, state, sizeof(h->state) - 1) != 0) {
        snprintf(h->state, sizeof(h->state), "%s", state);
        h->state_changed = true;
    }
    pthread_mutex_unlock(&h->lock);
    uint64_t one = 1;
    ssize_t n = write(h->efd, &one, sizeof(one));
    (void)n;
}

void relay_input_set_state(relay_input *in, const char *state)
{
    relay_hub_set_state(in->hub, state);
}

bool relay_hub_take_state(relay_hub *h, char *out)
{
    pthread_mutex_lock(&h->lock);
    bool changed = h->state_changed;
    h->state_changed = false;
    memcpy(out, h->state, RELAY_STATE_MAX);
    pthread_mutex_unlock(&h->lock);
    return changed;
}

void relay_hub_state(relay_hub *h, char *out)
{
    pthread_mutex_lock(&h->lock);
    memcpy(out, h->state, RELAY_STATE_MAX);
    pthread_mutex_unlock(&h->lock);
}

stw_frame *relay_hub_latest(relay_hub *h, uint64_t *seq)
{
    return relay_hub_latest_source(h, seq, NULL);
}

stw_frame *relay_hub_latest_source(relay_hub *h, uint64_t *seq, bool *card)
{
    pthread_mutex_lock(&h->lock);
    stw_frame *f = h->latest != NULL ? stw_frame_ref(h->latest) : NULL;
    if (seq != NULL)
        *seq = h->seq;
    if (card != NULL)
        *card = h->latest_card;
    pthread_mutex_unlock(&h->lock);
    return f;
}

int relay_hub_watch(relay_hub *h, int fd)
{
    int rc = -ENOSPC;
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < RELAY_HUB_WATCHERS; i++)
        if (h->watchers[i] < 0) {
            h->watchers[i] = fd;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

void relay_hub_unwatch(relay_hub *h, int fd)
{
    pthread_mutex_lock(&h->lock);
    for (unsigned i = 0; i < RELAY_HUB_WATCHERS; i++)
        if (h->watchers[i] == fd)
            h->watchers[i] = -1;
    pthread_mutex_unlock(&h->lock);
}

void relay_hub_poke(relay_hub *h)
{
    uint64_t one = 1;
    ssize_t n = write(h->efd, &one, sizeof(one));
    (void)n;
}

int relay_hub_notify_fd(const relay_hub *h)
{
    return h->efd;
}

void relay_hub_drain_notify(relay_hub *h)
{
    uint64_t v;
    ssize_t n = read(h->efd, &v, sizeof(v));
    (void)n;
}

void relay_hub_count_out(relay_hub *h, uint64_t n)
{
    atomic_fetch_add(&h->frames_out, n);
}

void relay_hub_count_dropped(relay_hub *h, uint64_t n)
{
    atomic_fetch_add(&h->dropped, n);
}

void relay_hub_viewers_add(relay_hub *h, int delta)
{
    atomic_fetch_add(&h->viewers, delta);
}

void relay_hub_stats(const relay_hub *h, relay_hub_stat *out)
{
    relay_hub *m = (relay_hub *)h;
    pthread_mutex_lock(&m->lock);
    out->seq = m->seq;
    pthread_mutex_unlock(&m->lock);
    out->frames_in = atomic_load(&m->frames_in);
    out->cards = atomic_load(&m->cards);
    out->frames_out = atomic_load(&m->frames_out);
    out->dropped = atomic_load(&m->dropped);
    int v = atomic_load(&m->viewers);
    out->viewers = v > 0 ? (unsigned)v : 0;
}

void relay_hub_set_camera(relay_hub *h, const relay_camera_stat *st, const char *last_error)
{
    pthread_mutex_lock(&h->lock);
    h->camera = *st;
    if (last_error != NULL)
        snprintf(h->last_error, sizeof(h->last_error), "%s", last_error);
    pthread_mutex_unlock(&h->lock);
}

void relay_hub_set_chain(relay_hub *h, const char *chain)
{
    size_t n = strlen(chain);
    if (n >= RELAY_CHAIN_MAX) {
        /* Keep whole ids: the nearest relays are the ones a loop is most
         * likely to close through. */
        n = RELAY_CHAIN_MAX - 1;
        while (n > 0 && chain[n] != ',')
            n--;
    }
    pthread_mutex_lock(&h->lock);
    memcpy(h->chain, chain, n);
    h->chain[n] = '\0';
    pthread_mutex_unlock(&h->lock);
}

void relay_hub_chain(relay_hub *h, char *out)
{
    pthread_mutex_lock(&h->lock);
    memcpy(out, h->chain, RELAY_CHAIN_MAX);
    pthread_mutex_unlock(&h->lock);
}

void relay_hub_camera(relay_hub *h, relay_camera_stat *st, char *err)
{
    pthread_mutex_lock(&h->lock);
    *st = h->camera;
    memcpy(err, h->last_error, RELAY_ERROR_MAX);
    pthread_mutex_unlock(&h->lock);
}
