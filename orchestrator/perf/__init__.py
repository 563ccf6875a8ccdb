"""The analytical latency/energy model of a plan on a chip profile (ARCHITECTURE.md, layer `perf`).

    estimate(model, chips, profile, tokens=16)   -> Estimate (latency, energy, EDP, bytes per token)
    simulate(plan, n_tokens, prompt_ids)         -> Timeline (per-chip trace records, as the mock's)
    token_metrics(trace, profile, offsets)       -> TokenMetrics from any trace records
    paper_comparison(profile)                    -> our figures next to the reference design's

docs/perf.md describes the model and how it mirrors the firmware's cycle accounting.
"""

from orchestrator.perf.collectives import Topology
from orchestrator.perf.decoder import Timeline, simulate
from orchestrator.perf.encoder import MOBILEBERT, EncoderShape, simulate_encoder
from orchestrator.perf.energy import PowerStates, record_power_mw, record_state_cycles
from orchestrator.perf.metrics import TokenMetrics, token_metrics
from orchestrator.perf.model import Estimate, barrier_exit_cycles, estimate, with_gains
from orchestrator.perf.paper import PAPER, paper_comparison
from orchestrator.perf.rates import ChipRates, cost_cycles
from orchestrator.perf.shapes import SCALED_TINYLLAMA, known_models, resolve_model

__all__ = [
    "Topology", "Timeline", "simulate", "MOBILEBERT", "EncoderShape", "simulate_encoder", "PowerStates",
    "record_power_mw", "record_state_cycles", "TokenMetrics", "token_metrics", "Estimate", "barrier_exit_cycles",
    "estimate", "with_gains", "PAPER", "paper_comparison", "ChipRates", "cost_cycles", "SCALED_TINYLLAMA",
    "known_models", "resolve_model",
]
