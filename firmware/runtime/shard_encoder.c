/* shard_encoder.c: validate an encoder shard (model kind 2) in place and bind its tensors
 * (docs/shard-format.md, "Encoder shards"). As for decoders, nothing in the file is trusted: the
 * dimensions are range-checked before they size anything, every tensor's kind, layer, dtype, shape,
 * bounds and CRC are checked, every tensor the forward pass reads must be present exactly once, and
 * every requantization parameter and table must be in the spec's range. */
#include <stddef.h>

#include "runtime/model.h"

#include "kernels/kernels.h"
#include "proto/crc32.h"

#define HDR 256u
#define ENTRY 48u
#define ENC_EXT 152u
#define NO_LAYER 0xFFFFu

enum { DT_S8 = 1, DT_S32 = 2 };

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static int header(const uint8_t *p, enc_model_t *m, shard_error_t *e) {
    const uint8_t *q = p + 40;
    m->rank = shard_rd32(p + 28);
    m->world = shard_rd32(p + 32);
    m->hidden = shard_rd32(q);
    m->intermediate = shard_rd32(q + 4);
    m->n_layers = shard_rd32(q + 8);
    m->n_heads = shard_rd32(q + 12);
    uint32_t n_kv = shard_rd32(q + 16);
    m->vocab_size = shard_rd32(q + 20);
    m->context = shard_rd32(q + 24);
    m->head_start = shard_rd32(p + 68);
    m->n_heads_local = shard_rd32(p + 72);
    uint32_t kv_start = shard_rd32(p + 76), kv_local = shard_rd32(p + 80);
    m->ffn_start = shard_rd32(p + 84);
    m->n_ffn_local = shard_rd32(p + 88);
    m->vocab_start = shard_rd32(p + 92);
    m->n_vocab_local = shard_rd32(p + 96);
    for (uint32_t i = 0; i < 32; i++) m->plan_id[i] = p[116 + i];
    const uint8_t *x = p + ENC_EXT;
    m->variant = shard_rd32(x);
    m->emb_width = shard_rd32(x + 4);
    m->inner = shard_rd32(x + 8);
    m->n_ffn = shard_rd32(x + 12);
    m->type_vocab = shard_rd32(x + 16);
    m->max_positions = shard_rd32(x + 20);
    m->norm = shard_rd32(x + 24);
    m->pooling = shard_rd32(x + 28);
    m->col_start = shard_rd32(x + 32);
    m->n_cols = shard_rd32(x + 36);
    m->trigram = shard_rd32(x + 40);
    int mb = m->variant == ENC_VARIANT_MOBILEBERT;
    /* The dimensions size every buffer and loop, so they are checked before anything uses them. */
    if (m->world == 0 || m->rank >= m->world || (m->variant != ENC_VARIANT_BERT && !mb) ||
        m->hidden == 0 || m->hidden >= (1u << 14) || m->inner == 0 || m->inner > m->hidden ||
        m->n_heads == 0 || m->inner % m->n_heads || n_kv != m->n_heads ||
        m->n_layers == 0 || m->n_layers > RT_ENC_MAX_LAYERS || m->n_ffn == 0 || m->n_ffn > RT_ENC_MAX_FFN ||
        m->intermediate == 0 || m->intermediate > (1u << 20) || m->vocab_size == 0 || m->vocab_size > (1u << 22) ||
        m->max_positions == 0 || m->max_positions > (1u << 16) || m->context == 0 || m->context > m->max_positions ||
        m->type_vocab == 0 || m->type_vocab > 1024u || m->emb_width == 0 || m->emb_width >= (1u << 14) ||
        (m->norm != ENC_NORM_LAYERNORM && m->norm != ENC_NORM_NONORM) ||
        (m->pooling != ENC_POOL_MEAN && m->pooling != ENC_POOL_CLS) || m->trigram > 1u ||
        (mb && m->norm != ENC_NORM_NONORM) ||
        (!mb && (m->emb_width != m->hidden || m->inner != m->hidden || m->n_ffn != 1u || m->trigram))) {
        shard_fail(e, "encoder dimensions are out of range", 0, 0);
        return -1;
    }
    m->head_size = m->inner / m->n_heads;
    if ((uint64_t)m->head_start + m->n_heads_local > m->n_heads || m->n_heads_local == 0 ||
        kv_start != m->head_start || kv_local != m->n_heads_local ||
        (uint64_t)m->ffn_start + m->n_ffn_local > m->intermediate || m->n_ffn_local == 0 ||
        (uint64_t)m->vocab_start + m->n_vocab_local > m->vocab_size || m->n_vocab_local == 0 ||
        (uint64_t)m->col_start + m->n_cols > m->hidden || m->n_cols == 0) {
        shard_fail(e, "this chip's head, FFN, vocabulary or column slice is out of range", 0, 0);
        return -1;
    }
    return 0;
}

