"""A conversation with one chip over a Transport: requests matched to replies by seq, retries,
windowed shard writes and the streamed messages of a run.

    with ChipSession(open_transport("/dev/ttyACM0"), timeout_s=1.0) as chip:
        info = chip.identify()
        chip.write_region(shard_bytes, progress_cb=lambda done, total: ...)
        assert chip.region_crc(0, len(shard_bytes)) == zlib.crc32(shard_bytes)
        chip.commit(len(shard_bytes), zlib.crc32(shard_bytes), plan_id, rank, world)
        chip.configure(rank, world)
        chip.start_run(Run(n_tokens=32, prompt=(1, 450)))
        for msg in chip.iter_messages(timeout_s=30):
            ...  # Token, Trace, Logits; the last one is Done

Only IDENTIFY, PING, REGION_CRC and STATS are resent on timeout (they change nothing on the chip).
WRITE frames are resent on NAK or a missing ACK: rewriting the same bytes at the same offset is
harmless. COMMIT, CONFIGURE, RUN and RESET are sent once; a timeout is an error.
"""

from __future__ import annotations

import os
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

from orchestrator.errors import ChipError, InputError
from orchestrator.link.frame import (
    PROTOCOL_VERSION,
    Frame,
    FrameCounters,
    FrameDecoder,
    ProtocolError,
    encode_frame,
)
from orchestrator.link.messages import (
    PLAN_ID_BYTES,
    WRITE_HEADER_BYTES,
    WRITE_MAX_DATA,
    Ack,
    Commit,
    Configure,
    CrcReply,
    Done,
    Embedding,
    Error,
    ErrorCode,
    Identify,
    IdentifyReply,
    Logits,
    Message,
    MsgType,
    Nak,
    Ok,
    Ping,
    Pong,
    RegionCrc,
    Reset,
    Run,
    RunEncoder,
    Stats,
    StatsReply,
    Token,
    Topology,
    Trace,
    Write,
    error_name,
    unpack_message,
)
from orchestrator.link.transport import Transport

IDEMPOTENT = frozenset({MsgType.IDENTIFY, MsgType.PING, MsgType.REGION_CRC, MsgType.STATS})
DEFAULT_WRITE_CHUNK = 16384  # data bytes per WRITE: four 4 KiB flash sectors; fewer frames, fewer wake-ups
MAX_WINDOW = 256
_READ_CHUNK = 16384
_KNOWN_TYPES = frozenset(int(t) for t in MsgType)

ProgressFn = Callable[[int, int], None]


class ChipReplyError(ChipError):
    """The chip answered a request with ERROR."""

    def __init__(self, port: str, request: str, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"chip on {port} refused {request}: {error_name(code)}: {text}")


@dataclass(frozen=True)
class PingResult:
    """A PONG with the host's monotonic clock around it (for clock alignment)."""

    nonce: int
    cycles: int
    host_sent_s: float
    host_received_s: float

    @property
    def rtt_s(self) -> float:
        return self.host_received_s - self.host_sent_s


@dataclass
class _InFlight:
    """One WRITE chunk not yet acknowledged."""

    pos: int  # byte position within the region
    length: int
    tries: int = 1  # transmissions so far
    deadline: float = 0.0  # time.monotonic() after which it is sent again
    ordinal: int = 0  # send order of its latest transmission
    seqs: list[int] = field(default_factory=list)


