/*
 * Descriptor tracking: every hooked call that creates a file descriptor,
 * socket, FILE or DIR stream books it in the checker's ledger with its
 * creation stack and a label saying what it is; the calls that end them
 * release the record. docs/checker-fds.md describes the rules.
 *
 * Besides the ledger records, each descriptor number has a flags byte:
 *   inherited  open when the checker started (or a standard descriptor the
 *              program redirected with dup2): not the program's to close;
 *   checker    created by the checker itself (a hook reached with the
 *              ledger guard held): never booked, never reconciled;
 *   stream     owned by a tracked FILE or DIR: the stream is the record.
 * The report asks stw__fd_inherited(), and the exit reconciliation skips
 * numbers with any of these flags.
 *
 * Labels of descriptors live in per-number slots rather than in the
 * permanent label arena, which a long-running server accepting connections
 * would exhaust. Each number has two slots per bank (descriptors, streams)
 * used alternately, so a snapshot that still holds the label of a closed
 * descriptor keeps reading intact text until the number has been reused
 * twice; the last byte of a slot is never written, so even a torn read
 * stays inside it. Numbers beyond the slots fall back to stw__check_label.
 *
 * Records are released before the call that closes the descriptor and
 * booked after the call that creates it: once the kernel frees a number,
 * another thread may get it back and book it at once.
 */
/* The hooks define the plain symbols (open, fopen, fcntl): glibc must not
 * redirect them to their 64-bit or fortified names. */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <wchar.h>

#include "../ledger/ledger_internal.h"
#include "check_internal.h"

/* The fortified entry points programs built with -D_FORTIFY_SOURCE call
 * instead of open/openat; glibc declares them only under fortification. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

/* With _GNU_SOURCE glibc declares the socket calls with a transparent
 * union for the address; the definitions must match. */
#if defined(__USE_GNU) && !defined(__cplusplus)
#define SA_PTR(a) ((a).__sockaddr__)
#else
#define SA_PTR(a) (a)
#endif

/* ---- per-number flags and label slots ---- */

#define FLAGS_CAP (1 << 20)
#define LABEL_FDS (1 << 14)
#define LABEL_LEN 160

enum {
    FL_INHERITED = 1,
    FL_CHECKER = 2,
    FL_STREAM = 4,
    FL_OWNERS = FL_INHERITED | FL_CHECKER | FL_STREAM,
    FL_TOGGLE_FD = 8,
    FL_TOGGLE_STREAM = 16,
};

enum bank { BANK_FD, BANK_STREAM };

typedef char label_slots[2][LABEL_FDS][2][LABEL_LEN];

static uint8_t *flags_tab;
static label_slots *labels_tab;

/* Reserve @size bytes into *@slot on first use, never freed: pages are
 * committed only for the numbers actually used. Taken with the guard held
 * so that another module's mmap hook does not book it as the program's. */
