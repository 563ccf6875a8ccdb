"""PNG plots through matplotlib, an optional extra (pip install 'orch[plot]'): without it, no plots.

Benchmark sweeps: speedup vs chips with the linear line, energy vs chips, EDP gain vs chips, off-chip
bytes per token vs chips. Results folders: the power trace with token boundaries and chip 0's phases,
per-phase latency per chip, bytes per token per chip. Every axis says its unit.
"""

from __future__ import annotations

from pathlib import Path

PHASE_COLORS = {"EMBED": "#8c564b", "ATTENTION": "#1f77b4", "ALLREDUCE_ATT": "#ff7f0e", "FFN": "#2ca02c",
                "ALLREDUCE_FFN": "#d62728", "CLASSIFIER": "#9467bd", "ARGMAX_REDUCE": "#7f7f7f"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def _series(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["model"], r["profile"], r["tokens"], r["unit"]), []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["chips"])
    return out


def _label(key: tuple, many_profiles: bool, many_tokens: bool) -> str:
    model, profile, tokens, unit = key
    s = model + (" (per inference)" if unit == "inference" else "")
    if many_profiles:
        s += f", {profile}"
    if many_tokens and unit == "token":
        s += f", {tokens} tokens"
    return s


def _chip_axis(ax, chips: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(chips)
    ax.set_xticklabels([str(c) for c in chips])
    ax.set_xlabel("chips")
    ax.grid(True, which="major", alpha=0.3)


def _log_y(ax) -> None:
    """Log y axis labelled 1, 2, 5, 10, ... in plain numbers (not 10^k), so values read off directly."""
    from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: PLC0415
    import math  # noqa: PLC0415
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 3
    subs = (1.0, 2.0, 5.0) if decades > 1.5 else (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _plot_series(ax, rows: list[dict], key: str, label: str, scale: float = 1.0) -> bool:
    """A line through the rows; points measured on a hypothetical (noted) profile drawn hollow."""
    pts = [(r["chips"], r[key] * scale, bool(r.get("note"))) for r in rows if r.get(key) is not None]
    if not pts:
        return False
    x, y, hollow = zip(*pts)
    line, = ax.plot(x, y, marker="o", label=label)
    hx = [a for a, h in zip(x, hollow) if h]
    hy = [b for b, h in zip(y, hollow) if h]
    if hx:
        ax.plot(hx, hy, ls="none", marker="o", mfc="white", mec=line.get_color(), zorder=3)
    return True


def bench_plots(rows: list[dict], out: Path) -> list[Path]:
    if not available() or not rows:
        return []
    plt = _plt()
    series = _series(rows)
    many_p = len({r["profile"] for r in rows}) > 1
    many_t = len({r["tokens"] for r in rows}) > 1
    chips = sorted({r["chips"] for r in rows})
    paths = []

    hollow_note = any(r.get("note") for r in rows)

    def fig(name, ylabel, key, logy=False, linear=False, title=""):
        f, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
        plotted = False
        for k, rs in series.items():
            plotted |= _plot_series(ax, rs, key, _label(k, many_p, many_t))
            if key == "speedup":  # the values matter more than the gridlines here
                for r in rs:
                    if r.get(key) is not None and r["chips"] > 1:
                        ax.annotate(f"{r[key]:.3g}x", (r["chips"], r[key]), textcoords="offset points",
                                    xytext=(4, -11), fontsize=7)
        if linear:
            ax.plot(chips, chips, ls="--", color="gray", label="linear (speedup = chips)")
        _chip_axis(ax, chips)
        if logy:
            _log_y(ax)
        if hollow_note:
            ax.plot([], [], ls="none", marker="o", mfc="white", mec="gray", label="hollow: off-chip memory enlarged")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        if plotted:
            ax.legend(fontsize=8)
        f.tight_layout()
        p = out / name
        f.savefig(p)
        plt.close(f)
        paths.append(p)

    fig("speedup.png", "speedup over 1 chip (x)", "speedup", logy=True, linear=True,
        title="latency speedup; above the dashed line = super-linear")
    units = {r["unit"] for r in rows}
    per = "per inference" if units == {"inference"} else "per token"
    fig("energy.png", f"energy {per}, all chips (mJ)", "energy_mj", logy=True,
        title=f"energy {per}" + (" (encoders: per inference)" if len(units) > 1 else ""))
    fig("edp.png", "EDP gain over 1 chip (x)", "edp_gain", logy=True, title="energy-delay product gain")
    f, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for k, rs in series.items():
        _plot_series(ax, rs, "offchip_bytes_per_token", _label(k, many_p, many_t), 1 / 2**20)
    _chip_axis(ax, chips)
    if hollow_note:
        ax.plot([], [], ls="none", marker="o", mfc="white", mec="gray", label="hollow: off-chip memory enlarged")
    ax.set_ylabel(f"off-chip reads {per}, all chips (MiB)")
    ax.set_title("weights streamed from off-chip memory (0 = all weights on chip)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    f.tight_layout()
    p = out / "offchip_bytes.png"
    f.savefig(p)
    plt.close(f)
    paths.append(p)
    return paths


def power_trace_plot(trace, records: dict[int, list[dict]], to_s, path: Path,
                     zoom_position: int | None = None) -> Path | None:
    """Top: the whole trace with token boundaries. Bottom: one position, chip 0's phases shaded.

    to_s(cycles) maps chip 0's (aligned) cycle stamps to seconds on the trace's axis."""
    if not available():
        return None
    import numpy as np  # noqa: PLC0415
    plt = _plt()
    f, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.4), dpi=120)
    t_ms = (trace.t_s + trace.dt / 2) * 1e3
    p_mw = trace.power_w * 1e3
    a1.plot(t_ms, p_mw, lw=0.8, color="black")
    bounds = [m for m in trace.markers if m.name.startswith("pos ")]
    for m in bounds:
        a1.axvline(m.t_s * 1e3, color="tab:blue", lw=0.6, alpha=0.6)
    a1.set_xlabel("time since run start (ms)")
    a1.set_ylabel("cluster power (mW)")
    a1.set_title(f"{trace.source}, {trace.rate_hz:g} samples/s; blue lines: positions (tokens) start", fontsize=9)
    a1.set_ylim(bottom=0)
    lead = min(records)
    recs = records[lead]
    positions = sorted({r["token_index"] for r in recs})
    if zoom_position is None:
        zoom_position = positions[len(positions) // 2] if positions else 0
    mine = [r for r in recs if r["token_index"] == zoom_position]
    if mine:
        s0, s1 = to_s(mine[0]["start_cycles"]), to_s(mine[-1]["end_cycles"])
        pad = (s1 - s0) * 0.05
        sel = (trace.t_s + trace.dt >= s0 - pad) & (trace.t_s <= s1 + pad)
        seen = set()
        for r in mine:
            if r["end_cycles"] <= r["start_cycles"]:
                continue  # a phase with nothing to do on this chip (e.g. all-reduces on one chip)
            c = PHASE_COLORS.get(r["phase"], "#cccccc")
            lab = r["phase"] if r["phase"] not in seen else None
            seen.add(r["phase"])
            a2.axvspan(to_s(r["start_cycles"]) * 1e3, to_s(r["end_cycles"]) * 1e3, color=c, alpha=0.25, lw=0,
                       label=lab)
        a2.step(t_ms[sel], p_mw[sel], where="mid", lw=1.0, color="black")
        a2.set_xlim((s0 - pad) * 1e3, (s1 + pad) * 1e3)
        a2.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        a2.set_ylim(bottom=0, top=max(float(np.max(p_mw[sel])) * 1.15, 1e-3) if sel.any() else None)
    a2.set_xlabel("time since run start (ms)")
    a2.set_ylabel("cluster power (mW)")
    a2.set_title(f"position {zoom_position}: shaded = chip {lead}'s phases", fontsize=9)
    f.tight_layout()
    f.savefig(path)
    plt.close(f)
    return path


def phase_latency_plot(phase_ms: dict[int, dict[str, float]], path: Path, phases: list[str]) -> Path | None:
    """Grouped bars: for each phase, one bar per chip (ms per token)."""
    if not available() or not phase_ms:
        return None
    import numpy as np  # noqa: PLC0415
    plt = _plt()
    ranks = sorted(phase_ms)
    phases = [p for p in phases if any(phase_ms[r].get(p) for r in ranks)]
    f, ax = plt.subplots(figsize=(max(6.4, 1.2 * len(phases) + 2), 4.4), dpi=120)
    w = 0.8 / max(len(ranks), 1)
    x = np.arange(len(phases))
    for i, r in enumerate(ranks):
        ax.bar(x + (i - (len(ranks) - 1) / 2) * w, [phase_ms[r].get(p, 0.0) for p in phases], w, label=f"chip {r}")
    ax.set_xticks(x)
    ax.set_xticklabels([p.replace("_", "\n") for p in phases], fontsize=8)
    ax.set_ylabel("time per token, summed over layers (ms)")
    ax.set_title("per-phase latency per chip", fontsize=10)
    ax.legend(fontsize=7, ncol=min(len(ranks), 8), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.grid(True, axis="y", alpha=0.3)
    f.tight_layout()
    f.savefig(path)
    plt.close(f)
    return path


def bytes_plot(per_chip: dict[int, dict[str, float]], path: Path) -> Path | None:
    """Grouped bars per chip: on-chip reads, off-chip reads, link bytes sent (KiB per token, log scale)."""
    if not available() or not per_chip:
        return None
    import numpy as np  # noqa: PLC0415
    plt = _plt()
    ranks = sorted(per_chip)
    kinds = [("onchip_bytes", "on-chip memory reads"), ("offchip_bytes", "off-chip memory reads"),
             ("link_tx_bytes", "link bytes sent")]
    f, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(ranks) + 3), 4.4), dpi=120)
    w = 0.8 / len(kinds)
    x = np.arange(len(ranks))
    for i, (k, lab) in enumerate(kinds):
        vals = [per_chip[r].get(k, 0.0) / 1024 for r in ranks]
        bars = ax.bar(x + (i - 1) * w, vals, w, label=lab)
        for b, v in zip(bars, vals):
            if v == 0:
                ax.annotate("0", (b.get_x() + b.get_width() / 2, 1), ha="center", va="bottom", fontsize=7)
    _log_y(ax)
    ax.set_ylim(bottom=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"chip {r}" for r in ranks], fontsize=8)
    ax.set_ylabel("bytes per token (KiB, log scale)")
    ax.set_title("bytes per token per chip (0 = none)", fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(True, axis="y", alpha=0.3, which="both")
    f.tight_layout()
    f.savefig(path)
    plt.close(f)
    return path
