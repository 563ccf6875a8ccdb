"""Tensor-parallel split of a BERT-family encoder over N chips, and its memory plan (docs/encoders.md).

Chip r holds attention heads [r*H/N, (r+1)*H/N) (query/key/value rows, the matching input columns of
the output projection), FFN hidden units [r*F/N, (r+1)*F/N) of every stacked FFN (rows of W1, input
columns of W2), vocabulary rows [r*V/N, (r+1)*V/N) of the word embedding, and hidden columns
[r*D/N, (r+1)*D/N) of the position and segment embeddings. MobileBERT's 512-wide stream between
blocks is itself split by those columns: the trigram projection and the output bottleneck by output
rows (each chip computes its own columns, no message), the input bottlenecks and the value projection
by input columns (int32 partial sums, one all-reduce). Nothing is stored twice; small parameters
(requantization pairs and biases of full-width rows, norm gains, tables) are replicated.

Tensor kinds of model kind 2 start at 64 (docs/shard-format.md, "Encoder shards").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.errors import InputError
from orchestrator.partition.plan import ChipPlan, Plan, TensorSpec, fits, no_fit_error, place
from orchestrator.partition.split import GLOBAL, split_range

# name -> (kind, split rule). Rules: rep (replicated), vocab (rows by vocabulary), hrows / hcols (rows /
# columns by the chip's hidden columns), qrows / qcols (by the chip's heads), frows / fcols (by FFN units).
GLOBAL_TENSORS = {
    "exp2": (64, "rep"), "word": (65, "vocab"), "word_rq": (66, "vocab"), "pos": (67, "hcols"), "pos_rq": (68, "rep"),
    "type": (69, "hcols"), "type_rq": (70, "rep"), "proj": (71, "hrows"), "proj_rqb": (72, "hrows"),
    "emb_norm": (73, "hrows*"), "emb_params": (74, "rep"),
}
LAYER_TENSORS = {
    "in": (80, "hcols"), "in_rqb": (81, "rep"), "bin_norm": (82, "rep"), "batt_norm": (83, "rep"),
    "wq": (84, "qrows"), "wq_rqb": (85, "qrows"), "wk": (86, "qrows"), "wk_rqb": (87, "qrows"),
    "wv": (88, "qrows"), "wv_rqb": (89, "qrows"), "wo": (90, "qcols"), "wo_rqb": (91, "rep"), "att_norm": (92, "rep"),
    "bout": (93, "hrows"), "bout_rqb": (94, "hrows"), "bout_norm": (95, "hrows"), "params": (96, "rep"),
}
FFN_TENSORS = {"w1": (0, "frows"), "w1_rqb": (1, "frows"), "w2": (2, "fcols"), "w2_rqb": (3, "rep"),
               "norm": (4, "rep"), "lut": (5, "rep"), "params": (6, "rep"), "cls": (7, "frows")}
ACT_CLASSES = 6
FFN_KIND_BASE, FFN_KIND_STRIDE = 100, 8
ENC_WEIGHT_NAMES = {"word", "pos", "type", "proj", "in", "wq", "wk", "wv", "wo", "bout", "w1", "w2"}
INT8_NAMES = ENC_WEIGHT_NAMES | {"lut", "cls"}

KIND_NAMES: dict[int, str] = {k: n for n, (k, _) in {**GLOBAL_TENSORS, **LAYER_TENSORS}.items()}
for _f in range(8):
    for _n, (_j, _) in FFN_TENSORS.items():
        KIND_NAMES[FFN_KIND_BASE + FFN_KIND_STRIDE * _f + _j] = f"ffn{_f}.{_n}"


def enc_tensor_name(kind: int, layer: int) -> str:
    n = KIND_NAMES.get(int(kind), f"kind{int(kind)}")
    return n if layer == GLOBAL else f"layers.{layer}.{n}"


def tensor_names(cfg) -> list[tuple[str, int, int, str]]:
    """(whole-model name, kind, layer, rule) of every tensor, in shard order."""
    mb = cfg.variant == "mobilebert"
    out = []
    for n, (k, rule) in GLOBAL_TENSORS.items():
        if n in ("proj", "proj_rqb") and not mb:
            continue
        if rule == "hrows*":
            rule = "hrows" if cfg.norm == "nonorm" else "rep"
        out.append((n, k, GLOBAL, rule))
    for l in range(cfg.n_layers):
        for n, (k, rule) in LAYER_TENSORS.items():
            if n in ("in", "in_rqb", "bin_norm", "batt_norm", "bout", "bout_rqb", "bout_norm") and not mb:
                continue
            if n in ("wv", "wv_rqb") and mb:
                continue  # MobileBERT's values come from the input bottleneck product
            out.append((f"layers.{l}.{n}", k, l, rule))
        for f in range(cfg.n_ffn):
            for n, (j, rule) in FFN_TENSORS.items():
                out.append((f"layers.{l}.ffn{f}.{n}", FFN_KIND_BASE + FFN_KIND_STRIDE * f + j, l, rule))
    return out


@dataclass(frozen=True)
class EncSlice:
    rank: int
    world: int
    head_start: int
    n_heads: int
    ffn_start: int
    n_ffn: int
    vocab_start: int
    n_vocab: int
    col_start: int
    n_cols: int

    @property
    def decoder_fields(self) -> tuple[int, ...]:
        """The 8 slice fields of the shard header (KV heads = heads for an encoder)."""
        return (self.head_start, self.n_heads, self.head_start, self.n_heads, self.ffn_start, self.n_ffn,
                self.vocab_start, self.n_vocab)


def check_world_encoder(cfg, world: int) -> None:
    if world < 1:
        raise InputError(f"--chips must be at least 1, got {world}")
    if cfg.n_heads % world:
        valid = [n for n in range(1, cfg.n_heads + 1) if cfg.n_heads % n == 0]
        raise InputError(f"cannot split {cfg.name} over {world} chips: the chip count must divide its {cfg.n_heads} "
                         f"attention heads; use one of {', '.join(map(str, valid))}")


def make_enc_slices(cfg, world: int) -> list[EncSlice]:
    check_world_encoder(cfg, world)
    out = []
    for r in range(world):
        hs, hn = split_range(cfg.n_heads, world, r)
        fs, fn = split_range(cfg.intermediate, world, r)
        vs, vn = split_range(cfg.vocab_size, world, r)
        cs, cn = split_range(cfg.hidden, world, r)
        out.append(EncSlice(r, world, hs, hn, fs, fn, vs, vn, cs, cn))
    return out


def _cut(arr: np.ndarray, rule: str, sl: EncSlice, hs: int) -> np.ndarray:
    q0, q1 = sl.head_start * hs, (sl.head_start + sl.n_heads) * hs
    f0, f1 = sl.ffn_start, sl.ffn_start + sl.n_ffn
    c0, c1 = sl.col_start, sl.col_start + sl.n_cols
    cut = {"rep": lambda a: a, "vocab": lambda a: a[sl.vocab_start:sl.vocab_start + sl.n_vocab],
           "hrows": lambda a: a[c0:c1], "hcols": lambda a: a[:, c0:c1], "qrows": lambda a: a[q0:q1],
           "qcols": lambda a: a[:, q0:q1], "frows": lambda a: a[f0:f1], "fcols": lambda a: a[:, f0:f1]}[rule]
    return np.ascontiguousarray(cut(arr))


def _whole_shapes(cfg) -> dict[str, tuple[int, ...]]:
    """Shape of every whole-model integer tensor (what quantize_encoder produces)."""
    H, B, F, E, V = cfg.hidden, cfg.inner, cfg.intermediate, cfg.embed_width, cfg.vocab_size
    s = {"exp2": (257,), "word": (V, E), "word_rq": (V, 2), "pos": (cfg.max_positions, H), "pos_rq": (cfg.max_positions, 2),
         "type": (cfg.type_vocab_size, H), "type_rq": (cfg.type_vocab_size, 2),
         "proj": (H, 3 * E if cfg.trigram else E), "proj_rqb": (H, 3), "emb_norm": (H, 5), "emb_params": (8,)}
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        s.update({p + "in": (3 * B, H), p + "in_rqb": (3 * B, 3), p + "bin_norm": (B, 5), p + "batt_norm": (B, 5),
                  p + "wq": (B, B), p + "wq_rqb": (B, 3), p + "wk": (B, B), p + "wk_rqb": (B, 3),
                  p + "wv": (B, H), p + "wv_rqb": (B, 3), p + "wo": (B, B), p + "wo_rqb": (B, 3), p + "att_norm": (B, 5),
                  p + "bout": (H, B), p + "bout_rqb": (H, 3), p + "bout_norm": (H, 5), p + "params": (32,)})
        for f in range(cfg.n_ffn):
            q = f"{p}ffn{f}."
            s.update({q + "w1": (F, B), q + "w1_rqb": (F, 3), q + "w2": (B, F), q + "w2_rqb": (B, 3),
                      q + "norm": (B, 5), q + "lut": (ACT_CLASSES, 256), q + "params": (8,), q + "cls": (F,)})
    return s


def _dtype(name: str) -> str:
    base = name.rsplit(".", 1)[-1]
    return "int8" if base in INT8_NAMES else "int32"


def _cut_shape(shape: tuple[int, ...], rule: str, sl: EncSlice, hs: int) -> tuple[int, ...]:
    nq, nf, nc = sl.n_heads * hs, sl.n_ffn, sl.n_cols
    if rule == "rep":
        return shape
    if rule == "vocab":
        return (sl.n_vocab,) + shape[1:]
    first = {"hrows": nc, "qrows": nq, "frows": nf}
    if rule in first:
        return (first[rule],) + shape[1:]
    return (shape[0], {"hcols": nc, "qcols": nq, "fcols": nf}[rule])


def enc_tensor_specs(cfg, sl: EncSlice) -> list[TensorSpec]:
    shapes = _whole_shapes(cfg)
    return [TensorSpec(kind, layer, _cut_shape(shapes[name], rule, sl, cfg.head_size), _dtype(name))
            for name, kind, layer, rule in tensor_names(cfg)]


def enc_chip_tensors(qm, sl: EncSlice) -> list[tuple[int, int, np.ndarray]]:
    """(kind, layer, array) of every tensor chip sl.rank stores, in shard order."""
    cfg = qm.config
    out = []
    for name, kind, layer, rule in tensor_names(cfg):
        arr = qm.tensors.get(name)
        if arr is None:
            raise AssertionError(f"quantized encoder lacks {name}")
        out.append((kind, layer, _cut(arr, rule, sl, cfg.head_size)))
    return out


# --- memory plan --------------------------------------------------------------------------------

def encoder_data_bytes(cfg, sl: EncSlice, context: int) -> dict[str, int]:
    """Working memory of one inference of `context` tokens, as firmware/runtime/encoder.c carves it."""
    S, H, B, E = context, cfg.hidden, cfg.inner, cfg.embed_width
    mb = cfg.variant == "mobilebert"
    hn = sl.n_cols if mb else H
    nq, nf = sl.n_heads * cfg.head_size, sl.n_ffn
    part = max(H, B, 3 * B if mb else 0, E)
    rowbuf = max(nq, nf, hn, B, 3 * E if mb else 0, part)
    a8 = lambda n: (n + 7) // 8 * 8  # noqa: E731
    stream = a8(4 * S * hn) + a8(S * hn)  # x32, x8
    block = (a8(4 * S * B) * (2 if mb else 1) + a8(S * B)  # y32 (+ a32), y8
             + 4 * a8(S * nq) + a8(S * (E if mb else 0)))  # q, k, v, o, e8
    scratch = (a8(4 * S * part) + a8(4 * rowbuf) + a8(rowbuf) + a8(2 * rowbuf) + a8(nf) + a8(4 * S) + a8(4 * hn)
               + 16384)
    return {"activations": stream + block, "scratch": scratch}


def _macs(cfg, sl: EncSlice, S: int) -> int:
    H, B, E = cfg.hidden, cfg.inner, cfg.embed_width
    mb = cfg.variant == "mobilebert"
    nq, nf, nc = sl.n_heads * cfg.head_size, sl.n_ffn, sl.n_cols
    per_layer = S * nq * B * 2 + S * nq * (0 if mb else H) + 2 * S * S * nq + S * B * nq + cfg.n_ffn * 2 * S * B * nf
    if mb:
        per_layer += S * 3 * B * nc + S * nc * B
    emb = S * nc * (3 * E if cfg.trigram else E) if mb else 0
    return emb + cfg.n_layers * per_layer


def allreduce_bytes_per_inference(cfg, world: int, S: int) -> int:
    """Bytes one chip sends per inference: ring all-reduces (reduce-scatter + all-gather) of int32."""
    if world == 1:
        return 0
    ring = lambda n: 2 * (world - 1) * ((n * 4 + world - 1) // world)  # noqa: E731
    B = cfg.inner
    if cfg.variant == "mobilebert":
        per_layer = ring(S * 3 * B) + ring(S * B) + cfg.n_ffn * ring(S * B)
        return ring(S * cfg.embed_width) + cfg.n_layers * per_layer
    return ring(S * cfg.hidden) + cfg.n_layers * 2 * ring(S * cfg.hidden)


def allreduces_per_layer(cfg) -> int:
    return (2 + cfg.n_ffn) if cfg.variant == "mobilebert" else 2


def _place_encoder(profile, cfg, sl: EncSlice, context: int) -> ChipPlan:
    data = encoder_data_bytes(cfg, sl, context)
    tensors = enc_tensor_specs(cfg, sl)
    data_place, use = place(profile, data, tensors, lambda: _no_fit(profile, cfg, sl.world, context))

    def per_inference(t: TensorSpec) -> int:
        # embedding tables are read a row per token; everything else once per inference
        if t.kind in (GLOBAL_TENSORS["word"][0], GLOBAL_TENSORS["pos"][0]):
            return min(t.nbytes, context * t.shape[1])
        return t.nbytes

    S = max(context, 1)
    on = sum(per_inference(t) for t in tensors if t.onchip)
    off = sum(per_inference(t) for t in tensors if not t.onchip)
    # ChipPlan's figures are per token: one inference of `context` tokens divided by the tokens
    return ChipPlan(sl, tensors, data, data_place, use, _macs(cfg, sl, S) // S, on // S, off // S,
                    allreduce_bytes_per_inference(cfg, sl.world, S) // S)


def _no_fit(profile, cfg, world: int, context: int) -> InputError:
    need = sum(t.nbytes for t in enc_tensor_specs(cfg, make_enc_slices(cfg, world)[0]))
    counts = [n for n in range(1, cfg.n_heads + 1) if cfg.n_heads % n == 0]
    return no_fit_error(cfg, profile, world, need,
                        lambda n: fits(lambda sl: _place_encoder(profile, cfg, sl, context), make_enc_slices(cfg, n)),
                        counts, "activations", "use a shorter --context or a chip profile with more memory")


def make_encoder_plan(cfg, world: int, profile, context: int | None = None) -> Plan:
    check_world_encoder(cfg, world)
    context = int(context or cfg.max_seq_len)
    if not 1 <= context <= cfg.max_seq_len:
        raise InputError(f"--context must be between 1 and {cfg.name}'s {cfg.max_seq_len} tokens, got {context}")
    plan = Plan(cfg, world, profile, context)
    plan.chips = [_place_encoder(profile, cfg, sl, context) for sl in make_enc_slices(cfg, world)]
    return plan
