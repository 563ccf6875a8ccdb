"""FloatTransformer against a slow, loop-by-loop float64 transcription of llama2.c run.c's forward()."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model import (
    OBSERVER_SITES_GLOBAL,
    OBSERVER_SITES_LAYER,
    FloatTransformer,
    ModelConfig,
    load_llama2c,
    load_model,
    synthetic_model,
)
from orchestrator.model.weights import LlamaWeights, Model


def shared_models_dir() -> Path | None:
    env = os.environ.get("ORCH_SHARED_MODELS")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "models"
    return d if d.is_dir() else None


def stories260k():
    d = shared_models_dir()
    if d is None or not (d / "stories260K.bin").is_file():
        pytest.skip("stories260K.bin not found: needs ../shared/models next to the repo or ORCH_SHARED_MODELS")
    return load_llama2c(d / "stories260K.bin")


class SlowLlama:
    """Independent float64 re-implementation: explicit loops over heads, positions and pairs."""

    def __init__(self, model):
        self.c = model.config
        self.w = {name: np.asarray(arr, dtype=np.float64) for name, arr in model.weights.items()}
        self.keys = [[] for _ in range(self.c.n_layers)]
        self.values = [[] for _ in range(self.c.n_layers)]

    @staticmethod
    def rmsnorm(x, weight):
        ss = sum(float(v) * float(v) for v in x) / len(x) + 1e-5
        return weight * (x / math.sqrt(ss))

    def step(self, token, pos):
        c, w = self.c, self.w
        hs = c.dim // c.n_heads
        kv_dim = c.n_kv_heads * hs
        group = c.n_heads // c.n_kv_heads
        x = w["token_embedding"][token].copy()
        for l in range(c.n_layers):
            xb = self.rmsnorm(x, w["rms_att"][l])
            q = w["wq"][l] @ xb
            k = w["wk"][l] @ xb
            v = w["wv"][l] @ xb
            for i in range(0, c.dim, 2):
                freq = 1.0 / (10000.0 ** ((i % hs) / hs))
                angle = pos * freq
                cs, sn = math.cos(angle), math.sin(angle)
                q[i], q[i + 1] = q[i] * cs - q[i + 1] * sn, q[i] * sn + q[i + 1] * cs
                if i < kv_dim:
                    k[i], k[i + 1] = k[i] * cs - k[i + 1] * sn, k[i] * sn + k[i + 1] * cs
            assert len(self.keys[l]) == pos
            self.keys[l].append(k)
            self.values[l].append(v)
            out = np.zeros(c.dim)
            for h in range(c.n_heads):
                kvh = h // group
                qh = q[h * hs : (h + 1) * hs]
                scores = []
                for t in range(pos + 1):
                    kt = self.keys[l][t][kvh * hs : (kvh + 1) * hs]
                    scores.append(sum(qh[i] * kt[i] for i in range(hs)) / math.sqrt(hs))
                top = max(scores)
                ex = [math.exp(s - top) for s in scores]
                total = sum(ex)
                for t in range(pos + 1):
                    vt = self.values[l][t][kvh * hs : (kvh + 1) * hs]
                    out[h * hs : (h + 1) * hs] += (ex[t] / total) * vt
            x = x + w["wo"][l] @ out
            xb = self.rmsnorm(x, w["rms_ffn"][l])
            h1 = w["w1"][l] @ xb
            h3 = w["w3"][l] @ xb
            hidden = np.array([a / (1.0 + math.exp(-a)) * b for a, b in zip(h1, h3)])
            x = x + w["w2"][l] @ hidden
        x = self.rmsnorm(x, w["rms_final"])
        return w["wcls"] @ x


def assert_close(fast, slow, rel=1e-4):
    fast = np.asarray(fast, dtype=np.float64)
    scale = float(np.max(np.abs(slow)))
    err = float(np.max(np.abs(fast - slow)))
    assert err <= rel * scale, f"max abs error {err:.3g} vs max |logit| {scale:.3g}"


def run_both(model, tokens):
    fast, slow = FloatTransformer(model), SlowLlama(model)
    for pos, tok in enumerate(tokens):
        assert_close(fast.forward(tok, pos), slow.step(tok, pos))


def small_model(n_heads, n_kv_heads, shared, seed=0, dim=32, vocab=40):
    cfg = ModelConfig("t", dim, 3 * dim - 4, 2, n_heads, n_kv_heads, vocab, 16, shared_classifier=shared, synthetic=True)
    return synthetic_model(cfg, seed)


def test_tiny_test_builtin_matches_slow_reference():
    model = load_model("tiny-test")
    assert model.config.kv_mul == 2  # exercises GQA
    run_both(model, [1, 17, 200, 3, 3, 255, 0, 42, 99, 128])


@pytest.mark.parametrize("n_heads,n_kv,shared", [(4, 4, False), (4, 1, True), (8, 2, False)])
def test_mha_mqa_gqa_untied_match_slow_reference(n_heads, n_kv, shared):
    run_both(small_model(n_heads, n_kv, shared, seed=n_heads + n_kv), [1, 5, 9, 5, 39, 0, 12])


def test_stories260k_matches_slow_reference():
    run_both(stories260k(), [1, 400, 33, 511, 7])


def test_stories260k_greedy_tokens_match_slow_reference():
    model = stories260k()
    fast, slow = FloatTransformer(model), SlowLlama(model)
    tok_f = tok_s = 1
    for pos in range(12):
        lf, ls = fast.forward(tok_f, pos), slow.step(tok_s, pos)
        tok_f, tok_s = int(np.argmax(lf)), int(np.argmax(ls))
        assert tok_f == tok_s, f"greedy diverged at pos {pos}"


def test_gqa_query_heads_read_their_own_kv_head():
    """Changing KV head 1 may only move query heads 2 and 3 (h // kv_mul), never 0 and 1."""
    model = small_model(4, 2, True, seed=4)
    w = model.weights
    hs = model.config.head_size
    wk = w.wk.copy()
    wv = w.wv.copy()
    wk[0, hs : 2 * hs] *= -1.5
    wv[0, hs : 2 * hs] *= 2.0
    other = Model(model.config, LlamaWeights(**{**dict(w.items()), "wk": wk, "wv": wv, "wcls": w.token_embedding}))

    def att_out(m):
        seen = {}
        tr = FloatTransformer(m)
        for pos, tok in enumerate([1, 7, 3]):
            tr.forward(tok, pos, observer=lambda s, l, a: seen.__setitem__((s, l), a))
        return seen[("att_out", 0)]

    a, b = att_out(model), att_out(other)
    np.testing.assert_array_equal(a[: 2 * hs], b[: 2 * hs])
    assert np.max(np.abs(a[2 * hs :] - b[2 * hs :])) > 1e-3


def test_observer_sites_order_shapes_and_no_aliasing():
    model = load_model("tiny-test")
    c = model.config
    calls = []
    tr = FloatTransformer(model)
    tr.forward(1, 0)
    logits = tr.forward(65, 1, observer=lambda site, layer, arr: calls.append((site, layer, arr)))

    want = [("emb", -1)]
    for l in range(c.n_layers):
        want += [(s, l) for s in ("xn_att", "q_rope", "k_rope", "v", "att_out", "x_mid", "xn_ffn", "h1", "h3", "g", "x_out")]
    want += [("xn_final", -1), ("logits", -1)]
    assert [(s, l) for s, l, _ in calls] == want
    assert set(OBSERVER_SITES_LAYER) | set(OBSERVER_SITES_GLOBAL) == {s for s, _ in want}

    shape = {"q_rope": c.dim, "k_rope": c.kv_dim, "v": c.kv_dim, "h1": c.hidden_dim, "h3": c.hidden_dim, "g": c.hidden_dim, "logits": c.vocab_size}
    for site, _, arr in calls:
        assert arr.dtype == np.float32 and arr.shape == (shape.get(site, c.dim),), site
    got = {(s, l): a for s, l, a in calls}
    np.testing.assert_array_equal(got[("logits", -1)], logits)
    np.testing.assert_array_equal(got[("emb", -1)], model.weights.token_embedding[65])
    # relations between sites that the int8 pipeline relies on
    w = model.weights
    np.testing.assert_allclose(got[("h1", 0)], w.w1[0] @ got[("xn_ffn", 0)], rtol=1e-5, atol=1e-6)
    silu = got[("h1", 1)] / (1 + np.exp(-got[("h1", 1)]))
    np.testing.assert_allclose(got[("g", 1)], silu * got[("h3", 1)], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[("x_mid", 1)], got[("x_out", 0)] + w.wo[1] @ got[("att_out", 1)], rtol=1e-5, atol=1e-5)

    kept = {k: v.copy() for k, v in got.items()}
    tr.forward(3, 2)
    tr.forward(4, 3)
    for key, arr in got.items():
        np.testing.assert_array_equal(arr, kept[key], err_msg=f"{key} was overwritten")


def test_rope_is_identity_at_pos0_and_norm_preserving_later():
    model = load_model("tiny-test")
    w = model.weights
    seen = {}
    tr = FloatTransformer(model)

    def obs(site, layer, arr):
        seen[(site, layer)] = arr

    tr.forward(9, 0, observer=obs)
    np.testing.assert_allclose(seen[("q_rope", 0)], w.wq[0] @ seen[("xn_att", 0)], rtol=1e-6, atol=1e-6)
    tr.forward(9, 1)
    tr.forward(9, 2)
    tr.forward(9, 3, observer=obs)
    raw = w.wq[0] @ seen[("xn_att", 0)]
    rot = seen[("q_rope", 0)]
    assert np.max(np.abs(rot - raw)) > 1e-3  # rotated
    np.testing.assert_allclose(np.hypot(rot[0::2], rot[1::2]), np.hypot(raw[0::2], raw[1::2]), rtol=1e-5)


def test_rewinding_matches_a_fresh_run():
    model = load_model("tiny-test")
    a = FloatTransformer(model)
    for pos, tok in enumerate([1, 5, 6, 7, 8]):
        a.forward(tok, pos)
    a.forward(50, 2)  # rewind to pos 2 with a different token
    got = a.forward(51, 3)
    b = FloatTransformer(model)
    for pos, tok in enumerate([1, 5, 50]):
        b.forward(tok, pos)
    np.testing.assert_array_equal(got, b.forward(51, 3))
    a.reset()
    np.testing.assert_array_equal(a.forward(1, 0), FloatTransformer(model).forward(1, 0))


@pytest.mark.parametrize("token,pos,needle", [(256, 0, "token 256"), (-1, 0, "token -1"), (1, 128, "pos 128"), (1, 1, "skips"), (1.0, 0, "integer")])
def test_forward_rejects_bad_token_and_pos(token, pos, needle):
    tr = FloatTransformer(load_model("tiny-test"))
    with pytest.raises(InputError, match=needle):
        tr.forward(token, pos)


def test_forward_accepts_numpy_ints_and_returns_fresh_float32():
    tr = FloatTransformer(load_model("tiny-test"))
    a = tr.forward(np.int64(1), np.int32(0))
    b = tr.forward(np.int64(2), 1)
    assert a.dtype == np.float32 and a.shape == (256,)
    assert a is not b and not np.array_equal(a, b)
