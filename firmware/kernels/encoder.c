/* Encoder-only operations (orchestrator/quant/spec_encoder.py): LayerNorm from the int32 residual
 * stream to int8, and GELU as a 256-entry int8 table. Same integer recipe as RMSNorm (norm.c):
 * the residual's scale cancels, one integer square root, one rounded division per element. */
#include "kernels/kernels.h"
#include "kernels/arith.h"

void kn_layernorm_stats(const int32_t *x, uint32_t dim, int32_t eps_q, int64_t *mu_out, uint64_t *r_out)
{
    int64_t sum = 0;  /* |sum| <= 2^32 * 2^31: no overflow for any int32 input */
    for (uint32_t i = 0; i < dim; i++)
        sum += x[i];
    const int64_t mu = kn_div_round_s64(sum, dim);
    /* In spec range this is < 2^62; beyond it, wraps like the spec's int64 dot. */
    uint64_t ss = 0;
    for (uint32_t i = 0; i < dim; i++) {
        const int64_t xc = (int64_t)x[i] - mu;
        ss += (uint64_t)xc * (uint64_t)xc;
    }
    uint64_t var = ss / dim;
    if (eps_q >= 0)
        var += (uint64_t)eps_q;
    else
        var = var > (uint64_t)(-(int64_t)eps_q) ? var - (uint64_t)(-(int64_t)eps_q) : 0u;
    *mu_out = mu;
    *r_out = isqrt_u64(var);
}

void layernorm_s32_s8(const int32_t *x, const int32_t *gain_q16, const int32_t *bias_q16, int32_t eps_q,
                      int8_t *out, uint32_t dim)
{
    if (dim == 0)
        return;
    int64_t mu;
    uint64_t r;
    kn_layernorm_stats(x, dim, eps_q, &mu, &r);
    const int64_t den = (int64_t)(r << KN_RMS_GAIN_SHIFT);
    for (uint32_t i = 0; i < dim; i++) {
        const int64_t xc = (int64_t)x[i] - mu;
        const int64_t num = kn_add_s64(kn_mul_s64(xc, gain_q16[i]), kn_mul_s64(bias_q16[i], (int64_t)r));
        out[i] = (int8_t)kn_clamp_s64(kn_div_round_s64(num, den), -KN_Q_MAX, KN_Q_MAX);
    }
}

void gelu_s8(const int8_t *x, const int8_t *lut, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = lut[x[i] + 128];
}
