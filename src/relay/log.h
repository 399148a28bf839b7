/*
 * src/relay/log.h — the relay's log, private to the relay.
 *
 * Model
 *   One line per event: a timestamp, a level, the component that speaks
 *   ("http", "mjpeg", "ffmpeg", "reload", ...) and the input it is about,
 *   then the message. Three shapes:
 *     text     2026-12-02T13:20:01.123Z warning mjpeg input=door: message
 *     journal  <4>mjpeg input=door: message   (stderr is systemd's journal
 *              stream, JOURNAL_STREAM: the journal adds the time, and takes
 *              the level from the syslog priority prefix)
 *     json     {"ts":"...","level":"warning","component":"mjpeg",
 *               "input":"door","msg":"message"}
 *   Levels are syslog's priorities: error 3, warning 4, notice 5, info 6,
 *   debug 7; lines above the configured level are dropped.
 *
 *   Errors and warnings are rate-limited by their text: the first line of
 *   a kind goes out, identical ones within the repeat interval (default
 *   60 s) are counted, and the count goes out with the next one after the
 *   interval or from relay_log_flush() once the interval has passed
 *   ("... (repeated 29 times in 60 s)"). A camera down for a week costs a
 *   line a minute, not one per retry.
 *
 *   With a log file, lines are appended to it; when it would pass the size
 *   limit it is renamed PATH.1 (PATH.1 to PATH.2, ..., up to the number
 *   kept) and a new PATH is started. relay_log_reopen() (SIGUSR1) opens
 *   PATH again, for logrotate's move-then-signal. The file's descriptor
 *   number never changes (a new file is dup3'ed over it), so the one
 *   booked in the ledger at start stays the one that is open.
 *
 * Threads
 *   Every function may be called from any thread; a mutex orders lines,
 *   and each line is one write(). Nothing here allocates.
 */
#ifndef STW_RELAY_LOG_H
#define STW_RELAY_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum {
    RELAY_LOG_ERROR = 3,
    RELAY_LOG_WARNING = 4,
    RELAY_LOG_NOTICE = 5,
    RELAY_LOG_INFO = 6,
    RELAY_LOG_DEBUG = 7,
};

#define RELAY_LOG_PATH_MAX 4096

typedef struct relay_log_opts {
    int level;                     /* RELAY_LOG_*: the most verbose shown */
    bool json;                     /* --log-format=json */
    char file[RELAY_LOG_PATH_MAX]; /* "" : stderr */
    unsigned long long max_bytes;  /* rotate at this size; 0: never */
    unsigned keep;                 /* rotated files kept */
    unsigned repeat_s;             /* rate-limit window of identical errors */
} relay_log_opts;

#define RELAY_LOG_OPTS_DEFAULT                                                                     \
    {                                                                                              \
        .level = RELAY_LOG_INFO, .max_bytes = 10 << 20, .keep = 5, .repeat_s = 60                  \
    }

/* Set the option @opt ("--log-level", "--log-format", "--log-file",
 * "--log-max-size", "--log-keep", "--log-repeat-interval") of @o from
 * @value. Returns 0, -EINVAL for a bad value, -ENOENT for another option. */
int relay_log_option(relay_log_opts *o, const char *opt, const char *value);

/* Start logging as @o says (copied): open the log file, pick the shape.
 * Returns 0 or a negative errno (the file cannot be opened), with the log
 * still going to stderr. */
int relay_log_setup(const relay_log_opts *o);

/* Close the log file (after the last line), back to stderr. */
void relay_log_close(void);

/* Open the log file again (SIGUSR1). 0 without one, or a negative errno
 * (the old file stays). */
int relay_log_reopen(void);

/* Log one event. @component is a short word (borrowed), @input the input
 * name or NULL. The message must not end in a newline. */
void relay_log(int level, const char *component, const char *input, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write out the counts of rate-limited lines whose interval has passed
 * (the loop calls it every second). */
void relay_log_flush(void);

#endif
