"""ChipSession against a fake chip thread on a real pseudo-terminal: request/response matching,
retries, the windowed WRITE with retransmission, and the streamed messages of a run."""

from __future__ import annotations

import os
import select
import threading
import tty
import zlib
from dataclasses import dataclass, field
from typing import Iterator

import pytest

from orchestrator.errors import ChipError, InputError
from orchestrator.link import messages as m
from orchestrator.link.frame import MAX_PAYLOAD, PROTOCOL_VERSION, Frame, FrameCounters, FrameDecoder, encode_frame
from orchestrator.link.session import ChipReplyError, ChipSession
from orchestrator.link.transport import SerialTransport

SLOT = 1 << 20
PLAN = bytes(range(32))


@dataclass
class ChipBehaviour:
    """What the fake chip does differently from a perfect chip."""

    window: int = 8
    hold_acks: int = 1  # ACK only once this many WRITEs arrived (proves the host pipelines)
    drop_once: set[int] = field(default_factory=set)  # WRITE offsets whose first arrival is lost
    drop_always: set[int] = field(default_factory=set)
    nak_once: set[int] = field(default_factory=set)  # WRITE offsets answered NAK(BUSY) the first time
    ignore_once: set[int] = field(default_factory=set)  # request types whose first arrival is lost
    ignore_always: set[int] = field(default_factory=set)
    reply_version: int = PROTOCOL_VERSION
    noise_before_replies: bool = False


class FakeChip(threading.Thread):
    """The chip side of the protocol in Python, on the master end of a pty."""

    def __init__(self, fd: int, behaviour: ChipBehaviour) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.b = behaviour
        self.decoder = FrameDecoder()
        self.mem = bytearray(SLOT)
        self.committed: tuple[int, int] | None = None
        self.received: list[tuple[int, int]] = []  # (type, seq) in arrival order
        self.writes_seen: list[int] = []  # offsets, in arrival order, of WRITEs handled
        self.max_writes_before_first_ack: int | None = None
        self._held: list[tuple[int, int, int]] = []
        self._seen_once: set[tuple[str, int]] = set()
        self._stop_r, self._stop_w = os.pipe()
        self.error: BaseException | None = None

    # -- plumbing
    def run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                for frame in self.decoder.feed(os.read(self.fd, 65536)):
                    self.handle(frame)
        except BaseException as e:  # surfaced by stop(); a crash must fail the test, not hang it
            self.error = e

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self.join(5)
        os.close(self._stop_r)
        os.close(self._stop_w)
        if self.error is not None:
            raise self.error

    def send(self, msg: m.Message, seq: int) -> None:
        data = encode_frame(msg.TYPE, seq, msg.pack(), version=self.b.reply_version)
        if self.b.noise_before_replies:
            data = b"\x13\x37\xff\x00" + data
        os.write(self.fd, data)

    def _first_time(self, kind: str, key: int) -> bool:
        if (kind, key) in self._seen_once:
            return False
        self._seen_once.add((kind, key))
        return True

    # -- behaviour
    def handle(self, f: Frame) -> None:
        self.received.append((f.type, f.seq))
        if f.type in self.b.ignore_always or (f.type in self.b.ignore_once and self._first_time("type", f.type)):
            return
        msg = m.unpack_message(f)
        if isinstance(msg, m.Identify):
            self.send(m.IdentifyReply(3, PROTOCOL_VERSION, MAX_PAYLOAD, self.b.window, 1 << 18, 0, 4 << 20, SLOT, "test-1",
                                      "fake", m.ShardDescriptor(), self.decoder.counters), f.seq)
        elif isinstance(msg, m.Write):
            self.on_write(msg, f.seq)
        elif isinstance(msg, m.RegionCrc):
            self.send(m.CrcReply(msg.offset, msg.length, zlib.crc32(self.mem[msg.offset:msg.offset + msg.length])),
                      f.seq)
        elif isinstance(msg, m.Commit):
            if zlib.crc32(self.mem[:msg.total_bytes]) != msg.crc32:
                self.send(m.Error(m.ErrorCode.COMMIT_CRC, "staged bytes do not match"), f.seq)
            else:
                self.committed = (msg.total_bytes, msg.crc32)
                self.send(m.Ok(), f.seq)
        elif isinstance(msg, m.Ping):
            self.send(m.Pong(msg.nonce, 123456789), f.seq)
        elif isinstance(msg, m.Stats):
            self.send(m.StatsReply(self.decoder.counters), f.seq)
        elif isinstance(msg, (m.Configure, m.Reset)):
            self.send(m.Ok(), f.seq)
        elif isinstance(msg, m.Run):
            self.on_run(msg, f.seq)

    def on_write(self, msg: m.Write, seq: int) -> None:
        off = msg.offset
        if off in self.b.drop_always or (off in self.b.drop_once and self._first_time("drop", off)):
            return
        if off in self.b.nak_once and self._first_time("nak", off):
            self.send(m.Nak(m.ErrorCode.BUSY, off), seq)
            return
        if off + len(msg.data) > SLOT:
            self.send(m.Error(m.ErrorCode.NO_FIT, f"{off + len(msg.data)} > {SLOT}"), seq)
            return
        self.mem[off:off + len(msg.data)] = msg.data
        self.writes_seen.append(off)
        self._held.append((off, len(msg.data), seq))
        if len(self._held) >= self.b.hold_acks or off + len(msg.data) >= self.expected_end:
            if self.max_writes_before_first_ack is None:
                self.max_writes_before_first_ack = len(self.writes_seen)
            for o, n, s in self._held:
                self.send(m.Ack(o, n), s)
            self._held.clear()

    expected_end = SLOT

    def on_run(self, run: m.Run, seq: int) -> None:
        self.send(m.Token(0, 0, 99, 1), seq + 1)  # a frame for somebody else: must be ignored
        self.send(m.Ok(), seq)
        for i in range(run.n_tokens):
            self.send(m.Token(i, len(run.prompt) + i, 1000 + i, 100 * (i + 1)), seq)
            if run.trace:
                rec = m.TraceRecord(i, m.Phase.FFN, 0, 100 * i, 100 * i + 50, 10, 20, 30, 40, 50)
                self.send(m.Trace((rec, rec)), seq)
        if run.logits:
            self.send(m.Logits(0, (-5, 7, 3)), seq)
        self.send(m.Done(0, run.n_tokens, 100 * run.n_tokens), seq)


