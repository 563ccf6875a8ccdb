/* shard.c: validate a shard in place and bind its tensors (docs/shard-format.md). Nothing here
 * trusts the file: every offset, size and count is checked before it is used. */
#include "runtime/model.h"

#include <stddef.h>

#include "kernels/kernels.h"
#include "proto/crc32.h"

#define SHARD_MAGIC          0x4853524Fu /* "ORSH" little-endian */
#define SHARD_FORMAT_VERSION 1u
#define SHARD_HEADER_BYTES   256u
#define SHARD_ENTRY_BYTES    48u
#define SHARD_MAX_TENSORS    4096u
#define SHARD_ALIGN          16u

enum { DT_S8 = 1, DT_S32 = 2, DT_U32 = 3 };

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void fail(shard_error_t *e, const char *what, uint32_t kind, uint32_t layer) {
    /* Small formatter: no printf on the chip. */
    static const char digits[] = "0123456789";
    uint32_t n = 0;
    const char *s = "shard: ";
    while (*s && n < sizeof(e->text) - 1) e->text[n++] = *s++;
    if (kind) {
        const char *t = "tensor kind ";
        while (*t && n < sizeof(e->text) - 1) e->text[n++] = *t++;
        char buf[12];
        int k = 0;
        do { buf[k++] = digits[kind % 10]; kind /= 10; } while (kind && k < 11);
        while (k && n < sizeof(e->text) - 1) e->text[n++] = buf[--k];
        if (layer != 0xFFFFu) {
            t = " layer ";
            while (*t && n < sizeof(e->text) - 1) e->text[n++] = *t++;
            k = 0;
            do { buf[k++] = digits[layer % 10]; layer /= 10; } while (layer && k < 11);
            while (k && n < sizeof(e->text) - 1) e->text[n++] = buf[--k];
        }
        if (n < sizeof(e->text) - 1) e->text[n++] = ':';
        if (n < sizeof(e->text) - 1) e->text[n++] = ' ';
    }
    while (*what && n < sizeof(e->text) - 1) e->text[n++] = *what++;
    e->text[n] = 0;
}

/* What the runtime expects of each tensor: dtype and shape, from the dimensions. */
static int expected(const model_t *m, uint32_t kind, uint32_t *dt, uint32_t *ndim, uint32_t shape[2]) {
    uint32_t nq = m->n_heads_local * m->head_size, nkv = m->n_kv_local * m->head_size;
    *ndim = 2;
    switch (kind) {
    case TK_ROPE_STEPS: *dt = DT_U32; *ndim = 1; shape[0] = m->head_size / 2; return 0;
    case TK_SIN_TABLE: *dt = DT_S32; *ndim = 1; shape[0] = KN_SIN_TABLE_LEN; return 0;
    case TK_EXP2_TABLE: *dt = DT_S32; *ndim = 1; shape[0] = KN_EXP2_TABLE_LEN; return 0;
    case TK_FINAL_NORM: case TK_ATT_NORM: case TK_FFN_NORM: *dt = DT_S32; *ndim = 1; shape[0] = m->dim; return 0;
    case TK_EMBED: case TK_CLS: *dt = DT_S8; shape[0] = m->n_vocab_local; shape[1] = m->dim; return 0;
    case TK_EMBED_RQ: case TK_CLS_RQ: *dt = DT_S32; shape[0] = m->n_vocab_local; shape[1] = 2; return 0;
    case TK_WQ: *dt = DT_S8; shape[0] = nq; shape[1] = m->dim; return 0;
    case TK_WQ_RQ: *dt = DT_S32; shape[0] = nq; shape[1] = 2; return 0;
    case TK_WK: case TK_WV: *dt = DT_S8; shape[0] = nkv; shape[1] = m->dim; return 0;
    case TK_WK_RQ: case TK_WV_RQ: *dt = DT_S32; shape[0] = nkv; shape[1] = 2; return 0;
    case TK_WO: *dt = DT_S8; shape[0] = m->dim; shape[1] = nq; return 0;
    case TK_WO_RQ: case TK_W2_RQ: *dt = DT_S32; shape[0] = m->dim; shape[1] = 2; return 0;
    case TK_W1: case TK_W3: *dt = DT_S8; shape[0] = m->n_ffn_local; shape[1] = m->dim; return 0;
    case TK_W1_RQ: case TK_W3_RQ: *dt = DT_S32; shape[0] = m->n_ffn_local; shape[1] = 2; return 0;
    case TK_W2: *dt = DT_S8; shape[0] = m->dim; shape[1] = m->n_ffn_local; return 0;
    case TK_SILU_LUT: *dt = DT_S32; *ndim = 1; shape[0] = KN_SILU_LUT_LEN; return 0;
    case TK_LAYER_PARAMS: *dt = DT_S32; *ndim = 1; shape[0] = 6; return 0;
    default: return -1;
    }
}

