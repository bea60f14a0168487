"""OMS telegrams as readings: the records of an EN 13757-3 telegram named by OBIS code.

Seed 001 ch. B.5 variant 4 gives the codes for the OMS meters of Netz OÖ (AMIS, Siemens TD-351x)
and Linz Netz (NES): `1-1:1.8.0` A+, `1-1:2.8.0` A-, `1-1:3.8.1` R+, `1-1:4.8.1` R-, `1-1:1.7.0` P+,
`1-1:2.7.0` P-, `1-1:3.7.0` Q+, `1-1:4.7.0` Q-, `1-1:1.128.0` the collection totaliser, and the
clock as `0-0:0.9.1` (time) and `0-0:0.9.2` (date). A record is named by what it measures (VIF),
its direction (VIFE 0x3C: backward, i.e. export), phase (VIFE 0xFC 01-03) and tariff (DIFE), so the
codes come out as the seed prints them (Netz OÖ's R+ is sent in tariff 1: `3.8.1`). A record no
code fits keeps `obis` null with its position; every value carries the record's own description.
"""

from __future__ import annotations

from collections.abc import Sequence

from .dlms.push import NO_KEY_SET, Outcome, PushResult, failed
from .dlms.security import CipherKeys
from .mbus_app import (AppTelegram, DataRecord, DeviceAddress, Direction, Function, MBusAppError, NoKey,
                       UnsupportedMode, WrongKey, decode_application)
from .readings import Reading, Value, scaled

CHANNEL = "1-1"
"""A-B of seed 001's variant 4 codes."""

AMIS_MANUFACTURER = "SAM"
"""The secondary address Netz OÖ's AMIS meters put in their long header (the spec's table 1)."""

_TOTAL = {"energy": (1, 2, 8), "reactive energy": (3, 4, 8), "apparent energy": (9, 10, 8),
          "power": (1, 2, 7), "reactive power": (3, 4, 7), "apparent power": (9, 10, 7)}
"""quantity -> C forward, C backward, D (IEC 62056-61: 8 a register, 7 an instantaneous value)."""
_UNITS = {"energy": "Wh", "reactive energy": "varh", "apparent energy": "VAh", "power": "W",
          "reactive power": "var", "apparent power": "VA", "voltage": "V", "current": "A"}
_PHASE = {("power", False): 21, ("power", True): 22, ("reactive power", False): 23,
          ("reactive power", True): 24, ("apparent power", False): 29, ("apparent power", True): 30,
          ("current", False): 31, ("voltage", False): 32}
"""quantity, backward -> C of phase L1; L2 and L3 add 20 and 40."""
COLLECTION_TOTALISER = "1-1:1.128.0.255"
ELECTRIC_MEDIA = (0x02, 0x0E)
"""Electricity (EN 13757-7 table 12), and "bus / system component": the address Netz OÖ's meters
put in their long header is the adapter's (00000000 SAM, medium 0x0E), not the meter's. A heat
meter's energy is no 1-x code."""


def record_obis(record: DataRecord, manufacturer: str, medium: int) -> str | None:
    """The OBIS code of a record, None when none fits (a stored, maximum or per-subunit value, a
    quantity the variant does not name, a meter that is no electricity meter)."""
    quantity = record.quantity
    if medium not in ELECTRIC_MEDIA or record.other_vifes:
        return None
    if record.function is not Function.INSTANTANEOUS or record.storage or record.subunit:
        return None
    if quantity.name not in _UNITS or _UNITS[quantity.name] != quantity.unit:
        return None
    backward = record.direction is Direction.BACKWARD
    if record.manufacturer_vife:
        # Netz OÖ's table 2: `04 83 FF 04` is the Inkassozählwerk (collection totaliser), 1.128.0.
        amis = manufacturer == AMIS_MANUFACTURER and record.manufacturer_vife == (0x04,)
        return COLLECTION_TOTALISER if amis and quantity.name == "energy" and not backward else None
    if record.phase:
        c = _PHASE.get((quantity.name, backward))
        return None if c is None else f"{CHANNEL}:{c + 20 * (record.phase - 1)}.7.{record.tariff}.255"
    if quantity.name in ("voltage", "current"):
        return None if backward else f"{CHANNEL}:{12 if quantity.name == 'voltage' else 11}.7.{record.tariff}.255"
    forward_c, backward_c, d = _TOTAL[quantity.name]
    return f"{CHANNEL}:{backward_c if backward else forward_c}.{d}.{record.tariff}.255"


