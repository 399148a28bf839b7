#include "stw_test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "steward/fd.h"

static void test_track_and_close(void **state)
{
    (void)state;
    int fd = stw_fd_track(open("/dev/null", O_RDONLY | O_CLOEXEC), STW_KIND_FD, "file:/dev/null");
    assert_true(fd >= 0);
    stw_record r;
    assert_int_equal(stw_ledger_lookup(STW_KIND_FD, (uint64_t)fd, &r), 0);
    assert_string_equal(r.label, "file:/dev/null");
    assert_int_equal(stw_fd_close(&fd), 0);
    assert_int_equal(fd, -1);
    assert_int_equal(stw_fd_close(&fd), 0);
    assert_int_equal(stw_fd_close(NULL), 0);
}

static void test_failure_passes_through(void **state)
{
    (void)state;
    int fd = stw_fd_track(open("/nonexistent/x", O_RDONLY), STW_KIND_FD, "nope");
    assert_int_equal(fd, -ENOENT);
}

static void test_socket_kind(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    stw_fd_track(sv[0], STW_KIND_SOCKET, "socketpair");
    stw_fd_track(sv[1], STW_KIND_SOCKET, "socketpair");
    stw_kind_stat ks;
    stw_ledger_kind_stat(STW_KIND_SOCKET, &ks);
    assert_true(ks.live >= 2);
    assert_int_equal(stw_fd_close(&sv[0]), 0);
    assert_int_equal(stw_fd_close(&sv[1]), 0);
}

static void test_pipe_eventfd(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(stw_pipe(p, O_CLOEXEC, "pipe:test"), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    int e = stw_eventfd(0, 0, "eventfd:test");
    assert_true(e >= 0);
    assert_int_equal(stw_ledger_lookup(STW_KIND_FD, (uint64_t)e, NULL), 0);
    stw_fd_close(&p[0]);
    stw_fd_close(&p[1]);
    stw_fd_close(&e);
}

static void test_untrack(void **state)
{
    (void)state;
    int fd = stw_eventfd(0, 0, "eventfd:given-away");
    assert_int_equal(stw_fd_untrack(fd), 0);
    assert_int_equal(stw_fd_untrack(fd), -ENOENT);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_track_and_close), STW_TEST(test_failure_passes_through),
        STW_TEST(test_socket_kind),     STW_TEST(test_pipe_eventfd),
        STW_TEST(test_untrack),
    };
    return cmocka_run_group_tests_name("fd", tests, NULL, NULL);
}
