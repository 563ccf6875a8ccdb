"""Real power-meter backends against mocked device APIs: start, stop, trigger, read, device missing,
device unplugged mid-run, and the extra not installed."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from orchestrator.errors import InputError
from orchestrator.power import MeterError, open_meter

# --- Joulescope ---------------------------------------------------------------------------------------


class FakeJoulescope:
    def __init__(self, n=0, current=0.01, voltage=3.0):
        self.params, self.calls = {}, []
        self.current = np.full(n, current)
        self.voltage = np.full(n, voltage)
        self.gpi = np.zeros(n, dtype=np.uint8)
        self.end = 0
        self.unplugged = False
        self.device_serial_number = "JS110-000123"
        outer = self

        class Buffer:
            @property
            def sample_id_range(self):
                if outer.unplugged:
                    raise OSError("device disconnected")
                return (0, outer.end)

            def samples_get(self, start, stop, fields):
                outer.calls.append(("samples_get", start, stop, tuple(fields)))
                return {"signals": {"current": {"value": outer.current[start:stop]},
                                    "voltage": {"value": outer.voltage[start:stop]},
                                    "current_lsb": {"value": outer.gpi[start:stop]}}}
        self.stream_buffer = Buffer()

    def open(self):
        self.calls.append("open")

    def parameter_set(self, k, v):
        self.params[k] = v

    def start(self, *a, **k):
        self.calls.append("start")

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


def _install_joulescope(monkeypatch, devices):
    mod = types.ModuleType("joulescope")
    mod.scan = lambda *a, **k: list(devices)
    monkeypatch.setitem(sys.modules, "joulescope", mod)


def test_joulescope_reads_power_and_trigger_edges(monkeypatch):
    dev = FakeJoulescope(n=200, current=0.01, voltage=3.0)
    dev.gpi[50:120] = 1
    _install_joulescope(monkeypatch, [dev])
    m = open_meter("joulescope", rate_hz=1000, threaded=False)
    m.start()
    dev.end = 120
    assert m.poll() == 120
    dev.end = 200
    assert m.poll() == 80 and m.poll() == 0
    m.stop()
    assert dev.calls[0] == "open" and "start" in dev.calls and dev.calls[-2:] == ["stop", "close"]
    assert dev.params["sampling_frequency"] == 1000 and dev.params["current_lsb"] == "gpi0"
    tr = m.samples()
    assert tr.energy_j() == pytest.approx(0.03 * 200 / 1000)
    rise = [mk.t_s for mk in tr.markers if mk.name == "trigger_rise"]
    fall = [mk.t_s for mk in tr.markers if mk.name == "trigger_fall"]
    assert rise == [pytest.approx(0.05)] and fall == [pytest.approx(0.12)]
    assert m.energy("trigger_rise", "trigger_fall") == pytest.approx(0.03 * 0.07)


def test_joulescope_missing_device_and_choice(monkeypatch):
    _install_joulescope(monkeypatch, [])
    with pytest.raises(InputError, match="no Joulescope found"):
        open_meter("joulescope", threaded=False).start()
    _install_joulescope(monkeypatch, [FakeJoulescope(), FakeJoulescope()])
    with pytest.raises(InputError, match="2 Joulescopes"):
        open_meter("joulescope", threaded=False).start()


def test_joulescope_unplugged_mid_run_keeps_samples(monkeypatch):
    dev = FakeJoulescope(n=100)
    _install_joulescope(monkeypatch, [dev])
    m = open_meter("joulescope", rate_hz=1000, threaded=False)
    m.start()
    dev.end = 60
    m.poll()
    dev.unplugged = True
    assert m.poll() == 0
    with pytest.raises(MeterError, match="60 samples were kept"):
        m.stop()
    assert len(m.samples().power_w) == 60


def test_joulescope_extra_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "joulescope", None)
    with pytest.raises(InputError, match=r"pip install 'orch\[joulescope\]'"):
        open_meter("joulescope", threaded=False).start()


def test_threaded_reader_collects_everything_by_stop(monkeypatch):
    dev = FakeJoulescope(n=500)
    _install_joulescope(monkeypatch, [dev])
    m = open_meter("joulescope", rate_hz=1000, trigger=False)
    dev.end = 500  # already buffered when the reader starts
    with m:
        pass  # stop() joins the reader, which reads what is left before it ends
    assert m.n_samples == 500

# --- PPK2 -------------------------------------------------------------------------------------------


class FakePPK2:
    instances: list = []
    ports = [("/dev/ttyACM7", "C0FFEE")]

    def __init__(self, port, **kw):
        self.port, self.kw, self.calls = port, kw, []
        self.chunks: list = []
        self.unplugged = False
        FakePPK2.instances.append(self)

    @staticmethod
    def list_devices():
        return list(FakePPK2.ports)

    def __getattr__(self, name):
        if name.startswith(("get_modifiers", "use_", "set_source", "toggle", "start_", "stop_")):
            return lambda *a: self.calls.append((name, *a))
        raise AttributeError(name)

    def get_data(self):
        if self.unplugged:
            raise OSError("could not read from port: device disconnected")
        return self.chunks.pop(0) if self.chunks else b""

    def get_samples(self, data):
        ua, dig = data
        return list(ua), list(dig)

    def digital_channels(self, raw):
        return [[(b >> c) & 1 for b in raw] for c in range(8)]


def _install_ppk2(monkeypatch):
    FakePPK2.instances = []
    pkg = types.ModuleType("ppk2_api")
    sub = types.ModuleType("ppk2_api.ppk2_api")
    sub.PPK2_API = FakePPK2
    pkg.ppk2_api = sub
    monkeypatch.setitem(sys.modules, "ppk2_api", pkg)
    monkeypatch.setitem(sys.modules, "ppk2_api.ppk2_api", sub)


def test_ppk2_source_meter_reads_current_and_logic(monkeypatch):
    _install_ppk2(monkeypatch)
    m = open_meter("ppk2", voltage_v=1.8, trigger_channel=2, threaded=False)
    m.start()
    ppk = FakePPK2.instances[0]
    assert ppk.port == "/dev/ttyACM7"
    assert ("set_source_voltage", 1800) in ppk.calls and ("toggle_DUT_power", "ON") in ppk.calls
    assert ("start_measuring",) in ppk.calls
    dig = [0] * 30 + [4] * 40 + [0] * 30  # D2 high for samples 30..69
    ppk.chunks = [([1000.0] * 100, dig)]  # 1 mA
    assert m.poll() == 100
    m.stop()
    assert ("stop_measuring",) in ppk.calls and ("toggle_DUT_power", "OFF") in ppk.calls
    tr = m.samples()
    assert tr.rate_hz == 100_000
    assert tr.energy_j() == pytest.approx(1e-3 * 1.8 * 100 / 100_000)
    assert [mk.t_s for mk in tr.markers if mk.name == "trigger_rise"] == [pytest.approx(30e-5)]


def test_ppk2_missing_and_unplugged(monkeypatch):
    _install_ppk2(monkeypatch)
    FakePPK2.ports = []
    try:
        with pytest.raises(InputError, match="no PPK2 found"):
            open_meter("ppk2", threaded=False).start()
    finally:
        FakePPK2.ports = [("/dev/ttyACM7", "C0FFEE")]
    m = open_meter("ppk2", threaded=False)
    m.start()
    ppk = FakePPK2.instances[-1]
    ppk.chunks = [([500.0] * 10, [0] * 10)]
    m.poll()
    ppk.unplugged = True
    m.poll()
    with pytest.raises(MeterError, match="10 samples were kept"):
        m.stop()
    with pytest.raises(InputError, match="voltage"):
        open_meter("ppk2", voltage_v=9.0)


def test_ppk2_extra_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "ppk2_api", None)
    monkeypatch.setitem(sys.modules, "ppk2_api.ppk2_api", None)
    with pytest.raises(InputError, match=r"pip install 'orch\[ppk2\]'"):
        open_meter("ppk2", threaded=False).start()

# --- LPM01A (serial text protocol) ---------------------------------------------------------------------


class FakePowerShield:
    """Answers the PowerShield's commands like the board; samples are queued by the test."""

    def __init__(self, refuse=None):
        self.out = bytearray()
        self.written: list[str] = []
        self.unplugged = False
        self.refuse = refuse
        self.closed = False

    def write(self, data: bytes):
        if self.unplugged:
            raise OSError("write failed: device disconnected")
        cmd = data.decode().strip()
        self.written.append(cmd)
        if cmd == self.refuse:
            self.out += f"PowerShield > error: {cmd} not allowed\r\n".encode()
        elif cmd == "stop":
            self.out += b"PowerShield > Acquisition completed\r\n"
        else:
            self.out += f"PowerShield > ack {cmd}\r\n".encode()
        return len(data)

    def feed(self, text: str):
        self.out += text.encode()

    @property
    def in_waiting(self):
        return len(self.out)

    def read(self, n):
        if self.unplugged:
            raise OSError("read failed: device disconnected")
        chunk = bytes(self.out[:n])
        del self.out[:n]
        return chunk

    def close(self):
        self.closed = True


