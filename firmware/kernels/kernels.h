/* int8 kernels: the C side of the one integer spec (orchestrator/quant/spec.py, docs/int8-spec.md).
 *
 * Every function here computes the same bits as its namesake in spec.py; tests/test_kernels.c
 * checks that against golden vectors written by tools/gen_golden.py. Conventions:
 *   - suffixes name element types: s8 = int8, s32 = int32, q15/q30 = fixed point with that many
 *     fraction bits; matrices are row-major [rows][cols];
 *   - "rq" arrays are the shard's (rows, 2) int32 layout: rq[2r] = multiplier, rq[2r+1] = shift;
 *   - the caller owns every buffer (no allocation, no static state); outputs never alias inputs
 *     unless the comment says in-place is allowed;
 *   - no libm, no floating point, no POSIX.
 * Tables (sine, exp2, SiLU) and requantization parameters come from the shard; the runtime checks
 * them once at load with the *_valid functions. Kernels stay free of undefined behaviour on any
 * input, but only guarantee spec results for inputs the spec itself allows. */
#ifndef KERNELS_KERNELS_H
#define KERNELS_KERNELS_H

#include <stdint.h>

/* spec.py constants */
#define KN_Q_MAX            127
#define KN_RES_MAX          ((1 << 24) - 1)   /* saturation of the int32 residual stream */
#define KN_LOGIT_MAX        INT32_MAX
#define KN_RMS_GAIN_SHIFT   16
#define KN_ROPE_TABLE_BITS  10
#define KN_ROPE_FRAC_BITS   (32 - KN_ROPE_TABLE_BITS)
#define KN_SIN_TABLE_LEN    ((1 << KN_ROPE_TABLE_BITS) + 1)
#define KN_TRIG_SHIFT       15
#define KN_EXP2_FRAC_BITS   16
#define KN_EXP2_TABLE_BITS  8
#define KN_EXP2_TABLE_LEN   ((1 << KN_EXP2_TABLE_BITS) + 1)
#define KN_EXP_ONE          (1 << 30)
#define KN_PROB_SHIFT       15
#define KN_MAX_EXP2_SHIFT   30
#define KN_SILU_LUT_LEN     256

/* ---- requantization (requant.c) ---------------------------------------------------------------- */

/* clamp((acc * mult + 2^(shift-1)) >> shift, lo, hi): mult in [2^30, 2^31), shift in [1, 62]. */
int32_t requantize_s32(int32_t acc, int32_t mult, int32_t shift, int32_t lo, int32_t hi);

/* Per-row multipliers (rq is rows x [mult, shift]) into int8 [-127, 127]. */
void requantize_rows_s32_s8(const int32_t *acc, const int32_t *rq, int8_t *out, uint32_t rows);

/* Per-row multipliers into int32 [lo, hi] (logits: lo = -KN_LOGIT_MAX, hi = KN_LOGIT_MAX).
 * out may be acc (in place). */
void requantize_rows_s32(const int32_t *acc, const int32_t *rq, int32_t *out, uint32_t rows,
                         int32_t lo, int32_t hi);

/* One multiplier for the whole vector into int8 (the attention output before Wo). In-place
 * is not possible (types differ). */
void requantize_s32_s8(const int32_t *acc, int32_t mult, int32_t shift, int8_t *out, uint32_t n);

/* An embedding row into the residual scale, saturating at +-KN_RES_MAX (ChipSim.embed_row). */
void embed_row_s8_s32(const int8_t *row, int32_t mult, int32_t shift, int32_t *out, uint32_t dim);

/* x[i] = clamp(x[i] + requant(acc[i], rq row i, +-RES_MAX), +-RES_MAX), in place on x. */
void residual_add_s32(int32_t *x, const int32_t *acc, const int32_t *rq, uint32_t n);

/* spec.div_round: floor((2 num + den) / (2 den)), halves rounded up when den > 0. */
int64_t div_round_s64(int64_t num, int64_t den);

/* 1 if every row has mult in [2^30, 2^31) and shift in [1, 62], else 0. */
int requant_rows_valid(const int32_t *rq, uint32_t rows);

/* ---- matrix-vector (gemv.c) -------------------------------------------------------------------- */

/* acc[r] = sum_c w[r][c] * x[c], exact in int32 (wraps modulo 2^32 like the spec's astype(int32),
 * which no real layer reaches: cols < 2^17 cannot overflow). The hot loop of every token. */
void gemv_s8_s32(const int8_t *w, const int8_t *x, int32_t *acc, uint32_t rows, uint32_t cols);

/* ---- RMSNorm (norm.c) -------------------------------------------------------------------------- */

/* floor(sqrt(v)), exact for every uint64. */
uint64_t isqrt_u64(uint64_t v);

