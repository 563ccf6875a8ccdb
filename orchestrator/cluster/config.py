"""Cluster descriptions: which port each chip answers on, the link topology and the chip profile.

A cluster file (TOML, examples in hil/clusters/):

    name = "bench-8"
    profile = "siracusa"            # or a path to a profile .toml
    topology = "ring"               # or "hierarchical" with group_size = 4
    timeout_s = 2.0                 # per request; retries = 3
    [[chip]]
    rank = 0
    port = "/dev/serial/by-id/usb-FTDI_FT232R_A10K1-if00-port0"   # or socket://, rfc2217://, usb:VID:PID[:SERIAL]
    baud = 921600

Without a file, commands use the loopback mock (`mock = true`, N chips).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import InputError

DEFAULT_BAUD = 921600
DEFAULT_MOCK_CHIPS = 8


@dataclass(frozen=True)
class ChipPort:
    rank: int
    port: str
    baud: int = DEFAULT_BAUD


@dataclass
class ClusterConfig:
    name: str
    profile: str
    chips: list[ChipPort] = field(default_factory=list)
    topology: str = "ring"
    group_size: int = 0
    timeout_s: float = 2.0
    retries: int = 3
    mock: bool = False
    source: str = "(default mock)"

    @property
    def world(self) -> int:
        return len(self.chips)


def mock_cluster(n: int, profile: str = "siracusa", topology: str = "ring", group_size: int = 0) -> ClusterConfig:
    """The default cluster: n mock chips; their ports are filled in when the mock starts."""
    return ClusterConfig(name=f"mock-{n}", profile=profile, chips=[ChipPort(r, "") for r in range(n)],
                         topology=topology, group_size=group_size, mock=True)


def load_cluster(path: str | Path) -> ClusterConfig:
    p = Path(path)
    try:
        d = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"cluster file {p} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"cluster file {p}: not valid TOML ({e})") from None
    where = f"cluster file {p}"
    chips_raw = d.get("chip")
    if not isinstance(chips_raw, list) or not chips_raw:
        raise InputError(f"{where}: needs at least one [[chip]] table with rank and port")
    chips = []
    for i, c in enumerate(chips_raw):
        if not isinstance(c, dict):
            raise InputError(f"{where}: chip entry {i} is not a table")
        rank, port, baud = c.get("rank"), c.get("port"), c.get("baud", DEFAULT_BAUD)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
            raise InputError(f"{where}: chip entry {i} needs an integer rank >= 0")
        if not isinstance(port, str) or not port.strip():
            raise InputError(f"{where}: chip rank {rank} needs a port (device path, socket://, rfc2217:// or usb:VID:PID)")
        if not isinstance(baud, int) or isinstance(baud, bool) or not 300 <= baud <= 50_000_000:
            raise InputError(f"{where}: chip rank {rank} has an invalid baud rate {baud!r}")
        chips.append(ChipPort(rank, port.strip(), baud))
    chips.sort(key=lambda c: c.rank)
    if [c.rank for c in chips] != list(range(len(chips))):
        raise InputError(f"{where}: ranks must be 0..{len(chips) - 1}, each once; got {[c.rank for c in chips]}")
    ports = [c.port for c in chips]
    if len(set(ports)) != len(ports):
        raise InputError(f"{where}: two chips share a port")
    topology = d.get("topology", "ring")
    group = d.get("group_size", 0)
    if topology not in ("ring", "hierarchical"):
        raise InputError(f"{where}: topology must be 'ring' or 'hierarchical', got {topology!r}")
    if topology == "hierarchical" and (not isinstance(group, int) or group < 1 or len(chips) % group):
        raise InputError(f"{where}: hierarchical topology needs a group_size that divides {len(chips)} chips")
    timeout = d.get("timeout_s", 2.0)
    retries = d.get("retries", 3)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise InputError(f"{where}: timeout_s must be between 0 and 600 seconds")
    if not isinstance(retries, int) or not 0 <= retries <= 20:
        raise InputError(f"{where}: retries must be 0..20")
    return ClusterConfig(name=str(d.get("name", p.stem)), profile=str(d.get("profile", "siracusa")), chips=chips,
                         topology=topology, group_size=group if topology == "hierarchical" else 0,
                         timeout_s=float(timeout), retries=retries, mock=False, source=str(p))
