"""The data-notification APDU (0x0F, DLMS UA Green Book 9.3.12) and its mapping to readings.

`0F <long-invoke-id-and-priority(4)> <date-time: 00 absent | 0C + 12 octets> <notification-body Data>`.
Kaifa's Norwegian meters send the date-time as a tagged octet-string, `09 0C` + 12 octets.

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

A published list (`lists.py`) goes further, only where the telegram names it by its list id or has
exactly its shape: a positional list names every value and gives its scaler and unit; a list whose
meter sends OBIS codes without scalers (Kamstrup_V0001) gives the scalers and names its list id.
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
from .lists import (
    CLOCK, LIST_ID, METER_NUMBER, NUMBERS, POSITIONAL_LISTS, SCALED_LISTS, TEXTS, PositionalList, Register, ScaledList,
)

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
    date_time, offset = _date_time_at(apdu, 5)
    try:
        body, end = decode_data(apdu, offset)
    except AxdrError as error:
        raise NotificationError(f"data-notification body: {error}") from None
    if end != len(apdu):
        raise NotificationError(f"data-notification: {len(apdu) - end} bytes left after the body at byte {end}")
    return DataNotification(invoke_id, date_time, body)


_KAIFA_DATE_TIME = b"\x09\x0c"
"""The date-time as Kaifa's Norwegian meters send it: a Data octet-string, tag and length."""


def _date_time_at(apdu: bytes, offset: int) -> tuple[CosemDateTime | None, int]:
    """The header's date-time and the offset after it: 00 (absent), 0C + 12 octets or 09 0C + 12 octets."""
    if apdu[offset] == 0x00:
        return None, offset + 1
    if apdu[offset] == 0x0C:
        start = offset + 1
    elif apdu[offset : offset + 2] == _KAIFA_DATE_TIME:
        start = offset + 2
    else:
        raise NotificationError(f"data-notification: date-time at byte {offset}: length 0x{apdu[offset]:02X}, "
                                f"expected 0x00, 0x0C or 09 0C")
    if len(apdu) < start + 12:
        raise NotificationError("data-notification: date-time cut short")
    return CosemDateTime.from_bytes(bytes(apdu[start : start + 12])), start + 12


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


LOGICAL_DEVICE_NAME = "0-0:42.0.0.255"
_METER_NUMBER_TEXT = re.compile(r"(?=[0-9A-Za-z]*[0-9])[0-9A-Za-z]{6,32}")


PublishedList = PositionalList | ScaledList


def published_list(body: Data) -> PublishedList | None:
    """The published list a push body names by its list id, or has exactly the shape of; else None."""
    items = _elements(body)
    first = _text(items[0]) if items else None
    for positional in POSITIONAL_LISTS:
        if positional.list_id in (None, first) and _fits(positional, items):
            return positional
    return next((scaled for scaled in SCALED_LISTS if scaled.list_id == first), None)


def _elements(body: Data) -> tuple[Data, ...]:
    if body.tag not in (DataTag.STRUCTURE, DataTag.ARRAY):
        raise NotificationError(f"data-notification body: expected a structure, got {body.tag.name.lower()}")
    return body.value


def _text(data: Data) -> str | None:
    if data.tag is DataTag.VISIBLE_STRING:
        return data.value
    return data.value.decode("latin-1") if data.tag is DataTag.OCTET_STRING else None


def _fits(positional: PositionalList, items: tuple[Data, ...]) -> bool:
    """Whether every element has the type its register takes: a number, a date-time for the clock, else text."""
    if len(items) != len(positional.registers):
        return False
    for register, item in zip(positional.registers, items):
        if register.unit is not None:
            fits = item.tag in NUMBERS
        elif register.code == CLOCK:
            fits = _is_date_time(item)
        else:
            fits = item.tag in TEXTS
        if not fits:
            return False
    return True


def push_objects(body: Data, published: PublishedList | None) -> list[CosemObject]:
    """The objects of a push body, in the order sent (the rules are in the module's docstring);
    `published` is the list `published_list` found for the body."""
    items = _elements(body)
    if isinstance(published, PositionalList):
        return [_listed(register, item) for register, item in zip(published.registers, items)]
    objects = []
    at = 0
    while at < len(items):
        obj, at = _object_at(items, at)
        objects.append(obj)
    if isinstance(published, ScaledList):
        objects = [_scaled(published, obj) for obj in objects]
    return _named_by_data_models(objects)


_LIST_ID = Register(LIST_ID)


def _listed(register: Register, item: Data) -> CosemObject:
    return CosemObject(register.obis, item, register.scaler, register.unit, register.code)


def _scaled(published: ScaledList, obj: CosemObject) -> CosemObject:
    """`obj` with the scaler and unit its list states, or named as the list id when it is the id."""
    if obj.index == 0 and _text(obj.value) == published.list_id:
        return replace(obj, obis=_LIST_ID.obis, code=_LIST_ID.code, index=None)
    register = published.scalers.get(obj.code)
    if register is None or obj.scaler is not None:
        return obj
    return replace(obj, scaler=register.scaler, unit=register.unit)


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


def object_value(obj: CosemObject) -> Value:
    """One object as a reading value: numbers scaled, text kept as sent, date-times in ISO 8601,
    anything else as `json_of` shows it; a value without a name keeps its index."""
    obis = obj.code or (str(obj.obis) if obj.obis is not None else None)
    index = obj.index if obis is None else None
    data = obj.value
    if data.tag in NUMBERS:
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
    """Map a push notification to the common reading (meter id: 0-0:96.1.0, else the meter id its
    published list names, else 0-0:42.0.0, else the system title)."""
    published = published_list(notification.body)
    values = tuple(object_value(obj) for obj in push_objects(notification.body, published))
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
    for obis in _meter_id_codes(published):
        value = by_obis.get(obis)
        if value is not None and isinstance(value.value, str) and value.value:
            meter_id = value.value
            break
    if meter_id is None and system_title is not None:
        meter_id = octet_text(system_title)
    return Reading(meter_id, link, received_at, captured_at, values)


def _meter_id_codes(published: PublishedList | None) -> tuple[str, ...]:
    """The values a reading's meter id is taken from, the first present first."""
    listed = (published.meter_id,) if isinstance(published, ScaledList) else ()
    return (METER_NUMBER, *listed, LOGICAL_DEVICE_NAME)