/* out[i] = clamp(div_round(x[i] * gain_q16[i], r << 16), +-127) with
 * r = isqrt(floor(sum(x^2) / dim) + eps_q). Spec range: |x| <= KN_RES_MAX, dim < 2^14, eps_q >= 1.
 * r == 0 (only if eps_q == 0) gives zeros, as numpy's integer division by zero does. */
void rmsnorm_s32_s8(const int32_t *x, const int32_t *gain_q16, int32_t eps_q, int8_t *out, uint32_t dim);

/* ---- RoPE (rope.c) ----------------------------------------------------------------------------- */

/* Q15 sine of a phase in 2^-32 turns, interpolated in the KN_SIN_TABLE_LEN-entry table. */
int32_t sin_q15(uint32_t phase, const int32_t *sin_table);

/* Rotates the pairs (2i, 2i+1) of every head of v in place by pos * steps[i] (uint32 phase that
 * wraps each turn); v holds n_heads * head_size values, steps head_size / 2. head_size even. */
void rope_s8(int8_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos,
             const uint32_t *steps, const int32_t *sin_table);

/* 1 if every sine entry is in [-2^15, 2^15]. */
int sin_table_valid(const int32_t *sin_table);

/* ---- softmax and attention (attention.c) ------------------------------------------------------- */

/* Q30 2^(z / 2^16) for z <= 0 (Q16 log2 units); 0 once below 2^-30. z > 0 is outside the spec and
 * is treated as 0. */
int32_t exp2_neg_q30(int32_t z, const int32_t *exp2_table);

/* Q15 probabilities of int32 scores: z = requant(score - max, mult, shift) clamped to [-2^31, 0],
 * p = div_round(exp2(z) << 15, sum exp2(z)). prob may be the scores buffer (in place). n >= 1. */
void softmax_q15(const int32_t *scores, int32_t *prob_q15, uint32_t n, int32_t mult, int32_t shift,
                 const int32_t *exp2_table);

/* One head over positions 0..n_pos-1 of a KV cache slice: k and v point at position 0 of this
 * head's columns, consecutive positions are kv_stride bytes apart. out (head_size int32) is the
 * head output in scale s_v * 2^-15. scratch holds n_pos int32. */
void attention_head_s8(const int8_t *q, const int8_t *k, const int8_t *v, uint32_t n_pos,
                       uint32_t head_size, uint32_t kv_stride, int32_t soft_mult, int32_t soft_shift,
                       const int32_t *exp2_table, int32_t *scratch, int32_t *out);

/* 1 if the table starts at 2^30, never increases and ends >= 0 (then every exp2 and every
 * probability stays in range, and attention's int32 sums cannot overflow). */
int exp2_table_valid(const int32_t *exp2_table);

/* ---- FFN gate (ffn.c) -------------------------------------------------------------------------- */

/* out[i] = requant_s8(silu_lut[h1[i] + 128] * h3[i], mult, shift). */
void swiglu_s8(const int8_t *h1, const int8_t *h3, const int32_t *silu_lut, int32_t mult, int32_t shift,
               int8_t *out, uint32_t n);

/* 1 if every SiLU entry is within int16 [-32767, 32767] (spec.silu_table clamps there). */
int silu_lut_valid(const int32_t *silu_lut);

/* ---- encoder blocks (encoder.c; spec: orchestrator/quant/spec_encoder.py) ---------------------- */

/* LayerNorm to int8: mu = div_round(sum(x), dim), r = isqrt(floor(sum((x - mu)^2) / dim) + eps_q),
 * out[i] = clamp(div_round((x[i] - mu) * gain_q16[i] + bias_q16[i] * r, r << 16), +-127).
 * Spec range as for rmsnorm_s32_s8; r == 0 gives zeros. */
void layernorm_s32_s8(const int32_t *x, const int32_t *gain_q16, const int32_t *bias_q16, int32_t eps_q,
                      int8_t *out, uint32_t dim);

/* out[i] = lut[x[i] + 128], the layer's 256-entry int8 GELU table. out may be x (in place). */
void gelu_s8(const int8_t *x, const int8_t *lut, int8_t *out, uint32_t n);

/* ---- next token (sample.c) --------------------------------------------------------------------- */

/* Index of the largest value, ties to the lowest index. n >= 1. */
uint32_t argmax_s32(const int32_t *v, uint32_t n);

/* llama2.c's xorshift64* generator (spec.XorShift64). */
typedef struct {
    uint64_t state;
} xorshift64;

void xorshift64_seed(xorshift64 *rng, uint64_t seed);
uint32_t xorshift64_u32(xorshift64 *rng);
uint64_t xorshift64_u64(xorshift64 *rng);   /* high word drawn first */

