"""The cost model against the mock's virtual clock: same plan, same run, the same timeline.

The acceptance bound is 2%; the model replays the firmware's accounting and message schedule, so
in practice every record matches to the cycle, and the test says so when it does not."""

from __future__ import annotations

import pytest

from orchestrator.partition.plan import make_plan
from orchestrator.perf import Topology, barrier_exit_cycles, simulate, token_metrics

PROMPT = [300, 20000]  # owned by chips 0 and (at 2+ chips) a later chip: the broadcast root moves
TOKENS = 3
TOL = 0.02


def _run_mock(model, world, profile, results_base, topology="ring", group_size=0, temperature=0.0):
    from orchestrator.cluster.config import mock_cluster
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.flash import flash_cluster
    from orchestrator.cluster.run import RunRequest
    from orchestrator.report.results import record_run
    from orchestrator.partition.cache import get_shards
    shards = get_shards(model, world, profile)
    with open_cluster(mock_cluster(world, profile.name, topology, group_size), profile) as cluster:
        flash_cluster(cluster, shards)
        out = record_run(cluster, RunRequest(n_tokens=TOKENS, prompt_ids=PROMPT, results_base=results_base,
                                             temperature=temperature))
    return out.results


def _compare(res, model, world, profile, topo, temperature=False):
    plan = make_plan(model.config, world, profile)
    feed = [1] + PROMPT + res["tokens"][:-1]
    tl = simulate(plan, TOKENS, PROMPT, topo, input_tokens=feed, temperature=temperature)
    trace = {int(k): v for k, v in res["trace"].items()}
    assert sorted(trace) == list(range(world))
    worst = 0.0
    for r in range(world):
        got, want = trace[r], tl.records[r]
        assert len(got) == len(want), f"chip {r}: {len(got)} records on the mock, {len(want)} modelled"
        g0, w0 = got[0]["start_cycles"], want[0]["start_cycles"]
        span = got[-1]["end_cycles"] - g0
        for g, w in zip(got, want):
            for k in ("token_index", "phase", "layer", "macs", "onchip_bytes", "offchip_bytes", "link_tx_bytes",
                      "link_rx_bytes"):
                assert g[k] == w[k], f"chip {r} {g['phase']} L{g['layer']} pos {g['token_index']}: {k}"
            dg, dw = g["end_cycles"] - g["start_cycles"], w["end_cycles"] - w["start_cycles"]
            worst = max(worst, abs(dg - dw) / max(dg, 1) if dg > 1000 else 0.0)
            assert abs((g["start_cycles"] - g0) - (w["start_cycles"] - w0)) <= TOL * span
    assert worst <= TOL, f"a phase's modelled duration is off by {worst:.1%}"
    got_m = token_metrics(trace, profile, res.get("clock_offsets_cycles"))
    want_m = token_metrics(tl.records, profile)
    assert got_m.latency_ms == pytest.approx(want_m.latency_ms, rel=TOL)
    assert got_m.energy_mj == pytest.approx(want_m.energy_mj, rel=TOL)
    # and the lead's own per-token latency (results.json) agrees with the model too
    assert res["latency_ms_per_token"] == pytest.approx(want_m.latency_ms, rel=TOL)
    return tl


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_model_predicts_the_mock_timeline(world, tinyllama, siracusa, tmp_path):
    res = _run_mock(tinyllama, world, siracusa, tmp_path)
    _compare(res, tinyllama, world, siracusa, Topology())


def test_model_predicts_the_hierarchical_mock(tinyllama, siracusa, tmp_path):
    res = _run_mock(tinyllama, 8, siracusa, tmp_path, "hierarchical", 4)
    tl = _compare(res, tinyllama, 8, siracusa, Topology("hierarchical", 4))
    # the start barrier releases chips at different virtual times; the model knows by how much
    first = [res["trace"][str(r)][0]["start_cycles"] for r in range(8)]
    exits = barrier_exit_cycles(8, siracusa, "hierarchical:4")
    assert exits == tl.barrier_exit
    assert len(set(f - e for f, e in zip(first, exits))) == 8  # each chip boots with its own counter offset


def test_model_predicts_temperature_sampling_on_the_mock(tinyllama, siracusa, tmp_path):
    """Sampling adds an int64 all-reduce of the slice sums and a second argmax-reduce per token."""
    res = _run_mock(tinyllama, 8, siracusa, tmp_path, temperature=0.9)
    _compare(res, tinyllama, 8, siracusa, Topology(), temperature=True)
