"""HDLC frames of IEC 62056-46, frame format type 3 (seed 002 ch. 2.5-2.6).

`7E | format(2) | destination | source | control | HCS(2) | information | FCS(2) | 7E`. The
format field is 0xA000, the segmentation bit S (0x0800) and an 11-bit length counting every byte
between the flags. Addresses use extended addressing (the low bit marks the last byte): the
client address is one byte, the server address one, two or four bytes (upper = logical device,
lower = physical device). HCS covers format to control, FCS format to the end of the
information field; both are CRC-16/X.25, sent least significant byte first.

The information field of SNRM and UA carries the negotiated parameters (IEC 62056-46 ch. 6.4.4.4.3.2:
maximum information field length and window size, each way); I-frames carry the LLC header
(E6 E6 00 to the meter, E6 E7 00 from it) and then the APDU, split over several frames with the
S bit set on all but the last when it does not fit one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .crc import crc16_x25
from .errors import ProtocolError
from .framing import BadFrame, BufferedFramer, Noise, add_event

FLAG = 0x7E
FORMAT_TYPE_3 = 0xA000
SEGMENTED = 0x0800
LENGTH_MASK = 0x07FF
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"
POLL_FINAL = 0x10
DEFAULT_MAX_INFO = 128
"""Maximum information field length when SNRM/UA do not negotiate one (IEC 62056-46 6.4.4.4.3.2)."""


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
        if not 0 <= sap < 0x80:
            raise HdlcError(f"client SAP {sap}: a one-byte HDLC address holds 0-127")
        return cls(sap, None, 1)

    @classmethod
    def server(cls, logical: int, physical: int | None = None) -> Address:
        """The shortest form that holds both parts: 1 byte (logical only, < 128), 2 bytes (both
        < 128) or 4 bytes (each up to 14 bits)."""
        if not 0 <= logical < 0x4000 or not (physical is None or 0 <= physical < 0x4000):
            raise HdlcError(f"server address {logical}/{physical}: each part holds 0-16383")
        if physical is None:
            return cls(logical, None, 1) if logical < 0x80 else cls(logical, 0, 4)
        return cls(logical, physical, 2 if logical < 0x80 and physical < 0x80 else 4)

    def same_station(self, other: Address) -> bool:
        """The same logical and physical device, whatever the form on the wire."""
        return self.upper == other.upper and (self.lower or 0) == (other.lower or 0)

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

    def __str__(self) -> str:
        return str(self.upper) if self.lower is None else f"{self.upper}/{self.lower}"


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

    @property
    def kind(self) -> FrameType:
        return self.control.kind


def parse_frame(raw: bytes) -> Frame:
    """One frame between (and including) its flags."""
    return _parse(raw)[0]


@dataclass(frozen=True, slots=True)
class Checks:
    """The check sequences of a frame as sent and as computed (for `meterlink decode hdlc`)."""

    hcs: int | None
    hcs_computed: int | None
    fcs: int
    fcs_computed: int


def _parse(raw: bytes, check: bool = True, header_checked: bool = False) -> tuple[Frame, Checks]:
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
    fcs, fcs_computed = int.from_bytes(body[-2:], "little"), crc16_x25(body[:-2])
    if len(body) == header_end + 2:  # no information field: the one check sequence is the FCS
        checks = Checks(None, None, fcs, fcs_computed)
        information = b""
    else:
        if len(body) < header_end + 5:
            # An empty information field is no information field: no HCS then (seed 002 ch. 2.6.4).
            raise HdlcError(f"frame {raw[:12].hex()}: a header check sequence without an information field")
        hcs = int.from_bytes(body[header_end : header_end + 2], "little")
        checks = Checks(hcs, hcs if header_checked else crc16_x25(body[:header_end]), fcs, fcs_computed)
        information = bytes(body[header_end + 2 : -2])
    if check:
        if checks.hcs != checks.hcs_computed:
            raise HdlcError(f"frame {raw[:12].hex()}: header check sequence does not match")
        if fcs != fcs_computed:
            raise HdlcError(f"frame {raw[:12].hex()}: frame check sequence does not match")
    return Frame(destination, source, control, information, bool(format_field & SEGMENTED)), checks


def parse_unchecked(raw: bytes) -> tuple[Frame, Checks]:
    """A frame whose structure parses, and its check sequences, whether they match or not."""
    return _parse(raw, check=False)


# -- SNRM / UA parameters ------------------------------------------------------------------------

_PARAMETER_FORMAT = 0x81
_PARAMETER_GROUP = 0x80
_MAX_INFO_TX, _MAX_INFO_RX, _WINDOW_TX, _WINDOW_RX = 0x05, 0x06, 0x07, 0x08


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """The negotiable link parameters, as the sender of SNRM or UA states them for itself:
    `max_info_tx` is the longest information field it sends, `max_info_rx` the longest it takes."""

    max_info_tx: int = DEFAULT_MAX_INFO
    max_info_rx: int = DEFAULT_MAX_INFO
    window_tx: int = 1
    window_rx: int = 1

    def to_bytes(self) -> bytes:
        """The information field of SNRM or UA: `81 80 <length>` and four parameters. Lengths take
        2 bytes and windows 4, as Kamstrup meters and the seed's sessions write them."""
        group = (
            _parameter(_MAX_INFO_TX, self.max_info_tx, 2) + _parameter(_MAX_INFO_RX, self.max_info_rx, 2)
            + _parameter(_WINDOW_TX, self.window_tx, 4) + _parameter(_WINDOW_RX, self.window_rx, 4)
        )
        return bytes((_PARAMETER_FORMAT, _PARAMETER_GROUP, len(group))) + group

    @classmethod
    def parse(cls, information: bytes) -> HdlcParameters:
        """The parameters of an SNRM or UA information field; an empty one means the defaults."""
        if not information:
            return cls()
        if len(information) < 3 or information[0] != _PARAMETER_FORMAT or information[1] != _PARAMETER_GROUP:
            raise HdlcError(f"SNRM/UA parameters {information[:3].hex()}: expected format 81 and group 80")
        end = 3 + information[2]
        if end != len(information):
            raise HdlcError(f"SNRM/UA parameters: group length {information[2]}, {len(information) - 3} bytes follow")
        values = {}
        offset = 3
        while offset < end:
            if offset + 2 > end or offset + 2 + information[offset + 1] > end:
                raise HdlcError(f"SNRM/UA parameters: parameter at byte {offset} is cut short")
            identifier, size = information[offset], information[offset + 1]
            if not 1 <= size <= 4:
                raise HdlcError(f"SNRM/UA parameters: parameter 0x{identifier:02X} has {size} value bytes, expected 1-4")
            values[identifier] = int.from_bytes(information[offset + 2 : offset + 2 + size], "big")
            offset += 2 + size
        default = cls()
        return cls(
            values.get(_MAX_INFO_TX, default.max_info_tx), values.get(_MAX_INFO_RX, default.max_info_rx),
            values.get(_WINDOW_TX, default.window_tx), values.get(_WINDOW_RX, default.window_rx),
        )

    def answered_by(self, response: HdlcParameters) -> HdlcParameters:
        """What the client may use after the server answered its proposal (`self`) with `response`:
        it sends no more than the server takes and takes no more than it proposed."""
        return HdlcParameters(
            max_info_tx=max(1, min(self.max_info_tx, response.max_info_rx)),
            max_info_rx=min(self.max_info_rx, response.max_info_tx),
            window_tx=max(1, min(self.window_tx, response.window_rx)),
            window_rx=min(self.window_rx, response.window_tx),
        )

    def answer(self, proposal: HdlcParameters) -> HdlcParameters:
        """The server's UA parameters for a client's SNRM `proposal`, `self` being what the server
        supports: no more than either side offers."""
        return HdlcParameters(
            max_info_tx=min(self.max_info_tx, proposal.max_info_rx),
            max_info_rx=min(self.max_info_rx, proposal.max_info_tx),
            window_tx=min(self.window_tx, proposal.window_rx),
            window_rx=min(self.window_rx, proposal.window_tx),
        )


