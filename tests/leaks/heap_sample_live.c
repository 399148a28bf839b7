/* leak-test: sampling mode: 10,000 live blocks, sampled blocks reachable only through unsampled ones, one lost sampled block (and the one it points to)
 * checker-args: --sample=64k
 * expect: heap 1 lose_pair class=definitely bytes=131072
 * expect: heap 1 lose_pair class=indirectly bytes=131072
 * scanned-block-bytes: 64/block + 3399680
 * log: of unsampled heap
 * repeat: 20
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* With --sample=64k a block of 96 KiB or more is always sampled (the
 * distance to the next sample is below 1.5 times the period); a 48-byte
 * block is sampled about once in 1,400. */
#define NLIVE 10000
#define SMALL 48
#define LOST 131072

struct holder {
    void *payload; /* NULL, or a mid block that leads to a big one */
    char pad[SMALL - sizeof(void *)];
};

/* The only root of the live blocks: everything else is reached through
 * heap blocks, nearly all of them unsampled. */
static struct holder *live[NLIVE];

/* The planted leak: two sampled blocks, the first pointing to the second;
 * once the function returns nothing points to the first. Its pointers
 * live only in volatile locals of this frame, which is dead (and later
 * overwritten) when the program exits. */
static __attribute__((noinline)) void lose_pair(void)
{
    void *volatile a = malloc(LOST);
    void *volatile b = malloc(LOST);
    memset(a, 'a', LOST);
    memset(b, 'b', LOST);
    *(void **)a = b;
    /* The stores must happen although nothing reads the blocks again. */
    __asm__ volatile("" : : "r"((void *)a) : "memory");
    a = NULL;
    b = NULL;
}

/* 10,000 holders (48 bytes; about one in 1,400 sampled), then 20 chains
 * live[i] -> holder -> mid (32 bytes) -> big: ten of 100 KiB (in malloc's
 * arena), ten of 200 KiB (mmap'ed chunks), always sampled, reachable only
 * through the unsampled blocks above them. The holders come first: a big
 * block's sample restarts the count, so holders made between bigs would
 * never be sampled. */
static __attribute__((noinline)) void make_live(void)
{
    for (int i = 0; i < NLIVE; i++) {
        live[i] = malloc(sizeof(struct holder));
        memset(live[i], 0, sizeof(struct holder));
    }
    for (int i = 0; i < NLIVE; i += 500) {
        void **mid = malloc(32);
        memset(mid, 0, 32);
        size_t big = (i / 500) % 2 ? 200 * 1024 : 100 * 1024;
        mid[0] = malloc(big);
        memset(mid[0], 'x', big);
        live[i]->payload = mid;
    }
}

/* Overwrite the dead frames below main's with zeros. */
static __attribute__((noinline)) void scrub(void)
{
    volatile char area[16384];
    memset((char *)area, 0, sizeof(area));
}

int main(void)
{
    lose_pair();
    scrub();
    make_live();
    scrub();
    long chains = 0;
    for (int i = 0; i < NLIVE; i++)
        chains += live[i]->payload != NULL;
    printf("%d live blocks, %ld chains to big blocks\n", NLIVE, chains);
    return 0;
}
