"""ANSI C12.19 tables of OSGP meters read over the MEP, as the MEP Client Developer's Guide v1.1
gives them (ch. 4: data types; BT00, BT21, BT22, BT23, BT27, BT28, BT52; ET03), and the readings
of seed 001 ch. B.5 variant 3 made from them.

Table data follows BT00's data order: little-endian on these meters (multi-byte integers LSB first;
NI_FMAT1/2 are 4-byte signed integers). BT21 sizes the others: BT22 names the source of each BT23
summation, BT27 the source of each BT28 present value (after the present demands). BT23 energies
are in Wh and varh - times the energy register unit of CT meters (ET55: 1, 10 or 100) -; BT28
present values in W, var, mA, mV and mHz. The meter's clock is BT52 (UTC).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import datetime

from .errors import ProtocolError
from .readings import Reading, Value, scaled

BT00, BT21, BT22, BT23, BT27, BT28, BT52 = 0, 21, 22, 23, 27, 28, 52
ET03 = 2051
"""Utility Information: the utility serial number (30 characters, NUL-terminated)."""
BT00_SIZE, BT21_SIZE, BT52_SIZE, SERIAL_SIZE = 19, 10, 7, 30
INT32 = 8
"""BT00's non-integer format code for a 4-byte signed integer."""


class TableError(ProtocolError):
    """Table bytes that do not hold what the guide's layout says."""


def _need(data: bytes, size: int, what: str) -> None:
    if len(data) < size:
        raise TableError(f"{what}: {len(data)} bytes, the layout needs {size}")


@dataclass(frozen=True, slots=True)
class GeneralConfig:
    """BT00: how to read the other tables."""

    big_endian: bool
    ni_format1: int
    ni_format2: int
    manufacturer: str


def decode_bt00(data: bytes) -> GeneralConfig:
    _need(data, BT00_SIZE, "BT00")
    config = GeneralConfig(bool(data[0] & 1), data[2] & 0x0F, data[2] >> 4, data[3:7].decode("ascii", "replace").strip())
    if config.big_endian or config.ni_format1 != INT32 or config.ni_format2 != INT32:
        raise TableError(f"BT00: data order {'MSB' if config.big_endian else 'LSB'} first, non-integer formats "
                         f"{config.ni_format1}/{config.ni_format2}; meterlink reads LSB first with INT32 (8) as the guide gives")
    return config


@dataclass(frozen=True, slots=True)
class Dimensions:
    """BT21: what the B20s tables hold."""

    demand_reset_counter: bool
    time_remaining: bool
    summations: int
    demands: int
    coincidents: int
    occurrences: int
    tiers: int
    present_demands: int
    present_values: int

    @property
    def bt22_size(self) -> int:
        return self.summations + self.demands + (self.demands + 7) // 8 + 2 * self.coincidents

    @property
    def bt23_totals_size(self) -> int:
        """The demand-reset count (when kept) and the total summations: what a reading needs."""
        return int(self.demand_reset_counter) + 4 * self.summations

    @property
    def bt27_size(self) -> int:
        return self.present_demands + self.present_values

    @property
    def present_demand_size(self) -> int:
        return (3 if self.time_remaining else 0) + 4

    @property
    def bt28_size(self) -> int:
        return self.present_demands * self.present_demand_size + 4 * self.present_values


def decode_bt21(data: bytes) -> Dimensions:
    _need(data, BT21_SIZE, "BT21")
    return Dimensions(bool(data[0] & 0x04), bool(data[0] & 0x40), data[3], data[4], data[5], data[6], data[7], data[8], data[9])


def decode_bt22(data: bytes, dims: Dimensions) -> tuple[int, ...]:
    """The source ID of each BT23 summation."""
    _need(data, dims.summations, "BT22 summation sources")
    return tuple(data[:dims.summations])


def decode_bt27(data: bytes, dims: Dimensions) -> tuple[int, ...]:
    """The source ID of each BT28 present value (the present demand sources come first)."""
    _need(data, dims.bt27_size, "BT27")
    return tuple(data[dims.present_demands:dims.bt27_size])


