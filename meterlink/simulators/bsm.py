"""A simulated BSM-WS36A on Modbus RTU (seed 004 ch. 9.1, 10, 17, appendices B-E).

It holds the SunSpec map of ch. 17.3 with the lengths a real meter's chain reports (64900: 300,
snapshots 252, OCMF 498), its own secp256r1 key pair, and signs real snapshots and OCMF strings.
The switch-measurement coordination drives a simulated contactor through DO, reads its NC feedback
contact on DI, and gives up when the feedback has not come 0.5 s after switching (status 5); a
turn-on without the DOE release fails with status 4 (ch. 17.5). The contactor can be told to stick
(it never moves), to be slow (0.8 s), or to lie (its feedback contact reports what it was told, not
where it is). Writes that cover part of a data point are refused (exception 2); writes to read-only
registers are ignored (ch. 17.1).
"""

from __future__ import annotations

import enum
import json
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import trio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
)

from ..protocols.bsm import (
    AC_METER, COMMON, LAYOUTS, OCMF_MODEL, SIGNING_METER, SNAPSHOT, SNAPSHOT_IDS, SnapshotStatus, SnapshotType, hash_input,
)
from ..protocols.sunspec import BASE_ADDRESS, END_MODEL, SUNS, Layout, ModbusError, ModelInstance, check_whole_points
from ..protocols.sunspec import decode_point, encode_point

ILLEGAL_ADDRESS = 2
FEEDBACK_TIMEOUT = 0.5
"""ch. 10.2: the contactor's feedback must arrive within 0.5 s."""
MAKER, MODEL = "BAUER Electronic", "BSM-WS36A-H01-1311-0000"

CHAIN = ((1, 66), (10, 4), (17, 12), (203, 105), (64900, 300), (64902, 20)) + ((64901, 252),) * 5 + ((64903, 498),) * 5
"""The model chain from 40003 as a real meter reports it (bsm-python's model list)."""


class Fault(enum.Enum):
    NONE = "none"
    STUCK = "stuck"
    """The contactor never moves."""
    SLOW = "slow"
    """The contactor takes 0.8 s, longer than the meter waits for its feedback."""
    LIE = "lie"
    """The feedback contact reports the commanded position, wherever the contactor is."""


@dataclass
class Timings:
    """Seconds until signed data is there (ch. 10.1, 10.2: 2-6 s; turn-on 10 s; turn-off 8 s)."""

    snapshot: float = 3.0
    turn_on: float = 9.0
    turn_off: float = 7.0
    switch: float = 0.05
    slow_switch: float = 0.8


@dataclass
class Contactor:
    """The load contactor: closes when DO is active and DOE high; moves after its switching time."""

    fault: Fault = Fault.NONE
    closed: bool = False
    target: bool = False
    moves_at: float = 0.0

    def command(self, close: bool, now: float, timings: Timings) -> None:
        self.settle(now)
        if close == self.target:
            return
        self.target = close
        delay = {Fault.STUCK: math.inf, Fault.SLOW: timings.slow_switch}.get(self.fault, timings.switch)
        self.moves_at = now + delay

    def settle(self, now: float) -> None:
        if now >= self.moves_at:
            self.closed = self.target

    def feedback_open(self, now: float) -> bool:
        """DI: the NC auxiliary contact is closed (DI high) while the contactor is open."""
        self.settle(now)
        return not (self.target if self.fault is Fault.LIE else self.closed)


