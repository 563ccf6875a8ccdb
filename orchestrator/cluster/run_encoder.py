"""`orch run` for encoders: one RUN_ENCODER per sequence on every chip, the chips' columns of the pooled
int32 embedding gathered, turned into the float sentence embedding (pooling's divisor and the L2
normalisation as sentence-transformers defines them, on the host), and written as they arrive.

Latency is per inference (one sequence), from the chips' trace records on one aligned timeline.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.cluster.connect import OpenCluster
from orchestrator.cluster.run import RunFailed, _reader, _root_cause, check_chips, configure_and_align, find_manifest
from orchestrator.errors import ChipError, InputError, OrchError
from orchestrator.link.messages import Done, Embedding, RunEncoder, Trace

RUN_FLAG_TRACE = 1


@dataclass
class EncoderRunRequest:
    sequences: list[list[int]]  # token ids per inference ([CLS] ... [SEP] for BERT-family text)
    texts: list[str] | None = None
    pad_to: int | None = None  # pad every sequence with [PAD] (id 0) to this length; padding is masked
    results_base: Path = Path("results")
    message_timeout_s: float = 30.0
    trace: bool = True


@dataclass
class EncoderOutcome:
    results_dir: Path
    results: dict
    pooled: list[list[int]]  # int32 pooled embedding per sequence, as the chips sent it
    embeddings: list[list[float]]
    latency_ms: list[float]
    manifest: dict
    shard_dir: Path | None
    config: object = None
    extra: dict = field(default_factory=dict)


def encoder_manifest(cluster: OpenCluster) -> tuple[bytes, dict, Path]:
    """The plan the chips hold and its cached manifest, which must describe an encoder."""
    plan_id = check_chips(cluster)
    found = find_manifest(plan_id)
    if found is None:
        raise OrchError("the shards the chips hold are not in this machine's shard cache, so their encoder "
                        "configuration and output scale are unknown: run `orch flash --model ...` from this machine")
    manifest, shard_dir = found
    if manifest["model"].get("kind") != "encoder":
        raise InputError(f"the chips hold {manifest['model']['name']}, a decoder: --text runs an encoder; flash one "
                         "first (orch flash --model minilm-l6)")
    return plan_id, manifest, shard_dir


def _prepare(seqs: list[list[int]], pad_to: int | None, context: int, cfg) -> list[tuple[list[int], int]]:
    out = []
    for i, ids in enumerate(seqs):
        if not ids:
            raise InputError(f"sequence {i} is empty")
        for t in ids:
            if not 0 <= t < cfg.vocab_size:
                raise InputError(f"token id {t} is outside {cfg.name}'s vocabulary (0..{cfg.vocab_size - 1})")
        n = len(ids)
        limit = min(context, cfg.max_seq_len)
        if n > limit:
            raise InputError(f"sequence {i} has {n} tokens, longer than {cfg.name}'s maximum of {limit} "
                             f"(the shards hold {context} positions); shorten the text")
        full = list(ids)
        if pad_to is not None:
            if pad_to > limit:
                raise InputError(f"--pad-to {pad_to} exceeds the maximum sequence length {limit}")
            full += [0] * max(0, pad_to - n)
        out.append((full, n))
    return out


def run_encoder_cluster(cluster: OpenCluster, req: EncoderRunRequest, open_sink, on_embedding=None) -> EncoderOutcome:
    """Embed every sequence of req. open_sink(config) returns where collected data goes as it arrives (the
    report layer's ResultsWriter: .dir, .trace, .trace_records(), .finish()); the embeddings also go to
    <dir>/embeddings.jsonl, a line per sequence as soon as it is complete. on_embedding(index, embedding)
    is called then too."""
    from orchestrator.partition.shard import manifest_config
    from orchestrator.partition.simulator_encoder import embedding_from_pooled

    plan_id, manifest, shard_dir = encoder_manifest(cluster)
    cfg = manifest_config(manifest, "manifest")
    scale = float(manifest["model"]["output_scale"])
    seqs = _prepare(req.sequences, req.pad_to, int(manifest["context"]), cfg)

    fits, offsets = configure_and_align(cluster)
    clock_hz = cluster.profile.clock_hz

    config = {"model": cfg.name, "kind": "encoder", "synthetic_weights": bool(cfg.synthetic), "chips": cluster.world,
              "profile": cluster.profile.name, "clock_hz": clock_hz, "cluster": cluster.config.name,
              "topology": cluster.config.topology, "ports": [c.port for c in cluster.chips], "plan_id": plan_id.hex(),
              "texts": req.texts, "token_ids": [s for s, _ in seqs], "n_valid": [n for _, n in seqs],
              "pooling": cfg.pooling, "normalize": cfg.normalize, "output_scale": scale,
              "clock_alignment": [f.as_dict() for f in fits], "clock_offsets_cycles": offsets}
    writer = open_sink(config)
    out_dir = Path(writer.dir)
    t0 = time.monotonic()
    emb_f = open(out_dir / "embeddings.jsonl", "a", encoding="utf-8")
    pooled_all: list[list[int]] = []
    embeddings: list[list[float]] = []
    done_cycles: list[int] = []
    status, failure = "ok", None
    try:
        for index, (ids, n_valid) in enumerate(seqs):
            pooled = _one(cluster, req, ids, n_valid, index, writer, cfg.hidden)
            emb = embedding_from_pooled(cfg, np.asarray(pooled[0]), scale)
            pooled_all.append(pooled[0])
            embeddings.append([float(v) for v in emb])
            done_cycles.append(pooled[1])
            rec = {"index": index, "text": req.texts[index] if req.texts else None, "tokens": n_valid,
                   "pooled_int32": pooled[0], "embedding": embeddings[-1], "host_s": round(time.monotonic() - t0, 6)}
            emb_f.write(json.dumps(rec) + "\n")
            emb_f.flush()
            if on_embedding:
                on_embedding(index, embeddings[-1])
    except KeyboardInterrupt:
        status, failure = "interrupted", "interrupted (Ctrl-C)"
    except OrchError as e:
        status, failure = "failed", str(e)
    finally:
        emb_f.close()
        lat = _latencies(writer.trace, offsets, clock_hz, len(embeddings), done_cycles)
        extra = {"embeddings": embeddings, "latency_ms": lat,
                 "latency_ms_mean": float(np.mean(lat)) if lat else None}
        if failure:
            extra["error"] = failure
        results = writer.finish(status, extra, clock_hz, offsets)
    if status == "interrupted":
        raise KeyboardInterrupt(str(out_dir))
    if failure:
        raise RunFailed(f"{failure}; {len(embeddings)} of {len(seqs)} embeddings arrived", out_dir)
    return EncoderOutcome(out_dir, results, pooled_all, embeddings, lat, manifest, shard_dir, cfg)


def _latencies(trace: dict, offsets, clock_hz: float, n: int, done_cycles: list[int]) -> list[float]:
    """Per inference: from the first phase start to the last phase end over all chips (aligned clocks);
    without trace records, the slowest chip's cycles from RUN_ENCODER to DONE."""
    spans: dict[int, list[float]] = {}
    for rank, recs in trace.items():
        o = offsets[rank] if offsets and rank < len(offsets) else 0.0
        for r in recs:
            s = spans.setdefault(r["token_index"], [float("inf"), float("-inf")])
            s[0] = min(s[0], r["start_cycles"] - o)
            s[1] = max(s[1], r["end_cycles"] - o)
    if len(spans) >= n and n:
        return [(spans[i][1] - spans[i][0]) / clock_hz * 1e3 for i in range(n)]
    return [c / clock_hz * 1e3 for c in done_cycles[:n]]


def _one(cluster: OpenCluster, req: EncoderRunRequest, ids: list[int], n_valid: int, index: int,
         writer, hidden: int) -> tuple[list[int], int]:
    msg = RunEncoder(tuple(ids), (), n_valid, RUN_FLAG_TRACE if req.trace else 0)
    for chip in cluster.chips:
        try:
            chip.session.start_run(msg)
        except (OrchError, OSError) as e:
            raise ChipError(f"{cluster.blame(chip.rank)}: RUN_ENCODER refused: {e}") from None
    q: queue.Queue = queue.Queue()
    for chip in cluster.chips:
        threading.Thread(target=_reader, args=(chip, q, req.message_timeout_s), daemon=True).start()
    parts: dict[int, list[Embedding]] = {}
    done: dict[int, Done] = {}
    errors: dict[int, Exception] = {}
    while len(done) + len(errors) < cluster.world:
        rank, m = q.get()
        if isinstance(m, Exception):
            errors[rank] = m
        elif isinstance(m, Trace):
            writer.trace_records(rank, [dataclasses.replace(r, token_index=index) for r in m.records])
        elif isinstance(m, Embedding):
            parts.setdefault(rank, []).append(m)
        elif isinstance(m, Done):
            done[rank] = m
            if not m.ok:
                errors[rank] = ChipError(f"chip {rank} ended the run with status {m.status}")
    if errors:
        raise ChipError(_root_cause(cluster, errors))
    pooled = [None] * hidden
    for rank in range(cluster.world):
        for e in parts.get(rank, []):
            if e.n_valid != n_valid or e.first + len(e.values) > hidden:
                raise ChipError(f"{cluster.blame(rank)} sent embedding columns {e.first}..{e.first + len(e.values)} "
                                f"for {e.n_valid} valid tokens, which do not fit this run")
            for j, v in enumerate(e.values):
                if pooled[e.first + j] is not None:
                    raise ChipError(f"{cluster.blame(rank)} sent embedding column {e.first + j} a second time")
                pooled[e.first + j] = v
    missing = [j for j, v in enumerate(pooled) if v is None]
    if missing:
        raise ChipError(f"the chips sent no value for {len(missing)} embedding columns (first: {missing[0]})")
    return [int(v) for v in pooled], max(d.cycles for d in done.values())


def verify_encoder_run(out: EncoderOutcome, req: EncoderRunRequest) -> dict:
    """The host int8 reference on the same shards: are the chips' int32 pooled embeddings identical?"""
    from orchestrator.partition.shard import load_shards
    from orchestrator.partition.simulator_encoder import EncClusterSim
    if out.shard_dir is None:
        raise OrchError("--verify needs the shards the chips hold in this machine's cache: run `orch flash` here first")
    _, shards = load_shards(out.shard_dir)
    sim = EncClusterSim.from_shards(out.config, shards)
    seqs = _prepare(req.sequences, req.pad_to, int(out.manifest["context"]), out.config)
    mism = []
    for i, ((ids, n_valid), got) in enumerate(zip(seqs, out.pooled)):
        ref = sim.run(ids, n_valid=n_valid).pooled
        if [int(v) for v in ref] != list(got):
            mism.append(i)
    return {"match": not mism, "mismatching_sequences": mism}