def _int32s(data: bytes, offset: int, count: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{count}i", data, offset)


@dataclass(frozen=True, slots=True)
class CurrentRegisters:
    """BT23's demand-reset count (None when BT21 says it is not kept) and total summations."""

    demand_resets: int | None
    summations: tuple[int, ...]


def decode_bt23(data: bytes, dims: Dimensions) -> CurrentRegisters:
    _need(data, dims.bt23_totals_size, "BT23 totals")
    offset = int(dims.demand_reset_counter)
    return CurrentRegisters(data[0] if dims.demand_reset_counter else None, _int32s(data, offset, dims.summations))


def decode_bt28(data: bytes, dims: Dimensions) -> tuple[int, ...]:
    """BT28's present values, after the present demands."""
    _need(data, dims.bt28_size, "BT28")
    return _int32s(data, dims.present_demands * dims.present_demand_size, dims.present_values)


def decode_bt52(data: bytes) -> str:
    """BT52's UTC clock (LTIME_DATE, 2-digit year) as ISO 8601 with Z; the flags byte after it
    (day of week, DST) is not needed."""
    _need(data, 6, "BT52 clock")
    year, month, day, hour, minute, second = data[:6]
    try:
        stamp = datetime(2000 + year, month, day, hour, minute, second)
    except ValueError:
        raise TableError(f"BT52: {bytes(data[:6]).hex(' ')} is no date and time") from None
    return stamp.isoformat() + "Z"


def decode_serial(data: bytes) -> str | None:
    """ET03's utility serial number; None when it is empty."""
    text = bytes(data[:SERIAL_SIZE]).split(b"\0", 1)[0].decode("ascii", "replace").strip()
    return text or None


@dataclass(frozen=True, slots=True)
class Mapped:
    obis: str
    unit: str
    unit_code: int
    scaler: int


ENERGY = {0: ("1-0:1.8.0.255", "Wh", 30), 1: ("1-0:2.8.0.255", "Wh", 30), 2: ("1-0:3.8.0.255", "varh", 32),
          3: ("1-0:4.8.0.255", "varh", 32)}
"""BT23 summation sources of seed 001 ch. B.5 variant 3 (energy registers)."""
PRESENT = {8: Mapped("1-0:1.7.0.255", "W", 27, 0), 9: Mapped("1-0:2.7.0.255", "W", 27, 0),
           10: Mapped("1-0:3.7.0.255", "var", 29, 0), 11: Mapped("1-0:4.7.0.255", "var", 29, 0),
           12: Mapped("1-0:31.7.0.255", "A", 33, -3), 13: Mapped("1-0:51.7.0.255", "A", 33, -3),
           14: Mapped("1-0:71.7.0.255", "A", 33, -3), 15: Mapped("1-0:32.7.0.255", "V", 35, -3),
           16: Mapped("1-0:52.7.0.255", "V", 35, -3), 17: Mapped("1-0:72.7.0.255", "V", 35, -3),
           19: Mapped("1-0:14.7.0.255", "Hz", 44, -3)}
"""BT28 present value sources: variant 3's powers, and the currents (mA), voltages (mV) and
frequency (mHz) the guide gives with their units. Other sources are not published."""
CLOCK_OBIS = "0-0:1.0.0.255"
ENERGY_UNITS = (1, 10, 100)


def mep_reading(
    serial: str | None,
    summation_sources: tuple[int, ...],
    registers: CurrentRegisters,
    value_sources: tuple[int, ...],
    present: tuple[int, ...],
    clock: str | None,
    received_at: float | None,
    energy_unit: int = 1,
) -> Reading:
    """One reading from a poll of BT23, BT28 and BT52, named by BT22's and BT27's sources."""
    if energy_unit not in ENERGY_UNITS:
        raise TableError(f"energy register unit {energy_unit}: ET55 allows 1, 10 or 100")
    energy_scaler = int(math.log10(energy_unit))
    values: list[Value] = []
    if clock is not None:
        values.append(Value(CLOCK_OBIS, clock))
    for source, raw in zip(summation_sources, registers.summations):
        if source in ENERGY:
            obis, unit, code = ENERGY[source]
            values.append(Value(obis, scaled(raw, energy_scaler), unit, raw, energy_scaler, code))
    for source, raw in zip(value_sources, present):
        if source in PRESENT:
            mapped = PRESENT[source]
            values.append(Value(mapped.obis, scaled(raw, mapped.scaler), mapped.unit, raw, mapped.scaler, mapped.unit_code))
    return Reading(serial, "mep", received_at, clock, tuple(values))
