"""The mock meter: a power trace synthesized from the chips' trace records and the profile's power.

The cluster's supply current is what one meter on a shared rail would see: the sum of every chip's
power, each chip piecewise constant at the level orchestrator.perf.energy assigns to a record (and
idle between records). Each sample is that sum averaged over its own interval, computed exactly from
the cumulative energy, so the trace's energy over whole samples equals the model's energy; optional
Gaussian noise (seeded) imitates a real meter's measurement noise.

Time zero of the trace is the start of the run (the earliest record on the common axis), so chip
cycles map to trace seconds as (cycles - offset[rank] - first) / clock_hz: the virtual clocks are the
synchronization, no trigger needed.
"""

from __future__ import annotations

import numpy as np

from orchestrator.errors import InputError
from orchestrator.perf.energy import STATES, ChipEnergy, PowerStates
from orchestrator.perf.rates import ChipRates
from orchestrator.power.meter import PowerMeter
from orchestrator.power.trace import Marker, PowerTrace

MAX_SAMPLES = 50_000_000


class MockMeter(PowerMeter):
    name = "mock"
    has_trigger = False

    def __init__(self, trace_records_by_rank, profile, rate_hz: float = 100_000.0, noise_mw: float = 0.0,
                 seed: int | None = None, offsets=None, margin_s: float = 0.0, threaded: bool = False) -> None:
        super().__init__(rate_hz, threaded=False)
        if not trace_records_by_rank or not any(trace_records_by_rank.values()):
            raise InputError("the mock power meter needs trace records: run with tracing on (orch run does by default)")
        if noise_mw < 0:
            raise InputError(f"noise must be a non-negative number of mW, got {noise_mw}")
        self.records = {int(k): v for k, v in trace_records_by_rank.items()}
        self.profile = profile
        self.noise_mw = float(noise_mw)
        self.seed = seed
        self.margin_s = float(margin_s)
        self.rates = ChipRates.from_profile(profile)
        ranks = sorted(self.records)
        self.offsets = {r: float(offsets[r]) if offsets is not None and r < len(offsets) and offsets[r] is not None
                        else 0.0 for r in ranks}
        self.chips = [ChipEnergy(self.records[r], self.rates, PowerStates.from_profile(profile), self.offsets[r])
                      for r in ranks]
        starts = [rec["start_cycles"] - self.offsets[r] for r in ranks for rec in self.records[r]]
        ends = [rec["end_cycles"] - self.offsets[r] for r in ranks for rec in self.records[r]]
        self.first_cycles, self.last_cycles = float(min(starts)), float(max(ends))

    def cycles_to_s(self, cycles) -> np.ndarray:
        """Common-axis cycles to seconds on the trace's axis."""
        return (np.asarray(cycles, dtype=float) - self.first_cycles) / self.rates.clock_hz

    def _open(self) -> None:
        pass

    def _read(self) -> int:
        if self.n_samples:
            return 0
        hz = self.rates.clock_hz
        t0 = -self.margin_s
        span = (self.last_cycles - self.first_cycles) / hz + 2 * self.margin_s
        n = max(int(np.ceil(span * self.rate_hz - 1e-9)), 1)
        if n > MAX_SAMPLES:
            raise InputError(f"the mock meter would need {n:,} samples at {self.rate_hz:g} Hz; lower --power-rate")
        edges = t0 + np.arange(n + 1) / self.rate_hz  # seconds
        cyc = self.first_cycles + edges * hz
        total = np.zeros(n + 1)
        for c in self.chips:
            cum = c.cumulative(cyc)
            total += sum(cum[k] for k in STATES)
        power_w = np.diff(total) / hz / (1.0 / self.rate_hz) * 1e-3  # mW*cycles -> mJ -> W over dt
        if self.noise_mw > 0:
            rng = np.random.default_rng(self.seed)
            power_w = power_w + rng.normal(0.0, self.noise_mw * 1e-3, size=n)
        self._append(power_w)
        return n

    def samples(self) -> PowerTrace:
        if not self.n_samples:
            self._read()
        tr = super().samples()
        tr.t0_s = -self.margin_s
        return tr

    def position_markers(self, windows: dict[int, tuple[float, float]]) -> list[Marker]:
        """A marker at the start of every position's window ('pos N') and one at the end ('end')."""
        out = [Marker(f"pos {p}", float(self.cycles_to_s(a))) for p, (a, _) in sorted(windows.items())]
        if windows:
            out.append(Marker("end", float(self.cycles_to_s(max(b for _, b in windows.values())))))
        return out
