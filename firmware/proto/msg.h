/* Message catalogue of the host<->chip protocol: type ids, error codes, trace phase ids and the
 * payload layouts (docs/protocol.md is the reference; orchestrator/link/messages.py mirrors every
 * number here and tests/test_link_frame.py checks they agree).
 *
 * All multi-byte fields are little-endian and are read and written byte by byte with the
 * proto_get_* / proto_put_* helpers: wire bytes are never cast to structs, so neither alignment
 * nor the compiler's struct padding matters. */
#ifndef PROTO_MSG_H
#define PROTO_MSG_H

#include <stdint.h>
#include "proto/frame.h"

/* ---- message types. Requests (host -> chip) are < 0x80, replies (chip -> host) >= 0x80. ---- */
#define PROTO_T_IDENTIFY        0x01u /* empty                         -> IDENTIFY_REPLY */
#define PROTO_T_WRITE           0x02u /* offset u32, data[]            -> ACK | NAK | ERROR */
#define PROTO_T_REGION_CRC      0x03u /* offset u32, length u32        -> CRC_REPLY | ERROR */
#define PROTO_T_COMMIT          0x04u /* see proto_commit              -> OK | ERROR */
#define PROTO_T_CONFIGURE       0x05u /* see proto_configure           -> OK | ERROR */
#define PROTO_T_PING            0x06u /* nonce u32                     -> PONG */
#define PROTO_T_RUN             0x07u /* see proto_run -> OK, then TOKEN/TRACE/LOGITS..., DONE */
#define PROTO_T_RESET           0x08u /* empty                         -> OK */
#define PROTO_T_STATS           0x09u /* empty                         -> STATS_REPLY */
#define PROTO_T_RUN_ENCODER     0x0Au /* see proto_run_encoder -> OK, then TRACE/EMBEDDING..., DONE */

#define PROTO_T_IDENTIFY_REPLY  0x81u
#define PROTO_T_ACK             0x82u /* offset u32, length u32 of the WRITE it acknowledges */
#define PROTO_T_NAK             0x83u /* code u16, reserved u16, offset u32: retryable, resend */
#define PROTO_T_CRC_REPLY       0x84u /* offset u32, length u32, crc32 u32 */
#define PROTO_T_OK              0x85u /* empty */
#define PROTO_T_PONG            0x86u /* nonce u32, cycles u64 */
#define PROTO_T_TOKEN           0x87u /* index u32, pos u32, token u32, cycles u64 */
#define PROTO_T_TRACE           0x88u /* count u32, count * proto_trace_record */
#define PROTO_T_LOGITS          0x89u /* first u32, count u32, count * s32 */
#define PROTO_T_DONE            0x8Au /* status u16, reserved u16, tokens u32, cycles u64 */
#define PROTO_T_ERROR           0x8Bu /* code u16, UTF-8 text (rest of the payload) */
#define PROTO_T_STATS_REPLY     0x8Cu /* proto_counters as 8 x u32 */
#define PROTO_T_EMBEDDING       0x8Du /* first u32, count u32, n_valid u32, count * s32 */

/* ---- error codes (ERROR, NAK and DONE.status; 0 is success) ---- */
#define PROTO_E_NONE            0u
#define PROTO_E_BAD_FRAME       1u  /* malformed frame (a chip counts these silently) */
#define PROTO_E_BAD_CRC         2u  /* frame CRC mismatch (likewise counted, not answered) */
#define PROTO_E_UNKNOWN_TYPE    3u
#define PROTO_E_BAD_LENGTH      4u  /* payload length wrong for the message type */
#define PROTO_E_BAD_STATE       5u  /* e.g. RUN with no committed shard */
#define PROTO_E_NO_FIT          6u  /* shard/region does not fit the staging slot */
#define PROTO_E_COMMIT_CRC      7u  /* staged bytes do not match COMMIT's crc32 */
#define PROTO_E_LINK_LOST       8u  /* chip-to-chip link broke */
#define PROTO_E_LINK_TIMEOUT    9u  /* chip-to-chip peer did not answer in time */
#define PROTO_E_NOT_CONFIGURED  10u /* RUN before CONFIGURE */
#define PROTO_E_INTERNAL        11u
#define PROTO_E_BAD_VERSION     12u /* frame of another protocol version */
#define PROTO_E_BAD_ARG         13u /* a field out of range (rank >= world, unknown flag, ...) */
#define PROTO_E_BUSY            14u /* transient: try again (NAK) */
#define PROTO_E_NV_IO           15u /* non-volatile storage read/write failed */
#define PROTO_E_COUNT           16u