/* Expected dtype and shape of a tensor; -1 if the kind does not belong to this model. */
static int expected(const enc_model_t *m, uint32_t kind, int global, uint32_t *dt, uint32_t *ndim, uint32_t shape[2]) {
    const int mb = m->variant == ENC_VARIANT_MOBILEBERT;
    const uint32_t nq = m->n_heads_local * m->head_size, nf = m->n_ffn_local, nc = m->n_cols;
    const uint32_t B = m->inner, H = m->hidden;
    *ndim = 2;
    *dt = DT_S32;
    if (global) {
        switch (kind) {
        case EK_EXP2: *ndim = 1; shape[0] = KN_EXP2_TABLE_LEN; return 0;
        case EK_WORD: *dt = DT_S8; shape[0] = m->n_vocab_local; shape[1] = m->emb_width; return 0;
        case EK_WORD_RQ: shape[0] = m->n_vocab_local; shape[1] = 2; return 0;
        case EK_POS: *dt = DT_S8; shape[0] = m->max_positions; shape[1] = nc; return 0;
        case EK_POS_RQ: shape[0] = m->max_positions; shape[1] = 2; return 0;
        case EK_TYPE: *dt = DT_S8; shape[0] = m->type_vocab; shape[1] = nc; return 0;
        case EK_TYPE_RQ: shape[0] = m->type_vocab; shape[1] = 2; return 0;
        case EK_PROJ: if (!mb) return -1;
            *dt = DT_S8; shape[0] = nc; shape[1] = (m->trigram ? 3u : 1u) * m->emb_width; return 0;
        case EK_PROJ_RQB: if (!mb) return -1; shape[0] = nc; shape[1] = 3; return 0;
        case EK_EMB_NORM: shape[0] = mb ? nc : H; shape[1] = 5; return 0;
        case EK_EMB_PARAMS: *ndim = 1; shape[0] = ENC_SMALL_PARAMS; return 0;
        default: return -1;
        }
    }
    if (kind >= EK_FFN_BASE) {
        uint32_t k = (kind - EK_FFN_BASE) / EK_FFN_STRIDE, j = (kind - EK_FFN_BASE) % EK_FFN_STRIDE;
        if (k >= m->n_ffn) return -1;
        switch (j) {
        case EK_FFN_W1: *dt = DT_S8; shape[0] = nf; shape[1] = B; return 0;
        case EK_FFN_W1_RQB: shape[0] = nf; shape[1] = 3; return 0;
        case EK_FFN_W2: *dt = DT_S8; shape[0] = B; shape[1] = nf; return 0;
        case EK_FFN_W2_RQB: shape[0] = B; shape[1] = 3; return 0;
        case EK_FFN_NORM: shape[0] = B; shape[1] = 5; return 0;
        case EK_FFN_LUT: *dt = DT_S8; shape[0] = KN_ACT_CLASSES; shape[1] = 256; return 0;
        case EK_FFN_PARAMS: *ndim = 1; shape[0] = ENC_SMALL_PARAMS; return 0;
        case EK_FFN_CLS: *dt = DT_S8; *ndim = 1; shape[0] = nf; return 0;
        default: return -1;
        }
    }
    switch (kind) {
    case EK_IN: if (!mb) return -1; *dt = DT_S8; shape[0] = 3 * B; shape[1] = nc; return 0;
    case EK_IN_RQB: if (!mb) return -1; shape[0] = 3 * B; shape[1] = 3; return 0;
    case EK_BIN_NORM: case EK_BATT_NORM: if (!mb) return -1; shape[0] = B; shape[1] = 5; return 0;
    case EK_WQ: case EK_WK: *dt = DT_S8; shape[0] = nq; shape[1] = B; return 0;
    case EK_WQ_RQB: case EK_WK_RQB: shape[0] = nq; shape[1] = 3; return 0;
    case EK_WV: if (mb) return -1; *dt = DT_S8; shape[0] = nq; shape[1] = H; return 0;
    case EK_WV_RQB: if (mb) return -1; shape[0] = nq; shape[1] = 3; return 0;
    case EK_WO: *dt = DT_S8; shape[0] = B; shape[1] = nq; return 0;
    case EK_WO_RQB: shape[0] = B; shape[1] = 3; return 0;
    case EK_ATT_NORM: shape[0] = B; shape[1] = 5; return 0;
    case EK_BOUT: if (!mb) return -1; *dt = DT_S8; shape[0] = nc; shape[1] = B; return 0;
    case EK_BOUT_RQB: if (!mb) return -1; shape[0] = nc; shape[1] = 3; return 0;
    case EK_BOUT_NORM: if (!mb) return -1; shape[0] = nc; shape[1] = 5; return 0;
    case EK_PARAMS: *ndim = 1; shape[0] = ENC_LAYER_PARAMS; return 0;
    default: return -1;
    }
}

