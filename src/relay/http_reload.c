/*
 * src/relay/http_reload.c — SIGHUP: read the config file again and apply
 * it on the loop, without dropping what did not change.
 *
 * Model
 *   The whole new configuration is read and checked first (the file, then
 *   the command line over it, exactly as at start); a file with an error
 *   is refused with the reason logged, and nothing changes. Then:
 *     - declared inputs: one whose spec is unchanged keeps running, with
 *       its viewers and push outputs; one gone from the file is deleted
 *       (its viewers' streams end); a changed one is deleted and created
 *       again; a new one is created. A new declared input takes the place
 *       of an API input of the same name, as at start ("the file wins"),
 *       and the state file is saved without it.
 *     - users replace the current ones (http_auth.c); going from no users
 *       to some, or back, changes who may reach the relay at all and
 *       needs a restart: refused.
 *     - limits apply to what comes next (new connections, requests,
 *       viewers, inputs); what is open keeps what it was given.
 *     - the listen address, TLS files and the state file path need a
 *       restart: a change is logged and the running values stay.
 *   Limits are checked before anything is applied: if the inputs of the
 *   new file would pass --max-inputs or --max-input-memory, the file is
 *   refused.
 *
 *   systemd hears RELOADING=1, then READY=1 with the status line.
 *
 * Ownership
 *   The re-read file is in a heap copy freed before the function returns;
 *   its users and declared inputs are copied into the relay's config
 *   storage (relay_main's), which srv->cfg.file points to.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http_internal.h"
#include "log.h"
#include "push.h"
#include "service.h"
#include "steward/alloc.h"

/* True if @in runs what @sp asks: same kind, source, options and push URLs. */
static bool same_spec(const relay_input *in, const relay_spec *sp)
{
    if (strcmp(in->kind, sp->kind) != 0 || strcmp(in->url, sp->url) != 0 ||
        in->on_demand != sp->on_demand || in->npush != sp->npush)
        return false;
    if (strcmp(in->kind, "test") == 0 && (in->width != sp->width || in->height != sp->height ||
                                          in->fps != sp->fps || in->quality != sp->quality))
        return false;
    if (strcmp(in->kind, "ffmpeg") == 0 &&
        (in->ff.rtsp_udp != sp->ff.rtsp_udp || in->ff.loop != sp->ff.loop ||
         in->ff.timeout_s != sp->ff.timeout_s))
        return false;
    for (unsigned i = 0; i < in->npush; i++)
        if (strcmp(relay_push_url(in->push[i]), sp->push[i].url) != 0)
            return false;
    return true;
}

static const relay_spec *declared(const relay_file *f, const char *name)
{
    for (unsigned i = 0; f != NULL && i < f->ninputs; i++)
        if (strcmp(f->inputs[i].name, name) == 0)
            return &f->inputs[i];
    return NULL;
}

/* Delete srv->inputs[@idx] as DELETE /api/inputs/NAME does: pushes stop,
 * viewers' streams end, the input is freed. */
static void input_remove(relay_http *srv, unsigned idx, const char *why)
{
    http_input *hi = srv->inputs[idx];
    while (hi->in->npush > 0) {
        relay_push *p = hi->in->push[--hi->in->npush];
        relay_http__sse_output_event(srv, "output-deleted", hi->in->name, relay_push_id(p), why);
        relay_push_stop(&p, stw_deadline_in_ms(DELETE_DEADLINE_MS));
    }
    while (hi->viewers != NULL)
        relay_http__viewer_detach(hi->viewers, why);
    memmove(&srv->inputs[idx], &srv->inputs[idx + 1], (srv->ninputs - idx - 1) * sizeof(hi));
    srv->ninputs--;
    relay_input *in = hi->in;
    char name[RELAY_NAME_MAX];
    snprintf(name, sizeof(name), "%s", in->name);
    relay_http__input_unwatch(hi);
    stw_free(hi);
    relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
    struct evbuffer *b = evbuffer_new();
    if (b != NULL) {
        evbuffer_add_printf(b, "{\"name\":");
        relay_http__json_str(b, name);
        evbuffer_add_printf(b, "}");
        relay_http__sse_broadcast(srv, "input-deleted", b);
        evbuffer_free(b);
    }
}

/* Create and start a declared input for @spec (copied; its push ids are
 * given here). Returns 0 or a negative errno (nothing is left then); a
 * source that cannot start leaves the input in state "error", as at start. */
