/* Encoder operations on the int32 stream (orchestrator/quant/spec_bert.py): biased requantization,
 * add-and-norm (LayerNorm or MobileBERT's NoNorm to int32), the per-channel int8 copy matrix products
 * read, activation tables by scale class, and pooling. Same integer recipe as the decoder kernels. */
#include <stddef.h>

#include "kernels/kernels.h"
#include "kernels/arith.h"

/* requant(acc + bias) of one (rows, 3) row: the bias enters in int64, so the all-reduced int32 sum
 * plus a bias can never wrap. */
static inline int64_t rqb_requant(int32_t acc, const int32_t *rqb3)
{
    return kn_requant_s64(kn_add_s64(acc, rqb3[2]), rqb3[0], rqb3[1]);
}

void requant_rqb_s32_s8(const int32_t *acc, const int32_t *rqb, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (int8_t)kn_clamp_s64(rqb_requant(acc[i], rqb + 3u * i), -KN_Q_MAX, KN_Q_MAX);
}

void add_rqb_s32(const int32_t *acc, const int32_t *rqb, const int32_t *res, int32_t res_mult, int32_t res_shift,
                 int32_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int64_t t = kn_clamp_s64(rqb_requant(acc[i], rqb + 3u * i), -KN_RES_MAX, KN_RES_MAX);
        if (res)
            t += kn_clamp_s64(kn_requant_s64(res[i], res_mult, res_shift), -KN_RES_MAX, KN_RES_MAX);
        out[i] = (int32_t)kn_clamp_s64(t, -KN_RES_MAX, KN_RES_MAX);
    }
}

void layernorm_s32_s32(const int32_t *x, const int32_t *norm5, int32_t eps_q, int32_t *out, uint32_t dim)
{
    if (dim == 0)
        return;
    int64_t mu;
    uint64_t r;
    kn_layernorm_stats(x, dim, eps_q, &mu, &r);
    const int64_t den = (int64_t)(r << KN_LN32_GAIN_SHIFT);
    for (uint32_t i = 0; i < dim; i++) {
        const int64_t xc = (int64_t)x[i] - mu;
        const int64_t num = kn_add_s64(kn_mul_s64(xc, norm5[5u * i]), kn_mul_s64(norm5[5u * i + 1u], (int64_t)r));
        out[i] = (int32_t)kn_clamp_s64(kn_div_round_s64(num, den), -KN_RES_MAX, KN_RES_MAX);
    }
}

void nonorm_s32_s32(const int32_t *x, const int32_t *norm5, int32_t shift, int32_t *out, uint32_t n)
{
    const int32_t s = kn_clamp_shift(shift);
    for (uint32_t i = 0; i < n; i++) {
        int64_t y = kn_add_s64(kn_mul_s64(x[i], norm5[5u * i]), norm5[5u * i + 1u]);
        y = kn_add_s64(y, (int64_t)1 << (s - 1)) >> s;
        out[i] = (int32_t)kn_clamp_s64(y, -KN_RES_MAX, KN_RES_MAX);
    }
}

void copy_s32_s8(const int32_t *x, const int32_t *norm5, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (int8_t)kn_clamp_s64(kn_requant_s64(x[i], norm5[5u * i + 2u], norm5[5u * i + 3u]), -KN_Q_MAX, KN_Q_MAX);
}

void lut_cls_s8(const int8_t *x, const int8_t *cls, const int8_t *lut, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)(uint8_t)cls[i];
        if (c >= KN_ACT_CLASSES)
            c = 0; /* validated at load (act_classes_valid); keeps a corrupt value inside the table */
        out[i] = lut[c * 256u + (uint32_t)(x[i] + 128)];
    }
}

void pool_mean_s32(const int32_t *x, uint32_t stride, uint32_t n_valid, int32_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int64_t sum = 0;
        for (uint32_t s = 0; s < n_valid; s++)
            sum += x[(size_t)s * stride + i];
        out[i] = (int32_t)kn_div_round_s64(sum, n_valid ? (int64_t)n_valid : 1);
    }
}

int rqb_rows_valid(const int32_t *rqb, uint32_t rows)
{
    for (uint32_t r = 0; r < rows; r++) {
        int32_t m = rqb[3u * r], s = rqb[3u * r + 1u];
        if (m < (1 << 30) || s < 1 || s > 62)
            return 0;
    }
    return 1;
}

int norm5_valid(const int32_t *norm5, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int32_t m = norm5[5u * i + 2u], s = norm5[5u * i + 3u], c = norm5[5u * i + 4u];
        if (m < (1 << 30) || s < 1 || s > 62 || c < 0 || c >= (int32_t)KN_ACT_CLASSES)
            return 0;
    }
    return 1;
}

void expand_norm_s16(const int8_t *x, const int32_t *norm5, int16_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)norm5[5u * i + 4u];
        if (c >= KN_ACT_CLASSES)
            c = 0; /* validated at load (norm5_valid) */
        out[i] = (int16_t)(x[i] * (1 << c));
    }
}

void expand_cls_s16(const int8_t *x, const int8_t *cls, int16_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)(uint8_t)cls[i];
        if (c >= KN_ACT_CLASSES)
            c = 0; /* validated at load (act_classes_valid) */
        out[i] = (int16_t)(x[i] * (1 << c));
    }
}

void gemv_s8_s16_s32(const int8_t *w, const int16_t *x, int32_t *acc, uint32_t rows, uint32_t cols)
{
    for (uint32_t r = 0; r < rows; r++) {
        const int8_t *wr = w + (size_t)r * cols;
        int64_t sum = 0; /* int64, then the int32 wrap of the spec's astype (no real layer reaches it) */
        for (uint32_t c = 0; c < cols; c++)
            sum += (int32_t)wr[c] * (int32_t)x[c];
        acc[r] = (int32_t)(uint32_t)(uint64_t)sum;
    }
}

int act_classes_valid(const int8_t *cls, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (cls[i] < 0 || (uint32_t)cls[i] >= KN_ACT_CLASSES)
            return 0;
    return 1;
}
