/*
 * steward/fd.h — file descriptors steward opens, booked in the ledger.
 *
 * Model
 *   Every descriptor steward creates is recorded as STW_KIND_FD or
 *   STW_KIND_SOCKET right after the system call that made it, and released
 *   from the ledger right before close(). The helpers below do both halves
 *   and make "closed" visible in the variable (-1).
 *
 * Ownership
 *   stw_fd_track() takes no ownership: the caller still owns @fd and must
 *   give it to stw_fd_close() (or untrack it) exactly once. @label is
 *   borrowed and must outlive the record (use literals).
 */
#ifndef STEWARD_FD_H
#define STEWARD_FD_H

#include "steward/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Record @fd (kind STW_KIND_FD or STW_KIND_SOCKET). Returns @fd if it was
 * >= 0 (passing failures through, so `fd = stw_fd_track(open(...), ...)`
 * works), or -errno when @fd < 0 (errno preserved). */
STW_API int stw_fd_track(int fd, int kind, const char *label);

/* Release @*fd from the ledger and close it; sets *fd = -1. Accepts NULL
 * and *fd < 0. Returns 0 or -errno from close(). */
STW_API int stw_fd_close(int *fd);

/* Forget @fd without closing it (its ownership moves outside steward,
 * e.g. dup2'ed into a child). 0 or -ENOENT. */
STW_API int stw_fd_untrack(int fd);

/* pipe2()/eventfd() that record both ends / the descriptor.
 * Return 0 / the fd, or -errno. */
STW_API int stw_pipe(int fds[2], int flags, const char *label);
STW_API int stw_eventfd(unsigned initval, int flags, const char *label);

#ifdef __cplusplus
}
#endif
#endif
