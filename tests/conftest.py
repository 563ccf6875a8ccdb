"""Shared fixtures: the shared test checkpoints, a private shard cache, and models built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_models_dir() -> Path:
    env = os.environ.get("ORCH_SHARED_MODELS")
    return Path(env) if env else REPO.parent / "shared" / "models"


@pytest.fixture(scope="session")
def stories260k_path() -> Path:
    p = shared_models_dir() / "stories260K.bin"
    if not p.is_file():
        pytest.skip(f"{p} not present: the shared test checkpoints live beside the repository in ../shared/models")
    return p


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Tests never touch the user's shard cache or mock-chip flash."""
    root = tmp_path_factory.mktemp("orch-cache")
    old = os.environ.get("ORCH_CACHE_DIR")
    os.environ["ORCH_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("ORCH_CACHE_DIR", None)
    else:
        os.environ["ORCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tinyllama():
    from orchestrator.model.synthetic import load_model
    return load_model("tinyllama-42m")


@pytest.fixture(scope="session")
def tiny():
    from orchestrator.model.synthetic import load_model
    return load_model("tiny-test")


@pytest.fixture(scope="session")
def stories260k(stories260k_path):
    from orchestrator.model.llama2c import load_llama2c
    return load_llama2c(stories260k_path)


@pytest.fixture(scope="session")
def siracusa():
    from orchestrator.profiles import load_profile
    return load_profile("siracusa")


@pytest.fixture(scope="session")
def shards_for(siracusa):
    """shards_for(model, world) -> (ShardSet, list[Shard]), cached per session."""
    from orchestrator.partition.cache import get_shards, open_shards
    memo = {}

    def get(model, world, context=None):
        key = (model.content_hash(), world, context)
        if key not in memo:
            s = get_shards(model, world, siracusa, context)
            memo[key] = (s, open_shards(s)[1])
        return memo[key]
    return get
