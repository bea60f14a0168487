"""HDLC frames of IEC 62056-46, frame format type 3 (seed 002 ch. 2.5-2.6).

`7E | format(2) | destination | source | control | HCS(2) | information | FCS(2) | 7E`. The
format field is 0xA000, the segmentation bit S (0x0800) and an 11-bit length counting every byte
between the flags. Addresses use extended addressing (the low bit marks the last byte): the
client address is one byte, the server address one, two or four bytes (upper = logical device,
lower = physical device). HCS covers format to control, FCS format to the end of the
information field; both are CRC-16/X.25, sent least significant byte first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .crc import crc16_x25
from .errors import ProtocolError
from .framing import BadFrame, Noise

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA000
SEGMENTED = 0x0800
LENGTH_MASK = 0x07FF
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"
POLL_FINAL = 0x10


class HdlcError(ProtocolError):
    """An HDLC frame that is malformed."""


class FrameType(enum.Enum):
    I = "I"  # noqa: E741 - the protocol's own name
    RR = "RR"
    RNR = "RNR"
    SNRM = "SNRM"
    DISC = "DISC"
    UA = "UA"
    DM = "DM"
    FRMR = "FRMR"
    UI = "UI"


_UNNUMBERED = {0x83: FrameType.SNRM, 0x43: FrameType.DISC, 0x63: FrameType.UA, 0x0F: FrameType.DM,
               0x87: FrameType.FRMR, 0x03: FrameType.UI}
_UNNUMBERED_CODES = {kind: code for code, kind in _UNNUMBERED.items()}
_SUPERVISORY = {0x01: FrameType.RR, 0x05: FrameType.RNR}
_SUPERVISORY_CODES = {kind: code for code, kind in _SUPERVISORY.items()}


@dataclass(frozen=True, slots=True)
class Control:
    """The control field: frame type, poll/final bit and, where the type has them, N(S) and N(R)."""

    kind: FrameType
    poll_final: bool = True
    send_sequence: int = 0
    receive_sequence: int = 0

    def to_byte(self) -> int:
        pf = POLL_FINAL if self.poll_final else 0
        if self.kind is FrameType.I:
            return (self.receive_sequence & 7) << 5 | pf | (self.send_sequence & 7) << 1
        if self.kind in _SUPERVISORY_CODES:
            return (self.receive_sequence & 7) << 5 | pf | _SUPERVISORY_CODES[self.kind]
        return _UNNUMBERED_CODES[self.kind] | pf

    @classmethod
    def from_byte(cls, byte: int) -> Control:
        pf = bool(byte & POLL_FINAL)
        if not byte & 0x01:
            return cls(FrameType.I, pf, (byte >> 1) & 7, byte >> 5)
        if byte & 0x03 == 0x01:
            kind = _SUPERVISORY.get(byte & 0x0F)
            if kind is None:
                raise HdlcError(f"control field 0x{byte:02X}: unknown supervisory frame")
            return cls(kind, pf, 0, byte >> 5)
        kind = _UNNUMBERED.get(byte & ~POLL_FINAL & 0xFF)
        if kind is None:
            raise HdlcError(f"control field 0x{byte:02X}: unknown unnumbered frame")
        return cls(kind, pf)


@dataclass(frozen=True, slots=True)
class Address:
    """An HDLC address: `upper` (client SAP or server logical device) and optional `lower`
    (server physical device); `size` is its length on the wire (1, 2 or 4 bytes)."""

    upper: int
    lower: int | None = None
    size: int = 1

    @classmethod
    def client(cls, sap: int) -> Address:
        return cls(sap, None, 1)

    @classmethod
    def server(cls, logical: int, physical: int | None = None) -> Address:
        if physical is None:
            return cls(logical, None, 1 if logical < 0x80 else 2)
        return cls(logical, physical, 2 if logical < 0x80 and physical < 0x80 else 4)

    def to_bytes(self) -> bytes:
        if self.size == 1:
            return bytes(((self.upper << 1) | 1,))
        if self.size == 2:
            return bytes((self.upper << 1, ((self.lower or 0) << 1) | 1))
        lower = self.lower or 0
        return bytes(((self.upper >> 7) << 1, (self.upper & 0x7F) << 1, (lower >> 7) << 1, ((lower & 0x7F) << 1) | 1))

    @classmethod
    def parse(cls, data: bytes, offset: int) -> tuple[Address, int]:
        end = offset
        while end < len(data) and not data[end] & 1:
            end += 1
            if end - offset >= 4:
                break
        size = end - offset + 1
        if end >= len(data) or size not in (1, 2, 4):
            raise HdlcError(f"address at byte {offset}: {size} bytes, expected 1, 2 or 4 ending with the low bit set")
        raw = [b >> 1 for b in data[offset : end + 1]]
        if size == 1:
            return cls(raw[0], None, 1), end + 1
        if size == 2:
            return cls(raw[0], raw[1], 2), end + 1
        return cls(raw[0] << 7 | raw[1], raw[2] << 7 | raw[3], 4), end + 1


@dataclass(frozen=True, slots=True)
class Frame:
    destination: Address
    source: Address
    control: Control
    information: bytes = b""
    segmented: bool = False

    def to_bytes(self) -> bytes:
        header = self.destination.to_bytes() + self.source.to_bytes() + bytes((self.control.to_byte(),))
        length = 2 + len(header) + 2 + (len(self.information) + 2 if self.information else 0)
        if length > LENGTH_MASK:
            raise HdlcError(f"frame of {length} bytes does not fit the 11-bit length field")
        format_field = (FORMAT_TYPE_3 | (SEGMENTED if self.segmented else 0) | length).to_bytes(2, "big")
        head = format_field + header
        body = head + crc16_x25(head).to_bytes(2, "little")
        if self.information:
            body += self.information
            body += crc16_x25(body).to_bytes(2, "little")
        return bytes((FLAG,)) + body + bytes((FLAG,))


def parse_frame(raw: bytes) -> Frame:
    """One frame between (and including) its flags."""
    if len(raw) < 9 or raw[0] != FLAG or raw[-1] != FLAG:
        raise HdlcError(f"frame {raw[:12].hex()}: not 7E ... 7E of at least 9 bytes")
    body = raw[1:-1]
    format_field = int.from_bytes(body[:2], "big")
    if format_field & 0xF000 != FORMAT_TYPE_3:
        raise HdlcError(f"frame {raw[:12].hex()}: format field 0x{format_field:04X} is not type 3 (0xA...)")
    length = format_field & LENGTH_MASK
    if length != len(body):
        raise HdlcError(f"frame {raw[:12].hex()}: length field {length}, {len(body)} bytes between the flags")
    destination, offset = Address.parse(body, 2)
    source, offset = Address.parse(body, offset)
    if offset + 3 > len(body):
        raise HdlcError(f"frame {raw[:12].hex()}: ends inside its header")
    control = Control.from_byte(body[offset])
    header_end = offset + 1
    if int.from_bytes(body[header_end : header_end + 2], "little") != crc16_x25(body[:header_end]):
        raise HdlcError(f"frame {raw[:12].hex()}: header check sequence does not match")
    information = b""
    if len(body) > header_end + 2:
        if len(body) < header_end + 4:
            raise HdlcError(f"frame {raw[:12].hex()}: information field without its frame check sequence")
        if int.from_bytes(body[-2:], "little") != crc16_x25(body[:-2]):
            raise HdlcError(f"frame {raw[:12].hex()}: frame check sequence does not match")
        information = bytes(body[header_end + 2 : -2])
    return Frame(destination, source, control, information, bool(format_field & SEGMENTED))


FramerEvent = Frame | BadFrame | Noise


class HdlcFramer:
    """Sans-IO: feed bytes, get frames. Uses the length field (not flag hunting) to find a frame's
    end, so a 0x7E inside the information field does no harm; resynchronises on the next flag."""

    def __init__(self, max_frame: int = LENGTH_MASK + 2) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def reset(self) -> None:
        self._buffer.clear()

    @property
    def pending(self) -> int:
        """Bytes held of a frame that has not ended (a lone flag kept from the last one is none)."""
        return 0 if self._buffer in (b"", bytes((FLAG,))) else len(self._buffer)

    def feed(self, data: bytes) -> list[FramerEvent]:
        self._buffer += data
        events: list[FramerEvent] = []
        while True:
            event = self._next()
            if event is None:
                return events
            events.append(event)

    def _next(self) -> FramerEvent | None:
        buffer = self._buffer
        start = buffer.find(FLAG)
        if start < 0:
            if buffer:
                count = len(buffer)
                buffer.clear()
                return Noise(count)
            return None
        if start > 0:
            del buffer[:start]
            return Noise(start)
        # Flags between frames may be shared or repeated: skip the extra ones.
        while len(buffer) > 1 and buffer[1] == FLAG:
            del buffer[:1]
        if len(buffer) < 3:
            return None
        format_field = int.from_bytes(buffer[1:3], "big")
        if format_field & 0xF000 != FORMAT_TYPE_3:
            del buffer[:1]
            return BadFrame(f"format field 0x{format_field:04X} is not type 3", 1)
        total = (format_field & LENGTH_MASK) + 2
        if len(buffer) < total:
            return None
        raw = bytes(buffer[:total])
        try:
            frame = parse_frame(raw)
        except HdlcError as error:
            del buffer[:1]
            return BadFrame(str(error), 1)
        del buffer[: total - 1]  # keep the closing flag: it may open the next frame
        return frame
