/*
 * src/relay/auth.c — the command-line side of users and credentials:
 * --hash-password, --new-token and the check of the listen address
 * (auth.h has the model; http_auth.c checks requests).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "config.h"

int relay_auth_hash_password(FILE *in, FILE *out)
{
    char pw[RELAY_PASSWORD_MAX + 2];
    char hash[crypto_pwhash_STRBYTES];
    if (sodium_init() < 0) {
        fprintf(stderr, "steward relay: libsodium cannot start\n");
        return -EIO;
    }
    /* Typed at a terminal: prompt, and do not echo it. */
    struct termios old, quiet;
    bool tty = isatty(fileno(in)) && tcgetattr(fileno(in), &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(in), TCSAFLUSH, &quiet);
        fprintf(stderr, "Password: ");
    }
    char *got = fgets(pw, sizeof(pw), in);
    if (tty) {
        tcsetattr(fileno(in), TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (got == NULL) {
        fprintf(stderr, "steward relay: --hash-password reads the password from stdin\n");
        return -EINVAL;
    }
    size_t len = strcspn(pw, "\r\n");
    bool whole = pw[len] != '\0' || feof(in);
    pw[len] = '\0';
    int rc = 0;
    if (len == 0) {
        fprintf(stderr, "steward relay: empty password\n");
        rc = -EINVAL;
    } else if (!whole || len > RELAY_PASSWORD_MAX) {
        fprintf(stderr, "steward relay: a password is at most %d bytes\n", RELAY_PASSWORD_MAX);
        rc = -EINVAL;
    } else if (crypto_pwhash_str(hash, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        fprintf(stderr, "steward relay: out of memory hashing the password\n");
        rc = -ENOMEM;
    } else {
        fprintf(out, "%s\n", hash);
    }
    sodium_memzero(pw, sizeof(pw));
    return rc;
}

int relay_auth_new_token(FILE *out)
{
    unsigned char tok[32], digest[RELAY_TOKEN_HASH];
    char text[2 * sizeof(tok) + 1], hex[2 * RELAY_TOKEN_HASH + 1];
    if (sodium_init() < 0)
        return -EIO;
    randombytes_buf(tok, sizeof(tok));
    sodium_bin2hex(text, sizeof(text), tok, sizeof(tok));
    /* The token is what clients send: its text is hashed, not its bytes. */
    crypto_generichash(digest, sizeof(digest), (const unsigned char *)text, strlen(text), NULL, 0);
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    fprintf(out,
            "token: %s\n"
            "# in the user's entry of the config file:\n"
            "token_hashes: [\"blake2b256:%s\"]\n",
            text, hex);
    sodium_memzero(text, sizeof(text));
    return 0;
}

int relay_auth_check_listen(const relay_config *cfg)
{
    bool users = cfg->file != NULL && cfg->file->nusers > 0;
    if (users || cfg->insecure_no_auth || relay_host_loopback(cfg->host))
        return 0;
    fprintf(stderr,
            "steward relay: refusing to serve %s without users: anyone who can reach it could "
            "watch, change and inspect everything. Declare users in a config file (--config, "
            "docs/relay-config.md), or pass --insecure-no-auth if a proxy or firewall in front "
            "does that\n",
            cfg->host);
    return -EACCES;
}
