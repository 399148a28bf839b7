/*
 * src/relay/http_auth.c — authentication and permissions of requests (the
 * model is in auth.h; the users come from the config file, config.h).
 *
 * Model
 *   relay_http__authorize() runs after the request policy (http_guard.c)
 *   and before routing. It maps the path and method to the permission they
 *   need, finds the user of the Authorization header (Basic or Bearer) and
 *   answers 401, 403 or 429 itself, or lets the router go on.
 *
 *   A wrong credential is answered AUTH_FAIL_DELAY_MS later by a timer. If
 *   the client leaves meanwhile, libevent detaches the request from its
 *   connection (it is the handler's until answered) and frees the
 *   connection; the close callback frees the request then. At teardown
 *   evhttp_free() frees the requests with their connections: the close
 *   callback only drops the timer.
 *
 * Ownership
 *   relay_auth is owned by the relay_http (relay_http__auth_free at
 *   teardown, after evhttp_free). A pending answer is owned by the list and
 *   freed when sent or when its connection closes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "auth.h"
#include "config.h"
#include "http_internal.h"
#include "steward/alloc.h"

#define AUTH_CACHE 4        /* verified passwords remembered per user */
#define AUTH_FAIL_SLOTS 256 /* client addresses whose failures are counted */
#define AUTH_ANY 8          /* need: any user, whatever the permissions */

typedef struct auth_pending auth_pending;

struct auth_pending {
    auth_pending *prev, *next;
    relay_auth *a;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
};

typedef struct auth_fail {
    char addr[64]; /* "" when free */
    unsigned count;
    int64_t since_ns; /* first failure of the window */
} auth_fail;

struct relay_auth {
    relay_http *srv;
    const relay_file *file;
    unsigned char key[crypto_generichash_KEYBYTES]; /* of the verified-password digests */
    unsigned char cache[RELAY_USERS_MAX][AUTH_CACHE][crypto_generichash_BYTES];
    bool cached[RELAY_USERS_MAX][AUTH_CACHE];
    unsigned cache_next[RELAY_USERS_MAX];
    const char *decoy; /* a password hash checked for unknown users, or NULL */
    auth_fail fails[AUTH_FAIL_SLOTS];
    auth_pending *pending;
};

int relay_http__auth_setup(relay_http *srv)
{
    const relay_file *file = srv->cfg.file;
    if (file == NULL || file->nusers == 0)
        return 0;
    if (sodium_init() < 0)
        return -EIO;
    relay_auth *a = stw_calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    a->srv = srv;
    a->file = file;
    randombytes_buf(a->key, sizeof(a->key));
    for (unsigned i = 0; i < file->nusers && a->decoy == NULL; i++)
        if (file->users[i].password_hash[0] != '\0')
            a->decoy = file->users[i].password_hash;
    srv->auth = a;
    return 0;
}

static void pending_free(auth_pending *p)
{
    relay_auth *a = p->a;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        a->pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    event_free(p->timer);
    stw_free(p);
}

void relay_http__auth_free(relay_http *srv)
{
    relay_auth *a = srv->auth;
    if (a == NULL)
        return;
    /* evhttp_free() closed every connection before: nothing is left but,
     * defensively, timers whose requests libevent already freed. */
    while (a->pending != NULL)
        pending_free(a->pending);
    sodium_memzero(a, sizeof(*a));
    stw_free(a);
    srv->auth = NULL;
}

/* The permission @path with @cmd needs: 0 for none. */
static unsigned need_of(const char *path, enum evhttp_cmd_type cmd)
{
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (strcmp(path, "/healthz") == 0)
        return 0;
    if (strcmp(path, "/api/inputs") == 0 || strncmp(path, "/api/inputs/", 12) == 0)
        return get ? RELAY_PERM_READ : RELAY_PERM_PUBLISH;
    if (strncmp(path, "/stream/", 8) == 0 || strncmp(path, "/snapshot/", 10) == 0 ||
        strcmp(path, "/api/events") == 0 || strcmp(path, "/metrics") == 0)
        return RELAY_PERM_READ;
    if (strcmp(path, "/system-resources") == 0 || strcmp(path, "/cleanup-resources") == 0 ||
        strncmp(path, "/debug/", 7) == 0)
        return RELAY_PERM_ADMIN;
    /* The web UI's files and unknown paths: any user (a 404 says nothing
     * to someone who is not one). */
    return AUTH_ANY;
}

