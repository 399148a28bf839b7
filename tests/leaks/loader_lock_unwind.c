/* leak-test: one thread allocates inside dl_iterate_phdr (the loader's lock held) while others allocate from code without frame pointers (stacks taken with the DWARF unwinder): the checker must not deadlock
 * cflags: -O2 -fomit-frame-pointer -ldl
 * shared: plugins/quiet_plugin.c
 * args: {tmp}/quiet_plugin.so
 * expect: none
 * repeat: 12
 * timeout: 30
 * exit: 0
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 2000

static atomic_int running = 1;
static const char *plugin;

/* strdup is libc's (no frame pointers either): every stack the checker
 * takes here falls back to the DWARF unwinder. */
static int per_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    char *copy = strdup(info->dlpi_name[0] ? info->dlpi_name : "main");
    *(size_t *)data += strlen(copy);
    free(copy);
    return 0;
}

static void *iterate(void *arg)
{
    (void)arg;
    size_t total = 0;
    for (int i = 0; i < ROUNDS; i++) {
        dl_iterate_phdr(per_module, &total);
        /* A load and an unload: the unwinder's caches start over. */
        if (i % 2 == 0) {
            void *h = dlopen(plugin, RTLD_NOW);
            if (h == NULL)
                abort();
            char *(*copy)(const char *) = (char *(*)(const char *))dlsym(h, "plugin_copy");
            free(copy("x"));
            dlclose(h);
        }
    }
    atomic_store(&running, 0);
    return (void *)total;
}

/* 256 call sites, more than the unwinder caches: it keeps looking up
 * unwind tables (dl_iterate_phdr) under its cache's lock. */
#define SITE(n)                                                                                    \
    static __attribute__((noinline)) char *copy##n(const char *s)                                  \
    {                                                                                              \
        char *c = strdup(s);                                                                       \
        __asm__ volatile("" ::: "memory");                                                         \
        return c;                                                                                  \
    }
#define SITE4(n) SITE(n##0) SITE(n##1) SITE(n##2) SITE(n##3)
#define SITE16(n) SITE4(n##0) SITE4(n##1) SITE4(n##2) SITE4(n##3)
#define SITE64(n) SITE16(n##0) SITE16(n##1) SITE16(n##2) SITE16(n##3)
SITE64(0) SITE64(1) SITE64(2) SITE64(3)

#define REF(n) copy##n,
#define REF4(n) REF(n##0) REF(n##1) REF(n##2) REF(n##3)
#define REF16(n) REF4(n##0) REF4(n##1) REF4(n##2) REF4(n##3)
#define REF64(n) REF16(n##0) REF16(n##1) REF16(n##2) REF16(n##3)
static char *(*const copies[256])(const char *) = {REF64(0) REF64(1) REF64(2) REF64(3)};

static void *allocate(void *arg)
{
    unsigned i = (unsigned)(long)arg;
    while (atomic_load(&running))
        free(copies[i++ % 256]("block"));
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    plugin = argv[1];
    pthread_t it, al[3];
    for (long i = 0; i < 3; i++)
        if (pthread_create(&al[i], NULL, allocate, (void *)(i + 1)) != 0)
            abort();
    if (pthread_create(&it, NULL, iterate, NULL) != 0)
        abort();
    void *total;
    pthread_join(it, &total);
    for (int i = 0; i < 3; i++)
        pthread_join(al[i], NULL);
    printf("iterated %d times\n", ROUNDS);
    return 0;
}