/* ---- trace phase ids (proto_trace_record.phase) ---- */
#define PROTO_PHASE_EMBED          0u
#define PROTO_PHASE_ATTENTION      1u
#define PROTO_PHASE_ALLREDUCE_ATT  2u
#define PROTO_PHASE_FFN            3u
#define PROTO_PHASE_ALLREDUCE_FFN  4u
#define PROTO_PHASE_CLASSIFIER     5u
#define PROTO_PHASE_ARGMAX_REDUCE  6u
/* 7..15 reserved for more decoder phases, 16..31 for encoder phases. Encoders also use EMBED,
 * ATTENTION, ALLREDUCE_ATT, FFN and ALLREDUCE_FFN. */
#define PROTO_PHASE_ALLREDUCE_EMBED 16u /* the word-embedding rows (and BERT's position columns) */
#define PROTO_PHASE_IN_BOTTLENECK   17u /* MobileBERT: my columns into the bottlenecks and values */
#define PROTO_PHASE_ALLREDUCE_IN    18u
#define PROTO_PHASE_OUT_BOTTLENECK  19u /* MobileBERT: my columns of the wide stream */
#define PROTO_PHASE_POOL            20u /* the pooled sentence embedding of my columns */
#define PROTO_PHASE_COUNT          7u
#define PROTO_LAYER_NONE           0xFFu /* layer field of phases outside a block */

/* ---- CONFIGURE topology ---- */
#define PROTO_TOPO_RING          0u
#define PROTO_TOPO_HIERARCHICAL  1u

/* ---- RUN flags ---- */
#define PROTO_RUN_TRACE   0x1u /* stream TRACE records */
#define PROTO_RUN_LOGITS  0x2u /* send the final step's logits slice */
#define PROTO_RUN_FLAGS_KNOWN (PROTO_RUN_TRACE | PROTO_RUN_LOGITS)

/* ---- fixed sizes ---- */
#define PROTO_PLAN_ID_BYTES        32u /* sha256 of the manifest's plan */
#define PROTO_FW_VERSION_BYTES     16u /* NUL-padded ASCII */
#define PROTO_PROFILE_NAME_BYTES   32u /* NUL-padded ASCII */
#define PROTO_COUNTERS_BYTES       (4u * PROTO_COUNTERS_COUNT)
#define PROTO_SHARD_DESC_BYTES     (4u + PROTO_PLAN_ID_BYTES + 16u)
#define PROTO_IDENTIFY_REPLY_BYTES (32u + PROTO_FW_VERSION_BYTES + PROTO_PROFILE_NAME_BYTES + \
                                    PROTO_SHARD_DESC_BYTES + PROTO_COUNTERS_BYTES)
