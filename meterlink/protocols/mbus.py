"""M-Bus link layer (EN 13757-2 ch. 5) for the Austrian DLMS push (seed 001 ch. B.4).

Frames: the single character 0xE5 (acknowledge); the short frame `10 C A CS 16`; the control and
long frames `68 L L 68 C A CI data CS 16` with L = bytes from C to the end of data and CS the
arithmetic sum of those bytes. `MBusFramer` cuts a byte stream into frames and resynchronises
after noise; `SegmentJoiner` joins the DLMS segments of one telegram by their CI field.

Sagemcom T210-D meters (Netz NÖ / EVN) send a first long frame of 257 bytes from C to the end of
data whose L field wrapped around: `68 01 01 68`. No long frame can be shorter than 3 (C, A and
CI), so a header with L < 3 is read at L + 256, and taken only where checksum and stop byte hold.
A header with L >= 3 is judged at L alone: waiting 256 bytes more after every damaged frame would
hold back the acknowledgements of the frames behind it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import ProtocolError
from .framing import BadFrame, Noise, StartByteFramer

ACK = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16

ADDRESS_SEARCH = 0xFD  # secondary addressing
ADDRESS_BROADCAST_NO_REPLY = 0xFF
ADDRESS_TEST = 0xFE
ADDRESS_UNCONFIGURED = 0x00
ADDRESS_SEARCH_TELEGRAM = 0xF0  # 240: the Austrian push meters' search telegram (seed 001 B.4)

FCB = 0x20
FCV = 0x10

MIN_LONG_LENGTH = 3  # C, A and CI
LENGTH_OVERFLOW = 0x100


class CField(enum.IntEnum):
    """C-field function codes (EN 13757-2 table 3), FCB/FCV bits cleared."""

    SND_NKE = 0x40
    SND_UD = 0x53
    REQ_UD2 = 0x5B
    REQ_UD1 = 0x5A
    RSP_UD = 0x08

    @classmethod
    def of(cls, c_field: int) -> CField | None:
        """The function of a C field, ignoring FCB (and FCV for SND_UD / REQ_UD, ACD/DFC for RSP_UD)."""
        if c_field & 0x40:  # primary station: master to slave
            base = c_field & ~FCB
            if base == cls.SND_NKE:
                return cls.SND_NKE
            for function in (cls.SND_UD, cls.REQ_UD2, cls.REQ_UD1):
                if base | FCV == function | FCV and base & 0x0F == function & 0x0F:
                    return function
            return None
        return cls.RSP_UD if c_field & 0x0F == cls.RSP_UD else None


class MBusError(ProtocolError):
    """An M-Bus frame that is malformed."""


@dataclass(frozen=True, slots=True)
class SingleChar:
    """0xE5, the acknowledgement, `count` times in a row (one event for a run, not one per byte)."""

    count: int = 1


@dataclass(frozen=True, slots=True)
class ShortFrame:
    c: int
    a: int

    @property
    def function(self) -> CField | None:
        return CField.of(self.c)


@dataclass(frozen=True, slots=True)
class LongFrame:
    """A long frame, or a control frame when `data` is empty."""

    c: int
    a: int
    ci: int
    data: bytes
    length_overflow: bool = False
    """The L field said 256 less than the frame's length (the Sagemcom T210-D's first frame)."""

    @property
    def function(self) -> CField | None:
        return CField.of(self.c)


Frame = SingleChar | ShortFrame | LongFrame
FramerEvent = SingleChar | ShortFrame | LongFrame | BadFrame | Noise


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def encode_short(c: int, a: int) -> bytes:
    return bytes((SHORT_START, c, a, (c + a) & 0xFF, STOP))


def encode_long(c: int, a: int, ci: int, data: bytes, length_overflow: bool = False) -> bytes:
    """A long frame; with `length_overflow`, one of 256 to 258 bytes from C on whose L field says
    256 less, as the Sagemcom T210-D sends it."""
    body = bytes((c, a, ci)) + data
    if length_overflow:
        if not LENGTH_OVERFLOW <= len(body) < LENGTH_OVERFLOW + MIN_LONG_LENGTH:
            raise MBusError(f"long frame with an overflowing L: {len(body)} bytes from C to the end of data, 256 to 258")
        length = len(body) - LENGTH_OVERFLOW
    elif len(body) > 255:
        raise MBusError(f"long frame: {len(body)} bytes from C to the end of data, at most 255")
    else:
        length = len(body)
    return bytes((LONG_START, length, length, LONG_START)) + body + bytes((checksum(body), STOP))


class MBusFramer(StartByteFramer[FramerEvent]):
    """Sans-IO framing: feed bytes as they arrive, get frames (and noise) out."""

    def _next(self) -> FramerEvent | None:
        buffer = self._buffer
        start = buffer[0]
        if start == ACK:
            return self._acks()
        if start == SHORT_START:
            return self._short()
        if start == LONG_START:
            return self._long()
        return self._skip_noise()

    def _acks(self) -> SingleChar:
        buffer = self._buffer
        run = 1
        while run < len(buffer) and buffer[run] == ACK:
            run += 1
        del buffer[:run]
        return SingleChar(run)

    def _skip_noise(self) -> Noise:
        buffer = self._buffer
        skip = 1
        while skip < len(buffer) and buffer[skip] not in (ACK, SHORT_START, LONG_START):
            skip += 1
        del buffer[:skip]
        return Noise(skip)

    def _short(self) -> FramerEvent | None:
        buffer = self._buffer
        if len(buffer) < 5:
            return None
        c, a, cs, stop = buffer[1], buffer[2], buffer[3], buffer[4]
        if stop != STOP or cs != (c + a) & 0xFF:
            return self._bad("short frame: " + ("no stop byte" if stop != STOP else "checksum does not match"))
        del buffer[:5]
        return ShortFrame(c, a)

    def _long(self) -> FramerEvent | None:
        buffer = self._buffer
        if len(buffer) < 4:
            return None
        stated = buffer[1]
        if buffer[2] != stated or buffer[3] != LONG_START:
            return self._bad(f"long frame: header 68 {buffer[1]:02X} {buffer[2]:02X} {buffer[3]:02X} is not 68 L L 68")
        overflow = stated < MIN_LONG_LENGTH
        length = stated + LENGTH_OVERFLOW if overflow else stated
        end = 4 + length + 2
        if len(buffer) < end:
            return None
        name = f"long frame (L=0x{stated:02X}, read as {length} bytes)" if overflow else f"long frame (L={length})"
        if buffer[end - 1] != STOP:
            return self._bad(f"{name}: no stop byte")
        body = bytes(buffer[4 : 4 + length])
        if buffer[end - 2] != checksum(body):
            return self._bad(f"{name}: checksum 0x{buffer[end - 2]:02X}, computed 0x{checksum(body):02X}")
        del buffer[:end]
        return LongFrame(body[0], body[1], body[2], body[3:], overflow)

    def _bad(self, reason: str) -> BadFrame:
        # Drop only the start byte: the real frame may begin inside what looked like this one.
        del self._buffer[:1]
        return BadFrame(reason, 1)


LAST_SEGMENT = 0x10
TSAP_PREFIX_LENGTH = 2  # source and destination TSAP (0x01 0x67 on Kaifa meters)


def segment_number(frame: LongFrame) -> int:
    """The DLMS segment number in the CI field's low nibble (0 = first)."""
    return frame.ci & 0x0F