static void *lazy_reserve(void **slot, size_t size)
{
    void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (p != NULL)
        return p;
    bool g = stw_ledger_guard_enter();
    void *fresh = stw__pages_reserve(size);
    if (g)
        stw_ledger_guard_exit();
    if (fresh == NULL)
        return NULL;
    void *expected = NULL;
    if (!__atomic_compare_exchange_n(slot, &expected, fresh, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        stw__pages_free(fresh, size);
        return expected;
    }
    return fresh;
}

static uint8_t *flag_byte(int fd)
{
    if (fd < 0 || fd >= FLAGS_CAP)
        return NULL;
    uint8_t *t = lazy_reserve((void **)&flags_tab, FLAGS_CAP);
    return t != NULL ? &t[fd] : NULL;
}

static uint8_t fl_get(int fd)
{
    uint8_t *b = flag_byte(fd);
    return b != NULL ? __atomic_load_n(b, __ATOMIC_ACQUIRE) : 0;
}

/* Replace the ownership flags of @fd with @own (label toggles kept). */
static void fl_own(int fd, uint8_t own)
{
    uint8_t *b = flag_byte(fd);
    if (b == NULL)
        return;
    __atomic_fetch_and(b, (uint8_t)~FL_OWNERS, __ATOMIC_ACQ_REL);
    if (own != 0)
        __atomic_fetch_or(b, own, __ATOMIC_ACQ_REL);
}

/* Format a label for descriptor number @fd into its next slot in @bank. */
__attribute__((format(printf, 3, 4))) static const char *fd_label(enum bank bank, int fd,
                                                                  const char *fmt, ...)
{
    uint8_t *b = fd < LABEL_FDS ? flag_byte(fd) : NULL;
    label_slots *t = b != NULL ? lazy_reserve((void **)&labels_tab, sizeof(label_slots)) : NULL;
    va_list ap;
    va_start(ap, fmt);
    if (t == NULL) {
        char tmp[LABEL_LEN];
        vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        return stw__check_label("%s", tmp);
    }
    uint8_t bit = bank == BANK_FD ? FL_TOGGLE_FD : FL_TOGGLE_STREAM;
    uint8_t old = __atomic_fetch_xor(b, bit, __ATOMIC_ACQ_REL);
    char *dst = (*t)[bank][fd][(old & bit) ? 0 : 1];
    /* LABEL_LEN - 1: the slot's last byte stays 0 for torn readers. */
    if (vsnprintf(dst, LABEL_LEN - 1, fmt, ap) < 0)
        snprintf(dst, LABEL_LEN - 1, "?");
    va_end(ap);
    return dst;
}

/* ---- describing descriptors ---- */

static bool tracked(int kind)
{
    return (stw__copts.kinds & STW_KIND_BIT(kind)) != 0;
}

/* The process whose books these are. A child made with vfork (Python's
 * subprocess does) shares this memory until it execs, and closes and dups
 * descriptors meanwhile: its hooks must not touch the parent's records.
 * A forked child has its own copy and books of its own from the fork on
 * (stw__fds_forked); any other process passes straight through. */
static pid_t owner_pid;

/* True while the checker is tracking, in the process that booked. */
static bool active(void)
{
    if (!stw__check_ready())
        return false;
    pid_t self = getpid();
    pid_t owner = __atomic_load_n(&owner_pid, __ATOMIC_RELAXED);
    /* Normally set by stw__fds_init; the first tracking call claims it
     * otherwise. */
    if (owner == 0 && __atomic_compare_exchange_n(&owner_pid, &owner, self, false, __ATOMIC_RELAXED,
                                                  __ATOMIC_RELAXED))
        owner = self;
    return self == owner;
}

void stw__fds_forked(void)
{
    __atomic_store_n(&owner_pid, getpid(), __ATOMIC_RELAXED);
}

/* As active(), initialising the checker on first use like the heap hooks. */
static bool ready(void)
{
    if (!stw__check_ready())
        stw__check_init();
    return active();
}

static void oflags_text(int flags, char *out, size_t len)
{
    const char *acc = (flags & O_ACCMODE) == O_WRONLY ? "O_WRONLY"
                      : (flags & O_ACCMODE) == O_RDWR ? "O_RDWR"
                                                      : "O_RDONLY";
    if ((flags & O_PATH) == O_PATH)
        acc = "O_PATH";
    snprintf(out, len, "%s%s%s%s%s%s", acc, (flags & O_CREAT) ? "|O_CREAT" : "",
             (flags & O_TRUNC) ? "|O_TRUNC" : "", (flags & O_APPEND) ? "|O_APPEND" : "",
             (flags & O_DIRECTORY) && (flags & O_TMPFILE) != O_TMPFILE ? "|O_DIRECTORY" : "",
             (flags & O_TMPFILE) == O_TMPFILE ? "|O_TMPFILE" : "");
}

static void sock_name(int domain, int type, int proto, char *out, size_t len)
{
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    const char *t = type == SOCK_STREAM      ? "stream"
                    : type == SOCK_DGRAM     ? "dgram"
                    : type == SOCK_SEQPACKET ? "seqpacket"
                    : type == SOCK_RAW       ? "raw"
                                             : "other";
    if (domain == AF_INET || domain == AF_INET6) {
        const char *v6 = domain == AF_INET6 ? "6" : "";
        if (type == SOCK_STREAM && (proto == 0 || proto == IPPROTO_TCP))
            snprintf(out, len, "tcp%s", v6);
        else if (type == SOCK_DGRAM && (proto == 0 || proto == IPPROTO_UDP))
            snprintf(out, len, "udp%s", v6);
        else
            snprintf(out, len, "inet%s %s proto %d", v6, t, proto);
    } else if (domain == AF_UNIX) {
        snprintf(out, len, "unix %s", t);
    } else if (domain == AF_NETLINK) {
        snprintf(out, len, "netlink proto %d", proto);
    } else if (domain == AF_PACKET) {
        snprintf(out, len, "packet %s", t);
    } else {
        snprintf(out, len, "family %d %s", domain, t);
    }
}

/* Text for a socket address; empty for an unbound or unnamed one. */
static void addr_text(const struct sockaddr *sa, socklen_t salen, char *out, size_t len)
{
    out[0] = '\0';
    if (sa == NULL || salen < (socklen_t)sizeof(sa_family_t))
        return;
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (in->sin_port == 0 && in->sin_addr.s_addr == 0)
            return;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (in6->sin6_port == 0 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            return;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t n = (size_t)salen - offsetof(struct sockaddr_un, sun_path);
        if (n == 0 || n > sizeof(un->sun_path))
            return;
        if (un->sun_path[0] == '\0') /* abstract namespace */
            snprintf(out, len, "@%.*s", (int)(n - 1), un->sun_path + 1);
        else
            snprintf(out, len, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    }
}

/* "tcp 127.0.0.1:40000 -> 127.0.0.1:8080": kind, local address, peer
 * (@peer when given, else whatever the kernel says). */
static void sock_text(int fd, const struct sockaddr *peer, socklen_t peerlen, char *out, size_t len)
{
    int domain = -1, type = -1, proto = 0;
    socklen_t ol = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &ol);
    ol = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol);
    ol = sizeof(int);
    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &ol);
    char name[48], local[128], remote[128];
    sock_name(domain, type, proto, name, sizeof(name));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    local[0] = '\0';
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_text((struct sockaddr *)&ss, sl, local, sizeof(local));
    remote[0] = '\0';
    if (peer != NULL) {
        addr_text(peer, peerlen, remote, sizeof(remote));
    } else {
        sl = sizeof(ss);
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
            addr_text((struct sockaddr *)&ss, sl, remote, sizeof(remote));
    }
    snprintf(out, len, "%s%s%s%s%s", name, local[0] ? " " : "", local, remote[0] ? " -> " : "",
             remote);
}

/* What /proc/self/fd says @fd is; false when it cannot say. */
static bool fd_target(int fd, char *out, size_t len)
{
    char path[40];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, out, len - 1);
    if (n < 0) {
        snprintf(out, len, "?");
        return false;
    }
    out[n] = '\0';
    return true;
}

