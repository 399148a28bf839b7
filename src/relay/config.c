/*
 * src/relay/config.c — reading and printing the relay's config file
 * (config.h has the model, docs/relay-config.md the format).
 *
 * libfyaml builds the whole document (duplicate keys are its errors), then
 * the tree is walked key by key. A value is reported at the line of its
 * key: libfyaml marks scalars only, and every value here hangs off a key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <libfyaml.h>
#include <sodium.h>

#include "config.h"
#include "redact.h"

typedef struct walk {
    const char *path;
    char *err;
    size_t errlen;
    unsigned push_ids; /* ids given to declared push outputs so far */
} walk;

/* The 1-based line of scalar @n, 0 if unknown. */
static int line_of(struct fy_node *n)
{
    struct fy_token *t = n != NULL ? fy_node_get_scalar_token(n) : NULL;
    const struct fy_mark *m = t != NULL ? fy_token_start_mark(t) : NULL;
    return m != NULL ? m->line + 1 : 0;
}

/* "PATH:LINE: KEY: message"; returns -EINVAL. */
__attribute__((format(printf, 4, 5))) static int fail(walk *w, struct fy_node *key,
                                                      const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(w->err, w->errlen, "%s:%d: %s: %s", w->path, line_of(key), name, msg);
    return -EINVAL;
}

/* The text of scalar @n, or NULL if it is not a scalar. */
static const char *scalar(struct fy_node *n)
{
    return n != NULL && fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
}

static bool is_plain(struct fy_node *n)
{
    return fy_node_get_style(n) == FYNS_PLAIN;
}

/* A YAML boolean (plain true/false, any case), into *@out. */
static bool as_bool(struct fy_node *n, bool *out)
{
    const char *s = scalar(n);
    if (s == NULL || !is_plain(n))
        return false;
    if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
        *out = true;
    else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
        *out = false;
    else
        return false;
    return true;
}

/* A string that is not empty, at most @max - 1 bytes, without NUL. */
static int copy_str(walk *w, struct fy_node *key, const char *name, struct fy_node *v, char *out,
                    size_t max)
{
    const char *s = scalar(v);
    if (s == NULL)
        return fail(w, key, name, "must be a string");
    size_t len = strlen(s);
    if (len == 0 || len >= max)
        return fail(w, key, name, "must be 1..%zu bytes", max - 1);
    memcpy(out, s, len + 1);
    return 0;
}

/* An option of the command line ("--" + key with '_' as '-'). */
static int option(walk *w, relay_config *cfg, struct fy_node *key, const char *name,
                  struct fy_node *v)
{
    char opt[64];
    snprintf(opt, sizeof(opt), "--%s", name);
    for (char *p = opt; *p != '\0'; p++)
        if (*p == '_')
            *p = '-';
    const char *s = scalar(v);
    if (s == NULL)
        return fail(w, key, name, "must be a scalar");
    int rc = relay_option_set(cfg, opt, s);
    if (rc == -ENOENT)
        return fail(w, key, name, "unknown key");
    if (rc != 0)
        return fail(w, key, name, "bad value '%.200s' (as %s on the command line)", s, opt);
    return 0;
}

/* recordings: dir, max_bytes, max_age, min_free (--recordings...). */
static int recordings(walk *w, relay_config *cfg, struct fy_node *map)
{
    static const char *const keys[][2] = {{"dir", "--recordings"},
                                          {"max_bytes", "--recordings-max-bytes"},
                                          {"max_age", "--recordings-max-age"},
                                          {"min_free", "--recordings-min-free"}};
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *name = scalar(k);
        const char *opt = NULL;
        for (size_t i = 0; name != NULL && i < sizeof(keys) / sizeof(keys[0]); i++)
            if (strcmp(name, keys[i][0]) == 0)
                opt = keys[i][1];
        if (opt == NULL)
            return fail(w, k, name != NULL ? name : "recordings",
                        "unknown key in recordings (dir, max_bytes, max_age, min_free)");
        const char *s = scalar(fy_node_pair_value(p));
        if (s == NULL)
            return fail(w, k, name, "must be a scalar");
        if (relay_option_set(cfg, opt, s) != 0)
            return fail(w, k, name, "bad value '%.200s' (as %s on the command line)", s, opt);
    }
    return 0;
}

