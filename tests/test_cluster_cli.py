"""Cluster files, `orch devices`, and the failures a lab user meets before a run starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from orchestrator.cluster.config import load_cluster
from orchestrator.errors import InputError
from tests.test_cli import assert_one_line_error, orch


def test_example_cluster_files_load():
    from pathlib import Path
    files = sorted((Path(__file__).resolve().parents[1] / "hil" / "clusters").glob("*.toml"))
    assert files
    for f in files:
        cfg = load_cluster(f)
        assert cfg.world == len(cfg.chips) and [c.rank for c in cfg.chips] == list(range(cfg.world))
    hier = load_cluster(files[[f.name for f in files].index("cluster-8-hier.toml")])
    assert hier.topology == "hierarchical" and hier.group_size == 4


@pytest.mark.parametrize("text, needle", [
    ("name='x'\n", "at least one [[chip]]"),
    ("[[chip]]\nrank=0\n", "needs a port"),
    ("[[chip]]\nrank=1\nport='/dev/a'\n", "ranks must be 0..0"),
    ("[[chip]]\nrank=0\nport='/dev/a'\n[[chip]]\nrank=1\nport='/dev/a'\n", "share a port"),
    ("topology='star'\n[[chip]]\nrank=0\nport='/dev/a'\n", "topology must be"),
    ("[[chip]\n", "not valid TOML"),
])
def test_bad_cluster_files(tmp_path, text, needle):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(InputError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_cluster(p)


def test_missing_port_is_one_line(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[[chip]]\nrank=0\nport='/dev/ttyNOSUCH0'\n")
    assert_one_line_error(*orch("run", "--cluster", str(p), "--tokens", "4"), "chip 0", "/dev/ttyNOSUCH0")


def test_busy_port_is_reported_as_busy(tmp_path):
    """A pty that another program holds open exclusively."""
    import serial
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = serial.Serial(path, exclusive=True)
    try:
        p = tmp_path / "c.toml"
        p.write_text(f"[[chip]]\nrank=0\nport='{path}'\n")
        rc, out, err = orch("run", "--cluster", str(p), "--tokens", "4")
        assert_one_line_error(rc, out, err, "chip 0", "busy")
    finally:
        holder.close()
        os.close(slave)
        os.close(master)


def test_silent_chip_is_named_with_rank_and_port(tmp_path):
    """A port that exists but where nothing answers (a board that is off)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        p = tmp_path / "c.toml"
        p.write_text(f"timeout_s = 0.3\nretries = 1\n[[chip]]\nrank=0\nport='{path}'\n")
        rc, out, err = orch("run", "--cluster", str(p), "--tokens", "4")
        assert_one_line_error(rc, out, err, "chip 0", path)
    finally:
        os.close(slave)
        os.close(master)


def test_devices_lists_ports_and_matches_cluster_chips(mocker, tmp_path, capsys):
    from orchestrator.cli import main

    class Port:
        def __init__(self, device, vid, pid, sn):
            self.device, self.vid, self.pid, self.serial_number, self.description = device, vid, pid, sn, "FT232R"

    mocker.patch("serial.tools.list_ports.comports", return_value=[Port("/dev/ttyUSB7", 0x0403, 0x6001, "A1")])
    dev = mocker.MagicMock(idVendor=0x0403, idProduct=0x6014, serial_number="XYZ", product="FT232H")
    mocker.patch("usb.core.find", return_value=[dev])
    p = tmp_path / "c.toml"
    p.write_text("[[chip]]\nrank=0\nport='/dev/ttyUSB7'\n[[chip]]\nrank=1\nport='usb:0403:6014:XYZ'\n"
                 "[[chip]]\nrank=2\nport='/dev/ttyUSB9'\n")
    assert main(["devices", "--cluster", str(p), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["devices"]["serial"][0]["usb_id"] == "0403:6001"
    chips = {c["rank"]: c["match"] for c in d["cluster"]["chips"]}
    assert chips[0] == "/dev/ttyUSB7" and "0403:6014" in chips[1] and chips[2] is None
    assert d["cluster"]["missing"] == [2]


def test_missing_compiler_is_a_clear_error(tmp_path):
    env = dict(os.environ, CC="no-such-cc", ORCH_CACHE_DIR=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", "--chips", "1", "--tokens", "2"],
                       capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert_one_line_error(p.returncode, p.stdout, p.stderr, "no C compiler", "no-such-cc")
