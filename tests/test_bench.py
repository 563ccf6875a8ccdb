"""`orch bench`: benchmark files, sweeps (simulated and on the mock), tables, --json, --paper."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.report.bench import load_benchmark, markdown_table, run_benchmark

REPO = Path(__file__).resolve().parents[1]
ROW_KEYS = {"model", "chips", "latency_ms", "energy_mj", "speedup", "edp_gain", "offchip_bytes_per_token"}


def _orch(argv):
    from orchestrator.cli_bench import add_parsers
    ap = argparse.ArgumentParser(prog="orch")
    add_parsers(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    return args.func(args)


def _write(tmp_path, text, name="b.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bad_benchmark_files_are_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_benchmark(tmp_path / "none.toml")
    with pytest.raises(InputError, match=r"\[sweep\]"):
        load_benchmark(_write(tmp_path, 'name = "x"\n'))
    with pytest.raises(InputError, match="unknown \\[sweep\\] keys"):
        load_benchmark(_write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [1]\nchip = 2\n'))
    with pytest.raises(InputError, match="chip counts"):
        load_benchmark(_write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [0]\n'))
    with pytest.raises(InputError, match="whole numbers"):
        load_benchmark(_write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [1.5]\n'))
    with pytest.raises(InputError, match="repetitions"):
        load_benchmark(_write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [1]\nrepetitions = 0\n'))
    with pytest.raises(InputError, match="not valid TOML"):
        load_benchmark(_write(tmp_path, '[sweep\n'))


def test_simulated_sweep_writes_rows_table_and_skips_unsplittable_points(tmp_path):
    b = _write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [1, 2, 4]\ntokens = [3]\nrepetitions = 2\n')
    r = run_benchmark(b, simulate=True, out_dir=tmp_path / "out")
    assert [x["chips"] for x in r["rows"]] == [1, 2]
    assert r["skipped"] == [{"model": "tiny-test", "chips": 4, "why": "it does not divide the model's (KV) heads"}]
    one, two = r["rows"]
    assert ROW_KEYS <= set(one) and one["speedup"] == 1.0 and one["edp_gain"] == 1.0
    assert two["speedup"] == pytest.approx(one["latency_ms"] / two["latency_ms"])
    assert two["repetitions"] == 2 and two["latency_ms_min"] == two["latency_ms_max"]  # deterministic model
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(r["rows"]))
    assert "| tiny-test | 2 |" in (tmp_path / "out" / "table.md").read_text()


def test_shipped_tinyllama_benchmark_shows_super_linear_speedup_with_offchip_bytes(tmp_path, capsys):
    assert _orch(["bench", str(REPO / "hil/benchmarks/tinyllama_scaling.toml"), "--simulate", "--json",
                  "--out", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    tl = {r["chips"]: r for r in rows if r["model"] == "tinyllama-42m"}
    assert sorted(tl) == [1, 2, 4, 8]
    for n in (2, 4, 8):
        assert tl[n]["speedup"] > n and tl[n]["super_linear"]
        assert tl[n]["offchip_bytes_per_token"] < tl[1]["offchip_bytes_per_token"]
    assert tl[8]["offchip_bytes_per_token"] == 0
    scaled = {r["chips"]: r for r in rows if r["model"] == "tinyllama-scaled-64"}
    assert 64 in scaled and scaled[64]["offchip_bytes_per_token"] == 0 and scaled[64]["speedup"] > 1
    assert "enlarged" in scaled[1]["note"]
    table = markdown_table({"benchmark": "x", "mode": "simulate", "date": "d", "rows": rows})
    assert "super-linear" in table


def test_shipped_mobilebert_benchmark_is_simulate_only(tmp_path, capsys):
    f = str(REPO / "hil/benchmarks/mobilebert_scaling.toml")
    assert _orch(["bench", f, "--simulate", "--json", "--out", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["chips"] for r in rows] == [1, 2, 4] and all(r["unit"] == "inference" for r in rows)
    with pytest.raises(InputError, match="--simulate"):
        run_benchmark(f, simulate=False, out_dir=tmp_path / "m")


def test_paper_table_holds_ours_theirs_and_the_ratio(capsys):
    assert _orch(["bench", "--paper", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    figs = {f["key"]: f for f in out["paper"]["figures"]}
    assert {"tl8_latency", "tl8_energy", "tl8_speedup", "tl8_edp", "mb4_latency", "mb4_speedup",
            "ts64_speedup"} == set(figs)
    assert figs["tl8_latency"]["paper"] == 0.54 and figs["mb4_speedup"]["paper"] == 4.7
    for f in figs.values():
        assert f["ratio"] == pytest.approx(f["ours"] / f["paper"])
    rows = {(r["model"], r["chips"]): r for r in out["rows"]}
    assert figs["tl8_speedup"]["ours"] == pytest.approx(rows[("tinyllama-42m", 8)]["speedup"])
    _orch(["bench", "--paper"])
    text = capsys.readouterr().out
    assert "0.54 ms" in text and "26.1x" in text and "docs/paper-comparison.md" in text


def test_cli_errors(tmp_path):
    with pytest.raises(InputError, match="benchmark file"):
        _orch(["bench"])
    with pytest.raises(InputError, match="exclude each other"):
        _orch(["bench", "x.toml", "--simulate", "--cluster", "c.toml"])


def test_mock_sweep_agrees_with_the_simulated_one(tmp_path):
    """Without --simulate the sweep flashes and runs the mock chips; the model predicts what they report."""
    b = _write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [1, 2]\ntokens = [2]\nrepetitions = 2\n')
    mock = run_benchmark(b, simulate=False, out_dir=tmp_path / "mock")
    sim = run_benchmark(b, simulate=True, out_dir=tmp_path / "sim")
    assert mock["mode"] == "mock" and [r["repetitions"] for r in mock["rows"]] == [2, 2]
    for m, s in zip(mock["rows"], sim["rows"]):
        assert m["latency_ms"] == pytest.approx(s["latency_ms"], rel=0.02)
        assert m["link_bytes_per_token"] == s["link_bytes_per_token"]


def test_bench_plots_when_matplotlib_is_there(tmp_path):
    pytest.importorskip("matplotlib")
    b = _write(tmp_path, '[sweep]\nmodels = ["tiny-test"]\nchips = [1, 2]\ntokens = [2]\n')
    r = run_benchmark(b, simulate=True, out_dir=tmp_path / "out")
    assert sorted(r["plots"]) == ["edp.png", "energy.png", "offchip_bytes.png", "speedup.png"]
    for p in r["plots"]:
        assert (tmp_path / "out" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