static int limits(walk *w, relay_config *cfg, struct fy_node *map)
{
    static const char *const known[] = {
        "max_viewers",     "max_viewers_per_input",      "inflight",       "viewer_sndbuf",
        "timeout",         "max_header_bytes",           "max_body_bytes", "header_timeout",
        "max_connections", "max_connections_per_client", "max_inputs",     "max_input_memory",
        "max_sse_clients", "on_demand_grace_ms",         "camera_stall",   "camera_frame_timeout"};
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *name = scalar(k);
        bool ok = false;
        for (size_t i = 0; name != NULL && i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(name, known[i]) == 0;
        if (!ok)
            return fail(w, k, name != NULL ? name : "limits", "unknown key in limits");
        int rc = option(w, cfg, k, name, fy_node_pair_value(p));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int test_pattern(walk *w, relay_config *cfg, struct fy_node *map)
{
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *name = scalar(k);
        if (name == NULL ||
            (strcmp(name, "size") != 0 && strcmp(name, "fps") != 0 && strcmp(name, "quality") != 0))
            return fail(w, k, name != NULL ? name : "test_pattern",
                        "unknown key in test_pattern (size, fps, quality)");
        int rc = option(w, cfg, k, name, fy_node_pair_value(p));
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A list of names (allow_hosts, cors_origins) through --allow-host or
 * --cors-origin. */
static int names(walk *w, relay_config *cfg, struct fy_node *key, const char *name,
                 struct fy_node *seq, const char *opt)
{
    if (!fy_node_is_sequence(seq))
        return fail(w, key, name, "must be a list");
    void *it = NULL;
    struct fy_node *v;
    while ((v = fy_node_sequence_iterate(seq, &it)) != NULL) {
        const char *s = scalar(v);
        if (s == NULL || relay_option_set(cfg, opt, s) != 0)
            return fail(w, v, name, "bad entry '%.200s' (as %s on the command line; at most %d)",
                        s != NULL ? s : "?", opt, RELAY_ALLOW_MAX);
    }
    return 0;
}

static int tls(walk *w, relay_file *file, struct fy_node *key, struct fy_node *map)
{
    if (!fy_node_is_mapping(map))
        return fail(w, key, "tls", "must be a mapping with cert and key");
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *name = scalar(k);
        char *out = NULL;
        if (name != NULL && strcmp(name, "cert") == 0)
            out = file->tls_cert;
        else if (name != NULL && strcmp(name, "key") == 0)
            out = file->tls_key;
        else
            return fail(w, k, name != NULL ? name : "tls", "unknown key in tls (cert, key)");
        int rc = copy_str(w, k, name, fy_node_pair_value(p), out, RELAY_PATH_MAX);
        if (rc != 0)
            return rc;
    }
    if (file->tls_cert[0] == '\0' || file->tls_key[0] == '\0')
        return fail(w, key, "tls", "needs both cert and key");
    return 0;
}

static bool user_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= RELAY_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == ':' || s[i] == 0x7f)
            return false;
    return true;
}

/* "blake2b256:" and 64 hex digits, as --new-token prints it. */
static bool token_hash(const char *s, unsigned char out[RELAY_TOKEN_HASH])
{
    static const char prefix[] = "blake2b256:";
    size_t bin = 0;
    if (strncmp(s, prefix, sizeof(prefix) - 1) != 0)
        return false;
    s += sizeof(prefix) - 1;
    return strlen(s) == 2 * RELAY_TOKEN_HASH &&
           sodium_hex2bin(out, RELAY_TOKEN_HASH, s, strlen(s), NULL, &bin, NULL) == 0 &&
           bin == RELAY_TOKEN_HASH;
}

