"""The compiled dispatch against python-statemachine's own engine, for every link machine (issue 21).

Each machine class is run twice side by side, once on the library's engine and once on the compiled
dispatch (machines/compiled.py), as subclasses whose every guard, action and convention callback
(`on_enter_state`, `on_enter_ready`, ...) is a recorder. Both draw from one shared oracle, each with
its own position in it: a guard's outcome and an action's effect (nothing, count, raise an internal
event, send an external one, raise an exception) are the next oracle value, so both machines see the
same outcomes exactly as long as they call the same callbacks in the same order. A listener records
the generic conventions. After every event the two must agree on the configuration, the calls
(name, event, state, source, target, event payload) in order, counters, actions, termination, and
the exception the event raised, if any.

A seeded divergence (two guards of the compiled table swapped) must be caught.
"""

from __future__ import annotations

import ast
import functools
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statemachine import State, StateChart
from statemachine.callbacks import CallbackGroup
from statemachine.graph import iterate_states

from meterlink.machines import all_machines
from meterlink.machines.base import LinkMachine
from meterlink.machines.compiled import Candidate

class Regions(LinkMachine):
    """What the link machines do not use yet but the compiler implements: final states inside
    compound states and parallel regions (done.state events, a parallel state all of whose regions
    end), transitions on done events, entry into a nested state across levels, guards with `or`
    and `unless`, two events on one transition, enter/exit actions."""

    class work(State.Compound, name="Work"):
        class both(State.Parallel, name="Both"):
            class left(State.Compound):
                l1 = State(initial=True)
                l2 = State(final=True)
                go_left = l1.to(l2, cond="ready or not blocked") | l1.to.itself(internal=True, on="wait")
            class right(State.Compound):
                r1 = State(initial=True, enter="arm", exit="disarm")
                r2 = State(final=True)
                go_right = r1.to(r2, unless="blocked") | r1.to(r1, on="again")
        after = State("After both")
        done_state_both = both.to(after, on="joined")
        redo = after.to(both.right.r1)
        fin = State(final=True)
        finish = after.to(fin, event="finish stop")
    idle = State(initial=True)
    closed = State(final=True)
    begin = idle.to(work)
    done_state_work = work.to(idle, on="rested")
    link_lost = work.to(closed) | idle.to(closed)


MACHINES = [*all_machines(), Regions]


class Boom(Exception):
    """An action's exception, drawn from the oracle."""


class Oracle:
    """Values shared by both machines; each machine reads them in its own order."""

    def __init__(self, values: list[int]) -> None:
        self.values = values or [0]

    def next(self, machine: Any) -> int:
        value = self.values[machine._position % len(self.values)]
        machine._position += 1
        return value


def _ids(*states: Any) -> tuple[Any, ...]:
    return tuple(getattr(state, "id", None) for state in states)


