"""A compiled dispatch for the link machines: each class's statechart as tables, events run through them.

python-statemachine's engine works out afresh for every event which transitions are enabled, which
states to leave and enter, which callbacks to call and with which arguments: about 80 µs per event
here, most of a link's work. For a link machine all of that depends only on the active
configuration, the event and the outcomes of the guards, so it is worked out once and kept:

- per class (and set of listeners), at its first instance: for each state and event the candidate
  transitions of the state and its ancestors in declaration order, each with its guard compiled
  from the class's `cond`/`unless` text; every callback name resolved to a method and the
  parameters it takes (its arguments are injected by name, as the library does), or to an
  attribute;
- per (configuration, event, transitions enabled), at first use: a plan made by the library's own
  selection code (conflicts between regions, exit and entry sets in document order, default
  entries, internal and external self-transitions): the callbacks of each step, before, exit,
  transition, entry and after, in order, and the configuration after each step.

Guards and actions still run on every event: the machine's data never enters a table. The event
queues behave as the library's (`raise_` joins the running macrostep, `send` from a callback waits
for it; an event nothing takes raises TransitionNotAllowed), listeners get the same calls, a
callback that raises restores the configuration and empties the queues. A feature the compiler
does not implement (history states, eventless transitions, final states inside a compound state,
delayed or internal event declarations, validators, invoke, decorators, guard expressions beyond
names with and/or/not, callbacks that take `event_data` or the configurations) raises
`UnsupportedMachine` when the class is compiled, so a new machine cannot silently diverge.

`METERLINK_MACHINE_ENGINE=library` (or `engine = "library"` on a class) runs the library's engine
instead, for the differential test (tests/test_compiled_dispatch.py) and for debugging.
"""

from __future__ import annotations

import ast
import inspect
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statemachine.callbacks import CallbackGroup, CallbackPriority, SpecReference
from statemachine.engines.sync import SyncEngine
from statemachine.event import BoundEvent, Event
from statemachine.exceptions import TransitionNotAllowed
from statemachine.graph import iterate_states
from statemachine.model import Model
from statemachine.orderedset import OrderedSet

ENGINE_VARIABLE = "METERLINK_MACHINE_ENGINE"
ENGINES = ("compiled", "library")


