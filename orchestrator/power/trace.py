"""Power traces: evenly spaced samples, each the average power over its own interval, plus markers.

Sample i covers [t0 + i/rate, t0 + (i+1)/rate). That is what a meter that averages (Joulescope's
and PPK2's downsampled streams, LPM01A's averaged output) reports, and it makes energy exact for a
piecewise-constant load: the energy of [a, b] is the sum of the samples weighted by their overlap.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError

FORMAT = "orch-power-trace"
VERSION = 1
MAX_SAMPLES = 1 << 28  # a trace file claiming more is corrupt, not a measurement we could hold


@dataclass
class Marker:
    name: str
    t_s: float


@dataclass
class PowerTrace:
    rate_hz: float
    power_w: np.ndarray
    t0_s: float = 0.0
    markers: list[Marker] = field(default_factory=list)
    trigger: np.ndarray | None = None  # 0/1 per sample: the meter's trigger input, where it has one
    source: str = ""

    def __post_init__(self) -> None:
        self.power_w = np.asarray(self.power_w, dtype=np.float64)
        if self.power_w.ndim != 1:
            raise InputError("a power trace is one row of samples")
        if not (np.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise InputError(f"power trace: sample rate must be a positive number, got {self.rate_hz!r}")
        if self.trigger is not None:
            self.trigger = np.asarray(self.trigger, dtype=np.uint8)
            if self.trigger.shape != self.power_w.shape:
                raise InputError("power trace: the trigger column has a different length from the power column")

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def t_s(self) -> np.ndarray:
        """Start time of each sample's interval."""
        return self.t0_s + np.arange(len(self.power_w)) * self.dt

    @property
    def end_s(self) -> float:
        return self.t0_s + len(self.power_w) * self.dt

    def cumulative_j(self, t):
        """Energy from the trace start to t (clamped to the trace), in joules; t scalar or array."""
        t = np.asarray(t, dtype=float)
        n = len(self.power_w)
        if n == 0:
            return np.zeros_like(t)
        x = np.clip((t - self.t0_s) * self.rate_hz, 0.0, float(n))
        k = np.minimum(np.floor(x).astype(np.int64), n - 1)
        cs = np.concatenate([[0.0], np.cumsum(self.power_w)]) * self.dt
        return cs[k] + self.power_w[k] * (x - k) * self.dt

    def energy_j(self, a: float | None = None, b: float | None = None) -> float:
        """Energy in [a, b] seconds (default: the whole trace)."""
        a = self.t0_s if a is None else a
        b = self.end_s if b is None else b
        if b < a:
            raise InputError(f"energy window ends ({b}) before it starts ({a})")
        return float(self.cumulative_j(b) - self.cumulative_j(a))

    def marker_time(self, name: str, occurrence: int = 0) -> float:
        hits = [m.t_s for m in self.markers if m.name == name]
        if len(hits) <= occurrence:
            have = ", ".join(sorted({m.name for m in self.markers})) or "none"
            raise InputError(f"power trace has no marker '{name}' (#{occurrence}); markers: {have}")
        return hits[occurrence]

    def energy_between(self, start: str, end: str) -> float:
        """Energy between two named markers, in joules."""
        return self.energy_j(self.marker_time(start), self.marker_time(end))

    def trigger_edges(self) -> tuple[list[float], list[float]]:
        """Times of rising and falling edges of the trigger input (at the sample where it changed)."""
        if self.trigger is None or len(self.trigger) < 2:
            return [], []
        d = np.diff(self.trigger.astype(np.int8))
        t = self.t_s
        return [float(t[i + 1]) for i in np.nonzero(d > 0)[0]], [float(t[i + 1]) for i in np.nonzero(d < 0)[0]]

    # --- files ---------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """power.csv (text, with a commented header) or power.npz (numpy, no pickle)."""
        path = Path(path)
        if path.suffix == ".npz":
            names = np.array([m.name for m in self.markers], dtype=str) if self.markers else np.zeros(0, dtype="<U1")
            arrays = {"format": np.array(FORMAT), "version": np.array(VERSION), "rate_hz": np.array(self.rate_hz),
                      "t0_s": np.array(self.t0_s), "power_w": self.power_w, "marker_names": names,
                      "marker_t_s": np.array([m.t_s for m in self.markers], dtype=float),
                      "source": np.array(self.source)}
            if self.trigger is not None:
                arrays["trigger"] = self.trigger
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(path)
            return path
        buf = io.StringIO()
        buf.write(f"# {FORMAT} v{VERSION}; rate_hz={self.rate_hz!r}; t0_s={self.t0_s!r}; source={self.source}\n")
        for m in self.markers:
            buf.write(f"# marker {m.t_s!r} {m.name}\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["t_s", "power_w"] + (["trigger"] if self.trigger is not None else []))
        t = self.t_s
        for i in range(len(self.power_w)):
            row = [f"{t[i]:.9g}", f"{self.power_w[i]:.9g}"]
            if self.trigger is not None:
                row.append(str(int(self.trigger[i])))
            w.writerow(row)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(buf.getvalue())
        tmp.replace(path)
        return path


def load_trace(path: str | Path) -> PowerTrace:
    """Reads a trace written by PowerTrace.save, checking every size and number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"power trace {path} does not exist")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT or int(z["version"]) != VERSION:
                    raise InputError(f"{path}: not an orch power trace v{VERSION}")
                p = z["power_w"]
                if p.ndim != 1 or p.size > MAX_SAMPLES or p.dtype.kind != "f":
                    raise InputError(f"{path}: power_w must be one row of at most {MAX_SAMPLES} floats")
                names, ts = z["marker_names"], z["marker_t_s"]
                if names.shape != ts.shape or names.ndim != 1:
                    raise InputError(f"{path}: marker names and times differ in length")
                trig = z["trigger"] if "trigger" in z.files else None
                return PowerTrace(float(z["rate_hz"]), p, float(z["t0_s"]),
                                  [Marker(str(n), float(t)) for n, t in zip(names, ts)], trig, str(z["source"]))
        except (KeyError, ValueError, OSError) as e:
            raise InputError(f"{path}: unreadable power trace ({e}); record it again") from None
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable power trace ({e})") from None
    if not lines or not lines[0].startswith(f"# {FORMAT} v{VERSION};"):
        raise InputError(f"{path}: not an orch power trace v{VERSION} "
                         f"(first line must be '# {FORMAT} v{VERSION}; ...')")
    try:
        head = dict(kv.strip().split("=", 1) for kv in lines[0].split(";")[1:] if "=" in kv)
        rate, t0 = float(head["rate_hz"]), float(head["t0_s"])
        markers, i = [], 1
        while i < len(lines) and lines[i].startswith("#"):
            parts = lines[i].split(" ", 3)
            if len(parts) == 4 and parts[1] == "marker":
                markers.append(Marker(parts[3], float(parts[2])))
            i += 1
        header = lines[i].split(",")
        if header[:2] != ["t_s", "power_w"]:
            raise InputError(f"{path}: column header must start with t_s,power_w")
        rows = lines[i + 1:]
        if len(rows) > MAX_SAMPLES:
            raise InputError(f"{path}: more than {MAX_SAMPLES} samples")
        data = np.array([[float(x) for x in r.split(",")] for r in rows if r], dtype=float).reshape(-1, len(header))
    except (KeyError, ValueError, IndexError) as e:
        raise InputError(f"{path}: malformed power trace ({e}); record it again") from None
    if not np.all(np.isfinite(data)):
        raise InputError(f"{path}: power trace holds non-finite numbers")
    trig = data[:, 2].astype(np.uint8) if len(header) > 2 and header[2] == "trigger" else None
    return PowerTrace(rate, data[:, 1], t0, markers, trig, head.get("source", ""))
