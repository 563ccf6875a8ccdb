"""The decoder's timeline on N chips, phase by phase, as firmware/runtime/decoder.c charges it.

Each phase declares its work to hal_account() once (macs, on-chip bytes, off-chip bytes), and the
collectives add their link messages and element-wise adds. This module computes the same numbers from
the partition plan (which tensor lives in which memory) and replays the clocks through the compiled
collectives (replay.py), giving per-chip trace records in the firmware's shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.errors import InputError
from orchestrator.partition.split import Kind
from orchestrator.perf import replay
from orchestrator.perf.collectives import Topology
from orchestrator.perf.rates import ChipRates

SILU_LUT_LEN = 256  # KN_SILU_LUT_LEN
BOS = 1
PHASES = ("EMBED", "ATTENTION", "ALLREDUCE_ATT", "FFN", "ALLREDUCE_FFN", "CLASSIFIER", "ARGMAX_REDUCE")


@dataclass(frozen=True)
class Work:
    """What one hal_account() call declares."""

    macs: int
    onchip: int
    offchip: int


class ChipWork:
    """Per-phase work of one chip of a plan (decoder.c: embed, attention, ffn, classifier)."""

    def __init__(self, plan, chip) -> None:
        cfg = plan.config
        sl = chip.slice
        self.rank, self.dim, self.hs = chip.rank, cfg.dim, cfg.head_size
        self.n_heads, self.n_kv, self.n_ffn = sl.n_heads, sl.n_kv, sl.n_ffn
        self.vocab_start, self.n_vocab = sl.vocab_start, sl.n_vocab
        off = {(t.kind, t.layer): not t.onchip for t in chip.tensors}
        self.kv_offchip = plan.profile.memory(chip.data_placement["kv_cache"]).kind == "offchip"
        D, nq, nkv = cfg.dim, sl.n_heads * cfg.head_size, sl.n_kv * cfg.head_size
        self.embed_offchip = off[(Kind.EMBED, 0xFFFF)]
        cls_off = self.embed_offchip if cfg.shared_classifier else off[(Kind.CLS, 0xFFFF)]
        self.att_static: list[Work] = []  # everything but the KV-cache reads, which grow with pos
        self.ffn: list[Work] = []
        for l in range(cfg.n_layers):
            on, offb = 4 * D, 0
            for kind, rows, cols in ((Kind.WQ, nq, D), (Kind.WK, nkv, D), (Kind.WV, nkv, D), (Kind.WO, D, nq)):
                if off[(kind, l)]:
                    offb += rows * cols
                else:
                    on += rows * cols
                on += 8 * rows
            self.att_static.append(Work(D * (nq + 2 * nkv) + D * nq, on, offb))
            on, offb = 4 * D + 4 * SILU_LUT_LEN, 0
            for kind, rows, cols in ((Kind.W1, sl.n_ffn, D), (Kind.W3, sl.n_ffn, D), (Kind.W2, D, sl.n_ffn)):
                if off[(kind, l)]:
                    offb += rows * cols
                else:
                    on += rows * cols
                on += 8 * rows
            self.ffn.append(Work(3 * D * sl.n_ffn, on, offb))
        w = sl.n_vocab * D
        self.classifier = Work(w, 4 * D + 8 * sl.n_vocab + (0 if cls_off else w), w if cls_off else 0)
        self.embed_row = Work(0, 8 + (0 if self.embed_offchip else D), D if self.embed_offchip else 0)

    def attention(self, layer: int, pos: int) -> Work:
        s = self.att_static[layer]
        kv = 2 * self.n_heads * (pos + 1) * self.hs
        return Work(s.macs + kv, s.onchip + (0 if self.kv_offchip else kv), s.offchip + (kv if self.kv_offchip else 0))


def token_owner(token: int, vocab: int, world: int) -> int:
    """The chip whose vocabulary rows hold token (the r*V/N rule every chip evaluates)."""
    owner = 0
    for r in range(world):
        if r * vocab // world <= token < (r + 1) * vocab // world:
            owner = r
    return owner


@dataclass
class Timeline:
    """Per-chip trace records on the common virtual time axis (cycles since every chip booted)."""

    world: int
    clock_hz: float
    records: dict[int, list[dict]]
    picked: list[int]  # positions that produced a token
    barrier_exit: list[int]  # each chip's clock when RUN's start barrier returned


def simulate(plan, n_tokens: int, prompt_ids=(), topology: Topology | None = None, input_tokens=None,
             temperature: bool = False, start_cycles=None) -> Timeline:
    """The run `orch run --tokens n_tokens --prompt ...` makes on the mock, as trace records.

    input_tokens: the token fed at each position (BOS, the prompt, then the generated ids) decides which
    chip broadcasts the embedding row; by default every position is fed BOS (owned by chip 0).
    start_cycles: each chip's clock when it enters the barrier (default: all equal, 0)."""
    cfg, world = plan.config, plan.world
    topo = topology or Topology()
    if topo.kind == "hierarchical" and (topo.group_size < 1 or world % topo.group_size):
        raise InputError(f"hierarchical all-reduce: group size {topo.group_size} must divide {world} chips")
    if n_tokens < 1:
        raise InputError(f"--tokens must be at least 1, got {n_tokens}")
    n_prompt = len(prompt_ids)
    positions = n_prompt + n_tokens
    if positions > plan.context:
        raise InputError(f"prompt plus tokens ({positions} positions) exceed the plan's context of {plan.context}")
    if input_tokens is not None:
        feed = list(input_tokens)
    else:
        feed = [BOS] + list(prompt_ids) + [BOS] * (positions - 1 - n_prompt)
    if len(feed) < positions:
        raise InputError(f"input_tokens has {len(feed)} ids, the run needs {positions}")
    rates = ChipRates.from_profile(plan.profile)
    chips = [ChipWork(plan, c) for c in plan.chips]
    scratch = min(cfg.dim, 16384 // 4)  # runbuf scratch_n
    ar = replay.compiled("allreduce_s32", world, topo, rates, cfg.dim, scratch)
    am = replay.compiled("argmax_reduce", world, topo, rates)
    s64 = replay.compiled("allreduce_s64", world, topo, rates, world, world) if temperature else None
    bar = replay.compiled("barrier", world, topo, rates)

    t = np.zeros(world) if start_cycles is None else np.asarray(start_cycles, dtype=float)
    t = bar.apply(t)
    barrier_exit = [int(v) for v in t]
    records: dict[int, list[dict]] = {r: [] for r in range(world)}
    zeros = np.zeros(world, dtype=np.int64)

    def emit(pos, phase, layer, start, end, macs, on, off, comp=None):
        for r in range(world):
            records[r].append({
                "token_index": pos, "phase": phase, "layer": layer, "start_cycles": int(start[r]),
                "end_cycles": int(end[r]), "macs": int(macs[r]), "onchip_bytes": int(on[r]),
                "offchip_bytes": int(off[r]),
                "link_tx_bytes": int(comp.stats[r, replay.TX_BYTES]) if comp else 0,
                "link_rx_bytes": int(comp.stats[r, replay.RX_BYTES]) if comp else 0})

    def compute(pos, phase, layer, works):
        nonlocal t
        start = t.copy()
        t = t + np.array([rates.account(w.macs, w.onchip, w.offchip) for w in works], dtype=float)
        emit(pos, phase, layer, start, t, [w.macs for w in works], [w.onchip for w in works],
             [w.offchip for w in works])

    def collective(pos, phase, layer, comp):
        nonlocal t
        start = t.copy()
        t = comp.apply(t)
        emit(pos, phase, layer, start, t, zeros, zeros, zeros, comp)

    picked = []
    for pos in range(positions):
        owner = token_owner(feed[pos], cfg.vocab_size, world)
        bc = replay.compiled("broadcast", world, topo, rates, 4 * cfg.dim, owner)
        start = t.copy()
        t = bc.apply(t)
        row = chips[owner].embed_row
        t[owner] += rates.account(row.macs, row.onchip, row.offchip)  # charged after the broadcast
        on, off = zeros.copy(), zeros.copy()
        on[owner], off[owner] = row.onchip, row.offchip
        emit(pos, "EMBED", None, start, t, zeros, on, off, bc)
        for l in range(cfg.n_layers):
            compute(pos, "ATTENTION", l, [c.attention(l, pos) for c in chips])
            collective(pos, "ALLREDUCE_ATT", l, ar)
            compute(pos, "FFN", l, [c.ffn[l] for c in chips])
            collective(pos, "ALLREDUCE_FFN", l, ar)
        compute(pos, "CLASSIFIER", None, [c.classifier for c in chips])
        if pos >= n_prompt:
            picked.append(pos)
            if s64 is None:
                collective(pos, "ARGMAX_REDUCE", None, am)
            else:  # argmax, slice sums, then the second argmax that names the drawn token
                start = t.copy()
                t = am.apply(s64.apply(am.apply(t)))
                stats = am.stats * 2 + s64.stats
                emit(pos, "ARGMAX_REDUCE", None, start, t, zeros, zeros, zeros,
                     replay.Compiled(np.zeros((world, world)), stats))
    return Timeline(world, rates.clock_hz, records, picked, barrier_exit)