@dataclass
class BsmMeter:
    """The meter's registers, clock, counters, contactor and key; `handle` answers one request."""

    unit: int = 42
    contactor: Contactor = field(default_factory=Contactor)
    doe: bool = True
    """The DOE release input (ch. 9.2), high unless the controller withdraws it."""
    stall: bool = False
    """Signing never completes (status stays Updating)."""
    timings: Timings = field(default_factory=Timings)
    clock: Callable[[], float] = trio.current_time
    wallclock: Callable[[], float] = time.time
    load_w: int = 11_000
    serial: str = "001BZR1521070006"
    charging: bool = False
    """A vehicle charges from the start: DO active, the contactor closing (the demo's meter)."""

    def __post_init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key().public_bytes(serialization.Encoding.DER,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self.registers = [0] * (44294 - BASE_ADDRESS)
        self.instances: list[ModelInstance] = []
        address = BASE_ADDRESS + 2
        self._put(BASE_ADDRESS, list(struct.unpack(">2H", SUNS)))
        for model_id, length in CHAIN:
            self.instances.append(ModelInstance(address, model_id, length))
            self._put(address, [model_id, length])
            address += 2 + length
        self._put(address, [END_MODEL, 0])
        self.started = self.clock()
        self.total_wh = 99_840.0
        self.rcr_start = self.total_wh
        self.last_energy_at = self.started
        self.do_active = False
        self.epoch_offset = 0.0
        self.tzo = 60
        self.epoch_set_count = 0
        self.epoch_set_os = 0
        self.response_count = 0
        self.nursery: trio.Nursery | None = None
        self._fill_static()
        if self.charging:
            self._switch(True)

    # -- registers --------------------------------------------------------------------------

    def _put(self, address: int, values: list[int]) -> None:
        start = address - BASE_ADDRESS
        self.registers[start:start + len(values)] = values

    def _set(self, layout: Layout, instance: ModelInstance, values: dict[str, int | str]) -> None:
        for name, value in values.items():
            point = layout.sized(instance.length)[[p.id for p in layout.points].index(name)]
            self._put(instance.address + point.offset, encode_point(point, value))

    def _get(self, layout: Layout, instance: ModelInstance, name: str) -> int | str | bytes:
        point = layout.sized(instance.length)[[p.id for p in layout.points].index(name)]
        start = instance.address + point.offset - BASE_ADDRESS
        return decode_point(point, self.registers[start:start + point.size])

    def model(self, model_id: int, index: int = 0) -> ModelInstance:
        return [instance for instance in self.instances if instance.model_id == model_id][index]

    def _fill_static(self) -> None:
        self._set(COMMON, self.model(1), {"Mn": MAKER, "Md": MODEL, "Opt": "", "Vr": "1.9:32CA:AFF4", "SN": self.serial, "DA": self.unit})
        meter = self.model(64900)
        self._set(SIGNING_METER, meter, {"ErrM": "00000000", "SNM": "20200007", "SNC": "0b570000", "VrM": "60cb051.7:97B4",
                                         "VrC": "c938f31", "MA1": self.serial, "MA2": "", "RCR_SF": 1})
        pk_area = self.public_key.ljust(96, b"\0")
        self._put(meter.address + SIGNING_METER.point("NPK").offset, [48, len(self.public_key)] + list(struct.unpack(">48H", pk_area)))
        for kind in SnapshotType:
            self._set(SNAPSHOT, self.model(64901, kind), {"Typ": int(kind), "St": int(SnapshotStatus.INVALID)})
            self._set(OCMF_MODEL, self.model(64903, kind), {"Typ": int(kind), "St": int(SnapshotStatus.INVALID)})
        ac = self.model(203)
        self._put(ac.address + AC_METER.point("A_SF").offset, [struct.unpack(">H", struct.pack(">h", -2))[0]])
        self._put(ac.address + AC_METER.point("V_SF").offset, [struct.unpack(">H", struct.pack(">h", -1))[0]])
        self._put(ac.address + AC_METER.point("Hz_SF").offset, [struct.unpack(">H", struct.pack(">h", -2))[0]])
        self._put(ac.address + AC_METER.point("TotWh_SF").offset, [1])

    def operating_seconds(self) -> int:
        return 519_000 + int(self.clock() - self.started)

    def epoch(self) -> int:
        return int(self.wallclock() + self.epoch_offset)

    def power_w(self) -> int:
        now = self.clock()
        self.contactor.settle(now)
        return self.load_w if self.contactor.closed else 0

    def _advance_energy(self) -> None:
        now = self.clock()
        self.total_wh += self.power_w() * (now - self.last_energy_at) / 3600
        self.last_energy_at = now

    def refresh(self) -> None:
        """The live values into the AC meter and Signing Meter models."""
        self._advance_energy()
        power = self.power_w()
        phase = power // 3
        current = round(phase / 230 * 100) if power else 0
        self._set(AC_METER, self.model(203), {
            "A": current * 3, "AphA": current, "AphB": current, "AphC": current, "PhVphA": 2301, "PhVphB": 2299, "PhVphC": 2302,
            "Hz": 5000, "W": power, "WphA": phase, "WphB": phase, "WphC": phase, "W_SF": 0,
            "TotWhImp": int(self.total_wh // 10), "Evt": 0,
        })
        self._set(SIGNING_METER, self.model(64900), {
            "RCR": int((self.total_wh - self.rcr_start) // 10), "RCnt": self.response_count, "OS": self.operating_seconds(),
            "Epoch": self.epoch(), "TZO": self.tzo, "EpochSetCnt": self.epoch_set_count, "EpochSetOS": self.epoch_set_os,
            "DI": int(self.contactor.feedback_open(self.clock())), "DO": int(self.do_active),
        })

    # -- Modbus requests --------------------------------------------------------------------

    def read(self, address: int, count: int) -> list[int] | int:
        """The registers, or an exception code."""
        if address < BASE_ADDRESS or address + count > BASE_ADDRESS + len(self.registers):
            return ILLEGAL_ADDRESS
        self.refresh()
        start = address - BASE_ADDRESS
        return self.registers[start:start + count]

    def write(self, address: int, values: list[int]) -> int | None:
        """Apply a write; an exception code when it covers part of a data point."""
        instance = next((i for i in self.instances if i.address + 2 <= address and address + len(values) <= i.end), None)
        layout = LAYOUTS.get(instance.model_id) if instance else None
        if instance is None or layout is None:
            return ILLEGAL_ADDRESS
        try:
            check_whole_points(layout, instance, address, len(values))
        except ModbusError:
            return ILLEGAL_ADDRESS
        for point in layout.sized(instance.length):
            at = instance.address + point.offset
            if point.writable and address <= at < address + len(values):
                self._write_point(layout, instance, point.id, values[at - address:at - address + point.size])
        return None

    def _write_point(self, layout: Layout, instance: ModelInstance, name: str, registers: list[int]) -> None:
        self.refresh()
        if layout is SNAPSHOT:
            if registers == [SnapshotStatus.UPDATING]:
                self._start_snapshot(SnapshotType(self.instances.index(instance) - self.instances.index(self.model(64901))))
            return
        if layout is SIGNING_METER and name == "Epoch":
            epoch = registers[0] << 16 | registers[1]
            self.epoch_offset = epoch - self.wallclock()
            self.epoch_set_count += 1
            self.epoch_set_os = self.operating_seconds()
            return
        if layout is SIGNING_METER and name == "TZO":
            self.tzo = struct.unpack(">h", struct.pack(">H", registers[0]))[0]
            return
        if layout is SIGNING_METER and name == "DO":
            self._switch(bool(registers[0] & 1))
            return
        if layout is SIGNING_METER and name.startswith("Meta"):
            self._put(instance.address + layout.point(name).offset, registers)

    def _switch(self, active: bool) -> None:
        self._advance_energy()
        self.do_active = active
        self.contactor.command(active and self.doe, self.clock(), self.timings)

    # -- snapshots --------------------------------------------------------------------------

    def _start_snapshot(self, kind: SnapshotType) -> None:
        if self._get(SNAPSHOT, self.model(64901, kind), "St") == SnapshotStatus.UPDATING:
            return
        self._status(kind, SnapshotStatus.UPDATING)
        if self.nursery is not None:
            self.nursery.start_soon(self._take_snapshot, kind)

    def _status(self, kind: SnapshotType, status: SnapshotStatus) -> None:
        self._set(SNAPSHOT, self.model(64901, kind), {"St": int(status)})
        self._set(OCMF_MODEL, self.model(64903, kind), {"St": int(status)})

    async def _take_snapshot(self, kind: SnapshotType) -> None:
        if self.stall:
            return
        if kind is SnapshotType.TURN_ON and not self.doe:
            await trio.sleep(self.timings.switch)
            self._status(kind, SnapshotStatus.FAILED_NO_DOE)
            return
        total = {SnapshotType.TURN_ON: self.timings.turn_on, SnapshotType.TURN_OFF: self.timings.turn_off}.get(kind, self.timings.snapshot)
        began = self.clock()
        if kind in (SnapshotType.TURN_ON, SnapshotType.TURN_OFF):
            self._switch(False)  # open the contactor and check its feedback
            await trio.sleep(FEEDBACK_TIMEOUT)
            if not self.contactor.feedback_open(self.clock()):
                self._status(kind, SnapshotStatus.FAILED_FEEDBACK)
                return
        self.refresh()
        if kind is SnapshotType.TURN_ON:
            self.rcr_start = self.total_wh  # signed from the reference counter, so it starts at 0 kWh
            self.refresh()
        values = self._collect(kind)
        if kind is SnapshotType.TURN_ON:
            self._switch(True)
        await trio.sleep_until(began + total)
        self._sign(kind, values)

    def _collect(self, kind: SnapshotType) -> dict[str, int | str]:
        meter = self.model(64900)
        self.response_count += 1
        values: dict[str, int | str] = {"Typ": int(kind), "RCR": int(self._get(SIGNING_METER, meter, "RCR")),
                                        "TotWhExp": int(self.total_wh // 10), "Wh_SF": 1, "W": self.power_w() // 10, "W_SF": 1,
                                        "RCnt": self.response_count}
        for name in ("MA1", "OS", "Epoch", "TZO", "EpochSetCnt", "EpochSetOS", "DI", "DO", "Meta1", "Meta2", "Meta3"):
            value = self._get(SIGNING_METER, meter, name)
            assert isinstance(value, (int, str))
            values[name] = value
        values["Evt"] = 0
        return values

    def _sign(self, kind: SnapshotType, values: dict[str, int | str]) -> None:
        signature = self._key.sign(hash_input(values), ec.ECDSA(hashes.SHA256()))
        instance = self.model(64901, kind)
        self._set(SNAPSHOT, instance, {name: values[name] for name in SNAPSHOT_IDS if name in values})
        area = signature.ljust(2 * (instance.length + 2 - SNAPSHOT.point("Sig").offset), b"\0")
        self._put(instance.address + SNAPSHOT.point("NSig").offset,
                  [len(area) // 2, len(signature)] + list(struct.unpack(f">{len(area) // 2}H", area)))
        self._set(OCMF_MODEL, self.model(64903, kind), {"O": self._ocmf(kind, values)})
        self._status(kind, SnapshotStatus.VALID)

    def _ocmf(self, kind: SnapshotType, values: dict[str, int | str]) -> str:
        """The OCMF string in the form the real meter writes (bsm-python doc/examples/ocmf.md)."""
        zone = timezone(timedelta(minutes=int(values["TZO"])))
        stamp = datetime.fromtimestamp(int(values["Epoch"]), zone)
        offset = stamp.strftime("%z")
        reading: dict[str, object] = {
            "TM": stamp.strftime("%Y-%m-%dT%H:%M:%S,000") + offset + " S",
            "TX": {SnapshotType.TURN_ON: "B", SnapshotType.START: "B", SnapshotType.TURN_OFF: "E", SnapshotType.END: "E"}.get(kind, "C"),
            "RV": round(int(values["RCR"]) * 10 / 1000, 2), "RI": "1-0:1.8.0*198", "RU": "kWh",
            "XV": round(int(values["TotWhExp"]) * 10 / 1000, 2), "XI": "1-0:1.8.0*255", "XU": "kWh", "XT": int(kind),
            "RT": "AC", "EF": "", "ST": "G",
        }
        payload: dict[str, object] = {"FV": "1.0", "GI": f"{MAKER} {MODEL}", "GS": self.serial, "GV": "1.9:32CA:AFF4, f1d3d06",
                                      "PG": f"T{values['RCnt']}", "MV": MAKER, "MM": MODEL, "MS": self.serial, "IS": True,
                                      "IT": "UNDEFINED", "ID": values["Meta1"]}
        for name, key in (("Meta2", "X2"), ("Meta3", "X3")):
            if values[name]:
                payload[key] = values[name]
        payload["RD"] = [reading]
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        signature = self._key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
        return f"OCMF|{text}|" + json.dumps({"SA": "ECDSA-secp256r1-SHA256", "SD": signature.hex()}, separators=(",", ":"))


async def run_bsm_meter(stream: trio.abc.Stream, meter: BsmMeter) -> None:
    """Answer Modbus RTU requests addressed to the meter's unit until the peer goes away."""
    framer = FramerRTU(DecodePDU(is_server=True))
    buffer = b""
    async with trio.open_nursery() as nursery:
        meter.nursery = nursery
        try:
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    break
                buffer += data
                while buffer:
                    try:
                        used, request = framer.handleFrame(buffer, 0, 0)
                    except Exception:  # an undecodable request: a real meter stays silent
                        buffer = b""
                        break
                    buffer = buffer[used:]
                    if request is None:
                        if used:
                            continue
                        break
                    answer = _answer(meter, request)
                    if answer is not None:
                        await stream.send_all(answer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        nursery.cancel_scope.cancel()


def _answer(meter: BsmMeter, request: object) -> bytes | None:
    unit = getattr(request, "dev_id", 0)
    if unit != meter.unit:
        return None
    framer = FramerRTU(DecodePDU(is_server=True))
    if isinstance(request, ReadHoldingRegistersRequest):
        result = meter.read(request.address + 1, request.count)
        if isinstance(result, int):
            return framer.buildFrame(ExceptionResponse(3, result, device_id=unit))
        return framer.buildFrame(ReadHoldingRegistersResponse(registers=result, dev_id=unit))
    if isinstance(request, WriteMultipleRegistersRequest):
        code = meter.write(request.address + 1, list(request.registers))
        if code is not None:
            return framer.buildFrame(ExceptionResponse(16, code, device_id=unit))
        return framer.buildFrame(WriteMultipleRegistersResponse(address=request.address, count=request.count, dev_id=unit))
    return framer.buildFrame(ExceptionResponse(getattr(request, "function_code", 0) & 0x7F, 1, device_id=unit))
