/*
 * src/relay/http_api.c — the input table and the REST API for inputs and
 * their outputs (/api/inputs...).
 *
 * Model
 *   The loop thread owns the input table: it creates inputs (POST
 *   /api/inputs), deletes them (DELETE /api/inputs/{name}), and saves the
 *   state file after every change of the configuration. An input's outputs
 *   are its viewers (http_viewers.c). Deleting an input first detaches its
 *   viewers; only then is its hub event removed and its owner scope
 *   closed, which joins the source thread (bounded by a deadline) and frees
 *   the hub: nothing on the loop can reach the input afterwards.
 *
 * Ownership
 *   An http_input entry is owned by the http scope while it is in the
 *   table; the entry of a deleted input is freed here. Request bodies are
 *   parsed with jansson (allocating through the ledger) and freed before
 *   the answer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "log.h"
#include "config.h"
#include "http_internal.h"
#include "push.h"
#include "recorder.h"
#include "redact.h"
#include "steward/alloc.h"

http_input *relay_http__find_input(relay_http *srv, const char *name, size_t len)
{
    for (unsigned i = 0; i < srv->ninputs; i++)
        if (strlen(srv->inputs[i]->in->name) == len &&
            memcmp(srv->inputs[i]->in->name, name, len) == 0)
            return srv->inputs[i];
    return NULL;
}

static void input_json(struct evbuffer *b, http_input *hi)
{
    relay_input *in = hi->in;
    relay_hub_stat st;
    char state[RELAY_STATE_MAX];
    relay_hub_stats(in->hub, &st);
    relay_hub_state(in->hub, state);
    evbuffer_add_printf(b, "{\"name\":");
    relay_http__json_str(b, in->name);
    evbuffer_add_printf(b, ",\"kind\":\"%s\",\"state\":", in->kind);
    relay_http__json_str(b, state);
    if (strcmp(in->kind, "mjpeg") == 0) {
        relay_camera_stat cs;
        char err[RELAY_ERROR_MAX];
        relay_hub_camera(in->hub, &cs, err);
        /* The API, its events and so the web UI show camera URLs without
         * their passwords: only memory and the state file have them. */
        char shown[RELAY_URL_MAX + 1];
        relay_redact(in->url, shown, sizeof(shown));
        evbuffer_add_printf(b, ",\"url\":");
        relay_http__json_str(b, shown);
        evbuffer_add_printf(b, ",\"last_error\":");
        if (err[0] != '\0') {
            relay_redact(err, shown, sizeof(shown));
            relay_http__json_str(b, shown);
        } else {
            evbuffer_add_printf(b, "null");
        }
        evbuffer_add_printf(b,
                            ",\"camera\":{\"connects\":%llu,\"garbage_bytes\":%llu,"
                            "\"bad_parts\":%llu,\"oversize\":%llu,\"length_mismatch\":%llu}",
                            (unsigned long long)cs.connects, (unsigned long long)cs.garbage_bytes,
                            (unsigned long long)cs.bad_parts, (unsigned long long)cs.oversize,
                            (unsigned long long)cs.length_mismatch);
    } else if (strcmp(in->kind, "ffmpeg") == 0) {
        char shown[RELAY_URL_MAX + 1];
        relay_redact(in->url, shown, sizeof(shown));
        evbuffer_add_printf(b, ",\"url\":");
        relay_http__json_str(b, shown);
        evbuffer_add_printf(b, ",\"rtsp_transport\":\"%s\",\"loop\":%s,\"timeout\":%u",
                            in->ff.rtsp_udp ? "udp" : "tcp", in->ff.loop ? "true" : "false",
                            in->ff.timeout_s);
        char *ff = relay_ffmpeg_input_json(in);
        if (ff != NULL) {
            evbuffer_add_printf(b, ",\"ffmpeg\":%s", ff);
            stw_free(ff);
        }
    } else {
        evbuffer_add_printf(b,
                            ",\"width\":%u,\"height\":%u,\"fps\":%u,\"quality\":%u,"
                            "\"pattern\":\"%s\"",
                            in->width, in->height, in->fps, in->quality,
                            in->still ? "still" : "ball");
    }
    evbuffer_add_printf(b, ",\"motion\":");
    relay_http__motion_json(b, in);
    evbuffer_add_printf(b,
                        ",\"on_demand\":%s,\"viewers\":%u,\"outputs\":%u,\"seq\":%llu,"
                        "\"frames_in\":%llu,\"cards\":%llu,\"frames_out\":%llu,\"dropped\":%llu,"
                        "\"created\":",
                        in->on_demand ? "true" : "false", hi->nviewers, hi->nviewers + in->npush,
                        (unsigned long long)st.seq, (unsigned long long)st.frames_in,
                        (unsigned long long)st.cards, (unsigned long long)st.frames_out,
                        (unsigned long long)st.dropped);
    relay_http__json_time(b, in->created_ms);
    evbuffer_add_printf(b,
                        ",\"record\":%s,\"record_segment\":%u,\"record_max_age\":%lld,"
                        "\"record_max_bytes\":%llu,\"record_mode\":\"%s\","
                        "\"record_pre_roll\":%u,\"record_post_roll\":%u,\"recording\":",
                        in->record.on ? "true" : "false", in->record.segment_s,
                        (long long)in->record.max_age_s,
                        (unsigned long long)in->record.max_bytes,
                        in->record.motion ? "motion" : "continuous", in->record.pre_roll_s,
                        in->record.post_roll_s);
    char *rj = in->recorder != NULL ? relay_recorder_json(in->recorder) : NULL;
    evbuffer_add_printf(b, "%s}", rj != NULL ? rj : "{\"state\":\"off\"}");
    stw_free(rj);
}

