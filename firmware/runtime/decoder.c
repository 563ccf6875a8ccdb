/* decoder.c: the forward pass of one chip (docs/int8-spec.md, ARCHITECTURE.md "The partition").
 *
 * Every chip keeps the whole residual stream. Attention runs on this chip's heads and the FFN on its
 * hidden units; their output projections give int32 partial sums that two all-reduces per block add
 * up, after which every chip requantizes the same sum into its residual. Each phase declares its work
 * to hal_account() once, so the mock's virtual clock charges what the modelled MCU would spend. */
#include "runtime/decoder.h"
#include "runtime/trace.h"

#include <stddef.h>

#include "collective/coll.h"
#include "hal/hal.h"
#include "kernels/kernels.h"

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

static uint64_t kv_bytes(const model_t *m) {
    return (uint64_t)m->n_layers * m->context * m->n_kv_local * m->head_size;
}

static uint32_t acc_rows(const model_t *m) {
    uint32_t r = max_u32(m->dim, m->n_heads_local * m->head_size);
    return max_u32(r, m->n_kv_local * m->head_size);
}

#define ALIGN8(n) (((n) + 7u) & ~(uint64_t)7u)

uint64_t decoder_ram_bytes(const model_t *m) {
    uint64_t nq = (uint64_t)m->n_heads_local * m->head_size, nkv = (uint64_t)m->n_kv_local * m->head_size;
    uint64_t f = m->n_ffn_local, d = m->dim;
    uint64_t scratch = d < COLL_CHUNK_BYTES / 4u ? d : COLL_CHUNK_BYTES / 4u;
    return ALIGN8(4 * d) + ALIGN8(d) + ALIGN8(4 * (uint64_t)acc_rows(m)) + ALIGN8(nq) + 2 * ALIGN8(nkv) +
           ALIGN8(4 * nq) + ALIGN8(nq) + ALIGN8(4 * d) + ALIGN8(4 * scratch) + 2 * ALIGN8(4 * f) + 3 * ALIGN8(f) +
           ALIGN8(4 * (uint64_t)m->context) + 2 * ALIGN8(4 * (uint64_t)m->n_vocab_local) +
           2 * ALIGN8(8 * (uint64_t)m->world) + 2 * ALIGN8(kv_bytes(m));
}

static void *carve(uint8_t *arena, uint64_t cap, uint64_t *used, uint64_t n) {
    n = ALIGN8(n);
    if (*used + n > cap) return NULL;
    void *p = arena + *used;
    *used += n;
    return p;
}

int decoder_bind(const model_t *m, runbuf_t *b, uint8_t *arena, uint64_t cap) {
    uint64_t used = 0, nq = (uint64_t)m->n_heads_local * m->head_size, nkv = (uint64_t)m->n_kv_local * m->head_size;
    uint64_t f = m->n_ffn_local, d = m->dim;
    if (decoder_ram_bytes(m) > cap) return -1;
    b->scratch_n = (uint32_t)(d < COLL_CHUNK_BYTES / 4u ? d : COLL_CHUNK_BYTES / 4u);
    b->x = carve(arena, cap, &used, 4 * d);
    b->xn = carve(arena, cap, &used, d);
    b->acc = carve(arena, cap, &used, 4 * (uint64_t)acc_rows(m));
    b->q = carve(arena, cap, &used, nq);
    b->k = carve(arena, cap, &used, nkv);
    b->v = carve(arena, cap, &used, nkv);
    b->att = carve(arena, cap, &used, 4 * nq);
    b->o = carve(arena, cap, &used, nq);
    b->part = carve(arena, cap, &used, 4 * d);
    b->scratch = carve(arena, cap, &used, 4 * (uint64_t)b->scratch_n);
    b->h1acc = carve(arena, cap, &used, 4 * f);
    b->h3acc = carve(arena, cap, &used, 4 * f);
    b->h1 = carve(arena, cap, &used, f);
    b->h3 = carve(arena, cap, &used, f);
    b->g = carve(arena, cap, &used, f);
    b->scores = carve(arena, cap, &used, 4 * (uint64_t)m->context);
    b->logits = carve(arena, cap, &used, 4 * (uint64_t)m->n_vocab_local);
    b->weights = carve(arena, cap, &used, 4 * (uint64_t)m->n_vocab_local);
    b->sums = carve(arena, cap, &used, 8 * (uint64_t)m->world);
    b->sums_scratch = carve(arena, cap, &used, 8 * (uint64_t)m->world);
    b->k_cache = carve(arena, cap, &used, kv_bytes(m));
    b->v_cache = carve(arena, cap, &used, kv_bytes(m));
    return b->v_cache ? 0 : -1;
}

/* --- trace records: one per phase, cycle stamps and the work declared ---------------------------- */

static trace_phase_t phase_begin(trace_buf_t *t, uint32_t index, uint8_t phase, uint8_t layer) {
    return trace_phase_begin(t->rec, RT_TRACE_MAX, &t->n, index, phase, layer);
}

