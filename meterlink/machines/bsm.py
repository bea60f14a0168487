"""The BSM-WS36A client over Modbus RTU (seed 004 ch. 10.1-10.3, 17, appendices B-E).

A session discovers the SunSpec model chain from 40001 ('SunS', then each model's ID and length up
to 0xFFFF) and reads the Signing Meter model (its meter address and public key). Then it does what
it was asked, in this order: set the time, take a snapshot, read the AC meter every poll interval.

Snapshot lifecycle (appendix C): write the metadata first (it is signed with the snapshot), write
Update (2) to the snapshot's status St, poll St until it leaves Updating: Valid (0) - then read the
block and verify its signature against the meter's public key -, Invalid (1), or Failed (3, 4: no
charge release via DOE, 5: wrong contactor feedback on DI). Signed data is there within 2-6 s for
current, start and end snapshots, 10 s for a turn-on and 8 s for a turn-off (ch. 10.1, 10.2); the
client's deadline adds a margin (15 s, as the maker's tool waits; 15 s and 13 s for turn-on and
turn-off). The switch-measurement coordination itself (DO, DI feedback within 0.5 s, DOE) runs in
the meter: the client sees it as the snapshot's status.

Time (appendix B): setting the time more often than once in 24 h voids the warranty, so the
machine reads the meter's own record (time-set counter, operating seconds at the last set) and
refuses unless forced.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from statemachine import State

from ..protocols.bsm import (
    AC_METER, SIGNING_METER, SNAPSHOT, OCMF_MODEL, Snapshot, SnapshotStatus, SnapshotType, decode_public_key,
    decode_snapshot,
)
from ..protocols.errors import ProtocolError
from ..protocols.ocmf import parse_ocmf
from ..protocols.readings import Reading, Value, scaled
from ..protocols.sunspec import (
    BASE_ADDRESS, END_MODEL, MAX_READ, MAX_WRITE, BadFrame, ExceptionAnswer, Layout, ModbusRtuClient, ModelInstance, PointType,
    RegistersRead, RegistersWritten, Response, check_marker, check_whole_points, decode_model, encode_point, find_models,
    model_header, not_available, write_span,
)
from .base import LinkMachine, Publish, Send, StateTimeout
from .safety import Safety

MAX_MODELS = 64
"""More models than any SunSpec device has: a chain that does not end is refused."""
DAY = 86_400
"""Appendix B: the time is set at most once in 24 h."""


@dataclass(frozen=True)
class SnapshotDeadlines:
    """Seconds from writing Update until the client gives up on a snapshot, per type."""

    current: float = 15.0
    turn_on: float = 15.0
    turn_off: float = 13.0
    start: float = 15.0
    end: float = 15.0

    def of(self, kind: SnapshotType) -> float:
        return float(getattr(self, kind.name.lower()))


@dataclass(frozen=True)
class SnapshotRequest:
    """A snapshot to take; metadata given here is written before it (None: leave as it is)."""

    type: SnapshotType
    meta1: str | None = None
    meta2: str | None = None
    meta3: str | None = None

    def __post_init__(self) -> None:
        # Metadata that does not fit its data point is refused here, before anything is written.
        for n, text in enumerate((self.meta1, self.meta2, self.meta3), start=1):
            if text is not None:
                encode_point(SIGNING_METER.point(f"Meta{n}"), text)


@dataclass(frozen=True)
class TimeRequest:
    """Set the meter's clock (Epoch, TZO); `force` overrides the once-in-24-h rule."""

    epoch: int
    tzo: int
    force: bool = False


@dataclass(frozen=True)
class BsmPlan:
    """What a session does after discovery."""

    unit: int = 42
    time: TimeRequest | None = None
    snapshot: SnapshotRequest | None = None
    poll_interval: float | None = None
    """Read the AC meter this often; None: end the session when the rest is done."""
    deadlines: SnapshotDeadlines = SnapshotDeadlines()
    response_timeout: float = 2.0
    retries: int = 2
    status_poll: float = 1.0
    """Seconds between reads of a snapshot's status."""


