"""One power-meter interface for every backend: start, stop, markers, samples, energy between markers.

    with open_meter("ppk2", voltage_v=3.3) as m:   # start() ... stop()
        m.marker("run")
        ... run inference ...
        m.marker("done")
    trace = m.samples()
    joules = m.energy("run", "done")

Real meters stream: start() opens the device and a reader thread calls poll() until stop(), so no
samples are lost while the host waits on the chips. Tests (and callers that poll themselves) pass
threaded=False and call poll(). A device failing mid-run (unplugged) ends the stream: the samples read
so far are kept, and stop() raises MeterError naming the device and how many samples arrived.
Markers are host times (time.monotonic()) placed on the meter's time axis, whose zero is the host
time at which acquisition started; a meter's own trigger input, where it has one, gives exact edges
instead (docs/power.md, "Synchronization").
"""

from __future__ import annotations

import threading
import time

import numpy as np

from orchestrator.errors import InputError, OrchError
from orchestrator.power.trace import Marker, PowerTrace


class MeterError(OrchError):
    """A power meter that stopped answering or reported an error during a measurement."""

    exit_code = 3


def missing_extra(backend: str, package: str, extra: str) -> InputError:
    return InputError(f"the {backend} power meter needs the '{package}' package, which is not installed: "
                      f"pip install 'orch[{extra}]' (or pip install {package})")


class PowerMeter:
    """Base class. Backends implement _open, _start_stream, _read (return new samples), _stop_stream, _close."""

    name = "meter"
    has_trigger = False

    def __init__(self, rate_hz: float, threaded: bool = True, poll_interval_s: float = 0.01) -> None:
        if not (isinstance(rate_hz, (int, float)) and rate_hz > 0):
            raise InputError(f"{self.name}: sample rate must be a positive number of Hz, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.threaded = threaded
        self.poll_interval_s = poll_interval_s
        self._power: list[np.ndarray] = []
        self._trig: list[np.ndarray] = []
        self._markers: list[Marker] = []
        self._host_t0: float | None = None
        self._running = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._lock = threading.Lock()

    # --- the interface ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._running:
            return
        self._open()
        self._start_stream()
        self._host_t0 = time.monotonic()
        self._running = True
        if self.threaded:
            self._stop_evt.clear()
            self._thread = threading.Thread(target=self._reader, name=f"{self.name}-reader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ends acquisition; raises MeterError if the device failed during it (samples so far are kept)."""
        if self._running:
            self._running = False
            if self._thread is not None:
                self._stop_evt.set()
                self._thread.join()
                self._thread = None
            elif self._error is None:
                self._poll_once()
            try:
                self._stop_stream()
            except Exception as e:  # a device already gone cannot be stopped; that is not a new error
                if self._error is None:
                    self._error = e
            finally:
                try:
                    self._close()
                except Exception:
                    pass
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, OrchError):
                raise err
            raise MeterError(f"{self.name}: the meter failed during the measurement ({err}); "
                             f"{self.n_samples} samples were kept") from None

    def poll(self) -> int:
        """Reads what the device has buffered; returns the number of new samples."""
        if not self._running:
            return 0
        return self._poll_once()

    def marker(self, name: str, t_s: float | None = None) -> float:
        """Marks now (or host time t_s from time.monotonic()) on the meter's axis; returns the mark's time."""
        if self._host_t0 is None:
            raise InputError(f"{self.name}: start the meter before placing marker '{name}'")
        t = (time.monotonic() if t_s is None else t_s) - self._host_t0
        with self._lock:
            self._markers.append(Marker(name, t))
        return t

    @property
    def host_t0(self) -> float | None:
        """time.monotonic() when acquisition started: the host time of the trace's zero."""
        return self._host_t0

    @property
    def n_samples(self) -> int:
        with self._lock:
            return sum(len(p) for p in self._power)

    def samples(self) -> PowerTrace:
        with self._lock:
            p = np.concatenate(self._power) if self._power else np.zeros(0)
            trig = np.concatenate(self._trig) if self._trig and len(self._trig) == len(self._power) else None
            markers = list(self._markers)
        if trig is not None and trig.shape != p.shape:
            trig = None
        tr = PowerTrace(self.rate_hz, p, 0.0, markers, trig, self.name)
        if self.has_trigger and trig is not None:
            rise, fall = tr.trigger_edges()
            tr.markers += [Marker("trigger_rise", t) for t in rise] + [Marker("trigger_fall", t) for t in fall]
            tr.markers.sort(key=lambda m: m.t_s)
        return tr

    def energy(self, start_marker: str, end_marker: str) -> float:
        """Joules between two markers."""
        return self.samples().energy_between(start_marker, end_marker)

    def __enter__(self) -> "PowerMeter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- plumbing --------------------------------------------------------------------------------

    def _append(self, power_w, trigger=None) -> int:
        p = np.asarray(power_w, dtype=np.float64).ravel()
        if p.size == 0:
            return 0
        with self._lock:
            self._power.append(p)
            if trigger is not None:
                t = np.asarray(trigger, dtype=np.uint8).ravel()
                if t.shape == p.shape:
                    self._trig.append(t)
        return int(p.size)

    def _poll_once(self) -> int:
        try:
            return self._read()
        except Exception as e:
            self._error = self._error or e
            self._stop_evt.set()
            return 0

    def _reader(self) -> None:
        while not self._stop_evt.is_set():
            self._poll_once()
            if self._error is not None:
                return
            self._stop_evt.wait(self.poll_interval_s)
        if self._error is None:
            self._poll_once()  # what arrived between the last poll and stop()

    # backends
    def _open(self) -> None: ...
    def _start_stream(self) -> None: ...
    def _read(self) -> int:
        return 0
    def _stop_stream(self) -> None: ...
    def _close(self) -> None: ...
