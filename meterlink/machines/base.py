"""The pattern every link machine follows.

A link machine is a python-statemachine `StateChart` that holds every state, event, guard and
timeout of its link. It is pure: no I/O, no clock, no trio. It records what the actor must do as
`Action`s, and declares each state's deadline as a `StateTimeout`, so diagrams and tests see
everything the code does. The actor arms the deadline of the current state and sends the timeout
event when it passes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from statemachine import StateChart
from statemachine.graph import iterate_states

from ..protocols.dlms.security import CipherKeys
from ..protocols.readings import Reading


@dataclass(frozen=True, slots=True)
class StateTimeout:
    """While the machine is in `state`, `event` is sent after `after` seconds.

    `after` names an attribute of the machine, so a timeout can be configured per link and the
    diagram still shows what it is called. Re-entering the state restarts it.
    """

    state: str
    after: str
    event: str


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes to the link."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """Hand this reading to the readings hub."""

    reading: Reading


@dataclass(frozen=True, slots=True)
class Dropped:
    """A frame was dropped; `cause` is the counter it went to, `detail` says why for a person."""

    cause: str
    detail: str


@dataclass(frozen=True, slots=True)
class Resync:
    """Discard what the codec holds of a partial frame and hunt for the next start."""


@dataclass(frozen=True, slots=True)
class KeyConfirmed:
    """A telegram decrypted with these keys: a pending key of a hybrid change-over becomes current."""

    keys: CipherKeys


Action = Send | Publish | Dropped | Resync | KeyConfirmed

observers: list[Any] = []
"""Listeners attached to every link machine created; the test suite's transition-coverage
recorder is the one user (python-statemachine calls their `on_transition`)."""


class LinkMachine(StateChart):
    """Base class: strict event handling, actions recorded for the actor, declared timeouts.

    Every link machine has a `link_lost` event from each state to a final state: the actor sends it
    when the peer closes the link.
    """

    allow_event_without_transition = False
    catch_errors_as_events = False

    timeouts: ClassVar[tuple[StateTimeout, ...]] = ()

    def __init__(self, counters: Counter[str] | None = None) -> None:
        self.actions: list[Action] = []
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.epoch = 0
        super().__init__(listeners=list(observers))

    @classmethod
    def check_timeouts(cls) -> None:
        """Raise TypeError when a declared timeout names a state or event the machine lacks."""
        state_ids = {state.id for state in iterate_states(cls.states)}
        event_ids = {event.id for event in cls._events}
        for timeout in cls.timeouts:
            if timeout.state not in state_ids or timeout.event not in event_ids:
                raise TypeError(f"{cls.__name__}: timeout {timeout} names an unknown state or event")

    def after_transition(self, transition: Any) -> None:
        # An internal transition does not re-enter its state, so it must not restart the deadline.
        if not transition.internal:
            self.epoch += 1

    def handle(self, event: Any, received_at: float | None = None) -> None:
        """Feed one codec event; each machine maps its codec's events to its own events."""
        raise NotImplementedError

    def take_actions(self) -> list[Action]:
        """The actions recorded since the last call, in order."""
        actions, self.actions = self.actions, []
        return actions

    def pending_timeout(self) -> tuple[float, str] | None:
        """(seconds, event) of the deadline of the current state, if it has one."""
        active = {state.id for state in self.configuration}
        for timeout in self.timeouts:
            if timeout.state in active:
                return float(getattr(self, timeout.after)), timeout.event
        return None

    @property
    def state_name(self) -> str:
        return ",".join(sorted(state.id for state in self.configuration))

    def count_noise(self, count: int) -> None:
        self.counters["noise_bytes"] += count

    def report_stale(self) -> None:
        self.counters["stale"] += 1

    def drop(self, cause: str, detail: str) -> None:
        """Count a dropped frame under `cause` and tell the actor why."""
        self.counters[cause] += 1
        self.actions.append(Dropped(cause, detail))
