"""The model layer: checkpoints, the float32 reference forward pass, sampling, tokenizers.

Knows nothing about chips. See docs/models.md.
"""

from orchestrator.model.config import ModelConfig
from orchestrator.model.llama2c import checkpoint_bytes, load_llama2c, write_llama2c
from orchestrator.model.reference import OBSERVER_SITES_GLOBAL, OBSERVER_SITES_LAYER, FloatTransformer
from orchestrator.model.sampling import BOS, EOS, Sampler, XorShiftRng, generate
from orchestrator.model.synthetic import BUILTIN_MODELS, BuiltinModel, load_model, synthetic_model
from orchestrator.model.tokenizer import Tokenizer, load_tokenizer
from orchestrator.model.weights import LlamaWeights, Model

__all__ = [
    "BOS",
    "BUILTIN_MODELS",
    "BuiltinModel",
    "EOS",
    "FloatTransformer",
    "LlamaWeights",
    "Model",
    "ModelConfig",
    "OBSERVER_SITES_GLOBAL",
    "OBSERVER_SITES_LAYER",
    "Sampler",
    "Tokenizer",
    "XorShiftRng",
    "checkpoint_bytes",
    "generate",
    "load_llama2c",
    "load_model",
    "load_tokenizer",
    "synthetic_model",
    "write_llama2c",
]
