/*
 * src/relay/state.c — input specifications: parsing and validating them
 * (REST API and state file alike) and keeping them in the state file.
 *
 * Model
 *   One validator, relay_spec_parse(), turns a JSON object into a
 *   relay_spec; the API uses it for POST /api/inputs and the loader for
 *   every entry of the state file, so a file can never hold what the API
 *   would refuse. The state file is
 *
 *     {"schema":"steward.relay.state/1","inputs":[SPEC, ...]}
 *
 *   where SPEC is what GET /api/inputs/{name} calls "config". It is
 *   rewritten whole after every change, atomically: a temporary file in
 *   the same directory, fsync, rename over the old one, fsync of the
 *   directory, so a crash leaves either the old or the new file, never a
 *   torn one.
 *
 * Ownership
 *   Everything is local to each call. jansson allocates through
 *   stw_malloc/stw_free (json_set_alloc_funcs in relay.c); every fd is
 *   tracked and closed before returning.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "ffmpeg.h"
#include "push.h"
#include "rec.h"
#include "redact.h"
#include "relay.h"
#include "steward/alloc.h"
#include "steward/fd.h"
#include "steward/ledger.h"

#define STATE_SCHEMA "steward.relay.state/1"
#define STATE_FILE_MAX (1 << 20)

static int fail(char *err, size_t errlen, int code, const char *fmt, const char *arg)
{
    snprintf(err, errlen, fmt, arg);
    return code;
}

/* An http:// or https:// URL with a host, no spaces or control bytes. */
static const char *url_problem(const char *url, size_t len)
{
    if (len > RELAY_URL_MAX)
        return "url is longer than 2048 bytes";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f)
            return "url must not contain spaces or control characters";
    }
    size_t skip;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return "url scheme must be http or https";
    /* The host is what is left of the authority without user:password@
     * and :port ("http://:80/" and "http://user@/" have none). */
    const char *host = url + skip, *end = host + strcspn(host, "/?#");
    for (const char *at = host; at < end; at++)
        if (*at == '@')
            host = at + 1;
    if (host == end || *host == ':')
        return "url has no host";
    return NULL;
}

/* Integer fields @key of @obj into *@out when present, within [lo, hi]. */
static int get_uint(const json_t *obj, const char *key, unsigned lo, unsigned hi, unsigned *out,
                    char *err, size_t errlen);
static int get_int(const json_t *obj, const char *key, json_int_t lo, json_int_t hi,
                   json_int_t *out, char *err, size_t errlen);

/* The options of an ffmpeg input: rtsp_transport ("tcp" or "udp"), loop,
 * timeout (seconds); refused on the other kinds. */
static int ff_options(const json_t *obj, bool ff, relay_ff_spec *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"rtsp_transport", "loop", "timeout"};
    for (size_t i = 0; !ff && i < sizeof(keys) / sizeof(keys[0]); i++)
        if (json_object_get(obj, keys[i]) != NULL)
            return fail(err, errlen, 422, "%s is only for ffmpeg inputs", keys[i]);
    *out = (relay_ff_spec){.timeout_s = RELAY_FF_TIMEOUT_DEFAULT};
    if (!ff)
        return 0;
    json_t *t = json_object_get(obj, "rtsp_transport");
    if (t != NULL && !json_is_string(t))
        return fail(err, errlen, 400, "%s", "rtsp_transport must be a string");
    if (t != NULL && strcmp(json_string_value(t), "udp") != 0 &&
        strcmp(json_string_value(t), "tcp") != 0)
        return fail(err, errlen, 422, "%s", "rtsp_transport must be \"tcp\" or \"udp\"");
    out->rtsp_udp = t != NULL && strcmp(json_string_value(t), "udp") == 0;
    json_t *l = json_object_get(obj, "loop");
    if (l != NULL && !json_is_boolean(l))
        return fail(err, errlen, 400, "%s", "loop must be true or false");
    out->loop = l != NULL && json_is_true(l);
    return get_uint(obj, "timeout", 1, 600, &out->timeout_s, err, errlen);
}

/* "outputs": the push outputs of an ffmpeg input, as the state file keeps
 * them ([{"type":"push","id":N,"url":URL}]). */