class ChipSession:
    def __init__(self, transport: Transport, timeout_s: float = 1.0, retries: int = 3, window: int = 4) -> None:
        if not timeout_s > 0:
            raise InputError(f"timeout {timeout_s} s must be positive")
        if retries < 0:
            raise InputError(f"retries {retries} must be >= 0")
        if not 1 <= window <= MAX_WINDOW:
            raise InputError(f"window {window} must be in 1..{MAX_WINDOW}")
        self.transport = transport
        self.name: str = transport.name
        self.timeout_s = timeout_s
        self.retries = retries
        self.window = window
        self.decoder = FrameDecoder()
        self.identity: IdentifyReply | None = None
        #: frames that answered nothing in progress (late replies to earlier tries, leftovers)
        self.stale_frames = 0
        #: frames sent again (request retries and WRITE retransmissions)
        self.resends = 0
        self._inbox: deque[Frame] = deque()
        self._seq = 0
        self._synced = False
        self._run_seq: int | None = None
        self._last_send_s = 0.0

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> "ChipSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _send(self, msg: Message, seq: int, batch: list[bytes] | None = None) -> None:
        """Send one frame now, or add it to `batch` for one write of several frames later."""
        data = encode_frame(msg.TYPE, seq, msg.pack())
        if not self._synced:
            # A lone 0x00 ends whatever half frame the chip may hold from an earlier session.
            data = b"\x00" + data
            self._synced = True
        if batch is None:
            self.transport.write(data)
        else:
            batch.append(data)

    def _next_frame(self, deadline: float) -> Frame | None:
        """Next received frame, or None once the deadline (time.monotonic) has passed."""
        while not self._inbox:
            left = deadline - time.monotonic()
            data = self.transport.read(_READ_CHUNK, max(left, 0.0))
            for frame in self.decoder.feed(data):
                if frame.version != PROTOCOL_VERSION:
                    raise ChipError(f"chip on {self.name} speaks protocol version {frame.version}, this host "
                                    f"speaks {PROTOCOL_VERSION}: flash firmware built with this orch version")
                self._inbox.append(frame)
            if not self._inbox and left <= 0:
                return None  # even if bytes keep coming: noise must not hold the caller forever
        return self._inbox.popleft()

    def _unpack(self, frame: Frame) -> Message:
        try:
            return unpack_message(frame)
        except ProtocolError as e:
            if frame.type in _KNOWN_TYPES:
                self.decoder.counters.bad_length += 1
            else:
                self.decoder.counters.unknown_type += 1
            raise ProtocolError(f"chip on {self.name}: {e}") from None

    def _stale(self, frame: Frame) -> None:
        self.stale_frames += 1

    def request(self, msg: Message, expect: type[Message]) -> Message:
        """Send msg and return the reply of type `expect` with the same seq.

        ERROR replies raise ChipReplyError. Idempotent requests are resent after each timeout,
        up to `retries` times; others are sent once.
        """
        attempts = 1 + (self.retries if msg.TYPE in IDEMPOTENT else 0)
        seq = self._next_seq()
        for attempt in range(attempts):
            if attempt:
                self.resends += 1
            self._send(msg, seq)
            self._last_send_s = time.monotonic()
            deadline = self._last_send_s + self.timeout_s
            while (frame := self._next_frame(deadline)) is not None:
                if frame.seq != seq:
                    self._stale(frame)
                    continue
                reply = self._unpack(frame)
                if isinstance(reply, Error):
                    raise ChipReplyError(self.name, msg.TYPE.name, reply.code, reply.text)
                if not isinstance(reply, expect):
                    raise ProtocolError(f"chip on {self.name} answered {msg.TYPE.name} with {reply.TYPE.name}")
                return reply
        tries = f" ({attempts} tries)" if attempts > 1 else ""
        raise ChipError(f"no reply from chip on {self.name} to {msg.TYPE.name} within {self.timeout_s:g} s{tries}: "
                        "check power, cable and baud rate, and that the chip runs orch firmware")

    # ------------------------------------------------------------------ requests

    def identify(self) -> IdentifyReply:
        reply = self.request(Identify(), IdentifyReply)
        assert isinstance(reply, IdentifyReply)
        if reply.protocol_version != PROTOCOL_VERSION:
            raise ChipError(f"chip on {self.name} reports protocol version {reply.protocol_version}, this host speaks "
                            f"{PROTOCOL_VERSION}: flash firmware built with this orch version")
        if reply.max_payload <= WRITE_HEADER_BYTES or reply.window < 1:
            raise ProtocolError(f"chip on {self.name} announces max payload {reply.max_payload} and window "
                                f"{reply.window}; both are unusable")
        self.identity = reply
        return reply

    @property
    def effective_window(self) -> int:
        """WRITE frames kept in flight: ours, capped by what the chip announced."""
        if self.identity is None:
            return self.window
        return max(1, min(self.window, self.identity.window))

    def ping(self, nonce: int | None = None) -> PingResult:
        if nonce is None:
            nonce = struct.unpack("<I", os.urandom(4))[0]
        reply = self.request(Ping(nonce), Pong)
        received = time.monotonic()
        assert isinstance(reply, Pong)
        if reply.nonce != nonce:
            raise ProtocolError(f"chip on {self.name} echoed nonce {reply.nonce:#x} to PING {nonce:#x}")
        return PingResult(nonce, reply.cycles, self._last_send_s, received)

    def region_crc(self, offset: int, length: int) -> int:
        reply = self.request(RegionCrc(offset, length), CrcReply)
        assert isinstance(reply, CrcReply)
        if (reply.offset, reply.length) != (offset, length):
            raise ProtocolError(f"chip on {self.name} answered REGION_CRC({offset}, {length}) for "
                                f"({reply.offset}, {reply.length})")
        return reply.crc

    def stats(self) -> FrameCounters:
        reply = self.request(Stats(), StatsReply)
        assert isinstance(reply, StatsReply)
        return reply.counters

    def commit(self, total_bytes: int, crc32: int, plan_id: bytes, rank: int, world: int) -> None:
        if len(plan_id) != PLAN_ID_BYTES:
            raise InputError(f"plan id must be the {PLAN_ID_BYTES}-byte sha256 of the plan, got {len(plan_id)} bytes")
        self.request(Commit(total_bytes, crc32, bytes(plan_id), rank, world), Ok)

    def configure(self, rank: int, world: int, topology: int = Topology.RING, group_size: int = 0) -> None:
        self.request(Configure(rank, world, topology, group_size), Ok)

    def reset(self) -> None:
        self._run_seq = None
        self.request(Reset(), Ok)

    # ------------------------------------------------------------------ run

    def start_run(self, run: Run | RunEncoder) -> int:
        """Send RUN and wait for its OK; the streamed messages follow through iter_messages()."""
        self.request(run, Ok)
        self._run_seq = self._seq
        return self._run_seq

    def iter_messages(self, timeout_s: float | None = None) -> Iterator[Token | Trace | Logits | Embedding | Done]:
        """Yield the run's TOKEN, TRACE, LOGITS (and, for RUN_ENCODER, EMBEDDING) messages as they
        arrive, then its DONE.

        `timeout_s` bounds the silence between two messages (default: the session timeout).
        An ERROR from the chip raises ChipReplyError; what was yielded before stays with the caller.
        """
        if self._run_seq is None:
            raise InputError("no run in progress: call start_run() first")
        wait = self.timeout_s if timeout_s is None else timeout_s
        seq = self._run_seq
        deadline = time.monotonic() + wait
        while True:
            frame = self._next_frame(deadline)
            if frame is None:
                raise ChipError(f"chip on {self.name} sent nothing for {wait:g} s during the run; it may have hung "
                                "or lost a chip-to-chip link")
            if frame.seq != seq:
                self._stale(frame)
                continue
            msg = self._unpack(frame)
            if isinstance(msg, Error):
                self._run_seq = None
                raise ChipReplyError(self.name, "RUN", msg.code, msg.text)
            if isinstance(msg, Done):
                self._run_seq = None
                yield msg
                return
            if not isinstance(msg, (Token, Trace, Logits, Embedding)):
                raise ProtocolError(f"chip on {self.name} sent {msg.TYPE.name} during a run")
            yield msg
            deadline = time.monotonic() + wait  # the timeout bounds silence, not the whole run

    # ------------------------------------------------------------------ windowed write

    def write_region(self, data, offset: int = 0, progress_cb: ProgressFn | None = None,  # type: ignore[no-untyped-def]
                     chunk_bytes: int | None = None) -> None:
        """Write data into the chip's staging slot at offset, `effective_window` frames in flight.

        Each WRITE is acknowledged by an ACK with its seq. A frame is sent again when the chip
        NAKs it, when a frame sent after it is acknowledged first (the chip handles frames in
        order, so this one was lost), or when nothing at all was acknowledged for timeout_s; at
        most `retries` times per frame. An ERROR stops the write. progress_cb(bytes_acknowledged,
        total_bytes) is called after every ACK.
        """
        view = memoryview(data).cast("B")
        total = len(view)
        if offset < 0 or offset + total > 1 << 32:
            raise InputError(f"region at offset {offset} of {total} bytes does not fit a 32-bit address space")
        ident = self.identity
        if ident is not None and ident.slot_bytes and offset + total > ident.slot_bytes:
            raise InputError(f"{offset + total} bytes do not fit the {ident.slot_bytes}-byte staging slot of chip "
                             f"{ident.chip_id} on {self.name}: use more chips or a smaller model")
        max_data = WRITE_MAX_DATA if ident is None else min(WRITE_MAX_DATA, ident.max_payload - WRITE_HEADER_BYTES)
        chunk = min(DEFAULT_WRITE_CHUNK, max_data) if chunk_bytes is None else chunk_bytes
        if not 1 <= chunk <= max_data:
            raise InputError(f"write chunk of {chunk} bytes must be in 1..{max_data}")
        if total == 0:
            return
        window = self.effective_window
        # Frames to send are collected and written together just before the loop waits for replies:
        # one write (and one wake-up of the chip) per burst of ACKs instead of one per frame.
        batch: list[bytes] = []
        inflight: dict[int, _InFlight] = {}  # by position in the region
        owner: dict[int, tuple[int, int]] = {}  # seq -> (position, send ordinal) of transmissions in flight
        ordinal = 0
        next_pos = 0
        acked = 0

        def transmit(st: _InFlight) -> None:
            nonlocal ordinal
            seq = self._next_seq()
            while seq in owner:  # a wrapped seq still waiting for its ACK: take another
                seq = self._next_seq()
            ordinal += 1
            owner[seq] = (st.pos, ordinal)
            st.seqs.append(seq)
            st.ordinal = ordinal
            self._send(Write(offset + st.pos, view[st.pos:st.pos + st.length].tobytes()), seq, batch)
            st.deadline = time.monotonic() + self.timeout_s

        def retransmit(st: _InFlight, why: str) -> None:
            if st.tries > self.retries:
                raise ChipError(f"WRITE of {st.length} bytes at offset {offset + st.pos} to chip on {self.name} "
                                f"failed {st.tries} times ({why}); check the link")
            st.tries += 1
            self.resends += 1
            transmit(st)

        while next_pos < total or inflight:
            if not self._inbox:  # about to wait for the chip: fill the window and send the batch
                while len(inflight) < window and next_pos < total:
                    st = _InFlight(next_pos, min(chunk, total - next_pos))
                    inflight[st.pos] = st
                    transmit(st)
                    next_pos += st.length
                if batch:
                    self.transport.write(b"".join(batch))
                    batch.clear()
            elif not inflight:  # replies are queued but nothing is in flight: start the next frame
                st = _InFlight(next_pos, min(chunk, total - next_pos))
                inflight[st.pos] = st
                transmit(st)
                next_pos += st.length
                self.transport.write(b"".join(batch))
                batch.clear()
            frame = self._next_frame(min(s.deadline for s in inflight.values()))
            if frame is None:
                now = time.monotonic()
                for st in list(inflight.values()):
                    if st.deadline <= now:
                        retransmit(st, f"no ACK within {self.timeout_s:g} s")
                continue
            pos, sent_as = owner.get(frame.seq, (-1, 0))
            if pos not in inflight:
                self._stale(frame)
                continue
            st = inflight[pos]
            msg = self._unpack(frame)
            if isinstance(msg, Ack):
                if (msg.offset, msg.length) != (offset + st.pos, st.length):
                    raise ProtocolError(f"chip on {self.name} acknowledged WRITE({msg.offset}, {msg.length}) for "
                                        f"WRITE({offset + st.pos}, {st.length})")
                del inflight[pos]
                for seq in st.seqs:
                    owner.pop(seq, None)
                acked += st.length
                if progress_cb is not None:
                    progress_cb(acked, total)
                # The link is alive: later frames get a fresh timeout, earlier ones were lost.
                now = time.monotonic()
                for other in list(inflight.values()):
                    if other.ordinal < sent_as:
                        retransmit(other, "overtaken by a later frame")
                    else:
                        other.deadline = max(other.deadline, now + self.timeout_s)
            elif isinstance(msg, Nak):
                retransmit(st, f"NAK {error_name(msg.code)}")
            elif isinstance(msg, Error):
                raise ChipReplyError(self.name, f"WRITE at offset {offset + st.pos}", msg.code, msg.text)
            else:
                raise ProtocolError(f"chip on {self.name} answered WRITE with {msg.TYPE.name}")


__all__ = [
    "ChipReplyError",
    "ChipSession",
    "DEFAULT_WRITE_CHUNK",
    "ErrorCode",
    "IDEMPOTENT",
    "MAX_WINDOW",
    "PingResult",
]
