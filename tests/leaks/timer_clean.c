/* leak-test: timers created and deleted, signal and thread notification, and a failed
 * timer_create that must book nothing (clean)
 * expect: none
 * exit: 0
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t fired;

static void on_alarm(int sig)
{
    (void)sig;
    fired = 1;
}

static __attribute__((noinline)) void signal_timer(void)
{
    signal(SIGRTMIN, on_alarm);
    struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN};
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
        abort();
    struct itimerspec its = {.it_value = {.tv_nsec = 1000000}};
    timer_settime(t, 0, &its, NULL);
    while (!fired)
        usleep(1000);
    timer_delete(t);
}

static atomic_int notified;

static void on_expiry(union sigval v)
{
    (void)v;
    atomic_store(&notified, 1);
}

/* glibc runs the notification on a helper thread it starts itself. */
static __attribute__((noinline)) void thread_timer(void)
{
    struct sigevent sev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_expiry};
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
        abort();
    struct itimerspec its = {.it_value = {.tv_nsec = 1000000}};
    timer_settime(t, 0, &its, NULL);
    while (!atomic_load(&notified))
        usleep(1000);
    timer_delete(t);
}

static __attribute__((noinline)) void failed_create(void)
{
    struct sigevent sev = {.sigev_notify = SIGEV_NONE};
    timer_t t;
    if (timer_create((clockid_t)12345, &sev, &t) == 0 || errno != EINVAL)
        abort();
}

int main(void)
{
    signal_timer();
    thread_timer();
    failed_create();
    printf("clean\n");
    return 0;
}
