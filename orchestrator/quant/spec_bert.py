"""The integer spec of BERT-family encoder blocks, beyond LayerNorm and GELU (spec_encoder.py).

An encoder runs a whole sequence at once, so every operation here takes S rows. Same rules as the
decoder (spec.py): int8 matrix inputs, int32 accumulators, int64 intermediates, fixed-point
requantization (multiplier in [2^30, 2^31), shift 1..62, rounding half up), tables from the host.

What is new (docs/int8-spec.md, "Encoders"):
  - biases: each linear layer carries an int32 bias per output row in its accumulator's scale; a
    layer's `rqb` tensor is (rows, 3): multiplier, shift, bias. The bias is added in int64 to the
    (all-reduced) int32 sum, then the sum is requantized.
  - the residual stream is int32 at a fine scale (the norm outputs, not their int8 copies), so the
    post-norm architecture keeps full precision between blocks; matrix products read int8 copies.
  - add-and-norm: t = sat(requant(acc + bias, row) + requant(residual, res_mult, res_shift)), then
    LayerNorm (layernorm_s32_s32) or MobileBERT's NoNorm (nonorm_s32_s32) to int32, then one
    requantization to the int8 copy.
  - attention over S positions with a padding mask: keys at positions >= n_valid are left out of
    every softmax (their weight is exactly 0), each query row uses spec.attention_head_s8's rule.
  - pooling: the int32 mean over valid rows div_round(sum, n_valid), or row 0 ([CLS]).
"""

from __future__ import annotations

import math

import numpy as np

from orchestrator.quant.spec import (
    EXP2_FRAC_BITS,
    PROB_SHIFT,
    Q_MAX,
    RES_MAX,
    ExactMatrix,
    div_round,
    exp2_neg_q30,
    requantize,
)

LN32_GAIN_SHIFT = 16  # layernorm_s32_s32 gains and biases: Q16 relative to the output scale


def matmul_s8_s32(x: np.ndarray, w) -> np.ndarray:
    """int32 acc[s, r] = sum_c w[r, c] * x[s, c] for int8 x (S, cols) and int8 w (rows, cols)."""
    m = w if isinstance(w, ExactMatrix) else ExactMatrix(w)
    x = np.asarray(x)
    if x.shape[1] == 0 or m.shape[0] == 0:
        return np.zeros((x.shape[0], m.shape[0]), np.int32)
    xt = np.ascontiguousarray(x.T, dtype=np.float32)
    if len(m.blocks) == 1:
        return np.ascontiguousarray((m.blocks[0] @ xt).astype(np.int64).astype(np.int32).T)
    # column blocks of <= 1024 int8 products: float32 sums exact below 2^24, added in int64
    acc = np.zeros((m.shape[0], x.shape[0]), np.int64)
    step = m.blocks[0].shape[1]
    for i, b in enumerate(m.blocks):
        acc += (b @ xt[i * step:(i + 1) * step]).astype(np.int64)
    return np.ascontiguousarray(acc.astype(np.int32).T)


def matmul_s8e_s32(x: np.ndarray, cls: np.ndarray | None, w) -> np.ndarray:
    """acc[s, r] = sum_c w[r, c] * (x[s, c] << cls[c]): int8 activations with a power-of-two exponent class
    per channel (0..4), int32 accumulators. Without classes this is matmul_s8_s32.

    |w * (x << 4)| < 2^18, so sums of up to 2^13 products fit int32, and float64 holds every partial sum
    exactly whatever order BLAS adds in.
    """
    if cls is None or not np.any(cls):
        return matmul_s8_s32(x, w)
    w = w.w8 if isinstance(w, ExactMatrix) and hasattr(w, "w8") else w
    xe = np.asarray(x, dtype=np.float64) * np.exp2(np.asarray(cls, dtype=np.float64))
    return (xe @ np.asarray(w, dtype=np.float64).T).astype(np.int64).astype(np.int32)


