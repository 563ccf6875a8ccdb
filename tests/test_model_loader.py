"""llama2.c checkpoint reader: both layouts, tied and untied classifiers, GQA, and every way a file can be bad.

Checkpoints are written here by a writer that follows llama2.c's export.py field by field
(legacy_export / version1_export), independent of orchestrator's own writer.
"""

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model import ModelConfig, checkpoint_bytes, load_llama2c, load_model, write_llama2c
from orchestrator.model.weights import LlamaWeights, Model

MAGIC = 0x616B3432


def shared_models_dir() -> Path | None:
    env = os.environ.get("ORCH_SHARED_MODELS")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "models"
    return d if d.is_dir() else None


def stories260k() -> Path:
    d = shared_models_dir()
    if d is None or not (d / "stories260K.bin").is_file():
        pytest.skip("stories260K.bin not found: needs ../shared/models next to the repo or ORCH_SHARED_MODELS")
    return d / "stories260K.bin"


def random_tensors(dim, hidden, n_layers, n_heads, n_kv, vocab, seed=0, shared=True):
    """Tensors as export.py sees them (torch layout [out, in]), float32."""
    rng = np.random.default_rng(seed)
    hs = dim // n_heads
    kv = n_kv * hs

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    t = {
        "tok_embeddings": r(vocab, dim),
        "attention_norm": r(n_layers, dim),
        "wq": r(n_layers, dim, dim),
        "wk": r(n_layers, kv, dim),
        "wv": r(n_layers, kv, dim),
        "wo": r(n_layers, dim, dim),
        "ffn_norm": r(n_layers, dim),
        "w1": r(n_layers, hidden, dim),
        "w2": r(n_layers, dim, hidden),
        "w3": r(n_layers, hidden, dim),
        "norm": r(dim),
    }
    t["output"] = t["tok_embeddings"] if shared else r(vocab, dim)
    return t


def ser(f, arr):
    f.write(np.asarray(arr, dtype="<f4").tobytes())


