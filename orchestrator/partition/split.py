"""Tensor-parallel split of a decoder over N chips (ARCHITECTURE.md, "The partition").

Chip r holds query heads [r*H/N, (r+1)*H/N) with the KV heads they use, FFN hidden units
[r*F/N, (r+1)*F/N) and vocabulary rows [r*V/N, (r+1)*V/N). Nothing else is split; nothing is stored
twice. The per-chip tensors carry an id (kind, layer) that the firmware looks up in the shard table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from orchestrator.errors import InputError

GLOBAL = 0xFFFF  # the layer field of tensors that belong to no layer


class Kind(IntEnum):
    ROPE_STEPS = 1
    SIN_TABLE = 2
    EXP2_TABLE = 3
    FINAL_NORM = 4
    EMBED = 5
    EMBED_RQ = 6
    CLS = 7
    CLS_RQ = 8
    ATT_NORM = 16
    WQ = 17
    WQ_RQ = 18
    WK = 19
    WK_RQ = 20
    WV = 21
    WV_RQ = 22
    WO = 23
    WO_RQ = 24
    FFN_NORM = 25
    W1 = 26
    W1_RQ = 27
    W3 = 28
    W3_RQ = 29
    W2 = 30
    W2_RQ = 31
    SILU_LUT = 32
    LAYER_PARAMS = 33


WEIGHT_KINDS = {Kind.EMBED, Kind.CLS, Kind.WQ, Kind.WK, Kind.WV, Kind.WO, Kind.W1, Kind.W3, Kind.W2}


def tensor_name(kind: int, layer: int) -> str:
    k = Kind(kind).name.lower()
    return k if layer == GLOBAL else f"layers.{layer}.{k}"


def split_range(total: int, world: int, rank: int) -> tuple[int, int]:
    start = rank * total // world
    return start, (rank + 1) * total // world - start


@dataclass(frozen=True)
class ChipSlice:
    rank: int
    world: int
    head_start: int
    n_heads: int
    kv_start: int
    n_kv: int
    ffn_start: int
    n_ffn: int
    vocab_start: int
    n_vocab: int


def check_world(cfg, world: int) -> None:
    if world < 1:
        raise InputError(f"--chips must be at least 1, got {world}")
    valid = [n for n in range(1, cfg.n_kv_heads + 1) if cfg.n_kv_heads % n == 0]
    if cfg.n_kv_heads % world != 0:
        raise InputError(
            f"cannot split {cfg.name} over {world} chips: the chip count must divide its {cfg.n_kv_heads} "
            f"KV heads (attention is split by heads); use one of {', '.join(map(str, valid))}")


def make_slices(cfg, world: int) -> list[ChipSlice]:
    check_world(cfg, world)
    out = []
    for r in range(world):
        hs, hn = split_range(cfg.n_heads, world, r)
        ks, kn = split_range(cfg.n_kv_heads, world, r)
        fs, fn = split_range(cfg.hidden_dim, world, r)
        vs, vn = split_range(cfg.vocab_size, world, r)
        out.append(ChipSlice(r, world, hs, hn, ks, kn, fs, fn, vs, vn))
    return out


def chip_tensors(qm, sl: ChipSlice) -> list[tuple[int, int, np.ndarray]]:
    """The tensors chip sl.rank stores, as (kind, layer, array), in the order the shard lays them out."""
    cfg = qm.config
    hsz = cfg.head_size
    q0, q1 = sl.head_start * hsz, (sl.head_start + sl.n_heads) * hsz
    k0, k1 = sl.kv_start * hsz, (sl.kv_start + sl.n_kv) * hsz
    f0, f1 = sl.ffn_start, sl.ffn_start + sl.n_ffn
    v0, v1 = sl.vocab_start, sl.vocab_start + sl.n_vocab
    c = np.ascontiguousarray
    t: list[tuple[int, int, np.ndarray]] = [
        (Kind.ROPE_STEPS, GLOBAL, qm.rope_steps),
        (Kind.SIN_TABLE, GLOBAL, qm.sin_table),
        (Kind.EXP2_TABLE, GLOBAL, qm.exp2_table),
        (Kind.FINAL_NORM, GLOBAL, qm.final_norm),
        (Kind.EMBED, GLOBAL, c(qm.embed[v0:v1])),
        (Kind.EMBED_RQ, GLOBAL, c(np.stack([qm.embed_mult[v0:v1], qm.embed_shift[v0:v1].astype(np.int32)], 1))),
    ]
    if not qm.shared_classifier:
        t.append((Kind.CLS, GLOBAL, c(qm.cls[v0:v1])))
    t.append((Kind.CLS_RQ, GLOBAL, c(np.stack([qm.cls_mult[v0:v1], qm.cls_shift[v0:v1].astype(np.int32)], 1))))
    for l, ly in enumerate(qm.layers):
        t += [
            (Kind.ATT_NORM, l, ly.att_norm),
            (Kind.WQ, l, c(ly.wq.w[q0:q1])), (Kind.WQ_RQ, l, c(ly.wq.rq[q0:q1])),
            (Kind.WK, l, c(ly.wk.w[k0:k1])), (Kind.WK_RQ, l, c(ly.wk.rq[k0:k1])),
            (Kind.WV, l, c(ly.wv.w[k0:k1])), (Kind.WV_RQ, l, c(ly.wv.rq[k0:k1])),
            (Kind.WO, l, c(ly.wo.w[:, q0:q1])), (Kind.WO_RQ, l, ly.wo.rq),
            (Kind.FFN_NORM, l, ly.ffn_norm),
            (Kind.W1, l, c(ly.w1.w[f0:f1])), (Kind.W1_RQ, l, c(ly.w1.rq[f0:f1])),
            (Kind.W3, l, c(ly.w3.w[f0:f1])), (Kind.W3_RQ, l, c(ly.w3.rq[f0:f1])),
            (Kind.W2, l, c(ly.w2.w[:, f0:f1])), (Kind.W2_RQ, l, ly.w2.rq),
            (Kind.SILU_LUT, l, ly.silu),
            (Kind.LAYER_PARAMS, l, ly.params()),
        ]
    return t
