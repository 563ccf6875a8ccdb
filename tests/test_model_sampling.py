"""llama2.c sampler semantics and the generate loop."""

from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.model import FloatTransformer, Sampler, XorShiftRng, generate, load_model
from orchestrator.model.sampling import sample_mult, sample_topp


def xorshift_numpy(seed, n):
    """Independent transcription of run.c random_u32 with numpy's wrapping uint64 arithmetic."""
    s = np.array([seed], dtype=np.uint64)
    out = []
    with np.errstate(over="ignore"):
        for _ in range(n):
            s ^= s >> np.uint64(12)
            s ^= s << np.uint64(25)
            s ^= s >> np.uint64(27)
            out.append(int(((s * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(32))[0]))
    return out


@pytest.mark.parametrize("seed", [1, 42, 1234567, 2**63 + 12345, 2**64 - 1])
def test_xorshift_matches_uint64_transcription(seed):
    rng = XorShiftRng(seed)
    assert [rng.random_u32() for _ in range(300)] == xorshift_numpy(seed, 300)


def test_random_f32_is_24_bit_float32_in_unit_interval():
    rng = XorShiftRng(7)
    ref = xorshift_numpy(7, 2000)
    vals = [rng.random_f32() for _ in range(2000)]
    assert all(isinstance(v, np.float32) and 0.0 <= v < 1.0 for v in vals)
    assert [int(v * 16777216) for v in vals] == [u >> 8 for u in ref]


@pytest.mark.parametrize("seed", [0, -1, 2**64, True, 1.5])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(InputError):
        XorShiftRng(seed)


def test_seed_is_checked_only_when_sampling():
    logits = np.array([0.0, 1.0, 0.5], np.float32)
    assert Sampler(3, temperature=0.0, seed=0).sample(logits) == 1
    with pytest.raises(InputError, match="seed"):
        Sampler(3, temperature=0.7, seed=0)


def test_argmax_ties_go_to_lowest_id():
    logits = np.zeros(10, dtype=np.float32)
    logits[[3, 7, 9]] = 2.5
    assert Sampler(10).sample(logits) == 3
    logits[0] = 2.5
    assert Sampler(10).sample(logits) == 0


def test_sample_mult_uses_strict_less_than_on_the_cdf():
    probs = np.array([0.25, 0.25, 0.5], dtype=np.float32)
    assert sample_mult(probs, np.float32(0.0)) == 0
    assert sample_mult(probs, np.float32(0.25)) == 1  # coin == cdf[0] is not < cdf[0]
    assert sample_mult(probs, np.float32(0.4999)) == 1
    assert sample_mult(probs, np.float32(0.5)) == 2
    short = np.array([0.3, 0.3], dtype=np.float32)  # sums below 1: rounding fallback is n - 1
    assert sample_mult(short, np.float32(0.9)) == 1


def test_temperature_sampling_follows_softmax_and_is_seeded():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(probs).astype(np.float32) * 2  # temperature 2 undoes the factor
    s = Sampler(4, temperature=2.0, seed=11)
    n = 8000
    got = np.bincount([s.sample(logits) for _ in range(n)], minlength=4) / n
    sigma = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(got - probs) < 5 * sigma), got

    sa, sb, sc = Sampler(4, 1.0, seed=5), Sampler(4, 1.0, seed=5), Sampler(4, 1.0, seed=6)
    seq_a = [sa.sample(logits) for _ in range(64)]
    assert seq_a == [sb.sample(logits) for _ in range(64)]
    assert seq_a != [sc.sample(logits) for _ in range(64)]


def test_coin_drives_the_choice_like_run_c():
    """With the same seed, the sampled id is the first whose float32 cdf exceeds random_f32()."""
    logits = np.array([0.1, 2.0, -1.0, 0.7, 0.0], dtype=np.float32)
    sampler, rng = Sampler(5, temperature=0.5, seed=99), XorShiftRng(99)
    e = np.exp((logits / np.float32(0.5)).astype(np.float64))
    cdf = np.cumsum(e / e.sum())
    checked = 0
    for _ in range(200):
        coin = float(rng.random_f32())
        want = int(np.argmax(coin < cdf))
        got = sampler.sample(logits)
        # skip coins within float32 rounding of a cdf boundary
        if abs(cdf[want] - coin) > 1e-6 and (want == 0 or abs(cdf[want - 1] - coin) > 1e-6):
            assert got == want
            checked += 1
    assert checked > 190


def test_topp_keeps_smallest_prefix_exceeding_p():
    probs = np.array([0.05, 0.3, 0.5, 0.15], dtype=np.float32)
    # sorted: 0.5 (id 2), 0.3 (id 1) -> cumulative 0.8 > 0.7: nucleus {2, 1}, renormalised by 0.8
    rng = XorShiftRng(3)
    counts = np.zeros(4, int)
    for _ in range(4000):
        counts[sample_topp(probs, 0.7, rng.random_f32())] += 1
    assert counts[0] == 0 and counts[3] == 0
    frac = counts[2] / counts.sum()
    assert abs(frac - 0.5 / 0.8) < 5 * np.sqrt(0.625 * 0.375 / 4000)
    assert sample_topp(probs, 0.7, np.float32(0.0)) == 2
    assert sample_topp(probs, 0.7, np.float32(0.999)) == 1
    # topp below the top probability: nucleus is the argmax alone
    assert {sample_topp(probs, 0.4, np.float32(c)) for c in (0.0, 0.5, 0.99)} == {2}