/* A label for an fd of unknown origin (dup, fdopen): what it is now. */
static void fd_text(int fd, char *out, size_t len)
{
    char t[160];
    fd_target(fd, t, sizeof(t));
    static const struct {
        const char *target, *label;
    } anon[] = {
        {"anon_inode:[eventfd]", "eventfd"},   {"anon_inode:[timerfd]", "timerfd"},
        {"anon_inode:[signalfd]", "signalfd"}, {"anon_inode:inotify", "inotify"},
        {"anon_inode:[eventpoll]", "epoll"},
    };
    for (size_t i = 0; i < sizeof(anon) / sizeof(anon[0]); i++)
        if (strcmp(t, anon[i].target) == 0) {
            snprintf(out, len, "%s", anon[i].label);
            return;
        }
    if (strncmp(t, "socket:", 7) == 0) {
        char s[160];
        sock_text(fd, NULL, 0, s, sizeof(s));
        snprintf(out, len, "socket:%.150s", s);
    } else if (strncmp(t, "pipe:", 5) == 0) {
        snprintf(out, len, "pipe");
    } else if (strncmp(t, "/memfd:", 7) == 0) {
        snprintf(out, len, "memfd:%.*s", (int)strcspn(t + 7, " "), t + 7);
    } else {
        snprintf(out, len, "file:%.150s", t);
    }
}

static bool is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ---- booking ---- */

enum what {
    W_OPEN,
    W_SOCKET,
    W_ACCEPT,
    W_PAIR,
    W_PIPE_READ,
    W_PIPE_WRITE,
    W_EVENTFD,
    W_TIMERFD,
    W_SIGNALFD,
    W_INOTIFY,
    W_EPOLL,
    W_MEMFD,
    W_DUP,
    W_RECEIVED,
};

/* How a new descriptor came to be, for its label. */
typedef struct fd_new {
    enum what what;
    const char *path;        /* W_OPEN: as given; W_MEMFD: the name */
    int dirfd;               /* W_OPEN: AT_FDCWD or the directory */
    int oflags;              /* W_OPEN */
    int domain, type, proto; /* W_SOCKET, W_PAIR */
    int src;                 /* W_DUP: the original; W_RECEIVED: the socket */
    bool onto;               /* W_DUP: dup2/dup3 onto a chosen number */
} fd_new;

static const char *new_label(int fd, const fd_new *n)
{
    char t[160];
    switch (n->what) {
    case W_OPEN: {
        char fl[96];
        oflags_text(n->oflags, fl, sizeof(fl));
        if (n->path != NULL && (n->path[0] == '/' || n->dirfd == AT_FDCWD))
            return fd_label(BANK_FD, fd, "file:%s (%s)", n->path, fl);
        fd_target(fd, t, sizeof(t));
        return fd_label(BANK_FD, fd, "file:%s (%s)", t, fl);
    }
    case W_SOCKET:
        sock_name(n->domain, n->type, n->proto, t, sizeof(t));
        return fd_label(BANK_FD, fd, "socket:%s", t);
    case W_PAIR:
        sock_name(n->domain, n->type, n->proto, t, sizeof(t));
        return fd_label(BANK_FD, fd, "socket:%s (pair)", t);
    case W_ACCEPT:
        sock_text(fd, NULL, 0, t, sizeof(t));
        return fd_label(BANK_FD, fd, "socket:%s", t);
    case W_PIPE_READ:
        return fd_label(BANK_FD, fd, "pipe (read end)");
    case W_PIPE_WRITE:
        return fd_label(BANK_FD, fd, "pipe (write end)");
    case W_EVENTFD:
        return "eventfd";
    case W_TIMERFD:
        return "timerfd";
    case W_SIGNALFD:
        return "signalfd";
    case W_INOTIFY:
        return "inotify";
    case W_EPOLL:
        return "epoll";
    case W_MEMFD:
        return fd_label(BANK_FD, fd, "memfd:%s", n->path != NULL ? n->path : "");
    case W_DUP:
        fd_text(fd, t, sizeof(t));
        return fd_label(BANK_FD, fd, "%s (dup of fd %d)", t, n->src);
    case W_RECEIVED:
        fd_text(fd, t, sizeof(t));
        return fd_label(BANK_FD, fd, "%s (received over fd %d)", t, n->src);
    }
    return NULL;
}

/* Book the new descriptor @fd. Called directly by the hooks: the stack
 * starts at the hook's caller (skip 2: this function and the hook). */
static __attribute__((noinline)) void note_fd(int fd, const fd_new *n)
{
    if (fd < 0)
        return;
    int saved = errno;
    if (!ready())
        goto out;
    /* The guard is held while shard locks are taken, so that a signal
     * handler calling a hook on this thread passes through instead of
     * waiting for a lock its own thread holds. */
    if (!stw_ledger_guard_enter()) {
        /* The checker's own (a report file, libdw reading debug info). */
        fl_own(fd, FL_CHECKER);
        goto out;
    }
    /* dup2 onto a standard descriptor the program was given redirects it;
     * it stays as much "not the program's to close" as it was. */
    fl_own(fd, n->what == W_DUP && n->onto ? (fl_get(fd) & FL_INHERITED) : 0);
    /* The kernel just handed out this number: any record for it is stale
     * (the descriptor it stood for was closed by a call not hooked, or
     * implicitly replaced by dup2). */
    stw__ledger_remove(STW_KIND_FD, (uint64_t)fd);
    stw__ledger_remove(STW_KIND_SOCKET, (uint64_t)fd);
    bool sock = n->what == W_SOCKET || n->what == W_ACCEPT || n->what == W_PAIR ||
                ((n->what == W_DUP || n->what == W_RECEIVED) && is_socket(fd));
    int kind = sock ? STW_KIND_SOCKET : STW_KIND_FD;
    const char *label = tracked(kind) ? new_label(fd, n) : NULL;
    stw_ledger_guard_exit();
    if (label != NULL)
        stw__check_record(kind, (uint64_t)fd, 0, label, 2);
out:
    errno = saved;
}

