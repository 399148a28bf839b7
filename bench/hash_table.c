/*
 * Allocation-heavy workload for the checker benchmark, shaped like a real
 * program rather than a malloc loop: a chained hash table that takes N
 * string keys (a node from malloc and a key from strdup each: 2N
 * allocations), grows its bucket array as it fills, looks every key up
 * again, then frees everything.
 *   hash_table [keys]      (default 2,000,000: 4 million allocations)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
    struct node *next;
    char *key;
    uint64_t value;
} node;

typedef struct table {
    node **buckets;
    size_t nbuckets;
    size_t count;
} table;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void grow(table *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 1024;
    node **b = calloc(n, sizeof(*b));
    if (b == NULL)
        abort();
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (node *e = t->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t k = hash(e->key) & (n - 1);
            e->next = b[k];
            b[k] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static __attribute__((noinline)) void insert(table *t, const char *key, uint64_t value)
{
    if (t->count >= t->nbuckets)
        grow(t);
    node *e = malloc(sizeof(*e));
    if (e == NULL || (e->key = strdup(key)) == NULL)
        abort();
    size_t k = hash(key) & (t->nbuckets - 1);
    e->value = value;
    e->next = t->buckets[k];
    t->buckets[k] = e;
    t->count++;
}

static __attribute__((noinline)) const node *find(const table *t, const char *key)
{
    for (const node *e = t->buckets[hash(key) & (t->nbuckets - 1)]; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void clear(table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (node *e = t->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e->key);
            free(e);
        }
    }
    free(t->buckets);
    *t = (table){0};
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    if (n <= 0) {
        fprintf(stderr, "usage: hash_table [keys]\n");
        return 2;
    }
    table t = {0};
    char key[32];
    for (long i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%ld", i * 7919);
        insert(&t, key, (uint64_t)i);
    }
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%ld", i * 7919);
        const node *e = find(&t, key);
        if (e == NULL)
            abort();
        sum += e->value;
    }
    clear(&t);
    printf("%ld keys, checksum %llu\n", n, (unsigned long long)sum);
    return 0;
}
