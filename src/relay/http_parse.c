/*
 * src/relay/http_parse.c — the relay's own parsing of request fields:
 * the path (percent escapes, a trailing slash, /api/inputs/...), the Host
 * header, Content-Type and Origin.
 *
 * Model
 *   Pure functions on NUL-terminated strings that libevent has already
 *   split out of the request (it bounds their size by
 *   --max-header-bytes). They never allocate and never read past a
 *   string's NUL, whatever the bytes: tests/fuzz/fuzz_http_request.c
 *   checks that with libFuzzer and the sanitizers.
 *
 * Ownership
 *   Every argument is borrowed; results point into the caller's strings
 *   or buffers.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int relay_http__decode_path(const char *raw, char *out, size_t *len)
{
    size_t o = 0;
    for (size_t i = 0; raw[i] != '\0'; i++) {
        if (raw[i] != '%') {
            out[o++] = raw[i];
            continue;
        }
        int hi = hexval(raw[i + 1]);
        int lo = hi >= 0 ? hexval(raw[i + 2]) : -1;
        /* An encoded NUL would cut the name short of what was asked. */
        if (lo < 0 || (hi == 0 && lo == 0))
            return -EINVAL;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    if (o > 1 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    *len = o;
    return 0;
}

/* Parse "/api/inputs/NAME[/outputs[/ID]|/motion]" after the prefix:
 * *@name and *@nlen get NAME; *@sub is 0 (the input), 1 (its outputs), 2
 * (one output, *@id) or 3 (its motion detection). Returns false for
 * anything else. */
bool relay_http__parse_input_path(const char *rest, const char **name, size_t *nlen, int *sub,
                                  uint64_t *id)
{
    const char *slash = strchr(rest, '/');
    *name = rest;
    *nlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    *sub = 0;
    if (slash == NULL)
        return *nlen > 0;
    if (strcmp(slash, "/motion") == 0) {
        *sub = 3;
        return *nlen > 0;
    }
    if (strncmp(slash, "/outputs", 8) != 0)
        return false;
    const char *tail = slash + 8;
    if (*tail == '\0' || strcmp(tail, "/") == 0) {
        *sub = 1;
        return true;
    }
    if (*tail != '/' || tail[1] < '0' || tail[1] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(tail + 1, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *id = v;
    *sub = 2;
    return true;
}

/* The host part of a Host header @v (no port) into @out; false if it is
 * malformed. */
static bool host_part(const char *v, char *out, size_t outlen)
{
    const char *end;
    if (v[0] == '[') {
        end = strchr(v, ']');
        if (end == NULL)
            return false;
        end++;
    } else {
        end = strchr(v, ':');
        if (end == NULL)
            end = v + strlen(v);
    }
    if (*end == ':') {
        for (const char *p = end + 1; *p != '\0'; p++)
            if (!isdigit((unsigned char)*p))
                return false;
    } else if (*end != '\0') {
        return false;
    }
    size_t len = (size_t)(end - v);
    if (len == 0 || len >= outlen)
        return false;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

bool relay_http__host_allowed(const relay_config *cfg, const char *host)
{
    char h[RELAY_ALLOW_LEN], v6[64];
    struct in6_addr a6;
    struct in_addr a4;
    if (!host_part(host, h, sizeof(h)))
        return false;
    size_t len = strlen(h);
    if (h[len - 1] == '.') /* "localhost." is "localhost" */
        h[--len] = '\0';
    if (inet_pton(AF_INET, h, &a4) == 1 || strcasecmp(h, "localhost") == 0)
        return true;
    if (h[0] == '[' && len - 2 < sizeof(v6)) {
        memcpy(v6, h + 1, len - 2);
        v6[len - 2] = '\0';
        if (inet_pton(AF_INET6, v6, &a6) == 1)
            return true;
    }
    for (unsigned i = 0; i < cfg->nallow_host; i++) {
        char a[RELAY_ALLOW_LEN];
        if (host_part(cfg->allow_host[i], a, sizeof(a)) && strcasecmp(a, h) == 0)
            return true;
    }
    return false;
}

/* Origin "http://HOST" (https:// over TLS) names this server when HOST is
 * the request's Host. */
bool relay_http__origin_is_us(const char *origin, const char *host, bool tls)
{
    const char *scheme = tls ? "https://" : "http://";
    size_t n = strlen(scheme);
    return host != NULL && strncasecmp(origin, scheme, n) == 0 && strcasecmp(origin + n, host) == 0;
}

bool relay_http__is_json_type(const char *t)
{
    size_t n = strlen("application/json");
    return strncasecmp(t, "application/json", n) == 0 &&
           (t[n] == '\0' || t[n] == ';' || t[n] == ' ');
}