static const char *perm_name(unsigned need)
{
    return need == RELAY_PERM_READ ? "read" : need == RELAY_PERM_PUBLISH ? "publish" : "admin";
}

static auth_fail *fail_slot(relay_auth *a, const char *addr, bool make)
{
    auth_fail *victim = NULL; /* a free slot, else the oldest */
    for (unsigned i = 0; i < AUTH_FAIL_SLOTS; i++) {
        auth_fail *f = &a->fails[i];
        if (f->addr[0] != '\0' && strcmp(f->addr, addr) == 0)
            return f;
        if (victim == NULL ||
            (victim->addr[0] != '\0' && (f->addr[0] == '\0' || f->since_ns < victim->since_ns)))
            victim = f;
    }
    if (!make)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
    return victim;
}

/* Seconds @addr must still wait, 0 if it is not locked out. */
static int locked_for(relay_auth *a, const char *addr)
{
    auth_fail *f = fail_slot(a, addr, false);
    if (f == NULL || f->count < AUTH_FAIL_MAX)
        return 0;
    int64_t left = f->since_ns + (int64_t)AUTH_FAIL_WINDOW_S * 1000000000LL - stw_now_ns();
    return left > 0 ? (int)(left / 1000000000LL) + 1 : 0;
}

static void count_failure(relay_auth *a, const char *addr)
{
    auth_fail *f = fail_slot(a, addr, true);
    int64_t now = stw_now_ns();
    if (f->count == 0 || now - f->since_ns > (int64_t)AUTH_FAIL_WINDOW_S * 1000000000LL) {
        f->count = 0;
        f->since_ns = now;
    }
    f->count++;
}

static void reply_401(struct evhttp_request *req, const char *msg)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Basic realm=\"steward\"");
    relay_http__reply_error(req, 401, msg);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    auth_pending *p = arg;
    struct evhttp_request *req = p->req;
    evhttp_connection_set_closecb(p->conn, NULL, NULL);
    pending_free(p);
    reply_401(req, "wrong user name, password or token");
}

static void on_pending_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    auth_pending *p = arg;
    /* A client that left: libevent detached the request, which is ours to
     * free. At teardown it is still attached and libevent frees it. */
    if (evhttp_request_get_connection(p->req) == NULL)
        evhttp_request_free(p->req);
    pending_free(p);
}

/* Answer 401 after the failure delay. */
static void delay_401(relay_auth *a, struct evhttp_request *req)
{
    auth_pending *p = stw_calloc(1, sizeof(*p));
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (p != NULL && conn != NULL)
        p->timer = evtimer_new(a->srv->base, on_delay, p);
    if (p == NULL || conn == NULL || p->timer == NULL) {
        stw_free(p);
        reply_401(req, "wrong user name, password or token");
        return;
    }
    p->a = a;
    p->req = req;
    p->conn = conn;
    p->next = a->pending;
    if (a->pending != NULL)
        a->pending->prev = p;
    a->pending = p;
    evhttp_connection_set_closecb(conn, on_pending_close, p);
    struct timeval tv = {.tv_usec = AUTH_FAIL_DELAY_MS * 1000};
    evtimer_add(p->timer, &tv);
}

/* The digest that stands for @user's @pw in the cache. */
static void pw_digest(relay_auth *a, const relay_user *u, const char *pw, size_t len,
                      unsigned char out[crypto_generichash_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, a->key, sizeof(a->key), crypto_generichash_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)u->name, strlen(u->name) + 1);
    crypto_generichash_update(&st, (const unsigned char *)pw, len);
    crypto_generichash_final(&st, out, crypto_generichash_BYTES);
}

