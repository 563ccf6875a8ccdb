"""The main job end to end on the loopback mock: real firmware processes, real ptys, real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error


def orch(*args, timeout=600):
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def run_json(*args):
    rc, out, err = orch(*args)
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Flash and run tinyllama-42m for 64 tokens on 1, 2, 4 and 8 mock chips (once for the module)."""
    results = tmp_path_factory.mktemp("results")
    out = {}
    for n in (1, 2, 4, 8):
        flash = run_json("flash", "--chips", str(n), "--json")
        run = run_json("run", "--chips", str(n), "--tokens", "64", "--verify", "--json", "--results", str(results))
        out[n] = (flash, run)
    return out


def test_tokens_identical_across_chip_counts_and_equal_the_int8_reference(runs):
    tokens = {n: r["tokens"] for n, (_, r) in runs.items()}
    assert len(tokens[1]) == 64 and len(set(tokens[1])) > 1
    for n in (2, 4, 8):
        assert tokens[n] == tokens[1], f"{n} chips"
    for n, (_, r) in runs.items():
        assert r["verify"]["match"], f"{n} chips: {r['verify']}"
        assert r["verify"]["final_logits_match"]
        assert r["synthetic_weights"] is True


def test_run_json_has_the_documented_keys(runs):
    _, r = runs[8]
    for key in ("tokens", "chips", "model", "latency_ms_per_token", "wall_s", "link_bytes_per_token",
                "offchip_bytes_per_token", "results_dir"):
        assert key in r
    assert r["chips"] == 8 and r["model"] == "tinyllama-42m"
    assert r["offchip_bytes_per_token"] == 0  # every block's weights stay on chip at 8 chips
    assert runs[1][1]["offchip_bytes_per_token"] > 20e6  # one chip streams them every token
    assert r["link_bytes_per_token"] > 0 and runs[1][1]["link_bytes_per_token"] == 0
    assert runs[1][1]["latency_ms_per_token"] > 8 * r["latency_ms_per_token"]


def test_trace_json_has_one_track_per_chip_and_every_phase(runs):
    for n, (_, r) in runs.items():
        d = Path(r["results_dir"])
        trace = json.loads((d / "trace.json").read_text())
        slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        names = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
        assert sorted(names) == list(range(n))
        n_layers = 8
        positions = 64  # BOS + 63 more positions produce 64 tokens
        per_chip = 1 + 4 * n_layers + 2  # embed, 4 per block, classifier, argmax reduce
        for pid in range(n):
            mine = [e for e in slices if e["pid"] == pid]
            assert len(mine) == positions * per_chip
            assert all(e["dur"] >= 0 for e in mine)
        res = json.loads((d / "results.json").read_text())
        assert res["status"] == "ok" and res["tokens"] == r["tokens"]
        lines = (d / "tokens.jsonl").read_text().splitlines()
        assert [json.loads(l)["token"] for l in lines] == r["tokens"]


def test_second_flash_skips_every_chip(runs):
    again = run_json("flash", "--chips", "8", "--json")
    assert all(c["skipped"] for c in again["per_chip"])
    forced = run_json("flash", "--chips", "2", "--force", "--json")
    assert not any(c["skipped"] for c in forced["per_chip"])


def test_run_refuses_chips_flashed_for_another_cluster_size(runs):
    run_json("flash", "--chips", "4", "--json")
    rc, out, err = orch("run", "--chips", "2", "--tokens", "4")
    assert_one_line_error(rc, out, err, "orch flash")


def test_run_with_nothing_flashed_says_to_flash(tmp_path):
    env = dict(os.environ, ORCH_CACHE_DIR=str(tmp_path / "fresh-cache"))
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "--chips", "2", "--tokens", "4"],
                       capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert_one_line_error(p.returncode, p.stdout, p.stderr, "no shard committed", "orch flash")


def test_hierarchical_topology_gives_the_same_tokens(runs, tmp_path):
    r = run_json("flash", "--chips", "8", "--json")
    assert r["chips"] == 8
    h = run_json("run", "--chips", "8", "--topology", "hierarchical", "--group-size", "4", "--tokens", "64",
                 "--json", "--results", str(tmp_path))
    assert h["tokens"] == runs[8][1]["tokens"]


def test_killing_a_chip_mid_run_names_it_and_keeps_the_tokens(tmp_path, tinyllama):
    """Kill chip 2's process after a few tokens: the run fails naming chip 2 (not the neighbours that
    lost their links to it), and the tokens received so far are saved."""
    from orchestrator.cluster.config import mock_cluster
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.flash import flash_cluster
    from orchestrator.cluster.run import RunFailed, RunRequest
    from orchestrator.report.results import record_run
    from orchestrator.partition.cache import get_shards
    from orchestrator.profiles import load_profile

    prof = load_profile()
    shards = get_shards(tinyllama, 4, prof)
    with open_cluster(mock_cluster(4, prof.name), prof) as cl:
        flash_cluster(cl, shards)
        seen = []

        def on_token(index, token, text):
            seen.append(token)
            if index == 9:
                os.kill(cl.mock.chips[2].process.pid, signal.SIGKILL)

        with pytest.raises(RunFailed) as ei:
            record_run(cl, RunRequest(100, results_base=tmp_path, message_timeout_s=10), on_token=on_token)
    msg = str(ei.value)
    assert "chip 2" in msg and "SIGKILL" in msg and "\n" not in msg
    d = ei.value.results_dir
    saved = [json.loads(l)["token"] for l in (d / "tokens.jsonl").read_text().splitlines()]
    assert len(saved) >= 10 and saved == seen
    res = json.loads((d / "results.json").read_text())
    assert res["status"] == "failed" and res["tokens"] == seen and "chip 2" in res["error"]


def test_stories260k_gqa_on_1_2_4_chips_equals_the_reference(stories260k_path, tmp_path):
    got = {}
    for n in (1, 2, 4):
        run_json("flash", "--chips", str(n), "--model", str(stories260k_path), "--json")
        r = run_json("run", "--chips", str(n), "--tokens", "48", "--prompt-ids", "5,17,300", "--verify", "--json",
                     "--results", str(tmp_path))
        assert r["verify"]["match"], f"{n} chips: {r['verify']}"
        assert r["model"] == "stories260K" and r["synthetic_weights"] is False
        got[n] = r["tokens"]
    assert got[1] == got[2] == got[4]


def test_sampling_on_chips_equals_the_reference(tmp_path):
    run_json("flash", "--chips", "2", "--model", "tiny-test", "--json")
    a = run_json("run", "--chips", "2", "--tokens", "30", "--temperature", "0.9", "--seed", "11", "--verify",
                 "--json", "--results", str(tmp_path))
    b = run_json("run", "--chips", "2", "--tokens", "30", "--temperature", "0.9", "--seed", "12", "--json",
                 "--results", str(tmp_path))
    assert a["verify"]["match"], a["verify"]
    assert a["tokens"] != b["tokens"]


def test_run_with_mock_power_meter_adds_energy(tmp_path):
    run_json("flash", "--chips", "2", "--model", "tiny-test", "--json")
    r = run_json("run", "--chips", "2", "--tokens", "8", "--power", "mock", "--json", "--results", str(tmp_path))
    p = r["power"]
    assert p["backend"] == "mock" and p["energy_per_token_mj"] > 0
    assert abs(p["energy_per_token_mj"] - p["model_energy_per_token_mj"]) < 0.05 * p["model_energy_per_token_mj"]
    assert (Path(r["results_dir"]) / p["file"]).is_file()
    rc, out, err = orch("report", r["results_dir"], "--no-plots")
    assert rc == 0, err
