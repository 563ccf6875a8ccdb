"""Frames of the host<->chip protocol, host side (mirror of firmware/proto/frame.c).

On the wire a frame is ``COBS(header | payload | crc32) 0x00`` with
``header = <u8 version, u8 type, u16 seq, u32 payload_len>`` and a CRC-32 (zlib.crc32) over
header+payload, everything little-endian. docs/protocol.md is the reference.

`FrameDecoder` applies the same limits and counts the same faults as the C decoder, so a chip's
STATS and the host's counters mean the same thing.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, fields

from orchestrator.errors import ChipError, InputError
from orchestrator.link import native

PROTOCOL_VERSION = 2
HEADER_BYTES = 8
CRC_BYTES = 4
#: Hard limit of a payload, same as PROTO_MAX_PAYLOAD in firmware/proto/frame.h.
MAX_PAYLOAD = 16448
FRAME_RAW_MAX = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES


def cobs_encoded_max(n: int) -> int:
    """Upper bound of the COBS-encoded size of n bytes, delimiter not included."""
    return n + n // 254 + 1


#: Largest frame on the wire, delimiter included.
FRAME_WIRE_MAX = cobs_encoded_max(FRAME_RAW_MAX) + 1

_HEADER = struct.Struct("<BBHI")
_U32 = struct.Struct("<I")


class ProtocolError(ChipError):
    """A chip sent something that breaks the protocol (bad frame, bad payload, wrong reply)."""


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes
    version: int = PROTOCOL_VERSION


@dataclass
class FrameCounters:
    """Frame fault counters; field order is the wire order of STATS_REPLY (8 x u32).

    Every frame that ends at a delimiter lands in exactly one of the first six; unknown_type and
    bad_length count, among frames_ok, those the dispatcher could not use.
    """

    frames_ok: int = 0
    crc_errors: int = 0
    cobs_errors: int = 0
    oversized: int = 0
    size_mismatch: int = 0
    version_mismatch: int = 0
    unknown_type: int = 0
    bad_length: int = 0

    WIRE = struct.Struct("<8I")

    def pack(self) -> bytes:
        return self.WIRE.pack(*(getattr(self, f.name) for f in fields(self)))

    @classmethod
    def unpack(cls, data: bytes) -> "FrameCounters":
        if len(data) != cls.WIRE.size:
            raise ProtocolError(f"frame counters are {len(data)} bytes, expected {cls.WIRE.size}")
        return cls(*cls.WIRE.unpack(data))

    def errors(self) -> int:
        """Frames that were dropped or refused, all causes."""
        return sum(getattr(self, f.name) for f in fields(self)) - self.frames_ok


#: Code byte of a block of k non-zero bytes (k < 254), as a bytes object ready to join.
_CODE = tuple(bytes((k + 1,)) for k in range(254))


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode (canonical: a final full block gets no empty block after it)."""
    # Split at the zeros: each piece is one block (its code byte replaces the zero before it) unless
    # it holds 254 or more bytes, which take full 0xFF blocks first. Pieces are short for typical
    # data (int8 weights hold a zero every ~50 bytes), so this is a join of small slices, not a
    # Python loop over bytes.
    pieces = bytes(data).split(b"\x00")
    last = len(pieces) - 1
    out = []
    append = out.append
    for i, p in enumerate(pieces):
        n = len(p)
        if n < 254:
            append(_CODE[n])
            append(p)
            continue
        pos = 0
        while n - pos >= 254:
            append(b"\xff")
            append(p[pos:pos + 254])
            pos += 254
        if pos < n or i < last:
            # the rest of the run, or the empty block the zero after a full block needs
            append(_CODE[n - pos])
            append(p[pos:])
    return b"".join(out)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS frame without its delimiter; ProtocolError if malformed."""
    out = bytearray()
    i = 0
    n = len(data)
    if n == 0:
        raise ProtocolError("empty COBS frame")
    if b"\x00" in data:
        raise ProtocolError("COBS frame contains a 0x00 byte")
    while i < n:
        code = data[i]
        end = i + code
        if end > n:
            raise ProtocolError("COBS block runs past the end of the frame")
        out += data[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(type_: int, seq: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """One frame ready for the wire, trailing 0x00 included."""
    if not 0 <= type_ <= 0xFF:
        raise InputError(f"frame type {type_} is not a byte; use a MsgType")
    if not 0 <= seq <= 0xFFFF:
        raise InputError(f"frame seq {seq} does not fit 16 bits")
    if not 0 <= version <= 0xFF:
        raise InputError(f"protocol version {version} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise InputError(f"frame payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit; split it")
    fast = native.codec()
    if fast is not None:
        return fast.encode_frame(version, type_, seq, bytes(payload))
    body = _HEADER.pack(version, type_, seq, len(payload)) + bytes(payload)
    return cobs_encode(body + _U32.pack(zlib.crc32(body))) + b"\x00"


def decode_frame(wire: bytes) -> Frame:
    """Strictly decode exactly one frame (trailing 0x00 optional); ProtocolError names the fault."""
    if wire.endswith(b"\x00"):
        wire = wire[:-1]
    raw = cobs_decode(wire)
    if len(raw) < HEADER_BYTES + CRC_BYTES:
        raise ProtocolError(f"frame of {len(raw)} bytes is shorter than header + CRC")
    version, type_, seq, length = _HEADER.unpack_from(raw)
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"frame announces a {length}-byte payload, limit is {MAX_PAYLOAD}")
    if len(raw) != HEADER_BYTES + length + CRC_BYTES:
        raise ProtocolError(f"frame has {len(raw)} bytes but its header announces a {length}-byte payload")
    (crc,) = _U32.unpack_from(raw, HEADER_BYTES + length)
    if zlib.crc32(raw[:HEADER_BYTES + length]) != crc:
        raise ProtocolError("frame CRC32 mismatch")
    return Frame(type_, seq, raw[HEADER_BYTES:HEADER_BYTES + length], version)


class FrameDecoder:
    """Streaming decoder with the C decoder's limits and counters.

    ``feed(bytes)`` returns the frames completed by those bytes. Like the C side it returns frames
    of another protocol version too (counted as version_mismatch); check ``frame.version``.
    Memory stays bounded: a frame whose header announces more than MAX_PAYLOAD, or that grows past
    the largest frame, is dropped at once and the rest of it skipped up to the next 0x00.
    """

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self._pending = b""  # the start of a frame whose delimiter has not arrived yet
        self._restart()

    def _restart(self) -> None:
        self._raw = bytearray()
        self._left = 0  # data bytes still expected in the current COBS block
        self._prev_code = 0
        self._started = False
        self._header_checked = False
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        if self._pending:
            data = self._pending + bytes(data)
            self._pending = b""
        pos = 0
        n = len(data)
        while pos < n:
            zero = data.find(b"\x00", pos)
            if not self._started and not self._discarding:
                # At a frame start: a whole frame is decoded in one go (C speed when the native
                # codec is there); a frame that has not ended yet waits whole for the next feed.
                if zero < 0:
                    if n - pos < FRAME_WIRE_MAX:
                        self._pending = bytes(data[pos:])
                        break
                elif zero > pos:
                    frame, judged = self._whole(data[pos:zero])
                    if judged:
                        if frame is not None:
                            frames.append(frame)
                        pos = zero + 1
                        continue
            end = n if zero < 0 else zero
            if end > pos and not self._discarding:
                self._push_run(data, pos, end)
            if zero < 0:
                break
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
            pos = zero + 1
        return frames

    def _whole(self, enc: bytes) -> tuple[Frame | None, bool]:
        """Judge one complete encoded frame at once. (frame or None, True) when judged; (None, False)
        leaves a malformed or oversized frame to the byte-wise state machine, which counts those
        exactly as the C decoder does."""
        fast = native.codec()
        if fast is not None:
            raw = fast.decode(bytes(enc))
        else:
            try:
                raw = cobs_decode(bytes(enc))
            except ProtocolError:
                raw = None
        if raw is None or len(raw) > FRAME_RAW_MAX or (
                len(raw) >= HEADER_BYTES and _U32.unpack_from(raw, 4)[0] > MAX_PAYLOAD):
            return None, False
        return self._judge(raw), True

    def _push_run(self, data: bytes, pos: int, end: int) -> None:
        """Decode non-zero bytes data[pos:end] block by block (same state machine as cobs.c)."""
        raw = self._raw
        while pos < end:
            if self._left == 0:
                code = data[pos]
                pos += 1
                if self._started and self._prev_code != 0xFF:
                    raw.append(0)
                self._prev_code = code
                self._left = code - 1
                self._started = True
            else:
                take = min(self._left, end - pos)
                raw += data[pos:pos + take]
                self._left -= take
                pos += take
            if self._reject_oversized():
                return

    def _reject_oversized(self) -> bool:
        raw = self._raw
        if len(raw) > FRAME_RAW_MAX:
            oversized = True
        elif not self._header_checked and len(raw) >= HEADER_BYTES:
            self._header_checked = True
            oversized = _U32.unpack_from(raw, 4)[0] > MAX_PAYLOAD
        else:
            oversized = False
        if oversized:
            self.counters.oversized += 1
            self._restart()
            self._discarding = True
        return oversized

    def _finish(self) -> Frame | None:
        """A delimiter arrived: judge the frame, in the same order as decoder_finish in frame.c."""
        raw, started, complete, discarding = self._raw, self._started, self._left == 0, self._discarding
        self._restart()
        if discarding or not started:
            return None
        if not complete:
            self.counters.cobs_errors += 1
            return None
        return self._judge(raw)

    def _judge(self, raw) -> Frame | None:  # type: ignore[no-untyped-def]
        """A frame whose bytes are decoded and within the size limits: check size, CRC, version."""
        c = self.counters
        if len(raw) < HEADER_BYTES + CRC_BYTES:
            c.size_mismatch += 1
            return None
        version, type_, seq, length = _HEADER.unpack_from(raw)
        if len(raw) != HEADER_BYTES + length + CRC_BYTES:
            c.size_mismatch += 1
            return None
        (crc,) = _U32.unpack_from(raw, HEADER_BYTES + length)
        if zlib.crc32(memoryview(raw)[:HEADER_BYTES + length]) != crc:
            c.crc_errors += 1
            return None
        if version != PROTOCOL_VERSION:
            c.version_mismatch += 1
        else:
            c.frames_ok += 1
        return Frame(type_, seq, bytes(raw[HEADER_BYTES:HEADER_BYTES + length]), version)
