/*
 * src/relay/tls.h — HTTPS for the relay's listener, private to the relay.
 *
 * Model
 *   With `tls: {cert, key}` in the config file the listener speaks TLS
 *   only. One OpenSSL context is made from the PEM files before the loop
 *   starts (a bad file stops the relay with the reason); each accepted
 *   connection gets an OpenSSL bufferevent from evhttp's bufferevent
 *   factory (http_conn.c), in the accepting state, so evhttp reads and
 *   writes plain HTTP through it. TLS 1.2 at least, no renegotiation.
 *
 *   OpenSSL allocates with its own malloc, not through the ledger: its
 *   process-wide state is shared with libcurl (https cameras) and is only
 *   released at exit, after the relay's verdict. `steward check` still sees
 *   every byte of it.
 *
 * Ownership
 *   The context belongs to the relay_http (freed by its scope's cleanup).
 *   A connection's SSL object belongs to its bufferevent
 *   (BEV_OPT_CLOSE_ON_FREE: freed with it, and the socket closed).
 */
#ifndef STW_RELAY_TLS_H
#define STW_RELAY_TLS_H

#include <stddef.h>

#include <event2/bufferevent.h>

struct ssl_ctx_st;

/* A server context for the PEM certificate chain @cert and key @key, in
 * *@out (transfer full). Returns 0, or -EINVAL with the reason in @err. */
int relay_tls_new(const char *cert, const char *key, struct ssl_ctx_st **out, char *err,
                  size_t errlen);

/* Free *@ctx (NULL accepted) and set it to NULL. */
void relay_tls_free(struct ssl_ctx_st **ctx);

/* A new accepting TLS bufferevent on @base without a socket yet (evhttp
 * sets it), or NULL. */
struct bufferevent *relay_tls_bev(struct ssl_ctx_st *ctx, struct event_base *base);

#endif
