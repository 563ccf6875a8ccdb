"""How closely the int8 cluster follows the float model: top-1 agreement, teacher-forced.

Both models see the same tokens (the float model's own greedy trajectory), so one early difference does
not compound; each step asks only whether the two pick the same next token.
"""

from __future__ import annotations

import numpy as np

from orchestrator.model.reference import FloatTransformer
from orchestrator.partition.simulator import BOS, ClusterSim

AGREEMENT_SEED = 7


def agreement_prompts(vocab_size: int, n_prompts: int, prompt_len: int = 3) -> list[list[int]]:
    rng = np.random.default_rng(AGREEMENT_SEED)
    return [rng.integers(3, vocab_size, prompt_len).tolist() for _ in range(n_prompts)]


def top1_agreement(model, shards, n_prompts: int = 5, steps: int = 64) -> dict:
    """Fraction of steps where int8 (simulated on the shards' chips) and fp32 choose the same token."""
    sim = ClusterSim(shards)
    ft = FloatTransformer(model)
    hits = total = 0
    for prompt in agreement_prompts(model.config.vocab_size, n_prompts):
        seq = [BOS] + prompt
        ft.reset()
        for c in sim.chips:
            c.k_cache[:] = 0
            c.v_cache[:] = 0
        tok = seq[0]
        for pos in range(len(seq) - 1 + steps):
            f = ft.forward(tok, pos)
            q = np.concatenate(sim.step(tok, pos))
            if pos >= len(seq) - 1:
                total += 1
                hits += int(np.argmax(f)) == int(np.argmax(q))
            tok = seq[pos + 1] if pos + 1 < len(seq) else int(np.argmax(f))
    return {"top1": hits / total, "steps": total, "prompts": n_prompts}
