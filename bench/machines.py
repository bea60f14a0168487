"""Per-event cost of every link machine's dispatch: the compiled tables against python-statemachine's engine.

    .venv/bin/python bench/machines.py [--events 2000] [--rounds 5]

Each machine class runs as a subclass whose guards and actions do almost nothing (a guard answers
from a counter, an action returns), so what is timed is the dispatch: finding the enabled
transition, the exit/transition/entry callbacks' calls, the configuration updates, the queues.
The work a machine's own callbacks do is the same on both engines and is in bench/mbus_decode.py
and bench/hdlc.py. For each class a trace of events is drawn once (seeded random walk over the
events the active states accept, never into a final state), then replayed on both engines, each
on a fresh machine. Before timing, both replays must end in the same configuration after the
same number of guard and action calls. Rounds alternate the order of the engines.
"""

from __future__ import annotations

import argparse
import ast
import gc
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from statemachine import StateChart  # noqa: E402
from statemachine.callbacks import CallbackGroup  # noqa: E402
from statemachine.graph import iterate_states  # noqa: E402

from meterlink.machines import all_machines  # noqa: E402
from meterlink.machines.base import LinkMachine  # noqa: E402
from meterlink.machines.compiled import _spec_names  # noqa: E402

from report import Report, Table, add_json_option, describe, emit  # noqa: E402


def _guard(self: Any) -> bool:
    self.calls += 1
    return bool((self.calls * 2654435761) >> 9 & 1)


def _action(self: Any) -> None:
    self.calls += 1


def quiet(cls: type[LinkMachine], engine: str) -> type[LinkMachine]:
    """`cls` on `engine`, with guards that answer from a counter and actions that only count."""
    namespace: dict[str, Any] = {"engine": engine, "__module__": __name__}
    for state in iterate_states(cls.states):
        for owner in (state, *state.transitions):
            for spec in owner._specs:
                if spec.group is CallbackGroup.COND:
                    for node in ast.walk(ast.parse(spec.func, mode="eval")):
                        if isinstance(node, ast.Name):
                            namespace[node.id] = _guard
                elif not spec.is_convention or (spec.func in _spec_names(cls) and hasattr(cls, spec.func)
                                                and spec.func not in cls._protected_attrs):
                    namespace.setdefault(spec.func, _action)

    def __init__(self: Any) -> None:
        self.calls = 0
        StateChart.__init__(self)

    namespace["__init__"] = __init__
    return type(f"{cls.__name__}{engine.title()}", (cls,), namespace)


def trace(cls: type[LinkMachine], count: int) -> list[list[str]]:
    """Seeded random walks, `count` events in all, drawn on the library's engine: each event one
    that an active state (or an ancestor) declares a transition for into a state that is not final.
    A guard may still take a walk into a final state; the next walk starts on a new machine."""
    rng = random.Random(21)
    finals = {state.id for state in iterate_states(cls.states) if state.final}
    events = sorted(event.id for event in cls._events)
    walks: list[list[str]] = []
    total = 0
    while total < count:
        machine = quiet(cls, "library")()
        walk: list[str] = []
        while total < count and not machine.is_terminated:
            active = [state for state in machine.configuration]
            choices = [event for event in events
                       if any(event in t.events and t.target.id not in finals for state in active for t in state.transitions)]
            if not choices:
                break
            event = rng.choice(choices)
            try:
                machine.send(event)
            except Exception:  # the guards' outcomes enabled nothing: left out of the walk
                continue
            walk.append(event)
            total += 1
        walks.append(walk)
    return walks


def replay(cls: type[LinkMachine], walks: list[list[str]]) -> tuple[float, Any]:
    """Seconds spent in `send` over all walks, and where the machines ended. The machines are made
    first and the garbage of making them collected, outside the timing."""
    machines = [cls() for _ in walks]
    gc.collect()
    elapsed = 0.0
    for machine, walk in zip(machines, walks):
        send = machine.send
        started = time.perf_counter()
        for event in walk:
            send(event)
        elapsed += time.perf_counter() - started
    return elapsed, [(tuple(machine.configuration_values), machine.calls) for machine in machines]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per trace (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="replays per engine (default 5)")
    add_json_option(parser)
    args = parser.parse_args()
    info = describe(ROOT, ["meterlink/machines"], ("python-statemachine",))
    rows = []
    for cls in all_machines():
        events = trace(cls, args.events)
        count = sum(len(walk) for walk in events)
        engines = {"library": quiet(cls, "library"), "compiled": quiet(cls, "compiled")}
        ends = {name: replay(engine, events)[1] for name, engine in engines.items()}
        if ends["library"] != ends["compiled"]:
            raise SystemExit(f"{cls.__name__}: the engines end apart: {ends}")
        times: dict[str, list[float]] = {"library": [], "compiled": []}
        for number in range(args.rounds):
            order = list(engines) if number % 2 == 0 else list(reversed(engines))
            for name in order:
                times[name].append(replay(engines[name], events)[0] / count * 1e6)
        library, compiled = statistics.median(times["library"]), statistics.median(times["compiled"])
        rows.append([cls.__name__, f"{count} in {len(events)} walks", f"{library:.1f} ({min(times['library']):.1f})",
                     f"{compiled:.2f} ({min(times['compiled']):.2f})", f"{library / compiled:.0f}×"])
    table = Table(f"{args.rounds} rounds, the order of the engines flipped each round:",
                  ["machine", "events", "python-statemachine engine µs/event (median, best)",
                   "meterlink compiled µs/event (median, best)", "speed-up (median)"], rows, numeric=4)
    emit(Report("machines", f"Machine dispatch benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", info,
                tables=[table]), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
