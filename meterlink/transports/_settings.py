from __future__ import annotations

import re
from dataclasses import dataclass

_PARITIES = ("N", "E", "O")
_STOPBITS = (1, 1.5, 2)
_DATA_REQUEST_LINES = ("rts", "dtr")

# "BAUD FRAME" where FRAME is data bits, parity letter, stop bits: "115200 8N1".
# Deliberately loose in the fields so that a bad value reaches validation and is named.
_SETTINGS_RE = re.compile(r"\s*(\d+)\s+(\d)([A-Za-z])(\d+(?:\.\d+)?)\s*")


@dataclass(frozen=True)
class SerialSettings:
    """How to configure a serial line; the defaults are P1's 115200 8N1."""

    baudrate: int = 115200
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    # Refuse a port that another process holds (advisory flock, as pyserial does it).
    exclusive: bool = True
    # Raise "rts" or "dtr" after opening (a P1 data-request line wired to it);
    # None makes no change to the modem lines.
    data_request: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.baudrate, bool) or not isinstance(self.baudrate, int) or self.baudrate <= 0:
            raise ValueError(f"baud rate must be a positive whole number, not {self.baudrate!r}")
        if self.bytesize not in (5, 6, 7, 8):
            raise ValueError(f"data bits must be 5, 6, 7 or 8, not {self.bytesize!r}")
        if self.parity not in _PARITIES:
            raise ValueError(f"parity must be N, E or O, not {self.parity!r}")
        if self.stopbits not in _STOPBITS:
            raise ValueError(f"stop bits must be 1, 1.5 or 2, not {self.stopbits!r}")
        if self.data_request is not None and self.data_request not in _DATA_REQUEST_LINES:
            raise ValueError(f"data request line must be 'rts' or 'dtr', not {self.data_request!r}")

    @classmethod
    def parse(cls, text: str) -> SerialSettings:
        """Parse the usual notation, e.g. ``"115200 8N1"``, ``"2400 8E1"``, ``"9600 7E1"``."""
        match = _SETTINGS_RE.fullmatch(text)
        if match is None:
            raise ValueError(
                f"invalid serial settings {text!r}: expected BAUD and DATABITS-PARITY-STOPBITS, "
                "like '115200 8N1' or '2400 8E1'"
            )
        baudrate, bytesize, parity, stopbits = match.groups()
        try:
            return cls(
                baudrate=int(baudrate),
                bytesize=int(bytesize),
                parity=parity.upper(),
                stopbits=float(stopbits) if "." in stopbits else int(stopbits),
            )
        except ValueError as exc:
            raise ValueError(f"invalid serial settings {text!r}: {exc}") from None
