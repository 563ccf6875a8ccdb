"""Results folders: what a run collected, written as it arrives so a failed run keeps it.

    results/<date>-<model>-<N>chips/
      tokens.jsonl   one line per generated token, appended and flushed as it arrives
      results.json   configuration, tokens, latency per token and per phase (modelled chip time),
                     host wall time, bytes per token; rewritten at the end, also after a failure
      trace.json     Chrome trace events: one process per chip, one slice per phase (Perfetto)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np



def new_results_dir(base: str | Path, model: str, chips: int) -> Path:
    base = Path(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = base / f"{stamp}-{model}-{chips}chips"
    n = 1
    while d.exists():
        n += 1
        d = base / f"{stamp}-{model}-{chips}chips-{n}"
    d.mkdir(parents=True)
    return d


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))  # compact: traces hold 10^4..10^6 records
    tmp.replace(path)


def _phase_names() -> dict[int, str]:
    from orchestrator.link.messages import Phase
    return {p.value: p.name for p in Phase}


class ResultsWriter:
    def __init__(self, directory: Path, config: dict):
        self.dir = Path(directory)
        self.config = config
        self.tokens: list[int] = []
        self.token_cycles: list[int] = []
        self._trace: dict[int, list[dict]] = {}
        self._arrived: dict[int, list] = {}  # trace records as they came, made into dicts on first use
        self._tokens_f = open(self.dir / "tokens.jsonl", "a", encoding="utf-8")
        self.t0 = time.monotonic()

    def token(self, index: int, pos: int, token: int, cycles: int, text: str | None = None) -> None:
        self.tokens.append(token)
        self.token_cycles.append(cycles)
        rec = {"index": index, "pos": pos, "token": token, "cycles": cycles,
               "host_s": round(time.monotonic() - self.t0, 6)}
        if text is not None:
            rec["text"] = text
        self._tokens_f.write(json.dumps(rec) + "\n")
        self._tokens_f.flush()

    def trace_records(self, rank: int, records) -> None:
        # Only kept here: turning ~10^4 records per run into dicts waits until the run is over, so
        # that it does not take CPU from the chips (the mock shares this machine with them).
        self._arrived.setdefault(rank, []).extend(records)

    @property
    def trace(self) -> dict[int, list[dict]]:
        """Every chip's trace records so far, by rank, as dicts (the results.json form)."""
        if self._arrived:
            names = _phase_names()
            for rank, recs in self._arrived.items():
                self._trace.setdefault(rank, []).extend(
                    {"token_index": r.token_index, "phase": names.get(r.phase, str(r.phase)),
                     "layer": None if r.layer == 0xFF else r.layer, "start_cycles": r.start_cycles,
                     "end_cycles": r.end_cycles, "macs": r.macs, "onchip_bytes": r.onchip_bytes,
                     "offchip_bytes": r.offchip_bytes, "link_tx_bytes": r.link_tx_bytes,
                     "link_rx_bytes": r.link_rx_bytes} for r in recs)
            self._arrived = {}
        return self._trace

    def finish(self, status: str, extra: dict | None = None, clock_hz: float = 1.0,
               offsets: list[float] | None = None) -> dict:
        self._tokens_f.close()
        wall = time.monotonic() - self.t0
        if offsets is None and self.trace:
            offsets = self._barrier_alignment()
        self.config["clock_offsets_cycles"] = offsets
        summary = summarize(self.trace, clock_hz, offsets, n_tokens=len(self.tokens))
        res = {"status": status, **self.config, "tokens": self.tokens, "wall_s": round(wall, 4),
               "tokens_per_s_host": round(len(self.tokens) / wall, 3) if wall > 0 and self.tokens else 0.0,
               **summary, **(extra or {}), "trace": {str(k): v for k, v in sorted(self.trace.items())}}
        _write_json(self.dir / "results.json", res)
        write_chrome_trace(self.dir / "trace.json", self.trace, clock_hz, offsets)
        return res


    def _barrier_alignment(self) -> list[float]:
        """Virtual clocks: line chips up on the start barrier's exit, which the cost model knows per chip."""
        from orchestrator.cluster.clock import barrier_offsets
        from orchestrator.perf import barrier_exit_cycles
        first = {r: recs[0]["start_cycles"] for r, recs in self.trace.items() if recs}
        topo = self.config.get("topology", "ring")
        if topo == "hierarchical":
            topo = f"hierarchical:{self.config.get('group_size') or 1}"
        try:
            exits = barrier_exit_cycles(self.config["chips"], self.config["profile"], topo)
        except Exception:  # an unknown profile file: fall back to the first records alone
            exits = None
        return barrier_offsets(first, exits)


