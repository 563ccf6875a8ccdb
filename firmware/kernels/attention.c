/* Softmax and single-head attention in integers (spec.exp2_neg_q30, softmax_q15,
 * attention_head_s8). Scores are turned into base-2 exponents in Q16 by one requantization that
 * folds s_q * s_k / sqrt(head_size) * log2(e); 2^z is a 257-entry Q30 table over the fraction
 * (interpolated) and a shift by the integer part, so no exp() is ever computed on the chip. */
#include <stddef.h>
#include "kernels/kernels.h"
#include "kernels/arith.h"

#define ATT_VEC_COLS 16u

static int64_t exp2_neg_q30_s64(int32_t z, const int32_t *t)
{
    const int lo_bits = KN_EXP2_FRAC_BITS - KN_EXP2_TABLE_BITS;
    const int64_t u = z > 0 ? 0 : -(int64_t)z;  /* z > 0 is outside the spec: treat as 2^0 */
    const int64_t n = u >> KN_EXP2_FRAC_BITS;
    if (n > KN_MAX_EXP2_SHIFT)
        return 0;
    const int64_t f = u & ((1 << KN_EXP2_FRAC_BITS) - 1);
    const int64_t hi = f >> lo_bits;
    const int64_t lo = f & ((1 << lo_bits) - 1);
    const int64_t a = t[hi], b = t[hi + 1];
    const int64_t v = a - (((a - b) * lo + ((int64_t)1 << (lo_bits - 1))) >> lo_bits);
    const int64_t rnd = n > 0 ? (int64_t)1 << (n - 1) : 0;
    return (v + rnd) >> n;
}

int32_t exp2_neg_q30(int32_t z, const int32_t *exp2_table)
{
    return (int32_t)exp2_neg_q30_s64(z, exp2_table);
}

void softmax_q15(const int32_t *scores, int32_t *prob_q15, uint32_t n, int32_t mult, int32_t shift,
                 const int32_t *exp2_table)
{
    int32_t mx = scores[0];
    for (uint32_t i = 1; i < n; i++)
        if (scores[i] > mx)
            mx = scores[i];
    /* score - max >= -(2^32 - 1): times a 31-bit multiplier this stays inside int64. */
    int64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t z = kn_clamp_s64(kn_requant_s64((int64_t)scores[i] - mx, mult, shift), INT32_MIN, 0);
        int64_t e = exp2_neg_q30_s64((int32_t)z, exp2_table);
        total += e;
        prob_q15[i] = (int32_t)e;  /* <= 2^30 with a valid table */
    }
    /* The maximum contributes exactly 2^30, so total >= 2^30 with a valid table; a zero total
     * (corrupt table) gives zeros, as numpy's integer division by zero does. */
    for (uint32_t i = 0; i < n; i++)
        prob_q15[i] = (int32_t)kn_div_round_s64((int64_t)prob_q15[i] * (1 << KN_PROB_SHIFT), total);
}

void attention_head_s8(const int8_t *q, const int8_t *k, const int8_t *v, uint32_t n_pos,
                       uint32_t head_size, uint32_t kv_stride, int32_t soft_mult, int32_t soft_shift,
                       const int32_t *exp2_table, int32_t *scratch, int32_t *out)
{
    /* Loop bodies run a multiple of ATT_VEC_COLS so that gcc -O2 vectorises them (see gemv.c). */
    const uint32_t body = head_size & ~(ATT_VEC_COLS - 1u);
    for (uint32_t t = 0; t < n_pos; t++) {
        const int8_t *kt = k + (size_t)t * kv_stride;
        int32_t s = 0;
        for (uint32_t d = 0; d < body; d++)
            s += (int16_t)kt[d] * (int16_t)q[d];
        for (uint32_t d = body; d < head_size; d++)
            s += (int16_t)kt[d] * (int16_t)q[d];
        scratch[t] = s;
    }
    softmax_q15(scratch, scratch, n_pos, soft_mult, soft_shift, exp2_table);

    for (uint32_t d = 0; d < head_size; d++)
        out[d] = 0;
    for (uint32_t t = 0; t < n_pos; t++) {
        const int8_t *vt = v + (size_t)t * kv_stride;
        /* A valid exp2 table keeps p in [0, 2^15] and sum(p) <= 2^15 + n_pos / 2, so these int32
         * sums cannot overflow; clamping p only matters for a corrupt table, and keeps it defined. */
        const int32_t p = scratch[t] < 0 ? 0 : (scratch[t] > (1 << KN_PROB_SHIFT) ? (1 << KN_PROB_SHIFT) : scratch[t]);
        for (uint32_t d = 0; d < body; d++)
            out[d] = (int32_t)((uint32_t)out[d] + (uint32_t)(p * vt[d]));
        for (uint32_t d = body; d < head_size; d++)
            out[d] = (int32_t)((uint32_t)out[d] + (uint32_t)(p * vt[d]));
    }
}

int exp2_table_valid(const int32_t *exp2_table)
{
    if (exp2_table[0] != KN_EXP_ONE || exp2_table[KN_EXP2_TABLE_LEN - 1] < 0)
        return 0;
    for (uint32_t k = 1; k < KN_EXP2_TABLE_LEN; k++)
        if (exp2_table[k] > exp2_table[k - 1])
            return 0;
    return 1;
}
