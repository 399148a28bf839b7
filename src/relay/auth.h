/*
 * src/relay/auth.h — who may do what on the relay: users of the config
 * file, their credentials and permissions; private to the relay.
 *
 * Model
 *   Users are declared in the config file (config.h) with an argon2id
 *   password hash (crypto_pwhash_str), token hashes (BLAKE2b-256 of a
 *   random 256-bit token) and permissions: read, publish, admin (admin
 *   includes the others). A request proves a user with HTTP Basic
 *   (user:password) or "Authorization: Bearer TOKEN"; every path needs one
 *   permission (relay_auth_need()), except /healthz.
 *
 *   Without users, a loopback listener serves everyone (as before); any
 *   other address refuses to start unless --insecure-no-auth says so.
 *
 *   Checking a password costs an argon2id run (a few hundred ms and the
 *   hash's memory): it runs on a verifier thread of the http scope, never
 *   on the loop, one at a time, with at most 8 waiting (503 beyond). A
 *   password that verified once is remembered as a keyed BLAKE2b digest
 *   (key random per process, never the password), so the requests that
 *   follow cost a hash and a constant-time compare on the loop. Failures
 *   are answered after AUTH_FAIL_DELAY_MS by a libevent timer (the loop
 *   never sleeps), and an address with AUTH_FAIL_MAX failures within
 *   AUTH_FAIL_WINDOW_S is answered 429 without any check until the window
 *   ends.
 *
 * Threads
 *   The request side (http_auth.c) runs on the loop thread, except the
 *   argon2id checks on its verifier thread.
 *
 * Ownership
 *   relay_auth and its pending answers belong to the relay_http; pending
 *   answers are freed when sent or when their connection closes. libsodium
 *   has no allocator hook: argon2id's memory (64 MiB per check) is its own,
 *   taken and returned within each check.
 */
#ifndef STW_RELAY_AUTH_H
#define STW_RELAY_AUTH_H

#include <stdbool.h>
#include <stdio.h>

#include "relay.h"

#define AUTH_FAIL_DELAY_MS 200
#define AUTH_FAIL_MAX 10
#define AUTH_FAIL_WINDOW_S 60

/* steward relay --hash-password: read one line (the password) from @in,
 * print its argon2id hash to @out. Returns 0 or a negative errno (with a
 * message on stderr). */
int relay_auth_hash_password(FILE *in, FILE *out);

/* steward relay --new-token: print a new random token and the line to put
 * in the config file. Returns 0 or a negative errno. */
int relay_auth_new_token(FILE *out);

/* Refuse (message on stderr, -EACCES) to serve a non-loopback address
 * without users unless cfg->insecure_no_auth. */
int relay_auth_check_listen(const relay_config *cfg);

#endif
