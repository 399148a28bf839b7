/*
 * src/relay/http_auth.c — authentication and permissions of requests (the
 * model is in auth.h; the users come from the config file, config.h).
 *
 * Model
 *   relay_http__authorize() runs after the request policy (http_guard.c)
 *   and before routing. It maps the path and method to the permission they
 *   need, finds the user of the Authorization header (Basic or Bearer) and
 *   answers 401, 403, 429 or 503 itself, or lets the router go on.
 *
 *   Bearer tokens and passwords verified before (the digest cache) are
 *   checked on the loop: a hash and constant-time compares. A password not
 *   seen yet needs an argon2id run, which would stop the loop for a few
 *   hundred ms: it is queued (at most AUTH_QUEUE) for the "auth-verify"
 *   thread of the http scope, and the request waits. The thread posts the
 *   result through an eventfd; the loop then routes the request, or
 *   answers 401 AUTH_FAIL_DELAY_MS later from a timer.
 *
 *   A request waiting (for its check or its delayed 401) has its
 *   connection's close callback set. If the client leaves, libevent
 *   detaches the request from the connection (it is the handler's until
 *   answered) and frees the connection; the close callback frees the
 *   request then, and a check still queued for it only fills the cache. At
 *   teardown evhttp_free() frees the requests with their connections: the
 *   close callback only drops the entry.
 *
 * Threads
 *   The loop thread does everything but crypto_pwhash_str_verify(), which
 *   the verifier thread runs on a job it took from the queue. The queue
 *   (jobs' state, the user, the password copy, the result) is guarded by
 *   a->lock; the rest of relay_auth is the loop's.
 *
 * Ownership
 *   relay_auth is owned by the http scope (freed by its cleanup, after the
 *   loop and the verifier have returned); its libevent objects are freed
 *   by the loop at teardown, after evhttp_free(). A pending entry is owned
 *   by the list and freed when answered or when its connection closes.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "auth.h"
#include "config.h"
#include "http_internal.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define AUTH_CACHE 4        /* verified passwords remembered per user */
#define AUTH_FAIL_SLOTS 256 /* client addresses whose failures are counted */
#define AUTH_ANY 8          /* need: any user, whatever the permissions */
#define AUTH_QUEUE 8        /* password checks waiting for the verifier */
#define AUTH_PW_MAX RELAY_PASSWORD_MAX

typedef struct auth_pending auth_pending;
typedef struct auth_job auth_job;

enum { JOB_FREE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* A password check for the verifier thread. */
struct auth_job {
    int state;        /* JOB_*, under a->lock */
    int user;         /* index in the file's users, -1: unknown (the decoy is checked) */
    const char *hash; /* borrowed from the config */
    char pw[AUTH_PW_MAX];
    size_t pwlen;
    bool ok;
    auth_pending *p; /* the request waiting, NULL once it went away (loop only) */
};

/* A request waiting for its check (job != NULL) or its delayed 401. */
struct auth_pending {
    auth_pending *prev, *next;
    relay_auth *a;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    auth_job *job;
    unsigned need;
    enum evhttp_cmd_type cmd;
    char addr[64];
    char *path; /* decoded, for the router */
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
    pthread_mutex_t lock;
    auth_job jobs[AUTH_QUEUE];
    int job_fd;  /* eventfd: a job was queued (read by the verifier) */
    int done_fd; /* eventfd: a job is done (read by the loop) */
    struct event *done_ev;
};

static void drain(int fd)
{
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
}

static void poke(int fd)
{
    uint64_t one = 1;
    (void)!write(fd, &one, sizeof(one));
}

/* The verifier thread: runs queued checks until the scope is cancelled. */
static void verifier_main(stw_scope *scope, void *arg)
{
    relay_auth *a = arg;
    struct pollfd fds[2] = {{.fd = stw_scope_cancel_fd(scope), .events = POLLIN},
                            {.fd = a->job_fd, .events = POLLIN}};
    while (!stw_scope_cancelled(scope)) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        if (fds[1].revents & POLLIN)
            drain(a->job_fd);
        for (;;) {
            auth_job *j = NULL;
            pthread_mutex_lock(&a->lock);
            for (unsigned i = 0; i < AUTH_QUEUE && j == NULL; i++)
                if (a->jobs[i].state == JOB_QUEUED)
                    j = &a->jobs[i];
            if (j != NULL)
                j->state = JOB_RUNNING;
            pthread_mutex_unlock(&a->lock);
            if (j == NULL || stw_scope_cancelled(scope))
                break;
            /* The job is this thread's while it runs: no lock needed. */
            bool ok = j->hash != NULL && crypto_pwhash_str_verify(j->hash, j->pw, j->pwlen) == 0;
            pthread_mutex_lock(&a->lock);
            j->ok = ok && j->user >= 0;
            j->state = JOB_DONE;
            pthread_mutex_unlock(&a->lock);
            poke(a->done_fd);
        }
    }
}

