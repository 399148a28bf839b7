/*
 * src/relay/card.h — the "NO SIGNAL" card an input shows while its camera
 * is away; private to the relay.
 *
 * Model
 *   A card is a JPEG the relay draws itself: the title, the input's name,
 *   how long ago the last frame came and why the camera is away (capital
 *   letters: the font has no others). It has the camera's last frame size,
 *   so a viewer's layout does not jump (640x480 before any frame, at most
 *   RELAY_CARD_MAX a side), and is published to the hub as a card
 *   (relay_hub_publish_card: the input's state stays what the source set).
 *
 * Ownership
 *   relay_card is embedded in its source's state; it owns its canvas and
 *   encoder, which follow the size asked for. One thread uses it.
 */
#ifndef STW_RELAY_CARD_H
#define STW_RELAY_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "canvas.h"
#include "relay.h"

#define RELAY_CARD_MAX 4096

typedef struct relay_card {
    relay_canvas canvas;
    relay_jpeg *jpeg; /* NULL until the first prepare */
} relay_card;

/* Make @c ready for @w x @h (0 or over RELAY_CARD_MAX: 640x480); keeps
 * what it has when the size is the same. Returns 0 or -ENOMEM. */
int relay_card_prepare(relay_card *c, unsigned w, unsigned h);

/* Draw the card for input @name (borrowed), away since @last_frame_ns
 * (stw_now_ns clock; 0: no frame yet) because of @why (borrowed, may be
 * ""), at @w x @h, and publish it to @hub as frame number @seq. Returns 0
 * or a negative errno (nothing published). */
int relay_card_publish(relay_card *c, relay_hub *hub, const char *name, unsigned w, unsigned h,
                       int64_t last_frame_ns, const char *why, uint64_t seq);

/* Free the canvas and encoder; @c can be prepared again. */
void relay_card_release(relay_card *c);

/* Width and height from a JPEG's start-of-frame marker (@d, @n bytes,
 * borrowed); false if it has none before its image data. */
bool relay_jpeg_size(const uint8_t *d, size_t n, unsigned *w, unsigned *h);

#endif
