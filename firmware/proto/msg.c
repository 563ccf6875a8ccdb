#include "proto/msg.h"

static void msg_put_bytes(uint8_t *p, const uint8_t *src, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) p[i] = src[i];
}

/* Fixed-width text field: copy up to n-1 chars and NUL-pad, so the field always ends in NUL and
 * the host never reads past it. */
static void msg_put_text(uint8_t *p, const char *s, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 1u < n && s[i] != '\0'; i++) p[i] = (uint8_t)s[i];
    for (; i < n; i++) p[i] = 0u;
}

static void msg_put_counters(uint8_t *p, const proto_counters *c)
{
    proto_put_u32(p + 0, c->frames_ok);
    proto_put_u32(p + 4, c->crc_errors);
    proto_put_u32(p + 8, c->cobs_errors);
    proto_put_u32(p + 12, c->oversized);
    proto_put_u32(p + 16, c->size_mismatch);
    proto_put_u32(p + 20, c->version_mismatch);
    proto_put_u32(p + 24, c->unknown_type);
    proto_put_u32(p + 28, c->bad_length);
}

uint32_t proto_pack_identify_reply(uint8_t *p, uint32_t cap, const proto_identify_reply *m)
{
    if (cap < PROTO_IDENTIFY_REPLY_BYTES) return 0;
    proto_put_u32(p + 0, m->chip_id);
    proto_put_u16(p + 4, m->protocol_version);
    proto_put_u16(p + 6, 0u);
    proto_put_u32(p + 8, m->max_payload);
    proto_put_u32(p + 12, m->window);
    proto_put_u32(p + 16, m->onchip_bytes);
    proto_put_u32(p + 20, m->offchip_bytes);
    proto_put_u32(p + 24, m->nv_bytes);
    proto_put_u32(p + 28, m->slot_bytes);
    msg_put_text(p + 32, m->fw_version, PROTO_FW_VERSION_BYTES);
    msg_put_text(p + 48, m->profile, PROTO_PROFILE_NAME_BYTES);
    p[80] = m->committed.valid ? 1u : 0u;
    p[81] = p[82] = p[83] = 0u;
    msg_put_bytes(p + 84, m->committed.plan_id, PROTO_PLAN_ID_BYTES);
    proto_put_u32(p + 116, m->committed.rank);
    proto_put_u32(p + 120, m->committed.world);
    proto_put_u32(p + 124, m->committed.shard_bytes);
    proto_put_u32(p + 128, m->committed.shard_crc);
    msg_put_counters(p + 132, &m->counters);
    return PROTO_IDENTIFY_REPLY_BYTES;
}

uint32_t proto_pack_ack(uint8_t *p, uint32_t cap, uint32_t offset, uint32_t length)
{
    if (cap < PROTO_ACK_BYTES) return 0;
    proto_put_u32(p, offset);
    proto_put_u32(p + 4, length);
    return PROTO_ACK_BYTES;
}

uint32_t proto_pack_nak(uint8_t *p, uint32_t cap, uint16_t code, uint32_t offset)
{
    if (cap < PROTO_NAK_BYTES) return 0;
    proto_put_u16(p, code);
    proto_put_u16(p + 2, 0u);
    proto_put_u32(p + 4, offset);
    return PROTO_NAK_BYTES;
}

uint32_t proto_pack_crc_reply(uint8_t *p, uint32_t cap, uint32_t offset, uint32_t length, uint32_t crc)
{
    if (cap < PROTO_CRC_REPLY_BYTES) return 0;
    proto_put_u32(p, offset);
    proto_put_u32(p + 4, length);
    proto_put_u32(p + 8, crc);
    return PROTO_CRC_REPLY_BYTES;
}

uint32_t proto_pack_pong(uint8_t *p, uint32_t cap, uint32_t nonce, uint64_t cycles)
{
    if (cap < PROTO_PONG_BYTES) return 0;
    proto_put_u32(p, nonce);
    proto_put_u64(p + 4, cycles);
    return PROTO_PONG_BYTES;
}

uint32_t proto_pack_token(uint8_t *p, uint32_t cap, const proto_token *t)
{
    if (cap < PROTO_TOKEN_BYTES) return 0;
    proto_put_u32(p, t->index);
    proto_put_u32(p + 4, t->pos);
    proto_put_u32(p + 8, t->token);
    proto_put_u64(p + 12, t->cycles);
    return PROTO_TOKEN_BYTES;
}

