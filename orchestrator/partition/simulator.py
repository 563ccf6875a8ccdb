"""A numpy simulation of the N-chip cluster: each chip runs its shard with the integer spec, and the
collectives (broadcast, the two all-reduces per block, the argmax reduce) are explicit.

With N = 1 this is the numpy int8 reference. The firmware must produce the same tokens and logits.
Phases mirror the firmware's trace phases so the two can be compared step by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orchestrator.errors import InputError
from orchestrator.partition.shard import FLAG_SHARED_CLASSIFIER, Shard
from orchestrator.partition.split import Kind
from orchestrator.quant import spec

BOS = 1


class ChipSim:
    """One chip: its shard's tensors, its KV cache, and the kernels of the integer spec."""

    def __init__(self, shard: Shard):
        h = shard.header
        self.rank, self.world = h.rank, h.world
        (self.dim, self.hidden, self.n_layers, self.n_heads, self.n_kv_heads, self.vocab, self.context) = h.config
        (self.head_start, self.n_local_heads, self.kv_start, self.n_local_kv,
         self.ffn_start, self.n_local_ffn, self.vocab_start, self.n_local_vocab) = h.slice
        self.hs = self.dim // self.n_heads
        self.kv_mul = self.n_heads // self.n_kv_heads
        self.eps_q = h.eps_q
        self.temp_mult, self.temp_shift = h.temp_mult, h.temp_shift
        g = shard.get
        self.rope_steps = g(Kind.ROPE_STEPS)
        self.sin = g(Kind.SIN_TABLE)
        self.exp2 = g(Kind.EXP2_TABLE)
        self.final_norm = g(Kind.FINAL_NORM)
        self.embed = g(Kind.EMBED)
        self.embed_rq = g(Kind.EMBED_RQ)
        self.cls = spec.ExactMatrix(self.embed if h.flags & FLAG_SHARED_CLASSIFIER else g(Kind.CLS))
        self.cls_rq = g(Kind.CLS_RQ)
        self.layers = []
        for l in range(self.n_layers):
            self.layers.append({
                "att_norm": g(Kind.ATT_NORM, l), "ffn_norm": g(Kind.FFN_NORM, l),
                **{k: spec.ExactMatrix(g(kind, l)) for k, kind in
                   (("wq", Kind.WQ), ("wk", Kind.WK), ("wv", Kind.WV), ("wo", Kind.WO), ("w1", Kind.W1),
                    ("w3", Kind.W3), ("w2", Kind.W2))},
                **{k: g(kind, l) for k, kind in
                   (("wq_rq", Kind.WQ_RQ), ("wk_rq", Kind.WK_RQ), ("wv_rq", Kind.WV_RQ), ("wo_rq", Kind.WO_RQ),
                    ("w1_rq", Kind.W1_RQ), ("w3_rq", Kind.W3_RQ), ("w2_rq", Kind.W2_RQ))},
                "silu": g(Kind.SILU_LUT, l), "params": g(Kind.LAYER_PARAMS, l),
            })
        kvd = self.n_local_kv * self.hs
        self.k_cache = np.zeros((self.n_layers, self.context, kvd), dtype=np.int8)
        self.v_cache = np.zeros((self.n_layers, self.context, kvd), dtype=np.int8)

    # -- phases -----------------------------------------------------------------------------------
    def owns_token(self, token: int) -> bool:
        return self.vocab_start <= token < self.vocab_start + self.n_local_vocab

    def embed_row(self, token: int) -> np.ndarray:
        r = token - self.vocab_start
        m, s = self.embed_rq[r]
        return spec.requantize(self.embed[r].astype(np.int64), m, s, -spec.RES_MAX, spec.RES_MAX).astype(np.int32)

    def attention_partial(self, l: int, x: np.ndarray, pos: int) -> np.ndarray:
        """Attention of this chip's heads; returns the int32 partial sums of Wo (all-reduce #1)."""
        L = self.layers[l]
        xn = spec.rmsnorm_s32_s8(x, L["att_norm"], self.eps_q).astype(np.float32)
        q = spec.requantize_s8(L["wq"] @ xn, L["wq_rq"][:, 0], L["wq_rq"][:, 1])
        k = spec.requantize_s8(L["wk"] @ xn, L["wk_rq"][:, 0], L["wk_rq"][:, 1])
        v = spec.requantize_s8(L["wv"] @ xn, L["wv_rq"][:, 0], L["wv_rq"][:, 1])
        q = spec.rope_s8(q, pos, self.rope_steps, self.sin)
        k = spec.rope_s8(k, pos, self.rope_steps, self.sin)
        self.k_cache[l, pos] = k
        self.v_cache[l, pos] = v
        soft_mult, soft_shift, o_mult, o_shift = (int(v) for v in L["params"][:4])
        hs = self.hs
        out = np.empty(self.n_local_heads * hs, dtype=np.int32)
        for h in range(self.n_local_heads):
            kvh = (self.head_start + h) // self.kv_mul - self.kv_start
            out[h * hs:(h + 1) * hs] = spec.attention_head_s8(
                q[h * hs:(h + 1) * hs], self.k_cache[l, :pos + 1, kvh * hs:(kvh + 1) * hs],
                self.v_cache[l, :pos + 1, kvh * hs:(kvh + 1) * hs], soft_mult, soft_shift, self.exp2)
        o = spec.requantize_s8(out, o_mult, o_shift).astype(np.float32)
        return L["wo"] @ o

    def ffn_partial(self, l: int, x: np.ndarray) -> np.ndarray:
        """This chip's FFN hidden units; returns the int32 partial sums of W2 (all-reduce #2)."""
        L = self.layers[l]
        xn = spec.rmsnorm_s32_s8(x, L["ffn_norm"], self.eps_q).astype(np.float32)
        h1 = spec.requantize_s8(L["w1"] @ xn, L["w1_rq"][:, 0], L["w1_rq"][:, 1])
        h3 = spec.requantize_s8(L["w3"] @ xn, L["w3_rq"][:, 0], L["w3_rq"][:, 1])
        g = spec.swiglu_s8(h1, h3, L["silu"], int(L["params"][4]), int(L["params"][5])).astype(np.float32)
        return L["w2"] @ g

    def residual_add(self, l: int, x: np.ndarray, acc: np.ndarray, which: str) -> np.ndarray:
        rq = self.layers[l]["wo_rq" if which == "att" else "w2_rq"]
        return spec.residual_add(x, acc, rq[:, 0], rq[:, 1])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """int32 logits of this chip's vocabulary rows, in the common logit scale."""
        xn = spec.rmsnorm_s32_s8(x, self.final_norm, self.eps_q).astype(np.float32)
        acc = self.cls @ xn
        return spec.requantize(acc, self.cls_rq[:, 0], self.cls_rq[:, 1], -spec.LOGIT_MAX, spec.LOGIT_MAX).astype(np.int32)


