"""The integer spec: every operation the chips run, written once in numpy.

These functions define the bits. The C kernels in firmware/kernels/ implement the same arithmetic
and are tested against golden vectors produced from here (tools/gen_golden.py). Everything is
integer: int8 weights and activations, int32 accumulators, int64 intermediates, fixed-point
requantization (multiplier in [2^30, 2^31) and a right shift, rounding half up), and lookup tables
that the host computes once and stores in the shard. No floating point, no libm on the chip.

docs/int8-spec.md explains each rule and why it was chosen.
"""

from __future__ import annotations

import math

import numpy as np

Q_MAX = 127  # activations and weights are symmetric int8 in [-127, 127]
RES_MAX = (1 << 24) - 1  # the int32 residual stream saturates here, keeping sum(x^2) inside int64
RMS_GAIN_SHIFT = 16  # RMSNorm gains are stored as round(g / s_out * 2^16)
ROPE_TABLE_BITS = 10  # sine table with 2^10 steps per turn, interpolated
ROPE_FRAC_BITS = 32 - ROPE_TABLE_BITS
TRIG_SHIFT = 15  # sine values in Q15
EXP2_FRAC_BITS = 16  # softmax exponents are Q16 log2 units
EXP2_TABLE_BITS = 8
EXP_ONE = 1 << 30  # exp2 results in Q30
PROB_SHIFT = 15  # attention probabilities in Q15
MAX_EXP2_SHIFT = 30
LOGIT_MAX = (1 << 31) - 1


# --- fixed-point scales -------------------------------------------------------------------------

def quantize_multiplier(scale: float) -> tuple[int, int]:
    """Represent a positive real scale as mult * 2^-shift with mult in [2^30, 2^31), 1 <= shift <= 62."""
    if not (scale > 0.0 and math.isfinite(scale)):
        raise ValueError(f"requantization scale must be positive and finite, got {scale!r}")
    mant, exp = math.frexp(scale)  # scale = mant * 2^exp, mant in [0.5, 1)
    mult = int(round(mant * (1 << 31)))
    if mult == 1 << 31:
        mult //= 2
        exp += 1
    shift = 31 - exp
    if not 1 <= shift <= 62:
        raise ValueError(f"requantization scale {scale:g} is outside what a 31-bit multiplier and a shift of 1..62 can hold")
    return mult, shift


