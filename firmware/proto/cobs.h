/* Consistent Overhead Byte Stuffing: removes every 0x00 from a frame so 0x00 can mark frame ends
 * on a byte stream (UART, USB CDC, pty). Overhead is at most one byte per 254, plus one.
 * Encoding is canonical: a final full block (code 0xFF) is not followed by an empty block, so the
 * C and Python encoders produce the same bytes for the same input. */
#ifndef PROTO_COBS_H
#define PROTO_COBS_H

#include <stdint.h>

/* Upper bound of the encoded size of n bytes (without the 0x00 delimiter). */
#define COBS_ENCODED_MAX(n) ((n) + (n) / 254u + 1u)

#define COBS_ERR_FORMAT (-1) /* a 0x00 inside the data, or a block running past the end */
#define COBS_ERR_SPACE  (-2) /* the output buffer is too small */

/* Incremental encoder: push pieces (header, payload, CRC) without first assembling them. */
typedef struct {
    uint8_t *out;
    uint32_t cap;
    uint32_t n;        /* bytes written (or reserved) so far */
    uint32_t code_pos; /* where the current block's code byte goes */
    uint8_t  code;     /* 1 + data bytes in the current block */
    uint8_t  overflow; /* set once anything did not fit; the result is then unusable */
} cobs_encoder;

void     cobs_enc_begin(cobs_encoder *e, uint8_t *out, uint32_t cap);
void     cobs_enc_push(cobs_encoder *e, const uint8_t *src, uint32_t n);
/* Closes the last block. Returns the encoded length (>= 1), or 0 if it did not fit. */
uint32_t cobs_enc_end(cobs_encoder *e);

/* One-shot encode; returns the encoded length (no delimiter) or 0 if dst is too small. */
uint32_t cobs_encode(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap);

/* One-shot decode of one encoded frame without its delimiter. Returns the decoded length or
 * COBS_ERR_FORMAT / COBS_ERR_SPACE. */
int32_t cobs_decode(const uint8_t *src, uint32_t n, uint8_t *dst, uint32_t cap);

/* Streaming decoder, one non-zero byte at a time: each input byte yields at most one output byte
 * (a data byte, or the implicit 0x00 that ends the previous block). */
typedef struct {
    uint8_t left;      /* data bytes still expected in the current block */
    uint8_t prev_code; /* code of the current block; 0xFF blocks end without an implicit zero */
    uint8_t started;   /* at least one code byte seen since the last reset */
} cobs_decoder;

void cobs_dec_reset(cobs_decoder *d);
/* `b` must be non-zero (0x00 is the delimiter, handled by the caller). Returns 1 and sets *out
 * when a decoded byte is produced. */
int  cobs_dec_push(cobs_decoder *d, uint8_t b, uint8_t *out);
/* At a delimiter: 1 if everything seen so far forms whole blocks (a well-formed frame). */
int  cobs_dec_complete(const cobs_decoder *d);

#endif
