/* encoder.c: the forward pass of one chip for BERT-family encoders (docs/encoders.md, docs/int8-spec.md).
 *
 * BERT keeps the whole stream on every chip: attention runs on this chip's heads and the FFN on its
 * units, and two all-reduces per block add the int32 partial sums of the output products, after which
 * every chip computes the same add-and-LayerNorm. MobileBERT's wide stream is split by columns: the
 * input bottlenecks and the values are products over this chip's columns (one all-reduce), attention
 * and each stacked FFN end in an all-reduce of the narrow stream, and the output bottleneck writes only
 * this chip's columns (no message). Each phase declares its work to hal_account() once, with the
 * weights read once per inference (a matrix-matrix product reuses each weight over the S rows). */
#include "runtime/encoder.h"
#include "runtime/trace.h"

#include <stddef.h>

#include "collective/coll.h"
#include "hal/hal.h"
#include "kernels/kernels.h"

#define ALIGN8(n) (((n) + 7u) & ~(uint64_t)7u)

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }
static int is_mb(const enc_model_t *m) { return m->variant == ENC_VARIANT_MOBILEBERT; }
static uint32_t hn(const enc_model_t *m) { return is_mb(m) ? m->n_cols : m->hidden; }
static uint32_t nq(const enc_model_t *m) { return m->n_heads_local * m->head_size; }

static uint32_t part_width(const enc_model_t *m) {
    uint32_t w = max_u32(m->hidden, m->inner);
    if (is_mb(m)) w = max_u32(max_u32(w, 3u * m->inner), m->emb_width);
    return w;
}

static uint32_t row_width(const enc_model_t *m) {
    uint32_t w = max_u32(max_u32(nq(m), m->n_ffn_local), max_u32(hn(m), m->inner));
    if (is_mb(m)) w = max_u32(w, 3u * m->emb_width);
    return max_u32(w, part_width(m));
}

uint64_t encoder_ram_bytes(const enc_model_t *m) {
    const uint64_t S = m->context, H = hn(m), B = m->inner, q = nq(m), mb = (uint64_t)is_mb(m);
    const uint64_t row = row_width(m);
    return ALIGN8(4 * S * H) + ALIGN8(S * H) + mb * ALIGN8(4 * S * B) + ALIGN8(4 * S * B) + ALIGN8(S * B) +
           4 * ALIGN8(S * q) + ALIGN8(S * (mb ? m->emb_width : 0u)) + ALIGN8(4 * S * part_width(m)) +
           ALIGN8(4 * row) + ALIGN8(row) + ALIGN8(2 * row) + ALIGN8(m->n_ffn_local) + ALIGN8(4 * S) + ALIGN8(4 * H) +
           COLL_CHUNK_BYTES;
}

static void *carve(uint8_t *arena, uint64_t cap, uint64_t *used, uint64_t n) {
    n = ALIGN8(n);
    if (*used + n > cap) return NULL;
    void *p = arena + *used;
    *used += n;
    return p;
}

int encoder_bind(const enc_model_t *m, encbuf_t *b, uint8_t *arena, uint64_t cap) {
    const uint64_t S = m->context, H = hn(m), B = m->inner, q = nq(m);
    uint64_t used = 0;
    if (encoder_ram_bytes(m) > cap) return -1;
    b->part_w = part_width(m);
    b->rowbuf = row_width(m);
    b->scratch_n = COLL_CHUNK_BYTES / 4u;
    b->x32 = carve(arena, cap, &used, 4 * S * H);
    b->x8 = carve(arena, cap, &used, S * H);
    b->a32 = is_mb(m) ? carve(arena, cap, &used, 4 * S * B) : NULL;
    b->y32 = carve(arena, cap, &used, 4 * S * B);
    b->y8 = carve(arena, cap, &used, S * B);
    b->q = carve(arena, cap, &used, S * q);
    b->k = carve(arena, cap, &used, S * q);
    b->v = carve(arena, cap, &used, S * q);
    b->o = carve(arena, cap, &used, S * q);
    b->e8 = carve(arena, cap, &used, S * (is_mb(m) ? m->emb_width : 0u));
    b->part = carve(arena, cap, &used, 4 * S * b->part_w);
    b->acc = carve(arena, cap, &used, 4ull * b->rowbuf);
    b->row8 = carve(arena, cap, &used, b->rowbuf);
    b->x16 = carve(arena, cap, &used, 2ull * b->rowbuf);
    b->g8 = carve(arena, cap, &used, m->n_ffn_local);
    b->scores = carve(arena, cap, &used, 4 * S);
    b->pooled = carve(arena, cap, &used, 4 * H);
    b->scratch = carve(arena, cap, &used, COLL_CHUNK_BYTES);
    return b->scratch ? 0 : -1;
}

