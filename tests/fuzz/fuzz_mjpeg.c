/*
 * libFuzzer target for the relay's MJPEG multipart parser (mjpeg.h).
 *
 * The first input byte picks the set-up: bit 0 learns the boundary from
 * the body (as for an application/octet-stream camera) instead of using
 * "b"; the other bits pick how the rest is cut into reads, from one byte
 * at a time to all at once. Beyond memory errors (AddressSanitizer) it
 * checks what the parser promises: every frame is a whole JPEG no larger
 * than the cap, and the work stays linear in the input however it is cut.
 *
 *   make fuzz                      20 s, see docs/relay.md
 *   build-asan/tests/fuzz_mjpeg -max_total_time=3600 CORPUS tests/fuzz/seeds_mjpeg
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mjpeg.h"
#include "steward/buf.h"

#define MAX_FRAME 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_frame(void *ud, stw_buf *frame)
{
    (void)ud;
    const uint8_t *d = stw_buf_data(frame);
    size_t n = stw_buf_size(frame);
    if (n < 4 || n > MAX_FRAME || d[0] != 0xFF || d[1] != 0xD8 || d[n - 2] != 0xFF ||
        d[n - 1] != 0xD9)
        abort();
    stw_buf_unref(&frame);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t setup = data[0];
    data++, size--;
    relay_mjpeg *p = NULL;
    if (relay_mjpeg_new(setup & 1 ? NULL : "b", MAX_FRAME, &p) != 0)
        return 0;
    /* Read sizes from 1 byte up, varying from read to read. */
    size_t base = (size_t)(setup >> 1) * 37 % 1500 + 1, reads = 0;
    for (size_t off = 0; off < size; reads++) {
        size_t n = (base + off * 7) % (base + 1) + 1;
        if (n > size - off)
            n = size - off;
        if (relay_mjpeg_feed(p, data + off, n, check_frame, NULL) < 0)
            abort();
        off += n;
    }
    relay_mjpeg_stats st;
    relay_mjpeg_get_stats(p, &st);
    /* A few passes over the input, plus a boundary's length per read. */
    if (st.scanned > 8 * (uint64_t)size + 80 * (uint64_t)reads + 4096)
        abort();
    relay_mjpeg_free(&p);
    return 0;
}
