"""The encoder quantizer's rounding choices: offset activation tables and GPTQ weight rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.quant.quantize_encoder import ACT_CLASSES, act_tables, gptq_factor, gptq_rows


def _gelu(x: float) -> float:
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize("kind", ["gelu", "relu"])
def test_offset_tables_code_each_output_within_half_a_step(kind):
    h_base = 0.02
    lut, g_base, zero = act_tables(kind, h_base)
    assert lut.shape == (ACT_CLASSES, 256) and lut.dtype == np.int8 and zero.shape == (ACT_CLASSES,)
    for c in range(ACT_CLASSES):
        step = g_base * 2.0 ** c
        for k in range(-128, 128):
            x = k * h_base * 2.0 ** c
            want = _gelu(x) if kind == "gelu" else max(x, 0.0)
            got = (int(lut[c, k + 128]) + int(zero[c])) * step
            assert abs(got - want) <= step / 2 + 1e-12, (c, k, got, want)
        assert lut[c].max() == 127  # the largest output of every class gets the largest code
    # class 0 (the finest) sets the step: its outputs, min to max, span the whole int8 range
    assert lut[0].min() <= -125


def test_offset_tables_are_finer_than_a_symmetric_code():
    # a symmetric int8 code of GELU's outputs over the class-0 domain needs max|gelu| / 127 per step;
    # the one-sided outputs (>= -0.17) coded from min to max need about half of that
    h_base = 0.03
    _, g_base, _ = act_tables("gelu", h_base)
    sym = max(abs(_gelu(k * h_base)) for k in range(-128, 128)) / 127
    assert g_base < 0.56 * sym


def test_gptq_rounding_cuts_the_products_error_on_correlated_inputs():
    rng = np.random.default_rng(7)
    n, rows, tokens = 96, 40, 400
    mix = rng.normal(size=(n, n)) * np.exp(-np.arange(n) / 8.0)[:, None]  # strongly correlated inputs
    x = rng.normal(size=(tokens, n)) @ mix
    w = rng.normal(size=(rows, n))
    q, scale = gptq_rows(w, gptq_factor(x.T @ x))
    near = np.clip(np.rint(w / scale[:, None]), -127, 127)
    assert q.dtype == np.int8 and np.array_equal(scale, np.abs(w).max(axis=1) / 127)
    x_new = rng.normal(size=(200, n)) @ mix  # inputs GPTQ never saw, from the same distribution
    err_gptq = np.linalg.norm(x_new @ (q * scale[:, None] - w).T)
    err_near = np.linalg.norm(x_new @ (near * scale[:, None] - w).T)
    assert err_gptq < 0.7 * err_near
    # each weight stays near its own value: GPTQ only redistributes rounding error
    assert np.abs(q - w / scale[:, None]).max() < 8


def test_gptq_without_a_usable_gram_matrix_rounds_to_nearest():
    w = np.random.default_rng(1).normal(size=(5, 6))
    q, scale = gptq_rows(w, None)
    assert np.array_equal(q, np.clip(np.rint(w / scale[:, None].astype(np.float32)), -127, 127).astype(np.int8))
    # an input that was always zero (a zero Gram row) still factors
    g = np.eye(6)
    g[2, 2] = 0.0
    assert gptq_factor(g) is not None
