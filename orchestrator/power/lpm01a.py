"""STMicroelectronics X-NUCLEO-LPM01A (PowerShield) over its serial text protocol (ST UM2269).

The board is a USB virtual COM port; commands are text lines answered by
"PowerShield > ack <command>". Set-up: htc (host takes control), format ascii_dec, volt <mV>m,
freq <Hz>, acqtime 0 (until stopped), optionally trigsrc d7 (acquisition starts on a rising edge of
its D7 input: wire chip 0's trigger GPIO there), then start. In ascii_dec format every sample is a
line "<mantissa>-<exponent>" (or +) in amperes, e.g. "1234-06" = 1.234 mA; lines starting with
"TimeStamp:" are progress reports; "PowerShield > Acquisition completed" ends a stop; lines with
"error" report a fault. Power = current x the voltage the board supplies. Only pyserial is needed.
"""

from __future__ import annotations

import re

import numpy as np

from orchestrator.errors import InputError
from orchestrator.power.meter import MeterError, PowerMeter

BAUD = 3_864_000
ST_VID, VCP_PID = 0x0483, 0x5740
_SAMPLE = re.compile(r"^(\d+)([-+])(\d+)$")


def find_port() -> str:
    from serial.tools import list_ports  # noqa: PLC0415
    ports = [p for p in list_ports.comports()
             if (p.vid, p.pid) == (ST_VID, VCP_PID) or "powershield" in (p.description or "").lower()]
    if not ports:
        raise InputError("no LPM01A (PowerShield) found: plug it in (USB) or give port=/dev/ttyACM…")
    if len(ports) > 1:
        names = ", ".join(p.device for p in ports)
        raise InputError(f"{len(ports)} possible LPM01A ports ({names}): choose one with port=...")
    return ports[0].device


def parse_sample(line: str) -> float | None:
    """Amperes from an ascii_dec sample line, or None if the line is not a sample."""
    m = _SAMPLE.match(line.strip())
    if not m:
        return None
    mant, sign, exp = int(m.group(1)), m.group(2), int(m.group(3))
    return mant * 10.0 ** (exp if sign == "+" else -exp)


class LPM01AMeter(PowerMeter):
    name = "lpm01a"

    def __init__(self, rate_hz: float = 5000.0, voltage_v: float = 3.3, port: str | None = None,
                 trigger: bool = False, threaded: bool = True, serial_factory=None) -> None:
        super().__init__(rate_hz, threaded)
        if not 1.8 <= voltage_v <= 3.3:
            raise InputError(f"lpm01a: supply voltage must be between 1.8 and 3.3 V, got {voltage_v}")
        if not 1 <= rate_hz <= 100_000:
            raise InputError(f"lpm01a: sample rate must be 1..100000 Hz, got {rate_hz}")
        self.voltage_v = float(voltage_v)
        self.port = port
        self.use_trigger = trigger
        self.has_trigger = trigger
        self._factory = serial_factory
        self.ser = None
        self._buf = b""

    def _serial(self, port: str):
        if self._factory is not None:
            return self._factory(port)
        import serial  # noqa: PLC0415
        try:
            return serial.serial_for_url(port, baudrate=BAUD, timeout=0.05)
        except (serial.SerialException, OSError) as e:
            raise InputError(f"lpm01a: cannot open {port} ({e}); is it plugged in?") from None

    def _lines(self) -> list[str]:
        """Complete lines received so far; samples among them are kept, the others returned."""
        chunk = self.ser.read(getattr(self.ser, "in_waiting", 0) or 1)
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        amps, other = [], []
        for raw in lines:
            ln = raw.decode("ascii", "replace").strip("\r ")
            v = parse_sample(ln)
            if v is not None:
                amps.append(v)
            elif ln:
                other.append(ln)
        if amps:
            self._append(np.asarray(amps) * self.voltage_v)
        return other

    def _command(self, cmd: str, expect: str | None = None, max_reads: int = 200) -> None:
        self.ser.write((cmd + "\n").encode("ascii"))
        want = expect or f"ack {cmd}"
        for _ in range(max_reads):
            for ln in self._lines():
                if "error" in ln.lower():
                    raise MeterError(f"lpm01a: '{cmd}' was refused: {ln}")
                if want in ln:
                    return
        raise MeterError(f"lpm01a: no '{want}' after '{cmd}'; is the board in its default firmware?")

    def _open(self) -> None:
        self.ser = self._serial(self.port or find_port())
        self._command("htc")
        self._command("format ascii_dec")
        self._command(f"volt {int(round(self.voltage_v * 1000))}m")
        self._command(f"freq {int(self.rate_hz)}")
        self._command("acqtime 0")
        self._command("trigsrc d7" if self.use_trigger else "trigsrc sw")

    def _start_stream(self) -> None:
        self._command("start")

    def _read(self) -> int:
        before = self.n_samples
        for ln in self._lines():
            if "error" in ln.lower():
                raise MeterError(f"lpm01a reported: {ln}")
        return self.n_samples - before

    def _stop_stream(self) -> None:
        if self.ser is not None:
            self._command("stop", expect="Acquisition completed", max_reads=10_000)
            self._command("hrc")

    def _close(self) -> None:
        if self.ser is not None:
            self.ser.close()
            self.ser = None

    def samples(self):
        tr = super().samples()
        if self.use_trigger and len(tr.power_w):
            from orchestrator.power.trace import Marker  # noqa: PLC0415
            tr.markers.append(Marker("trigger_rise", 0.0))  # acquisition began on the D7 edge
            tr.markers.sort(key=lambda m: m.t_s)
        return tr
