"""Joulescope (JS110 / JS220) through the `joulescope` package (pip install 'orch[joulescope]').

Used calls: joulescope.scan() -> devices; device.open(), parameter_set(name, value), start(), stop(),
close(); device.stream_buffer.sample_id_range and stream_buffer.samples_get(start, stop, fields=...)
returning {"signals": {field: {"value": array}}}. Power is current x voltage per sample. The general
purpose input IN0 arrives as the least significant bit of the current field ("current_lsb"): wire
chip 0's trigger GPIO there and the trace carries an exact edge per token (docs/power.md).
"""

from __future__ import annotations

import numpy as np

from orchestrator.errors import InputError
from orchestrator.power.meter import MeterError, PowerMeter, missing_extra


def _module():
    try:
        import joulescope  # noqa: PLC0415
    except ImportError:
        raise missing_extra("joulescope", "joulescope", "joulescope") from None
    return joulescope


class JoulescopeMeter(PowerMeter):
    name = "joulescope"
    has_trigger = True

    def __init__(self, rate_hz: float = 100_000.0, serial: str | None = None, trigger: bool = True,
                 threaded: bool = True) -> None:
        super().__init__(rate_hz, threaded)
        self.serial = serial
        self.use_trigger = trigger
        self.dev = None
        self._next = None

    def _open(self) -> None:
        js = _module()
        devices = list(js.scan())
        if self.serial:
            devices = [d for d in devices if self.serial in str(getattr(d, "device_serial_number", d))]
        if not devices:
            want = f" with serial {self.serial}" if self.serial else ""
            raise InputError(f"no Joulescope{want} found: plug it in (USB) and check `joulescope info`")
        if len(devices) > 1 and not self.serial:
            raise InputError(f"{len(devices)} Joulescopes found: choose one with serial=...")
        self.dev = devices[0]
        self.dev.open()
        self.dev.parameter_set("sampling_frequency", int(self.rate_hz))
        self.dev.parameter_set("i_range", "auto")
        if self.use_trigger:
            self.dev.parameter_set("current_lsb", "gpi0")

    def _start_stream(self) -> None:
        self.dev.start()
        self._next = None

    def _read(self) -> int:
        sb = self.dev.stream_buffer
        start, end = sb.sample_id_range
        if self._next is None:
            self._next = start
        if end <= self._next:
            return 0
        fields = ["current", "voltage"] + (["current_lsb"] if self.use_trigger else [])
        data = sb.samples_get(self._next, end, fields=fields)
        sig = data["signals"]
        i = np.asarray(sig["current"]["value"], dtype=float)
        v = np.asarray(sig["voltage"]["value"], dtype=float)
        if i.shape != v.shape or i.size != end - self._next:
            raise MeterError(f"joulescope: asked for {end - self._next} samples, got {i.size} current and "
                             f"{v.size} voltage values")
        trig = np.asarray(sig["current_lsb"]["value"], dtype=np.uint8) if self.use_trigger else None
        self._next = end
        return self._append(i * v, trig)

    def _stop_stream(self) -> None:
        if self.dev is not None:
            self.dev.stop()

    def _close(self) -> None:
        if self.dev is not None:
            self.dev.close()
            self.dev = None
