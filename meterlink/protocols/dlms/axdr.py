"""A-XDR encoding of COSEM `Data` (IEC 62056-6-2 / DLMS UA Green Book ch. 9.5; seed 002 ch. 3).

Every value keeps its DLMS type (`DataTag`), so what was decoded can be encoded back byte for
byte, and a caller can tell an octet-string from a visible-string.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError


class AxdrError(ProtocolError):
    """A-XDR data that cannot be decoded or encoded."""


class DataTag(enum.IntEnum):
    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27


_FIXED: dict[DataTag, struct.Struct] = {
    DataTag.DOUBLE_LONG: struct.Struct(">i"),
    DataTag.DOUBLE_LONG_UNSIGNED: struct.Struct(">I"),
    DataTag.INTEGER: struct.Struct(">b"),
    DataTag.LONG: struct.Struct(">h"),
    DataTag.UNSIGNED: struct.Struct(">B"),
    DataTag.LONG_UNSIGNED: struct.Struct(">H"),
    DataTag.LONG64: struct.Struct(">q"),
    DataTag.LONG64_UNSIGNED: struct.Struct(">Q"),
    DataTag.ENUM: struct.Struct(">B"),
    DataTag.BCD: struct.Struct(">b"),
    DataTag.FLOAT32: struct.Struct(">f"),
    DataTag.FLOAT64: struct.Struct(">d"),
}
_OCTETS = {DataTag.DATE_TIME: 12, DataTag.DATE: 5, DataTag.TIME: 4}
_TAGS: dict[int, DataTag] = {tag.value: tag for tag in DataTag}
"""Byte -> tag without the Enum constructor, which costs more than the rest of a decode step."""
_STRINGS = {DataTag.OCTET_STRING, DataTag.VISIBLE_STRING, DataTag.UTF8_STRING}


@dataclass(frozen=True, slots=True)
class Data:
    """One COSEM value: its type and its Python value.

    value is an int or float for numbers, bool, bytes for octet-string / date-time / date / time,
    str for visible- and utf8-string, a tuple of `Data` for array and structure, `BitString` for
    bit-string, None for null-data.
    """

    tag: DataTag
    value: Any = None

    @property
    def is_obis(self) -> bool:
        return self.tag is DataTag.OCTET_STRING and len(self.value) == 6


@dataclass(frozen=True, slots=True)
class BitString:
    bits: int
    data: bytes


def decode_length(buffer: bytes, offset: int) -> tuple[int, int]:
    """A BER length (X.690 8.1.3): one byte below 0x80, else 0x8N and N bytes."""
    try:
        first = buffer[offset]
        if first < 0x80:
            return first, offset + 1
        count = first & 0x7F
        if count == 0 or count > 4 or offset + 1 + count > len(buffer):
            raise AxdrError(f"length at byte {offset}: bad BER length form 0x{first:02X}")
        return int.from_bytes(buffer[offset + 1 : offset + 1 + count], "big"), offset + 1 + count
    except IndexError:
        raise AxdrError(f"length at byte {offset}: data ends") from None


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


_FIXED_BY_BYTE = {int(tag): (tag, layout) for tag, layout in _FIXED.items()}
_OCTETS_BY_BYTE = {int(tag): (tag, size) for tag, size in _OCTETS.items()}
_STRUCTURED = (int(DataTag.ARRAY), int(DataTag.STRUCTURE))
_STRINGS_BY_BYTE = {int(tag): tag for tag in _STRINGS}


def decode_data(buffer: bytes, offset: int = 0, depth: int = 0) -> tuple[Data, int]:
    """Decode one tagged value at `offset`; returns it and the offset after it."""
    # Dispatch on the raw byte: this is the hot loop of every push telegram and GET answer.
    if depth > 32:
        raise AxdrError(f"data at byte {offset}: nested deeper than 32 levels")
    if offset >= len(buffer):
        raise AxdrError(f"data at byte {offset}: data ends before a type tag")
    raw_tag = buffer[offset]
    offset += 1
    fixed = _FIXED_BY_BYTE.get(raw_tag)
    if fixed is not None:
        tag, layout = fixed
        if offset + layout.size > len(buffer):
            _need(buffer, offset, layout.size, tag)
        return Data(tag, layout.unpack_from(buffer, offset)[0]), offset + layout.size
    if raw_tag in _STRUCTURED:
        count, offset = decode_length(buffer, offset)
        items = []
        for _ in range(count):
            item, offset = decode_data(buffer, offset, depth + 1)
            items.append(item)
        return Data(_TAGS[raw_tag], tuple(items)), offset
    string_tag = _STRINGS_BY_BYTE.get(raw_tag)
    if string_tag is not None:
        length, offset = decode_length(buffer, offset)
        _need(buffer, offset, length, string_tag)
        raw = bytes(buffer[offset : offset + length])
        value = raw if string_tag is DataTag.OCTET_STRING else _text(raw, string_tag, offset)
        return Data(string_tag, value), offset + length
    octets = _OCTETS_BY_BYTE.get(raw_tag)
    if octets is not None:
        tag, size = octets
        _need(buffer, offset, size, tag)
        return Data(tag, bytes(buffer[offset : offset + size])), offset + size
    tag = _TAGS.get(raw_tag)
    if tag is None:
        raise AxdrError(f"data at byte {offset - 1}: unknown type tag 0x{raw_tag:02X}")
    if tag is DataTag.BOOLEAN:
        _need(buffer, offset, 1, tag)
        return Data(tag, buffer[offset] != 0), offset + 1
    if tag is DataTag.BIT_STRING:
        bits, offset = decode_length(buffer, offset)
        size = (bits + 7) // 8
        _need(buffer, offset, size, tag)
        return Data(tag, BitString(bits, bytes(buffer[offset : offset + size]))), offset + size
    if tag is DataTag.NULL_DATA:
        return Data(tag), offset
    raise AxdrError(f"data at byte {offset - 1}: type {tag.name.lower()} is not supported")


def _need(buffer: bytes, offset: int, size: int, tag: DataTag) -> None:
    if offset + size > len(buffer):
        raise AxdrError(f"{tag.name.lower()} at byte {offset}: needs {size} bytes, {len(buffer) - offset} left")


def _text(raw: bytes, tag: DataTag, offset: int) -> str:
    try:
        return raw.decode("utf-8" if tag is DataTag.UTF8_STRING else "latin-1")
    except UnicodeDecodeError:
        raise AxdrError(f"{tag.name.lower()} at byte {offset}: not valid UTF-8") from None


def encode_data(data: Data) -> bytes:
    """The A-XDR bytes of one value, tag included."""
    tag = data.tag
    head = bytes((tag,))
    if tag in _FIXED:
        try:
            return head + _FIXED[tag].pack(data.value)
        except struct.error as error:
            raise AxdrError(f"{tag.name.lower()}: {data.value!r} does not fit ({error})") from None
    if tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        return head + encode_length(len(data.value)) + b"".join(encode_data(item) for item in data.value)
    if tag in _STRINGS:
        raw = data.value if isinstance(data.value, bytes) else data.value.encode("utf-8" if tag is DataTag.UTF8_STRING else "latin-1")
        return head + encode_length(len(raw)) + raw
    if tag in _OCTETS:
        if len(data.value) != _OCTETS[tag]:
            raise AxdrError(f"{tag.name.lower()}: needs {_OCTETS[tag]} bytes, got {len(data.value)}")
        return head + data.value
    if tag is DataTag.BOOLEAN:
        return head + (b"\xff" if data.value else b"\x00")
    if tag is DataTag.BIT_STRING:
        return head + encode_length(data.value.bits) + data.value.data
    if tag is DataTag.NULL_DATA:
        return head
    raise AxdrError(f"type {tag.name.lower()} cannot be encoded")


def structure(*items: Data) -> Data:
    return Data(DataTag.STRUCTURE, tuple(items))


def array(*items: Data) -> Data:
    return Data(DataTag.ARRAY, tuple(items))


def octet_string(value: bytes) -> Data:
    return Data(DataTag.OCTET_STRING, bytes(value))
