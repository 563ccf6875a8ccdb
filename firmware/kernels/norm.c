/* RMSNorm from the int32 residual stream to int8. The residual's own scale cancels in
 * x / rms(x), so only integers appear: a sum of squares in 64 bits, an integer square root and one
 * rounded division per element (spec.rmsnorm_s32_s8). */
#include "kernels/kernels.h"
#include "kernels/arith.h"

/* Digit-by-digit (base 4) square root: exact floor for the full uint64 range, no division, no
 * floating point; at most 32 iterations. */
uint64_t isqrt_u64(uint64_t v)
{
    uint64_t res = 0;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > v)
        bit >>= 2;
    while (bit != 0) {
        if (v >= res + bit) {
            v -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return res;
}

void rmsnorm_s32_s8(const int32_t *x, const int32_t *gain_q16, int32_t eps_q, int8_t *out, uint32_t dim)
{
    if (dim == 0)
        return;
    /* |x| <= RES_MAX and dim < 2^14 keep this below 2^62; outside that range it wraps like the
     * spec's int64 dot instead of being undefined. */
    uint64_t ss = 0;
    for (uint32_t i = 0; i < dim; i++)
        ss += (uint64_t)((int64_t)x[i] * x[i]);
    uint64_t mean = ss / dim;
    if (eps_q >= 0)
        mean += (uint64_t)eps_q;
    else
        mean = mean > (uint64_t)(-(int64_t)eps_q) ? mean - (uint64_t)(-(int64_t)eps_q) : 0u;
    const int64_t den = (int64_t)(isqrt_u64(mean) << KN_RMS_GAIN_SHIFT);
    for (uint32_t i = 0; i < dim; i++) {
        int64_t q = kn_div_round_s64((int64_t)x[i] * gain_q16[i], den);
        out[i] = (int8_t)kn_clamp_s64(q, -KN_Q_MAX, KN_Q_MAX);
    }
}