@dataclass
class SnapshotOutcome:
    type: SnapshotType
    status: int | None = None
    """The last status read; None when none was read."""
    snapshot: Snapshot | None = None
    signature_valid: bool = False
    ocmf: str | None = None
    ocmf_valid: bool | None = None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        """Valid only when the meter says so and its signature verifies against its key."""
        return self.status == SnapshotStatus.VALID and self.signature_valid


class TimeVerdict(enum.Enum):
    SET = "set"
    REFUSED = "refused: the time was set less than 24 h ago (appendix B); force to set it anyway"


@dataclass
class _Read:
    """A read of `count` registers from `address`, in requests of at most MAX_READ."""

    address: int
    count: int
    registers: list[int] = field(default_factory=list)

    @property
    def next_count(self) -> int:
        return min(MAX_READ, self.count - len(self.registers))

    @property
    def done(self) -> bool:
        return len(self.registers) >= self.count


READING_OBIS = (
    ("TotWhImp", "1-0:1.8.0.255", 30), ("W", "1-0:16.7.0.255", 27), ("WphA", "1-0:36.7.0.255", 27),
    ("WphB", "1-0:56.7.0.255", 27), ("WphC", "1-0:76.7.0.255", 27), ("PhVphA", "1-0:32.7.0.255", 35),
    ("PhVphB", "1-0:52.7.0.255", 35), ("PhVphC", "1-0:72.7.0.255", 35), ("A", "1-0:90.7.0.255", 33),
    ("AphA", "1-0:31.7.0.255", 33), ("AphB", "1-0:51.7.0.255", 33), ("AphC", "1-0:71.7.0.255", 33),
    ("Hz", "1-0:14.7.0.255", 44),
)
"""AC meter points as readings: OBIS code and COSEM unit code."""
UNITS = {27: "W", 30: "Wh", 33: "A", 35: "V", 44: "Hz"}


