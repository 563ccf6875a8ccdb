"""The integer spec of the encoder-only operations (BERT/GPT-2 style blocks): LayerNorm and GELU.

Same rules as orchestrator/quant/spec.py, whose helpers this module reuses: int32 residual stream
(|x| <= RES_MAX), int64 intermediates, exact integer square root, round-half-up division, no
floating point on the chip. The C kernels layernorm_s32_s8 and gelu_s8 (firmware/kernels/encoder.c)
compute the same bits and are tested against golden vectors from here (tools/gen_golden.py).
"""

from __future__ import annotations

import math

import numpy as np

from orchestrator.quant.spec import Q_MAX, RMS_GAIN_SHIFT, div_round

LN_GAIN_SHIFT = RMS_GAIN_SHIFT  # gains and biases in Q16 relative to the output scale, as for RMSNorm
GELU_LUT_SIZE = 256


def layernorm_s32_s8(x: np.ndarray, gain_q16: np.ndarray, bias_q16: np.ndarray, eps_q: int) -> np.ndarray:
    """int8 out = round((x_i - mu) * gain_i / (r * 2^16) + bias_i / 2^16), clamped to +-127.

    mu = div_round(sum(x), D) (the mean, rounded half up); r = isqrt(floor(sum((x - mu)^2) / D) + eps_q);
    gain_q16 = round(g / s_out * 2^16) and bias_q16 = round(b / s_out * 2^16), so, as in RMSNorm,
    the residual's own scale cancels. The bias enters the numerator as bias * r, so the result is
    rounded once. For |x| <= RES_MAX and D < 2^14, sum((x - mu)^2) <= sum(x^2) + D / 4 < 2^62 and
    every other term stays inside int64. r == 0 (only possible with eps_q == 0) gives zeros,
    numpy's integer division by zero.
    """
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[0]
    mu = int(div_round(int(x.sum()), d))
    xc = x - mu
    ss = int(np.dot(xc, xc))
    r = math.isqrt(ss // d + int(eps_q))
    num = xc * np.asarray(gain_q16, dtype=np.int64) + np.asarray(bias_q16, dtype=np.int64) * r
    with np.errstate(divide="ignore"):
        out = div_round(num, r << LN_GAIN_SHIFT)
    return np.clip(out, -Q_MAX, Q_MAX).astype(np.int8)


def layernorm_params(g: np.ndarray, b: np.ndarray, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Q16 gain and bias of a float LayerNorm (weight g, bias b) whose int8 output has scale s_out."""
    gq = np.rint(np.asarray(g, dtype=np.float64) / s_out * (1 << LN_GAIN_SHIFT))
    bq = np.rint(np.asarray(b, dtype=np.float64) / s_out * (1 << LN_GAIN_SHIFT))
    if np.any(np.abs(gq) >= 2 ** 31) or np.any(np.abs(bq) >= 2 ** 31):
        raise ValueError("a LayerNorm weight or bias is too large for a Q16 int32 at this output scale")
    return gq.astype(np.int32), bq.astype(np.int32)


def eps_to_q(eps: float, s_res: float) -> int:
    """The LayerNorm epsilon in units of the squared residual scale (as quantize.py does for RMSNorm)."""
    return max(1, int(round(eps / (s_res * s_res))))


def gelu_table(s_in: float, s_out: float, approximate: bool = False) -> np.ndarray:
    """int8 table: round(gelu(k * s_in) / s_out) clamped to +-127, for k = -128 .. 127.

    approximate=False is the erf form (BERT); True is the tanh form (GPT-2). The chip only indexes
    the table, so either costs the same.
    """
    if not (s_in > 0 and s_out > 0 and math.isfinite(s_in) and math.isfinite(s_out)):
        raise ValueError("GELU scales must be positive and finite")
    x = np.arange(-128, 128, dtype=np.float64) * s_in
    if approximate:
        y = 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    else:
        y = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    return np.clip(np.rint(y / s_out), -Q_MAX, Q_MAX).astype(np.int8)


def gelu_s8(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """int8 out = lut[x + 128]: GELU of an int8 input through its 256-entry table."""
    return np.asarray(lut, dtype=np.int8)[np.asarray(x, dtype=np.int64) + 128]