/* Sampling multiplier for temperature temp_q16 / 2^16 (spec.temperature_multiplier).
 * Returns 0 and sets *mult, *shift, or -1 when the spec raises (temp_q16 <= 0, temperature too
 * large, shift outside 1..62) and also for base_mult <= 0, which the spec never produces. */
int temperature_multiplier(int32_t base_mult, int32_t base_shift, int32_t temp_q16,
                           int32_t *mult, int32_t *shift);

/* Q30 unnormalised probabilities of one chip's logit slice (spec.sample_weights); returns their
 * sum, the value the chips all-gather. */
uint64_t sample_weights_s32(const int32_t *logits, uint32_t n, int32_t global_max, int32_t mult,
                            int32_t shift, const int32_t *exp2_table, int32_t *w_q30);

/* First index whose running sum of w exceeds target (numpy searchsorted(cumsum(w), target,
 * "right")); n if target >= the total. */
uint32_t sample_pick(const int32_t *w_q30, uint32_t n, uint64_t target);

/* ---- encoder stream (encoder_seq.c; spec: orchestrator/quant/spec_bert.py) ---------------------- */

#define KN_LN32_GAIN_SHIFT 16 /* layernorm_s32_s32 gains and biases are Q16 of the output scale */
#define KN_ACT_CLASSES     6  /* power-of-two exponent classes of int8 activations; one activation table each */

/* "rqb" arrays are (rows, 3): multiplier, shift, bias (int32, in the accumulator's scale).
 * "norm5" arrays are (n, 5): gain, bias, then the int8 copy's multiplier, shift and exponent class of
 * channel i. An activation of class c is read by products as x << c (its step is 2^c base steps). */

/* out[i] = clamp(requant(acc[i] + bias[i]), +-127), the bias added in int64. */
void requant_rqb_s32_s8(const int32_t *acc, const int32_t *rqb, int8_t *out, uint32_t n);

/* out[i] = sat(sat(requant(acc[i] + bias[i])) + sat(requant(res[i], res_mult, res_shift))), saturating
 * at +-KN_RES_MAX; res may be NULL (no residual). out may be acc (in place). */
void add_rqb_s32(const int32_t *acc, const int32_t *rqb, const int32_t *res, int32_t res_mult, int32_t res_shift,
                 int32_t *out, uint32_t n);

/* layernorm_s32_s8's rule with gains and biases from norm5 and the output clamped to +-KN_RES_MAX. */
void layernorm_s32_s32(const int32_t *x, const int32_t *norm5, int32_t eps_q, int32_t *out, uint32_t dim);

/* MobileBERT's NoNorm: out[i] = clamp((x[i] * G[i] + B[i] + 2^(shift-1)) >> shift, +-KN_RES_MAX). */
void nonorm_s32_s32(const int32_t *x, const int32_t *norm5, int32_t shift, int32_t *out, uint32_t n);

/* The int8 copy of a norm output: out[i] = clamp(requant(x[i], norm5 multiplier and shift of i), +-127). */
void copy_s32_s8(const int32_t *x, const int32_t *norm5, int8_t *out, uint32_t n);

/* out[i] = x[i] << class[i] (class from norm5 column 4, or from an int8 class vector): the int16
 * operand of gemv_s8_s16_s32. |out| <= 127 * 2^(KN_ACT_CLASSES-1). */
void expand_norm_s16(const int8_t *x, const int32_t *norm5, int16_t *out, uint32_t n);
void expand_cls_s16(const int8_t *x, const int8_t *cls, int16_t *out, uint32_t n);

/* acc[r] = sum_c w[r][c] * x[c] for int8 w and int16 x, summed in int64 and wrapped to int32. */
void gemv_s8_s16_s32(const int8_t *w, const int16_t *x, int32_t *acc, uint32_t rows, uint32_t cols);

/* out[i] = lut[cls[i] * 256 + x[i] + 128]: each FFN unit reads its scale class's activation table. */
void lut_cls_s8(const int8_t *x, const int8_t *cls, const int8_t *lut, int8_t *out, uint32_t n);

/* out[i] = div_round(sum over rows s < n_valid of x[s * stride + i], n_valid) (int64 sum). */
void pool_mean_s32(const int32_t *x, uint32_t stride, uint32_t n_valid, int32_t *out, uint32_t n);

/* Load-time checks: multipliers in [2^30, 2^31), shifts in 1..62, classes in 0..KN_ACT_CLASSES-1. */
int rqb_rows_valid(const int32_t *rqb, uint32_t rows);
int norm5_valid(const int32_t *norm5, uint32_t n);
int act_classes_valid(const int8_t *cls, uint32_t n);

#endif