class BsmClient(LinkMachine):
    """Discovery, time, snapshots and AC readings of one BSM-WS36A."""

    class link(State.Compound, name="BSM-WS36A client"):
        starting = State("Starting", initial=True)

        class discovery(State.Compound, name="Discovery"):
            marker = State("Reading the SunS marker", initial=True)
            header = State("Reading model headers")
            signing_meter = State("Reading the Signing Meter model")

        ready = State("Ready: next step")

        class time_setting(State.Compound, name="Setting the time"):
            time_checking = State("Reading the time-set record", initial=True)
            time_writing = State("Writing Epoch and TZO")

        class snapshot(State.Compound, name="Snapshot"):
            meta_writing = State("Writing metadata", initial=True)
            update_writing = State("Writing Update (2)")
            status_waiting = State("Waiting to poll the status")
            status_reading = State("Reading the status")
            block_reading = State("Reading the snapshot")
            ocmf_reading = State("Reading the OCMF")

            status_due = status_waiting.to(status_reading, on="read_status")

        class meter_reading(State.Compound, name="Reading the AC meter"):
            idle = State("Idle between polls", initial=True)
            ac_reading = State("Reading the AC meter model")

            poll_due = idle.to(ac_reading, on="read_ac")

        start = starting.to(discovery, on="read_marker")
        answer = (
            discovery.marker.to(discovery.header, on="check_marker")
            | discovery.header.to(discovery.header, cond="more_models", on="read_next_header")
            | discovery.header.to(discovery.signing_meter, on="read_signing_meter")
            | discovery.signing_meter.to(discovery.signing_meter, cond="more_to_read", on="read_more")
            | discovery.signing_meter.to(ready, on="take_key")
            | time_setting.time_checking.to(time_setting.time_writing, cond="time_set_allowed", on="write_time")
            | time_setting.time_checking.to(ready, on="refuse_time")
            | time_setting.time_writing.to(ready, on="time_written")
            | snapshot.meta_writing.to(snapshot.meta_writing, cond="more_meta", on="write_meta")
            | snapshot.meta_writing.to(snapshot.update_writing, on="write_update")
            | snapshot.update_writing.to(snapshot.status_waiting)
            | snapshot.status_reading.to(snapshot.status_waiting, cond="updating")
            | snapshot.status_reading.to(snapshot.block_reading, cond="status_valid", on="read_block")
            | snapshot.status_reading.to(ready, on="snapshot_failed")
            | snapshot.block_reading.to(snapshot.block_reading, cond="more_to_read", on="read_more")
            | snapshot.block_reading.to(snapshot.ocmf_reading, on="verify_block")
            | snapshot.ocmf_reading.to(snapshot.ocmf_reading, cond="more_to_read", on="read_more")
            | snapshot.ocmf_reading.to(ready, on="verify_ocmf")
            | meter_reading.ac_reading.to(meter_reading.idle, on="publish_ac")
        )
        snapshot_deadline = snapshot.to(ready, on="snapshot_timed_out")
        # Each waiting state asks again in place (an internal self-transition on the enclosing
        # compound would re-enter its initial state in python-statemachine 3.2).
        no_answer = (
            discovery.marker.to.itself(internal=True, cond="can_retry", on="resend")
            | discovery.header.to.itself(internal=True, cond="can_retry", on="resend")
            | discovery.signing_meter.to.itself(internal=True, cond="can_retry", on="resend")
            | time_setting.time_checking.to.itself(internal=True, cond="can_retry", on="resend")
            | time_setting.time_writing.to.itself(internal=True, cond="can_retry", on="resend")
            | snapshot.meta_writing.to.itself(internal=True, cond="can_retry", on="resend")
            | snapshot.update_writing.to.itself(internal=True, cond="can_retry", on="resend")
            | snapshot.status_reading.to.itself(internal=True, cond="can_retry", on="resend")
            | snapshot.block_reading.to.itself(internal=True, cond="can_retry", on="resend")
            | snapshot.ocmf_reading.to.itself(internal=True, cond="can_retry", on="resend")
            | meter_reading.ac_reading.to.itself(internal=True, cond="can_retry", on="resend")
        )

    closed = State("Closed", final=True)

    next = (
        link.ready.to(link.time_setting, cond="time_pending")
        | link.ready.to(link.snapshot, cond="snapshot_pending and has_meta", on="write_first_meta")
        | link.ready.to(link.snapshot.update_writing, cond="snapshot_pending", on="request_update")
        | link.ready.to(link.meter_reading.ac_reading, cond="polling", on="read_ac")
        | link.ready.to(closed, on="done")
    )
    no_answer = link.to(closed, on="gave_up")
    refused = link.to(closed, on="was_refused")
    bad_answer = link.to(closed, on="answer_unusable")
    link_lost = link.to(closed)

    safety = Safety(
        says="no snapshot is reported valid (its outcome's status Valid and signature_valid) unless its "
             "signature verified, over a block read in this snapshot, against the meter's public key",
        holds="!(status_valid_noted && signature_valid) || signature_verified",
        variables=("mtype = { ST_UPDATING, ST_VALID, ST_OTHER }", "mtype st = ST_OTHER",
                   "bool status_valid_noted = false", "bool signature_valid = false",
                   "bool block_read = false", "bool signature_verified = false"),
        guards={"updating": "st == ST_UPDATING", "status_valid": "st == ST_VALID"},
        actions={
            "write_first_meta": "status_valid_noted = false; signature_valid = false; block_read = false; "
                                "signature_verified = false",
            "request_update": "status_valid_noted = false; signature_valid = false; block_read = false; "
                              "signature_verified = false",
            "read_block": "block_read = true",
            # The outcome takes the verifier's verdict and the status the block carries.
            "verify_block": "if :: signature_verified = block_read :: signature_verified = false fi; "
                            "signature_valid = signature_verified; "
                            "if :: status_valid_noted = true :: status_valid_noted = false fi",
        },
        events={
            # The `updating` guard notes the status read whenever an answer reaches status_reading.
            "answer": "if :: st = ST_UPDATING :: st = ST_VALID :: st = ST_OTHER fi; "
                      "if :: IN_status_reading -> status_valid_noted = (st == ST_VALID) :: else -> skip fi",
        },
        after="st = ST_OTHER",
        assumptions=(
            "a snapshot's outcome is reported as `SnapshotOutcome.valid` (cli.py, the service): status Valid and "
            "signature_valid; the ECDSA check itself (protocols/bsm `Snapshot.verify`) is the verifier, whose "
            "verdict is a free choice here",
            "an `answer` event carries the registers read; whether St reads Updating or Valid is the datum modeled",
        ),
    )

    timeouts = (
        StateTimeout("starting", after="start_after", event="start"),
        StateTimeout("marker", after="response_timeout", event="no_answer"),
        StateTimeout("header", after="response_timeout", event="no_answer"),
        StateTimeout("signing_meter", after="response_timeout", event="no_answer"),
        StateTimeout("time_checking", after="response_timeout", event="no_answer"),
        StateTimeout("time_writing", after="response_timeout", event="no_answer"),
        StateTimeout("meta_writing", after="response_timeout", event="no_answer"),
        StateTimeout("update_writing", after="response_timeout", event="no_answer"),
        StateTimeout("status_reading", after="response_timeout", event="no_answer"),
        StateTimeout("block_reading", after="response_timeout", event="no_answer"),
        StateTimeout("ocmf_reading", after="response_timeout", event="no_answer"),
        StateTimeout("ac_reading", after="response_timeout", event="no_answer"),
        StateTimeout("status_waiting", after="status_poll", event="status_due"),
        StateTimeout("snapshot", after="snapshot_seconds", event="snapshot_deadline"),
        StateTimeout("idle", after="poll_interval", event="poll_due"),
    )

    def __init__(self, plan: BsmPlan = BsmPlan(), counters: Counter[str] | None = None) -> None:
        self.plan = plan
        self.codec = ModbusRtuClient(plan.unit)
        self.start_after = 0.0
        self.response_timeout = plan.response_timeout
        self.status_poll = plan.status_poll
        self.poll_interval = plan.poll_interval if plan.poll_interval is not None else 0.0
        self.snapshot_seconds = plan.deadlines.of(plan.snapshot.type) if plan.snapshot else plan.deadlines.current
        self.chain: list[ModelInstance] = []
        self.public_key: bytes | None = None
        self.meter_address: str | None = None
        self.outcome: SnapshotOutcome | None = None
        self.time_verdict: TimeVerdict | None = None
        self.failure: str | None = None
        """Why the session closed before it was done."""
        self._time_pending = plan.time is not None
        self._snapshot_pending = plan.snapshot is not None
        self._metas: list[dict[str, int | str]] = []
        self._read: _Read | None = None
        self._request = b""
        self._expect: tuple[str, int, int] = ("", 0, 0)
        self._tries = 0
        self._answer: Response | None = None
        self._error: str | None = None
        self._received_at: float | None = None
        super().__init__(counters)

    # -- the codec's responses --------------------------------------------------------------

    def handle(self, event: Response, received_at: float | None = None) -> None:
        """Feed one decoded response."""
        self._received_at = received_at
        kind, address, count = self._expect
        match event:
            case BadFrame(detail):
                self.drop("bad_frame", detail)
            case _ if event.unit != self.plan.unit:
                self.drop("other_unit", f"an answer from unit {event.unit}")
            case _ if not kind:
                self.drop("unexpected", f"{type(event).__name__} with no request outstanding")
            case ExceptionAnswer(_, function, code):
                self.send("refused", detail=f"function {function} exception {code} at {address}")
            case RegistersRead(_, registers) if kind == "read" and len(registers) == count:
                self._answered(event)
            case RegistersWritten(_, at, written) if kind == "write" and (at, written) == (address, count):
                self._answered(event)
            case _:
                self.send("bad_answer", detail=f"{type(event).__name__} does not answer the {kind} of {count} at {address}")

    def _answered(self, answer: Response) -> None:
        self._expect = ("", 0, 0)
        self._answer = answer
        self._error = None
        self.send("answer")
        if self._error is not None:
            # A callback found the registers unusable; it recorded why instead of raising mid-transition.
            self.send("bad_answer", detail=self._error)

    def _unusable(self, error: ProtocolError) -> None:
        self._error = str(error)

    @property
    def _registers(self) -> tuple[int, ...]:
        assert isinstance(self._answer, RegistersRead)
        return self._answer.registers

    # -- requests ---------------------------------------------------------------------------

    def _send_read(self, address: int, count: int) -> None:
        self._request = self.codec.read(address, count)
        self._expect = ("read", address, count)
        self._tries = 0
        self.actions.append(Send(self._request))

    def _send_write(self, layout: Layout, instance: ModelInstance, values: dict[str, int | str]) -> None:
        """One Write Multiple Registers over whole points, checked before it is sent (ch. 17.1)."""
        address, registers = write_span(layout, instance, values)
        check_whole_points(layout, instance, address, len(registers))
        self._request = self.codec.write(address, registers)
        self._expect = ("write", address, len(registers))
        self._tries = 0
        self.actions.append(Send(self._request))

    def _start_read(self, address: int, count: int) -> None:
        self._read = _Read(address, count)
        self._send_read(address, self._read.next_count)

    def read_more(self) -> None:
        assert self._read is not None
        self._read.registers.extend(self._registers)
        self._send_read(self._read.address + len(self._read.registers), self._read.next_count)

    def more_to_read(self) -> bool:
        assert self._read is not None
        return len(self._read.registers) + len(self._registers) < self._read.count

    def _finish_read(self) -> list[int]:
        assert self._read is not None
        self._read.registers.extend(self._registers)
        return self._read.registers

    def can_retry(self) -> bool:
        return self._tries < self.plan.retries

    def resend(self) -> None:
        self._tries += 1
        self.counters["retries"] += 1
        self.actions.append(Send(self._request))

    # -- discovery --------------------------------------------------------------------------

    def read_marker(self) -> None:
        self._send_read(BASE_ADDRESS, 2)

    def check_marker(self) -> None:
        try:
            check_marker(self._registers)
        except ProtocolError as error:
            self._unusable(error)
            return
        self._send_read(BASE_ADDRESS + 2, 2)

    def more_models(self) -> bool:
        return self._registers[0] != END_MODEL

    def read_next_header(self) -> None:
        address = self.chain[-1].end if self.chain else BASE_ADDRESS + 2
        instance = model_header(address, self._registers)
        if instance.end + 2 > 0x10000 or len(self.chain) >= MAX_MODELS:
            self._unusable(ProtocolError(f"model {instance.model_id} at {address} with length {instance.length}: "
                                         f"the chain runs past the register space or {MAX_MODELS} models"))
            return
        self.chain.append(instance)
        self._send_read(instance.end, 2)

    def read_signing_meter(self) -> None:
        meters = find_models(self.chain, SIGNING_METER.model_id)
        snapshots = find_models(self.chain, SNAPSHOT.model_id)
        if not meters or len(snapshots) < len(SnapshotType) or not find_models(self.chain, AC_METER.model_id):
            self._unusable(ProtocolError(f"model chain {[m.model_id for m in self.chain]}: not a BSM-WS36A "
                                         f"(needs 203, 64900 and five 64901)"))
            return
        self._start_read(meters[0].address, meters[0].length + 2)

    def take_key(self) -> None:
        meter = find_models(self.chain, SIGNING_METER.model_id)[0]
        registers = self._finish_read()
        try:
            points = decode_model(SIGNING_METER, meter, registers)
            self.public_key = decode_public_key(registers[SIGNING_METER.point("NPK").offset:])
        except ProtocolError as error:
            self._unusable(error)
            return
        self.meter_address = str(points["MA1"]) or None

    def on_enter_ready(self) -> None:
        self.raise_("next")

    # -- time -------------------------------------------------------------------------------

    def time_pending(self) -> bool:
        return self._time_pending

    def on_enter_time_setting(self) -> None:
        self._time_pending = False
        meter = find_models(self.chain, SIGNING_METER.model_id)[0]
        self._send_read(meter.address + SIGNING_METER.point("OS").offset, 9)

    def time_set_allowed(self) -> bool:
        assert self.plan.time is not None
        os_now = self._registers[0] << 16 | self._registers[1]
        set_count = self._registers[5] << 16 | self._registers[6]
        set_at = self._registers[7] << 16 | self._registers[8]
        return self.plan.time.force or set_count == 0 or os_now - set_at >= DAY

    def write_time(self) -> None:
        assert self.plan.time is not None
        meter = find_models(self.chain, SIGNING_METER.model_id)[0]
        self._send_write(SIGNING_METER, meter, {"Epoch": self.plan.time.epoch, "TZO": self.plan.time.tzo})

    def refuse_time(self) -> None:
        self.time_verdict = TimeVerdict.REFUSED

    def time_written(self) -> None:
        self.time_verdict = TimeVerdict.SET

    # -- snapshots --------------------------------------------------------------------------

    def snapshot_pending(self) -> bool:
        return self._snapshot_pending

    def has_meta(self) -> bool:
        request = self.plan.snapshot
        return request is not None and any(meta is not None for meta in (request.meta1, request.meta2, request.meta3))

    def write_first_meta(self) -> None:
        self._begin_snapshot()
        self.write_meta()

    def request_update(self) -> None:
        self._begin_snapshot()
        self.write_update()

    def _begin_snapshot(self) -> None:
        assert self.plan.snapshot is not None
        self._snapshot_pending = False
        self.outcome = SnapshotOutcome(self.plan.snapshot.type)
        request = self.plan.snapshot
        given = {name: value for name, value in (("Meta1", request.meta1), ("Meta2", request.meta2), ("Meta3", request.meta3))
                 if value is not None}
        # One write per run of adjacent points that fits a request (Meta1 + Meta2 is 120 registers).
        self._metas = []
        for name, value in given.items():
            run = self._metas[-1] if self._metas else None
            size = sum(SIGNING_METER.point(point).size for point in run) if run else 0
            adjacent = run is not None and _follows(list(run)[-1], name)
            if run is not None and adjacent and size + SIGNING_METER.point(name).size <= MAX_WRITE:
                run[name] = value
            else:
                self._metas.append({name: value})

    def more_meta(self) -> bool:
        return bool(self._metas)

    def write_meta(self) -> None:
        meter = find_models(self.chain, SIGNING_METER.model_id)[0]
        self._send_write(SIGNING_METER, meter, self._metas.pop(0))

    def _snapshot_instance(self) -> ModelInstance:
        assert self.outcome is not None
        return find_models(self.chain, SNAPSHOT.model_id)[self.outcome.type]

    def write_update(self) -> None:
        self._send_write(SNAPSHOT, self._snapshot_instance(), {"St": int(SnapshotStatus.UPDATING)})

    def read_status(self) -> None:
        self._send_read(self._snapshot_instance().address + SNAPSHOT.point("St").offset, 1)

    def updating(self) -> bool:
        self._note_status()
        return self._registers[0] == SnapshotStatus.UPDATING

    def status_valid(self) -> bool:
        return self._registers[0] == SnapshotStatus.VALID

    def _note_status(self) -> None:
        assert self.outcome is not None
        self.outcome.status = self._registers[0]

    def snapshot_failed(self) -> None:
        assert self.outcome is not None
        status = self._registers[0]
        name = SnapshotStatus(status).name.lower() if status in SnapshotStatus._value2member_map_ else f"status {status}"
        self.outcome.reason = f"the meter reports {name} ({status})"

    def read_block(self) -> None:
        instance = self._snapshot_instance()
        self._start_read(instance.address, instance.length + 2)

    def verify_block(self) -> None:
        assert self.outcome is not None
        try:
            snapshot = decode_snapshot(self._snapshot_instance(), self._finish_read(), self.public_key)
            self.outcome.signature_valid = snapshot.type == self.outcome.type and snapshot.verify()
        except ProtocolError as error:
            self._unusable(error)
            return
        self.outcome.snapshot = snapshot
        self.outcome.status = snapshot.status
        if not self.outcome.signature_valid:
            self.outcome.reason = "the signature does not verify against the meter's public key"
        ocmf = find_models(self.chain, OCMF_MODEL.model_id)
        if len(ocmf) > self.outcome.type:
            self._start_read(ocmf[self.outcome.type].address, ocmf[self.outcome.type].length + 2)
        else:
            self._start_read(self._snapshot_instance().address, 2)  # no OCMF model: nothing more to verify

    def verify_ocmf(self) -> None:
        assert self.outcome is not None and self.public_key is not None
        registers = self._finish_read()
        ocmf = find_models(self.chain, OCMF_MODEL.model_id)
        if len(ocmf) <= self.outcome.type:
            return
        try:
            text = str(decode_model(OCMF_MODEL, ocmf[self.outcome.type], registers)["O"])
        except ProtocolError as error:
            self._unusable(error)
            return
        self.outcome.ocmf = text
        try:
            self.outcome.ocmf_valid = parse_ocmf(text).verify(self.public_key)
        except ProtocolError:
            self.outcome.ocmf_valid = False

    def snapshot_timed_out(self) -> None:
        assert self.outcome is not None
        self._expect = ("", 0, 0)
        self.outcome.reason = f"no valid snapshot within {self.snapshot_seconds:g} s"

    # -- AC meter readings ------------------------------------------------------------------

    def polling(self) -> bool:
        return self.plan.poll_interval is not None

    def read_ac(self) -> None:
        meter = find_models(self.chain, AC_METER.model_id)[0]
        self._send_read(meter.address, meter.length + 2)

    def publish_ac(self) -> None:
        meter = find_models(self.chain, AC_METER.model_id)[0]
        try:
            points = decode_model(AC_METER, meter, self._registers)
        except ProtocolError as error:
            self._unusable(error)
            return
        values = []
        for name, obis, unit_code in READING_OBIS:
            point = AC_METER.point(name)
            raw, scale = points[name], points[point.scale] if point.scale else 0
            assert isinstance(raw, int) and isinstance(scale, int)
            if (point.type is PointType.INT16 and not_available(point.type, raw)) or not_available(PointType.SUNSSF, scale):
                continue  # a phase or quantity this meter does not provide
            values.append(Value(obis, scaled(raw, scale), UNITS[unit_code], raw, scale, unit_code))
        self.actions.append(Publish(Reading(self.meter_address, "bsm", self._received_at, None, tuple(values))))

    # -- endings ----------------------------------------------------------------------------

    def done(self) -> None:
        self._expect = ("", 0, 0)

    def gave_up(self) -> None:
        self.failure = f"no answer after {self.plan.retries + 1} tries"

    def was_refused(self, detail: str) -> None:
        self.failure = f"the meter refused: {detail}"

    def answer_unusable(self, detail: str) -> None:
        self.failure = f"unusable answer: {detail}"

    def on_enter_closed(self) -> None:
        self._expect = ("", 0, 0)


def _follows(before: str, name: str) -> bool:
    first, second = SIGNING_METER.point(before), SIGNING_METER.point(name)
    return first.offset + first.size == second.offset

