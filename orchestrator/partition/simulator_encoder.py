"""numpy simulation of an encoder on N chips: each chip runs its shard's tensors with the integer spec
(orchestrator/quant/spec_bert.py), the collectives are explicit. With N = 1 this is the numpy int8
reference; the firmware (firmware/runtime/encoder.c) computes the same bits, phase by phase.

Per block (docs/encoders.md): BERT needs 2 all-reduces (after the attention output projection, after
the FFN's second product); MobileBERT 2 + n_ffn (the input bottleneck with the values, the attention
output, each stacked FFN). The embedding costs one more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.errors import InputError
from orchestrator.partition.split import GLOBAL
from orchestrator.partition.split_encoder import (
    FFN_KIND_BASE,
    FFN_KIND_STRIDE,
    FFN_TENSORS,
    GLOBAL_TENSORS,
    LAYER_TENSORS,
    EncSlice,
)
from orchestrator.quant import spec
from orchestrator.quant import spec_bert as sb


class EncChipSim:
    def __init__(self, cfg, sl: EncSlice, tensors: dict[tuple[int, int], np.ndarray]):
        self.cfg, self.sl = cfg, sl
        self.t = tensors
        self.mb = cfg.variant == "mobilebert"
        self.hs = cfg.head_size
        self.nq = sl.n_heads * self.hs
        self.q0 = sl.head_start * self.hs
        self.c0, self.c1 = sl.col_start, sl.col_start + sl.n_cols
        self.mats: dict[tuple[int, int], spec.ExactMatrix] = {}

    def g(self, name: str, layer: int = GLOBAL, ffn: int | None = None) -> np.ndarray:
        if ffn is not None:
            kind = FFN_KIND_BASE + FFN_KIND_STRIDE * ffn + FFN_TENSORS[name][0]
        else:
            kind = (GLOBAL_TENSORS if layer == GLOBAL else LAYER_TENSORS)[name][0]
        try:
            return self.t[(kind, layer)]
        except KeyError:
            raise InputError(f"chip {self.sl.rank}: tensor {name} (layer {layer}) is missing from its shard") from None

    def mm(self, x8: np.ndarray, name: str, layer: int = GLOBAL, ffn: int | None = None,
           cls: np.ndarray | None = None) -> np.ndarray:
        w = self.g(name, layer, ffn)
        if cls is not None and np.any(cls):
            return sb.matmul_s8e_s32(x8, cls, w)
        key = (id(w), 0)
        if key not in self.mats:
            self.mats[key] = spec.ExactMatrix(w)
        return sb.matmul_s8_s32(x8, self.mats[key])

    def stream_cls(self, layer: int) -> np.ndarray:
        """Exponent classes of the stream's int8 copy entering block `layer` (my columns for MobileBERT)."""
        if layer == 0:
            return self.g("emb_norm")[:, 4]
        if self.mb:
            return self.g("bout_norm", layer - 1)[:, 4]
        return self.g("norm", layer - 1, self.cfg.n_ffn - 1)[:, 4]

    # -- embedding ----------------------------------------------------------------------------
    def embed_partial(self, ids: np.ndarray, segs: np.ndarray) -> np.ndarray:
        cfg, sl = self.cfg, self.sl
        S = ids.shape[0]
        width = cfg.embed_width
        part = np.zeros((S, width), np.int64)
        mine = (ids >= sl.vocab_start) & (ids < sl.vocab_start + sl.n_vocab)
        if mine.any():
            part[mine] += sb.embed_rows_s32(self.g("word"), self.g("word_rq"), ids[mine] - sl.vocab_start)
        if not self.mb:
            part[:, self.c0:self.c1] += self._pos_type(S, segs)
        return part.astype(np.int32)

    def _pos_type(self, S: int, segs: np.ndarray) -> np.ndarray:
        pos = sb.embed_rows_s32(self.g("pos"), self.g("pos_rq"), np.arange(S))
        typ = sb.embed_rows_s32(self.g("type"), self.g("type_rq"), segs)
        return pos.astype(np.int64) + typ

    def embed_finish(self, acc: np.ndarray, segs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ep = self.g("emb_params")
        acc = np.clip(acc.astype(np.int64), -spec.RES_MAX, spec.RES_MAX)
        if self.mb:
            e8 = sb.requant_s8(acc, int(ep[0]), int(ep[1]))
            x = sb.trigram_s8(e8) if self.cfg.trigram else e8
            t = sb.requant_rqb(self.mm(x, "proj"), self.g("proj_rqb"), -spec.RES_MAX, spec.RES_MAX)
            t = np.clip(t + self._pos_type(acc.shape[0], segs), -spec.RES_MAX, spec.RES_MAX)
        else:
            t = acc
        x32 = sb.norm_s32_s32(self.cfg.norm, t, self.g("emb_norm"), int(ep[2]))
        return x32, sb.copy_s8(x32, self.g("emb_norm"))

    # -- blocks -------------------------------------------------------------------------------
    def in_partial(self, l: int, x8: np.ndarray) -> np.ndarray:
        return self.mm(x8, "in", l, cls=self.stream_cls(l))

    def in_finish(self, l: int, acc: np.ndarray):
        B, P = self.cfg.inner, self.g("params", l)
        rqb = self.g("in_rqb", l)
        a32 = sb.norm_s32_s32(self.cfg.norm, sb.add_rqb_s32(acc[:, :B], rqb[:B]), self.g("bin_norm", l), int(P[4]))
        s32 = sb.norm_s32_s32(self.cfg.norm, sb.add_rqb_s32(acc[:, B:2 * B], rqb[B:2 * B]), self.g("batt_norm", l), int(P[5]))
        s8 = sb.copy_s8(s32, self.g("batt_norm", l))
        v0, v1 = 2 * B + self.q0, 2 * B + self.q0 + self.nq
        v8 = sb.linear_rqb_s8(acc[:, v0:v1], rqb[v0:v1])
        return a32, s8, v8

    def attention_partial(self, l: int, qk8: np.ndarray, v8: np.ndarray | None, x8: np.ndarray, n_valid: int) -> np.ndarray:
        P = self.g("params", l)
        qk_cls = self.g("batt_norm", l)[:, 4] if self.mb else self.stream_cls(l)
        q = sb.linear_rqb_s8(self.mm(qk8, "wq", l, cls=qk_cls), self.g("wq_rqb", l))
        k = sb.linear_rqb_s8(self.mm(qk8, "wk", l, cls=qk_cls), self.g("wk_rqb", l))
        if v8 is None:
            v8 = sb.linear_rqb_s8(self.mm(x8, "wv", l, cls=self.stream_cls(l)), self.g("wv_rqb", l))
        hs = self.hs
        ctx = np.empty((q.shape[0], self.nq), np.int32)
        for h in range(self.sl.n_heads):
            c = slice(h * hs, (h + 1) * hs)
            ctx[:, c] = sb.attention_rows_s8(q[:, c], k[:, c], v8[:, c], n_valid, int(P[0]), int(P[1]), self.g("exp2"))
        o8 = sb.requant_s8(ctx, int(P[2]), int(P[3]))
        return self.mm(o8, "wo", l)

    def att_finish(self, l: int, acc: np.ndarray, res32: np.ndarray):
        P = self.g("params", l)
        t = sb.add_rqb_s32(acc, self.g("wo_rqb", l), res32, int(P[9]), int(P[10]))
        y32 = sb.norm_s32_s32(self.cfg.norm, t, self.g("att_norm", l), int(P[11]))
        return y32, sb.copy_s8(y32, self.g("att_norm", l))

    def y_cls(self, l: int, f: int) -> np.ndarray:
        """Exponent classes of the block's inner stream entering FFN f (or the output bottleneck, f = n_ffn)."""
        return self.g("att_norm", l)[:, 4] if f == 0 else self.g("norm", l, f - 1)[:, 4]

    def ffn_partial(self, l: int, f: int, y8: np.ndarray) -> np.ndarray:
        h8 = sb.linear_rqb_s8(self.mm(y8, "w1", l, f, cls=self.y_cls(l, f)), self.g("w1_rqb", l, f))
        cls = self.g("cls", l, f)
        g8 = sb.lut_cls_s8(h8, cls, self.g("lut", l, f))
        return self.mm(g8, "w2", l, f, cls=cls)

    def ffn_finish(self, l: int, f: int, acc: np.ndarray, y32: np.ndarray):
        fp = self.g("params", l, f)
        t = sb.add_rqb_s32(acc, self.g("w2_rqb", l, f), y32, int(fp[0]), int(fp[1]))
        y = sb.norm_s32_s32(self.cfg.norm, t, self.g("norm", l, f), int(fp[2]))
        return y, sb.copy_s8(y, self.g("norm", l, f))

    def out_bottleneck(self, l: int, y8: np.ndarray, h32: np.ndarray):
        P = self.g("params", l)
        t = sb.add_rqb_s32(self.mm(y8, "bout", l, cls=self.y_cls(l, self.cfg.n_ffn)), self.g("bout_rqb", l), h32,
                           int(P[14]), int(P[15]))
        x32 = sb.norm_s32_s32(self.cfg.norm, t, self.g("bout_norm", l), int(P[16]))
        return x32, sb.copy_s8(x32, self.g("bout_norm", l))

    def pooled_slice(self, x32: np.ndarray, n_valid: int) -> np.ndarray:
        """This chip's columns of the pooled int32 embedding."""
        p = sb.pool_s32(x32, n_valid, self.cfg.pooling)
        return p if self.mb else p[self.c0:self.c1]


@dataclass
class EncSimResult:
    pooled: np.ndarray  # int32 (hidden,): the chips' column slices in rank order
    allreduces: int
    allreduces_per_layer: float


class EncClusterSim:
    def __init__(self, chips: list[EncChipSim]):
        if not chips:
            raise InputError("no shards to simulate")
        self.chips = chips
        self.cfg = chips[0].cfg
        self.count = 0

    @classmethod
    def from_shards(cls, cfg, shards) -> "EncClusterSim":
        from orchestrator.partition.shard import enc_slice_of
        return cls([EncChipSim(cfg, enc_slice_of(s), s.tensors) for s in shards])

    def allreduce(self, parts: list[np.ndarray]) -> np.ndarray:
        self.count += 1
        total = np.zeros(parts[0].shape, np.int64)
        for p in parts:
            total += p
        return total.astype(np.int32)  # int32 wrap-around, like the firmware

    def run(self, ids, segments=None, n_valid: int | None = None, context: int | None = None) -> EncSimResult:
        from orchestrator.model.bert import check_inputs
        cfg = self.cfg
        ids, segs, n_valid = check_inputs(cfg, ids, segments, n_valid)
        if context is not None and ids.shape[0] > context:
            raise InputError(f"sequence of {ids.shape[0]} tokens exceeds the {context} the shards were planned for")
        chips = self.chips
        self.count = 0
        acc = self.allreduce([c.embed_partial(ids, segs) for c in chips])
        st = [c.embed_finish(acc, segs) for c in chips]  # (x32, x8) per chip
        for l in range(cfg.n_layers):
            if cfg.variant == "mobilebert":
                acc = self.allreduce([c.in_partial(l, st[i][1]) for i, c in enumerate(chips)])
                fin = [c.in_finish(l, acc) for c in chips]
                acc = self.allreduce([c.attention_partial(l, fin[i][1], fin[i][2], st[i][1], n_valid)
                                      for i, c in enumerate(chips)])
                ys = [c.att_finish(l, acc, fin[i][0]) for i, c in enumerate(chips)]
            else:
                acc = self.allreduce([c.attention_partial(l, st[i][1], None, st[i][1], n_valid) for i, c in enumerate(chips)])
                ys = [c.att_finish(l, acc, st[i][0]) for i, c in enumerate(chips)]
            for f in range(cfg.n_ffn):
                acc = self.allreduce([c.ffn_partial(l, f, ys[i][1]) for i, c in enumerate(chips)])
                ys = [c.ffn_finish(l, f, acc, ys[i][0]) for i, c in enumerate(chips)]
            if cfg.variant == "mobilebert":
                st = [c.out_bottleneck(l, ys[i][1], st[i][0]) for i, c in enumerate(chips)]
            else:
                st = ys
        pooled = np.concatenate([c.pooled_slice(st[i][0], n_valid) for i, c in enumerate(chips)])
        per_layer = (self.count - 1) / cfg.n_layers if cfg.n_layers else 0.0
        return EncSimResult(pooled, self.count, per_layer)


def embedding_from_pooled(cfg, pooled: np.ndarray, output_scale: float) -> np.ndarray:
    """Host side: the float sentence embedding from the chips' int32 pooled values (then L2 norm if the model says so)."""
    v = np.asarray(pooled, dtype=np.float64) * float(output_scale)
    if cfg.normalize:
        v = v / max(float(np.linalg.norm(v)), 1e-12)
    return v.astype(np.float32)