/* Forget descriptor @fd, about to be closed. */
static void forget_fd(int fd)
{
    stw__ledger_remove(STW_KIND_FD, (uint64_t)fd);
    stw__ledger_remove(STW_KIND_SOCKET, (uint64_t)fd);
    fl_own(fd, 0);
}

static void note_close(int fd)
{
    if (fd < 0)
        return;
    int saved = errno;
    if (active()) {
        if (stw_ledger_guard_enter()) {
            forget_fd(fd);
            stw_ledger_guard_exit();
        } else {
            fl_own(fd, 0);
        }
    }
    errno = saved;
}

/* Relabel a booked socket after bind/connect changed its addresses. */
static void note_addr(int fd, const struct sockaddr *peer, socklen_t peerlen)
{
    int saved = errno;
    if (fd < 0 || !active() || !tracked(STW_KIND_SOCKET) || !stw_ledger_guard_enter())
        goto out;
    if (stw_ledger_lookup(STW_KIND_SOCKET, (uint64_t)fd, NULL) == 0) {
        char t[160];
        sock_text(fd, peer, peerlen, t, sizeof(t));
        stw_ledger_set_label(STW_KIND_SOCKET, (uint64_t)fd, fd_label(BANK_FD, fd, "socket:%s", t));
    }
    stw_ledger_guard_exit();
out:
    errno = saved;
}

/* ---- listing /proc/self/fd without malloc ---- */

struct kdirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Call @fn for every open descriptor except the one used for the listing.
 * Raw system calls: no allocation, no hooks. Returns 0 or -errno. */
static int each_fd(void (*fn)(int fd, void *ud), void *ud)
{
    int dfd =
        (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            const struct kdirent64 *d = (const struct kdirent64 *)(buf + off);
            off += d->d_reclen;
            const char *p = d->d_name;
            if (*p < '0' || *p > '9')
                continue;
            long fd = 0;
            for (; *p >= '0' && *p <= '9' && fd <= 0x7fffffff / 10; p++)
                fd = fd * 10 + (*p - '0');
            if (*p == '\0' && fd != dfd)
                fn((int)fd, ud);
        }
    }
    syscall(SYS_close, dfd);
    return 0;
}

static void book_inherited(int fd, void *ud)
{
    (void)ud;
    fl_own(fd, FL_INHERITED);
    char t[160];
    fd_target(fd, t, sizeof(t));
    int kind = strncmp(t, "socket:", 7) == 0 ? STW_KIND_SOCKET : STW_KIND_FD;
    if (tracked(kind))
        stw__ledger_insert(kind, (uint64_t)fd, 0, 0, fd_label(BANK_FD, fd, "inherited:%s", t));
}

void stw__fds_init(void)
{
    int saved = errno;
    __atomic_store_n(&owner_pid, getpid(), __ATOMIC_RELAXED);
    each_fd(book_inherited, NULL);
    errno = saved;
}

static void reconcile_one(int fd, void *ud)
{
    int *count = ud;
    if ((fl_get(fd) & FL_OWNERS) != 0 || stw_ledger_lookup(STW_KIND_FD, (uint64_t)fd, NULL) == 0 ||
        stw_ledger_lookup(STW_KIND_SOCKET, (uint64_t)fd, NULL) == 0)
        return;
    char t[160];
    fd_target(fd, t, sizeof(t));
    if (stw__ledger_insert(STW_KIND_FD, (uint64_t)fd, 0, 0,
                           fd_label(BANK_FD, fd, "untracked:%s", t)) == 0)
        (*count)++;
}

/* Streams booked by other hooks (popen, in procs.c) own a descriptor this
 * file never saw. Their FILE records name the stream; its descriptor is
 * read with process_vm_readv, which fails cleanly instead of faulting if a
 * stream was freed behind the checker's back (fcloseall). */
static void mark_stream_fds(void)
{
    stw_snapshot_opts so = {.kinds = STW_KIND_BIT(STW_KIND_FILE), .records = true};
    stw_snapshot *s = NULL;
    if (stw_snapshot_new(&so, &s) != 0)
        return;
    for (size_t i = 0; i < s->nrecords; i++) {
        FILE *f = (FILE *)(uintptr_t)s->records[i].id;
        int fd = -1;
        struct iovec local = {.iov_base = &fd, .iov_len = sizeof(fd)};
        struct iovec remote = {.iov_base = &f->_fileno, .iov_len = sizeof(fd)};
        if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)sizeof(fd) &&
            fd >= 0 && stw_ledger_lookup(STW_KIND_FD, (uint64_t)fd, NULL) != 0 &&
            stw_ledger_lookup(STW_KIND_SOCKET, (uint64_t)fd, NULL) != 0)
            fl_own(fd, (fl_get(fd) & FL_OWNERS) | FL_STREAM);
    }
    stw_snapshot_free(&s);
}

int stw__fds_reconcile(void)
{
    if (!tracked(STW_KIND_FD))
        return 0;
    int saved = errno;
    int count = 0;
    mark_stream_fds();
    each_fd(reconcile_one, &count);
    errno = saved;
    return count;
}

bool stw__fd_inherited(const stw_record *r)
{
    return (r->kind == STW_KIND_FD || r->kind == STW_KIND_SOCKET) && r->id < FLAGS_CAP &&
           (fl_get((int)r->id) & FL_INHERITED) != 0;
}