static int input_add(relay_http *srv, const relay_spec *spec)
{
    relay_spec sp = *spec;
    sp.created_ms = 0;
    relay_input *in = NULL;
    int rc = relay_input_new(srv->sources, &sp, &in);
    if (rc != 0)
        return rc;
    http_input *hi = stw_calloc(1, sizeof(*hi));
    if (hi == NULL || (hi->in = in, hi->srv = srv, relay_http__input_watch(hi)) != 0) {
        if (hi != NULL)
            relay_http__input_unwatch(hi);
        stw_free(hi);
        relay_input_free(&in, stw_deadline_in_ms(DELETE_DEADLINE_MS));
        return -ENOMEM;
    }
    for (unsigned i = 0; i < sp.npush; i++)
        sp.push[i].id = ++srv->next_output_id;
    relay_input_start_pushes(in, &sp);
    if (!in->on_demand || in->npush > 0) {
        rc = relay_input_start(in, &srv->cfg);
        if (rc != 0)
            relay_log(RELAY_LOG_ERROR, "reload", in->name, "cannot start its source: %s",
                      stw_strerror(rc));
    }
    srv->inputs[srv->ninputs++] = hi;
    struct evbuffer *b = evbuffer_new();
    if (b != NULL) {
        relay_http__input_json(b, hi);
        relay_http__sse_broadcast(srv, "input-created", b);
        evbuffer_free(b);
    }
    return 0;
}

/* What a reload would do with the inputs: refuse (reason in @err) if the
 * result passes the limits of @ncfg. */
static bool inputs_fit(relay_http *srv, const relay_config *ncfg, const relay_file *nf, char *err,
                       size_t errlen)
{
    unsigned count = 0;
    size_t claim = 0;
    for (unsigned i = 0; i < srv->ninputs; i++) {
        relay_input *in = srv->inputs[i]->in;
        /* Kept: API inputs the file does not take over. */
        if (!in->declared && declared(nf, in->name) == NULL) {
            count++;
            claim += in->claim;
        }
    }
    for (unsigned i = 0; i < nf->ninputs; i++) {
        count++;
        claim += relay_spec_claim(&nf->inputs[i]);
    }
    if (count > ncfg->max_inputs) {
        snprintf(err, errlen, "%u inputs would exist, more than max_inputs %u", count,
                 ncfg->max_inputs);
        return false;
    }
    if (claim > ncfg->max_input_bytes) {
        snprintf(err, errlen, "the inputs would claim %zu MiB, over max_input_memory (%zu MiB)",
                 claim >> 20, ncfg->max_input_bytes >> 20);
        return false;
    }
    return true;
}

/* Limits and defaults of @n into srv->cfg; what needs a restart is logged
 * and kept. */
static void apply_limits(relay_http *srv, const relay_config *n)
{
    relay_config *c = &srv->cfg;
    const relay_file *cf = c->file;
    if (strcmp(c->host, n->host) != 0 || c->port != n->port)
        relay_log(RELAY_LOG_WARNING, "reload", NULL,
                  "listen %s:%d -> %s:%d needs a restart; still serving the old address", c->host,
                  c->port, n->host, n->port);
    if (strcmp(c->state_path, n->state_path) != 0)
        relay_log(RELAY_LOG_WARNING, "reload", NULL,
                  "the state file path changed: needs a restart; still using %s", c->state_path);
    if (n->file != NULL && cf != NULL &&
        (strcmp(cf->tls_cert, n->file->tls_cert) != 0 ||
         strcmp(cf->tls_key, n->file->tls_key) != 0))
        relay_log(RELAY_LOG_WARNING, "reload", NULL, "TLS files changed: needs a restart");
    if (strcmp(c->rec_dir, n->rec_dir) != 0 || c->rec_max_bytes != n->rec_max_bytes ||
        c->rec_max_age_s != n->rec_max_age_s || c->rec_min_free_bytes != n->rec_min_free_bytes ||
        c->rec_min_free_pct != n->rec_min_free_pct)
        relay_log(RELAY_LOG_WARNING, "reload", NULL,
                  "the recordings directory or its global limits changed: needs a restart");
    relay_config keep = *c;
    *c = *n;
    /* The recordings service runs with what it was started with. */
    memcpy(c->rec_dir, keep.rec_dir, sizeof(c->rec_dir));
    c->rec_max_bytes = keep.rec_max_bytes;
    c->rec_max_age_s = keep.rec_max_age_s;
    c->rec_min_free_bytes = keep.rec_min_free_bytes;
    c->rec_min_free_pct = keep.rec_min_free_pct;
    c->rec = keep.rec;
    memcpy(c->host, keep.host, sizeof(c->host));
    c->port = keep.port;
    memcpy(c->state_path, keep.state_path, sizeof(c->state_path));
    memcpy(c->instance, keep.instance, sizeof(c->instance));
    c->file = keep.file;
    c->log = keep.log;
    c->insecure_no_auth = keep.insecure_no_auth;
    c->inflight = n->inflight >= 1 && n->inflight <= INFLIGHT_MAX ? n->inflight : keep.inflight;
    evhttp_set_max_headers_size(srv->http, c->max_header_bytes);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)c->max_body_bytes);
    evhttp_set_timeout(srv->http, c->timeout_s);
    srv->read_cap = (size_t)c->max_header_bytes * 2 + (size_t)c->max_body_bytes;
}

