/*
 * src/relay/http_parse.h — parsing of request fields for the relay's HTTP
 * server (http_parse.c), private to it.
 *
 * Model
 *   Pure functions on NUL-terminated strings libevent split out of a
 *   request: no allocation, no libevent, no state, so that
 *   tests/fuzz/fuzz_http_request.c can run them alone.
 *
 * Ownership
 *   Every argument is borrowed; results point into the caller's strings or
 *   buffers.
 */
#ifndef STW_RELAY_HTTP_PARSE_H
#define STW_RELAY_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"

/* Decode the percent escapes of @raw into @out (strlen(@raw) + 1 bytes)
 * and drop one trailing slash; *@len gets the length. Returns 0, or
 * -EINVAL for a bad escape or an encoded NUL (@out is then undefined). */
int relay_http__decode_path(const char *raw, char *out, size_t *len);

/* Parse "NAME[/outputs[/ID]|/motion]" (what follows "/api/inputs/"):
 * *@name and *@nlen get NAME (pointing into @rest); *@sub is 0 (the
 * input), 1 (its outputs), 2 (one output, *@id) or 3 (its motion
 * detection). Returns false for anything else. */
bool relay_http__parse_input_path(const char *rest, const char **name, size_t *nlen, int *sub,
                                  uint64_t *id);

/* True if the Host header value @host names this server: an IP literal,
 * localhost, or one of cfg->allow_host (the port is not compared). */
bool relay_http__host_allowed(const relay_config *cfg, const char *host);

/* True if @origin is "http://" (or with @tls "https://") followed by @host
 * (the request's Host). */
bool relay_http__origin_is_us(const char *origin, const char *host, bool tls);

/* True if the Content-Type value @t is application/json (any parameters). */
bool relay_http__is_json_type(const char *t);

#endif
