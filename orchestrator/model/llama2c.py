"""Reader for llama2.c checkpoints: the legacy (v0) layout and the versioned 'ak42' float32 layout (v1).

Legacy (v0), as written by llama2.c's export.py legacy_export and read by run.c:
    7 x int32  dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
               (vocab_size < 0 means the classifier is NOT shared; its magnitude is the vocab)
    float32    token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
               freq_cis_real, freq_cis_imag (seq_len*head_size/2 each, unused: RoPE is recomputed),
               wcls (only if not shared)
Version 1, as written by export.py version1_export:
    uint32 magic 0x616b3432 ("ak42"), int32 version = 1, 7 x int32 params (vocab positive),
    uint8 shared_classifier, zero padding to 256 bytes, then float32
    rms_att (all layers), rms_ffn (all layers), rms_final, token_embedding,
    wq, wk, wv, wo, w1, w2, w3 (each for all layers), wcls (only if not shared)
All numbers little-endian.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError
from orchestrator.model.config import ModelConfig
from orchestrator.model.weights import LlamaWeights, Model, expected_shapes

MAGIC_AK42 = 0x616B3432
LEGACY_HEADER_BYTES = 7 * 4
V1_HEADER_BYTES = 256
_FLOAT_BYTES = 4

# Tensor order in the file, per format; "freq_cis" is the legacy RoPE tables we skip.
_LEGACY_ORDER = ("token_embedding", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3", "rms_final", "freq_cis")
_V1_ORDER = ("rms_att", "rms_ffn", "rms_final", "token_embedding", "wq", "wk", "wv", "wo", "w1", "w2", "w3")

# Leading bytes of files people mistake for llama2.c checkpoints, to say what they hold instead.
_OTHER_FORMATS = (
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt checkpoint?); convert it with llama2.c's export.py --version 1"),
    (b"GGUF", "a GGUF file; only llama2.c float32 checkpoints are supported"),
    (b"\x93NUMPY", "a .npy array, not a llama2.c checkpoint"),
)


def _layout(config: ModelConfig, order: tuple[str, ...]) -> list[tuple[str, tuple[int, ...]]]:
    shapes = expected_shapes(config)
    layout = []
    for name in order:
        if name == "freq_cis":
            layout.append(("freq_cis", (2, config.seq_len * config.head_size // 2)))
        else:
            layout.append((name, shapes[name]))
    if not config.shared_classifier:
        layout.append(("wcls", shapes["wcls"]))
    return layout


def _n_floats(layout) -> int:
    total = 0
    for _, shape in layout:
        count = 1
        for s in shape:
            count *= s
        total += count
    return total


def checkpoint_bytes(config: ModelConfig, version: int = 0) -> int:
    """Exact size in bytes of a llama2.c checkpoint of this shape (version 0 = legacy, 1 = ak42 float32)."""
    if version == 0:
        return LEGACY_HEADER_BYTES + _FLOAT_BYTES * _n_floats(_layout(config, _LEGACY_ORDER))
    if version == 1:
        return V1_HEADER_BYTES + _FLOAT_BYTES * _n_floats(_layout(config, _V1_ORDER))
    raise InputError(f"llama2.c checkpoint version {version} is not supported (0 = legacy, 1 = float32)")


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise InputError(f"{path}: file ends inside the {what} ({len(data)} of {n} bytes); the file is truncated")
    return data


def _parse_header(f, path: Path, file_size: int) -> tuple[ModelConfig, int, int]:
    """Return (config, version, header_bytes)."""
    name = path.stem or "model"
    if file_size < 4:
        raise InputError(f"{path}: {file_size} bytes is too small to be a llama2.c checkpoint")
    head = f.read(min(file_size, V1_HEADER_BYTES))
    (magic,) = struct.unpack_from("<I", head, 0)
    if magic == MAGIC_AK42:
        if len(head) < 8:
            raise InputError(f"{path}: file ends inside the 'ak42' header; the file is truncated")
        (version,) = struct.unpack_from("<i", head, 4)
        if version == 2:
            raise InputError(
                f"{path}: llama2.c version 2 (int8 Q8_0) checkpoints are not supported; export float32 with export.py --version 1 (or 0)"
            )
        if version != 1:
            raise InputError(f"{path}: unknown llama2.c checkpoint version {version}; supported: legacy (no magic) and 'ak42' version 1")
        if len(head) < V1_HEADER_BYTES:
            raise InputError(f"{path}: file ends inside the 256-byte 'ak42' header ({len(head)} bytes); the file is truncated")
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack_from("<7i", head, 8)
        shared = head[36]
        if shared not in (0, 1):
            raise InputError(f"{path}: shared_classifier flag is {shared}, expected 0 or 1; the header is corrupt")
        if vocab <= 0:
            raise InputError(f"{path}: vocab_size must be positive in an 'ak42' header, got {vocab}; the header is corrupt")
        config = ModelConfig(name, dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len, shared_classifier=bool(shared))
        return _validated(config, path, "'ak42' v1"), 1, V1_HEADER_BYTES

    if len(head) < LEGACY_HEADER_BYTES:
        raise InputError(f"{path}: {file_size} bytes is too small for a llama2.c header (28 bytes)")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack_from("<7i", head, 0)
    config = ModelConfig(name, dim, hidden, n_layers, n_heads, n_kv, abs(vocab), seq_len, shared_classifier=vocab > 0)
    try:
        config.validate()
    except InputError as e:
        for prefix, what in _OTHER_FORMATS:
            if head.startswith(prefix):
                raise InputError(f"{path}: not a llama2.c checkpoint: it is {what}") from None
        raise InputError(
            f"{path}: not a llama2.c checkpoint (no 'ak42' magic, and as a legacy header: {_reason(e)})"
        ) from None
    return config, 0, LEGACY_HEADER_BYTES


def _reason(e: InputError) -> str:
    msg = str(e)
    prefix = "model "
    if msg.startswith(prefix) and ": " in msg:
        return msg.split(": ", 1)[1]
    return msg


def _validated(config: ModelConfig, path: Path, fmt: str) -> ModelConfig:
    try:
        return config.validate()
    except InputError as e:
        raise InputError(f"{path}: invalid {fmt} header: {_reason(e)}") from None


def load_llama2c(path: str | os.PathLike) -> Model:
    """Read a llama2.c float32 checkpoint (legacy or 'ak42' v1) into a Model named after the file stem.

    The whole file is validated before any weight is used: the header's shape must be sane and
    the file size must be exactly what that shape implies. Weights are read into memory (not
    mapped), so later changes to the file cannot reach a running model; arrays are read-only.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a llama2.c checkpoint file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open checkpoint: {e.strerror}") from None
    with f:
        file_size = os.fstat(f.fileno()).st_size
        config, version, header_bytes = _parse_header(f, path, file_size)
        order = _V1_ORDER if version == 1 else _LEGACY_ORDER
        layout = _layout(config, order)
        n_floats = _n_floats(layout)
        expected = header_bytes + _FLOAT_BYTES * n_floats
        if file_size != expected:
            fmt = "'ak42' v1" if version == 1 else "legacy"
            problem = "truncated" if file_size < expected else f"{file_size - expected} trailing bytes"
            raise InputError(
                f"{path}: {fmt} header (dim={config.dim}, hidden={config.hidden_dim}, layers={config.n_layers}, "
                f"heads={config.n_heads}/{config.n_kv_heads}, vocab={config.vocab_size}, seq={config.seq_len}) implies "
                f"{expected} bytes but the file has {file_size} ({problem}); the file is damaged or not this format"
            )
        f.seek(header_bytes)
        flat = np.fromfile(f, dtype="<f4", count=n_floats)
    if flat.size != n_floats:
        raise InputError(f"{path}: read {flat.size} of {n_floats} weights; the file changed while it was read")
    flat = flat.astype(np.float32, copy=False)  # no-op on little-endian hosts

    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape in layout:
        count = _n_floats([(name, shape)])
        arr = flat[offset : offset + count].reshape(shape)
        offset += count
        if name == "freq_cis":
            continue  # legacy RoPE tables: run.c recomputes RoPE and so do we
        if not np.isfinite(arr).all():
            raise InputError(f"{path}: weight {name} contains NaN or Inf; the checkpoint is damaged")
        tensors[name] = arr
    if config.shared_classifier:
        tensors["wcls"] = tensors["token_embedding"]
    weights = LlamaWeights(**tensors)
    weights.check(config)
    weights.freeze()
    return Model(config, weights)


