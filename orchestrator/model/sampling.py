"""llama2.c's sampler (xorshift RNG, argmax, temperature, top-p) and its generate loop.

Differences from run.c, all deliberate:
  - top-p sorts candidates with a stable sort (equal probabilities keep ascending token id);
    run.c uses qsort, whose order for ties is unspecified;
  - seed 0 is refused when sampling (xorshift's state 0 is a fixed point: every coin would be
    0.0) instead of seeding from the clock; greedy decoding ignores the seed;
  - `steps` counts generated tokens only (run.c's counts positions, prompt included).
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np

from orchestrator.errors import InputError
from orchestrator.model.reference import FloatTransformer
from orchestrator.model.weights import Model

BOS = 1
EOS = 2
DEFAULT_SEED = 42

F32 = np.float32
_MASK64 = (1 << 64) - 1


class XorShiftRng:
    """run.c's random_u32 / random_f32 (xorshift64* with the output multiply), state mod 2**64."""

    def __init__(self, seed: int = DEFAULT_SEED):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"sampler seed must be an integer, got {seed!r}")
        seed = int(seed)
        if not 0 < seed <= _MASK64:
            raise InputError(f"sampler seed must be in 1..2**64-1 (xorshift state 0 never changes), got {seed}")
        self.state = seed

    def random_u32(self) -> int:
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & _MASK64
        s ^= s >> 27
        self.state = s
        return ((s * 0x2545F4914F6CDD1D) & _MASK64) >> 32

    def random_f32(self) -> np.float32:
        """Uniform in [0, 1) with 24 random bits: exact in float32."""
        return F32((self.random_u32() >> 8) / 16777216.0)


def sample_argmax(logits: np.ndarray) -> int:
    """Index of the largest value; ties go to the lowest index (run.c keeps the first strict max)."""
    return int(np.argmax(logits))


def softmax_f32(x: np.ndarray) -> np.ndarray:
    """run.c softmax over a 1-D float32 vector, with its sequential float32 sum."""
    e = np.exp(x - x.max())
    total = np.cumsum(e, dtype=F32)[-1]  # cumsum adds left to right, like run.c's loop
    return e / total


def sample_mult(probs: np.ndarray, coin: np.float32) -> int:
    """First i with coin < cdf[i] (cdf summed left to right in float32); n-1 if rounding leaves none."""
    cdf = np.cumsum(probs, dtype=F32)
    i = int(np.searchsorted(cdf, coin, side="right"))
    return min(i, probs.shape[0] - 1)


def sample_topp(probs: np.ndarray, topp: float, coin: np.float32) -> int:
    """run.c nucleus sampling: the smallest prefix (by descending probability) whose mass exceeds
    topp, after dropping tokens below (1 - topp) / (n - 1), which cannot be in it."""
    n = probs.shape[0]
    if n == 1:
        return 0  # run.c would divide by n - 1 = 0 here
    topp32 = F32(topp)
    cutoff = (F32(1.0) - topp32) / F32(n - 1)
    cand = np.flatnonzero(probs >= cutoff)
    order = cand[np.argsort(-probs[cand], kind="stable")]
    sorted_p = probs[order]
    cum = np.cumsum(sorted_p, dtype=F32)
    over = np.flatnonzero(cum > topp32)
    last = int(over[0]) if over.size else order.size - 1
    r = F32(coin * cum[last])
    hit = np.flatnonzero(r < cum[: last + 1])
    return int(order[hit[0]]) if hit.size else int(order[last])