/* --- trace records ---------------------------------------------------------------------------- */

static trace_phase_t phase_begin(enc_trace_t *t, uint32_t index, uint8_t phase, uint8_t layer) {
    return trace_phase_begin(t->rec, ENC_TRACE_MAX, &t->n, index, phase, layer);
}

/* A product's weights (read once per inference) and its 12 bytes of rqb per row. */
static uint64_t charge(const qlin3_t *w, uint64_t *on, uint64_t *off) {
    uint64_t wb = (uint64_t)w->rows * w->cols;
    if (w->offchip) *off += wb; else *on += wb;
    *on += 12u * (uint64_t)w->rows;
    return wb;
}

static int allreduce(const enc_model_t *m, encbuf_t *b, uint32_t n_tokens, uint32_t width) {
    (void)m;
    return coll_allreduce_sum_s32(b->part, n_tokens * width, b->scratch, b->scratch_n);
}

/* acc = W x for an int8 row x whose channels carry exponent classes (column 4 of a norm5 table). */
static void gemv_norm(const qlin3_t *w, const int8_t *x, const int32_t *norm5, encbuf_t *b, int32_t *acc) {
    expand_norm_s16(x, norm5, b->x16, w->cols);
    gemv_s8_s16_s32(w->w, b->x16, acc, w->rows, w->cols);
}

static void norm_row(const enc_model_t *m, const int32_t *t, const int32_t *norm5, int32_t arg, int32_t *out, uint32_t n) {
    if (m->norm == ENC_NORM_LAYERNORM)
        layernorm_s32_s32(t, norm5, arg, out, n);
    else
        nonorm_s32_s32(t, norm5, arg, out, n);
}

static void clamp_res(int32_t *x, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        x[i] = x[i] > KN_RES_MAX ? KN_RES_MAX : (x[i] < -KN_RES_MAX ? -KN_RES_MAX : x[i]);
}

/* Position and segment embeddings of my columns for row s, added to out (int32, each term saturated). */
static void add_pos_type(const enc_model_t *m, encbuf_t *b, uint32_t s, uint32_t seg, int32_t *out) {
    const uint32_t nc = m->n_cols;
    embed_row_s8_s32(m->pos + (size_t)s * nc, m->pos_rq[2 * s], m->pos_rq[2 * s + 1], b->pooled, nc);
    for (uint32_t j = 0; j < nc; j++) out[j] += b->pooled[j];
    embed_row_s8_s32(m->type + (size_t)seg * nc, m->type_rq[2 * seg], m->type_rq[2 * seg + 1], b->pooled, nc);
    for (uint32_t j = 0; j < nc; j++) out[j] += b->pooled[j];
}

