"""SunSpec models over Modbus RTU (seed 004 ch. 9.1, 17.1-17.3, appendix B).

Data points are holding registers grouped in models; each model starts with its ID and payload
length L (not counting those two registers), and the chain starts at data-model address 40001 with
'SunS' and ends with model 0xFFFF. The seed gives data-model addresses (from 1); the protocol's
addresses are one lower. Values are big-endian; each type has its own "not available" value.
Strings are NUL-padded over their whole register range; binary data (BLOBs) is a repeating block
of registers with a count of registers (N..) and of bytes used (B..).

The Modbus RTU PDUs and framing are pymodbus's, used sans-IO: this module turns requests into bytes
and bytes into responses, and never touches a port. Writes use Write Multiple Registers only, and
only over whole data points: a write that covers part of a point is refused before it is sent.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
)

from .errors import ProtocolError

BASE_ADDRESS = 40001
"""Data-model address of the 'SunS' marker (ch. 17.1)."""
SUNS = b"SunS"
END_MODEL = 0xFFFF
MAX_READ = 125
"""Registers per Read Holding Registers (Modbus application protocol)."""
MAX_WRITE = 123
"""Registers per Write Multiple Registers."""


class SunSpecError(ProtocolError):
    """Registers that do not hold what the model says."""


class ModbusError(ProtocolError):
    """A Modbus RTU frame that cannot be decoded, or a request that must not be sent."""


def protocol_address(data_model_address: int) -> int:
    """The address on the wire for a data-model address (ch. 17.1: uniformly one lower)."""
    return data_model_address - 1


class PointType(enum.Enum):
    """The data types of ch. 17.2, with their size in registers."""

    ACC32 = "acc32"
    BITFIELD32 = "bitfield32"
    ENUM16 = "enum16"
    INT16 = "int16"
    PAD = "pad"
    SUNSSF = "sunssf"
    UINT16 = "uint16"
    UINT32 = "uint32"
    STRING = "string"
    BLOB = "blob"
    """The repeating uint16 block of binary data, up to the end of its model."""

    @property
    def signed(self) -> bool:
        return self in (PointType.INT16, PointType.PAD, PointType.SUNSSF)


def not_available(kind: PointType, value: int) -> bool:
    """Whether `value` (as decoded by `decode_point`) is the type's "not available" (ch. 17.2)."""
    match kind:
        case PointType.ACC32:
            return value == 0
        case PointType.BITFIELD32:
            return bool(value & 0x80000000)
        case PointType.ENUM16 | PointType.UINT16:
            return value == 0xFFFF
        case PointType.INT16 | PointType.PAD | PointType.SUNSSF:
            return value == -0x8000
        case PointType.UINT32:
            return value == 0xFFFFFFFF
    return False


@dataclass(frozen=True, slots=True)
class Point:
    """One data point: its offset from the model's ID register, size in registers, type, unit and
    the point holding its scale factor."""

    id: str
    offset: int
    size: int
    type: PointType
    unit: str | None = None
    scale: str | None = None
    writable: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """A model's data points by offset. A BLOB or a final string runs to the end of the model, so
    its size comes from the length the meter reports, not from the table."""

    model_id: int
    name: str
    points: tuple[Point, ...]

    def point(self, point_id: str) -> Point:
        for point in self.points:
            if point.id == point_id:
                return point
        raise KeyError(f"{self.name} has no data point {point_id}")

    def sized(self, length: int) -> tuple[Point, ...]:
        """The points of an instance whose payload length is `length`; the last point takes the rest."""
        last = self.points[-1]
        rest = length + 2 - last.offset
        if rest < 1:
            raise SunSpecError(f"model {self.model_id} ({self.name}): payload length {length} leaves no room for {last.id}")
        return self.points[:-1] + (Point(last.id, last.offset, rest, last.type, last.unit, last.scale, last.writable),)


@dataclass(frozen=True, slots=True)
class ModelInstance:
    """One model of the chain as the meter reports it: where it starts (data-model address of its
    ID register), its ID and payload length."""

    address: int
    model_id: int
    length: int

    @property
    def end(self) -> int:
        """The data-model address after the model."""
        return self.address + 2 + self.length


