"""Chip profiles: memories, compute rate, link and power figures, each with its source.

A profile is a TOML file; the built-in ones live next to this module. Every figure is written as
{ value = ..., source = "..." } so that reports can say where a number came from.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import InputError

PROFILE_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = "siracusa"


@dataclass(frozen=True)
class Memory:
    name: str
    kind: str  # "onchip" or "offchip"
    holds: tuple[str, ...]  # "weights", "data", "scratch"
    bytes: int
    bytes_per_cycle: float
    pj_per_byte: float


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    clock_hz: float
    macs_per_cycle: float
    memories: tuple[Memory, ...]
    link_latency_cycles: float
    link_bytes_per_cycle: float
    link_pj_per_byte: float
    power_mw: dict
    sources: dict = field(default_factory=dict, compare=False)

    def memory(self, name: str) -> Memory:
        for m in self.memories:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def onchip(self) -> tuple[Memory, ...]:
        return tuple(m for m in self.memories if m.kind == "onchip")

    @property
    def offchip(self) -> tuple[Memory, ...]:
        return tuple(m for m in self.memories if m.kind == "offchip")

    def onchip_bytes_per_cycle(self) -> float:
        """The rate weights stream from on-chip weight memory (the fastest weight-holding one)."""
        return max(m.bytes_per_cycle for m in self.onchip if "weights" in m.holds)

    def offchip_bytes_per_cycle(self) -> float:
        return max((m.bytes_per_cycle for m in self.offchip), default=1.0)


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _figure(d: dict, key: str, where: str, sources: dict):
    if key not in d:
        raise InputError(f"profile {where}: missing figure '{key}'; every figure needs a value and a source")
    v = d[key]
    if isinstance(v, dict):
        if "value" not in v or "source" not in v:
            raise InputError(f"profile {where}.{key}: write it as {{ value = ..., source = \"...\" }}")
        sources[f"{where}.{key}"] = str(v["source"])
        v = v["value"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise InputError(f"profile {where}.{key}: must be a positive number, got {v!r}")
    return v


def load_profile(spec: str | None = None) -> Profile:
    """A built-in profile by name, or a TOML file by path."""
    spec = spec or DEFAULT_PROFILE
    path = Path(spec)
    if not (path.suffix == ".toml" and path.is_file()):
        path = PROFILE_DIR / f"{spec}.toml"
    if not path.is_file():
        raise InputError(f"unknown chip profile '{spec}': use one of {', '.join(builtin_profiles())} or a path to a .toml profile")
    try:
        d = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"profile {path}: not valid TOML ({e})") from None
    src: dict = {}
    try:
        mems = []
        for i, m in enumerate(d.get("memory", [])):
            where = f"memory[{i}]"
            kind = m.get("kind")
            if kind not in ("onchip", "offchip"):
                raise InputError(f"profile {path.name} {where}: kind must be 'onchip' or 'offchip'")
            mems.append(Memory(str(m.get("name", f"mem{i}")), kind, tuple(m.get("holds", ["weights", "data"])),
                               int(_figure(m, "bytes", where, src)), float(_figure(m, "bytes_per_cycle", where, src)),
                               float(_figure(m, "pj_per_byte", where, src))))
        if not any(m.kind == "onchip" for m in mems):
            raise InputError(f"profile {path.name}: needs at least one on-chip [[memory]]")
        link, power = d.get("link", {}), d.get("power", {})
        return Profile(
            name=str(d.get("name", path.stem)), description=str(d.get("description", "")),
            clock_hz=float(_figure(d.get("clock", {}), "hz", "clock", src)),
            macs_per_cycle=float(_figure(d.get("compute", {}), "macs_per_cycle", "compute", src)),
            memories=tuple(mems),
            link_latency_cycles=float(_figure(link, "latency_cycles", "link", src)),
            link_bytes_per_cycle=float(_figure(link, "bytes_per_cycle", "link", src)),
            link_pj_per_byte=float(_figure(link, "pj_per_byte", "link", src)),
            power_mw={k: float(_figure(power, k, "power", src)) for k in ("compute_mw", "offchip_mw", "link_mw", "idle_mw")},
            sources=src,
        )
    except (TypeError, ValueError, AttributeError) as e:
        raise InputError(f"profile {path.name}: malformed ({e})") from None
