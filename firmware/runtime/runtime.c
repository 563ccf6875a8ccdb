/* runtime.c: the chip's state machine behind the host protocol (docs/protocol.md).
 *
 * State: the committed shard (loaded and validated at boot and after each COMMIT), the cluster
 * configuration (rank, world, topology: set by CONFIGURE), and the buffers carved from a static
 * arena when a shard is loaded. Nothing is allocated after that. */
#include "runtime/runtime.h"

#include <stddef.h>
#include <string.h>

#include "collective/coll.h"
#include "hal/hal.h"
#include "kernels/kernels.h"
#include "proto/crc32.h"
#include "proto/dispatch.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "runtime/decoder.h"
#include "runtime/encoder.h"
#include "runtime/model.h"
#include "runtime/nvstore.h"

#ifndef RT_ARENA_BYTES
#define RT_ARENA_BYTES (24u << 20) /* working memory of the POSIX build; an MCU port sets its own */
#endif

static uint8_t arena[RT_ARENA_BYTES];

static struct {
    nvstore_t nv;
    uint32_t kind;         /* SHARD_KIND_* of the loaded shard */
    model_t model;         /* decoder shards */
    runbuf_t buf;
    enc_model_t enc;       /* encoder shards */
    encbuf_t ebuf;
    int loaded;            /* the model of `kind` and its buffers are valid */
    shard_error_t load_error;
    int configured;
    uint32_t rank, world;
    proto_decoder dec;
    proto_handlers handlers;
    trace_buf_t trace;
    enc_trace_t enc_trace;
    uint8_t tx[PROTO_FRAME_WIRE_MAX];
    uint8_t payload[PROTO_MAX_PAYLOAD];
} rt;

/* --- replies -------------------------------------------------------------------------------- */

/* ACKs wait here until the end of the current batch of received frames (runtime_poll) and then go
 * out in one host write: one wake-up of the host per burst of WRITEs instead of one per frame.
 * Every other reply flushes them first, so replies still leave in the order they were made. */
static uint8_t g_acks[RT_ACK_BATCH_BYTES];
static uint32_t g_acks_n;

static void flush_acks(void) {
    if (g_acks_n) (void)hal_host_write(g_acks, g_acks_n);
    g_acks_n = 0;
}

static void send_frame(void *ctx, uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len) {
    (void)ctx;
    uint32_t n = proto_frame_encode(type, seq, payload, len, rt.tx, sizeof rt.tx);
    if (n == 0) return;
    if (type == PROTO_T_ACK) {
        if (n > sizeof g_acks - g_acks_n) flush_acks();
        if (n <= sizeof g_acks - g_acks_n) {
            memcpy(g_acks + g_acks_n, rt.tx, n);
            g_acks_n += n;
            return;
        }
    }
    flush_acks();
    (void)hal_host_write(rt.tx, n);
}

static void send_ok(uint16_t seq) { send_frame(NULL, PROTO_T_OK, seq, NULL, 0); }

static void send_error(uint16_t seq, uint16_t code, const char *text) {
    proto_reply_error(&rt.handlers, NULL, seq, code, text);
}

/* --- shard loading ---------------------------------------------------------------------------- */

static void set_load_error(const char *m) {
    uint32_t i = 0;
    for (; m[i] && i < sizeof rt.load_error.text - 1; i++) rt.load_error.text[i] = m[i];
    rt.load_error.text[i] = 0;
}

static void load_active(void) {
    rt.loaded = 0;
    rt.kind = 0;
    rt.load_error.text[0] = 0;
    if (rt.nv.active.seq == 0) return;
    const nv_commit_t *c = &rt.nv.active;
    const uint8_t *p = hal_nv_map(nvstore_slot_base(c->slot), c->size);
    if (!p || crc32_ieee(p, c->size) != c->crc) {
        const char *m = "shard: committed bytes no longer match their CRC (flash corrupt); flash again";
        uint32_t i = 0;
        for (; m[i] && i < sizeof rt.load_error.text - 1; i++) rt.load_error.text[i] = m[i];
        rt.load_error.text[i] = 0;
        return;
    }
    if (shard_model_kind(p, c->size) == SHARD_KIND_ENCODER) {
        if (enc_shard_parse(p, c->size, &rt.enc, &rt.load_error) != 0) return;
        if (encoder_bind(&rt.enc, &rt.ebuf, arena, sizeof arena) != 0) {
            set_load_error("shard: the encoder's activations do not fit this chip's working memory");
            return;
        }
        rt.kind = SHARD_KIND_ENCODER;
        rt.loaded = 1;
        return;
    }
    if (shard_parse(p, c->size, &rt.model, &rt.load_error) != 0) return;
    rt.kind = SHARD_KIND_DECODER;
    if (decoder_bind(&rt.model, &rt.buf, arena, sizeof arena) != 0) {
        const char *m = "shard: its KV cache and activations do not fit this chip's working memory";
        uint32_t i = 0;
        for (; m[i] && i < sizeof rt.load_error.text - 1; i++) rt.load_error.text[i] = m[i];
        rt.load_error.text[i] = 0;
        return;
    }
    rt.loaded = 1;
}

