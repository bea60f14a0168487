"""The data-notification APDU (0x0F, DLMS UA Green Book 9.3.12) and its mapping to readings.

`0F <long-invoke-id-and-priority(4)> <date-time: 00 absent | 0C + 12 octets> <notification-body Data>`.

The body is a structure (or array) of elements. One set of rules maps every data model of seed 001
ch. B.5 (variants 1-3 and 5-9; variant 4 is M-Bus/OMS records), whichever operator sends it:

- a 6-octet octet-string is an OBIS code that names the element after it (`OBIS, value`: Kaifa's
  clock pair, variant 7's flat sequence);
- a structure `{integer, enum}` right after a value is that value's scaler and unit (variant 7);
- a structure `{OBIS, value[, {integer, enum}]}` is one object (variant 2, seed 001 ch. B.4);
- any other element is a value without a name. It is kept, with `index`: its 0-based position
  among the body's elements, counting every element (OBIS codes and scaler-unit structures too).
  Variants 1, 3 and 6 push bare values; which quantity sits at which index is the operator's list.

A 6-octet value cannot be told from an OBIS code; none of the data models sends one. A nameless
value gets a name by these three narrow rules only, none of them per operator:

- The body's first element, when it is a COSEM date-time, is the clock `0-0:1.0.0.255`: variants
  3, 5, 6, 7 and 8 all begin with the time stamp, and variant 7 sends it without an OBIS code.
- The body's last element, when it is text of 6 to 32 ASCII letters and digits with a digit among
  them, is the meter number `0-0:96.1.0.255`, unless the body names one already. Variant 7 ends
  with it unnamed (seed 001 lists it as `0-0:96.1.0.255,2`; Netz NÖ's customer-interface document
  calls it the Zählernummer) and Netz Burgenland's variant-6 meters end with it too. An empty
  string there (variant 1's customer information code) is not a meter number.
- IDIS push lists begin with the push setup's own logical name (class 40 `0-x:25.9.0.255`,
  attribute 1). That OBIS code is a value, named by itself, not the name of the element after it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime

from ..errors import ProtocolError
from ..obis import Obis, unit_symbol
from ..readings import Json, Reading, Value, scaled
from .axdr import AxdrError, Data, DataTag, decode_data
from .cosem import CosemDateTime, DateTimeError

DATA_NOTIFICATION = 0x0F


class NotificationError(ProtocolError):
    """A data-notification that cannot be decoded or mapped."""


@dataclass(frozen=True, slots=True)
class DataNotification:
    invoke_id: int
    date_time: CosemDateTime | None
    body: Data


def parse_notification(apdu: bytes) -> DataNotification:
    if len(apdu) < 6 or apdu[0] != DATA_NOTIFICATION:
        raise NotificationError(f"data-notification: expected tag 0x0F, got {apdu[:1].hex() or 'nothing'}")
    invoke_id = int.from_bytes(apdu[1:5], "big")
    offset = 5
    date_time = None
    if apdu[offset] == 0x0C:
        if len(apdu) < offset + 13:
            raise NotificationError("data-notification: date-time cut short")
        date_time = CosemDateTime.from_bytes(bytes(apdu[offset + 1 : offset + 13]))
        offset += 13
    elif apdu[offset] == 0x00:
        offset += 1
    else:
        raise NotificationError(f"data-notification: date-time at byte {offset}: length 0x{apdu[offset]:02X}, expected 0x00 or 0x0C")
    try:
        body, end = decode_data(apdu, offset)
    except AxdrError as error:
        raise NotificationError(f"data-notification body: {error}") from None
    if end != len(apdu):
        raise NotificationError(f"data-notification: {len(apdu) - end} bytes left after the body at byte {end}")
    return DataNotification(invoke_id, date_time, body)


@functools.lru_cache(maxsize=1024)
def _obis(raw: bytes) -> tuple[Obis, str]:
    # A meter pushes the same few dozen codes in every telegram: parse and format each once.
    obis = Obis.from_bytes(raw)
    return obis, str(obis)


@dataclass(frozen=True, slots=True)
class CosemObject:
    """One object of a push list: its OBIS code, value and (for registers) scaler and unit."""

    obis: Obis | None
    """None for a value that neither the meter nor the data model names."""
    value: Data
    scaler: int | None = None
    unit: int | None = None
    code: str = ""
    """`obis` in the full A-B:C.D.E.F form."""
    index: int | None = None
    """A nameless value's position among the body's elements."""


CLOCK = "0-0:1.0.0.255"
METER_NUMBER = "0-0:96.1.0.255"
_METER_NUMBER_TEXT = re.compile(r"(?=[0-9A-Za-z]*[0-9])[0-9A-Za-z]{6,32}")


def push_objects(body: Data) -> list[CosemObject]:
    """The objects of a push body, in the order sent (the rules are in the module's docstring)."""
    if body.tag not in (DataTag.STRUCTURE, DataTag.ARRAY):
        raise NotificationError(f"data-notification body: expected a structure, got {body.tag.name.lower()}")
    items = body.value
    objects = []
    at = 0
    while at < len(items):
        obj, at = _object_at(items, at)
        objects.append(obj)
    return _named_by_data_models(objects)


def _object_at(items: tuple[Data, ...], at: int) -> tuple[CosemObject, int]:
    """The object that begins at element `at`, and the element after it."""
    item = items[at]
    if item.is_obis:
        obis, code = _obis(item.value)
        if _is_push_setup(obis):
            return CosemObject(obis, item, code=code), at + 1
        if at + 1 < len(items):
            scaler, unit, after = _scaler_unit_at(items, at + 2)
            return CosemObject(obis, items[at + 1], scaler, unit, code), after
    if item.tag is DataTag.STRUCTURE and len(item.value) >= 2 and item.value[0].is_obis:
        fields = item.value
        obis, code = _obis(fields[0].value)
        scaler, unit, _ = _scaler_unit_at(fields, 2)
        return CosemObject(obis, fields[1], scaler, unit, code), at + 1
    scaler, unit, after = _scaler_unit_at(items, at + 1)
    return CosemObject(None, item, scaler, unit, index=at), after


def _is_push_setup(obis: Obis) -> bool:
    return obis.a == 0 and obis.c == 25 and obis.d == 9


def _scaler_unit_at(items: tuple[Data, ...], at: int) -> tuple[int | None, int | None, int]:
    """Scaler, unit and the next element when element `at` is a structure {integer, enum}; else (None, None, at)."""
    if at < len(items) and items[at].tag is DataTag.STRUCTURE and len(items[at].value) == 2:
        scaler, unit = items[at].value
        if scaler.tag is DataTag.INTEGER and unit.tag is DataTag.ENUM:
            return scaler.value, unit.value, at + 1
    return None, None, at


def _named_by_data_models(objects: list[CosemObject]) -> list[CosemObject]:
    """`objects` with a nameless clock first and meter number last named (the module's docstring)."""
    names = {obj.code for obj in objects}
    if objects and objects[0].index == 0 and CLOCK not in names and _is_date_time(objects[0].value):
        objects[0] = replace(objects[0], obis=Obis(0, 0, 1, 0, 0), code=CLOCK, index=None)
    if objects and objects[-1].index is not None and METER_NUMBER not in names and _is_meter_number(objects[-1].value):
        objects[-1] = replace(objects[-1], obis=Obis(0, 0, 96, 1, 0), code=METER_NUMBER, index=None)
    return objects


def _is_date_time(data: Data) -> bool:
    return data.tag in (DataTag.OCTET_STRING, DataTag.DATE_TIME) and _iso(data.value) is not None


def _is_meter_number(data: Data) -> bool:
    if data.tag is DataTag.OCTET_STRING:
        return _METER_NUMBER_TEXT.fullmatch(data.value.decode("latin-1")) is not None
    return data.tag is DataTag.VISIBLE_STRING and _METER_NUMBER_TEXT.fullmatch(data.value) is not None


_NUMBERS = {
    DataTag.DOUBLE_LONG, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.INTEGER, DataTag.LONG, DataTag.UNSIGNED,
    DataTag.LONG_UNSIGNED, DataTag.LONG64, DataTag.LONG64_UNSIGNED, DataTag.ENUM,
}


def object_value(obj: CosemObject) -> Value:
    """One object as a reading value: numbers scaled, text kept as sent, date-times in ISO 8601,
    anything else as `json_of` shows it; a value without a name keeps its index."""
    obis = obj.code or (str(obj.obis) if obj.obis is not None else None)
    index = obj.index if obis is None else None
    data = obj.value
    if data.tag in _NUMBERS:
        if obj.scaler is None:
            return Value(obis, data.value, raw=data.value, index=index)
        return Value(obis, scaled(data.value, obj.scaler), unit_symbol(obj.unit) if obj.unit is not None else None,
                     data.value, obj.scaler, obj.unit, index=index)
    if data.tag in (DataTag.FLOAT32, DataTag.FLOAT64):
        return Value(obis, data.value, index=index)  # a NaN or infinity is spelled by the reading
    return Value(obis, json_of(data), index=index)


def json_of(data: Data) -> Json:
    """Any COSEM value as JSON: numbers and text as they are, octet-strings as a date-time, text or
    hex (as push values), bit-strings as '0'/'1' digits, arrays and structures as lists."""
    tag = data.tag
    if tag in (DataTag.ARRAY, DataTag.STRUCTURE):
        return tuple(json_of(item) for item in data.value)
    if tag in (DataTag.OCTET_STRING, DataTag.DATE_TIME):
        return octet_text(data.value)
    if tag is DataTag.DATE:
        return _date_text(data.value)
    if tag is DataTag.TIME:
        return _time_text(data.value)
    if tag in (DataTag.FLOAT32, DataTag.FLOAT64) and not math.isfinite(data.value):
        return None  # JSON has no NaN or infinity
    if tag is DataTag.BIT_STRING:
        bits = int.from_bytes(data.value.data, "big") if data.value.data else 0
        return format(bits, f"0{len(data.value.data) * 8}b")[: data.value.bits] if data.value.bits else ""
    return data.value


def _date_text(raw: bytes) -> str:
    """A COSEM date (year(2) month day day-of-week) as ISO 8601, else its hex when any part is unspecified."""
    year, month, day = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    try:
        return datetime(year, month, day).date().isoformat()
    except ValueError:
        return raw.hex()


def _time_text(raw: bytes) -> str:
    """A COSEM time (hour minute second hundredths) as hh:mm:ss, else its hex."""
    hour, minute, second = raw[0], raw[1], raw[2] if raw[2] != 0xFF else 0
    return f"{hour:02d}:{minute:02d}:{second:02d}" if hour < 24 and minute < 60 and second < 60 else raw.hex()


def octet_text(raw: bytes) -> str:
    """An octet-string: a date-time when it is one, text when printable, else hex."""
    moment = _iso(raw)
    if moment is not None:
        return moment
    if raw and all(0x20 <= byte < 0x7F for byte in raw):
        return raw.decode("ascii")
    return raw.hex()


def _iso(raw: bytes) -> str | None:
    """A COSEM date-time's 12 octets in ISO 8601; None for other octets or a date that is not one."""
    if len(raw) != 12:
        return None
    try:
        return CosemDateTime.from_bytes(raw).iso()
    except DateTimeError:
        return None


def to_reading(notification: DataNotification, link: str, received_at: float | None, system_title: bytes | None = None) -> Reading:
    """Map a push notification to the common reading (meter id: 0-0:96.1.0, else 0-0:42.0.0, else the system title)."""
    values = tuple(object_value(obj) for obj in push_objects(notification.body))
    by_obis = {value.obis: value for value in values if value.obis is not None}
    captured_at = None
    clock = by_obis.get(CLOCK)
    if clock is not None and isinstance(clock.value, str) and clock.value[:1].isdigit():
        captured_at = clock.value
    elif notification.date_time is not None:
        try:
            captured_at = notification.date_time.iso()
        except DateTimeError:
            captured_at = None
    meter_id = None
    for obis in (METER_NUMBER, "0-0:42.0.0.255"):
        value = by_obis.get(obis)
        if value is not None and isinstance(value.value, str) and value.value:
            meter_id = value.value
            break
    if meter_id is None and system_title is not None:
        meter_id = octet_text(system_title)
    return Reading(meter_id, link, received_at, captured_at, values)