void proto_pack_trace_record(uint8_t *p, const proto_trace_record *r)
{
    proto_put_u32(p, r->token_index);
    p[4] = r->phase;
    p[5] = r->layer;
    proto_put_u16(p + 6, 0u);
    proto_put_u64(p + 8, r->start_cycles);
    proto_put_u64(p + 16, r->end_cycles);
    proto_put_u64(p + 24, r->macs);
    proto_put_u64(p + 32, r->onchip_bytes);
    proto_put_u64(p + 40, r->offchip_bytes);
    proto_put_u32(p + 48, r->link_tx_bytes);
    proto_put_u32(p + 52, r->link_rx_bytes);
}

uint32_t proto_pack_trace(uint8_t *p, uint32_t cap, const proto_trace_record *recs, uint32_t count)
{
    if (count > PROTO_TRACE_MAX_RECORDS) return 0;
    uint32_t n = PROTO_TRACE_HEADER_BYTES + count * PROTO_TRACE_RECORD_BYTES;
    if (cap < n) return 0;
    proto_put_u32(p, count);
    for (uint32_t i = 0; i < count; i++)
        proto_pack_trace_record(p + PROTO_TRACE_HEADER_BYTES + i * PROTO_TRACE_RECORD_BYTES, &recs[i]);
    return n;
}

uint32_t proto_pack_logits(uint8_t *p, uint32_t cap, uint32_t first, const int32_t *values, uint32_t count)
{
    if (count > PROTO_LOGITS_MAX_COUNT) return 0;
    uint32_t n = PROTO_LOGITS_HEADER_BYTES + 4u * count;
    if (cap < n) return 0;
    proto_put_u32(p, first);
    proto_put_u32(p + 4, count);
    for (uint32_t i = 0; i < count; i++)
        proto_put_u32(p + PROTO_LOGITS_HEADER_BYTES + 4u * i, (uint32_t)values[i]);
    return n;
}

uint32_t proto_pack_done(uint8_t *p, uint32_t cap, const proto_done *d)
{
    if (cap < PROTO_DONE_BYTES) return 0;
    proto_put_u16(p, d->status);
    proto_put_u16(p + 2, 0u);
    proto_put_u32(p + 4, d->tokens);
    proto_put_u64(p + 8, d->cycles);
    return PROTO_DONE_BYTES;
}

uint32_t proto_pack_embedding(uint8_t *p, uint32_t cap, uint32_t first, uint32_t n_valid, const int32_t *values,
                              uint32_t count)
{
    if (count > PROTO_EMBEDDING_MAX_COUNT) return 0;
    uint32_t n = PROTO_EMBEDDING_HEADER_BYTES + 4u * count;
    if (cap < n) return 0;
    proto_put_u32(p, first);
    proto_put_u32(p + 4, count);
    proto_put_u32(p + 8, n_valid);
    for (uint32_t i = 0; i < count; i++)
        proto_put_u32(p + PROTO_EMBEDDING_HEADER_BYTES + 4u * i, (uint32_t)values[i]);
    return n;
}

uint32_t proto_pack_error(uint8_t *p, uint32_t cap, uint16_t code, const char *text)
{
    uint32_t n = 0;
    if (cap < PROTO_ERROR_HEADER_BYTES) return 0;
    proto_put_u16(p, code);
    if (text) {
        while (text[n] != '\0' && n < PROTO_ERROR_TEXT_MAX && PROTO_ERROR_HEADER_BYTES + n < cap) {
            p[PROTO_ERROR_HEADER_BYTES + n] = (uint8_t)text[n];
            n++;
        }
    }
    return PROTO_ERROR_HEADER_BYTES + n;
}

uint32_t proto_pack_counters(uint8_t *p, uint32_t cap, const proto_counters *c)
{
    if (cap < PROTO_COUNTERS_BYTES) return 0;
    msg_put_counters(p, c);
    return PROTO_COUNTERS_BYTES;
}

const char *proto_error_text(uint16_t code)
{
    /* Indexed by PROTO_E_*; the host has the same names in messages.ErrorCode. */
    static const char *const names[PROTO_E_COUNT] = {
        "ok",
        "bad frame",
        "bad crc",
        "unknown message type",
        "bad payload length",
        "bad state",
        "shard does not fit",
        "crc mismatch on commit",
        "chip link lost",
        "chip link timeout",
        "not configured",
        "internal error",
        "protocol version mismatch",
        "bad argument",
        "busy",
        "non-volatile storage error",
    };
    return code < PROTO_E_COUNT ? names[code] : "unknown error";
}
