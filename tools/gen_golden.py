#!/usr/bin/env python3
"""Golden vectors for the C kernels, straight from the integer spec (orchestrator/quant/spec.py).

    python tools/gen_golden.py OUT_DIR

writes one file per kernel family into OUT_DIR; firmware/tests/test_kernels.c reads them and checks
that every C kernel returns the same bits. Inputs are random with a fixed seed (the files are the
same on every run) plus hand-picked edge cases: the extremes of int8 and int32, zero vectors,
multipliers at both ends of [2^30, 2^31) and shifts 1 and 62, exact rounding halves, long attention
contexts, RoPE phases around the 2^32 wrap, exp2 exponents past -31. layer.bin chains every kernel
through the tiny-test model (orchestrator.partition.simulator.ChipSim, rank 0 of 1).

File format (all little-endian):

    file   = magic "OGV1", u32 n_records, n_records x record
    record = name (16 bytes ASCII, NUL padded), u32 dtype, u32 count,
             count elements, zero padding to a multiple of 8 bytes
    dtype  = 1 int8, 2 int32, 3 uint32, 4 int64, 5 uint64

A file is a list of cases: its first record is "cases" (u32[1]), then every case repeats the same
sequence of named records, listed in each writer below. Records are 8-byte aligned so that the C
reader can use int64 data in place.
"""

from __future__ import annotations

import math
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.quant import spec  # noqa: E402

SEED = 20240601
MAGIC = b"OGV1"
DTYPES = {np.dtype("<i1"): 1, np.dtype("<i4"): 2, np.dtype("<u4"): 3, np.dtype("<i8"): 4, np.dtype("<u8"): 5}
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
MULT_LO, MULT_HI = 1 << 30, (1 << 31) - 1


class GoldenFile:
    """Named typed arrays in order, written in the format above."""

    def __init__(self):
        self.records: list[tuple[str, np.ndarray]] = []
        self.n_cases = 0

    def add(self, name: str, values, dtype) -> None:
        arr = np.ascontiguousarray(values)
        want = np.dtype(dtype).newbyteorder("<")
        if arr.size and (np.any(arr < np.iinfo(want).min) or np.any(arr > np.iinfo(want).max)):
            raise AssertionError(f"golden record {name}: values do not fit {want}")
        arr = arr.astype(want).reshape(-1)
        if len(name.encode()) > 16:
            raise AssertionError(f"golden record name {name!r} is longer than 16 bytes")
        self.records.append((name, arr))

    def case(self) -> "GoldenFile":
        self.n_cases += 1
        return self

    def write(self, path: Path) -> None:
        out = bytearray(MAGIC + struct.pack("<I", len(self.records) + 1))
        for name, arr in [("cases", np.array([self.n_cases], dtype="<u4"))] + self.records:
            out += name.encode().ljust(16, b"\0") + struct.pack("<II", DTYPES[arr.dtype], arr.size)
            raw = arr.tobytes()
            out += raw + b"\0" * (-len(raw) % 8)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(out))
        tmp.replace(path)


def rand_mults(rng, n):
    return rng.integers(MULT_LO, MULT_HI, size=n, endpoint=True, dtype=np.int64)


def realistic_multiplier(scale: float) -> tuple[int, int]:
    return spec.quantize_multiplier(scale)


# --- requantization -----------------------------------------------------------------------------