static void auth_free(void *arg)
{
    relay_auth *a = arg;
    stw_fd_close(&a->job_fd);
    stw_fd_close(&a->done_fd);
    pthread_mutex_destroy(&a->lock);
    sodium_memzero(a, sizeof(*a));
    stw_free(a);
}

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
    pthread_mutex_init(&a->lock, NULL);
    randombytes_buf(a->key, sizeof(a->key));
    for (unsigned i = 0; i < file->nusers && a->decoy == NULL; i++)
        if (file->users[i].password_hash[0] != '\0')
            a->decoy = file->users[i].password_hash;
    a->job_fd =
        stw_fd_track(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), STW_KIND_FD, "eventfd:auth-jobs");
    a->done_fd =
        stw_fd_track(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), STW_KIND_FD, "eventfd:auth-done");
    int rc = a->job_fd < 0 ? a->job_fd : a->done_fd < 0 ? a->done_fd : 0;
    if (rc == 0)
        rc = stw_scope_defer(srv->scope, auth_free, a);
    if (rc != 0) {
        auth_free(a);
        return rc;
    }
    srv->auth = a;
    return stw_scope_spawn(srv->scope, "auth-verify", verifier_main, a);
}

static void on_done(evutil_socket_t fd, short what, void *arg);

int relay_http__auth_watch(relay_http *srv)
{
    relay_auth *a = srv->auth;
    if (a == NULL)
        return 0;
    a->done_ev = event_new(srv->base, a->done_fd, EV_READ | EV_PERSIST, on_done, a);
    if (a->done_ev == NULL || event_add(a->done_ev, NULL) != 0)
        return -ENOMEM;
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
    if (p->job != NULL)
        p->job->p = NULL; /* still checked: a success fills the cache */
    if (p->timer != NULL)
        event_free(p->timer);
    stw_free(p->path);
    stw_free(p);
}

void relay_http__auth_unwatch(relay_http *srv)
{
    relay_auth *a = srv->auth;
    if (a == NULL)
        return;
    /* evhttp_free() closed every connection before: nothing is left but,
     * defensively, entries whose requests libevent already freed. */
    while (a->pending != NULL)
        pending_free(a->pending);
    if (a->done_ev != NULL)
        event_free(a->done_ev);
    a->done_ev = NULL;
}

