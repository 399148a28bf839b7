/*
 * src/relay/http_guard.c — who may ask the relay for what: the request
 * policy applied before routing.
 *
 * Model
 *   The relay has no users or passwords (yet); what it can do is make sure
 *   a request really comes from a client that means to talk to it:
 *
 *   Host   A web page on another name whose DNS is pointed at 127.0.0.1
 *          (DNS rebinding) reaches the relay as same-origin: its requests
 *          carry that name in Host. Only IP literals, "localhost" and the
 *          --allow-host names are served (403 otherwise); a request
 *          without Host (HTTP/1.0) is not from a browser and is served.
 *   Origin A browser says where a request comes from. A mutating request
 *          (POST, PUT, PATCH, DELETE) from another origin is refused (403)
 *          unless that origin is in --cors-origin, and so is one that says
 *          Sec-Fetch-Site: cross-site.
 *   Content-Type
 *          A plain HTML form can post text/plain or url-encoded bodies to
 *          any site without a preflight; JSON cannot be sent cross-site
 *          without one. A mutating request with a body, or with a
 *          Content-Type, must say application/json (415 otherwise).
 *   CORS   A preflight (OPTIONS with Origin) from an allowed origin gets
 *          the methods and headers the API takes; any other gets 403. An
 *          allowed origin's requests get Access-Control-Allow-Origin.
 *
 * Ownership
 *   Nothing is kept: every check reads the request's headers (borrowed).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"

#define CORS_METHODS "GET, HEAD, POST, PATCH, DELETE"

static bool origin_listed(const relay_config *cfg, const char *origin)
{
    for (unsigned i = 0; i < cfg->ncors_origin; i++)
        if (strcasecmp(cfg->cors_origin[i], origin) == 0)
            return true;
    return false;
}

bool relay_http__guard(relay_http *srv, struct evhttp_request *req, enum evhttp_cmd_type cmd)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *host = evhttp_find_header(in, "Host");
    if (host != NULL && !relay_http__host_allowed(&srv->cfg, host)) {
        srv->rejected_host++;
        relay_http__reply_error(req, 403, "Host not allowed (see --allow-host)");
        return false;
    }
    const char *origin = evhttp_find_header(in, "Origin");
    bool listed = origin != NULL && origin_listed(&srv->cfg, origin);
    if (listed) {
        evhttp_add_header(out, "Access-Control-Allow-Origin", origin);
        evhttp_add_header(out, "Vary", "Origin");
    }
    if (cmd == EVHTTP_REQ_OPTIONS && origin != NULL) {
        if (!listed) {
            srv->rejected_origin++;
            relay_http__reply_error(req, 403, "origin not allowed (see --cors-origin)");
            return false;
        }
        evhttp_add_header(out, "Access-Control-Allow-Methods", CORS_METHODS);
        /* Authorization: a listed origin may send a bearer token. */
        evhttp_add_header(out, "Access-Control-Allow-Headers", "Content-Type, Authorization");
        evhttp_add_header(out, "Access-Control-Max-Age", "600");
        evhttp_add_header(out, "Cache-Control", "no-store");
        evhttp_send_reply(req, 204, "No Content", NULL);
        return false;
    }
    bool mutating = cmd == EVHTTP_REQ_POST || cmd == EVHTTP_REQ_PUT || cmd == EVHTTP_REQ_PATCH ||
                    cmd == EVHTTP_REQ_DELETE;
    if (!mutating)
        return true;
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    if (!listed && ((origin != NULL && !relay_http__origin_is_us(origin, host, srv->tls != NULL)) ||
                    (site != NULL && strcasecmp(site, "cross-site") == 0))) {
        srv->rejected_origin++;
        relay_http__reply_error(req, 403, "cross-site request refused (see --cors-origin)");
        return false;
    }
    const char *type = evhttp_find_header(in, "Content-Type");
    size_t body = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if ((type != NULL && !relay_http__is_json_type(type)) || (type == NULL && body > 0)) {
        relay_http__reply_error(req, 415, "Content-Type must be application/json");
        return false;
    }
    return true;
}
