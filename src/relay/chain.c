/*
 * src/relay/chain.c — the X-Steward-Relay lists (chain.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "chain.h"
#include "relay.h"

/* The next id of @p: *@id gets its start, returns its length (0 at the
 * end); @p moves past it. Malformed entries come back with length -1. */
static int next_id(const char **p, const char **id)
{
    const char *s = *p;
    while (*s == ' ' || *s == ',' || *s == '\t')
        s++;
    if (*s == '\0') {
        *p = s;
        return 0;
    }
    *id = s;
    while (*s != '\0' && *s != ',' && *s != ' ' && *s != '\t')
        s++;
    *p = s;
    int n = (int)(s - *id);
    if (n != RELAY_VIA_ID_LEN)
        return -1;
    for (int i = 0; i < n; i++) {
        char c = (*id)[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
    }
    return n;
}

bool relay_via_has(const char *list, const char *id)
{
    if (list == NULL || strlen(id) != RELAY_VIA_ID_LEN)
        return false;
    const char *p = list, *s = NULL;
    int n;
    while ((n = next_id(&p, &s)) != 0)
        if (n > 0 && memcmp(s, id, RELAY_VIA_ID_LEN) == 0)
            return true;
    return false;
}

void relay_via_merge(char *acc, const char *list)
{
    if (list == NULL)
        return;
    size_t len = strlen(acc);
    unsigned count = len == 0 ? 0 : (unsigned)((len + 1) / (RELAY_VIA_ID_LEN + 1));
    const char *p = list, *s = NULL;
    int n;
    while (count < RELAY_VIA_IDS && (n = next_id(&p, &s)) != 0) {
        if (n < 0)
            continue;
        char id[RELAY_VIA_ID_LEN + 1];
        memcpy(id, s, RELAY_VIA_ID_LEN);
        id[RELAY_VIA_ID_LEN] = '\0';
        if (relay_via_has(acc, id))
            continue;
        if (len > 0)
            acc[len++] = ',';
        memcpy(acc + len, id, RELAY_VIA_ID_LEN + 1);
        len += RELAY_VIA_ID_LEN;
        count++;
    }
}

void relay_input_set_via(relay_input *in, const char *via)
{
    pthread_mutex_lock(&in->lock);
    snprintf(in->via, sizeof(in->via), "%s", via);
    pthread_mutex_unlock(&in->lock);
}

void relay_input_via(relay_input *in, char *out)
{
    pthread_mutex_lock(&in->lock);
    memcpy(out, in->via, sizeof(in->via));
    pthread_mutex_unlock(&in->lock);
}

void relay_via_header(relay_input *in, const char *instance, char *out, unsigned len)
{
    char via[RELAY_VIA_MAX];
    relay_input_via(in, via);
    snprintf(out, len, RELAY_LOOP_HEADER ": %s%s%s", instance, via[0] != '\0' ? "," : "", via);
}
