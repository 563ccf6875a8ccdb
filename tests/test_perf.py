"""The cost model: cycle arithmetic, message schedules, per-phase work, energy, and the scaling effect."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model.synthetic import BUILTIN_MODELS
from orchestrator.partition.plan import make_plan
from orchestrator.perf import (ChipRates, Topology, estimate, record_state_cycles, simulate, token_metrics,
                               with_gains)
from orchestrator.perf import collectives as coll
from orchestrator.perf import replay
from orchestrator.perf.decoder import ChipWork
from orchestrator.perf.energy import PowerStates
from orchestrator.perf.rates import cost_cycles

TL = BUILTIN_MODELS["tinyllama-42m"].config


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@pytest.mark.parametrize("amount,rate", [(0, 1000), (1, 1000), (10, 3000), (1023, 1111), (2**60 + 7, 1111),
                                         (2**62, 1), (5, 0)])
def test_cost_cycles_is_exact_ceiling(amount, rate):
    want = ceil_div(amount * 1000, rate or 1)
    assert cost_cycles(amount, rate) == want


def test_rates_are_what_the_mock_is_told(siracusa):
    """The model rounds the profile exactly as the mock's command line does (cluster/mock.py)."""
    from orchestrator.cluster.mock import profile_args
    args = profile_args(siracusa)
    opt = {args[i]: args[i + 1] for i in range(0, len(args), 2)}
    milli = lambda s: int(Decimal(s) * 1000)  # noqa: E731
    r = ChipRates.from_profile(siracusa)
    assert r.macs_per_kcycle == milli(opt["--macs-per-cycle"])
    assert r.onchip_bytes_per_kcycle == milli(opt["--onchip-bytes-per-cycle"])
    assert r.offchip_bytes_per_kcycle == milli(opt["--offchip-bytes-per-cycle"])
    assert r.link_bytes_per_kcycle == milli(opt["--link-bytes-per-cycle"])
    assert r.link_latency_cycles == int(opt["--link-latency-cycles"])


def _programs(world, fn, *args, topo=Topology()):
    return [list(fn(r, world, topo, *args)) for r in range(world)]


