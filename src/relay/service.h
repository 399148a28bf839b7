/*
 * src/relay/service.h — the relay under a service manager, private to the
 * relay: systemd's notify protocol and watchdog (through libsystemd's
 * sd_notify), and the signals an operator sends a running relay (SIGHUP:
 * reload the config file; SIGUSR1: reopen the log file).
 *
 * Model
 *   Outside systemd (no NOTIFY_SOCKET) every notify is a no-op. Under it,
 *   the relay says READY=1 from its event loop's first turn (the listener
 *   is bound and the inputs are loaded by then), STATUS= lines as inputs
 *   and viewers change, RELOADING=1/READY=1 around a reload, and
 *   STOPPING=1 when the ordered shutdown begins. With WatchdogSec= set
 *   (WATCHDOG_USEC), the loop pings WATCHDOG=1 every half period from a
 *   timer of its own: a loop that stops turning stops the pings and
 *   systemd restarts the relay. The loop side lives in http_service.c.
 *
 *   SIGHUP and SIGUSR1 would end the process by default; they are blocked
 *   in every thread (relay_service_block_signals() in the main thread
 *   before any thread exists) and read by the loop through a signalfd.
 *
 * Threads
 *   relay_service_notify*() may be called from any thread.
 */
#ifndef STW_RELAY_SERVICE_H
#define STW_RELAY_SERVICE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Send @state ("READY=1", "STATUS=...", newline-separated assignments,
 * borrowed) to the service manager. Returns true if one is listening. */
bool relay_service_notify(const char *state);

/* As relay_service_notify, formatted. */
bool relay_service_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The watchdog period systemd asks for, in microseconds; 0 when off. */
uint64_t relay_service_watchdog_usec(void);

/* The operator's signals (SIGHUP, SIGUSR1) into @set. */
void relay_service_sigset(sigset_t *set);

/* Block them in the calling thread; threads created after inherit it.
 * Returns 0 or a negative errno. */
int relay_service_block_signals(void);

#endif
