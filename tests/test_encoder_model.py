"""Encoder models without the trained package: safetensors parsing, Hugging Face folders, WordPiece,
MobileBERT's structure, and the clear one-line errors for bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model.bert import (
    MOBILEBERT,
    FloatEncoder,
    load_builtin_encoder,
    load_hf_encoder,
    pool,
    read_safetensors,
)
from orchestrator.model.wordpiece import basic_tokenize, load_wordpiece
from tests.encoder_ref import (
    bert_hidden_f64,
    mobilebert_hidden_f64,
    sentence_embedding_f64,
    tiny_bert_checkpoint,
    tiny_mobilebert_checkpoint,
    write_safetensors,
)


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# --- safetensors --------------------------------------------------------------------------------

def test_safetensors_round_trip_f32_f16_and_skips_integer_buffers(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    h = np.array([1.5, -2.25, 65504.0], dtype=np.float16)
    write_safetensors(tmp_path / "m.safetensors", {"a": a, "h": h, "ids": np.arange(3, dtype=np.int64)},
                      {"format": "pt"})
    t = read_safetensors(tmp_path / "m.safetensors")
    assert set(t) == {"a", "h"}
    assert np.array_equal(t["a"], a) and t["a"].dtype == np.float32
    assert np.array_equal(t["h"], h.astype(np.float32))


def _raw(header: dict, data: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.mark.parametrize("blob,what", [
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", 1 << 40) + b"{}", "header length"),
    (struct.pack("<Q", 4) + b"nope", "not JSON"),
    (_raw({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "outside the file"),
    (_raw({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, bytes(16)), "data bytes"),
    (_raw({"a": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)), "unsupported dtype"),
    (_raw({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 16]}}, bytes(16)), "invalid shape"),
    (_raw({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, bytes(16)), "overlap"),
])
def test_safetensors_rejects_bad_files(tmp_path, blob, what):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(blob)
    with pytest.raises(InputError) as e:
        read_safetensors(p)
    assert what in one_line(e)


# --- Hugging Face BERT folder -------------------------------------------------------------------

def test_tiny_bert_folder_float_reference_equals_an_independent_float64_bert(tmp_path):
    ck = tiny_bert_checkpoint(tmp_path / "tiny")
    m = load_hf_encoder(tmp_path / "tiny")
    assert m.config.variant == "bert" and m.config.pooling == "cls" and not m.config.normalize
    ids = m.encode_text("The cats sat on the mat, hello world.")
    assert ids[0] == ck["vocab"].index("[CLS]") and ids[-1] == ck["vocab"].index("[SEP]")
    assert ck["vocab"].index("##s") in ids  # "cats" -> "cat" "##s"
    ref = bert_hidden_f64(ck["tensors"], ck["config"], ids, prefix="bert.")
    got = FloatEncoder(m).hidden_states(ids)
    assert np.abs(got - ref).max() < 1e-4
    # padding: with keys past n_valid masked, the valid rows do not change
    padded = ids + [0] * 5
    got_p = FloatEncoder(m).hidden_states(padded, n_valid=len(ids))
    assert np.abs(got_p[:len(ids)] - ref).max() < 1e-4
    mean = pool(m.config.__class__(**{**m.config.to_dict(), "pooling": "mean", "normalize": True}), got, len(ids))
    assert np.abs(mean - sentence_embedding_f64(ref, len(ids))).max() < 1e-5


def test_checkpoint_whose_shapes_disagree_with_its_config_is_refused(tmp_path):
    tiny_bert_checkpoint(tmp_path / "tiny")
    conf = json.loads((tmp_path / "tiny" / "config.json").read_text())
    conf["intermediate_size"] = 80  # the tensors hold 64
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(conf))
    with pytest.raises(InputError) as e:
        load_hf_encoder(tmp_path / "tiny")
    msg = one_line(e)
    assert "intermediate.dense.weight" in msg and "config" in msg


def test_unknown_tokenizer_file_format_is_refused(tmp_path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x0a\x0b\x80\xff\x00binary sentencepiece")
    with pytest.raises(InputError) as e:
        load_wordpiece(bad)
    assert "unknown tokenizer file format" in one_line(e)
    bpe = tmp_path / "tokenizer.json"
    bpe.write_text(json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}))
    with pytest.raises(InputError) as e:
        load_wordpiece(bpe)
    assert "BPE" in one_line(e)


def test_vocab_txt_and_tokenizer_json_give_the_same_ids(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "caf", "##e", "!", "run", "##ning"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    (tmp_path / "tokenizer.json").write_text(json.dumps({
        "normalizer": {"type": "BertNormalizer", "lowercase": True, "strip_accents": None},
        "model": {"type": "WordPiece", "vocab": {w: i for i, w in enumerate(words)}}}))
    a, b = load_wordpiece(tmp_path / "vocab.txt"), load_wordpiece(tmp_path / "tokenizer.json")
    text = "UNAFFABLE Café!  running zzz"
    ids = a.encode(text)
    assert ids == b.encode(text)
    # lower-cased, accent stripped, punctuation split, greedy longest match, unknown word -> [UNK]
    assert ids == [2, 4, 5, 6, 7, 8, 9, 10, 11, 1, 3]


def test_basic_tokenizer_splits_punctuation_and_cjk():
    assert basic_tokenize("Hello, WORLD!") == ["hello", ",", "world", "!"]
    assert basic_tokenize("a\u4e2d\u6587b") == ["a", "\u4e2d", "\u6587", "b"]
    assert basic_tokenize("Ünïcödé\tx\x00y") == ["unicode", "xy"]


def test_sequence_longer_than_the_model_maximum_is_refused(tmp_path):
    tiny_bert_checkpoint(tmp_path / "tiny")
    m = load_hf_encoder(tmp_path / "tiny")
    with pytest.raises(InputError) as e:
        m.encode_text("hello " * 80)
    assert "longer than" in one_line(e) and "64" in str(e.value)
    with pytest.raises(InputError) as e:
        FloatEncoder(m).hidden_states([2] * 65)
    assert "maximum of 64" in one_line(e)


# --- MobileBERT ---------------------------------------------------------------------------------

def test_mobilebert_builtin_has_the_published_structure_and_says_synthetic():
    c = MOBILEBERT
    assert (c.hidden, c.embedding_size, c.bottleneck, c.n_layers, c.n_heads, c.n_ffn, c.intermediate) == \
        (512, 128, 128, 24, 4, 4, 512)
    assert c.norm == "nonorm" and c.act == "relu" and c.trigram and c.synthetic
    m = load_builtin_encoder("mobilebert")
    w = m.weights
    assert w["emb_proj.w"].shape == (512, 384) and w["word_emb"].shape == (30522, 128)
    assert w["layers.0.wv"].shape == (128, 512)  # values from the wide stream
    assert w["layers.0.wq"].shape == (128, 128) and w["layers.23.ffn3.w1"].shape == (512, 128)
    assert 24e6 < c.n_params() < 26e6  # MobileBERT's published ~25M parameters


def test_tiny_mobilebert_folder_equals_an_independent_float64_mobilebert(tmp_path):
    ck = tiny_mobilebert_checkpoint(tmp_path / "mb")
    m = load_hf_encoder(tmp_path / "mb")
    assert m.config.variant == "mobilebert" and m.config.n_ffn == 3 and m.config.norm == "nonorm"
    ids = [2, 5, 9, 11, 7, 3]
    ref = mobilebert_hidden_f64(ck["tensors"], ck["config"], ids)
    got = FloatEncoder(m).hidden_states(ids)
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
