/*
 * src/relay/log.c — the relay's log (log.h): shapes, levels, the
 * rate-limit of repeated errors, the log file with rotation and reopen.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "steward/common.h"
#include "steward/fd.h"
#include "steward/ledger.h"

enum { SHAPE_TEXT, SHAPE_JOURNAL, SHAPE_JSON };

#define REPEAT_SLOTS 64
#define LINE_MAX_BYTES 2048

typedef struct repeat_slot {
    uint64_t hash;     /* 0: free */
    int64_t window_ns; /* when the line last went out */
    unsigned suppressed;
    int level;
    char component[16];
    char input[32];
    char text[256];
} repeat_slot;

static struct {
    pthread_mutex_t lock;
    relay_log_opts o;
    int shape;
    int fd; /* 2, or the log file (its number fixed while open) */
    uint64_t size;
    repeat_slot rep[REPEAT_SLOTS];
} L = {.lock = PTHREAD_MUTEX_INITIALIZER, .o = RELAY_LOG_OPTS_DEFAULT, .fd = 2};

static const char *const level_names[8] = {"emerg",   "alert",  "crit", "error",
                                           "warning", "notice", "info", "debug"};

static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
        return false;
    *out = v;
    return true;
}

int relay_log_option(relay_log_opts *o, const char *opt, const char *v)
{
    unsigned long n;
    if (strcmp(opt, "--log-level") == 0) {
        for (int i = RELAY_LOG_ERROR; i <= RELAY_LOG_DEBUG; i++)
            if (strcmp(v, level_names[i]) == 0 ||
                (strcmp(v, "warn") == 0 && i == RELAY_LOG_WARNING)) {
                o->level = i;
                return 0;
            }
        return -EINVAL;
    }
    if (strcmp(opt, "--log-format") == 0) {
        if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0)
            return -EINVAL;
        o->json = strcmp(v, "json") == 0;
        return 0;
    }
    if (strcmp(opt, "--log-file") == 0) {
        size_t len = strlen(v);
        if (len == 0 || len + 16 >= sizeof(o->file))
            return -EINVAL;
        memcpy(o->file, v, len + 1);
        return 0;
    }
    if (strcmp(opt, "--log-max-size") == 0) {
        /* BYTES with an optional k or M suffix; 0 never rotates. */
        char *end;
        errno = 0;
        unsigned long long b = strtoull(v, &end, 10);
        if (errno != 0 || end == v || v[0] == '-')
            return -EINVAL;
        if (*end == 'k' || *end == 'K')
            b <<= 10, end++;
        else if (*end == 'M' || *end == 'm')
            b <<= 20, end++;
        if (*end != '\0' || (b != 0 && b < 4096) || b > (1ULL << 40))
            return -EINVAL;
        o->max_bytes = b;
        return 0;
    }
    if (strcmp(opt, "--log-keep") == 0) {
        if (!parse_num(v, 100, &n))
            return -EINVAL;
        o->keep = (unsigned)n;
        return 0;
    }
    if (strcmp(opt, "--log-repeat-interval") == 0) {
        if (!parse_num(v, 86400, &n))
            return -EINVAL;
        o->repeat_s = (unsigned)n;
        return 0;
    }
    return -ENOENT;
}

/* stderr is the journal's stream when JOURNAL_STREAM names its device and
 * inode (systemd.exec(5)). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Open @path for appending, as a descriptor booked in the ledger. */
static int open_file(const char *path)
{
    return stw_fd_track(open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640), STW_KIND_FD,
                        "file:relay-log");
}

