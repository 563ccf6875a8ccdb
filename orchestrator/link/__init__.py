"""Host side of the host<->chip link: frames, messages, transports and chip sessions.

docs/protocol.md describes the wire protocol; firmware/proto/ is the chip side.
"""

from orchestrator.link.frame import (
    FRAME_WIRE_MAX,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Frame,
    FrameCounters,
    FrameDecoder,
    ProtocolError,
    decode_frame,
    encode_frame,
)
from orchestrator.link.session import ChipReplyError, ChipSession, PingResult
from orchestrator.link.transport import SerialTransport, Transport, UsbTransport, open_transport

__all__ = [
    "FRAME_WIRE_MAX",
    "MAX_PAYLOAD",
    "PROTOCOL_VERSION",
    "ChipReplyError",
    "ChipSession",
    "Frame",
    "FrameCounters",
    "FrameDecoder",
    "PingResult",
    "ProtocolError",
    "SerialTransport",
    "Transport",
    "UsbTransport",
    "decode_frame",
    "encode_frame",
    "open_transport",
]