def _parameter(identifier: int, value: int, size: int) -> bytes:
    return bytes((identifier, size)) + value.to_bytes(size, "big")


def split_information(information: bytes, max_info: int) -> list[bytes]:
    """The information fields of the I-frames that carry `information` (segmentation, S bit on all
    but the last)."""
    if max_info < 1:
        raise HdlcError(f"maximum information field length {max_info}: must be at least 1")
    return [information[i : i + max_info] for i in range(0, len(information), max_info)] or [b""]


# -- framing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Partial:
    """The read ended inside a frame: `held` octets of it are kept until the rest arrives (the
    inter-octet timeout, IEC 62056-46 6.4.4.4.3.3, runs from here)."""

    held: int


@dataclass(frozen=True, slots=True)
class Quiet:
    """The read ended between frames: nothing is held."""


FramerEvent = Frame | BadFrame | Noise | Partial | Quiet


class HdlcFramer(BufferedFramer):
    """Sans-IO: feed bytes, get frames. Uses the length field (not flag hunting) to find a frame's
    end, so a 0x7E inside the information field does no harm; resynchronises on the next flag.
    Every feed ends with `Partial` or `Quiet`, so the link can time a frame that stops half-way."""

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
                held = self.pending
                events.append(Partial(held) if held else Quiet())
                return events
            add_event(events, event)

    def _next(self) -> Frame | BadFrame | Noise | None:
        buffer = self._buffer
        while True:
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
            if len(buffer) < 2:
                return None
            if buffer[1] & 0xF0 != FORMAT_TYPE_3 >> 8:
                # Not the start of a frame: the flag closed the last one, what follows is noise.
                del buffer[:1]
                continue
            break
        if len(buffer) < 3:
            return None
        format_field = (buffer[1] << 8) | buffer[2]
        total = (format_field & LENGTH_MASK) + 2
        header = _header_check(buffer, total)
        if header is False:
            return self._bad(f"format 0x{format_field:04X}: the header check sequence does not match")
        if len(buffer) < total:
            return None
        raw = bytes(buffer[:total])
        try:
            frame = _parse(raw, header_checked=header is True)[0]
        except HdlcError as error:
            return self._bad(str(error))
        del buffer[: total - 1]  # keep the closing flag: it may open the next frame
        return frame

    def _bad(self, reason: str) -> BadFrame:
        """Skip a rejected frame start: its flag and what follows up to the next flag, which cannot
        start a frame (one step per false start, not two)."""
        following = self._buffer.find(FLAG, 1)
        count = len(self._buffer) if following < 0 else following
        del self._buffer[:count]
        return BadFrame(reason, count, noise=count - 1)


def _header_check(buffer: bytearray, total: int) -> bool | None:
    """Whether the header of the frame starting at buffer[0] checks out (HCS), as soon as its bytes
    are in: a corrupt length field must not hold back the frames behind it. None: not known yet, or
    a frame without information field (its one check sequence is the FCS at its end)."""
    end = 3
    for _ in range(2):  # destination, then source: up to 4 bytes each, the last with the low bit set
        while end < len(buffer) and not buffer[end] & 1 and end < 3 + 8:
            end += 1
        end += 1
    header_end = end + 1  # the control field
    if header_end + 2 > len(buffer) or total <= header_end + 3:
        return None
    hcs = buffer[header_end] | buffer[header_end + 1] << 8
    return hcs == crc16_x25(bytes(buffer[1:header_end]))
