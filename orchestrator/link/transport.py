"""Byte transports from the host to one chip.

A `Transport` moves bytes and nothing else: ``write(data)``, ``read(max_bytes, timeout_s)`` (b""
on timeout, blocking in the OS rather than polling), ``close()`` and a ``name`` for messages.

- `SerialTransport`: anything pyserial opens by URL: /dev/ttyACM0, /dev/serial/by-id/...,
  a pty path (the mock chip), socket://host:port, rfc2217://host:port. Opened exclusively, so two
  programs never interleave frames on one chip.
- `UsbTransport`: a vendor bulk interface through pyusb, named ``usb:VID:PID[:SERIAL]`` (hex ids).

`open_transport(url, baud, timeout_s)` picks one by the URL. Failures a user can fix (port busy,
missing, no permission, device unplugged) raise ChipError saying what to do.
"""

from __future__ import annotations

import errno
import os
import re
import select
import time
from abc import ABC, abstractmethod
from urllib.parse import urlsplit

from orchestrator.errors import ChipError, InputError

DEFAULT_BAUD = 115200


class Transport(ABC):
    """Bytes to and from one chip."""

    name: str = "?"

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send all of data; ChipError if the link is gone or the chip stops accepting bytes."""

    @abstractmethod
    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Return 1..max_bytes bytes as soon as any arrive, or b"" after timeout_s."""

    @abstractmethod
    def close(self) -> None:
        """Release the port; safe to call twice."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _check_read_args(max_bytes: int, timeout_s: float) -> None:
    if max_bytes < 1:
        raise InputError(f"read of {max_bytes} bytes: ask for at least 1")
    if timeout_s < 0:
        raise InputError(f"read timeout {timeout_s} s is negative")


# ------------------------------------------------------------------------------- serial


_BUSY_TEXT = ("could not exclusively lock", "resource busy", "resource temporarily unavailable")


def _serial_open_error(url: str, exc: BaseException) -> ChipError:
    """Turn pyserial's open failure into a message that says what to do."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    low = text.lower()
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or any(t in low for t in _BUSY_TEXT):
        return ChipError(f"serial port {url} is busy: another program has it open (a serial monitor, a modem "
                         "manager or another orch run); close that program and try again")
    if code == errno.ENOENT or "no such file" in low or "no such device" in low:
        return ChipError(f"serial port {url} does not exist: check that the chip is plugged in and the port name "
                         "(ls /dev/serial/by-id/), or that the mock chip is running")
    if code == errno.EACCES or "permission denied" in low:
        return ChipError(f"no permission to open {url}: add your user to the group that owns it (often "
                         "'dialout') or fix its udev rule")
    if "connection refused" in low:
        return ChipError(f"nothing is listening at {url}: start the chip's TCP bridge or check host and port")
    return ChipError(f"cannot open serial port {url}: {text}")


