/* Request dispatch on the chip: check a decoded frame's payload against its type's exact layout,
 * parse the fields, and call the runtime's handler with plain values. A handler is never called
 * with a length or field the dispatcher has not checked; every rejected frame gets an ERROR reply
 * carrying its seq.
 *
 * Usage by the runtime:
 *     proto_handlers h = { .reply = send_frame, .counters = &dec.counters, .write = on_write, ... };
 *     if (proto_decoder_push(&dec, byte, &f)) proto_dispatch(&f, &h, ctx);
 */
#ifndef PROTO_DISPATCH_H
#define PROTO_DISPATCH_H

#include <stdint.h>
#include "proto/frame.h"
#include "proto/msg.h"

/* Sends one reply frame (the runtime encodes it with proto_frame_encode and writes it out). */
typedef void (*proto_reply_fn)(void *ctx, uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len);

/* Handlers return 0 after sending their own reply (OK, ACK, ...), or a PROTO_E_* code: the
 * dispatcher then sends ERROR(code, proto_error_text(code)) for them. A NULL handler makes its
 * type unknown on this chip. */
typedef struct {
    proto_reply_fn  reply;    /* required */
    proto_counters *counters; /* where unknown_type / bad_length are counted; may be NULL */
    int (*identify)(void *ctx, uint16_t seq);
    int (*write)(void *ctx, uint16_t seq, uint32_t offset, const uint8_t *data, uint32_t n);
    int (*region_crc)(void *ctx, uint16_t seq, uint32_t offset, uint32_t length);
    int (*commit)(void *ctx, uint16_t seq, const proto_commit *c);
    int (*configure)(void *ctx, uint16_t seq, const proto_configure *c);
    int (*ping)(void *ctx, uint16_t seq, uint32_t nonce);
    int (*run)(void *ctx, uint16_t seq, const proto_run *r);
    int (*reset)(void *ctx, uint16_t seq);
    int (*stats)(void *ctx, uint16_t seq);
    int (*run_encoder)(void *ctx, uint16_t seq, const proto_run_encoder *r);
} proto_handlers;

/* What the dispatcher guarantees before calling a handler:
 *   every payload has exactly its type's length (WRITE: 4 + 1..PROTO_WRITE_MAX_DATA bytes;
 *   RUN: 24 + 4 * n_prompt with n_prompt <= PROTO_RUN_MAX_PROMPT);
 *   WRITE and REGION_CRC: offset + length does not wrap past 2^32;
 *   COMMIT: 1 <= world, rank < world, total_bytes > 0;
 *   CONFIGURE: 1 <= world, rank < world, known topology; ring has group_size 0, hierarchical a
 *   group_size >= 1 that divides world;
 *   RUN: no unknown flag bits;
 *   RUN_ENCODER: 12 + 5 * n_tokens bytes, 1 <= n_tokens <= PROTO_RUN_ENCODER_MAX_TOKENS,
 *   1 <= n_valid <= n_tokens, no unknown flag bits.
 * Range checks against the chip's memories and state stay with the handlers.
 * Returns PROTO_E_NONE when a handler answered, else the error code that was sent. */
int proto_dispatch(const proto_frame *f, const proto_handlers *h, void *ctx);

/* Send ERROR(code, text) with the given seq; text may be NULL (then the code's name is sent). */
void proto_reply_error(const proto_handlers *h, void *ctx, uint16_t seq, uint16_t code, const char *text);

#endif