#define PROTO_WRITE_HEADER_BYTES   4u
#define PROTO_WRITE_MAX_DATA       (PROTO_MAX_PAYLOAD - PROTO_WRITE_HEADER_BYTES)
#define PROTO_REGION_CRC_BYTES     8u
#define PROTO_COMMIT_BYTES         (8u + PROTO_PLAN_ID_BYTES + 8u)
#define PROTO_CONFIGURE_BYTES      16u
#define PROTO_PING_BYTES           4u
#define PROTO_RUN_HEADER_BYTES     24u
#define PROTO_RUN_MAX_PROMPT       ((PROTO_MAX_PAYLOAD - PROTO_RUN_HEADER_BYTES) / 4u)
#define PROTO_ACK_BYTES            8u
#define PROTO_NAK_BYTES            8u
#define PROTO_CRC_REPLY_BYTES      12u
#define PROTO_PONG_BYTES           12u
#define PROTO_TOKEN_BYTES          20u
#define PROTO_TRACE_RECORD_BYTES   56u
#define PROTO_TRACE_HEADER_BYTES   4u
#define PROTO_TRACE_MAX_RECORDS    ((PROTO_MAX_PAYLOAD - PROTO_TRACE_HEADER_BYTES) / PROTO_TRACE_RECORD_BYTES)
#define PROTO_LOGITS_HEADER_BYTES  8u
#define PROTO_LOGITS_MAX_COUNT     ((PROTO_MAX_PAYLOAD - PROTO_LOGITS_HEADER_BYTES) / 4u)
#define PROTO_DONE_BYTES           16u
#define PROTO_RUN_ENCODER_HEADER_BYTES 12u
#define PROTO_RUN_ENCODER_MAX_TOKENS ((PROTO_MAX_PAYLOAD - PROTO_RUN_ENCODER_HEADER_BYTES) / 5u)
#define PROTO_RUN_ENCODER_FLAGS_KNOWN PROTO_RUN_TRACE
#define PROTO_EMBEDDING_HEADER_BYTES 12u
#define PROTO_EMBEDDING_MAX_COUNT  ((PROTO_MAX_PAYLOAD - PROTO_EMBEDDING_HEADER_BYTES) / 4u)
#define PROTO_ERROR_HEADER_BYTES   2u
#define PROTO_ERROR_TEXT_MAX       200u

