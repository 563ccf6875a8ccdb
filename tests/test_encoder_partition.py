"""Encoder partition: heads, FFN units, vocabulary and hidden columns split with no weight stored twice;
shards of model kind 2 validated; N chips equal one chip; the all-reduces a block costs."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import InputError
from tests.encoder_ref import tiny_bert_checkpoint, tiny_mobilebert_checkpoint
from tests.test_cli import assert_one_line_error
from tests.test_e2e_mock import orch


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from orchestrator.model.bert import load_hf_encoder
    d = tmp_path_factory.mktemp("tiny-encoders")
    tiny_bert_checkpoint(d / "bert", seed=3)
    tiny_mobilebert_checkpoint(d / "mobilebert", seed=4)
    return {"bert": load_hf_encoder(d / "bert"), "mobilebert": load_hf_encoder(d / "mobilebert")}


@pytest.mark.parametrize("variant", ["bert", "mobilebert"])
def test_every_weight_is_stored_exactly_once(tiny_models, variant):
    from orchestrator.partition.split_encoder import ENC_WEIGHT_NAMES, enc_chip_tensors, make_enc_slices, tensor_names
    from orchestrator.quant.quantize_encoder import quantize_encoder
    m = tiny_models[variant]
    qm = quantize_encoder(m)
    names = {(k, l): n for n, k, l, _ in tensor_names(m.config)}
    for world in (1, 2, 4):
        seen: dict[str, list[np.ndarray]] = {}
        for sl in make_enc_slices(m.config, world):
            for kind, layer, arr in enc_chip_tensors(qm, sl):
                name = names[(kind, layer)]
                if name.rsplit(".", 1)[-1] in ENC_WEIGHT_NAMES:
                    seen.setdefault(name, []).append(arr)
        assert seen, variant
        for name, parts in seen.items():
            whole = qm.tensors[name]
            assert sum(p.size for p in parts) == whole.size, (name, world)
            # and the parts are the whole: rows or columns in rank order
            rows, cols = np.concatenate(parts, 0), None
            if rows.shape != whole.shape:
                cols = np.concatenate(parts, 1)
            assert np.array_equal(rows if cols is None else cols, whole), (name, world)


@pytest.mark.parametrize("variant,per_block", [("bert", 2), ("mobilebert", 2 + 3)])
def test_n_chips_equal_one_chip_and_allreduces_per_block(tiny_models, shards_for, variant, per_block):
    from orchestrator.partition.shard import manifest_config
    from orchestrator.partition.simulator_encoder import EncClusterSim
    m = tiny_models[variant]
    ids = [2, 5, 6, 7, 8, 9, 3] if variant == "bert" else [2, 5, 9, 11, 7, 3]
    out = {}
    for world in (1, 2, 4):
        ss, shards = shards_for(m, world)
        assert ss.manifest["model"]["kind"] == "encoder"
        assert all(s.header.model_kind == 2 for s in shards)
        sim = EncClusterSim.from_shards(manifest_config(ss.manifest, "m"), shards)
        out[world] = sim.run(ids)
        assert out[world].allreduces_per_layer == per_block
        if variant == "bert":  # padding keys are masked: padded input, same bits (MobileBERT's trigram
            # input sees the next token, padding included, as in Hugging Face's implementation)
            assert np.array_equal(sim.run(ids + [0, 0, 0], n_valid=len(ids)).pooled, out[world].pooled)
    assert np.array_equal(out[2].pooled, out[1].pooled) and np.array_equal(out[4].pooled, out[1].pooled)


def test_encoder_shard_corruption_is_named(tiny_models, shards_for):
    from orchestrator.partition.shard import parse_shard
    ss, _ = shards_for(tiny_models["bert"], 2)
    data = bytearray((ss.directory / "shard-1.bin").read_bytes())
    parse_shard(bytes(data))
    data[-5] ^= 0x40  # inside the last tensor
    with pytest.raises(InputError) as e:
        parse_shard(bytes(data), "shard-1.bin")
    assert "CRC mismatch" in str(e.value) and "layers.1" in str(e.value)


def test_plan_of_encoders(tiny_models):
    from orchestrator.partition.plan import make_plan
    from orchestrator.model.bert import MOBILEBERT
    from orchestrator.profiles import load_profile
    prof = load_profile("siracusa")
    plan = make_plan(MOBILEBERT, 4, prof, 128)
    assert plan.context == 128 and len(plan.chips) == 4
    per_chip = [c.shard_bytes for c in plan.chips]
    assert max(per_chip) - min(per_chip) < 0.01 * max(per_chip)  # balanced
    assert all(c.offchip_bytes == 0 for c in plan.chips)  # MobileBERT's 25 MB stays on chip over 4 Siracusas
    one = make_plan(MOBILEBERT, 1, prof, 128)
    assert one.chips[0].offchip_bytes > 0
    with pytest.raises(InputError, match="divide its 4 attention heads"):
        make_plan(MOBILEBERT, 3, prof, 128)
    with pytest.raises(InputError, match="--context"):
        make_plan(MOBILEBERT, 4, prof, 1000)


def test_plan_cli_for_mobilebert():
    rc, out, err = orch("plan", "--model", "mobilebert", "--chips", "3")
    assert_one_line_error(rc, out, err, "divide", "4 attention heads")
    rc, out, err = orch("plan", "--model", "mobilebert", "--chips", "4", "--context", "128")
    assert rc == 0 and "mobilebert" in out and "synthetic" in out
