"""Float32 reference forward pass with llama2.c run.c semantics, one token at a time with a KV cache.

Each step mirrors run.c's forward(): the float32 operation order of RMSNorm, RoPE, softmax and
SiLU is kept; only the summation order inside dot products differs (BLAS), which is why results
agree with run.c to float32 rounding, not bit-for-bit.

The observer hook exposes every activation the int8 calibration needs. Sites, in call order
(layer = block index, or -1 for the ones outside the blocks):
    emb (-1)                  embedding row of the token, (D,)
    per layer l:
      xn_att                  rmsnorm(x) before Wq/Wk/Wv, (D,)
      q_rope, k_rope          q (D,) and k (kv_dim,) after RoPE
      v                       (kv_dim,)
      att_out                 attention output before Wo, (D,)
      x_mid                   residual after the attention add, (D,)
      xn_ffn                  rmsnorm(x) before W1/W3, (D,)
      h1, h3                  W1 xn and W3 xn, (F,)
      g                       silu(h1) * h3, (F,)
      x_out                   residual after the FFN add, (D,)
    xn_final (-1)             final rmsnorm output, (D,)
    logits (-1)               (V,)
Every array handed to the observer is fresh and never written again by the transformer, so the
observer may keep references; it must not modify them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from orchestrator.errors import InputError
from orchestrator.model.weights import Model

Observer = Callable[[str, int, np.ndarray], None]

F32 = np.float32

OBSERVER_SITES_LAYER = ("xn_att", "q_rope", "k_rope", "v", "att_out", "x_mid", "xn_ffn", "h1", "h3", "g", "x_out")
OBSERVER_SITES_GLOBAL = ("emb", "xn_final", "logits")


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """run.c rmsnorm: ss = sum(x^2)/n + eps, then weight * ((1/sqrtf(ss)) * x), all float32."""
    ss = np.dot(x, x)
    ss = F32(ss / F32(x.shape[0])) + F32(eps)
    inv = F32(1.0) / np.sqrt(F32(ss))
    return weight * (inv * x)


def rope_tables(head_size: int, n_pairs: int, pos: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin for pair p (elements 2p, 2p+1) at `pos`: freq = 1/theta^((2p % head_size)/head_size)."""
    head_dim = (np.arange(n_pairs, dtype=np.int64) * 2 % head_size).astype(F32)
    freq = F32(1.0) / np.power(F32(theta), head_dim / F32(head_size))
    val = F32(pos) * freq
    return np.cos(val), np.sin(val)


def rope(vec: np.ndarray, fcr: np.ndarray, fci: np.ndarray) -> np.ndarray:
    """Rotate adjacent pairs (2p, 2p+1) of vec by the angles whose cos/sin are fcr/fci."""
    pairs = vec.reshape(-1, 2)
    v0 = pairs[:, 0]
    v1 = pairs[:, 1]
    out = np.empty_like(pairs)
    out[:, 0] = v0 * fcr - v1 * fci
    out[:, 1] = v0 * fci + v1 * fcr
    return out.reshape(-1)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """run.c softmax (max-subtracted exp, normalised), float32, along `axis`."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    """x * (1 / (1 + exp(-x))) as run.c writes it; exp overflow to inf gives the right limit 0."""
    with np.errstate(over="ignore"):
        return x * (F32(1.0) / (F32(1.0) + np.exp(-x)))


class FloatTransformer:
    """Runs a Model token by token. forward(token, pos) must be called with pos = 0, 1, 2, ...;
    calling again with an earlier pos rewinds (later cache rows are overwritten as you go)."""

    def __init__(self, model: Model):
        self.model = model
        self.config = model.config
        c = self.config
        # The cache is sized once for the model's whole context, like run.c's calloc'd RunState.
        self.key_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), dtype=F32)
        self.value_cache = np.zeros((c.n_layers, c.seq_len, c.kv_dim), dtype=F32)
        self._att_scale = np.sqrt(F32(c.head_size))  # sqrtf(head_size)
        self._next_pos = 0

    def reset(self) -> None:
        """Forget the context; the next forward must be at pos 0."""
        self._next_pos = 0

    @property
    def next_pos(self) -> int:
        return self._next_pos

    def forward(self, token: int, pos: int, observer: Observer | None = None) -> np.ndarray:
        """Logits (float32, shape (V,)) for `token` at position `pos`, given the cached context."""
        c = self.config
        w = self.model.weights
        token = _as_index(token, c.vocab_size, "token")
        pos = _as_index(pos, c.seq_len, "pos")
        if pos > self._next_pos:
            raise InputError(
                f"pos {pos} skips positions: the KV cache holds 0..{self._next_pos - 1}; feed tokens in order or call reset()"
            )
        obs = observer
        hs, n_kv, kv_mul = c.head_size, c.n_kv_heads, c.kv_mul
        kv_dim = c.kv_dim
        t_len = pos + 1

        x = w.token_embedding[token].copy()
        if obs:
            obs("emb", -1, x)
        fcr, fci = rope_tables(hs, c.dim // 2, pos, c.rope_theta)
        kcr, kci = fcr[: kv_dim // 2], fci[: kv_dim // 2]

        for l in range(c.n_layers):
            xn = rmsnorm(x, w.rms_att[l], c.norm_eps)
            q = rope(w.wq[l] @ xn, fcr, fci)
            k = rope(w.wk[l] @ xn, kcr, kci)
            v = w.wv[l] @ xn
            if obs:
                obs("xn_att", l, xn)
                obs("q_rope", l, q)
                obs("k_rope", l, k)
                obs("v", l, v)
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v

            # GQA: head h reads KV head h // kv_mul, so group query heads by their KV head.
            keys = self.key_cache[l, :t_len].reshape(t_len, n_kv, hs).transpose(1, 2, 0)  # (n_kv, hs, T)
            vals = self.value_cache[l, :t_len].reshape(t_len, n_kv, hs).transpose(1, 0, 2)  # (n_kv, T, hs)
            scores = (q.reshape(n_kv, kv_mul, hs) @ keys) / self._att_scale  # (n_kv, kv_mul, T)
            att = softmax(scores, axis=-1)
            att_out = (att @ vals).reshape(c.dim)
            x = x + w.wo[l] @ att_out
            if obs:
                obs("att_out", l, att_out)
                obs("x_mid", l, x)

            xn = rmsnorm(x, w.rms_ffn[l], c.norm_eps)
            h1 = w.w1[l] @ xn
            h3 = w.w3[l] @ xn
            g = silu(h1) * h3
            x = x + w.w2[l] @ g
            if obs:
                obs("xn_ffn", l, xn)
                obs("h1", l, h1)
                obs("h3", l, h3)
                obs("g", l, g)
                obs("x_out", l, x)

        xn = rmsnorm(x, w.rms_final, c.norm_eps)
        logits = w.wcls @ xn
        if obs:
            obs("xn_final", -1, xn)
            obs("logits", -1, logits)
        self._next_pos = pos + 1
        return logits


def _as_index(value, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if not 0 <= value < limit:
        raise InputError(f"{what} {value} is out of range [0, {limit})")
    return value