static void output_json(struct evbuffer *b, const viewer *v)
{
    evbuffer_add_printf(b, "{\"id\":%llu,\"type\":\"viewer\",\"peer\":", (unsigned long long)v->id);
    relay_http__json_str(b, v->peer);
    evbuffer_add_printf(b, ",\"started\":");
    relay_http__json_time(b, v->started_ms);
    /* A .ts viewer counts chunks as its frames and has no frame queue. */
    evbuffer_add_printf(b, ",\"format\":\"%s\",\"frames\":%llu,\"dropped\":%llu,\"queued\":%u",
                        v->ts ? "mpegts" : "mjpeg", (unsigned long long)v->frames,
                        (unsigned long long)v->dropped, v->nends);
    if (v->ts)
        evbuffer_add_printf(b, ",\"bytes\":%llu", (unsigned long long)v->bytes);
    evbuffer_add(b, "}", 1);
}

/* Write the state file with the table's inputs, without @skip (may be
 * NULL) and with @extra (may be NULL). Returns 0 (also when there is no
 * state file) or the save's negative errno, reported on stderr. */
int relay_http__save_state(relay_http *srv, const http_input *skip, relay_input *extra)
{
    if (srv->cfg.state_path[0] == '\0')
        return 0;
    relay_input *list[RELAY_INPUTS_MAX + 1];
    unsigned n = 0;
    for (unsigned i = 0; i < srv->ninputs; i++)
        if (srv->inputs[i] != skip)
            list[n++] = srv->inputs[i]->in;
    if (extra != NULL)
        list[n++] = extra;
    int rc = relay_state_save(srv->cfg.state_path, list, n);
    if (rc != 0) {
        srv->state_save_failures++;
        relay_log(RELAY_LOG_ERROR, "state", NULL, "cannot save state file %s: %s",
                  srv->cfg.state_path, stw_strerror(rc));
    }
    return rc;
}

/* Answer a change that could not be saved, and so was not made: 507 when
 * the disk is full, 500 otherwise. */
void relay_http__reply_unsaved(struct evhttp_request *req, int rc)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "not saved, nothing changed: state file: %s", stw_strerror(rc));
    relay_http__reply_error(req, rc == -ENOSPC || rc == -EDQUOT ? 507 : 500, msg);
}

/* Watch @in on the loop: a new entry, not yet in the table. Returns it or
 * NULL (out of memory); @in is untouched on failure. */
static http_input *input_attach(relay_http *srv, relay_input *in)
{
    http_input *hi = stw_calloc(1, sizeof(*hi));
    if (hi == NULL)
        return NULL;
    hi->in = in;
    hi->srv = srv;
    if (relay_http__input_watch(hi) != 0) {
        relay_http__input_unwatch(hi);
        stw_free(hi);
        return NULL;
    }
    return hi;
}

/* Stop watching @hi's input and free the entry (not the input). */
static void input_detach(http_input *hi)
{
    relay_http__input_unwatch(hi);
    stw_free(hi);
}

void relay_http__handle_list_inputs(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"inputs\":[");
    for (unsigned i = 0; i < srv->ninputs; i++) {
        if (i > 0)
            evbuffer_add(b, ",", 1);
        input_json(b, srv->inputs[i]);
    }
    evbuffer_add_printf(b,
                        "],\"viewers\":%u,\"max_viewers\":%u,\"max_viewers_per_input\":%u,"
                        "\"max_inputs\":%u}\n",
                        srv->nviewers, srv->cfg.max_viewers, srv->cfg.max_viewers_input,
                        srv->cfg.max_inputs);
    relay_http__reply_json(req, 200, "OK", b);
}