/* --- handlers --------------------------------------------------------------------------------- */

static void copy_str(char *dst, uint32_t cap, const char *src) {
    uint32_t i = 0;
    for (; src[i] && i < cap - 1; i++) dst[i] = src[i];
    for (; i < cap; i++) dst[i] = 0;
}

static int on_identify(void *ctx, uint16_t seq) {
    (void)ctx;
    hal_chip_info_t info;
    hal_chip_info(&info);
    proto_identify_reply r;
    uint8_t *zero = (uint8_t *)&r;
    for (uint32_t i = 0; i < sizeof r; i++) zero[i] = 0;
    r.chip_id = info.chip_id;
    r.protocol_version = PROTO_VERSION;
    r.max_payload = PROTO_MAX_PAYLOAD;
    r.window = RT_WRITE_WINDOW;
    r.onchip_bytes = (uint32_t)(info.onchip_bytes > 0xFFFFFFFFu ? 0xFFFFFFFFu : info.onchip_bytes);
    r.offchip_bytes = (uint32_t)(info.offchip_bytes > 0xFFFFFFFFu ? 0xFFFFFFFFu : info.offchip_bytes);
    r.nv_bytes = info.nv_bytes;
    r.slot_bytes = rt.nv.slot_bytes;
    copy_str(r.fw_version, sizeof r.fw_version, RT_FW_VERSION);
    copy_str(r.profile, sizeof r.profile, info.profile_name);
    if (rt.nv.active.seq && rt.loaded) {
        r.committed.valid = 1;
        for (int i = 0; i < 32; i++) r.committed.plan_id[i] = rt.nv.active.plan_id[i];
        r.committed.rank = rt.nv.active.rank;
        r.committed.world = rt.nv.active.world;
        r.committed.shard_bytes = rt.nv.active.size;
        r.committed.shard_crc = rt.nv.active.crc;
    }
    r.counters = rt.dec.counters;
    uint32_t n = proto_pack_identify_reply(rt.payload, sizeof rt.payload, &r);
    send_frame(NULL, PROTO_T_IDENTIFY_REPLY, seq, rt.payload, n);
    return 0;
}

static int on_write(void *ctx, uint16_t seq, uint32_t offset, const uint8_t *data, uint32_t n) {
    (void)ctx;
    if ((uint64_t)offset + n > rt.nv.slot_bytes) return PROTO_E_NO_FIT;
    uint32_t base = nvstore_slot_base(nvstore_staging_slot(&rt.nv));
    if (hal_nv_write(base + offset, data, n) != 0) return PROTO_E_NV_IO;
    uint32_t len = proto_pack_ack(rt.payload, sizeof rt.payload, offset, n);
    send_frame(NULL, PROTO_T_ACK, seq, rt.payload, len);
    return 0;
}

static int on_region_crc(void *ctx, uint16_t seq, uint32_t offset, uint32_t length) {
    (void)ctx;
    uint32_t crc;
    if ((uint64_t)offset + length > rt.nv.slot_bytes) return PROTO_E_NO_FIT;
    if (nvstore_crc(nvstore_staging_slot(&rt.nv), offset, length, &crc) != 0) return PROTO_E_NV_IO;
    uint32_t n = proto_pack_crc_reply(rt.payload, sizeof rt.payload, offset, length, crc);
    send_frame(NULL, PROTO_T_CRC_REPLY, seq, rt.payload, n);
    return 0;
}

