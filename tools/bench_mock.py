#!/usr/bin/env python3
"""Benchmarks of the mock cluster (prints figures; docs/benchmarks.md records them):

- raw throughput of a pseudo-terminal on this machine (host writes, a reader process drains the other side);
- `orch flash` throughput on the mock, per chip and in total, for 1 and 8 chips (forced rewrite);
- host tokens/s of `orch run` for 1 and 8 chips on tinyllama-42m (64 tokens; RUN to DONE), and their ratio.

Usage: python tools/bench_mock.py [--tokens 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def raw_pty_mb_s(total: int = 64 << 20) -> float:
    """The host writes through pyserial to the pty's slave side, as `orch flash` does; a child process
    drains the master side, as a mock chip does. No protocol: the link's own ceiling."""
    import serial
    import tty
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    pid = os.fork()
    if pid == 0:  # the reader
        os.close(slave)
        got = 0
        while got < total:
            got += len(os.read(master, 1 << 16))
        os._exit(0)
    port = serial.serial_for_url(path, baudrate=921600, timeout=1)
    block = b"\x55" * 65536
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        sent += port.write(block)
    port.flush()
    os.waitpid(pid, 0)  # all bytes read on the other side
    t = time.perf_counter() - t0
    port.close()
    os.close(slave)
    os.close(master)
    return sent / t / 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("ORCH_CACHE_DIR", tempfile.mkdtemp(prefix="orch-bench-"))

    from orchestrator.cluster.config import mock_cluster
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.flash import flash_cluster
    from orchestrator.cluster.run import RunRequest
    from orchestrator.report.results import record_run
    from orchestrator.model.synthetic import load_model
    from orchestrator.partition.cache import get_shards
    from orchestrator.profiles import load_profile

    print(f"raw pseudo-terminal throughput (host -> draining reader): {raw_pty_mb_s():.1f} MB/s")
    prof = load_profile("siracusa")
    model = load_model("tinyllama-42m")
    tps = {}
    for n in (1, 8):
        shards = get_shards(model, n, prof)
        with open_cluster(mock_cluster(n, prof.name), prof) as cl:
            t0 = time.perf_counter()
            res = flash_cluster(cl, shards, force=True)
            total_t = time.perf_counter() - t0
            total_b = sum(r.bytes for r in res)
            per = ", ".join(f"{r.write_mb_per_s:.1f}" for r in res)
            wmax = max(r.write_seconds for r in res)
            print(f"flash {n} chip(s): {total_b / 1e6:.1f} MB; writes {total_b / wmax / 1e6:.1f} MB/s total "
                  f"(per chip: {per}); with on-chip CRC verify and commit {total_b / total_t / 1e6:.1f} MB/s total")
            walls = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory() as d:
                    out = record_run(cl, RunRequest(args.tokens, results_base=Path(d)))
                walls.append(out.results["wall_s"])
            best = min(walls)
            tps[n] = args.tokens / best
            print(f"run {n} chip(s): {args.tokens} tokens, best wall {best:.3f} s = {tps[n]:.1f} tokens/s "
                  f"(walls {', '.join(f'{w:.3f}' for w in walls)}); modelled {out.results['latency_ms_per_token']:.3f} ms/token")
    print(f"8-chip / 1-chip host tokens/s: {tps[8] / tps[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