/* Put a freshly opened @path over L.fd (same number). Lock held. */
static int swap_in(const char *path)
{
    int nfd = open_file(path);
    if (nfd < 0)
        return nfd;
    int rc = 0;
    if (dup3(nfd, L.fd, O_CLOEXEC) < 0)
        rc = -errno;
    stw_fd_close(&nfd);
    struct stat st;
    if (rc == 0)
        L.size = fstat(L.fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return rc;
}

int relay_log_setup(const relay_log_opts *o)
{
    pthread_mutex_lock(&L.lock);
    L.o = *o;
    L.shape = o->json ? SHAPE_JSON : SHAPE_TEXT;
    int rc = 0;
    if (o->file[0] != '\0') {
        int fd = open_file(o->file);
        if (fd < 0) {
            rc = fd;
            L.o.file[0] = '\0';
        } else {
            L.fd = fd;
            struct stat st;
            L.size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
        }
    }
    if (L.o.file[0] == '\0' && !o->json && stderr_is_journal())
        L.shape = SHAPE_JOURNAL;
    pthread_mutex_unlock(&L.lock);
    return rc;
}

void relay_log_close(void)
{
    relay_log_flush();
    pthread_mutex_lock(&L.lock);
    if (L.fd != 2)
        stw_fd_close(&L.fd);
    L.fd = 2;
    L.o.file[0] = '\0';
    pthread_mutex_unlock(&L.lock);
}

int relay_log_reopen(void)
{
    pthread_mutex_lock(&L.lock);
    int rc = L.fd != 2 && L.o.file[0] != '\0' ? swap_in(L.o.file) : 0;
    pthread_mutex_unlock(&L.lock);
    return rc;
}

/* PATH -> PATH.1 -> ... -> PATH.keep (dropped past it), then a new PATH.
 * Lock held. A rotation that fails keeps writing to the current file. */
static void rotate(void)
{
    char from[RELAY_LOG_PATH_MAX + 16], to[RELAY_LOG_PATH_MAX + 16];
    if (L.o.keep == 0) {
        if (ftruncate(L.fd, 0) == 0)
            L.size = 0;
        return;
    }
    for (unsigned i = L.o.keep; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof(from), "%s", L.o.file);
        else
            snprintf(from, sizeof(from), "%s.%u", L.o.file, i - 1);
        snprintf(to, sizeof(to), "%s.%u", L.o.file, i);
        if (rename(from, to) != 0 && errno != ENOENT)
            return;
    }
    swap_in(L.o.file);
}

static void write_all(const char *buf, size_t len)
{
    if (L.fd != 2 && L.o.max_bytes > 0 && L.size > 0 && L.size + len > L.o.max_bytes)
        rotate();
    while (len > 0) {
        ssize_t w = write(L.fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
        L.size += (uint64_t)w;
    }
}

/* Append @s JSON-escaped to @out at *@n (bounded by @cap). */
static void json_text(char *out, size_t cap, size_t *n, const char *s)
{
    for (; *s != '\0' && *n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)c;
        } else if (c < 0x20) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
        } else {
            out[(*n)++] = (char)c;
        }
    }
}

/* Format and write one line. Lock held. */
static void emit(int level, const char *component, const char *input, const char *text,
                 unsigned repeated, unsigned window_s)
{
    char line[LINE_MAX_BYTES];
    size_t n = 0;
    char stamp[40] = "";
    if (L.shape != SHAPE_JOURNAL) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + k, sizeof(stamp) - k, ".%03ldZ", ts.tv_nsec / 1000000);
    }
    const char *lv = level_names[level & 7];
    if (L.shape == SHAPE_JSON) {
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"",
                             stamp, lv);
        json_text(line, sizeof(line), &n, component);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\"");
        if (input != NULL) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"input\":\"");
            json_text(line, sizeof(line), &n, input);
            n += (size_t)snprintf(line + n, sizeof(line) - n, "\"");
        }
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"msg\":\"");
        json_text(line, sizeof(line) - 64, &n, text);
        if (repeated > 0)
            n += (size_t)snprintf(line + n, sizeof(line) - n,
                                  "\",\"repeated\":%u,\"repeat_window_s\":%u}\n", repeated,
                                  window_s);
        else
            n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}\n");
    } else {
        int w;
        if (L.shape == SHAPE_JOURNAL)
            w = snprintf(line, sizeof(line), "<%d>%s", level, component);
        else
            w = snprintf(line, sizeof(line), "%s %s %s", stamp, lv, component);
        n = (size_t)w;
        if (input != NULL)
            n += (size_t)snprintf(line + n, sizeof(line) - n, " input=%s", input);
        n += (size_t)snprintf(line + n, sizeof(line) - n - 2, ": %s", text);
        if (n > sizeof(line) - 64)
            n = sizeof(line) - 64;
        if (repeated > 0)
            n += (size_t)snprintf(line + n, sizeof(line) - n, " (repeated %u times in %u s)",
                                  repeated, window_s);
        line[n++] = '\n';
    }
    if (n > sizeof(line))
        n = sizeof(line);
    write_all(line, n);
}