typedef struct range {
    unsigned lo, hi;
    bool program;
} range;

static void close_in_range(int fd, void *ud)
{
    const range *r = ud;
    if ((unsigned)fd < r->lo || (unsigned)fd > r->hi)
        return;
    if (r->program)
        forget_fd(fd);
    else
        fl_own(fd, 0);
}

static void note_close_range(unsigned lo, unsigned hi)
{
    int saved = errno;
    if (active()) {
        range r = {.lo = lo, .hi = hi, .program = stw_ledger_guard_enter()};
        each_fd(close_in_range, &r);
        if (r.program)
            stw_ledger_guard_exit();
    }
    errno = saved;
}

/* ---- streams ---- */

/* Book a new FILE or DIR @p over descriptor @fd (-1: a memory stream).
 * The stream owns the descriptor from now on: a record the descriptor had
 * (it came from open, then fdopen) is dropped, so a leaked stream is one
 * finding. Called directly by the hooks (skip 2). */
static __attribute__((noinline)) void note_stream(int kind, void *p, int fd, const char *what,
                                                  const char *mode)
{
    if (p == NULL)
        return;
    int saved = errno;
    if (!ready())
        goto out;
    if (!stw_ledger_guard_enter()) {
        fl_own(fd, FL_CHECKER);
        goto out;
    }
    char t[160];
    if (fd >= 0 && what == NULL && kind == STW_KIND_DIR)
        fd_target(fd, t, sizeof(t));
    else if (fd >= 0 && what == NULL)
        fd_text(fd, t, sizeof(t));
    if (fd >= 0) {
        stw__ledger_remove(STW_KIND_FD, (uint64_t)fd);
        stw__ledger_remove(STW_KIND_SOCKET, (uint64_t)fd);
        fl_own(fd, FL_STREAM);
    }
    /* Same address live again: the old stream ended by a call not hooked. */
    stw__ledger_remove(kind, (uintptr_t)p);
    const char *label = NULL;
    if (!tracked(kind))
        label = NULL;
    else if (fd < 0)
        label = what;
    else if (kind == STW_KIND_DIR)
        label = fd_label(BANK_STREAM, fd, "dir:%s", what != NULL ? what : t);
    else if (what == NULL)
        label = fd_label(BANK_STREAM, fd, "fdopen:%s (%s)", t, mode);
    else if (mode == NULL)
        label = fd_label(BANK_STREAM, fd, "%s", what);
    else
        label = fd_label(BANK_STREAM, fd, "file:%s (%s)", what, mode);
    stw_ledger_guard_exit();
    if (label != NULL)
        stw__check_record(kind, (uintptr_t)p, 0, label, 2);
out:
    errno = saved;
}

/* A stream about to be closed, with the descriptor it closes (-1: none).
 * libc closes it internally, past the close hook, so it is released here. */
static void note_stream_close(int kind, void *p, int fd)
{
    int saved = errno;
    if (p != NULL && active()) {
        if (stw_ledger_guard_enter()) {
            stw__ledger_remove(kind, (uintptr_t)p);
            if (fd >= 0)
                forget_fd(fd);
            stw_ledger_guard_exit();
        } else if (fd >= 0) {
            fl_own(fd, 0);
        }
    }
    errno = saved;
}

static int stream_fd(FILE *f)
{
    int saved = errno;
    int fd = f != NULL ? fileno_unlocked(f) : -1;
    errno = saved;
    return fd;
}

/* ---- hooks: files ---- */

#define MODE_ARG(flags, last)                                                                      \
    mode_t mode = 0;                                                                               \
    if (__OPEN_NEEDS_MODE(flags)) {                                                                \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = va_arg(ap, mode_t);                                                                 \
        va_end(ap);                                                                                \
    }

STW_HOOK int open(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    STW_REAL(int, open, (const char *, int, ...));
    int fd = real_open(path, flags, mode);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = AT_FDCWD, .oflags = flags});
    return fd;
}

STW_HOOK int open64(const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    STW_REAL(int, open64, (const char *, int, ...));
    int fd = real_open64(path, flags, mode);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = AT_FDCWD, .oflags = flags});
    return fd;
}

STW_HOOK int openat(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    STW_REAL(int, openat, (int, const char *, int, ...));
    int fd = real_openat(dirfd, path, flags, mode);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = dirfd, .oflags = flags});
    return fd;
}

STW_HOOK int openat64(int dirfd, const char *path, int flags, ...)
{
    MODE_ARG(flags, flags);
    STW_REAL(int, openat64, (int, const char *, int, ...));
    int fd = real_openat64(dirfd, path, flags, mode);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = dirfd, .oflags = flags});
    return fd;
}

STW_HOOK int __open_2(const char *path, int flags)
{
    STW_REAL(int, __open_2, (const char *, int));
    int fd = real___open_2(path, flags);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = AT_FDCWD, .oflags = flags});
    return fd;
}

STW_HOOK int __open64_2(const char *path, int flags)
{
    STW_REAL(int, __open64_2, (const char *, int));
    int fd = real___open64_2(path, flags);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = AT_FDCWD, .oflags = flags});
    return fd;
}

STW_HOOK int __openat_2(int dirfd, const char *path, int flags)
{
    STW_REAL(int, __openat_2, (int, const char *, int));
    int fd = real___openat_2(dirfd, path, flags);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = dirfd, .oflags = flags});
    return fd;
}