int shard_check_common(const uint8_t *p, uint32_t size, uint32_t want_kind, shard_error_t *e, uint32_t *n_tensors) {
    if (size < SHARD_HEADER_BYTES) { fail(e, "truncated header", 0, 0); return -1; }
    if (rd32(p) != SHARD_MAGIC) { fail(e, "bad magic (not an orch shard)", 0, 0); return -1; }
    if (crc32_ieee(p, SHARD_HEADER_BYTES - 4) != rd32(p + SHARD_HEADER_BYTES - 4)) {
        fail(e, "header CRC mismatch", 0, 0);
        return -1;
    }
    if (rd32(p + 4) != SHARD_FORMAT_VERSION || rd32(p + 8) != SHARD_HEADER_BYTES || rd32(p + 36) != want_kind) {
        fail(e, "unsupported format version, header size or model kind", 0, 0);
        return -1;
    }
    uint32_t n = rd32(p + 12), table = rd32(p + 16), data = rd32(p + 20), total = rd32(p + 24);
    if (total != size) { fail(e, "size differs from the header's total", 0, 0); return -1; }
    if (n == 0 || n > SHARD_MAX_TENSORS || table != SHARD_HEADER_BYTES ||
        (uint64_t)table + (uint64_t)n * SHARD_ENTRY_BYTES > data || data > total) {
        fail(e, "tensor table bounds are inconsistent", 0, 0);
        return -1;
    }
    if (crc32_ieee(p + table, n * SHARD_ENTRY_BYTES) != rd32(p + 148)) {
        fail(e, "tensor table CRC mismatch", 0, 0);
        return -1;
    }
    *n_tensors = n;
    return 0;
}

uint32_t shard_rd32(const uint8_t *p) { return rd32(p); }
void shard_fail(shard_error_t *e, const char *what, uint32_t kind, uint32_t layer) { fail(e, what, kind, layer); }

uint32_t shard_model_kind(const uint8_t *p, uint32_t size) {
    return size >= SHARD_HEADER_BYTES ? rd32(p + 36) : 0u;
}

static int header(const uint8_t *p, uint32_t size, model_t *m, shard_error_t *e, uint32_t *n_tensors) {
    uint32_t n;
    if (shard_check_common(p, size, SHARD_KIND_DECODER, e, &n) != 0) return -1;
    m->rank = rd32(p + 28);
    m->world = rd32(p + 32);
    uint32_t *dims[] = {&m->dim, &m->hidden_dim, &m->n_layers, &m->n_heads, &m->n_kv_heads, &m->vocab_size,
                        &m->context, &m->head_start, &m->n_heads_local, &m->kv_start, &m->n_kv_local,
                        &m->ffn_start, &m->n_ffn_local, &m->vocab_start, &m->n_vocab_local};
    for (uint32_t i = 0; i < 15; i++) *dims[i] = rd32(p + 40 + 4 * i);
    m->flags = rd32(p + 100);
    m->eps_q = (int32_t)rd32(p + 104);
    m->temp_mult = (int32_t)rd32(p + 108);
    m->temp_shift = (int32_t)rd32(p + 112);
    for (uint32_t i = 0; i < 32; i++) m->plan_id[i] = p[116 + i];
    /* The dimensions bound every buffer the runtime sizes, so they are checked before anything
     * else trusts them. */
    if (m->world == 0 || m->rank >= m->world || m->dim == 0 || m->dim >= (1u << 14) || m->n_heads == 0 ||
        m->dim % m->n_heads || m->n_kv_heads == 0 || m->n_heads % m->n_kv_heads || m->n_layers == 0 ||
        m->n_layers > RT_MAX_LAYERS || m->hidden_dim == 0 || m->hidden_dim > (1u << 20) ||
        m->vocab_size == 0 || m->vocab_size > (1u << 22) || m->context == 0 || m->context > (1u << 20) ||
        ((m->dim / m->n_heads) & 1u) || m->eps_q < 1) {
        fail(e, "model dimensions are out of range", 0, 0);
        return -1;
    }
    m->head_size = m->dim / m->n_heads;
    m->kv_mul = m->n_heads / m->n_kv_heads;
    if ((uint64_t)m->head_start + m->n_heads_local > m->n_heads || m->n_heads_local == 0 ||
        (uint64_t)m->kv_start + m->n_kv_local > m->n_kv_heads || m->n_kv_local == 0 ||
        m->head_start / m->kv_mul != m->kv_start ||
        (m->head_start + m->n_heads_local - 1) / m->kv_mul >= m->kv_start + m->n_kv_local ||
        (uint64_t)m->ffn_start + m->n_ffn_local > m->hidden_dim ||
        (uint64_t)m->vocab_start + m->n_vocab_local > m->vocab_size || m->n_vocab_local == 0) {
        fail(e, "this chip's head, FFN or vocabulary slice is out of range", 0, 0);
        return -1;
    }
    *n_tensors = n;
    return 0;
}