def quantize_multipliers(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised quantize_multiplier: int32 multipliers and int8 shifts."""
    scales = np.asarray(scales, dtype=np.float64)
    if not np.all(np.isfinite(scales) & (scales > 0)):
        raise ValueError("requantization scales must be positive and finite")
    mant, exp = np.frexp(scales)
    mult = np.round(mant * float(1 << 31)).astype(np.int64)
    carry = mult == (1 << 31)
    mult[carry] //= 2
    exp = exp + carry
    shift = 31 - exp
    if np.any(shift < 1) or np.any(shift > 62):
        raise ValueError("a requantization scale is outside what a 31-bit multiplier and a shift of 1..62 can hold")
    return mult.astype(np.int32), shift.astype(np.int8)


def requantize(acc, mult, shift, lo: int, hi: int) -> np.ndarray:
    """y = clamp((acc * mult + 2^(shift-1)) >> shift, lo, hi), in int64, arithmetic shift.

    acc: int32 values; mult: int32 in [2^30, 2^31); shift in [1, 62] (scalars or per-element).
    """
    acc = np.asarray(acc, dtype=np.int64)
    mult = np.asarray(mult, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    y = (acc * mult + (np.int64(1) << (shift - 1))) >> shift
    return np.clip(y, lo, hi)


def requantize_s8(acc, mult, shift) -> np.ndarray:
    return requantize(acc, mult, shift, -Q_MAX, Q_MAX).astype(np.int8)


def div_round(num, den):
    """round(num / den) with halves rounded up, for den > 0, as floor((2 num + den) / (2 den))."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    return np.floor_divide(2 * num + den, 2 * den)


# --- matrix-vector ------------------------------------------------------------------------------

_EXACT_F32_COLS = 1024  # 1024 * 127 * 127 < 2^24: float32 partial sums of this many products are exact


def gemv_s8_s32(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """int32 acc[r] = sum_c w[r, c] * x[c] for int8 w (rows, cols) and int8 x (cols)."""
    return ExactMatrix(w) @ np.asarray(x, dtype=np.float32)


class ExactMatrix:
    """An int8 matrix kept as float32 column blocks, so float32 BLAS computes its int32 products exactly.

    Every partial sum of at most 1024 products of int8 values is an integer below 2^24, which float32
    holds exactly whatever order BLAS adds in; the blocks are then summed in int64.
    """

    def __init__(self, w: np.ndarray):
        w = np.asarray(w)
        self.shape = w.shape
        self.blocks = [np.ascontiguousarray(w[:, c0:c0 + _EXACT_F32_COLS], dtype=np.float32)
                       for c0 in range(0, max(w.shape[1], 1), _EXACT_F32_COLS)]

    def __matmul__(self, x_f32: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1:
            return (self.blocks[0] @ x_f32).astype(np.int64).astype(np.int32)
        acc = np.zeros(self.shape[0], dtype=np.int64)
        for i, b in enumerate(self.blocks):
            acc += (b @ x_f32[i * _EXACT_F32_COLS:(i + 1) * _EXACT_F32_COLS]).astype(np.int64)
        return acc.astype(np.int32)


# --- RMSNorm ------------------------------------------------------------------------------------

def rmsnorm_s32_s8(x: np.ndarray, gain_q16: np.ndarray, eps_q: int) -> np.ndarray:
    """int8 out = round(x_i * gain_i / (r * 2^16)) where r = isqrt(floor(sum(x^2) / D) + eps_q).

    The residual's own scale cancels; gain_q16 = round(g / s_out * 2^16) folds the norm weight and
    the output scale. |x| <= RES_MAX keeps sum(x^2) inside int64 for D < 2^14.
    """
    x = np.asarray(x, dtype=np.int64)
    ss = int(np.dot(x, x))  # exact: Python int from int64 dot (no overflow for |x| <= RES_MAX, D < 2^14)
    r = math.isqrt(ss // x.shape[0] + int(eps_q))
    out = div_round(x * np.asarray(gain_q16, dtype=np.int64), r << RMS_GAIN_SHIFT)
    return np.clip(out, -Q_MAX, Q_MAX).astype(np.int8)


# --- RoPE ---------------------------------------------------------------------------------------

def rope_steps(head_size: int, theta: float) -> np.ndarray:
    """Phase step per position for each pair i, in units of 2^-32 turns (uint32)."""
    i = np.arange(0, head_size, 2, dtype=np.float64)
    freq = 1.0 / theta ** (i / head_size)  # radians per position, llama2.c's frequencies
    turns = freq / (2.0 * math.pi)
    return (np.round(turns * 2.0 ** 32).astype(np.uint64) & 0xFFFFFFFF).astype(np.uint32)


def sine_table() -> np.ndarray:
    """int32 Q15 sin(2 pi k / 2^10) for k = 0 .. 2^10 (the last entry repeats the first)."""
    k = np.arange((1 << ROPE_TABLE_BITS) + 1, dtype=np.float64)
    return np.round(np.sin(2.0 * math.pi * k / (1 << ROPE_TABLE_BITS)) * (1 << TRIG_SHIFT)).astype(np.int32)


def sin_q15(phase: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Q15 sine of a uint32 phase (2^32 = one turn), linear interpolation between table entries."""
    phase = np.asarray(phase, dtype=np.int64) & 0xFFFFFFFF
    idx = phase >> ROPE_FRAC_BITS
    frac = phase & ((1 << ROPE_FRAC_BITS) - 1)
    t = np.asarray(table, dtype=np.int64)
    a, b = t[idx], t[idx + 1]
    return a + (((b - a) * frac + (1 << (ROPE_FRAC_BITS - 1))) >> ROPE_FRAC_BITS)


def rope_s8(v: np.ndarray, pos: int, steps: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Rotate adjacent pairs (2i, 2i+1) of each head of int8 vector v; v is heads * head_size long."""
    half = steps.shape[0]
    pairs = np.asarray(v, dtype=np.int64).reshape(-1, half, 2)
    phase = (np.int64(pos) * steps.astype(np.int64)) & 0xFFFFFFFF
    s = sin_q15(phase, table)
    c = sin_q15(phase + (1 << 30), table)  # cos = sin of a quarter turn later
    a, b = pairs[..., 0], pairs[..., 1]
    rnd = 1 << (TRIG_SHIFT - 1)
    out = np.empty_like(pairs)
    out[..., 0] = (a * c - b * s + rnd) >> TRIG_SHIFT
    out[..., 1] = (a * s + b * c + rnd) >> TRIG_SHIFT
    return np.clip(out, -Q_MAX, Q_MAX).astype(np.int8).reshape(-1)


# --- softmax and attention ----------------------------------------------------------------------

def exp2_table() -> np.ndarray:
    """int32 Q30 2^(-k/256) for k = 0 .. 256."""
    k = np.arange((1 << EXP2_TABLE_BITS) + 1, dtype=np.float64)
    return np.round(EXP_ONE * 2.0 ** (-k / (1 << EXP2_TABLE_BITS))).astype(np.int32)


def exp2_neg_q30(z: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Q30 2^(z / 2^16) for z <= 0 (Q16 log2 units); 0 once the result is below 2^-30."""
    u = -np.asarray(z, dtype=np.int64)
    n = u >> EXP2_FRAC_BITS
    f = u & ((1 << EXP2_FRAC_BITS) - 1)
    lo_bits = EXP2_FRAC_BITS - EXP2_TABLE_BITS
    hi = f >> lo_bits
    lo = f & ((1 << lo_bits) - 1)
    t = np.asarray(table, dtype=np.int64)
    a, b = t[hi], t[hi + 1]
    v = a - (((a - b) * lo + (1 << (lo_bits - 1))) >> lo_bits)
    n_c = np.minimum(n, MAX_EXP2_SHIFT)
    rnd = np.where(n_c > 0, np.int64(1) << np.maximum(n_c - 1, 0), 0)
    e = (v + rnd) >> n_c
    return np.where(n > MAX_EXP2_SHIFT, 0, e)


def softmax_q15(scores: np.ndarray, mult: int, shift: int, table: np.ndarray) -> np.ndarray:
    """Q15 probabilities from int32 scores: exponent z = requant(score - max) in Q16 log2 units."""
    s = np.asarray(scores, dtype=np.int64)
    d = s - s.max()
    z = requantize(d, mult, shift, -(1 << 31), 0)
    e = exp2_neg_q30(z, table)
    total = int(e.sum())  # >= 2^30: the maximum contributes exactly 2^30
    return div_round(e << PROB_SHIFT, total)


def attention_head_s8(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray,
                      soft_mult: int, soft_shift: int, exp_table: np.ndarray) -> np.ndarray:
    """One head over positions 0..T-1: int32 out (head_size,), scale s_v * 2^-15.

    q: int8 (hs,); k_cache, v_cache: int8 (T, hs).
    """
    scores = k_cache.astype(np.int32) @ q.astype(np.int32)
    p = softmax_q15(scores, soft_mult, soft_shift, exp_table)
    return (p.astype(np.int64) @ v_cache.astype(np.int64)).astype(np.int32)


# --- FFN gate -----------------------------------------------------------------------------------

def swiglu_s8(h1: np.ndarray, h3: np.ndarray, silu_lut: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """int8 g = requant(silu_lut[h1 + 128] * h3): SiLU through a 256-entry table of the int8 input."""
    prod = silu_lut[np.asarray(h1, dtype=np.int64) + 128].astype(np.int64) * np.asarray(h3, dtype=np.int64)
    return requantize_s8(prod, mult, shift)


def silu_table(s_in: float, s_out: float) -> np.ndarray:
    """int32 table: round(silu(k * s_in) / s_out) for k = -128 .. 127, clamped to int16."""
    x = np.arange(-128, 128, dtype=np.float64) * s_in
    y = x / (1.0 + np.exp(-x))
    return np.clip(np.round(y / s_out), -32767, 32767).astype(np.int32)


# --- residual and logits ------------------------------------------------------------------------

def residual_add(x: np.ndarray, acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """x + requant(acc) per row, both saturating at +-RES_MAX."""
    y = requantize(acc, mult, shift, -RES_MAX, RES_MAX)
    return np.clip(np.asarray(x, dtype=np.int64) + y, -RES_MAX, RES_MAX).astype(np.int32)


def argmax_first(values: np.ndarray) -> int:
    """Index of the maximum, ties to the lowest index (np.argmax already does this)."""
    return int(np.argmax(values))


# --- sampling -----------------------------------------------------------------------------------

class XorShift64:
    """llama2.c's xorshift64* generator, the same on host and chip."""

    MASK = (1 << 64) - 1

    def __init__(self, seed: int):
        self.state = seed & self.MASK

    def u32(self) -> int:
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & self.MASK
        s ^= s >> 27
        self.state = s
        return ((s * 0x2545F4914F6CDD1D) & self.MASK) >> 32

    def u64(self) -> int:
        hi = self.u32()
        return (hi << 32) | self.u32()


def temperature_multiplier(base_mult: int, base_shift: int, temp_q16: int) -> tuple[int, int]:
    """Scale base (s_logit * log2(e) * 2^16) by 1/T with T = temp_q16 / 2^16, integers only.

    M' = floor(base_mult * 2^16 / temp_q16), then renormalised into [2^30, 2^31) by shifting.
    """
    if temp_q16 <= 0:
        raise ValueError("temperature must be positive for sampling")
    if base_mult <= 0:
        raise ValueError("the shard's temperature multiplier is not positive; the shard is corrupt")
    m = (base_mult << 16) // temp_q16
    s = base_shift
    if m == 0:
        raise ValueError("temperature too large")
    while m >= (1 << 31):
        m >>= 1
        s -= 1
    while m < (1 << 30):
        m <<= 1
        s += 1
    if not 1 <= s <= 62:
        raise ValueError("temperature out of range for the logit scale")
    return m, s


def sample_weights(logits: np.ndarray, global_max: int, mult: int, shift: int, table: np.ndarray) -> np.ndarray:
    """int64 Q30 unnormalised probabilities exp2((l - max) * scale) of one chip's logit slice."""
    d = np.asarray(logits, dtype=np.int64) - int(global_max)
    d = np.maximum(d, -(1 << 31))
    z = requantize(d, mult, shift, -(1 << 31), 0)
    return exp2_neg_q30(z, table)