def decode_point(point: Point, registers: Sequence[int]) -> int | str | bytes:
    """The point's value from its registers: an int (signed for int16, pad, sunssf), a string
    (NUL padding removed; bytes that are not UTF-8 kept as surrogate escapes so that they encode
    back exactly), or the bytes of a BLOB area."""
    if len(registers) != point.size:
        raise SunSpecError(f"{point.id}: {len(registers)} registers, the point has {point.size}")
    if any(not 0 <= register <= 0xFFFF for register in registers):
        raise SunSpecError(f"{point.id}: a register value outside 0..0xFFFF")
    data = struct.pack(f">{len(registers)}H", *registers)
    match point.type:
        case PointType.STRING:
            return data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        case PointType.BLOB:
            return data
        case PointType.INT16 | PointType.PAD | PointType.SUNSSF:
            return struct.unpack(">h", data)[0]
        case PointType.ENUM16 | PointType.UINT16:
            return registers[0]
        case _:
            return struct.unpack(">I", data)[0]


def encode_point(point: Point, value: int | str) -> list[int]:
    """The registers of a point; a string is NUL-padded over its whole register range (ch. 17.2)."""
    if point.type is PointType.STRING:
        if not isinstance(value, str):
            raise SunSpecError(f"{point.id}: a string point takes a string")
        data = value.encode("utf-8", "surrogateescape")
        if len(data) > point.size * 2:
            raise SunSpecError(f"{point.id}: {len(data)} bytes do not fit in {point.size} registers")
        data = data.ljust(point.size * 2, b"\0")
        return list(struct.unpack(f">{point.size}H", data))
    if not isinstance(value, int) or isinstance(value, bool):
        raise SunSpecError(f"{point.id}: a {point.type.value} point takes an integer")
    try:
        if point.size == 1:
            return [struct.unpack(">H", struct.pack(">h" if point.type.signed else ">H", value))[0]]
        if point.size == 2:
            return list(struct.unpack(">2H", struct.pack(">I", value)))
    except struct.error:
        raise SunSpecError(f"{point.id}: {value} is out of range for {point.type.value}") from None
    raise SunSpecError(f"{point.id}: cannot write a {point.type.value} point")


def blob(data: bytes, used: int, point_id: str) -> bytes:
    """The `used` bytes of a BLOB area (ch. 17.2: the B.. register counts them)."""
    if used > len(data):
        raise SunSpecError(f"{point_id}: {used} bytes claimed in an area of {len(data)}")
    return data[:used]


def decode_model(layout: Layout, instance: ModelInstance, registers: Sequence[int]) -> dict[str, int | str | bytes]:
    """Every point of a model instance from its registers (starting with its ID register)."""
    if instance.model_id != layout.model_id:
        raise SunSpecError(f"model at {instance.address} is {instance.model_id}, expected {layout.model_id} ({layout.name})")
    if len(registers) != instance.length + 2:
        raise SunSpecError(f"{layout.name}: {len(registers)} registers read, the model has {instance.length + 2}")
    if registers[0] != layout.model_id or registers[1] != instance.length:
        raise SunSpecError(f"{layout.name} at {instance.address}: header {registers[0]}/{registers[1]}, "
                           f"the chain said {layout.model_id}/{instance.length}")
    return {point.id: decode_point(point, registers[point.offset:point.offset + point.size])
            for point in layout.sized(instance.length) if point.type is not PointType.PAD}


def write_span(layout: Layout, instance: ModelInstance, values: dict[str, int | str]) -> tuple[int, list[int]]:
    """(data-model address, registers) of one write covering exactly the given points, which must
    follow each other without a gap; a write never covers part of a point (ch. 17.1)."""
    points = sorted((layout.point(point_id) for point_id in values), key=lambda point: point.offset)
    if not points:
        raise SunSpecError("nothing to write")
    registers: list[int] = []
    for before, point in zip([None, *points], points):
        if not point.writable:
            raise SunSpecError(f"{layout.name}: {point.id} is not writable")
        if before is not None and before.offset + before.size != point.offset:
            raise SunSpecError(f"{layout.name}: {before.id} and {point.id} do not follow each other; write them apart")
        registers.extend(encode_point(point, values[point.id]))
    return instance.address + points[0].offset, registers


def check_whole_points(layout: Layout, instance: ModelInstance, address: int, count: int) -> None:
    """Raise ModbusError unless [address, address + count) starts and ends on point boundaries."""
    start, end = address - instance.address, address - instance.address + count
    bounds = {point.offset for point in layout.sized(instance.length)} | {instance.length + 2}
    if start not in bounds or end not in bounds or start < 2:
        raise ModbusError(f"{layout.name}: a write of {count} registers at {address} covers part of a data point")


