"""Shard files: one binary per chip, plus a JSON manifest for the whole plan (docs/shard-format.md).

The binary is what a chip stores and reads in place: a 256-byte header, a table of fixed 48-byte
tensor entries, then 16-byte aligned tensor data. The manifest repeats the table in JSON for people
and tools. Loading validates every field and names the first thing that is wrong.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError
from orchestrator.partition.plan import SHARD_FORMAT_VERSION, Plan, tensor_specs
from orchestrator.partition.split import GLOBAL, Kind, chip_tensors, tensor_name

MAGIC = b"ORSH"
HEADER_SIZE = 256
ENTRY_SIZE = 48
ALIGN = 16
MODEL_KIND_DECODER = 1
MODEL_KIND_ENCODER = 2
FLAG_SHARED_CLASSIFIER = 1
FLAG_KV_OFFCHIP = 2  # the memory plan put this chip's KV cache in off-chip memory
MAX_TENSORS = 4096
MAX_SHARD_BYTES = 1 << 31

DTYPES = {1: np.dtype("<i1"), 2: np.dtype("<i4"), 3: np.dtype("<u4")}
DTYPE_CODE = {"int8": 1, "int32": 2, "uint32": 3}
DTYPE_NAME = {1: "int8", 2: "int32", 3: "uint32"}

# header: magic, format, header size, n_tensors, table offset, data offset, total size, rank, world,
# model kind, 7 config ints, 8 slice ints, flags, eps_q, temp mult, temp shift, plan id, table crc
_HEAD = struct.Struct("<4s 9I 7I 8I I iiI 32s I")
_HEAD_CRC_OFFSET = HEADER_SIZE - 4
_ENTRY = struct.Struct("<HH BBBB 4I III 12x")
# encoder shards (model kind 2) only: variant, embedding size, inner width, stacked FFNs, segment types,
# position rows, norm, pooling, first hidden column and column count of this chip, trigram input
_ENC = struct.Struct("<11I")
_ENC_OFFSET = 152
ENC_VARIANT = {"bert": 1, "mobilebert": 2}
ENC_NORM = {"layernorm": 1, "nonorm": 2}
ENC_POOL = {"mean": 1, "cls": 2}
assert _ENTRY.size == ENTRY_SIZE and _HEAD.size <= _HEAD_CRC_OFFSET and _ENC_OFFSET + _ENC.size <= _HEAD_CRC_OFFSET


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class ShardHeader:
    rank: int
    world: int
    config: tuple[int, ...]  # dim, hidden, layers, heads, kv heads, vocab, context
    slice: tuple[int, ...]  # head start/count, kv start/count, ffn start/count, vocab start/count
    flags: int
    eps_q: int
    temp_mult: int
    temp_shift: int
    plan_id: bytes
    total_size: int
    model_kind: int = MODEL_KIND_DECODER
    enc: tuple[int, ...] = ()  # the _ENC fields of an encoder shard


@dataclass
class Shard:
    header: ShardHeader
    tensors: dict[tuple[int, int], np.ndarray]  # (kind, layer) -> array (views into the file)
    entries: list[dict]
    crc: int

    def get(self, kind: int, layer: int = GLOBAL) -> np.ndarray:
        try:
            return self.tensors[(int(kind), layer)]
        except KeyError:
            raise InputError(f"shard rank {self.header.rank}: tensor {tensor_name(kind, layer)} is missing") from None


def build_shard(qm, plan: Plan, rank: int, plan_id: str) -> tuple[bytes, list[dict]]:
    """The binary shard of one chip and its manifest entries."""
    cfg = qm.config
    cp = plan.chips[rank]
    sl = cp.slice
    encoder = getattr(qm, "kind", "decoder") == "encoder"
    if encoder:
        from orchestrator.partition.split_encoder import enc_chip_tensors, enc_tensor_name
        arrays = enc_chip_tensors(qm, sl)
        name_of = enc_tensor_name
    else:
        arrays = chip_tensors(qm, sl)
        name_of = tensor_name
    specs = cp.tensors
    if [(int(k), l, a.shape) for k, l, a in arrays] != [(int(s.kind), s.layer, s.shape) for s in specs]:
        raise AssertionError("chip_tensors and tensor_specs disagree on the shard layout")
    table_off = HEADER_SIZE
    offset = _align(table_off + ENTRY_SIZE * len(arrays))
    data_off = offset
    entries, chunks = [], []
    for (kind, layer, arr), spec in zip(arrays, specs):
        dt = DTYPE_CODE[spec.dtype]
        raw = np.ascontiguousarray(arr, dtype=DTYPES[dt]).tobytes()
        shape = list(spec.shape) + [0] * (4 - len(spec.shape))
        entries.append({"name": name_of(kind, layer), "kind": int(kind), "layer": layer,
                        "shape": list(spec.shape), "dtype": spec.dtype, "offset": offset, "size": len(raw),
                        "placement": spec.placement, "onchip": spec.onchip, "crc32": crc32(raw),
                        "_shape4": shape, "_dt": dt})
        chunks.append((offset, raw))
        offset = _align(offset + len(raw))
    total = offset
    buf = bytearray(total)
    table = bytearray()
    for e in entries:
        table += _ENTRY.pack(e["kind"], e["layer"], e.pop("_dt"), len(e["shape"]), 0 if e["onchip"] else 1, 0,
                             *e.pop("_shape4"), e["offset"], e["size"], e["crc32"])
    buf[table_off:table_off + len(table)] = table
    for off, raw in chunks:
        buf[off:off + len(raw)] = raw
    if encoder:
        head = _HEAD.pack(MAGIC, SHARD_FORMAT_VERSION, HEADER_SIZE, len(entries), table_off, data_off, total,
                          rank, plan.world, MODEL_KIND_ENCODER,
                          cfg.hidden, cfg.intermediate, cfg.n_layers, cfg.n_heads, cfg.n_heads, cfg.vocab_size, plan.context,
                          *sl.decoder_fields, 0, 0, 0, 0, bytes.fromhex(plan_id), crc32(table))
        buf[:len(head)] = head
        buf[_ENC_OFFSET:_ENC_OFFSET + _ENC.size] = _ENC.pack(
            ENC_VARIANT[cfg.variant], cfg.embed_width, cfg.inner, cfg.n_ffn, cfg.type_vocab_size, cfg.max_positions,
            ENC_NORM[cfg.norm], ENC_POOL[cfg.pooling], sl.col_start, sl.n_cols, 1 if cfg.trigram else 0)
        buf[_HEAD_CRC_OFFSET:HEADER_SIZE] = struct.pack("<I", crc32(buf[:_HEAD_CRC_OFFSET]))
        return bytes(buf), entries
    head = _HEAD.pack(MAGIC, SHARD_FORMAT_VERSION, HEADER_SIZE, len(entries), table_off, data_off, total,
                      rank, plan.world, MODEL_KIND_DECODER,
                      cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size, plan.context,
                      sl.head_start, sl.n_heads, sl.kv_start, sl.n_kv, sl.ffn_start, sl.n_ffn, sl.vocab_start, sl.n_vocab,
                      (FLAG_SHARED_CLASSIFIER if cfg.shared_classifier else 0)
                      | (FLAG_KV_OFFCHIP if plan.profile.memory(cp.data_placement["kv_cache"]).kind == "offchip" else 0),
                      qm.eps_q, qm.temp_mult, qm.temp_shift, bytes.fromhex(plan_id), crc32(table))
    buf[:len(head)] = head
    buf[_HEAD_CRC_OFFSET:HEADER_SIZE] = struct.pack("<I", crc32(buf[:_HEAD_CRC_OFFSET]))
    return bytes(buf), entries


def write_shards(qm, plan: Plan, out_dir: Path, profile_name: str) -> dict:
    """Write shard-<rank>.bin for every chip and manifest.json; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_hash = qm.content_hash()
    plan_id = plan.plan_id(model_hash)
    cfg = qm.config
    chips = []
    for cp in plan.chips:
        data, entries = build_shard(qm, plan, cp.rank, plan_id)
        name = f"shard-{cp.rank}.bin"
        tmp = out_dir / (name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(out_dir / name)
        chips.append({"rank": cp.rank, "file": name, "size": len(data), "crc32": crc32(data),
                      "onchip_bytes": cp.onchip_bytes, "offchip_bytes": cp.offchip_bytes, "tensors": entries})
    if getattr(qm, "kind", "decoder") == "encoder":
        model_entry = {"name": cfg.name, "kind": "encoder", "synthetic_weights": bool(cfg.synthetic),
                       "content_hash": qm.source_hash, "quantized_hash": model_hash,
                       "config": {k: v for k, v in cfg.to_dict().items() if k != "name"},
                       "output_scale": qm.output_scale}
    else:
        model_entry = {"name": cfg.name, "synthetic_weights": bool(cfg.synthetic), "content_hash": qm.source_hash,
                       "quantized_hash": model_hash,
                       "config": {k: getattr(cfg, k) for k in ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
                                                               "vocab_size", "seq_len", "norm_eps", "rope_theta",
                                                               "shared_classifier")}}
    manifest = {
        "format": "orch-shards", "format_version": SHARD_FORMAT_VERSION,
        "plan_id": plan_id, "world": plan.world, "profile": profile_name, "context": plan.context,
        "model": model_entry,
        "quantization": {"scales": qm.scales, "calibration": qm.calibration},
        "chips": chips,
    }
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out_dir / "manifest.json")
    return manifest