static int user(walk *w, relay_user *u, struct fy_node *ukey, struct fy_node *map)
{
    const char *uname = u->name;
    if (!fy_node_is_mapping(map))
        return fail(w, ukey, uname,
                    "a user must be a mapping (password_hash, token_hashes, "
                    "permissions)");
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        struct fy_node *v = fy_node_pair_value(p);
        const char *name = scalar(k);
        if (name != NULL && strcmp(name, "password_hash") == 0) {
            const char *s = scalar(v);
            if (s == NULL || strncmp(s, "$argon2id$", 10) != 0 || strlen(s) >= RELAY_HASH_MAX ||
                crypto_pwhash_str_needs_rehash(s, crypto_pwhash_OPSLIMIT_MIN,
                                               crypto_pwhash_MEMLIMIT_MIN) < 0)
                return fail(w, k, name,
                            "user %s: not an argon2id hash (make one with steward relay "
                            "--hash-password)",
                            uname);
            snprintf(u->password_hash, sizeof(u->password_hash), "%s", s);
        } else if (name != NULL && strcmp(name, "token_hashes") == 0) {
            if (!fy_node_is_sequence(v))
                return fail(w, k, name, "user %s: must be a list", uname);
            void *jt = NULL;
            struct fy_node *t;
            while ((t = fy_node_sequence_iterate(v, &jt)) != NULL) {
                const char *s = scalar(t);
                if (u->ntokens >= RELAY_TOKENS_MAX)
                    return fail(w, t, name, "user %s: at most %d tokens", uname, RELAY_TOKENS_MAX);
                if (s == NULL || !token_hash(s, u->tokens[u->ntokens]))
                    return fail(w, t, name,
                                "user %s: not a token hash (blake2b256:HEX, as steward relay "
                                "--new-token prints it)",
                                uname);
                u->ntokens++;
            }
        } else if (name != NULL && strcmp(name, "permissions") == 0) {
            if (!fy_node_is_sequence(v))
                return fail(w, k, name, "user %s: must be a list of read, publish, admin", uname);
            void *jt = NULL;
            struct fy_node *t;
            while ((t = fy_node_sequence_iterate(v, &jt)) != NULL) {
                const char *s = scalar(t);
                if (s != NULL && strcmp(s, "read") == 0)
                    u->perms |= RELAY_PERM_READ;
                else if (s != NULL && strcmp(s, "publish") == 0)
                    u->perms |= RELAY_PERM_PUBLISH;
                else if (s != NULL && strcmp(s, "admin") == 0)
                    u->perms |= RELAY_PERM_ADMIN;
                else
                    return fail(w, t, name,
                                "user %s: unknown permission '%.40s' (read, publish, admin)", uname,
                                s != NULL ? s : "?");
            }
        } else {
            return fail(w, k, name != NULL ? name : uname,
                        "user %s: unknown key (password_hash, token_hashes, permissions)", uname);
        }
    }
    if (u->password_hash[0] == '\0' && u->ntokens == 0)
        return fail(w, ukey, uname, "needs a password_hash or token_hashes");
    if (u->perms == 0)
        return fail(w, ukey, uname, "needs permissions (read, publish, admin)");
    return 0;
}

static int users(walk *w, relay_file *file, struct fy_node *key, struct fy_node *map)
{
    if (!fy_node_is_mapping(map))
        return fail(w, key, "users", "must be a mapping of user names");
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *name = scalar(k);
        if (name == NULL || !user_name_valid(name))
            return fail(w, k, "users",
                        "bad user name '%.64s' (1..63 printable bytes, no spaces or ':')",
                        name != NULL ? name : "?");
        if (file->nusers >= RELAY_USERS_MAX)
            return fail(w, k, name, "at most %d users", RELAY_USERS_MAX);
        relay_user *u = &file->users[file->nusers];
        memset(u, 0, sizeof(*u));
        snprintf(u->name, sizeof(u->name), "%s", name);
        int rc = user(w, u, k, fy_node_pair_value(p));
        if (rc != 0)
            return rc;
        file->nusers++;
    }
    return 0;
}

/* A scalar as JSON: plain integers and booleans as such, the rest as strings. */
static json_t *scalar_json(struct fy_node *v)
{
    const char *s = scalar(v);
    bool b;
    if (s == NULL)
        return NULL;
    if (as_bool(v, &b))
        return json_boolean(b);
    if (is_plain(v) && s[0] != '\0' && strspn(s, "-0123456789") == strlen(s)) {
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer(n);
    }
    /* Plain decimals ("0.5") are numbers too: motion's min_area. */
    if (is_plain(v) && s[0] != '\0' && strspn(s, "-0123456789.") == strlen(s) &&
        strchr(s, '.') != NULL) {
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (errno == 0 && *end == '\0')
            return json_real(d);
    }
    return json_string(s);
}

/* @v as JSON: scalars as scalar_json(), lists as arrays, mappings as
 * objects (string keys); NULL for anything else (or out of memory). */
