"""The mock's virtual clocks, replayed: each collective compiled once into a max-plus matrix.

Every chip's clock only ever moves by `t += cycles` (hal_account, a link send) or `t = max(t, stamp)`
(a receive; the stamp is the sender's clock after its send). Both are linear in the max-plus algebra,
so a collective maps the chips' entry clocks t to exit clocks t'_i = max_j (M_ij + t_j). Compiling M
once (by running the per-chip programs of collectives.py on clock vectors) makes the model exact for
any skew between chips and costs O(N^2) per use, which is what lets --simulate reach 64 chips.
Per-chip counters (bytes, messages, cycles by state) do not depend on the entry clocks and are
compiled alongside.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from orchestrator.perf import collectives as coll
from orchestrator.perf.rates import ChipRates

NEG = -np.inf

# columns of Compiled.stats
CHARGE, ACTIVE, OFFCHIP, SEND, TX_BYTES, RX_BYTES, TX_MSGS, RX_MSGS, MACS, ONCHIP = range(10)
N_STATS = 10


@dataclass(frozen=True)
class Compiled:
    matrix: np.ndarray  # (world, world) max-plus matrix
    stats: np.ndarray  # (world, N_STATS) per-chip counters

    def apply(self, t: np.ndarray) -> np.ndarray:
        return (self.matrix + t[None, :]).max(axis=1)


def run_programs(world: int, rates: ChipRates, programs) -> Compiled:
    """Runs one generator per chip until all finish; a receive waits for its message (FIFO per link)."""
    clocks = np.full((world, world), NEG)
    np.fill_diagonal(clocks, 0.0)
    stats = np.zeros((world, N_STATS), dtype=np.int64)
    fifos: dict[tuple[int, int], deque] = {}
    waiting: list[tuple | None] = [None] * world
    live = set(range(world))
    while live:
        progressed = False
        for r in sorted(live):
            gen = programs[r]
            while True:
                op = waiting[r]
                if op is None:
                    try:
                        op = next(gen)
                    except StopIteration:
                        live.discard(r)
                        break
                kind = op[0]
                if kind == "recv":
                    q = fifos.get((op[1], r))
                    if not q:
                        waiting[r] = op
                        break
                    stamp, n = q.popleft()
                    if n != op[2]:
                        raise AssertionError(f"schedule mismatch: chip {r} expects {op[2]} bytes from {op[1]}, got {n}")
                    np.maximum(clocks[r], stamp, out=clocks[r])
                    stats[r, RX_BYTES] += n
                    stats[r, RX_MSGS] += 1
                elif kind == "send":
                    c = rates.send(op[2])
                    clocks[r] += c
                    stats[r, SEND] += c
                    stats[r, TX_BYTES] += op[2]
                    stats[r, TX_MSGS] += 1
                    fifos.setdefault((r, op[1]), deque()).append((clocks[r].copy(), op[2]))
                else:  # charge
                    _, macs, on, off = op
                    c = rates.account(macs, on, off)
                    clocks[r] += c
                    stats[r, CHARGE] += c
                    stats[r, ACTIVE] += rates.active(macs, on)
                    stats[r, OFFCHIP] += rates.offchip(off)
                    stats[r, MACS] += macs
                    stats[r, ONCHIP] += on
                waiting[r] = None
                progressed = True
        if not progressed and live:
            raise AssertionError(f"collective schedule deadlocks: chips {sorted(live)} wait forever")
    if any(fifos.values()):
        raise AssertionError("collective schedule leaves messages unreceived")
    return Compiled(clocks, stats)


@lru_cache(maxsize=256)
def compiled(what: str, world: int, topo: coll.Topology, rates: ChipRates, *args) -> Compiled:
    """One collective on every chip, e.g. compiled('allreduce_s32', 8, Topology(), rates, 512, 512)."""
    fn = {"allreduce_s32": coll.allreduce_s32, "broadcast": coll.broadcast, "barrier": coll.barrier,
          "argmax_reduce": coll.argmax_reduce, "allreduce_s64": coll.allreduce_s64}[what]
    return run_programs(world, rates, [fn(r, world, topo, *args) for r in range(world)])
