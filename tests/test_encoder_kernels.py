"""The C encoder kernels (firmware/kernels/encoder_seq.c) compute the bits of the numpy spec
(orchestrator/quant/spec_bert.py), on random and extreme inputs, built with AddressSanitizer and UBSan."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from orchestrator.quant import spec
from orchestrator.quant import spec_bert as sb

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware"

# Reads ops from stdin: u32 op, u32 n, then the op's arrays; writes the result arrays to stdout.
DRIVER = r"""
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include "kernels/kernels.h"

static uint32_t rd(void) { uint32_t v; if (fread(&v, 4, 1, stdin) != 1) exit(0); return v; }
static void *arr(uint32_t n, uint32_t size) { void *p = malloc(n * size + 1); if (fread(p, size, n, stdin) != n) exit(2); return p; }

int main(void)
{
    for (;;) {
        uint32_t op = rd(), n = rd();
        if (op == 1) {        /* layernorm_s32_s32 */
            int32_t eps = (int32_t)rd();
            int32_t *x = arr(n, 4), *norm = arr(5 * n, 4), *out = malloc(4 * n);
            layernorm_s32_s32(x, norm, eps, out, n);
            fwrite(out, 4, n, stdout);
            free(x); free(norm); free(out);
        } else if (op == 2) { /* nonorm_s32_s32 */
            int32_t shift = (int32_t)rd();
            int32_t *x = arr(n, 4), *norm = arr(5 * n, 4), *out = malloc(4 * n);
            nonorm_s32_s32(x, norm, shift, out, n);
            fwrite(out, 4, n, stdout);
            free(x); free(norm); free(out);
        } else if (op == 3) { /* add_rqb_s32 with a residual, then copy_s32_s8 */
            int32_t m = (int32_t)rd(), s = (int32_t)rd();
            int32_t *acc = arr(n, 4), *rqb = arr(3 * n, 4), *res = arr(n, 4), *norm = arr(5 * n, 4);
            int32_t *out = malloc(4 * n);
            int8_t *o8 = malloc(n);
            add_rqb_s32(acc, rqb, res, m, s, out, n);
            copy_s32_s8(out, norm, o8, n);
            fwrite(out, 4, n, stdout);
            fwrite(o8, 1, n, stdout);
            free(acc); free(rqb); free(res); free(norm); free(out); free(o8);
        } else if (op == 4) { /* requant_rqb_s32_s8, then lut_cls_s8 */
            int32_t *acc = arr(n, 4), *rqb = arr(3 * n, 4);
            int8_t *cls = arr(n, 1), *lut = arr(KN_ACT_CLASSES * 256, 1), *h = malloc(n), *g = malloc(n);
            requant_rqb_s32_s8(acc, rqb, h, n);
            lut_cls_s8(h, cls, lut, g, n);
            fwrite(h, 1, n, stdout);
            fwrite(g, 1, n, stdout);
            free(acc); free(rqb); free(cls); free(lut); free(h); free(g);
        } else if (op == 6) { /* expand_norm_s16 then gemv_s8_s16_s32: rows x n weights */
            uint32_t rows = rd();
            int8_t *x = arr(n, 1), *w = arr(rows * n, 1);
            int32_t *norm = arr(5 * n, 4), *acc = malloc(4 * rows);
            int16_t *x16 = malloc(2 * n);
            expand_norm_s16(x, norm, x16, n);
            gemv_s8_s16_s32(w, x16, acc, rows, n);
            fwrite(acc, 4, rows, stdout);
            free(x); free(w); free(norm); free(acc); free(x16);
        } else if (op == 5) { /* pool_mean_s32 over rows x n */
            uint32_t rows = rd(), valid = rd();
            int32_t *x = arr(rows * n, 4), *out = malloc(4 * n);
            pool_mean_s32(x, n, valid, out, n);
            fwrite(out, 4, n, stdout);
            free(x); free(out);
        } else {
            return 3;
        }
        fflush(stdout);
    }
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    work = tmp_path_factory.mktemp("enc_kernels")
    (work / "driver.c").write_text(DRIVER)
    exe = work / "driver"
    srcs = [str(FW / "kernels" / f) for f in ("encoder_seq.c", "encoder.c", "norm.c", "requant.c")]
    subprocess.run([cc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "-I", str(FW), str(work / "driver.c"), *srcs, "-o", str(exe)],
                   check=True, capture_output=True)
    return exe


def _run(exe: Path, payload: bytes) -> bytes:
    p = subprocess.run([str(exe)], input=payload, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout


def _u32(*v) -> bytes:
    return struct.pack(f"<{len(v)}I", *[x & 0xFFFFFFFF for x in v])


def _rq(rng, n):
    return np.stack([rng.integers(1 << 30, 1 << 31, n), rng.integers(1, 63, n)], axis=1).astype(np.int32)


def test_layernorm_and_nonorm_match_the_spec(driver):
    rng = np.random.default_rng(5)
    payload, want = b"", []
    for trial in range(40):
        n = int(rng.integers(1, 400))
        big = trial % 4 == 0
        x = rng.integers(-spec.RES_MAX, spec.RES_MAX + 1, n) if big else rng.integers(-3000, 3000, n)
        norm = np.zeros((n, 5), np.int64)
        norm[:, 0] = rng.integers(-(1 << 31) + 1, 1 << 31, n) if big else rng.integers(-(1 << 22), 1 << 22, n)
        norm[:, 1] = rng.integers(-(1 << 31) + 1, 1 << 31, n) if big else rng.integers(-(1 << 22), 1 << 22, n)
        norm[:, 2:4] = _rq(rng, n)
        eps = int(rng.integers(1, 1 << 20))
        payload += _u32(1, n, eps) + x.astype("<i4").tobytes() + norm.astype("<i4").tobytes()
        want.append(sb.layernorm_s32_s32(x[None], norm[:, 0], norm[:, 1], eps)[0])
        shift = int(rng.integers(1, 63))
        payload += _u32(2, n, shift) + x.astype("<i4").tobytes() + norm.astype("<i4").tobytes()
        want.append(sb.nonorm_s32_s32(x, norm[:, :2], shift))
        rows = int(rng.integers(1, 40))
        x8 = rng.integers(-127, 128, n).astype(np.int8)
        w8 = rng.integers(-127, 128, (rows, n)).astype(np.int8)
        norm[:, 4] = rng.integers(0, 6, n)
        payload += _u32(6, n, rows) + x8.tobytes() + w8.tobytes() + norm.astype("<i4").tobytes()
        want.append(sb.matmul_s8e_s32(x8[None], norm[:, 4], w8)[0])
    got = np.frombuffer(_run(driver, payload), dtype="<i4")
    assert np.array_equal(got, np.concatenate(want))


def test_add_copy_requant_lut_and_pool_match_the_spec(driver):
    rng = np.random.default_rng(6)
    payload, want = b"", bytearray()
    lut = rng.integers(-127, 128, (6, 256)).astype(np.int8)
    for trial in range(30):
        n = int(rng.integers(1, 300))
        acc = rng.integers(-(1 << 31), 1 << 31, n) if trial % 3 == 0 else rng.integers(-(1 << 20), 1 << 20, n)
        rqb = np.concatenate([_rq(rng, n), rng.integers(-(1 << 31), 1 << 31, (n, 1))], axis=1).astype(np.int64)
        res = rng.integers(-(1 << 31), 1 << 31, n)
        norm = np.zeros((n, 5), np.int64)
        norm[:, 2:4] = _rq(rng, n)
        m, s = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(1, 63))
        payload += (_u32(3, n, m, s) + acc.astype("<i4").tobytes() + rqb.astype("<i4").tobytes()
                    + res.astype("<i4").tobytes() + norm.astype("<i4").tobytes())
        t = sb.add_rqb_s32(acc.astype(np.int32), rqb, res.astype(np.int32), m, s)
        want += t.astype("<i4").tobytes() + sb.copy_s8(t, norm).tobytes()
        cls = rng.integers(0, 6, n).astype(np.int8)
        payload += _u32(4, n) + acc.astype("<i4").tobytes() + rqb.astype("<i4").tobytes() + cls.tobytes() + lut.tobytes()
        h = sb.linear_rqb_s8(acc.astype(np.int32), rqb)
        want += h.tobytes() + sb.lut_cls_s8(h, cls, lut).tobytes()
        rows = int(rng.integers(1, 20))
        valid = int(rng.integers(1, rows + 1))
        x = rng.integers(-spec.RES_MAX, spec.RES_MAX + 1, (rows, n))
        payload += _u32(5, n, rows, valid) + x.astype("<i4").tobytes()
        want += sb.pool_s32(x, valid, "mean").astype("<i4").tobytes()
    assert _run(driver, payload) == bytes(want)
