"""The `orch` command as a user meets it: JSON for machines, and one-line errors with no traceback."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest


def orch(*args, timeout=300):
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def assert_one_line_error(rc, out, err, *needles):
    assert rc != 0
    assert "Traceback" not in err and "Traceback" not in out
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_plan_json_has_per_chip_bytes():
    rc, out, err = orch("plan", "--chips", "8", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert [c["rank"] for c in d["chips"]] == list(range(8))
    assert all(c["offchip_bytes"] == 0 and c["onchip_bytes"] > 0 for c in d["chips"])
    assert d["offchip_bytes_per_token"] == 0
    rc, out, _ = orch("plan", "--chips", "1", "--json")
    one = json.loads(out)
    assert one["offchip_bytes_per_token"] > one["chips"][0]["onchip_bytes"]


def test_plan_table_says_weights_are_synthetic():
    rc, out, err = orch("plan", "--chips", "2")
    assert rc == 0, err
    assert "synthetic weights" in out and "rank" in out


def test_help_says_builtin_weights_are_synthetic():
    rc, out, _ = orch("plan", "--help")
    assert rc == 0 and "SYNTHETIC" in out


def test_reference_int8_json_tokens_equal_across_chip_counts():
    rc, out, err = orch("reference", "--model", "tiny-test", "--tokens", "12", "--chips", "2", "--json")
    assert rc == 0, err
    two = json.loads(out)
    rc, out, err = orch("reference", "--model", "tiny-test", "--tokens", "12", "--chips", "1", "--json")
    one = json.loads(out)
    assert len(two["tokens"]) == 12 and two["tokens"] == one["tokens"]


def test_reference_fp32_json():
    rc, out, err = orch("reference", "--model", "tiny-test", "--precision", "fp32", "--tokens", "5",
                        "--prompt-ids", "3,4", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert len(d["tokens"]) == 5 and d["prompt_ids"] == [3, 4]


@pytest.mark.parametrize("args, needles", [
    (["plan", "--chips", "3"], ["3 chips", "divide"]),
    (["plan", "--profile", "nosuchchip"], ["unknown chip profile 'nosuchchip'"]),
    (["plan", "--model", "nosuchmodel"], ["nosuchmodel"]),
    (["plan", "--chips", "1", "--profile", "mps2-an386"], ["does not fit", "--chips"]),
    (["reference", "--model", "tiny-test", "--prompt-ids", "99999"], ["99999", "vocabulary"]),
])
def test_bad_flags_give_one_line(args, needles):
    assert_one_line_error(*orch(*args), *needles)


def _legacy_checkpoint(path, dims, n_floats):
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", *dims))
        f.write(np.zeros(n_floats, dtype=np.float32).tobytes())


def test_truncated_checkpoint(tmp_path):
    p = tmp_path / "trunc.bin"
    _legacy_checkpoint(p, (64, 172, 2, 8, 4, 512, 64), 1000)
    assert_one_line_error(*orch("plan", "--model", str(p)), "trunc.bin")


def test_negative_and_zero_dims(tmp_path):
    for dims in ((64, 172, 0, 8, 4, 512, 64), (-64, 172, 2, 8, 4, 512, 64)):
        p = tmp_path / "bad.bin"
        _legacy_checkpoint(p, dims, 10)
        assert_one_line_error(*orch("plan", "--model", str(p)), "bad.bin")


def test_header_size_mismatch(tiny, tmp_path):
    from orchestrator.model.llama2c import write_llama2c
    p = tmp_path / "ok.bin"
    write_llama2c(tiny, p)
    data = bytearray(p.read_bytes())
    struct.pack_into("<i", data, 4, 200)  # hidden_dim no longer matches the weights that follow
    p.write_bytes(bytes(data))
    assert_one_line_error(*orch("plan", "--model", str(p)), "ok.bin")


def test_bench_simulate_json_rows_show_superlinear_speedup():
    rc, out, err = orch("bench", "hil/benchmarks/tinyllama_scaling.toml", "--simulate", "--json", "--out",
                        "/tmp/orch-bench-test")
    assert rc == 0, err
    rows = [r for r in json.loads(out)["rows"] if r["model"] == "tinyllama-42m"]
    by_n = {r["chips"]: r for r in rows}
    assert set(by_n) >= {1, 2, 4, 8}
    for r in rows:
        for key in ("model", "chips", "latency_ms", "energy_mj", "speedup", "edp_gain", "offchip_bytes_per_token"):
            assert key in r
    assert by_n[8]["speedup"] > 8  # super-linear: one chip streams its weights from off chip
    assert by_n[8]["offchip_bytes_per_token"] == 0 < by_n[1]["offchip_bytes_per_token"]


def test_bench_paper_table_prints():
    rc, out, err = orch("bench", "--paper")
    assert rc == 0, err
    assert "0.54 ms" in out and "26.1x" in out and "38.8 ms" in out
