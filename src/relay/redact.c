#include "redact.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Names whose "=value" is a secret; matched case-insensitively. */
static const char *const secret_keys[] = {
    "password", "passwd", "pass", "pwd", "passphrase", "secret", "token", "key", "apikey",
};

#define HIDDEN "***"

typedef struct writer {
    char *out;
    size_t cap; /* bytes of out, 0 = nothing can be written */
    size_t len; /* bytes written, without the NUL */
    bool cut;
} writer;

static void put(writer *w, const char *s, size_t n)
{
    if (w->cap == 0) {
        w->cut = w->cut || n > 0;
        return;
    }
    size_t room = w->cap - 1 - w->len;
    if (n > room) {
        n = room;
        w->cut = true;
    }
    memcpy(w->out + w->len, s, n);
    w->len += n;
    w->out[w->len] = '\0';
}

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool word_end(char ch)
{
    return ch == '\0' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
           ch == '\f' || ch == '\'' || ch == '"' || ch == '<' || ch == '>';
}

/* At @s, just after "://": where the password of the userinfo starts and
 * ends (the '@'), or false when there is none. */
static bool find_password(const char *s, const char **from, const char **to)
{
    const char *word = s;
    while (!word_end(*word))
        word++;
    const char *auth = s;
    while (auth < word && *auth != '/' && *auth != '?' && *auth != '#')
        auth++;
    const char *at = NULL;
    for (const char *q = s; q < auth; q++) {
        if (*q == '@')
            at = q;
    }
    /* A raw '/', '?' or '#' in the password ends the authority early:
     * then the first '@' of the word closes the userinfo. */
    if (at == NULL)
        at = memchr(auth, '@', (size_t)(word - auth));
    if (at == NULL)
        return false;
    const char *colon = memchr(s, ':', (size_t)(at - s));
    if (colon == NULL)
        return false;
    *from = colon + 1;
    *to = at;
    return true;
}

/* At @s, where a name may start: the length of "name=" when it names a
 * secret, else 0. */
static size_t secret_key_len(const char *s)
{
    for (size_t i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
        size_t n = strlen(secret_keys[i]);
        if (strncasecmp(s, secret_keys[i], n) == 0 && s[n] == '=')
            return n + 1;
    }
    return 0;
}

int relay_redact(const char *in, char *out, size_t outlen)
{
    writer w = {.out = out, .cap = outlen};
    if (outlen > 0)
        out[0] = '\0';
    const char *s = in;
    const char *plain = s; /* start of the text not yet copied */
    /* The password of the URL being scanned, hidden when s gets there; the
     * user before it is scanned like any text. */
    const char *hide_from = NULL, *hide_to = NULL;
    while (*s != '\0') {
        if (s == hide_from) {
            put(&w, plain, (size_t)(s - plain));
            put(&w, HIDDEN, strlen(HIDDEN));
            s = plain = hide_to;
            hide_from = hide_to = NULL;
            continue;
        }
        if (hide_from == NULL && s[0] == ':' && s[1] == '/' && s[2] == '/') {
            const char *from, *to;
            if (find_password(s + 3, &from, &to) && to > from) {
                hide_from = from;
                hide_to = to;
            }
            s += 3;
            continue;
        }
        size_t k = s == in || !is_alnum(s[-1]) ? secret_key_len(s) : 0;
        if (k > 0) {
            const char *v = s + k, *end = v;
            while (!word_end(*end) && *end != '&' && *end != '#')
                end++;
            if (end > v) {
                put(&w, plain, (size_t)(v - plain));
                put(&w, HIDDEN, strlen(HIDDEN));
                /* A value running over the password hid it already. */
                if (hide_from != NULL && end >= hide_from) {
                    if (end < hide_to)
                        end = hide_to;
                    hide_from = hide_to = NULL;
                }
                s = plain = end;
                continue;
            }
        }
        s++;
    }
    put(&w, plain, (size_t)(s - plain));
    return w.cut ? -ENOSPC : 0;
}
