/* leak-test: blocks reachable only through pointers into their middle are still reachable
 * expect: none
 * exit: 0
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char *cursor;
static uint64_t *payload;

/* A buffer remembered by a cursor into its middle, and a block remembered
 * by the address of the payload after its header: the usual ways a program
 * keeps memory it still owns without a pointer to the first byte. */
static __attribute__((noinline)) void keep_interior(void)
{
    char *buf = malloc(4096);
    cursor = buf + 1000;
    uint64_t *hdr = malloc(64);
    hdr[0] = 0x1234;
    payload = hdr + 2;
}

int main(void)
{
    keep_interior();
    printf("%d %d\n", cursor != NULL, payload != NULL);
    return 0;
}
