/*
 * src/relay/service.c — sd_notify and the watchdog period (service.h).
 * Without libsystemd at build time (-Dsystemd=disabled) the relay still
 * runs; it just never tells a service manager anything.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "service.h"

bool relay_service_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
    return sd_notify(0, state) > 0;
#else
    (void)state;
    return false;
#endif
}

bool relay_service_notifyf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return relay_service_notify(buf);
}

uint64_t relay_service_watchdog_usec(void)
{
#ifdef HAVE_LIBSYSTEMD
    uint64_t usec = 0;
    /* Checks WATCHDOG_PID where systemd set it: a child that inherited the
     * variables does not ping for us. */
    if (sd_watchdog_enabled(0, &usec) > 0)
        return usec;
#endif
    return 0;
}

void relay_service_sigset(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

int relay_service_block_signals(void)
{
    sigset_t set;
    relay_service_sigset(&set);
    return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}
