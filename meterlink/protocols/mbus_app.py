"""The M-Bus application layer (EN 13757-3) with OMS security mode 5 (OMS Vol. 2 issue 3.0.1 ch. 9.4).

Seed 001 ch. A/B, protocol variant 2: Netz OÖ's AMIS meters (Siemens TD-351x) push it over wired
M-Bus on the optical head, Linz Netz's NES meters over wireless M-Bus. After the CI field comes a
transport header: long (CI 0x5B, 0x72: identification, manufacturer, version, medium, then access
number, status, configuration word) or short (CI 0x7A, 0x5A: access number, status, configuration
word; the address is the link layer's). The configuration word names the security mode (bits 8-12)
and how many 16-byte blocks are encrypted (bits 4-7). Mode 5 is AES-128-CBC with IV = manufacturer,
identification, version, medium (as sent, least significant byte first) then the access number
eight times; the plaintext starts with the fill bytes 2F 2F, which is how a wrong key shows.

The plaintext is a list of data records: DIF (data length and coding, function, storage number
bit), DIFEs (storage, tariff, subunit), VIF (quantity, unit, exponent), VIFEs (direction, phase,
corrections), then the data. 0x2F is fill; DIF 0x0F/0x1F start manufacturer-specific data that
runs to the end and is kept raw.
"""

from __future__ import annotations

import datetime
import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import ProtocolError

CI_SND_UD_LONG = 0x5B
CI_SND_UD_SHORT = 0x5A
CI_RSP_UD_LONG = 0x72
CI_RSP_UD_SHORT = 0x7A
CI_RSP_UD_NONE = 0x78
CI_ELL_SHORT = 0x8C
"""Extended link layer (EN 13757-4 ch. 13), its short form: CC and ACC, nothing encrypted; the
transport layer's CI follows."""
LONG_HEADER_CIS = (CI_SND_UD_LONG, CI_RSP_UD_LONG)
SHORT_HEADER_CIS = (CI_SND_UD_SHORT, CI_RSP_UD_SHORT)
APPLICATION_CIS = LONG_HEADER_CIS + SHORT_HEADER_CIS + (CI_RSP_UD_NONE,)

FILL = 0x2F
MODE_NONE = 0
MODE_AES_CBC_IV = 5
BLOCK = 16


class MBusAppError(ProtocolError):
    """An M-Bus application-layer telegram that cannot be read."""


class UnsupportedMode(MBusAppError):
    """A security mode other than 0 (none) and 5 (AES-128-CBC)."""


class NoKey(MBusAppError):
    """An encrypted telegram and no key to decrypt it."""


class WrongKey(MBusAppError):
    """The plaintext does not start with 2F 2F: the key is not the meter's."""


