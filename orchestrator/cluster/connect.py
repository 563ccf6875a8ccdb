"""Opening a cluster: start the mock (or take the cluster file's ports) and open one session per chip."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator.cluster.config import ClusterConfig
from orchestrator.cluster.mock import MockCluster
from orchestrator.errors import ChipError, OrchError
from orchestrator.link.session import ChipSession
from orchestrator.link.transport import open_transport


@dataclass
class Chip:
    rank: int
    port: str
    session: ChipSession

    @property
    def label(self) -> str:
        return f"chip {self.rank} ({self.port})"


@dataclass
class OpenCluster:
    config: ClusterConfig
    profile: object
    chips: list[Chip] = field(default_factory=list)
    mock: MockCluster | None = None

    @property
    def world(self) -> int:
        return len(self.chips)

    def blame(self, rank: int) -> str:
        """What is known about a chip that failed: for the mock, whether its process is gone."""
        c = self.chips[rank]
        if self.mock:
            m = self.mock.chips[rank]
            if not m.alive():
                return f"chip {rank} ({c.port}): mock chip process {m.describe_exit()}"
        return c.label

    def parallel(self, fn, chips=None):
        """Run fn(chip) for every chip at once; returns results in rank order, errors as exceptions."""
        chips = self.chips if chips is None else chips
        with ThreadPoolExecutor(max_workers=max(len(chips), 1)) as ex:
            futures = [ex.submit(_capture, fn, c) for c in chips]
            return [f.result() for f in futures]


def _capture(fn, chip):
    try:
        return fn(chip)
    except (OrchError, OSError) as e:
        return e


@contextlib.contextmanager
def open_cluster(config: ClusterConfig, profile):
    """Yields an OpenCluster with a session per chip; stops the mock and closes ports at the end."""
    mock = None
    chips: list[Chip] = []
    try:
        if config.mock:
            mock = MockCluster(config.world, profile)
            mock.start()
            ports = [(r, p, 921600) for r, p in enumerate(mock.ports())]
        else:
            ports = [(c.rank, c.port, c.baud) for c in config.chips]
        for rank, port, baud in ports:
            try:
                t = open_transport(port, baud=baud, timeout_s=config.timeout_s)
            except ChipError as e:
                raise ChipError(f"chip {rank}: {e}") from None
            chips.append(Chip(rank, port, ChipSession(t, timeout_s=config.timeout_s, retries=config.retries)))
        yield OpenCluster(config, profile, chips, mock)
    finally:
        for c in chips:
            with contextlib.suppress(Exception):
                c.session.close()
        if mock:
            mock.stop()
