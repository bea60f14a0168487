"""The data-notification APDU (0x0F, DLMS UA Green Book 9.3.12) and its mapping to readings.

`0F <long-invoke-id-and-priority(4)> <date-time: 00 absent | 0C + 12 octets> <notification-body Data>`.
Push meters put their objects in the body as a structure whose elements are either a pair of
elements (a 6-octet OBIS code followed by its value, as Kaifa sends 0-0:1.0.0) or one structure
(OBIS, value[, scaler_unit]) per object (seed 001 ch. B.4; seed 000 ch. 5 for units and scale).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import ProtocolError
from ..obis import Obis, unit_symbol
from ..readings import Reading, Value, scaled
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

    obis: Obis
    value: Data
    scaler: int | None = None
    unit: int | None = None
    code: str = ""
    """`obis` in the full A-B:C.D.E.F form."""


def push_objects(body: Data) -> list[CosemObject]:
    """The objects of a push body, in the order sent."""
    if body.tag not in (DataTag.STRUCTURE, DataTag.ARRAY):
        raise NotificationError(f"data-notification body: expected a structure, got {body.tag.name.lower()}")
    objects = []
    items = body.value
    index = 0
    while index < len(items):
        item = items[index]
        if item.is_obis and index + 1 < len(items):
            obis, code = _obis(item.value)
            objects.append(CosemObject(obis, items[index + 1], code=code))
            index += 2
            continue
        if item.tag is DataTag.STRUCTURE and item.value and item.value[0].is_obis and len(item.value) >= 2:
            objects.append(_object(item.value))
        index += 1
    return objects


def _object(fields: tuple[Data, ...]) -> CosemObject:
    obis, code = _obis(fields[0].value)
    scaler = unit = None
    if len(fields) >= 3 and fields[2].tag is DataTag.STRUCTURE and len(fields[2].value) == 2:
        scaler_data, unit_data = fields[2].value
        if scaler_data.tag is DataTag.INTEGER and unit_data.tag is DataTag.ENUM:
            scaler, unit = scaler_data.value, unit_data.value
    return CosemObject(obis, fields[1], scaler, unit, code)


_NUMBERS = {
    DataTag.DOUBLE_LONG, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.INTEGER, DataTag.LONG, DataTag.UNSIGNED,
    DataTag.LONG_UNSIGNED, DataTag.LONG64, DataTag.LONG64_UNSIGNED, DataTag.ENUM,
}
CLOCK = "0-0:1.0.0.255"


def object_value(obj: CosemObject) -> Value:
    """One object as a reading value: numbers scaled, text kept as sent, date-times in ISO 8601."""
    obis = obj.code or str(obj.obis)
    data = obj.value
    if data.tag in _NUMBERS:
        if obj.scaler is None:
            return Value(obis, data.value, raw=data.value)
        return Value(obis, scaled(data.value, obj.scaler), unit_symbol(obj.unit) if obj.unit is not None else None,
                     data.value, obj.scaler, obj.unit)
    if data.tag in (DataTag.FLOAT32, DataTag.FLOAT64, DataTag.BOOLEAN):
        return Value(obis, data.value)
    if data.tag in (DataTag.VISIBLE_STRING, DataTag.UTF8_STRING):
        return Value(obis, data.value)
    if data.tag in (DataTag.OCTET_STRING, DataTag.DATE_TIME):
        return Value(obis, octet_text(data.value))
    if data.tag is DataTag.NULL_DATA:
        return Value(obis, None)
    raise NotificationError(f"object {obis}: a {data.tag.name.lower()} value cannot be shown as a reading")


def octet_text(raw: bytes) -> str:
    """An octet-string: a date-time when it is one, text when printable, else hex."""
    if len(raw) == 12:
        try:
            return CosemDateTime.from_bytes(raw).iso()
        except DateTimeError:
            pass
    if raw and all(0x20 <= byte < 0x7F for byte in raw):
        return raw.decode("ascii")
    return raw.hex()


def to_reading(notification: DataNotification, link: str, received_at: float | None, system_title: bytes | None = None) -> Reading:
    """Map a push notification to the common reading (meter id: 0-0:96.1.0, else 0-0:42.0.0, else the system title)."""
    values = tuple(object_value(obj) for obj in push_objects(notification.body))
    by_obis = {value.obis: value for value in values}
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
    for obis in ("0-0:96.1.0.255", "0-0:42.0.0.255"):
        value = by_obis.get(obis)
        if value is not None and isinstance(value.value, str) and value.value:
            meter_id = value.value
            break
    if meter_id is None and system_title is not None:
        meter_id = octet_text(system_title)
    return Reading(meter_id, link, received_at, captured_at, values)
