"""Power meters and power traces (ARCHITECTURE.md, layer `power`); docs/power.md.

    open_meter(backend, **opts) -> PowerMeter   one interface: start, stop, marker, samples, energy
    attach(results_dir, backend, records, profile, **opts) -> {"power": {...}}   for `orch run --power`
    load_trace(path) -> PowerTrace

Backends: mock (synthesized from trace records), joulescope, ppk2, lpm01a. The real ones import their
packages only when used, so orch runs without them.
"""

from __future__ import annotations

from orchestrator.errors import InputError
from orchestrator.power.attach import attach, summarize_power
from orchestrator.power.meter import MeterError, PowerMeter
from orchestrator.power.trace import Marker, PowerTrace, load_trace

BACKENDS = ("mock", "joulescope", "ppk2", "lpm01a")


def open_meter(backend: str, **opts) -> PowerMeter:
    """A meter, not started. mock needs trace_records_by_rank= and profile=; see each backend's options."""
    if backend == "mock":
        from orchestrator.power.mock import MockMeter
        try:
            records, profile = opts.pop("trace_records_by_rank"), opts.pop("profile")
        except KeyError:
            raise InputError("the mock meter synthesizes from a run: pass trace_records_by_rank= and "
                             "profile=") from None
        return MockMeter(records, profile, **opts)
    if backend == "joulescope":
        from orchestrator.power.joulescope import JoulescopeMeter
        return JoulescopeMeter(**opts)
    if backend == "ppk2":
        from orchestrator.power.ppk2 import PPK2Meter
        return PPK2Meter(**opts)
    if backend == "lpm01a":
        from orchestrator.power.lpm01a import LPM01AMeter
        return LPM01AMeter(**opts)
    raise InputError(f"unknown power meter '{backend}': use one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "open_meter", "attach", "summarize_power", "MeterError", "PowerMeter", "Marker",
           "PowerTrace", "load_trace"]