/* The permission @path with @cmd needs: 0 for none. */
static unsigned need_of(const char *path, enum evhttp_cmd_type cmd)
{
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (strcmp(path, "/healthz") == 0)
        return 0;
    if (strcmp(path, "/api/inputs") == 0 || strncmp(path, "/api/inputs/", 12) == 0)
        return get ? RELAY_PERM_READ : RELAY_PERM_PUBLISH;
    if (strcmp(path, "/api/recordings") == 0 || strncmp(path, "/api/recordings/", 16) == 0)
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
    a->srv->auth_failed++;
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

/* A waiting entry for @req, in the list with its close callback set; NULL
 * (nothing changed) without memory or connection. */
static auth_pending *pending_new(relay_auth *a, struct evhttp_request *req, const char *addr)
{
    auth_pending *p = stw_calloc(1, sizeof(*p));
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (p == NULL || conn == NULL) {
        stw_free(p);
        return NULL;
    }
    p->a = a;
    p->req = req;
    p->conn = conn;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->next = a->pending;
    if (a->pending != NULL)
        a->pending->prev = p;
    a->pending = p;
    evhttp_connection_set_closecb(conn, on_pending_close, p);
    return p;
}

/* Answer @req 401 after the failure delay; @p (may be NULL) is its entry. */
static void delay_401(relay_auth *a, struct evhttp_request *req, const char *addr, auth_pending *p)
{
    if (p == NULL)
        p = pending_new(a, req, addr);
    if (p != NULL && p->timer == NULL)
        p->timer = evtimer_new(a->srv->base, on_delay, p);
    if (p == NULL || p->timer == NULL) {
        if (p != NULL) {
            evhttp_connection_set_closecb(p->conn, NULL, NULL);
            pending_free(p);
        }
        reply_401(req, "wrong user name, password or token");
        return;
    }
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

/* Remember that @pw is @user's password. */
static void cache_put(relay_auth *a, unsigned user, const char *pw, size_t len)
{
    unsigned char d[crypto_generichash_BYTES];
    pw_digest(a, &a->file->users[user], pw, len, d);
    unsigned slot = a->cache_next[user]++ % AUTH_CACHE;
    memcpy(a->cache[user][slot], d, sizeof(d));
    a->cached[user][slot] = true;
}

/* Basic credentials @cred ("user:password", @len bytes). Returns the user
 * if the cache knows the password; else NULL with *@job set to a queued
 * check (NULL: the queue is full, or the credentials are malformed). */
static const relay_user *basic_user(relay_auth *a, char *cred, size_t len, auth_job **job,
                                    bool *full)
{
    *job = NULL;
    *full = false;
    char *colon = memchr(cred, ':', len);
    if (colon == NULL)
        return NULL;
    *colon = '\0';
    const char *pw = colon + 1;
    size_t pwlen = len - (size_t)(colon + 1 - cred);
    int ui = -1;
    for (unsigned i = 0; i < a->file->nusers && ui < 0; i++)
        if (strcmp(a->file->users[i].name, cred) == 0)
            ui = (int)i;
    const relay_user *u = ui >= 0 ? &a->file->users[ui] : NULL;
    if (u != NULL && u->password_hash[0] != '\0') {
        unsigned char d[crypto_generichash_BYTES];
        pw_digest(a, u, pw, pwlen, d);
        bool hit = false;
        for (unsigned i = 0; i < AUTH_CACHE; i++)
            hit |= a->cached[ui][i] & (sodium_memcmp(d, a->cache[ui][i], sizeof(d)) == 0);
        if (hit)
            return u;
    }
    if (pwlen > AUTH_PW_MAX)
        return NULL;
    /* An unknown user (or one without a password) costs the same argon2id
     * run on the decoy, so that timing does not tell which names exist. */
    pthread_mutex_lock(&a->lock);
    auth_job *j = NULL;
    for (unsigned i = 0; i < AUTH_QUEUE && j == NULL; i++)
        if (a->jobs[i].state == JOB_FREE)
            j = &a->jobs[i];
    if (j != NULL) {
        bool real = u != NULL && u->password_hash[0] != '\0';
        j->user = real ? ui : -1;
        j->hash = real ? u->password_hash : a->decoy;
        memcpy(j->pw, pw, pwlen);
        j->pwlen = pwlen;
        j->ok = false;
        j->p = NULL;
        j->state = JOB_QUEUED;
    }
    pthread_mutex_unlock(&a->lock);
    if (j == NULL)
        *full = true;
    else
        poke(a->job_fd);
    *job = j;
    return NULL;
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

/* @u proved itself for @req: go on if it has @need, else 403. */
static bool permit(relay_auth *a, struct evhttp_request *req, const relay_user *u, unsigned need,
                   const char *addr)
{
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

/* Checks the verifier finished: route, or answer 401 after the delay. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    relay_auth *a = arg;
    drain(a->done_fd);
    for (unsigned i = 0; i < AUTH_QUEUE; i++) {
        auth_job *j = &a->jobs[i];
        pthread_mutex_lock(&a->lock);
        bool done = j->state == JOB_DONE;
        pthread_mutex_unlock(&a->lock);
        if (!done)
            continue;
        auth_pending *p = j->p;
        if (j->ok)
            cache_put(a, (unsigned)j->user, j->pw, j->pwlen);
        const relay_user *u = j->ok ? &a->file->users[j->user] : NULL;
        pthread_mutex_lock(&a->lock);
        sodium_memzero(j->pw, sizeof(j->pw));
        j->p = NULL;
        j->state = JOB_FREE;
        pthread_mutex_unlock(&a->lock);
        if (p == NULL)
            continue; /* its client left */
        p->job = NULL;
        if (u == NULL) {
            count_failure(a, p->addr);
            delay_401(a, p->req, p->addr, p);
            continue;
        }
        struct evhttp_request *req = p->req;
        char *path = p->path;
        enum evhttp_cmd_type cmd = p->cmd;
        bool go = permit(a, req, u, p->need, p->addr);
        p->path = NULL;
        evhttp_connection_set_closecb(p->conn, NULL, NULL);
        pending_free(p);
        if (go)
            relay_http__route(a->srv, req, path, cmd);
        stw_free(path);
    }
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
        srv->auth_locked++;
        relay_http__reply_error(req, 429, "too many failed logins from this address");
        return false;
    }
    const relay_user *u = NULL;
    auth_job *job = NULL;
    bool full = false;
    if (strncasecmp(h, "Basic ", 6) == 0) {
        char cred[AUTH_PW_MAX + RELAY_USER_MAX + 2];
        size_t len = 0;
        const char *b64 = h + 6 + strspn(h + 6, " ");
        if (sodium_base642bin((unsigned char *)cred, sizeof(cred) - 1, b64, strlen(b64), NULL, &len,
                              NULL, sodium_base64_VARIANT_ORIGINAL) == 0) {
            cred[len] = '\0';
            u = basic_user(a, cred, len, &job, &full);
        }
        sodium_memzero(cred, sizeof(cred));
    } else if (strncasecmp(h, "Bearer ", 7) == 0) {
        u = token_user(a, h + 7 + strspn(h + 7, " "));
    }
    if (u != NULL)
        return permit(a, req, u, need, addr);
    if (full) {
        srv->auth_busy++;
        relay_http__reply_error(req, 503, "too many logins being checked; try again");
        return false;
    }
    if (job == NULL) {
        count_failure(a, addr);
        delay_401(a, req, addr, NULL);
        return false;
    }
    /* The verifier answers through on_done(); the request waits. */
    auth_pending *p = pending_new(a, req, addr);
    char *copy = p != NULL ? stw_malloc(strlen(path) + 1) : NULL;
    if (copy == NULL) {
        if (p != NULL) {
            evhttp_connection_set_closecb(p->conn, NULL, NULL);
            pending_free(p);
        }
        /* The job runs anyway and only fills the cache. */
        relay_http__reply_error(req, 503, "out of memory");
        return false;
    }
    memcpy(copy, path, strlen(path) + 1);
    p->path = copy;
    p->need = need;
    p->cmd = cmd;
    p->job = job;
    job->p = p;
    return false;
}

void relay_http__auth_reload(relay_http *srv, const relay_file *nf)
{
    /* The storage relay_main lent the config: the one a->file points at. */
    relay_file *cur = (relay_file *)srv->cfg.file;
    relay_auth *a = srv->auth;
    if (cur == NULL || cur == nf)
        return;
    if (a != NULL)
        pthread_mutex_lock(&a->lock);
    memcpy(cur->users, nf->users, sizeof(cur->users));
    cur->nusers = nf->nusers;
    if (a != NULL) {
        /* A check in flight was for a user that may be gone or another
         * now: it fails, and the client asks again. */
        for (unsigned i = 0; i < AUTH_QUEUE; i++)
            if (a->jobs[i].state != JOB_FREE)
                a->jobs[i].user = -1;
        sodium_memzero(a->cache, sizeof(a->cache));
        memset(a->cached, 0, sizeof(a->cached));
        memset(a->cache_next, 0, sizeof(a->cache_next));
        a->decoy = NULL;
        for (unsigned i = 0; i < cur->nusers && a->decoy == NULL; i++)
            if (cur->users[i].password_hash[0] != '\0')
                a->decoy = cur->users[i].password_hash;
        pthread_mutex_unlock(&a->lock);
    }
}