def test_lpm01a_protocol_samples_and_trigger():
    board = FakePowerShield()
    m = open_meter("lpm01a", rate_hz=1000, voltage_v=3.3, port="/dev/ttyACM3", trigger=True, threaded=False,
                   serial_factory=lambda port: board)
    m.start()
    assert board.written == ["htc", "format ascii_dec", "volt 3300m", "freq 1000", "acqtime 0", "trigsrc d7",
                             "start"]
    board.feed("2000-06\r\n" * 300 + "TimeStamp: 0s 300ms, buff 00%\r\n" + "1+00\r\n" * 2 + "50")
    assert m.poll() == 302  # "50" is half a line: it waits for its end
    board.feed("0-06\r\n")  # the line completes as 500e-6 A
    m.stop()
    assert board.written[-2:] == ["stop", "hrc"] and board.closed
    tr = m.samples()
    assert len(tr.power_w) == 303
    assert tr.energy_j() == pytest.approx((300 * 2e-3 + 2 * 1.0 + 500e-6) * 3.3 / 1000)
    assert [mk.t_s for mk in tr.markers if mk.name == "trigger_rise"] == [0.0]


def test_lpm01a_error_missing_and_unplugged(monkeypatch):
    with pytest.raises(MeterError, match="'freq 1000' was refused"):
        open_meter("lpm01a", rate_hz=1000, port="x", threaded=False,
                   serial_factory=lambda p: FakePowerShield(refuse="freq 1000")).start()
    from serial.tools import list_ports
    monkeypatch.setattr(list_ports, "comports", lambda: [])
    with pytest.raises(InputError, match="no LPM01A"):
        open_meter("lpm01a", threaded=False, serial_factory=lambda p: FakePowerShield()).start()
    board = FakePowerShield()
    m = open_meter("lpm01a", rate_hz=1000, port="x", threaded=False, serial_factory=lambda p: board)
    m.start()
    board.feed("1000-06\r\n" * 25)
    m.poll()
    board.unplugged = True
    m.poll()
    with pytest.raises(MeterError, match="25 samples were kept"):
        m.stop()
    with pytest.raises(InputError, match="sample rate"):
        open_meter("lpm01a", rate_hz=0)


def test_lpm01a_sample_lines():
    from orchestrator.power.lpm01a import parse_sample
    assert parse_sample("1234-06") == pytest.approx(1.234e-3)
    assert parse_sample("7+01") == pytest.approx(70.0)
    assert parse_sample("TimeStamp: 5s 600ms, buff 00%") is None
    assert parse_sample("12a-06") is None and parse_sample("") is None