def manufacturer_code(value: int) -> str:
    """The three letters of an M-field (EN 13757-3 ch. 6.6.2: 5 bits a letter, 'A' = 1)."""
    return "".join(chr(((value >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def manufacturer_value(code: str) -> int:
    """The M-field of three letters (for simulators and tests)."""
    letters = code.upper()
    if len(letters) != 3 or not all("A" <= c <= "Z" for c in letters):
        raise MBusAppError(f"manufacturer {code!r}: three letters A-Z")
    return ((ord(letters[0]) - 64) << 10) | ((ord(letters[1]) - 64) << 5) | (ord(letters[2]) - 64)


@dataclass(frozen=True, slots=True)
class DeviceAddress:
    """Manufacturer, identification number, version and medium (device type): who sent a telegram."""

    manufacturer: int
    identification: bytes
    """The four bytes as sent (BCD, least significant byte first)."""
    version: int
    medium: int

    @classmethod
    def parse(cls, data: bytes, manufacturer_first: bool) -> DeviceAddress:
        """Eight bytes: M, ID, version, medium (wireless link layer) or ID, M, version, medium
        (long transport header)."""
        if len(data) != 8:
            raise MBusAppError(f"device address: {len(data)} bytes, 8 expected")
        if manufacturer_first:
            man, ident = data[0:2], data[2:6]
        else:
            ident, man = data[0:4], data[4:6]
        return cls(int.from_bytes(man, "little"), bytes(ident), data[6], data[7])

    @property
    def manufacturer_code(self) -> str:
        return manufacturer_code(self.manufacturer)

    @property
    def id(self) -> str:
        """The identification number as printed on the meter (eight digits, BCD)."""
        return self.identification[::-1].hex().upper()

    def iv_prefix(self) -> bytes:
        """The first 8 bytes of a mode-5 IV (OMS Vol. 2 ch. 9.4.4)."""
        return self.manufacturer.to_bytes(2, "little") + self.identification + bytes((self.version, self.medium))

    def to_link_bytes(self) -> bytes:
        """M, ID, version, medium: as the wireless link layer carries them."""
        return self.iv_prefix()

    def to_header_bytes(self) -> bytes:
        """ID, M, version, medium: as a long transport header carries them."""
        return self.identification + self.manufacturer.to_bytes(2, "little") + bytes((self.version, self.medium))


def identification_bytes(id_text: str) -> bytes:
    """'20096221' -> the four BCD bytes as sent, least significant first."""
    if len(id_text) != 8:
        raise MBusAppError(f"identification {id_text!r}: eight hex digits")
    try:
        return bytes.fromhex(id_text)[::-1]
    except ValueError:
        raise MBusAppError(f"identification {id_text!r}: eight hex digits") from None


@dataclass(frozen=True, slots=True)
class Transport:
    """The transport header after the CI field (EN 13757-7 ch. 7)."""

    ci: int
    access_number: int | None
    status: int | None
    configuration: int
    address: DeviceAddress | None
    """The long header's address; None for a short header (the link layer's is the meter's)."""

    @property
    def mode(self) -> int:
        return (self.configuration >> 8) & 0x1F

    @property
    def encrypted_blocks(self) -> int:
        return (self.configuration >> 4) & 0x0F

    @property
    def header_length(self) -> int:
        return 12 if self.ci in LONG_HEADER_CIS else 4 if self.ci in SHORT_HEADER_CIS else 0


def without_ell(apdu: bytes) -> bytes:
    """The transport layer's part of a wireless APDU: a short extended link layer (CI 0x8C, its
    communication control and access number) is skipped."""
    return apdu[3:] if apdu[:1] == bytes((CI_ELL_SHORT,)) else apdu


def parse_transport(apdu: bytes) -> Transport:
    """The CI field and transport header at the start of `apdu` (CI included)."""
    if not apdu:
        raise MBusAppError("application layer: no CI field")
    ci = apdu[0]
    if ci not in APPLICATION_CIS:
        raise MBusAppError(f"CI 0x{ci:02X}: not an M-Bus application telegram (0x5A, 0x5B, 0x72, 0x78, 0x7A)")
    if ci == CI_RSP_UD_NONE:
        return Transport(ci, None, None, 0, None)
    if ci in LONG_HEADER_CIS:
        if len(apdu) < 13:
            raise MBusAppError(f"CI 0x{ci:02X}: long header needs 12 bytes, {len(apdu) - 1} sent")
        address = DeviceAddress.parse(apdu[1:9], manufacturer_first=False)
        rest = apdu[9:13]
    else:
        if len(apdu) < 5:
            raise MBusAppError(f"CI 0x{ci:02X}: short header needs 4 bytes, {len(apdu) - 1} sent")
        address = None
        rest = apdu[1:5]
    return Transport(ci, rest[0], rest[1], int.from_bytes(rest[2:4], "little"), address)


def mode5_iv(address: DeviceAddress, access_number: int) -> bytes:
    return address.iv_prefix() + bytes((access_number,)) * 8


def _aes_cbc(key: bytes, iv: bytes, data: bytes, decrypt: bool) -> bytes:
    if len(key) != 16:
        raise MBusAppError(f"AES-128 key: {len(key)} bytes, 16 expected")
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def decrypt_payload(transport: Transport, address: DeviceAddress, payload: bytes, key: bytes | None) -> bytes:
    """The plaintext records after the transport header: mode 0 as sent; mode 5 decrypted (its
    encrypted blocks, then whatever the meter sent in clear behind them)."""
    if transport.mode == MODE_NONE:
        return payload
    if transport.mode != MODE_AES_CBC_IV:
        raise UnsupportedMode(f"security mode {transport.mode}: meterlink reads modes 0 and 5 (AES-128-CBC)")
    size = transport.encrypted_blocks * BLOCK
    if size == 0:
        # Mode 5 with no block left encrypted: a receiver that holds the key (AMB8465, iM871A) hands
        # telegrams over decrypted with the block count cleared.
        return payload
    if size > len(payload):
        raise MBusAppError(f"mode 5: {transport.encrypted_blocks} encrypted blocks stated, {len(payload)} bytes sent")
    if key is None:
        raise NoKey("the telegram is encrypted (OMS mode 5) and no key is set")
    assert transport.access_number is not None
    plaintext = _aes_cbc(key, mode5_iv(address, transport.access_number), payload[:size], decrypt=True)
    if plaintext[:2] != bytes((FILL, FILL)):
        raise WrongKey(f"the telegram does not decrypt with the key (access number {transport.access_number}: "
                       f"plaintext starts {plaintext[:2].hex()}, not 2f2f)")
    return plaintext + payload[size:]


def encrypt_payload(records: bytes, address: DeviceAddress, access_number: int, key: bytes) -> tuple[bytes, int]:
    """Mode-5 ciphertext of `records` (2F 2F put in front, 2F fill to a whole block) and the number
    of blocks: for simulators and tests."""
    plain = bytes((FILL, FILL)) + records
    plain += bytes((FILL,)) * (-len(plain) % BLOCK)
    return _aes_cbc(key, mode5_iv(address, access_number), plain, decrypt=False), len(plain) // BLOCK


def configuration_word(mode: int, blocks: int) -> bytes:
    return ((mode << 8) | (blocks << 4)).to_bytes(2, "little")


# -- data records ------------------------------------------------------------------------------


class Function(enum.Enum):
    INSTANTANEOUS = "instantaneous"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    ERROR = "value during error state"


_FUNCTIONS = (Function.INSTANTANEOUS, Function.MAXIMUM, Function.MINIMUM, Function.ERROR)


class Direction(enum.Enum):
    NONE = ""
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True, slots=True)
class Quantity:
    """What a VIF measures: `name` for people, `unit` as the reading writes it, the exponent of ten."""

    name: str
    unit: str | None = None
    exponent: int = 0
    kind: str = "number"
    """number, date, datetime, text, or raw (data kept as hex)."""


@dataclass(frozen=True, slots=True)
class DataRecord:
    """One data record: its header as read and its value."""

    dif: int
    difes: tuple[int, ...]
    vif: int | None
    vifes: tuple[int, ...]
    function: Function
    storage: int
    tariff: int
    subunit: int
    quantity: Quantity
    direction: Direction
    phase: int | None
    manufacturer_vife: tuple[int, ...]
    """The VIFEs after a manufacturer-specific VIFE 0x7F/0xFF, as sent."""
    raw: int | float | str | None
    """An integer or BCD as sent, a real, a text, a date; manufacturer data as hex."""
    header: bytes = field(default=b"")
    """DIF to the last VIFE, as sent."""
    other_vifes: tuple[int, ...] = ()
    """VIFEs this decoder does not read (error codes, per-time units, ...): they may change what the
    value means, so no OBIS code is given to it."""

    @property
    def description(self) -> str:
        """The record as EN 13757-3 names it, for people (kept beside the OBIS code in a reading)."""
        parts = [self.quantity.name]
        if self.direction is Direction.BACKWARD:
            parts.append("backward")
        if self.phase:
            parts.append(f"L{self.phase}")
        if self.tariff:
            parts.append(f"tariff {self.tariff}")
        if self.storage:
            parts.append(f"storage {self.storage}")
        if self.subunit:
            parts.append(f"subunit {self.subunit}")
        if self.function is not Function.INSTANTANEOUS:
            parts.append(self.function.value)
        if self.manufacturer_vife:
            parts.append("manufacturer VIFE " + bytes(self.manufacturer_vife).hex())
        if self.other_vifes:
            parts.append("VIFE " + bytes(self.other_vifes).hex())
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class ManufacturerData:
    """Data after DIF 0x0F or 0x1F, to the end: the maker's own, kept as sent."""

    data: bytes
    more_follows: bool


_LENGTHS = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8, 0x8: 0,
            0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}
_BCD = (0x9, 0xA, 0xB, 0xC, 0xE)


def _primary(vif: int) -> Quantity:
    """EN 13757-3 table 10: the primary VIF (extension bit cleared)."""
    n3, n2 = vif & 0x07, vif & 0x03
    if vif <= 0x07:
        return Quantity("energy", "Wh", n3 - 3)
    if vif <= 0x0F:
        return Quantity("energy", "J", n3)
    if vif <= 0x17:
        return Quantity("volume", "m3", n3 - 6)
    if vif <= 0x1F:
        return Quantity("mass", "kg", n3 - 3)
    if vif <= 0x23:
        return Quantity("on time", *_DURATION[n2])
    if vif <= 0x27:
        return Quantity("operating time", *_DURATION[n2])
    if vif <= 0x2F:
        return Quantity("power", "W", n3 - 3)
    if vif <= 0x37:
        return Quantity("power", "J/h", n3)
    if vif <= 0x3F:
        return Quantity("volume flow", "m3/h", n3 - 6)
    if vif <= 0x47:
        return Quantity("volume flow", "m3/min", n3 - 7)
    if vif <= 0x4F:
        return Quantity("volume flow", "m3/s", n3 - 9)
    if vif <= 0x57:
        return Quantity("mass flow", "kg/h", n3 - 3)
    if vif <= 0x5B:
        return Quantity("flow temperature", "°C", n2 - 3)
    if vif <= 0x5F:
        return Quantity("return temperature", "°C", n2 - 3)
    if vif <= 0x63:
        return Quantity("temperature difference", "K", n2 - 3)
    if vif <= 0x67:
        return Quantity("external temperature", "°C", n2 - 3)
    if vif <= 0x6B:
        return Quantity("pressure", "bar", n2 - 3)
    if vif == 0x6C:
        return Quantity("date", kind="date")
    if vif == 0x6D:
        return Quantity("date and time", kind="datetime")
    if vif == 0x6E:
        return Quantity("units for H.C.A.")
    if vif <= 0x73:
        return Quantity("averaging duration", *_DURATION[n2])
    if vif <= 0x77:
        return Quantity("actuality duration", *_DURATION[n2])
    if vif == 0x78:
        return Quantity("fabrication number")
    if vif == 0x79:
        return Quantity("enhanced identification")
    if vif == 0x7A:
        return Quantity("bus address")
    return Quantity(f"VIF 0x{vif:02X}", kind="raw")


_DURATION = (("s", 0), ("min", 0), ("h", 0), ("d", 0))

_FD_NAMES = {
    0x08: "access number", 0x09: "medium", 0x0A: "manufacturer", 0x0B: "parameter set identification",
    0x0C: "model / version", 0x0D: "hardware version", 0x0E: "firmware version", 0x0F: "software version",
    0x10: "customer location", 0x11: "customer", 0x12: "access code user", 0x16: "password",
    0x17: "error flags", 0x18: "error mask", 0x1A: "digital output", 0x1B: "digital input", 0x1C: "baud rate",
    0x1D: "response delay time", 0x1E: "retry", 0x60: "reset counter", 0x61: "cumulation counter",
    0x74: "remaining battery life",
}


def _extension_fd(code: int) -> Quantity:
    """EN 13757-3 table 12 (VIF 0xFD), the entries electricity and OMS meters use."""
    if 0x40 <= code <= 0x4F:
        return Quantity("voltage", "V", (code & 0x0F) - 9)
    if 0x50 <= code <= 0x5F:
        return Quantity("current", "A", (code & 0x0F) - 12)
    if code == 0x74:
        return Quantity("remaining battery life", "d")
    if code in _FD_NAMES:
        return Quantity(_FD_NAMES[code])
    return Quantity(f"VIF FD 0x{code:02X}", kind="raw")


def _extension_fb(code: int) -> Quantity:
    """EN 13757-3:2018 table 14 (VIF 0xFB), energy, reactive and apparent quantities; units in
    Wh/varh/VAh, W/var/VA so that seed 001's variant 4 reads in its own units."""
    n1, n2 = code & 0x01, code & 0x03
    if code <= 0x01:
        return Quantity("energy", "Wh", n1 + 5)  # 10^(n-1) MWh
    if code <= 0x03:
        return Quantity("reactive energy", "varh", n1 + 3)  # 10^n kvarh
    if code <= 0x07:
        return Quantity("apparent energy", "VAh", n2 + 3)  # 10^n kVAh
    if 0x08 <= code <= 0x09:
        return Quantity("energy", "J", n1 + 8)  # 10^(n-1) GJ
    if 0x10 <= code <= 0x11:
        return Quantity("volume", "m3", n1 + 2)
    if 0x14 <= code <= 0x17:
        return Quantity("reactive power", "var", n2)  # 10^(nn-3) kvar
    if 0x18 <= code <= 0x19:
        return Quantity("mass", "kg", n1 + 5)  # 10^(n+2) t
    if 0x1A <= code <= 0x1B:
        return Quantity("relative humidity", "%", n1 - 1)
    if 0x28 <= code <= 0x29:
        return Quantity("power", "W", n1 + 5)  # 10^(n-1) MW
    if 0x2C <= code <= 0x2F:
        return Quantity("apparent power", "VA", n2)  # 10^(nn-3) kVA
    return Quantity(f"VIF FB 0x{code:02X}", kind="raw")


class RecordReader:
    """Reads the data records of a plaintext (EN 13757-3 ch. 6)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int, what: str) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise MBusAppError(f"data record at byte {self.pos}: {what} needs {count} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def _byte(self, what: str) -> int:
        return self._take(1, what)[0]

    def records(self) -> tuple[list[DataRecord], ManufacturerData | None]:
        records: list[DataRecord] = []
        while self.pos < len(self.data):
            dif = self.data[self.pos]
            if dif == FILL:
                self.pos += 1
                continue
            if dif in (0x0F, 0x1F):
                self.pos += 1
                return records, ManufacturerData(self.data[self.pos:], dif == 0x1F)
            if dif & 0x0F == 0x0F:
                raise MBusAppError(f"data record at byte {self.pos}: special function DIF 0x{dif:02X}")
            records.append(self._record())
        return records, None

    def _record(self) -> DataRecord:
        start = self.pos
        dif = self._byte("DIF")
        difes = []
        more = dif & 0x80
        while more:
            if len(difes) == 10:
                raise MBusAppError(f"data record at byte {start}: more than 10 DIFEs")
            dife = self._byte("DIFE")
            difes.append(dife)
            more = dife & 0x80
        storage = (dif >> 6) & 0x01
        tariff = subunit = 0
        for index, dife in enumerate(difes):
            storage |= (dife & 0x0F) << (1 + 4 * index)
            tariff |= ((dife >> 4) & 0x03) << (2 * index)
            subunit |= ((dife >> 6) & 0x01) << index
        coding = dif & 0x0F
        function = _FUNCTIONS[(dif >> 4) & 0x03]
        if coding == 0x08:
            raise MBusAppError(f"data record at byte {start}: DIF 0x{dif:02X} is a readout selection, not data")
        vif, vifes, quantity, direction, phase, manufacturer, others = self._vif(start)
        header = self.data[start:self.pos]
        raw = self._data(start, coding, quantity)
        if quantity.kind in ("date", "datetime") and isinstance(raw, int):
            raw = _date_time(raw, coding, start)
        return DataRecord(dif, tuple(difes), vif, tuple(vifes), function, storage, tariff, subunit, quantity,
                          direction, phase, tuple(manufacturer), raw, header, tuple(others))

    def _vif(self, start: int) -> tuple[int, list[int], Quantity, Direction, int | None, list[int], list[int]]:
        vif = self._byte("VIF")
        base = vif & 0x7F
        vifes: list[int] = []
        if base == 0x7B:
            code = self._byte("VIFE after 0xFB")
            vifes.append(code)
            quantity = _extension_fb(code & 0x7F)
            more = code & 0x80
        elif base == 0x7D:
            code = self._byte("VIFE after 0xFD")
            vifes.append(code)
            quantity = _extension_fd(code & 0x7F)
            more = code & 0x80
        elif base == 0x7C:
            length = self._byte("plain-text VIF length")
            text = self._take(length, "plain-text VIF")
            quantity = Quantity(text[::-1].decode("latin-1"))
            more = vif & 0x80
        elif base == 0x7E:
            quantity = Quantity("any VIF", kind="raw")
            more = vif & 0x80
        elif base == 0x7F:
            quantity = Quantity("manufacturer specific", kind="raw")
            more = vif & 0x80
        else:
            quantity = _primary(base)
            more = vif & 0x80
        direction = Direction.NONE
        phase = None
        manufacturer: list[int] = []
        others: list[int] = []
        makers = False
        exponent = quantity.exponent
        while more:
            if len(vifes) >= 11:
                raise MBusAppError(f"data record at byte {start}: more than 10 VIFEs")
            vife = self._byte("VIFE")
            vifes.append(vife)
            more = vife & 0x80
            code = vife & 0x7F
            if makers:
                manufacturer.append(vife)
            elif code == 0x7F:
                makers = True  # the VIFEs after it are the maker's
            elif code == 0x3C:
                direction = Direction.BACKWARD
            elif code == 0x3B:
                direction = Direction.FORWARD
            elif 0x70 <= code <= 0x77:
                exponent += (code & 0x07) - 6
            elif code == 0x7D:
                exponent += 3
            elif code == 0x7C:
                extension = self._byte("VIFE after 0xFC")
                vifes.append(extension)
                more = extension & 0x80
                if 1 <= extension & 0x7F <= 3:
                    phase = extension & 0x7F
                else:
                    others += [vife, extension]
            else:
                others.append(vife)  # kept, and named in the description: it may change the meaning
        if exponent != quantity.exponent:
            quantity = Quantity(quantity.name, quantity.unit, exponent, quantity.kind)
        return vif, vifes, quantity, direction, phase, manufacturer, others

    def _data(self, start: int, coding: int, quantity: Quantity) -> int | float | str | None:
        if coding == 0x0D:
            return self._variable(start)
        length = _LENGTHS[coding]
        data = self._take(length, f"data of DIF coding 0x{coding:X}")
        if length == 0:
            return None
        if quantity.kind == "raw":
            return data.hex()
        if coding == 0x5:
            return struct.unpack("<f", data)[0]
        if coding in _BCD:
            return _bcd(data, start)
        return int.from_bytes(data, "little", signed=quantity.kind == "number")

    def _variable(self, start: int) -> str:
        lvar = self._byte("LVAR")
        if lvar <= 0xBF:
            return self._take(lvar, "text")[::-1].decode("latin-1")
        if lvar <= 0xCF:
            digits = self._take(lvar - 0xC0, "BCD")
            return str(_bcd(digits, start))
        if lvar <= 0xDF:
            digits = self._take(lvar - 0xD0, "BCD")
            return str(-_bcd(digits, start))
        if lvar <= 0xEF:
            return self._take(lvar - 0xE0, "binary").hex()
        raise MBusAppError(f"data record at byte {start}: LVAR 0x{lvar:02X} is reserved")


def _bcd(data: bytes, start: int) -> int:
    """BCD as sent, least significant byte first; an F in the top nibble is a minus sign (type A)."""
    digits = data[::-1].hex()
    if not digits:
        raise MBusAppError(f"data record at byte {start}: BCD of no digits")
    negative = digits[0] in "fF"
    if negative:
        digits = digits[1:]
    if not digits.isdigit():
        raise MBusAppError(f"data record at byte {start}: BCD {data.hex()} holds a non-digit")
    value = int(digits) if digits else 0
    return -value if negative else value


def _date_time(value: int, coding: int, start: int) -> str | None:
    """Type G (2 bytes, date), F (4 bytes, date and minute) or I (6 bytes, date and second) as ISO 8601;
    None for a day that does not exist (FFFF is a date "not set")."""
    if coding == 0x2:  # type G
        day, month = value & 0x1F, (value >> 8) & 0x0F
        year = ((value >> 5) & 0x07) | ((value >> 9) & 0x78)
        return _check_date(f"{2000 + year:04d}-{month:02d}-{day:02d}")
    if coding == 0x4:  # type F; its IV bit is not honoured: meters set it on valid times (wmbusmeters' waterstarm)
        minute, hour = value & 0x3F, (value >> 8) & 0x1F
        date = value >> 16
        day, month = date & 0x1F, (date >> 8) & 0x0F
        year = ((date >> 5) & 0x07) | ((date >> 9) & 0x78)
        return _check_date(f"{2000 + year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00")
    if coding == 0x6:  # type I
        second, minute, hour = value & 0x3F, (value >> 8) & 0x3F, (value >> 16) & 0x1F
        date = value >> 24
        day, month = date & 0x1F, (date >> 8) & 0x0F
        year = ((date >> 5) & 0x07) | ((date >> 9) & 0x78)
        return _check_date(f"{2000 + year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}")
    raise MBusAppError(f"data record at byte {start}: a date in DIF coding 0x{coding:X} (types G, F, I take 2, 4, 6 bytes)")


def _check_date(text: str) -> str | None:
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return text


def parse_records(plaintext: bytes) -> tuple[list[DataRecord], ManufacturerData | None]:
    """The data records of a plaintext, and the manufacturer data after DIF 0x0F/0x1F if any."""
    return RecordReader(plaintext).records()


@dataclass(frozen=True, slots=True)
class AppTelegram:
    """A decoded application-layer telegram."""

    transport: Transport
    address: DeviceAddress
    records: tuple[DataRecord, ...]
    manufacturer_data: ManufacturerData | None
    plaintext: bytes


def decode_application(apdu: bytes, link_address: DeviceAddress | None, keys: Sequence[bytes] = ()) -> AppTelegram:
    """CI, transport header and records; `link_address` is the wireless link layer's (the meter's
    for a short header). `keys` are tried in order (a pending key of a change-over first). Raises
    NoKey, WrongKey, UnsupportedMode or MBusAppError."""
    apdu = without_ell(apdu)
    transport = parse_transport(apdu)
    address = transport.address or link_address
    if address is None:
        raise MBusAppError(f"CI 0x{transport.ci:02X}: a short header needs the link layer's address")
    payload = apdu[1 + transport.header_length:]
    wrong: WrongKey | None = None
    for key in keys or (None,):
        try:
            plaintext = decrypt_payload(transport, address, payload, key)
            break
        except WrongKey as error:
            wrong = error
    else:
        assert wrong is not None
        raise wrong
    records, manufacturer = parse_records(plaintext)
    return AppTelegram(transport, address, tuple(records), manufacturer, plaintext)
