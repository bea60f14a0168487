"""The BSM client machine against the simulated meter, on trio's MockClock: snapshots of every type
with contactor faults arriving at any moment, lost answers, refusals, the time rule; and every
declared transition (tests/conftest.py's coverage check)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlink.actors.bsm import BsmLink, run_bsm
from meterlink.actors.link import LinkHooks, LinkLost, LinkStatus
from meterlink.machines.bsm import BsmClient, BsmPlan, SnapshotRequest, TimeRequest, TimeVerdict
from meterlink.machines.base import Send
from meterlink.protocols.bsm import SnapshotStatus, SnapshotType
from meterlink.protocols.sunspec import ExceptionAnswer, ModbusRtuClient, RegistersRead
from meterlink.simulators.bsm import BsmMeter, Contactor, Fault, run_bsm_meter


@dataclass
class Lossy(trio.abc.Stream):
    """The client's end of the line; drops the answers whose numbers are in `lost`."""

    inner: trio.abc.Stream
    lost: set[int] = field(default_factory=set)
    answers: int = 0

    async def send_all(self, data: bytes) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while True:
            data = await self.inner.receive_some(max_bytes)
            self.answers += 1
            if self.answers not in self.lost or not data:
                return data

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Session:
    machine: BsmClient
    readings: list = field(default_factory=list)
    ended_at: float = 0.0
    answers: int = 0
    """Chunks of answers the client received (or lost)."""


def run_session(meter_factory, plan: BsmPlan, fault_at: float | None = None, fault: Fault = Fault.NONE,
                lost: frozenset[int] = frozenset(), doe_off_at: float | None = None, sessions: int = 1,
                run_for: float | None = None) -> tuple[BsmMeter, list[Session]]:
    """Run `sessions` sessions of `plan` one after the other against one simulated meter."""
    results: list[Session] = []

    async def main() -> BsmMeter:
        meter = meter_factory()

        async def later(at: float, change) -> None:
            await trio.sleep(at)
            change()

        async with trio.open_nursery() as nursery:
            if fault_at is not None:
                nursery.start_soon(later, fault_at, lambda: setattr(meter.contactor, "fault", fault))
            if doe_off_at is not None:
                nursery.start_soon(later, doe_off_at, lambda: setattr(meter, "doe", False))
            for _ in range(sessions):
                client_end, meter_end = trio.testing.memory_stream_pair()
                nursery.start_soon(run_bsm_meter, meter_end, meter)
                stream = Lossy(client_end, set(lost))
                session = Session(BsmClient(plan))

                async def opener() -> trio.abc.Stream:
                    return stream

                with trio.move_on_after(run_for if run_for is not None else 1e9):
                    await run_bsm(BsmLink("sim"), LinkHooks(session.readings.append), LinkStatus("bsm", "bsm"), opener,
                                  session.machine)
                session.ended_at = trio.current_time()
                session.answers = stream.answers
                results.append(session)
            nursery.cancel_scope.cancel()
        return meter

    meter = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return meter, results


def fresh_meter(**kwargs) -> BsmMeter:
    return BsmMeter(clock=trio.current_time, wallclock=lambda: 1_657_267_200 + trio.current_time(), **kwargs)


KINDS = st.sampled_from(list(SnapshotType))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=KINDS, fault=st.sampled_from(list(Fault)), fault_at=st.one_of(st.none(), st.floats(0, 12)),
       doe_off_at=st.one_of(st.none(), st.floats(0, 12)), stall=st.booleans(),
       meta=st.one_of(st.none(), st.text(max_size=40)), lost=st.frozensets(st.integers(1, 30), max_size=2))
def test_a_snapshot_is_valid_only_when_signed_and_verified(kind, fault, fault_at, doe_off_at, stall, meta, lost) -> None:
    meter, (session,) = run_session(lambda: fresh_meter(stall=stall), BsmPlan(snapshot=SnapshotRequest(kind, meta1=meta)),
                                    fault_at, fault, lost, doe_off_at)
    machine = session.machine
    outcome = machine.outcome
    if outcome is None:  # the session closed before the snapshot (answers lost beyond the retries)
        assert machine.failure is not None
        return
    if outcome.valid:
        snapshot = outcome.snapshot
        assert snapshot is not None and snapshot.status == SnapshotStatus.VALID
        assert snapshot.verify(meter.public_key)  # against the meter's key, not only the key read
        assert machine.public_key == meter.public_key and snapshot.type == kind
        if meta is not None and meta.encode() and len(meta.encode()) <= 140:
            assert snapshot.values["Meta1"] == meta.rstrip("\0")  # written before, signed with it
        assert outcome.ocmf_valid is True or machine.failure is not None  # the OCMF read may be what failed
    if stall and machine.failure is None:
        assert not outcome.valid and outcome.reason.startswith("no valid snapshot within")


