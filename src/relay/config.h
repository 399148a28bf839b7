/*
 * src/relay/config.h — the relay's config file (--config PATH), private to
 * the relay.
 *
 * Model
 *   A YAML file (docs/relay-config.md) declares what an operator wants to
 *   exist whatever happens through the API: the listen address and limits
 *   (the command-line options, which override it), users with their
 *   permissions, TLS, and inputs. It is read before the relay starts, and
 *   again on SIGHUP (http_reload.c applies it), with libfyaml: every key is
 *   checked, an unknown key is an error, and every error names the file,
 *   the line and the key.
 *
 *   Scalars that are options are checked by relay_option_set(), exactly as
 *   on the command line; inputs go through relay_spec_parse(), exactly as
 *   POST /api/inputs.
 *
 * Invariants
 *   A user has a password hash (argon2id, crypto_pwhash_str) or at least
 *   one token hash, and at least one permission. Declared inputs have
 *   distinct valid names and spec.declared set.
 *
 * Ownership
 *   relay_file is plain data owned by the caller (relay_main keeps one in
 *   static storage: it is large and lives until exit). libfyaml's document
 *   is freed before relay_config_load() returns; libfyaml 0.7 has no
 *   allocator hook, so its memory is malloc's (seen by `steward check`),
 *   and all of it is gone before the relay's baseline.
 */
#ifndef STW_RELAY_CONFIG_H
#define STW_RELAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "relay.h"

#define RELAY_USERS_MAX 32
#define RELAY_USER_MAX 64      /* a user name with its NUL */
#define RELAY_HASH_MAX 128     /* crypto_pwhash_STRBYTES */
#define RELAY_TOKENS_MAX 4     /* token hashes per user */
#define RELAY_TOKEN_HASH 32    /* BLAKE2b-256 */
#define RELAY_PASSWORD_MAX 512 /* bytes of a password */

/* Permissions; admin includes the others. */
enum {
    RELAY_PERM_READ = 1,    /* watch streams and snapshots, read the inputs, events, metrics */
    RELAY_PERM_PUBLISH = 2, /* create and delete inputs and outputs */
    RELAY_PERM_ADMIN = 4,   /* /system-resources, /cleanup-resources, /debug/... */
};

typedef struct relay_user {
    char name[RELAY_USER_MAX];
    char password_hash[RELAY_HASH_MAX]; /* "$argon2id$...", or "" (tokens only) */
    unsigned char tokens[RELAY_TOKENS_MAX][RELAY_TOKEN_HASH];
    unsigned ntokens;
    unsigned perms; /* RELAY_PERM_* */
} relay_user;

typedef struct relay_file {
    char path[RELAY_PATH_MAX]; /* the config file, "" without one */
    relay_user users[RELAY_USERS_MAX];
    unsigned nusers;
    char tls_cert[RELAY_PATH_MAX]; /* PEM files, "" without TLS */
    char tls_key[RELAY_PATH_MAX];
    relay_spec inputs[RELAY_INPUTS_MAX];
    unsigned ninputs;
} relay_file;

/* The value of --config in @argv, or NULL. */
const char *relay_config_path(int argc, char **argv);

/*
 * Read @path into @cfg (options, over its defaults) and @file (users, TLS,
 * inputs; @cfg->file is set to @file). Returns 0, or -EINVAL with
 * "PATH:LINE: KEY: what is wrong" (or the libfyaml or I/O error) in @err.
 */
int relay_config_load(const char *path, relay_config *cfg, relay_file *file, char *err,
                      size_t errlen);

/* Print @cfg (and its file's users, TLS and inputs) as a config file to
 * @f, with password and token hashes shown as "***" and camera URLs
 * redacted. */
void relay_config_print(FILE *f, const relay_config *cfg);

/* True if @host (as in --listen) is a loopback address: 127.0.0.0/8, ::1,
 * localhost. */
bool relay_host_loopback(const char *host);

#endif