@dataclass
class SimResult:
    tokens: list[int]  # generated ids, prompt excluded
    logits: np.ndarray  # int32 logits (V,) of the last step, all chips' slices concatenated
    allreduces_per_block: int


class ClusterSim:
    """N ChipSims and explicit collectives. Generation semantics match the firmware's RUN command."""

    def __init__(self, shards: list[Shard]):
        if not shards:
            raise InputError("no shards to simulate")
        self.chips = [ChipSim(s) for s in shards]
        self.world = len(self.chips)
        self.allreduce_count = 0

    def allreduce(self, partials: list[np.ndarray]) -> np.ndarray:
        """Sum of int32 partial sums in rank order (int32 wrap-around, like the firmware)."""
        self.allreduce_count += 1
        total = np.zeros_like(partials[0], dtype=np.int64)
        for p in partials:
            total += p
        return total.astype(np.int32)

    def step(self, token: int, pos: int) -> list[np.ndarray]:
        """One forward pass; returns each chip's int32 logits slice."""
        owner = next(c for c in self.chips if c.owns_token(token))
        x = owner.embed_row(token)  # broadcast: every chip gets the owner's residual row
        xs = [x.copy() for _ in self.chips]
        for l in range(self.chips[0].n_layers):
            att = self.allreduce([c.attention_partial(l, xs[i], pos) for i, c in enumerate(self.chips)])
            xs = [c.residual_add(l, xs[i], att, "att") for i, c in enumerate(self.chips)]
            ffn = self.allreduce([c.ffn_partial(l, xs[i]) for i, c in enumerate(self.chips)])
            xs = [c.residual_add(l, xs[i], ffn, "ffn") for i, c in enumerate(self.chips)]
        return [c.logits(xs[i]) for i, c in enumerate(self.chips)]

    def next_token(self, slices: list[np.ndarray], temp_q16: int, rng: spec.XorShift64 | None) -> int:
        # local argmax on every chip, then the max-reduce with ties to the lowest id
        best = [(int(s.max()), c.vocab_start + spec.argmax_first(s)) for c, s in zip(self.chips, slices)]
        gmax, gidx = max(best, key=lambda vi: (vi[0], -vi[1]))
        if temp_q16 == 0:
            return gidx
        c0 = self.chips[0]
        mult, shift = spec.temperature_multiplier(c0.temp_mult, c0.temp_shift, temp_q16)
        weights = [spec.sample_weights(s, gmax, mult, shift, c0.exp2) for s in slices]
        sums = [int(w.sum()) for w in weights]  # the firmware all-gathers these per-chip sums
        target = rng.u64() % sum(sums)
        for c, w, s in zip(self.chips, weights, sums):
            if target < s:
                return c.vocab_start + int(np.searchsorted(np.cumsum(w), target, side="right"))
            target -= s
        raise AssertionError("sampling target beyond the total")

    def generate(self, prompt_ids: list[int], n_tokens: int, temp_q16: int = 0, seed: int = 0) -> SimResult:
        """BOS, then the prompt forced, then n_tokens generated (no early stop on BOS)."""
        c0 = self.chips[0]
        prompt = [BOS] + list(prompt_ids)
        if len(prompt) + n_tokens - 1 > c0.context:
            raise InputError(f"prompt plus tokens ({len(prompt) + n_tokens - 1} positions) exceed the shard's "
                             f"context of {c0.context}; use fewer tokens or plan a longer --context")
        for t in prompt:
            if not 0 <= t < c0.vocab:
                raise InputError(f"prompt id {t} is outside the vocabulary (0..{c0.vocab - 1})")
        rng = spec.XorShift64(seed) if temp_q16 else None
        for c in self.chips:
            c.k_cache[:] = 0
            c.v_cache[:] = 0
        out: list[int] = []
        token, pos = prompt[0], 0
        slices: list[np.ndarray] = []
        self.allreduce_count = 0
        while len(out) < n_tokens:
            slices = self.step(token, pos)
            if pos + 1 < len(prompt):
                token = prompt[pos + 1]
            else:
                token = self.next_token(slices, temp_q16, rng)
                out.append(token)
            pos += 1
        per_block = self.allreduce_count // (pos * c0.n_layers) if pos else 0
        return SimResult(out, np.concatenate(slices) if slices else np.zeros(0, np.int32), per_block)
