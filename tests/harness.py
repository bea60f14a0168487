"""A hypothesis stateful harness that any link machine plugs into.

A machine plugs in with a "link under test": an object holding the machine (and its codec), a
model of what must have happened, and a `restart()` that does what the supervisor does after the
link closed. The harness draws random stimuli (valid frames, garbage, commands, ...) from a
strategy, lets deadlines pass at random points, and checks the invariants after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, Self, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meterlink.machines import key_of
from meterlink.machines.base import Dropped, LinkMachine, Publish


class LinkUnderTest(Protocol):
    machine: LinkMachine

    def timed_out(self, event: str) -> None:
        """The model's side of a deadline passing (the harness already sent `event`)."""

    def restart(self) -> None:
        """A fresh machine after the old one reached its final state, as the supervisor would."""


L = TypeVar("L", bound=LinkUnderTest)


def machine_harness(
    make: Callable[[], L],
    stimuli: st.SearchStrategy[Callable[[L], None]],
    invariants: Sequence[Callable[[L], None]],
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class driving the link that `make` builds."""

    class Harness(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.link = make()

        @rule(stimulus=stimuli)
        def stimulate(self, stimulus: Callable[[L], None]) -> None:
            stimulus(self.link)
            self._restart_if_closed()

        @rule(which=st.integers(0, 3))
        def deadline_passes(self, which: int) -> None:
            # One of the active deadlines (a parallel machine may run one per region) passes first.
            active = self.link.machine.active_timeouts()
            if active:
                event = active[which % len(active)][0].event
                self.link.machine.send(event)
                self.link.timed_out(event)
                self._restart_if_closed()

        @invariant()
        def invariants_hold(self) -> None:
            # 0 s is "at once" (a DLMS client connects as it starts); a negative deadline is a bug.
            assert all(seconds >= 0 for _, seconds in self.link.machine.active_timeouts())
            for check in invariants:
                check(self.link)

        def _restart_if_closed(self) -> None:
            if self.link.machine.is_terminated:
                self.link.restart()

    return Harness


class Driver:
    """A machine fed through its framer, frame by frame or event by event, for the one-scenario-per-
    transition tests; `actions` holds everything it asked for."""

    def __init__(self, machine: LinkMachine, framer: Any, received_at: float | None) -> None:
        self.machine = machine
        self.framer = framer
        self.received_at = received_at
        self.actions: list = []

    def feed(self, *frames: bytes) -> Self:
        return self.handle(*self.framer.feed(b"".join(frames)))

    def handle(self, *events: object) -> Self:
        for event in events:
            self.machine.handle(event, self.received_at)
        self.actions += self.machine.take_actions()
        return self

    def send(self, event: str) -> Self:
        self.machine.send(event)
        self.actions += self.machine.take_actions()
        return self

    @property
    def causes(self) -> list[str]:
        return [a.cause for a in self.actions if isinstance(a, Dropped)]

    @property
    def readings(self) -> list:
        return [a.reading for a in self.actions if isinstance(a, Publish)]


class Recorder:
    """A listener that notes every transition taken (append to meterlink.machines.base.observers
    before the machines are made)."""

    def __init__(self) -> None:
        self.taken: set = set()

    def on_transition(self, machine: LinkMachine, event: object, transition: object) -> None:
        self.taken.add(key_of(type(machine).__name__, transition, str(event)))
