"""Nordic Power Profiler Kit II through the `ppk2-api` package (pip install 'orch[ppk2]').

Used calls: PPK2_API.list_devices() -> ports (or (port, serial) pairs in newer releases);
PPK2_API(port, timeout=1, write_timeout=1, exclusive=True); get_modifiers(); use_source_meter() with
set_source_voltage(mV) and toggle_DUT_power("ON"), or use_ampere_meter(); start_measuring();
get_data() -> bytes; get_samples(data) -> (microamps, raw_digital) (older releases: microamps only);
digital_channels(raw_digital) -> 8 lists of 0/1; stop_measuring(). The PPK2 samples at 100 kHz; its
logic port D0..D7 is sampled with the current, so chip 0's trigger GPIO on D<trigger_channel> gives
exact edges.
"""

from __future__ import annotations

import numpy as np

from orchestrator.errors import InputError
from orchestrator.power.meter import MeterError, PowerMeter, missing_extra

PPK2_RATE_HZ = 100_000.0


def _api():
    try:
        from ppk2_api.ppk2_api import PPK2_API  # noqa: PLC0415
    except ImportError:
        raise missing_extra("ppk2", "ppk2-api", "ppk2") from None
    return PPK2_API


class PPK2Meter(PowerMeter):
    name = "ppk2"
    has_trigger = True

    def __init__(self, voltage_v: float = 3.3, port: str | None = None, source_meter: bool = True,
                 trigger_channel: int | None = 0, threaded: bool = True) -> None:
        super().__init__(PPK2_RATE_HZ, threaded)
        if not 0.8 <= voltage_v <= 5.0:
            raise InputError(f"ppk2: voltage must be between 0.8 and 5.0 V, got {voltage_v}")
        if trigger_channel is not None and trigger_channel not in range(8):
            raise InputError(f"ppk2: trigger channel must be a logic input 0..7, got {trigger_channel}")
        self.voltage_v = float(voltage_v)
        self.port = port
        self.source_meter = source_meter
        self.trigger_channel = trigger_channel
        self.ppk = None

    def _open(self) -> None:
        api = _api()
        port = self.port
        if port is None:
            found = list(api.list_devices() or [])
            if not found:
                raise InputError("no PPK2 found: plug it in (USB) or give port=/dev/ttyACM…")
            if len(found) > 1:
                raise InputError(f"{len(found)} PPK2s found ({found}): choose one with port=...")
            port = found[0][0] if isinstance(found[0], (tuple, list)) else found[0]
        try:
            self.ppk = api(port, timeout=1, write_timeout=1, exclusive=True)
        except Exception as e:
            raise InputError(f"ppk2: cannot open {port} ({e}); is it plugged in and not used by nRF Connect?") from None
        self.ppk.get_modifiers()
        if self.source_meter:
            self.ppk.use_source_meter()
            self.ppk.set_source_voltage(int(round(self.voltage_v * 1000)))
            self.ppk.toggle_DUT_power("ON")
        else:
            self.ppk.use_ampere_meter()

    def _start_stream(self) -> None:
        self.ppk.start_measuring()

    def _read(self) -> int:
        data = self.ppk.get_data()
        if not data:
            return 0
        got = self.ppk.get_samples(data)
        if isinstance(got, tuple):
            micro_a, raw_digital = got
        else:
            micro_a, raw_digital = got, None
        i = np.asarray(micro_a, dtype=float) * 1e-6
        trig = None
        if self.trigger_channel is not None and raw_digital is not None:
            chans = self.ppk.digital_channels(raw_digital)
            trig = np.asarray(chans[self.trigger_channel], dtype=np.uint8)
            if trig.shape != i.shape:
                raise MeterError(f"ppk2: {i.size} current samples but {trig.size} logic samples in one read")
        return self._append(i * self.voltage_v, trig)

    def _stop_stream(self) -> None:
        if self.ppk is not None:
            self.ppk.stop_measuring()
            if self.source_meter:
                self.ppk.toggle_DUT_power("OFF")

    def _close(self) -> None:
        ser = getattr(self.ppk, "ser", None)
        if ser is not None:
            ser.close()
        self.ppk = None