static void handle_get_input(struct evhttp_request *req, http_input *hi)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    input_json(b, hi);
    evbuffer_add(b, "\n", 1);
    relay_http__reply_json(req, 200, "OK", b);
}

/* The request body as JSON, or NULL after answering 413 or 400. */
json_t *relay_http__read_body(relay_http *srv, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > (size_t)srv->cfg.max_body_bytes) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body larger than %d bytes", srv->cfg.max_body_bytes);
        relay_http__reply_error(req, 413, msg);
        return NULL;
    }
    const char *text = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    json_error_t jerr;
    json_t *root = text != NULL ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (root == NULL) {
        char msg[256];
        if (text == NULL)
            snprintf(msg, sizeof(msg), "out of memory");
        else
            snprintf(msg, sizeof(msg), "invalid JSON: line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
        relay_http__reply_error(req, text == NULL ? 503 : 400, msg);
    }
    return root;
}

void relay_http__handle_create_input(relay_http *srv, struct evhttp_request *req)
{
    json_t *body = relay_http__read_body(srv, req);
    if (body == NULL)
        return;
    relay_spec spec;
    char err[256];
    int code = relay_spec_parse(body, &srv->cfg, 0, &spec, err, sizeof(err));
    json_decref(body);
    if (code != 0) {
        relay_http__reply_error(req, code, err);
        return;
    }
    if (spec.record.on && srv->cfg.rec == NULL) {
        relay_http__reply_error(req, 503, "recordings are not available (see the relay's log)");
        return;
    }
    if (relay_http__find_input(srv, spec.name, strlen(spec.name)) != NULL) {
        snprintf(err, sizeof(err), "input \"%s\" already exists", spec.name);
        relay_http__reply_error(req, 409, err);
        return;
    }
    if (srv->ninputs >= srv->cfg.max_inputs) {
        snprintf(err, sizeof(err), "too many inputs (the limit is %u)", srv->cfg.max_inputs);
        relay_http__reply_error(req, 507, err);
        return;
    }
    size_t claimed = relay_spec_claim(&spec);
    for (unsigned i = 0; i < srv->ninputs; i++)
        claimed += srv->inputs[i]->in->claim;
    if (claimed > srv->cfg.max_input_bytes) {
        snprintf(err, sizeof(err),
                 "the inputs would claim %zu MiB, over --max-input-memory (%zu MiB)", claimed >> 20,
                 srv->cfg.max_input_bytes >> 20);
        relay_http__reply_error(req, 507, err);
        return;
    }
    spec.created_ms = 0;
    relay_input *in = NULL;
    int rc = relay_input_new(srv->sources, &spec, &in);
    http_input *hi = NULL;
    if (rc == 0) {
        hi = input_attach(srv, in);
        rc = hi != NULL ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        for (unsigned i = 0; i < spec.npush; i++)
            spec.push[i].id = ++srv->next_output_id;
        relay_input_start_pushes(in, &spec);
    }
    if (rc == 0 && in->motion_spec.enabled)
        rc = relay_motion_start(in);
    if (rc == 0)
        rc = relay_input_apply_record(in, &srv->cfg);
    if (rc == 0 && (!in->on_demand || relay_input_consumed(in)))
        rc = relay_input_start(in, &srv->cfg);
    if (rc != 0) {
        if (hi != NULL)
            input_detach(hi);
        relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
        snprintf(err, sizeof(err), "cannot create the input: %s", stw_strerror(rc));
        relay_http__reply_error(req, rc == -ENOMEM ? 503 : 500, err);
        return;
    }
    /* Saved before it is acknowledged: a create the state file does not
     * have would be gone after a restart. */
    rc = relay_http__save_state(srv, NULL, in);
    if (rc != 0) {
        input_detach(hi);
        relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
        relay_http__reply_unsaved(req, rc);
        return;
    }
    srv->inputs[srv->ninputs++] = hi;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    input_json(b, hi);
    relay_http__sse_broadcast(srv, "input-created", b);
    evbuffer_add(b, "\n", 1);
    char loc[RELAY_NAME_MAX + 16];
    snprintf(loc, sizeof(loc), "/api/inputs/%s", in->name);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    relay_http__reply_json(req, 201, "Created", b);
}

