"""Shard files round-trip, and every kind of damage is caught with a message that names it."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.partition.shard import ENTRY_SIZE, HEADER_SIZE, load_shards, parse_shard
from orchestrator.partition.split import chip_tensors, make_slices


@pytest.fixture()
def shard_dir(tiny, shards_for, tmp_path):
    s, _ = shards_for(tiny, 2)
    d = tmp_path / "shards"
    shutil.copytree(s.directory, d)
    return d


def test_round_trip_matches_the_partition(tiny, shard_dir):
    from orchestrator.quant.quantize import quantize_model
    qm = quantize_model(tiny)
    manifest, shards = load_shards(shard_dir)
    assert manifest["world"] == 2 and manifest["model"]["synthetic_weights"] is True
    for sl, shard in zip(make_slices(tiny.config, 2), shards):
        for kind, layer, arr in chip_tensors(qm, sl):
            assert np.array_equal(shard.get(kind, layer), arr)


def _rewrite(shard_dir, rank, mutate, fix_manifest_crc=True):
    import zlib
    p = shard_dir / f"shard-{rank}.bin"
    data = bytearray(p.read_bytes())
    data = mutate(data)
    p.write_bytes(bytes(data))
    if fix_manifest_crc:
        m = json.loads((shard_dir / "manifest.json").read_text())
        m["chips"][rank]["crc32"] = zlib.crc32(bytes(data)) & 0xFFFFFFFF
        (shard_dir / "manifest.json").write_text(json.dumps(m))


def _flip(offset):
    def f(d):
        d[offset] ^= 0x40
        return d
    return f


@pytest.mark.parametrize("mutate, message", [
    (_flip(HEADER_SIZE + ENTRY_SIZE * 3 + 2), "table CRC mismatch"),
    (_flip(40), "header CRC mismatch"),
    (_flip(0), "bad magic"),
    (lambda d: d[:-16], "size"),
    (lambda d: d[:100], "truncated"),
])
def test_damaged_shard_is_refused(shard_dir, mutate, message):
    _rewrite(shard_dir, 1, mutate)
    with pytest.raises(InputError, match=message):
        load_shards(shard_dir)


def test_flipped_weight_byte_names_the_tensor(shard_dir):
    m = json.loads((shard_dir / "manifest.json").read_text())
    t = next(t for t in m["chips"][0]["tensors"] if t["name"] == "layers.1.w2")
    _rewrite(shard_dir, 0, _flip(t["offset"] + 5))
    with pytest.raises(InputError, match="layers.1.w2: CRC mismatch"):
        load_shards(shard_dir)


def test_shard_crc_mismatch_against_manifest(shard_dir):
    _rewrite(shard_dir, 0, _flip(HEADER_SIZE + 7), fix_manifest_crc=False)
    with pytest.raises(InputError, match="shard CRC does not match the manifest"):
        load_shards(shard_dir)


def test_oversized_tensor_bounds_are_refused_before_reading():
    # a hand-made shard whose only tensor claims to lie far past the end of the file
    import zlib
    entry = struct.pack("<HH BBBB 4I III 12x", 5, 0xFFFF, 1, 1, 0, 0, 1 << 20, 0, 0, 0, 272, 1 << 20, 0)
    table_crc = zlib.crc32(entry)
    head = struct.pack("<4s 9I 7I 8I I iiI 32s I", b"ORSH", 1, 256, 1, 256, 304, 304, 0, 1, 1,
                       8, 8, 1, 1, 1, 8, 8, 0, 1, 0, 1, 0, 8, 0, 8, 1, 1, 1 << 30, 40, b"\0" * 32, table_crc)
    buf = bytearray(304)
    buf[:len(head)] = head
    buf[256:256 + ENTRY_SIZE] = entry
    buf[252:256] = struct.pack("<I", zlib.crc32(bytes(buf[:252])))
    with pytest.raises(InputError, match="outside the shard's data area"):
        parse_shard(bytes(buf))


def test_manifest_problems(shard_dir):
    (shard_dir / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_shards(shard_dir)
    (shard_dir / "manifest.json").unlink()
    with pytest.raises(InputError, match="no manifest"):
        load_shards(shard_dir)


def test_swapped_ranks_are_refused(shard_dir):
    a, b = shard_dir / "shard-0.bin", shard_dir / "shard-1.bin"
    m = json.loads((shard_dir / "manifest.json").read_text())
    m["chips"][0]["file"], m["chips"][1]["file"] = "shard-1.bin", "shard-0.bin"
    m["chips"][0]["crc32"], m["chips"][1]["crc32"] = m["chips"][1]["crc32"], m["chips"][0]["crc32"]
    (shard_dir / "manifest.json").write_text(json.dumps(m))
    assert a.exists() and b.exists()
    with pytest.raises(InputError, match="rank, world size or plan id differs"):
        load_shards(shard_dir)
