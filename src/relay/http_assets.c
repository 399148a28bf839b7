/*
 * src/relay/http_assets.c — the web UI's files (GET / and /ui/...), served
 * from the table web/embed.py compiles into the binary (web_assets.h).
 *
 * Ownership
 *   The bytes are static: replies reference them and never copy or free.
 */
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "http_internal.h"

/* The web UI: GET / and /ui/{app.js,style.css,uplot.js,uplot.css}, from
 * the table web/embed.py compiles into the binary. The bytes are static,
 * so the reply references them instead of copying. no-cache (not no-store)
 * lets a browser keep them but revalidate, so a rebuilt binary's UI is seen
 * at the next load. */
const relay_web_asset *relay_http__find_asset(const char *path)
{
    for (size_t i = 0; i < relay_web_nassets; i++)
        if (strcmp(relay_web_assets[i].path, path) == 0)
            return &relay_web_assets[i];
    return NULL;
}

void relay_http__handle_asset(struct evhttp_request *req, const relay_web_asset *a)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
        return;
    }
    evbuffer_add_reference(b, a->bytes, a->len, NULL, NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", a->type);
    evhttp_add_header(h, "Cache-Control", "no-cache");
    relay_http__send(req, 200, "OK", b);
    evbuffer_free(b);
}
