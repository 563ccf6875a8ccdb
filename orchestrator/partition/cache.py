"""Where built shards live: a per-user cache keyed by model content, chip count, profile and context.

`orch flash`, `orch reference --precision int8` and the tests all get their shards from here, so the
same model is quantized and partitioned once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InputError
from orchestrator.partition.plan import SHARD_FORMAT_VERSION, Plan, make_plan
from orchestrator.partition.shard import load_manifest, load_shards, write_shards


def cache_root() -> Path:
    """ORCH_CACHE_DIR, else $XDG_CACHE_HOME/orch, else ~/.cache/orch."""
    env = os.environ.get("ORCH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orch"


@dataclass
class ShardSet:
    directory: Path
    manifest: dict
    plan: Plan
    built: bool  # False when the cache already held it

    @property
    def plan_id(self) -> str:
        return self.manifest["plan_id"]


def _key(model_hash: str, world: int, profile: str, context: int) -> str:
    raw = json.dumps([model_hash, world, profile, context, SHARD_FORMAT_VERSION])
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def get_shards(model, world: int, profile, context: int | None = None, root: Path | None = None,
               progress=None) -> ShardSet:
    """Shards for (model, world, profile, context): from the cache, or quantized, partitioned and written.

    `progress(stage: str)` is called before each slow stage when given.
    """
    from orchestrator.quant.quantize import quantize_model

    plan = make_plan(model.config, world, profile, context)  # validates world and context first
    root = Path(root) if root else cache_root()
    model_key = model.content_hash()
    if getattr(model.config, "kind", "decoder") == "encoder":
        from orchestrator.quant.quantize_encoder import ENCODER_SPEC_VERSION
        model_key += f"/encoder-spec-{ENCODER_SPEC_VERSION}"  # a changed encoder spec never reuses old shards
    key = _key(model_key, world, profile.name, plan.context)
    name = f"{model.config.name}-{world}chips-{profile.name}-{key}"
    final = root / "shards" / name
    if (final / "manifest.json").is_file():
        try:
            manifest = load_manifest(final)
            return ShardSet(final, manifest, plan, built=False)
        except InputError:
            shutil.rmtree(final, ignore_errors=True)  # a damaged cache entry is rebuilt, not trusted
    if progress:
        progress("quantizing")
    if getattr(model.config, "kind", "decoder") == "encoder":
        from orchestrator.quant.quantize_encoder import quantize_encoder
        qm = quantize_encoder(model)
    else:
        qm = quantize_model(model)
    if progress:
        progress("partitioning")
    (root / "shards").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=root / "shards"))
    try:
        manifest = write_shards(qm, plan, tmp, profile.name)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)  # atomic: a half-written set is never found under its key
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ShardSet(final, manifest, plan, built=True)


def open_shards(shard_set: ShardSet):
    """Load and fully validate the shard files of a set (CRCs, shapes, plan id)."""
    return load_shards(shard_set.directory)