STW_HOOK int __openat64_2(int dirfd, const char *path, int flags)
{
    STW_REAL(int, __openat64_2, (int, const char *, int));
    int fd = real___openat64_2(dirfd, path, flags);
    note_fd(fd, &(fd_new){.what = W_OPEN, .path = path, .dirfd = dirfd, .oflags = flags});
    return fd;
}

STW_HOOK int creat(const char *path, mode_t mode)
{
    STW_REAL(int, creat, (const char *, mode_t));
    int fd = real_creat(path, mode);
    note_fd(fd, &(fd_new){.what = W_OPEN,
                          .path = path,
                          .dirfd = AT_FDCWD,
                          .oflags = O_WRONLY | O_CREAT | O_TRUNC});
    return fd;
}

STW_HOOK int creat64(const char *path, mode_t mode)
{
    STW_REAL(int, creat64, (const char *, mode_t));
    int fd = real_creat64(path, mode);
    note_fd(fd, &(fd_new){.what = W_OPEN,
                          .path = path,
                          .dirfd = AT_FDCWD,
                          .oflags = O_WRONLY | O_CREAT | O_TRUNC});
    return fd;
}

/* ---- hooks: sockets ---- */

STW_HOOK int socket(int domain, int type, int proto)
{
    STW_REAL(int, socket, (int, int, int));
    int fd = real_socket(domain, type, proto);
    note_fd(fd, &(fd_new){.what = W_SOCKET, .domain = domain, .type = type, .proto = proto});
    return fd;
}

STW_HOOK int socketpair(int domain, int type, int proto, int sv[2])
{
    STW_REAL(int, socketpair, (int, int, int, int[2]));
    int rc = real_socketpair(domain, type, proto, sv);
    if (rc == 0) {
        fd_new n = {.what = W_PAIR, .domain = domain, .type = type, .proto = proto};
        note_fd(sv[0], &n);
        note_fd(sv[1], &n);
    }
    return rc;
}

/* The peer's address is taken with getpeername rather than read back from
 * the caller's buffer: when the kernel truncated the address to fit that
 * buffer, reading the reported length would go past its end. */
STW_HOOK int accept(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len)
{
    STW_REAL(int, accept, (int, __SOCKADDR_ARG, socklen_t *restrict));
    int nfd = real_accept(fd, addr, len);
    note_fd(nfd, &(fd_new){.what = W_ACCEPT});
    return nfd;
}

STW_HOOK int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *restrict len, int flags)
{
    STW_REAL(int, accept4, (int, __SOCKADDR_ARG, socklen_t *restrict, int));
    int nfd = real_accept4(fd, addr, len, flags);
    note_fd(nfd, &(fd_new){.what = W_ACCEPT});
    return nfd;
}

/* Descriptors passed over a Unix socket (SCM_RIGHTS) are new descriptors
 * of the receiver's, made by recvmsg: booked there, with its stack. The
 * loop stays in the hooks (not a helper) so that note_fd's stack starts at
 * the hook's caller. */
#define NOTE_RECEIVED(sock, msg)                                                                   \
    for (struct cmsghdr *c_ = CMSG_FIRSTHDR(msg); c_ != NULL; c_ = CMSG_NXTHDR(msg, c_)) {         \
        if (c_->cmsg_level != SOL_SOCKET || c_->cmsg_type != SCM_RIGHTS)                           \
            continue;                                                                              \
        size_t n_ = (c_->cmsg_len - CMSG_LEN(0)) / sizeof(int);                                    \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                       \
            int rfd_;                                                                              \
            memcpy(&rfd_, CMSG_DATA(c_) + i_ * sizeof(int), sizeof(int));                          \
            note_fd(rfd_, &(fd_new){.what = W_RECEIVED, .src = (sock)});                           \
        }                                                                                          \
    }

STW_HOOK ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    STW_REAL(ssize_t, recvmsg, (int, struct msghdr *, int));
    ssize_t n = real_recvmsg(fd, msg, flags);
    if (n >= 0 && msg != NULL && msg->msg_control != NULL)
        NOTE_RECEIVED(fd, msg);
    return n;
}

STW_HOOK int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                      struct timespec *timeout)
{
    STW_REAL(int, recvmmsg, (int, struct mmsghdr *, unsigned int, int, struct timespec *));
    int n = real_recvmmsg(fd, vec, vlen, flags, timeout);
    for (int k = 0; k < n; k++)
        if (vec[k].msg_hdr.msg_control != NULL)
            NOTE_RECEIVED(fd, &vec[k].msg_hdr);
    return n;
}

STW_HOOK int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    STW_REAL(int, bind, (int, __CONST_SOCKADDR_ARG, socklen_t));
    int rc = real_bind(fd, addr, len);
    if (rc == 0)
        note_addr(fd, NULL, 0);
    return rc;
}

/* A non-blocking connect that is under way (EINPROGRESS) already has its
 * local address and its peer. */
STW_HOOK int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    STW_REAL(int, connect, (int, __CONST_SOCKADDR_ARG, socklen_t));
    int rc = real_connect(fd, addr, len);
    if (rc == 0 || errno == EINPROGRESS) {
        const struct sockaddr *peer = SA_PTR(addr);
        bool unspec =
            peer == NULL || len < (socklen_t)sizeof(sa_family_t) || peer->sa_family == AF_UNSPEC;
        note_addr(fd, unspec ? NULL : peer, unspec ? 0 : len);
    }
    return rc;
}

/* ---- hooks: pipes, dup, fcntl ---- */

STW_HOOK int pipe(int fds[2])
{
    STW_REAL(int, pipe, (int[2]));
    int rc = real_pipe(fds);
    if (rc == 0) {
        note_fd(fds[0], &(fd_new){.what = W_PIPE_READ});
        note_fd(fds[1], &(fd_new){.what = W_PIPE_WRITE});
    }
    return rc;
}