def is_last_segment(frame: LongFrame) -> bool:
    """CI bit 4 marks the last segment of a telegram."""
    return bool(frame.ci & LAST_SEGMENT)


def segment_payload(frame: LongFrame) -> bytes:
    """A segment's share of the APDU: its data after the source and destination TSAP."""
    if len(frame.data) < TSAP_PREFIX_LENGTH:
        raise MBusError(f"segment CI 0x{frame.ci:02X}: {len(frame.data)} data bytes, no TSAP prefix")
    return frame.data[TSAP_PREFIX_LENGTH:]


def is_dlms_segment(frame: LongFrame) -> bool:
    """CI 0x00-0x1F carry DLMS segments in these meters' push telegrams."""
    return frame.ci <= 0x1F


def split_segments(apdu: bytes, c: int, a: int, max_length: int = 0xFA, tsap: bytes = b"\x01\x67") -> list[bytes]:
    """Split an APDU into long frames of at most L = `max_length` the way Kaifa meters do (for
    simulators and tests)."""
    room = max_length - 3 - len(tsap)  # APDU bytes per frame after C, A, CI and the TSAP
    chunks = [apdu[i : i + room] for i in range(0, len(apdu), room)] or [b""]
    if len(chunks) > 16:
        raise MBusError(f"APDU of {len(apdu)} bytes needs {len(chunks)} segments, at most 16")
    frames = []
    for number, chunk in enumerate(chunks):
        ci = number | (LAST_SEGMENT if number == len(chunks) - 1 else 0)
        frames.append(encode_long(c, a, ci, tsap + chunk))
    return frames
