/* The SwiGLU gate of the FFN (spec.swiglu_s8): SiLU of the int8 h1 is a lookup in a 256-entry
 * table the host computed for this layer's scales, so the chip never evaluates exp(). */
#include "kernels/kernels.h"
#include "kernels/arith.h"

void swiglu_s8(const int8_t *h1, const int8_t *h3, const int32_t *silu_lut, int32_t mult, int32_t shift,
               int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const int64_t prod = (int64_t)silu_lut[h1[i] + 128] * h3[i];
        out[i] = (int8_t)kn_clamp_s64(kn_requant_s64(prod, mult, shift), -KN_Q_MAX, KN_Q_MAX);
    }
}

int silu_lut_valid(const int32_t *silu_lut)
{
    for (uint32_t k = 0; k < KN_SILU_LUT_LEN; k++)
        if (silu_lut[k] < -32767 || silu_lut[k] > 32767)
            return 0;
    return 1;
}
