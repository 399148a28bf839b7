/* leak-test: a connected UDP socket and a bound unix socket are never closed; labels follow bind and connect
 * expect: socket 1 leak_udp_connected label~socket:udp
 * expect: socket 1 leak_unix_bound label~@steward-fd-connect-leak
 * exit: 0
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Label: "socket:udp 127.0.0.1:PORT -> 127.0.0.1:9". */
__attribute__((noinline)) static int leak_udp_connected(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0)
        return -1;
    return fd;
}

/* Label: "socket:unix dgram @steward-fd-connect-leak" (abstract name). */
__attribute__((noinline)) static int leak_unix_bound(void)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    const char *name = "steward-fd-connect-leak";
    memcpy(a.sun_path + 1, name, strlen(name));
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0)
        return -1;
    return fd;
}

int main(void)
{
    if (leak_udp_connected() < 0 || leak_unix_bound() < 0)
        return 1;
    printf("done\n");
    return 0;
}