static void bind(model_t *m, uint32_t kind, uint32_t layer, const uint8_t *data, uint32_t rows,
                 uint32_t cols, uint8_t offchip) {
    layer_t *L = layer < RT_MAX_LAYERS ? &m->layers[layer] : NULL;
    const int32_t *s32 = (const int32_t *)(const void *)data;
    qlinear_t *lin = NULL;
    int is_rq = 0;
    switch (kind) {
    case TK_ROPE_STEPS: m->rope_steps = (const uint32_t *)(const void *)data; return;
    case TK_SIN_TABLE: m->sin_table = s32; return;
    case TK_EXP2_TABLE: m->exp2_table = s32; return;
    case TK_FINAL_NORM: m->final_norm = s32; return;
    case TK_EMBED: lin = &m->embed; break;
    case TK_EMBED_RQ: lin = &m->embed; is_rq = 1; break;
    case TK_CLS: lin = &m->cls; break;
    case TK_CLS_RQ: lin = &m->cls; is_rq = 1; break;
    case TK_ATT_NORM: L->att_norm = s32; return;
    case TK_FFN_NORM: L->ffn_norm = s32; return;
    case TK_SILU_LUT: L->silu_lut = s32; return;
    case TK_LAYER_PARAMS:
        L->soft_mult = s32[0]; L->soft_shift = s32[1]; L->o_mult = s32[2];
        L->o_shift = s32[3]; L->g_mult = s32[4]; L->g_shift = s32[5];
        return;
    case TK_WQ: case TK_WQ_RQ: lin = &L->wq; is_rq = kind == TK_WQ_RQ; break;
    case TK_WK: case TK_WK_RQ: lin = &L->wk; is_rq = kind == TK_WK_RQ; break;
    case TK_WV: case TK_WV_RQ: lin = &L->wv; is_rq = kind == TK_WV_RQ; break;
    case TK_WO: case TK_WO_RQ: lin = &L->wo; is_rq = kind == TK_WO_RQ; break;
    case TK_W1: case TK_W1_RQ: lin = &L->w1; is_rq = kind == TK_W1_RQ; break;
    case TK_W3: case TK_W3_RQ: lin = &L->w3; is_rq = kind == TK_W3_RQ; break;
    case TK_W2: case TK_W2_RQ: lin = &L->w2; is_rq = kind == TK_W2_RQ; break;
    default: return;
    }
    if (is_rq) {
        lin->rq = s32;
    } else {
        lin->w = (const int8_t *)data;
        lin->rows = rows;
        lin->cols = cols;
        lin->offchip = offchip;
    }
}

static int params_valid(const model_t *m) {
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const layer_t *L = &m->layers[l];
        const int32_t mults[3] = {L->soft_mult, L->o_mult, L->g_mult};
        const int32_t shifts[3] = {L->soft_shift, L->o_shift, L->g_shift};
        for (int i = 0; i < 3; i++)
            if (mults[i] < (1 << 30) || shifts[i] < 1 || shifts[i] > 62) return 0;
        const qlinear_t *lins[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w1, &L->w3, &L->w2};
        for (int i = 0; i < 7; i++)
            if (!requant_rows_valid(lins[i]->rq, lins[i]->rows)) return 0;
        if (!silu_lut_valid(L->silu_lut)) return 0;
    }
    if (!requant_rows_valid(m->embed.rq, m->embed.rows) || !requant_rows_valid(m->cls.rq, m->cls.rows)) return 0;
    if (m->temp_mult < (1 << 30) || m->temp_shift < 1 || m->temp_shift > 62) return 0;
    return sin_table_valid(m->sin_table) && exp2_table_valid(m->exp2_table);
}