static json_t *node_json(struct fy_node *v, int depth)
{
    if (v == NULL || depth > 8)
        return NULL;
    if (fy_node_is_scalar(v))
        return scalar_json(v);
    json_t *out = fy_node_is_sequence(v) ? json_array() : json_object();
    if (out == NULL)
        return NULL;
    void *it = NULL;
    if (fy_node_is_sequence(v)) {
        struct fy_node *e;
        while ((e = fy_node_sequence_iterate(v, &it)) != NULL)
            if (json_array_append_new(out, node_json(e, depth + 1)) != 0)
                goto fail;
        return out;
    }
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(v, &it)) != NULL) {
        const char *k = scalar(fy_node_pair_key(p));
        if (k == NULL || json_object_set_new(out, k, node_json(fy_node_pair_value(p), depth + 1)))
            goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static int input(walk *w, const relay_config *cfg, relay_spec *out, struct fy_node *key,
                 const char *name, struct fy_node *map)
{
    static const char *const known[] = {
        "kind",           "url",    "width",          "height",         "fps",
        "quality",        "on_demand", "rtsp_transport", "loop",        "timeout",
        "outputs",        "pattern", "motion",         "record",         "record_segment",
        "record_max_age", "record_max_bytes", "record_mode", "record_pre_roll",
        "record_post_roll"};
    if (!fy_node_is_mapping(map))
        return fail(w, key, name, "an input must be a mapping (kind, url, ...)");
    json_t *obj = json_object();
    if (obj == NULL || json_object_set_new(obj, "name", json_string(name)) != 0) {
        json_decref(obj);
        return fail(w, key, name, "out of memory");
    }
    int rc = 0;
    void *it = NULL;
    struct fy_node_pair *p;
    while (rc == 0 && (p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *field = scalar(k);
        bool ok = false;
        for (size_t i = 0; field != NULL && i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(field, known[i]) == 0;
        json_t *v = ok ? node_json(fy_node_pair_value(p), 0) : NULL;
        if (!ok)
            rc = fail(w, k, field != NULL ? field : name,
                      "input %s: unknown key (kind, url, width, height, fps, quality, "
                      "pattern, on_demand, rtsp_transport, loop, timeout, outputs, motion, "
                      "record, record_segment, record_max_age, record_max_bytes, record_mode, "
                      "record_pre_roll, record_post_roll)",
                      name);
        else if (v == NULL)
            rc = fail(w, k, field, "input %s: not a value the API takes", name);
        else if (json_object_set_new(obj, field, v) != 0)
            rc = fail(w, k, field, "out of memory");
    }
    /* Push outputs get their ids here, in file order (1, 2, ...), as the
     * API gives them theirs. */
    json_t *outs = json_object_get(obj, "outputs");
    size_t oi;
    json_t *o;
    if (rc == 0 && json_is_array(outs))
        json_array_foreach(outs, oi, o)
        {
            if (json_is_object(o) && json_object_get(o, "id") != NULL)
                rc = fail(w, key, name, "input %s: an output's id is given by the relay", name);
            else if (json_is_object(o))
                json_object_set_new(o, "id", json_integer(++w->push_ids));
        }
    if (rc == 0) {
        char err[256];
        /* As a stored input: a local file missing now is reported by its source. */
        if (relay_spec_parse(obj, cfg, RELAY_SPEC_STORED, out, err, sizeof(err)) != 0)
            rc = fail(w, key, name, "input %s: %s", name, err);
        out->declared = true;
    }
    json_decref(obj);
    return rc;
}

/* Inputs are read after everything else, so that the test_pattern
 * defaults apply to them whatever the order of the keys. */
static int inputs(walk *w, const relay_config *cfg, relay_file *file, struct fy_node *key,
                  struct fy_node *map)
{
    if (!fy_node_is_mapping(map))
        return fail(w, key, "inputs", "must be a mapping of input names");
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        const char *name = scalar(k);
        if (name == NULL)
            return fail(w, k, "inputs", "an input name must be a string");
        if (file->ninputs >= RELAY_INPUTS_MAX)
            return fail(w, k, name, "at most %d inputs", RELAY_INPUTS_MAX);
        int rc = input(w, cfg, &file->inputs[file->ninputs], k, name, fy_node_pair_value(p));
        if (rc != 0)
            return rc;
        file->ninputs++;
    }
    return 0;
}

static int top(walk *w, relay_config *cfg, relay_file *file, struct fy_node *root)
{
    if (root == NULL)
        return 0; /* an empty file declares nothing */
    if (!fy_node_is_mapping(root)) {
        snprintf(w->err, w->errlen, "%s: the file must be a YAML mapping", w->path);
        return -EINVAL;
    }
    struct fy_node *in_key = NULL, *in_map = NULL;
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(root, &it)) != NULL) {
        struct fy_node *k = fy_node_pair_key(p);
        struct fy_node *v = fy_node_pair_value(p);
        const char *name = scalar(k);
        int rc = 0;
        bool b;
        if (name == NULL)
            rc = fail(w, k, "?", "keys must be strings");
        else if (strcmp(name, "listen") == 0 || strcmp(name, "state") == 0)
            rc = option(w, cfg, k, name, v);
        else if (strcmp(name, "recordings") == 0)
            rc = fy_node_is_mapping(v) ? recordings(w, cfg, v)
                                       : fail(w, k, name, "must be a mapping");
        else if (strcmp(name, "limits") == 0)
            rc = fy_node_is_mapping(v) ? limits(w, cfg, v) : fail(w, k, name, "must be a mapping");
        else if (strcmp(name, "test_pattern") == 0)
            rc = fy_node_is_mapping(v) ? test_pattern(w, cfg, v)
                                       : fail(w, k, name, "must be a mapping");
        else if (strcmp(name, "allow_hosts") == 0)
            rc = names(w, cfg, k, name, v, "--allow-host");
        else if (strcmp(name, "cors_origins") == 0)
            rc = names(w, cfg, k, name, v, "--cors-origin");
        else if (strcmp(name, "default_input") == 0 || strcmp(name, "insecure_no_auth") == 0) {
            if (!as_bool(v, &b))
                rc = fail(w, k, name, "must be true or false");
            else if (name[0] == 'd')
                cfg->default_input = b;
            else
                cfg->insecure_no_auth = b;
        } else if (strcmp(name, "tls") == 0)
            rc = tls(w, file, k, v);
        else if (strcmp(name, "users") == 0)
            rc = users(w, file, k, v);
        else if (strcmp(name, "inputs") == 0) {
            in_key = k;
            in_map = v;
        } else
            rc = fail(w, k, name,
                      "unknown key (listen, state, default_input, limits, test_pattern, "
                      "allow_hosts, cors_origins, insecure_no_auth, tls, users, inputs, "
                      "recordings)");
        if (rc != 0)
            return rc;
    }
    return in_map != NULL ? inputs(w, cfg, file, in_key, in_map) : 0;
}

