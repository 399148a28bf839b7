/*
 * tests/fuzz/fuzz_http_request.c — libFuzzer target for the relay's
 * parsing of request fields (src/relay/http_parse.c): the path with its
 * percent escapes and /api/inputs/NAME[/outputs[/ID]|/motion], the Host header,
 * Content-Type and Origin.
 *
 * The input is split at its first two NUL bytes into a path, a Host value
 * and a third field used as Content-Type and Origin, so one corpus
 * exercises all of them. Besides the sanitizers' checks, it asserts what
 * the router relies on: a decoded path has no NUL and is no longer than
 * its raw form (without escapes: the same, less at most one trailing
 * slash); a parsed input name lies inside the string and has no slash.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *field(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
    size_t len = nul != NULL ? (size_t)(nul - *p) : (size_t)(end - *p);
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    memcpy(s, *p, len);
    s[len] = '\0';
    *p = nul != NULL ? nul + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static relay_config cfg = {.nallow_host = 2,
                               .allow_host = {"relay.example", "cam.example:8080"},
                               .ncors_origin = 1,
                               .cors_origin = {"https://nvr.example"}};
    const uint8_t *p = data, *end = data + size;
    char *path = field(&p, end);
    char *host = field(&p, end);
    char *third = field(&p, end);

    size_t rawlen = strlen(path), len = 0;
    char *dec = malloc(rawlen + 1);
    if (dec == NULL)
        abort();
    if (relay_http__decode_path(path, dec, &len) == 0) {
        assert(len <= rawlen && strlen(dec) == len);
        /* Without escapes the path comes back as it was, less at most
         * one trailing slash. */
        if (strchr(path, '%') == NULL)
            assert(memcmp(dec, path, len) == 0 &&
                   (len == rawlen || (len + 1 == rawlen && path[len] == '/')));
        if (strncmp(dec, "/api/inputs/", 12) == 0) {
            const char *name;
            size_t nlen;
            int sub;
            uint64_t id;
            if (relay_http__parse_input_path(dec + 12, &name, &nlen, &sub, &id)) {
                assert(name == dec + 12 && nlen <= len - 12);
                assert(memchr(name, '/', nlen) == NULL);
                assert(sub >= 0 && sub <= 3);
                /* Only the input itself and its motion need a name. */
                assert(nlen > 0 || sub == 1 || sub == 2);
            }
        }
    }
    (void)relay_http__host_allowed(&cfg, host);
    (void)relay_http__origin_is_us(third, host, false);
    (void)relay_http__origin_is_us(third, host, true);
    (void)relay_http__is_json_type(third);
    free(dec);
    free(path);
    free(host);
    free(third);
    return 0;
}