static void lin(qlin3_t *q, int is_rqb, const uint8_t *data, uint32_t rows, uint32_t cols, uint8_t off) {
    if (is_rqb) {
        q->rqb = (const int32_t *)(const void *)data;
    } else {
        q->w = (const int8_t *)data;
        q->rows = rows;
        q->cols = cols;
        q->offchip = off;
    }
}

static void bind(enc_model_t *m, uint32_t kind, uint32_t layer, const uint8_t *data, uint32_t rows, uint32_t cols,
                 uint8_t off) {
    const int32_t *s32 = (const int32_t *)(const void *)data;
    if (layer == NO_LAYER) {
        switch (kind) {
        case EK_EXP2: m->exp2_table = s32; return;
        case EK_WORD: lin(&m->word, 0, data, rows, cols, off); return;
        case EK_WORD_RQ: m->word.rqb = s32; return; /* (rows, 2): not an rqb, read as rq */
        case EK_POS: m->pos = (const int8_t *)data; return;
        case EK_POS_RQ: m->pos_rq = s32; return;
        case EK_TYPE: m->type = (const int8_t *)data; return;
        case EK_TYPE_RQ: m->type_rq = s32; return;
        case EK_PROJ: case EK_PROJ_RQB: lin(&m->proj, kind == EK_PROJ_RQB, data, rows, cols, off); return;
        case EK_EMB_NORM: m->emb_norm = s32; return;
        case EK_EMB_PARAMS: m->emb_params = s32; return;
        default: return;
        }
    }
    enc_layer_t *L = &m->layers[layer];
    if (kind >= EK_FFN_BASE) {
        enc_ffn_t *F = &L->ffn[(kind - EK_FFN_BASE) / EK_FFN_STRIDE];
        switch ((kind - EK_FFN_BASE) % EK_FFN_STRIDE) {
        case EK_FFN_W1: case EK_FFN_W1_RQB: lin(&F->w1, (kind - EK_FFN_BASE) % EK_FFN_STRIDE == EK_FFN_W1_RQB, data, rows, cols, off); return;
        case EK_FFN_W2: case EK_FFN_W2_RQB: lin(&F->w2, (kind - EK_FFN_BASE) % EK_FFN_STRIDE == EK_FFN_W2_RQB, data, rows, cols, off); return;
        case EK_FFN_NORM: F->norm = s32; return;
        case EK_FFN_LUT: F->lut = (const int8_t *)data; return;
        case EK_FFN_PARAMS: F->params = s32; return;
        case EK_FFN_CLS: F->cls = (const int8_t *)data; return;
        default: return;
        }
    }
    switch (kind) {
    case EK_IN: case EK_IN_RQB: lin(&L->in, kind == EK_IN_RQB, data, rows, cols, off); return;
    case EK_BIN_NORM: L->bin_norm = s32; return;
    case EK_BATT_NORM: L->batt_norm = s32; return;
    case EK_WQ: case EK_WQ_RQB: lin(&L->wq, kind == EK_WQ_RQB, data, rows, cols, off); return;
    case EK_WK: case EK_WK_RQB: lin(&L->wk, kind == EK_WK_RQB, data, rows, cols, off); return;
    case EK_WV: case EK_WV_RQB: lin(&L->wv, kind == EK_WV_RQB, data, rows, cols, off); return;
    case EK_WO: case EK_WO_RQB: lin(&L->wo, kind == EK_WO_RQB, data, rows, cols, off); return;
    case EK_ATT_NORM: L->att_norm = s32; return;
    case EK_BOUT: case EK_BOUT_RQB: lin(&L->bout, kind == EK_BOUT_RQB, data, rows, cols, off); return;
    case EK_BOUT_NORM: L->bout_norm = s32; return;
    case EK_PARAMS: L->params = s32; return;
    default: return;
    }
}

