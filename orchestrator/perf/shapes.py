"""Model shapes the cost model knows by name, beyond the built-in runnable models.

- tinyllama-42m, tiny-test: the runnable built-ins (orchestrator.model.synthetic).
- tinyllama-scaled-64: a scaled-up TinyLlama for the 64-chip point. The paper reports 60.1x at 64
  chips for "a scaled-up TinyLlama" without publishing the shape, so this one is ours: attention is
  split by heads, so 64 chips need 64 heads (and 64 KV heads); the width doubles to 1024 (head size
  16) with TinyLlama's FFN ratio (1376/512 -> 2752) so that each block's weights grow 4x and only
  from 16 chips up do all of them stay on chip, which is what lets the curve show the off-chip
  effect past 8 chips. Depth (8), vocabulary (32000) and context (1024) stay TinyLlama-42M's.
  134 M parameters, 128 MiB of int8 weights: more than one chip's off-chip memory in the siracusa
  profile, so its few-chip points run on a profile whose off-chip memory is enlarged (see model.py).
- mobilebert: the encoder shape (encoder.py), cost model only.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import InputError
from orchestrator.model.config import ModelConfig
from orchestrator.perf.encoder import MOBILEBERT, EncoderShape

SCALED_TINYLLAMA = ModelConfig("tinyllama-scaled-64", dim=1024, hidden_dim=2752, n_layers=8, n_heads=64,
                               n_kv_heads=64, vocab_size=32000, seq_len=1024, shared_classifier=True,
                               synthetic=True).validate()

PERF_SHAPES: dict[str, object] = {SCALED_TINYLLAMA.name: SCALED_TINYLLAMA, MOBILEBERT.name: MOBILEBERT}


def known_models() -> list[str]:
    from orchestrator.model.synthetic import BUILTIN_MODELS
    return sorted(BUILTIN_MODELS) + sorted(PERF_SHAPES)


def resolve_model(spec) -> ModelConfig | EncoderShape:
    """A ModelConfig (decoder) or EncoderShape for a name, a checkpoint path, or a shape object."""
    if isinstance(spec, (ModelConfig, EncoderShape)):
        return spec
    from orchestrator.model.synthetic import BUILTIN_MODELS, load_model
    name = str(spec)
    if name.lower() in BUILTIN_MODELS:
        return BUILTIN_MODELS[name.lower()].config
    if name.lower() in PERF_SHAPES:
        return PERF_SHAPES[name.lower()]
    if Path(name).is_file():
        return load_model(name).config
    raise InputError(f"unknown model '{name}': use one of {', '.join(known_models())} or a llama2.c checkpoint path")
