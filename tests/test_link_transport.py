"""Host transports: pyserial over real pseudo-terminals and TCP sockets, pyusb with a mocked device."""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import threading
import time
import tty
from typing import Iterator

import pytest
import usb.core

from orchestrator.errors import ChipError, InputError
from orchestrator.link.transport import SerialTransport, UsbTransport, open_transport, parse_usb_url


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path). The test keeps the slave open too, as the mock chip does, so the
    master sees no hangup when the transport closes."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


class EchoChip(threading.Thread):
    """Plays the chip on a pty master: sends back every byte it reads, until stopped."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self._stop_r, self._stop_w = os.pipe()

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            os.write(self.fd, data)

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self.join(5)
        os.close(self._stop_r)
        os.close(self._stop_w)


def read_exactly(t, n: int, timeout_s: float = 5.0) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += t.read(n - len(out), max(0.0, deadline - time.monotonic()))
    return bytes(out)


# ------------------------------------------------------------------------------------ serial/pty


def test_pty_round_trip_through_a_chip_thread(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    chip = EchoChip(master)
    chip.start()
    try:
        with SerialTransport(path, timeout_s=1.0) as t:
            assert t.name == path
            data = bytes(range(256)) * 40  # every byte value, incl. 0x00 and XON/XOFF: the port is raw
            t.write(data)
            assert read_exactly(t, len(data)) == data
    finally:
        chip.stop()


def test_write_larger_than_the_pty_buffers_arrives_whole(pty_pair: tuple[int, str]) -> None:
    """The pty takes a few KiB per write once full: the transport must resume where it stopped."""
    master, path = pty_pair
    data = os.urandom(1 << 20)
    got = bytearray()

    def drain() -> None:
        while len(got) < len(data):
            ready, _, _ = select.select([master], [], [], 5.0)
            if not ready:
                return
            got.extend(os.read(master, 65536))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with SerialTransport(path, timeout_s=2.0) as t:
        t.write(data)
    reader.join(10)
    assert bytes(got) == data


def test_write_to_a_chip_that_stops_draining_times_out(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair  # nobody reads the master: the pty fills up
    with SerialTransport(path, baudrate=4_000_000, timeout_s=0.2) as t:
        start = time.monotonic()
        with pytest.raises(ChipError, match="stopped accepting data") as e:
            t.write(bytes(512 << 10))
        assert path in str(e.value) and "\n" not in str(e.value)
        # the timeout covers the bytes at the line rate (10 bits per byte) plus timeout_s
        assert time.monotonic() - start < 0.2 + 10 * (512 << 10) / 4_000_000 + 1.0


def test_read_returns_what_is_there_without_waiting_for_max_bytes(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with SerialTransport(path) as t:
        os.write(master, b"abc")
        start = time.monotonic()
        got = read_exactly(t, 3, timeout_s=5.0)
        assert got == b"abc"
        assert t.read(1000, 0.0) == b""  # nothing left, and a zero timeout does not block
        assert time.monotonic() - start < 2.0


def test_read_timeout_returns_empty_and_does_not_spin(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    with SerialTransport(path) as t:
        wall, cpu = time.monotonic(), time.process_time()
        assert t.read(100, 0.4) == b""
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert 0.35 <= wall < 2.0
    assert cpu < 0.1, f"read burned {cpu:.3f} s of CPU while waiting"


def test_second_exclusive_open_of_a_pty_reports_busy(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    first = SerialTransport(path)
    try:
        with pytest.raises(ChipError, match="busy") as e:
            SerialTransport(path)
        assert path in str(e.value) and "close that program" in str(e.value)
    finally:
        first.close()
    SerialTransport(path).close()  # free again once released


def test_missing_port_is_named() -> None:
    with pytest.raises(ChipError, match="does not exist") as e:
        SerialTransport("/dev/orch-test-no-such-port")
    assert "/dev/orch-test-no-such-port" in str(e.value)


def test_peer_hangup_is_a_lost_link() -> None:
    master2, slave2 = os.openpty()
    tty.setraw(slave2)
    path2 = os.ttyname(slave2)
    t = SerialTransport(path2)
    try:
        os.close(slave2)
        os.close(master2)  # the chip side vanishes: reads on the slave fail with EIO
        with pytest.raises(ChipError, match="lost"):
            t.read(10, 1.0)
    finally:
        t.close()


@pytest.mark.parametrize("url,err", [("foo://x", InputError), ("", InputError), ("usb:12:34", InputError),
                                     ("socket://127.0.0.1:99999", InputError),
                                     ("socket://127.0.0.1", InputError), ("rfc2217://:80", InputError)])
def test_bad_port_names(url: str, err: type) -> None:
    with pytest.raises(err):
        open_transport(url)


# ------------------------------------------------------------------------------------ socket://


def test_socket_url_round_trip() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data[::-1])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with open_transport(f"socket://127.0.0.1:{port}", timeout_s=1.0) as t:
            assert isinstance(t, SerialTransport)
            t.write(b"\x00frame\x00")
            assert read_exactly(t, 7) == b"\x00emarf\x00"
            assert t.read(10, 0.2) == b""
    finally:
        server.close()
        thread.join(5)


def test_socket_url_with_nobody_listening() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ChipError, match="nothing is listening"):
        open_transport(f"socket://127.0.0.1:{port}")


# ------------------------------------------------------------------------------------ USB (mocked)


class FakeEndpoint:
    def __init__(self, address: int, attributes: int = 0x02, packet: int = 64) -> None:
        self.bEndpointAddress = address
        self.bmAttributes = attributes
        self.wMaxPacketSize = packet


class FakeInterface:
    def __init__(self, number: int, endpoints: list[FakeEndpoint]) -> None:
        self.bInterfaceNumber = number
        self._eps = endpoints

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._eps)


class FakeUsbDevice:
    """A device with an interrupt-only interface 0 and a bulk interface 1 (the one to pick)."""

    def __init__(self, serial: str = "CHIP0") -> None:
        self.serial_number = serial
        self.to_host = bytearray()
        self.from_host = bytearray()
        self.gone = False
        self.read_sizes: list[int] = []
        self.kernel_driver = True
        self.detached: list[int] = []

    def get_active_configuration(self) -> list[FakeInterface]:
        return [FakeInterface(0, [FakeEndpoint(0x83, attributes=0x03)]),
                FakeInterface(1, [FakeEndpoint(0x02), FakeEndpoint(0x81)])]

    def is_kernel_driver_active(self, n: int) -> bool:
        return self.kernel_driver

    def detach_kernel_driver(self, n: int) -> None:
        self.detached.append(n)

    def attach_kernel_driver(self, n: int) -> None:
        pass

    def _check(self) -> None:
        if self.gone:
            raise usb.core.USBError("No such device (it may have been disconnected)", errno=errno.ENODEV)

    def write(self, ep: int, data: bytes, timeout: int) -> int:
        self._check()
        assert ep == 0x02 and timeout >= 1
        n = min(len(data), 100)  # short writes: the transport must loop
        self.from_host += data[:n]
        return n

    def read(self, ep: int, size: int, timeout: int):  # type: ignore[no-untyped-def]
        self._check()
        assert ep == 0x81 and timeout >= 1  # 0 would mean "forever" to pyusb
        self.read_sizes.append(size)
        if not self.to_host:
            raise usb.core.USBTimeoutError("Operation timed out", errno=errno.ETIMEDOUT)
        out = array.array("B", self.to_host[:size])
        del self.to_host[:size]
        return out


@pytest.fixture
def usb_devices(mocker):  # type: ignore[no-untyped-def]
    devices: list[FakeUsbDevice] = [FakeUsbDevice()]
    find = mocker.patch("usb.core.find", side_effect=lambda **kw: iter(list(devices)))
    claim = mocker.patch("usb.util.claim_interface")
    mocker.patch("usb.util.release_interface")
    mocker.patch("usb.util.dispose_resources")
    return devices, find, claim


def test_usb_url_parsing() -> None:
    assert parse_usb_url("usb:1234:abCD") == (0x1234, 0xABCD, None)
    assert parse_usb_url("usb:1234:abcd:SN-01") == (0x1234, 0xABCD, "SN-01")
    for bad in ("usb:1234", "usb:12345:1234", "usb:xyz1:1234", "usb::"):
        with pytest.raises(InputError):
            parse_usb_url(bad)


def test_usb_write_read_through_bulk_endpoints(usb_devices) -> None:  # type: ignore[no-untyped-def]
    devices, find, claim = usb_devices
    dev = devices[0]
    t = open_transport("usb:1234:5678", timeout_s=0.5)
    assert isinstance(t, UsbTransport)
    assert find.call_args.kwargs["idVendor"] == 0x1234 and find.call_args.kwargs["idProduct"] == 0x5678
    assert claim.call_args.args[1] == 1 and dev.detached == [1]
    t.write(b"x" * 250)
    assert dev.from_host == b"x" * 250
    dev.to_host += bytes(range(100))
    assert t.read(10, 0.5) == bytes(range(10))
    assert dev.read_sizes == [64]  # whole packets, never a partial one
    assert t.read(1000, 0.5) == bytes(range(10, 64))  # the rest of the first transfer, no new one
    assert len(dev.read_sizes) == 1
    assert t.read(1000, 0.5) == bytes(range(64, 100))
    assert dev.read_sizes == [64, 1024]
    assert t.read(10, 0.01) == b""  # timeout
    t.close()
    t.close()


def test_usb_device_unplugged_mid_transfer(usb_devices) -> None:  # type: ignore[no-untyped-def]
    devices, _, _ = usb_devices
    t = UsbTransport("usb:1234:5678")
    devices[0].gone = True
    with pytest.raises(ChipError, match="unplugged"):
        t.write(b"abc")
    with pytest.raises(ChipError, match="unplugged"):
        t.read(10, 0.1)
    t.close()


def test_usb_not_found_ambiguous_and_by_serial(usb_devices) -> None:  # type: ignore[no-untyped-def]
    devices, _, _ = usb_devices
    devices.clear()
    with pytest.raises(ChipError, match="no USB device usb:1234:5678"):
        UsbTransport("usb:1234:5678")
    devices += [FakeUsbDevice("A1"), FakeUsbDevice("B2")]
    with pytest.raises(InputError, match="2 USB devices"):
        UsbTransport("usb:1234:5678")
    t = UsbTransport("usb:1234:5678:B2")
    devices[1].to_host += b"hi"
    assert t.read(2, 0.1) == b"hi"
    with pytest.raises(ChipError, match="no USB device"):
        UsbTransport("usb:1234:5678:C3")


def test_usb_busy_interface(usb_devices) -> None:  # type: ignore[no-untyped-def]
    _, _, claim = usb_devices
    claim.side_effect = usb.core.USBError("Resource busy", errno=errno.EBUSY)
    with pytest.raises(ChipError, match="busy"):
        UsbTransport("usb:1234:5678")
