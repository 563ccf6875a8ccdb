"""The loopback mock: one firmware process per chip on this machine (ARCHITECTURE.md).

Each process is the real firmware built with the POSIX HAL: its host link is a pseudo-terminal the
host opens with pyserial like a USB-UART, its chip links are Unix sockets, its flash is a file in the
per-user cache (so `orch flash` then, later, `orch run` works as on boards), and its cycle counter is
a virtual clock driven by the chip profile.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cluster.firmware import chip_binary
from orchestrator.errors import ChipError, InputError
from orchestrator.partition.cache import cache_root

NV_BYTES = 160 << 20  # sparse file: two slots hold the largest one-chip shard of tinyllama-42m
START_TIMEOUT_S = 10.0


def mock_state_dir(profile_name: str) -> Path:
    """Where the mock chips' flash files live: one folder per profile, one file per chip id."""
    return cache_root() / "mock" / profile_name


def profile_args(profile) -> list[str]:
    onchip = sum(m.bytes for m in profile.onchip)
    offchip = sum(m.bytes for m in profile.offchip)
    return ["--profile", profile.name,
            "--macs-per-cycle", f"{profile.macs_per_cycle:.3f}",
            "--onchip-bytes-per-cycle", f"{profile.onchip_bytes_per_cycle():.3f}",
            "--offchip-bytes-per-cycle", f"{profile.offchip_bytes_per_cycle():.3f}",
            "--link-bytes-per-cycle", f"{max(profile.link_bytes_per_cycle, 0.001):.3f}",
            "--link-latency-cycles", str(int(round(profile.link_latency_cycles))),
            "--onchip-bytes", str(onchip), "--offchip-bytes", str(offchip)]


@dataclass
class MockChip:
    rank: int
    process: subprocess.Popen
    port: str
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def describe_exit(self) -> str:
        rc = self.process.poll()
        if rc is None:
            return "running"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with status {rc}"


@dataclass
class MockCluster:
    """N mock chips. Use as a context manager: the processes stop when the block ends."""

    n: int
    profile: object
    state_dir: Path | None = None
    chips: list[MockChip] = field(default_factory=list)
    run_dir: Path | None = None

    def __enter__(self) -> "MockCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        binary = chip_binary()
        state = Path(self.state_dir) if self.state_dir else mock_state_dir(self.profile.name)
        state.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to 108 bytes, so the links live in a short /tmp folder.
        self.run_dir = Path(tempfile.mkdtemp(prefix="orch-", dir="/tmp"))
        try:
            for r in range(self.n):
                log = self.run_dir / f"chip{r}.log"
                args = [str(binary), "--id", str(r), "--run-dir", str(self.run_dir),
                        "--nv", str(state / f"chip{r}.nv"), "--nv-size", str(NV_BYTES),
                        # chips do not boot at the same time: each counter starts elsewhere
                        "--cycle-offset", str(1_000_003 * (r + 1)),
                        "--link-timeout-ms", "10000", *profile_args(self.profile)]
                with open(log, "wb") as errf:
                    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
                self.chips.append(MockChip(r, p, "", log))
            deadline = time.monotonic() + START_TIMEOUT_S
            for c in self.chips:
                c.port = self._read_pty_line(c, deadline)
        except BaseException:
            self.stop()
            raise

    def _read_pty_line(self, c: MockChip, deadline: float) -> str:
        line = b""
        fd = c.process.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                raise ChipError(f"mock chip {c.rank} did not start within {START_TIMEOUT_S:g} s ({self.tail(c)})")
            b = os.read(fd, 256)
            if not b:
                raise ChipError(f"mock chip {c.rank} {c.describe_exit()} at start: {self.tail(c)}")
            line += b
        text = line.decode(errors="replace").strip()
        if not text.startswith("PTY "):
            raise ChipError(f"mock chip {c.rank} printed {text!r} instead of its pseudo-terminal")
        return text[4:]

    @staticmethod
    def tail(c: MockChip) -> str:
        try:
            lines = c.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        for c in self.chips:
            if c.alive():
                c.process.terminate()
        deadline = time.monotonic() + 2.0
        for c in self.chips:
            try:
                c.process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                c.process.kill()
                c.process.wait()
            if c.process.stdout:
                c.process.stdout.close()
        if self.run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def ports(self) -> list[str]:
        return [c.port for c in self.chips]

    def dead_chips(self, suspects: tuple[int, ...] = (), wait_s: float = 0.0) -> list[MockChip]:
        """Chips whose process has ended. A killed process closes its pseudo-terminal before it can be
        reaped, so the host may see the link drop first: the ranks in `suspects` get up to wait_s
        to finish exiting."""
        deadline = time.monotonic() + wait_s
        for c in self.chips:
            if c.rank in suspects:
                try:
                    c.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
                except subprocess.TimeoutExpired:
                    pass
        return [c for c in self.chips if not c.alive()]


def check_mock_size(n: int) -> None:
    if not 1 <= n <= 64:
        raise InputError(f"--chips must be between 1 and 64 for the mock cluster, got {n}")
