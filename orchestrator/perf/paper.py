"""The reference design's published figures and ours, side by side.

Source: Bochem, Jung, Prasad, Conti, Benini, "Distributed Inference with Minimal Off-Chip Traffic for
Transformers on Low-Power MCUs", DATE 2025, arXiv 2412.04372 (abstract). docs/paper-comparison.md
explains what differs and why.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_SOURCE = "Bochem et al., DATE 2025, arXiv 2412.04372 (abstract)"


@dataclass(frozen=True)
class PaperFigure:
    key: str
    what: str
    unit: str
    value: float
    model: str
    chips: int
    metric: str  # latency_ms, energy_mj, speedup, edp_gain


PAPER = (
    PaperFigure("tl8_latency", "TinyLlama-42M, 8 chips: latency per token", "ms", 0.54, "tinyllama-42m", 8,
                "latency_ms"),
    PaperFigure("tl8_energy", "TinyLlama-42M, 8 chips: energy per token", "mJ", 0.64, "tinyllama-42m", 8, "energy_mj"),
    PaperFigure("tl8_speedup", "TinyLlama-42M, 8 chips: speedup over 1 chip", "x", 26.1, "tinyllama-42m", 8, "speedup"),
    PaperFigure("tl8_edp", "TinyLlama-42M, 8 chips: EDP gain over 1 chip", "x", 27.2, "tinyllama-42m", 8, "edp_gain"),
    PaperFigure("mb4_latency", "MobileBERT, 4 chips: latency per inference", "ms", 38.8, "mobilebert", 4, "latency_ms"),
    PaperFigure("mb4_speedup", "MobileBERT, 4 chips: speedup over 1 chip", "x", 4.7, "mobilebert", 4, "speedup"),
    PaperFigure("ts64_speedup", "scaled-up TinyLlama, 64 chips: speedup over 1 chip", "x", 60.1,
                "tinyllama-scaled-64", 64, "speedup"),
)


def paper_comparison(profile="siracusa", tokens: int = 16, topology=None) -> dict:
    """Our figure, the paper's and their ratio for each published number, plus the rows behind them."""
    from orchestrator.perf.model import estimate, with_gains
    wanted = sorted({(f.model, 1) for f in PAPER} | {(f.model, f.chips) for f in PAPER})
    ests = [estimate(m, n, profile, tokens=tokens, topology=topology if n > 1 else None, grow_offchip=True)
            for m, n in wanted]
    rows = with_gains(ests)
    table = []
    for f in PAPER:
        row = next(r for r in rows if r["model"] == f.model and r["chips"] == f.chips)
        ours = row[f.metric]
        table.append({"key": f.key, "what": f.what, "unit": f.unit, "ours": ours, "paper": f.value,
                      "ratio": ours / f.value if ours else None})
    return {"source": PAPER_SOURCE, "profile": rows[0]["profile"], "tokens": tokens, "figures": table,
            "rows": rows}
