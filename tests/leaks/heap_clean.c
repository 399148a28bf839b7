/* leak-test: tricky but correct heap use: everything is released before exit
 * expect: none
 * exit: 0
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A block freed by a different thread than the one that allocated it,
 * a realloc chain ending in realloc(p, 0), libc's allocating helpers paired
 * with free, and a list torn down node by node. */
static void *worker(void *arg)
{
    char *mine = malloc(512);
    memset(mine, 1, 512);
    free(arg);
    return mine;
}

struct node {
    struct node *next;
    int v;
};

int main(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, malloc(100)) != 0)
            return 1;
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        free(ret);
    }

    char *p = NULL;
    for (size_t n = 16; n < 100000; n *= 3)
        p = realloc(p, n);
    p = realloc(p, 0); /* frees; glibc returns NULL */
    free(p);

    char *s = strdup("text");
    char *a = NULL;
    if (asprintf(&a, "%s %d", s, 5) < 0)
        return 1;
    void *al = NULL;
    if (posix_memalign(&al, 4096, 10000) != 0)
        return 1;
    static char text[] = "one\ntwo\n";
    FILE *f = fmemopen(text, sizeof(text) - 1, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f != NULL && getline(&line, &cap, f) > 0)
        ;
    if (f != NULL)
        fclose(f);
    free(line);
    free(al);
    free(a);
    free(s);

    struct node *head = NULL;
    for (int i = 0; i < 1000; i++) {
        struct node *n = malloc(sizeof(*n));
        n->v = i;
        n->next = head;
        head = n;
    }
    long sum = 0;
    while (head != NULL) {
        struct node *next = head->next;
        sum += head->v;
        free(head);
        head = next;
    }
    printf("%ld\n", sum);
    return 0;
}