def to_reading(telegram: AppTelegram, kind: str, received_at: float | None, meter_id: str | None) -> Reading:
    """The reading of a decoded telegram; the first instantaneous date and time is `captured_at`."""
    values: list[Value] = []
    captured_at = None
    manufacturer = telegram.address.manufacturer_code
    for index, record in enumerate(telegram.records):
        description = record.description
        raw = record.raw
        if record.quantity.kind == "datetime" and captured_at is None and not record.storage and isinstance(raw, str):
            captured_at = raw
            date, _, time = raw.partition("T")
            values.append(Value("0-0:0.9.1.255", time, description=description))
            values.append(Value("0-0:0.9.2.255", date, description=description))
            continue
        obis = record_obis(record, manufacturer, telegram.address.medium)
        position = None if obis else index
        unit = record.quantity.unit
        exponent = record.quantity.exponent
        if isinstance(raw, bool) or raw is None:
            values.append(Value(obis, None, index=position, description=description))
        elif isinstance(raw, int) and record.quantity.kind == "number":
            values.append(Value(obis, scaled(raw, exponent), unit, raw, exponent, index=position,
                                description=description))
        elif isinstance(raw, float):
            values.append(Value(obis, raw * 10.0**exponent, unit, None, exponent, index=position,
                                description=description))
        else:
            values.append(Value(obis, raw, index=position, description=description))
    extra = telegram.manufacturer_data
    if extra is not None and extra.data:
        # Kept as sent: its layout is the maker's, and a user reporting a meter can show it.
        values.append(Value(None, extra.data.hex(), index=len(telegram.records),
                            description="manufacturer-specific data" + (", more follows" if extra.more_follows else "")))
    return Reading(meter_id, kind, received_at, captured_at, tuple(values))


def decode_oms_push(
    apdu: bytes,
    keys: Sequence[CipherKeys],
    kind: str,
    received_at: float | None,
    link_address: DeviceAddress | None = None,
    no_key: str = NO_KEY_SET,
) -> PushResult:
    """The verdict on one OMS telegram (CI and on) of a push link, in the terms of every push link's
    drop causes: the keys tried in order, the one that opens it confirmed."""
    candidates: Sequence[CipherKeys | None] = keys or (None,)
    wrong: WrongKey | None = None
    for candidate in candidates:
        try:
            telegram = decode_application(apdu, link_address, [candidate.encryption] if candidate else [])
        except NoKey:
            return failed(Outcome.NO_KEY, no_key)
        except WrongKey as error:
            wrong = error
            continue
        except UnsupportedMode as error:
            return PushResult(Outcome.UNSUPPORTED_SUITE, f"{error}; please report the meter type with this line")
        except MBusAppError as error:
            return PushResult(Outcome.UNPARSEABLE, f"{error}: the telegram is damaged (or its records are the maker's "
                                                   f"own); if every telegram fails, report the meter type")
        meter = telegram.address
        meter_id = None if meter.identification == bytes(4) else meter.id
        return PushResult(Outcome.DECODED, reading=to_reading(telegram, kind, received_at, meter_id), keys=candidate)
    return PushResult(Outcome.WRONG_KEY, f"{wrong}: check the meter's AES key (32 hex digits, from the grid operator) "
                                         f"and set it again with meter_setkey")
