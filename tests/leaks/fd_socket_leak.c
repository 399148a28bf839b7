/* leak-test: a TCP connection accepted on loopback is never closed
 * expect: socket 1 accept_one label~socket:tcp
 * exit: 0
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* The planted leak: the accepted connection. The label carries both
 * addresses, local first ("127.0.0.1:PORT -> 127.0.0.1:PORT"). */
__attribute__((noinline)) static int accept_one(int lfd)
{
    struct sockaddr_in peer;
    socklen_t len = sizeof(peer);
    return accept(lfd, (struct sockaddr *)&peer, &len);
}

int main(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        return 1;
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return 1;
    if (accept_one(lfd) < 0)
        return 1;
    close(cfd);
    close(lfd);
    printf("accepted\n");
    return 0;
}
