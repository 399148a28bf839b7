#include "steward/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t stw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

stw_deadline stw_deadline_in_ms(int64_t ms)
{
    if (ms < 0)
        return STW_DEADLINE_NEVER;
    int64_t now = stw_now_ns();
    if (ms > (INT64_MAX - now) / 1000000)
        return STW_DEADLINE_NEVER;
    return now + ms * 1000000;
}

int stw_deadline_poll_ms(stw_deadline d)
{
    if (d == STW_DEADLINE_NEVER)
        return -1;
    int64_t left = d - stw_now_ns();
    if (left <= 0)
        return 0;
    /* Round up so a wait never returns just before its deadline. */
    int64_t ms = (left + 999999) / 1000000;
    return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

const char *stw_strerror(int err)
{
    if (err < 0)
        err = -err;
    /* strerror() may use a static buffer for unknown codes; the known ones
     * are constant strings, which is all steward returns. */
    return strerror(err);
}

void stw__bug(const char *file, int line, const char *func, const char *msg)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "steward BUG at %s:%d in %s(): %s\n", file, line, func, msg);
    if (n > 0)
        (void)!write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    abort();
}
