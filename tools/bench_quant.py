#!/usr/bin/env python3
"""Benchmarks of the host pipeline (prints figures; docs/benchmarks.md records them):

- seconds to build, quantize and partition tinyllama-42m for 8 chips (goal: under 5 s);
- int8 vs fp32 top-1 agreement on stories260K, teacher-forced on the fp32 trajectory.

Usage: python tools/bench_quant.py [--shared ../shared/models]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "models"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from orchestrator.model.synthetic import load_model
    from orchestrator.partition.plan import make_plan
    from orchestrator.partition.shard import write_shards
    from orchestrator.profiles import load_profile
    from orchestrator.quant.quantize import quantize_model

    prof = load_profile("siracusa")
    times = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            model = load_model("tinyllama-42m")
            t1 = time.perf_counter()
            qm = quantize_model(model)
            t2 = time.perf_counter()
            write_shards(qm, make_plan(model.config, 8, prof), Path(d), prof.name)
            t3 = time.perf_counter()
        times.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
    best = min(times, key=lambda t: t[3])
    print(f"tinyllama-42m -> 8 shards: build {best[0]:.2f} s, quantize (incl. calibration) {best[1]:.2f} s, "
          f"partition + write {best[2]:.2f} s, total {best[3]:.2f} s (best of {args.repeat}; "
          f"all totals {', '.join(f'{t[3]:.2f}' for t in times)})")

    ckpt = Path(args.shared) / "stories260K.bin"
    if not ckpt.is_file():
        print(f"stories260K agreement: skipped, {ckpt} not present")
        return 0
    from orchestrator.model.llama2c import load_llama2c
    from orchestrator.partition.agreement import top1_agreement
    from orchestrator.partition.shard import load_shards
    m = load_llama2c(ckpt)
    with tempfile.TemporaryDirectory() as d:
        write_shards(quantize_model(m), make_plan(m.config, 1, prof), Path(d), prof.name)
        _, shards = load_shards(Path(d))
        for prompts in (5, 20):
            r = top1_agreement(m, shards, n_prompts=prompts, steps=64)
            print(f"stories260K int8 vs fp32 top-1 (teacher-forced): {r['top1']:.4f} over {r['steps']} steps, "
                  f"{r['prompts']} prompts of 3 random ids after BOS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
