/* leak-test: threads that create, detach and join threads and map and unmap memory
 * while the main thread forks over and over; children exit without exec (clean: and
 * the checker must not deadlock in a child forked while its locks were busy)
 * expect: none
 * exit: 0
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCHURN 4
#define ROUNDS 300
#define FORKS 40

static atomic_int stop;

static void *nothing(void *arg)
{
    return arg;
}

/* Each churner keeps the thread table, the ledger and the mapping index
 * busy: exactly the locks a fork must not copy while held. */
static void *churn(void *arg)
{
    (void)arg;
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < ROUNDS && !atomic_load(&stop); i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0)
            pthread_join(t, NULL);
        if (pthread_create(&t, NULL, nothing, NULL) == 0)
            pthread_detach(t);
        void *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED)
            munmap(m, 8192);
        free(malloc(64));
    }
    pthread_attr_destroy(&detached);
    return NULL;
}

static __attribute__((noinline)) void fork_while_busy(void)
{
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid < 0)
            abort();
        if (pid == 0) {
            /* In the child: use every hooked path once more, then exit
             * normally. A lock copied while held would hang here. */
            pthread_t t;
            if (pthread_create(&t, NULL, nothing, NULL) == 0)
                pthread_join(t, NULL);
            void *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m != MAP_FAILED)
                munmap(m, 4096);
            free(malloc(16));
            exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            abort();
    }
}

int main(void)
{
    pthread_t t[NCHURN];
    for (int i = 0; i < NCHURN; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    fork_while_busy();
    atomic_store(&stop, 1);
    for (int i = 0; i < NCHURN; i++)
        pthread_join(t[i], NULL);
    printf("clean\n");
    return 0;
}
