"""A mock chip survives thousands of random and damaged frames, then flashes and runs correctly.

The frames go over the chip's real pseudo-terminal. Damaged frames must be dropped and counted or
answered with ERROR; none may crash the process or make it stop answering."""

from __future__ import annotations

import random
import struct
import threading
import time
import zlib

from orchestrator.link.frame import FRAME_RAW_MAX, PROTOCOL_VERSION, FrameDecoder, cobs_encode, encode_frame
from orchestrator.link.messages import MsgType

N_FRAMES = 4000


def _raw_frame(version, type_, seq, payload, length=None, crc=None):
    hdr = struct.pack("<BBHI", version, type_, seq, (len(payload) if length is None else length) & 0xFFFFFFFF)
    body = hdr + payload
    c = zlib.crc32(body) & 0xFFFFFFFF if crc is None else crc
    return cobs_encode(body + struct.pack("<I", c)) + b"\x00"


def _fuzz_frames(rng: random.Random):
    safe_types = [MsgType.IDENTIFY, MsgType.WRITE, MsgType.REGION_CRC, MsgType.COMMIT, MsgType.PING,
                  MsgType.RESET, MsgType.STATS, MsgType.RUN, 0x00, 0x42, 0x81, 0xFF]
    for i in range(N_FRAMES):
        kind = rng.randrange(8)
        seq = rng.randrange(1 << 16)
        t = rng.choice(safe_types)
        payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 4, 8, 12, 24, 44, 60, 300])))
        if kind == 0:  # random bytes, with or without delimiters
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == 1:  # valid frame, one bit flipped
            f = bytearray(encode_frame(t, seq, payload))
            j = rng.randrange(len(f) - 1)
            f[j] ^= 1 << rng.randrange(8)
            yield bytes(f)
        elif kind == 2:  # truncated
            f = encode_frame(t, seq, payload)
            yield f[:rng.randrange(1, len(f) - 1)] + b"\x00"
        elif kind == 3:  # length field lies
            yield _raw_frame(PROTOCOL_VERSION, t, seq, payload, length=len(payload) + rng.choice([-3, -1, 1, 7, 1 << 20, 0xFFFFFFFF]))
        elif kind == 4:  # wrong CRC
            yield _raw_frame(PROTOCOL_VERSION, t, seq, payload, crc=rng.randrange(1 << 32))
        elif kind == 5:  # oversized: longer than any frame the chip accepts
            yield cobs_encode(bytes(rng.randrange(1, 256) for _ in range(FRAME_RAW_MAX + 100))) + b"\x00"
        elif kind == 6:  # other protocol version
            yield _raw_frame(rng.choice([0, PROTOCOL_VERSION + 1, 255]), t, seq, payload)
        else:  # well-formed frame, random payload for its type (wrong lengths, bad fields)
            yield encode_frame(t, seq, payload)


def test_chip_survives_fuzzing_then_flashes_and_runs(tmp_path, tiny):
    from orchestrator.cluster.config import mock_cluster
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.cluster.flash import flash_cluster
    from orchestrator.cluster.run import RunRequest
    from orchestrator.report.results import record_run
    from orchestrator.partition.cache import get_shards, open_shards
    from orchestrator.partition.simulator import ClusterSim
    from orchestrator.profiles import load_profile

    prof = load_profile()
    rng = random.Random(1234)
    with open_cluster(mock_cluster(1, prof.name), prof) as cl:
        chip = cl.chips[0]
        transport = chip.session.transport
        replies = FrameDecoder()
        stop = threading.Event()

        def drain():  # keep reading so the chip never blocks on a full pty
            while not stop.is_set():
                replies.feed(transport.read(65536, 0.05))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        sent = 0
        for f in _fuzz_frames(rng):
            transport.write(f)
            sent += 1
        transport.write(b"\x00")
        stop.set()
        reader.join()
        assert sent == N_FRAMES
        assert cl.mock.chips[0].alive(), cl.mock.chips[0].describe_exit()

        ident = chip.session.identify()
        c = ident.counters
        assert c.crc_errors > 0 and c.cobs_errors + c.size_mismatch > 0 and c.oversized > 0
        assert c.version_mismatch > 0 and c.unknown_type > 0 and c.bad_length > 0

        shards = get_shards(tiny, 1, prof)
        flash_cluster(cl, shards)
        out = record_run(cl, RunRequest(20, results_base=tmp_path, want_logits=True))
    ref = ClusterSim(open_shards(shards)[1]).generate([], 20)
    assert out.results["tokens"] == ref.tokens
    assert out.logits == [int(v) for v in ref.logits]


def test_replies_to_a_burst_of_frames_keep_their_order():
    """The chip holds ACKs back until it has handled what one read brought, and sends them together;
    a reply of another kind in the same burst must still come out in its place."""
    from orchestrator.cluster.config import mock_cluster
    from orchestrator.cluster.connect import open_cluster
    from orchestrator.link.messages import Ack, Ping, Pong, Write, unpack_message
    from orchestrator.profiles import load_profile

    prof = load_profile()
    with open_cluster(mock_cluster(1, prof.name), prof) as cl:
        s = cl.chips[0].session
        s.identify()
        sent = [Write(0, b"\x11" * 100), Write(100, b"\x00" * 100), Ping(7), Write(200, b"\x22" * 50),
                Write(250, b"\x33" * 16384)]
        s.transport.write(b"".join(encode_frame(m.TYPE, 100 + i, m.pack()) for i, m in enumerate(sent)))
        got, dec = [], FrameDecoder()
        deadline = time.monotonic() + 10
        while len(got) < len(sent) and time.monotonic() < deadline:
            got += dec.feed(s.transport.read(65536, 0.5))
        assert [f.seq for f in got] == [100, 101, 102, 103, 104]
        replies = [unpack_message(f) for f in got]
        assert [type(r) for r in replies] == [Ack, Ack, Pong, Ack, Ack]
        assert [(r.offset, r.length) for r in replies if isinstance(r, Ack)] == [(0, 100), (100, 100), (200, 50),
                                                                                  (250, 16384)]
        assert s.region_crc(0, 250 + 16384) == zlib.crc32(b"\x11" * 100 + bytes(100) + b"\x22" * 50 + b"\x33" * 16384)
