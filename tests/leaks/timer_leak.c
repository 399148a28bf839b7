/* leak-test: two POSIX timers created and never deleted (one per clock), one deleted
 * expect: timer 2 arm_timers label~timer:CLOCK_
 * exit: 0
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The planted leaks: the timer ids are dropped, never timer_delete'd. */
static __attribute__((noinline)) void arm_timers(void)
{
    struct sigevent sev = {.sigev_notify = SIGEV_NONE};
    timer_t a, b;
    if (timer_create(CLOCK_MONOTONIC, &sev, &a) != 0 ||
        timer_create(CLOCK_REALTIME, &sev, &b) != 0)
        abort();
    struct itimerspec its = {.it_value = {.tv_sec = 100}};
    timer_settime(a, 0, &its, NULL);
}

static __attribute__((noinline)) void one_deleted(void)
{
    struct sigevent sev = {.sigev_notify = SIGEV_NONE};
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
        abort();
    timer_delete(t);
}

int main(void)
{
    arm_timers();
    one_deleted();
    printf("timers\n");
    return 0;
}