static int on_commit(void *ctx, uint16_t seq, const proto_commit *c) {
    (void)ctx;
    if (c->total_bytes > rt.nv.slot_bytes) return PROTO_E_NO_FIT;
    uint32_t slot = nvstore_staging_slot(&rt.nv), crc;
    if (nvstore_crc(slot, 0, c->total_bytes, &crc) != 0) return PROTO_E_NV_IO;
    if (crc != c->crc32) {
        send_error(seq, PROTO_E_COMMIT_CRC, "staged shard CRC does not match; the previous shard stays active");
        return 0;
    }
    /* Validate the staged shard completely before it may become active. */
    static model_t staged;
    static enc_model_t staged_enc;
    shard_error_t err;
    const uint8_t *p = hal_nv_map(nvstore_slot_base(slot), c->total_bytes);
    if (!p) return PROTO_E_NV_IO;
    const int is_enc = shard_model_kind(p, c->total_bytes) == SHARD_KIND_ENCODER;
    if (is_enc ? enc_shard_parse(p, c->total_bytes, &staged_enc, &err) != 0
               : shard_parse(p, c->total_bytes, &staged, &err) != 0) {
        send_error(seq, PROTO_E_BAD_ARG, err.text);
        return 0;
    }
    const uint32_t s_rank = is_enc ? staged_enc.rank : staged.rank, s_world = is_enc ? staged_enc.world : staged.world;
    const uint8_t *s_plan = is_enc ? staged_enc.plan_id : staged.plan_id;
    if (s_rank != c->rank || s_world != c->world) {
        send_error(seq, PROTO_E_BAD_ARG, "shard's rank or world differs from COMMIT's");
        return 0;
    }
    for (int i = 0; i < 32; i++) {
        if (s_plan[i] != c->plan_id[i]) {
            send_error(seq, PROTO_E_BAD_ARG, "shard's plan id differs from COMMIT's");
            return 0;
        }
    }
    hal_chip_info_t info;
    hal_chip_info(&info);
    uint64_t ram = is_enc ? encoder_ram_bytes(&staged_enc) : decoder_ram_bytes(&staged);
    if (ram > sizeof arena || ram > info.onchip_bytes + info.offchip_bytes) {
        send_error(seq, PROTO_E_NO_FIT, is_enc ? "shard's activations do not fit this chip's working memory"
                                               : "shard's KV cache and activations do not fit this chip's working memory");
        return 0;
    }
    nv_commit_t rec = {0, 0, c->total_bytes, crc, {0}, c->rank, c->world};
    for (int i = 0; i < 32; i++) rec.plan_id[i] = c->plan_id[i];
    if (nvstore_commit(&rt.nv, &rec) != 0) return PROTO_E_NV_IO;
    load_active();
    if (!rt.loaded) {
        send_error(seq, PROTO_E_INTERNAL, rt.load_error.text);
        return 0;
    }
    send_ok(seq);
    return 0;
}

static int on_configure(void *ctx, uint16_t seq, const proto_configure *c) {
    (void)ctx;
    hal_topology t = {c->topology == PROTO_TOPO_HIERARCHICAL ? HAL_TOPO_HIER : HAL_TOPO_RING, c->group_size};
    rt.configured = 0;
    int rc = coll_configure(c->rank, c->world, &t);
    if (rc != 0) {
        send_error(seq, rc == HAL_ERR_TIMEOUT ? PROTO_E_LINK_TIMEOUT : PROTO_E_LINK_LOST, hal_strerror(rc));
        return 0;
    }
    rt.configured = 1;
    rt.rank = c->rank;
    rt.world = c->world;
    send_ok(seq);
    return 0;
}

static int on_ping(void *ctx, uint16_t seq, uint32_t nonce) {
    (void)ctx;
    uint32_t n = proto_pack_pong(rt.payload, sizeof rt.payload, nonce, hal_cycles());
    send_frame(NULL, PROTO_T_PONG, seq, rt.payload, n);
    return 0;
}

static void flush_trace(uint16_t seq) {
    uint32_t i = 0;
    while (i < rt.trace.n) {
        uint32_t k = rt.trace.n - i;
        if (k > PROTO_TRACE_MAX_RECORDS) k = PROTO_TRACE_MAX_RECORDS;
        uint32_t n = proto_pack_trace(rt.payload, sizeof rt.payload, &rt.trace.rec[i], k);
        send_frame(NULL, PROTO_T_TRACE, seq, rt.payload, n);
        i += k;
    }
    rt.trace.n = 0;
}

static uint16_t link_error_code(int rc) {
    return rc == HAL_ERR_TIMEOUT ? PROTO_E_LINK_TIMEOUT : PROTO_E_LINK_LOST;
}

