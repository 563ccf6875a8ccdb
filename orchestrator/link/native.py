"""The firmware's own framing code (firmware/proto: COBS, CRC-32, frame encoder), loaded with ctypes.

Why: byte stuffing is a loop over blocks, and in Python that loop costs about 0.2 us per block. A
trace frame is mostly zero bytes (small counters in 64-bit fields), so its ~1500 blocks took ~0.4 ms
to decode, and a 4 KiB flash frame ~12 us to encode: on the mock's pseudo-terminals, which move
~180 MB/s, that made the host the bottleneck. The C codec does either in a few microseconds.

It is optional. Without a C compiler, or with ORCH_NATIVE=0, `codec()` returns None and
orchestrator.link.frame uses its pure-Python codec, which produces the same bytes (tests run both).
The library is built on first use into the cache, keyed by a hash of its sources and the compiler,
the same way as the mock chip (orchestrator.cluster.firmware).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

from orchestrator.errors import InputError
from orchestrator.partition.cache import cache_root

_SOURCES = ("proto/cobs.c", "proto/cobs.h", "proto/crc32.c", "proto/crc32.h", "proto/frame.c", "proto/frame.h")
_LIB = "liborchframe.so"
_lock = threading.Lock()
_loaded: "NativeCobs | None | bool" = False  # False: not tried yet


def firmware_dir() -> Path:
    """The firmware sources: ORCH_FIRMWARE_DIR, else the checkout this package runs from."""
    env = os.environ.get("ORCH_FIRMWARE_DIR")
    d = Path(env) if env else Path(__file__).resolve().parents[2] / "firmware"
    if not (d / "Makefile").is_file():
        raise InputError(f"firmware sources not found at {d}: run orch from a checkout of the repository "
                         "(pip install -e .) or set ORCH_FIRMWARE_DIR")
    return d


class NativeCobs:
    """cobs_encode, cobs_decode and proto_frame_encode_version of firmware/proto (ctypes releases the
    GIL during calls, so chips' reader threads decode in parallel)."""

    def __init__(self, path: Path):
        lib = ctypes.CDLL(str(path))
        u8p = ctypes.c_char_p
        self._enc = lib.cobs_encode
        self._enc.argtypes = [u8p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32]
        self._enc.restype = ctypes.c_uint32
        self._dec = lib.cobs_decode
        self._dec.argtypes = [u8p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32]
        self._dec.restype = ctypes.c_int32
        self._frame = lib.proto_frame_encode_version
        self._frame.argtypes = [ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint16, u8p, ctypes.c_uint32,
                                ctypes.c_void_p, ctypes.c_uint32]
        self._frame.restype = ctypes.c_uint32
        # The CRC tables fill on first use (the firmware is single-threaded); fill them here, once,
        # before reader threads call in.
        lib.crc32_ieee.argtypes = [u8p, ctypes.c_uint32]
        lib.crc32_ieee.restype = ctypes.c_uint32
        if lib.crc32_ieee(b"123456789", 9) != 0xCBF43926:
            raise OSError(f"{path} computes a wrong CRC-32")
        self.path = path

    def encode(self, data: bytes) -> bytes:
        cap = len(data) + len(data) // 254 + 1
        out = ctypes.create_string_buffer(cap)
        n = self._enc(data, len(data), out, cap)
        if n == 0:  # cannot happen with cap = COBS_ENCODED_MAX; never return a short frame
            raise RuntimeError("native COBS encoder ran out of room")
        return ctypes.string_at(out, n)

    def encode_frame(self, version: int, type_: int, seq: int, payload: bytes) -> bytes:
        """A whole frame, delimiter included, in one call: header, CRC and stuffing without the
        intermediate copies of building it up in Python. Arguments are checked by the caller."""
        cap = 12 + len(payload) + (12 + len(payload)) // 254 + 2
        out = ctypes.create_string_buffer(cap)
        n = self._frame(version, type_, seq, payload, len(payload), out, cap)
        if n == 0:
            raise RuntimeError("native frame encoder refused a checked frame")
        return ctypes.string_at(out, n)

    def decode(self, enc: bytes) -> bytes | None:
        """Decoded bytes, or None if enc is not well-formed COBS (a 0x00 inside, a cut-off block)."""
        cap = len(enc)  # decoding never grows the data
        out = ctypes.create_string_buffer(cap or 1)
        n = self._dec(enc, len(enc), out, cap)
        return ctypes.string_at(out, n) if n >= 0 else None


def build_in_cache(target: Path, command: Callable[[Path], list[str]]) -> subprocess.CompletedProcess:
    """Run command(tmp) that builds target.name into a fresh folder tmp next to target's folder; on success
    move the result into place with one rename, so that processes building at the same time never
    see half a file. Shared by this library and the mock chip (orchestrator.cluster.firmware)."""
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent.parent))
    try:
        p = subprocess.run(command(tmp), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if p.returncode == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / target.name, target)
        return p
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(src: Path, lib: Path) -> bool:
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        return False
    sources = [str(src / name) for name in _SOURCES if name.endswith(".c")]
    p = build_in_cache(lib, lambda tmp: [cc, "-std=c99", "-O2", "-shared", "-fPIC", f"-I{src}", *sources,
                                         "-o", str(tmp / lib.name)])
    return p.returncode == 0


def _load() -> NativeCobs | None:
    if os.environ.get("ORCH_NATIVE", "1") == "0":
        return None
    try:
        src = firmware_dir()
    except InputError:
        return None  # an installed package without the firmware sources: pure Python
    h = hashlib.sha256()
    for name in _SOURCES:
        h.update(name.encode())
        h.update((src / name).read_bytes())
    h.update((os.environ.get("CC") or "cc").encode())
    path = cache_root() / "native" / h.hexdigest()[:16] / _LIB
    try:
        if not path.is_file() and not _build(src, path):
            return None
        return NativeCobs(path)
    except OSError:
        return None  # unloadable (another architecture, a noexec cache): pure Python still works


def codec() -> NativeCobs | None:
    """The native codec, built and loaded on first call; None when it cannot be (see module doc)."""
    global _loaded
    if _loaded is False:
        with _lock:
            if _loaded is False:
                _loaded = _load()
    return _loaded  # type: ignore[return-value]


def reset() -> None:
    """Forget the loaded codec (tests switch ORCH_NATIVE)."""
    global _loaded
    with _lock:
        _loaded = False