STW_HOOK int pipe2(int fds[2], int flags)
{
    STW_REAL(int, pipe2, (int[2], int));
    int rc = real_pipe2(fds, flags);
    if (rc == 0) {
        note_fd(fds[0], &(fd_new){.what = W_PIPE_READ});
        note_fd(fds[1], &(fd_new){.what = W_PIPE_WRITE});
    }
    return rc;
}

STW_HOOK int dup(int fd)
{
    STW_REAL(int, dup, (int));
    int nfd = real_dup(fd);
    note_fd(nfd, &(fd_new){.what = W_DUP, .src = fd});
    return nfd;
}

/* dup2/dup3 close whatever @to was, atomically: the number is never free,
 * so its old record is replaced after the call (see note_fd), and a failed
 * call leaves it untouched. dup2(fd, fd) changes nothing. */
STW_HOOK int dup2(int fd, int to)
{
    STW_REAL(int, dup2, (int, int));
    int nfd = real_dup2(fd, to);
    if (fd != to)
        note_fd(nfd, &(fd_new){.what = W_DUP, .src = fd, .onto = true});
    return nfd;
}

STW_HOOK int dup3(int fd, int to, int flags)
{
    STW_REAL(int, dup3, (int, int, int));
    int nfd = real_dup3(fd, to, flags);
    note_fd(nfd, &(fd_new){.what = W_DUP, .src = fd, .onto = true});
    return nfd;
}

/* The third argument is whatever the command takes (nothing, an int, a
 * pointer); like glibc's own wrapper, it is read as a pointer-sized value
 * and passed on unchanged. */
STW_HOOK int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    STW_REAL(int, fcntl, (int, int, ...));
    int rc = real_fcntl(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        note_fd(rc, &(fd_new){.what = W_DUP, .src = fd});
    return rc;
}

STW_HOOK int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    STW_REAL(int, fcntl64, (int, int, ...));
    int rc = real_fcntl64(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        note_fd(rc, &(fd_new){.what = W_DUP, .src = fd});
    return rc;
}

/* ---- hooks: event descriptors ---- */

STW_HOOK int eventfd(unsigned int initval, int flags)
{
    STW_REAL(int, eventfd, (unsigned int, int));
    int fd = real_eventfd(initval, flags);
    note_fd(fd, &(fd_new){.what = W_EVENTFD});
    return fd;
}

STW_HOOK int timerfd_create(clockid_t clock, int flags)
{
    STW_REAL(int, timerfd_create, (clockid_t, int));
    int fd = real_timerfd_create(clock, flags);
    note_fd(fd, &(fd_new){.what = W_TIMERFD});
    return fd;
}

/* Only signalfd(-1, ...) makes a descriptor; otherwise it changes the mask
 * of an existing one. */
STW_HOOK int signalfd(int fd, const sigset_t *mask, int flags)
{
    STW_REAL(int, signalfd, (int, const sigset_t *, int));
    int nfd = real_signalfd(fd, mask, flags);
    if (fd == -1)
        note_fd(nfd, &(fd_new){.what = W_SIGNALFD});
    return nfd;
}

STW_HOOK int inotify_init(void)
{
    STW_REAL(int, inotify_init, (void));
    int fd = real_inotify_init();
    note_fd(fd, &(fd_new){.what = W_INOTIFY});
    return fd;
}

STW_HOOK int inotify_init1(int flags)
{
    STW_REAL(int, inotify_init1, (int));
    int fd = real_inotify_init1(flags);
    note_fd(fd, &(fd_new){.what = W_INOTIFY});
    return fd;
}

STW_HOOK int epoll_create(int size)
{
    STW_REAL(int, epoll_create, (int));
    int fd = real_epoll_create(size);
    note_fd(fd, &(fd_new){.what = W_EPOLL});
    return fd;
}

STW_HOOK int epoll_create1(int flags)
{
    STW_REAL(int, epoll_create1, (int));
    int fd = real_epoll_create1(flags);
    note_fd(fd, &(fd_new){.what = W_EPOLL});
    return fd;
}

STW_HOOK int memfd_create(const char *name, unsigned int flags)
{
    STW_REAL(int, memfd_create, (const char *, unsigned int));
    int fd = real_memfd_create(name, flags);
    note_fd(fd, &(fd_new){.what = W_MEMFD, .path = name});
    return fd;
}

/* ---- hooks: closing ---- */

STW_HOOK int close(int fd)
{
    note_close(fd);
    STW_REAL(int, close, (int));
    return real_close(fd);
}

/* Only a call that will close something forgets records: with
 * CLOSE_RANGE_CLOEXEC nothing is closed, and unknown flags or an empty
 * range fail with EINVAL. */