def write_legacy_like_export(path, dims, t, shared, freq_fill=7.0):
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = dims
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, n_layers, n_heads, n_kv, vocab if shared else -vocab, seq_len))
        ser(f, t["tok_embeddings"])
        for key in ("attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"):
            for layer in range(n_layers):
                ser(f, t[key][layer])
        ser(f, t["norm"])
        half = seq_len * (dim // n_heads) // 2
        ser(f, np.full(half, freq_fill))  # freq_cis_real: must be skipped
        ser(f, np.full(half, -freq_fill))  # freq_cis_imag
        if not shared:
            ser(f, t["output"])


def write_v1_like_export(path, dims, t, shared, version=1, flag=None):
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = dims
    with open(path, "wb") as f:
        f.write(struct.pack("<I", MAGIC))
        f.write(struct.pack("<i", version))
        f.write(struct.pack("<7i", dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len))
        f.write(struct.pack("<B", int(shared) if flag is None else flag))
        f.write(b"\0" * (256 - f.tell()))
        order = [t["attention_norm"][i] for i in range(n_layers)]
        order += [t["ffn_norm"][i] for i in range(n_layers)]
        order += [t["norm"], t["tok_embeddings"]]
        for key in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            order += [t[key][i] for i in range(n_layers)]
        if not shared:
            order.append(t["output"])
        for w in order:
            ser(f, w)


def assert_weights_match(model, t):
    w = model.weights
    pairs = {
        "token_embedding": "tok_embeddings",
        "rms_att": "attention_norm",
        "wq": "wq",
        "wk": "wk",
        "wv": "wv",
        "wo": "wo",
        "rms_ffn": "ffn_norm",
        "w1": "w1",
        "w2": "w2",
        "w3": "w3",
        "rms_final": "norm",
        "wcls": "output",
    }
    for ours, theirs in pairs.items():
        arr = getattr(w, ours)
        assert arr.dtype == np.float32 and arr.flags.c_contiguous, ours
        np.testing.assert_array_equal(arr, t[theirs], err_msg=ours)


# (dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len)
MHA = (16, 40, 2, 4, 4, 37, 8)
GQA = (24, 56, 3, 6, 2, 50, 12)


@pytest.mark.parametrize("dims", [MHA, GQA], ids=["mha", "gqa"])
@pytest.mark.parametrize("shared", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("fmt", ["legacy", "v1"])
def test_reads_what_export_py_writes(tmp_path, dims, shared, fmt):
    t = random_tensors(*dims[:6], seed=sum(dims), shared=shared)
    path = tmp_path / f"net-{fmt}.bin"
    (write_legacy_like_export if fmt == "legacy" else write_v1_like_export)(path, dims, t, shared)

    model = load_llama2c(path)

    c = model.config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len) == dims
    assert c.shared_classifier is shared
    assert c.name == f"net-{fmt}"
    assert c.synthetic is False
    assert_weights_match(model, t)
    assert (model.weights.wcls is model.weights.token_embedding) is shared
    assert os.path.getsize(path) == checkpoint_bytes(c, 0 if fmt == "legacy" else 1)


def test_legacy_rope_tables_are_skipped_not_read_as_weights(tmp_path):
    t = random_tensors(*MHA[:6], shared=False)
    path = tmp_path / "m.bin"
    write_legacy_like_export(path, MHA, t, shared=False, freq_fill=1234.5)
    w = load_llama2c(path).weights
    for name, arr in w.items():
        assert not np.any(np.abs(arr) == 1234.5), name
    np.testing.assert_array_equal(w.wcls, t["output"])


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("shared", [True, False])
def test_writer_is_byte_identical_to_export_py_layout(tmp_path, version, shared):
    t = random_tensors(*GQA[:6], seed=5, shared=shared)
    theirs = tmp_path / "theirs.bin"
    if version == 0:
        # Our writer stores real RoPE tables; compare only the bytes that carry weights and header.
        write_legacy_like_export(theirs, GQA, t, shared)
    else:
        write_v1_like_export(theirs, GQA, t, shared)
    model = load_llama2c(theirs)
    ours = tmp_path / "ours.bin"
    write_llama2c(model, ours, version=version)
    a, b = theirs.read_bytes(), ours.read_bytes()
    assert len(a) == len(b)
    if version == 1:
        assert a == b
    else:
        c = model.config
        head = 28 + 4 * (c.n_params() - (0 if shared else c.vocab_size * c.dim))
        freq = 4 * c.seq_len * c.head_size
        assert a[:head] == b[:head]
        assert a[head + freq :] == b[head + freq :]
    np.testing.assert_array_equal(load_llama2c(ours).weights.wq, model.weights.wq)


def test_same_weights_in_both_layouts_hash_equal_and_changes_show(tmp_path):
    t = random_tensors(*GQA[:6], seed=9, shared=False)
    write_legacy_like_export(tmp_path / "a.bin", GQA, t, shared=False)
    write_v1_like_export(tmp_path / "b.bin", GQA, t, shared=False)
    a, b = load_llama2c(tmp_path / "a.bin"), load_llama2c(tmp_path / "b.bin")
    assert a.content_hash() == b.content_hash()  # name differs, content does not
    t["w2"] = t["w2"].copy()
    t["w2"][2, 3, 4] += 1e-3
    write_v1_like_export(tmp_path / "c.bin", GQA, t, shared=False)
    assert load_llama2c(tmp_path / "c.bin").content_hash() != a.content_hash()


def test_content_hash_covers_config_and_is_cached(tmp_path):
    t = random_tensors(*MHA[:6], seed=3)
    write_legacy_like_export(tmp_path / "a.bin", MHA, t, shared=True)
    m = load_llama2c(tmp_path / "a.bin")
    h = m.content_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    other = Model(ModelConfig(**{**m.config.to_dict(), "norm_eps": 1e-6}), m.weights)
    assert other.content_hash() != h
    assert m.content_hash() is h  # cached
    with pytest.raises(ValueError):
        m.weights.wq[0, 0, 0] = 1.0  # read-only, so the cache cannot go stale


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("fmt", ["legacy", "v1"])
@pytest.mark.parametrize("delta", [-4, -1, 1, 4])
def test_size_mismatch_names_expected_and_actual(tmp_path, fmt, delta):
    t = random_tensors(*GQA[:6], seed=1)
    path = tmp_path / "m.bin"
    (write_legacy_like_export if fmt == "legacy" else write_v1_like_export)(path, GQA, t, True)
    data = path.read_bytes()
    path.write_bytes(data[:delta] if delta < 0 else data + b"\0" * delta)
    with pytest.raises(InputError) as e:
        load_llama2c(path)
    msg = one_line_error(e)
    assert str(len(data)) in msg and str(len(data) + delta) in msg


def test_header_claims_bigger_model_than_file(tmp_path):
    t = random_tensors(*MHA[:6])
    path = tmp_path / "m.bin"
    write_legacy_like_export(path, MHA, t, True)
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, 0, 32)  # dim 16 -> 32
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="implies"):
        load_llama2c(path)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        (0, 0, "dim must be positive"),
        (0, -16, "dim must be positive"),
        (1, 0, "hidden_dim must be positive"),
        (2, -1, "n_layers must be positive"),
        (3, 0, "n_heads must be positive"),
        (4, 0, "n_kv_heads must be positive"),
        (5, 0, "vocab_size must be positive"),
        (6, 0, "seq_len must be positive"),
        (3, 3, "not divisible by n_heads"),
        (4, 3, "must divide n_heads"),
        (4, 8, "must divide n_heads"),
        (3, 16, "odd"),  # head_size 1
        (0, 1 << 21, "exceeds"),
        (5, (1 << 23), "exceeds"),
        (1, 0x7FFFFFFF, "exceeds"),
    ],
)
@pytest.mark.parametrize("fmt", ["legacy", "v1"])
def test_bad_header_values(tmp_path, field, value, needle, fmt):
    t = random_tensors(*MHA[:6])
    path = tmp_path / "m.bin"
    (write_legacy_like_export if fmt == "legacy" else write_v1_like_export)(path, MHA, t, True)
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, (0 if fmt == "legacy" else 8) + 4 * field, value)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as e:
        load_llama2c(path)
    assert needle in one_line_error(e)


