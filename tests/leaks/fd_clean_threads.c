/* leak-test: clean: eight threads open, dup, pipe and close descriptors concurrently
 * expect: none
 * exit: 0
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *churn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        int fd = open("/dev/null", O_RDONLY);
        int copy = dup(fd);
        int p[2];
        if (fd < 0 || copy < 0 || pipe(p) != 0)
            return (void *)1;
        close(p[0]);
        close(p[1]);
        close(copy);
        close(fd);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        if (pthread_create(&t[i], NULL, churn, NULL) != 0)
            return 1;
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    printf("done\n");
    return bad;
}
