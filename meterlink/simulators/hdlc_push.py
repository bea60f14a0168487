"""A simulated meter that pushes DLMS data-notifications in HDLC frames (seed 001 ch. A and B.5; the
Nordic HAN meters).

Every interval it sends one notification in UI frames `7E A0 .. CF 02 23 13 ..` (addresses as an
Iskraemeco AM550 sends them), the LLC header E6 E7 00 first: in clear, or general-glo-ciphering
with the key (SC 0x20, as the Austrian HDLC meters; with an authentication key SC 0x30 and a
12-byte tag, as the L+G E450 of Netz Burgenland). Split, if asked, over frames with the
segmentation bit, and/or into general-block-transfer blocks each in frames of its own. The body
comes in one of the list styles real meters push (`Layout`); the values are the household's of
`household.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import trio

from ..protocols.dlms.axdr import Data, DataTag, array, encode_data, octet_string, structure
from ..protocols.dlms.cosem import CosemDateTime
from ..protocols.dlms.gbt import split_blocks
from ..protocols.dlms.notification import DATA_NOTIFICATION
from ..protocols.dlms.security import encrypt
from ..protocols.hdlc import LLC_RESPONSE, Address, Control, Frame, FrameType, split_information
from ..protocols.obis import Obis
from .household import Household, Sample
from .kaifa import vienna_now
from .serve import push_every

METER_NUMBER = "1LGZ0301999999"
SYSTEM_TITLE = b"LGZ\x01\x02\x99\x99\x99"
DESTINATION = Address.client(0x67)
SOURCE = Address.server(1, 17)
SEGMENT_SIZE = 128
"""Information field bytes per frame when segmented (the HDLC default maximum)."""
BLOCK_SIZE = 119
"""Block data bytes per general-block-transfer block, as the L+G E450 sends them (0x77)."""
W, VAR, WH, VARH, A, V = 27, 29, 30, 32, 33, 35


class Layout(enum.Enum):
    """How the notification's body is laid out, in the styles of seed 001 ch. B.5 and the Nordic lists."""

    PAIRS = "pairs"
    """OBIS code, value, {scaler, unit} in one flat structure (seed 001 variant 7)."""
    AIDON = "aidon"
    """An array of {OBIS, value[, {scaler, unit}]} structures, the list id AIDON_V0001 first."""
    KAMSTRUP = "kamstrup"
    """The list id Kamstrup_V0001, then OBIS code and value pairs without scalers."""
    KAIFA = "kaifa"
    """The list id KFM_001 and values without OBIS codes (list 3); the header's date-time sent as
    an octet-string (09 0C ...), as Kaifa's Norwegian meters do."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One object of a pushed list; scaler and unit where the layout sends them."""

    obis: str
    value: Data
    scaler: int | None = None
    unit: int | None = None


def _u32(value: float) -> Data:
    return Data(DataTag.DOUBLE_LONG_UNSIGNED, max(int(value), 0))


def _u16(value: int) -> Data:
    return Data(DataTag.LONG_UNSIGNED, value)


def _text(text: str) -> Data:
    return octet_string(text.encode("ascii"))


def _visible(text: str) -> Data:
    return Data(DataTag.VISIBLE_STRING, text)


def _registers(sample: Sample, clock: bytes) -> list[Entry]:
    """The objects of the pairs and Aidon styles, each register with its scaler and unit."""
    return [
        Entry("0-0:1.0.0.255", octet_string(clock)),
        Entry("0-0:96.1.0.255", _text(METER_NUMBER)),
        *(Entry(f"1-0:{c}.7.0.255", _u16(volts), -1, V) for c, volts in zip((32, 52, 72), sample.decivolts)),
        *(Entry(f"1-0:{c}.7.0.255", _u16(amps), -2, A) for c, amps in zip((31, 51, 71), sample.centiamps)),
        Entry("1-0:1.7.0.255", _u32(sample.power_w), 0, W),
        Entry("1-0:2.7.0.255", _u32(-sample.power_w), 0, W),
        Entry("1-0:1.8.0.255", _u32(sample.import_wh), 0, WH),
        Entry("1-0:2.8.0.255", _u32(sample.export_wh), 0, WH),
        Entry("1-0:3.8.0.255", _u32(sample.reactive_import_varh), 0, VARH),
        Entry("1-0:4.8.0.255", _u32(sample.reactive_export_varh), 0, VARH),
    ]


def _kamstrup(sample: Sample, clock: bytes) -> list[Entry]:
    """Kamstrup_V0001 list 2: whole volts, centiamperes and energy in 10 Wh, by OBIS code with B = 1."""
    return [
        Entry("1-1:0.0.5.255", _visible(METER_NUMBER)),
        Entry("1-1:96.1.1.255", _visible("6841131BN243101040")),
        Entry("1-1:1.7.0.255", _u32(sample.power_w)),
        Entry("1-1:2.7.0.255", _u32(-sample.power_w)),
        *(Entry(f"1-1:{c}.7.0.255", _u32(amps)) for c, amps in zip((31, 51, 71), sample.centiamps)),
        *(Entry(f"1-1:{c}.7.0.255", _u16(round(volts / 10))) for c, volts in zip((32, 52, 72), sample.decivolts)),
        Entry("0-1:1.0.0.255", octet_string(clock)),
        Entry("1-1:1.8.0.255", _u32(sample.import_wh / 10)),
        Entry("1-1:2.8.0.255", _u32(sample.export_wh / 10)),
    ]


