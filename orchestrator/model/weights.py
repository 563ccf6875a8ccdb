"""Float32 weights of a decoder, laid out like llama2.c: every matrix is [out, in], layers stacked first."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields

import numpy as np

from orchestrator.errors import InputError
from orchestrator.model.config import ModelConfig

# Order in which tensors are hashed and listed; wcls is last because it may alias token_embedding.
TENSOR_NAMES = (
    "token_embedding",
    "rms_att",
    "wq",
    "wk",
    "wv",
    "wo",
    "rms_ffn",
    "w1",
    "w2",
    "w3",
    "rms_final",
    "wcls",
)


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor for `config`, keyed like LlamaWeights' fields."""
    d, f, l, v, kv = config.dim, config.hidden_dim, config.n_layers, config.vocab_size, config.kv_dim
    return {
        "token_embedding": (v, d),
        "rms_att": (l, d),
        "wq": (l, d, d),
        "wk": (l, kv, d),
        "wv": (l, kv, d),
        "wo": (l, d, d),
        "rms_ffn": (l, d),
        "w1": (l, f, d),
        "w2": (l, d, f),
        "w3": (l, f, d),
        "rms_final": (d,),
        "wcls": (v, d),
    }


@dataclass
class LlamaWeights:
    """All arrays float32, C-contiguous. When the classifier is tied, wcls IS token_embedding (same object)."""

    token_embedding: np.ndarray  # (V, D)
    rms_att: np.ndarray  # (L, D)
    wq: np.ndarray  # (L, D, D)
    wk: np.ndarray  # (L, kv_dim, D)
    wv: np.ndarray  # (L, kv_dim, D)
    wo: np.ndarray  # (L, D, D)
    rms_ffn: np.ndarray  # (L, D)
    w1: np.ndarray  # (L, F, D)
    w2: np.ndarray  # (L, D, F)
    w3: np.ndarray  # (L, F, D)
    rms_final: np.ndarray  # (D,)
    wcls: np.ndarray  # (V, D)

    def items(self):
        return [(name, getattr(self, name)) for name in TENSOR_NAMES]

    def check(self, config: ModelConfig) -> None:
        """Raise InputError unless every tensor has the dtype, shape and layout `config` implies."""
        for name, shape in expected_shapes(config).items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray):
                raise InputError(f"model {config.name!r}: weight {name} is {type(arr).__name__}, expected a numpy array")
            if arr.dtype != np.float32:
                raise InputError(f"model {config.name!r}: weight {name} has dtype {arr.dtype}, expected float32")
            if arr.shape != shape:
                raise InputError(f"model {config.name!r}: weight {name} has shape {arr.shape}, expected {shape}")
            if not arr.flags.c_contiguous:
                raise InputError(f"model {config.name!r}: weight {name} is not C-contiguous; pass np.ascontiguousarray(...)")
        tied = self.wcls is self.token_embedding
        if tied != config.shared_classifier:
            want = "the same array as" if config.shared_classifier else "a separate array from"
            raise InputError(f"model {config.name!r}: wcls must be {want} token_embedding (shared_classifier={config.shared_classifier})")

    def freeze(self) -> None:
        """Make every array read-only so a cached content hash cannot go stale."""
        for _, arr in self.items():
            arr.flags.writeable = False


def _config_key(config: ModelConfig) -> bytes:
    # The name is left out on purpose: renaming a checkpoint file does not change what it computes.
    d = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "name"}
    return json.dumps(d, sort_keys=True).encode()


@dataclass
class Model:
    config: ModelConfig
    weights: LlamaWeights
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.config.name

    def content_hash(self) -> str:
        """sha256 hex over the config (all fields but name) and every weight byte; computed once.

        The arrays are hashed in place through memoryviews (no copies). Weights are treated as
        immutable after construction; call freeze() on them to have numpy enforce it.
        """
        if self._hash is None:
            h = hashlib.sha256(b"orch-model-v1\0")
            h.update(_config_key(self.config))
            for name, arr in self.weights.items():
                if name == "wcls" and self.config.shared_classifier:
                    continue  # tied: same bytes as token_embedding, already hashed
                h.update(name.encode() + b"\0")
                h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
            self._hash = h.hexdigest()
        return self._hash
