/* Integer helpers shared by the kernels (internal to firmware/kernels/).
 *
 * The numpy spec (orchestrator/quant/spec.py) computes in int64 and lets int64 wrap modulo 2^64 on
 * overflow. Signed overflow is undefined in C, so every int64 multiply or add whose operands come
 * from a shard or a frame goes through the unsigned helpers below: the same bits as numpy for every
 * input, and nothing for UBSan to trap on. Conversions from unsigned back to signed rely on gcc's
 * documented modulo behaviour, and right shifts of negative values on its arithmetic shift; both
 * are checked at compile time here. */
#ifndef KERNELS_ARITH_H
#define KERNELS_ARITH_H

#include <stdint.h>

/* Compile-time checks (C99 has no static_assert): a negative array size fails the build. The
 * spec's ">>" is numpy's arithmetic shift; C leaves it implementation-defined. */
extern char kn_check_arith_shift_s32[((-1 >> 1) == -1) ? 1 : -1];
extern char kn_check_arith_shift_s64[(((int64_t)-1 >> 1) == (int64_t)-1) ? 1 : -1];
extern char kn_check_twos_complement[((int32_t)(uint32_t)0xFFFFFFFFu == -1) ? 1 : -1];

static inline int64_t kn_mul_s64(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}

static inline int64_t kn_add_s64(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

/* The spec allows shifts 1..62; a corrupt value is pulled into range so the shift stays defined
 * (callers validate shards with requant_rows_valid before running). */
static inline int32_t kn_clamp_shift(int32_t shift)
{
    return shift < 1 ? 1 : (shift > 62 ? 62 : shift);
}

/* (acc * mult + 2^(shift-1)) >> shift in int64, as spec.requantize before its clip. */
static inline int64_t kn_requant_s64(int64_t acc, int32_t mult, int32_t shift)
{
    int32_t s = kn_clamp_shift(shift);
    return kn_add_s64(kn_mul_s64(acc, mult), (int64_t)1 << (s - 1)) >> s;
}

static inline int64_t kn_clamp_s64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* numpy's floor_divide on int64: C's "/" truncates toward zero, "//" rounds toward -inf. The two
 * inputs C leaves undefined get numpy's answers: x // 0 == 0 and INT64_MIN // -1 wraps to INT64_MIN. */
static inline int64_t kn_floor_div_s64(int64_t a, int64_t b)
{
    if (b == 0)
        return 0;
    if (b == -1)
        return (int64_t)(0u - (uint64_t)a);
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* spec.div_round: floor((2 num + den) / (2 den)), round half up for den > 0. */
static inline int64_t kn_div_round_s64(int64_t num, int64_t den)
{
    return kn_floor_div_s64(kn_add_s64(kn_mul_s64(2, num), den), kn_mul_s64(2, den));
}

/* LayerNorm's mean (rounded) and integer standard deviation r = isqrt(var + eps_q), shared by the
 * int8- and int32-output LayerNorms so both normalise identically (encoder.c). */
void kn_layernorm_stats(const int32_t *x, uint32_t dim, int32_t eps_q, int64_t *mu_out, uint64_t *r_out);

#endif
