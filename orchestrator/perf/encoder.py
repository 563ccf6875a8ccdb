"""A cost-model-only encoder: MobileBERT's shape, split tensor-parallel like the decoder.

Full encoder support (weights, kernels, firmware) belongs to another issue; this module only needs
the shape, from google/mobilebert-uncased's published config.json: hidden 512, embedding 128,
intra-bottleneck (true hidden) 128, 24 layers, 4 heads, 4 stacked FFNs of intermediate size 512,
key/query sharing one bottleneck, trigram input embeddings, vocabulary 30522, 512 positions.

The split (N chips, N dividing the 4 heads); per layer, with S tokens:
  IN_BOTTLENECK  the layer input h (512) is held by columns (chip r: 512/N of them); each chip
                 multiplies its columns into the input bottleneck a, the shared Q/K bottleneck s and
                 the values v (three 512->128 products)      -> all-reduce of S x 384 int32
  ATTENTION      the chip's heads: Q, K from s, attention, the output rows' input columns
                                                               -> all-reduce of S x 128 int32
  FFN x 4        128 -> 512 -> 128, hidden units split       -> all-reduce of S x 128 int32 each
  OUT_BOTTLENECK 128 -> 512 by output rows: chip r computes its own 512/N columns of h (no message)
Embedding: the word-embedding rows are split by vocabulary (each chip looks up the tokens it owns:
an all-reduce of S x 128 gathers them), then the trigram projection (384 -> 512) and the position
embedding by output columns. No weight is stored twice; normalization is MobileBERT's element-wise
NoNorm, so it needs no message. Six all-reduces per block, not the decoder's two: the four stacked
FFNs each end in a sum over chips.

Each stage is one roofline charge (as the decoder's phases): weights are read once per inference
(a GEMM over S tokens reuses each weight tile), activations stream from on-chip memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from orchestrator.errors import InputError
from orchestrator.perf import replay
from orchestrator.perf.collectives import Topology
from orchestrator.perf.decoder import Timeline
from orchestrator.perf.rates import ChipRates

SMALL_TENSOR = 64 * 1024


@dataclass(frozen=True)
class EncoderShape:
    name: str = "mobilebert"
    hidden: int = 512
    embedding: int = 128
    bottleneck: int = 128
    n_layers: int = 24
    n_heads: int = 4
    n_ffn: int = 4
    intermediate: int = 512
    vocab_size: int = 30522
    max_positions: int = 512
    seq_len: int = 128
    source: str = "google/mobilebert-uncased config.json (Hugging Face)"

    @property
    def head_size(self) -> int:
        return self.bottleneck // self.n_heads

    def n_params(self) -> int:
        H, B, I, E = self.hidden, self.bottleneck, self.intermediate, self.embedding
        layer = 3 * H * B + 3 * B * B + self.n_ffn * 2 * B * I + B * H
        return self.vocab_size * E + 3 * E * H + self.max_positions * H + self.n_layers * layer


MOBILEBERT = EncoderShape()


def _split(total: int, world: int, rank: int) -> int:
    return (rank + 1) * total // world - rank * total // world


def _chip_weights(shape: EncoderShape, world: int, rank: int) -> list[tuple[str, int, int, int]]:
    """(stage, layer, int8 weight bytes, requantization bytes) of every matrix chip rank holds.

    Requantization pairs are 8 bytes per output row; a matrix split by input columns keeps every
    output row, so its pairs are the only thing repeated across chips (as the decoder's Wo and W2)."""
    H, B, I, E = shape.hidden, shape.bottleneck, shape.intermediate, shape.embedding
    hc = _split(H, world, rank)
    hl = _split(shape.n_heads, world, rank) * shape.head_size
    il = _split(I, world, rank)
    nv = _split(shape.vocab_size, world, rank)
    out = [("EMBED", -1, nv * E, 8 * nv), ("EMBED", -1, hc * 3 * E, 8 * hc), ("EMBED", -1, shape.max_positions * hc, 0)]
    for l in range(shape.n_layers):
        out += [("IN_BOTTLENECK", l, 3 * B * hc, 3 * 8 * B),
                ("ATTENTION", l, 2 * hl * B + B * hl, 8 * (2 * hl + B))]
        out += [(f"FFN{k}", l, 2 * il * B, 8 * (il + B)) for k in range(shape.n_ffn)]
        out += [("OUT_BOTTLENECK", l, hc * B, 8 * hc)]
    return out


def _place(shape: EncoderShape, world: int, rank: int, profile) -> dict[tuple[str, int], list[int]]:
    """The decoder planner's rule: activations in on-chip data memory, then small weights first and
    large ones largest first into on-chip weight memories, the rest off chip. -> stage -> [on, off]."""
    free = {m.name: m.bytes for m in profile.memories}
    S, H, B = shape.seq_len, shape.hidden, shape.bottleneck
    act = S * (H + 3 * B) * 4 + S * S * 4  # partial sums of the widest stage, one head's scores
    home = next((m for m in profile.onchip if "data" in m.holds and free[m.name] >= act), None) or \
        next((m for m in profile.offchip if "data" in m.holds and free[m.name] >= act), None)
    if home is None:
        raise InputError(f"{shape.name}: the activations of {S} tokens do not fit {profile.name}'s memories")
    free[home.name] -= act
    weights = [(st, l, w + rq) for st, l, w, rq in _chip_weights(shape, world, rank)]
    small = sorted((w for w in weights if w[2] < SMALL_TENSOR), key=lambda w: w[2])
    large = sorted((w for w in weights if w[2] >= SMALL_TENSOR), key=lambda w: -w[2])
    out: dict[tuple[str, int], list[int]] = {}
    for stage, layer, nbytes in small + large:
        m = next((m for m in profile.onchip if "weights" in m.holds and free[m.name] >= nbytes), None) or \
            next((m for m in profile.offchip if "weights" in m.holds and free[m.name] >= nbytes), None)
        if m is None:
            raise InputError(f"{shape.name} does not fit on {world} {profile.name} chip(s): chip {rank} has no "
                             f"memory left for a {nbytes}-byte weight")
        free[m.name] -= nbytes
        out.setdefault((stage, layer), [0, 0])[0 if m.kind == "onchip" else 1] += nbytes
    return out


def simulate_encoder(shape: EncoderShape, world: int, profile, topology: Topology | None = None) -> Timeline:
    """One inference over shape.seq_len tokens on `world` chips, as trace records (token_index 0)."""
    if world < 1 or shape.n_heads % world:
        valid = [n for n in range(1, shape.n_heads + 1) if shape.n_heads % n == 0]
        raise InputError(f"cannot split {shape.name} over {world} chips: the chip count must divide its "
                         f"{shape.n_heads} heads; use one of {', '.join(map(str, valid))}")
    topo = topology or Topology()
    rates = ChipRates.from_profile(profile)
    S, H, B, I, E = shape.seq_len, shape.hidden, shape.bottleneck, shape.intermediate, shape.embedding
    place = [_place(shape, world, r, profile) for r in range(world)]

    def work(r: int, stage: str, layer: int) -> tuple[int, int, int]:
        hc = _split(H, world, r)
        hl = _split(shape.n_heads, world, r) * shape.head_size
        il = _split(I, world, r)
        on, off = place[r].get((stage, layer), [0, 0])
        if stage == "EMBED":
            macs = S * 3 * E * hc
            act = S * 3 * E + S * hc * 4
        elif stage == "IN_BOTTLENECK":
            macs = S * hc * 3 * B
            act = S * hc + S * 3 * B * 4
        elif stage == "ATTENTION":
            macs = S * B * 2 * hl + 2 * S * S * hl + S * hl * B
            act = S * (B + 2 * hl) + 2 * S * S * 4 // max(shape.n_heads // world, 1) + S * B * 4
        elif stage.startswith("FFN"):
            macs = S * 2 * B * il
            act = S * B + S * il + S * B * 4
        else:  # OUT_BOTTLENECK
            macs = S * B * hc
            act = S * B + S * hc * 4
        return macs, on + act, off

    chunk = 16384 // 4
    ar_in = replay.compiled("allreduce_s32", world, topo, rates, S * 3 * B, chunk)
    ar_b = replay.compiled("allreduce_s32", world, topo, rates, S * B, chunk)
    ar_e = replay.compiled("allreduce_s32", world, topo, rates, S * E, chunk)
    t = np.zeros(world)
    records: dict[int, list[dict]] = {r: [] for r in range(world)}

    def compute(stage, layer):
        nonlocal t
        start = t.copy()
        for r in range(world):
            macs, on, off = work(r, stage, layer)
            t[r] += rates.account(macs, on, off)
            records[r].append(_rec(stage, layer, start[r], t[r], macs, on, off, 0, 0))

    def allreduce(name, layer, comp):
        nonlocal t
        start = t.copy()
        t = comp.apply(t)
        for r in range(world):
            records[r].append(_rec(name, layer, start[r], t[r], 0, 0, 0, comp.stats[r, replay.TX_BYTES],
                                   comp.stats[r, replay.RX_BYTES]))

    allreduce("ALLREDUCE_EMBED", None, ar_e)
    compute("EMBED", -1)
    for l in range(shape.n_layers):
        compute("IN_BOTTLENECK", l)
        allreduce("ALLREDUCE_IN", l, ar_in)
        compute("ATTENTION", l)
        allreduce("ALLREDUCE_ATT", l, ar_b)
        for k in range(shape.n_ffn):
            compute(f"FFN{k}", l)
            allreduce("ALLREDUCE_FFN", l, ar_b)
        compute("OUT_BOTTLENECK", l)
    for recs in records.values():
        for r in recs:
            if r["layer"] == -1:
                r["layer"] = None
            if r["phase"].startswith("FFN"):
                r["phase"] = "FFN"
    return Timeline(world, rates.clock_hz, records, [], [0] * world)


def _rec(phase, layer, start, end, macs, on, off, tx, rx) -> dict:
    return {"token_index": 0, "phase": phase, "layer": layer, "start_cycles": int(start), "end_cycles": int(end),
            "macs": int(macs), "onchip_bytes": int(on), "offchip_bytes": int(off), "link_tx_bytes": int(tx),
            "link_rx_bytes": int(rx)}


def with_shape(shape: EncoderShape, **changes) -> EncoderShape:
    return replace(shape, **changes)
