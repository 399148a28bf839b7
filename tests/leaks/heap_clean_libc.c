/* leak-test: libc facilities that allocate once and keep it (locale, stdio, passwd lookups, resolver, dlopen, threads) report nothing
 * expect: none
 * exit: 0
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <locale.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *run(void *arg)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%f %s", 3.5, strerror(EINVAL));
    return arg;
}

int main(void)
{
    setlocale(LC_ALL, "");
    setlocale(LC_ALL, "C.UTF-8");
    char num[64];
    snprintf(num, sizeof(num), "%.3f %Lg", 3.14159, (long double)1e300);
    const char *e1 = strerror(ENOENT);
    const char *e2 = strerror(12345);
    struct passwd *pw = getpwnam("root");
    struct addrinfo *ai = NULL;
    if (getaddrinfo("localhost", "80", NULL, &ai) == 0)
        freeaddrinfo(ai);
    void *h = dlopen("libm.so.6", RTLD_NOW);
    if (h != NULL)
        dlclose(h);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, run, NULL) != 0)
            return 1;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    setenv("STEWARD_TEST_VAR", "value", 1);
    printf("%s %d %d %d\n", num, e1 != NULL, e2 != NULL, pw != NULL);
    return 0;
}
