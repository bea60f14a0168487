"""The DLMS/COSEM transport layer for IP networks, IEC 62056-47 (the "wrapper"; DLMS standard port 4059).

`version(2) = 0x0001 | source wPort(2) | destination wPort(2) | length(2) | APDU`. The wPorts are
the client SAP and the server's logical device address, as the HDLC addresses carry them on a serial
line; there is no link layer below (no SNRM, no I-frame numbering): each APDU travels in one piece.
Seed 002 ch. 2.6 lists port 4059 for Kamstrup's GSM modules without describing the framing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .framing import BadFrame, BufferedFramer
from .hdlc import Partial, Quiet

VERSION = 0x0001
HEADER_SIZE = 8
MAX_APDU = 0xFFFF


class WrapperError(ProtocolError):
    """A wrapper frame that is malformed."""


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    source: int
    destination: int
    apdu: bytes

    def to_bytes(self) -> bytes:
        if len(self.apdu) > MAX_APDU:
            raise WrapperError(f"wrapper frame: an APDU of {len(self.apdu)} bytes does not fit the 16-bit length")
        return (VERSION.to_bytes(2, "big") + self.source.to_bytes(2, "big") + self.destination.to_bytes(2, "big")
                + len(self.apdu).to_bytes(2, "big") + self.apdu)


FramerEvent = WrapperFrame | BadFrame | Partial | Quiet


class WrapperFramer(BufferedFramer):
    """Sans-IO: feed bytes, get wrapper frames. A header with another version is dropped byte by
    byte until a header with version 1 lines up again (TCP loses nothing, so this is for garbage)."""

    def feed(self, data: bytes) -> list[FramerEvent]:
        self._buffer += data
        events: list[FramerEvent] = []
        buffer = self._buffer
        while len(buffer) >= HEADER_SIZE:
            version = int.from_bytes(buffer[0:2], "big")
            if version != VERSION:
                del buffer[:1]
                events.append(BadFrame(f"wrapper header: version 0x{version:04X}, expected 0x0001", 1))
                continue
            length = int.from_bytes(buffer[6:8], "big")
            if len(buffer) < HEADER_SIZE + length:
                break
            frame = WrapperFrame(int.from_bytes(buffer[2:4], "big"), int.from_bytes(buffer[4:6], "big"),
                                 bytes(buffer[HEADER_SIZE : HEADER_SIZE + length]))
            del buffer[: HEADER_SIZE + length]
            events.append(frame)
        events.append(Partial(len(buffer)) if buffer else Quiet())
        return events
