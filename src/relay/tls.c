/*
 * src/relay/tls.c — the relay's TLS context and per-connection
 * bufferevents (tls.h has the model).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

/* "@what: the first OpenSSL error" into @err; -EINVAL. */
static int tls_fail(char *err, size_t errlen, const char *what, const char *path)
{
    char reason[256];
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    else
        snprintf(reason, sizeof(reason), "%s", strerror(errno));
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, path, reason);
    return -EINVAL;
}

int relay_tls_new(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return -EINVAL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation only lets a client make the server work more. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_sess_set_cache_size(ctx, 1024);
    int rc = 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rc = tls_fail(err, errlen, "certificate", cert);
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        rc = tls_fail(err, errlen, "key", key);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = tls_fail(err, errlen, "key does not match the certificate:", key);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

void relay_tls_free(SSL_CTX **ctx)
{
    if (ctx == NULL || *ctx == NULL)
        return;
    SSL_CTX_free(*ctx);
    *ctx = NULL;
}

struct bufferevent *relay_tls_bev(SSL_CTX *ctx, struct event_base *base)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    /* Most clients close without close_notify; that is an end, not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