static int on_run(void *ctx, uint16_t seq, const proto_run *r) {
    (void)ctx;
    const model_t *m = &rt.model;
    if (!rt.loaded) {
        send_error(seq, PROTO_E_BAD_STATE,
                   rt.load_error.text[0] ? rt.load_error.text : "no shard committed: run `orch flash` first");
        return 0;
    }
    if (rt.kind != SHARD_KIND_DECODER) {
        send_error(seq, PROTO_E_BAD_STATE, "the committed shard is an encoder: it runs with RUN_ENCODER, not RUN");
        return 0;
    }
    if (!rt.configured) return PROTO_E_NOT_CONFIGURED;
    if (m->rank != rt.rank || m->world != rt.world) {
        send_error(seq, PROTO_E_BAD_STATE, "the committed shard is for another rank or cluster size; flash again");
        return 0;
    }
    uint64_t positions = 1ull + r->n_prompt + r->n_tokens - 1ull;
    if (r->n_tokens == 0 || positions > m->context) {
        send_error(seq, PROTO_E_BAD_ARG, "prompt plus tokens exceed the shard's context");
        return 0;
    }
    for (uint32_t i = 0; i < r->n_prompt; i++)
        if (proto_run_prompt_id(r, i) >= m->vocab_size) {
            send_error(seq, PROTO_E_BAD_ARG, "a prompt id is outside the vocabulary");
            return 0;
        }
    sampler_t s = {(int32_t)r->temperature_q16, 0, 0, r->seed};
    if (r->temperature_q16 > 0x7FFFFFFFu ||
        (s.temp_q16 > 0 && temperature_multiplier(m->temp_mult, m->temp_shift, s.temp_q16, &s.mult, &s.shift) != 0)) {
        send_error(seq, PROTO_E_BAD_ARG, "temperature is out of range for this model's logit scale");
        return 0;
    }
    send_ok(seq);

    /* All chips start together: nobody computes before everyone has its RUN. */
    uint64_t t0 = hal_cycles();
    int rc = coll_barrier();
    uint32_t token = 1, generated = 0, pos = 0; /* BOS */
    uint16_t status = PROTO_E_NONE;
    if (rc != 0) status = link_error_code(rc);
    for (; status == PROTO_E_NONE && generated < r->n_tokens; pos++) {
        int pick = pos >= r->n_prompt; /* positions 0..n_prompt-1 force the prompt */
        uint32_t next = 0;
        rc = decoder_step(m, &rt.buf, token, pos, pick, &s, pos, &rt.trace, &next);
        if (r->flags & PROTO_RUN_TRACE) flush_trace(seq); else rt.trace.n = 0;
        if (rc != 0) {
            status = link_error_code(rc);
            break;
        }
        if (pick) {
            proto_token tk = {generated, pos + 1u, next, hal_cycles()};
            uint32_t n = proto_pack_token(rt.payload, sizeof rt.payload, &tk);
            send_frame(NULL, PROTO_T_TOKEN, seq, rt.payload, n);
            token = next;
            generated++;
        } else {
            token = proto_run_prompt_id(r, pos);
        }
    }
    if (status == PROTO_E_NONE && (r->flags & PROTO_RUN_LOGITS)) {
        for (uint32_t i = 0; i < m->n_vocab_local;) {
            uint32_t k = m->n_vocab_local - i;
            if (k > PROTO_LOGITS_MAX_COUNT) k = PROTO_LOGITS_MAX_COUNT;
            uint32_t n = proto_pack_logits(rt.payload, sizeof rt.payload, m->vocab_start + i, rt.buf.logits + i, k);
            send_frame(NULL, PROTO_T_LOGITS, seq, rt.payload, n);
            i += k;
        }
    }
    if (status != PROTO_E_NONE) {
        rt.configured = 0; /* the links are closed after a collective failed */
        send_error(seq, status, status == PROTO_E_LINK_TIMEOUT ? "a neighbour chip stopped answering"
                                                               : "a chip-to-chip link was lost");
    }
    proto_done d = {status, generated, hal_cycles() - t0};
    uint32_t n = proto_pack_done(rt.payload, sizeof rt.payload, &d);
    send_frame(NULL, PROTO_T_DONE, seq, rt.payload, n);
    return 0;
}

static void flush_enc_trace(uint16_t seq) {
    uint32_t i = 0;
    while (i < rt.enc_trace.n) {
        uint32_t k = rt.enc_trace.n - i;
        if (k > PROTO_TRACE_MAX_RECORDS) k = PROTO_TRACE_MAX_RECORDS;
        uint32_t n = proto_pack_trace(rt.payload, sizeof rt.payload, &rt.enc_trace.rec[i], k);
        send_frame(NULL, PROTO_T_TRACE, seq, rt.payload, n);
        i += k;
    }
    rt.enc_trace.n = 0;
}

