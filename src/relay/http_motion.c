/*
 * src/relay/http_motion.c — motion detection through the API: the
 * "motion" object of an input, GET/PUT/PATCH /api/inputs/{name}/motion,
 * its events on /api/events and its metrics.
 *
 * Model
 *   The options (relay_motion_spec) are part of the input's configuration:
 *   a change is saved in the state file before it is acknowledged, then
 *   the processor is restarted with the new options (or stopped). PATCH
 *   changes the fields it names; PUT sets the others to their defaults.
 *   An enabled processor keeps an on-demand input's source running, as a
 *   push output does.
 *
 *   The processor's thread queues its events and wakes the loop through
 *   the hub; the hub's notify callback (http_viewers.c) calls
 *   relay_http__motion_flush(), which sends them as "motion-start" and
 *   "motion-end" events.
 *
 * Ownership
 *   Nothing of its own: the input owns its motion state (motion.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http_internal.h"
#include "motion.h"

static void box_json(struct evbuffer *b, const relay_motion_box *box)
{
    if (box->w == 0)
        evbuffer_add_printf(b, "null");
    else
        evbuffer_add_printf(b, "{\"x\":%u,\"y\":%u,\"w\":%u,\"h\":%u}", box->x, box->y, box->w,
                            box->h);
}

void relay_http__motion_json(struct evbuffer *b, relay_input *in)
{
    const relay_motion_spec *s = &in->motion_spec;
    relay_motion_view v;
    relay_motion_view_get(in, &v);
    evbuffer_add_printf(b,
                        "{\"enabled\":%s,\"fps\":%u,\"threshold\":%u,\"min_area\":%g,"
                        "\"start_frames\":%u,\"end_after\":%u,\"running\":%s,\"active\":%s,"
                        "\"score\":%.2f,\"box\":",
                        s->enabled ? "true" : "false", s->fps, s->threshold, s->min_area,
                        s->start_frames, s->end_after, v.running ? "true" : "false",
                        v.active ? "true" : "false", v.score);
    box_json(b, &v.box);
    evbuffer_add_printf(b, ",\"ignore\":[");
    for (unsigned i = 0; i < s->nignore; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        box_json(b, &s->ignore[i]);
    }
    evbuffer_add_printf(b, "]");
    evbuffer_add_printf(b, ",\"width\":%u,\"height\":%u,\"since\":", v.width, v.height);
    if (v.since_ms != 0)
        relay_http__json_time(b, v.since_ms);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b, ",\"last_event\":%s,\"last_event_time\":",
                        v.last_event == RELAY_MOTION_START ? "\"motion-start\""
                        : v.last_event == RELAY_MOTION_END ? "\"motion-end\""
                                                           : "null");
    if (v.last_event_ms != 0)
        relay_http__json_time(b, v.last_event_ms);
    else
        evbuffer_add_printf(b, "null");
    evbuffer_add_printf(b,
                        ",\"frames_analysed\":%llu,\"frames_dropped\":%llu,\"decode_errors\":%llu,"
                        "\"starts\":%llu,\"ends\":%llu}",
                        (unsigned long long)v.analysed, (unsigned long long)v.dropped,
                        (unsigned long long)v.errors, (unsigned long long)v.starts,
                        (unsigned long long)v.ends);
}

void relay_http__motion_flush(http_input *hi)
{
    relay_motion_event ev[RELAY_MOTION_EVENTS_MAX];
    unsigned n = relay_motion_take_events(hi->in, ev, RELAY_MOTION_EVENTS_MAX);
    relay_http *srv = hi->srv;
    for (unsigned i = 0; i < n && srv->sse != NULL; i++) {
        struct evbuffer *b = evbuffer_new();
        if (b == NULL) {
            srv->sse_missed += srv->nsse;
            continue;
        }
        evbuffer_add_printf(b, "{\"input\":");
        relay_http__json_str(b, hi->in->name);
        evbuffer_add_printf(b, ",\"time\":");
        relay_http__json_time(b, ev[i].time_ms);
        evbuffer_add_printf(b, ",\"score\":%.2f,\"box\":", ev[i].score);
        box_json(b, &ev[i].box);
        evbuffer_add_printf(b, ",\"width\":%u,\"height\":%u", ev[i].width, ev[i].height);
        if (ev[i].reason != NULL) {
            evbuffer_add_printf(b, ",\"reason\":");
            relay_http__json_str(b, ev[i].reason);
        }
        evbuffer_add_printf(b, "}");
        relay_http__sse_broadcast(
            srv, ev[i].type == RELAY_MOTION_START ? "motion-start" : "motion-end", b);
        evbuffer_free(b);
    }
}

static bool spec_equal(const relay_motion_spec *a, const relay_motion_spec *b)
{
    if (a->nignore != b->nignore)
        return false;
    for (unsigned i = 0; i < a->nignore; i++)
        if (a->ignore[i].x != b->ignore[i].x || a->ignore[i].y != b->ignore[i].y ||
            a->ignore[i].w != b->ignore[i].w || a->ignore[i].h != b->ignore[i].h)
            return false;
    return a->enabled == b->enabled && a->fps == b->fps && a->threshold == b->threshold &&
           a->min_area == b->min_area && a->start_frames == b->start_frames &&
           a->end_after == b->end_after;
}

static void reply_motion(struct evhttp_request *req, relay_input *in)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    relay_http__motion_json(b, in);
    evbuffer_add(b, "\n", 1);
    relay_http__reply_json(req, 200, "OK", b);
}

/* Run the processor as in->motion_spec says: stopped, or started afresh
 * with those options. Returns 0 or the start's error. */