class Listener:
    """Records the library's generic listener conventions."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def before_transition(self, event: Any, source: Any, target: Any) -> None:
        self.log.append(("listener before", str(event), *_ids(source, target)))

    def on_transition(self, event: Any, source: Any, target: Any, transition: Any) -> None:
        self.log.append(("listener on", str(event), *_ids(source, target, transition.source)))

    def after_transition(self, event: Any, state: Any) -> None:
        self.log.append(("listener after", str(event), *_ids(state)))

    def on_enter_state(self, state: Any, source: Any) -> None:
        self.log.append(("listener enter", *_ids(state, source)))

    def on_exit_state(self, state: Any, target: Any) -> None:
        self.log.append(("listener exit", *_ids(state, target)))


def _callback_names(cls: type[LinkMachine]) -> tuple[set[str], set[str]]:
    """(guard names, other callback names) a machine class uses, conventions it defines included."""
    guards: set[str] = set()
    actions: set[str] = set()
    for state in iterate_states(cls.states):
        for owner in (state, *state.transitions):
            for spec in owner._specs:
                if spec.group is CallbackGroup.COND:
                    guards.update(node.id for node in ast.walk(ast.parse(spec.func, mode="eval"))
                                  if isinstance(node, ast.Name))
                elif not spec.is_convention:
                    actions.add(spec.func)
                elif hasattr(cls, spec.func) and spec.func not in cls._protected_attrs:
                    actions.add(spec.func)
    return guards, actions - guards


def _guard(name: str) -> Any:
    def guard(self: Any, event: Any = None, state: Any = None, source: Any = None, target: Any = None,
              payload: Any = None) -> bool:
        self._log.append(("guard", name, str(event), *_ids(state, source, target), payload))
        return self._oracle.next(self) % 3 != 0
    guard.__name__ = name
    return guard


def _action(name: str) -> Any:
    def action(self: Any, event: Any = None, state: Any = None, source: Any = None, target: Any = None,
               payload: Any = None) -> None:
        self._log.append(("call", name, str(event), *_ids(state, source, target), payload))
        effect = self._oracle.next(self)
        if effect % 16 == 1:
            self.counters[name] += 1
            self.actions.append(name)
        elif effect % 16 in (2, 3) and self._budget > 0:
            self._budget -= 1
            self.raise_(self._event_ids[effect // 16 % len(self._event_ids)], payload=effect)
        elif effect % 16 == 4 and self._budget > 0:
            self._budget -= 1
            self.send(self._event_ids[effect // 16 % len(self._event_ids)], payload=effect)
        elif effect % 16 == 5 and self._budget > 0:
            self._budget -= 1
            raise Boom(name)
    action.__name__ = name
    return action


def stubbed(cls: type[LinkMachine], engine: str) -> type[LinkMachine]:
    """A subclass of `cls` on `engine` whose guards and callbacks are oracle-driven recorders."""
    guards, actions = _callback_names(cls)

    def __init__(self: Any, oracle: Oracle, log: list[Any]) -> None:
        self.actions = []
        self.counters = Counter()
        self.entries = Counter()
        self._oracle = oracle
        self._position = 0
        self._log = log
        self._budget = 0
        self._event_ids = sorted(event.id for event in cls._events)
        StateChart.__init__(self, listeners=[Listener(log)])

    namespace: dict[str, Any] = {"__init__": __init__, "engine": engine, "__module__": __name__}
    namespace.update({name: _guard(name) for name in guards})
    namespace.update({name: _action(name) for name in actions})
    return type(f"{cls.__name__}On{engine.title()}", (cls,), namespace)


stubbed_once = functools.cache(stubbed)
"""One stubbed class per machine and engine for the hypothesis runs (each class compiles once);
the seeded divergence makes its own."""


def _outcome(machine: Any, how: int, event: str, payload: int) -> str | None:
    machine._budget = 3
    try:
        if how == 0:
            machine.raise_(event, payload=payload)  # outside a step: sent at once
        elif how == 1 and event in machine._event_ids:
            getattr(machine, event)(payload=payload)  # through the engine's put and processing loop
        else:
            machine.send(event, payload=payload)
    except Exception as error:  # both must fail alike
        return f"{type(error).__name__}: {error}"
    return None


def differential(cls: type[LinkMachine], oracle: list[int], script: list[tuple[int, int, int]],
                 compiled_cls: type[LinkMachine] | None = None) -> str | None:
    """Run `script` ((how, event pick, payload) each) through both engines; the first difference."""
    library_log: list[Any] = []
    compiled_log: list[Any] = []
    shared = Oracle(oracle)
    library_cls, compiled_cls = stubbed_once(cls, "library"), compiled_cls or stubbed_once(cls, "compiled")
    library = compiled = None
    events = sorted(event.id for event in cls._events)
    for number, (how, pick, payload) in enumerate(script):
        if library is None or library.is_terminated:  # a final state: go on with a new pair
            library, compiled = library_cls(shared, library_log), compiled_cls(shared, compiled_log)
            assert type(library._engine).__name__ == "_Engine"
            assert type(compiled._engine).__name__ == "_CompiledEngine"
        accepted = [event for event in events if library.accepts(event)]
        choices = accepted if accepted and pick % 5 else events + ["no_such_event"]
        event = choices[pick % len(choices)]
        outcomes = _outcome(library, how, event, payload), _outcome(compiled, how, event, payload)
        where = f"{cls.__name__}, event {number} {event!r} (how {how})"
        if outcomes[0] != outcomes[1]:
            return f"{where}: outcome {outcomes[0]!r} != {outcomes[1]!r}"
        if library_log != compiled_log:
            first = next(i for i, (a, b) in enumerate(zip(library_log + [None], compiled_log + [None])) if a != b)
            return f"{where}: call {first}: {library_log[first:first + 3]} != {compiled_log[first:first + 3]}"
        for attribute in ("configuration_values", "counters", "actions", "is_terminated", "_position"):
            mine, theirs = getattr(library, attribute), getattr(compiled, attribute)
            if list(mine) != list(theirs) if attribute == "configuration_values" else mine != theirs:
                return f"{where}: {attribute} {mine!r} != {theirs!r}"
    return None


@pytest.mark.parametrize("cls", MACHINES, ids=lambda cls: cls.__name__)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oracle=st.lists(st.integers(0, 255), min_size=1, max_size=48),
       script=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 255), st.integers(0, 9)), max_size=40))
def test_compiled_dispatch_matches_the_library(cls: type[LinkMachine], oracle: list[int],
                                                script: list[tuple[int, int, int]]) -> None:
    assert differential(cls, oracle, script) is None


def test_differential_reaches_far() -> None:
    """The random runs do take transitions, call guards and actions, raise and send from
    callbacks: a sanity check that the differential test is not comparing idle machines."""
    from meterlink.machines.dlms import DlmsClient

    rng = random.Random(5)
    log: list[Any] = []
    machine = stubbed(DlmsClient, "compiled")(Oracle([rng.randrange(256) for _ in range(40)]), log)
    configurations = set()
    for _ in range(300):
        if machine.is_terminated:
            machine = stubbed(DlmsClient, "compiled")(Oracle([rng.randrange(256) for _ in range(40)]), log)
        accepted = [event.id for event in DlmsClient._events if machine.accepts(event.id) and event.id != "link_lost"]
        _outcome(machine, rng.randrange(4), accepted[rng.randrange(len(accepted))], 1)
        configurations.add(tuple(machine.configuration_values))
    kinds = Counter(entry[0] for entry in log)
    assert len(configurations) >= 8 and kinds["guard"] >= 20 and kinds["call"] >= 100, (configurations, kinds)


def test_every_machine_compiles() -> None:
    for cls in MACHINES:
        machine = stubbed(cls, "compiled")(Oracle([0]), [])
        assert type(machine._engine).__name__ == "_CompiledEngine", cls


def _random_runs(cls: type[LinkMachine], compiled_cls: type[LinkMachine], runs: int) -> list[str]:
    rng = random.Random(21)
    found = []
    for _ in range(runs):
        oracle = [rng.randrange(256) for _ in range(rng.randrange(1, 48))]
        script = [(rng.randrange(4), rng.randrange(256), rng.randrange(10)) for _ in range(rng.randrange(40))]
        difference = differential(cls, oracle, script, compiled_cls)
        if difference:
            found.append(difference)
    return found


def test_swapped_guards_in_the_compiled_table_are_caught() -> None:
    """The seeded divergence: swap the guards of the first two `end_of_telegram` candidates of
    P1Reader's `reading` state in the compiled table; the differential check must notice."""
    from meterlink.machines.p1 import P1Reader

    assert not _random_runs(P1Reader, stubbed(P1Reader, "compiled"), 30)
    broken = stubbed(P1Reader, "compiled")
    table = broken(Oracle([0]), [])._engine.dispatch.table
    first, second, *rest = table.candidates["reading"]["end_of_telegram"]
    table.candidates["reading"]["end_of_telegram"] = (
        Candidate(first.transition, second.guard, second.context),
        Candidate(second.transition, first.guard, first.context),
        *rest,
    )
    table._regions.clear()
    assert _random_runs(P1Reader, broken, 30)