static int rq_ok(int32_t mult, int32_t shift) { return mult >= (1 << 30) && shift >= 1 && shift <= 62; }

/* The norm argument: LayerNorm's eps_q >= 1, or NoNorm's shift in 1..62. */
static int norm_arg_ok(const enc_model_t *m, int32_t a) {
    return m->norm == ENC_NORM_LAYERNORM ? a >= 1 : (a >= 1 && a <= 62);
}

static int params_valid(const enc_model_t *m) {
    const int mb = m->variant == ENC_VARIANT_MOBILEBERT;
    const uint32_t B = m->inner, nq = m->n_heads_local * m->head_size, nc = m->n_cols;
    const int32_t *ep = m->emb_params;
    if (!exp2_table_valid(m->exp2_table) || !requant_rows_valid(m->word.rqb, m->n_vocab_local) ||
        !requant_rows_valid(m->pos_rq, m->max_positions) || !requant_rows_valid(m->type_rq, m->type_vocab) ||
        !norm5_valid(m->emb_norm, mb ? nc : m->hidden) || !norm_arg_ok(m, ep[2]))
        return 0;
    if (mb && (!rq_ok(ep[0], ep[1]) || !rqb_rows_valid(m->proj.rqb, nc))) return 0;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const enc_layer_t *L = &m->layers[l];
        const int32_t *P = L->params;
        if (!rq_ok(P[0], P[1]) || !rq_ok(P[2], P[3]) || !rq_ok(P[9], P[10]) || !norm_arg_ok(m, P[11]) ||
            !rqb_rows_valid(L->wq.rqb, nq) || !rqb_rows_valid(L->wk.rqb, nq) || !rqb_rows_valid(L->wo.rqb, B) ||
            !norm5_valid(L->att_norm, B))
            return 0;
        if (mb) {
            if (!rqb_rows_valid(L->in.rqb, 3 * B) || !norm5_valid(L->bin_norm, B) || !norm5_valid(L->batt_norm, B) ||
                !norm_arg_ok(m, P[4]) || !norm_arg_ok(m, P[5]) || !rqb_rows_valid(L->bout.rqb, nc) ||
                !norm5_valid(L->bout_norm, nc) || !rq_ok(P[14], P[15]) || !norm_arg_ok(m, P[16]))
                return 0;
        } else if (!rqb_rows_valid(L->wv.rqb, nq)) {
            return 0;
        }
        for (uint32_t k = 0; k < m->n_ffn; k++) {
            const enc_ffn_t *F = &L->ffn[k];
            if (!rqb_rows_valid(F->w1.rqb, m->n_ffn_local) || !rqb_rows_valid(F->w2.rqb, B) || !norm5_valid(F->norm, B) ||
                !rq_ok(F->params[0], F->params[1]) || !norm_arg_ok(m, F->params[2]) ||
                !act_classes_valid(F->cls, m->n_ffn_local))
                return 0;
        }
    }
    return 1;
}

/* Which tensors a model needs: the kinds expected() accepts. */
static int needed(const enc_model_t *m, uint32_t kind, int global) {
    uint32_t dt, nd, sh[2];
    return expected(m, kind, global, &dt, &nd, sh) == 0;
}

#define N_GLOBAL (EK_LAST_GLOBAL - EK_EXP2 + 1)
#define N_LAYER (EK_LAST_LAYER - EK_IN + 1)
#define N_FFN_KINDS (RT_ENC_MAX_FFN * EK_FFN_PER)

