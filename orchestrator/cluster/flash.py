"""`orch flash`: write every chip's shard in parallel, verify it by CRC on the chip, commit atomically.

A chip whose committed shard already matches (same plan, rank and CRC) is skipped unless forced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator.cluster.connect import OpenCluster
from orchestrator.errors import ChipError, OrchError


@dataclass
class FlashResult:
    rank: int
    port: str
    bytes: int
    seconds: float  # write, verify and commit
    skipped: bool
    write_seconds: float = 0.0  # the pipelined writes alone: what the link limits

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 and not self.skipped else 0.0

    @property
    def write_mb_per_s(self) -> float:
        return self.bytes / self.write_seconds / 1e6 if self.write_seconds > 0 and not self.skipped else 0.0


def flash_cluster(cluster: OpenCluster, shard_set, force: bool = False, progress=None) -> list[FlashResult]:
    """progress(rank, done_bytes, total_bytes) is called as chips acknowledge writes (from threads)."""
    manifest = shard_set.manifest
    if manifest["world"] != cluster.world:
        raise OrchError(f"the shards are for {manifest['world']} chips but the cluster has {cluster.world}")
    plan_id = bytes.fromhex(manifest["plan_id"])

    def one(chip) -> FlashResult:
        entry = manifest["chips"][chip.rank]
        data = (shard_set.directory / entry["file"]).read_bytes()
        s = chip.session
        ident = s.identify()
        c = ident.committed
        if (not force and c.valid and c.plan_id == plan_id and c.rank == chip.rank and
                c.world == cluster.world and c.shard_crc == entry["crc32"] and c.shard_bytes == len(data)):
            if progress:
                progress(chip.rank, len(data), len(data))
            return FlashResult(chip.rank, chip.port, len(data), 0.0, True)
        if ident.slot_bytes and len(data) > ident.slot_bytes:
            raise ChipError(f"{chip.label}: its {len(data):,}-byte shard does not fit the chip's "
                            f"{ident.slot_bytes:,}-byte flash slot; use more chips")
        t0 = time.monotonic()
        s.write_region(data, 0, (lambda done, total: progress(chip.rank, done, total)) if progress else None)
        t_write = time.monotonic() - t0
        crc = s.region_crc(0, len(data))
        if crc != entry["crc32"]:
            raise ChipError(f"{chip.label}: shard CRC on the chip is {crc:08x}, expected {entry['crc32']:08x}; "
                            "the link corrupted data: flash again")
        s.commit(len(data), crc, plan_id, chip.rank, cluster.world)
        return FlashResult(chip.rank, chip.port, len(data), time.monotonic() - t0, False, t_write)

    results = cluster.parallel(one)
    errors = [(c, r) for c, r in zip(cluster.chips, results) if isinstance(r, Exception)]
    if errors:
        chip, err = errors[0]
        more = f" ({len(errors) - 1} more chips failed)" if len(errors) > 1 else ""
        msg = str(err)
        if chip.port not in msg and f"chip {chip.rank}" not in msg:
            msg = f"{cluster.blame(chip.rank)}: {msg}"
        raise ChipError(msg + more)
    return results
