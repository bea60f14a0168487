"""A simulated Kamstrup K351C / OMNIPOWER: the DLMS/COSEM server of seed 002 over HDLC or the wrapper.

Two associations (ch. 2.4.2-2.4.3): the public one (client SAP 16, logical device 1, no security)
sees the management objects of table 2-1; the password-protected one (client SAP 18, 19 or 20,
logical device 16, LLS, default password 12345) sees those and the meter's registers (ch. 3.2,
with scaler_unit), an extended register (3.3), the load profile (3.4, a row every 15 minutes, read
whole, by range or by entry, sent in blocks of whole rows), the clock (3.5, settable), the
association and SAP objects (3.6-3.7), the image transfer object (3.8, simulators.image_transfer: a
firmware update with faults to inject; its identifier becomes the software revision) and the
HDLC setup (3.9). The meter answers AARQ and GET-response frames exactly as the seed's sessions show
(conformance, maximum PDU, block layout), and MeterNo1 reads 12345679 as in ch. 4.1.

Values move like a small business's supply: a daily load curve with noise; the energy registers
are the integral of its smooth part, so the load profile's rows agree with the registers.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import trio

from ..actors.link import RECEIVE_SIZE, LinkHooks, LinkLost, LinkStatus, run_link
from ..machines.dlms import Framing
from ..machines.dlms_meter import DlmsMeter
from ..protocols.dlms.acse import (
    LN_NO_CIPHERING,
    MECHANISM_LLS,
    AcseServiceUser,
    Aare,
    Aarq,
    AssociationResult,
    ConfirmedServiceError,
    Conformance,
    InitiateError,
    InitiateResponse,
)
from ..protocols.dlms.axdr import Data, DataTag, array, octet_string, structure
from ..protocols.dlms.cosem import UNSPECIFIED_DEVIATION, CosemDateTime, DateTimeError
from ..protocols.dlms.objects import (
    ASSOCIATION_LN,
    CLOCK,
    DATA,
    EXTENDED_REGISTER,
    HDLC_SETUP,
    IMAGE_TRANSFER,
    PROFILE_GENERIC,
    REGISTER,
    SAP_ASSIGNMENT,
    ScalerUnit,
)
from ..protocols.dlms.xdlms import AccessSelection, ActionResult, AttributeDescriptor, DataAccessResult, MethodDescriptor
from ..protocols.hdlc import HdlcFramer, HdlcParameters
from ..protocols.obis import Obis
from ..protocols.wrapper import WrapperFramer
from .clock import local_zone
from .image_transfer import ImageTransferServer

COPENHAGEN = local_zone("Europe/Copenhagen")

PUBLIC_CLIENT, MANAGEMENT_DEVICE = 16, 1
LLS_CLIENTS, METER_DEVICE = (18, 19, 20), 16
DEFAULT_PASSWORD = b"12345"
PUBLIC_CONFORMANCE = Conformance(0x001010)
"""What the seed's meter grants the public association (GET, block transfer with GET)."""
LLS_CONFORMANCE = Conformance(0x00101C)
"""What it grants with LLS (GET, SET, selective access, block transfer with GET)."""
MAX_RECEIVE_PDU = 0x007D
"""The seed's K351C takes APDUs of up to 125 bytes (its AARE)."""
OMNIPOWER_MAX_RECEIVE_PDU = 0x0400
"""An OMNIPOWER's, for image transfer: the seed gives none, but its 985-byte image blocks (ch. 3.8)
travel in one ACTION-request of 1009 bytes, so it takes at least that."""

CAPTURE_PERIOD = 900
PROFILE_DAYS = 7
PROFILE = Obis(1, 1, 99, 1, 0, 255)
METER_CLOCK = Obis(0, 1, 1, 0, 0, 255)

Getter = Callable[[datetime], Data]


def u8(value: int) -> Data:
    return Data(DataTag.UNSIGNED, value)


def u16(value: int) -> Data:
    return Data(DataTag.LONG_UNSIGNED, value)


def u32(value: int) -> Data:
    return Data(DataTag.DOUBLE_LONG_UNSIGNED, value)


