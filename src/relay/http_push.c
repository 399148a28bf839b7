/*
 * src/relay/http_push.c — push outputs through the REST API:
 *   POST   /api/inputs/{name}/outputs      {"type":"push","url":"rtmp://..."}
 *   GET    /api/inputs/{name}/outputs/{id}
 *   DELETE /api/inputs/{name}/outputs/{id}
 * (the list, GET /api/inputs/{name}/outputs, is http_api.c's, with the
 * pushes after the viewers).
 *
 * Model
 *   A push output belongs to an ffmpeg input (push.h) and is kept in the
 *   state file with it. A change is made, then saved, and acknowledged
 *   only once saved: a create that cannot be saved is stopped again, a
 *   delete that cannot be saved is not made (the state file is written
 *   without the push first). A push keeps an on-demand input running
 *   like a viewer does: creating one starts the source, and deleting the
 *   last output arms the grace timer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "http_internal.h"
#include "push.h"
#include "steward/alloc.h"

static void push_json(struct evbuffer *b, relay_push *p)
{
    char *text = relay_push_json(p);
    if (text != NULL)
        evbuffer_add(b, text, strlen(text));
    else
        evbuffer_add_printf(b, "{\"id\":%llu,\"type\":\"push\"}",
                            (unsigned long long)relay_push_id(p));
    stw_free(text);
}

void relay_http__push_list_json(struct evbuffer *b, http_input *hi, bool first)
{
    for (unsigned i = 0; i < hi->in->npush; i++) {
        if (!first || i > 0)
            evbuffer_add(b, ",", 1);
        push_json(b, hi->in->push[i]);
    }
}

void relay_http__handle_create_push(relay_http *srv, struct evhttp_request *req, http_input *hi)
{
    json_t *body = relay_http__read_body(srv, req);
    if (body == NULL)
        return;
    char err[300] = "";
    int code = 0;
    const char *key;
    json_t *val;
    json_t *type = json_object_get(body, "type"), *url = json_object_get(body, "url");
    if (!json_is_object(body)) {
        code = 400, snprintf(err, sizeof(err), "the body must be a JSON object");
    } else if (!json_is_string(type) || !json_is_string(url)) {
        code = 422, snprintf(err, sizeof(err), "type and url are required strings");
    } else if (strcmp(json_string_value(type), "push") != 0) {
        code = 422,
        snprintf(err, sizeof(err), "type must be \"push\" (viewers come with GET /stream/{input})");
    } else if (hi->in->ts == NULL) {
        code = 422, snprintf(err, sizeof(err), "push outputs need an ffmpeg input");
    } else if (hi->in->npush >= RELAY_PUSH_MAX) {
        code = 507, snprintf(err, sizeof(err), "too many push outputs (the limit is %d per input)",
                             RELAY_PUSH_MAX);
    } else {
        json_object_foreach(body, key, val)
        {
            if (strcmp(key, "type") != 0 && strcmp(key, "url") != 0) {
                code = 422, snprintf(err, sizeof(err), "unknown field \"%.40s\"", key);
                break;
            }
        }
        if (code == 0 && relay_push_check_url(json_string_value(url), err, sizeof(err)) != 0)
            code = 422;
    }
    if (code != 0) {
        json_decref(body);
        relay_http__reply_error(req, code, err);
        return;
    }
    relay_input *in = hi->in;
    uint64_t id = ++srv->next_output_id;
    relay_push *p = NULL;
    int rc = relay_push_start(in, id, json_string_value(url), &p);
    json_decref(body);
    if (rc != 0) {
        snprintf(err, sizeof(err), "cannot start the push: %s", stw_strerror(rc));
        relay_http__reply_error(req, rc == -ENOMEM ? 503 : 500, err);
        return;
    }
    in->push[in->npush++] = p;
    /* Saved before it is acknowledged. */
    rc = relay_http__save_state(srv, NULL, NULL);
    if (rc != 0) {
        in->npush--;
        relay_push_stop(&p, stw_deadline_in_ms(DELETE_DEADLINE_MS));
        relay_http__reply_unsaved(req, rc);
        return;
    }
    rc = relay_http__input_ensure_running(hi);
    if (rc != 0)
        relay_log(RELAY_LOG_ERROR, "push", in->name, "cannot start its source for a push: %s",
                  stw_strerror(rc));
    relay_http__sse_output_event(srv, "output-created", in->name, id, NULL);
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    push_json(b, p);
    evbuffer_add(b, "\n", 1);
    char loc[RELAY_NAME_MAX + 48];
    snprintf(loc, sizeof(loc), "/api/inputs/%s/outputs/%llu", in->name, (unsigned long long)id);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    relay_http__reply_json(req, 201, "Created", b);
}

bool relay_http__route_push(relay_http *srv, struct evhttp_request *req, http_input *hi,
                            uint64_t id, enum evhttp_cmd_type cmd)
{
    relay_input *in = hi->in;
    unsigned i = 0;
    while (i < in->npush && relay_push_id(in->push[i]) != id)
        i++;
    if (i == in->npush)
        return false;
    relay_push *p = in->push[i];
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD && cmd != EVHTTP_REQ_DELETE) {
        relay_http__reply_405(req, "GET, HEAD, DELETE");
        return true;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return true;
    }
    if (cmd != EVHTTP_REQ_DELETE) {
        push_json(b, p);
        evbuffer_add(b, "\n", 1);
        relay_http__reply_json(req, 200, "OK", b);
        return true;
    }
    /* Saved without it first: a delete that cannot be saved is not made. */
    memmove(&in->push[i], &in->push[i + 1], (in->npush - i - 1) * sizeof(p));
    in->npush--;
    int rc = relay_http__save_state(srv, NULL, NULL);
    if (rc != 0) {
        memmove(&in->push[i + 1], &in->push[i], (in->npush - i) * sizeof(p));
        in->push[i] = p;
        in->npush++;
        evbuffer_free(b);
        relay_http__reply_unsaved(req, rc);
        return true;
    }
    relay_push_stop(&p, stw_deadline_in_ms(DELETE_DEADLINE_MS));
    relay_http__sse_output_event(srv, "output-deleted", in->name, id, "deleted");
    relay_http__viewers_changed(hi);
    evbuffer_add_printf(b, "{\"deleted\":%llu,\"input\":", (unsigned long long)id);
    relay_http__json_str(b, in->name);
    evbuffer_add_printf(b, ",\"outputs\":%u}\n", hi->nviewers + in->npush);
    relay_http__reply_json(req, 200, "OK", b);
    return true;
}