/* ---- little-endian field access ---- */
static inline void proto_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void proto_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void proto_put_u64(uint8_t *p, uint64_t v)
{
    proto_put_u32(p, (uint32_t)v);
    proto_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint16_t proto_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t proto_get_u64(const uint8_t *p)
{
    return (uint64_t)proto_get_u32(p) | ((uint64_t)proto_get_u32(p + 4) << 32);
}

/* ---- parsed requests (filled by proto_dispatch after checking lengths) ---- */
typedef struct {
    uint32_t total_bytes;                  /* bytes of the staged shard, from offset 0 */
    uint32_t crc32;                        /* expected CRC32 of those bytes */
    uint8_t  plan_id[PROTO_PLAN_ID_BYTES];
    uint32_t rank;
    uint32_t world;
} proto_commit;

typedef struct {
    uint32_t rank;
    uint32_t world;
    uint32_t topology;   /* PROTO_TOPO_* */
    uint32_t group_size; /* hierarchical: ranks per group (divides world); ring: 0 */
} proto_configure;

typedef struct {
    uint32_t       flags;           /* PROTO_RUN_* */
    uint32_t       n_tokens;        /* tokens to generate after the prompt */
    uint32_t       temperature_q16; /* Q16.16; 0 = greedy argmax */
    uint64_t       seed;
    uint32_t       n_prompt;
    const uint8_t *prompt_le;       /* n_prompt u32 token ids, still in wire order */
} proto_run;

typedef struct {
    uint32_t       flags;    /* PROTO_RUN_TRACE */
    uint32_t       n_tokens; /* positions of the sequence, >= 1 */
    uint32_t       n_valid;  /* 1..n_tokens: keys at positions >= n_valid are padding, masked out */
    const uint8_t *ids_le;   /* n_tokens u32 token ids, still in wire order */
    const uint8_t *segments; /* n_tokens u8 segment (token type) ids */
} proto_run_encoder;

/* Prompt ids stay in the frame buffer (no copy, no stack array); read them through this. */
static inline uint32_t proto_run_prompt_id(const proto_run *r, uint32_t i)
{
    return proto_get_u32(r->prompt_le + 4u * i);
}

/* ---- reply contents (packed by the proto_pack_* functions) ---- */
typedef struct {
    uint8_t  valid;                        /* 0: no committed shard; the rest is zero */
    uint8_t  plan_id[PROTO_PLAN_ID_BYTES];
    uint32_t rank;
    uint32_t world;
    uint32_t shard_bytes;
    uint32_t shard_crc;
} proto_shard_desc;

typedef struct {
    uint32_t         chip_id;
    uint16_t         protocol_version;
    uint32_t         max_payload;  /* PROTO_MAX_PAYLOAD of the chip's build */
    uint32_t         window;       /* WRITE frames the chip accepts in flight */
    uint32_t         onchip_bytes;
    uint32_t         offchip_bytes;
    uint32_t         nv_bytes;
    uint32_t         slot_bytes;   /* capacity of the staging slot: the largest shard */
    char             fw_version[PROTO_FW_VERSION_BYTES];
    char             profile[PROTO_PROFILE_NAME_BYTES];
    proto_shard_desc committed;
    proto_counters   counters;
} proto_identify_reply;

typedef struct {
    uint32_t index;  /* 0-based index among generated tokens */
    uint32_t pos;    /* sequence position */
    uint32_t token;
    uint64_t cycles; /* chip cycle counter when the token was known */
} proto_token;

typedef struct {
    uint32_t token_index;
    uint8_t  phase;  /* PROTO_PHASE_* */
    uint8_t  layer;  /* block index, PROTO_LAYER_NONE outside blocks */
    uint64_t start_cycles;
    uint64_t end_cycles;
    uint64_t macs;
    uint64_t onchip_bytes;
    uint64_t offchip_bytes;
    uint32_t link_tx_bytes;
    uint32_t link_rx_bytes;
} proto_trace_record;

typedef struct {
    uint16_t status; /* PROTO_E_NONE or the error that ended the run */
    uint32_t tokens; /* tokens generated */
    uint64_t cycles; /* cycles from RUN to DONE */
} proto_done;

/* ---- payload packers: write into p (capacity cap), return the payload length, or 0 if it does
 * not fit or a count is out of range. ---- */
uint32_t proto_pack_identify_reply(uint8_t *p, uint32_t cap, const proto_identify_reply *m);
uint32_t proto_pack_ack(uint8_t *p, uint32_t cap, uint32_t offset, uint32_t length);
uint32_t proto_pack_nak(uint8_t *p, uint32_t cap, uint16_t code, uint32_t offset);
uint32_t proto_pack_crc_reply(uint8_t *p, uint32_t cap, uint32_t offset, uint32_t length, uint32_t crc);
uint32_t proto_pack_pong(uint8_t *p, uint32_t cap, uint32_t nonce, uint64_t cycles);
uint32_t proto_pack_token(uint8_t *p, uint32_t cap, const proto_token *t);
void     proto_pack_trace_record(uint8_t *p, const proto_trace_record *r); /* writes 56 bytes */
uint32_t proto_pack_trace(uint8_t *p, uint32_t cap, const proto_trace_record *recs, uint32_t count);
uint32_t proto_pack_logits(uint8_t *p, uint32_t cap, uint32_t first, const int32_t *values, uint32_t count);
uint32_t proto_pack_done(uint8_t *p, uint32_t cap, const proto_done *d);
uint32_t proto_pack_embedding(uint8_t *p, uint32_t cap, uint32_t first, uint32_t n_valid, const int32_t *values,
                              uint32_t count);
/* text is NUL-terminated and truncated to PROTO_ERROR_TEXT_MAX bytes. */
uint32_t proto_pack_error(uint8_t *p, uint32_t cap, uint16_t code, const char *text);
uint32_t proto_pack_counters(uint8_t *p, uint32_t cap, const proto_counters *c);

/* Short English name of an error code ("crc mismatch on commit"); "unknown error" otherwise. */
const char *proto_error_text(uint16_t code);

#endif
