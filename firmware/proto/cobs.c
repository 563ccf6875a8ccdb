#include "proto/cobs.h"

#include <string.h>

/* Reserve one output byte. On overflow the encoder keeps counting but writes nothing, so the
 * caller gets one clean failure at cobs_enc_end instead of checks after every byte. */
static uint32_t cobs_enc_reserve(cobs_encoder *e)
{
    uint32_t pos = e->n;
    if (pos >= e->cap) e->overflow = 1;
    e->n++;
    return pos;
}

static void cobs_enc_close_block(cobs_encoder *e)
{
    if (e->code_pos < e->cap) e->out[e->code_pos] = e->code;
    e->code_pos = cobs_enc_reserve(e);
    e->code = 1;
}

void cobs_enc_begin(cobs_encoder *e, uint8_t *out, uint32_t cap)
{
    e->out = out;
    e->cap = cap;
    e->n = 0;
    e->overflow = 0;
    e->code = 1;
    e->code_pos = cobs_enc_reserve(e);
}

void cobs_enc_push(cobs_encoder *e, const uint8_t *src, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        /* A full block is closed only when more data follows: that keeps the encoding canonical
         * (no empty trailing block after 254 non-zero bytes at the end). */
        if (e->code == 0xFFu) cobs_enc_close_block(e);
        if (src[i] == 0u) {
            cobs_enc_close_block(e);
            i++;
            continue;
        }
        /* Copy the run of non-zero bytes that the current block still has room for in one go:
         * a 16 KiB WRITE frame is mostly such runs. */
        uint32_t room = 0xFFu - e->code, run = 1;
        while (run < room && i + run < n && src[i + run] != 0u) run++;
        if (e->n <= e->cap && run <= e->cap - e->n) memcpy(e->out + e->n, src + i, run);
        else e->overflow = 1;
        e->n += run;
        e->code = (uint8_t)(e->code + run);
        i += run;
    }
}

uint32_t cobs_enc_end(cobs_encoder *e)
{
    if (e->code_pos < e->cap) e->out[e->code_pos] = e->code;
    if (e->overflow) return 0;
    return e->n;
}

uint32_t cobs_encode(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap)
{
    cobs_encoder e;
    cobs_enc_begin(&e, dst, cap);
    cobs_enc_push(&e, src, n);
    return cobs_enc_end(&e);
}

void cobs_dec_reset(cobs_decoder *d)
{
    d->left = 0;
    d->prev_code = 0;
    d->started = 0;
}

int cobs_dec_push(cobs_decoder *d, uint8_t b, uint8_t *out)
{
    if (d->left == 0u) {
        /* b is a code byte: it starts a block of b-1 data bytes. The block before it ends with
         * an implicit zero unless it was a full 254-byte block. */
        int emit_zero = d->started && d->prev_code != 0xFFu;
        d->prev_code = b;
        d->left = (uint8_t)(b - 1u);
        d->started = 1;
        if (emit_zero) {
            *out = 0u;
            return 1;
        }
        return 0;
    }
    d->left--;
    *out = b;
    return 1;
}

int cobs_dec_complete(const cobs_decoder *d)
{
    return d->started && d->left == 0u;
}

int32_t cobs_decode(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap)
{
    cobs_decoder d;
    uint32_t out_n = 0;
    cobs_dec_reset(&d);
    /* The result must fit an int32_t; frames are far smaller, but never trust n. */
    if (n > 0x7FFFFFFFu) return COBS_ERR_SPACE;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b;
        if (src[i] == 0u) return COBS_ERR_FORMAT;
        if (cobs_dec_push(&d, src[i], &b)) {
            if (out_n >= cap) return COBS_ERR_SPACE;
            dst[out_n++] = b;
        }
    }
    if (!cobs_dec_complete(&d)) return COBS_ERR_FORMAT;
    return (int32_t)out_n;
}
