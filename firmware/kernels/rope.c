/* Rotary position embedding in integers (spec.rope_s8). The angle of pair i at position pos is
 * pos * steps[i] in units of 2^-32 turns: uint32 multiplication wraps exactly once per turn, so
 * long contexts lose no precision. Sine comes from a 2^10-step Q15 table with linear interpolation;
 * cosine is the sine a quarter turn (2^30) later. */
#include <stddef.h>
#include "kernels/kernels.h"
#include "kernels/arith.h"

/* int64 so that a corrupt table cannot overflow; a valid one keeps the result within +-2^15. */
static int64_t sin_q15_s64(uint32_t phase, const int32_t *t)
{
    const uint32_t idx = phase >> KN_ROPE_FRAC_BITS;
    const int64_t frac = (int64_t)(phase & ((1u << KN_ROPE_FRAC_BITS) - 1u));
    const int64_t a = t[idx], b = t[idx + 1u];
    return a + (((b - a) * frac + ((int64_t)1 << (KN_ROPE_FRAC_BITS - 1))) >> KN_ROPE_FRAC_BITS);
}

int32_t sin_q15(uint32_t phase, const int32_t *sin_table)
{
    return (int32_t)sin_q15_s64(phase, sin_table);
}

void rope_s8(int8_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos,
             const uint32_t *steps, const int32_t *sin_table)
{
    const int64_t rnd = (int64_t)1 << (KN_TRIG_SHIFT - 1);
    for (uint32_t i = 0; i < head_size / 2u; i++) {
        const uint32_t phase = pos * steps[i];
        const int64_t s = sin_q15_s64(phase, sin_table);
        const int64_t c = sin_q15_s64(phase + (1u << 30), sin_table);
        for (uint32_t h = 0; h < n_heads; h++) {
            int8_t *p = v + (size_t)h * head_size + 2u * i;
            const int64_t a = p[0], b = p[1];
            p[0] = (int8_t)kn_clamp_s64((a * c - b * s + rnd) >> KN_TRIG_SHIFT, -KN_Q_MAX, KN_Q_MAX);
            p[1] = (int8_t)kn_clamp_s64((a * s + b * c + rnd) >> KN_TRIG_SHIFT, -KN_Q_MAX, KN_Q_MAX);
        }
    }
}

int sin_table_valid(const int32_t *sin_table)
{
    for (uint32_t k = 0; k < KN_SIN_TABLE_LEN; k++)
        if (sin_table[k] < -(1 << KN_TRIG_SHIFT) || sin_table[k] > (1 << KN_TRIG_SHIFT))
            return 0;
    return 1;
}
