"""Terminal output: rich tables for plans, runs and benchmarks. Presentation only."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def synthetic_note(cfg_or_flag) -> str:
    synthetic = cfg_or_flag if isinstance(cfg_or_flag, bool) else bool(getattr(cfg_or_flag, "synthetic", False))
    return " [yellow](synthetic weights)[/]" if synthetic else ""


def print_plan(plan, summary: dict) -> None:
    cfg, prof = plan.config, plan.profile
    console.print(f"[bold]{cfg.name}[/]{synthetic_note(cfg)} on {plan.world} x [bold]{prof.name}[/], "
                  f"context {plan.context}")
    mems = [m for m in prof.memories if m.kind == "onchip"] + [m for m in prof.memories if m.kind == "offchip"]
    t = Table(title="per chip, MiB used / MiB size of each memory", title_justify="left", box=None, padding=(0, 1))
    t.add_column("rank", justify="right")
    for m in mems:
        t.add_column(f"{m.name}" + ("*" if m.kind == "offchip" else ""), justify="right")
    t.add_column("off-chip B/tok", justify="right")
    t.add_column("link B/tok", justify="right")
    t.add_column("MMAC/tok", justify="right")
    for c in summary["chips"]:
        cells = [str(c["rank"])]
        for m in mems:
            used = c["memory_use"][m.name]
            cell = f"{used / 2**20:.2f}/{m.bytes / 2**20:g}"
            pct = used / m.bytes
            cells.append(f"[red]{cell}[/]" if pct > 1 else (f"[yellow]{cell}[/]" if pct > 0.9 else cell))
        cells += [f"{c['offchip_bytes_per_token']:,}", f"{c['allreduce_bytes_per_token']:,}",
                  f"{c['macs_per_token'] / 1e6:.2f}"]
        t.add_row(*cells)
    console.print(t)
    console.print("* off-chip memory", style="dim")
    total_w = sum(c["onchip_bytes"] + c["offchip_bytes"] for c in summary["chips"])
    off = summary["offchip_bytes_per_token"]
    console.print(f"cluster: {mib(total_w)} of weights and tables, {off:,} bytes from off-chip memory per token "
                  f"({'every weight stays on chip' if off == 0 else f'{off / max(total_w, 1):.0%} of the weights stream every token'}), "
                  f"{summary['link_bytes_per_token']:,} link bytes per token")


def print_tokens(out: dict) -> None:
    console.print(f"[bold]{out['model']}[/]{synthetic_note(out.get('synthetic_weights', False))} "
                  f"{out['precision']} on {out['chips']} chip(s), prompt {out['prompt_ids'] or '(BOS only)'}")
    console.print("tokens: " + " ".join(str(t) for t in out["tokens"]))
    if "text" in out:
        console.print("text: " + out["text"], markup=False)