def _check_network_url(url: str) -> None:
    """socket:// and rfc2217:// need host:port; pyserial's own complaint about them is unclear."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("socket", "rfc2217"):
        return
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 0 < port < 65536:
        raise InputError(f"bad port {url!r}: write {scheme}://HOST:PORT with a port in 1..65535")


class SerialTransport(Transport):
    """A pyserial port opened by URL or path, exclusively."""

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD, timeout_s: float = 1.0) -> None:
        import serial  # deferred: importing the package must not need pyserial's platform bits

        if not url:
            raise InputError("empty serial port name; give a device path, socket://host:port or rfc2217://host:port")
        if baudrate <= 0:
            raise InputError(f"baud rate {baudrate} must be positive")
        _check_network_url(url)
        self.name = url
        self._baud = baudrate
        self._timeout = timeout_s
        self._closed = False
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, write_timeout=None,
                                         exclusive=True, do_not_open=True)
        except ValueError as e:  # unknown URL scheme or option
            raise InputError(f"bad port {url!r}: {e}; use a device path, socket://host:port or "
                             "rfc2217://host:port") from None
        except serial.SerialException as e:
            raise _serial_open_error(url, e) from None
        self._write_timeout: float | None = None
        try:
            port.open()
        except (serial.SerialException, OSError) as e:
            raise _serial_open_error(url, e) from None
        self._port = port
        self._serial_exc = serial.SerialException
        # Local ttys (device paths, pseudo-terminals) are read directly; URL ports (socket://,
        # rfc2217://) have protocol handling in pyserial and go through its read().
        import serial.serialposix
        self._fd = port.fileno() if type(port) is serial.serialposix.Serial else None

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ChipError(f"write to {self.name} after it was closed")
        # Long enough for the bytes at the line rate (10 bits per byte on a UART) plus the usual
        # timeout: a write only times out when the chip stops draining its input.
        need = self._timeout + 10.0 * len(data) / self._baud
        try:
            if self._fd is not None:
                self._write_fd(data, need)
                return
            if self._write_timeout is None or need > self._write_timeout:
                self._port.write_timeout = need
                self._write_timeout = need
            n = self._port.write(data)
        except self._serial_exc as e:
            if "timeout" in str(e).lower():
                raise ChipError(f"chip on {self.name} stopped accepting data for {need:.1f} s; check that the "
                                "firmware is running") from None
            raise ChipError(f"link to {self.name} lost while writing: {e}") from None
        except OSError as e:
            raise ChipError(f"link to {self.name} lost while writing: {e}") from None
        if n is not None and n != len(data):
            raise ChipError(f"link to {self.name} took {n} of {len(data)} bytes")

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        _check_read_args(max_bytes, timeout_s)
        if self._closed:
            raise ChipError(f"read from {self.name} after it was closed")
        port = self._port
        try:
            if self._fd is not None:
                # A local tty: wait in select and take what is there in one read. Changing pyserial's
                # timeout would reconfigure the tty (tcsetattr) on almost every call.
                ready, _, _ = select.select([self._fd], [], [], timeout_s)
                if not ready:
                    return b""
                data = os.read(self._fd, max_bytes)
                if not data:
                    raise OSError(errno.EIO, "device went away")
                return data
            if port.timeout != timeout_s:
                port.timeout = timeout_s
            # Block (in select) for the first byte, then take whatever else is already buffered.
            first = port.read(1)
            if not first:
                return b""
            more = min(port.in_waiting, max_bytes - 1)
            return first + port.read(more) if more > 0 else first
        except (self._serial_exc, OSError) as e:
            raise ChipError(f"link to {self.name} lost while reading: {e}") from None

    def _write_fd(self, data: bytes, timeout_s: float) -> None:
        """A local tty: write straight to the (non-blocking) fd and wait in select only when it is
        full. pyserial's write selects after every write and copies the unsent rest each time, which
        at pseudo-terminal speed cost more than the bytes themselves."""
        view = memoryview(data).cast("B")
        fd = self._fd
        deadline = None
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            except InterruptedError:
                continue
            if n:
                view = view[n:]
                continue
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout_s
            _, ready, _ = select.select([], [fd], [], max(deadline - now, 0.0))
            if not ready:
                raise ChipError(f"chip on {self.name} stopped accepting data for {timeout_s:.1f} s; check that the "
                                "firmware is running")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._port.close()
            except (self._serial_exc, OSError):
                pass


# ------------------------------------------------------------------------------- USB


_USB_URL = re.compile(r"^usb:([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.+))?$")
_USB_GONE_ERRNOS = (errno.ENODEV, errno.ENXIO, errno.ESHUTDOWN, errno.EPIPE)
# libusb's own codes, which pyusb passes through as backend_error_code.
_LIBUSB_NO_DEVICE = -4
_LIBUSB_TIMEOUT = -7


def parse_usb_url(url: str) -> tuple[int, int, str | None]:
    """'usb:1234:abcd[:SERIAL]' -> (0x1234, 0xabcd, 'SERIAL' or None)."""
    m = _USB_URL.match(url)
    if not m:
        raise InputError(f"bad USB port {url!r}: write usb:VID:PID or usb:VID:PID:SERIAL with 4-digit hex ids")
    return int(m.group(1), 16), int(m.group(2), 16), m.group(3)


def _usb_is_gone(exc: BaseException) -> bool:
    return (getattr(exc, "errno", None) in _USB_GONE_ERRNOS
            or getattr(exc, "backend_error_code", None) == _LIBUSB_NO_DEVICE
            or "no such device" in str(exc).lower())


def _usb_is_timeout(exc: BaseException) -> bool:
    import usb.core

    return (isinstance(exc, getattr(usb.core, "USBTimeoutError", ()))
            or getattr(exc, "errno", None) == errno.ETIMEDOUT
            or getattr(exc, "backend_error_code", None) == _LIBUSB_TIMEOUT)


class UsbTransport(Transport):
    """First interface with a bulk IN and a bulk OUT endpoint of a USB device, claimed exclusively."""

    def __init__(self, url: str, timeout_s: float = 1.0) -> None:
        import usb.core
        import usb.util

        self.name = url
        self._timeout = timeout_s
        self._rx = bytearray()
        self._closed = False
        self._detached: int | None = None
        vid, pid, serial_number = parse_usb_url(url)
        try:
            devices = list(usb.core.find(find_all=True, idVendor=vid, idProduct=pid) or [])
        except usb.core.NoBackendError:
            raise ChipError("pyusb found no libusb backend: install libusb-1.0 (apt install libusb-1.0-0)") from None
        except usb.core.USBError as e:
            raise ChipError(f"cannot list USB devices for {url}: {e}") from None
        if serial_number is not None:
            devices = [d for d in devices if self._serial_of(d) == serial_number]
        if not devices:
            raise ChipError(f"no USB device {url} found: check that the chip is plugged in and the ids (lsusb)")
        if len(devices) > 1:
            found = ", ".join(str(self._serial_of(d)) for d in devices)
            raise InputError(f"{len(devices)} USB devices match {url} (serials {found}); name one as "
                             f"usb:{vid:04x}:{pid:04x}:SERIAL")
        dev = devices[0]
        try:
            try:
                cfg = dev.get_active_configuration()
            except usb.core.USBError:
                dev.set_configuration()  # unconfigured: take the first configuration
                cfg = dev.get_active_configuration()
            intf, ep_in, ep_out = self._find_bulk(cfg)
            number = intf.bInterfaceNumber
            try:
                if dev.is_kernel_driver_active(number):
                    dev.detach_kernel_driver(number)
                    self._detached = number
            except NotImplementedError:  # backends without kernel drivers (e.g. some OSes)
                pass
            usb.util.claim_interface(dev, number)
        except usb.core.USBError as e:
            raise self._usb_error("opening", e) from None
        self._dev = dev
        self._interface = number
        self._ep_in = ep_in.bEndpointAddress
        self._ep_out = ep_out.bEndpointAddress
        self._packet = max(1, int(getattr(ep_in, "wMaxPacketSize", 64) or 64))

    @staticmethod
    def _serial_of(dev: object) -> str | None:
        try:
            return dev.serial_number  # type: ignore[attr-defined]
        except (ValueError, NotImplementedError, OSError):  # no permission to read string descriptors
            return None

    def _find_bulk(self, cfg):  # type: ignore[no-untyped-def]
        import usb.util

        for intf in cfg:
            ins = outs = None
            for ep in intf:
                if usb.util.endpoint_type(ep.bmAttributes) != usb.util.ENDPOINT_TYPE_BULK:
                    continue
                if usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN:
                    ins = ins or ep
                else:
                    outs = outs or ep
            if ins is not None and outs is not None:
                return intf, ins, outs
        raise ChipError(f"USB device {self.name} has no interface with bulk IN and OUT endpoints: wrong device "
                        "or firmware without the USB link")

    def _usb_error(self, doing: str, exc: BaseException) -> ChipError:
        if _usb_is_gone(exc):
            return ChipError(f"USB device {self.name} unplugged while {doing}: reconnect it and retry")
        code = getattr(exc, "errno", None)
        if code == errno.EBUSY or "busy" in str(exc).lower():
            return ChipError(f"USB device {self.name} is busy: another program has claimed it; close that program")
        if code == errno.EACCES or "access denied" in str(exc).lower():
            return ChipError(f"no permission to use USB device {self.name}: add a udev rule granting your user "
                             "access")
        return ChipError(f"USB error on {self.name} while {doing}: {exc}")

    def write(self, data: bytes) -> None:
        import usb.core

        if self._closed:
            raise ChipError(f"write to {self.name} after it was closed")
        view = memoryview(bytes(data))
        ms = max(1, int(self._timeout * 1000))
        while len(view):
            try:
                n = self._dev.write(self._ep_out, view.tobytes(), timeout=ms)
            except usb.core.USBError as e:
                if _usb_is_timeout(e):
                    raise ChipError(f"chip on {self.name} did not accept data for {self._timeout} s; check that "
                                    "the firmware is running") from None
                raise self._usb_error("writing", e) from None
            if not n:
                raise ChipError(f"USB device {self.name} accepted no bytes")
            view = view[n:]

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        import usb.core

        _check_read_args(max_bytes, timeout_s)
        if self._closed:
            raise ChipError(f"read from {self.name} after it was closed")
        if not self._rx:
            # Bulk reads must ask for whole packets or the device's last packet overflows.
            size = -(-max(max_bytes, 1) // self._packet) * self._packet
            ms = max(1, int(round(timeout_s * 1000)))  # pyusb treats 0 as "wait forever"
            try:
                got = self._dev.read(self._ep_in, size, timeout=ms)
            except usb.core.USBError as e:
                if _usb_is_timeout(e):
                    return b""
                raise self._usb_error("reading", e) from None
            self._rx += bytes(got)
        out = bytes(self._rx[:max_bytes])
        del self._rx[:max_bytes]
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        import usb.core
        import usb.util

        try:
            usb.util.release_interface(self._dev, self._interface)
            if self._detached is not None:
                self._dev.attach_kernel_driver(self._detached)
        except (usb.core.USBError, NotImplementedError):
            pass  # unplugged or no driver to give back: nothing left to release
        finally:
            usb.util.dispose_resources(self._dev)


# ------------------------------------------------------------------------------- choice


def open_transport(url: str, baud: int = DEFAULT_BAUD, timeout_s: float = 1.0) -> Transport:
    """A transport for a cluster file's port string: usb:VID:PID[:SERIAL] or anything pyserial opens."""
    if not isinstance(url, str) or not url.strip():
        raise InputError("empty port; give a device path, socket://host:port, rfc2217://host:port or usb:VID:PID")
    if timeout_s <= 0:
        raise InputError(f"timeout {timeout_s} s must be positive")
    if url.lower().startswith("usb:"):
        return UsbTransport(url, timeout_s=timeout_s)
    return SerialTransport(url, baudrate=baud, timeout_s=timeout_s)