def test_topp_ties_keep_ascending_ids():
    probs = np.full(4, 0.25, dtype=np.float32)
    # cumulative 0.25, 0.5, 0.75 > 0.6 -> first three in id order
    assert [sample_topp(probs, 0.6, np.float32(c)) for c in (0.1, 0.4, 0.7, 0.99)] == [0, 1, 2, 2]


def test_topp_off_at_0_and_1_and_on_between():
    logits = np.array([3.0, 2.9, -5.0, -6.0], dtype=np.float32)
    for topp in (0.0, 1.0):
        seen = {Sampler(4, 1.0, topp, seed=s).sample(logits) for s in range(1, 3000)}
        assert 2 in seen  # p ~ 4e-4 per draw: with no nucleus it shows up in 3000 draws
    seen = {Sampler(4, 1.0, 0.9, seed=s).sample(logits) for s in range(1, 3000)}
    assert seen == {0, 1}


@pytest.mark.parametrize("kw", [dict(temperature=-0.1), dict(temperature=float("nan")), dict(topp=1.5), dict(topp=-0.2)])
def test_bad_sampler_settings(kw):
    with pytest.raises(InputError):
        Sampler(4, **kw)


def test_sampler_rejects_wrong_shape_and_nan():
    with pytest.raises(InputError, match="shape"):
        Sampler(4).sample(np.zeros(5, np.float32))
    with pytest.raises(InputError, match="NaN"):
        Sampler(3).sample(np.array([0, np.nan, 1], np.float32))


class ScriptedModel:
    """Records forward calls; logits pick the next token from a script."""

    def __init__(self, script, vocab=16, seq_len=32):
        self.config = SimpleNamespace(vocab_size=vocab, seq_len=seq_len)
        self.script = list(script)
        self.calls = []
        self.resets = 0

    def reset(self):
        self.resets += 1
        self.calls.clear()

    def forward(self, token, pos):
        self.calls.append((token, pos))
        logits = np.zeros(self.config.vocab_size, np.float32)
        logits[self.script[len(self.calls) - 1]] = 1.0
        return logits


def test_generate_forces_prompt_then_samples_steps_tokens():
    m = ScriptedModel(script=[9, 9, 9, 4, 5, 6, 7])
    seen = []
    out = generate(m, [10, 11, 12], steps=4, on_token=lambda pos, tok: seen.append((pos, tok)))
    # positions 0..2 are forced from [BOS, 10, 11, 12]; the script's 9s there are ignored
    assert m.calls == [(1, 0), (10, 1), (11, 2), (12, 3), (4, 4), (5, 5), (6, 6)]
    assert out == [4, 5, 6, 7]
    assert seen == [(4, 4), (5, 5), (6, 6), (7, 7)]
    assert m.resets == 1


def test_generate_empty_prompt_starts_at_bos():
    m = ScriptedModel(script=[3, 4, 5])
    assert generate(m, [], steps=3) == [3, 4, 5]
    assert m.calls == [(1, 0), (3, 1), (4, 2)]


def test_generate_stops_on_bos_unless_told_not_to():
    m = ScriptedModel(script=[3, 4, 1, 5, 6])
    assert generate(m, [], steps=5) == [3, 4]
    m = ScriptedModel(script=[3, 4, 1, 5, 6])
    assert generate(m, [], steps=5, stop_on_bos=False) == [3, 4, 1, 5, 6]


def test_generate_without_bos_uses_prompt_as_is():
    m = ScriptedModel(script=[0, 7, 8])
    assert generate(m, [5, 6], steps=2, bos=False) == [7, 8]
    assert m.calls[0] == (5, 0)
    with pytest.raises(InputError, match="empty prompt"):
        generate(ScriptedModel([1]), [], steps=1, bos=False)


def test_generate_checks_context_length_and_ids():
    m = ScriptedModel(script=[2] * 40, seq_len=8)
    assert len(generate(m, [3, 3], steps=6, stop_on_bos=False)) == 6  # 3 + 6 - 1 = 8 positions
    with pytest.raises(InputError, match="seq_len is 8"):
        generate(m, [3, 3], steps=7)
    with pytest.raises(InputError, match="prompt token 16"):
        generate(m, [16], steps=1)
    with pytest.raises(InputError, match="steps"):
        generate(m, [], steps=-1)


def test_generate_on_model_equals_manual_greedy_loop():
    model = load_model("tiny-test")
    out = generate(model, [40, 41], steps=12, stop_on_bos=False)
    tr = FloatTransformer(model)
    seq = [1, 40, 41]
    for pos in range(len(seq) - 1):
        tr.forward(seq[pos], pos)
    tok, want = seq[-1], []
    for pos in range(2, 14):
        tok = int(np.argmax(tr.forward(tok, pos)))
        want.append(tok)
    assert out == want


def test_generate_with_temperature_is_deterministic_by_seed():
    model = load_model("tiny-test")
    tr = FloatTransformer(model)
    a = generate(tr, [], steps=20, temperature=1.0, seed=5, stop_on_bos=False)
    b = generate(tr, [], steps=20, temperature=1.0, seed=5, stop_on_bos=False)
    c = generate(tr, [], steps=20, temperature=1.0, seed=6, stop_on_bos=False)
    assert a == b and a != c
