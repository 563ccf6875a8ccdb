/* Fixed-point requantization: int32 accumulators back to int8 activations, to the int32 residual
 * stream, or to logits. One multiply in int64, a rounding constant and an arithmetic shift: the
 * same cost on a Cortex-M4 (SMULL) as on the host. */
#include "kernels/kernels.h"
#include "kernels/arith.h"

int32_t requantize_s32(int32_t acc, int32_t mult, int32_t shift, int32_t lo, int32_t hi)
{
    return (int32_t)kn_clamp_s64(kn_requant_s64(acc, mult, shift), lo, hi);
}

void requantize_rows_s32_s8(const int32_t *acc, const int32_t *rq, int8_t *out, uint32_t rows)
{
    for (uint32_t r = 0; r < rows; r++)
        out[r] = (int8_t)kn_clamp_s64(kn_requant_s64(acc[r], rq[2 * r], rq[2 * r + 1]), -KN_Q_MAX, KN_Q_MAX);
}

void requantize_rows_s32(const int32_t *acc, const int32_t *rq, int32_t *out, uint32_t rows,
                         int32_t lo, int32_t hi)
{
    for (uint32_t r = 0; r < rows; r++)
        out[r] = (int32_t)kn_clamp_s64(kn_requant_s64(acc[r], rq[2 * r], rq[2 * r + 1]), lo, hi);
}

void requantize_s32_s8(const int32_t *acc, int32_t mult, int32_t shift, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (int8_t)kn_clamp_s64(kn_requant_s64(acc[i], mult, shift), -KN_Q_MAX, KN_Q_MAX);
}

void embed_row_s8_s32(const int8_t *row, int32_t mult, int32_t shift, int32_t *out, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++)
        out[i] = (int32_t)kn_clamp_s64(kn_requant_s64(row[i], mult, shift), -KN_RES_MAX, KN_RES_MAX);
}

void residual_add_s32(int32_t *x, const int32_t *acc, const int32_t *rq, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int64_t y = kn_clamp_s64(kn_requant_s64(acc[i], rq[2 * i], rq[2 * i + 1]), -KN_RES_MAX, KN_RES_MAX);
        x[i] = (int32_t)kn_clamp_s64((int64_t)x[i] + y, -KN_RES_MAX, KN_RES_MAX);
    }
}

int64_t div_round_s64(int64_t num, int64_t den)
{
    return kn_div_round_s64(num, den);
}

int requant_rows_valid(const int32_t *rq, uint32_t rows)
{
    for (uint32_t r = 0; r < rows; r++) {
        int32_t m = rq[2 * r], s = rq[2 * r + 1];
        if (m < (1 << 30) || s < 1 || s > 62)
            return 0;
    }
    return 1;
}
