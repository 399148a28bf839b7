/*
 * src/relay/rec_pure.c — the recordings layout's names and the retention
 * rule (rec.h), without I/O, so they are tested on their own.
 */
#include <string.h>
#include <time.h>

#include "rec.h"

const char *relay_rec_reason_name(int r)
{
    static const char *const names[] = {"", "age", "size", "space", "api"};
    return r > 0 && r < RELAY_REC_DEL_REASONS ? names[r] : "?";
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* "YYYY-MM-DD" at @s (exactly 10 bytes used) into y, m, d; false if bad. */
static bool parse_day(const char *s, int *y, int *m, int *d)
{
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
        return false;
    *y = num(s, 4);
    *m = num(s + 5, 2);
    *d = num(s + 8, 2);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return *y >= 1970 && *m >= 1 && *m <= 12 && *d >= 1 && *d <= mdays[*m - 1];
}

/* "HH-MM-SS" at @s (exactly 8 bytes used). */
static bool parse_hms(const char *s, int *h, int *mi, int *sec)
{
    if (!digits(s, 2) || s[2] != '-' || !digits(s + 3, 2) || s[5] != '-' || !digits(s + 6, 2))
        return false;
    *h = num(s, 2);
    *mi = num(s + 3, 2);
    *sec = num(s + 6, 2);
    return *h < 24 && *mi < 60 && *sec < 61;
}

/* Days since the epoch of a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool relay_rec_day_valid(const char *s)
{
    int y, m, d;
    return strlen(s) == 10 && parse_day(s, &y, &m, &d);
}

bool relay_rec_time_valid(const char *s)
{
    int h, m, sec;
    return strlen(s) == 8 && parse_hms(s, &h, &m, &sec);
}

int64_t relay_rec_session_time(const char *day, const char *hms)
{
    int y, m, d, h, mi, s;
    if (strlen(day) != 10 || strlen(hms) != 8 || !parse_day(day, &y, &m, &d) ||
        !parse_hms(hms, &h, &mi, &s))
        return -1;
    return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s;
}

int64_t relay_rec_segment_time(const char *name)
{
    /* YYYY-MM-DDTHH-MM-SSZ.mp4 */
    if (strlen(name) != 24 || name[10] != 'T' || strcmp(name + 19, "Z.mp4") != 0)
        return -1;
    char day[11], hms[9];
    memcpy(day, name, 10);
    day[10] = '\0';
    memcpy(hms, name + 11, 8);
    hms[8] = '\0';
    return relay_rec_session_time(day, hms);
}

bool relay_rec_segment_valid(const char *s)
{
    return relay_rec_segment_time(s) >= 0;
}

/* Past a run of 1 to 10 digits at @s, or NULL. */
static const char *skip_digits(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && n <= 10 ? s + n : NULL;
}

bool relay_rec_staging_valid(const char *s)
{
    if (strncmp(s, ".part-", 6) != 0)
        return false;
    const char *p = skip_digits(s + 6);
    if (p == NULL || *p != '-')
        return false;
    p = skip_digits(p + 1);
    return p != NULL && strcmp(p, ".mp4") == 0;
}

relay_rec_kind relay_rec_path_check(const char *path)
{
    char part[4][32];
    int n = 0;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (n == 4 || len == 0 || len >= sizeof(part[0]))
            return RELAY_REC_BAD;
        memcpy(part[n], p, len);
        part[n][len] = '\0';
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    if (!relay_name_valid(part[0], strlen(part[0])))
        return RELAY_REC_BAD;
    if (n >= 2 && !relay_rec_day_valid(part[1]))
        return RELAY_REC_BAD;
    if (n >= 3 && !relay_rec_time_valid(part[2]))
        return RELAY_REC_BAD;
    if (n == 4 && !relay_rec_segment_valid(part[3]))
        return RELAY_REC_BAD;
    return (relay_rec_kind)n;
}

uint64_t relay_rec_select(relay_rec_entry *e, size_t n, const relay_rec_limits *in_limits,
                          size_t nin, const relay_rec_limits *global, int64_t now_s,
                          uint64_t free_bytes, uint64_t min_free)
{
    for (size_t i = 0; i < n; i++)
        e[i].reason = 0;
    /* Age: the stricter of the input's and the global limit. */
    for (size_t i = 0; i < n; i++) {
        int64_t age = global->max_age_s;
        if (e[i].input >= 0 && (size_t)e[i].input < nin) {
            int64_t own = in_limits[e[i].input].max_age_s;
            if (own > 0 && (age == 0 || own < age))
                age = own;
        }
        if (!e[i].busy && age > 0 && now_s - e[i].start > age)
            e[i].reason = RELAY_REC_DEL_AGE;
    }
    /* Bytes per input, oldest first. */
    for (size_t k = 0; k < nin; k++) {
        if (in_limits[k].max_bytes == 0)
            continue;
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++)
            if (e[i].input == (int)k && e[i].reason == 0)
                sum += e[i].size;
        for (size_t i = 0; i < n && sum > in_limits[k].max_bytes; i++)
            if (e[i].input == (int)k && e[i].reason == 0 && !e[i].busy) {
                e[i].reason = RELAY_REC_DEL_SIZE;
                sum -= e[i].size;
            }
    }
    /* Bytes over everything. */
    uint64_t sum = 0, freed = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].reason == 0)
            sum += e[i].size;
        else
            freed += e[i].size;
    }
    for (size_t i = 0; global->max_bytes > 0 && i < n && sum > global->max_bytes; i++)
        if (e[i].reason == 0 && !e[i].busy) {
            e[i].reason = RELAY_REC_DEL_SIZE;
            sum -= e[i].size;
            freed += e[i].size;
        }
    /* Free space. */
    for (size_t i = 0; i < n && free_bytes + freed < min_free; i++)
        if (e[i].reason == 0 && !e[i].busy) {
            e[i].reason = RELAY_REC_DEL_SPACE;
            freed += e[i].size;
        }
    return free_bytes + freed < min_free ? min_free - free_bytes - freed : 0;
}

relay_rec_gate relay_rec_gate_init(int64_t post_roll_ms)
{
    return (relay_rec_gate){.post_roll_ms = post_roll_ms > 0 ? post_roll_ms : 0};
}

bool relay_rec_gate_step(relay_rec_gate *g, int64_t now_ms, bool active, int64_t since_ms,
                         uint64_t starts)
{
    bool missed = g->primed && starts != g->starts && !active;
    g->starts = starts;
    g->primed = true;
    bool open = g->until_ms != 0 && now_ms < g->until_ms;
    if (active || missed) {
        if (!open) /* a new span: it begins at this motion's start */
            g->since_ms = active && since_ms > 0 && since_ms <= now_ms ? since_ms : now_ms;
        /* While motion lasts the span runs on; once it ended, the
         * post-roll counts from the poll that saw it last. */
        g->until_ms = now_ms + g->post_roll_ms + (g->post_roll_ms == 0 && active ? 1 : 0);
        return true;
    }
    return open;
}
