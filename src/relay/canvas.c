/*
 * Canvas drawing and JPEG encoding; see canvas.h.
 */
#include "canvas.h"

#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

#include "steward/alloc.h"

/* 5x7 glyphs, one byte per row, bit 4 is the leftmost pixel. */
static const struct {
    char c;
    uint8_t rows[7];
} glyphs[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
};

static const uint8_t *glyph(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof(glyphs) / sizeof(glyphs[0]); i++)
        if (glyphs[i].c == c)
            return glyphs[i].rows;
    return NULL;
}

int relay_canvas_init(relay_canvas *c, unsigned w, unsigned h)
{
    if (w < 1 || h < 1 || w > 8192 || h > 8192)
        return -EINVAL;
    c->rgb = stw_calloc((size_t)w * h, 3);
    if (c->rgb == NULL)
        return -ENOMEM;
    c->w = w;
    c->h = h;
    return 0;
}

void relay_canvas_release(relay_canvas *c)
{
    stw_free(c->rgb);
    c->rgb = NULL;
}

void relay_canvas_fill(relay_canvas *c, int x0, int y0, int w, int h, uint8_t r, uint8_t g,
                       uint8_t b)
{
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < (int)c->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < (int)c->w; x++) {
            uint8_t *p = c->rgb + ((size_t)y * c->w + (size_t)x) * 3;
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
}

void relay_canvas_text(relay_canvas *c, int x, int y, int scale, const char *text)
{
    for (; *text != '\0'; text++, x += 6 * scale) {
        const uint8_t *g = glyph(*text);
        if (g == NULL)
            continue;
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++)
                if (g[row] & (0x10 >> col))
                    relay_canvas_fill(c, x + col * scale, y + row * scale, scale, scale, 255, 255,
                                      255);
    }
}

int relay_canvas_text_width(const char *text, int scale)
{
    size_t n = strlen(text);
    return n == 0 ? 0 : (int)(n * 6 - 1) * scale;
}

struct relay_jpeg {
    unsigned w, h;
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_destination_mgr dest;
    jmp_buf jmp;
    bool overflow;
    JOCTET spill[4096];
};

/* libjpeg's default error_exit ends the process; ours unwinds to encode. */
static void jpeg_error_exit(j_common_ptr c)
{
    relay_jpeg *e = c->client_data;
    longjmp(e->jmp, 1);
}

static void dest_init(j_compress_ptr c)
{
    (void)c;
}

/* The destination is full: note it and let libjpeg finish into a spill
 * area, so the frame is dropped cleanly instead of unwinding mid-write. */
static boolean dest_empty(j_compress_ptr c)
{
    relay_jpeg *e = c->client_data;
    e->overflow = true;
    e->dest.next_output_byte = e->spill;
    e->dest.free_in_buffer = sizeof(e->spill);
    return TRUE;
}

static void dest_term(j_compress_ptr c)
{
    (void)c;
}

int relay_jpeg_new(unsigned w, unsigned h, unsigned quality, relay_jpeg **out)
{
    if (w < 1 || h < 1 || w > 8192 || h > 8192 || quality < 1 || quality > 100)
        return -EINVAL;
    relay_jpeg *e = stw_calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->w = w;
    e->h = h;
    e->cinfo.err = jpeg_std_error(&e->jerr);
    e->jerr.error_exit = jpeg_error_exit;
    e->cinfo.client_data = e;
    if (setjmp(e->jmp) != 0) {
        jpeg_destroy_compress(&e->cinfo);
        stw_free(e);
        return -ENOMEM;
    }
    jpeg_create_compress(&e->cinfo);
    e->dest.init_destination = dest_init;
    e->dest.empty_output_buffer = dest_empty;
    e->dest.term_destination = dest_term;
    e->cinfo.dest = &e->dest;
    e->cinfo.image_width = w;
    e->cinfo.image_height = h;
    e->cinfo.input_components = 3;
    e->cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&e->cinfo);
    jpeg_set_quality(&e->cinfo, (int)quality, TRUE);
    *out = e;
    return 0;
}

void relay_jpeg_free(relay_jpeg **e)
{
    if (e == NULL || *e == NULL)
        return;
    jpeg_destroy_compress(&(*e)->cinfo);
    stw_free(*e);
    *e = NULL;
}

long relay_jpeg_encode(relay_jpeg *e, const relay_canvas *c, uint8_t *dst, size_t cap)
{
    if (c->w != e->w || c->h != e->h)
        return -EINVAL;
    e->overflow = false;
    e->dest.next_output_byte = dst;
    e->dest.free_in_buffer = cap;
    if (setjmp(e->jmp) != 0) {
        jpeg_abort_compress(&e->cinfo);
        return -EIO;
    }
    jpeg_start_compress(&e->cinfo, TRUE);
    while (e->cinfo.next_scanline < e->cinfo.image_height) {
        JSAMPROW row = c->rgb + (size_t)e->cinfo.next_scanline * c->w * 3;
        jpeg_write_scanlines(&e->cinfo, &row, 1);
    }
    jpeg_finish_compress(&e->cinfo);
    if (e->overflow)
        return -ENOSPC;
    return (long)(cap - e->dest.free_in_buffer);
}
