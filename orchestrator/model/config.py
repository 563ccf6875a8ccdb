"""Shape and hyper-parameters of a llama2.c-style decoder, with the checks every loader runs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from orchestrator.errors import InputError

# Anything past these is a corrupt header, not a model we could hold: they bound the memory a
# loader asks for before it reads a single weight.
MAX_DIM = 2**20
MAX_VOCAB = 2**22


@dataclass(frozen=True)
class ModelConfig:
    name: str
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    shared_classifier: bool = True
    synthetic: bool = False

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size

    @property
    def kv_mul(self) -> int:
        """How many query heads share one KV head (1 = plain multi-head attention)."""
        return self.n_heads // self.n_kv_heads

    def n_params(self) -> int:
        """Number of distinct float weights (a tied classifier counts once)."""
        d, f, l, v, kv = self.dim, self.hidden_dim, self.n_layers, self.vocab_size, self.kv_dim
        per_layer = 2 * d + 2 * d * d + 2 * kv * d + 3 * f * d
        return v * d + l * per_layer + d + (0 if self.shared_classifier else v * d)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> "ModelConfig":
        """Raise InputError unless the shape is one the forward pass can run; return self."""
        where = f"model {self.name!r}"
        ints = {
            "dim": self.dim,
            "hidden_dim": self.hidden_dim,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
        }
        for key, value in ints.items():
            # bool is an int subclass; a True dim is a bug upstream, not a 1-wide model
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{where}: {key} must be an integer, got {value!r}")
            if value <= 0:
                raise InputError(f"{where}: {key} must be positive, got {value}; the header or config is corrupt")
            limit = MAX_VOCAB if key == "vocab_size" else MAX_DIM
            if value > limit:
                raise InputError(
                    f"{where}: {key}={value} exceeds the supported maximum {limit}; the header is corrupt or not a llama2.c model"
                )
        if self.dim % self.n_heads != 0:
            raise InputError(f"{where}: dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.n_kv_heads > self.n_heads or self.n_heads % self.n_kv_heads != 0:
            raise InputError(
                f"{where}: n_kv_heads {self.n_kv_heads} must divide n_heads {self.n_heads} (grouped-query attention)"
            )
        if self.head_size % 2 != 0:
            raise InputError(f"{where}: head_size {self.head_size} (dim/n_heads) is odd; RoPE rotates pairs and needs it even")
        for key, value in (("norm_eps", self.norm_eps), ("rope_theta", self.rope_theta)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise InputError(f"{where}: {key} must be a positive finite number, got {value!r}")
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"model name must be a non-empty string, got {self.name!r}")
        return self
