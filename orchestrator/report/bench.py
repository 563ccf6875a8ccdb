"""`orch bench FILE.toml`: lab sweeps over models, chip counts, profiles, token counts and repetitions.

A benchmark file (hil/benchmarks/):

    name = "tinyllama_scaling"
    description = "..."
    [sweep]
    models = ["tinyllama-42m"]          # built-in names, cost-model shapes, or checkpoint paths
    chips = [1, 2, 4, 8]
    profiles = ["siracusa"]
    tokens = [16]                       # generated tokens per run (decoders)
    repetitions = 3
    prompt_ids = []                     # optional
    topology = "ring"                   # or "hierarchical:G"
    [simulate]                          # optional: overrides for --simulate (the cost model alone)
    chips = [1, 2, 4, 8, 16, 32, 64]
    models = ["tinyllama-42m", "tinyllama-scaled-64"]

Each point is run `repetitions` times (on the cluster: flash once, run N times; simulated: the model
is deterministic, so the spread is zero) and reported as the median with min and max. Speedup and EDP
gain are against the 1-chip point of the same model, profile and token count. Writes results.json,
table.md and plots into the output folder as it goes.
"""

from __future__ import annotations

import json
import statistics
import time
import tomllib
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError, OrchError

SWEEP_KEYS = {"models", "chips", "profiles", "tokens", "repetitions", "prompt_ids", "topology", "context"}
MAX_CHIPS = 256


def _list(d: dict, key: str, kind, where: str, default=None) -> list:
    v = d.get(key, default)
    if v is None:
        raise InputError(f"{where}: missing '{key}' (a list)")
    if not isinstance(v, list):
        v = [v]
    if not v:
        raise InputError(f"{where}: '{key}' is empty")
    for x in v:
        if kind is int and (isinstance(x, bool) or not isinstance(x, int)):
            raise InputError(f"{where}: '{key}' must hold whole numbers, got {x!r}")
        if kind is str and not isinstance(x, str):
            raise InputError(f"{where}: '{key}' must hold strings, got {x!r}")
    return v