int shard_parse(const uint8_t *p, uint32_t size, model_t *m, shard_error_t *e) {
    static uint8_t seen_global[TK_CLS_RQ + 1];
    static uint8_t seen_layer[RT_MAX_LAYERS][TK_LAST_LAYER_KIND - TK_FIRST_LAYER_KIND + 1];
    const model_t zero = {0};
    uint32_t n;
    *m = zero;
    if (header(p, size, m, e, &n) != 0) return -1;
    for (uint32_t i = 0; i < sizeof(seen_global); i++) seen_global[i] = 0;
    for (uint32_t l = 0; l < RT_MAX_LAYERS; l++)
        for (uint32_t k = 0; k < sizeof(seen_layer[0]); k++) seen_layer[l][k] = 0;
    uint32_t data_start = rd32(p + 20);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *ent = p + SHARD_HEADER_BYTES + i * SHARD_ENTRY_BYTES;
        uint32_t kind = rd16(ent), layer = rd16(ent + 2), dt = ent[4], ndim = ent[5], place = ent[6];
        uint32_t shape[4] = {rd32(ent + 8), rd32(ent + 12), rd32(ent + 16), rd32(ent + 20)};
        uint32_t off = rd32(ent + 24), nbytes = rd32(ent + 28), crc = rd32(ent + 32);
        uint32_t want_dt = 0, want_ndim = 0, want[2] = {0, 0};
        int global = kind <= TK_CLS_RQ;
        if (expected(m, kind, &want_dt, &want_ndim, want) != 0 || (global && layer != 0xFFFFu) ||
            (!global && layer >= m->n_layers) || place > 1) {
            fail(e, "unknown tensor kind, layer or placement", kind, layer);
            return -1;
        }
        uint8_t *seen = global ? &seen_global[kind] : &seen_layer[layer][kind - TK_FIRST_LAYER_KIND];
        if (*seen) { fail(e, "appears twice", kind, layer); return -1; }
        *seen = 1;
        if (dt != want_dt || ndim != want_ndim || shape[0] != want[0] || (ndim == 2 && shape[1] != want[1])) {
            fail(e, "dtype or shape does not match the model's dimensions", kind, layer);
            return -1;
        }
        uint64_t elems = (uint64_t)shape[0] * (ndim == 2 ? shape[1] : 1u);
        uint64_t bytes = elems * (dt == DT_S8 ? 1u : 4u);
        if (bytes != nbytes || off < data_start || off % SHARD_ALIGN || (uint64_t)off + nbytes > size) {
            fail(e, "data lies outside the shard or its size is wrong", kind, layer);
            return -1;
        }
        if (crc32_ieee(p + off, nbytes) != crc) { fail(e, "CRC mismatch", kind, layer); return -1; }
        bind(m, kind, global ? 0xFFFFu : layer, p + off, shape[0], ndim == 2 ? shape[1] : 1u, (uint8_t)place);
    }
    /* Every tensor the forward pass reads must be present. */
    for (uint32_t k = 1; k <= TK_CLS_RQ; k++) {
        if (k == TK_CLS && (m->flags & SHARD_FLAG_SHARED_CLASSIFIER)) continue;
        if (!seen_global[k]) { fail(e, "missing", k, 0xFFFFu); return -1; }
    }
    for (uint32_t l = 0; l < m->n_layers; l++)
        for (uint32_t k = TK_FIRST_LAYER_KIND; k <= TK_LAST_LAYER_KIND; k++)
            if (!seen_layer[l][k - TK_FIRST_LAYER_KIND]) { fail(e, "missing", k, l); return -1; }
    if (m->flags & SHARD_FLAG_SHARED_CLASSIFIER) {
        if (seen_global[TK_CLS]) { fail(e, "a tied classifier must not be stored", TK_CLS, 0xFFFFu); return -1; }
        m->cls.w = m->embed.w;
        m->cls.rows = m->embed.rows;
        m->cls.cols = m->embed.cols;
        m->cls.offchip = m->embed.offchip;
    }
    if (!params_valid(m)) { fail(e, "a requantization parameter or table is out of range", 0, 0); return -1; }
    return 0;
}
