"""OBIS identifiers (IEC 62056-61) and the COSEM unit enumeration (IEC 62056-62).

Seed 000 ch. 4.1 gives the structure A-B:C.D.E*F; its unit table (ch. 5) stops at code 39, so the
rest of the enumeration comes from the COSEM standard (DLMS UA Blue Book, class 3 scaler_unit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ProtocolError


class ObisError(ProtocolError):
    """An OBIS code that cannot be parsed."""


_TEXT = re.compile(r"^(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[.*](\d{1,3}))?$")
_DOTTED = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
"""The six groups with dots only, as DLMS tools and seed 002's object lists write logical names."""


@dataclass(frozen=True, slots=True)
class Obis:
    """One OBIS code; value groups A to F, each 0-255."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    @classmethod
    def parse(cls, text: str) -> Obis:
        """Parse `A-B:C.D.E.F`, `A-B:C.D.E*F`, `A-B:C.D.E` (F then defaults to 255) or `A.B.C.D.E.F`."""
        match = _TEXT.match(text.strip()) or _DOTTED.match(text.strip())
        if match is None:
            raise ObisError(f"OBIS code {text!r}: expected A-B:C.D.E.F, A-B:C.D.E*F, A-B:C.D.E or A.B.C.D.E.F")
        groups = [int(g) for g in match.groups(default="255")]
        if any(g > 255 for g in groups):
            raise ObisError(f"OBIS code {text!r}: each value group must be 0-255")
        return cls(*groups)

    @classmethod
    def from_bytes(cls, data: bytes) -> Obis:
        """The 6-byte form carried in COSEM logical names."""
        if len(data) != 6:
            raise ObisError(f"OBIS code {data.hex()}: expected 6 bytes, got {len(data)}")
        return cls(*data)

    def to_bytes(self) -> bytes:
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def __str__(self) -> str:
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}.{self.f}"


def full_obis(text: str) -> str:
    """`A-B:C.D.E`, `A-B:C.D.E*F` or `A-B:C.D.E.F` written in the full `A-B:C.D.E.F` form."""
    return str(Obis.parse(text))


UNITS: dict[int, str] = {
    1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "°", 9: "°C",
    10: "currency", 11: "m", 12: "m/s", 13: "m3", 14: "m3", 15: "m3/h", 16: "m3/h",
    17: "m3/d", 18: "m3/d", 19: "l", 20: "kg", 21: "N", 22: "Nm", 23: "Pa", 24: "bar",
    25: "J", 26: "J/h", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh",
    33: "A", 34: "C", 35: "V", 36: "V/m", 37: "F", 38: "Ω", 39: "Ωm2/m", 40: "Wb",
    41: "T", 42: "A/m", 43: "H", 44: "Hz", 45: "1/(Wh)", 46: "1/(varh)", 47: "1/(VAh)",
    48: "V2h", 49: "A2h", 50: "kg/s", 51: "S", 52: "K", 53: "1/(V2h)", 54: "1/(A2h)",
    55: "1/m3", 56: "%", 57: "Ah", 60: "Wh/m3", 61: "J/m3", 62: "mol%", 63: "g/m3",
    64: "Pa s", 65: "J/kg", 66: "g/cm2", 67: "atm", 70: "dBm", 71: "dBµV", 72: "dB",
    253: "", 254: "other", 255: "",
}
"""COSEM unit enumeration: code -> symbol. 253 is reserved, 254 'other unit', 255 'no unit' (counts)."""


def unit_symbol(code: int) -> str | None:
    """The symbol of a COSEM unit code, or None for a code the enumeration does not define."""
    return UNITS.get(code)
