"""P1 telegrams (seed 003, e-MUCs P1 1.7.1; its base DSMR P1 5.0.2 ch. 6).

A telegram is `/XXX5<identification>` CRLF CRLF, data lines each ending CRLF, then `!`, four hex
digits of CRC-16/ARC over everything from `/` to `!` inclusive, and CRLF. DSMR 2.2/3 telegrams end
at `!` without a CRC. `P1Framer` cuts a byte stream into telegrams (one event per telegram, never
one per byte or line); `parse_telegram` turns one telegram into a `P1Telegram`.

Some meters send the telegram encrypted instead (the Luxembourg Smarty, Energienetze Steiermark's
Sagemcom T210-D-r): a general-glo-ciphering APDU `DB 08 <system title> <length> <SC> <frame
counter> <ciphertext>[<tag>]` whose plaintext is the telegram. The framer finds those in the same
stream and hands each out whole as an `EncryptedTelegram`; `p1_encrypted.decrypt_telegram` opens it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .crc import crc16_arc
from .dlms.axdr import AxdrError, decode_length
from .dlms.security import GENERAL_GLO_CIPHERING
from .errors import ProtocolError
from .readings import ProfileRow, Reading, Value, scaled

MAX_TELEGRAM = 8192
"""Bytes from `/` to the end of the CRC line; a longer telegram is dropped as oversized."""
MAX_DIGITS = 20
"""Digits of a number (DSMR's widest format is F8(3,3)): a longer one fits in a telegram but not in
Python's int conversion (4,300 digits) or a float, and no meter sends it."""


class P1Error(ProtocolError):
    """A P1 telegram that does not parse."""


class CrcStatus(enum.Enum):
    OK = "ok"
    MISMATCH = "mismatch"
    ABSENT = "absent"  # DSMR 2.2/3: `!` with nothing after it


@dataclass(frozen=True, slots=True)
class TelegramStarted:
    """A `/` was seen: a telegram begins."""


@dataclass(frozen=True, slots=True)
class TelegramFramed:
    """A whole telegram up to its CRC line, checked and, where the CRC allows, parsed."""

    raw: bytes
    crc: CrcStatus
    telegram: P1Telegram | None
    error: P1Error | None


@dataclass(frozen=True, slots=True)
class NoiseDiscarded:
    """Bytes outside any telegram, dropped while waiting for `/`."""

    count: int


@dataclass(frozen=True, slots=True)
class TelegramOversized:
    """A telegram that grew past the size limit before its end; dropped."""

    count: int


@dataclass(frozen=True, slots=True)
class TelegramTruncated:
    """A new `/` arrived before the running telegram ended: the partial one is dropped and the
    new one has begun (no separate TelegramStarted follows)."""

    count: int


@dataclass(frozen=True, slots=True)
class EncryptedTelegram:
    """A whole general-glo-ciphering APDU as sent, its plaintext a telegram; not yet decrypted."""

    apdu: bytes

    @property
    def system_title(self) -> bytes:
        """The meter's system title: its maker's three-letter FLAG id, then a serial number."""
        return self.apdu[2:10]


FramerEvent = (TelegramStarted | TelegramFramed | EncryptedTelegram | NoiseDiscarded | TelegramOversized
               | TelegramTruncated)

CIPHERED_TAG = bytes((GENERAL_GLO_CIPHERING,))
_TITLE_LENGTH = 8
_LENGTH_AT = 2 + _TITLE_LENGTH
_SECURITY_HEADER = 5
"""The security control byte and the frame counter: the least an APDU's length covers."""
_UNDECIDED = -1


def ciphered_size(data: bytes | bytearray, start: int, limit: int = MAX_TELEGRAM) -> int | None:
    """The size of the general-glo-ciphering APDU that begins at `start` (`DB 08`, a system title
    whose maker id is three capital letters, a BER length of at most two bytes, no more than
    `limit` bytes in all); None when none begins there, -1 when `data` ends before that is known.

    The checks keep a stray `DB` in line noise from holding the stream for thousands of bytes."""
    header = data[start : start + _LENGTH_AT + 3]
    if header[:1] != CIPHERED_TAG or header[1:2] not in (b"", bytes((_TITLE_LENGTH,))):
        return None
    if not all(0x41 <= letter <= 0x5A for letter in header[2:5]):
        return None
    if len(header) <= _LENGTH_AT:
        return _UNDECIDED
    form = header[_LENGTH_AT]
    if form > 0x82:
        return None
    if len(header) < _LENGTH_AT + 1 + (form & 0x7F if form >= 0x80 else 0):
        return _UNDECIDED
    try:
        length, end = decode_length(header, _LENGTH_AT)
    except AxdrError:
        return None
    size = end + length
    return size if length >= _SECURITY_HEADER and size <= limit else None


class P1Framer:
    """Sans-IO framing: feed bytes as they arrive, get one event per telegram boundary.

    A plain telegram runs from `/` to its CRC line; an encrypted one is a general-glo-ciphering
    APDU of the length its header states (its bytes may hold `/` and `!`)."""

    def __init__(self, max_size: int = MAX_TELEGRAM) -> None:
        self._buffer = bytearray()
        self._in_telegram = False
        self._apdu_size: int | None = None
        """The size of the encrypted telegram being read; None while reading a plain one."""
        self._max_size = max_size
        self._memo = ObjectMemo()

    def reset(self) -> None:
        """Forget a partial telegram; the next bytes are hunted for `/` or an APDU."""
        self._buffer.clear()
        self._in_telegram = False
        self._apdu_size = None

    @property
    def in_telegram(self) -> bool:
        return self._in_telegram

    def feed(self, data: bytes) -> list[FramerEvent]:
        self._buffer += data
        events: list[FramerEvent] = []
        while self._buffer:
            if not self._in_telegram:
                if not self._hunt(events):
                    break
            elif self._apdu_size is not None:
                if not self._read_apdu(events):
                    break
            elif not self._read(events):
                break
        return events

    def _hunt(self, events: list[FramerEvent]) -> bool:
        start, apdu_size = self._next_start()
        if start:
            events.append(NoiseDiscarded(start))
            del self._buffer[:start]
        if apdu_size == _UNDECIDED or not self._buffer:
            return False
        self._in_telegram = True
        self._apdu_size = apdu_size
        events.append(TelegramStarted())
        return True

    def _next_start(self) -> tuple[int, int | None]:
        """Where the next telegram begins (the buffer's length if nowhere), with its APDU size:
        None for a plain telegram, -1 for an APDU header not yet complete."""
        buffer = self._buffer
        at = 0
        while True:
            slash = buffer.find(b"/", at)
            tag = buffer.find(CIPHERED_TAG, at, slash if slash >= 0 else len(buffer))
            if tag < 0:
                return (slash, None) if slash >= 0 else (len(buffer), None)
            size = ciphered_size(buffer, tag, self._max_size)
            if size is not None:
                return tag, size
            at = tag + 1

    def _read_apdu(self, events: list[FramerEvent]) -> bool:
        size = self._apdu_size
        assert size is not None
        if len(self._buffer) < size:
            return False
        events.append(EncryptedTelegram(bytes(self._buffer[:size])))
        del self._buffer[:size]
        self._in_telegram = False
        self._apdu_size = None
        return True

    def _read(self, events: list[FramerEvent]) -> bool:
        buffer = self._buffer
        bang = buffer.find(b"!")
        end = buffer.find(b"\n", bang) if bang >= 0 else -1
        # A `/` before the end of the CRC line begins a telegram: noise that held a `/` and a `!` but
        # no line end must not take the next telegram's first line for its CRC line.
        restart = buffer.find(b"/", 1, end if end >= 0 else len(buffer))
        if restart > 0:
            events.append(TelegramTruncated(restart))
            del buffer[:restart]
            return True
        if end < 0:
            if len(buffer) > self._max_size:
                self._drop_oversized(events)
                return True
            return False
        if end + 1 > self._max_size:
            self._drop_oversized(events)
            return True
        events.append(check_telegram(bytes(buffer[: end + 1]), self._memo))
        del buffer[: end + 1]
        self._in_telegram = False
        return True

    def _drop_oversized(self, events: list[FramerEvent]) -> None:
        events.append(TelegramOversized(len(self._buffer)))
        self.reset()
        # The rest of the oversized telegram arrives as noise until the next `/`.


_CRC_LINE = re.compile(rb"!([0-9A-Fa-f]{1,4})?\r?\n\Z")
"""Four hex digits, or fewer where a meter leaves out leading zeros (`!B9F`, NWA heat interfaces)."""


def check_telegram(raw: bytes, memo: ObjectMemo | None = None) -> TelegramFramed:
    """Check the CRC of one telegram (`/` ... `!XXXX` CRLF) and parse it when the CRC allows
    (with the objects of the meter's last telegram in `memo`, where given)."""
    bang = raw.rfind(b"!")
    crc_line = _CRC_LINE.match(raw, bang)
    if crc_line is None:
        return TelegramFramed(raw, CrcStatus.MISMATCH, None, P1Error(f"CRC line {raw[bang:]!r} is not '!' and the CRC in hex"))
    sent = crc_line.group(1)
    if sent is None:
        status = CrcStatus.ABSENT
    elif int(sent, 16) == crc16_arc(raw[: bang + 1]):
        status = CrcStatus.OK
    else:
        return TelegramFramed(raw, CrcStatus.MISMATCH, None, None)
    try:
        return TelegramFramed(raw, status, parse_telegram(raw[:bang], memo), None)
    except P1Error as error:
        return TelegramFramed(raw, status, None, error)


def is_telegram(data: bytes) -> bool:
    """Whether `data` is one whole telegram: the identification line first, the CRC line last
    (what a right key's plaintext is, and a wrong key's is not)."""
    bang = data.rfind(b"!")
    return _HEADER.match(data) is not None and bang >= 0 and _CRC_LINE.match(data, bang) is not None


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A data line that does not parse: left out of the reading, the rest of the telegram is read."""

    line: int
    """Its line number in the telegram, the identification line being line 1."""
    obis: str | None
    """The object code it begins with, in full form, where it begins with one."""
    text: str
    """The line as sent, cut to `SKIPPED_TEXT` characters."""
    reason: str

    def __str__(self) -> str:
        named = f" ({self.obis})" if self.obis else ""
        return f"line {self.line}{named} skipped: {self.reason}: {self.text!r}"


SKIPPED_TEXT = 60


@dataclass(frozen=True, slots=True)
class P1Telegram:
    """A parsed telegram: the identification line, the data objects in the order sent, and the
    lines that did not parse."""

    header: str
    values: tuple[Value, ...]
    skipped: tuple[SkippedLine, ...] = ()

    @property
    def meter_id(self) -> str | None:
        """Equipment identifier 0-0:96.1.1 decoded from hex where printable (DIN 43863-5), else as sent;
        the Luxembourg Smarty names itself in 0-0:42.0.0 (COSEM logical device name) instead."""
        for obis in ("0-0:96.1.1.255", "0-0:96.1.0.255", "0-0:42.0.0.255"):
            value = _find(self.values, obis)
            if value is not None and isinstance(value.value, str) and value.value:
                return _hex_text(value.value)
        return None

    @property
    def captured_at(self) -> str | None:
        """The telegram's own time stamp, 0-0:1.0.0 (None where the meter sends the placeholder)."""
        value = _find(self.values, "0-0:1.0.0.255")
        return value.value if value is not None and isinstance(value.value, str) else None

    def to_reading(self, received_at: float | None) -> Reading:
        return Reading(self.meter_id, "p1", received_at, self.captured_at, self.values)


def _find(values: tuple[Value, ...], obis: str) -> Value | None:
    for value in values:
        if value.obis == obis:
            return value
    return None


def _hex_text(text: str) -> str:
    try:
        decoded = bytes.fromhex(text).decode("ascii")
    except ValueError:
        return text
    return decoded if decoded.isprintable() and decoded else text


_HEADER = re.compile(rb"/([A-Za-z]{3}[\x21-\x7e][\x20-\x7e]*)\r?\n")
"""`/`, the maker's three-letter id, then the identification in printable ASCII: DSMR's `/XXX5...`,
and meters that leave out the baud-rate digit (`/NWA-WARMTELINK`)."""
_CODE = r"[0-9]{1,3}-[0-9]{1,3}:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
_OBJECT = re.compile(rf"({_CODE})(?:\*([0-9]{{1,3}}))?((?:\([^()]*\))+)\Z")
"""One object: its code (D0 style `C.D.E*F` too, EasyMeter), then its fields in brackets."""
_LEADING_CODE = re.compile(rf"({_CODE})(?:\*([0-9]{{1,3}}))?")
# [0-9], not \d or str.isdigit: those take digits such as Latin-1's superscripts that int() refuses.
_NUMBER = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?\Z")
_TIMESTAMP = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([SWsw]?)\Z")
"""YYMMDDhhmmssX; X is S or W, lowercase from some meters (L+G E350 DSMR 4.0), absent in DSMR 2.2/3."""
_NO_TIME = "632525252525"
"""The placeholder a meter sends where it has no time (Fluvius/e-MUCs empty months, a gas meter
not yet heard), with either season letter."""
_DIGITS = re.compile(r"[0-9]+\Z")
_OBIS_REF = re.compile(rf"{_CODE}\Z")

INTEGER_OBJECTS = frozenset(
    ("0-0:96.3.10", "0-0:96.7.21", "0-0:96.7.9", "1-0:32.32.0", "1-0:52.32.0", "1-0:72.32.0",
     "1-0:32.36.0", "1-0:52.36.0", "1-0:72.36.0")
)
"""Unitless objects DSMR types as integers (breaker state, failure and sag counters); channel
objects 0-n:24.1.0 (device type) and 0-n:24.4.0 (valve state) are matched by C.D.E below."""
TIME_OBJECTS = frozenset(("1.0.0",))
"""C.D.E of objects whose one field is a time (the clock 0-0:1.0.0): only there is a bare 12-digit
field, without season letter (DSMR 2.2/3), taken for a time."""
TEXT_OBJECTS = ("96.1.",)
"""C.D. of objects that are text whatever they look like: equipment identifiers 0-n:96.1.x, whose
12 digits (`0-1:96.1.0(000000000000)`) are no time stamp."""


class ObjectMemo:
    """The objects of a meter's last telegram by the text of their lines.

    Most lines come again unchanged from one telegram to the next (identifiers, device types, the
    tariff, registers that did not move, the max-demand history), and a line's text alone makes its
    Value: such a line is the last telegram's Value again, parsed once, and kept once in the hub's
    60 s of readings. Holds one telegram's objects at most.
    """

    def __init__(self) -> None:
        self._last: dict[str, Value] = {}
        self._this: dict[str, Value] = {}

    def get(self, text: str) -> Value | None:
        return self._last.get(text)

    def keep(self, text: str, value: Value) -> None:
        self._this[text] = value

    def telegram_done(self) -> None:
        self._last, self._this = self._this, {}


def parse_telegram(body: bytes, memo: ObjectMemo | None = None) -> P1Telegram:
    """Parse a telegram from `/` up to (not including) `!`.

    A data line that does not parse is skipped and named in `P1Telegram.skipped`; only an
    identification line that is not `/` and the maker's three letters fails the whole telegram.
    A line that begins with `(` continues the object before it (DSMR 2.2/3 puts the gas value of
    0-n:24.3.0 on the next line)."""
    header = _HEADER.match(body)
    if header is None:
        raise P1Error(f"identification line {body[:40]!r}: expected '/XXX5<identification>'")
    values: list[Value] = []
    skipped: list[SkippedLine] = []
    pending: tuple[int, str] | None = None  # an object's first line number and its text so far
    lines = body[header.end() :].decode("latin-1").split("\n")
    for number, line in enumerate(lines, start=2):
        text = line.strip()
        if text.startswith("(") and pending is not None:
            pending = (pending[0], pending[1] + text)
            continue
        if pending is not None:
            _read_object(*pending, values, skipped, memo)
            pending = None
        if text:
            pending = (number, text)
    if pending is not None:
        _read_object(*pending, values, skipped, memo)
    if memo is not None:
        memo.telegram_done()
    return P1Telegram(header.group(1).decode("ascii"), tuple(values), tuple(skipped))


def _read_object(line: int, text: str, values: list[Value], skipped: list[SkippedLine], memo: ObjectMemo | None) -> None:
    known = memo.get(text) if memo is not None else None
    if known is not None:
        values.append(known)
        memo.keep(text, known)  # type: ignore[union-attr]
        return
    match = _OBJECT.match(text)
    try:
        if match is None:
            raise P1Error("not an OBIS code followed by values in brackets")
        code, billing, groups = match.groups()
        value = _parse_object(code, billing, groups[1:-1].split(")("))
        values.append(value)
        if memo is not None:
            memo.keep(text, value)
    except P1Error as error:
        leading = _LEADING_CODE.match(text)
        obis = _full_code(*leading.groups()) if leading else None
        skipped.append(SkippedLine(line, obis, text[:SKIPPED_TEXT], str(error)))


def _full_code(code: str, billing: str | None) -> str:
    """`A-B:C.D.E` with F: 255 where the line leaves it out, as given after `*` in D0 style."""
    return f"{code}.{int(billing) if billing is not None else 255}"


def _parse_object(code: str, billing: str | None, fields: list[str]) -> Value:
    obis = _full_code(code, billing)
    cde = code.split(":", 1)[1]
    if len(fields) == 1:
        return _single(obis, code, cde, fields[0])
    if cde.startswith(TEXT_OBJECTS):
        raise P1Error(f"an identifier with {len(fields)} fields")
    if len(fields) == 2 and _TIMESTAMP.match(fields[0]):
        return _with_time(obis, fields[0], fields[1])
    if len(fields) >= 6 and _OBIS_REF.match(fields[4]):
        return _hourly(obis, fields)
    if _OBIS_REF.match(fields[1]):
        return _profile(obis, fields)
    raise P1Error(f"a list of {len(fields)} fields in no known layout")


def _single(obis: str, code: str, cde: str, field: str) -> Value:
    if cde.startswith(TEXT_OBJECTS):
        return Value(obis, field)
    if "*" in field:
        return _measured(obis, field)
    time = _TIMESTAMP.match(field)
    if time is not None and (time.group(7) or cde in TIME_OBJECTS):
        return Value(obis, _time(field))
    if _is_integer_object(code) and field.isdigit():  # isdigit also takes "²", which _integer names
        return Value(obis, _integer(field, "value"))
    return Value(obis, field)


def _is_integer_object(code: str) -> bool:
    return code in INTEGER_OBJECTS or (code.startswith("0-") and code.split(":", 1)[1] in ("24.1.0", "24.4.0"))


def _with_time(obis: str, time_field: str, field: str, unit: str | None = None) -> Value:
    """A value with its capture time; `unit` where the value's field carries none (DSMR 2.2/3)."""
    if unit is not None and "*" not in field:
        field = f"{field}*{unit}"
    value = _measured(obis, field) if "*" in field else Value(obis, field)
    time = _time(time_field)
    return Value(value.obis, value.value, value.unit, value.raw, value.scaler, None, time, no_time=time is None)


def _hourly(obis: str, fields: list[str]) -> Value:
    """DSMR 2.2/3 0-n:24.3.0: (time)(status)(period in minutes)(number of values)(OBIS of the
    value)(unit)(value)...; one value is read with its time, more are ambiguous."""
    count = _integer(fields[3], "value count")
    if count != 1 or len(fields) != 7:
        raise P1Error(f"{count} values in {len(fields) - 6} fields: only one value with its time is read")
    return _with_time(obis, fields[0], fields[6], fields[5])


def _measured(obis: str, field: str) -> Value:
    number, _, unit = field.partition("*")
    raw, scaler = _decimal(number)
    return Value(obis, scaled(raw, scaler), unit, raw, scaler)


def _decimal(text: str) -> tuple[int, int]:
    match = _NUMBER.match(text)
    if match is None:
        raise P1Error(f"{text!r} is not a decimal number")
    sign, whole, fraction = match.groups(default="")
    _check_digits(text, len(whole) + len(fraction))
    return int(sign + whole + fraction), -len(fraction)


def _integer(text: str, what: str) -> int:
    if _DIGITS.match(text) is None:
        raise P1Error(f"{what} {text!r} is not a number")
    _check_digits(text, len(text))
    return int(text)


def _check_digits(text: str, digits: int) -> None:
    if digits > MAX_DIGITS:
        raise P1Error(f"number {text[:20]!r}... has {digits} digits, at most {MAX_DIGITS}")


def _profile(obis: str, fields: list[str]) -> Value:
    """A buffer such as 0-0:98.1.0: (count)(OBIS of each capture object...)(row)...; each row is the
    entry's time stamp followed by one field per capture object."""
    count = _integer(fields[0], "profile entry count")
    refs = 1
    while refs < len(fields) and _OBIS_REF.match(fields[refs]):
        refs += 1
    width = refs  # the entry time stamp plus one field per capture object
    cells = fields[refs:]
    if len(cells) != count * width:
        raise P1Error(f"profile declares {count} entries of {width} fields but carries {len(cells)} fields")
    rows = tuple(_profile_row(cells[i : i + width]) for i in range(0, len(cells), width))
    return Value(obis, rows)


def _profile_row(cells: list[str]) -> ProfileRow:
    times = [_time(cell) for cell in cells[:-1]]
    value = _measured("", cells[-1]) if "*" in cells[-1] else Value("", cells[-1])
    entry_time = times[0] if len(times) > 1 else None
    time = times[-1] if times else None
    return ProfileRow(value.value, time, entry_time, value.unit, value.raw, value.scaler, no_time=bool(times) and time is None)


def _time(field: str) -> str | None:
    """A time stamp, or None for the meter's placeholder for no time."""
    return None if field[:-1] == _NO_TIME and field[-1:] in ("S", "W", "s", "w") else timestamp(field)


def timestamp(field: str) -> str:
    """A P1 time stamp YYMMDDhhmmssX as ISO 8601 local time, as the meter states it (X = S summer,
    W winter time); like every link's `captured_at`, without a UTC offset (ARCHITECTURE.md)."""
    match = _TIMESTAMP.match(field)
    if match is None:
        raise P1Error(f"{field!r} is not a time stamp YYMMDDhhmmssX")
    yy, mo, dd, hh, mi, ss, season = match.groups()
    if not (1 <= int(mo) <= 12 and 1 <= int(dd) <= 31 and int(hh) < 24 and int(mi) < 60 and int(ss) < 61):
        raise P1Error(f"time stamp {field!r} is out of range")
    return f"20{yy}-{mo}-{dd}T{hh}:{mi}:{ss}"


def telegram_bytes(header: str, lines: list[str]) -> bytes:
    """Build a telegram with its CRC, as a meter sends it (for simulators and tests)."""
    body = f"/{header}\r\n\r\n" + "".join(f"{line}\r\n" for line in lines) + "!"
    raw = body.encode("latin-1")
    return raw + f"{crc16_arc(raw):04X}\r\n".encode("ascii")
