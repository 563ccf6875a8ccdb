"""Argument parsing for `orch bench` and `orch report` (called from cli.build_parser via add_parsers)."""

from __future__ import annotations

import argparse
import json

from orchestrator.errors import InputError


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "bench", help="sweep models x chip counts x profiles x token counts; tables, results.json, plots",
        description="Run a benchmark file (hil/benchmarks/*.toml) on the mock cluster, a real cluster "
                    "(--cluster) or the cost model alone (--simulate, up to 64 chips). Each point is the median "
                    "of its repetitions with min and max; speedup and EDP gain are over 1 chip. Writes "
                    "results.json, table.md and PNG plots (with matplotlib) into --out.",
        epilog="Examples: orch bench hil/benchmarks/tinyllama_scaling.toml --simulate;  orch bench --paper")
    p.add_argument("file", nargs="?", default=None, metavar="FILE.toml", help="benchmark file")
    p.add_argument("--cluster", "-c", default=None, metavar="FILE", help="cluster TOML file (default: the mock)")
    p.add_argument("--simulate", action="store_true", help="use the cost model alone (no chips; reaches 64 chips)")
    p.add_argument("--json", action="store_true", help='print {"rows": [...]} on stdout instead of tables')
    p.add_argument("--paper", action="store_true",
                   help="print our figures next to the reference paper's (TinyLlama-42M 8 chips, MobileBERT 4 chips, "
                        "scaled TinyLlama 64 chips)")
    p.add_argument("--profile", "-p", default="siracusa", help="chip profile for --paper (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: bench-results/<date>-<name>-<mode>)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "report", help="summarize a results folder: tables and PNG plots",
        description="Print per-token latency and energy, per-phase latency per chip and bytes per token of a run "
                    "(`orch run` prints its results folder), and write PNG plots into the folder: the power trace "
                    "with phase markers (synthesized by the mock meter when the run had no --power), per-phase "
                    "latency per chip, bytes per token. Plots need matplotlib (pip install 'orch[plot]').")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_report)


def cmd_bench(args) -> int:
    from orchestrator.report import bench
    if args.file is None and not args.paper:
        raise InputError("orch bench needs a benchmark file (e.g. hil/benchmarks/tinyllama_scaling.toml) or --paper")
    if args.cluster and args.simulate:
        raise InputError("--cluster and --simulate exclude each other: --simulate runs no chips")
    out: dict = {}
    if args.file is not None:
        from orchestrator.report.console import err_console
        if args.json:
            result = bench.run_benchmark(args.file, args.simulate, args.cluster, args.out)
        else:
            with err_console.status("benchmark") as st:
                result = bench.run_benchmark(args.file, args.simulate, args.cluster, args.out,
                                             progress=lambda s: st.update(s))
        out["rows"] = result["rows"]
        out["skipped"] = result["skipped"]
        out["out_dir"] = result["out_dir"]
        if not args.json:
            bench.print_rows(result)
            print(f"wrote {result['out_dir']}/results.json, table.md" +
                  (", " + ", ".join(result.get("plots", [])) if result.get("plots") else
                   " (no plots: pip install 'orch[plot]')"))
    if args.paper:
        from orchestrator.perf import paper_comparison
        p = paper_comparison(args.profile)
        out["paper"] = {k: v for k, v in p.items() if k != "rows"}
        if "rows" not in out:
            out["rows"] = p["rows"]
        if not args.json:
            bench.print_paper(p)
    if args.json:
        print(json.dumps(out))
    return 0


def cmd_report(args) -> int:
    from orchestrator.report.bench import print_report, report
    r = report(args.results_dir, plots=not args.no_plots)
    if args.json:
        print(json.dumps(r))
    else:
        print_report(r)
    return 0


def _standalone(argv=None) -> int:  # pragma: no cover - the lead wires add_parsers into orch
    ap = argparse.ArgumentParser(prog="orch")
    add_parsers(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    return args.func(args)
