/*
 * relay/canvas.h — drawing and JPEG encoding for the relay's own frames
 * (the test pattern, the "NO SIGNAL" card of a camera that is away).
 *
 * Model
 *   A canvas is an RGB image its owner draws into with rectangles and a
 *   5x7 bitmap font (digits, ": # ." and the capital letters), then
 *   encodes with a relay_jpeg encoder straight into a caller's buffer. An
 *   encoder belongs to one thread (libjpeg's state is not shared).
 *
 * Ownership
 *   relay_canvas is embedded (init/release); its pixels are steward heap.
 *   relay_jpeg is a heap object (new/free); libjpeg's own working memory
 *   lives between those two calls.
 */
#ifndef STW_RELAY_CANVAS_H
#define STW_RELAY_CANVAS_H

#include <stddef.h>
#include <stdint.h>

typedef struct relay_canvas {
    unsigned w, h;
    uint8_t *rgb; /* w * h * 3 */
} relay_canvas;

/* 0, -EINVAL (a side outside 1..8192) or -ENOMEM. */
int relay_canvas_init(relay_canvas *c, unsigned w, unsigned h);
void relay_canvas_release(relay_canvas *c);

/* Fill a rectangle, clipped to the canvas. */
void relay_canvas_fill(relay_canvas *c, int x, int y, int w, int h, uint8_t r, uint8_t g,
                       uint8_t b);

/* White text at (@x, @y), each font pixel @scale x @scale; characters the
 * font lacks are left blank. */
void relay_canvas_text(relay_canvas *c, int x, int y, int scale, const char *text);

/* Width in pixels of @text at @scale. */
int relay_canvas_text_width(const char *text, int scale);

typedef struct relay_jpeg relay_jpeg;

/* An encoder for @w x @h RGB at @quality (1..100). 0, -EINVAL, -ENOMEM. */
int relay_jpeg_new(unsigned w, unsigned h, unsigned quality, relay_jpeg **out);
void relay_jpeg_free(relay_jpeg **e);

/* Encode @c (same size as the encoder) into @dst (@cap bytes, borrowed).
 * Returns the JPEG's size, -ENOSPC when it did not fit, -EIO when libjpeg
 * failed. */
long relay_jpeg_encode(relay_jpeg *e, const relay_canvas *c, uint8_t *dst, size_t cap);

#endif