def test_unsupported_features_fail_when_the_class_is_compiled() -> None:
    from statemachine import HistoryState, State

    from meterlink.machines.compiled import UnsupportedMachine

    class WithHistory(LinkMachine):
        class outer(State.Compound):
            a = State(initial=True)
            b = State()
            h = HistoryState()
            go = a.to(b)
        away = State()
        leave = outer.to(away)
        back = away.to(outer.h)

    class WithEventless(LinkMachine):
        a = State(initial=True)
        b = State()
        a.to(b, cond="ready")
        poke = b.to(a)

        def ready(self) -> bool:
            return True

    class WithExpression(LinkMachine):
        a = State(initial=True)
        b = State()
        go = a.to(b, cond="level > 3") | b.to(a)
        level = 5

    for cls in (WithHistory, WithEventless, WithExpression):
        with pytest.raises(UnsupportedMachine):
            cls()
        cls.engine = "library"
        cls()  # the library's engine takes them


def test_a_configuration_set_from_outside_is_read_again() -> None:
    """Tests put a machine in a state by setting its configuration (test_link_status.put_in);
    the next event must start from there, not from where the dispatch last left it."""
    from statemachine.orderedset import OrderedSet

    from meterlink.machines.p1 import P1Reader

    machine = P1Reader()
    assert machine.engine == "compiled"
    machine.configuration = OrderedSet([machine.stale])
    machine.send("start_of_telegram")
    assert machine.state_name == "reading"
    machine.configuration = OrderedSet([machine.hunting])
    machine.send("silence")
    assert machine.state_name == "stale"


def test_a_listener_added_later_is_called() -> None:
    from meterlink.machines.p1 import P1Reader

    log: list[Any] = []
    machine = P1Reader()
    machine.send("start_of_telegram")
    machine.add_listener(Listener(log))
    machine.send("oversized")
    assert ("listener on", "oversized", "reading", "hunting", "reading") in log