int enc_shard_parse(const uint8_t *p, uint32_t size, enc_model_t *m, shard_error_t *e) {
    static uint8_t seen_g[N_GLOBAL];
    static uint8_t seen_l[RT_ENC_MAX_LAYERS][N_LAYER + N_FFN_KINDS];
    static const enc_model_t zero;
    uint32_t n;
    *m = zero;
    if (shard_check_common(p, size, SHARD_KIND_ENCODER, e, &n) != 0) return -1;
    if (header(p, m, e) != 0) return -1;
    for (uint32_t i = 0; i < N_GLOBAL; i++) seen_g[i] = 0;
    for (uint32_t l = 0; l < RT_ENC_MAX_LAYERS; l++)
        for (uint32_t k = 0; k < N_LAYER + N_FFN_KINDS; k++) seen_l[l][k] = 0;
    const uint32_t data_start = shard_rd32(p + 20);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *ent = p + HDR + i * ENTRY;
        uint32_t kind = rd16(ent), layer = rd16(ent + 2), dt = ent[4], ndim = ent[5], place = ent[6];
        uint32_t shape[4] = {shard_rd32(ent + 8), shard_rd32(ent + 12), shard_rd32(ent + 16), shard_rd32(ent + 20)};
        uint32_t off = shard_rd32(ent + 24), nbytes = shard_rd32(ent + 28), crc = shard_rd32(ent + 32);
        int global = layer == NO_LAYER;
        uint32_t want_dt = 0, want_ndim = 0, want[2] = {0, 0};
        if ((!global && layer >= m->n_layers) || place > 1 || (global && (kind < EK_EXP2 || kind > EK_LAST_GLOBAL)) ||
            (!global && (kind < EK_IN || (kind > EK_LAST_LAYER && kind < EK_FFN_BASE) ||
                         kind >= EK_FFN_BASE + N_FFN_KINDS)) ||
            expected(m, kind, global, &want_dt, &want_ndim, want) != 0) {
            shard_fail(e, "unknown tensor kind, layer or placement", kind, layer);
            return -1;
        }
        uint8_t *seen = global ? &seen_g[kind - EK_EXP2]
                               : &seen_l[layer][kind >= EK_FFN_BASE ? N_LAYER + (kind - EK_FFN_BASE) : kind - EK_IN];
        if (*seen) { shard_fail(e, "appears twice", kind, layer); return -1; }
        *seen = 1;
        if (dt != want_dt || ndim != want_ndim || shape[0] != want[0] || (ndim == 2 && shape[1] != want[1])) {
            shard_fail(e, "dtype or shape does not match the model's dimensions", kind, layer);
            return -1;
        }
        uint64_t bytes = (uint64_t)shape[0] * (ndim == 2 ? shape[1] : 1u) * (dt == DT_S8 ? 1u : 4u);
        if (bytes != nbytes || off < data_start || off % 16u || (uint64_t)off + nbytes > size) {
            shard_fail(e, "data lies outside the shard or its size is wrong", kind, layer);
            return -1;
        }
        if (crc32_ieee(p + off, nbytes) != crc) { shard_fail(e, "CRC mismatch", kind, layer); return -1; }
        bind(m, kind, global ? NO_LAYER : layer, p + off, shape[0], ndim == 2 ? shape[1] : 1u, (uint8_t)place);
    }
    for (uint32_t k = EK_EXP2; k <= EK_LAST_GLOBAL; k++)
        if (needed(m, k, 1) && !seen_g[k - EK_EXP2]) { shard_fail(e, "missing", k, NO_LAYER); return -1; }
    for (uint32_t l = 0; l < m->n_layers; l++) {
        for (uint32_t k = EK_IN; k <= EK_LAST_LAYER; k++)
            if (needed(m, k, 0) && !seen_l[l][k - EK_IN]) { shard_fail(e, "missing", k, l); return -1; }
        for (uint32_t k = EK_FFN_BASE; k < EK_FFN_BASE + N_FFN_KINDS; k++)
            if (needed(m, k, 0) && !seen_l[l][N_LAYER + k - EK_FFN_BASE]) { shard_fail(e, "missing", k, l); return -1; }
    }
    if (!params_valid(m)) { shard_fail(e, "a requantization parameter or table is out of range", 0, 0); return -1; }
    return 0;
}
