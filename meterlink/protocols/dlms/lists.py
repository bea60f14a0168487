"""Published push lists: what a list id, or a list's exact shape, says about the values a meter pushes.

Some meters push values that the telegram does not fully describe, and a published document does.
Each list here is data taken from its document; `notification.py` applies it only where the telegram
names the list (its list id text first in the body) or, for a list without an id, where the body
has exactly the list's number and types of elements. Anything else keeps the general rules.

- `Kamstrup_V0001`: Kamstrup, "Kamstrup HAN-NVE interface description" rev. 3.1, ch. 2.7-2.9 (push
  lists 1 and 2, with each register's unit and scaler) and NVE's "OBIS List Information - KAMSTRUP"
  (Kamstrup_V0001, 12.05.2016), both in roarfred/AmsToMqttBridge `Documentation/` at 7975184. The
  meter sends the list id, then OBIS code and value pairs without scalers; a meter variant leaves
  out what it does not measure (ch. 2.9), so the scalers go by OBIS code, not by position. The same
  list id is pushed by Danish and Swedish OMNIPOWER meters; some Swedish ones send their energy in
  Wh, ten times what this Norwegian list states (UtilitechAS/amsreader-firmware #239 and #874,
  toreamun/amshan-homeassistant #43), and nothing in the telegram tells them apart.
- `KFM_001`: Kaifa, "Kaifa HAN OBIS codes KFM_001" (21.03.2017, same folder): no OBIS codes on the
  wire, only values, named by position (list 2: 13 values three-phase, 9 single-phase; list 3 adds
  the clock and four energy registers). The document gives powers in kW with three decimals (W),
  voltages as xxx.x V and energies in kWh with three decimals (Wh). It prints currents as xxx.x A,
  which the meters contradict: they send milliamperes (12056 for the 12.06 A that amsreader-firmware's
  decoder reads from its capture gh180-2; Silicon Labs' HAN parser `known_lists.c` reads "A 4.3"), so
  the scaler here is -3. List 1, one power value without a list id, is not recognised.
- `AIDON_V0001` needs no entry: Aidon sends `{OBIS, value, {scaler, unit}}` for every object.
- Seed 001 ch. B.5 variant 3 (Wiener Netze, infrared interface): a clock and eight registers with
  no id and no OBIS codes, in the order and units (Wh, varh, W, var) the seed lists. Variants 1
  and 6 are not here: the seed lists their order but not their units or scalers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..obis import Obis
from .axdr import DataTag

LIST_ID = "1-1:0.2.129.255"
"""The NVE lists' "OBIS list version identifier": the object whose value is the list id."""
CLOCK = "0-0:1.0.0.255"
METER_NUMBER = "0-0:96.1.0.255"

W, VAR, WH, VARH, A, V = 27, 29, 30, 32, 33, 35
"""COSEM unit codes (Blue Book, enumeration of units)."""


@dataclass(frozen=True, slots=True)
class Register:
    """One object of a published list; scaler and unit only where the list states them for a number."""

    code: str
    """The OBIS code in full A-B:C.D.E.F form."""
    scaler: int | None = None
    unit: int | None = None
    obis: Obis = field(init=False)

    def __post_init__(self) -> None:
        # Parsed once here rather than for every telegram the list names.
        object.__setattr__(self, "obis", Obis.parse(self.code))


@dataclass(frozen=True, slots=True)
class ScaledList:
    """A list whose meter names each value by OBIS code, while its document gives the scalers."""

    list_id: str
    scalers: Mapping[str, Register]
    """The registers that have a scaler, by OBIS code."""
    meter_id: str
    """The OBIS code of the value that identifies the meter."""


@dataclass(frozen=True, slots=True)
class PositionalList:
    """A list whose meter sends values only: its document names the value at each position."""

    name: str
    list_id: str | None
    """The text of the body's first element; None for a list known by its shape alone."""
    registers: tuple[Register, ...]
    """One per element of the body, in order."""


def _by_code(*registers: Register) -> dict[str, Register]:
    return {register.code: register for register in registers}