def requant_rqb(acc: np.ndarray, rqb: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """clamp(requant(acc + bias)) per column: rqb (n, 3) = multiplier, shift, bias of output row n."""
    rqb = np.asarray(rqb, dtype=np.int64)
    a = np.asarray(acc, dtype=np.int64) + rqb[:, 2]
    return requantize(a, rqb[:, 0], rqb[:, 1], lo, hi)


def linear_rqb_s8(acc: np.ndarray, rqb: np.ndarray) -> np.ndarray:
    return requant_rqb(acc, rqb, -Q_MAX, Q_MAX).astype(np.int8)


def add_rqb_s32(acc: np.ndarray, rqb: np.ndarray, res: np.ndarray | None = None, res_mult: int = 0,
                res_shift: int = 1) -> np.ndarray:
    """t = sat(requant(acc + bias) + requant(res, res_mult, res_shift)), saturating at +-RES_MAX."""
    t = requant_rqb(acc, rqb, -RES_MAX, RES_MAX)
    if res is not None:
        t = np.clip(t + requantize(res, res_mult, res_shift, -RES_MAX, RES_MAX), -RES_MAX, RES_MAX)
    return t.astype(np.int32)


def layernorm_s32_s32(x: np.ndarray, gain_q16: np.ndarray, bias_q16: np.ndarray, eps_q: int) -> np.ndarray:
    """LayerNorm of each row of int32 x (S, D) to int32 saturating at +-RES_MAX.

    The rule of spec_encoder.layernorm_s32_s8 with a wider clamp: mu = div_round(sum(x), D),
    r = isqrt(floor(sum((x - mu)^2) / D) + eps_q), out = div_round((x - mu) * G + B * r, r * 2^16).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.int64))
    d = x.shape[1]
    mu = div_round(x.sum(axis=1), d)
    xc = x - mu[:, None]
    ss = np.einsum("ij,ij->i", xc, xc)
    r = np.array([math.isqrt(int(v) // d + int(eps_q)) for v in ss], dtype=np.int64)
    num = xc * np.asarray(gain_q16, dtype=np.int64) + np.asarray(bias_q16, dtype=np.int64) * r[:, None]
    with np.errstate(divide="ignore"):
        out = div_round(num, (r << LN32_GAIN_SHIFT)[:, None])
    return np.clip(out, -RES_MAX, RES_MAX).astype(np.int32)


def nonorm_s32_s32(x: np.ndarray, norm: np.ndarray, shift: int) -> np.ndarray:
    """MobileBERT's NoNorm (x * w + b) on int32: clamp((x * G + B + 2^(shift-1)) >> shift, +-RES_MAX).

    norm (n, 2) holds G = round(w * s_in / s_out * 2^shift) and B = round(b / s_out * 2^shift).
    """
    n = np.asarray(norm, dtype=np.int64)
    y = (np.asarray(x, dtype=np.int64) * n[:, 0] + n[:, 1] + (np.int64(1) << (int(shift) - 1))) >> int(shift)
    return np.clip(y, -RES_MAX, RES_MAX).astype(np.int32)


def norm_s32_s32(kind: str, x: np.ndarray, norm: np.ndarray, arg: int) -> np.ndarray:
    """LayerNorm (arg = eps_q) or NoNorm (arg = shift) of int32 rows; norm is (n, 5): gain, bias, then
    the int8 copy's multiplier, shift and exponent class (copy_s8)."""
    if kind == "layernorm":
        return layernorm_s32_s32(x, norm[:, 0], norm[:, 1], arg)
    return nonorm_s32_s32(x, norm[:, :2], arg)


def copy_s8(x: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """The int8 copy of a norm's int32 output that matrix products read: a multiplier and shift per
    channel (norm[:, 2], norm[:, 3]); channel i's step is the class-0 step times 2^norm[i, 4]."""
    n = np.asarray(norm, dtype=np.int64)
    return requantize(x, n[:, 2], n[:, 3], -Q_MAX, Q_MAX).astype(np.int8)


def lut_cls_s8(x: np.ndarray, cls: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """out = lut[cls[i], x + 128]: each FFN unit reads the activation table of its scale class."""
    lut = np.asarray(lut, dtype=np.int8)
    return lut[np.asarray(cls, dtype=np.int64), np.asarray(x, dtype=np.int64) + 128]


def requant_s8(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    return requantize(x, mult, shift, -Q_MAX, Q_MAX).astype(np.int8)


def lut_s8(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return np.asarray(lut, dtype=np.int8)[np.asarray(x, dtype=np.int64) + 128]


def attention_rows_s8(q: np.ndarray, k: np.ndarray, v: np.ndarray, n_valid: int, soft_mult: int, soft_shift: int,
                      exp_table: np.ndarray) -> np.ndarray:
    """One head for every query row: int32 out (S, hs) in scale s_v * 2^-15.

    Row i is spec.attention_head_s8(q[i], k[:n_valid], v[:n_valid]): the padding keys never enter.
    """
    kv = k[:n_valid].astype(np.int64)
    scores = q.astype(np.int64) @ kv.T  # exact: |q.k| < hs * 127^2
    d = scores - scores.max(axis=1, keepdims=True)
    z = requantize(d, soft_mult, soft_shift, -(1 << 31), 0)
    e = exp2_neg_q30(z, exp_table)
    total = e.sum(axis=1, keepdims=True)
    p = div_round(e << PROB_SHIFT, total)
    return (p @ v[:n_valid].astype(np.int64)).astype(np.int32)


def trigram_s8(e: np.ndarray) -> np.ndarray:
    """MobileBERT's trigram input: row i = [e[i+1], e[i], e[i-1]], zero rows past either end."""
    z = np.zeros((1, e.shape[1]), np.int8)
    return np.ascontiguousarray(np.concatenate([np.concatenate([e[1:], z]), e, np.concatenate([z, e[:-1]])], axis=1))


def embed_rows_s32(table: np.ndarray, rq: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """int8 table rows into the int32 sum's scale with their per-row multipliers, saturating at +-RES_MAX."""
    rows = np.asarray(rows, dtype=np.int64)
    m = rq[rows, 0].astype(np.int64)[:, None]
    s = rq[rows, 1].astype(np.int64)[:, None]
    return requantize(table[rows].astype(np.int64), m, s, -RES_MAX, RES_MAX).astype(np.int32)


def pool_s32(x: np.ndarray, n_valid: int, mode: str) -> np.ndarray:
    """Mean over the first n_valid rows (int64 sum, then div_round) or row 0; int32."""
    if mode == "cls":
        return np.asarray(x[0], dtype=np.int32).copy()
    total = np.asarray(x[:n_valid], dtype=np.int64).sum(axis=0)
    return div_round(total, int(n_valid)).astype(np.int32)


def act_table(kind: str, s_in: float, s_out: float) -> np.ndarray:
    """int8 table of an activation: round(act(k * s_in) / s_out) clamped to +-127, k = -128 .. 127."""
    from orchestrator.quant.spec_encoder import gelu_table
    if kind == "gelu":
        return gelu_table(s_in, s_out, approximate=False)
    if kind == "gelu_tanh":
        return gelu_table(s_in, s_out, approximate=True)
    x = np.maximum(np.arange(-128, 128, dtype=np.float64) * s_in, 0.0)
    return np.clip(np.rint(x / s_out), -Q_MAX, Q_MAX).astype(np.int8)


def act_range(kind: str, s_in: float) -> float:
    """max |act(k * s_in)| over the int8 domain: the table's output scale is this / 127."""
    x = np.arange(-128, 128, dtype=np.float64) * s_in
    if kind == "relu":
        y = np.maximum(x, 0.0)
    elif kind == "gelu":
        y = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    else:
        y = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return float(np.abs(y).max()) or 1e-6


__all__ = ["EXP2_FRAC_BITS", "LN32_GAIN_SHIFT", "matmul_s8_s32", "requant_rqb", "linear_rqb_s8", "add_rqb_s32",
           "layernorm_s32_s32", "nonorm_s32_s32", "norm_s32_s32", "copy_s8", "lut_cls_s8", "requant_s8", "lut_s8", "attention_rows_s8",
           "trigram_s8", "embed_rows_s32", "matmul_s8e_s32", "pool_s32", "act_table", "act_range"]
