"""COSEM attributes as the client link reads them, and their values as readings (seed 002 ch. 3).

An attribute is named `CLASS:OBIS:ATTR` (`3:1-1:1.8.0.255:2`, or with dots `3:1.1.1.8.0.255:2`).
A register's value (class 3 and 4, attribute 2) is scaled by its scaler_unit (attribute 3) into the
unit the meter states; a profile buffer (class 7, attribute 2) becomes rows with the time of their
clock column; selective access by range (selector 1) and by entry (selector 2) as ch. 3.4.3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ..errors import ProtocolError
from ..obis import Obis, ObisError, unit_symbol
from ..readings import ProfileRow, Value
from .axdr import Data, DataTag, array, octet_string, structure
from .cosem import CosemDateTime, DateTimeError
from .notification import CosemObject, json_of, object_value
from .xdlms import AccessSelection, AttributeDescriptor

DATA, REGISTER, EXTENDED_REGISTER, PROFILE_GENERIC, CLOCK = 1, 3, 4, 7, 8
ASSOCIATION_LN, SAP_ASSIGNMENT, IMAGE_TRANSFER, HDLC_SETUP = 15, 17, 18, 23

KAMSTRUP_CLOCK = Obis(0, 1, 1, 0, 0, 255)
"""The clock of Kamstrup meters (seed 002 ch. 3.5), the first column of their profiles (table 3-1)."""
ASSOCIATION = Obis(0, 0, 40, 0, 0, 255)
"""The current association (class 15); its logical_name is readable in every association."""


_INTEGER = re.compile(r"-?[0-9]{1,6}")


class ObjectError(ProtocolError):
    """An attribute reference or a value that does not fit its COSEM class."""


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """One attribute to GET, with selective access where given."""

    class_id: int
    obis: Obis
    attribute: int
    access: AccessSelection | None = None

    @classmethod
    def parse(cls, text: str) -> AttributeRef:
        """`CLASS:OBIS:ATTR`, the OBIS code in any form `Obis.parse` takes (it may hold a colon)."""
        head, _, rest = text.strip().partition(":")
        obis_text, _, attribute = rest.rpartition(":")
        if not _INTEGER.fullmatch(head) or not _INTEGER.fullmatch(attribute) or not obis_text:
            raise ObjectError(f"attribute {text!r}: expected CLASS:OBIS:ATTR, e.g. 3:1-1:1.8.0.255:2")
        try:
            obis = Obis.parse(obis_text)
        except ObisError as error:
            raise ObjectError(f"attribute {text!r}: {error}") from None
        class_id, index = int(head), int(attribute)
        if not 0 <= class_id <= 0xFFFF or not -128 <= index <= 127 or index == 0:
            raise ObjectError(f"attribute {text!r}: class 0-65535 and attribute 1-127 (negative: manufacturer specific)")
        return cls(class_id, obis, index)

    @property
    def descriptor(self) -> AttributeDescriptor:
        return AttributeDescriptor(self.class_id, self.obis, self.attribute)

    @property
    def scaled(self) -> bool:
        """A register's value, which means nothing without its scaler_unit."""
        return self.class_id in (REGISTER, EXTENDED_REGISTER) and self.attribute == 2

    @property
    def scaler_unit(self) -> AttributeRef:
        return AttributeRef(self.class_id, self.obis, 3)

    def __str__(self) -> str:
        return f"{self.class_id}:{self.obis}:{self.attribute}"


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """Attribute 3 of a register: the power of ten and the COSEM unit of its value."""

    scaler: int
    unit: int

    @classmethod
    def from_data(cls, data: Data) -> ScalerUnit:
        fields = data.value if data.tag is DataTag.STRUCTURE else ()
        if len(fields) != 2 or fields[0].tag is not DataTag.INTEGER or fields[1].tag is not DataTag.ENUM:
            raise ObjectError(f"scaler_unit: expected structure {{integer, enum}}, got {data.tag.name.lower()}")
        return cls(fields[0].value, fields[1].value)

    def to_data(self) -> Data:
        return structure(Data(DataTag.INTEGER, self.scaler), Data(DataTag.ENUM, self.unit))


def range_access(clock: AttributeDescriptor, start: datetime, end: datetime) -> AccessSelection:
    """Access selector 1 (range_descriptor): the rows whose `clock` column lies from `start` to
    `end`, all columns. Encoded exactly as the seed's request in ch. 4.2."""
    restricting = structure(
        Data(DataTag.LONG_UNSIGNED, clock.class_id), octet_string(clock.instance.to_bytes()),
        Data(DataTag.INTEGER, clock.attribute), Data(DataTag.LONG_UNSIGNED, 0),
    )
    bounds = (octet_string(CosemDateTime.range_bound(moment).to_bytes()) for moment in (start, end))
    return AccessSelection(1, structure(restricting, *bounds, array()))


def entry_access(first: int, last: int, first_column: int = 1, last_column: int = 0) -> AccessSelection:
    """Access selector 2 (entry_descriptor, seed 002 ch. 3.4.3.1): rows `first` to `last` (0: the
    newest) and columns `first_column` to `last_column` (0: the last one)."""
    return AccessSelection(2, structure(
        Data(DataTag.DOUBLE_LONG_UNSIGNED, first), Data(DataTag.DOUBLE_LONG_UNSIGNED, last),
        Data(DataTag.LONG_UNSIGNED, first_column), Data(DataTag.LONG_UNSIGNED, last_column),
    ))


