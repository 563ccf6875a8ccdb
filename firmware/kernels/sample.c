/* Choosing the next token: greedy argmax, or temperature sampling with integer-only
 * probabilities (spec.argmax_first, XorShift64, temperature_multiplier, sample_weights, and the
 * cumulative-sum search of ClusterSim.next_token). */
#include "kernels/kernels.h"
#include "kernels/arith.h"

uint32_t argmax_s32(const int32_t *v, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best])  /* strict: ties keep the lowest index */
            best = i;
    return best;
}

void xorshift64_seed(xorshift64 *rng, uint64_t seed)
{
    rng->state = seed;
}

uint32_t xorshift64_u32(xorshift64 *rng)
{
    uint64_t s = rng->state;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    rng->state = s;
    return (uint32_t)((s * UINT64_C(0x2545F4914F6CDD1D)) >> 32);
}

uint64_t xorshift64_u64(xorshift64 *rng)
{
    uint64_t hi = xorshift64_u32(rng);
    return (hi << 32) | xorshift64_u32(rng);
}

int temperature_multiplier(int32_t base_mult, int32_t base_shift, int32_t temp_q16,
                           int32_t *mult, int32_t *shift)
{
    /* The spec's renormalising loop never ends for a negative multiplier; quantize_multiplier
     * never makes one, so reject it as the corrupt value it is. */
    if (temp_q16 <= 0 || base_mult <= 0)
        return -1;
    int64_t m = ((int64_t)base_mult << 16) / temp_q16;  /* both positive: "/" is floor here */
    int64_t s = base_shift;
    if (m == 0)
        return -1;
    while (m >= ((int64_t)1 << 31)) {
        m >>= 1;
        s -= 1;
    }
    while (m < ((int64_t)1 << 30)) {
        m <<= 1;
        s += 1;
    }
    if (s < 1 || s > 62)
        return -1;
    *mult = (int32_t)m;
    *shift = (int32_t)s;
    return 0;
}

uint64_t sample_weights_s32(const int32_t *logits, uint32_t n, int32_t global_max, int32_t mult,
                            int32_t shift, const int32_t *exp2_table, int32_t *w_q30)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t d = (int64_t)logits[i] - global_max;
        if (d < INT32_MIN)
            d = INT32_MIN;
        const int64_t z = kn_clamp_s64(kn_requant_s64(d, mult, shift), INT32_MIN, 0);
        const int32_t e = exp2_neg_q30((int32_t)z, exp2_table);
        w_q30[i] = e;
        sum += (uint64_t)(int64_t)e;
    }
    return sum;
}

uint32_t sample_pick(const int32_t *w_q30, uint32_t n, uint64_t target)
{
    uint64_t run = 0;
    for (uint32_t i = 0; i < n; i++) {
        run += (uint64_t)(int64_t)w_q30[i];
        if (run > target)
            return i;
    }
    return n;
}