static void handle_delete_input(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    if (hi->in->declared) {
        char msg[RELAY_PATH_MAX + 128];
        snprintf(msg, sizeof(msg),
                 "input \"%s\" is declared by the config file %s: remove it there", hi->in->name,
                 srv->cfg.file != NULL ? srv->cfg.file->path : "");
        relay_http__reply_error(req, 409, msg);
        return;
    }
    /* Saved first, so a delete that cannot be saved changes nothing (the
     * input would come back after a restart). */
    int rc = relay_http__save_state(srv, hi, NULL);
    if (rc != 0) {
        relay_http__reply_unsaved(req, rc);
        return;
    }
    unsigned closed = 0;
    /* Push outputs stop first: their children finish while the source
     * still runs, then the viewers end. */
    while (hi->in->npush > 0) {
        relay_push *p = hi->in->push[--hi->in->npush];
        relay_http__sse_output_event(srv, "output-deleted", hi->in->name, relay_push_id(p),
                                     "input deleted");
        relay_push_stop(&p, stw_deadline_in_ms(DELETE_DEADLINE_MS));
        closed++;
    }
    while (hi->viewers != NULL) {
        relay_http__viewer_detach(hi->viewers, "input deleted");
        closed++;
    }
    unsigned i = 0;
    while (srv->inputs[i] != hi)
        i++;
    memmove(&srv->inputs[i], &srv->inputs[i + 1], (srv->ninputs - i - 1) * sizeof(hi));
    srv->ninputs--;
    relay_input *in = hi->in;
    char name[RELAY_NAME_MAX];
    snprintf(name, sizeof(name), "%s", in->name);
    input_detach(hi);
    relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"name\":");
    relay_http__json_str(b, name);
    evbuffer_add_printf(b, "}");
    relay_http__sse_broadcast(srv, "input-deleted", b);
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add_printf(b, "{\"deleted\":");
    relay_http__json_str(b, name);
    evbuffer_add_printf(b, ",\"outputs_closed\":%u}\n", closed);
    relay_http__reply_json(req, 200, "OK", b);
}

/* PATCH /api/inputs/{name}: change the recording fields (the others are
 * fixed at creation). Saved before it is acknowledged. */
static void handle_patch_input(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    json_t *body = relay_http__read_body(srv, req);
    if (body == NULL)
        return;
    char err[256];
    relay_input *in = hi->in;
    int code = json_is_object(body) ? 0 : 400;
    const char *key;
    json_t *val;
    if (code == 0)
        json_object_foreach(body, key, val)
        {
            if (strncmp(key, "record", 6) != 0 ||
                (key[6] != '\0' && strcmp(key, "record_segment") != 0 &&
                 strcmp(key, "record_max_age") != 0 && strcmp(key, "record_max_bytes") != 0 &&
                 strcmp(key, "record_mode") != 0 && strcmp(key, "record_pre_roll") != 0 &&
                 strcmp(key, "record_post_roll") != 0)) {
                snprintf(err, sizeof(err),
                         "only record, record_segment, record_max_age, record_max_bytes, "
                         "record_mode, record_pre_roll and record_post_roll can be changed "
                         "(\"%.40s\" cannot)",
                         key);
                code = 422;
                break;
            }
        }
    else
        snprintf(err, sizeof(err), "the body must be a JSON object");
    relay_record_spec next = in->record;
    if (code == 0)
        code = relay_record_parse(body, &next, err, sizeof(err));
    json_decref(body);
    if (code == 0 && in->declared) {
        snprintf(err, sizeof(err), "input \"%s\" is declared by the config file: change it there",
                 in->name);
        code = 409;
    }
    const char *why = code == 0 ? relay_record_mode_check(&next, &in->motion_spec) : NULL;
    if (why != NULL) {
        snprintf(err, sizeof(err), "%s", why);
        code = 409;
    }
    size_t claim = in->claim - relay_record_claim(in->kind, &in->record) +
                   relay_record_claim(in->kind, &next);
    if (code == 0 && claim > in->claim) {
        size_t claimed = claim;
        for (unsigned i = 0; i < srv->ninputs; i++)
            if (srv->inputs[i] != hi)
                claimed += srv->inputs[i]->in->claim;
        if (claimed > srv->cfg.max_input_bytes) {
            snprintf(err, sizeof(err),
                     "the inputs would claim %zu MiB with the pre-roll ring, over "
                     "--max-input-memory (%zu MiB)",
                     claimed >> 20, srv->cfg.max_input_bytes >> 20);
            code = 507;
        }
    }
    if (code == 0 && next.on && srv->cfg.rec == NULL) {
        snprintf(err, sizeof(err), "recordings are not available (see the relay's log)");
        code = 503;
    }
    if (code != 0) {
        relay_http__reply_error(req, code, err);
        return;
    }
    relay_record_spec prev = in->record;
    in->record = next;
    int rc = relay_http__save_state(srv, NULL, NULL);
    if (rc != 0) {
        in->record = prev;
        relay_http__reply_unsaved(req, rc);
        return;
    }
    in->claim = claim;
    /* A new segment length or mode takes a new recorder. */
    if (in->recorder != NULL &&
        (prev.segment_s != next.segment_s || prev.motion != next.motion ||
         (next.motion &&
          (prev.pre_roll_s != next.pre_roll_s || prev.post_roll_s != next.post_roll_s))))
        relay_recorder_stop(&in->recorder, stw_deadline_in_ms(10000));
    rc = relay_input_apply_record(in, &srv->cfg);
    if (rc == 0 && in->recorder != NULL)
        rc = relay_http__input_ensure_running(hi);
    else if (rc == 0)
        relay_http__viewers_changed(hi);
    if (rc != 0) {
        snprintf(err, sizeof(err), "saved, but recording cannot start: %s", stw_strerror(rc));
        relay_http__reply_error(req, 500, err);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    input_json(b, hi);
    relay_http__sse_broadcast(srv, "input-updated", b);
    evbuffer_add(b, "\n", 1);
    relay_http__reply_json(req, 200, "OK", b);
}

static void handle_list_outputs(struct evhttp_request *req, http_input *hi)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_printf(b, "{\"input\":");
    relay_http__json_str(b, hi->in->name);
    evbuffer_add_printf(b, ",\"outputs\":[");
    for (viewer *v = hi->viewers; v != NULL; v = v->next) {
        output_json(b, v);
        if (v->next != NULL)
            evbuffer_add(b, ",", 1);
    }
    relay_http__push_list_json(b, hi, hi->viewers == NULL);
    evbuffer_add_printf(b, "]}\n");
    relay_http__reply_json(req, 200, "OK", b);
}

