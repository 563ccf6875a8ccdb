"""The integer spec's kernels approximate the real-valued operations they stand for, within stated bounds.

(Bit-exactness against C is tested by the firmware's golden-vector tests; here the spec itself is
checked against float math, so a wrong constant or shift in it cannot hide.)"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from orchestrator.quant import spec

rng = np.random.default_rng(0)


@pytest.mark.parametrize("scale", [1e-9, 3.7e-6, 0.001234, 0.5, 1.0, 1.5, 123.456, 2.0 ** 20])
def test_quantize_multiplier_represents_the_scale(scale):
    m, s = spec.quantize_multiplier(scale)
    assert 2 ** 30 <= m < 2 ** 31 and 1 <= s <= 62
    assert abs(m * 2.0 ** -s - scale) <= scale * 2.0 ** -30


def test_quantize_multiplier_rejects_what_it_cannot_hold():
    for bad in (0.0, -1.0, float("inf"), float("nan"), 2.0 ** 40):
        with pytest.raises(ValueError):
            spec.quantize_multiplier(bad)


def test_requantize_rounds_half_up_exactly():
    acc = rng.integers(-2 ** 31, 2 ** 31, size=500)
    for scale in (1e-7, 0.013, 0.99):
        m, s = spec.quantize_multiplier(scale)
        got = spec.requantize(acc, m, s, -2 ** 40, 2 ** 40)
        exact = [math.floor(Fraction(int(a) * m, 2 ** s) + Fraction(1, 2)) for a in acc]
        assert got.tolist() == exact


def test_requantize_saturates():
    m, s = spec.quantize_multiplier(1.0)
    assert spec.requantize_s8(np.array([1000, -1000, 5]), m, s).tolist() == [127, -127, 5]


def test_rmsnorm_matches_float_within_one_step():
    for _ in range(20):
        d = 64
        x = rng.integers(-2 ** 20, 2 ** 20, size=d)
        g = rng.uniform(0.5, 1.5, size=d)
        s_out = 4.0 / 127
        gain = np.round(g / s_out * 2 ** 16).astype(np.int32)
        got = spec.rmsnorm_s32_s8(x, gain, 1)
        xf = x.astype(np.float64)
        want = np.clip(np.round(xf / np.sqrt((xf ** 2).mean() + 1) * g / s_out), -127, 127)
        assert np.abs(got - want).max() <= 1


def test_rope_rotates_like_float_within_one_step():
    hs = 16
    steps = spec.rope_steps(hs, 10000.0)
    table = spec.sine_table()
    v = rng.integers(-90, 90, size=2 * hs).astype(np.int8)
    for pos in (0, 1, 7, 100, 1023, 4095):
        got = spec.rope_s8(v, pos, steps, table).astype(np.int64).reshape(-1, hs // 2, 2)
        ang = pos * (1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs))
        c, s = np.cos(ang), np.sin(ang)
        a, b = v.astype(np.float64).reshape(-1, hs // 2, 2)[..., 0], v.astype(np.float64).reshape(-1, hs // 2, 2)[..., 1]
        assert np.abs(got[..., 0] - (a * c - b * s)).max() <= 1.01, pos
        assert np.abs(got[..., 1] - (a * s + b * c)).max() <= 1.01, pos


def test_exp2_relative_error_is_small_and_zero_far_out():
    table = spec.exp2_table()
    z = -rng.integers(0, 20 << 16, size=2000)
    got = spec.exp2_neg_q30(z, table).astype(np.float64)
    want = 2.0 ** (z / 65536.0) * 2 ** 30
    big = want > 2 ** 16  # where rounding after the shift is below 2^-16 relative
    assert np.max(np.abs(got[big] - want[big]) / want[big]) < 2e-5
    assert spec.exp2_neg_q30(np.array([0]), table)[0] == 2 ** 30
    assert spec.exp2_neg_q30(np.array([-(40 << 16)]), table)[0] == 0


def test_softmax_q15_matches_float_softmax():
    table = spec.exp2_table()
    scale = 0.002
    m, s = spec.quantize_multiplier(scale * math.log2(math.e) * 65536)
    scores = rng.integers(-3000, 3000, size=50)
    p = spec.softmax_q15(scores, m, s, table)
    ref = np.exp((scores - scores.max()) * scale)
    ref /= ref.sum()
    assert np.abs(p / 2 ** 15 - ref).max() < 2e-4
    assert abs(int(p.sum()) - 2 ** 15) <= len(scores)


def test_silu_table_and_swiglu():
    s_in, s_out = 0.05, 6.35 / 32767
    lut = spec.silu_table(s_in, s_out)
    k = np.arange(-128, 128)
    want = k * s_in / (1 + np.exp(-k * s_in)) / s_out
    assert np.abs(lut - want).max() <= 0.5 + 1e-9
    m, s = spec.quantize_multiplier(s_out * 1.0 / 0.1)
    g = spec.swiglu_s8(np.array([100, -100, 0]), np.array([10, 10, 10]), lut, m, s)
    assert g[2] == 0 and g[0] > 0 and g[1] < 0 and abs(g[1]) < g[0]


def test_xorshift_matches_llama2c_definition():
    r = spec.XorShift64(42)
    state = 42
    mask = 2 ** 64 - 1
    for _ in range(5):
        state ^= state >> 12
        state = (state ^ (state << 25)) & mask
        state ^= state >> 27
        assert r.u32() == ((state * 0x2545F4914F6CDD1D) & mask) >> 32


def test_temperature_multiplier_divides_the_scale():
    m0, s0 = spec.quantize_multiplier(0.37)
    for t in (0.25, 0.8, 1.0, 3.0):
        q16 = int(round(t * 65536))
        m, s = spec.temperature_multiplier(m0, s0, q16)
        assert 2 ** 30 <= m < 2 ** 31
        want = m0 * 2.0 ** -s0 / (q16 / 65536)
        assert abs(m * 2.0 ** -s - want) < want * 1e-6
    with pytest.raises(ValueError):
        spec.temperature_multiplier(m0, s0, 0)


def test_exact_matrix_equals_integer_matmul_for_wide_matrices():
    w = rng.integers(-127, 128, size=(33, 3000)).astype(np.int8)
    x = rng.integers(-127, 128, size=3000).astype(np.int8)
    w[0] = 127
    x[:] = np.where(np.arange(3000) % 2 == 0, 127, x)
    assert np.array_equal(spec.gemv_s8_s32(w, x), (w.astype(np.int64) @ x.astype(np.int64)).astype(np.int32))
