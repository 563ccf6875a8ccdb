"""Built-in synthetic models and load_model()."""

import itertools
import math

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model import BUILTIN_MODELS, FloatTransformer, ModelConfig, generate, load_model, synthetic_model, write_llama2c


def test_builtins_are_declared_synthetic():
    assert {"tinyllama-42m", "tiny-test"} <= set(BUILTIN_MODELS)
    for name, b in BUILTIN_MODELS.items():
        assert b.config.name == name
        assert b.config.synthetic is True
        assert "synthetic" in b.description.lower()


def test_tinyllama_42m_shape():
    c = BUILTIN_MODELS["tinyllama-42m"].config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len) == (512, 1376, 8, 8, 8, 32000, 1024)
    assert c.shared_classifier
    # 42M-class: 8 x 3.16M in blocks + 16.4M tied embedding
    assert 41e6 < c.n_params() < 43e6


def test_tiny_test_shape_is_gqa():
    c = BUILTIN_MODELS["tiny-test"].config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len) == (64, 176, 2, 4, 2, 256, 128)
    assert c.kv_mul == 2


def test_same_seed_same_bytes_other_seed_differs():
    a, b, c = load_model("tiny-test"), load_model("tiny-test", seed=0), load_model("tiny-test", seed=1)
    assert a.content_hash() == b.content_hash() != c.content_hash()
    for (name, x), (_, y) in zip(a.weights.items(), b.weights.items()):
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert not np.array_equal(a.weights.wq, c.weights.wq)


def test_weights_are_float32_readonly_tied_and_scaled():
    m = load_model("tiny-test", seed=3)
    w, c = m.weights, m.config
    assert w.wcls is w.token_embedding
    for name, arr in w.items():
        assert arr.dtype == np.float32 and arr.flags.c_contiguous and not arr.flags.writeable, name
    # fan-in scaling: a unit-rms input gives unit-rms outputs for wv, w1 (wq/wk deliberately hotter)
    assert abs(float(w.wv.std()) * math.sqrt(c.dim) - 1) < 0.1
    assert abs(float(w.w2.std()) * math.sqrt(c.hidden_dim) - 1) < 0.1
    assert float(w.wq.std()) > 1.5 / math.sqrt(c.dim)
    assert abs(float(w.rms_att.mean()) - 1) < 0.05 and 0.05 < float(w.rms_att.std()) < 0.2
    assert float(np.abs(w.token_embedding).mean()) < float(np.abs(w.wv).mean())


def test_untied_config_gets_its_own_classifier():
    cfg = ModelConfig("u", 32, 64, 1, 4, 4, 50, 8, shared_classifier=False, synthetic=True)
    m = synthetic_model(cfg, seed=2)
    assert m.weights.wcls is not m.weights.token_embedding
    assert not np.array_equal(m.weights.wcls, m.weights.token_embedding)


@pytest.fixture(scope="module")
def tinyllama():
    return load_model("tinyllama-42m")


def test_tinyllama_greedy_decoding_is_not_degenerate(tinyllama):
    """From BOS, 64 greedy tokens must not collapse onto one token or long runs of it."""
    out = generate(tinyllama, [], steps=64, stop_on_bos=False)
    longest_run = max(len(list(g)) for _, g in itertools.groupby(out))
    assert len(out) == 64
    assert len(set(out)) >= 40, out
    assert longest_run <= 6, out


def test_tinyllama_logits_have_trained_like_spread(tinyllama):
    tr = FloatTransformer(tinyllama)
    logits = tr.forward(1, 0)
    assert 1.0 < float(logits.std()) < 5.0
    assert np.isfinite(logits).all()


def test_load_model_reads_checkpoint_paths(tmp_path):
    m = load_model("tiny-test", seed=4)
    path = tmp_path / "exported.bin"
    write_llama2c(m, path, version=1)
    loaded = load_model(str(path))
    assert loaded.config.name == "exported"
    assert loaded.config.synthetic is False
    assert loaded.content_hash() != m.content_hash()  # synthetic flag is part of the config
    np.testing.assert_array_equal(loaded.weights.w2, m.weights.w2)
    np.testing.assert_array_equal(FloatTransformer(loaded).forward(1, 0), FloatTransformer(m).forward(1, 0))


def test_load_model_unknown_name_lists_builtins(tmp_path):
    with pytest.raises(InputError) as e:
        load_model("tinyllama-4m")
    msg = str(e.value)
    assert all(name in msg for name in BUILTIN_MODELS) and "\n" not in msg
    with pytest.raises(InputError, match="not a regular file"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed):
    with pytest.raises(InputError, match="seed"):
        load_model("tiny-test", seed=seed)