@pytest.mark.parametrize("world", [2, 3, 4, 8])
def test_ring_allreduce_sends_2_n_minus_1_segments(world):
    n = 512
    for r, ops in enumerate(_programs(world, coll.allreduce_s32, n, n)):
        sends = [op for op in ops if op[0] == "send"]
        recvs = [op for op in ops if op[0] == "recv"]
        assert len(sends) == len(recvs) == 2 * (world - 1)
        assert all(op[1] == (r + 1) % world for op in sends)
        assert all(op[1] == (r - 1) % world for op in recvs)
        # every segment but the one a chip ends up owning goes out twice (reduce-scatter, all-gather)
        seg = [(j + 1) * n // world - j * n // world for j in range(world)]
        assert sum(op[2] for op in sends) == 4 * (2 * sum(seg) - seg[(r + 1) % world] - seg[(r + 2) % world])


def test_allreduce_chunks_long_segments():
    world, n, chunk = 2, 40000, 4096  # segments of 20000 elements: ceil(20000/4096) = 5 messages each
    ops = _programs(world, coll.allreduce_s32, n, chunk)[0]
    sends = [op for op in ops if op[0] == "send"]
    assert len(sends) == 2 * 5 and max(op[2] for op in sends) == 4 * chunk
    assert sum(op[2] for op in sends) == 2 * 4 * 20000


def test_hierarchical_allreduce_stays_on_configured_links():
    from itertools import chain
    world, g = 8, 4
    topo = Topology("hierarchical", g)
    for r, ops in enumerate(_programs(world, coll.allreduce_s32, 512, 512, topo=topo)):
        peers = {op[1] for op in ops if op[0] in ("send", "recv")}
        base = r - r % g
        allowed = {base + (r % g + 1) % g, base + (r % g - 1) % g}
        if r % g == 0:
            allowed |= {(r + g) % world, (r - g) % world}
        assert peers <= allowed, (r, peers, allowed)
    assert list(chain.from_iterable(_programs(1, coll.allreduce_s32, 512, 512))) == []


def test_ring_allreduce_time_matches_the_closed_form(siracusa):
    """Chips entering together: each reduce-scatter step costs latency + wire + add, each all-gather
    step latency + wire (docs/perf.md)."""
    rates = ChipRates.from_profile(siracusa)
    lat, wire_rate = siracusa.link_latency_cycles, siracusa.link_bytes_per_cycle
    macs, on = siracusa.macs_per_cycle, siracusa.onchip_bytes_per_cycle()
    for world in (2, 4, 8):
        seg = 512 // world
        wire = ceil_div(4 * seg * 1000, round(wire_rate * 1000))
        add = max(ceil_div(seg * 1000, round(macs * 1000)), ceil_div(12 * seg * 1000, round(on * 1000)))
        want = (world - 1) * (lat + wire + add) + (world - 1) * (lat + wire)
        comp = replay.compiled("allreduce_s32", world, Topology(), rates, 512, 512)
        assert comp.apply(np.zeros(world)).tolist() == [want] * world
        # a late chip delays everyone: the sum waits for its segment
        late = np.zeros(world)
        late[world - 1] = 10_000
        assert comp.apply(late).min() >= 10_000


def test_ring_broadcast_reaches_the_far_chips_after_four_hops(siracusa):
    rates = ChipRates.from_profile(siracusa)
    hop = siracusa.link_latency_cycles + ceil_div(2048 * 1000, round(siracusa.link_bytes_per_cycle * 1000))
    t = replay.compiled("broadcast", 8, Topology(), rates, 2048, 0).apply(np.zeros(8))
    assert t[0] == 2 * hop  # the root sends right, then left
    assert t[4] == 4 * hop and t[5] == 4 * hop  # the two ends of the chains
    assert t[1] == 2 * hop  # received after one hop, then forwarded one more


def test_attention_work_is_what_decoder_c_declares(siracusa):
    plan = make_plan(TL, 8, siracusa)
    w = ChipWork(plan, plan.chips[3])
    D, hs = 512, 64  # one head per chip at 8 chips
    for pos in (0, 9):
        kv = 2 * 1 * (pos + 1) * hs
        a = w.attention(2, pos)
        assert a.macs == D * 3 * hs + D * hs + kv
        assert a.onchip == 4 * D + 4 * hs * D + 8 * (3 * hs + D) + kv
        assert a.offchip == 0
    f = w.ffn[0]
    n_ffn = plan.chips[3].slice.n_ffn
    assert f.macs == 3 * D * n_ffn and f.onchip == 4 * D + 4 * 256 + 3 * D * n_ffn + 8 * (2 * n_ffn + D)


def test_one_chip_streams_weights_from_off_chip(siracusa):
    plan = make_plan(TL, 1, siracusa)
    w = ChipWork(plan, plan.chips[0])
    streamed = sum(t.nbytes for t in plan.chips[0].tensors if not t.onchip)
    assert streamed > 20e6
    per_token = sum(x.offchip for x in w.ffn) + sum(w.attention(l, 0).offchip for l in range(8)) + w.classifier.offchip
    assert per_token > 20e6


def test_two_allreduces_per_block_and_one_record_per_phase(siracusa):
    plan = make_plan(TL, 4, siracusa)
    tl = simulate(plan, 3, prompt_ids=[7])
    for r, recs in tl.records.items():
        for pos in range(4):
            mine = [x for x in recs if x["token_index"] == pos]
            for l in range(8):
                assert sum(x["phase"].startswith("ALLREDUCE") and x["layer"] == l for x in mine) == 2
            assert [x["phase"] for x in mine].count("ARGMAX_REDUCE") == (1 if pos >= 1 else 0)
        starts = [x["start_cycles"] for x in recs]
        assert starts == sorted(starts)
        assert all(a["end_cycles"] == b["start_cycles"] for a, b in zip(recs, recs[1:]))  # no gaps inside a run


def test_super_linear_for_the_right_reason(siracusa):
    one, eight = estimate(TL, 1, siracusa, tokens=4), estimate(TL, 8, siracusa, tokens=4)
    assert eight.offchip_bytes_per_token == 0 and one.offchip_bytes_per_token > 20e6
    assert one.latency_ms / eight.latency_ms > 8
    # the same cluster with off-chip memory as fast as on-chip memory: no super-linear speedup left
    fast = dataclasses.replace(siracusa, memories=tuple(
        dataclasses.replace(m, bytes_per_cycle=siracusa.onchip_bytes_per_cycle()) if m.kind == "offchip" else m
        for m in siracusa.memories))
    f1, f8 = estimate(TL, 1, fast, tokens=4), estimate(TL, 8, fast, tokens=4)
    assert f1.latency_ms / f8.latency_ms < 8


def test_record_energy_known_answer(siracusa):
    rates, p = ChipRates.from_profile(siracusa), PowerStates.from_profile(siracusa)
    macs = int(32 * 100)  # 100 cycles of compute
    off = 1111  # 1000 cycles of off-chip transfer at 1.111 B/cycle
    tx = 500  # 2000 cycles on the wire at 0.25 B/cycle
    rec = {"token_index": 0, "phase": "FFN", "layer": 0, "start_cycles": 1000, "end_cycles": 4000, "macs": macs,
           "onchip_bytes": 0, "offchip_bytes": off, "link_tx_bytes": tx, "link_rx_bytes": 0}
    c = record_state_cycles(rec, rates)
    assert c == {"compute": 100, "idle": 2900, "offchip": 1000, "link": 2000}
    m = token_metrics({0: [rec]}, siracusa)
    want_mj = (p.compute_mw * 100 + p.idle_mw * 2900 + p.offchip_mw * 1000 + p.link_mw * 2000) / siracusa.clock_hz
    assert m.energy_mj == pytest.approx(want_mj, rel=1e-12)
    assert m.latency_ms == pytest.approx(3000 / siracusa.clock_hz * 1e3)


def test_token_windows_tile_the_run_and_idle_gaps_cost_idle_power(siracusa):
    hz, idle = siracusa.clock_hz, siracusa.power_mw["idle_mw"]

    def rec(pos, phase, s, e):
        return {"token_index": pos, "phase": phase, "layer": None, "start_cycles": s, "end_cycles": e, "macs": 0,
                "onchip_bytes": 0, "offchip_bytes": 0, "link_tx_bytes": 0, "link_rx_bytes": 0}
    trace = {0: [rec(0, "CLASSIFIER", 0, 100), rec(0, "ARGMAX_REDUCE", 100, 150),
                 rec(1, "CLASSIFIER", 400, 500), rec(1, "ARGMAX_REDUCE", 500, 520)],
             1: [rec(0, "CLASSIFIER", 50, 300), rec(0, "ARGMAX_REDUCE", 300, 310),
                 rec(1, "CLASSIFIER", 310, 600), rec(1, "ARGMAX_REDUCE", 600, 700)]}
    m = token_metrics(trace, siracusa, offsets=[0, 0])
    assert m.window_cycles == {0: (0.0, 310.0), 1: (310.0, 700.0)}
    assert sum(m.latency_per_token_ms) == pytest.approx(700 / hz * 1e3)
    # nothing computes: every chip draws idle power over the whole run, both chips
    assert sum(m.energy_per_token_mj) == pytest.approx(2 * idle * 700 / hz)
    # offsets move a chip onto the common axis
    shifted = {0: trace[0], 1: [dict(r, start_cycles=r["start_cycles"] + 1000, end_cycles=r["end_cycles"] + 1000)
                                 for r in trace[1]]}
    assert token_metrics(shifted, siracusa, offsets=[0, 1000]).window_cycles == m.window_cycles


def test_encoder_split_stores_no_weight_twice(siracusa):
    from orchestrator.perf.encoder import MOBILEBERT, _chip_weights
    one = sum(w for _, _, w, _ in _chip_weights(MOBILEBERT, 1, 0))
    assert one == MOBILEBERT.n_params()  # every int8 weight, once
    for n in (2, 4):
        assert sum(w for r in range(n) for _, _, w, _ in _chip_weights(MOBILEBERT, n, r)) == one
    e = estimate("mobilebert", 4, siracusa)
    recs = e.timeline.records[0]
    assert sum(x["phase"].startswith("ALLREDUCE") for x in recs) == 1 + 6 * MOBILEBERT.n_layers
    assert e.unit == "inference" and e.macs_per_token == pytest.approx(
        sum(x["macs"] for r in range(4) for x in e.timeline.records[r]))


def test_encoder_refuses_chip_counts_that_do_not_divide_its_heads(siracusa):
    with pytest.raises(InputError, match="divide its 4 heads"):
        estimate("mobilebert", 3, siracusa)


def test_gains_are_against_the_one_chip_row(siracusa):
    rows = with_gains([estimate(TL, n, siracusa, tokens=2) for n in (1, 2)])
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(rows[0]["latency_ms"] / rows[1]["latency_ms"])
    assert rows[1]["edp_gain"] == pytest.approx(rows[0]["edp_mj_ms"] / rows[1]["edp_mj_ms"])


def test_scaled_model_one_chip_baseline_is_marked_hypothetical(siracusa):
    with pytest.raises(InputError, match="does not fit"):
        estimate("tinyllama-scaled-64", 1, siracusa, tokens=1)
    e = estimate("tinyllama-scaled-64", 1, siracusa, tokens=1, grow_offchip=True)
    assert "enlarged" in e.note and e.offchip_bytes_per_token > 100e6
    assert estimate("tinyllama-scaled-64", 64, siracusa, tokens=1).note == ""


def test_bad_inputs_are_named(siracusa):
    plan = make_plan(BUILTIN_MODELS["tiny-test"].config, 2, siracusa)
    with pytest.raises(InputError, match="context"):
        simulate(plan, plan.context + 1)
    with pytest.raises(InputError, match="group size"):
        Topology.parse("hierarchical:3", 8)
    with pytest.raises(InputError, match="unknown model"):
        estimate("no-such-model", 1, siracusa)
