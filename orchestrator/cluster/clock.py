"""Clock alignment: map every chip's cycle counter onto one timeline.

PING exchanges give pairs (host time at the middle of the round trip, chip cycles); a least-squares
line per chip estimates its offset and its rate (drift against the host clock). Counters that do not
advance with host time are virtual (the mock): after RUN's barrier they already share one time base,
which no host measurement could improve on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClockFit:
    offset_cycles: float  # counter value at host time 0 of the fit
    cycles_per_s: float  # measured rate; ~0 for a virtual clock
    rtt_s: float  # median round trip of the pings
    samples: int

    def as_dict(self) -> dict:
        return {"offset_cycles": self.offset_cycles, "cycles_per_s": self.cycles_per_s,
                "median_rtt_s": self.rtt_s, "samples": self.samples}


def fit_clock(pings) -> ClockFit:
    t = np.array([(p.host_sent_s + p.host_received_s) / 2 for p in pings])
    c = np.array([p.cycles for p in pings], dtype=np.float64)
    rtt = float(np.median([p.host_received_s - p.host_sent_s for p in pings]))
    if len(pings) < 2 or np.ptp(t) == 0:
        return ClockFit(float(c[0]) if len(c) else 0.0, 0.0, rtt, len(pings))
    t0 = t[0]
    b, a = np.polyfit(t - t0, c, 1)
    return ClockFit(float(a - b * t0), float(b), rtt, len(pings))


def alignment_offsets(fits: list[ClockFit], nominal_hz: float, t_ref: float) -> list[float] | None:
    """Cycles to subtract from each chip's stamps so all share chip 0's time base at t_ref.

    Real counters (advancing with host time): the fitted counter values at the same host instant
    differ by exactly the offset. Virtual counters (the mock) do not advance while idle, so pings
    cannot place them; None then asks for alignment on the run's start barrier instead
    (barrier_offsets), which is exact for them: every chip leaves the barrier at the same virtual time.
    """
    if not all(f.cycles_per_s > 0.01 * nominal_hz for f in fits):
        return None
    at_ref = [f.offset_cycles + f.cycles_per_s * t_ref for f in fits]
    return [v - at_ref[0] for v in at_ref]


def barrier_offsets(first_starts: dict[int, int], exit_cycles: list[int] | None = None) -> list[float]:
    """Offsets that line up each chip's first phase, which it starts right after RUN's barrier.

    The barrier's last messages reach the chips a few link latencies apart; exit_cycles (the cost
    model's per-chip barrier exit times, if known) take that out, making the alignment exact."""
    n = max(first_starts) + 1
    exits = exit_cycles if exit_cycles and len(exit_cycles) == n else [0] * n
    base = first_starts.get(0, min(first_starts.values())) - exits[0]
    return [float(first_starts.get(r, base) - exits[r] - base) for r in range(n)]
