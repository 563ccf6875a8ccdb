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


class FlashProgress:
    """One progress bar per chip, labelled with its rank and port, updated from the writer threads."""

    def __init__(self, cluster, sizes: list[int], quiet: bool = False):
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)
        self.quiet = quiet
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=err_console,
                                 disable=quiet, transient=False)
        self.tasks = {c.rank: self.progress.add_task(f"chip {c.rank} [dim]{c.port}[/]", total=sizes[c.rank])
                      for c in cluster.chips}
        self.shown = {c.rank: 0 for c in cluster.chips}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def update(self, rank: int, done: int, total: int) -> None:
        # ACKs arrive every 4 KiB; redrawing for each would cost more than the write itself
        if done - self.shown[rank] >= total // 256 or done == total:
            self.shown[rank] = done
            self.progress.update(self.tasks[rank], completed=done, total=total)


def print_flash_summary(s: dict) -> None:
    t = Table(title=f"flashed {s['model']}" + (" (synthetic weights)" if s["synthetic_weights"] else "") +
              f" on {s['chips']} x {s['profile']}", title_justify="left", box=None, padding=(0, 1))
    for col in ("rank", "port", "bytes", "seconds", "MB/s", "write MB/s", ""):
        t.add_column(col, justify="left" if col in ("port", "") else "right")
    for c in s["per_chip"]:
        t.add_row(str(c["rank"]), c["port"], f"{c['bytes']:,}", "-" if c["skipped"] else f"{c['seconds']:.2f}",
                  "-" if c["skipped"] else f"{c['mb_per_s']:.2f}",
                  "-" if c["skipped"] else f"{c['write_mb_per_s']:.2f}",
                  "[dim]skipped: already holds this shard[/]" if c["skipped"] else "[green]verified, committed[/]")
    console.print(t)


class TokenPrinter:
    """Streams tokens to the terminal as they arrive: text with a tokenizer, ids without."""

    def __init__(self, quiet: bool = False, prompt: str | None = None):
        self.quiet = quiet
        self.n = 0
        self.text = ""
        if prompt and not quiet:
            console.print(prompt, style="bold", end="", markup=False, highlight=False)

    def token(self, index: int, token: int, text: str | None) -> None:
        if text is not None:
            self.text += text
        if self.quiet:
            return
        import sys
        sys.stdout.write(text if text is not None else (f"{token} " if index else f"tokens: {token} "))
        sys.stdout.flush()
        self.n += 1

    def close(self) -> None:
        if not self.quiet and self.n:
            print()


def print_run_summary(res: dict, s: dict) -> None:
    lat = res.get("latency_ms_per_token")
    console.print(f"[bold]{res['model']}[/]{synthetic_note(bool(res.get('synthetic_weights')))} on "
                  f"{res['chips']} x {res['profile']}: {len(res['tokens'])} tokens, "
                  + (f"[bold]{lat:.3f} ms[/] per token modelled chip time" if lat is not None else "no trace")
                  + f", {res['wall_s']:.2f} s host wall time ({res.get('tokens_per_s_host', 0):.1f} tokens/s)")
    phases = res.get("phase_ms_per_position") or {}
    if phases:
        names = list(next(iter(phases.values())).keys())
        t = Table(title="ms per position, modelled chip time", title_justify="left", box=None, padding=(0, 1))
        t.add_column("chip", justify="right")
        for n in names:
            t.add_column(n.lower().replace("allreduce_", "ar-"), justify="right")
        for rank, per in phases.items():
            t.add_row(rank, *(f"{per.get(n, 0.0):.4f}" for n in names))
        console.print(t)
    console.print(f"per token: {s['link_bytes_per_token'] or 0:,.0f} link bytes, "
                  f"{s['offchip_bytes_per_token'] or 0:,.0f} bytes from off-chip memory")
    if "verify" in s:
        v = s["verify"]
        if v["match"]:
            console.print("[green]verify: tokens and final logits equal the host int8 reference[/]")
        else:
            console.print(f"[red]verify: first mismatching token at index {v['first_mismatch']} "
                          f"(final logits {'match' if v['final_logits_match'] else 'differ'})[/]")
    console.print(f"results: {s['results_dir']}")


def print_devices(devices: dict, matches: dict | None) -> None:
    t = Table(title="serial ports", title_justify="left", box=None, padding=(0, 1))
    for col in ("device", "by-id", "description", "usb id", "serial"):
        t.add_column(col)
    for d in devices["serial"]:
        t.add_row(d["device"], d.get("by_id") or "", d.get("description") or "", d.get("usb_id") or "",
                  d.get("serial_number") or "")
    console.print(t if devices["serial"] else "no serial ports found")
    if devices["usb"]:
        u = Table(title="USB devices", title_justify="left", box=None, padding=(0, 1))
        for col in ("usb id", "serial", "product"):
            u.add_column(col)
        for d in devices["usb"]:
            u.add_row(d["usb_id"], d.get("serial_number") or "", d.get("product") or "")
        console.print(u)
    elif devices.get("usb_error"):
        console.print(f"[dim]USB: {devices['usb_error']}[/]")
    if matches is not None:
        m = Table(title="cluster chips", title_justify="left", box=None, padding=(0, 1))
        for col in ("rank", "port", "found"):
            m.add_column(col)
        for c in matches["chips"]:
            m.add_row(str(c["rank"]), c["port"], f"[green]{c['match']}[/]" if c["match"] else "[red]missing[/]")
        console.print(m)