def attribute_value(ref: AttributeRef, data: Data, scaler_unit: ScalerUnit | None = None) -> Value:
    """One GET result as a reading value (ARCHITECTURE.md: value = raw x 10^scaler in the meter's unit)."""
    obis = str(ref.obis)
    if ref.class_id in (REGISTER, EXTENDED_REGISTER) and ref.attribute == 3:
        units = ScalerUnit.from_data(data)
        return Value(obis, None, unit_symbol(units.unit), scaler=units.scaler, unit_code=units.unit)
    if ref.class_id == PROFILE_GENERIC and ref.attribute == 2:
        return Value(obis, profile_rows(data))
    if ref.class_id == PROFILE_GENERIC and ref.attribute == 3:
        return Value(obis, capture_objects(data))
    if ref.class_id == ASSOCIATION_LN and ref.attribute == 2:
        return Value(obis, object_list(data))
    if ref.scaled and scaler_unit is not None and data.tag in (DataTag.FLOAT32, DataTag.FLOAT64):
        # NaN and infinity stay as they are: the reading shows them as null with their spelling.
        return Value(obis, data.value * 10**scaler_unit.scaler, unit_symbol(scaler_unit.unit),
                     scaler=scaler_unit.scaler, unit_code=scaler_unit.unit)
    if ref.scaled and scaler_unit is not None and data.tag in _SCALABLE:
        return object_value(CosemObject(ref.obis, data, scaler_unit.scaler, scaler_unit.unit, obis))
    return object_value(CosemObject(ref.obis, data, code=obis))


_SCALABLE = {DataTag.DOUBLE_LONG, DataTag.DOUBLE_LONG_UNSIGNED, DataTag.INTEGER, DataTag.LONG, DataTag.UNSIGNED,
             DataTag.LONG_UNSIGNED, DataTag.LONG64, DataTag.LONG64_UNSIGNED}
def profile_rows(buffer: Data) -> tuple[ProfileRow, ...]:
    """A profile buffer's rows, each with every column and the time of its first date-time column."""
    if buffer.tag is not DataTag.ARRAY:
        raise ObjectError(f"profile buffer: expected an array of rows, got {buffer.tag.name.lower()}")
    rows = []
    for index, row in enumerate(buffer.value):
        if row.tag is not DataTag.STRUCTURE:
            raise ObjectError(f"profile buffer row {index}: expected a structure, got {row.tag.name.lower()}")
        rows.append(ProfileRow(json_of(row), time=_row_time(row.value)))
    return tuple(rows)


def _row_time(cells: tuple[Data, ...]) -> str | None:
    for cell in cells:
        if cell.tag in (DataTag.OCTET_STRING, DataTag.DATE_TIME) and len(cell.value) == 12:
            try:
                return CosemDateTime.from_bytes(cell.value).iso()
            except DateTimeError:
                return None
    return None


def capture_objects(data: Data) -> tuple[str, ...]:
    """A profile's capture_objects as `CLASS:OBIS:ATTR` (with `:INDEX` when a data index is set)."""
    names = []
    for fields in _elements(data, "capture_objects", "{class_id, logical_name, attribute_index, data_index}", 1, exact=4):
        name = f"{fields[0].value}:{Obis.from_bytes(fields[1].value)}:{fields[2].value}"
        names.append(name + (f":{fields[3].value}" if fields[3].value else ""))
    return tuple(names)


def object_list(data: Data) -> tuple[str, ...]:
    """An association's object_list (class 15 attribute 2) as `CLASS:OBIS`, what a client may read."""
    elements = _elements(data, "object_list", "{class_id, version, logical_name, access_rights}", 2)
    return tuple(f"{fields[0].value}:{Obis.from_bytes(fields[2].value)}" for fields in elements)


def _elements(data: Data, what: str, layout: str, name_at: int, exact: int | None = None) -> list[tuple[Data, ...]]:
    """The fields of each structure in an array of `layout`, whose logical name is field `name_at`."""
    if data.tag is not DataTag.ARRAY:
        raise ObjectError(f"{what}: expected an array, got {data.tag.name.lower()}")
    elements = []
    for item in data.value:
        fields = item.value if item.tag is DataTag.STRUCTURE else ()
        if len(fields) <= name_at or (exact is not None and len(fields) != exact) or not fields[name_at].is_obis:
            raise ObjectError(f"{what}: expected structures {layout}")
        elements.append(fields)
    return elements


_IDENTITIES = ((96, 1, 0), (0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 3), (0, 0, 4), (42, 0, 0))
"""C.D.E of the objects that name a meter, most telling first: the serial / meter number (96.1.0),
the device ids of value group 0.0 (Kamstrup's MeterNo, IdentificationNumber: seed 002 table 2-1),
the logical device name (42.0.0). A and B do not matter: Kamstrup numbers them 1-1."""


def meter_name(obis: Obis, value: Value) -> tuple[int, str] | None:
    """(rank, text) when the value names the meter, rank 0 the most telling; else None."""
    key = (obis.c, obis.d, obis.e)
    if key not in _IDENTITIES or isinstance(value.value, bool) or not isinstance(value.value, (str, int)) or value.value == "":
        return None
    return _IDENTITIES.index(key), str(value.value)


def meter_id_of(values: list[Value]) -> str | None:
    """The meter's number from among the values read, if one of them is an identity object."""
    names = [name for value in values if (name := meter_name(Obis.parse(value.obis), value)) is not None]
    return min(names)[1] if names else None