@pytest.mark.parametrize("kind", [SnapshotType.TURN_ON, SnapshotType.TURN_OFF])
@pytest.mark.parametrize("fault", [Fault.STUCK, Fault.SLOW])
def test_a_contactor_that_does_not_open_gives_status_5(kind, fault) -> None:
    def closed_meter() -> BsmMeter:
        meter = fresh_meter(contactor=Contactor(fault=Fault.NONE, closed=True, target=True))
        meter.do_active = True
        meter.contactor.fault = fault
        return meter

    _, (session,) = run_session(closed_meter, BsmPlan(snapshot=SnapshotRequest(kind)))
    outcome = session.machine.outcome
    assert outcome is not None and outcome.status == SnapshotStatus.FAILED_FEEDBACK and not outcome.valid
    assert outcome.reason == "the meter reports failed_feedback (5)"


def test_a_lying_feedback_contact_is_believed_by_the_meter() -> None:
    """The meter signs what its DI tells it: a snapshot over a welded contactor is valid, as on a real meter."""
    def welded() -> BsmMeter:
        meter = fresh_meter(contactor=Contactor(fault=Fault.STUCK, closed=True, target=True))
        meter.contactor.fault = Fault.LIE
        meter.contactor.moves_at = float("inf")
        return meter

    _, (session,) = run_session(welded, BsmPlan(snapshot=SnapshotRequest(SnapshotType.TURN_OFF)))
    assert session.machine.outcome is not None and session.machine.outcome.valid


def test_turn_on_without_doe_release_gives_status_4() -> None:
    _, (session,) = run_session(lambda: fresh_meter(doe=False), BsmPlan(snapshot=SnapshotRequest(SnapshotType.TURN_ON)))
    assert session.machine.outcome.status == SnapshotStatus.FAILED_NO_DOE


@pytest.mark.parametrize("kind,deadline", [(SnapshotType.CURRENT, 15), (SnapshotType.TURN_ON, 15), (SnapshotType.TURN_OFF, 13)])
def test_a_stalled_snapshot_ends_at_its_deadline_on_the_mock_clock(kind, deadline) -> None:
    _, (session,) = run_session(lambda: fresh_meter(stall=True), BsmPlan(snapshot=SnapshotRequest(kind)))
    assert session.machine.outcome.reason == f"no valid snapshot within {deadline} s"
    assert session.machine.state_name == "closed" and session.machine.failure is None


def test_turn_on_then_turn_off_signs_the_energy_between() -> None:
    def charging(kind):
        return BsmPlan(snapshot=SnapshotRequest(kind, "contract-id: rfid:12345678abcdef", "evse-id: DE*BDO*E8025334492*2", "v1"))

    async def main() -> tuple[BsmClient, BsmClient]:
        meter = fresh_meter()
        machines = []
        async with trio.open_nursery() as nursery:
            for kind in (SnapshotType.TURN_ON, SnapshotType.TURN_OFF):
                if kind is SnapshotType.TURN_OFF:
                    await trio.sleep(3600)  # an hour of charging at 11 kW
                client_end, meter_end = trio.testing.memory_stream_pair()
                nursery.start_soon(run_bsm_meter, meter_end, meter)
                machine = BsmClient(charging(kind))

                async def opener(stream=client_end) -> trio.abc.Stream:
                    return stream

                await run_bsm(BsmLink("sim"), LinkHooks(lambda r: None), LinkStatus("bsm", "bsm"), opener, machine)
                machines.append(machine)
            nursery.cancel_scope.cancel()
        return machines[0], machines[1]

    on, off = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert on.outcome.valid and off.outcome.valid
    assert on.outcome.snapshot.values["RCR"] == 0
    assert off.outcome.snapshot.values["RCR"] * 10 == pytest.approx(11_000, abs=20)  # Wh, scale 1
    assert on.outcome.snapshot.values["Meta2"] == "evse-id: DE*BDO*E8025334492*2"