def default_engine() -> str:
    """The engine named by METERLINK_MACHINE_ENGINE, `compiled` when it is unset."""
    engine = os.environ.get(ENGINE_VARIABLE, "compiled")
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_VARIABLE}={engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


class UnsupportedMachine(TypeError):
    """The machine uses a statechart feature the compiled dispatch does not implement."""


_INJECTED = frozenset({"event_data", "machine", "event", "model", "transition", "state", "source", "target"})
"""Keyword arguments the library puts beside an event's own (and drops from them)."""
_CONTEXT = frozenset({"transition", "state", "source", "target"})
_REFUSED = frozenset({"event_data", "trigger_data", "previous_configuration", "new_configuration"})

Receivers = tuple[Any, ...]
Call = Callable[[Receivers, dict[str, Any]], Any]
"""A resolved callback: called with the receivers (machine, listeners...) and the keyword arguments."""


@dataclass(frozen=True, slots=True)
class _Resolved:
    slot: int
    name: str
    params: tuple[str, ...] | None
    """None: an attribute read, not a call."""

    @property
    def context(self) -> bool:
        return bool(self.params and _CONTEXT.intersection(self.params))

    def call(self) -> Call:
        slot, name, params = self.slot, self.name, self.params
        if params is None:
            def read(receivers: Receivers, kw: dict[str, Any]) -> Any:
                return getattr(receivers[slot], name)
            return read
        if not params:
            def call0(receivers: Receivers, kw: dict[str, Any]) -> Any:
                return getattr(receivers[slot], name)()
            return call0
        if len(params) == 1:
            param = params[0]

            def call1(receivers: Receivers, kw: dict[str, Any]) -> Any:
                if param in kw:
                    return getattr(receivers[slot], name)(**{param: kw[param]})
                return getattr(receivers[slot], name)()
            return call1

        def calln(receivers: Receivers, kw: dict[str, Any]) -> Any:
            return getattr(receivers[slot], name)(**{p: kw[p] for p in params if p in kw})
        return calln


def _parameters(owner: str, name: str, function: Any) -> tuple[str, ...]:
    params = []
    for param in list(inspect.signature(function).parameters.values())[1:]:  # self
        if param.kind is inspect.Parameter.VAR_KEYWORD or param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise UnsupportedMachine(f"{owner}.{name}: **kwargs and positional-only parameters are not compiled")
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue  # events carry no positional arguments here
        if param.name in _REFUSED:
            raise UnsupportedMachine(f"{owner}.{name} takes {param.name!r}, which the compiled dispatch does not pass")
        params.append(param.name)
    return tuple(params)


def _classify(receiver: Any, name: str) -> tuple[str, ...] | None:
    """How the library would call `name` on `receiver`: parameters of a method, None for an
    attribute read."""
    owner = type(receiver).__name__
    member = inspect.getattr_static(type(receiver), name, None)
    if member is None:  # an instance attribute
        if callable(getattr(receiver, name)):
            raise UnsupportedMachine(f"{owner}.{name}: a callable instance attribute as a callback")
        return None
    if isinstance(member, Event):
        raise UnsupportedMachine(f"{owner}.{name}: a callback that names an event")
    if isinstance(member, (staticmethod, classmethod)):
        raise UnsupportedMachine(f"{owner}.{name}: static and class methods as callbacks")
    if inspect.isfunction(member):
        return _parameters(owner, name, member)
    if isinstance(member, property) or not callable(member):
        return None
    raise UnsupportedMachine(f"{owner}.{name}: a callable object as a callback")


_NAMES: dict[type, frozenset[str]] = {}


def _spec_names(cls: type) -> frozenset[str]:
    """Every name a callback of the class may resolve to (conventions included)."""
    if cls in _NAMES:
        return _NAMES[cls]
    names: set[str] = {"prepare_event", "on_invoke_state"}
    for owner in _owners(cls):
        for spec in owner._specs:
            if spec.may_contain_boolean_expression:
                names.update(node.id for node in ast.walk(ast.parse(spec.func, mode="eval")) if isinstance(node, ast.Name))
            elif isinstance(spec.func, str):
                names.add(spec.func)
    _NAMES[cls] = frozenset(names)
    return _NAMES[cls]


def _owners(cls: type) -> list[Any]:
    owners: list[Any] = []
    for state in iterate_states(cls.states):
        owners.append(state)
        owners.extend(state.transitions)
    return owners


def receivers_signature(machine: Any) -> tuple[Any, ...]:
    """What decides how callback names resolve for this instance: the machine's and each
    listener's type and which of the class's callback names each has, and how."""
    names = _spec_names(type(machine))
    signature = []
    for receiver in (machine, *machine._listeners.values()):
        present = names.intersection(dir(receiver)) if receiver is not machine else _machine_names(machine, names)
        signature.append((type(receiver), tuple(sorted((name, _classify(receiver, name)) for name in present))))
    return tuple(signature)


def _machine_names(machine: Any, names: frozenset[str]) -> set[str]:
    """`names & dir(machine)` without listing the machine's hundreds of attributes each time."""
    protected = type(machine)._protected_attrs
    return {name for name in names
            if name not in protected and (hasattr(type(machine), name) or name in vars(machine))}


def _check(cls: type) -> None:
    """Refuse, at compile time, what the compiled dispatch does not implement."""
    name = cls.__name__
    if cls.atomic_configuration_update or cls.catch_errors_as_events:
        raise UnsupportedMachine(f"{name}: atomic_configuration_update and catch_errors_as_events must be off")
    for event in cls._events:
        if event.delay or event.internal:
            raise UnsupportedMachine(f"{name}: event {event.id} is declared delayed or internal")
    for spec in cls._specs:
        if not spec.is_convention:
            raise UnsupportedMachine(f"{name}: machine-level callback {spec!r}")
    for state in iterate_states(cls.states):
        if state.is_history:
            raise UnsupportedMachine(f"{name}: history state {state.id}")
        for transition in state.transitions:
            if transition.is_eventless and not transition.initial:
                raise UnsupportedMachine(f"{name}: eventless transition from {state.id}")
            if any("*" in str(event) for event in transition.events):
                raise UnsupportedMachine(f"{name}: wildcard event on a transition from {state.id}")
            if len(transition.targets) > 1:
                raise UnsupportedMachine(f"{name}: transition from {state.id} with several targets")
        for owner in (state, *state.transitions):
            for spec in owner._specs:
                if spec.reference is not SpecReference.NAME:
                    raise UnsupportedMachine(f"{name}: callback {spec!r} given as an object (decorator?), not a name")
                if spec.group in (CallbackGroup.VALIDATOR, CallbackGroup.PREPARE):
                    raise UnsupportedMachine(f"{name}: {spec.group.name.lower()} callback {spec!r}")
                if spec.group is CallbackGroup.INVOKE and not spec.is_convention:
                    raise UnsupportedMachine(f"{name}: invoke on {state.id}")
                if spec.cond is not None and getattr(spec.cond, "__func__", None) is not Event.is_same_event:
                    raise UnsupportedMachine(f"{name}: conditional callback {spec!r}")


def _compile_expression(text: str, resolve: Callable[[str], Call]) -> Call:
    """A guard's text (`a and not b`) as one call with Python's and/or/not."""
    def build(node: ast.AST) -> Call:
        if isinstance(node, ast.Name):
            return resolve(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            operand = build(node.operand)
            return lambda receivers, kw: not operand(receivers, kw)
        if isinstance(node, ast.BoolOp):
            parts = [build(value) for value in node.values]
            if isinstance(node.op, ast.And):
                def all_of(receivers: Receivers, kw: dict[str, Any]) -> Any:
                    value = True
                    for part in parts:
                        value = part(receivers, kw)
                        if not value:
                            return value
                    return value
                return all_of

            def any_of(receivers: Receivers, kw: dict[str, Any]) -> Any:
                value = False
                for part in parts:
                    value = part(receivers, kw)
                    if value:
                        return value
                return value
            return any_of
        raise UnsupportedMachine(f"guard {text!r}: only names with and, or, not are compiled")
    return build(ast.parse(text, mode="eval").body)


def compile_guard(transition: Any, resolve: Callable[[str], Call]) -> Call | None:
    """A transition's guard (its `cond` and `unless` texts) as one call, each name it uses made a
    call by `resolve`; None when it has none."""
    conds = [(_compile_expression(spec.func, resolve), bool(spec.expected_value))
             for spec in transition._specs if spec.group is CallbackGroup.COND]
    if not conds:
        return None
    if len(conds) == 1 and conds[0][1]:
        only = conds[0][0]
        return lambda receivers, kw: bool(only(receivers, kw))

    def guard(receivers: Receivers, kw: dict[str, Any]) -> bool:
        return all(bool(cond(receivers, kw)) == expected for cond, expected in conds)
    return guard


def guard_names(transition: Any) -> tuple[str, ...]:
    """The names a transition's guard reads, each once."""
    names: dict[str, None] = {}
    for spec in transition._specs:
        if spec.group is CallbackGroup.COND:
            names.update((node.id, None) for node in ast.walk(ast.parse(spec.func, mode="eval")) if isinstance(node, ast.Name))
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Microstep:
    """The transitions an event takes in a configuration, and the states they leave and enter."""

    transitions: tuple[Any, ...]
    """Those taken, conflicts between regions settled, in document order."""
    exits: tuple[Any, ...]
    """The library's exit infos (`.state`, `.transition`), in exit order."""
    entries: tuple[Any, ...]
    """The library's entry infos, in entry order."""
    default_entered: frozenset[str]
    """Ids of the compound states entered by default (their initial transition runs)."""
    configuration: tuple[Any, ...]
    """The configuration after it, in the library's order."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A transition that may take an event from an atomic state, with its compiled guard."""

    transition: Any
    guard: Call | None
    context: bool
    """Whether the guard takes transition, state, source or target."""


@dataclass(frozen=True, slots=True)
class Step:
    """Callbacks run with one (transition, state) context, then the configuration written."""

    calls: tuple[Call, ...]
    context: tuple[Any, Any, Any, Any] | None
    """(transition, state, source, target) when a call takes one of them, else None."""
    raw: Any
    """The configuration value after the step (the model's `state`), or `_KEEP`."""
    stops: bool = False
    """Entering a top-level final state stops the machine."""
    done: tuple[str, ...] = ()
    """The done.state events entering a final state inside a compound state raises."""


_KEEP = object()


Op = tuple[bool, tuple[Call, ...], "tuple[Any, Any, Any, Any] | None", Any, bool, tuple[str, ...]]
"""A step as the dispatch runs it: (entry, calls, context, raw, stops, done). An entry writes the
configuration before its callbacks (the state is active on entry), other steps after them. `done`:
the done.state events entering a final state raises, with its entry callbacks' results as data."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a microstep does for one (configuration, event, enabled transitions)."""

    main: tuple[Op, ...]
    """before, exit, transition and entry steps, in order: a callback that raises among them
    restores the configuration."""
    after: tuple[Op, ...]
    key: tuple[Any, ...]
    """The configuration after it, in the library's order."""
    regions: tuple[dict[str, tuple[Candidate, ...]], ...]
    """The candidates of `key`'s atomic states."""
    root_final: Any = None
    """A top-level parallel state all of whose regions reached a final state: the machine stops
    at the end of the macrostep if it is still so (the library's `_check_root_final_state`)."""


def _ops(steps: list[Step], entry: bool) -> list[Op]:
    return [(entry, step.calls, step.context, step.raw, step.stops, step.done) for step in steps
            if step.calls or step.raw is not _KEEP or step.stops or step.done]


class Table:
    """One machine class compiled for one set of receivers (its signature)."""

    def __init__(self, cls: type, engine_type: type[SyncEngine], signature: tuple[Any, ...]) -> None:
        _check(cls)
        self.cls = cls
        self.engine_type = engine_type
        self.allow_unmatched = bool(cls.allow_event_without_transition)
        self.events: dict[str, Event] = {event.id: event for event in cls._events}
        self._present: list[dict[str, tuple[str, ...] | None]] = [dict(names) for _, names in signature]
        if any(name.startswith("on_invoke_") or name == "prepare_event"
               for present in self._present for name in present):
            raise UnsupportedMachine(f"{cls.__name__}: invoke or prepare_event callbacks")
        self.states = {state.value: state for state in iterate_states(cls.states)}
        self._calls: dict[tuple[int, CallbackGroup, str | None], tuple[tuple[Call, ...], bool]] = {}
        self.candidates: dict[Any, dict[str, tuple[Candidate, ...]]] = {}
        guards = {id(t): self._guard(t) for state in self.states.values() for t in state.transitions if not t.initial}
        for state in self.states.values():
            # The library's predicate (`match`) over every declared event, aliases such as
            # done.state.X for done_state_X included; an undeclared event matches nothing.
            events: dict[str, tuple[Candidate, ...]] = {}
            for event in self.events:
                found = tuple(Candidate(t, *guards[id(t)]) for owner in (state, *state.ancestors())
                              for t in owner.transitions if not t.initial and t.match(event))
                if found:
                    events[event] = found
            self.candidates[state.value] = events
        self._regions: dict[tuple[Any, ...], tuple[dict[str, tuple[Candidate, ...]], ...]] = {}
        self.plans: dict[tuple[Any, ...], Plan] = {}

    # -- callbacks -----------------------------------------------------------------------------

    def _resolve(self, name: str) -> list[_Resolved]:
        return [_Resolved(slot, name, present[name]) for slot, present in enumerate(self._present) if name in present]

    def _guard(self, transition: Any) -> tuple[Call | None, bool]:
        context = False

        def resolve(name: str) -> Call:
            nonlocal context
            found = self._resolve(name)
            if len(found) != 1:
                raise UnsupportedMachine(f"{self.cls.__name__}: guard name {name!r} found on {len(found)} receivers")
            context = context or found[0].context
            return found[0].call()
        guard = compile_guard(transition, resolve)
        return guard, context and guard is not None

    def group(self, owner: Any, group: CallbackGroup, event: str | None) -> tuple[tuple[Call, ...], bool]:
        """The callbacks of one group of a state or transition, in the library's order: by
        priority, then declaration, then receiver; each name once per receiver."""
        key = (id(owner), group, event)
        if key not in self._calls:
            ranked: list[tuple[CallbackPriority, int, _Resolved]] = []
            seen: set[tuple[str, int]] = set()
            for spec in owner._specs:
                if spec.group is not group:
                    continue
                if spec.cond is not None and not spec.cond(event=event):
                    continue
                found = self._resolve(spec.func)
                if not found and not spec.is_convention:
                    raise UnsupportedMachine(f"{self.cls.__name__}: callback {spec.func!r} not found")
                for resolved in found:
                    if (resolved.name, resolved.slot) not in seen:
                        seen.add((resolved.name, resolved.slot))
                        ranked.append((spec.priority, len(ranked), resolved))
            ranked.sort(key=lambda item: (item[0], item[1]))
            self._calls[key] = (tuple(resolved.call() for _, _, resolved in ranked),
                                any(resolved.context for _, _, resolved in ranked))
        return self._calls[key]

    # -- configurations and plans ----------------------------------------------------------------

    def regions(self, key: tuple[Any, ...]) -> tuple[dict[str, tuple[Candidate, ...]], ...]:
        """The candidates of each atomic state of a configuration, in configuration order."""
        found = self._regions.get(key)
        if found is None:
            found = self._regions[key] = tuple(self.candidates[value] for value in key if self.states[value].is_atomic)
        return found

    def microstep(self, key: tuple[Any, ...], enabled: tuple[Any, ...]) -> Microstep:
        """What the library's own selection code does with these enabled transitions in the
        configuration `key`: which are taken, which states are left and entered, in order."""
        scratch = object.__new__(self.engine_type)
        scratch.sm = _ConfigurationOnly(self.cls, OrderedSet(self.states[value] for value in key))
        scratch._debug = lambda *args, **kwargs: None
        scratch._log_id = ""
        transitions = list(scratch._filter_conflicting_transitions(OrderedSet(enabled)))
        exit_infos, exited = scratch._prepare_exit_states(transitions)
        entry_infos, default_entries, history, new_configuration = scratch._prepare_entry_states(
            transitions, exited, scratch.sm.configuration)
        if history:
            raise UnsupportedMachine(f"{self.cls.__name__}: history content")
        return Microstep(tuple(transitions), tuple(exit_infos), tuple(entry_infos),
                         frozenset(info.state.id for info in default_entries if info.state),
                         tuple(state.value for state in new_configuration))

    def plan(self, key: tuple[Any, ...], event: str, enabled: tuple[Any, ...]) -> Plan:
        """Work out a microstep with the library's own code, once per (configuration, event,
        enabled transitions)."""
        selected = self.microstep(key, enabled)
        transitions, exit_infos, entry_infos = selected.transitions, selected.exits, selected.entries
        default_entered = selected.default_entered

        values = list(key)

        def raw() -> Any:
            return values[0] if len(values) == 1 else (OrderedSet(values) if values else None)

        def step(owner: Any, group: CallbackGroup, transition: Any, state: Any, source: Any, target: Any,
                 written: Any = _KEEP, extra: tuple[Call, ...] = (), context: bool = False, stops: bool = False) -> Step:
            calls, needs = self.group(owner, group, event)
            return Step(calls + extra, (transition, state, source, target) if needs or context else None, written, stops)

        before = tuple(step(t, CallbackGroup.BEFORE, t, t.source, t.source, t.target) for t in transitions)
        exits = []
        for info in exit_infos:
            values.remove(info.state.value)
            exits.append(step(info.state, CallbackGroup.EXIT, info.transition, info.state, info.state,
                              info.transition.target, raw()))
        on = tuple(step(t, CallbackGroup.ON, t, t.source, t.source, t.target) for t in transitions)
        entries = []
        root_final = None
        for info in entry_infos:
            state, transition = info.state, info.transition
            if state.value not in values:
                values.append(state.value)
            extra: tuple[Call, ...] = ()
            context = False
            if state.id in default_entered:
                initial = [t for t in state.transitions if t.initial]
                if len(initial) == 1:
                    extra, context = self.group(initial[0], CallbackGroup.ON, None)
            done: tuple[str, ...] = ()
            if state.final and state.parent is not None:
                parent, grandparent = state.parent, state.parent.parent
                done = (f"done.state.{parent.id}",)
                if grandparent is not None and grandparent.parallel and all(
                        _in_final(region, values) for region in grandparent.states):
                    done += (f"done.state.{grandparent.id}",)
                    if grandparent.parent is None:
                        root_final = grandparent
            entry = step(state, CallbackGroup.ENTER, transition, state, transition.source, state, raw(),
                         extra, context, stops=state.final and state.parent is None)
            entries.append(Step(entry.calls, entry.context, entry.raw, entry.stops, done))
        after = tuple(step(t, CallbackGroup.AFTER, t, t.target, t.source, t.target) for t in transitions)
        new_key = tuple(values)
        if new_key != selected.configuration:
            raise UnsupportedMachine(f"{self.cls.__name__}: configuration order after {enabled} differs from the library's")
        main = _ops([*before, *exits, *on], False) + _ops(entries, True)
        return Plan(tuple(main), tuple(_ops(list(after), False)), new_key, self.regions(new_key), root_final)


def _in_final(state: Any, values: Any) -> bool:
    """The library's `is_in_final_state` over configuration values."""
    if state.parallel:
        return all(_in_final(child, values) for child in state.states)
    return any(child.final and child.value in values for child in state.states)


class _ConfigurationOnly:
    """The little of a machine the library's selection code reads."""

    def __init__(self, cls: type, configuration: OrderedSet) -> None:
        self.configuration = configuration
        self.history_values: dict[str, list[Any]] = {}
        self.enable_self_transition_entries = cls.enable_self_transition_entries
        self.atomic_configuration_update = False


_TABLES: dict[tuple[type, type, tuple[Any, ...]], Table] = {}

_running: Any = None
"""The dispatch whose step is running: `raise_` from its callbacks joins its macrostep."""


def table_for(machine: Any, engine_type: type[SyncEngine]) -> Table:
    cls = type(machine)
    signature = receivers_signature(machine)
    key = (cls, engine_type, signature)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = Table(cls, engine_type, signature)
    return table


class Dispatch:
    """Runs one machine's events through its class's table."""

    __slots__ = ("sm", "engine", "table", "receivers", "model", "field", "config", "key", "regions", "raw", "root_final", "running",
                 "processing",
                 "internal", "external")

    def __init__(self, sm: Any, table: Table, engine: SyncEngine) -> None:
        if type(sm.model) is not Model:
            raise UnsupportedMachine(f"{type(sm).__name__}: an external model")
        self.sm = sm
        self.engine = engine
        self.table = table
        self.receivers: Receivers = (sm, *sm._listeners.values())
        self.model = sm.model
        self.field = sm.state_field
        self.config = sm._config
        self.key: tuple[Any, ...] = tuple(sm.configuration_values)
        self.regions = table.regions(self.key)
        self.raw = getattr(self.model, self.field)
        """The configuration value `key` was read from: someone who sets the configuration
        directly (a test putting the machine in a state) makes the next event read it again."""
        self.running = engine.running
        self.root_final: Any = None
        self.processing = False
        self.internal: deque[tuple[str, dict[str, Any]]] = deque()
        self.external: deque[tuple[str, dict[str, Any]]] = deque()

    def enqueue(self, event: str, kwargs: dict[str, Any], internal: bool) -> None:
        if not self.running and not self.table.allow_unmatched:
            raise TransitionNotAllowed(self._event(event), self.sm.configuration)
        if internal and _running is self:
            self.internal.append((event, kwargs))
        else:
            self.external.append((event, kwargs))

    def send(self, event: str, kwargs: dict[str, Any], internal: bool) -> None:
        """`StateChart.send` without its trigger objects."""
        if not _INJECTED.isdisjoint(kwargs):
            kwargs = {name: value for name, value in kwargs.items() if name not in _INJECTED}
        if not self.processing and self.running and not self.internal and not self.external:
            self._alone(event, kwargs)  # the usual case: nothing queued, nothing running
            return
        self.enqueue(event, kwargs, internal)
        if not self.processing:
            self.loop()

    def _alone(self, event: str, kwargs: dict[str, Any]) -> None:
        """`loop` for one external event sent with both queues empty."""
        global _running
        self.processing = True
        outer, _running = _running, self
        try:
            self.step(event, kwargs, external=True)
            if self.internal or self.external:
                self.processing = False
                _running = outer
                self.loop()
        finally:
            _running = outer
            self.processing = False

    def loop(self) -> None:
        """The library's processing loop: drain the internal queue, then one external event, ..."""
        global _running
        if self.processing:
            return
        self.processing = True
        outer, _running = _running, self
        try:
            while self.running:
                try:
                    while self.internal:
                        event, kwargs = self.internal.popleft()
                        self.step(event, kwargs, external=False)
                except BaseException:
                    self.clear()
                    raise
                if self.root_final is not None:
                    state, self.root_final = self.root_final, None
                    if state.value in self.key and _in_final(state, self.key):
                        self.running = self.engine.running = False
                if not self.running or not self.external:
                    break
                event, kwargs = self.external.popleft()
                self.step(event, kwargs, external=True)
            if not self.running:
                self.external.clear()
        finally:
            _running = outer
            self.processing = False

    def clear(self) -> None:
        self.internal.clear()
        self.external.clear()

    def _event(self, event: str) -> Any:
        known = self.table.events.get(event)
        return known if known is not None else BoundEvent(id=event, name=event, _sm=self.sm)

    def step(self, event: str, kwargs: dict[str, Any], external: bool) -> None:
        table = self.table
        receivers = self.receivers
        if getattr(self.model, self.field) is not self.raw:
            self.raw = getattr(self.model, self.field)
            self.key = tuple(self.sm.configuration_values)
            self.regions = table.regions(self.key)
        base = dict(kwargs)
        base["machine"] = self.sm
        base["model"] = self.model
        base["event"] = table.events.get(event, event)
        enabled = []
        for candidates in self.regions:
            for candidate in candidates.get(event, ()):
                guard = candidate.guard
                if guard is None:
                    enabled.append(candidate.transition)
                    break
                if candidate.context:
                    transition = candidate.transition
                    kw = {**base, "transition": transition, "state": transition.source,
                          "source": transition.source, "target": transition.target}
                else:
                    kw = base
                if guard(receivers, kw):
                    enabled.append(candidate.transition)
                    break
        if not enabled:
            if external and not table.allow_unmatched:
                raise TransitionNotAllowed(self._event(event), self.sm.configuration)
            return
        plan_key = (self.key, event, *enabled)
        plan = table.plans.get(plan_key)
        if plan is None:
            plan = table.plans[plan_key] = table.plan(self.key, event, tuple(enabled))
        previous = self.raw
        try:
            self._run(plan.main, base)
        except BaseException:
            setattr(self.model, self.field, previous)
            self.config._invalidate()
            if external:
                self.clear()
            raise
        self.key = plan.key
        self.regions = plan.regions
        if plan.root_final is not None:
            self.root_final = plan.root_final
        self.raw = getattr(self.model, self.field)
        if plan.after:
            try:
                self._run(plan.after, base)
            except BaseException:
                if external:
                    self.clear()
                raise

    def _run(self, ops: tuple[Op, ...], base: dict[str, Any]) -> None:
        receivers = self.receivers
        for entry, calls, context, raw, stops, done in ops:
            if entry:
                setattr(self.model, self.field, raw)
                self.config._invalidate()
            if calls:
                kw = base
                if context is not None:
                    transition, state, source, target = context
                    kw = {**base, "transition": transition, "state": state, "source": source, "target": target}
                if done:
                    results = [call(receivers, kw) for call in calls]
                else:
                    for call in calls:
                        call(receivers, kw)
            if done:
                data: dict[str, Any] = {}
                for result in (results if calls else ()):
                    if isinstance(result, dict):
                        data.update(result)
                    elif result:
                        raise UnsupportedMachine("an entry callback of a final state returned positional done data")
                for event in done:
                    self.enqueue(event, data, internal=True)
            if not entry and raw is not _KEEP:
                setattr(self.model, self.field, raw)
                self.config._invalidate()
            if stops:
                self.running = self.engine.running = False


class CompiledEngine(SyncEngine):
    """The library's engine for starting the machine; every event after that through a `Dispatch`.

    Events reach it by `LinkMachine.send`/`raise_` directly, or, sent another way (an event called
    as a method), through `put` and `processing_loop` as the library's engine would get them.
    """

    dispatch: Dispatch | None = None

    def start(self, **kwargs: Any) -> None:
        table = table_for(self.sm, type(self))
        super().start(**kwargs)  # the initial entry, by the library
        self.dispatch = Dispatch(self.sm, table, self)

    def listeners_changed(self) -> None:
        """A listener was added after the start: resolve the callbacks again, keeping the state
        of the dispatch (queues, running)."""
        if self.dispatch is not None:
            self.dispatch.table = table_for(self.sm, type(self))
            self.dispatch.receivers = (self.sm, *self.sm._listeners.values())
            self.dispatch.regions = self.dispatch.table.regions(self.dispatch.key)

    def put(self, trigger_data: Any, internal: bool = False) -> None:
        if self.dispatch is None:  # the initial transition
            super().put(trigger_data, internal)
            return
        if trigger_data.args or trigger_data.send_id is not None or trigger_data.event.delay:
            raise UnsupportedMachine("positional event arguments, send ids and delays are not compiled")
        self.dispatch.enqueue(str(trigger_data.event), trigger_data.kwargs, internal)

    def processing_loop(self) -> None:  # type: ignore[override]
        if self.dispatch is None:
            return super().processing_loop()
        self.dispatch.loop()
        return None