@pytest.fixture
def chip_link() -> Iterator:  # type: ignore[type-arg]
    """Factory: (session, chip) on a fresh pty; everything is torn down after the test."""
    opened: list[tuple[ChipSession, FakeChip, int, int]] = []

    def make(behaviour: ChipBehaviour | None = None, *, timeout_s: float = 1.0, retries: int = 3,
             window: int = 8) -> tuple[ChipSession, FakeChip]:
        master, slave = os.openpty()
        tty.setraw(slave)
        chip = FakeChip(master, behaviour or ChipBehaviour())
        chip.start()
        session = ChipSession(SerialTransport(os.ttyname(slave)), timeout_s=timeout_s, retries=retries,
                              window=window)
        opened.append((session, chip, master, slave))
        return session, chip

    yield make
    for session, chip, master, slave in opened:
        session.close()
        chip.stop()
        os.close(master)
        os.close(slave)


def _shard(n: int) -> bytes:
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))


# ---------------------------------------------------------------------------------- requests


def test_identify_ping_crc_stats(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link()
    info = s.identify()
    assert (info.chip_id, info.profile, info.fw_version, info.slot_bytes) == (3, "fake", "test-1", SLOT)
    assert s.effective_window == 8
    p = s.ping(0xABCD)
    assert p.cycles == 123456789 and p.nonce == 0xABCD and p.rtt_s >= 0
    assert s.region_crc(0, 100) == zlib.crc32(bytes(100))
    assert isinstance(s.stats(), FrameCounters)


def test_idempotent_request_is_retried_after_a_timeout(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link(ChipBehaviour(ignore_once={m.MsgType.IDENTIFY}), timeout_s=0.2, retries=1)
    assert s.identify().chip_id == 3
    assert s.resends == 1
    idents = [seq for t, seq in chip.received if t == m.MsgType.IDENTIFY]
    assert len(idents) == 2


def test_timeout_names_the_port(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link(ChipBehaviour(ignore_always={m.MsgType.PING}), timeout_s=0.1, retries=2)
    with pytest.raises(ChipError, match="no reply") as e:
        s.ping()
    assert s.name in str(e.value) and "PING" in str(e.value) and "3 tries" in str(e.value)


def test_non_idempotent_request_is_sent_once(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link(ChipBehaviour(ignore_always={m.MsgType.CONFIGURE}), timeout_s=0.1, retries=3)
    with pytest.raises(ChipError, match="CONFIGURE"):
        s.configure(0, 2)
    assert [t for t, _ in chip.received].count(m.MsgType.CONFIGURE) == 1


def test_error_reply_becomes_chip_reply_error(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link()
    with pytest.raises(ChipReplyError) as e:
        s.commit(10, 0x1234, PLAN, 0, 1)  # memory is zero: CRC will not match
    assert e.value.code == m.ErrorCode.COMMIT_CRC
    assert "staged bytes do not match" in str(e.value) and "COMMIT_CRC" in str(e.value)
    assert chip.committed is None


def test_replies_after_line_noise_and_foreign_version(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, _ = chip_link(ChipBehaviour(noise_before_replies=True))
    assert s.identify().chip_id == 3
    assert s.decoder.counters.errors() > 0  # the noise was seen and counted, not mistaken for a reply
    s2, _ = chip_link(ChipBehaviour(reply_version=PROTOCOL_VERSION + 1))
    with pytest.raises(ChipError, match=f"protocol version {PROTOCOL_VERSION + 1}"):
        s2.identify()


def test_session_argument_checks(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, _ = chip_link()
    with pytest.raises(InputError):
        ChipSession(s.transport, window=0)
    with pytest.raises(InputError):
        ChipSession(s.transport, timeout_s=0)
    with pytest.raises(InputError):
        s.commit(10, 0, b"short", 0, 1)
    with pytest.raises(InputError):
        list(s.iter_messages())


class NoisyTransport:
    """A line that never goes quiet: every read returns bytes that never form a frame."""

    name = "noisy"

    def write(self, data: bytes) -> None:
        pass

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        return b"\x05\x11\x22\x00"  # a COBS block cut short, again and again

    def close(self) -> None:
        pass


def test_endless_noise_still_times_out() -> None:
    s = ChipSession(NoisyTransport(), timeout_s=0.05, retries=1)  # type: ignore[arg-type]
    with pytest.raises(ChipError, match="no reply from chip on noisy"):
        s.identify()
    assert s.decoder.counters.cobs_errors > 0 and s.resends == 1


# ---------------------------------------------------------------------------------- windowed write


def test_windowed_write_pipelines_and_commits(chip_link) -> None:  # type: ignore[no-untyped-def]
    # The chip ACKs only after 4 WRITEs arrived: a stop-and-wait host would time out and resend.
    s, chip = chip_link(ChipBehaviour(window=4, hold_acks=4), timeout_s=2.0, window=8)
    s.identify()
    assert s.effective_window == 4  # capped by what the chip announced
    data = _shard(100_000)
    chip.expected_end = len(data)
    progress: list[tuple[int, int]] = []
    s.write_region(data, progress_cb=lambda done, total: progress.append((done, total)))
    assert bytes(chip.mem[:len(data)]) == data
    assert s.resends == 0
    assert chip.max_writes_before_first_ack == 4
    assert [d for d, _ in progress] == sorted(d for d, _ in progress) and progress[-1] == (len(data), len(data))
    assert s.region_crc(0, len(data)) == zlib.crc32(data)
    s.commit(len(data), zlib.crc32(data), PLAN, 0, 1)
    assert chip.committed == (len(data), zlib.crc32(data))


def test_lost_and_naked_frames_are_retransmitted(chip_link) -> None:  # type: ignore[no-untyped-def]
    data = _shard(20 * 4096 + 123)
    last = 20 * 4096  # the last frame's loss has no later ACK to reveal it: only the timeout can
    b = ChipBehaviour(drop_once={4096, 3 * 4096, last}, nak_once={8 * 4096, 9 * 4096})
    s, chip = chip_link(b, timeout_s=0.5, retries=2)
    chip.expected_end = len(data)
    s.write_region(data, chunk_bytes=4096)
    assert bytes(chip.mem[:len(data)]) == data
    assert s.resends == 5
    assert sorted(set(chip.writes_seen)) == list(range(0, len(data), 4096))


def test_write_gives_up_after_retries(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link(ChipBehaviour(drop_always={2 * 4096}), timeout_s=0.1, retries=2)
    data = _shard(3 * 4096)
    chip.expected_end = len(data)
    with pytest.raises(ChipError, match="offset 8192") as e:
        s.write_region(data, chunk_bytes=4096)
    assert "failed 3 times" in str(e.value)


def test_write_error_and_slot_limits(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link()
    with pytest.raises(ChipReplyError) as e:
        s.write_region(b"x" * 10, offset=SLOT - 5)  # not identified yet: the chip has to refuse it
    assert e.value.code == m.ErrorCode.NO_FIT
    s.identify()
    with pytest.raises(InputError, match="staging slot"):
        s.write_region(b"x" * 10, offset=SLOT - 5)  # now the host knows the slot size
    with pytest.raises(InputError):
        s.write_region(b"x", chunk_bytes=m.WRITE_MAX_DATA + 1)
    s.write_region(b"")  # nothing to do


def test_write_with_small_chunks_and_window_one(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, chip = chip_link(window=1)
    data = _shard(5000)
    chip.expected_end = 1000 + len(data)
    s.write_region(data, offset=1000, chunk_bytes=700)
    assert bytes(chip.mem[1000:1000 + len(data)]) == data
    assert chip.writes_seen == list(range(1000, 1000 + len(data), 700))


# ---------------------------------------------------------------------------------- run stream


def test_run_streams_tokens_trace_logits_then_done(chip_link) -> None:  # type: ignore[no-untyped-def]
    s, _ = chip_link()
    s.configure(0, 1)
    s.start_run(m.Run(3, (1, 2), flags=m.RUN_TRACE | m.RUN_LOGITS))
    msgs = list(s.iter_messages(timeout_s=2.0))
    tokens = [x for x in msgs if isinstance(x, m.Token)]
    assert [t.token for t in tokens] == [1000, 1001, 1002] and [t.pos for t in tokens] == [2, 3, 4]
    assert sum(len(x.records) for x in msgs if isinstance(x, m.Trace)) == 6
    assert [x.values for x in msgs if isinstance(x, m.Logits)] == [(-5, 7, 3)]
    assert isinstance(msgs[-1], m.Done) and msgs[-1].ok and msgs[-1].tokens == 3
    assert s.stale_frames >= 1  # the foreign TOKEN sent before OK was dropped
    with pytest.raises(InputError):
        next(s.iter_messages())  # the run is over