static uint32_t rd32le(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* --- embedding -------------------------------------------------------------------------------- */

static int embed(const enc_model_t *m, encbuf_t *b, const uint8_t *ids, const uint8_t *segs, uint32_t S, uint32_t ri,
                 enc_trace_t *t) {
    const uint32_t E = m->emb_width, W = is_mb(m) ? E : m->hidden;
    trace_phase_t p = phase_begin(t, ri, PROTO_PHASE_EMBED, PROTO_LAYER_NONE);
    uint64_t on = 0, off = 0;
    for (uint32_t i = 0; i < S * W; i++) b->part[i] = 0;
    for (uint32_t s = 0; s < S; s++) {
        uint32_t tok = rd32le(ids + 4u * s);
        int32_t *row = b->part + (size_t)s * W;
        if (tok >= m->vocab_start && tok < m->vocab_start + m->n_vocab_local) {
            uint32_t r = tok - m->vocab_start;
            embed_row_s8_s32(m->word.w + (size_t)r * E, m->word.rqb[2 * r], m->word.rqb[2 * r + 1], row, E);
            if (m->word.offchip) off += E; else on += E;
            on += 8;
        }
        if (!is_mb(m)) add_pos_type(m, b, s, segs[s], row + m->col_start);
    }
    if (!is_mb(m)) on += 2ull * S * m->n_cols + 16ull * S;
    on += 4ull * S * W;
    trace_phase_end(&p, 0, on, off);

    p = phase_begin(t, ri, PROTO_PHASE_ALLREDUCE_EMBED, PROTO_LAYER_NONE);
    int rc = allreduce(m, b, S, W);
    if (rc == 0) clamp_res(b->part, S * W);
    trace_phase_end(&p, 0, 0, 0);
    if (rc != 0) return rc;

    const int32_t *ep = m->emb_params;
    const uint32_t H = hn(m);
    p = phase_begin(t, ri, PROTO_PHASE_EMBED, PROTO_LAYER_NONE);
    on = 0, off = 0;
    uint64_t macs = 0;
    if (is_mb(m)) {
        for (uint32_t s = 0; s < S; s++)
            requantize_s32_s8(b->part + (size_t)s * E, ep[0], ep[1], b->e8 + (size_t)s * E, E);
        const uint32_t K = m->proj.cols;
        macs = (uint64_t)S * m->proj.rows * K;
        charge(&m->proj, &on, &off);
        for (uint32_t s = 0; s < S; s++) {
            int8_t *xr = b->row8;
            if (m->trigram) {
                for (uint32_t j = 0; j < E; j++) {
                    xr[j] = s + 1 < S ? b->e8[(size_t)(s + 1) * E + j] : 0;
                    xr[E + j] = b->e8[(size_t)s * E + j];
                    xr[2 * E + j] = s > 0 ? b->e8[(size_t)(s - 1) * E + j] : 0;
                }
            } else {
                for (uint32_t j = 0; j < E; j++) xr[j] = b->e8[(size_t)s * E + j];
            }
            gemv_s8_s32(m->proj.w, xr, b->acc, m->proj.rows, K);
            add_rqb_s32(b->acc, m->proj.rqb, NULL, 0, 1, b->acc, H);
            add_pos_type(m, b, s, segs[s], b->acc);
            clamp_res(b->acc, H);
            norm_row(m, b->acc, m->emb_norm, ep[2], b->x32 + (size_t)s * H, H);
            copy_s32_s8(b->x32 + (size_t)s * H, m->emb_norm, b->x8 + (size_t)s * H, H);
        }
        on += 2ull * S * m->n_cols + 16ull * S;
    } else {
        for (uint32_t s = 0; s < S; s++) {
            norm_row(m, b->part + (size_t)s * H, m->emb_norm, ep[2], b->x32 + (size_t)s * H, H);
            copy_s32_s8(b->x32 + (size_t)s * H, m->emb_norm, b->x8 + (size_t)s * H, H);
        }
    }
    on += 9ull * S * H;
    trace_phase_end(&p, macs, on, off);
    return 0;
}

/* --- blocks ----------------------------------------------------------------------------------- */

/* q, k (and BERT's v) of my heads for every row, attention over the first n_valid keys, then this
 * chip's input columns of the output projection into part (S, inner). */
static void attention(const enc_model_t *m, encbuf_t *b, const enc_layer_t *L, const int8_t *qk_in, uint32_t qk_w,
                      const int32_t *qk_norm, const int32_t *x_norm, uint32_t S, uint32_t n_valid, uint64_t *macs,
                      uint64_t *on, uint64_t *off) {
    const uint32_t Q = nq(m), hs = m->head_size, B = m->inner;
    const int32_t *P = L->params;
    for (uint32_t s = 0; s < S; s++) {
        gemv_norm(&L->wq, qk_in + (size_t)s * qk_w, qk_norm, b, b->acc);
        requant_rqb_s32_s8(b->acc, L->wq.rqb, b->q + (size_t)s * Q, Q);
        gemv_norm(&L->wk, qk_in + (size_t)s * qk_w, qk_norm, b, b->acc);
        requant_rqb_s32_s8(b->acc, L->wk.rqb, b->k + (size_t)s * Q, Q);
        if (!is_mb(m)) {
            gemv_norm(&L->wv, b->x8 + (size_t)s * m->hidden, x_norm, b, b->acc);
            requant_rqb_s32_s8(b->acc, L->wv.rqb, b->v + (size_t)s * Q, Q);
        }
    }
    *macs += 2ull * S * Q * qk_w;
    charge(&L->wq, on, off);
    charge(&L->wk, on, off);
    if (!is_mb(m)) *macs += (uint64_t)S * Q * charge(&L->wv, on, off) / Q;
    for (uint32_t h = 0; h < m->n_heads_local; h++) {
        for (uint32_t s = 0; s < S; s++) {
            attention_head_s8(b->q + (size_t)s * Q + h * hs, b->k + h * hs, b->v + h * hs, n_valid, hs, Q, P[0], P[1],
                              m->exp2_table, b->scores, b->acc);
            requantize_s32_s8(b->acc, P[2], P[3], b->o + (size_t)s * Q + h * hs, hs);
        }
    }
    *macs += 2ull * S * n_valid * Q;
    for (uint32_t s = 0; s < S; s++)
        gemv_s8_s32(L->wo.w, b->o + (size_t)s * Q, b->part + (size_t)s * B, B, Q);
    *macs += (uint64_t)S * B * Q;
    charge(&L->wo, on, off);
    *on += 4ull * S * Q + 4ull * S * B + 4ull * S * n_valid;
}

/* After the all-reduce of part (S, inner): add the bias and the residual, norm, and the int8 copy. */
static void add_norm(const enc_model_t *m, encbuf_t *b, const int32_t *rqb, const int32_t *res, int32_t res_mult,
                     int32_t res_shift, const int32_t *norm5, int32_t arg, uint32_t S) {
    const uint32_t B = m->inner;
    for (uint32_t s = 0; s < S; s++) {
        int32_t *t = b->part + (size_t)s * B;
        add_rqb_s32(t, rqb, res + (size_t)s * B, res_mult, res_shift, t, B);
        norm_row(m, t, norm5, arg, b->y32 + (size_t)s * B, B);
        copy_s32_s8(b->y32 + (size_t)s * B, norm5, b->y8 + (size_t)s * B, B);
    }
}

static void ffn_partial(const enc_model_t *m, encbuf_t *b, const enc_ffn_t *F, const int32_t *y_norm, uint32_t S,
                        uint64_t *macs, uint64_t *on, uint64_t *off) {
    const uint32_t B = m->inner, nf = m->n_ffn_local;
    for (uint32_t s = 0; s < S; s++) {
        gemv_norm(&F->w1, b->y8 + (size_t)s * B, y_norm, b, b->acc);
        requant_rqb_s32_s8(b->acc, F->w1.rqb, b->row8, nf);
        lut_cls_s8(b->row8, F->cls, F->lut, b->g8, nf);
        expand_cls_s16(b->g8, F->cls, b->x16, nf);
        gemv_s8_s16_s32(F->w2.w, b->x16, b->part + (size_t)s * B, B, nf);
    }
    *macs += 2ull * S * B * nf;
    charge(&F->w1, on, off);
    charge(&F->w2, on, off);
    *on += (uint64_t)KN_ACT_CLASSES * 256u + nf + (uint64_t)S * (B + 4u * B);
}

/* MobileBERT's input phase: this chip's columns of the wide stream into [a; s; v] partial sums. */
static void in_partial(const enc_model_t *m, encbuf_t *b, const enc_layer_t *L, const int32_t *x_norm, uint32_t S,
                       uint64_t *macs, uint64_t *on, uint64_t *off) {
    const uint32_t R = L->in.rows, nc = m->n_cols;
    for (uint32_t s = 0; s < S; s++)
        gemv_norm(&L->in, b->x8 + (size_t)s * nc, x_norm, b, b->part + (size_t)s * R);
    *macs += (uint64_t)S * R * nc;
    charge(&L->in, on, off);
    *on += (uint64_t)S * nc + 4ull * S * R;
}

/* After the input all-reduce: a (residual), s (query/key input) and my heads' values. */
static void in_finish(const enc_model_t *m, encbuf_t *b, const enc_layer_t *L, uint32_t S) {
    const uint32_t B = m->inner, Q = nq(m), q0 = m->head_start * m->head_size;
    const int32_t *P = L->params;
    for (uint32_t s = 0; s < S; s++) {
        const int32_t *row = b->part + (size_t)s * 3u * B;
        int32_t *a = b->a32 + (size_t)s * B;
        add_rqb_s32(row, L->in.rqb, NULL, 0, 1, a, B);
        nonorm_s32_s32(a, L->bin_norm, P[4], a, B);
        add_rqb_s32(row + B, L->in.rqb + 3u * B, NULL, 0, 1, b->acc, B);
        nonorm_s32_s32(b->acc, L->batt_norm, P[5], b->acc, B);
        copy_s32_s8(b->acc, L->batt_norm, b->y8 + (size_t)s * B, B);
        requant_rqb_s32_s8(row + 2u * B + q0, L->in.rqb + 3u * (2u * B + q0), b->v + (size_t)s * Q, Q);
    }
}

static void out_bottleneck(const enc_model_t *m, encbuf_t *b, const enc_layer_t *L, const int32_t *y_norm, uint32_t S,
                           uint64_t *macs, uint64_t *on, uint64_t *off) {
    const uint32_t B = m->inner, nc = m->n_cols;
    const int32_t *P = L->params;
    for (uint32_t s = 0; s < S; s++) {
        int32_t *x = b->x32 + (size_t)s * nc;
        gemv_norm(&L->bout, b->y8 + (size_t)s * B, y_norm, b, b->acc);
        add_rqb_s32(b->acc, L->bout.rqb, x, P[14], P[15], b->acc, nc);
        nonorm_s32_s32(b->acc, L->bout_norm, P[16], x, nc);
        copy_s32_s8(x, L->bout_norm, b->x8 + (size_t)s * nc, nc);
    }
    *macs += (uint64_t)S * nc * B;
    charge(&L->bout, on, off);
    *on += (uint64_t)S * (B + 9u * nc) + 16u * nc;
}

int encoder_run(const enc_model_t *m, encbuf_t *b, const uint8_t *ids, const uint8_t *segs, uint32_t S,
                uint32_t n_valid, uint32_t ri, enc_trace_t *t) {
    const uint32_t B = m->inner, H = hn(m);
    int rc = embed(m, b, ids, segs, S, ri, t);
    /* The norm5 tables of the int8 copies products read: their column 4 is each channel's class. */
    const int32_t *x_norm = m->emb_norm, *y_norm = NULL;
    for (uint32_t l = 0; l < m->n_layers && rc == 0; l++) {
        const enc_layer_t *L = &m->layers[l];
        const int32_t *P = L->params;
        uint64_t macs = 0, on = 0, off = 0;
        trace_phase_t p;
        if (is_mb(m)) {
            p = phase_begin(t, ri, PROTO_PHASE_IN_BOTTLENECK, (uint8_t)l);
            in_partial(m, b, L, x_norm, S, &macs, &on, &off);
            trace_phase_end(&p, macs, on, off);
            p = phase_begin(t, ri, PROTO_PHASE_ALLREDUCE_IN, (uint8_t)l);
            rc = allreduce(m, b, S, 3u * B);
            trace_phase_end(&p, 0, 0, 0);
            if (rc != 0) break;
            macs = on = off = 0;
            p = phase_begin(t, ri, PROTO_PHASE_ATTENTION, (uint8_t)l);
            in_finish(m, b, L, S);
            attention(m, b, L, b->y8, B, L->batt_norm, x_norm, S, n_valid, &macs, &on, &off);
        } else {
            p = phase_begin(t, ri, PROTO_PHASE_ATTENTION, (uint8_t)l);
            attention(m, b, L, b->x8, H, x_norm, x_norm, S, n_valid, &macs, &on, &off);
        }
        trace_phase_end(&p, macs, on, off);
        p = phase_begin(t, ri, PROTO_PHASE_ALLREDUCE_ATT, (uint8_t)l);
        rc = allreduce(m, b, S, B);
        if (rc == 0)
            add_norm(m, b, L->wo.rqb, is_mb(m) ? b->a32 : b->x32, P[9], P[10], L->att_norm, P[11], S);
        y_norm = L->att_norm;
        trace_phase_end(&p, 0, 9ull * S * B, 0);
        for (uint32_t k = 0; k < m->n_ffn && rc == 0; k++) {
            const enc_ffn_t *F = &L->ffn[k];
            macs = on = off = 0;
            p = phase_begin(t, ri, PROTO_PHASE_FFN, (uint8_t)l);
            ffn_partial(m, b, F, y_norm, S, &macs, &on, &off);
            trace_phase_end(&p, macs, on, off);
            p = phase_begin(t, ri, PROTO_PHASE_ALLREDUCE_FFN, (uint8_t)l);
            rc = allreduce(m, b, S, B);
            if (rc == 0) add_norm(m, b, F->w2.rqb, b->y32, F->params[0], F->params[1], F->norm, F->params[2], S);
            y_norm = F->norm;
            trace_phase_end(&p, 0, 9ull * S * B, 0);
        }
        if (rc != 0) break;
        if (is_mb(m)) {
            macs = on = off = 0;
            p = phase_begin(t, ri, PROTO_PHASE_OUT_BOTTLENECK, (uint8_t)l);
            out_bottleneck(m, b, L, y_norm, S, &macs, &on, &off);
            trace_phase_end(&p, macs, on, off);
            x_norm = L->bout_norm;
        } else {
            x_norm = y_norm;
            /* BERT: the block's output is the FFN norm's: it becomes the stream */
            for (uint32_t i = 0; i < S * B; i++) {
                b->x32[i] = b->y32[i];
                b->x8[i] = b->y8[i];
            }
        }
    }
    if (rc != 0) return rc;
    trace_phase_t p = phase_begin(t, ri, PROTO_PHASE_POOL, PROTO_LAYER_NONE);
    const int32_t *x = is_mb(m) ? b->x32 : b->x32 + m->col_start;
    if (m->pooling == ENC_POOL_CLS) {
        for (uint32_t j = 0; j < m->n_cols; j++) b->pooled[j] = x[j];
    } else {
        pool_mean_s32(x, H, n_valid, b->pooled, m->n_cols);
    }
    trace_phase_end(&p, 0, 4ull * n_valid * m->n_cols, 0);
    return 0;
}
