"""`orch run --power X`: the power trace of a run, aligned with its trace records, and its energy.

attach() is what the run command calls after the chips are done (docs/power.md has the contract).
For the mock backend it synthesizes the trace from the records; for a real meter the caller has
started the meter before RUN and stopped it after DONE, and passes it in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator.errors import InputError
from orchestrator.perf.metrics import token_metrics
from orchestrator.power.meter import PowerMeter
from orchestrator.power.trace import Marker, PowerTrace

CSV_MAX_SAMPLES = 200_000  # above this a CSV gets unwieldy; the default switches to NPZ


def _norm(records) -> dict[int, list[dict]]:
    out = {}
    for k, v in (records or {}).items():
        try:
            out[int(k)] = list(v)
        except (TypeError, ValueError):
            raise InputError(f"trace records: rank {k!r} is not a chip number") from None
    return out


def _mapping(trace: PowerTrace, records: dict[int, list[dict]], offsets, clock_hz: float, meter, clock_fit):
    """(first_cycles, t_anchor_s, sync): trace seconds = t_anchor + (cycles - first_cycles) / clock_hz."""
    first = min(r["start_cycles"] - (offsets[k] if offsets else 0.0) for k, recs in records.items() for r in recs)
    rises = [m.t_s for m in trace.markers if m.name == "trigger_rise"]
    if rises:
        return first, rises[0], "trigger"
    if clock_fit and meter is not None and meter.host_t0 is not None and clock_fit.get("cycles_per_s", 0) > 0:
        t_host = (first - float(clock_fit["offset_cycles"])) / float(clock_fit["cycles_per_s"])
        return first, t_host - meter.host_t0, "clock"
    runs = [m.t_s for m in trace.markers if m.name == "run"]
    if runs:
        return first, runs[0], "run marker"
    raise InputError(f"cannot align the {trace.source} power trace with the chips: no trigger edge, no clock fit "
                     "and no 'run' marker; mark the start with meter.marker('run') before RUN")


def summarize_power(trace: PowerTrace, records, profile, offsets=None, first_cycles: float | None = None,
                    t_anchor_s: float = 0.0) -> dict:
    """Energy per token and per phase measured on the trace, next to the model's for the same records."""
    records = _norm(records)
    hz = profile.clock_hz
    m = token_metrics(records, profile, offsets)
    if first_cycles is None:
        first_cycles = min(a for a, _ in m.window_cycles.values())

    def to_s(c):
        return t_anchor_s + (c - first_cycles) / hz

    tokens = []
    for p in m.picked:
        a, b = m.window_cycles[p]
        tokens.append({"pos": p, "latency_ms": (b - a) / hz * 1e3, "energy_mj": trace.energy_j(to_s(a), to_s(b)) * 1e3})
    lead = min(records)
    off0 = offsets[lead] if offsets else 0.0
    by_phase: dict[str, float] = {}
    picked = set(m.picked)
    for r in records[lead]:
        if r["token_index"] in picked:
            e = trace.energy_j(to_s(r["start_cycles"] - off0), to_s(r["end_cycles"] - off0)) * 1e3
            by_phase[r["phase"]] = by_phase.get(r["phase"], 0.0) + e
    a = min(m.window_cycles[p][0] for p in m.picked)
    b = max(m.window_cycles[p][1] for p in m.picked)
    run_mj = trace.energy_j(to_s(a), to_s(b)) * 1e3
    n = max(len(tokens), 1)
    return {
        "energy_mj": run_mj,
        "energy_per_token_mj": float(np.mean([t["energy_mj"] for t in tokens])) if tokens else None,
        "average_power_mw": run_mj / ((b - a) / hz) if b > a else None,
        "energy_by_phase_mj_per_token": {k: v / n for k, v in by_phase.items()},
        "energy_by_phase_note": f"cluster energy while chip {lead} was in each phase",
        "tokens": tokens,
        "model_energy_per_token_mj": m.energy_mj,
        "model_energy_by_state_mj_per_token": m.energy_by_state_mj,
    }


def attach(results_dir: Path, backend: str, trace_records_by_rank: dict[int, list[dict]], profile, **opts) -> dict:
    """Writes the run's power trace into results_dir and returns {"power": summary} for results.json.

    opts: rate_hz, noise_mw, seed (mock); meter (a stopped PowerMeter, real backends); offsets (cycles
    to subtract per rank, as results.json's clock_offsets_cycles); clock_fit ({"offset_cycles",
    "cycles_per_s"} of chip 0 against time.monotonic(), real counters); format ("csv" or "npz")."""
    from orchestrator.power import BACKENDS
    if backend not in BACKENDS:
        raise InputError(f"unknown power meter '{backend}': use one of {', '.join(BACKENDS)}")
    records = _norm(trace_records_by_rank)
    if not any(records.values()):
        raise InputError("no trace records to align the power trace with: the run produced none")
    offsets = opts.get("offsets")
    results_dir = Path(results_dir)
    if backend == "mock":
        from orchestrator.power.mock import MockMeter
        meter = MockMeter(records, profile, rate_hz=float(opts.get("rate_hz", 100_000.0)),
                          noise_mw=float(opts.get("noise_mw", 0.0)), seed=opts.get("seed"), offsets=offsets)
        trace = meter.samples()
        first, anchor, sync = meter.first_cycles, 0.0, "virtual clock (exact)"
    else:
        meter = opts.get("meter")
        if not isinstance(meter, PowerMeter):
            raise InputError(f"--power {backend}: pass the meter that recorded the run (meter=...) to attach()")
        trace = meter.samples()
        if len(trace.power_w) == 0:
            raise InputError(f"the {backend} meter recorded no samples; is it connected to the chips' supply?")
        first, anchor, sync = _mapping(trace, records, offsets, profile.clock_hz, meter, opts.get("clock_fit"))
    summary = summarize_power(trace, records, profile, offsets, first, anchor)
    m_windows = token_metrics(records, profile, offsets).window_cycles
    for p, (a, _) in sorted(m_windows.items()):
        trace.markers.append(Marker(f"pos {p}", anchor + (a - first) / profile.clock_hz))
    trace.markers.sort(key=lambda mk: mk.t_s)
    fmt = opts.get("format") or ("npz" if len(trace.power_w) > CSV_MAX_SAMPLES else "csv")
    if fmt not in ("csv", "npz"):
        raise InputError(f"power trace format must be csv or npz, got {fmt!r}")
    path = trace.save(results_dir / f"power.{fmt}")
    return {"power": {"backend": backend, "file": path.name, "sample_rate_hz": trace.rate_hz,
                      "samples": int(len(trace.power_w)), "sync": sync, "t_anchor_s": anchor,
                      "first_cycles": first, **summary}}