/* Bytes a product reads: its weights and requantization pairs, split by where the weights live. */
static void charge_linear(const qlinear_t *w, uint64_t *on, uint64_t *off) {
    uint64_t wb = (uint64_t)w->rows * w->cols;
    if (w->offchip) *off += wb; else *on += wb;
    *on += 8u * (uint64_t)w->rows;
}

static void linear_s8(const qlinear_t *w, const int8_t *x, int32_t *acc, int8_t *out) {
    gemv_s8_s32(w->w, x, acc, w->rows, w->cols);
    requantize_rows_s32_s8(acc, w->rq, out, w->rows);
}

/* --- the phases ------------------------------------------------------------------------------- */

static int embed(const model_t *m, runbuf_t *b, uint32_t token, uint32_t ti, trace_buf_t *t) {
    trace_phase_t p = phase_begin(t, ti, PROTO_PHASE_EMBED, PROTO_LAYER_NONE);
    uint32_t owner = 0;
    /* The vocabulary is split by rows in rank order, so the owner is found from the slices'
     * rule r*V/N, which every chip can evaluate. */
    for (uint32_t r = 0; r < m->world; r++) {
        uint32_t start = (uint32_t)((uint64_t)r * m->vocab_size / m->world);
        uint32_t end = (uint32_t)((uint64_t)(r + 1) * m->vocab_size / m->world);
        if (token >= start && token < end) owner = r;
    }
    uint64_t on = 0, off = 0;
    if (owner == m->rank) {
        uint32_t row = token - m->vocab_start;
        const int32_t *rq = m->embed.rq + 2u * row;
        embed_row_s8_s32(m->embed.w + (uint64_t)row * m->dim, rq[0], rq[1], b->x, m->dim);
        if (m->embed.offchip) off += m->dim; else on += m->dim;
        on += 8;
    }
    int rc = coll_broadcast(b->x, 4u * m->dim, owner);
    trace_phase_end(&p, 0, on, off);
    return rc;
}

static void attention(const model_t *m, runbuf_t *b, uint32_t l, uint32_t pos, uint32_t ti, trace_buf_t *t) {
    const layer_t *L = &m->layers[l];
    uint32_t hs = m->head_size, nkv = m->n_kv_local * hs;
    trace_phase_t p = phase_begin(t, ti, PROTO_PHASE_ATTENTION, (uint8_t)l);
    rmsnorm_s32_s8(b->x, L->att_norm, m->eps_q, b->xn, m->dim);
    linear_s8(&L->wq, b->xn, b->acc, b->q);
    linear_s8(&L->wk, b->xn, b->acc, b->k);
    linear_s8(&L->wv, b->xn, b->acc, b->v);
    rope_s8(b->q, m->n_heads_local, hs, pos, m->rope_steps, m->sin_table);
    rope_s8(b->k, m->n_kv_local, hs, pos, m->rope_steps, m->sin_table);
    int8_t *kc = b->k_cache + ((uint64_t)l * m->context) * nkv;
    int8_t *vc = b->v_cache + ((uint64_t)l * m->context) * nkv;
    for (uint32_t i = 0; i < nkv; i++) {
        kc[(uint64_t)pos * nkv + i] = b->k[i];
        vc[(uint64_t)pos * nkv + i] = b->v[i];
    }
    for (uint32_t h = 0; h < m->n_heads_local; h++) {
        uint32_t kvh = (m->head_start + h) / m->kv_mul - m->kv_start;
        attention_head_s8(b->q + h * hs, kc + kvh * hs, vc + kvh * hs, pos + 1, hs, nkv, L->soft_mult,
                          L->soft_shift, m->exp2_table, b->scores, b->att + h * hs);
    }
    requantize_s32_s8(b->att, L->o_mult, L->o_shift, b->o, m->n_heads_local * hs);
    gemv_s8_s32(L->wo.w, b->o, b->part, L->wo.rows, L->wo.cols);

    uint64_t on = 4u * m->dim, off = 0;
    uint64_t kv_read = 2ull * m->n_heads_local * (pos + 1u) * hs;
    if (m->flags & SHARD_FLAG_KV_OFFCHIP) off += kv_read; else on += kv_read;
    charge_linear(&L->wq, &on, &off);
    charge_linear(&L->wk, &on, &off);
    charge_linear(&L->wv, &on, &off);
    charge_linear(&L->wo, &on, &off);
    uint64_t macs = (uint64_t)m->dim * (L->wq.rows + L->wk.rows + L->wv.rows) + (uint64_t)L->wo.rows * L->wo.cols +
                    2ull * m->n_heads_local * (pos + 1u) * hs;
    trace_phase_end(&p, macs, on, off);
}

static int allreduce_into_residual(const model_t *m, runbuf_t *b, const qlinear_t *w, uint8_t phase,
                                   uint8_t layer, uint32_t ti, trace_buf_t *t) {
    trace_phase_t p = phase_begin(t, ti, phase, layer);
    int rc = coll_allreduce_sum_s32(b->part, m->dim, b->scratch, b->scratch_n);
    if (rc == 0) residual_add_s32(b->x, b->part, w->rq, m->dim);
    trace_phase_end(&p, 0, 0, 0);
    return rc;
}

