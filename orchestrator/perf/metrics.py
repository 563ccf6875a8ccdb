"""Latency, energy, EDP and bytes per token from trace records, predicted or measured alike.

A token's window runs from the moment the previous position finished on every chip to the moment
this one has (the last chip's last record of the position), so windows tile the run without overlap
and the energies of all windows add up to the run's energy. Per-token figures are means over the
positions that produced a token (prompt positions are not tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from orchestrator.perf.energy import STATES, ChipEnergy, PowerStates, cluster_window_mj
from orchestrator.perf.rates import ChipRates


@dataclass
class TokenMetrics:
    world: int
    clock_hz: float
    positions: list[int]
    picked: list[int]
    window_cycles: dict[int, tuple[float, float]]  # position -> (start, end) on the common axis
    latency_ms: float  # mean over picked positions
    energy_mj: float  # cluster energy, mean over picked positions
    energy_by_state_mj: dict[str, float]  # mean per picked position
    offchip_bytes: float  # cluster totals per picked position
    onchip_bytes: float
    link_tx_bytes: float
    macs: float
    phase_ms: dict[int, dict[str, float]] = field(default_factory=dict)  # rank -> phase -> ms per position
    energy_per_token_mj: list[float] = field(default_factory=list)
    latency_per_token_ms: list[float] = field(default_factory=list)

    @property
    def edp(self) -> float:
        """Energy-delay product of the average token, mJ x ms."""
        return self.energy_mj * self.latency_ms


def _norm(trace) -> dict[int, list[dict]]:
    return {int(k): v for k, v in trace.items()}


def token_metrics(trace, profile, offsets=None) -> TokenMetrics:
    """trace: rank -> records (the firmware's record dicts); offsets: cycles to subtract per rank."""
    trace = _norm(trace)
    rates, power = ChipRates.from_profile(profile), PowerStates.from_profile(profile)
    ranks = sorted(trace)
    off = {r: float(offsets[r]) if offsets is not None and r < len(offsets) and offsets[r] is not None else 0.0
           for r in ranks}
    done: dict[int, float] = {}
    first = float("inf")
    picked = set()
    for r in ranks:
        for rec in trace[r]:
            p = rec["token_index"]
            done[p] = max(done.get(p, float("-inf")), rec["end_cycles"] - off[r])
            first = min(first, rec["start_cycles"] - off[r])
            if rec["phase"] == "ARGMAX_REDUCE":
                picked.add(p)
    positions = sorted(done)
    chosen = sorted(picked) or positions
    windows, prev = {}, first
    for p in positions:
        windows[p] = (prev, done[p])
        prev = done[p]
    chips = [ChipEnergy(trace[r], rates, power, off[r]) for r in ranks]
    lat, en = [], []
    by_state = {k: 0.0 for k in STATES}
    for p in chosen:
        a, b = windows[p]
        e = cluster_window_mj(chips, a, b)
        lat.append((b - a) / rates.clock_hz * 1e3)
        en.append(sum(e.values()))
        for k in STATES:
            by_state[k] += e[k]
    n = max(len(chosen), 1)
    chosen_set = set(chosen)
    tot = {k: 0.0 for k in ("offchip_bytes", "onchip_bytes", "link_tx_bytes", "macs")}
    phase_ms: dict[int, dict[str, float]] = {}
    for r in ranks:
        per: dict[str, float] = {}
        for rec in trace[r]:
            if rec["token_index"] not in chosen_set:
                continue
            for k in tot:
                tot[k] += rec[k]
            per[rec["phase"]] = per.get(rec["phase"], 0.0) + rec["end_cycles"] - rec["start_cycles"]
        phase_ms[r] = {k: v / n / rates.clock_hz * 1e3 for k, v in per.items()}
    return TokenMetrics(
        world=len(ranks), clock_hz=rates.clock_hz, positions=positions, picked=chosen, window_cycles=windows,
        latency_ms=float(np.mean(lat)) if lat else 0.0, energy_mj=float(np.mean(en)) if en else 0.0,
        energy_by_state_mj={k: v / n for k, v in by_state.items()},
        offchip_bytes=tot["offchip_bytes"] / n, onchip_bytes=tot["onchip_bytes"] / n,
        link_tx_bytes=tot["link_tx_bytes"] / n, macs=tot["macs"] / n, phase_ms=phase_ms,
        energy_per_token_mj=en, latency_per_token_ms=lat)
