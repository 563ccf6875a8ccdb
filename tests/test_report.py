"""`orch report RESULTS_DIR`: tables from a run's results folder, PNG plots, and bad folders."""

from __future__ import annotations

import argparse
import json

import pytest

from orchestrator.errors import InputError
from orchestrator.model.synthetic import BUILTIN_MODELS
from orchestrator.partition.plan import make_plan
from orchestrator.perf import simulate, token_metrics
from orchestrator.report.bench import report

OFFSETS = [1_000_003, 2_000_006]


def _results_dir(tmp_path, siracusa, power=False):
    tl = simulate(make_plan(BUILTIN_MODELS["tiny-test"].config, 2, siracusa), 4, prompt_ids=[9])
    trace = {str(r): [dict(x, start_cycles=x["start_cycles"] + OFFSETS[r], end_cycles=x["end_cycles"] + OFFSETS[r])
                      for x in recs] for r, recs in tl.records.items()}
    res = {"status": "ok", "model": "tiny-test", "chips": 2, "profile": "siracusa", "clock_hz": siracusa.clock_hz,
           "tokens": [3, 4, 5, 6], "clock_offsets_cycles": OFFSETS, "trace": trace}
    d = tmp_path / "run"
    d.mkdir()
    if power:
        from orchestrator.power import attach
        res.update(attach(d, "mock", trace, siracusa, offsets=OFFSETS, rate_hz=1e6))
    (d / "results.json").write_text(json.dumps(res))
    return d, tl


def test_report_tables_match_the_records(tmp_path, siracusa, capsys):
    d, tl = _results_dir(tmp_path, siracusa)
    r = report(d, plots=False)
    m = token_metrics(tl.records, siracusa)
    assert r["chips"] == 2 and r["tokens"] == 4
    assert r["latency_ms_per_token"] == pytest.approx(m.latency_ms)
    assert r["energy_mj_per_token"] == pytest.approx(m.energy_mj)
    assert set(r["phase_ms_per_token"]) == {"0", "1"}
    assert r["bytes_per_token_per_chip"]["1"]["link_tx_bytes"] > 0
    from orchestrator.cli_bench import add_parsers
    ap = argparse.ArgumentParser()
    add_parsers(ap.add_subparsers(dest="c"))
    args = ap.parse_args(["report", str(d), "--no-plots"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "ms per token, per phase" in out and "bytes per token" in out


def test_report_writes_the_pngs(tmp_path, siracusa):
    pytest.importorskip("matplotlib")
    d, _ = _results_dir(tmp_path, siracusa)
    r = report(d)
    assert sorted(r["plots"]) == ["bytes_per_token.png", "phase_latency.png", "power_trace.png"]
    assert "synthesis" in r["power_note"]
    for p in r["plots"]:
        assert (d / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_uses_the_runs_power_trace(tmp_path, siracusa):
    pytest.importorskip("matplotlib")
    d, _ = _results_dir(tmp_path, siracusa, power=True)
    r = report(d)
    assert "power_note" not in r and r["power"]["backend"] == "mock"
    assert (d / "power_trace.png").is_file()


def test_report_without_matplotlib_is_tables_only(tmp_path, siracusa, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    d, _ = _results_dir(tmp_path, siracusa)
    r = report(d)
    assert r["plots"] == [] and "pip install 'orch[plot]'" in r["plots_skipped"]


@pytest.mark.parametrize("mutate,msg", [
    (lambda res: res.pop("trace"), "no trace records"),
    (lambda res: res.update(clock_hz=-1), "clock_hz"),
    (lambda res: res["trace"]["0"][3].update(end_cycles=0), "ends before it starts"),
    (lambda res: res["trace"]["1"][0].update(macs=-5), "macs must be a non-negative integer"),
    (lambda res: res["trace"].update(x=[]), "not a chip rank"),
    (lambda res: res.update(profile="nope"), "unknown chip profile"),
])
def test_bad_results_are_named(tmp_path, siracusa, mutate, msg):
    d, _ = _results_dir(tmp_path, siracusa)
    res = json.loads((d / "results.json").read_text())
    mutate(res)
    (d / "results.json").write_text(json.dumps(res))
    with pytest.raises(InputError, match=msg):
        report(d, plots=False)


def test_missing_or_truncated_results(tmp_path):
    with pytest.raises(InputError, match="no results.json"):
        report(tmp_path, plots=False)
    (tmp_path / "results.json").write_text('{"trace": {"0": [')
    with pytest.raises(InputError, match="not valid JSON"):
        report(tmp_path, plots=False)