/* The user whose Basic credentials are @cred ("user:password"), or NULL. */
static const relay_user *basic_user(relay_auth *a, char *cred, size_t len)
{
    char *colon = memchr(cred, ':', len);
    if (colon == NULL)
        return NULL;
    *colon = '\0';
    const char *pw = colon + 1;
    size_t pwlen = len - (size_t)(colon + 1 - cred);
    const relay_user *u = NULL;
    unsigned ui = 0;
    for (unsigned i = 0; i < a->file->nusers && u == NULL; i++)
        if (strcmp(a->file->users[i].name, cred) == 0) {
            u = &a->file->users[i];
            ui = i;
        }
    if (u == NULL || u->password_hash[0] == '\0') {
        /* The same work as a known user, so that timing does not tell
         * which names exist. */
        if (a->decoy != NULL)
            (void)!crypto_pwhash_str_verify(a->decoy, pw, pwlen);
        return NULL;
    }
    unsigned char d[crypto_generichash_BYTES];
    pw_digest(a, u, pw, pwlen, d);
    bool hit = false;
    for (unsigned i = 0; i < AUTH_CACHE; i++)
        hit |= a->cached[ui][i] & (sodium_memcmp(d, a->cache[ui][i], sizeof(d)) == 0);
    if (hit)
        return u;
    if (crypto_pwhash_str_verify(u->password_hash, pw, pwlen) != 0)
        return NULL;
    unsigned slot = a->cache_next[ui]++ % AUTH_CACHE;
    memcpy(a->cache[ui][slot], d, sizeof(d));
    a->cached[ui][slot] = true;
    return u;
}

/* The user holding bearer @token, or NULL. Every hash is compared. */
static const relay_user *token_user(relay_auth *a, const char *token)
{
    unsigned char d[RELAY_TOKEN_HASH];
    crypto_generichash(d, sizeof(d), (const unsigned char *)token, strlen(token), NULL, 0);
    const relay_user *found = NULL;
    for (unsigned i = 0; i < a->file->nusers; i++) {
        const relay_user *u = &a->file->users[i];
        for (unsigned t = 0; t < u->ntokens; t++)
            if (sodium_memcmp(d, u->tokens[t], sizeof(d)) == 0 && found == NULL)
                found = u;
    }
    return found;
}

bool relay_http__authorize(relay_http *srv, struct evhttp_request *req, const char *path,
                           enum evhttp_cmd_type cmd)
{
    relay_auth *a = srv->auth;
    unsigned need = need_of(path, cmd);
    if (a == NULL || need == 0)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL) {
        reply_401(req, "authentication required");
        return false;
    }
    char *peer = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &peer, &port);
    const char *addr = peer != NULL ? peer : "";
    int wait = locked_for(a, addr);
    if (wait > 0) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%d", wait);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", secs);
        relay_http__reply_error(req, 429, "too many failed logins from this address");
        return false;
    }
    const relay_user *u = NULL;
    if (strncasecmp(h, "Basic ", 6) == 0) {
        char cred[768];
        size_t len = 0;
        const char *b64 = h + 6 + strspn(h + 6, " ");
        if (sodium_base642bin((unsigned char *)cred, sizeof(cred) - 1, b64, strlen(b64), NULL, &len,
                              NULL, sodium_base64_VARIANT_ORIGINAL) == 0) {
            cred[len] = '\0';
            u = basic_user(a, cred, len);
        }
        sodium_memzero(cred, sizeof(cred));
    } else if (strncasecmp(h, "Bearer ", 7) == 0) {
        u = token_user(a, h + 7 + strspn(h + 7, " "));
    }
    if (u == NULL) {
        count_failure(a, addr);
        delay_401(a, req);
        return false;
    }
    auth_fail *f = fail_slot(a, addr, false);
    if (f != NULL)
        memset(f, 0, sizeof(*f));
    if (need == AUTH_ANY || (u->perms & (need | RELAY_PERM_ADMIN)) != 0)
        return true;
    char msg[160];
    snprintf(msg, sizeof(msg), "user %s lacks the %s permission", u->name, perm_name(need));
    relay_http__reply_error(req, 403, msg);
    return false;
}
