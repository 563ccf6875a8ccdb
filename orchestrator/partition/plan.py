"""The partition plan: which tensors each chip holds and in which memory, and what a token costs.

Planning needs only shapes, so `orch plan` answers without quantizing. The memory planner puts the
chip's working data (KV cache, activations) in on-chip data memory, then fills on-chip weight memory
smallest tensor first (tables and requantization parameters always stay on chip), and streams what is
left from off-chip memory every token. A plan that fits nowhere is refused with the chip count that fits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from orchestrator.errors import InputError
from orchestrator.partition.split import GLOBAL, WEIGHT_KINDS, ChipSlice, Kind, check_world, make_slices, tensor_name

SHARD_FORMAT_VERSION = 1
SMALL_TENSOR = 64 * 1024
DTYPE_SIZE = {"int8": 1, "int32": 4, "uint32": 4}


@dataclass
class TensorSpec:
    kind: int
    layer: int
    shape: tuple[int, ...]
    dtype: str
    placement: str = ""  # memory name
    onchip: bool = True

    @property
    def name(self) -> str:
        return tensor_name(self.kind, self.layer)

    @property
    def nbytes(self) -> int:
        n = DTYPE_SIZE[self.dtype]
        for s in self.shape:
            n *= s
        return n


def tensor_specs(cfg, sl: ChipSlice, rope_pairs: int | None = None) -> list[TensorSpec]:
    """Shapes and dtypes of the tensors chip sl.rank stores, in shard order (mirrors split.chip_tensors)."""
    D, hs = cfg.dim, cfg.head_size
    nq, nkv = sl.n_heads * hs, sl.n_kv * hs
    t = [
        TensorSpec(Kind.ROPE_STEPS, GLOBAL, (rope_pairs or hs // 2,), "uint32"),
        TensorSpec(Kind.SIN_TABLE, GLOBAL, (1025,), "int32"),
        TensorSpec(Kind.EXP2_TABLE, GLOBAL, (257,), "int32"),
        TensorSpec(Kind.FINAL_NORM, GLOBAL, (D,), "int32"),
        TensorSpec(Kind.EMBED, GLOBAL, (sl.n_vocab, D), "int8"),
        TensorSpec(Kind.EMBED_RQ, GLOBAL, (sl.n_vocab, 2), "int32"),
    ]
    if not cfg.shared_classifier:
        t.append(TensorSpec(Kind.CLS, GLOBAL, (sl.n_vocab, D), "int8"))
    t.append(TensorSpec(Kind.CLS_RQ, GLOBAL, (sl.n_vocab, 2), "int32"))
    for l in range(cfg.n_layers):
        t += [
            TensorSpec(Kind.ATT_NORM, l, (D,), "int32"),
            TensorSpec(Kind.WQ, l, (nq, D), "int8"), TensorSpec(Kind.WQ_RQ, l, (nq, 2), "int32"),
            TensorSpec(Kind.WK, l, (nkv, D), "int8"), TensorSpec(Kind.WK_RQ, l, (nkv, 2), "int32"),
            TensorSpec(Kind.WV, l, (nkv, D), "int8"), TensorSpec(Kind.WV_RQ, l, (nkv, 2), "int32"),
            TensorSpec(Kind.WO, l, (D, nq), "int8"), TensorSpec(Kind.WO_RQ, l, (D, 2), "int32"),
            TensorSpec(Kind.FFN_NORM, l, (D,), "int32"),
            TensorSpec(Kind.W1, l, (sl.n_ffn, D), "int8"), TensorSpec(Kind.W1_RQ, l, (sl.n_ffn, 2), "int32"),
            TensorSpec(Kind.W3, l, (sl.n_ffn, D), "int8"), TensorSpec(Kind.W3_RQ, l, (sl.n_ffn, 2), "int32"),
            TensorSpec(Kind.W2, l, (D, sl.n_ffn), "int8"), TensorSpec(Kind.W2_RQ, l, (D, 2), "int32"),
            TensorSpec(Kind.SILU_LUT, l, (256,), "int32"),
            TensorSpec(Kind.LAYER_PARAMS, l, (6,), "int32"),
        ]
    return t


def data_bytes(cfg, sl: ChipSlice, context: int) -> dict[str, int]:
    """Working memory a chip needs at run time, sized as the firmware sizes its static buffers."""
    D, hs = cfg.dim, cfg.head_size
    kv = 2 * cfg.n_layers * context * sl.n_kv * hs
    act = (4 * D * 4  # residual, all-reduce buffer and scratch (int32), normed input (int8, padded)
           + sl.n_heads * hs * 6  # q (int8) and attention output (int32 + int8)
           + 2 * sl.n_kv * hs  # k, v (int8)
           + 4 * context  # attention scores / probabilities (int32) of one head
           + sl.n_ffn * 10  # h1, h3 (int32), their int8 forms, the gate
           + 4 * sl.n_vocab)  # this chip's logits (int32)
    return {"kv_cache": kv, "activations": act}


@dataclass
class ChipPlan:
    slice: ChipSlice
    tensors: list[TensorSpec]
    data: dict[str, int]
    data_placement: dict[str, str]
    memory_use: dict[str, int]
    macs_per_token: int
    onchip_read_bytes_per_token: int
    offchip_bytes_per_token: int
    link_bytes_per_token: int

    @property
    def rank(self) -> int:
        return self.slice.rank

    @property
    def onchip_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors if t.onchip)

    @property
    def offchip_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors if not t.onchip)

    @property
    def shard_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


@dataclass
class Plan:
    config: object
    world: int
    profile: object
    context: int
    chips: list[ChipPlan] = field(default_factory=list)

    @property
    def offchip_bytes_per_token(self) -> int:
        return sum(c.offchip_bytes_per_token for c in self.chips)

    def plan_id(self, model_hash: str) -> str:
        """Identity of what the chips run: model content, world, profile, context and shard format."""
        key = json.dumps({"model": model_hash, "world": self.world, "profile": self.profile.name,
                          "context": self.context, "format": SHARD_FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()

    def summary(self) -> dict:
        cfg = self.config
        return {
            "model": cfg.name, "synthetic_weights": bool(cfg.synthetic), "profile": self.profile.name,
            "world": self.world, "context": self.context,
            "offchip_bytes_per_token": self.offchip_bytes_per_token,
            "link_bytes_per_token": sum(c.link_bytes_per_token for c in self.chips),
            "chips": [{
                "rank": c.rank, "onchip_bytes": c.onchip_bytes, "offchip_bytes": c.offchip_bytes,
                "data_bytes": sum(c.data.values()), "memory_use": c.memory_use,
                "memory_size": {m.name: m.bytes for m in self.profile.memories},
                "macs_per_token": c.macs_per_token,
                "onchip_read_bytes_per_token": c.onchip_read_bytes_per_token,
                "offchip_bytes_per_token": c.offchip_bytes_per_token,
                "allreduce_bytes_per_token": c.link_bytes_per_token,
                "heads": [c.slice.head_start, c.slice.head_start + c.slice.n_heads],
                "ffn": [c.slice.ffn_start, c.slice.ffn_start + c.slice.n_ffn],
                "vocab": [c.slice.vocab_start, c.slice.vocab_start + c.slice.n_vocab],
            } for c in self.chips],
        }


def allreduce_bytes_per_token(cfg, world: int) -> int:
    """Bytes one chip sends per token: 2 ring all-reduces of D int32 per block plus the embedding broadcast."""
    if world == 1:
        return 0
    ring = 2 * (world - 1) * ((cfg.dim * 4 + world - 1) // world)
    return 2 * cfg.n_layers * ring + cfg.dim * 4 + 8 * (world - 1)


def place(profile, data: dict[str, int], tensors: list[TensorSpec], no_fit) -> tuple[dict[str, str], dict[str, int]]:
    """The memory planner: working data first (on-chip data memory, else off-chip), then the tensors.

    Small tensors (tables, requantization parameters) go first so they always stay on chip; then the
    weight matrices largest first, which packs the on-chip weight memories best (first-fit decreasing).
    Sets each tensor's placement; returns where each data item went and the bytes used per memory.
    Calls no_fit() (which returns the error to raise) when something fits nowhere."""
    free = {m.name: m.bytes for m in profile.memories}
    data_place = {}
    for what, nbytes in sorted(data.items(), key=lambda kv: kv[1]):
        home = next((m.name for m in profile.onchip if "data" in m.holds and free[m.name] >= nbytes), None) or \
            next((m.name for m in profile.offchip if "data" in m.holds and free[m.name] >= nbytes), None)
        if home is None:
            raise no_fit()
        free[home] -= nbytes
        data_place[what] = home
    small = sorted((t for t in tensors if t.nbytes < SMALL_TENSOR), key=lambda t: t.nbytes)
    large = sorted((t for t in tensors if t.nbytes >= SMALL_TENSOR), key=lambda t: -t.nbytes)
    for t in small + large:
        home = next((m for m in profile.onchip if "weights" in m.holds and free[m.name] >= t.nbytes), None) or \
            next((m for m in profile.offchip if "weights" in m.holds and free[m.name] >= t.nbytes), None)
        if home is None:
            raise no_fit()
        free[home.name] -= t.nbytes
        t.placement, t.onchip = home.name, home.kind == "onchip"
    return data_place, {m.name: m.bytes - free[m.name] for m in profile.memories}


def _place(profile, cfg, sl: ChipSlice, context: int) -> ChipPlan:
    data = data_bytes(cfg, sl, context)
    tensors = tensor_specs(cfg, sl)
    data_place, use = place(profile, data, tensors, lambda: _no_fit(profile, cfg, sl.world, context))

    def per_token(t: TensorSpec) -> int:
        """Bytes of t read per token: weights entirely, except a non-tied embedding (one row)."""
        if t.kind == Kind.EMBED and not cfg.shared_classifier:
            return cfg.dim
        if t.kind == Kind.EMBED_RQ:
            return 8
        return t.nbytes

    kv_avg = data["kv_cache"] // 2  # attention reads on average half the cache over a full context
    kv_off = profile.memory(data_place["kv_cache"]).kind == "offchip"
    on = sum(per_token(t) for t in tensors if t.onchip) + (0 if kv_off else kv_avg)
    off = sum(per_token(t) for t in tensors if not t.onchip) + (kv_avg if kv_off else 0)
    weights = [t for t in tensors if t.kind in WEIGHT_KINDS and t.kind != Kind.EMBED]
    macs = sum(t.shape[0] * t.shape[1] for t in weights)
    if cfg.shared_classifier:
        macs += sl.n_vocab * cfg.dim
    macs += cfg.n_layers * 2 * sl.n_heads * cfg.head_size * (context // 2)
    return ChipPlan(sl, tensors, data, data_place, use, macs, on, off, allreduce_bytes_per_token(cfg, sl.world))


def fits(place_chip, slices) -> bool:
    """Whether every chip of a split can be placed (place_chip raises InputError when one cannot)."""
    try:
        for sl in slices:
            place_chip(sl)
    except InputError:
        return False
    return True


def no_fit_error(cfg, profile, world: int, need_bytes: int, fits_on, candidates, what: str,
                 fallback: str) -> InputError:
    """The planner's refusal, naming the smallest larger chip count in candidates that fits."""
    capacity = sum(m.bytes for m in profile.memories)
    fit = next((n for n in candidates if n > world and fits_on(n)), None)
    hint = f"it fits on {fit} chips (--chips {fit})" if fit else fallback
    return InputError(f"{cfg.name} does not fit on {world} {profile.name} chip(s): a chip needs about "
                      f"{need_bytes / 2**20:.1f} MiB of weights plus its {what}, and has "
                      f"{capacity / 2**20:.1f} MiB in all; {hint}")


def _no_fit(profile, cfg, world: int, context: int) -> InputError:
    need = sum(t.nbytes for t in tensor_specs(cfg, make_slices(cfg, world)[0]))
    counts = [n for n in range(1, cfg.n_kv_heads + 1) if cfg.n_kv_heads % n == 0]
    return no_fit_error(cfg, profile, world, need,
                        lambda n: fits(lambda sl: _place(profile, cfg, sl, context), make_slices(cfg, n)),
                        counts, "KV cache",
                        "no chip count that divides its KV heads fits; use a chip profile with more memory")


def make_plan(cfg, world: int, profile, context: int | None = None) -> Plan:
    if getattr(cfg, "kind", "decoder") == "encoder":
        from orchestrator.partition.split_encoder import make_encoder_plan
        return make_encoder_plan(cfg, world, profile, context)
    check_world(cfg, world)
    context = int(context or cfg.seq_len)
    if not 1 <= context <= cfg.seq_len:
        raise InputError(f"--context must be between 1 and the model's {cfg.seq_len} positions, got {context}")
    plan = Plan(cfg, world, profile, context)
    plan.chips = [_place(profile, cfg, sl, context) for sl in make_slices(cfg, world)]
    return plan
