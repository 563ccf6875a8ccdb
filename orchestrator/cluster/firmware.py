"""The mock chip's binary: the firmware built for this machine with the POSIX HAL, on demand.

Built with the system C compiler into the cache, keyed by a hash of the firmware sources, so a
`pip install` followed by `orch ...` needs no separate build step and an edited source rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from orchestrator.errors import InputError
from orchestrator.link.native import build_in_cache, firmware_dir
from orchestrator.partition.cache import cache_root


def source_hash(d: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix in (".c", ".h", "") and
                   "build" not in p.relative_to(d).parts[0] and p.name != ".gitignore")
    for p in files:
        h.update(str(p.relative_to(d)).encode())
        h.update(p.read_bytes())
    h.update((os.environ.get("CC") or "cc").encode())
    return h.hexdigest()[:16]


def chip_binary() -> Path:
    """Path of orch-chip for the current sources, building it first if needed."""
    d = firmware_dir()
    out = cache_root() / "firmware" / source_hash(d)
    binary = out / "orch-chip"
    if binary.is_file():
        return binary
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        raise InputError(f"no C compiler '{cc}' found: the mock chips are the firmware built for this machine; "
                         "install gcc (e.g. apt-get install gcc) or set CC")
    make = shutil.which("make")
    if not make:
        raise InputError("'make' not found: install make (e.g. apt-get install make) to build the mock chips")
    p = build_in_cache(binary, lambda tmp: [make, "-s", "-C", str(d), f"BUILD={tmp}", f"CC={cc}", "OPT=-O3", "chip"])
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(f"building the mock chip firmware failed: {last}")
    return binary
