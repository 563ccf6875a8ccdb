"""Energy from trace records and the profile's power per state.

One rule, used by the cost model and by the mock power meter alike, so that the two agree:

- during a record of d cycles a chip computes for a = max(MAC cycles, on-chip byte cycles) of its
  declared work (at compute_mw), and waits the rest of d at idle_mw (stalls on off-chip memory, link
  handshakes, waiting for a neighbour);
- on top of that, its off-chip memory interface draws offchip_mw for the cycles the off-chip bytes
  need, and its link pads draw link_mw for the cycles its sent and received bytes occupy the wire;
- between records (and outside them) a chip idles at idle_mw.

Each of a, the off-chip and the link cycles is capped at d. Power is constant within a record, so
energy over any window is exact arithmetic on the records (no sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.perf.rates import ChipRates

STATES = ("compute", "idle", "offchip", "link")


@dataclass(frozen=True)
class PowerStates:
    compute_mw: float
    offchip_mw: float
    link_mw: float
    idle_mw: float

    @classmethod
    def from_profile(cls, profile) -> "PowerStates":
        p = profile.power_mw
        return cls(p["compute_mw"], p["offchip_mw"], p["link_mw"], p["idle_mw"])


def record_state_cycles(rec: dict, rates: ChipRates) -> dict[str, int]:
    """Cycles of a record spent in each state (compute + idle = the record's length)."""
    d = max(int(rec["end_cycles"]) - int(rec["start_cycles"]), 0)
    a = min(d, rates.active(int(rec["macs"]), int(rec["onchip_bytes"])))
    o = min(d, rates.offchip(int(rec["offchip_bytes"])))
    lk = min(d, rates.wire(int(rec["link_tx_bytes"])) + rates.wire(int(rec["link_rx_bytes"])))
    return {"compute": a, "idle": d - a, "offchip": o, "link": lk}


def record_power_mw(rec: dict, rates: ChipRates, power: PowerStates) -> dict[str, float]:
    """Average power of each state's contribution over the record (mW); sums to the record's power."""
    d = max(int(rec["end_cycles"]) - int(rec["start_cycles"]), 0)
    if d == 0:
        return {s: 0.0 for s in STATES}
    c = record_state_cycles(rec, rates)
    return {"compute": power.compute_mw * c["compute"] / d, "idle": power.idle_mw * c["idle"] / d,
            "offchip": power.offchip_mw * c["offchip"] / d, "link": power.link_mw * c["link"] / d}


class ChipEnergy:
    """One chip's cumulative energy as a function of time on the common axis (cycles), per state."""

    def __init__(self, records: list[dict], rates: ChipRates, power: PowerStates, offset: float = 0.0) -> None:
        self.clock_hz = rates.clock_hz
        self.idle_mw = power.idle_mw
        recs = sorted((r for r in records if r["end_cycles"] > r["start_cycles"]), key=lambda r: r["start_cycles"])
        xs, ys = [], {s: [] for s in STATES}
        acc = {s: 0.0 for s in STATES}
        last = None
        for r in recs:
            s, e = r["start_cycles"] - offset, r["end_cycles"] - offset
            if last is not None and s > last:  # idle gap
                acc["idle"] += self.idle_mw * (s - last)
            if last is not None and s < last:  # overlapping records are not expected; clip
                s = last
                if e <= s:
                    continue
            p = record_power_mw(r, rates, power)
            xs.append(s)
            for k in STATES:
                ys[k].append(acc[k])
            for k in STATES:
                acc[k] += p[k] * (e - s)
            xs.append(e)
            for k in STATES:
                ys[k].append(acc[k])
            last = e
        self.x = np.asarray(xs, dtype=float)
        self.y = {k: np.asarray(v, dtype=float) for k, v in ys.items()}

    def cumulative(self, t):
        """mW x cycles from the first record's start to t (idle before and after the records).

        t may be a number or an array; the result has the same shape, per state."""
        t = np.asarray(t, dtype=float)
        if len(self.x) == 0:
            return {k: (self.idle_mw * t if k == "idle" else np.zeros_like(t)) for k in STATES}
        out = {}
        for k in STATES:
            v = np.interp(t, self.x, self.y[k])
            if k == "idle":
                v = np.where(t < self.x[0], self.idle_mw * (t - self.x[0]), v)
                v = np.where(t > self.x[-1], self.y[k][-1] + self.idle_mw * (t - self.x[-1]), v)
            out[k] = v
        return out

    def window_mj(self, a: float, b: float) -> dict[str, float]:
        ca, cb = self.cumulative(a), self.cumulative(b)
        return {k: float(cb[k] - ca[k]) / self.clock_hz for k in STATES}


def cluster_window_mj(chips: list[ChipEnergy], a: float, b: float) -> dict[str, float]:
    """Energy of all chips in [a, b] (cycles on the common axis), per state, in mJ."""
    out = {k: 0.0 for k in STATES}
    for c in chips:
        for k, v in c.window_mj(a, b).items():
            out[k] += v
    return out
