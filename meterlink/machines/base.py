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
from statemachine.engines.sync import SyncEngine
from statemachine.graph import iterate_states
from statemachine.orderedset import OrderedSet

from ..protocols.dlms.security import CipherKeys
from ..protocols.readings import Reading
from .compiled import CompiledEngine, Table, default_engine, table_for
from .safety import Safety


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
class Noted:
    """Part of a frame was left out and the rest published (a P1 line that does not parse): `cause`
    is the counter it went to, `detail` names what for a person. Nothing was dropped."""

    cause: str
    detail: str


@dataclass(frozen=True, slots=True)
class Resync:
    """Discard what the codec holds of a partial frame and hunt for the next start."""


@dataclass(frozen=True, slots=True)
class KeyConfirmed:
    """A telegram decrypted with these keys: a pending key of a hybrid change-over becomes current."""

    keys: CipherKeys


Action = Send | Publish | Dropped | Noted | Resync | KeyConfirmed

observers: list[Any] = []
"""Listeners attached to every link machine created; the test suite's transition-coverage
recorder is the one user (python-statemachine calls their `on_transition`)."""


_EVENTLESS: dict[type, bool] = {}
"""Whether a machine class declares a transition without an event."""


class _Engine(SyncEngine):
    """The library's engine, with one fix and one shortcut (python-statemachine 3.2.2).

    The fix: it takes an internal self-transition of a state inside a parallel region for an entry
    of every ancestor up to the root, and re-enters the other regions at their initial states.
    SCXML enters nothing on such a transition; with self-transition entries off (below) this
    restores that. The shortcut: after every event it looks through the transitions of every
    active state for eventless ones (a fifth of an event's cost); link machines declare none.
    """

    def add_ancestor_states_to_enter(self, info: Any, ancestor: Any, *args: Any) -> None:
        transition = info.transition
        if transition.internal and transition.is_self and not self.sm.enable_self_transition_entries:
            return
        super().add_ancestor_states_to_enter(info, ancestor, *args)

    def select_eventless_transitions(self, trigger_data: Any) -> OrderedSet:
        machine = type(self.sm)
        if machine not in _EVENTLESS:
            _EVENTLESS[machine] = any(not transition.initial and transition.is_eventless
                                      for state in iterate_states(machine.states) for transition in state.transitions)
        if not _EVENTLESS[machine]:
            return OrderedSet()
        return super().select_eventless_transitions(trigger_data)


class _CompiledEngine(CompiledEngine, _Engine):
    """The compiled dispatch (machines/compiled.py); its plans come from `_Engine`'s selection code."""