void relay_http__reload(relay_http *srv)
{
    relay_service_notify("RELOADING=1\nSTATUS=reloading the config file");
    relay_log(RELAY_LOG_NOTICE, "reload", NULL, "SIGHUP: reading the config file again");
    char err[1024];
    relay_config ncfg;
    relay_file *nf = stw_calloc(1, sizeof(*nf));
    int rc = nf != NULL ? relay_config_reread(&ncfg, nf, err, sizeof(err)) : -ENOMEM;
    if (nf == NULL)
        snprintf(err, sizeof(err), "out of memory");
    const relay_file *cf = srv->cfg.file;
    bool had_users = cf != NULL && cf->nusers > 0;
    if (rc == 0 && had_users != (nf->nusers > 0)) {
        snprintf(err, sizeof(err), "%s users needs a restart (it changes who may connect at all)",
                 had_users ? "removing all" : "adding");
        rc = -EINVAL;
    }
    if (rc == 0 && !inputs_fit(srv, &ncfg, nf, err, sizeof(err)))
        rc = -EINVAL;
    if (rc != 0) {
        srv->reload_failures++;
        relay_log(RELAY_LOG_ERROR, "reload", NULL, "refused, the running config stays: %s", err);
        stw_free(nf);
        relay_service_notify("READY=1");
        relay_http__service_status(srv, true);
        return;
    }
    apply_limits(srv, &ncfg);
    relay_http__auth_reload(srv, nf);

    unsigned removed = 0, added = 0, changed = 0, kept = 0, failed = 0;
    bool save = false;
    /* Gone or changed declared inputs, and API inputs the file takes over. */
    for (unsigned i = 0; i < srv->ninputs;) {
        relay_input *in = srv->inputs[i]->in;
        const relay_spec *sp = declared(nf, in->name);
        if (in->declared && sp != NULL && same_spec(in, sp)) {
            kept++;
            i++;
            continue;
        }
        if (!in->declared && sp == NULL) {
            i++;
            continue;
        }
        if (!in->declared) {
            relay_log(RELAY_LOG_WARNING, "reload", in->name,
                      "now declared by the config file: replaces the input made through the API");
            save = true;
        } else if (sp != NULL) {
            changed++;
        } else {
            removed++;
        }
        relay_log(RELAY_LOG_INFO, "reload", in->name, "%s",
                  sp == NULL ? "removed from the config file: deleted" : "changed: restarting it");
        input_remove(srv, i, sp == NULL ? "input removed from the config" : "input changed");
    }
    for (unsigned i = 0; i < nf->ninputs; i++) {
        const relay_spec *sp = &nf->inputs[i];
        if (relay_http__find_input(srv, sp->name, strlen(sp->name)) != NULL)
            continue;
        rc = input_add(srv, sp);
        if (rc != 0) {
            failed++;
            relay_log(RELAY_LOG_ERROR, "reload", sp->name, "cannot create the input: %s",
                      stw_strerror(rc));
        } else {
            added++;
        }
    }
    /* The declared inputs as running now, for the next reload and
     * --print-config-like views. */
    relay_file *cur = (relay_file *)srv->cfg.file;
    if (cur != NULL) {
        memcpy(cur->inputs, nf->inputs, sizeof(cur->inputs));
        cur->ninputs = nf->ninputs;
    }
    if (save)
        relay_http__save_state(srv, NULL, NULL);
    added -= added >= changed ? changed : added;
    srv->reloads++;
    relay_log(RELAY_LOG_NOTICE, "reload", NULL,
              "applied: %u input(s) kept, %u changed, %u added, %u removed%s; %u user(s)", kept,
              changed, added, removed, failed > 0 ? " (some failed, see above)" : "", nf->nusers);
    stw_free(nf);
    relay_service_notify("READY=1");
    relay_http__service_status(srv, true);
}
