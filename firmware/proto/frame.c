#include "proto/frame.h"
#include "proto/crc32.h"

#include <string.h>

static uint32_t frame_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void frame_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void decoder_restart(proto_decoder *d)
{
    cobs_dec_reset(&d->cobs);
    d->n = 0;
    d->discarding = 0;
}

void proto_decoder_init(proto_decoder *d)
{
    proto_counters zero = {0, 0, 0, 0, 0, 0, 0, 0};
    decoder_restart(d);
    d->counters = zero;
}

/* A delimiter arrived: judge the frame collected so far. Every non-empty frame lands in exactly
 * one counter; the checks run from framing outwards so the count names the first thing wrong. */
static int decoder_finish(proto_decoder *d, proto_frame *out)
{
    uint32_t n = d->n;
    int started = d->cobs.started;
    int complete = cobs_dec_complete(&d->cobs);
    int discarding = d->discarding;
    decoder_restart(d);

    if (discarding) return 0;  /* already counted when it was rejected */
    if (!started) return 0;    /* 0x00 0x00: an empty frame is a resync, not an error */
    if (!complete) {
        d->counters.cobs_errors++;
        return 0;
    }
    if (n < PROTO_HEADER_BYTES + PROTO_CRC_BYTES) {
        d->counters.size_mismatch++;
        return 0;
    }
    uint32_t len = frame_get_u32(d->raw + 4);
    /* len <= PROTO_MAX_PAYLOAD was enforced when the header completed, so this cannot overflow. */
    if (n != PROTO_HEADER_BYTES + len + PROTO_CRC_BYTES) {
        d->counters.size_mismatch++;
        return 0;
    }
    uint32_t crc_rx = frame_get_u32(d->raw + PROTO_HEADER_BYTES + len);
    if (crc32_ieee(d->raw, PROTO_HEADER_BYTES + len) != crc_rx) {
        d->counters.crc_errors++;
        return 0;
    }
    out->version = d->raw[0];
    out->type = d->raw[1];
    out->seq = (uint16_t)(d->raw[2] | (d->raw[3] << 8));
    out->len = len;
    out->payload = d->raw + PROTO_HEADER_BYTES;
    if (out->version != PROTO_VERSION) {
        d->counters.version_mismatch++;
    } else {
        d->counters.frames_ok++;
    }
    return 1;
}

int proto_decoder_push(proto_decoder *d, uint8_t byte, proto_frame *out)
{
    uint8_t b;
    if (byte == 0u) return decoder_finish(d, out);
    if (d->discarding) return 0;
    if (!cobs_dec_push(&d->cobs, byte, &b)) return 0;
    if (d->n >= PROTO_FRAME_RAW_MAX) {
        d->counters.oversized++;
        d->discarding = 1;
        return 0;
    }
    d->raw[d->n++] = b;
    /* Reject an oversized frame as soon as its header says so, before buffering its payload. */
    if (d->n == PROTO_HEADER_BYTES && frame_get_u32(d->raw + 4) > PROTO_MAX_PAYLOAD) {
        d->counters.oversized++;
        d->discarding = 1;
    }
    return 0;
}

/* Same result as pushing byte by byte, but the data bytes of a COBS block (the bulk of a WRITE
 * frame) are copied in one loop instead of a call per byte, and a frame being discarded is skipped
 * up to its delimiter. Flash throughput on the mock is bounded by this loop. */
uint32_t proto_decoder_feed(proto_decoder *d, const uint8_t *buf, uint32_t n,
                            proto_frame_fn on_frame, void *ctx)
{
    uint32_t frames = 0;
    uint32_t i = 0;
    proto_frame f;
    while (i < n) {
        if (buf[i] != 0u && d->discarding) {
            while (i < n && buf[i] != 0u) i++;
            continue;
        }
        if (buf[i] != 0u && d->cobs.left > 0u && d->n < PROTO_FRAME_RAW_MAX) {
            /* Data bytes of the current block: up to the block's end, the input's end, a 0x00
             * (which ends the frame early), the buffer's end, or the end of the header (which is
             * checked on its own, as in proto_decoder_push). */
            uint32_t take = d->cobs.left;
            uint32_t room = PROTO_FRAME_RAW_MAX - d->n;
            if (take > n - i) take = n - i;
            if (take > room) take = room;
            if (d->n < PROTO_HEADER_BYTES && take > PROTO_HEADER_BYTES - d->n) take = PROTO_HEADER_BYTES - d->n;
            /* memchr and memcpy instead of a byte loop: they move a block several bytes per cycle,
             * and this loop is what a chip does with every byte of a shard it is flashed with. */
            const uint8_t *src = buf + i;
            const uint8_t *zero = memchr(src, 0, take);
            uint32_t k = zero != NULL ? (uint32_t)(zero - src) : take;
            memcpy(d->raw + d->n, src, k);
            d->n += k;
            d->cobs.left = (uint8_t)(d->cobs.left - k);
            i += k;
            if (d->n == PROTO_HEADER_BYTES && k > 0u && frame_get_u32(d->raw + 4) > PROTO_MAX_PAYLOAD) {
                d->counters.oversized++;
                d->discarding = 1;
            }
            continue;
        }
        if (proto_decoder_push(d, buf[i], &f)) {
            frames++;
            if (on_frame) on_frame(ctx, &f);
        }
        i++;
    }
    return frames;
}

uint32_t proto_frame_encode_version(uint8_t version, uint8_t type, uint16_t seq,
                                    const uint8_t *payload, uint32_t len,
                                    uint8_t *out, uint32_t cap)
{
    uint8_t header[PROTO_HEADER_BYTES];
    uint8_t crc_le[PROTO_CRC_BYTES];
    cobs_encoder e;
    uint32_t n;

    if (len > PROTO_MAX_PAYLOAD || (len > 0u && payload == 0)) return 0;
    header[0] = version;
    header[1] = type;
    header[2] = (uint8_t)seq;
    header[3] = (uint8_t)(seq >> 8);
    frame_put_u32(header + 4, len);
    frame_put_u32(crc_le, crc32_update(crc32_ieee(header, PROTO_HEADER_BYTES), payload, len));

    cobs_enc_begin(&e, out, cap);
    cobs_enc_push(&e, header, PROTO_HEADER_BYTES);
    cobs_enc_push(&e, payload, len);
    cobs_enc_push(&e, crc_le, PROTO_CRC_BYTES);
    n = cobs_enc_end(&e);
    if (n == 0u || n >= cap) return 0; /* no room for the delimiter */
    out[n] = 0u;
    return n + 1u;
}

uint32_t proto_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len,
                            uint8_t *out, uint32_t cap)
{
    return proto_frame_encode_version((uint8_t)PROTO_VERSION, type, seq, payload, len, out, cap);
}