static uint64_t hash_of(const char *component, const char *input, const char *text)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    const char *parts[3] = {component, input != NULL ? input : "", text};
    for (int p = 0; p < 3; p++) {
        for (const char *s = parts[p]; *s != '\0'; s++) {
            /* "retrying in 1600 ms" and "... 3200 ms" are one error. */
            if (*s >= '0' && *s <= '9')
                continue;
            h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        }
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h != 0 ? h : 1;
}

/* Whether this error goes out now; counts it otherwise. Lock held. */
static bool admit(int level, const char *component, const char *input, const char *text,
                  unsigned *repeated)
{
    *repeated = 0;
    if (level > RELAY_LOG_WARNING || L.o.repeat_s == 0)
        return true;
    int64_t now = stw_now_ns(), window = (int64_t)L.o.repeat_s * 1000000000LL;
    uint64_t h = hash_of(component, input, text);
    repeat_slot *oldest = &L.rep[0];
    for (int i = 0; i < REPEAT_SLOTS; i++) {
        repeat_slot *r = &L.rep[i];
        if (r->hash == h) {
            if (now - r->window_ns < window) {
                r->suppressed++;
                return false;
            }
            *repeated = r->suppressed;
            r->suppressed = 0;
            r->window_ns = now;
            return true;
        }
        if (r->hash == 0 || r->window_ns < oldest->window_ns)
            oldest = r;
    }
    if (oldest->hash != 0 && oldest->suppressed > 0)
        emit(oldest->level, oldest->component, oldest->input[0] ? oldest->input : NULL,
             oldest->text, oldest->suppressed, L.o.repeat_s);
    *oldest = (repeat_slot){.hash = h, .window_ns = now, .level = level};
    snprintf(oldest->component, sizeof(oldest->component), "%s", component);
    snprintf(oldest->input, sizeof(oldest->input), "%s", input != NULL ? input : "");
    size_t tl = strnlen(text, sizeof(oldest->text) - 1);
    memcpy(oldest->text, text, tl);
    oldest->text[tl] = '\0';
    return true;
}

void relay_log(int level, const char *component, const char *input, const char *fmt, ...)
{
    if (level > L.o.level)
        return;
    char text[LINE_MAX_BYTES - 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    /* One event, one line. */
    for (char *p = text; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    pthread_mutex_lock(&L.lock);
    unsigned repeated;
    if (admit(level, component, input, text, &repeated))
        emit(level, component, input, text, repeated, L.o.repeat_s);
    pthread_mutex_unlock(&L.lock);
}

void relay_log_flush(void)
{
    pthread_mutex_lock(&L.lock);
    int64_t now = stw_now_ns(), window = (int64_t)L.o.repeat_s * 1000000000LL;
    for (int i = 0; i < REPEAT_SLOTS; i++) {
        repeat_slot *r = &L.rep[i];
        if (r->hash != 0 && r->suppressed > 0 && now - r->window_ns >= window) {
            emit(r->level, r->component, r->input[0] ? r->input : NULL, r->text, r->suppressed,
                 L.o.repeat_s);
            r->suppressed = 0;
            r->window_ns = now;
        }
    }
    pthread_mutex_unlock(&L.lock);
}