class Sampler:
    """temperature 0 -> argmax; else softmax(logits / temperature) and one coin per token;
    topp strictly inside (0, 1) enables nucleus sampling, 0 or 1 turn it off (as run.c).
    The seed is only used (and checked: 1..2**64-1) when temperature > 0."""

    def __init__(self, vocab_size: int, temperature: float = 0.0, topp: float = 1.0, seed: int = DEFAULT_SEED):
        if not isinstance(temperature, (int, float, np.floating)) or not np.isfinite(temperature) or temperature < 0:
            raise InputError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if not isinstance(topp, (int, float, np.floating)) or not np.isfinite(topp) or not 0 <= topp <= 1:
            raise InputError(f"topp must be in [0, 1] (0 or 1 = off), got {topp!r}")
        self.vocab_size = int(vocab_size)
        self.temperature = F32(temperature)
        self.topp = float(topp)
        self.rng = XorShiftRng(seed) if self.temperature > 0 else None

    def sample(self, logits: np.ndarray) -> int:
        logits = np.asarray(logits)
        if logits.shape != (self.vocab_size,):
            raise InputError(f"logits have shape {logits.shape}, expected ({self.vocab_size},)")
        if self.temperature == 0:
            if logits.dtype.kind == "f" and not np.isfinite(logits).all():
                raise InputError("logits contain NaN or Inf; the model diverged")
            return sample_argmax(logits)
        scaled = logits.astype(F32) / self.temperature
        if not np.isfinite(scaled).all():
            raise InputError("logits / temperature contain NaN or Inf; the model diverged or the temperature is too small")
        probs = softmax_f32(scaled)
        coin = self.rng.random_f32()
        if self.topp <= 0 or self.topp >= 1:
            return sample_mult(probs, coin)
        return sample_topp(probs, self.topp, coin)


class StepModel(Protocol):
    """Anything generate() can drive: FloatTransformer, or an int8 reference with the same shape."""

    config: object

    def reset(self) -> None: ...

    def forward(self, token: int, pos: int) -> np.ndarray: ...


def generate(
    model_or_transformer: Model | StepModel,
    prompt_ids: Sequence[int],
    steps: int,
    temperature: float = 0.0,
    topp: float = 1.0,
    seed: int = DEFAULT_SEED,
    stop_on_bos: bool = True,
    bos: bool = True,
    on_token: Callable[[int, int], None] | None = None,
) -> list[int]:
    """run.c's generate loop. Returns the generated token ids only (no prompt, no BOS).

    The sequence fed to the model is [BOS] + prompt_ids (bos=True, like llama2.c's
    encode(bos=1); pass bos=False if prompt_ids already starts with its own first token).
    Positions 0 .. len(seq)-2 are forced from the sequence (their logits are not sampled);
    then `steps` tokens are sampled, each fed back at the next position. Generation stops
    early when the sampled token is BOS (1) and stop_on_bos is set (run.c's behaviour); that
    BOS is not returned. The model runs len(seq) - 1 + steps positions, which must fit in
    seq_len (run.c's `steps` = len(seq) - 1 + this `steps`). on_token(pos, token) is called
    for every generated token as soon as it is sampled (pos = position it will be fed at).
    The transformer is reset() first; its KV cache afterwards holds the whole run.
    """
    if isinstance(model_or_transformer, Model):
        transformer: StepModel = FloatTransformer(model_or_transformer)
    else:
        transformer = model_or_transformer
    config = transformer.config
    vocab, seq_len = config.vocab_size, config.seq_len

    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InputError(f"steps must be a non-negative integer, got {steps!r}")
    seq = [BOS] if bos else []
    for t in prompt_ids:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < vocab:
            raise InputError(f"prompt token {t!r} is not a token id in [0, {vocab})")
        seq.append(int(t))
    if not seq:
        raise InputError("empty prompt with bos=False: there is no first token to start from")
    needed = len(seq) - 1 + int(steps)
    if needed > seq_len:
        raise InputError(
            f"{len(seq)} prompt tokens (with BOS) + {steps} steps need {needed} positions, "
            f"but the model's seq_len is {seq_len}; use fewer steps or a shorter prompt"
        )
    sampler = Sampler(vocab, temperature, topp, seed)

    transformer.reset()
    for pos in range(len(seq) - 1):
        transformer.forward(seq[pos], pos)
    token = seq[-1]
    pos = len(seq) - 1
    out: list[int] = []
    for _ in range(int(steps)):
        logits = transformer.forward(token, pos)
        nxt = sampler.sample(logits)
        if stop_on_bos and nxt == BOS:
            break
        out.append(nxt)
        pos += 1
        if on_token is not None:
            on_token(pos, nxt)
        token = nxt
    return out
