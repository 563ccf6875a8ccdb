"""Power traces: energy integration with known answers, files, and the mock meter's synthesis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.power import Marker, PowerTrace, attach, load_trace, open_meter
from orchestrator.power.mock import MockMeter


def test_constant_power_energy_is_power_times_time():
    tr = PowerTrace(1000.0, np.full(1000, 2.0))  # 2 W for 1 s
    assert tr.energy_j() == pytest.approx(2.0)
    assert tr.energy_j(0.25, 0.75) == pytest.approx(1.0)
    assert tr.energy_j(-5, 0.5) == pytest.approx(1.0)  # clamped to the trace


def test_partial_samples_count_by_their_overlap():
    tr = PowerTrace(1.0, [1.0, 3.0, 5.0], t0_s=10.0)  # 1 W in [10, 11), 3 W in [11, 12), 5 W in [12, 13)
    assert tr.energy_j(10.5, 11.5) == pytest.approx(0.5 * 1 + 0.5 * 3)
    assert tr.energy_j(11.25, 12.75) == pytest.approx(0.75 * 3 + 0.75 * 5)
    assert tr.energy_j(11.0, 11.0) == 0.0
    with pytest.raises(InputError, match="before it starts"):
        tr.energy_j(12, 11)


def test_energy_between_markers_and_trigger_edges():
    trig = np.zeros(100, dtype=np.uint8)
    trig[20:60] = 1
    tr = PowerTrace(100.0, np.linspace(0, 1, 100), markers=[Marker("a", 0.2), Marker("b", 0.6)], trigger=trig)
    assert tr.energy_between("a", "b") == pytest.approx(np.sum(np.linspace(0, 1, 100)[20:60]) / 100)
    assert tr.trigger_edges() == ([pytest.approx(0.2)], [pytest.approx(0.6)])
    with pytest.raises(InputError, match="no marker 'c'"):
        tr.energy_between("a", "c")


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_trace_files_round_trip(tmp_path, suffix):
    trig = (np.arange(50) % 7 == 0).astype(np.uint8)
    tr = PowerTrace(2000.0, np.random.default_rng(1).uniform(0, 2, 50), 0.5,
                    [Marker("run", 0.51), Marker("pos 3", 0.52)], trig, "test")
    back = load_trace(tr.save(tmp_path / f"power{suffix}"))
    assert back.rate_hz == tr.rate_hz and back.t0_s == tr.t0_s
    np.testing.assert_allclose(back.power_w, tr.power_w, rtol=1e-8)
    assert [(m.name, m.t_s) for m in back.markers] == [(m.name, pytest.approx(m.t_s)) for m in tr.markers]
    assert back.trigger.tolist() == trig.tolist()


def test_bad_trace_files_are_refused(tmp_path):
    p = tmp_path / "power.csv"
    p.write_text("t_s,power_w\n0,1\n")
    with pytest.raises(InputError, match="not an orch power trace"):
        load_trace(p)
    p.write_text("# orch-power-trace v1; rate_hz=1000; t0_s=0; source=x\nt_s,power_w\n0,abc\n")
    with pytest.raises(InputError, match="malformed"):
        load_trace(p)
    p.write_text("# orch-power-trace v1; rate_hz=-1; t0_s=0; source=x\nt_s,power_w\n0,1\n")
    with pytest.raises(InputError, match="sample rate"):
        load_trace(p)
    q = tmp_path / "power.npz"
    np.savez(q, format=np.array("orch-power-trace"), version=np.array(1), rate_hz=np.array(10.0),
             t0_s=np.array(0.0), power_w=np.zeros((2, 2)), marker_names=np.zeros(0, "<U1"),
             marker_t_s=np.zeros(0), source=np.array(""))
    with pytest.raises(InputError, match="one row"):
        load_trace(q)
    with pytest.raises(InputError, match="does not exist"):
        load_trace(tmp_path / "nope.csv")


def _rec(pos, phase, s, e, macs=0, on=0, off=0, tx=0, rx=0):
    return {"token_index": pos, "phase": phase, "layer": None, "start_cycles": s, "end_cycles": e, "macs": macs,
            "onchip_bytes": on, "offchip_bytes": off, "link_tx_bytes": tx, "link_rx_bytes": rx}


def test_mock_meter_known_answer(siracusa):
    """One chip computing flat out for 1 ms, then idling 1 ms: samples at 10 kHz read exactly those levels."""
    hz = siracusa.clock_hz
    ms = int(hz / 1000)
    macs = int(siracusa.macs_per_cycle * ms)  # keeps the cores busy for the whole record
    trace = {0: [_rec(0, "FFN", 0, ms, macs=macs), _rec(0, "ARGMAX_REDUCE", 2 * ms, 2 * ms + 1)]}
    m = MockMeter(trace, siracusa, rate_hz=10_000)
    tr = m.samples()
    p = siracusa.power_mw
    assert len(tr.power_w) == 21  # 2 ms and one cycle: the last sample covers it
    np.testing.assert_allclose(tr.power_w[:10], p["compute_mw"] * 1e-3, rtol=1e-9)
    np.testing.assert_allclose(tr.power_w[10:], p["idle_mw"] * 1e-3, rtol=1e-9)
    assert tr.energy_j(0, 0.002) == pytest.approx((p["compute_mw"] + p["idle_mw"]) * 1e-3 * 1e-3, rel=1e-6)


def test_mock_meter_sums_chips_and_matches_the_model(siracusa):
    from orchestrator.model.synthetic import BUILTIN_MODELS
    from orchestrator.partition.plan import make_plan
    from orchestrator.perf import simulate, token_metrics
    tl = simulate(make_plan(BUILTIN_MODELS["tiny-test"].config, 2, siracusa), 4)
    meter = MockMeter(tl.records, siracusa, rate_hz=50e6)
    tr = meter.samples()
    tm = token_metrics(tl.records, siracusa)
    for p in tm.picked:
        a, b = (float(x) for x in meter.cycles_to_s(tm.window_cycles[p]))
        assert tr.energy_j(a, b) * 1e3 == pytest.approx(tm.energy_per_token_mj[tm.picked.index(p)], rel=1e-3)


def test_mock_meter_noise_is_seeded(siracusa):
    trace = {0: [_rec(0, "FFN", 0, 3_600_000)]}  # 10 ms idle-power record
    a = MockMeter(trace, siracusa, rate_hz=100_000, noise_mw=5.0, seed=7).samples().power_w
    b = MockMeter(trace, siracusa, rate_hz=100_000, noise_mw=5.0, seed=7).samples().power_w
    c = MockMeter(trace, siracusa, rate_hz=100_000, noise_mw=5.0, seed=8).samples().power_w
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.std(a) == pytest.approx(5e-3, rel=0.1)
    assert np.mean(a) == pytest.approx(siracusa.power_mw["idle_mw"] * 1e-3, abs=3 * 5e-3 / np.sqrt(len(a)))


def test_mock_meter_needs_records(siracusa):
    with pytest.raises(InputError, match="trace records"):
        MockMeter({}, siracusa)
    with pytest.raises(InputError, match="trace_records_by_rank"):
        open_meter("mock")
    with pytest.raises(InputError, match="unknown power meter"):
        open_meter("fluke")


def test_attach_mock_writes_the_trace_and_energy_per_token(tmp_path, siracusa):
    from orchestrator.model.synthetic import BUILTIN_MODELS
    from orchestrator.partition.plan import make_plan
    from orchestrator.perf import simulate
    tl = simulate(make_plan(BUILTIN_MODELS["tiny-test"].config, 2, siracusa), 3, prompt_ids=[5])
    # as results.json holds them: string keys, each chip's counter offset by its boot time
    offsets = [1000, 2000]
    recs = {str(r): [dict(x, start_cycles=x["start_cycles"] + offsets[r], end_cycles=x["end_cycles"] + offsets[r])
                     for x in v] for r, v in tl.records.items()}
    out = attach(tmp_path, "mock", recs, siracusa, offsets=offsets, rate_hz=2e6)["power"]
    assert out["backend"] == "mock" and (tmp_path / out["file"]).is_file()
    assert [t["pos"] for t in out["tokens"]] == [1, 2, 3]
    assert out["energy_per_token_mj"] == pytest.approx(out["model_energy_per_token_mj"], rel=0.02)
    assert sum(out["energy_by_phase_mj_per_token"].values()) == pytest.approx(out["energy_per_token_mj"], rel=0.02)
    tr = load_trace(tmp_path / out["file"])
    assert len(tr.power_w) == out["samples"]
    assert [m.name for m in tr.markers if m.name.startswith("pos")] == ["pos 0", "pos 1", "pos 2", "pos 3"]
    json.dumps(out)  # goes into results.json as is


def test_attach_real_backend_needs_the_meter(tmp_path, siracusa):
    recs = {0: [_rec(0, "FFN", 0, 1000), _rec(0, "ARGMAX_REDUCE", 1000, 1100)]}
    with pytest.raises(InputError, match="meter="):
        attach(tmp_path, "ppk2", recs, siracusa)
    with pytest.raises(InputError, match="unknown power meter"):
        attach(tmp_path, "fluke", recs, siracusa)
    with pytest.raises(InputError, match="no trace records"):
        attach(tmp_path, "mock", {0: []}, siracusa)