# -- model chain ----------------------------------------------------------------------------------


def check_marker(registers: Sequence[int]) -> None:
    """The two registers at 40001 must spell 'SunS' (ch. 17.3)."""
    if len(registers) != 2 or struct.pack(">2H", *registers) != SUNS:
        raise SunSpecError(f"no SunSpec marker at {BASE_ADDRESS}: {list(registers)}")


def model_header(address: int, registers: Sequence[int]) -> ModelInstance:
    """The model at `address` from its two header registers (ID, L)."""
    if len(registers) != 2:
        raise SunSpecError(f"model header at {address}: {len(registers)} registers")
    return ModelInstance(address, registers[0], registers[1])


def find_models(chain: Iterable[ModelInstance], model_id: int) -> list[ModelInstance]:
    return [instance for instance in chain if instance.model_id == model_id]


# -- Modbus RTU -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistersRead:
    """Answer to Read Holding Registers."""

    unit: int
    registers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RegistersWritten:
    """Answer to Write Multiple Registers: where (data-model address) and how many."""

    unit: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class ExceptionAnswer:
    """A Modbus exception response (illegal address, illegal value, device busy...)."""

    unit: int
    function: int
    code: int


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that were not a frame (wrong CRC, junk); pymodbus drops what it held."""

    detail: str


Response = RegistersRead | RegistersWritten | ExceptionAnswer | BadFrame


class ModbusRtuClient:
    """The client's side of Modbus RTU: requests to bytes, bytes to responses (pymodbus framer)."""

    def __init__(self, unit: int) -> None:
        if not 1 <= unit <= 247:
            raise ModbusError(f"unit {unit}: a Modbus RTU device address is 1..247")
        self.unit = unit
        self._framer = FramerRTU(DecodePDU(is_server=False))
        self._buffer = b""

    def read(self, address: int, count: int) -> bytes:
        """Read Holding Registers at a data-model address."""
        if not 1 <= count <= MAX_READ:
            raise ModbusError(f"read of {count} registers: 1..{MAX_READ} per request")
        _check_range(address, count)
        pdu = ReadHoldingRegistersRequest(dev_id=self.unit, address=protocol_address(address), count=count)
        return self._framer.buildFrame(pdu)

    def write(self, address: int, registers: Sequence[int]) -> bytes:
        """Write Multiple Registers at a data-model address (callers check whole points first)."""
        if not 1 <= len(registers) <= MAX_WRITE:
            raise ModbusError(f"write of {len(registers)} registers: 1..{MAX_WRITE} per request")
        _check_range(address, len(registers))
        pdu = WriteMultipleRegistersRequest(dev_id=self.unit, address=protocol_address(address), registers=list(registers))
        return self._framer.buildFrame(pdu)

    def feed(self, data: bytes) -> list[Response]:
        """The responses completed by `data`."""
        self._buffer += data
        responses: list[Response] = []
        while self._buffer:
            try:
                used, pdu = self._framer.handleFrame(self._buffer, 0, 0)
            except Exception as error:  # pymodbus raises its own and struct errors for bad PDUs
                responses.append(BadFrame(f"undecodable PDU: {error}"))
                self._buffer = b""
                break
            if pdu is None:
                if used:
                    responses.append(BadFrame(f"{used} bytes without a frame (CRC or junk)"))
                    self._buffer = self._buffer[used:]
                    continue
                break
            self._buffer = self._buffer[used:]
            responses.append(_response(pdu))
        return responses

    def reset(self) -> None:
        self._buffer = b""


def _check_range(address: int, count: int) -> None:
    if address < 1 or protocol_address(address) + count > 0x10000:
        raise ModbusError(f"registers {address}..{address + count - 1}: outside the data model's 1..65536")


def _response(pdu: object) -> Response:
    unit = getattr(pdu, "dev_id", 0)
    if isinstance(pdu, ExceptionResponse):
        return ExceptionAnswer(unit, pdu.function_code & 0x7F, pdu.exception_code)
    if isinstance(pdu, ReadHoldingRegistersResponse):
        return RegistersRead(unit, tuple(pdu.registers))
    if isinstance(pdu, WriteMultipleRegistersResponse):
        return RegistersWritten(unit, pdu.address + 1, pdu.count)
    return BadFrame(f"unexpected function {getattr(pdu, 'function_code', '?')}")