def test_v1_negative_vocab_and_bad_shared_flag(tmp_path):
    t = random_tensors(*MHA[:6])
    path = tmp_path / "m.bin"
    write_v1_like_export(path, MHA, t, True, flag=2)
    with pytest.raises(InputError, match="shared_classifier flag is 2"):
        load_llama2c(path)
    data = bytearray(path.read_bytes())
    data[36] = 1
    struct.pack_into("<i", data, 8 + 4 * 5, -MHA[5])
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="vocab_size must be positive"):
        load_llama2c(path)


@pytest.mark.parametrize("version,needle", [(2, "Q8_0"), (3, "unknown"), (0, "unknown"), (-1, "unknown")])
def test_unsupported_versions(tmp_path, version, needle):
    t = random_tensors(*MHA[:6])
    path = tmp_path / "m.bin"
    write_v1_like_export(path, MHA, t, True, version=version)
    with pytest.raises(InputError) as e:
        load_llama2c(path)
    assert needle in one_line_error(e)


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "too small"),
        (b"\x01\x02\x03", "too small"),
        (b"24ka\x01\x00", "truncated"),
        (b"24ka" + struct.pack("<i", 1) + b"\0" * 20, "truncated"),
        (b"\x01\x00\x00\x00" * 5, "too small"),
        (b"PK\x03\x04" + b"\0" * 200, "zip"),
        (b"GGUF" + b"\x03\x00\x00\x00" + b"\0" * 200, "GGUF"),
        (bytes(range(256)) * 4, "not a llama2.c checkpoint"),
    ],
)
def test_garbage_files(tmp_path, content, needle):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        load_llama2c(path)
    assert needle in one_line_error(e)


def test_nan_weight_is_rejected(tmp_path):
    t = random_tensors(*MHA[:6])
    t["w3"][1, 2, 3] = np.nan
    path = tmp_path / "m.bin"
    write_legacy_like_export(path, MHA, t, True)
    with pytest.raises(InputError, match="w3"):
        load_llama2c(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such"):
        load_llama2c(tmp_path / "nope.bin")
    with pytest.raises(InputError, match="directory"):
        load_llama2c(tmp_path)


def test_weights_check_rejects_wrong_shapes_and_tying():
    cfg = ModelConfig("x", 16, 40, 2, 4, 2, 37, 8)
    t = random_tensors(16, 40, 2, 4, 2, 37)
    names = dict(token_embedding="tok_embeddings", rms_att="attention_norm", rms_ffn="ffn_norm", rms_final="norm", wcls="output")
    kw = {ours: t[names.get(ours, ours)] for ours in LlamaWeights.__dataclass_fields__}
    LlamaWeights(**kw).check(cfg)
    with pytest.raises(InputError, match="wk has shape"):
        LlamaWeights(**{**kw, "wk": t["wq"]}).check(cfg)
    with pytest.raises(InputError, match="same array"):
        LlamaWeights(**{**kw, "wcls": t["tok_embeddings"].copy()}).check(cfg)
    with pytest.raises(InputError, match="float32"):
        LlamaWeights(**{**kw, "w1": t["w1"].astype(np.float64)}).check(cfg)


def test_stories260k_header_and_layout():
    path = stories260k()
    assert path.stat().st_size == 1_056_540
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.startswith("9414d5a2") and digest.endswith("93c8d6")
    m = load_llama2c(path)
    c = m.config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len) == (64, 172, 5, 8, 4, 512, 512)
    assert c.shared_classifier and c.kv_dim == 32 and c.kv_mul == 2
    assert m.weights.wcls is m.weights.token_embedding
    # trained norm weights sit near 1 and matrices near 0: a misaligned read would not
    assert 0.3 < float(np.median(m.weights.rms_att)) < 3.0
    assert abs(float(m.weights.wq.mean())) < 0.05
    assert load_model(str(path)).content_hash() == m.content_hash()