KAMSTRUP_V0001 = ScaledList(
    "Kamstrup_V0001",
    _by_code(
        Register("1-1:1.7.0.255", 0, W), Register("1-1:2.7.0.255", 0, W),
        Register("1-1:3.7.0.255", 0, VAR), Register("1-1:4.7.0.255", 0, VAR),
        Register("1-1:31.7.0.255", -2, A), Register("1-1:51.7.0.255", -2, A), Register("1-1:71.7.0.255", -2, A),
        Register("1-1:32.7.0.255", 0, V), Register("1-1:52.7.0.255", 0, V), Register("1-1:72.7.0.255", 0, V),
        Register("1-1:1.8.0.255", 1, WH), Register("1-1:2.8.0.255", 1, WH),
        Register("1-1:3.8.0.255", 1, VARH), Register("1-1:4.8.0.255", 1, VARH),
    ),
    meter_id="1-1:0.0.5.255",  # "Meter-ID (GIAI GS1, 16 digits)"
)

_KAIFA_HEAD = (Register(LIST_ID), Register(METER_NUMBER), Register("0-0:96.1.7.255"))
"""List id, meter id (GIAI GS1, 16 digits) and meter type."""
_KAIFA_POWERS = (Register("1-0:1.7.0.255", 0, W), Register("1-0:2.7.0.255", 0, W),
                 Register("1-0:3.7.0.255", 0, VAR), Register("1-0:4.7.0.255", 0, VAR))
_KAIFA_HOURLY = (Register(CLOCK), Register("1-0:1.8.0.255", 0, WH), Register("1-0:2.8.0.255", 0, WH),
                 Register("1-0:3.8.0.255", 0, VARH), Register("1-0:4.8.0.255", 0, VARH))
_KAIFA_THREE_PHASE = (*_KAIFA_HEAD, *_KAIFA_POWERS,
                      Register("1-0:31.7.0.255", -3, A), Register("1-0:51.7.0.255", -3, A), Register("1-0:71.7.0.255", -3, A),
                      Register("1-0:32.7.0.255", -1, V), Register("1-0:52.7.0.255", -1, V), Register("1-0:72.7.0.255", -1, V))
_KAIFA_SINGLE_PHASE = (*_KAIFA_HEAD, *_KAIFA_POWERS, Register("1-0:31.7.0.255", -3, A), Register("1-0:32.7.0.255", -1, V))

KFM_001 = (
    PositionalList("KFM_001 list 2, three-phase", "KFM_001", _KAIFA_THREE_PHASE),
    PositionalList("KFM_001 list 3, three-phase", "KFM_001", (*_KAIFA_THREE_PHASE, *_KAIFA_HOURLY)),
    PositionalList("KFM_001 list 2, single-phase", "KFM_001", _KAIFA_SINGLE_PHASE),
    PositionalList("KFM_001 list 3, single-phase", "KFM_001", (*_KAIFA_SINGLE_PHASE, *_KAIFA_HOURLY)),
)

SEED_001_VARIANT_3 = PositionalList("seed 001 variant 3 (Wiener Netze)", None, (
    Register(CLOCK),
    Register("1-0:1.8.0.255", 0, WH), Register("1-0:2.8.0.255", 0, WH),
    Register("1-0:3.8.0.255", 0, VARH), Register("1-0:4.8.0.255", 0, VARH),
    Register("1-0:1.7.0.255", 0, W), Register("1-0:2.7.0.255", 0, W),
    Register("1-0:3.7.0.255", 0, VAR), Register("1-0:4.7.0.255", 0, VAR),
))

SCALED_LISTS = (KAMSTRUP_V0001,)
POSITIONAL_LISTS = (*KFM_001, SEED_001_VARIANT_3)

NUMBERS = frozenset({
    DataTag.DOUBLE_LONG, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.INTEGER, DataTag.LONG, DataTag.UNSIGNED,
    DataTag.LONG_UNSIGNED, DataTag.LONG64, DataTag.LONG64_UNSIGNED, DataTag.ENUM,
})
"""The integer types a register's value may have."""
TEXTS = frozenset({DataTag.OCTET_STRING, DataTag.VISIBLE_STRING})