/* Users, or a camera URL with a password (what relay_redact would hide). */
static bool holds_secrets(const relay_file *file)
{
    if (file->nusers > 0)
        return true;
    for (unsigned i = 0; i < file->ninputs; i++) {
        char shown[RELAY_URL_MAX + 1];
        relay_redact(file->inputs[i].url, shown, sizeof(shown));
        if (strcmp(shown, file->inputs[i].url) != 0)
            return true;
    }
    return false;
}

static void diag_quiet(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    (void)user;
    (void)buf;
    (void)len;
}

const char *relay_config_path(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    return path;
}

int relay_config_load(const char *path, relay_config *cfg, relay_file *file, char *err,
                      size_t errlen)
{
    memset(file, 0, sizeof(*file));
    cfg->file = file;
    if (strlen(path) >= sizeof(file->path)) {
        snprintf(err, errlen, "config file path too long");
        return -EINVAL;
    }
    snprintf(file->path, sizeof(file->path), "%s", path);
    FILE *probe = fopen(path, "r");
    struct stat st;
    if (probe == NULL || fstat(fileno(probe), &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (probe != NULL)
            fclose(probe);
        return -EINVAL;
    }
    fclose(probe);
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium cannot start");
        return -EINVAL;
    }

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_quiet;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag == NULL) {
        snprintf(err, errlen, "out of memory");
        return -EINVAL;
    }
    fy_diag_set_collect_errors(diag, true);
    /* Resolved: anchors, aliases and merge keys work as in other YAML configs. */
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_RESOLVE_DOCUMENT, .diag = diag};
    struct fy_document *doc = fy_document_build_from_file(&pcfg, path);
    int rc = 0;
    if (doc == NULL) {
        void *it = NULL;
        struct fy_diag_error *e = fy_diag_errors_iterate(diag, &it);
        if (e != NULL)
            snprintf(err, errlen, "%s:%d:%d: %s", path, e->line, e->column, e->msg); /* 1-based */
        else
            snprintf(err, errlen, "%s: not valid YAML", path);
        rc = -EINVAL;
    } else {
        walk w = {.path = path, .err = err, .errlen = errlen};
        rc = top(&w, cfg, file, fy_document_root(doc));
        fy_document_destroy(doc);
        if (rc == 0 && (st.st_mode & 077) != 0 && holds_secrets(file))
            fprintf(stderr,
                    "steward relay: warning: config %s holds password hashes or camera "
                    "passwords and is readable by others (mode %04o): chmod 600 it\n",
                    path, (unsigned)(st.st_mode & 07777));
    }
    fy_diag_destroy(diag);
    return rc;
}

