"""The cost model's front door: latency, energy and EDP of a model on N chips of a profile.

Decoders go through the partition planner (the same plan `orch flash` writes) and the replay of
decoder.py, which reproduces the mock's virtual clock cycle for cycle; encoders through encoder.py.
Figures are per generated token for decoders and per inference for encoders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from orchestrator.errors import InputError
from orchestrator.model.config import ModelConfig
from orchestrator.partition.plan import make_plan
from orchestrator.perf import replay
from orchestrator.perf.collectives import Topology
from orchestrator.perf.decoder import Timeline, simulate
from orchestrator.perf.encoder import EncoderShape, simulate_encoder
from orchestrator.perf.metrics import TokenMetrics, token_metrics
from orchestrator.perf.rates import ChipRates
from orchestrator.perf.shapes import resolve_model

GROWN_NOTE = "off-chip memory enlarged to hold the model (hypothetical: the profile's is too small)"


@dataclass
class Estimate:
    model: str
    kind: str  # "decoder" or "encoder"
    chips: int
    profile: str
    topology: str
    unit: str  # "token" or "inference"
    latency_ms: float
    energy_mj: float
    offchip_bytes_per_token: float
    onchip_bytes_per_token: float
    link_bytes_per_token: float
    macs_per_token: float
    energy_by_state_mj: dict[str, float]
    phase_ms: dict[int, dict[str, float]]
    note: str = ""
    tokens: int = 0  # generated tokens the figures average over (decoders)
    metrics: TokenMetrics | None = field(default=None, repr=False)
    timeline: Timeline | None = field(default=None, repr=False)

    @property
    def edp(self) -> float:
        """mJ x ms per token (or inference)."""
        return self.energy_mj * self.latency_ms

    def row(self) -> dict:
        return {"model": self.model, "kind": self.kind, "chips": self.chips, "profile": self.profile,
                "topology": self.topology, "unit": self.unit, "tokens": self.tokens, "latency_ms": self.latency_ms,
                "energy_mj": self.energy_mj, "edp_mj_ms": self.edp,
                "offchip_bytes_per_token": self.offchip_bytes_per_token,
                "onchip_bytes_per_token": self.onchip_bytes_per_token,
                "link_bytes_per_token": self.link_bytes_per_token, "macs_per_token": self.macs_per_token,
                "energy_by_state_mj": self.energy_by_state_mj, "note": self.note}


def _load_profile(profile):
    if isinstance(profile, str) or profile is None:
        from orchestrator.profiles import load_profile
        return load_profile(profile)
    return profile


def grown_profile(profile, need_bytes: int):
    """The profile with its off-chip memories enlarged (size only) to at least need_bytes each."""
    mems = tuple(dataclasses.replace(m, bytes=max(m.bytes, need_bytes)) if m.kind == "offchip" else m
                 for m in profile.memories)
    return dataclasses.replace(profile, memories=mems)


def estimate(model, chips: int, profile="siracusa", *, tokens: int = 16, prompt_ids=(), context: int | None = None,
             topology: Topology | str | None = None, temperature: bool = False, grow_offchip: bool = False,
             input_tokens=None) -> Estimate:
    """Latency, energy and bytes per token of `model` on `chips` chips.

    grow_offchip: when the model does not fit the profile's memories, evaluate it on a copy whose
    off-chip memory is large enough (the row is marked with a note) instead of refusing."""
    shape = resolve_model(model)
    prof = _load_profile(profile)
    topo = topology if isinstance(topology, Topology) else Topology.parse(topology, chips)
    note = ""
    if isinstance(shape, EncoderShape):
        try:
            tl = simulate_encoder(shape, chips, prof, topo)
        except InputError:
            if not grow_offchip:
                raise
            prof, note = grown_profile(prof, shape.n_params() * 2), GROWN_NOTE
            tl = simulate_encoder(shape, chips, prof, topo)
        kind, unit, name = "encoder", "inference", shape.name
    else:
        cfg: ModelConfig = shape
        try:
            plan = make_plan(cfg, chips, prof, context)
        except InputError:
            if not grow_offchip:
                raise
            prof, note = grown_profile(prof, cfg.n_params() * 2), GROWN_NOTE
            plan = make_plan(cfg, chips, prof, context)
        tl = simulate(plan, tokens, prompt_ids, topo, input_tokens=input_tokens, temperature=temperature)
        kind, unit, name = "decoder", "token", cfg.name
    m = token_metrics(tl.records, prof)
    return Estimate(name, kind, chips, prof.name, topo.label(), unit, m.latency_ms, m.energy_mj, m.offchip_bytes,
                    m.onchip_bytes, m.link_tx_bytes, m.macs, m.energy_by_state_mj, m.phase_ms, note,
                    tokens if kind == "decoder" else 0, m, tl)


def with_gains(estimates: list[Estimate]) -> list[dict]:
    """Rows with speedup and EDP gain over the 1-chip estimate of the same model, profile and token count."""
    base = {(e.model, e.profile, e.tokens): e for e in estimates if e.chips == 1}
    rows = []
    for e in estimates:
        b = base.get((e.model, e.profile, e.tokens))
        r = e.row()
        r["speedup"] = b.latency_ms / e.latency_ms if b and e.latency_ms > 0 else None
        r["edp_gain"] = b.edp / e.edp if b and e.edp > 0 else None
        rows.append(r)
    return rows


def barrier_exit_cycles(world: int, profile="siracusa", topology: Topology | str | None = None) -> list[int]:
    """Each chip's virtual clock when RUN's start barrier returns, if all entered it at the same time.

    The barrier's broadcast down the tree reaches chips at different times (a few link latencies
    apart), so aligning mock traces on their first record is off by these amounts; subtracting them
    makes the alignment exact."""
    import numpy as np
    prof = _load_profile(profile)
    topo = topology if isinstance(topology, Topology) else Topology.parse(topology, world)
    comp = replay.compiled("barrier", world, topo, ChipRates.from_profile(prof))
    return [int(v) for v in comp.apply(np.zeros(world))]
