/*
 * src/relay/card.c — the "NO SIGNAL" card (see card.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "card.h"

#define CARD_W 640
#define CARD_H 480

int relay_card_prepare(relay_card *c, unsigned w, unsigned h)
{
    if (w == 0 || h == 0 || w > RELAY_CARD_MAX || h > RELAY_CARD_MAX)
        w = CARD_W, h = CARD_H;
    if (c->jpeg != NULL && c->canvas.w == w && c->canvas.h == h)
        return 0;
    relay_card_release(c);
    int rc = relay_canvas_init(&c->canvas, w, h);
    if (rc == 0)
        rc = relay_jpeg_new(w, h, 80, &c->jpeg);
    return rc;
}

void relay_card_release(relay_card *c)
{
    relay_jpeg_free(&c->jpeg);
    relay_canvas_release(&c->canvas);
}

/* Centre @text on row @y of the card. */
static void line_at(relay_canvas *c, int y, int scale, const char *text)
{
    relay_canvas_text(c, ((int)c->w - relay_canvas_text_width(text, scale)) / 2, y, scale, text);
}

int relay_card_publish(relay_card *card, relay_hub *hub, const char *name, unsigned w, unsigned h,
                       int64_t last_frame_ns, const char *why, uint64_t seq)
{
    int rc = relay_card_prepare(card, w, h);
    if (rc != 0)
        return rc;
    relay_canvas *c = &card->canvas;
    relay_canvas_fill(c, 0, 0, (int)c->w, (int)c->h, 24, 24, 32);
    const char *title = "NO SIGNAL";
    /* The title fills about 3/4 of the width, up to the 640x480 look. */
    int big = (int)c->w * 3 / 4 / relay_canvas_text_width(title, 1);
    big = big < 1 ? 1 : big > 8 ? 8 : big;
    int small = big * 3 / 8 > 0 ? big * 3 / 8 : 1;
    int y = (int)c->h / 3;
    line_at(c, y, big, title);
    y += 12 * big;
    char line[96];
    snprintf(line, sizeof(line), "%s", name);
    line_at(c, y, small, line);
    y += 12 * small;
    if (last_frame_ns > 0) {
        long away = (long)((stw_now_ns() - last_frame_ns) / 1000000000);
        snprintf(line, sizeof(line), "LAST FRAME %ld S AGO", away);
        line_at(c, y, small, line);
        y += 12 * small;
    }
    /* The font has capitals only. */
    size_t i;
    for (i = 0; i + 1 < sizeof(line) && why != NULL && why[i] != '\0'; i++)
        line[i] = (char)toupper((unsigned char)why[i]);
    line[i] = '\0';
    line_at(c, y, small, line);
    stw_buf *b = NULL, *view = NULL;
    rc = stw_buf_new((size_t)c->w * c->h / 2 + 16384, &b);
    if (rc != 0)
        return rc;
    long len = relay_jpeg_encode(card->jpeg, c, stw_buf_data(b), stw_buf_size(b));
    rc = len > 0 ? stw_buf_view(b, 0, (size_t)len, &view) : -ENOSPC;
    stw_buf_unref(&b);
    if (rc != 0)
        return rc;
    stw_frame_meta meta = {.seq = seq,
                           .captured_ns = stw_now_ns(),
                           .format = STW_FOURCC('M', 'J', 'P', 'G'),
                           .width = c->w,
                           .height = c->h};
    stw_frame *f = NULL;
    rc = stw_frame_new(view, &meta, &f);
    stw_buf_unref(&view);
    if (rc != 0)
        return rc;
    relay_hub_publish_card(hub, f);
    return 0;
}

bool relay_jpeg_size(const uint8_t *d, size_t n, unsigned *w, unsigned *h)
{
    size_t i = 2;
    while (i + 9 <= n) {
        if (d[i] != 0xFF)
            return false;
        uint8_t m = d[i + 1];
        if (m == 0xFF) {
            i++; /* fill byte */
            continue;
        }
        size_t len = (size_t)d[i + 2] << 8 | d[i + 3];
        /* SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC). */
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            *h = (unsigned)d[i + 5] << 8 | d[i + 6];
            *w = (unsigned)d[i + 7] << 8 | d[i + 8];
            return *w > 0 && *h > 0;
        }
        if (m == 0xDA || len < 2)
            return false;
        i += 2 + len;
    }
    return false;
}