def test_readings_of_the_ac_meter_every_interval() -> None:
    _, (session,) = run_session(fresh_meter, BsmPlan(poll_interval=5.0), run_for=21)
    assert len(session.readings) == 5  # at 0, 5, 10, 15, 20 s
    first = session.readings[0]
    assert first.kind == "bsm" and first.meter_id == "001BZR1521070006"
    energy = first.value_of("1-0:1.8.0.255")
    assert energy.unit == "Wh" and energy.scaler == 1 and energy.value == energy.raw * 10
    assert first.value_of("1-0:32.7.0.255").value == pytest.approx(230.1)


def test_the_time_is_set_once_and_refused_within_24_hours_unless_forced() -> None:
    plan = BsmPlan(time=TimeRequest(1_700_000_000, 60))
    meter, sessions = run_session(fresh_meter, plan, sessions=2)
    assert [s.machine.time_verdict for s in sessions] == [TimeVerdict.SET, TimeVerdict.REFUSED]
    assert meter.epoch_set_count == 1
    forced = BsmPlan(time=TimeRequest(1_700_000_000, 60, force=True))
    meter, sessions = run_session(fresh_meter, forced, sessions=2)
    assert meter.epoch_set_count == 2


def test_lost_answers_are_asked_again_then_given_up() -> None:
    _, (session,) = run_session(fresh_meter, BsmPlan(snapshot=SnapshotRequest(SnapshotType.CURRENT)), lost=frozenset({3}))
    assert session.machine.outcome.valid and session.machine.counters["retries"] == 1
    _, (session,) = run_session(fresh_meter, BsmPlan(snapshot=SnapshotRequest(SnapshotType.CURRENT)), lost=frozenset({3, 4, 5}))
    assert session.machine.failure == "no answer after 3 tries" and session.machine.outcome is None


# -- the machine alone, fed crafted answers ---------------------------------------------------


def _started(plan: BsmPlan = BsmPlan()) -> BsmClient:
    machine = BsmClient(plan)
    machine.send("start")
    assert isinstance(machine.take_actions()[0], Send)
    return machine


def test_no_suns_marker_closes_the_session() -> None:
    machine = _started()
    machine.handle(RegistersRead(42, (0, 0)))
    assert machine.state_name == "closed" and machine.failure.startswith("unusable answer: no SunSpec marker")


def test_an_exception_answer_closes_the_session() -> None:
    machine = _started()
    machine.handle(ExceptionAnswer(42, 3, 2))
    assert machine.state_name == "closed" and machine.failure == "the meter refused: function 3 exception 2 at 40001"


def test_answers_for_others_or_unasked_are_counted_not_taken() -> None:
    machine = _started()
    machine.handle(RegistersRead(7, (0x5375, 0x6E53)))
    assert machine.counters["other_unit"] == 1 and machine.state_name == "marker"
    machine.send("link_lost")
    assert machine.state_name == "closed"
    machine = BsmClient(BsmPlan())
    machine.handle(RegistersRead(42, (1,)))
    assert machine.counters["unexpected"] == 1


def test_a_chain_without_the_bsm_models_is_refused() -> None:
    machine = _started()
    machine.handle(RegistersRead(42, (0x5375, 0x6E53)))
    machine.handle(RegistersRead(42, (1, 66)))
    machine.handle(RegistersRead(42, (0xFFFF, 0)))
    assert machine.state_name == "closed" and "not a BSM-WS36A" in machine.failure


def test_requests_are_whole_points_and_a_client_refuses_a_wrong_unit() -> None:
    with pytest.raises(Exception):
        ModbusRtuClient(0)


def test_a_lost_answer_anywhere_in_a_session_is_asked_again() -> None:
    plan = BsmPlan(time=TimeRequest(1_700_000_000, 60), snapshot=SnapshotRequest(SnapshotType.START, "m1", "m2", "m3"),
                   poll_interval=5.0)
    _, (whole,) = run_session(fresh_meter, plan, run_for=12)
    assert whole.machine.counters["retries"] == 0 and whole.machine.outcome.valid and len(whole.readings) == 2
    for lost in range(1, whole.answers + 1):
        _, (session,) = run_session(fresh_meter, plan, lost=frozenset({lost}), run_for=14)
        machine = session.machine
        assert machine.counters["retries"] == 1, lost
        assert machine.time_verdict is TimeVerdict.SET and machine.outcome.valid and session.readings, lost