/* One encoder inference over the sequence of the request (docs/protocol.md 3.5). */
static int on_run_encoder(void *ctx, uint16_t seq, const proto_run_encoder *r) {
    (void)ctx;
    const enc_model_t *m = &rt.enc;
    if (!rt.loaded) {
        send_error(seq, PROTO_E_BAD_STATE,
                   rt.load_error.text[0] ? rt.load_error.text : "no shard committed: run `orch flash` first");
        return 0;
    }
    if (rt.kind != SHARD_KIND_ENCODER) {
        send_error(seq, PROTO_E_BAD_STATE, "the committed shard is a decoder: it runs with RUN, not RUN_ENCODER");
        return 0;
    }
    if (!rt.configured) return PROTO_E_NOT_CONFIGURED;
    if (m->rank != rt.rank || m->world != rt.world) {
        send_error(seq, PROTO_E_BAD_STATE, "the committed shard is for another rank or cluster size; flash again");
        return 0;
    }
    if (r->n_tokens > m->context) {
        send_error(seq, PROTO_E_BAD_ARG, "the sequence is longer than the shard's context");
        return 0;
    }
    for (uint32_t i = 0; i < r->n_tokens; i++) {
        if (proto_get_u32(r->ids_le + 4u * i) >= m->vocab_size) {
            send_error(seq, PROTO_E_BAD_ARG, "a token id is outside the vocabulary");
            return 0;
        }
        if (r->segments[i] >= m->type_vocab) {
            send_error(seq, PROTO_E_BAD_ARG, "a segment id is outside the model's token types");
            return 0;
        }
    }
    send_ok(seq);

    uint64_t t0 = hal_cycles();
    int rc = coll_barrier();
    uint16_t status = PROTO_E_NONE;
    rt.enc_trace.n = 0;
    if (rc == 0) rc = encoder_run(m, &rt.ebuf, r->ids_le, r->segments, r->n_tokens, r->n_valid, 0, &rt.enc_trace);
    if (r->flags & PROTO_RUN_TRACE) flush_enc_trace(seq); else rt.enc_trace.n = 0;
    if (rc != 0) status = link_error_code(rc);
    if (status == PROTO_E_NONE) {
        for (uint32_t i = 0; i < m->n_cols;) {
            uint32_t k = m->n_cols - i;
            if (k > PROTO_EMBEDDING_MAX_COUNT) k = PROTO_EMBEDDING_MAX_COUNT;
            uint32_t n = proto_pack_embedding(rt.payload, sizeof rt.payload, m->col_start + i, r->n_valid,
                                              rt.ebuf.pooled + i, k);
            send_frame(NULL, PROTO_T_EMBEDDING, seq, rt.payload, n);
            i += k;
        }
    } else {
        rt.configured = 0;
        send_error(seq, status, status == PROTO_E_LINK_TIMEOUT ? "a neighbour chip stopped answering"
                                                               : "a chip-to-chip link was lost");
    }
    proto_done d = {status, r->n_tokens, hal_cycles() - t0};
    uint32_t n = proto_pack_done(rt.payload, sizeof rt.payload, &d);
    send_frame(NULL, PROTO_T_DONE, seq, rt.payload, n);
    return 0;
}

static int on_reset(void *ctx, uint16_t seq) {
    (void)ctx;
    coll_abort();
    rt.configured = 0;
    (void)nvstore_open(&rt.nv);
    load_active();
    send_ok(seq);
    return 0;
}

static int on_stats(void *ctx, uint16_t seq) {
    (void)ctx;
    uint32_t n = proto_pack_counters(rt.payload, sizeof rt.payload, &rt.dec.counters);
    send_frame(NULL, PROTO_T_STATS_REPLY, seq, rt.payload, n);
    return 0;
}

/* --- boot and the host loop ------------------------------------------------------------------- */

void runtime_init(void) {
    proto_decoder_init(&rt.dec);
    rt.handlers.reply = send_frame;
    rt.handlers.counters = &rt.dec.counters;
    rt.handlers.identify = on_identify;
    rt.handlers.write = on_write;
    rt.handlers.region_crc = on_region_crc;
    rt.handlers.commit = on_commit;
    rt.handlers.configure = on_configure;
    rt.handlers.ping = on_ping;
    rt.handlers.run = on_run;
    rt.handlers.reset = on_reset;
    rt.handlers.stats = on_stats;
    rt.handlers.run_encoder = on_run_encoder;
    rt.configured = 0;
    (void)nvstore_open(&rt.nv);
    load_active();
}

static void on_frame(void *ctx, const proto_frame *f) {
    (void)ctx;
    (void)proto_dispatch(f, &rt.handlers, NULL);
}

int runtime_poll(uint32_t timeout_ms) {
    static uint8_t rx[8192]; /* a pty hands over at most 4 KiB per read */
    int n = hal_host_read(rx, sizeof rx, timeout_ms);
    if (n < 0) return n;
    proto_decoder_feed(&rt.dec, rx, (uint32_t)n, on_frame, NULL);
    flush_acks();
    return 0;
}