static void ffn(const model_t *m, runbuf_t *b, uint32_t l, uint32_t ti, trace_buf_t *t) {
    const layer_t *L = &m->layers[l];
    trace_phase_t p = phase_begin(t, ti, PROTO_PHASE_FFN, (uint8_t)l);
    rmsnorm_s32_s8(b->x, L->ffn_norm, m->eps_q, b->xn, m->dim);
    linear_s8(&L->w1, b->xn, b->h1acc, b->h1);
    linear_s8(&L->w3, b->xn, b->h3acc, b->h3);
    swiglu_s8(b->h1, b->h3, L->silu_lut, L->g_mult, L->g_shift, b->g, m->n_ffn_local);
    gemv_s8_s32(L->w2.w, b->g, b->part, L->w2.rows, L->w2.cols);
    uint64_t on = 4u * m->dim + 4u * KN_SILU_LUT_LEN, off = 0;
    charge_linear(&L->w1, &on, &off);
    charge_linear(&L->w3, &on, &off);
    charge_linear(&L->w2, &on, &off);
    uint64_t macs = (uint64_t)m->dim * (L->w1.rows + L->w3.rows) + (uint64_t)L->w2.rows * L->w2.cols;
    trace_phase_end(&p, macs, on, off);
}

static void classifier(const model_t *m, runbuf_t *b, uint32_t ti, trace_buf_t *t) {
    trace_phase_t p = phase_begin(t, ti, PROTO_PHASE_CLASSIFIER, PROTO_LAYER_NONE);
    rmsnorm_s32_s8(b->x, m->final_norm, m->eps_q, b->xn, m->dim);
    gemv_s8_s32(m->cls.w, b->xn, b->logits, m->cls.rows, m->cls.cols);
    requantize_rows_s32(b->logits, m->cls.rq, b->logits, m->cls.rows, -KN_LOGIT_MAX, KN_LOGIT_MAX);
    uint64_t on = 4u * m->dim, off = 0;
    charge_linear(&m->cls, &on, &off);
    trace_phase_end(&p, (uint64_t)m->cls.rows * m->cls.cols, on, off);
}

/* Next token: local argmax, max-reduce over chips (ties to the lowest id); with a temperature,
 * the sampling of docs/int8-spec.md: every chip knows every chip's sum, draws the same target,
 * and the chip whose range holds it names the token in a second max-reduce. */
static int next_token(const model_t *m, runbuf_t *b, sampler_t *s, uint32_t ti, trace_buf_t *t, uint32_t *next) {
    trace_phase_t p = phase_begin(t, ti, PROTO_PHASE_ARGMAX_REDUCE, PROTO_LAYER_NONE);
    uint32_t local = argmax_s32(b->logits, m->n_vocab_local);
    int32_t gmax;
    uint32_t gidx;
    int rc = coll_argmax_reduce(b->logits[local], m->vocab_start + local, &gmax, &gidx);
    if (rc == 0 && s->temp_q16 > 0) {
        uint64_t mine = sample_weights_s32(b->logits, m->n_vocab_local, gmax, s->mult, s->shift, m->exp2_table,
                                           b->weights);
        for (uint32_t r = 0; r < m->world; r++) b->sums[r] = 0;
        b->sums[m->rank] = (int64_t)mine;
        rc = coll_allreduce_sum_s64(b->sums, m->world, b->sums_scratch, m->world);
        if (rc == 0) {
            uint64_t total = 0, before = 0;
            for (uint32_t r = 0; r < m->world; r++) {
                if (r < m->rank) before += (uint64_t)b->sums[r];
                total += (uint64_t)b->sums[r];
            }
            xorshift64 rng = {s->rng_state};
            uint64_t target = xorshift64_u64(&rng) % total; /* total >= 2^30: the max weighs 2^30 */
            s->rng_state = rng.state;
            int holds = target >= before && target < before + mine;
            uint32_t pick = holds ? m->vocab_start + sample_pick(b->weights, m->n_vocab_local, target - before) : 0;
            rc = coll_argmax_reduce(holds ? 1 : 0, holds ? pick : 0xFFFFFFFFu, &gmax, &gidx);
        }
    }
    *next = gidx;
    trace_phase_end(&p, 0, 0, 0);
    return rc;
}

int decoder_step(const model_t *m, runbuf_t *b, uint32_t token, uint32_t pos, int pick, sampler_t *s,
                 uint32_t token_index, trace_buf_t *t, uint32_t *next) {
    int rc = embed(m, b, token, token_index, t);
    for (uint32_t l = 0; l < m->n_layers && rc == 0; l++) {
        attention(m, b, l, pos, token_index, t);
        rc = allreduce_into_residual(m, b, &m->layers[l].wo, PROTO_PHASE_ALLREDUCE_ATT, (uint8_t)l, token_index, t);
        if (rc != 0) break;
        ffn(m, b, l, token_index, t);
        rc = allreduce_into_residual(m, b, &m->layers[l].w2, PROTO_PHASE_ALLREDUCE_FFN, (uint8_t)l, token_index, t);
    }
    if (rc != 0) return rc;
    classifier(m, b, token_index, t);
    if (!pick) return 0;
    return next_token(m, b, s, token_index, t, next);
}
