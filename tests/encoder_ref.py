"""Independent float64 references for the encoder tests, written straight from the published definitions
(Hugging Face BertModel / MobileBertModel, sentence-transformers Pooling + Normalize) over the
checkpoint's own tensor names. They share no code with orchestrator/model/bert.py."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> None:
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    codes = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))(x)


def _attend(q, k, v, n_heads, n_valid):
    S, D = q.shape
    hs = D // n_heads
    out = np.zeros_like(q)
    for h in range(n_heads):
        c = slice(h * hs, (h + 1) * hs)
        for i in range(S):
            sc = np.array([q[i, c] @ k[j, c] / math.sqrt(hs) for j in range(n_valid)])
            w = np.exp(sc - sc.max())
            w /= w.sum()
            out[i, c] = sum(w[j] * v[j, c] for j in range(n_valid))
    return out


def bert_hidden_f64(T: dict, conf: dict, ids, n_valid=None, prefix: str = "") -> np.ndarray:
    g = lambda n: T[prefix + n].astype(np.float64)  # noqa: E731
    lin = lambda x, n: x @ g(n + ".weight").T + g(n + ".bias")  # noqa: E731
    eps = conf.get("layer_norm_eps", 1e-12)
    ids = list(ids)
    S = len(ids)
    n_valid = S if n_valid is None else n_valid
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:S] + \
        g("embeddings.token_type_embeddings.weight")[0]
    x = _ln(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), eps)
    for l in range(conf["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        ctx = _attend(lin(x, p + "attention.self.query"), lin(x, p + "attention.self.key"),
                      lin(x, p + "attention.self.value"), conf["num_attention_heads"], n_valid)
        a = _ln(lin(ctx, p + "attention.output.dense") + x, g(p + "attention.output.LayerNorm.weight"),
                g(p + "attention.output.LayerNorm.bias"), eps)
        h = _gelu(lin(a, p + "intermediate.dense"))
        x = _ln(lin(h, p + "output.dense") + a, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"), eps)
    return x


def sentence_embedding_f64(hidden: np.ndarray, n_valid: int, mean: bool = True, normalize: bool = True) -> np.ndarray:
    """sentence-transformers: Pooling(mean over the attention mask, or CLS) then Normalize (p=2, eps 1e-12)."""
    v = hidden[:n_valid].sum(0) / max(n_valid, 1e-9) if mean else hidden[0]
    return v / max(np.linalg.norm(v), 1e-12) if normalize else v


def mobilebert_hidden_f64(T: dict, conf: dict, ids, prefix: str = "") -> np.ndarray:
    """MobileBertModel with use_bottleneck, key_query_shared_bottleneck, NoNorm, trigram input."""
    g = lambda n: T[prefix + n].astype(np.float64)  # noqa: E731
    lin = lambda x, n: x @ g(n + ".weight").T + g(n + ".bias")  # noqa: E731
    nonorm = lambda x, n: x * g(n + ".weight") + g(n + ".bias")  # noqa: E731
    act = (lambda x: np.maximum(x, 0.0)) if conf["hidden_act"] == "relu" else _gelu
    ids = list(ids)
    S = len(ids)
    e = g("embeddings.word_embeddings.weight")[ids]
    E = e.shape[1]
    tri = np.zeros((S, 3 * E))
    for i in range(S):
        if i + 1 < S:
            tri[i, :E] = e[i + 1]
        tri[i, E:2 * E] = e[i]
        if i > 0:
            tri[i, 2 * E:] = e[i - 1]
    x = lin(tri, "embeddings.embedding_transformation") + g("embeddings.position_embeddings.weight")[:S] + \
        g("embeddings.token_type_embeddings.weight")[0]
    h = nonorm(x, "embeddings.LayerNorm")
    K = conf["num_feedforward_networks"]
    for l in range(conf["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        a = nonorm(lin(h, p + "bottleneck.input.dense"), p + "bottleneck.input.LayerNorm")
        s = nonorm(lin(h, p + "bottleneck.attention.dense"), p + "bottleneck.attention.LayerNorm")
        ctx = _attend(lin(s, p + "attention.self.query"), lin(s, p + "attention.self.key"),
                      lin(h, p + "attention.self.value"), conf["num_attention_heads"], S)
        y = nonorm(lin(ctx, p + "attention.output.dense") + a, p + "attention.output.LayerNorm")
        for k in range(K - 1):
            q = f"{p}ffn.{k}."
            y = nonorm(lin(act(lin(y, q + "intermediate.dense")), q + "output.dense") + y, q + "output.LayerNorm")
        y = nonorm(lin(act(lin(y, p + "intermediate.dense")), p + "output.dense") + y, p + "output.LayerNorm")
        h = nonorm(lin(y, p + "output.bottleneck.dense") + h, p + "output.bottleneck.LayerNorm")
    return h


def tiny_bert_checkpoint(d: Path, seed: int = 0, layers: int = 2, hidden: int = 32, heads: int = 4, inter: int = 64,
                         vocab_words=("hello", "world", "the", "cat", "sat", "##s", "on", "mat", ".", ",")) -> dict:
    """A small random BERT folder in Hugging Face layout (config.json, model.safetensors, vocab.txt)."""
    rng = np.random.default_rng(seed)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab_words]
    conf = {"model_type": "bert", "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "vocab_size": len(vocab), "max_position_embeddings": 64,
            "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    r = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    T = {"bert.embeddings.word_embeddings.weight": r(len(vocab), hidden),
         "bert.embeddings.position_embeddings.weight": r(64, hidden),
         "bert.embeddings.token_type_embeddings.weight": r(2, hidden),
         "bert.embeddings.LayerNorm.weight": 1 + r(hidden), "bert.embeddings.LayerNorm.bias": r(hidden),
         "bert.embeddings.position_ids": np.arange(64, dtype=np.int64)[None]}
    for l in range(layers):
        p = f"bert.encoder.layer.{l}."
        for n, (o, i) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                          "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                          "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}.items():
            T[p + n + ".weight"] = r(o, i)
            T[p + n + ".bias"] = r(o)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            T[p + n + ".weight"] = 1 + r(hidden)
            T[p + n + ".bias"] = r(hidden)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(conf))
    write_safetensors(d / "model.safetensors", T)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return {"config": conf, "tensors": T, "vocab": vocab}


def tiny_mobilebert_checkpoint(d: Path, seed: int = 0) -> dict:
    """A small random MobileBERT folder (published layout, shrunk): hidden 32, embedding 8, bottleneck 16."""
    rng = np.random.default_rng(seed)
    H, E, B, F, L, K, V = 32, 8, 16, 24, 2, 3, 20
    conf = {"model_type": "mobilebert", "hidden_size": H, "embedding_size": E, "intra_bottleneck_size": B,
            "true_hidden_size": B, "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": 4,
            "num_feedforward_networks": K, "vocab_size": V, "max_position_embeddings": 64, "type_vocab_size": 2,
            "hidden_act": "relu", "normalization_type": "no_norm", "trigram_input": True, "use_bottleneck": True,
            "key_query_shared_bottleneck": True, "use_bottleneck_attention": False, "layer_norm_eps": 1e-12}
    r = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    T = {"embeddings.word_embeddings.weight": r(V, E), "embeddings.position_embeddings.weight": r(64, H),
         "embeddings.token_type_embeddings.weight": r(2, H), "embeddings.embedding_transformation.weight": r(H, 3 * E),
         "embeddings.embedding_transformation.bias": r(H), "embeddings.LayerNorm.weight": 1 + r(H),
         "embeddings.LayerNorm.bias": r(H)}
    for l in range(L):
        p = f"encoder.layer.{l}."
        mats = {"bottleneck.input.dense": (B, H), "bottleneck.attention.dense": (B, H), "attention.self.query": (B, B),
                "attention.self.key": (B, B), "attention.self.value": (B, H), "attention.output.dense": (B, B),
                "intermediate.dense": (F, B), "output.dense": (B, F), "output.bottleneck.dense": (H, B)}
        for k in range(K - 1):
            mats[f"ffn.{k}.intermediate.dense"] = (F, B)
            mats[f"ffn.{k}.output.dense"] = (B, F)
        for n, (o, i) in mats.items():
            T[p + n + ".weight"] = r(o, i)
            T[p + n + ".bias"] = r(o)
        norms = {"bottleneck.input.LayerNorm": B, "bottleneck.attention.LayerNorm": B, "attention.output.LayerNorm": B,
                 "output.LayerNorm": B, "output.bottleneck.LayerNorm": H}
        for k in range(K - 1):
            norms[f"ffn.{k}.output.LayerNorm"] = B
        for n, w in norms.items():
            T[p + n + ".weight"] = (0.7 + r(w)).astype(np.float32)
            T[p + n + ".bias"] = r(w)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(conf))
    write_safetensors(d / "model.safetensors", T)
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(V - 4)]) + "\n")
    return {"config": conf, "tensors": T}
