/* Frames: the unit the host and a chip exchange. On the wire a frame is
 *   COBS( header | payload | crc32 ) 0x00
 * header = u8 protocol_version, u8 type, u16 seq, u32 payload_len (little-endian), crc32 over
 * header+payload (little-endian). See docs/protocol.md.
 *
 * This module does no I/O: the decoder takes bytes as they arrive from whatever link the runtime
 * reads, and the encoder writes into a caller buffer that the runtime sends. */
#ifndef PROTO_FRAME_H
#define PROTO_FRAME_H

#include <stdint.h>
#include "proto/cobs.h"

#define PROTO_VERSION        2u
#define PROTO_HEADER_BYTES   8u
#define PROTO_CRC_BYTES      4u
/* Hard limit of a payload: a 16 KiB WRITE chunk plus room for its offset and for the largest fixed
 * reply. 16 KiB rather than 4 KiB because every frame costs the host and the chip a wake-up and an
 * ACK: with 4 KiB frames those, not the link, bounded flashing (docs/benchmarks.md). A chip's
 * buffers for one frame (receive, payload, transmit) take about 50 KiB of RAM. Announced in
 * IDENTIFY_REPLY; the Python host mirrors it (orchestrator.link.frame). */
#define PROTO_MAX_PAYLOAD    16448u
#define PROTO_FRAME_RAW_MAX  (PROTO_HEADER_BYTES + PROTO_MAX_PAYLOAD + PROTO_CRC_BYTES)
/* Worst-case bytes on the wire for one frame, delimiter included: size of a transmit buffer. */
#define PROTO_FRAME_WIRE_MAX (COBS_ENCODED_MAX(PROTO_FRAME_RAW_MAX) + 1u)

/* A decoded frame. `payload` points into the decoder's buffer and is valid until the next byte
 * is pushed. */
typedef struct {
    uint8_t        version;
    uint8_t        type;
    uint16_t       seq;
    uint32_t       len;
    const uint8_t *payload;
} proto_frame;

/* Every frame that ends at a delimiter is counted in exactly one of the first six counters.
 * unknown_type and bad_length are counted by the dispatcher among frames_ok. The wire order of
 * STATS_REPLY is the field order here. */
typedef struct {
    uint32_t frames_ok;        /* framing, size and CRC correct, our protocol version */
    uint32_t crc_errors;       /* CRC32 does not match header+payload */
    uint32_t cobs_errors;      /* frame ended inside a COBS block */
    uint32_t oversized;        /* payload_len > PROTO_MAX_PAYLOAD, or more bytes than the largest frame */
    uint32_t size_mismatch;    /* shorter than header+CRC, or size disagrees with payload_len */
    uint32_t version_mismatch; /* well-formed frame of another protocol version */
    uint32_t unknown_type;     /* dispatcher: type this side does not handle */
    uint32_t bad_length;       /* dispatcher: payload length wrong for its type, or a bad field */
} proto_counters;
#define PROTO_COUNTERS_COUNT 8u

/* Streaming decoder: fixed buffer, no allocation, resynchronises at every 0x00. */
typedef struct {
    cobs_decoder   cobs;
    uint32_t       n;          /* decoded bytes of the current frame */
    uint8_t        discarding; /* current frame rejected; skip to the next 0x00 */
    proto_counters counters;
    uint8_t        raw[PROTO_FRAME_RAW_MAX];
} proto_decoder;

void proto_decoder_init(proto_decoder *d);

/* Push one received byte. Returns 1 when it completed a well-formed frame, filled into *out.
 * Frames of another protocol version are returned too (counted as version_mismatch) so the
 * dispatcher can answer them with ERROR(BAD_VERSION); check out->version if you do not dispatch. */
int proto_decoder_push(proto_decoder *d, uint8_t byte, proto_frame *out);

typedef void (*proto_frame_fn)(void *ctx, const proto_frame *f);

/* Push a buffer; calls on_frame for each frame completed. Returns the number of frames. */
uint32_t proto_decoder_feed(proto_decoder *d, const uint8_t *buf, uint32_t n,
                            proto_frame_fn on_frame, void *ctx);

/* Encode one frame, delimiter included, into out. Returns bytes written, or 0 if len exceeds
 * PROTO_MAX_PAYLOAD or out is too small (PROTO_FRAME_WIRE_MAX always suffices). */
uint32_t proto_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len,
                            uint8_t *out, uint32_t cap);

/* As proto_frame_encode with an explicit protocol version byte (tests, version negotiation). */
uint32_t proto_frame_encode_version(uint8_t version, uint8_t type, uint16_t seq,
                                    const uint8_t *payload, uint32_t len,
                                    uint8_t *out, uint32_t cap);

#endif
