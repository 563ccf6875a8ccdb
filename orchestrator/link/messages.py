"""Messages of the host<->chip protocol: ids, codes and payload layouts (mirror of
firmware/proto/msg.h; docs/protocol.md is the reference, tests/test_link_frame.py checks that the
numbers here and in msg.h agree).

Every message is a dataclass with ``pack() -> bytes`` and ``unpack(payload)``. ``pack`` raises
InputError for values that do not fit the wire; ``unpack`` checks every length before reading and
raises ProtocolError naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from orchestrator.errors import InputError
from orchestrator.link.frame import MAX_PAYLOAD, Frame, FrameCounters, ProtocolError


class MsgType(IntEnum):
    # host -> chip
    IDENTIFY = 0x01
    WRITE = 0x02
    REGION_CRC = 0x03
    COMMIT = 0x04
    CONFIGURE = 0x05
    PING = 0x06
    RUN = 0x07
    RESET = 0x08
    STATS = 0x09
    RUN_ENCODER = 0x0A
    # chip -> host
    IDENTIFY_REPLY = 0x81
    ACK = 0x82
    NAK = 0x83
    CRC_REPLY = 0x84
    OK = 0x85
    PONG = 0x86
    TOKEN = 0x87
    TRACE = 0x88
    LOGITS = 0x89
    DONE = 0x8A
    ERROR = 0x8B
    STATS_REPLY = 0x8C
    EMBEDDING = 0x8D


class ErrorCode(IntEnum):
    NONE = 0
    BAD_FRAME = 1
    BAD_CRC = 2
    UNKNOWN_TYPE = 3
    BAD_LENGTH = 4
    BAD_STATE = 5
    NO_FIT = 6
    COMMIT_CRC = 7
    LINK_LOST = 8
    LINK_TIMEOUT = 9
    NOT_CONFIGURED = 10
    INTERNAL = 11
    BAD_VERSION = 12
    BAD_ARG = 13
    BUSY = 14
    NV_IO = 15


#: Same texts as proto_error_text() in msg.c.
ERROR_TEXT = {
    ErrorCode.NONE: "ok",
    ErrorCode.BAD_FRAME: "bad frame",
    ErrorCode.BAD_CRC: "bad crc",
    ErrorCode.UNKNOWN_TYPE: "unknown message type",
    ErrorCode.BAD_LENGTH: "bad payload length",
    ErrorCode.BAD_STATE: "bad state",
    ErrorCode.NO_FIT: "shard does not fit",
    ErrorCode.COMMIT_CRC: "crc mismatch on commit",
    ErrorCode.LINK_LOST: "chip link lost",
    ErrorCode.LINK_TIMEOUT: "chip link timeout",
    ErrorCode.NOT_CONFIGURED: "not configured",
    ErrorCode.INTERNAL: "internal error",
    ErrorCode.BAD_VERSION: "protocol version mismatch",
    ErrorCode.BAD_ARG: "bad argument",
    ErrorCode.BUSY: "busy",
    ErrorCode.NV_IO: "non-volatile storage error",
}


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"code {code}"


class Phase(IntEnum):
    """Trace phase ids; 7..15 reserved for more decoder phases, 16..31 for encoder phases (encoders
    also use EMBED, ATTENTION, ALLREDUCE_ATT, FFN and ALLREDUCE_FFN)."""

    EMBED = 0
    ATTENTION = 1
    ALLREDUCE_ATT = 2
    FFN = 3
    ALLREDUCE_FFN = 4
    CLASSIFIER = 5
    ARGMAX_REDUCE = 6
    ALLREDUCE_EMBED = 16
    IN_BOTTLENECK = 17
    ALLREDUCE_IN = 18
    OUT_BOTTLENECK = 19
    POOL = 20


LAYER_NONE = 0xFF  # TraceRecord.layer of phases outside a decoder block


class Topology(IntEnum):
    RING = 0
    HIERARCHICAL = 1


RUN_TRACE = 0x1
RUN_LOGITS = 0x2
RUN_FLAGS_KNOWN = RUN_TRACE | RUN_LOGITS

PLAN_ID_BYTES = 32
FW_VERSION_BYTES = 16
PROFILE_NAME_BYTES = 32
WRITE_HEADER_BYTES = 4
WRITE_MAX_DATA = MAX_PAYLOAD - WRITE_HEADER_BYTES
RUN_HEADER_BYTES = 24
RUN_MAX_PROMPT = (MAX_PAYLOAD - RUN_HEADER_BYTES) // 4
TRACE_HEADER_BYTES = 4
TRACE_RECORD_BYTES = 56
TRACE_MAX_RECORDS = (MAX_PAYLOAD - TRACE_HEADER_BYTES) // TRACE_RECORD_BYTES
LOGITS_HEADER_BYTES = 8
LOGITS_MAX_COUNT = (MAX_PAYLOAD - LOGITS_HEADER_BYTES) // 4
ERROR_TEXT_MAX = 200
RUN_ENCODER_HEADER_BYTES = 12
RUN_ENCODER_MAX_TOKENS = (MAX_PAYLOAD - RUN_ENCODER_HEADER_BYTES) // 5
EMBEDDING_HEADER_BYTES = 12
EMBEDDING_MAX_COUNT = (MAX_PAYLOAD - EMBEDDING_HEADER_BYTES) // 4

_U16 = (1 << 16) - 1
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


def _check_uint(name: str, value: int, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InputError(f"{name} = {value!r} does not fit an unsigned {limit.bit_length()}-bit field")
    return value


def _need_len(msg: str, payload: bytes, want: int) -> None:
    if len(payload) != want:
        raise ProtocolError(f"{msg} payload is {len(payload)} bytes, expected {want}")


def _fixed_text(name: str, text: str, size: int) -> bytes:
    raw = text.encode("ascii", errors="strict") if text.isascii() else None
    if raw is None or len(raw) >= size or b"\x00" in raw:
        raise InputError(f"{name} {text!r} must be ASCII, shorter than {size} bytes, without NUL")
    return raw.ljust(size, b"\x00")


def _read_text(name: str, raw: bytes) -> str:
    """A NUL-padded ASCII field from the chip."""
    text = raw.split(b"\x00", 1)[0]
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"{name} field is not ASCII: {text!r}") from None


class Message:
    """Base of every message: TYPE, pack() and unpack()."""

    TYPE: ClassVar[MsgType]

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> "Message":
        _need_len(cls.TYPE.name, payload, 0)
        return cls()


# ----------------------------------------------------------------- requests (host -> chip)


@dataclass(frozen=True)
class Identify(Message):
    TYPE: ClassVar[MsgType] = MsgType.IDENTIFY


@dataclass(frozen=True)
class Reset(Message):
    TYPE: ClassVar[MsgType] = MsgType.RESET


@dataclass(frozen=True)
class Stats(Message):
    TYPE: ClassVar[MsgType] = MsgType.STATS


@dataclass(frozen=True)
class Write(Message):
    TYPE: ClassVar[MsgType] = MsgType.WRITE
    offset: int
    data: bytes

    def pack(self) -> bytes:
        _check_uint("WRITE offset", self.offset, _U32)
        if not 1 <= len(self.data) <= WRITE_MAX_DATA:
            raise InputError(f"WRITE carries 1..{WRITE_MAX_DATA} bytes, got {len(self.data)}")
        if self.offset + len(self.data) > _U32 + 1:
            raise InputError(f"WRITE at offset {self.offset} of {len(self.data)} bytes runs past 4 GiB")
        return struct.pack("<I", self.offset) + bytes(self.data)

    @classmethod
    def unpack(cls, payload: bytes) -> "Write":
        if len(payload) <= WRITE_HEADER_BYTES:
            raise ProtocolError(f"WRITE payload is {len(payload)} bytes, needs offset + at least 1 data byte")
        return cls(struct.unpack_from("<I", payload)[0], bytes(payload[WRITE_HEADER_BYTES:]))


@dataclass(frozen=True)
class RegionCrc(Message):
    TYPE: ClassVar[MsgType] = MsgType.REGION_CRC
    offset: int
    length: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<II")

    def pack(self) -> bytes:
        _check_uint("REGION_CRC offset", self.offset, _U32)
        _check_uint("REGION_CRC length", self.length, _U32)
        if self.offset + self.length > _U32:
            raise InputError(f"REGION_CRC offset {self.offset} + length {self.length} runs past 4 GiB")
        return self.WIRE.pack(self.offset, self.length)

    @classmethod
    def unpack(cls, payload: bytes) -> "RegionCrc":
        _need_len("REGION_CRC", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Commit(Message):
    TYPE: ClassVar[MsgType] = MsgType.COMMIT
    total_bytes: int
    crc32: int
    plan_id: bytes
    rank: int
    world: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<II32sII")

    def pack(self) -> bytes:
        _check_uint("COMMIT total length", self.total_bytes, _U32)
        _check_uint("COMMIT crc32", self.crc32, _U32)
        _check_uint("COMMIT rank", self.rank, _U32)
        _check_uint("COMMIT world", self.world, _U32)
        if self.total_bytes == 0:
            raise InputError("COMMIT of an empty shard: write the shard first")
        if not 0 <= self.rank < self.world:
            raise InputError(f"COMMIT rank {self.rank} must be below world {self.world}")
        if len(self.plan_id) != PLAN_ID_BYTES:
            raise InputError(f"plan id must be {PLAN_ID_BYTES} bytes (sha256), got {len(self.plan_id)}")
        return self.WIRE.pack(self.total_bytes, self.crc32, bytes(self.plan_id), self.rank, self.world)

    @classmethod
    def unpack(cls, payload: bytes) -> "Commit":
        _need_len("COMMIT", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Configure(Message):
    TYPE: ClassVar[MsgType] = MsgType.CONFIGURE
    rank: int
    world: int
    topology: int = Topology.RING
    group_size: int = 0
    WIRE: ClassVar[struct.Struct] = struct.Struct("<IIII")

    def pack(self) -> bytes:
        for name in ("rank", "world", "topology", "group_size"):
            _check_uint(f"CONFIGURE {name}", getattr(self, name), _U32)
        if not 0 <= self.rank < self.world:
            raise InputError(f"CONFIGURE rank {self.rank} must be below world {self.world}")
        if self.topology == Topology.RING:
            if self.group_size != 0:
                raise InputError("ring topology takes group size 0")
        elif self.topology == Topology.HIERARCHICAL:
            if self.group_size < 1 or self.world % self.group_size:
                raise InputError(f"group size {self.group_size} must divide world {self.world}")
        else:
            raise InputError(f"unknown topology {self.topology}; use ring (0) or hierarchical (1)")
        return self.WIRE.pack(self.rank, self.world, self.topology, self.group_size)

    @classmethod
    def unpack(cls, payload: bytes) -> "Configure":
        _need_len("CONFIGURE", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Ping(Message):
    TYPE: ClassVar[MsgType] = MsgType.PING
    nonce: int

    def pack(self) -> bytes:
        return struct.pack("<I", _check_uint("PING nonce", self.nonce, _U32))

    @classmethod
    def unpack(cls, payload: bytes) -> "Ping":
        _need_len("PING", payload, 4)
        return cls(struct.unpack("<I", payload)[0])


def temperature_to_q16(temperature: float) -> int:
    """Sampling temperature as the Q16.16 the chip takes (0 = greedy)."""
    if not 0.0 <= temperature < 65536.0:
        raise InputError(f"temperature {temperature} must be in [0, 65536)")
    return int(round(temperature * 65536.0))


@dataclass(frozen=True)
class Run(Message):
    TYPE: ClassVar[MsgType] = MsgType.RUN
    n_tokens: int
    prompt: tuple[int, ...]
    temperature_q16: int = 0
    seed: int = 0
    flags: int = 0
    HEAD: ClassVar[struct.Struct] = struct.Struct("<IIIQI")

    @property
    def trace(self) -> bool:
        return bool(self.flags & RUN_TRACE)

    @property
    def logits(self) -> bool:
        return bool(self.flags & RUN_LOGITS)

    def pack(self) -> bytes:
        _check_uint("RUN n_tokens", self.n_tokens, _U32)
        _check_uint("RUN temperature (Q16.16)", self.temperature_q16, _U32)
        _check_uint("RUN seed", self.seed, _U64)
        _check_uint("RUN flags", self.flags, _U32)
        if self.flags & ~RUN_FLAGS_KNOWN:
            raise InputError(f"RUN flags {self.flags:#x} has unknown bits")
        if len(self.prompt) > RUN_MAX_PROMPT:
            raise InputError(f"prompt of {len(self.prompt)} tokens exceeds the {RUN_MAX_PROMPT} one RUN frame carries")
        for i, tok in enumerate(self.prompt):
            _check_uint(f"prompt token {i}", tok, _U32)
        head = self.HEAD.pack(self.flags, self.n_tokens, self.temperature_q16, self.seed, len(self.prompt))
        return head + struct.pack(f"<{len(self.prompt)}I", *self.prompt)

    @classmethod
    def unpack(cls, payload: bytes) -> "Run":
        if len(payload) < RUN_HEADER_BYTES:
            raise ProtocolError(f"RUN payload is {len(payload)} bytes, needs at least {RUN_HEADER_BYTES}")
        flags, n_tokens, temp, seed, n_prompt = cls.HEAD.unpack_from(payload)
        if n_prompt > RUN_MAX_PROMPT or len(payload) != RUN_HEADER_BYTES + 4 * n_prompt:
            raise ProtocolError(f"RUN payload is {len(payload)} bytes, which does not hold {n_prompt} prompt ids")
        prompt = struct.unpack_from(f"<{n_prompt}I", payload, RUN_HEADER_BYTES)
        return cls(n_tokens, tuple(prompt), temp, seed, flags)


@dataclass(frozen=True)
class RunEncoder(Message):
    """One encoder inference: token ids and segment ids of n positions; keys from n_valid on are padding."""

    TYPE: ClassVar[MsgType] = MsgType.RUN_ENCODER
    ids: tuple[int, ...]
    segments: tuple[int, ...] = ()  # empty: all 0
    n_valid: int | None = None  # None: every position is valid
    flags: int = 0

    def pack(self) -> bytes:
        n = len(self.ids)
        if not 1 <= n <= RUN_ENCODER_MAX_TOKENS:
            raise InputError(f"an encoder run takes 1..{RUN_ENCODER_MAX_TOKENS} tokens in one frame, got {n}")
        segs = self.segments or (0,) * n
        if len(segs) != n:
            raise InputError(f"{len(segs)} segment ids for {n} tokens: give one per token")
        valid = n if self.n_valid is None else self.n_valid
        if isinstance(valid, bool) or not isinstance(valid, int) or not 1 <= valid <= n:
            raise InputError(f"valid length {valid!r} must be between 1 and the {n} tokens")
        _check_uint("RUN_ENCODER flags", self.flags, _U32)
        if self.flags & ~RUN_TRACE:
            raise InputError(f"RUN_ENCODER flags {self.flags:#x} has unknown bits")
        for i, tok in enumerate(self.ids):
            _check_uint(f"token {i}", tok, _U32)
        for i, sg in enumerate(segs):
            _check_uint(f"segment id {i}", sg, 0xFF)
        return struct.pack(f"<III{n}I", self.flags, n, valid, *self.ids) + bytes(segs)

    @classmethod
    def unpack(cls, payload: bytes) -> "RunEncoder":
        if len(payload) < RUN_ENCODER_HEADER_BYTES:
            raise ProtocolError(f"RUN_ENCODER payload is {len(payload)} bytes, needs at least {RUN_ENCODER_HEADER_BYTES}")
        flags, n, valid = struct.unpack_from("<III", payload)
        if n > RUN_ENCODER_MAX_TOKENS or len(payload) != RUN_ENCODER_HEADER_BYTES + 5 * n:
            raise ProtocolError(f"RUN_ENCODER payload is {len(payload)} bytes, which does not hold {n} tokens")
        if not 1 <= valid <= n:
            raise ProtocolError(f"RUN_ENCODER valid length {valid} is not within 1..{n}")
        ids = struct.unpack_from(f"<{n}I", payload, RUN_ENCODER_HEADER_BYTES)
        segs = tuple(payload[RUN_ENCODER_HEADER_BYTES + 4 * n:])
        return cls(tuple(ids), segs, valid, flags)


# ----------------------------------------------------------------- replies (chip -> host)


@dataclass(frozen=True)
class Ok(Message):
    TYPE: ClassVar[MsgType] = MsgType.OK


@dataclass(frozen=True)
class ShardDescriptor:
    """The committed shard a chip reports in IDENTIFY_REPLY."""

    valid: bool = False
    plan_id: bytes = bytes(PLAN_ID_BYTES)
    rank: int = 0
    world: int = 0
    shard_bytes: int = 0
    shard_crc: int = 0


@dataclass(frozen=True)
class IdentifyReply(Message):
    TYPE: ClassVar[MsgType] = MsgType.IDENTIFY_REPLY
    chip_id: int
    protocol_version: int
    max_payload: int
    window: int
    onchip_bytes: int
    offchip_bytes: int
    nv_bytes: int
    slot_bytes: int
    fw_version: str
    profile: str
    committed: ShardDescriptor = field(default_factory=ShardDescriptor)
    counters: FrameCounters = field(default_factory=FrameCounters)
    # chip_id u32, version u16, reserved u16, 6 x u32 sizes, fw 16s, profile 32s,
    # valid u8, reserved 3x, plan 32s, rank, world, shard bytes, shard crc, then 8 x u32 counters.
    WIRE: ClassVar[struct.Struct] = struct.Struct("<IHHIIIIII16s32sB3x32sIIII32s")

    def pack(self) -> bytes:
        for name in ("chip_id", "max_payload", "window", "onchip_bytes", "offchip_bytes", "nv_bytes", "slot_bytes"):
            _check_uint(name, getattr(self, name), _U32)
        _check_uint("protocol_version", self.protocol_version, _U16)
        c = self.committed
        if len(c.plan_id) != PLAN_ID_BYTES:
            raise InputError(f"plan id must be {PLAN_ID_BYTES} bytes")
        return self.WIRE.pack(
            self.chip_id, self.protocol_version, 0, self.max_payload, self.window, self.onchip_bytes,
            self.offchip_bytes, self.nv_bytes, self.slot_bytes,
            _fixed_text("firmware version", self.fw_version, FW_VERSION_BYTES),
            _fixed_text("profile name", self.profile, PROFILE_NAME_BYTES),
            1 if c.valid else 0, bytes(c.plan_id), c.rank, c.world, c.shard_bytes, c.shard_crc,
            self.counters.pack())

    @classmethod
    def unpack(cls, payload: bytes) -> "IdentifyReply":
        _need_len("IDENTIFY_REPLY", payload, cls.WIRE.size)
        (chip_id, version, _res, max_payload, window, onchip, offchip, nv, slot, fw, profile,
         valid, plan, rank, world, shard_bytes, shard_crc, counters) = cls.WIRE.unpack(payload)
        if valid not in (0, 1):
            raise ProtocolError(f"IDENTIFY_REPLY committed flag is {valid}, expected 0 or 1")
        desc = ShardDescriptor(bool(valid), plan, rank, world, shard_bytes, shard_crc)
        return cls(chip_id, version, max_payload, window, onchip, offchip, nv, slot,
                   _read_text("firmware version", fw), _read_text("profile name", profile),
                   desc, FrameCounters.unpack(counters))


@dataclass(frozen=True)
class Ack(Message):
    TYPE: ClassVar[MsgType] = MsgType.ACK
    offset: int
    length: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<II")

    def pack(self) -> bytes:
        return self.WIRE.pack(_check_uint("ACK offset", self.offset, _U32),
                              _check_uint("ACK length", self.length, _U32))

    @classmethod
    def unpack(cls, payload: bytes) -> "Ack":
        _need_len("ACK", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Nak(Message):
    TYPE: ClassVar[MsgType] = MsgType.NAK
    code: int
    offset: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<HxxI")

    def pack(self) -> bytes:
        return self.WIRE.pack(_check_uint("NAK code", self.code, _U16), _check_uint("NAK offset", self.offset, _U32))

    @classmethod
    def unpack(cls, payload: bytes) -> "Nak":
        _need_len("NAK", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class CrcReply(Message):
    TYPE: ClassVar[MsgType] = MsgType.CRC_REPLY
    offset: int
    length: int
    crc: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<III")

    def pack(self) -> bytes:
        return self.WIRE.pack(_check_uint("offset", self.offset, _U32), _check_uint("length", self.length, _U32),
                              _check_uint("crc", self.crc, _U32))

    @classmethod
    def unpack(cls, payload: bytes) -> "CrcReply":
        _need_len("CRC_REPLY", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[MsgType] = MsgType.PONG
    nonce: int
    cycles: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<IQ")

    def pack(self) -> bytes:
        return self.WIRE.pack(_check_uint("nonce", self.nonce, _U32), _check_uint("cycles", self.cycles, _U64))

    @classmethod
    def unpack(cls, payload: bytes) -> "Pong":
        _need_len("PONG", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Token(Message):
    TYPE: ClassVar[MsgType] = MsgType.TOKEN
    index: int
    pos: int
    token: int
    cycles: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<IIIQ")

    def pack(self) -> bytes:
        return self.WIRE.pack(_check_uint("index", self.index, _U32), _check_uint("pos", self.pos, _U32),
                              _check_uint("token", self.token, _U32), _check_uint("cycles", self.cycles, _U64))

    @classmethod
    def unpack(cls, payload: bytes) -> "Token":
        _need_len("TOKEN", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class TraceRecord:
    """One phase of one token on one chip (proto_trace_record in msg.h; 56 bytes on the wire)."""

    token_index: int
    phase: int
    layer: int
    start_cycles: int
    end_cycles: int
    macs: int
    onchip_bytes: int
    offchip_bytes: int
    link_tx_bytes: int
    link_rx_bytes: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<IBBxxQQQQQII")

    def pack(self) -> bytes:
        try:
            return self.WIRE.pack(self.token_index, self.phase, self.layer, self.start_cycles, self.end_cycles,
                                  self.macs, self.onchip_bytes, self.offchip_bytes, self.link_tx_bytes,
                                  self.link_rx_bytes)
        except struct.error as e:
            raise InputError(f"trace record field out of range: {e}") from None

    @classmethod
    def unpack_from(cls, buf: bytes, offset: int) -> "TraceRecord":
        return cls(*cls.WIRE.unpack_from(buf, offset))

    @property
    def phase_name(self) -> str:
        try:
            return Phase(self.phase).name
        except ValueError:
            return f"PHASE_{self.phase}"


assert TraceRecord.WIRE.size == TRACE_RECORD_BYTES


@dataclass(frozen=True)
class Trace(Message):
    TYPE: ClassVar[MsgType] = MsgType.TRACE
    records: tuple[TraceRecord, ...]

    def pack(self) -> bytes:
        if len(self.records) > TRACE_MAX_RECORDS:
            raise InputError(f"TRACE carries at most {TRACE_MAX_RECORDS} records, got {len(self.records)}")
        return struct.pack("<I", len(self.records)) + b"".join(r.pack() for r in self.records)

    @classmethod
    def unpack(cls, payload: bytes) -> "Trace":
        if len(payload) < TRACE_HEADER_BYTES:
            raise ProtocolError(f"TRACE payload is {len(payload)} bytes, needs at least {TRACE_HEADER_BYTES}")
        (count,) = struct.unpack_from("<I", payload)
        if count > TRACE_MAX_RECORDS or len(payload) != TRACE_HEADER_BYTES + count * TRACE_RECORD_BYTES:
            raise ProtocolError(f"TRACE payload is {len(payload)} bytes, which does not hold {count} records")
        return cls(tuple(TraceRecord(*f) for f in TraceRecord.WIRE.iter_unpack(memoryview(payload)[TRACE_HEADER_BYTES:])))


@dataclass(frozen=True)
class Logits(Message):
    TYPE: ClassVar[MsgType] = MsgType.LOGITS
    first: int
    values: tuple[int, ...]

    def pack(self) -> bytes:
        _check_uint("LOGITS first", self.first, _U32)
        if len(self.values) > LOGITS_MAX_COUNT:
            raise InputError(f"LOGITS carries at most {LOGITS_MAX_COUNT} values, got {len(self.values)}")
        try:
            body = struct.pack(f"<{len(self.values)}i", *self.values)
        except struct.error as e:
            raise InputError(f"logit out of int32 range: {e}") from None
        return struct.pack("<II", self.first, len(self.values)) + body

    @classmethod
    def unpack(cls, payload: bytes) -> "Logits":
        if len(payload) < LOGITS_HEADER_BYTES:
            raise ProtocolError(f"LOGITS payload is {len(payload)} bytes, needs at least {LOGITS_HEADER_BYTES}")
        first, count = struct.unpack_from("<II", payload)
        if count > LOGITS_MAX_COUNT or len(payload) != LOGITS_HEADER_BYTES + 4 * count:
            raise ProtocolError(f"LOGITS payload is {len(payload)} bytes, which does not hold {count} values")
        if first + count > _U32 + 1:
            raise ProtocolError(f"LOGITS slice {first}+{count} runs past 2^32")
        return cls(first, struct.unpack_from(f"<{count}i", payload, LOGITS_HEADER_BYTES))


@dataclass(frozen=True)
class Done(Message):
    TYPE: ClassVar[MsgType] = MsgType.DONE
    status: int
    tokens: int
    cycles: int
    WIRE: ClassVar[struct.Struct] = struct.Struct("<HxxIQ")

    @property
    def ok(self) -> bool:
        return self.status == ErrorCode.NONE

    def pack(self) -> bytes:
        return self.WIRE.pack(_check_uint("status", self.status, _U16), _check_uint("tokens", self.tokens, _U32),
                              _check_uint("cycles", self.cycles, _U64))

    @classmethod
    def unpack(cls, payload: bytes) -> "Done":
        _need_len("DONE", payload, cls.WIRE.size)
        return cls(*cls.WIRE.unpack(payload))


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[MsgType] = MsgType.ERROR
    code: int
    text: str = ""

    def pack(self) -> bytes:
        raw = self.text.encode("utf-8")
        if len(raw) > ERROR_TEXT_MAX:
            raise InputError(f"ERROR text is {len(raw)} bytes, limit {ERROR_TEXT_MAX}")
        return struct.pack("<H", _check_uint("ERROR code", self.code, _U16)) + raw

    @classmethod
    def unpack(cls, payload: bytes) -> "Error":
        if len(payload) < 2:
            raise ProtocolError(f"ERROR payload is {len(payload)} bytes, needs at least 2")
        if len(payload) > 2 + ERROR_TEXT_MAX:
            raise ProtocolError(f"ERROR text is {len(payload) - 2} bytes, limit {ERROR_TEXT_MAX}")
        (code,) = struct.unpack_from("<H", payload)
        return cls(code, bytes(payload[2:]).decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class Embedding(Message):
    """A chip's columns [first, first + count) of the pooled int32 sentence embedding."""

    TYPE: ClassVar[MsgType] = MsgType.EMBEDDING
    first: int
    n_valid: int
    values: tuple[int, ...]

    def pack(self) -> bytes:
        _check_uint("EMBEDDING first", self.first, _U32)
        _check_uint("EMBEDDING n_valid", self.n_valid, _U32)
        if len(self.values) > EMBEDDING_MAX_COUNT:
            raise InputError(f"EMBEDDING carries at most {EMBEDDING_MAX_COUNT} values, got {len(self.values)}")
        try:
            body = struct.pack(f"<{len(self.values)}i", *self.values)
        except struct.error as e:
            raise InputError(f"embedding value out of int32 range: {e}") from None
        return struct.pack("<III", self.first, len(self.values), self.n_valid) + body

    @classmethod
    def unpack(cls, payload: bytes) -> "Embedding":
        if len(payload) < EMBEDDING_HEADER_BYTES:
            raise ProtocolError(f"EMBEDDING payload is {len(payload)} bytes, needs at least {EMBEDDING_HEADER_BYTES}")
        first, count, n_valid = struct.unpack_from("<III", payload)
        if count > EMBEDDING_MAX_COUNT or len(payload) != EMBEDDING_HEADER_BYTES + 4 * count:
            raise ProtocolError(f"EMBEDDING payload is {len(payload)} bytes, which does not hold {count} values")
        if first + count > _U32 + 1:
            raise ProtocolError(f"EMBEDDING slice {first}+{count} runs past 2^32")
        return cls(first, n_valid, struct.unpack_from(f"<{count}i", payload, EMBEDDING_HEADER_BYTES))


@dataclass(frozen=True)
class StatsReply(Message):
    TYPE: ClassVar[MsgType] = MsgType.STATS_REPLY
    counters: FrameCounters

    def pack(self) -> bytes:
        return self.counters.pack()

    @classmethod
    def unpack(cls, payload: bytes) -> "StatsReply":
        _need_len("STATS_REPLY", payload, FrameCounters.WIRE.size)
        return cls(FrameCounters.unpack(payload))


MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (Identify, Write, RegionCrc, Commit, Configure, Ping, Run, Reset, Stats, RunEncoder, IdentifyReply, Ack,
                Nak, CrcReply, Ok, Pong, Token, Trace, Logits, Done, Error, StatsReply, Embedding)
}
assert set(MESSAGE_CLASSES) == set(MsgType)


def unpack_message(frame: Frame) -> Message:
    """The message a frame carries; ProtocolError for unknown types or bad payloads."""
    cls = MESSAGE_CLASSES.get(frame.type)
    if cls is None:
        raise ProtocolError(f"unknown message type {frame.type:#04x} (seq {frame.seq})")
    return cls.unpack(frame.payload)
