#include "steward/fd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "steward/ledger.h"

int stw_fd_track(int fd, int kind, const char *label)
{
    if (fd < 0)
        return -errno;
    STW_BUG_ON(kind != STW_KIND_FD && kind != STW_KIND_SOCKET);
    int rc = stw_ledger_record(kind, (uint64_t)fd, 0, label);
    /* A live record for this number means someone closed it behind the
     * ledger's back; the books are wrong, and that is a bug to surface. */
    STW_BUG_ON(rc == -EEXIST);
    return fd;
}

int stw_fd_untrack(int fd)
{
    if (stw_ledger_release(STW_KIND_FD, (uint64_t)fd) == 0)
        return 0;
    return stw_ledger_release(STW_KIND_SOCKET, (uint64_t)fd);
}

int stw_fd_close(int *fd)
{
    if (fd == NULL || *fd < 0)
        return 0;
    int n = *fd;
    *fd = -1;
    /* Release before close: once closed, another thread may get the same
     * number back from the kernel and record it. */
    stw_fd_untrack(n);
    /* Linux always frees the descriptor, even when close() reports EINTR,
     * so it must not be retried. */
    if (close(n) != 0 && errno != EINTR)
        return -errno;
    return 0;
}

int stw_pipe(int fds[2], int flags, const char *label)
{
    if (pipe2(fds, flags) != 0)
        return -errno;
    stw_fd_track(fds[0], STW_KIND_FD, label);
    stw_fd_track(fds[1], STW_KIND_FD, label);
    return 0;
}

int stw_eventfd(unsigned initval, int flags, const char *label)
{
    return stw_fd_track(eventfd(initval, flags), STW_KIND_FD, label);
}
