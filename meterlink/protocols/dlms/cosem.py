"""COSEM date-time (DLMS UA Blue Book 4.1.6.1; seed 002 ch. 3.2).

12 octets: year (2, 0xFFFF unspecified), month, day of month, day of week, hour, minute, second,
hundredths (0xFF unspecified each), deviation (int16 minutes, 0x8000 unspecified) and clock status.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from ..errors import ProtocolError

_LAYOUT = struct.Struct(">HBBBBBBBhB")
UNSPECIFIED_DEVIATION = -0x8000


class DateTimeError(ProtocolError):
    """A COSEM date-time that cannot be read."""


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    year: int
    month: int
    day: int
    day_of_week: int
    hour: int
    minute: int
    second: int
    hundredths: int
    deviation: int
    status: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> CosemDateTime:
        if len(raw) != 12:
            raise DateTimeError(f"date-time: expected 12 octets, got {len(raw)}")
        return cls(*_LAYOUT.unpack(raw))

    def to_bytes(self) -> bytes:
        return _LAYOUT.pack(self.year, self.month, self.day, self.day_of_week, self.hour, self.minute,
                            self.second, self.hundredths, self.deviation, self.status)

    @classmethod
    def from_datetime(cls, moment: datetime, deviation: int = UNSPECIFIED_DEVIATION, status: int = 0x00) -> CosemDateTime:
        return cls(moment.year, moment.month, moment.day, moment.isoweekday(), moment.hour, moment.minute,
                   moment.second, moment.microsecond // 10000, deviation, status)

    def iso(self) -> str:
        """Local time as the meter states it (no UTC offset, as every link's captured_at)."""
        if 0xFFFF in (self.year,) or 0xFF in (self.month, self.day, self.hour, self.minute):
            raise DateTimeError(f"date-time {self.to_bytes().hex()}: date or time not specified")
        second = 0 if self.second == 0xFF else self.second
        try:
            moment = datetime(self.year, self.month, self.day, self.hour, self.minute, second)
        except ValueError:
            raise DateTimeError(f"date-time {self.to_bytes().hex()}: out of range") from None
        return moment.isoformat()

    @classmethod
    def range_bound(cls, moment: datetime) -> CosemDateTime:
        """A bound of a profile range (seed 002 ch. 3.4.3 and the request of ch. 4.2): the meter's
        local time with day-of-week 0xFF, hundredths 0, deviation not specified and clock status
        0x80, as the seed's client sends them."""
        return cls(moment.year, moment.month, moment.day, 0xFF, moment.hour, moment.minute, moment.second, 0,
                   UNSPECIFIED_DEVIATION, 0x80)