def _kaifa(sample: Sample, clock: bytes) -> list[Entry]:
    """KFM_001 list 3, three-phase: milliamperes and decivolts; its OBIS codes are not sent."""
    return [
        Entry("0-0:96.1.0.255", _text(METER_NUMBER)),
        Entry("0-0:96.1.7.255", _text("MA304H3E")),
        Entry("1-0:1.7.0.255", _u32(sample.power_w)),
        Entry("1-0:2.7.0.255", _u32(-sample.power_w)),
        Entry("1-0:3.7.0.255", _u32(0)),
        Entry("1-0:4.7.0.255", _u32(0)),
        *(Entry(f"1-0:{c}.7.0.255", _u32(amps * 10)) for c, amps in zip((31, 51, 71), sample.centiamps)),
        *(Entry(f"1-0:{c}.7.0.255", _u32(volts)) for c, volts in zip((32, 52, 72), sample.decivolts)),
        Entry("0-0:1.0.0.255", octet_string(clock)),
        Entry("1-0:1.8.0.255", _u32(sample.import_wh)),
        Entry("1-0:2.8.0.255", _u32(sample.export_wh)),
        Entry("1-0:3.8.0.255", _u32(sample.reactive_import_varh)),
        Entry("1-0:4.8.0.255", _u32(sample.reactive_export_varh)),
    ]


def _obis(entry: Entry) -> Data:
    return octet_string(Obis.parse(entry.obis).to_bytes())


def _scaler_unit(entry: Entry) -> tuple[Data, ...]:
    if entry.scaler is None or entry.unit is None:
        return ()
    return (structure(Data(DataTag.INTEGER, entry.scaler), Data(DataTag.ENUM, entry.unit)),)


def _pairs(entries: list[Entry]) -> Data:
    return structure(*(item for entry in entries for item in (_obis(entry), entry.value, *_scaler_unit(entry))))


def _structures(entries: list[Entry]) -> Data:
    version = structure(octet_string(Obis.parse("1-1:0.2.129.255").to_bytes()), _text("AIDON_V0001"))
    return array(version, *(structure(_obis(entry), entry.value, *_scaler_unit(entry)) for entry in entries))


def _obis_values(entries: list[Entry]) -> Data:
    return structure(_visible("Kamstrup_V0001"), *(item for entry in entries for item in (_obis(entry), entry.value)))


def _values(entries: list[Entry]) -> Data:
    return structure(_text("KFM_001"), *(entry.value for entry in entries))


@dataclass(frozen=True)
class _Style:
    entries: Callable[[Sample, bytes], list[Entry]]
    body: Callable[[list[Entry]], Data]
    invoke_id: int
    header_tag: bytes = b""
    """Sent before the header's date-time length: the Kaifa meters' octet-string tag 09."""


STYLES = {
    Layout.PAIRS: _Style(_registers, _pairs, 0x00000001),
    Layout.AIDON: _Style(_registers, _structures, 0x40000000),
    Layout.KAMSTRUP: _Style(_kamstrup, _obis_values, 0x00000000),
    Layout.KAIFA: _Style(_kaifa, _values, 0x40000000, header_tag=bytes((DataTag.OCTET_STRING,))),
}


@dataclass
class HdlcPushMeterModel:
    """The meter: its list style, keys and how it splits a notification over frames."""

    layout: Layout = Layout.PAIRS
    key: bytes | None = None
    """None: the notification goes in clear, as the Nordic meters send it."""
    auth_key: bytes | None = None
    segmented: bool = False
    blocks: bool = False
    seed: int = 1
    frame_counter: int = 0x1000
    household: Household = field(init=False)

    def __post_init__(self) -> None:
        self.household = Household(self.seed)

    def plaintext(self, now: datetime) -> bytes:
        """The data-notification APDU for the meter's state at `now` (local time)."""
        style = STYLES[self.layout]
        clock = CosemDateTime.from_datetime(now.replace(microsecond=0), deviation=-60, status=0x00).to_bytes()
        body = style.body(style.entries(self.household.sample(now), clock))
        header = style.header_tag + bytes((len(clock),)) + clock
        return bytes((DATA_NOTIFICATION,)) + style.invoke_id.to_bytes(4, "big") + header + encode_data(body)

    def apdu(self, now: datetime) -> bytes:
        """The notification as the meter sends it: in clear, or ciphered under the next frame counter."""
        plaintext = self.plaintext(now)
        if self.key is None:
            return plaintext
        self.frame_counter += 1
        security_control = 0x30 if self.auth_key is not None else 0x20
        return encrypt(plaintext, SYSTEM_TITLE, self.frame_counter, self.key, security_control, self.auth_key)

    def frames(self, now: datetime) -> list[bytes]:
        return push_frames(self.apdu(now), self.segmented, self.blocks)


def push_frames(apdu: bytes, segmented: bool = False, blocks: bool = False) -> list[bytes]:
    """An APDU in UI frames as the meter sends it: in general-block-transfer blocks if asked, each
    split over segments if asked. The LLC header goes in the first frame only; blocks after the first
    begin with their tag (as the L+G E450 sends them)."""
    pieces = [block.to_bytes() for block in split_blocks(apdu, BLOCK_SIZE)] if blocks else [apdu]
    pieces[0] = LLC_RESPONSE + pieces[0]
    return [frame for piece in pieces for frame in _ui_frames(piece, segmented)]


def _ui_frames(information: bytes, segmented: bool) -> list[bytes]:
    parts = split_information(information, SEGMENT_SIZE) if segmented else [information]
    return [Frame(DESTINATION, SOURCE, Control(FrameType.UI), part, segmented=n < len(parts) - 1).to_bytes()
            for n, part in enumerate(parts)]


async def push_notifications(
    stream: trio.abc.SendStream,
    model: HdlcPushMeterModel,
    interval: float = 10.0,
    wallclock: Callable[[], datetime] = vienna_now,
) -> None:
    """A notification every interval, to whoever listens (nobody answers a pushing meter)."""
    await push_every(stream, lambda: b"".join(model.frames(wallclock())), interval)
