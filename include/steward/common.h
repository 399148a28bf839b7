/*
 * steward/common.h — conventions shared by every steward module.
 *
 * Model
 *   Every function that can fail returns int: 0 (or a non-negative count)
 *   on success, a negative errno value on failure. stw_strerror() turns it
 *   into text. Misuse that can only be a programming error (unref below
 *   zero, double close, a NULL where the contract forbids it) is not an
 *   error code: STW_BUG() prints where and aborts, in release builds too,
 *   because a silently corrupted refcount is worse than a crash.
 *
 *   Time is CLOCK_MONOTONIC nanoseconds. A deadline is an absolute point on
 *   that clock (stw_deadline); STW_DEADLINE_NEVER waits forever and
 *   STW_DEADLINE_NOW does not wait at all. Every blocking wait in steward
 *   takes a deadline.
 */
#ifndef STEWARD_COMMON_H
#define STEWARD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from libsteward. The checker's preload library compiles the
 * same sources with STW_API defined empty, so its private ledger stays
 * hidden and cannot interpose on the libsteward of the program it checks. */
#ifndef STW_API
#define STW_API __attribute__((visibility("default")))
#endif

#define STW_VERSION_MAJOR 0
#define STW_VERSION_MINOR 1
#define STW_VERSION_PATCH 0
#define STW_VERSION_STRING "0.1.0"

/* Absolute CLOCK_MONOTONIC time in nanoseconds. */
typedef int64_t stw_deadline;

#define STW_DEADLINE_NEVER INT64_MAX
#define STW_DEADLINE_NOW 0

/* Current CLOCK_MONOTONIC time in nanoseconds. Never fails. */
STW_API int64_t stw_now_ns(void);

/* A deadline @ms milliseconds from now; negative @ms means never. */
STW_API stw_deadline stw_deadline_in_ms(int64_t ms);

/* Milliseconds left until @d, rounded up and clamped to [0, INT32_MAX], or -1
 * for STW_DEADLINE_NEVER: exactly what poll() and epoll_wait() expect. */
STW_API int stw_deadline_poll_ms(stw_deadline d);

/* Text for a negative errno return (or a positive errno); never NULL. */
STW_API const char *stw_strerror(int err);

/* Report a broken invariant with its location and abort(). Never returns. */
STW_API void stw__bug(const char *file, int line, const char *func, const char *msg)
    __attribute__((noreturn));

#define STW_BUG(msg) stw__bug(__FILE__, __LINE__, __func__, (msg))
#define STW_BUG_ON(cond)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0))                                                         \
            stw__bug(__FILE__, __LINE__, __func__, #cond);                                         \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
