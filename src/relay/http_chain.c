/*
 * src/relay/http_chain.c — the loop's side of chain.h: what each viewer's
 * request said in X-Steward-Relay, merged per input as viewers come and go.
 */
#include <string.h>

#include "chain.h"
#include "http_internal.h"

void relay_http__via_capture(viewer *v, struct evhttp_request *req)
{
    v->via[0] = '\0';
    relay_via_merge(v->via,
                    evhttp_find_header(evhttp_request_get_input_headers(req), RELAY_LOOP_HEADER));
}

void relay_http__via_update(http_input *hi)
{
    char acc[RELAY_VIA_MAX] = "";
    for (const viewer *v = hi->viewers; v != NULL; v = v->next)
        relay_via_merge(acc, v->via);
    relay_input_set_via(hi->in, acc);
}