class LinkMachine(StateChart):
    """Base class: strict event handling, actions recorded for the actor, declared timeouts.

    Every link machine has a `link_lost` event from each state to a final state: the actor sends it
    when the peer closes the link.
    """

    allow_event_without_transition = False
    catch_errors_as_events = False
    enable_self_transition_entries = False
    """An internal transition stays in its state: it neither leaves nor enters it, so its deadline
    keeps running (SCXML); an external self-transition leaves and enters, restarting it."""

    timeouts: ClassVar[tuple[StateTimeout, ...]] = ()

    safety: ClassVar[Safety | None] = None
    """The machine's safety property, which `meterlink promela` exports for SPIN (machines/safety.py)."""

    engine: ClassVar[str] = default_engine()
    """`compiled` runs events through the class's compiled tables (machines/compiled.py);
    `library` through python-statemachine's engine (METERLINK_MACHINE_ENGINE sets the default)."""

    def __init__(self, counters: Counter[str] | None = None) -> None:
        self.actions: list[Action] = []
        self.counters: Counter[str] = counters if counters is not None else Counter()
        self.entries: Counter[str] = Counter()
        """How often each state was entered: a state's deadline starts when it is entered."""
        super().__init__(listeners=list(observers))

    def compiled_table(self) -> Table:
        """The class's compiled tables (candidates per state and event, microsteps) for this instance."""
        return table_for(self, _CompiledEngine)

    def _get_engine(self) -> SyncEngine:
        # Sync callbacks only (ARCHITECTURE.md): the async engine would need asyncio.
        return _CompiledEngine(self) if self.engine == "compiled" else _Engine(self)

    def send(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Send an event; through the compiled dispatch unless it asks for what only the library does."""
        dispatch = getattr(self._engine, "dispatch", None)
        if dispatch is None or args or "delay" in kwargs or "send_id" in kwargs or "internal" in kwargs:
            return super().send(event, *args, **kwargs)
        dispatch.send(event, kwargs, False)
        return None

    def add_listener(self, *listeners: Any) -> Any:
        result = super().add_listener(*listeners)
        if isinstance(self._engine, CompiledEngine):
            self._engine.listeners_changed()
        return result

    def raise_(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Raise an event into the running macrostep (or send it, outside one)."""
        dispatch = getattr(self._engine, "dispatch", None)
        if dispatch is None or args or "delay" in kwargs or "send_id" in kwargs:
            return super().raise_(event, *args, **kwargs)
        dispatch.send(event, kwargs, True)
        return None

    @classmethod
    def check_timeouts(cls) -> None:
        """Raise TypeError when a declared timeout names a state or event the machine lacks."""
        state_ids = {state.id for state in iterate_states(cls.states)}
        event_ids = {event.id for event in cls._events}
        for timeout in cls.timeouts:
            if timeout.state not in state_ids or timeout.event not in event_ids:
                raise TypeError(f"{cls.__name__}: timeout {timeout} names an unknown state or event")

    def on_enter_state(self, state: Any) -> None:
        self.entries[state.id] += 1

    @property
    def epoch(self) -> int:
        """Changes whenever a state is entered, i.e. whenever some deadline restarts."""
        return sum(self.entries.values())

    def handle(self, event: Any, received_at: float | None = None) -> None:
        """Feed one codec event; each machine maps its codec's events to its own events."""
        raise NotImplementedError

    def take_actions(self) -> list[Action]:
        """The actions recorded since the last call, in order."""
        actions, self.actions = self.actions, []
        return actions

    def active_timeouts(self) -> list[tuple[StateTimeout, float]]:
        """The declared timeouts of the active states, each with its seconds. A flat machine has at
        most one; each region of a parallel one may have its own."""
        active = {state.id for state in self.configuration}
        return [(timeout, float(getattr(self, timeout.after))) for timeout in self.timeouts if timeout.state in active]

    def pending_timeout(self) -> tuple[float, str] | None:
        """(seconds, event) of the first active timeout, if there is one."""
        timeouts = self.active_timeouts()
        return (timeouts[0][1], timeouts[0][0].event) if timeouts else None

    def _active_leaves(self) -> list[Any]:
        """The active leaf states, one per region in the order the class declares them."""
        active = {state.id for state in self.configuration}
        return [state for state in iterate_states(self.states) if state.id in active and not state.states]

    @property
    def state_name(self) -> str:
        """The active leaf states' ids, for machines and tests."""
        return ",".join(state.id for state in self._active_leaves())

    @property
    def state_label(self) -> str:
        """The active state as a person reads it: the name the diagrams give it.

        A parallel machine is named by its first region (DLMS: the session). Its other regions (the
        frame receiver) change with every frame and tell a user nothing about the link.
        """
        return str(self._active_leaves()[0].name)

    def accepts(self, event: str) -> bool:
        """Whether some active state declares a transition on `event` (guards aside)."""
        return any(event in transition.events for state in self.configuration for transition in state.transitions)

    def count_noise(self, count: int) -> None:
        self.counters["noise_bytes"] += count

    def report_stale(self) -> None:
        self.counters["stale"] += 1

    def note(self, cause: str, detail: str) -> None:
        """Count a part of a frame left out under `cause` and tell the actor which; the frame was published."""
        self.counters[cause] += 1
        self.actions.append(Noted(cause, detail))

    def drop(self, cause: str, detail: str) -> None:
        """Count a dropped frame under `cause` and tell the actor why."""
        self.counters[cause] += 1
        self.actions.append(Dropped(cause, detail))
