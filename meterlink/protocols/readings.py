"""The one reading format every link produces (ARCHITECTURE.md, "A reading on stdout or in the API").

`value` is `raw` times ten to the `scaler`, in `unit`, exactly as the meter states it: no unit
conversion. Text objects keep their string as sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

Json = Union[int, float, str, bool, None, tuple["Json", ...]]
"""A value as JSON shows it: structured COSEM data becomes nested tuples (JSON arrays)."""


def scaled(raw: int, scaler: int) -> int | float:
    """`raw * 10**scaler` as the nearest float to the decimal the meter meant (2308, -1 -> 230.8)."""
    if scaler >= 0:
        return raw * 10**scaler
    if scaler >= -22 and abs(raw) < 2**53:
        # Both operands are exact doubles, and IEEE division rounds correctly: the nearest float
        # to raw / 10**-scaler, the same as parsing the decimal, at a fraction of the cost.
        return raw / 10**-scaler
    return float(f"{raw}e{scaler}")


def non_finite(value: object) -> str | None:
    """A float that JSON cannot carry (NaN, ±infinity) spelled as JSON readers know it ("NaN",
    "Infinity", "-Infinity"); None for any other value. Readings show such a number as value null
    with this spelling as its raw."""
    if not isinstance(value, float) or math.isfinite(value):
        return None
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One row of a profile value: P1 0-0:98.1.0 (max demand of the last months, one value a row) or
    a DLMS profile buffer (every captured column of the row in `value`, `time` from its clock)."""

    value: Json
    time: str | None = None
    entry_time: str | None = None
    unit: str | None = None
    raw: int | None = None
    scaler: int | None = None
    no_time: bool = False
    """The meter sent its placeholder for "no time" (P1 632525252525W): `time` shows as null."""

    def to_json(self) -> dict[str, Any]:
        spelled = non_finite(self.value)
        return _without_none(
            {"entry_time": self.entry_time, "time": self.time, "value": None if spelled else self.value,
             "unit": self.unit, "raw": spelled or self.raw, "scaler": self.scaler},
            "value", *(("time",) if self.no_time else ()),
        )


@dataclass(frozen=True, slots=True)
class Value:
    """One object of a telegram or GET result."""

    obis: str | None
    """None for a value that the meter sends without a name and its data model does not name."""
    value: Json | tuple[ProfileRow, ...]
    unit: str | None = None
    raw: int | None = None
    scaler: int | None = None
    unit_code: int | None = None
    time: str | None = None
    index: int | None = None
    """A nameless value's position in what the meter sent (a DLMS push: among the body's elements)."""
    no_time: bool = False
    """The meter sent its placeholder for "no time" (P1 632525252525W): `time` shows as null."""
    description: str | None = None
    """What the meter's own record says the value is (an M-Bus data record's DIF/VIF, EN 13757-3),
    kept beside the OBIS code the mapping gave it."""

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, tuple) and value and isinstance(value[0], ProfileRow):
            value = [row.to_json() for row in value]
        spelled = non_finite(value)
        return _without_none(
            {"obis": self.obis, "index": self.index, "value": None if spelled else value, "unit": self.unit,
             "raw": spelled or self.raw, "scaler": self.scaler, "unit_code": self.unit_code, "time": self.time,
             "description": self.description},
            "obis", "value", *(("time",) if self.no_time else ()),
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded telegram (or one GET result) of one meter.

    Codecs and machines know only the kind of link that carried it; the link actor adds the
    configured link's name before the reading leaves it.
    """

    meter_id: str | None
    kind: str
    """The link kind: p1, mbus, hdlc-push, dlms."""
    received_at: float | None
    captured_at: str | None
    values: tuple[Value, ...]
    name: str | None = None
    """The configured link's name; `decode` has none."""

    @property
    def link(self) -> str:
        """The link as a reading shows it: the configured name in the service, else the kind."""
        return self.name if self.name is not None else self.kind

    def value_of(self, obis: str) -> Value | None:
        for value in self.values:
            if value.obis == obis:
                return value
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "meter_id": self.meter_id,
            "link": self.link,
            "kind": self.kind,
            "received_at": self.received_at,
            "captured_at": self.captured_at,
            "values": [value.to_json() for value in self.values],
        }


def _without_none(record: dict[str, Any], *keep: str) -> dict[str, Any]:
    return {key: val for key, val in record.items() if val is not None or key in keep}