def _bad(where: str, what: str) -> InputError:
    return InputError(f"{where}: {what}; re-create the shards (orch flash --force, or delete the shard cache)")


def parse_shard(data: bytes, where: str = "shard") -> Shard:
    """Validate and parse a shard binary. Arrays are read-only views into `data`."""
    mv = memoryview(data)
    if len(data) < HEADER_SIZE:
        raise _bad(where, f"truncated: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    if bytes(mv[:4]) != MAGIC:
        raise _bad(where, "not an orch shard (bad magic)")
    (hcrc,) = struct.unpack_from("<I", data, _HEAD_CRC_OFFSET)
    if crc32(mv[:_HEAD_CRC_OFFSET]) != hcrc:
        raise _bad(where, "header CRC mismatch")
    f = _HEAD.unpack_from(data, 0)
    _, fmt, hsize, n, table_off, data_off, total, rank, world, kind = f[:10]
    cfgv, slv = f[10:17], f[17:25]
    flags, eps_q, tmult, tshift, plan_id, table_crc = f[25:31]
    if fmt != SHARD_FORMAT_VERSION:
        raise _bad(where, f"format version {fmt}, this orch reads version {SHARD_FORMAT_VERSION}")
    if hsize != HEADER_SIZE or kind not in (MODEL_KIND_DECODER, MODEL_KIND_ENCODER):
        raise _bad(where, "header size or model kind not supported")
    enc = _ENC.unpack_from(data, _ENC_OFFSET) if kind == MODEL_KIND_ENCODER else ()
    if enc and (enc[0] not in ENC_VARIANT.values() or enc[6] not in ENC_NORM.values() or
                enc[7] not in ENC_POOL.values() or enc[9] < 1 or enc[8] + enc[9] > f[10] or enc[10] > 1):
        raise _bad(where, "encoder header fields (variant, norm, pooling, column slice) are out of range")
    if kind == MODEL_KIND_ENCODER:
        from orchestrator.partition.split_encoder import enc_tensor_name as name_of
    else:
        name_of = None
    if total != len(data):
        raise _bad(where, f"size {len(data)} bytes but the header says {total}")
    if not 0 < n <= MAX_TENSORS or table_off != HEADER_SIZE or table_off + n * ENTRY_SIZE > data_off or data_off > total:
        raise _bad(where, "tensor table bounds are inconsistent")
    if not 0 <= rank < world:
        raise _bad(where, f"rank {rank} is not below world size {world}")
    if any(v <= 0 for v in cfgv):
        raise _bad(where, "model dimensions must be positive")
    table = mv[table_off:table_off + n * ENTRY_SIZE]
    if crc32(table) != table_crc:
        raise _bad(where, "tensor table CRC mismatch")
    tensors, entries = {}, []
    for i in range(n):
        k, layer, dt, ndim, place, _, s0, s1, s2, s3, off, size, tcrc = _ENTRY.unpack_from(table, i * ENTRY_SIZE)
        if name_of is not None:
            name = name_of(k, layer)
        else:
            name = tensor_name(k, layer) if k in Kind._value2member_map_ else f"tensor#{i}"
        if dt not in DTYPES or not 1 <= ndim <= 4:
            raise _bad(where, f"{name}: unknown dtype {dt} or rank {ndim}")
        shape = (s0, s1, s2, s3)[:ndim]
        count = 1
        for s in shape:
            count *= s
        if count * DTYPES[dt].itemsize != size:
            raise _bad(where, f"{name}: shape {shape} does not match its size {size}")
        if off < data_off or off % ALIGN or off + size > total:
            raise _bad(where, f"{name}: data [{off}, {off + size}) lies outside the shard's data area")
        raw = mv[off:off + size]
        if crc32(raw) != tcrc:
            raise _bad(where, f"{name}: CRC mismatch")
        tensors[(k, layer)] = np.frombuffer(raw, dtype=DTYPES[dt]).reshape(shape)
        entries.append({"name": name, "kind": k, "layer": layer, "shape": list(shape), "dtype": DTYPE_NAME[dt],
                        "offset": off, "size": size, "onchip": place == 0, "crc32": tcrc})
    hdr = ShardHeader(rank, world, tuple(cfgv), tuple(slv), flags, eps_q, tmult, tshift, bytes(plan_id), total,
                      kind, tuple(enc))
    return Shard(hdr, tensors, entries, crc32(mv))


def _shape_check(shard: Shard, cfg, where: str) -> None:
    """Every tensor the runtime needs is present with the shape the header's dimensions imply."""
    from orchestrator.partition.split import ChipSlice
    h = shard.header
    if getattr(cfg, "kind", "decoder") == "encoder":
        from orchestrator.partition.split_encoder import enc_tensor_name, enc_tensor_specs
        if h.model_kind != MODEL_KIND_ENCODER:
            raise _bad(where, "the manifest describes an encoder but the shard holds another model kind")
        expect = enc_tensor_specs(cfg, enc_slice_of(shard))
        for spec in expect:
            arr = shard.tensors.get((int(spec.kind), spec.layer))
            name = enc_tensor_name(spec.kind, spec.layer)
            if arr is None:
                raise _bad(where, f"tensor {name} is missing")
            if arr.shape != spec.shape:
                raise _bad(where, f"tensor {name} has shape {arr.shape}, expected {spec.shape}")
        return
    if h.model_kind != MODEL_KIND_DECODER:
        raise _bad(where, "the manifest describes a decoder but the shard holds another model kind")
    sl = ChipSlice(h.rank, h.world, *h.slice)
    expect = tensor_specs(cfg, sl)
    for spec in expect:
        arr = shard.tensors.get((int(spec.kind), spec.layer))
        if arr is None:
            raise _bad(where, f"tensor {spec.name} is missing")
        if arr.shape != spec.shape:
            raise _bad(where, f"tensor {spec.name} has shape {arr.shape}, expected {spec.shape}")


def enc_slice_of(shard: Shard):
    """The EncSlice an encoder shard's header describes."""
    from orchestrator.partition.split_encoder import EncSlice
    h = shard.header
    hs, hn, _, _, fs, fn, vs, vn = h.slice
    return EncSlice(h.rank, h.world, hs, hn, fs, fn, vs, vn, h.enc[8], h.enc[9])


def manifest_config(m: dict, where: str):
    """The model config a manifest records: a decoder's ModelConfig or an encoder's EncoderConfig."""
    from orchestrator.model.config import ModelConfig
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    c = model.get("config")
    try:
        if model.get("kind") == "encoder":
            from orchestrator.model.bert import EncoderConfig
            return EncoderConfig(name=model["name"], **c).validate()
        return ModelConfig(name=model["name"], **c)
    except (TypeError, KeyError) as e:
        raise InputError(f"{where}: model config is malformed ({e})") from None


def load_manifest(shard_dir: Path) -> dict:
    path = Path(shard_dir) / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no manifest; run `orch flash` (or `orch plan --write`) to create the shards") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e.__class__.__name__}); delete the folder and re-create the shards") from None
    if not isinstance(m, dict) or m.get("format") != "orch-shards":
        raise InputError(f"{path}: not an orch shard manifest")
    if m.get("format_version") != SHARD_FORMAT_VERSION:
        raise InputError(f"{path}: manifest format {m.get('format_version')!r}, this orch reads {SHARD_FORMAT_VERSION}; re-create the shards")
    chips = m.get("chips")
    world = m.get("world")
    if not isinstance(world, int) or not isinstance(chips, list) or len(chips) != world or world < 1:
        raise InputError(f"{path}: 'chips' must list exactly 'world' entries")
    return m


def load_shards(shard_dir: Path) -> tuple[dict, list[Shard]]:
    """Load and validate a manifest and all its shards: CRCs, ranks, plan id, shapes."""

    shard_dir = Path(shard_dir)
    m = load_manifest(shard_dir)
    cfg = manifest_config(m, f"{shard_dir}/manifest.json")
    shards = []
    for rank, chip in enumerate(m["chips"]):
        where = f"{shard_dir}/{chip.get('file')}"
        if chip.get("rank") != rank or not isinstance(chip.get("file"), str) or "/" in chip["file"]:
            raise InputError(f"{shard_dir}/manifest.json: chip entry {rank} is malformed")
        try:
            data = (shard_dir / chip["file"]).read_bytes()
        except OSError as e:
            raise InputError(f"{where}: cannot read ({e.strerror}); re-create the shards") from None
        if crc32(data) != chip.get("crc32"):
            raise _bad(where, "shard CRC does not match the manifest")
        s = parse_shard(data, where)
        if s.header.rank != rank or s.header.world != m["world"] or s.header.plan_id.hex() != m["plan_id"]:
            raise _bad(where, "rank, world size or plan id differs from the manifest")
        _shape_check(s, cfg, where)
        shards.append(s)
    return m, shards