static int push_outputs(const json_t *obj, bool ff, relay_spec *out, char *err, size_t errlen)
{
    json_t *arr = json_object_get(obj, "outputs");
    out->npush = 0;
    if (arr == NULL)
        return 0;
    if (!ff)
        return fail(err, errlen, 422, "%s", "outputs are only for ffmpeg inputs");
    if (!json_is_array(arr) || json_array_size(arr) > RELAY_PUSH_MAX)
        return fail(err, errlen, 400, "%s", "outputs must be an array of at most 8 push outputs");
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        json_t *id = json_object_get(o, "id"), *url = json_object_get(o, "url");
        json_t *type = json_object_get(o, "type");
        if (!json_is_integer(id) || json_integer_value(id) <= 0 || !json_is_string(url) ||
            !json_is_string(type) || strcmp(json_string_value(type), "push") != 0 ||
            json_string_length(url) > RELAY_URL_MAX)
            return fail(err, errlen, 400, "%s", "an output needs type \"push\", an id and a url");
        char why[256];
        if (relay_push_check_url(json_string_value(url), why, sizeof(why)) != 0)
            return fail(err, errlen, 422, "output url: %s", why);
        out->push[i].id = (uint64_t)json_integer_value(id);
        snprintf(out->push[i].url, sizeof(out->push[i].url), "%s", json_string_value(url));
        out->npush++;
    }
    return 0;
}

/* Integer field @key of @obj into *@out when present, within [lo, hi]. */
static int get_uint(const json_t *obj, const char *key, unsigned lo, unsigned hi, unsigned *out,
                    char *err, size_t errlen)
{
    json_int_t v = *out;
    int rc = get_int(obj, key, lo, hi, &v, err, errlen);
    *out = (unsigned)v;
    return rc;
}

/* Integer field @key of @obj into *@out when present, within [lo, hi]. */
static int get_int(const json_t *obj, const char *key, json_int_t lo, json_int_t hi,
                   json_int_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "%s must be an integer", key);
        return 400;
    }
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi) {
        snprintf(err, errlen, "%s must be in %lld..%lld", key, (long long)lo, (long long)hi);
        return 422;
    }
    *out = n;
    return 0;
}

int relay_record_parse(const void *o, relay_record_spec *out, char *err, size_t errlen)
{
    const json_t *obj = o;
    json_t *rec = json_object_get(obj, "record");
    if (rec != NULL && !json_is_boolean(rec))
        return fail(err, errlen, 400, "%s", "record must be true or false");
    if (rec != NULL)
        out->on = json_is_true(rec);
    json_int_t seg = out->segment_s, age = out->max_age_s, bytes = (json_int_t)out->max_bytes;
    int rc = get_int(obj, "record_segment", RELAY_REC_SEGMENT_MIN, RELAY_REC_SEGMENT_MAX, &seg,
                     err, errlen);
    if (rc == 0)
        rc = get_int(obj, "record_max_age", 0, (json_int_t)10 * 365 * 86400, &age, err, errlen);
    if (rc == 0)
        rc = get_int(obj, "record_max_bytes", 0, (json_int_t)1 << 60, &bytes, err, errlen);
    json_int_t pre = out->pre_roll_s, post = out->post_roll_s;
    if (rc == 0)
        rc = get_int(obj, "record_pre_roll", 0, RELAY_REC_PRE_ROLL_MAX, &pre, err, errlen);
    if (rc == 0)
        rc = get_int(obj, "record_post_roll", 0, RELAY_REC_POST_ROLL_MAX, &post, err, errlen);
    if (rc != 0)
        return rc;
    json_t *mode = json_object_get(obj, "record_mode");
    if (mode != NULL && !json_is_string(mode))
        return fail(err, errlen, 400, "%s", "record_mode must be a string");
    if (mode != NULL && strcmp(json_string_value(mode), "continuous") != 0 &&
        strcmp(json_string_value(mode), "motion") != 0)
        return fail(err, errlen, 422, "%s", "record_mode must be \"continuous\" or \"motion\"");
    if (mode != NULL)
        out->motion = strcmp(json_string_value(mode), "motion") == 0;
    out->segment_s = (unsigned)seg;
    out->max_age_s = age;
    out->max_bytes = (uint64_t)bytes;
    out->pre_roll_s = (unsigned)pre;
    out->post_roll_s = (unsigned)post;
    return 0;
}

const char *relay_record_mode_check(const relay_record_spec *rec, const relay_motion_spec *motion)
{
    if (rec->on && rec->motion && !motion->enabled)
        return "record_mode \"motion\" needs motion detection: set motion.enabled to true "
               "first";
    return NULL;
}

