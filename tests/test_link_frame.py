"""Frames and messages of the host<->chip protocol, host side, and their agreement with the C side."""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from orchestrator.errors import ChipError, InputError
from orchestrator.link import frame as fr
from orchestrator.link import native
from orchestrator.link import messages as m
from orchestrator.link.frame import FrameDecoder, ProtocolError, cobs_decode, cobs_encode, decode_frame, encode_frame

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "firmware" / "proto"



@pytest.fixture(params=["native", "python"])
def codec(request, monkeypatch):  # type: ignore[no-untyped-def]
    """Run a test with the C codec loaded through ctypes, then with the pure-Python one."""
    monkeypatch.setenv("ORCH_NATIVE", "1" if request.param == "native" else "0")
    native.reset()
    if request.param == "native" and native.codec() is None:
        pytest.skip("no C compiler: the native codec cannot be built here")
    yield request.param
    native.reset()


# ---------------------------------------------------------------------------------------- COBS

# The examples published with COBS (also in firmware/tests/test_proto.c).
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (b"", b"\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (b"\x00" + bytes(range(1, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("raw,enc", COBS_VECTORS)
def test_cobs_published_vectors(raw: bytes, enc: bytes) -> None:
    assert cobs_encode(raw) == enc
    assert cobs_decode(enc) == raw


def test_cobs_round_trip_runs_and_random() -> None:
    rng = random.Random(1234)
    cases = []
    for run in (0, 1, 253, 254, 255, 256, 508, 509, 3000):
        body = bytes(rng.randrange(1, 256) for _ in range(run))
        cases += [body, b"\x00" + body, body + b"\x00", b"\x00" + body + b"\x00"]
    for _ in range(200):
        zero_pct = rng.random()
        cases.append(bytes(0 if rng.random() < zero_pct else rng.randrange(1, 256)
                           for _ in range(rng.randrange(0, 1500))))
    for raw in cases:
        enc = cobs_encode(raw)
        assert b"\x00" not in enc
        assert len(enc) <= fr.cobs_encoded_max(len(raw))
        assert cobs_decode(enc) == raw


@pytest.mark.parametrize("bad", [b"", b"\x03\x11\x00\x33", b"\x05\x11\x22"])
def test_cobs_decode_rejects_malformed(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        cobs_decode(bad)


def test_native_codec_is_built_with_a_compiler(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if not shutil.which("cc"):
        pytest.skip("no C compiler 'cc' on this machine")
    monkeypatch.setenv("ORCH_NATIVE", "1")
    native.reset()
    try:
        assert native.codec() is not None  # flashing the mock falls back to ~3x slower framing without it
    finally:
        native.reset()


def test_native_codec_matches_python_byte_for_byte(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ORCH_NATIVE", "1")
    native.reset()
    c = native.codec()
    if c is None:
        pytest.skip("no C compiler: the native codec cannot be built here")
    rng = random.Random(99)
    for raw, enc in COBS_VECTORS:
        assert c.encode(raw) == enc and c.decode(enc) == raw
    for _ in range(300):
        zero_pct = rng.random()
        raw = bytes(0 if rng.random() < zero_pct else rng.randrange(1, 256) for _ in range(rng.randrange(0, 5000)))
        enc = c.encode(raw)
        assert enc == cobs_encode(raw)
        assert c.decode(enc) == raw
    for bad in (b"", b"\x03\x11\x00\x33", b"\x05\x11\x22", b"\xff" * 10):
        assert c.decode(bad) is None


# ---------------------------------------------------------------------------------------- frames


def test_crc_is_zlib_crc32_with_the_standard_check_value() -> None:
    assert zlib.crc32(b"123456789") == 0xCBF43926


def test_frame_layout_is_little_endian_with_crc_over_header_and_payload() -> None:
    wire = encode_frame(0x42, 0x1234, b"\x01\x02")
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    raw = cobs_decode(wire[:-1])
    assert raw[:8] == bytes([fr.PROTOCOL_VERSION, 0x42, 0x34, 0x12, 2, 0, 0, 0])
    assert raw[8:10] == b"\x01\x02"
    assert raw[10:] == struct.pack("<I", zlib.crc32(raw[:10]))


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 1000, fr.MAX_PAYLOAD - 1, fr.MAX_PAYLOAD])
@pytest.mark.usefixtures("codec")
def test_frame_round_trip(n: int) -> None:
    payload = random.Random(n).randbytes(n)
    wire = encode_frame(0x87, 65535, payload)
    assert len(wire) <= fr.FRAME_WIRE_MAX
    f = decode_frame(wire)
    assert (f.type, f.seq, f.payload, f.version) == (0x87, 65535, payload, fr.PROTOCOL_VERSION)
    dec = FrameDecoder()
    assert dec.feed(wire) == [f]
    assert dec.counters.frames_ok == 1 and dec.counters.errors() == 0


def test_worst_case_frame_fits_wire_max() -> None:
    assert len(encode_frame(2, 1, b"\xab" * fr.MAX_PAYLOAD)) <= fr.FRAME_WIRE_MAX


@pytest.mark.parametrize("args", [(256, 0, b""), (-1, 0, b""), (1, 65536, b""), (1, -1, b""),
                                  (1, 0, bytes(fr.MAX_PAYLOAD + 1))])
def test_encode_frame_rejects_bad_arguments(args: tuple) -> None:
    with pytest.raises(InputError):
        encode_frame(*args)


def _craft(version: int, type_: int, seq: int, len_field: int, payload: bytes, crc_delta: int = 0) -> bytes:
    head = struct.pack("<BBHI", version, type_, seq, len_field)
    crc = (zlib.crc32(head + payload) + crc_delta) & 0xFFFFFFFF
    return cobs_encode(head + payload + struct.pack("<I", crc)) + b"\x00"


@pytest.mark.usefixtures("codec")
def test_decoder_counts_each_fault_once_and_recovers() -> None:
    good = encode_frame(6, 77, b"\x01\x02\x03\x04")
    rng = random.Random(5)
    stream = [
        (_craft(fr.PROTOCOL_VERSION, 6, 1, 4, b"abcd", crc_delta=1), "crc_errors"),
        (_craft(fr.PROTOCOL_VERSION, 6, 1, 5, b"abcd"), "size_mismatch"),
        (_craft(fr.PROTOCOL_VERSION, 6, 1, 3, b"abcd"), "size_mismatch"),
        (b"\x04\x01\x02\x03\x00", "size_mismatch"),
        (b"\x05\x11\x22\x00", "cobs_errors"),
        (_craft(fr.PROTOCOL_VERSION, 2, 1, fr.MAX_PAYLOAD + 1, bytes(fr.MAX_PAYLOAD + 1)), "oversized"),
        (_craft(fr.PROTOCOL_VERSION, 2, 1, 0xFFFFFFFF, b"x" * 16), "oversized"),
        (_craft(fr.PROTOCOL_VERSION, 2, 1, 8, b"y" * 8)[:-1] + bytes(rng.randrange(1, 256) for _ in range(fr.FRAME_RAW_MAX + 600))
         + b"\x00", "oversized"),
        (b"\x00\x00\x00", None),  # empty frames are resync bytes, not errors
    ]
    dec = FrameDecoder()
    for wire, counter in stream:
        before = fr.FrameCounters(**vars(dec.counters))
        assert dec.feed(wire) == []
        changed = {k for k, v in vars(dec.counters).items() if v != getattr(before, k)}
        assert changed == ({counter} if counter else set()), counter
    # A frame of another version is delivered (so it can be answered) but counted apart.
    other = fr.PROTOCOL_VERSION + 1
    f = dec.feed(fr.encode_frame(1, 9, b"", version=other))
    assert len(f) == 1 and f[0].version == other and dec.counters.version_mismatch == 1
    # Garbage, a delimiter, then a good frame: the good frame survives.
    frames = dec.feed(rng.randbytes(700) + b"\x00" + good)
    assert frames[-1].seq == 77 and frames[-1].payload == b"\x01\x02\x03\x04"


def _mutated_stream(seed: int, n_frames: int) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """A byte stream of good and damaged frames and the list of frames that must come out of it."""
    rng = random.Random(seed)
    out = bytearray()
    intact: list[tuple[int, int, bytes]] = []
    for i in range(n_frames):
        seq = i & 0xFFFF
        type_ = rng.choice(list(m.MsgType))
        payload = rng.randbytes(rng.choice([0, 4, 16, 100, rng.randrange(0, fr.MAX_PAYLOAD + 1)]))
        kind = rng.randrange(9)
        if kind <= 2:
            out += encode_frame(type_, seq, payload)
            intact.append((type_, seq, payload))
        elif kind == 3:  # distinct bit flips
            w = bytearray(encode_frame(type_, seq, payload))
            for bit in rng.sample(range(8 * (len(w) - 1)), rng.randrange(1, 4)):
                w[bit // 8] ^= 1 << (bit % 8)
            out += w
        elif kind == 4:  # truncated, delimiter kept
            w = encode_frame(type_, seq, payload)
            cut = rng.randrange(1, len(w))
            out += w[:cut - 1] + b"\x00"
        elif kind == 5:
            out += _craft(fr.PROTOCOL_VERSION, type_, seq, len(payload) + rng.randrange(1, 40), payload)
        elif kind == 6:
            out += _craft(fr.PROTOCOL_VERSION, type_, seq, len(payload), payload, crc_delta=rng.randrange(1, 1000))
        elif kind == 7:
            out += _craft(fr.PROTOCOL_VERSION, type_, seq, fr.MAX_PAYLOAD + 1 + rng.randrange(1 << 31), payload)
        else:  # garbage then a delimiter, then a good frame
            out += rng.randbytes(rng.randrange(600)) + b"\x00" + encode_frame(type_, seq, payload)
            intact.append((type_, seq, payload))
    return bytes(out), intact


def _segments(stream: bytes) -> int:
    return sum(1 for s in stream.split(b"\x00")[:-1] if s)


@pytest.mark.usefixtures("codec")
def test_decoder_accounts_for_every_frame_whatever_the_chunking() -> None:
    stream, intact = _mutated_stream(seed=42, n_frames=600)
    rng = random.Random(7)
    results = []
    for chunking in ("whole", "bytes", "random"):
        dec = FrameDecoder()
        frames = []
        if chunking == "whole":
            frames = dec.feed(stream)
        elif chunking == "bytes":
            for i in range(len(stream)):
                frames += dec.feed(stream[i:i + 1])
        else:
            i = 0
            while i < len(stream):
                k = rng.randrange(1, 5000)
                frames += dec.feed(stream[i:i + k])
                i += k
        assert [(f.type, f.seq, f.payload) for f in frames] == intact
        c = dec.counters
        assert c.frames_ok + c.errors() == _segments(stream)
        assert c.crc_errors and c.size_mismatch and c.oversized and c.cobs_errors
        results.append(vars(c))
    assert results[0] == results[1] == results[2]


# ---------------------------------------------------------------------------------------- messages


PLAN = bytes(range(32))
SAMPLES: list[m.Message] = [
    m.Identify(), m.Reset(), m.Stats(), m.Ok(),
    m.Write(4096, b"\x00\x01" * 100),
    m.RegionCrc(100, 200),
    m.Commit(123456, 0xCAFEF00D, PLAN, 3, 4),
    m.Configure(2, 8, m.Topology.HIERARCHICAL, 4),
    m.Configure(0, 1),
    m.Ping(0xDEADBEEF),
    m.Run(32, (1, 31999, 500), m.temperature_to_q16(0.5), 0x0102030405060708, m.RUN_TRACE | m.RUN_LOGITS),
    m.Run(1, ()),
    m.IdentifyReply(7, 1, fr.MAX_PAYLOAD, 8, 1 << 18, 8 << 20, 16 << 20, 7 << 20, "0.1.0", "stm32h7",
                    m.ShardDescriptor(True, PLAN, 1, 2, 5000, 0x12345678), fr.FrameCounters(10, 1, 2, 3, 4, 5, 6, 7)),
    m.Ack(4096, 4000), m.Nak(m.ErrorCode.BUSY, 8192), m.CrcReply(1, 2, 3), m.Pong(42, 1 << 40),
    m.Token(2, 9, 31999, 1234567),
    m.Trace((m.TraceRecord(7, m.Phase.ALLREDUCE_FFN, 5, 1, 2, 3, 4, 5, 6, 0xFFFFFFFF),) * 3),
    m.Logits(16000, (-1, 0x7FFFFFFF, -0x80000000)),
    m.Done(0, 17, 0xABCDEF0123), m.Error(7, "crc mismatch on commit: staged 0x1234"),
    m.StatsReply(fr.FrameCounters(1, 2, 3, 4, 5, 6, 7, 8)),
    m.RunEncoder((101, 7592, 2088, 102, 0, 0), (0, 0, 0, 1, 0, 0), 4, m.RUN_TRACE),
    m.RunEncoder((1,), (0,), 1, 0),
    m.Embedding(384, 12, (-1, 0x7FFFFFFF, -0x80000000)),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda x: type(x).__name__)
def test_message_round_trip_through_a_frame(msg: m.Message) -> None:
    f = decode_frame(encode_frame(msg.TYPE, 5, msg.pack()))
    assert m.unpack_message(f) == msg


FIXED_OR_COUNTED = [x for x in SAMPLES if x.pack() and not isinstance(x, (m.Write, m.Error))]


@pytest.mark.parametrize("msg", FIXED_OR_COUNTED, ids=lambda x: type(x).__name__)
def test_unpack_rejects_wrong_lengths(msg: m.Message) -> None:
    payload = msg.pack()
    for bad in (payload[:-1], payload + b"\x00", b""):
        with pytest.raises(ProtocolError):
            type(msg).unpack(bad)
    assert issubclass(ProtocolError, ChipError)


@pytest.mark.parametrize("cls,payload", [(m.Write, b"\x00" * 4), (m.Write, b""), (m.Error, b"\x01"),
                                         (m.Error, b"\x01\x00" + b"x" * (m.ERROR_TEXT_MAX + 1)),
                                         (m.Identify, b"\x00")])
def test_unpack_rejects_short_variable_payloads(cls, payload: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProtocolError):
        cls.unpack(payload)


def test_layouts_match_the_documented_offsets() -> None:
    info = next(x for x in SAMPLES if isinstance(x, m.IdentifyReply)).pack()
    assert len(info) == 164
    assert struct.unpack_from("<I", info, 0)[0] == 7
    assert struct.unpack_from("<H", info, 4)[0] == 1
    assert struct.unpack_from("<I", info, 8)[0] == fr.MAX_PAYLOAD
    assert struct.unpack_from("<I", info, 28)[0] == 7 << 20
    assert info[32:37] == b"0.1.0" and info[47] == 0 and info[48:55] == b"stm32h7"
    assert info[80] == 1 and info[84:116] == PLAN
    assert struct.unpack_from("<4I", info, 116) == (1, 2, 5000, 0x12345678)
    assert struct.unpack_from("<8I", info, 132) == (10, 1, 2, 3, 4, 5, 6, 7)
    rec = m.TraceRecord(7, 4, 5, 0x1122334455667788, 2, 3, 4, 5, 6, 0xFFFFFFFF).pack()
    assert len(rec) == 56 and rec[4] == 4 and rec[5] == 5 and rec[6:8] == b"\x00\x00"
    assert struct.unpack_from("<Q", rec, 8)[0] == 0x1122334455667788
    assert struct.unpack_from("<I", rec, 52)[0] == 0xFFFFFFFF
    run = m.Run(32, (1, 2), 0x8000, 9, 3).pack()
    assert struct.unpack_from("<IIIQI", run) == (3, 32, 0x8000, 9, 2) and len(run) == 24 + 8
    assert m.Done(8, 17, 5).pack() == struct.pack("<HHIQ", 8, 0, 17, 5)


@pytest.mark.parametrize("make", [
    lambda: m.Write(0, b""),
    lambda: m.Write(0, bytes(m.WRITE_MAX_DATA + 1)),
    lambda: m.Write(0xFFFFFFFF, b"ab"),
    lambda: m.Commit(0, 0, PLAN, 0, 1),
    lambda: m.Commit(10, 0, PLAN, 1, 1),
    lambda: m.Commit(10, 0, b"short", 0, 1),
    lambda: m.Configure(4, 4),
    lambda: m.Configure(0, 6, m.Topology.HIERARCHICAL, 4),
    lambda: m.Configure(0, 4, m.Topology.RING, 2),
    lambda: m.Configure(0, 4, 7, 0),
    lambda: m.Run(1, (1,) * (m.RUN_MAX_PROMPT + 1)),
    lambda: m.Run(1, (-1,)),
    lambda: m.Run(1, (1,), flags=4),
    lambda: m.Run(-1, (1,)),
    lambda: m.Ping(1 << 32),
    lambda: m.Logits(0, (1 << 31,)),
    lambda: m.Trace((m.TraceRecord(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),) * (m.TRACE_MAX_RECORDS + 1)),
    lambda: m.Error(1, "x" * (m.ERROR_TEXT_MAX + 1)),
    lambda: m.RunEncoder(()),
    lambda: m.RunEncoder((1,) * (m.RUN_ENCODER_MAX_TOKENS + 1)),
    lambda: m.RunEncoder((1, 2), (0,)),
    lambda: m.RunEncoder((1, 2), (), 3),
    lambda: m.RunEncoder((1, 2), (), 0),
    lambda: m.RunEncoder((1,), (256,)),
    lambda: m.RunEncoder((1,), (), None, 2),
    lambda: m.Embedding(0, 1, (1 << 31,)),
])
def test_pack_rejects_values_that_do_not_fit(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError):
        make().pack()


@pytest.mark.parametrize("payload", [
    struct.pack("<IIIQI", 0, 1, 0, 0, 2) + b"\x00" * 4,       # fewer ids than announced
    struct.pack("<IIIQI", 0, 1, 0, 0, 0x40000001) + b"\x00" * 4,  # count whose byte size wraps 32 bits
])
def test_run_unpack_checks_the_prompt_count(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.Run.unpack(payload)


@pytest.mark.parametrize("cls,payload", [
    (m.Trace, struct.pack("<I", 2) + bytes(56)),
    (m.Trace, struct.pack("<I", 0xFFFFFFFF)),
    (m.Logits, struct.pack("<II", 0, 3) + bytes(8)),
    (m.Logits, struct.pack("<II", 0xFFFFFFFF, 2) + bytes(8)),
    (m.IdentifyReply, bytes(80) + b"\x02" + bytes(83)),
    (m.RunEncoder, struct.pack("<III", 0, 2, 1) + bytes(9)),          # 2 tokens need 10 more bytes
    (m.RunEncoder, struct.pack("<III", 0, 2, 3) + bytes(10)),         # valid length beyond the tokens
    (m.RunEncoder, struct.pack("<III", 0, 0x40000001, 1) + bytes(5)),  # count whose byte size wraps
    (m.Embedding, struct.pack("<III", 0, 3, 1) + bytes(8)),
])
def test_unpack_rejects_inconsistent_counts(cls, payload: bytes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProtocolError):
        cls.unpack(payload)


def test_unknown_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown message type 0x7f"):
        m.unpack_message(fr.Frame(0x7F, 1, b""))


# ------------------------------------------------------------------------- agreement with the C side


def _c_defines(*names: str) -> dict[str, int]:
    """Numeric #defines of the C headers, with simple expressions of earlier ones evaluated."""
    values: dict[str, int] = {}
    for name in names:
        for line in (PROTO_DIR / name).read_text().replace("\\\n", " ").splitlines():
            mt = re.match(r"#define\s+(PROTO_\w+|COBS_\w+)\s+(.+?)\s*(/\*.*)?$", line)
            if not mt or "(" in mt.group(1):
                continue
            expr = re.sub(r"\b(0x[0-9A-Fa-f]+|\d+)u\b", r"\1", mt.group(2))
            expr = re.sub(r"\b(PROTO_\w+)\b", lambda x: str(values.get(x.group(1), x.group(1))), expr)
            if re.fullmatch(r"[0-9xA-Fa-f()+\-*/| ~&]+", expr):
                values[mt.group(1)] = int(eval(expr.replace("/", "//")))  # only digits and operators
    return values


def test_numbers_agree_with_msg_h() -> None:
    d = _c_defines("frame.h", "msg.h")
    assert d["PROTO_VERSION"] == fr.PROTOCOL_VERSION
    assert d["PROTO_MAX_PAYLOAD"] == fr.MAX_PAYLOAD
    assert d["PROTO_FRAME_RAW_MAX"] == fr.FRAME_RAW_MAX
    assert d["PROTO_COUNTERS_COUNT"] == len(vars(fr.FrameCounters()))
    for t in m.MsgType:
        assert d[f"PROTO_T_{t.name}"] == t, t
    assert {k for k in d if k.startswith("PROTO_T_")} == {f"PROTO_T_{t.name}" for t in m.MsgType}
    for e in m.ErrorCode:
        assert d[f"PROTO_E_{e.name}"] == e, e
    assert d["PROTO_E_COUNT"] == len(m.ErrorCode)
    for p in m.Phase:
        assert d[f"PROTO_PHASE_{p.name}"] == p, p
    assert d["PROTO_LAYER_NONE"] == m.LAYER_NONE
    assert d["PROTO_TOPO_RING"] == m.Topology.RING and d["PROTO_TOPO_HIERARCHICAL"] == m.Topology.HIERARCHICAL
    assert d["PROTO_RUN_TRACE"] == m.RUN_TRACE and d["PROTO_RUN_LOGITS"] == m.RUN_LOGITS
    sizes = {
        "PROTO_IDENTIFY_REPLY_BYTES": m.IdentifyReply.WIRE.size,
        "PROTO_COMMIT_BYTES": m.Commit.WIRE.size,
        "PROTO_CONFIGURE_BYTES": m.Configure.WIRE.size,
        "PROTO_RUN_HEADER_BYTES": m.RUN_HEADER_BYTES,
        "PROTO_RUN_MAX_PROMPT": m.RUN_MAX_PROMPT,
        "PROTO_TRACE_RECORD_BYTES": m.TraceRecord.WIRE.size,
        "PROTO_TRACE_MAX_RECORDS": m.TRACE_MAX_RECORDS,
        "PROTO_LOGITS_MAX_COUNT": m.LOGITS_MAX_COUNT,
        "PROTO_WRITE_MAX_DATA": m.WRITE_MAX_DATA,
        "PROTO_ACK_BYTES": m.Ack.WIRE.size,
        "PROTO_NAK_BYTES": m.Nak.WIRE.size,
        "PROTO_CRC_REPLY_BYTES": m.CrcReply.WIRE.size,
        "PROTO_PONG_BYTES": m.Pong.WIRE.size,
        "PROTO_TOKEN_BYTES": m.Token.WIRE.size,
        "PROTO_DONE_BYTES": m.Done.WIRE.size,
        "PROTO_ERROR_TEXT_MAX": m.ERROR_TEXT_MAX,
        "PROTO_PLAN_ID_BYTES": m.PLAN_ID_BYTES,
        "PROTO_RUN_ENCODER_HEADER_BYTES": m.RUN_ENCODER_HEADER_BYTES,
        "PROTO_RUN_ENCODER_MAX_TOKENS": m.RUN_ENCODER_MAX_TOKENS,
        "PROTO_EMBEDDING_HEADER_BYTES": m.EMBEDDING_HEADER_BYTES,
        "PROTO_EMBEDDING_MAX_COUNT": m.EMBEDDING_MAX_COUNT,
    }
    for name, size in sizes.items():
        assert d[name] == size, name


def test_error_texts_agree_with_msg_c() -> None:
    src = (PROTO_DIR / "msg.c").read_text()
    body = src[src.index("names[PROTO_E_COUNT]"):]
    body = body[:body.index("};")]
    assert re.findall(r'"([^"]*)"', body) == [m.ERROR_TEXT[e] for e in m.ErrorCode]


C_DRIVER = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "proto/frame.h"
#include "proto/crc32.h"

static uint8_t in[1 << 24], out[PROTO_FRAME_WIRE_MAX];

int main(int argc, char **argv)
{
    size_t n = fread(in, 1, sizeof in, stdin);
    if (argc > 1 && strcmp(argv[1], "encode") == 0) {
        /* records: u8 version, u8 type, u16 seq, u32 len, payload */
        for (size_t i = 0; i + 8 <= n;) {
            uint32_t len = (uint32_t)in[i + 4] | (uint32_t)in[i + 5] << 8 | (uint32_t)in[i + 6] << 16 |
                           (uint32_t)in[i + 7] << 24;
            uint16_t seq = (uint16_t)(in[i + 2] | in[i + 3] << 8);
            uint32_t k = proto_frame_encode_version(in[i], in[i + 1], seq, in + i + 8, len, out, sizeof out);
            fwrite(out, 1, k, stdout);
            i += 8 + len;
        }
        return 0;
    }
    static proto_decoder d;
    proto_frame f = {0, 0, 0, 0, NULL};
    proto_decoder_init(&d);
    for (size_t i = 0; i < n; i++)
        if (proto_decoder_push(&d, in[i], &f))
            printf("F %u %u %u %u %u\n", f.version, f.type, f.seq, (unsigned)f.len,
                   (unsigned)crc32_ieee(f.payload, f.len));
    const proto_counters *c = &d.counters;
    printf("C %u %u %u %u %u %u\n", (unsigned)c->frames_ok, (unsigned)c->crc_errors, (unsigned)c->cobs_errors,
           (unsigned)c->oversized, (unsigned)c->size_mismatch, (unsigned)c->version_mismatch);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    work = tmp_path_factory.mktemp("proto_c")
    src = work / "driver.c"
    src.write_text(C_DRIVER)
    exe = work / "driver"
    sources = [str(p) for p in sorted(PROTO_DIR.glob("*.c"))]
    subprocess.run([cc, "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "firmware"), str(src),
                    *sources, "-o", str(exe)], check=True, capture_output=True)
    return exe


@pytest.mark.usefixtures("codec")
def test_c_encoder_produces_the_same_bytes(c_driver: Path) -> None:
    rng = random.Random(99)
    records = bytearray()
    expected = bytearray()
    for i in range(300):
        payload = bytes(rng.choice([0, 0, rng.randrange(1, 256)]) for _ in range(rng.choice(
            [0, 1, 253, 254, 255, rng.randrange(0, fr.MAX_PAYLOAD + 1)])))
        version, type_, seq = rng.choice([fr.PROTOCOL_VERSION] * 3 + [fr.PROTOCOL_VERSION + 1]), rng.randrange(256), rng.randrange(65536)
        records += struct.pack("<BBHI", version, type_, seq, len(payload)) + payload
        expected += encode_frame(type_, seq, payload, version=version)
    got = subprocess.run([str(c_driver), "encode"], input=bytes(records), capture_output=True, check=True).stdout
    assert got == bytes(expected)


@pytest.mark.usefixtures("codec")
def test_c_decoder_agrees_with_python_decoder(c_driver: Path) -> None:
    stream, _ = _mutated_stream(seed=2024, n_frames=1500)
    stream += encode_frame(5, 1, b"", version=3)
    lines = subprocess.run([str(c_driver)], input=stream, capture_output=True, check=True).stdout.decode().split("\n")
    dec = FrameDecoder()
    frames = dec.feed(stream)
    want = [f"F {f.version} {f.type} {f.seq} {len(f.payload)} {zlib.crc32(f.payload)}" for f in frames]
    c = dec.counters
    want.append(f"C {c.frames_ok} {c.crc_errors} {c.cobs_errors} {c.oversized} {c.size_mismatch} "
                f"{c.version_mismatch}")
    assert [ln for ln in lines if ln] == want