STW_HOOK int close_range(unsigned int first, unsigned int last, int flags)
{
    if (first <= last && (flags & ~(int)(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) == 0 &&
        (flags & (int)CLOSE_RANGE_CLOEXEC) == 0)
        note_close_range(first, last);
    STW_REAL(int, close_range, (unsigned int, unsigned int, int));
    return real_close_range(first, last, flags);
}

STW_HOOK void closefrom(int lowfd)
{
    if (lowfd >= 0)
        note_close_range((unsigned)lowfd, ~0U);
    STW_REAL(void, closefrom, (int));
    real_closefrom(lowfd);
}

/* ---- hooks: FILE streams ---- */

STW_HOOK FILE *fopen(const char *restrict path, const char *restrict mode)
{
    STW_REAL(FILE *, fopen, (const char *restrict, const char *restrict));
    FILE *f = real_fopen(path, mode);
    note_stream(STW_KIND_FILE, f, stream_fd(f), path, mode);
    return f;
}

STW_HOOK FILE *fopen64(const char *restrict path, const char *restrict mode)
{
    STW_REAL(FILE *, fopen64, (const char *restrict, const char *restrict));
    FILE *f = real_fopen64(path, mode);
    note_stream(STW_KIND_FILE, f, stream_fd(f), path, mode);
    return f;
}

STW_HOOK FILE *fdopen(int fd, const char *mode)
{
    STW_REAL(FILE *, fdopen, (int, const char *));
    FILE *f = real_fdopen(fd, mode);
    note_stream(STW_KIND_FILE, f, fd, NULL, mode);
    return f;
}

STW_HOOK FILE *tmpfile(void)
{
    STW_REAL(FILE *, tmpfile, (void));
    FILE *f = real_tmpfile();
    note_stream(STW_KIND_FILE, f, stream_fd(f), "tmpfile", NULL);
    return f;
}

STW_HOOK FILE *tmpfile64(void)
{
    STW_REAL(FILE *, tmpfile64, (void));
    FILE *f = real_tmpfile64();
    note_stream(STW_KIND_FILE, f, stream_fd(f), "tmpfile", NULL);
    return f;
}

STW_HOOK FILE *fmemopen(void *buf, size_t size, const char *mode)
{
    STW_REAL(FILE *, fmemopen, (void *, size_t, const char *));
    FILE *f = real_fmemopen(buf, size, mode);
    note_stream(STW_KIND_FILE, f, -1, "memstream", mode);
    return f;
}

STW_HOOK FILE *open_memstream(char **buf, size_t *size)
{
    STW_REAL(FILE *, open_memstream, (char **, size_t *));
    FILE *f = real_open_memstream(buf, size);
    note_stream(STW_KIND_FILE, f, -1, "memstream", NULL);
    return f;
}

STW_HOOK FILE *open_wmemstream(wchar_t **buf, size_t *size)
{
    STW_REAL(FILE *, open_wmemstream, (wchar_t **, size_t *));
    FILE *f = real_open_wmemstream(buf, size);
    note_stream(STW_KIND_FILE, f, -1, "memstream", NULL);
    return f;
}

/*
 * freopen closes the stream's descriptor inside libc and opens another,
 * keeping the FILE. A booked stream is relabelled; a stream the checker
 * never booked (stdin, stdout, stderr) stays unbooked, as a redirection of
 * a standard stream. On failure the stream is closed.
 */
static FILE *do_freopen(FILE *(*real)(const char *, const char *, FILE *), const char *path,
                        const char *mode, FILE *f)
{
    int old = stream_fd(f);
    int saved = errno;
    bool booked = false, track = f != NULL && active();
    if (track && stw_ledger_guard_enter()) {
        booked = stw_ledger_lookup(STW_KIND_FILE, (uintptr_t)f, NULL) == 0;
        if (old >= 0)
            forget_fd(old);
        stw_ledger_guard_exit();
    } else {
        track = false;
    }
    errno = saved;
    FILE *r = real(path, mode, f);
    if (!track)
        return r;
    saved = errno;
    if (stw_ledger_guard_enter()) {
        if (r == NULL) {
            stw__ledger_remove(STW_KIND_FILE, (uintptr_t)f);
        } else {
            int fd = stream_fd(r);
            if (fd >= 0)
                forget_fd(fd);
            fl_own(fd, FL_STREAM);
            if (booked) {
                char t[160];
                if (path == NULL)
                    fd_target(fd, t, sizeof(t));
                stw_ledger_set_label(
                    STW_KIND_FILE, (uintptr_t)r,
                    fd_label(BANK_STREAM, fd, "file:%s (%s)", path != NULL ? path : t, mode));
            }
        }
        stw_ledger_guard_exit();
    }
    errno = saved;
    return r;
}

STW_HOOK FILE *freopen(const char *restrict path, const char *restrict mode, FILE *restrict f)
{
    STW_REAL(FILE *, freopen, (const char *, const char *, FILE *));
    return do_freopen(real_freopen, path, mode, f);
}

STW_HOOK FILE *freopen64(const char *restrict path, const char *restrict mode, FILE *restrict f)
{
    STW_REAL(FILE *, freopen64, (const char *, const char *, FILE *));
    return do_freopen(real_freopen64, path, mode, f);
}

STW_HOOK int fclose(FILE *f)
{
    note_stream_close(STW_KIND_FILE, f, stream_fd(f));
    STW_REAL(int, fclose, (FILE *));
    return real_fclose(f);
}

/* ---- hooks: DIR streams ---- */

static int dir_fd(DIR *d)
{
    int saved = errno;
    int fd = d != NULL ? dirfd(d) : -1;
    errno = saved;
    return fd;
}

STW_HOOK DIR *opendir(const char *path)
{
    STW_REAL(DIR *, opendir, (const char *));
    DIR *d = real_opendir(path);
    note_stream(STW_KIND_DIR, d, dir_fd(d), path, NULL);
    return d;
}

STW_HOOK DIR *fdopendir(int fd)
{
    STW_REAL(DIR *, fdopendir, (int));
    DIR *d = real_fdopendir(fd);
    note_stream(STW_KIND_DIR, d, fd, NULL, NULL);
    return d;
}

STW_HOOK int closedir(DIR *d)
{
    note_stream_close(STW_KIND_DIR, d, dir_fd(d));
    STW_REAL(int, closedir, (DIR *));
    return real_closedir(d);
}