static void handle_output(struct evhttp_request *req, http_input *hi, viewer *v, bool del)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    if (!del) {
        output_json(b, v);
        evbuffer_add(b, "\n", 1);
        relay_http__reply_json(req, 200, "OK", b);
        return;
    }
    uint64_t id = v->id;
    relay_http__viewer_detach(v, "deleted");
    evbuffer_add_printf(b, "{\"deleted\":%llu,\"input\":", (unsigned long long)id);
    relay_http__json_str(b, hi->in->name);
    evbuffer_add_printf(b, ",\"outputs\":%u}\n", hi->nviewers);
    relay_http__reply_json(req, 200, "OK", b);
}

/* /api/inputs/... */
void relay_http__route_input(relay_http *srv, struct evhttp_request *req, const char *rest,
                             enum evhttp_cmd_type cmd)
{
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    const char *name;
    size_t nlen;
    int sub;
    uint64_t id = 0;
    if (!relay_http__parse_input_path(rest, &name, &nlen, &sub, &id)) {
        relay_http__reply_error(req, 404, "not found");
        return;
    }
    http_input *hi = relay_http__find_input(srv, name, nlen);
    if (hi == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "no input \"%.*s\"", (int)(nlen < 40 ? nlen : 40), name);
        relay_http__reply_error(req, 404, msg);
        return;
    }
    if (sub == 0) {
        if (get)
            handle_get_input(req, hi);
        else if (cmd == EVHTTP_REQ_DELETE)
            handle_delete_input(srv, req, hi);
        else if (cmd == EVHTTP_REQ_PATCH)
            handle_patch_input(srv, req, hi);
        else
            relay_http__reply_405(req, "GET, HEAD, PATCH, DELETE");
        return;
    }
    if (sub == 3) {
        relay_http__handle_motion(srv, req, hi, cmd);
        return;
    }
    if (sub == 1) {
        if (get)
            handle_list_outputs(req, hi);
        else if (cmd == EVHTTP_REQ_POST)
            relay_http__handle_create_push(srv, req, hi);
        else
            relay_http__reply_405(req, "GET, HEAD, POST");
        return;
    }
    viewer *v = hi->viewers;
    while (v != NULL && v->id != id)
        v = v->next;
    if (v == NULL && relay_http__route_push(srv, req, hi, id, cmd))
        return;
    if (v == NULL) {
        char msg[96];
        snprintf(msg, sizeof(msg), "input \"%s\" has no output %llu", hi->in->name,
                 (unsigned long long)id);
        relay_http__reply_error(req, 404, msg);
        return;
    }
    if (get || cmd == EVHTTP_REQ_DELETE)
        handle_output(req, hi, v, cmd == EVHTTP_REQ_DELETE);
    else
        relay_http__reply_405(req, "GET, HEAD, DELETE");
}

void relay_http__input_json(struct evbuffer *b, http_input *hi)
{
    input_json(b, hi);
}