def gen_requantize(rng) -> GoldenFile:
    """cases = 1: acc, mult, shift, lo, hi (int32 each), out (int32) = spec.requantize elementwise."""
    accs = [I32_MIN, I32_MIN + 1, -(1 << 24), -1, 0, 1, 12345, (1 << 24), I32_MAX]
    mults = [MULT_LO, MULT_LO + 1, 1518500250, MULT_HI]
    shifts = [1, 2, 30, 31, 32, 45, 61, 62]
    bounds = [(-127, 127), (-spec.RES_MAX, spec.RES_MAX), (-spec.LOGIT_MAX, spec.LOGIT_MAX), (I32_MIN, 0)]
    grid = np.array([(a, m, s, lo, hi) for a in accs for m in mults for s in shifts for lo, hi in bounds],
                    dtype=np.int64)
    n = 6000
    rnd = np.stack([
        np.concatenate([rng.integers(I32_MIN, I32_MAX, n // 2, endpoint=True),
                        rng.integers(-(1 << 20), 1 << 20, n - n // 2)]),
        rand_mults(rng, n),
        np.concatenate([rng.integers(1, 62, n // 2, endpoint=True), rng.integers(20, 40, n - n // 2, endpoint=True)]),
        np.zeros(n, np.int64), np.zeros(n, np.int64)], axis=1)
    b = np.array(bounds, dtype=np.int64)[rng.integers(0, len(bounds), n)]
    rnd[:, 3], rnd[:, 4] = b[:, 0], b[:, 1]
    # exact halves: acc * mult = (2k + 1) * 2^(shift-1) rounds up, on both signs
    halves = np.array([(3, MULT_LO, 31, I32_MIN, I32_MAX), (-3, MULT_LO, 31, I32_MIN, I32_MAX),
                       (1, MULT_LO, 31, I32_MIN, I32_MAX), (-1, MULT_LO, 31, I32_MIN, I32_MAX),
                       (-5, MULT_LO, 31, -127, 127), (5, MULT_LO, 31, -127, 127)], dtype=np.int64)
    allv = np.concatenate([grid, rnd, halves])
    acc, mult, shift, lo, hi = (allv[:, i] for i in range(5))
    out = spec.requantize(acc, mult, shift, lo, hi)
    g = GoldenFile().case()
    for name, arr in (("acc", acc), ("mult", mult), ("shift", shift), ("lo", lo), ("hi", hi), ("out", out)):
        g.add(name, arr, np.int32)
    return g


def gen_requant_vec(rng) -> GoldenFile:
    """per case: acc i32[n], rq i32[n*2], rows_s8 i8[n] (requantize_rows_s32_s8), rows_logit i32[n]
    (requantize_rows_s32 with +-LOGIT_MAX), scalar i32[2] (mult, shift), scalar_s8 i8[n]
    (requantize_s32_s8), row i8[n], embed i32[n] (embed_row_s8_s32 with the scalar multiplier)."""
    g = GoldenFile()
    for n, kind in ((1, "rand"), (64, "rand"), (176, "rand"), (512, "rand"), (33, "extreme"), (40, "zero")):
        if kind == "rand":
            acc = rng.integers(-(1 << 22), 1 << 22, n)
            rq = np.stack([rand_mults(rng, n), rng.integers(14, 40, n, endpoint=True)], 1)
            row = rng.integers(-128, 127, n, endpoint=True)
        elif kind == "extreme":
            acc = rng.choice([I32_MIN, I32_MAX, -1, 0, 1], n)
            rq = np.stack([rng.choice([MULT_LO, MULT_HI], n), rng.choice([1, 2, 61, 62], n)], 1)
            row = rng.choice([-128, -127, 127, 0], n)
        else:
            acc = np.zeros(n, np.int64)
            rq = np.stack([rand_mults(rng, n), rng.integers(1, 62, n, endpoint=True)], 1)
            row = np.zeros(n, np.int64)
        m, s = (MULT_HI, 1) if kind == "extreme" else (int(rand_mults(rng, 1)[0]), int(rng.integers(10, 40)))
        if kind == "rand" and n == 512:
            m, s = realistic_multiplier(0.0123)
        g.case()
        g.add("acc", acc, np.int32)
        g.add("rq", rq, np.int32)
        g.add("rows_s8", spec.requantize_s8(acc, rq[:, 0], rq[:, 1]), np.int8)
        g.add("rows_logit", spec.requantize(acc, rq[:, 0], rq[:, 1], -spec.LOGIT_MAX, spec.LOGIT_MAX), np.int32)
        g.add("scalar", [m, s], np.int32)
        g.add("scalar_s8", spec.requantize_s8(acc, m, s), np.int8)
        g.add("row", row, np.int8)
        g.add("embed", spec.requantize(row, m, s, -spec.RES_MAX, spec.RES_MAX), np.int32)
    return g


def gen_residual(rng) -> GoldenFile:
    """per case: x i32[n], acc i32[n], rq i32[n*2], out i32[n] = spec.residual_add."""
    g = GoldenFile()
    for n, kind in ((1, "rand"), (64, "rand"), (512, "rand"), (64, "saturate"), (16, "extreme")):
        x = rng.integers(-spec.RES_MAX, spec.RES_MAX, n, endpoint=True)
        acc = rng.integers(I32_MIN, I32_MAX, n, endpoint=True)
        rq = np.stack([rand_mults(rng, n), rng.integers(20, 40, n, endpoint=True)], 1)
        if kind == "saturate":
            x = rng.choice([-spec.RES_MAX, spec.RES_MAX, spec.RES_MAX - 3, 0], n)
            rq[:, 1] = rng.integers(1, 8, n)
        elif kind == "extreme":
            acc = rng.choice([I32_MIN, I32_MAX, 0], n)
            rq = np.stack([rng.choice([MULT_LO, MULT_HI], n), rng.choice([1, 62], n)], 1)
        g.case()
        g.add("x", x, np.int32)
        g.add("acc", acc, np.int32)
        g.add("rq", rq, np.int32)
        g.add("out", spec.residual_add(x, acc, rq[:, 0], rq[:, 1]), np.int32)
    return g


def gen_div_round(rng) -> GoldenFile:
    """cases = 1: num i64, den i64, out i64 = spec.div_round (den > 0)."""
    n = 4000
    num = np.concatenate([rng.integers(-(1 << 61), 1 << 61, n), rng.integers(-1000, 1000, n)])
    den = np.concatenate([rng.integers(1, 1 << 48, n), rng.integers(1, 50, n)])
    # exact halves on both signs round up: -1.5 -> -1, 1.5 -> 2, -2.5 -> -2
    hn = np.array([3, -3, 5, -5, 1, -1, 0, (1 << 61) - 1, -(1 << 61)], dtype=np.int64)
    hd = np.array([2, 2, 2, 2, 2, 2, 7, 1, 3], dtype=np.int64)
    num, den = np.concatenate([num, hn]), np.concatenate([den, hd])
    g = GoldenFile().case()
    g.add("num", num, np.int64)
    g.add("den", den, np.int64)
    g.add("out", spec.div_round(num, den), np.int64)
    return g


# --- gemv ---------------------------------------------------------------------------------------

def gen_gemv(rng) -> GoldenFile:
    """per case: dims u32[2] (rows, cols), w i8[rows*cols], x i8[cols], acc i32[rows] = spec.gemv_s8_s32."""
    shapes = [(1, 1, "rand"), (1, 31, "rand"), (1, 32, "rand"), (1, 33, "rand"), (3, 5, "rand"), (4, 64, "rand"),
              (5, 255, "rand"), (5, 256, "rand"), (6, 257, "rand"), (7, 1023, "rand"), (9, 1024, "rand"),
              (9, 1025, "rand"), (2, 2100, "rand"), (176, 64, "rand"), (64, 176, "rand"), (512, 512, "rand"),
              (1376, 512, "rand"), (512, 1376, "rand"), (4, 1000, "max"), (5, 1000, "min"), (3, 2048, "m128"),
              (6, 300, "zero"), (1, 131072, "m128"), (2, 131073, "m128"), (5, 777, "alt")]
    g = GoldenFile()
    for rows, cols, kind in shapes:
        if kind == "rand":
            w = rng.integers(-128, 127, (rows, cols), endpoint=True)
            x = rng.integers(-128, 127, cols, endpoint=True)
        elif kind == "max":
            w, x = np.full((rows, cols), 127), np.full(cols, 127)
        elif kind == "min":
            w, x = np.full((rows, cols), -127), np.full(cols, 127)
        elif kind == "m128":  # int32 wrap-around once cols * 2^14 reaches 2^31
            w, x = np.full((rows, cols), -128), np.full(cols, -128)
        elif kind == "alt":
            w = np.where(rng.random((rows, cols)) < 0.5, -127, 127)
            x = np.where(rng.random(cols) < 0.5, -127, 127)
        else:
            w, x = np.zeros((rows, cols)), np.zeros(cols)
        w, x = w.astype(np.int8), x.astype(np.int8)
        acc = spec.gemv_s8_s32(w, x)
        exact = (w.astype(np.int64) @ x.astype(np.int64)).astype(np.int32)  # guards the float32 path
        assert np.array_equal(acc, exact), (rows, cols, kind)
        g.case()
        g.add("dims", [rows, cols], np.uint32)
        g.add("w", w, np.int8)
        g.add("x", x, np.int8)
        g.add("acc", acc, np.int32)
    return g


# --- RMSNorm ------------------------------------------------------------------------------------

def gen_isqrt(rng) -> GoldenFile:
    """cases = 1: v u64, r u64 = math.isqrt(v)."""
    vals = [0, 1, 2, 3, 4, 5, 8, 9, 15, 16, 17, (1 << 32) - 1, 1 << 32, (1 << 62), (1 << 62) - 1,
            (1 << 63), (1 << 64) - 1, (1 << 64) - 2, ((1 << 32) - 1) ** 2, ((1 << 32) - 1) ** 2 - 1]
    for k in rng.integers(1, 1 << 32, 200, dtype=np.uint64):
        k = int(k)
        vals += [k * k - 1, k * k, k * k + 1, k * k + 2 * k] if k * k + 2 * k < (1 << 64) else [k * k]
    vals += [int(v) for v in rng.integers(0, np.iinfo(np.uint64).max, 500, dtype=np.uint64, endpoint=True)]
    vals += [int(v) for v in rng.integers(0, 1 << 20, 200)]
    g = GoldenFile().case()
    g.add("v", np.array(vals, dtype=np.uint64), np.uint64)
    g.add("r", np.array([math.isqrt(v) for v in vals], dtype=np.uint64), np.uint64)
    return g


def gen_rmsnorm(rng) -> GoldenFile:
    """per case: x i32[D], gain i32[D], eps i32[1], out i8[D] = spec.rmsnorm_s32_s8."""
    g = GoldenFile()

    def add(x, gain, eps):
        x, gain = np.asarray(x, np.int64), np.asarray(gain, np.int64)
        with warnings.catch_warnings():  # r == 0 divides by zero: numpy gives 0, the C kernel too
            warnings.simplefilter("ignore", RuntimeWarning)
            with np.errstate(divide="ignore"):
                out = spec.rmsnorm_s32_s8(x, gain, eps)
        g.case()
        g.add("x", x, np.int32)
        g.add("gain", gain, np.int32)
        g.add("eps", [eps], np.int32)
        g.add("out", out, np.int8)

    for d in (1, 7, 64, 512, 4096):
        add(rng.integers(-spec.RES_MAX, spec.RES_MAX, d, endpoint=True), rng.integers(-(1 << 22), 1 << 22, d), 1)
        add(rng.integers(-3000, 3000, d), rng.integers(1 << 20, 1 << 24, d), int(rng.integers(1, 1 << 20)))
    d = 16383  # the largest D the spec allows: sum(x^2) just below 2^62
    add(np.where(rng.random(d) < 0.5, -spec.RES_MAX, spec.RES_MAX), rng.integers(I32_MIN, I32_MAX, d, endpoint=True), 1)
    add(np.zeros(64), rng.integers(-(1 << 20), 1 << 20, 64), 1)
    add(rng.integers(-100, 100, 64), np.full(64, I32_MAX), I32_MAX)
    add(rng.integers(-100, 100, 64), np.full(64, I32_MIN), 1)
    add([3, 3, 3, 3, -3, -3], [98304, -98304, 32768, -32768, 98304, 163840], 0)  # exact halves: r = 3
    add(np.zeros(8), rng.integers(-1000, 1000, 8), 0)  # r == 0
    add([1] + [0] * 63, rng.integers(-(1 << 20), 1 << 20, 64), 0)  # sum/D == 0, r == 0, x != 0
    add([3, 3, 3, 3], [65536 * 50, -65536 * 50, 65536, 7], 6)  # mean + eps = 15: r = 3, not 4
    return g


# --- RoPE ---------------------------------------------------------------------------------------

def gen_rope(rng) -> GoldenFile:
    """case 1: table i32[1025], phase u32[n], sin i32[n] = spec.sin_q15.
    cases 2..: params u32[3] (n_heads, head_size, pos), steps u32[hs/2], table i32[1025], v i8[n], out i8[n]."""
    g = GoldenFile()
    table = spec.sine_table()
    top = np.uint64(1 << 32)
    ph = [0, 1, (1 << 21), (1 << 21) - 1, (1 << 22) - 1, 1 << 22, (1 << 22) + (1 << 21), (1 << 30) - 1, 1 << 30,
          (1 << 30) + 1, 1 << 31, (1 << 32) - 1, (1 << 32) - (1 << 21), (1 << 32) - (1 << 22)]
    ph += list(range(0, 1 << 32, 1 << 22)) + [p + (1 << 21) for p in range(0, 1 << 32, 1 << 22)]
    ph = np.concatenate([np.array(ph, dtype=np.uint64), rng.integers(0, top, 3000, dtype=np.uint64)])
    g.case()
    g.add("table", table, np.int32)
    g.add("phase", ph, np.uint32)
    g.add("sin", spec.sin_q15(ph.astype(np.int64), table), np.int32)

    theta_steps = {hs: spec.rope_steps(hs, 10000.0) for hs in (2, 16, 64, 128)}
    cases = [(1, 2, 0, "theta"), (4, 16, 1, "theta"), (8, 64, 5, "theta"), (8, 64, 1023, "theta"),
             (2, 128, 4095, "theta"), (4, 16, 0x7FFFFFFF, "theta"), (4, 16, 0xFFFFFFFF, "theta"),
             (3, 16, 1, "wrap"), (3, 16, 2, "wrap"), (3, 16, 77777, "wrap"), (2, 64, 123456789, "random"),
             (4, 16, 3, "max"), (4, 16, 9, "min"), (2, 16, 6, "randtable")]
    for n_heads, hs, pos, kind in cases:
        if kind == "wrap":  # every pos * step lands just below a whole number of turns
            steps = (top - rng.integers(1, 1 << 12, hs // 2, dtype=np.uint64)).astype(np.uint32)
        elif kind == "random":
            steps = rng.integers(0, top, hs // 2, dtype=np.uint64).astype(np.uint32)
        else:
            steps = theta_steps[hs]
        v = rng.integers(-128, 127, n_heads * hs, endpoint=True)
        if kind == "max":
            v = np.full(n_heads * hs, 127)
        elif kind == "min":
            v = np.full(n_heads * hs, -127)
        tab = table
        if kind == "randtable":  # any in-range table, to exercise the interpolation arithmetic
            tab = rng.integers(-(1 << 15), 1 << 15, spec.sine_table().shape[0], endpoint=True).astype(np.int32)
        v = v.astype(np.int8)
        out = spec.rope_s8(v, pos, steps, tab)
        g.case()
        g.add("params", [n_heads, hs, pos], np.uint32)
        g.add("steps", steps, np.uint32)
        g.add("table", tab, np.int32)
        g.add("v", v, np.int8)
        g.add("out", out, np.int8)
    return g


# --- softmax and attention ----------------------------------------------------------------------

def gen_exp2(rng) -> GoldenFile:
    """cases = 1: table i32[257], z i32[n], e i64[n] = spec.exp2_neg_q30."""
    table = spec.exp2_table()
    one = 1 << spec.EXP2_FRAC_BITS
    z = [0, -1, -127, -128, -129, -255, -256, -257, -one + 1, -one, -one - 1, I32_MIN, I32_MIN + 1]
    for n in range(0, 40):
        z += [-n * one, -n * one - 1, -n * one + 1 if n else 0, -n * one - one // 2, -n * one - 128]
    z = np.concatenate([np.array(z, dtype=np.int64), rng.integers(I32_MIN, 0, 2000, endpoint=True),
                        rng.integers(-32 * one, 0, 3000, endpoint=True), rng.integers(-2 * one, 0, 1000, endpoint=True)])
    z = np.minimum(z, 0)
    g = GoldenFile().case()
    g.add("table", table, np.int32)
    g.add("z", z, np.int32)
    g.add("e", spec.exp2_neg_q30(z, table), np.int64)
    return g


def attention_multiplier(hs: int, s_q: float = 0.04, s_k: float = 0.05) -> tuple[int, int]:
    return realistic_multiplier(s_q * s_k / math.sqrt(hs) * math.log2(math.e) * 65536.0)


def gen_softmax(rng) -> GoldenFile:
    """per case: params i32[2] (mult, shift), scores i32[n], p i32[n] = spec.softmax_q15."""
    g = GoldenFile()
    table = spec.exp2_table()
    real = attention_multiplier(64)
    cases = [
        (np.array([5]), real), (np.array([7, 7]), real), (rng.integers(-2000, 2000, 7), real),
        (rng.integers(-64 * 16129, 64 * 16129, 1024), real), (rng.integers(-30000, 30000, 2000), real),
        (rng.integers(-6000, 6000, 1024), real),
        (rng.integers(-(1 << 20), 1 << 20, 300), (MULT_HI, 62)),  # scale ~0: uniform
        (rng.integers(-(1 << 20), 1 << 20, 300), (MULT_HI, 1)),  # huge scale: only the max survives
        (np.array([I32_MIN, I32_MAX, 0, I32_MAX, -1]), real),  # score - max down to -(2^32 - 1)
        (np.array([I32_MIN, I32_MIN + 1, I32_MAX]), (MULT_LO, 40)),
        (np.full(50, I32_MIN), real), (np.full(33, 1000), (MULT_HI, 1)),
        (rng.integers(-200, 200, 100), (int(rand_mults(rng, 1)[0]), 24)),
    ]
    for scores, (m, s) in cases:
        g.case()
        g.add("params", [m, s], np.int32)
        g.add("scores", scores, np.int32)
        g.add("p", spec.softmax_q15(scores.astype(np.int32), m, s, table), np.int32)
    return g


def gen_attention(rng) -> GoldenFile:
    """per case: params u32[4] (n_pos, head_size, kv_stride, head_offset), rq i32[2] (soft mult, shift),
    q i8[hs], k i8[n_pos*stride], v i8[n_pos*stride], out i32[hs] = spec.attention_head_s8 over columns
    [head_offset, head_offset + hs) of each cache row."""
    g = GoldenFile()
    table = spec.exp2_table()
    cases = [(1, 16, 16, 0, "rand"), (5, 16, 32, 16, "rand"), (100, 64, 128, 64, "rand"),
             (1024, 64, 512, 192, "rand"), (1500, 32, 32, 0, "rand"), (17, 16, 64, 48, "max"),
             (9, 16, 16, 0, "min"), (12, 64, 64, 0, "peaked"), (40, 16, 16, 0, "flat"),
             (7, 20, 40, 20, "rand"), (30, 50, 64, 10, "rand"), (3, 6, 6, 0, "rand")]  # vector tails
    for n_pos, hs, stride, off, kind in cases:
        q = rng.integers(-128, 127, hs, endpoint=True)
        k = rng.integers(-128, 127, (n_pos, stride), endpoint=True)
        v = rng.integers(-128, 127, (n_pos, stride), endpoint=True)
        m, s = attention_multiplier(hs)
        if kind == "max":
            q, k, v = np.full(hs, 127), np.full((n_pos, stride), 127), np.full((n_pos, stride), 127)
        elif kind == "min":
            q, k, v = np.full(hs, -127), np.full((n_pos, stride), 127), np.full((n_pos, stride), -127)
        elif kind == "peaked":
            m, s = MULT_HI, 1
        elif kind == "flat":
            m, s = MULT_LO, 62
        q, k, v = (a.astype(np.int8) for a in (q, k, v))
        out = spec.attention_head_s8(q, k[:, off:off + hs], v[:, off:off + hs], m, s, table)
        g.case()
        g.add("params", [n_pos, hs, stride, off], np.uint32)
        g.add("rq", [m, s], np.int32)
        g.add("q", q, np.int8)
        g.add("k", k, np.int8)
        g.add("v", v, np.int8)
        g.add("out", out, np.int32)
    return g


# --- FFN gate -----------------------------------------------------------------------------------

def gen_swiglu(rng) -> GoldenFile:
    """per case: params i32[2] (mult, shift), lut i32[256], h1 i8[n], h3 i8[n], out i8[n] = spec.swiglu_s8."""
    g = GoldenFile()
    all_h1 = np.arange(-128, 128)
    for s_in, kind in ((0.05, "real"), (0.2, "real"), (None, "randlut"), (0.05, "extreme")):
        if s_in is not None:
            x = np.arange(-128, 128, dtype=np.float64) * s_in
            s_silu = float(np.abs(x / (1.0 + np.exp(-x))).max()) / 32767.0
            lut = spec.silu_table(s_in, s_silu)
            m, s = realistic_multiplier(s_silu * 0.03 / 0.02)
        else:
            lut = rng.integers(-32767, 32767, 256, endpoint=True)
            m, s = int(rand_mults(rng, 1)[0]), 22
        h1 = np.concatenate([all_h1, rng.integers(-128, 127, 1000, endpoint=True)])
        h3 = np.concatenate([rng.choice([-128, -127, 127, 1, 0], 256), rng.integers(-128, 127, 1000, endpoint=True)])
        params = [(m, s)] if kind != "extreme" else [(MULT_HI, 1), (MULT_LO, 62), (MULT_HI, 16)]
        for m, s in params:
            g.case()
            g.add("params", [m, s], np.int32)
            g.add("lut", lut, np.int32)
            g.add("h1", h1, np.int8)
            g.add("h3", h3, np.int8)
            g.add("out", spec.swiglu_s8(h1, h3, lut, m, s), np.int8)
    return g


# --- encoder blocks (orchestrator/quant/spec_encoder.py) -----------------------------------------

def gen_layernorm(rng) -> GoldenFile:
    """per case: x i32[D], gain i32[D], bias i32[D], eps i32[1], out i8[D] = spec_encoder.layernorm_s32_s8."""
    from orchestrator.quant import spec_encoder as enc

    g = GoldenFile()

    def add(x, gain, bias, eps):
        x, gain, bias = (np.asarray(a, np.int64) for a in (x, gain, bias))
        g.case()
        g.add("x", x, np.int32)
        g.add("gain", gain, np.int32)
        g.add("bias", bias, np.int32)
        g.add("eps", [eps], np.int32)
        g.add("out", enc.layernorm_s32_s8(x, gain, bias, eps), np.int8)

    # A float LayerNorm through the integer recipe must land within one step of the float result.
    for d in (64, 768):
        xf = rng.normal(0.0, 1.0, d) * rng.uniform(0.5, 4.0) + rng.uniform(-2.0, 2.0)
        s_res = 8.0 / (1 << 16)
        x = np.rint(xf / s_res).astype(np.int64)
        gf, bf = rng.normal(1.0, 0.2, d), rng.normal(0.0, 0.3, d)
        xr = x * s_res
        ref = (xr - xr.mean()) / np.sqrt(xr.var() + 1e-5) * gf + bf
        s_out = float(np.abs(ref).max()) / spec.Q_MAX
        gq, bq = enc.layernorm_params(gf, bf, s_out)
        eps = enc.eps_to_q(1e-5, s_res)
        got = enc.layernorm_s32_s8(x, gq, bq, eps).astype(np.int64)
        assert np.abs(got - np.rint(ref / s_out)).max() <= 1, "integer LayerNorm strays from the float one"
        add(x, gq, bq, eps)
    for d in (1, 7, 512):
        add(rng.integers(-spec.RES_MAX, spec.RES_MAX, d, endpoint=True), rng.integers(-(1 << 22), 1 << 22, d),
            rng.integers(-(1 << 24), 1 << 24, d), 1)
    d = 16383
    add(np.where(rng.random(d) < 0.5, -spec.RES_MAX, spec.RES_MAX), rng.integers(I32_MIN, I32_MAX, d, endpoint=True),
        rng.integers(I32_MIN, I32_MAX, d, endpoint=True), 1)
    add(np.full(64, 12345), rng.integers(-(1 << 20), 1 << 20, 64), rng.integers(-(1 << 22), 1 << 22, 64), 1)
    add(np.full(64, -spec.RES_MAX), np.full(64, I32_MAX), np.full(64, I32_MIN), I32_MAX)
    add([5, 6, 6, 6], [65536 * 20] * 4, [32768, -32768, 98304, -98304], 0)  # mean 5.75 -> 6, exact halves
    add(np.zeros(8), rng.integers(-1000, 1000, 8), rng.integers(-1000, 1000, 8), 0)  # r == 0
    return g


def gen_gelu(rng) -> GoldenFile:
    """per case: lut i8[256], x i8[n], out i8[n] = spec_encoder.gelu_s8."""
    from orchestrator.quant import spec_encoder as enc

    g = GoldenFile()
    for s_in, approx in ((0.03, False), (0.05, True), (0.1, False)):
        x = np.arange(-128, 128, dtype=np.float64) * s_in
        s_out = float(np.abs(x).max()) / spec.Q_MAX
        lut = enc.gelu_table(s_in, s_out, approx)
        xs = np.concatenate([np.arange(-128, 128), rng.integers(-128, 127, 500, endpoint=True)])
        g.case()
        g.add("lut", lut, np.int8)
        g.add("x", xs, np.int8)
        g.add("out", enc.gelu_s8(xs, lut), np.int8)
    return g


# --- next token ---------------------------------------------------------------------------------

def gen_argmax(rng) -> GoldenFile:
    """per case: v i32[n], idx u32[1] = spec.argmax_first."""
    g = GoldenFile()
    vals = [np.array([3]), np.array([I32_MIN] * 5), np.array([1, 9, 9, 2, 9]), np.array([0, 0, 0, 1]),
            np.array([I32_MAX, I32_MAX]), rng.integers(I32_MIN, I32_MAX, 32000, endpoint=True),
            rng.integers(-3, 3, 1000)]
    for v in vals:
        g.case()
        g.add("v", v, np.int32)
        g.add("idx", [spec.argmax_first(v.astype(np.int32))], np.uint32)
    return g


def gen_xorshift(rng) -> GoldenFile:
    """per case: seed u64[1], u32 u32[64] (first draws), u64 u64[32] (the draws after those)."""
    g = GoldenFile()
    for seed in (0, 1, 42, 0x123456789ABCDEF, (1 << 64) - 1, int(rng.integers(0, 1 << 62))):
        r = spec.XorShift64(seed)
        u32 = [r.u32() for _ in range(64)]
        u64 = [r.u64() for _ in range(32)]
        g.case()
        g.add("seed", np.array([seed], dtype=np.uint64), np.uint64)
        g.add("u32", np.array(u32, dtype=np.uint64), np.uint32)
        g.add("u64", np.array(u64, dtype=np.uint64), np.uint64)
    return g


def gen_temperature(rng) -> GoldenFile:
    """cases = 1: in i32[n*3] (base_mult, base_shift, temp_q16), out i32[n*3] (status, mult, shift);
    status 1 where the spec raises ValueError."""
    bases = [realistic_multiplier(s * math.log2(math.e) * 65536.0) for s in (1e-6, 3e-5, 0.01)]
    bases += [(MULT_LO, 45), (MULT_HI, 45), (MULT_LO, 1), (MULT_HI, 62), (MULT_LO, 62), (MULT_HI, 1)]
    temps = [1, 2, 6554, 32768, 65535, 65536, 65537, 131072, 1 << 20, 1 << 30, I32_MAX, 0, -1, I32_MIN]
    temps += [int(t) for t in rng.integers(1, 1 << 24, 20)]
    ins, outs = [], []
    for bm, bs in bases:
        for t in temps:
            try:
                m, s = spec.temperature_multiplier(bm, bs, t)
                outs += [0, m, s]
            except ValueError:
                outs += [1, 0, 0]
            ins += [bm, bs, t]
    g = GoldenFile().case()
    g.add("in", ins, np.int32)
    g.add("out", outs, np.int32)
    return g


def gen_sample(rng) -> GoldenFile:
    """per case: params i32[3] (global_max, mult, shift), logits i32[n], w i32[n] = spec.sample_weights,
    sum u64[1], target u64[k], pick u32[k] = searchsorted(cumsum(w), target, "right")."""
    g = GoldenFile()
    table = spec.exp2_table()
    base = realistic_multiplier(3e-5 * math.log2(math.e) * 65536.0)
    cases = []
    lg = rng.integers(-(1 << 21), 1 << 21, 4000)
    cases.append((lg, int(lg.max()), spec.temperature_multiplier(*base, 65536)))
    lg = rng.integers(-(1 << 21), 1 << 21, 4000)
    cases.append((lg, int(lg.max()) + 12345, spec.temperature_multiplier(*base, 32768)))  # max on another chip
    lg = rng.choice([-spec.LOGIT_MAX, spec.LOGIT_MAX, 0], 50)
    cases.append((lg, spec.LOGIT_MAX, spec.temperature_multiplier(*base, 6554)))
    lg = np.full(10, 77)
    cases.append((lg, 77, base))
    lg = rng.integers(-100, 100, 300)
    cases.append((lg, int(lg.max()), (MULT_HI, 1)))
    for lg, gmax, (m, s) in cases:
        w = spec.sample_weights(lg, gmax, m, s, table)
        total = int(w.sum())
        cum = np.cumsum(w)
        r = spec.XorShift64(int(rng.integers(1, 1 << 62)))
        targets = [0, max(total - 1, 0)] + ([r.u64() % total for _ in range(40)] if total else [])
        targets += [int(c) for c in cum[:5]] + [int(c) - 1 for c in cum[:5] if c > 0]
        picks = [int(np.searchsorted(cum, t, side="right")) for t in targets]
        g.case()
        g.add("params", [gmax, m, s], np.int32)
        g.add("logits", lg, np.int32)
        g.add("w", w, np.int32)
        g.add("sum", np.array([total], dtype=np.uint64), np.uint64)
        g.add("target", np.array(targets, dtype=np.uint64), np.uint64)
        g.add("pick", picks, np.uint32)
    return g


# --- one model, every kernel chained ------------------------------------------------------------

LAYER_TENSORS = ("att_norm", "wq", "wq_rq", "wk", "wk_rq", "wv", "wv_rq", "wo", "wo_rq", "ffn_norm",
                 "w1", "w1_rq", "w3", "w3_rq", "w2", "w2_rq", "silu", "params")
N_POS = 10
PROMPT = [1, 37, 200, 5, 91]


def gen_layer(rng) -> GoldenFile | None:
    """The tiny-test model on one chip (ChipSim, rank 0 of 1), N_POS positions: the prompt forced, then
    greedy tokens. Records, in order:
      config u32[10]: dim, hidden, n_layers, n_heads, n_kv_heads, vocab, context, head_size, n_pos,
                      prompt length (BOS included; later inputs are the previous step's greedy token)
      eps i32[1], rope_steps u32, sin i32, exp2 i32, final_norm i32, embed i8[V*D], embed_rq i32[V*2],
      cls i8[V*D] (the embedding again when tied), cls_rq i32[V*2]
      per layer: att_norm, wq, wq_rq, wk, wk_rq, wv, wv_rq, wo, wo_rq, ffn_norm, w1, w1_rq, w3, w3_rq,
                 w2, w2_rq, silu, params (the shard's arrays, shard layouts)
      per position: token u32[1] (the input), x i32[D] (embedding row),
        per layer: xn i8, q i8, k i8, v i8 (after requantization), q_rope i8, k_rope i8,
                   att i32 (heads' outputs), o i8, att_acc i32 (Wo partial), x_mid i32,
                   xn_ffn i8, h1 i8, h3 i8, g i8, ffn_acc i32 (W2 partial), x_out i32,
        logits i32[V], next u32[1] (greedy argmax)
    cases = 1."""
    try:
        from orchestrator.model.synthetic import load_model
        from orchestrator.partition.plan import make_plan
        from orchestrator.partition.shard import FLAG_SHARED_CLASSIFIER, build_shard, parse_shard
        from orchestrator.partition.simulator import ChipSim, ClusterSim
        from orchestrator.partition.split import Kind
        from orchestrator.profiles import load_profile
        from orchestrator.quant.quantize import quantize_model
    except ImportError as e:
        print(f"gen_golden: skipping layer.bin, the model pipeline is not importable ({e})", file=sys.stderr)
        return None

    qm = quantize_model(load_model("tiny-test"))
    cfg = qm.config
    plan = make_plan(cfg, 1, load_profile(None), 16)
    shard = parse_shard(build_shard(qm, plan, 0, plan.plan_id(qm.content_hash()))[0])
    chip = ChipSim(shard)
    get = shard.get
    hs = chip.hs

    g = GoldenFile().case()
    g.add("config", [chip.dim, chip.hidden, chip.n_layers, chip.n_heads, chip.n_kv_heads, chip.vocab,
                     chip.context, hs, N_POS, len(PROMPT)], np.uint32)
    g.add("eps", [chip.eps_q], np.int32)
    g.add("rope_steps", get(Kind.ROPE_STEPS), np.uint32)
    g.add("sin", get(Kind.SIN_TABLE), np.int32)
    g.add("exp2", get(Kind.EXP2_TABLE), np.int32)
    g.add("final_norm", get(Kind.FINAL_NORM), np.int32)
    g.add("embed", get(Kind.EMBED), np.int8)
    g.add("embed_rq", get(Kind.EMBED_RQ), np.int32)
    g.add("cls", get(Kind.EMBED) if shard.header.flags & FLAG_SHARED_CLASSIFIER else get(Kind.CLS), np.int8)
    g.add("cls_rq", get(Kind.CLS_RQ), np.int32)
    kinds = {name: Kind[name.upper()] for name in LAYER_TENSORS if name not in ("silu", "params")}
    kinds.update(silu=Kind.SILU_LUT, params=Kind.LAYER_PARAMS)
    for l in range(chip.n_layers):
        for name in LAYER_TENSORS:
            arr = get(kinds[name], l)
            g.add(name, arr, np.int8 if arr.dtype == np.int8 else np.int32)

    # Intermediates recomputed with the spec kernels next to ChipSim; every phase output is checked
    # against ChipSim itself, so the golden is the simulator's computation, not a second copy of it.
    k_cache = np.zeros((chip.n_layers, chip.context, chip.n_local_kv * hs), np.int8)
    v_cache = np.zeros_like(k_cache)
    token, tokens = PROMPT[0], []
    for pos in range(N_POS):
        tokens.append(token)
        g.add("token", [token], np.uint32)
        x = chip.embed_row(token)
        g.add("x", x, np.int32)
        for l in range(chip.n_layers):
            L = chip.layers[l]  # norms, rq, silu, params; the int8 weights come from the shard
            W = {n: get(kinds[n], l) for n in ("wq", "wk", "wv", "wo", "w1", "w3", "w2")}
            xn = spec.rmsnorm_s32_s8(x, L["att_norm"], chip.eps_q)
            rq = {n: L[n + "_rq"] for n in ("wq", "wk", "wv", "w1", "w3")}
            q = spec.requantize_s8(spec.gemv_s8_s32(W["wq"], xn), rq["wq"][:, 0], rq["wq"][:, 1])
            k = spec.requantize_s8(spec.gemv_s8_s32(W["wk"], xn), rq["wk"][:, 0], rq["wk"][:, 1])
            v = spec.requantize_s8(spec.gemv_s8_s32(W["wv"], xn), rq["wv"][:, 0], rq["wv"][:, 1])
            qr = spec.rope_s8(q, pos, chip.rope_steps, chip.sin)
            kr = spec.rope_s8(k, pos, chip.rope_steps, chip.sin)
            k_cache[l, pos], v_cache[l, pos] = kr, v
            sm, ss, om, osh = (int(p) for p in L["params"][:4])
            att = np.concatenate([
                spec.attention_head_s8(qr[h * hs:(h + 1) * hs],
                                       k_cache[l, :pos + 1, (h // chip.kv_mul) * hs:(h // chip.kv_mul + 1) * hs],
                                       v_cache[l, :pos + 1, (h // chip.kv_mul) * hs:(h // chip.kv_mul + 1) * hs],
                                       sm, ss, chip.exp2) for h in range(chip.n_heads)])
            o = spec.requantize_s8(att, om, osh)
            att_acc = spec.gemv_s8_s32(W["wo"], o)
            assert np.array_equal(att_acc, chip.attention_partial(l, x, pos)), "spec chain != ChipSim (attention)"
            x_mid = chip.residual_add(l, x, att_acc, "att")
            xf = spec.rmsnorm_s32_s8(x_mid, L["ffn_norm"], chip.eps_q)
            h1 = spec.requantize_s8(spec.gemv_s8_s32(W["w1"], xf), rq["w1"][:, 0], rq["w1"][:, 1])
            h3 = spec.requantize_s8(spec.gemv_s8_s32(W["w3"], xf), rq["w3"][:, 0], rq["w3"][:, 1])
            gate = spec.swiglu_s8(h1, h3, L["silu"], int(L["params"][4]), int(L["params"][5]))
            ffn_acc = spec.gemv_s8_s32(W["w2"], gate)
            assert np.array_equal(ffn_acc, chip.ffn_partial(l, x_mid)), "spec chain != ChipSim (ffn)"
            x = chip.residual_add(l, x_mid, ffn_acc, "ffn")
            rec = [("xn", xn, np.int8), ("q", q, np.int8), ("k", k, np.int8), ("v", v, np.int8),
                   ("q_rope", qr, np.int8), ("k_rope", kr, np.int8), ("att", att, np.int32), ("o", o, np.int8),
                   ("att_acc", att_acc, np.int32), ("x_mid", x_mid, np.int32), ("xn_ffn", xf, np.int8),
                   ("h1", h1, np.int8), ("h3", h3, np.int8), ("g", gate, np.int8), ("ffn_acc", ffn_acc, np.int32),
                   ("x_out", x, np.int32)]
            for name, arr, dt in rec:
                g.add(name, arr, dt)
        logits = chip.logits(x)
        nxt = spec.argmax_first(logits)
        g.add("logits", logits, np.int32)
        g.add("next", [nxt], np.uint32)
        token = PROMPT[pos + 1] if pos + 1 < len(PROMPT) else nxt

    # The same run through the cluster simulator must give the same greedy tokens.
    sim = ClusterSim([shard]).generate(PROMPT[1:], N_POS - len(PROMPT) + 1)
    assert tokens[len(PROMPT):] == sim.tokens[:-1], "golden chain disagrees with ClusterSim.generate"
    return g


GENERATORS = {
    "requantize": gen_requantize, "requant_vec": gen_requant_vec, "residual": gen_residual,
    "div_round": gen_div_round, "gemv": gen_gemv, "isqrt": gen_isqrt, "rmsnorm": gen_rmsnorm,
    "rope": gen_rope, "exp2": gen_exp2, "softmax": gen_softmax, "attention": gen_attention,
    "swiglu": gen_swiglu, "argmax": gen_argmax, "xorshift": gen_xorshift, "temperature": gen_temperature,
    "sample": gen_sample, "layernorm": gen_layernorm, "gelu": gen_gelu, "layer": gen_layer,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: gen_golden.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"gen_golden: cannot create the output directory {out}: {e.strerror}", file=sys.stderr)
        return 1
    for name, gen in GENERATORS.items():
        # one child generator per file: editing one generator never changes another file's vectors
        rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
        gf = gen(rng)
        if gf is not None:
            gf.write(out / f"{name}.bin")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