bool relay_host_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* @s as a double-quoted YAML string. */
static void yq(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void relay_config_print(FILE *f, const relay_config *cfg)
{
    const relay_file *file = cfg->file;
    bool v6 = strchr(cfg->host, ':') != NULL;
    if (file != NULL && file->path[0] != '\0')
        fprintf(f, "# steward relay: the effective configuration (%s and the command line)\n",
                file->path);
    else
        fprintf(f, "# steward relay: the effective configuration\n");
    fprintf(f, "listen: \"%s%s%s:%d\"\n", v6 ? "[" : "", cfg->host, v6 ? "]" : "", cfg->port);
    fprintf(f, "state: ");
    yq(f, cfg->state_path[0] ? cfg->state_path : "none");
    fprintf(f, "\ndefault_input: %s\n", cfg->default_input ? "true" : "false");
    fprintf(f, "insecure_no_auth: %s\n", cfg->insecure_no_auth ? "true" : "false");
    fprintf(f,
            "limits:\n"
            "  max_viewers: %u\n  max_viewers_per_input: %u\n  inflight: %u\n"
            "  viewer_sndbuf: %d\n  timeout: %d\n  max_header_bytes: %d\n"
            "  max_body_bytes: %d\n  header_timeout: %d\n  max_connections: %u\n"
            "  max_connections_per_client: %u\n  max_inputs: %u\n  max_input_memory: %zu\n"
            "  max_sse_clients: %u\n"
            "  on_demand_grace_ms: %d\n  camera_stall: %d\n  camera_frame_timeout: %d\n",
            cfg->max_viewers, cfg->max_viewers_input, cfg->inflight, cfg->viewer_sndbuf,
            cfg->timeout_s, cfg->max_header_bytes, cfg->max_body_bytes, cfg->header_timeout_s,
            cfg->max_connections, cfg->max_conn_per_client, cfg->max_inputs,
            cfg->max_input_bytes >> 20, cfg->max_sse, cfg->on_demand_grace_ms, cfg->camera_stall_s,
            cfg->camera_frame_timeout_s);
    fprintf(f, "recordings:\n  dir: ");
    yq(f, cfg->rec_dir);
    fprintf(f, "\n  max_bytes: %llu\n  max_age: %lld\n", (unsigned long long)cfg->rec_max_bytes,
            (long long)cfg->rec_max_age_s);
    if (cfg->rec_min_free_pct > 0 && cfg->rec_min_free_bytes > 0)
        fprintf(f, "  # the larger of %llu bytes and %u%% of the filesystem\n",
                (unsigned long long)cfg->rec_min_free_bytes, cfg->rec_min_free_pct);
    if (cfg->rec_min_free_pct > 0)
        fprintf(f, "  min_free: \"%u%%\"\n", cfg->rec_min_free_pct);
    else
        fprintf(f, "  min_free: %llu\n", (unsigned long long)cfg->rec_min_free_bytes);
    fprintf(f, "test_pattern:\n  size: %ux%u\n  fps: %u\n  quality: %u\n", cfg->width, cfg->height,
            cfg->fps, cfg->quality);
    fprintf(f, "allow_hosts: [");
    for (unsigned i = 0; i < cfg->nallow_host; i++) {
        fprintf(f, i ? ", " : "");
        yq(f, cfg->allow_host[i]);
    }
    fprintf(f, "]\ncors_origins: [");
    for (unsigned i = 0; i < cfg->ncors_origin; i++) {
        fprintf(f, i ? ", " : "");
        yq(f, cfg->cors_origin[i]);
    }
    fprintf(f, "]\n");
    if (file == NULL)
        return;
    if (file->tls_cert[0] != '\0') {
        fprintf(f, "tls:\n  cert: ");
        yq(f, file->tls_cert);
        fprintf(f, "\n  key: ");
        yq(f, file->tls_key);
        fprintf(f, "\n");
    }
    if (file->nusers > 0)
        fprintf(f, "users:\n");
    for (unsigned i = 0; i < file->nusers; i++) {
        const relay_user *u = &file->users[i];
        fprintf(f, "  ");
        yq(f, u->name);
        fprintf(f, ":\n");
        if (u->password_hash[0] != '\0')
            fprintf(f, "    password_hash: \"***\"\n");
        if (u->ntokens > 0) {
            fprintf(f, "    token_hashes: [");
            for (unsigned t = 0; t < u->ntokens; t++)
                fprintf(f, "%s\"***\"", t ? ", " : "");
            fprintf(f, "]\n");
        }
        static const char *const perm[] = {"read", "publish", "admin"};
        fprintf(f, "    permissions: [");
        for (unsigned b = 0, n = 0; b < 3; b++)
            if (u->perms & (1u << b))
                fprintf(f, "%s%s", n++ ? ", " : "", perm[b]);
        fprintf(f, "]\n");
    }
    if (file->ninputs > 0)
        fprintf(f, "inputs:\n");
    for (unsigned i = 0; i < file->ninputs; i++) {
        const relay_spec *s = &file->inputs[i];
        fprintf(f, "  %s:\n    kind: %s\n", s->name, s->kind);
        char shown[RELAY_URL_MAX + 1];
        if (strcmp(s->kind, "test") != 0) {
            relay_redact(s->url, shown, sizeof(shown));
            fprintf(f, "    url: ");
            yq(f, shown);
            fprintf(f, "\n");
        }
        if (strcmp(s->kind, "ffmpeg") == 0) {
            fprintf(f, "    rtsp_transport: %s\n    loop: %s\n    timeout: %u\n",
                    s->ff.rtsp_udp ? "udp" : "tcp", s->ff.loop ? "true" : "false", s->ff.timeout_s);
            if (s->npush > 0)
                fprintf(f, "    outputs:\n");
            for (unsigned k = 0; k < s->npush; k++) {
                relay_redact(s->push[k].url, shown, sizeof(shown));
                fprintf(f, "      - type: push\n        url: ");
                yq(f, shown);
                fprintf(f, "\n");
            }
        } else if (strcmp(s->kind, "test") == 0) {
            fprintf(f, "    width: %u\n    height: %u\n    fps: %u\n    quality: %u\n", s->width,
                    s->height, s->fps, s->quality);
            fprintf(f, "    pattern: %s\n", s->still ? "still" : "ball");
        }
        fprintf(f, "    on_demand: %s\n", s->on_demand ? "true" : "false");
        const relay_motion_spec *m = &s->motion;
        fprintf(f,
                "    motion:\n      enabled: %s\n      fps: %u\n      threshold: %u\n"
                "      min_area: %g\n      start_frames: %u\n      end_after: %u\n",
                m->enabled ? "true" : "false", m->fps, m->threshold, m->min_area, m->start_frames,
                m->end_after);
        if (m->nignore > 0)
            fprintf(f, "      ignore:\n");
        for (unsigned k = 0; k < m->nignore; k++)
            fprintf(f, "        - {x: %u, y: %u, w: %u, h: %u}\n", m->ignore[k].x, m->ignore[k].y,
                    m->ignore[k].w, m->ignore[k].h);
        if (s->record.on)
            fprintf(f,
                    "    record: true\n    record_segment: %u\n    record_max_age: %lld\n"
                    "    record_max_bytes: %llu\n",
                    s->record.segment_s, (long long)s->record.max_age_s,
                    (unsigned long long)s->record.max_bytes);
        if (s->record.on)
            fprintf(f, "    record_mode: %s\n    record_pre_roll: %u\n    record_post_roll: %u\n",
                    s->record.motion ? "motion" : "continuous", s->record.pre_roll_s,
                    s->record.post_roll_s);
    }
}
