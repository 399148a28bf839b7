/* leak-test: one each of eventfd, timerfd, signalfd, epoll, inotify and memfd, never closed
 * expect: fd 1 leak_eventfd label~eventfd
 * expect: fd 1 leak_timerfd label~timerfd
 * expect: fd 1 leak_signalfd label~signalfd
 * expect: fd 1 leak_epoll label~epoll
 * expect: fd 1 leak_inotify label~inotify
 * expect: fd 1 leak_memfd label~memfd:planted
 * exit: 0
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) static int leak_eventfd(void)
{
    return eventfd(0, EFD_CLOEXEC);
}

__attribute__((noinline)) static int leak_timerfd(void)
{
    return timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
}

/* signalfd(-1) creates a descriptor; signalfd(fd) on it only changes its
 * mask and must not be booked a second time. */
__attribute__((noinline)) static int leak_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    sigaddset(&set, SIGUSR2);
    return fd < 0 ? -1 : signalfd(fd, &set, 0);
}

__attribute__((noinline)) static int leak_epoll(void)
{
    return epoll_create1(EPOLL_CLOEXEC);
}

__attribute__((noinline)) static int leak_inotify(void)
{
    return inotify_init1(IN_CLOEXEC);
}

__attribute__((noinline)) static int leak_memfd(void)
{
    return memfd_create("planted", MFD_CLOEXEC);
}

int main(void)
{
    if (leak_eventfd() < 0 || leak_timerfd() < 0 || leak_signalfd() < 0 || leak_epoll() < 0 ||
        leak_inotify() < 0 || leak_memfd() < 0)
        return 1;
    printf("six descriptors left open\n");
    return 0;
}