static int apply(http_input *hi)
{
    relay_input *in = hi->in;
    relay_motion_stop(in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
    int rc = in->motion_spec.enabled ? relay_motion_start(in) : 0;
    /* An on-demand input runs while something consumes it. A source that
     * cannot start says so in its state; the processor waits for it. */
    if (rc == 0 && in->motion_spec.enabled && in->on_demand)
        relay_http__input_ensure_running(hi);
    else
        relay_http__viewers_changed(hi);
    relay_http__motion_flush(hi);
    return rc;
}

void relay_http__handle_motion(relay_http *srv, struct evhttp_request *req, http_input *hi,
                               enum evhttp_cmd_type cmd)
{
    relay_input *in = hi->in;
    if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) {
        reply_motion(req, in);
        return;
    }
    if (cmd != EVHTTP_REQ_PUT && cmd != EVHTTP_REQ_PATCH) {
        relay_http__reply_405(req, "GET, HEAD, PUT, PATCH");
        return;
    }
    if (in->declared) {
        char msg[RELAY_PATH_MAX + 128];
        snprintf(msg, sizeof(msg),
                 "input \"%s\" is declared by the config file %s: change its motion there",
                 in->name, srv->cfg.file != NULL ? srv->cfg.file->path : "");
        relay_http__reply_error(req, 409, msg);
        return;
    }
    json_t *body = relay_http__read_body(srv, req);
    if (body == NULL)
        return;
    relay_motion_spec next = cmd == EVHTTP_REQ_PUT ? RELAY_MOTION_SPEC_DEFAULT : in->motion_spec;
    char err[256];
    int code = relay_motion_spec_parse(body, &next, err, sizeof(err));
    json_decref(body);
    if (code != 0) {
        relay_http__reply_error(req, code, err);
        return;
    }
    const char *why = relay_record_mode_check(&in->record, &next);
    if (why != NULL) {
        relay_http__reply_error(req, 409,
                                "recording is in mode \"motion\": set record_mode to "
                                "\"continuous\" or record to false before turning motion "
                                "detection off");
        return;
    }
    relay_motion_spec old = in->motion_spec;
    if (spec_equal(&old, &next) && relay_motion_running(in) == old.enabled) {
        reply_motion(req, in);
        return;
    }
    in->motion_spec = next;
    /* Saved before it is acknowledged or applied. */
    int rc = relay_http__save_state(srv, NULL, NULL);
    if (rc != 0) {
        in->motion_spec = old;
        relay_http__reply_unsaved(req, rc);
        return;
    }
    rc = apply(hi);
    if (rc != 0) {
        /* Back to what ran before, in the file too. */
        in->motion_spec = old;
        relay_http__save_state(srv, NULL, NULL);
        apply(hi);
        snprintf(err, sizeof(err), "cannot start motion detection: %s", stw_strerror(rc));
        relay_http__reply_error(req, rc == -ENOMEM ? 503 : 500, err);
        return;
    }
    reply_motion(req, in);
}

void relay_http__motion_metrics(relay_http *srv, struct evbuffer *b)
{
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"steward_relay_motion_frames_analysed_total", "counter",
         "Frames the motion processor decoded and analysed."},
        {"steward_relay_motion_frames_dropped_total", "counter",
         "Frames the motion processor skipped to keep to its rate."},
        {"steward_relay_motion_decode_errors_total", "counter",
         "Frames the motion processor could not decode."},
        {"steward_relay_motion_events_total", "counter", "Motion events, by event."},
        {"steward_relay_motion_active", "gauge", "1 while the input has motion."},
    };
    for (unsigned k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                            m[k].type);
        for (unsigned i = 0; i < srv->ninputs; i++) {
            relay_input *in = srv->inputs[i]->in;
            relay_motion_view v;
            relay_motion_view_get(in, &v);
            if (!in->motion_spec.enabled && v.analysed == 0 && v.errors == 0)
                continue;
            if (k == 3) {
                evbuffer_add_printf(b,
                                    "%s{input=\"%s\",event=\"start\"} %llu\n"
                                    "%s{input=\"%s\",event=\"end\"} %llu\n",
                                    m[k].name, in->name, (unsigned long long)v.starts, m[k].name,
                                    in->name, (unsigned long long)v.ends);
                continue;
            }
            uint64_t val[] = {v.analysed, v.dropped, v.errors, 0, v.active ? 1 : 0};
            evbuffer_add_printf(b, "%s{input=\"%s\"} %llu\n", m[k].name, in->name,
                                (unsigned long long)val[k]);
        }
    }
}