int relay_spec_parse(const void *o, const relay_config *cfg, unsigned flags, relay_spec *out,
                     char *err, size_t errlen)
{
    const json_t *obj = o;
    if (!json_is_object(obj))
        return fail(err, errlen, 400, "%s", "the body must be a JSON object");
    static const char *const known[] = {
        "name",      "kind",    "url",        "width",          "height", "fps",     "quality",
        "on_demand", "created", "created_ms", "rtsp_transport", "loop",   "timeout", "outputs",
        "pattern",   "motion",  "record",     "record_segment", "record_max_age", "record_max_bytes",
        "record_mode", "record_pre_roll", "record_post_roll"};
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok) {
            char k[64];
            snprintf(k, sizeof(k), "%.40s", key);
            return fail(err, errlen, 422, "unknown field \"%s\"", k);
        }
    }
    memset(out, 0, sizeof(*out));
    json_t *name = json_object_get(obj, "name");
    if (name == NULL)
        return fail(err, errlen, 422, "%s", "name is required");
    if (!json_is_string(name))
        return fail(err, errlen, 400, "%s", "name must be a string");
    if (!relay_name_valid(json_string_value(name), json_string_length(name)) ||
        strlen(json_string_value(name)) != json_string_length(name))
        return fail(err, errlen, 422, "%s",
                    "name must be 1..31 characters of A-Z, a-z, 0-9, '_' and '-'");
    memcpy(out->name, json_string_value(name), json_string_length(name) + 1);

    json_t *kind = json_object_get(obj, "kind");
    if (kind == NULL)
        return fail(err, errlen, 422, "%s", "kind is required");
    if (!json_is_string(kind))
        return fail(err, errlen, 400, "%s", "kind must be a string");
    if (strcmp(json_string_value(kind), "test") == 0)
        out->kind = "test";
    else if (strcmp(json_string_value(kind), "mjpeg") == 0)
        out->kind = "mjpeg";
    else if (strcmp(json_string_value(kind), "ffmpeg") == 0)
        out->kind = "ffmpeg";
    else
        return fail(err, errlen, 422, "%s", "kind must be \"test\", \"mjpeg\" or \"ffmpeg\"");
    bool test = out->kind[0] == 't', ff = out->kind[0] == 'f';

    json_t *url = json_object_get(obj, "url");
    if (test && url != NULL)
        return fail(err, errlen, 422, "%s", "url is only for mjpeg and ffmpeg inputs");
    if (!test) {
        if (url == NULL)
            return fail(err, errlen, 422, "url is required for %s inputs", out->kind);
        if (!json_is_string(url))
            return fail(err, errlen, 400, "%s", "url must be a string");
        size_t len = json_string_length(url);
        const char *why = strlen(json_string_value(url)) != len ? "url must not contain NUL bytes"
                          : ff                                  ? NULL
                               : url_problem(json_string_value(url), len);
        if (why != NULL)
            return fail(err, errlen, 422, "%s", why);
        if (ff) {
            relay_ff_url u;
            char ferr[256];
            int rc = relay_ff_url_parse(json_string_value(url), 0, &u, ferr, sizeof(ferr));
            bool later = (flags & RELAY_SPEC_STORED) && (rc == -ENOENT || rc == -EACCES);
            if (rc != 0 && !later) {
                char shown[256];
                relay_redact(ferr, shown, sizeof(shown));
                return fail(err, errlen, 422, "url: %s", shown);
            }
        }
        memcpy(out->url, json_string_value(url), len + 1);
    }
    int frc = ff_options(obj, ff, &out->ff, err, errlen);
    if (frc == 0)
        frc = push_outputs(obj, ff, out, err, errlen);
    if (frc != 0)
        return frc;

    static const char *const pattern[] = {"width", "height", "fps", "quality", "pattern"};
    for (size_t i = 0; !test && i < sizeof(pattern) / sizeof(pattern[0]); i++)
        if (json_object_get(obj, pattern[i]) != NULL)
            return fail(err, errlen, 422, "%s is only for test inputs", pattern[i]);
    out->width = cfg->width;
    out->height = cfg->height;
    out->fps = cfg->fps;
    out->quality = cfg->quality;
    int rc = get_uint(obj, "width", 16, 4096, &out->width, err, errlen);
    if (rc == 0)
        rc = get_uint(obj, "height", 16, 4096, &out->height, err, errlen);
    if (rc == 0)
        rc = get_uint(obj, "fps", 1, 120, &out->fps, err, errlen);
    if (rc == 0)
        rc = get_uint(obj, "quality", 1, 100, &out->quality, err, errlen);
    if (rc != 0)
        return rc;
    json_t *pat = json_object_get(obj, "pattern");
    if (pat != NULL && !json_is_string(pat))
        return fail(err, errlen, 400, "%s", "pattern must be a string");
    if (pat != NULL && strcmp(json_string_value(pat), "ball") != 0 &&
        strcmp(json_string_value(pat), "still") != 0)
        return fail(err, errlen, 422, "%s", "pattern must be \"ball\" or \"still\"");
    out->still = pat != NULL && strcmp(json_string_value(pat), "still") == 0;
    out->motion = RELAY_MOTION_SPEC_DEFAULT;
    json_t *mo = json_object_get(obj, "motion");
    if (mo != NULL && (rc = relay_motion_spec_parse(mo, &out->motion, err, errlen)) != 0)
        return rc;

    json_t *od = json_object_get(obj, "on_demand");
    if (od != NULL && !json_is_boolean(od))
        return fail(err, errlen, 400, "%s", "on_demand must be true or false");
    out->on_demand = od != NULL && json_is_true(od);
    /* "created" is what GET shows (ISO 8601) and is ignored on input;
     * "created_ms" is what the state file keeps. */
    json_t *cr = json_object_get(obj, "created_ms");
    if (cr != NULL) {
        if (!json_is_integer(cr) || json_integer_value(cr) < 0)
            return fail(err, errlen, 400, "%s", "created_ms must be a non-negative integer");
        out->created_ms = json_integer_value(cr);
    }
    out->record = RELAY_RECORD_SPEC_DEFAULT;
    rc = relay_record_parse(obj, &out->record, err, errlen);
    const char *why = rc == 0 ? relay_record_mode_check(&out->record, &out->motion) : NULL;
    if (why != NULL)
        return fail(err, errlen, 422, "%s", why);
    return rc;
}

