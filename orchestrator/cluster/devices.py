"""`orch devices`: the serial ports and USB devices present, and which chip of a cluster file each is."""

from __future__ import annotations

import os
from pathlib import Path


def _by_id() -> dict[str, str]:
    d = Path("/dev/serial/by-id")
    out = {}
    if d.is_dir():
        for p in d.iterdir():
            try:
                out[os.path.realpath(p)] = str(p)
            except OSError:
                pass
    return out


def list_devices() -> dict:
    from serial.tools import list_ports
    by_id = _by_id()
    serial_ports = []
    for p in list_ports.comports():
        serial_ports.append({"device": p.device, "by_id": by_id.get(os.path.realpath(p.device)),
                             "description": p.description if p.description != "n/a" else None,
                             "usb_id": f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else None,
                             "serial_number": p.serial_number})
    usb_devices, usb_error = [], None
    try:
        import usb.core
        for dev in usb.core.find(find_all=True) or []:
            entry = {"usb_id": f"{dev.idVendor:04x}:{dev.idProduct:04x}", "serial_number": None, "product": None}
            try:
                entry["serial_number"] = dev.serial_number
                entry["product"] = dev.product
            except (ValueError, usb.core.USBError, NotImplementedError):
                pass  # no permission to read string descriptors: ids still identify the device
            usb_devices.append(entry)
    except Exception as e:  # no libusb backend on this machine
        usb_error = f"cannot list USB devices ({e.__class__.__name__}: {e}); install libusb-1.0 for USB chips"
    return {"serial": serial_ports, "usb": usb_devices, "usb_error": usb_error}


def match_cluster(cfg, devices: dict) -> dict:
    """For each chip of a cluster file, the present device its port names (or None)."""
    serial_paths = {}
    for d in devices["serial"]:
        serial_paths[d["device"]] = d["device"]
        if d.get("by_id"):
            serial_paths[d["by_id"]] = d["device"]
    chips = []
    for c in cfg.chips:
        port = c.port
        match = None
        if port.lower().startswith("usb:"):
            parts = port.split(":")
            want = f"{parts[1].lower()}:{parts[2].lower()}" if len(parts) >= 3 else ""
            sn = parts[3] if len(parts) >= 4 else None
            for u in devices["usb"]:
                if u["usb_id"] == want and (sn is None or u.get("serial_number") == sn):
                    match = f"usb {u['usb_id']} {u.get('serial_number') or ''}".strip()
        elif "://" in port:
            match = "network port (not checked)"
        else:
            real = os.path.realpath(port) if os.path.exists(port) else None
            match = serial_paths.get(port) or (real if real and real in serial_paths else None) or \
                (port if real else None)
        chips.append({"rank": c.rank, "port": port, "match": match})
    return {"cluster": cfg.name, "chips": chips, "missing": [c["rank"] for c in chips if not c["match"]]}
