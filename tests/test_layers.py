"""ARCHITECTURE.md: each layer depends only on layers above it (cli and report may use all)."""

from __future__ import annotations

import ast
from pathlib import Path

ORDER = ["errors", "model", "quant", "profiles", "partition", "perf", "link", "cluster", "power", "report", "cli"]
PKG = Path(__file__).resolve().parents[1] / "orchestrator"


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "orchestrator" or len(parts) < 2:
        return None
    name = parts[1]
    if name.startswith("cli"):
        return "cli"
    return name if name in ORDER else None


def test_no_layer_imports_a_layer_below_it():
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mine = layer_of(".".join(rel.parts))
        if mine is None or mine in ("report", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                other = layer_of(n)
                if other and ORDER.index(other) > ORDER.index(mine):
                    bad.append(f"{rel} ({mine}) imports {n} ({other})")
    assert not bad, "\n".join(bad)