def write_llama2c(model: Model, path: str | os.PathLike, version: int = 0) -> None:
    """Write `model` as a llama2.c float32 checkpoint (0 = legacy, 1 = 'ak42' v1), byte-for-byte like export.py.

    The legacy RoPE tables are written as run.c's historical freq_cis (cos/sin of pos*freq),
    though no reader uses them.
    """
    cfg = model.config
    w = model.weights
    if version not in (0, 1):
        raise InputError(f"cannot write llama2.c checkpoint version {version}; choose 0 (legacy) or 1 (float32)")
    shared = cfg.shared_classifier
    with open(path, "wb") as f:
        params = (cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads)
        if version == 1:
            f.write(struct.pack("<Ii", MAGIC_AK42, 1))
            f.write(struct.pack("<7i", *params, cfg.vocab_size, cfg.seq_len))
            f.write(struct.pack("<B", int(shared)))
            f.write(b"\0" * (V1_HEADER_BYTES - f.tell()))
            order = _V1_ORDER
        else:
            vocab = cfg.vocab_size if shared else -cfg.vocab_size
            f.write(struct.pack("<7i", *params, vocab, cfg.seq_len))
            order = _LEGACY_ORDER
        for name, _ in _layout(cfg, order):
            if name == "freq_cis":
                half = cfg.head_size // 2
                freqs = 1.0 / (cfg.rope_theta ** (np.arange(0, cfg.head_size, 2)[:half] / cfg.head_size))
                angles = np.outer(np.arange(cfg.seq_len), freqs)
                f.write(np.cos(angles).astype("<f4").tobytes())
                f.write(np.sin(angles).astype("<f4").tobytes())
            else:
                f.write(np.ascontiguousarray(getattr(w, name), dtype="<f4").tobytes())