def text(value: str) -> Data:
    return Data(DataTag.VISIBLE_STRING, value)


def enum(value: int) -> Data:
    return Data(DataTag.ENUM, value)


@dataclass(frozen=True)
class CosemObject:
    """One object the meter holds: its class, readable attributes (2 and up) and who sees it."""

    class_id: int
    obis: Obis
    attributes: dict[int, Getter]
    public: bool = False
    version: int = 0


@dataclass
class KamstrupMeterModel:
    """The meter's state and objects; `wallclock` is its local time (naive, as it keeps it)."""

    password: bytes = field(default=DEFAULT_PASSWORD, repr=False)
    meter_number: int = 12345679
    seed: int = 1
    wallclock: Callable[[], datetime] = field(default=lambda: datetime.now(COPENHAGEN).replace(tzinfo=None))
    import_base_wh: float = 18_231_400.0
    clock_offset: timedelta = timedelta(0)
    image: ImageTransferServer = field(default_factory=ImageTransferServer)
    max_receive_pdu: int = MAX_RECEIVE_PDU
    _rng: random.Random = field(init=False)
    _objects: dict[tuple[int, Obis], CosemObject] = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._origin = self.wallclock()
        self._objects = {(o.class_id, o.obis): o for o in self._build()}

    # -- the CosemServer interface of DlmsMeter ----------------------------------------------------

    def associate(self, client_sap: int, server_sap: int, aarq: Aarq) -> Aare:
        """Seed 002 ch. 2.4.2-2.4.3: who may associate with which device, and how."""
        if aarq.application_context != LN_NO_CIPHERING:
            return _refused(AcseServiceUser.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        if aarq.user_information.dlms_version < 6:
            return Aare(AssociationResult.REJECTED_PERMANENT, AcseServiceUser.NO_REASON_GIVEN,
                        user_information=ConfirmedServiceError(1, 6, InitiateError.DLMS_VERSION_TOO_LOW))
        if server_sap == MANAGEMENT_DEVICE and client_sap == PUBLIC_CLIENT:
            return self._accepted(PUBLIC_CONFORMANCE)
        if server_sap != METER_DEVICE or client_sap not in LLS_CLIENTS:
            return _refused(AcseServiceUser.NO_REASON_GIVEN)
        if aarq.mechanism != MECHANISM_LLS or aarq.authentication_value is None:
            return _refused(AcseServiceUser.AUTHENTICATION_REQUIRED)
        if aarq.authentication_value != self.password:
            return _refused(AcseServiceUser.AUTHENTICATION_FAILURE)
        return self._accepted(LLS_CONFORMANCE)

    def _accepted(self, conformance: Conformance) -> Aare:
        return Aare(AssociationResult.ACCEPTED, AcseServiceUser.NULL, user_information=InitiateResponse(conformance, self.max_receive_pdu))

    def get(self, client_sap: int, descriptor: AttributeDescriptor, access: AccessSelection | None) -> Data | DataAccessResult:
        found = self._visible(client_sap, descriptor.class_id, descriptor.instance)
        if isinstance(found, DataAccessResult):
            return found
        if descriptor.attribute == 1:
            return octet_string(found.obis.to_bytes()) if access is None else DataAccessResult.OTHER_REASON
        getter = found.attributes.get(descriptor.attribute)
        if getter is None:
            return DataAccessResult.READ_WRITE_DENIED
        now = self.now()
        if access is not None:
            if found.class_id != PROFILE_GENERIC or descriptor.attribute != 2:
                return DataAccessResult.OTHER_REASON
            return self._selected_rows(access, now)
        return getter(now)

    def set(self, client_sap: int, descriptor: AttributeDescriptor, value: Data) -> DataAccessResult:
        """Only the clock's time (ch. 3.5) and the image block size (3.8) are writable, with LLS."""
        found = self._visible(client_sap, descriptor.class_id, descriptor.instance)
        if isinstance(found, DataAccessResult):
            return found
        if found.class_id == IMAGE_TRANSFER and client_sap in LLS_CLIENTS:
            return self.image.set(descriptor.attribute, value)
        if found.class_id != CLOCK or descriptor.attribute != 2 or client_sap not in LLS_CLIENTS:
            return DataAccessResult.READ_WRITE_DENIED
        if value.tag is not DataTag.OCTET_STRING or len(value.value) != 12:
            return DataAccessResult.TYPE_UNMATCHED
        try:
            moment = datetime.fromisoformat(CosemDateTime.from_bytes(value.value).iso())
        except (DateTimeError, ValueError):
            return DataAccessResult.OTHER_REASON
        self.clock_offset = moment - self.wallclock()
        return DataAccessResult.SUCCESS

    def action(self, client_sap: int, descriptor: MethodDescriptor, parameters: Data | None) -> tuple[ActionResult, Data | None]:
        found = self._visible(client_sap, descriptor.class_id, descriptor.instance)
        if isinstance(found, DataAccessResult):
            return ActionResult(found.value), None
        if found.class_id == IMAGE_TRANSFER and client_sap in LLS_CLIENTS:
            return self.image.action(descriptor.method, parameters), None
        return ActionResult.READ_WRITE_DENIED, None

    def _visible(self, client_sap: int, class_id: int, obis: Obis) -> CosemObject | DataAccessResult:
        found = self._objects.get((class_id, obis))
        if found is None:
            others = [o for (c, o) in self._objects if o == obis]
            return DataAccessResult.OBJECT_CLASS_INCONSISTENT if others else DataAccessResult.OBJECT_UNDEFINED
        if client_sap == PUBLIC_CLIENT and not found.public:
            return DataAccessResult.OBJECT_UNDEFINED  # not in the public association's view
        return found

    # -- time and energy ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.wallclock() + self.clock_offset

    def power_w(self, moment: datetime) -> float:
        """The smooth load curve: 6 kW at night, 14 kW at 14:00."""
        return 10_000 - 4_000 * math.cos(2 * math.pi * (_seconds_of_day(moment) - 2 * 3600) / 86400)

    def import_wh(self, moment: datetime) -> float:
        """The integral of `power_w` since the model's origin, on top of the base."""
        def integral(t: datetime) -> float:
            seconds = (t - datetime(2000, 1, 1)).total_seconds()
            wave = 4_000 * 86400 / (2 * math.pi) * math.sin(2 * math.pi * (seconds - 2 * 3600) / 86400)
            return (10_000 * seconds - wave) / 3600
        return self.import_base_wh + integral(moment) - integral(self._origin)

    def _noisy_power(self) -> int:
        return max(0, int(self.power_w(self.now()) + self._rng.gauss(0, 150)))

    # -- the load profile --------------------------------------------------------------------------

    def profile_rows(self, now: datetime) -> list[Data]:
        """Every row the logger holds, oldest first: one per quarter-hour for the last days."""
        last = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        count = PROFILE_DAYS * 86400 // CAPTURE_PERIOD
        return [self._row(last - timedelta(seconds=CAPTURE_PERIOD * n)) for n in range(count - 1, -1, -1)]

    def _row(self, moment: datetime) -> Data:
        energy = max(0.0, self.import_wh(moment))
        return structure(
            octet_string(_clock_bytes(moment, hundredths=0xFF)),
            u16(0),  # LoggerStatus (ch. 3.4.1)
            u32(0),  # DataQuality (ch. 3.4.2)
            Data(DataTag.INTEGER, 1),  # 1.1.134.0.1.255, reserved
            u32(int(energy // 10)),  # A14, 10 Wh steps (scaler 1)
            u32(0),  # A23: this supply exports nothing
            u32(int(energy * 0.2 // 10)),  # R12
            u32(1),  # R34
        )

    def _selected_rows(self, access: AccessSelection, now: datetime) -> Data | DataAccessResult:
        rows = self.profile_rows(now)
        fields = access.parameters.value if access.parameters.tag is DataTag.STRUCTURE else ()
        if access.selector == 1 and len(fields) == 4:
            return self._range(rows, fields[1], fields[2])
        if access.selector == 2 and len(fields) == 4 and all(isinstance(f.value, int) for f in fields):
            return _entries(rows, *(f.value for f in fields))
        return DataAccessResult.OTHER_REASON

    def _range(self, rows: list[Data], start: Data, end: Data) -> Data | DataAccessResult:
        try:
            low, high = (datetime.fromisoformat(CosemDateTime.from_bytes(bound.value).iso()) for bound in (start, end))
        except (DateTimeError, ValueError, TypeError):
            return DataAccessResult.OTHER_REASON
        return array(*(row for row in rows if low <= _row_moment(row) <= high))

    # -- the objects -------------------------------------------------------------------------------

    def _build(self) -> list[CosemObject]:
        constant = _constant
        number = self.meter_number
        identification = [
            CosemObject(DATA, Obis(1, 1, 0, 0, 0, 255), {2: constant(octet_string(str(number % 100000).encode()))}, True),
            CosemObject(DATA, Obis(1, 1, 0, 0, 1, 255), {2: constant(u32(number))}, True),
            CosemObject(DATA, Obis(1, 1, 0, 0, 2, 255), {2: constant(u32(0))}, True),
            CosemObject(DATA, Obis(1, 1, 0, 0, 3, 255), {2: constant(u32(0))}, True),
            CosemObject(DATA, Obis(1, 1, 0, 0, 4, 255), {2: constant(text(f"1KAS00{number:08d}"))}, True),
            CosemObject(DATA, Obis(1, 1, 0, 2, 0, 255), {2: lambda t: text(self.image.revision)}, True),
            CosemObject(DATA, Obis(1, 1, 0, 2, 2, 128), {2: lambda t: text(self.image.revision.rpartition("-")[2])}, True),
            CosemObject(DATA, Obis(1, 1, 0, 130, 1, 255), {2: constant(u32(0))}, True),
            CosemObject(DATA, Obis(1, 1, 0, 130, 2, 255), {2: constant(u32(0))}, True),
            CosemObject(DATA, Obis(1, 1, 96, 1, 0, 255), {2: constant(u32(number))}, True),
            CosemObject(DATA, Obis(1, 1, 96, 1, 1, 255), {2: constant(text("6851125CD140111040"))}, True),
        ]
        watts, wh, volts, amps, hertz, varh = (ScalerUnit(0, 27), ScalerUnit(1, 30), ScalerUnit(0, 35),
                                               ScalerUnit(-2, 33), ScalerUnit(-2, 44), ScalerUnit(1, 32))
        registers = [
            self._register(Obis(1, 1, 1, 8, 0, 255), wh, lambda t: u32(int(self.import_wh(t) // 10))),
            self._register(Obis(1, 1, 2, 8, 0, 255), wh, constant(u32(0))),
            self._register(Obis(1, 1, 3, 8, 0, 255), varh, lambda t: u32(int(self.import_wh(t) * 0.2 // 10))),
            self._register(Obis(1, 1, 4, 8, 0, 255), varh, constant(u32(1))),
            self._register(Obis(1, 1, 1, 7, 0, 255), watts, lambda t: u32(self._noisy_power())),
            self._register(Obis(1, 1, 2, 7, 0, 255), watts, constant(u32(0))),
            self._register(Obis(1, 1, 14, 7, 0, 255), hertz, lambda t: u16(5000 + self._rng.randint(-4, 4))),
            self._register(Obis(0, 1, 96, 8, 0, 255), ScalerUnit(0, 5), lambda t: u32(int((t - datetime(2013, 1, 1)).total_seconds() // 3600))),
        ]
        for phase, (voltage, current) in enumerate(((32, 31), (52, 51), (72, 71))):
            registers.append(self._register(Obis(1, 1, voltage, 7, 0, 255), volts, lambda t, p=phase: u16(230 + self._rng.randint(-3, 4) + p)))
            registers.append(self._register(Obis(1, 1, current, 7, 0, 255), amps,
                                            lambda t: u32(int(self._noisy_power() / 3 / 230 * 100))))
        peak = CosemObject(EXTENDED_REGISTER, Obis(1, 1, 1, 6, 0, 255), {
            2: lambda t: u32(int(self.power_w(t.replace(hour=14, minute=0)))),
            3: constant(watts.to_data()),
            5: lambda t: octet_string(_clock_bytes(t.replace(hour=14, minute=0, second=0, microsecond=0))),
        })
        clock = CosemObject(CLOCK, METER_CLOCK, {
            2: lambda t: octet_string(_clock_bytes(t)),
            4: lambda t: u8(0x80 if _summer(t) else 0x00),
            5: lambda t: octet_string(bytes.fromhex(f"{t.year:04x}031fff02000000ff800000")),
            6: lambda t: octet_string(bytes.fromhex(f"{t.year:04x}0a1bff03000000ff800080")),
            7: constant(Data(DataTag.INTEGER, 60)),
            8: constant(Data(DataTag.BOOLEAN, True)),
            9: constant(enum(1)),
        }, True)
        profile = CosemObject(PROFILE_GENERIC, PROFILE, {
            2: lambda t: array(*self.profile_rows(t)),
            3: constant(array(*(_capture(*c) for c in (
                (CLOCK, METER_CLOCK, 2), (PROFILE_GENERIC, PROFILE, 255), (PROFILE_GENERIC, PROFILE, 254),
                (DATA, Obis(1, 1, 134, 0, 1, 255), 2), (REGISTER, Obis(1, 1, 1, 8, 0, 255), 2),
                (REGISTER, Obis(1, 1, 2, 8, 0, 255), 2), (REGISTER, Obis(1, 1, 3, 8, 0, 255), 2),
                (REGISTER, Obis(1, 1, 4, 8, 0, 255), 2))))),
            4: constant(u32(CAPTURE_PERIOD)),
            5: constant(enum(1)),
            7: lambda t: u32(len(self.profile_rows(t))),
            8: constant(u32(PROFILE_DAYS * 86400 // CAPTURE_PERIOD)),
        }, version=1)
        hdlc_setup = CosemObject(HDLC_SETUP, Obis(0, 0, 22, 0, 0, 255), {
            2: constant(enum(5)), 3: constant(u8(1)), 4: constant(u8(1)), 5: constant(u16(512)), 6: constant(u16(128)),
            7: constant(u16(500)), 8: constant(u16(20)), 9: constant(u16(32)),
        }, True, version=1)
        image_transfer = CosemObject(IMAGE_TRANSFER, Obis(0, 0, 44, 0, 0, 255), {
            index: (lambda t, i=index: self.image.get(i)) for index in range(2, 8)  # type: ignore[misc]
        })
        sap = CosemObject(SAP_ASSIGNMENT, Obis(0, 0, 41, 0, 0, 255), {2: constant(array(
            structure(u16(MANAGEMENT_DEVICE), octet_string(f"KAME{number:012d}"[:16].encode())),
            structure(u16(METER_DEVICE), octet_string(f"KAM{number:013d}"[:16].encode())),
        ))}, True)
        objects = [*identification, *registers, peak, clock, profile, hdlc_setup, image_transfer, sap]
        association = CosemObject(ASSOCIATION_LN, Obis(0, 0, 40, 0, 0, 255), {
            2: constant(array(*(_listed(o) for o in objects))),
            8: constant(enum(2)),
        }, True)
        return [*objects, association]

    def _register(self, obis: Obis, units: ScalerUnit, value: Getter) -> CosemObject:
        return CosemObject(REGISTER, obis, {2: value, 3: _constant(units.to_data())})


def _constant(value: Data) -> Getter:
    return lambda moment: value


def _refused(diagnostic: AcseServiceUser) -> Aare:
    return Aare(AssociationResult.REJECTED_PERMANENT, diagnostic)


def _seconds_of_day(moment: datetime) -> float:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _summer(moment: datetime) -> bool:
    return bool(moment.replace(tzinfo=COPENHAGEN).dst())


def _clock_bytes(moment: datetime, hundredths: int | None = None) -> bytes:
    """The meter's date-time (ch. 3.5.1): deviation not specified, status bit 7 in summer time."""
    stamp = CosemDateTime.from_datetime(moment.replace(microsecond=0), UNSPECIFIED_DEVIATION, 0x80 if _summer(moment) else 0x00)
    if hundredths is not None:
        stamp = dataclasses.replace(stamp, hundredths=hundredths)
    return stamp.to_bytes()


def _row_moment(row: Data) -> datetime:
    return datetime.fromisoformat(CosemDateTime.from_bytes(row.value[0].value).iso())


def _entries(rows: list[Data], first: int, last: int, first_column: int, last_column: int) -> Data | DataAccessResult:
    """Kamstrup's entry_descriptor (seed 002 ch. 3.4.3.1): entries count back from the newest (0);
    from `first` to `last` in that order, columns `first_column` to `last_column` (0: the last)."""
    newest_first = rows[::-1]
    step = 1 if first <= last else -1
    picked = [newest_first[n] for n in range(first, last + step, step) if 0 <= n < len(newest_first)]
    width = len(rows[0].value) if rows else 0
    last_column = last_column or width
    if not 1 <= first_column <= last_column <= width:
        return DataAccessResult.OTHER_REASON
    return array(*(structure(*row.value[first_column - 1 : last_column]) for row in picked))


def _capture(class_id: int, obis: Obis, attribute: int) -> Data:
    # Table 3-1's attributes 255 and 254 are the bytes FF and FE of an Integer8: manufacturer
    # specific attributes are negative (ch. 2.3).
    return structure(u16(class_id), octet_string(obis.to_bytes()), Data(DataTag.INTEGER, attribute - 256 if attribute > 127 else attribute), u16(0))


def _listed(obj: CosemObject) -> Data:
    """An object_list element (class 15 attribute 2): class, version, name, attribute access."""
    readable = sorted({1, *obj.attributes})
    rights = structure(
        array(*(structure(Data(DataTag.INTEGER, a), enum(1), Data(DataTag.NULL_DATA)) for a in readable)),
        array(),
    )
    return structure(u16(obj.class_id), u8(obj.version), octet_string(obj.obis.to_bytes()), rights)


class _Reboot(Exception):
    """The meter goes down for its reboot after an image activation."""


class _DropLink(Exception):
    """Fault injection: the meter drops the link."""


class _MeterLine(trio.abc.Stream):
    """The meter's side of its line: closed by the runner, not by each life of the meter's
    machine; a reboot or a dropped link (simulators.image_transfer) ends the life it is in."""

    def __init__(self, stream: trio.abc.Stream, model: KamstrupMeterModel) -> None:
        self.stream, self.model = stream, model

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        image = self.model.image
        if image.link_drop_due:
            image.link_drop_due = False
            raise _DropLink
        if image.offline_until() is not None:
            raise _Reboot
        starts = image.reboot_starts_at()
        with trio.move_on_at(starts if starts is not None else math.inf):
            return await self.stream.receive_some(max_bytes)
        raise _Reboot

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        pass


async def _sit_out_reboot(stream: trio.abc.Stream, model: KamstrupMeterModel) -> bool:
    """Hear nothing while the meter reboots; False when the peer hung up meanwhile."""
    while (back := model.image.offline_until()) is not None:
        with trio.move_on_at(back):
            if await stream.receive_some(RECEIVE_SIZE) == b"":
                return False
    return True


async def run_kamstrup_meter(stream: trio.abc.Stream, model: KamstrupMeterModel, framing: Framing = Framing.HDLC,
                             block_transfer: bool = True, supported: HdlcParameters = HdlcParameters(512, 128, 1, 1)) -> None:
    """The meter on one link until the client hangs up, or the meter drops the link (a fault)."""
    codec = HdlcFramer() if framing is Framing.HDLC else WrapperFramer()
    status = LinkStatus("kamstrup", "meter")
    line = _MeterLine(stream, model)
    model.image.clock = trio.current_time  # reboots and verifications run on the link's clock (MockClock in tests)

    async def already_open() -> trio.abc.Stream:
        return line

    while True:
        machine = DlmsMeter(model, supported=supported, block_transfer=block_transfer)  # after a reboot: disconnected, as new
        codec.reset()
        try:
            await run_link(already_open, codec, machine, LinkHooks(lambda reading: None), status)
            return
        except _Reboot:
            if not await _sit_out_reboot(stream, model):
                return
        except (_DropLink, LinkLost, trio.BrokenResourceError, trio.ClosedResourceError):
            return