def summarize(trace: dict[int, list[dict]], clock_hz: float, offsets: list[float] | None, n_tokens: int) -> dict:
    """Per-position latency (modelled chip time), per-phase latency per chip, bytes per token."""
    if not trace:
        return {"latency_ms_per_token": None, "positions": []}
    off = {r: (offsets[r] if offsets and r < len(offsets) else 0.0) for r in trace}
    by_pos: dict[int, list[float]] = {}
    for rank, recs in trace.items():
        for r in recs:
            p = by_pos.setdefault(r["token_index"], [float("inf"), float("-inf")])
            p[0] = min(p[0], r["start_cycles"] - off[rank])
            p[1] = max(p[1], r["end_cycles"] - off[rank])
    positions = [{"pos": pos, "latency_ms": (e - s) / clock_hz * 1e3} for pos, (s, e) in sorted(by_pos.items())]
    picked = {r["token_index"] for r in trace[min(trace)] if r["phase"] == "ARGMAX_REDUCE"}
    gen = [p for p in positions if p["pos"] in picked]  # positions that produced a token
    lat = [p["latency_ms"] for p in (gen or positions)]
    phases = {}
    for rank, recs in sorted(trace.items()):
        per = {}
        for r in recs:
            per[r["phase"]] = per.get(r["phase"], 0) + r["end_cycles"] - r["start_cycles"]
        n_pos = len({r["token_index"] for r in recs}) or 1
        phases[str(rank)] = {k: v / n_pos / clock_hz * 1e3 for k, v in per.items()}
    n_pos = len(by_pos) or 1
    tot = lambda key: sum(r[key] for recs in trace.values() for r in recs)  # noqa: E731
    return {
        "latency_ms_per_token": float(np.mean(lat)) if lat else None,
        "latency_ms_per_token_median": float(np.median(lat)) if lat else None,
        "positions": positions,
        "phase_ms_per_position": phases,
        "link_bytes_per_token": tot("link_tx_bytes") / n_pos,
        "offchip_bytes_per_token": tot("offchip_bytes") / n_pos,
        "onchip_bytes_per_token": tot("onchip_bytes") / n_pos,
        "macs_per_token": tot("macs") / n_pos,
    }


def write_chrome_trace(path: Path, trace: dict[int, list[dict]], clock_hz: float, offsets: list[float] | None) -> None:
    """Chrome trace-event JSON: one process per chip, one complete ('X') slice per phase, in µs."""
    events = []
    if trace:
        origin = min((r["start_cycles"] - (offsets[k] if offsets else 0.0)) for k, recs in trace.items() for r in recs)
    for rank, recs in sorted(trace.items()):
        events.append({"name": "process_name", "ph": "M", "pid": rank, "args": {"name": f"chip {rank}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": rank, "args": {"sort_index": rank}})
        o = offsets[rank] if offsets and rank < len(offsets) else 0.0
        for r in recs:
            name = r["phase"] if r["layer"] is None else f"{r['phase']} L{r['layer']}"
            events.append({"name": name, "cat": r["phase"], "ph": "X", "pid": rank, "tid": 0,
                           "ts": (r["start_cycles"] - o - origin) / clock_hz * 1e6,
                           "dur": (r["end_cycles"] - r["start_cycles"]) / clock_hz * 1e6,
                           "args": {"position": r["token_index"], "macs": r["macs"],
                                    "onchip_bytes": r["onchip_bytes"], "offchip_bytes": r["offchip_bytes"],
                                    "link_tx_bytes": r["link_tx_bytes"], "link_rx_bytes": r["link_rx_bytes"]}})
    _write_json(path, {"traceEvents": events, "displayTimeUnit": "ms"})


def record_run(cluster, req, on_token=None, decode=None, power: str | None = None, power_opts: dict | None = None):
    """Run on an open cluster and record it in a new folder under req.results_base (RunOutcome).

    power: a meter backend (docs/power.md). A real meter records around the run; the mock meter
    synthesizes the trace from the chips' records. Either way the power trace and the energy per token
    and per phase join the results folder."""
    from orchestrator.cluster.run import run_cluster
    meter = None
    if power and power != "mock":
        from orchestrator.power import open_meter
        meter = open_meter(power, **(power_opts or {}))
        meter.start()
    try:
        out = run_cluster(cluster, req,
                          lambda config: ResultsWriter(new_results_dir(req.results_base, config["model"],
                                                                       config["chips"]), config),
                          on_token=on_token, decode=decode)
    finally:
        if meter is not None:
            meter.stop()
    if power:
        from orchestrator.power import attach
        trace = {int(k): v for k, v in out.results["trace"].items()}
        extra = attach(out.results_dir, power, trace, cluster.profile, meter=meter,
                       offsets=out.results.get("clock_offsets_cycles"), **(power_opts or {}))
        out.results.update(extra)
        _write_json(out.results_dir / "results.json", out.results)
    return out