def load_benchmark(path: str | Path, simulate: bool = False) -> dict:
    """The sweep of a benchmark file, validated; [simulate] overrides apply with simulate=True."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"benchmark file {path} does not exist (see hil/benchmarks/)")
    try:
        d = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"benchmark {path}: not valid TOML ({e})") from None
    sweep = d.get("sweep")
    if not isinstance(sweep, dict):
        raise InputError(f"benchmark {path}: needs a [sweep] table with models and chips")
    unknown = set(sweep) - SWEEP_KEYS
    if unknown:
        raise InputError(f"benchmark {path}: unknown [sweep] keys {sorted(unknown)}; known: {sorted(SWEEP_KEYS)}")
    s = dict(sweep)
    if simulate and isinstance(d.get("simulate"), dict):
        extra = set(d["simulate"]) - SWEEP_KEYS
        if extra:
            raise InputError(f"benchmark {path}: unknown [simulate] keys {sorted(extra)}")
        s.update(d["simulate"])
    where = f"benchmark {path.name}"
    out = {
        "name": str(d.get("name", path.stem)), "description": str(d.get("description", "")),
        "models": _list(s, "models", str, where), "chips": _list(s, "chips", int, where),
        "profiles": _list(s, "profiles", str, where, ["siracusa"]), "tokens": _list(s, "tokens", int, where, [16]),
        "prompt_ids": _list(s, "prompt_ids", int, where) if s.get("prompt_ids") else [],
        "topology": str(s.get("topology", "ring")), "context": s.get("context"),
    }
    _group_size(out["topology"])
    reps = s.get("repetitions", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or not 1 <= reps <= 1000:
        raise InputError(f"{where}: repetitions must be a whole number from 1 to 1000, got {reps!r}")
    out["repetitions"] = reps
    for n in out["chips"]:
        if not 1 <= n <= MAX_CHIPS:
            raise InputError(f"{where}: chip counts must be 1..{MAX_CHIPS}, got {n}")
    for t in out["tokens"]:
        if not 1 <= t <= 100_000:
            raise InputError(f"{where}: token counts must be 1..100000, got {t}")
    if any(i < 0 for i in out["prompt_ids"]):
        raise InputError(f"{where}: prompt ids cannot be negative")
    if out["context"] is not None and (isinstance(out["context"], bool) or not isinstance(out["context"], int)
                                       or out["context"] < 1):
        raise InputError(f"{where}: context must be a positive whole number")
    return out


def _group_size(topology: str) -> int:
    kind, _, g = topology.partition(":")
    if kind in ("ring", ""):
        return 0
    if kind not in ("hier", "hierarchical") or not g.isdigit() or int(g) < 1:
        raise InputError(f"topology {topology!r}: use 'ring' or 'hierarchical:G' (G chips per group)")
    return int(g)


def _splits(model, chips: int) -> bool:
    from orchestrator.perf import EncoderShape, resolve_model
    shape = resolve_model(model)
    if isinstance(shape, EncoderShape):
        return shape.n_heads % chips == 0
    return shape.n_kv_heads % chips == 0


def _simulate_point(model, chips, profile, tokens, bench) -> dict:
    from orchestrator.perf import estimate
    topo = bench["topology"] if chips > 1 else None
    e = estimate(model, chips, profile, tokens=tokens, prompt_ids=bench["prompt_ids"], context=bench["context"],
                 topology=topo, grow_offchip=True)
    return {"latency_ms": e.latency_ms, "energy_mj": e.energy_mj, "offchip_bytes_per_token": e.offchip_bytes_per_token,
            "onchip_bytes_per_token": e.onchip_bytes_per_token, "link_bytes_per_token": e.link_bytes_per_token,
            "macs_per_token": e.macs_per_token, "unit": e.unit, "kind": e.kind, "model": e.model,
            "profile": e.profile, "topology": e.topology, "note": e.note}


def _cluster_points(model, chips, profile_name, tokens, bench, cluster_file, reps, results_base) -> list[dict]:
    """Flash once, run `reps` times on the cluster (or the mock), measure from the trace records."""
    from orchestrator.perf import EncoderShape, resolve_model, token_metrics
    shape = resolve_model(model)
    if isinstance(shape, EncoderShape):
        raise InputError(f"{shape.name} is a cost-model-only shape (encoders are not runnable yet): use --simulate")
    try:
        from orchestrator.cluster.config import load_cluster, mock_cluster
        from orchestrator.cluster.connect import open_cluster
        from orchestrator.cluster.flash import flash_cluster
        from orchestrator.cluster.run import RunRequest
        from orchestrator.report.results import record_run
        from orchestrator.model.synthetic import load_model
        from orchestrator.partition.cache import get_shards
        from orchestrator.profiles import load_profile
    except ImportError as e:
        raise InputError(f"running on a cluster needs orchestrator.cluster ({e}); use --simulate") from None
    if cluster_file:
        cfg = load_cluster(cluster_file)
        if cfg.world != chips:
            raise InputError(f"{cluster_file} has {cfg.world} chips; a sweep over chip counts needs --simulate or "
                             f"a benchmark whose chips list is [{cfg.world}]")
        if profile_name != cfg.profile:
            raise InputError(f"{cluster_file} holds {cfg.profile} chips but the benchmark sweeps profile "
                             f"{profile_name}: set profiles = [\"{cfg.profile}\"] in the benchmark file")
        profile = load_profile(cfg.profile)
    else:
        profile = load_profile(profile_name)
        topo = bench["topology"]
        kind, _, g = topo.partition(":")
        hier = kind in ("hier", "hierarchical") and chips > 1
        cfg = mock_cluster(chips, profile.name, "hierarchical" if hier else "ring", int(g) if hier else 0)
    m = load_model(model)
    shards = get_shards(m, chips, profile, bench["context"])
    out = []
    with open_cluster(cfg, profile) as cluster:
        flash_cluster(cluster, shards)
        for _ in range(reps):
            req = RunRequest(n_tokens=tokens, prompt_ids=list(bench["prompt_ids"]), results_base=Path(results_base))
            res = record_run(cluster, req).results
            tm = token_metrics(res["trace"], profile, res.get("clock_offsets_cycles"))
            out.append({"latency_ms": tm.latency_ms, "energy_mj": tm.energy_mj,
                        "offchip_bytes_per_token": tm.offchip_bytes, "onchip_bytes_per_token": tm.onchip_bytes,
                        "link_bytes_per_token": tm.link_tx_bytes, "macs_per_token": tm.macs, "unit": "token",
                        "kind": "decoder", "model": m.config.name, "profile": profile.name,
                        "topology": res.get("topology", "ring"), "note": ""})
    return out


def _aggregate(samples: list[dict], chips: int, tokens: int, mode: str) -> dict:
    first = samples[0]
    row = {k: first[k] for k in ("model", "kind", "profile", "topology", "unit", "note")}
    row.update({"chips": chips, "tokens": tokens, "repetitions": len(samples), "mode": mode})
    for k in ("latency_ms", "energy_mj"):
        vals = [s[k] for s in samples]
        row[k] = statistics.median(vals)
        row[f"{k}_min"], row[f"{k}_max"] = min(vals), max(vals)
    for k in ("offchip_bytes_per_token", "onchip_bytes_per_token", "link_bytes_per_token", "macs_per_token"):
        row[k] = statistics.median(s[k] for s in samples)
    row["edp_mj_ms"] = row["latency_ms"] * row["energy_mj"]
    # no meter in a sweep: energy is the trace records (measured or modelled) times the profile's power
    row["energy_source"] = "profile power per state x trace records"
    return row


def add_gains(rows: list[dict]) -> list[dict]:
    """speedup and edp_gain against the 1-chip row of the same model, profile and token count."""
    base = {(r["model"], r["profile"], r["tokens"]): r for r in rows if r["chips"] == 1}
    for r in rows:
        b = base.get((r["model"], r["profile"], r["tokens"]))
        r["speedup"] = b["latency_ms"] / r["latency_ms"] if b and r["latency_ms"] > 0 else None
        r["edp_gain"] = b["edp_mj_ms"] / r["edp_mj_ms"] if b and r["edp_mj_ms"] > 0 else None
        r["super_linear"] = bool(r["speedup"] and r["chips"] > 1 and r["speedup"] > r["chips"])
    return rows


def run_benchmark(path, simulate: bool = False, cluster_file: str | None = None, out_dir: str | Path | None = None,
                  progress=None) -> dict:
    """Runs the sweep; returns {"benchmark", "mode", "rows", "skipped", "out_dir"} and writes the folder."""
    bench = load_benchmark(path, simulate)
    mode = "simulate" if simulate else ("cluster" if cluster_file else "mock")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(out_dir) if out_dir else Path("bench-results") / f"{stamp}-{bench['name']}-{mode}"
    out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], []
    result = {"benchmark": bench["name"], "description": bench["description"], "mode": mode,
              "date": time.strftime("%Y-%m-%d"), "sweep": {k: bench[k] for k in
                                                           ("models", "chips", "profiles", "tokens", "repetitions",
                                                            "topology", "prompt_ids", "context")},
              "rows": rows, "skipped": skipped, "out_dir": str(out)}
    for model in bench["models"]:
        for profile in bench["profiles"]:
            for tokens in bench["tokens"]:
                for chips in bench["chips"]:
                    if not _splits(model, chips):
                        skipped.append({"model": model, "chips": chips,
                                        "why": "it does not divide the model's (KV) heads"})
                        continue
                    g = _group_size(bench["topology"])
                    if chips > 1 and g and chips % g:
                        skipped.append({"model": model, "chips": chips,
                                        "why": f"{bench['topology']} needs a multiple of {g} chips"})
                        continue
                    if progress:
                        progress(f"{model} on {chips} chip(s), {profile}, {tokens} tokens")
                    if simulate:
                        one = _simulate_point(model, chips, profile, tokens, bench)
                        samples = [one] * bench["repetitions"]
                    else:
                        samples = _cluster_points(model, chips, profile, tokens, bench, cluster_file,
                                                  bench["repetitions"], out / "runs")
                    rows.append(_aggregate(samples, chips, tokens, mode))
                    add_gains(rows)
                    write_outputs(out, result)  # as it goes: an interrupted sweep keeps its rows
    if not rows:
        raise InputError(f"benchmark {bench['name']}: no (model, chips) point can be split; check the chip counts")
    plots = write_outputs(out, result, plots=True)
    result["plots"] = [p.name for p in plots]
    return result


def markdown_table(result: dict) -> str:
    lines = [f"`orch bench` {result['benchmark']} ({result['mode']}, {result['date']})", "",
             "| model | chips | latency ms | energy mJ | EDP mJ·ms | speedup | EDP gain | off-chip B/token "
             "| link B/token |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        unit = "" if r["unit"] == "token" else " (per inference)"
        sp = "" if r["speedup"] is None else f"{r['speedup']:.1f}x" + (" (super-linear)" if r["super_linear"] else "")
        eg = "" if r["edp_gain"] is None else f"{r['edp_gain']:.1f}x"
        spread = ""
        if r["latency_ms_max"] > r["latency_ms_min"]:
            spread = f" ({r['latency_ms_min']:.3g}-{r['latency_ms_max']:.3g})"
        lines.append(f"| {r['model']}{unit} | {r['chips']} | {r['latency_ms']:.3f}{spread} | {r['energy_mj']:.3f} | "
                     f"{r['edp_mj_ms']:.3g} | {sp} | {eg} | {r['offchip_bytes_per_token']:,.0f} | "
                     f"{r['link_bytes_per_token']:,.0f} |")
    notes = sorted({r["note"] for r in result["rows"] if r["note"]})
    for n in notes:
        lines.append(f"\nNote: {n}. Rows: " + ", ".join(f"{r['model']} x{r['chips']}" for r in result["rows"]
                                                        if r["note"] == n) + ".")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, result: dict, plots: bool = False) -> list[Path]:
    data = {k: v for k, v in result.items() if k != "out_dir"}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(out / "results.json")
    (out / "table.md").write_text(markdown_table(result))
    if not plots:
        return []
    from orchestrator.report import plots as P
    return P.bench_plots(result["rows"], out)


def _g(v: float) -> str:
    """3 significant digits without exponents for the usual ranges (0.826, 61.0, 1230)."""
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def print_rows(result: dict) -> None:
    from rich.table import Table
    from orchestrator.report.console import console
    t = Table(title=f"{result['benchmark']} ({result['mode']})", title_justify="left", box=None, padding=(0, 1))
    t.add_column("model", no_wrap=True)
    for c in ("N", "ms", "mJ", "speedup", "EDP gain", "off MB", "link kB"):
        t.add_column(c, justify="right", no_wrap=True)
    for r in result["rows"]:
        sp = "" if r["speedup"] is None else f"{r['speedup']:.1f}x"
        if r["super_linear"]:
            sp = f"[bold green]{sp}[/]"
        t.add_row(r["model"] + (" *" if r["note"] else ""), str(r["chips"]), _g(r["latency_ms"]), _g(r["energy_mj"]),
                  sp, "" if r["edp_gain"] is None else f"{r['edp_gain']:.1f}x",
                  _g(r["offchip_bytes_per_token"] / 1e6), _g(r["link_bytes_per_token"] / 1e3))
    console.print(t)
    units = {r["unit"] for r in result["rows"]}
    per = " and ".join(f"per {u}" for u in sorted(units))
    console.print(f"N chips; ms, mJ, off-chip MB read, link kB sent: {per}, all chips together. Speedup in "
                  "green: super-linear (above N); the off-chip MB column is why. EDP in results.json.", style="dim")
    for n in sorted({r["note"] for r in result["rows"] if r["note"]}):
        console.print(f"* {n}", style="dim")
    for s in result["skipped"]:
        console.print(f"skipped {s['model']} on {s['chips']} chips: {s['why']}", style="dim")


def print_paper(p: dict) -> None:
    from rich.table import Table
    from orchestrator.report.console import console
    t = Table(title=f"ours ({p['profile']} profile, cost model) next to {p['source']}", title_justify="left",
              box=None, padding=(0, 1))
    for c in ("figure", "ours", "paper", "ours / paper"):
        t.add_column(c, justify="left" if c == "figure" else "right")
    for f in p["figures"]:
        u = "" if f["unit"] == "x" else f" {f['unit']}"
        ours = "n/a" if f["ours"] is None else (f"{f['ours']:.3g}{u}" if f["unit"] != "x" else f"{f['ours']:.1f}x")
        paper = f"{f['paper']:g}{u}" if f["unit"] != "x" else f"{f['paper']:g}x"
        t.add_row(f["what"], ours, paper, "" if f["ratio"] is None else f"{f['ratio']:.2f}")
    console.print(t)
    console.print("why they differ: docs/paper-comparison.md", style="dim")


__all__ = ["load_benchmark", "run_benchmark", "markdown_table", "print_rows", "print_paper", "add_gains", "OrchError"]


# --- `orch report RESULTS_DIR`: the summary of one run's results folder --------------------------------

RECORD_KEYS = ("token_index", "start_cycles", "end_cycles", "macs", "onchip_bytes", "offchip_bytes",
               "link_tx_bytes", "link_rx_bytes")
PHASE_ORDER = ["EMBED", "ATTENTION", "ALLREDUCE_ATT", "FFN", "ALLREDUCE_FFN", "CLASSIFIER", "ARGMAX_REDUCE"]


def load_results(results_dir: str | Path) -> dict:
    """results.json of a run folder with its trace records checked (types, signs, order of stamps)."""
    d = Path(results_dir)
    f = d / "results.json" if d.is_dir() else d
    if not f.is_file():
        raise InputError(f"{results_dir}: no results.json there; give the folder `orch run` printed")
    try:
        res = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{f}: not valid JSON ({e}); the run may have been cut off, run it again") from None
    if not isinstance(res, dict):
        raise InputError(f"{f}: expected a JSON object")
    hz = res.get("clock_hz")
    if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not hz > 0:
        raise InputError(f"{f}: clock_hz must be a positive number, got {hz!r}")
    trace = res.get("trace")
    if not isinstance(trace, dict) or not trace:
        raise InputError(f"{f}: no trace records (the run wrote none, or stopped before any arrived)")
    clean: dict[int, list[dict]] = {}
    for k, recs in trace.items():
        try:
            rank = int(k)
        except (TypeError, ValueError):
            raise InputError(f"{f}: trace key {k!r} is not a chip rank") from None
        if rank < 0 or not isinstance(recs, list):
            raise InputError(f"{f}: trace of chip {k!r} must be a list of records")
        for i, r in enumerate(recs):
            if not isinstance(r, dict) or not isinstance(r.get("phase"), str):
                raise InputError(f"{f}: chip {rank} record {i} is not a record with a phase name")
            for key in RECORD_KEYS:
                v = r.get(key)
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise InputError(f"{f}: chip {rank} record {i}: {key} must be a non-negative integer, got {v!r}")
            if r["end_cycles"] < r["start_cycles"]:
                raise InputError(f"{f}: chip {rank} record {i} ends before it starts")
        clean[rank] = recs
    res["trace"] = clean
    offs = res.get("clock_offsets_cycles")
    if offs is not None and (not isinstance(offs, list) or
                             any(isinstance(o, bool) or not isinstance(o, (int, float)) for o in offs)):
        raise InputError(f"{f}: clock_offsets_cycles must be a list of numbers")
    return res


def report(results_dir: str | Path, plots: bool = True) -> dict:
    """Tables (returned as data) and PNGs written into the folder."""
    from orchestrator.perf import token_metrics
    from orchestrator.power import load_trace
    from orchestrator.power.mock import MockMeter
    from orchestrator.profiles import load_profile
    d = Path(results_dir)
    res = load_results(d)
    prof_name = res.get("profile")
    if not isinstance(prof_name, str):
        raise InputError(f"{d}/results.json: missing the chip profile's name")
    profile = load_profile(prof_name)
    if abs(profile.clock_hz - float(res["clock_hz"])) > 1e-6 * profile.clock_hz:
        raise InputError(f"{d}: the run's clock ({res['clock_hz']:g} Hz) differs from profile {prof_name}'s "
                         f"({profile.clock_hz:g} Hz); was the profile edited since?")
    offsets = res.get("clock_offsets_cycles")
    trace = res["trace"]
    m = token_metrics(trace, profile, offsets)
    per_chip = {}
    picked = set(m.picked)
    for r, recs in trace.items():
        tot = {k: 0.0 for k in ("onchip_bytes", "offchip_bytes", "link_tx_bytes", "macs")}
        for rec in recs:
            if rec["token_index"] in picked:
                for k in tot:
                    tot[k] += rec[k]
        per_chip[r] = {k: v / max(len(picked), 1) for k, v in tot.items()}
    out = {"results_dir": str(d), "model": res.get("model"), "chips": len(trace), "profile": prof_name,
           "tokens": len(m.picked), "latency_ms_per_token": m.latency_ms, "energy_mj_per_token": m.energy_mj,
           "edp_mj_ms": m.edp, "energy_by_state_mj_per_token": m.energy_by_state_mj,
           "offchip_bytes_per_token": m.offchip_bytes, "link_bytes_per_token": m.link_tx_bytes,
           "phase_ms_per_token": {str(k): v for k, v in m.phase_ms.items()},
           "bytes_per_token_per_chip": {str(k): v for k, v in per_chip.items()}, "power": res.get("power"),
           "plots": []}
    if not plots:
        return out
    from orchestrator.report import plots as P
    if not P.available():
        out["plots_skipped"] = "matplotlib is not installed: pip install 'orch[plot]'"
        return out
    paths = [P.phase_latency_plot(m.phase_ms, d / "phase_latency.png", PHASE_ORDER),
             P.bytes_plot(per_chip, d / "bytes_per_token.png")]
    pw = res.get("power")
    lead = min(trace)
    off0 = float(offsets[lead]) if offsets and lead < len(offsets) else 0.0
    if isinstance(pw, dict) and isinstance(pw.get("file"), str) and (d / Path(pw["file"]).name).is_file():
        tr = load_trace(d / Path(pw["file"]).name)
        first, anchor = float(pw.get("first_cycles", 0.0)), float(pw.get("t_anchor_s", 0.0))
    else:  # no meter on this run: synthesize what the mock meter would have measured
        meter = MockMeter(trace, profile, rate_hz=_mock_rate(m), offsets=offsets)
        tr = meter.samples()
        tr.source = "mock meter, synthesized from the trace records"
        tr.markers = meter.position_markers(m.window_cycles)
        first, anchor = meter.first_cycles, 0.0
        out["power_note"] = "no power trace in this run; the plot shows the mock meter's synthesis"
    paths.append(P.power_trace_plot(tr, trace, lambda c: anchor + (c - off0 - first) / profile.clock_hz,
                                    d / "power_trace.png", zoom_position=m.picked[len(m.picked) // 2]
                                    if m.picked else None))
    out["plots"] = [p.name for p in paths if p]
    return out


def _mock_rate(m) -> float:
    """A sample rate that resolves a token into about 400 samples (at least 1 kHz, at most 10 MHz)."""
    lat_s = max(m.latency_ms, 1e-6) / 1e3
    want = min(max(400 / lat_s, 1e3), 1e7)
    decade = 10 ** int(np.floor(np.log10(want)))
    return float(next(k * decade for k in (1, 2, 5, 10) if k * decade >= want))


def print_report(r: dict) -> None:
    from rich.table import Table
    from orchestrator.report.console import console
    console.print(f"[bold]{r['model']}[/] on {r['chips']} x {r['profile']}: {r['tokens']} tokens, "
                  f"{r['latency_ms_per_token']:.3f} ms and {r['energy_mj_per_token']:.3f} mJ per token "
                  f"(EDP {r['edp_mj_ms']:.3g} mJ·ms), {r['offchip_bytes_per_token']:,.0f} off-chip and "
                  f"{r['link_bytes_per_token']:,.0f} link bytes per token")
    e = r["energy_by_state_mj_per_token"]
    console.print("energy per token by state (model, from the records): " +
                  ", ".join(f"{k} {v:.3f} mJ" for k, v in e.items()))
    t = Table(title="ms per token, per phase (summed over layers)", title_justify="left", box=None, padding=(0, 1))
    t.add_column("chip", justify="right")
    phases = [p for p in PHASE_ORDER if any(p in v for v in r["phase_ms_per_token"].values())]
    for p in phases:
        t.add_column(p.lower().replace("allreduce_", "ar_"), justify="right")
    for k, v in r["phase_ms_per_token"].items():
        t.add_row(k, *[f"{v.get(p, 0.0):.3f}" for p in phases])
    console.print(t)
    t = Table(title="bytes per token", title_justify="left", box=None, padding=(0, 1))
    for c in ("chip", "on-chip reads", "off-chip reads", "link sent", "MMAC"):
        t.add_column(c, justify="right")
    for k, v in r["bytes_per_token_per_chip"].items():
        t.add_row(k, f"{v['onchip_bytes']:,.0f}", f"{v['offchip_bytes']:,.0f}", f"{v['link_tx_bytes']:,.0f}",
                  f"{v['macs'] / 1e6:.2f}")
    console.print(t)
    pw = r.get("power")
    if isinstance(pw, dict) and pw.get("energy_per_token_mj") is not None:
        console.print(f"power ({pw.get('backend')}, {pw.get('sync')}): {pw['energy_per_token_mj']:.3f} mJ per token "
                      f"measured, {pw.get('model_energy_per_token_mj', float('nan')):.3f} mJ modelled, average "
                      f"{pw.get('average_power_mw') or float('nan'):.1f} mW")
    if r.get("power_note"):
        console.print(r["power_note"], style="dim")
    if r.get("plots"):
        console.print("plots: " + ", ".join(str(Path(r["results_dir"]) / p) for p in r["plots"]))
    elif r.get("plots_skipped"):
        console.print(r["plots_skipped"], style="dim")
