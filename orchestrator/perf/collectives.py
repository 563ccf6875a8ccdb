"""The message schedules of firmware/collective/, as per-chip programs the clock replay can run.

Each function below is a generator for one chip that yields what the firmware does in the same order:
("send", peer, nbytes), ("recv", peer, nbytes) and ("charge", macs, onchip, offchip) for the
hal_account() calls the collectives make (coll_add_s32, combine_argmax, coll_add_s64). The control
flow copies coll_allreduce.c and coll_tree.c line by line, so the model counts the same messages and
bytes; a test holds them to the firmware's own link counters.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK_BYTES = 16384  # COLL_CHUNK_BYTES = HAL_LINK_MAX_MSG


@dataclass(frozen=True)
class Topology:
    """HAL_TOPO_RING, or HAL_TOPO_HIER with groups of group_size consecutive ranks."""

    kind: str = "ring"  # "ring" or "hierarchical"
    group_size: int = 0

    @classmethod
    def parse(cls, text: str | None, world: int) -> "Topology":
        """'ring', 'hierarchical:G' (or 'hier:G')."""
        from orchestrator.errors import InputError
        if text in (None, "", "ring"):
            return cls()
        kind, _, g = str(text).partition(":")
        if kind not in ("hier", "hierarchical"):
            raise InputError(f"all-reduce topology {text!r}: use 'ring' or 'hierarchical:G' (G chips per group)")
        try:
            gs = int(g)
        except ValueError:
            raise InputError(f"all-reduce topology {text!r}: the group size after ':' must be a whole number") from None
        if gs < 1 or world % gs:
            raise InputError(f"all-reduce topology {text!r}: the group size must be at least 1 and divide the "
                             f"{world} chips")
        return cls("hierarchical", gs)

    def label(self) -> str:
        return "ring" if self.kind == "ring" else f"hierarchical:{self.group_size}"


def _part_lo(j: int, n: int, parts: int) -> int:
    return j * n // parts


def _ring_allreduce_s32(n: int, chunk: int, idx: int, size: int, left: int, right: int):
    for phase in (0, 1):
        for k in range(size - 1):
            s = (idx + size - k + phase) % size
            r = (s + size - 1) % size
            s_lo = _part_lo(s, n, size)
            s_n = _part_lo(s + 1, n, size) - s_lo
            r_lo = _part_lo(r, n, size)
            r_n = _part_lo(r + 1, n, size) - r_lo
            off = 0
            while off < s_n or off < r_n:
                if off < s_n:
                    yield ("send", right, 4 * min(s_n - off, chunk))
                if off < r_n:
                    m = min(r_n - off, chunk)
                    yield ("recv", left, 4 * m)
                    if phase == 0:
                        yield ("charge", m, 12 * m, 0)  # coll_add_s32
                off += chunk


def _hier_allreduce_s32(rank: int, world: int, g: int, n: int, chunk: int):
    i, n_groups = rank % g, world // g
    for off in range(0, n, chunk):
        m = min(n - off, chunk)
        if i + 1 < g:
            yield ("recv", rank + 1, 4 * m)
            yield ("charge", m, 12 * m, 0)
        if i > 0:
            yield ("send", rank - 1, 4 * m)
    if i == 0 and n_groups > 1:
        yield from _ring_allreduce_s32(n, chunk, rank // g, n_groups, (rank + world - g) % world, (rank + g) % world)
    for off in range(0, n, chunk):
        m = min(n - off, chunk)
        if i > 0:
            yield ("recv", rank - 1, 4 * m)
        if i + 1 < g:
            yield ("send", rank + 1, 4 * m)


def allreduce_s32(rank: int, world: int, topo: Topology, n: int, scratch_n: int):
    """coll_allreduce_sum_s32(buf, n, scratch, scratch_n)."""
    if world == 1 or n == 0:
        return
    chunk = min(scratch_n, CHUNK_BYTES // 4)
    if topo.kind == "hierarchical":
        yield from _hier_allreduce_s32(rank, world, topo.group_size, n, chunk)
    else:
        yield from _ring_allreduce_s32(n, chunk, rank, world, (rank + world - 1) % world, (rank + 1) % world)


def tree_for_root(rank: int, world: int, topo: Topology, root: int) -> tuple[int | None, list[int]]:
    """(parent or None, children) of rank in the spanning tree of coll_tree.c for root."""
    if world == 1:
        return None, []
    children: list[int] = []
    if topo.kind != "hierarchical":
        d, h = (rank + world - root) % world, world // 2
        right, left = (rank + 1) % world, (rank + world - 1) % world
        if d == 0:
            children.append(right)
            if world >= 3:
                children.append(left)
            return None, children
        if d <= h:
            if d + 1 <= h:
                children.append(right)
            return left, children
        if d - 1 >= h + 1:
            children.append(left)
        return right, children
    g = topo.group_size
    n_groups = world // g
    i, base, k = rank % g, rank - rank % g, rank // g
    root_i, root_k = root % g, root // g
    if k == root_k:
        d = (i + g - root_i) % g
        parent = base + (i + g - 1) % g if d > 0 else None
        if d + 1 < g:
            children.append(base + (i + 1) % g)
        if i == 0 and n_groups > 1:
            children.append((rank + g) % world)
        return parent, children
    if i == 0:
        dk = (k + n_groups - root_k) % n_groups
        if dk + 1 < n_groups:
            children.append((rank + g) % world)
        if g > 1:
            children.append(rank + 1)
        return (rank + world - g) % world, children
    if i + 1 < g:
        children.append(rank + 1)
    return rank - 1, children


def _tree_bcast(rank: int, world: int, topo: Topology, nbytes: int, chunk: int, root: int):
    parent, children = tree_for_root(rank, world, topo, root)
    off = 0
    while True:
        m = min(nbytes - off, chunk)
        if parent is not None:
            yield ("recv", parent, m)
        for c in children:
            yield ("send", c, m)
        off += m
        if off >= nbytes:
            break


def _tree_allreduce(rank: int, world: int, topo: Topology, count: int, esize: int, chunk: int, combine):
    parent, children = tree_for_root(rank, world, topo, 0)
    off = 0
    while True:
        m = min(count - off, chunk)
        for c in children:
            yield ("recv", c, m * esize)
            if combine is not None:
                yield ("charge", *combine(m))
        if parent is not None:
            yield ("send", parent, m * esize)
        off += m
        if off >= count:
            break
    yield from _tree_bcast(rank, world, topo, count * esize, chunk * esize, 0)


def broadcast(rank: int, world: int, topo: Topology, nbytes: int, root: int):
    """coll_broadcast(buf, nbytes, root)."""
    if world == 1:
        return
    yield from _tree_bcast(rank, world, topo, nbytes, CHUNK_BYTES, root)


def barrier(rank: int, world: int, topo: Topology):
    """coll_barrier(): an empty message up every tree edge, then one down."""
    if world == 1:
        return
    yield from _tree_allreduce(rank, world, topo, 0, 1, 1, None)


def argmax_reduce(rank: int, world: int, topo: Topology):
    """coll_argmax_reduce(): one (value, index) pair up the tree to rank 0, then broadcast."""
    if world == 1:
        return
    yield from _tree_allreduce(rank, world, topo, 1, 8, 1, lambda m: (m, 24 * m, 0))


def allreduce_s64(rank: int, world: int, topo: Topology, n: int, scratch_n: int):
    """coll_allreduce_sum_s64(buf, n, scratch, scratch_n) (temperature sampling's slice sums)."""
    if world == 1 or n == 0:
        return
    chunk = min(scratch_n, CHUNK_BYTES // 8)
    yield from _tree_allreduce(rank, world, topo, n, 8, chunk, lambda m: (m, 24 * m, 0))
