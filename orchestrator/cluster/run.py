"""`orch run`: identify, configure, align clocks, start every chip together, stream tokens, collect
traces, and write the results folder as things arrive (ARCHITECTURE.md invariant 7)."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cluster.clock import alignment_offsets, fit_clock
from orchestrator.cluster.connect import OpenCluster
from orchestrator.errors import ChipError, InputError, OrchError
from orchestrator.link.messages import Done, Logits, Run, Token, Topology, Trace
from orchestrator.link.session import ChipReplyError
from orchestrator.partition.cache import cache_root

RUN_FLAG_TRACE = 1
RUN_FLAG_LOGITS = 2
PINGS = 8


@dataclass
class RunRequest:
    n_tokens: int
    prompt_ids: list[int] = field(default_factory=list)
    temperature: float = 0.0
    seed: int = 42
    results_base: Path = Path("results")
    want_logits: bool = False
    message_timeout_s: float = 30.0
    trace: bool = True  # chips stream a trace record per phase (off: tokens only, for host-speed checks)


@dataclass
class RunOutcome:
    results_dir: Path
    results: dict
    logits: list[int] | None
    manifest: dict | None
    shard_dir: Path | None


class RunFailed(ChipError):
    """A run that stopped early; its results folder holds what arrived."""

    def __init__(self, message: str, results_dir: Path):
        super().__init__(f"{message}; what arrived is saved in {results_dir}")
        self.results_dir = results_dir


def find_manifest(plan_id: bytes) -> tuple[dict, Path] | None:
    """The cached shard set whose plan the chips hold (model name, config, scales), if on this machine."""
    root = cache_root() / "shards"
    if not root.is_dir():
        return None
    for m in root.glob("*/manifest.json"):
        try:
            d = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if d.get("plan_id") == plan_id.hex():
            return d, m.parent
    return None


def check_chips(cluster: OpenCluster) -> bytes:
    """Identify every chip; all must hold committed shards of one plan, rank by rank."""
    idents = cluster.parallel(lambda c: c.session.identify())
    for chip, ident in zip(cluster.chips, idents):
        if isinstance(ident, Exception):
            raise ChipError(f"{cluster.blame(chip.rank)} does not answer IDENTIFY: {ident}")
    plans = set()
    for chip, ident in zip(cluster.chips, idents):
        c = ident.committed
        if not c.valid:
            raise ChipError(f"{chip.label} has no shard committed: run `orch flash` first")
        if c.world != cluster.world or c.rank != chip.rank:
            raise ChipError(f"{chip.label} holds the shard of rank {c.rank} of {c.world} chips, but it is rank "
                            f"{chip.rank} of {cluster.world} here: run `orch flash` for this cluster")
        plans.add(c.plan_id)
    if len(plans) > 1:
        raise ChipError("the chips hold shards of different plans (models or chip counts): run `orch flash` again")
    return plans.pop()


def configure_and_align(cluster: OpenCluster):
    """CONFIGURE every chip at once (each waits for its neighbours' links), then PING each to fit its
    clock. Returns the clock fits and the alignment offsets (None for virtual clocks)."""
    topo = Topology.HIERARCHICAL if cluster.config.topology == "hierarchical" else Topology.RING
    res = cluster.parallel(lambda c: c.session.configure(c.rank, cluster.world, topo, cluster.config.group_size))
    for chip, r in zip(cluster.chips, res):
        if isinstance(r, Exception):
            raise ChipError(f"{cluster.blame(chip.rank)}: configure failed: {r}")
    pings = cluster.parallel(lambda c: [c.session.ping() for _ in range(PINGS)])
    for chip, p in zip(cluster.chips, pings):
        if isinstance(p, Exception):
            raise ChipError(f"{cluster.blame(chip.rank)}: clock-sync ping failed: {p}")
    fits = [fit_clock(p) for p in pings]
    return fits, alignment_offsets(fits, cluster.profile.clock_hz, time.monotonic())


def _reader(chip, out: queue.Queue, timeout_s: float) -> None:
    try:
        for msg in chip.session.iter_messages(timeout_s):
            out.put((chip.rank, msg))
    except (OrchError, OSError) as e:
        out.put((chip.rank, e))


def run_cluster(cluster: OpenCluster, req: RunRequest, open_sink, on_token=None, decode=None) -> RunOutcome:
    """Run once. open_sink(config) returns where collected data goes as it arrives (the report layer's
    ResultsWriter: .dir, .tokens, .token(), .trace_records(), .finish()); on_token(index, token_id,
    text_or_None) is called as tokens arrive (chip 0's stream)."""
    plan_id = check_chips(cluster)
    found = find_manifest(plan_id)
    manifest = found[0] if found else None
    model_name = manifest["model"]["name"] if manifest else "unknown-model"
    if manifest and manifest["model"].get("kind") == "encoder":
        raise InputError(f"the chips hold {model_name}, an encoder: embed text with "
                         f"`orch run --model {model_name} --text \"...\"`")
    if manifest:
        vocab = manifest["model"]["config"]["vocab_size"]
        for t in req.prompt_ids:
            if t >= vocab:
                raise InputError(f"prompt id {t} is outside the vocabulary of {model_name} (0..{vocab - 1})")
    fits, offsets = configure_and_align(cluster)
    clock_hz = cluster.profile.clock_hz

    config = {"model": model_name, "synthetic_weights": bool(manifest and manifest["model"].get("synthetic_weights")),
              "chips": cluster.world, "profile": cluster.profile.name, "clock_hz": clock_hz,
              "cluster": cluster.config.name, "topology": cluster.config.topology,
              "group_size": cluster.config.group_size,
              "ports": [c.port for c in cluster.chips], "plan_id": plan_id.hex(),
              "prompt_ids": req.prompt_ids, "n_tokens": req.n_tokens, "temperature": req.temperature,
              "seed": req.seed, "clock_alignment": [f.as_dict() for f in fits], "clock_offsets_cycles": offsets}
    writer = open_sink(config)
    out_dir = writer.dir
    q: queue.Queue = queue.Queue()
    threads = []
    status, failure = "ok", None
    logits: dict[int, list[int]] = {}
    done: dict[int, Done] = {}
    errors: dict[int, Exception] = {}
    prev = 1
    try:
        run = Run(n_tokens=req.n_tokens, prompt=tuple(req.prompt_ids),
                  temperature_q16=int(round(req.temperature * 65536)), seed=req.seed,
                  flags=(RUN_FLAG_TRACE if req.trace else 0) | (RUN_FLAG_LOGITS if req.want_logits else 0))
        for chip in cluster.chips:
            try:
                chip.session.start_run(run)
            except (OrchError, OSError) as e:
                raise ChipError(f"{cluster.blame(chip.rank)}: RUN refused: {e}") from None
        for chip in cluster.chips:
            t = threading.Thread(target=_reader, args=(chip, q, req.message_timeout_s), daemon=True)
            t.start()
            threads.append(t)
        while len(done) + len(errors) < cluster.world:
            rank, msg = q.get()
            if isinstance(msg, Exception):
                errors[rank] = msg
                # the others will fail soon too (links close); give them a moment to say why
                continue
            if isinstance(msg, Token) and rank == 0:
                text = decode(prev, msg.token) if decode else None
                prev = msg.token
                writer.token(msg.index, msg.pos, msg.token, msg.cycles, text)
                if on_token:
                    on_token(msg.index, msg.token, text)
            elif isinstance(msg, Trace):
                writer.trace_records(rank, msg.records)
            elif isinstance(msg, Logits):
                logits.setdefault(rank, []).extend(msg.values)
            elif isinstance(msg, Done):
                done[rank] = msg
        if errors:
            status = "failed"
            failure = _root_cause(cluster, errors)
    except KeyboardInterrupt:
        status, failure = "interrupted", "interrupted (Ctrl-C)"
    except OrchError as e:
        status, failure = "failed", str(e)
    finally:
        results = writer.finish(status, {"error": failure} if failure else None, clock_hz, offsets)
    if status == "interrupted":
        raise KeyboardInterrupt(str(out_dir))
    if failure:
        raise RunFailed(f"{failure}; {len(writer.tokens)} of {req.n_tokens} tokens arrived", out_dir)
    full_logits = None
    if req.want_logits and len(logits) == cluster.world:
        full_logits = [v for r in range(cluster.world) for v in logits[r]]
    return RunOutcome(out_dir, results, full_logits, manifest, found[1] if found else None)


def _root_cause(cluster: OpenCluster, errors: dict[int, Exception]) -> str:
    """Name the chip that failed, not the neighbours that lost their link to it."""
    silent = [r for r, e in errors.items() if not isinstance(e, ChipReplyError)]
    if cluster.mock:
        dead = cluster.mock.dead_chips(tuple(silent), wait_s=1.0)
        if dead:
            return cluster.blame(dead[0].rank)
    if silent:
        r = sorted(silent)[0]
        return f"{cluster.blame(r)} stopped answering: {errors[r]}"
    r = sorted(errors)[0]
    return f"{cluster.blame(r)}: {errors[r]}"


def verify_run(out: RunOutcome, req: RunRequest) -> dict:
    """Run the host int8 reference on the same shards; report the first token that differs."""
    from orchestrator.partition.shard import load_shards
    from orchestrator.partition.simulator import ClusterSim
    if out.shard_dir is None:
        raise OrchError("--verify needs the shards the chips hold, and they are not in this machine's cache: "
                        "run `orch flash` from this machine first")
    _, shards = load_shards(out.shard_dir)
    ref = ClusterSim(shards).generate(req.prompt_ids, req.n_tokens, int(round(req.temperature * 65536)), req.seed)
    got = out.results["tokens"]
    first = next((i for i, (a, b) in enumerate(zip(ref.tokens, got)) if a != b), None)
    if first is None and len(got) != len(ref.tokens):
        first = min(len(got), len(ref.tokens))
    logits_match = out.logits is not None and [int(v) for v in ref.logits] == list(out.logits)
    return {"match": first is None and logits_match, "first_mismatch": first,
            "reference_tokens": ref.tokens, "final_logits_match": logits_match}