void *relay_spec_json(const relay_input *in)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int bad = json_object_set_new(o, "name", json_string(in->name));
    bad |= json_object_set_new(o, "kind", json_string(in->kind));
    if (strcmp(in->kind, "ffmpeg") == 0) {
        bad |= json_object_set_new(o, "url", json_string(in->url));
        bad |=
            json_object_set_new(o, "rtsp_transport", json_string(in->ff.rtsp_udp ? "udp" : "tcp"));
        bad |= json_object_set_new(o, "loop", json_boolean(in->ff.loop));
        bad |= json_object_set_new(o, "timeout", json_integer(in->ff.timeout_s));
        json_t *outs = json_array();
        for (unsigned i = 0; outs != NULL && i < in->npush; i++)
            bad |= json_array_append_new(outs, json_pack("{s:s, s:I, s:s}", "type", "push", "id",
                                                         (json_int_t)relay_push_id(in->push[i]),
                                                         "url", relay_push_url(in->push[i])));
        bad |= json_object_set_new(o, "outputs", outs);
    } else if (strcmp(in->kind, "mjpeg") == 0) {
        bad |= json_object_set_new(o, "url", json_string(in->url));
    } else {
        bad |= json_object_set_new(o, "width", json_integer(in->width));
        bad |= json_object_set_new(o, "height", json_integer(in->height));
        bad |= json_object_set_new(o, "fps", json_integer(in->fps));
        bad |= json_object_set_new(o, "quality", json_integer(in->quality));
        bad |= json_object_set_new(o, "pattern", json_string(in->still ? "still" : "ball"));
    }
    json_t *mo = relay_motion_spec_json(&in->motion_spec);
    bad |= mo == NULL || json_object_set_new(o, "motion", mo) != 0;
    bad |= json_object_set_new(o, "on_demand", json_boolean(in->on_demand));
    bad |= json_object_set_new(o, "created_ms", json_integer(in->created_ms));
    bad |= json_object_set_new(o, "record", json_boolean(in->record.on));
    bad |= json_object_set_new(o, "record_segment", json_integer(in->record.segment_s));
    bad |= json_object_set_new(o, "record_max_age", json_integer(in->record.max_age_s));
    bad |= json_object_set_new(o, "record_max_bytes", json_integer((json_int_t)in->record.max_bytes));
    bad |= json_object_set_new(o, "record_mode",
                               json_string(in->record.motion ? "motion" : "continuous"));
    bad |= json_object_set_new(o, "record_pre_roll", json_integer(in->record.pre_roll_s));
    bad |= json_object_set_new(o, "record_post_roll", json_integer(in->record.post_roll_s));
    if (bad != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int relay_make_dirs(const char *dir)
{
    char d[RELAY_PATH_MAX];
    snprintf(d, sizeof(d), "%s", dir);
    for (char *p = d + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(d, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(d, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* mkdir -p the directory part of @path (mode 0700 for what it creates). */
static int make_parents(const char *path)
{
    char dir[RELAY_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    return relay_make_dirs(dir);
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int relay_state_save(const char *path, relay_input *const *inputs, unsigned n)
{
    json_t *root = json_pack("{s:s,s:[]}", "schema", STATE_SCHEMA, "inputs");
    if (root == NULL)
        return -ENOMEM;
    json_t *arr = json_object_get(root, "inputs");
    for (unsigned i = 0; i < n; i++) {
        if (inputs[i]->declared)
            continue; /* the config file has it */
        json_t *o = relay_spec_json(inputs[i]);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(root);
            return -ENOMEM;
        }
    }
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (text == NULL)
        return -ENOMEM;

    char tmp[RELAY_PATH_MAX + 16];
    char dir[RELAY_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int dfd = -1;
    int rc = make_parents(path);
    if (rc != 0)
        goto free_text;
    int fd = stw_fd_track(mkostemp(tmp, O_CLOEXEC), STW_KIND_FD, "file:relay-state");
    if (fd < 0) {
        rc = fd;
        goto free_text;
    }
    /* Camera passwords are in it: owner only, whatever the umask (mkostemp
     * makes 0600 today; this keeps it so). */
    rc = fchmod(fd, 0600) != 0 ? -errno : 0;
    if (rc == 0)
        rc = write_all(fd, text, strlen(text));
    if (rc == 0)
        rc = write_all(fd, "\n", 1);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    stw_fd_close(&fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        goto free_text;
    }
    /* The rename is durable only once the directory is. */
    dfd = stw_fd_track(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), STW_KIND_FD,
                       "file:relay-state-dir");
    if (dfd >= 0) {
        /* The new file is in place: failing now must not make the caller
         * undo a change that the file already has. */
        if (fsync(dfd) != 0)
            relay_log(RELAY_LOG_ERROR, "state", NULL, "fsync of %s: %s", dir, strerror(errno));
        stw_fd_close(&dfd);
    }
free_text:
    stw_free(text);
    return rc;
}

int relay_state_load(const char *path, const relay_config *cfg, relay_spec *specs, unsigned max,
                     unsigned *n, char *err, size_t errlen)
{
    int fd = stw_fd_track(open(path, O_RDONLY | O_CLOEXEC), STW_KIND_FD, "file:relay-state");
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        stw_fd_close(&fd);
        return rc;
    }
    if (st.st_size > STATE_FILE_MAX) {
        stw_fd_close(&fd);
        snprintf(err, errlen, "larger than %d bytes", STATE_FILE_MAX);
        return -EINVAL;
    }
    json_error_t jerr;
    json_t *root = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
    stw_fd_close(&fd);
    if (root == NULL) {
        snprintf(err, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return -EINVAL;
    }
    int rc = -EINVAL;
    json_t *schema = json_object_get(root, "schema");
    json_t *arr = json_object_get(root, "inputs");
    if (!json_is_string(schema) || strcmp(json_string_value(schema), STATE_SCHEMA) != 0) {
        snprintf(err, errlen, "schema is not \"%s\"", STATE_SCHEMA);
        goto decref;
    }
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "\"inputs\" is not an array");
        goto decref;
    }
    if (json_array_size(arr) > max) {
        snprintf(err, errlen, "%zu inputs, more than the %u allowed", json_array_size(arr), max);
        goto decref;
    }
    *n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char why[200];
        if (relay_spec_parse(json_array_get(arr, i), cfg, RELAY_SPEC_STORED, &specs[i], why,
                             sizeof(why)) != 0) {
            snprintf(err, errlen, "input %zu: %s", i, why);
            goto decref;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(specs[j].name, specs[i].name) == 0) {
                snprintf(err, errlen, "input %zu: duplicate name \"%s\"", i, specs[i].name);
                goto decref;
            }
        (*n)++;
    }
    rc = 0;
decref:
    json_decref(root);
    return rc;
}

int relay_state_clean_temps(const char *path)
{
    char dir[RELAY_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    size_t blen = strlen(base);
    int dfd = stw_fd_track(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), STW_KIND_FD,
                           "file:relay-state-dir");
    if (dfd < 0)
        return dfd == -ENOENT ? 0 : dfd;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        stw_fd_close(&dfd);
        return -ENOMEM;
    }
    int removed = 0;
    struct dirent *e;
    /* relay_state_save's temporaries are "BASE.tmp" and six mkostemp
     * characters; nothing else is touched. */
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != blen + 10 || strncmp(e->d_name, base, blen) != 0 ||
            strncmp(e->d_name + blen, ".tmp", 4) != 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            relay_log(RELAY_LOG_NOTICE, "state", NULL, "removed %s/%s, left by an interrupted save",
                      dir, e->d_name);
            removed++;
        }
    }
    stw_fd_untrack(dfd);
    closedir(d);
    return removed;
}
