"""Wireless M-Bus link layer (EN 13757-4 ch. 12): frame formats A and B with their block CRCs.

A frame is `L C M(2) A(6) CI ...`: L counts the bytes after it, C is the link's function (0x44
SND_NR for a meter's periodic telegram), M the manufacturer, A identification (4, BCD), version
and device type. Format A (modes T and S, and C's format A) puts a CRC after the first 10 bytes and
then after every 16 bytes; L leaves the CRCs out. Format B (mode C) puts one CRC after byte 126
(or at the end) and one at the end; L counts them. Each CRC is EN 13757-4's 16-bit CRC (polynomial
0x3D65, complemented, most significant byte first) over its block; format B's first covers the
frame from L on.

Receivers hand frames over with the CRCs checked and removed (iM871A, AMB8465, rtl_wmbus) or
still inside (CUL). `parse_frame` takes either: it reads the CRCs where the length says they are,
checks and removes them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import ProtocolError
from .mbus_app import DeviceAddress

C_SND_NR = 0x44
C_SND_IR = 0x46
C_ACC_NR = 0x47
FIRST_BLOCK = 10
BLOCK = 16
B_SECOND_BLOCK_END = 126
"""Format B: the first CRC follows byte 126 of the frame (L included) when the frame is longer."""


class WMBusError(ProtocolError):
    """A wireless M-Bus frame that cannot be read (length, CRC)."""


class FrameFormat(enum.Enum):
    A = "A"
    B = "B"
    NO_CRC = "without CRCs"


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x3D65) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _table()


def crc16_en13757(data: bytes) -> int:
    """EN 13757-4's CRC: polynomial 0x3D65, initial 0, not reflected, complemented."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF


@dataclass(frozen=True, slots=True)
class WMBusFrame:
    """A frame with its CRCs removed; `data` holds C, M, A, CI and the rest (L is its length + 1)."""

    c: int
    address: DeviceAddress
    apdu: bytes
    """CI onwards."""
    format: FrameFormat

    @property
    def meter_id(self) -> str:
        return self.address.id

    def to_bytes(self) -> bytes:
        """The frame as a receiver that removed the CRCs hands it over (L first)."""
        body = bytes((self.c,)) + self.address.to_link_bytes() + self.apdu
        return bytes((len(body),)) + body


def _a_blocks(length: int) -> list[int]:
    """Data bytes in each block of a format-A frame whose L is `length`."""
    sizes = [FIRST_BLOCK]
    left = length + 1 - FIRST_BLOCK
    while left > 0:
        sizes.append(min(BLOCK, left))
        left -= sizes[-1]
    return sizes


def with_crcs_a(frame: bytes) -> bytes:
    """A frame (L first, no CRCs) in format A with its block CRCs: for simulated receivers and tests."""
    out = bytearray()
    pos = 0
    for size in _a_blocks(frame[0]):
        block = frame[pos:pos + size]
        out += block + crc16_en13757(block).to_bytes(2, "big")
        pos += size
    return bytes(out)


def with_crcs_b(frame: bytes) -> bytes:
    """A frame (L first, no CRCs) in format B with its CRCs (L rewritten to count them)."""
    body = frame[1:]
    total = len(body) + 2 + (2 if len(body) + 1 + 2 > B_SECOND_BLOCK_END + 2 else 0)
    data = bytes((total,)) + body
    if len(data) <= B_SECOND_BLOCK_END:
        return data + crc16_en13757(data).to_bytes(2, "big")
    first, rest = data[:B_SECOND_BLOCK_END], data[B_SECOND_BLOCK_END:]
    return first + crc16_en13757(first).to_bytes(2, "big") + rest + crc16_en13757(rest).to_bytes(2, "big")


def _strip_a(data: bytes) -> bytes | None:
    """The frame without CRCs when `data` is a format-A frame with correct CRCs; None when the
    length does not fit; WMBusError when it fits and a CRC is wrong."""
    sizes = _a_blocks(data[0])
    if len(data) != sum(sizes) + 2 * len(sizes):
        return None
    out = bytearray()
    pos = 0
    for number, size in enumerate(sizes, 1):
        block, crc = data[pos:pos + size], data[pos + size:pos + size + 2]
        if crc16_en13757(block).to_bytes(2, "big") != crc:
            raise WMBusError(f"format A block {number} (bytes {pos}-{pos + size - 1}): CRC {crc.hex()}, "
                             f"computed {crc16_en13757(block):04x}")
        out += block
        pos += size + 2
    return bytes(out)


def _strip_b(data: bytes) -> bytes | None:
    """The frame without CRCs (L rewritten) when `data` is format B with correct CRCs, else None."""
    if len(data) != data[0] + 1 or len(data) < 12:
        return None
    if len(data) <= B_SECOND_BLOCK_END + 2:
        body, crc = data[:-2], data[-2:]
        if crc16_en13757(body).to_bytes(2, "big") != crc:
            return None
    else:
        first, crc1 = data[:B_SECOND_BLOCK_END], data[B_SECOND_BLOCK_END:B_SECOND_BLOCK_END + 2]
        rest, crc2 = data[B_SECOND_BLOCK_END + 2:-2], data[-2:]
        if (crc16_en13757(first).to_bytes(2, "big") != crc1 or crc16_en13757(rest).to_bytes(2, "big") != crc2):
            return None
        body = first + rest
    return bytes((len(body) - 1,)) + body[1:]


def parse_frame(data: bytes) -> WMBusFrame:
    """A frame as a receiver hands it over: L first, format A or B, with or without its CRCs."""
    if len(data) < 12:
        raise WMBusError(f"frame of {len(data)} bytes: at least L, C, M, A and CI (12 bytes)")
    frame: bytes | None
    if len(data) == data[0] + 1:
        stripped_b = _strip_b(data)
        frame, form = (stripped_b, FrameFormat.B) if stripped_b is not None else (data, FrameFormat.NO_CRC)
    else:
        frame, form = _strip_a(data), FrameFormat.A
        if frame is None:
            raise WMBusError(f"frame of {len(data)} bytes with L={data[0]}: neither L+1 bytes (format B, or "
                             f"without CRCs) nor format A with its block CRCs ({_a_length(data[0])} bytes)")
    return WMBusFrame(frame[1], DeviceAddress.parse(frame[2:10], manufacturer_first=True), frame[10:], form)


def _a_length(length: int) -> int:
    sizes = _a_blocks(length)
    return sum(sizes) + 2 * len(sizes)


def frame_length(first_byte: int, form: FrameFormat) -> int:
    """Bytes on the air of a frame whose L is `first_byte`, in the given format (for receivers that
    pass CRCs on)."""
    return _a_length(first_byte) if form is FrameFormat.A else first_byte + 1
