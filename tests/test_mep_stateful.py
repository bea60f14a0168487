"""The MEP client as a hypothesis stateful test (issue 24): the line's faults and the meter's moods
are rules that hypothesis interleaves with the passing of time, and after every step the client
has only ever published what the meter's tables held.

tests/test_mep_machine.py draws a whole fault schedule up front; here each fault is decided while
the session runs, so hypothesis can shrink a failure to the step that caused it.
"""

from __future__ import annotations

from collections import deque

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meterlink.machines.mep import MepClient, MepPlan
from meterlink.simulators.mep import DEMO_MEP_KEY, MepMeter

from mep_line import Fate, Line
from test_mep_machine import KEY_ERROR, WALL, expected_values


class Fates:
    """The fates the rules queued for the next messages in one direction; a clean line after them."""

    def __init__(self) -> None:
        self.queued: deque[Fate] = deque()
        self.corrupted = 0

    def __iter__(self) -> Fates:
        return self

    def __next__(self) -> Fate:
        fate = self.queued.popleft() if self.queued else Fate()
        self.corrupted += fate.corrupt_at is not None
        return fate


class MepSession(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.requests, self.responses = Fates(), Fates()
        meter = MepMeter(clock=lambda: 0.0, wallclock=lambda: WALL, sequence=0x77635B90)
        self.line = Line(MepClient(MepPlan(DEMO_MEP_KEY)), meter, requests=self.requests, responses=self.responses)
        self.checked = 0

    @rule(seconds=st.floats(0.05, 20))
    def time_passes(self, seconds: float) -> None:
        self.line.run(until=self.line.now + seconds)

    @rule(lose=st.booleans(), repeat=st.booleans(), corrupt_at=st.none() | st.integers(0, 60))
    def next_request_fate(self, lose: bool, repeat: bool, corrupt_at: int | None) -> None:
        self.requests.queued.append(Fate(lose, repeat, corrupt_at))

    @rule(lose=st.booleans(), repeat=st.booleans(), corrupt_at=st.none() | st.integers(0, 60))
    def next_response_fate(self, lose: bool, repeat: bool, corrupt_at: int | None) -> None:
        self.responses.queued.append(Fate(lose, repeat, corrupt_at))

    @rule(seconds=st.floats(0.5, 30))
    def optical_session(self, seconds: float) -> None:
        self.line.optical = (self.line.now, self.line.now + seconds)

    @rule(seconds=st.floats(1, 30))
    def alerts_pending(self, seconds: float) -> None:
        self.line.alerts = (self.line.now, self.line.now + seconds)
        self.line._next_alert = self.line.now

    @rule()
    def sequence_jump(self) -> None:
        self.line.jump_at = self.line.now

    @invariant()
    def readings_are_the_meters_tables(self) -> None:
        for reading in self.line.readings[self.checked:]:
            energy = reading.value_of("1-0:1.8.0.255")
            assert energy is not None
            matching = [e for e in self.line.energy_at_answer if int(e) == energy.value]
            assert matching, f"published import {energy.value} Wh the meter never answered"
            expected_values(reading, matching[0])
        self.checked = len(self.line.readings)

    @invariant()
    def only_a_key_error_ends_the_session(self) -> None:
        machine = self.line.machine
        if machine.is_terminated:
            # Two corrupted requests without an authenticated answer between them are two 0x0B.
            assert machine.failure == KEY_ERROR and self.requests.corrupted >= 2

    @invariant()
    def alert_pairs_are_never_answered(self) -> None:
        assert all(message != b"\x00\x00" for message in self.line.sent)

    def teardown(self) -> None:
        if self.line.machine.is_terminated:
            return
        # Once the faults stop, the line recovers: a clean minute brings a reading.
        before = len(self.line.readings)
        self.line.optical = self.line.alerts = (0.0, 0.0)
        self.requests.queued.clear()
        self.responses.queued.clear()
        self.line.run(until=self.line.now + 60.0)
        assert len(self.line.readings) > before or self.line.machine.is_terminated
        self.readings_are_the_meters_tables()


MepSession.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
test_mep_session = MepSession.TestCase
