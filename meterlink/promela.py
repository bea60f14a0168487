"""Promela models of the link machines, for the SPIN model checker (`meterlink diagrams` writes them
as diagrams/*.pml; `python -m meterlink.promela` checks them all with SPIN).

A model is generated from the very class that runs, through the tables the compiled dispatch
builds from it (machines/compiled.py): the hierarchy and the parallel regions are flattened to the
configurations the machine can reach, and each (configuration, event) gets the outcomes the
library's own selection code gives it (which transitions are taken, which states left and
entered, which callbacks run, in order). In every step one event the configuration declares is
chosen nondeterministically, those the machine raises itself (`raise_`, done.state) included; an
event that no transition takes (every guard false) leaves the configuration as it is.

How a guard is exported: a name the machine's `safety` declaration lists (machines/safety.py)
becomes the Promela expression given there; every other name is a free choice, one value per
step shared by all transitions that read it. The outcomes of a step are then every one some
choice of the free names gives, each under the condition on the declared names that gives it
(none when it does not depend on them: several branches open at once, `if :: c -> ... :: c -> ...
fi`). A callback runs the Promela statements the declaration maps it to, or nothing (it is named
in a comment).

The property is asserted after every step. Besides it every model is checked for a stuck machine:
no configuration that is not final may accept no event (asserted after every step, so that a
modeled restart cannot hide it, and pan's invalid end states).
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .machines import all_machines, callback_names
from .machines.base import LinkMachine
from .machines.compiled import Microstep, compile_guard, guard_names
from .machines.safety import Safety


class ToolMissing(Exception):
    """spin or a C compiler is not installed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event does in one configuration, for one set of guard values."""

    source: int
    event: str
    condition: str
    """Promela: when the declared guard data give this outcome ('true': whatever they are)."""
    transitions: tuple[str, ...]
    """The transitions taken (`source -> target`), empty when the event is refused."""
    actions: tuple[str, ...]
    """Callbacks run, in order: before, exits, on, entries, after."""
    target: int


@dataclass(frozen=True, slots=True)
class Flat:
    """A machine flattened to its reachable configurations."""

    machine: type[LinkMachine]
    configurations: tuple[tuple[str, ...], ...]
    """Each configuration's state ids (active states, outer first); index 0 is the initial one."""
    finals: frozenset[int]
    outcomes: tuple[Outcome, ...]
    guards: tuple[str, ...]
    """Every guard name the machine's transitions read."""

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(outcome.event for outcome in self.outcomes))

    @property
    def safety(self) -> Safety:
        return self.machine.safety or Safety(says="(only the generic checks)", holds="true")


def flatten(machine: type[LinkMachine]) -> Flat:
    """Explore the configurations of `machine` from its initial one, through its compiled tables."""
    instance = machine()
    table = instance.compiled_table()
    states = table.states
    declared = machine.safety.guards if machine.safety else {}
    start = tuple(instance.configuration_values)
    keys = [start]
    index = {start: 0}
    finals: set[int] = set()
    outcomes: list[Outcome] = []
    every_guard: dict[str, None] = {}
    position = 0
    while position < len(keys):
        key = keys[position]
        if any(states[value].final and states[value].parent is None for value in key):
            finals.add(position)
            position += 1
            continue
        regions = table.regions(key)
        for event in (event for event in table.events if any(event in region for region in regions)):
            candidates = [region.get(event, ()) for region in regions]
            names = tuple(dict.fromkeys(name for found in candidates for c in found for name in guard_names(c.transition)))
            every_guard.update(dict.fromkeys(names))
            guards = {id(c): compile_guard(c.transition, _by_name) for found in candidates for c in found}
            by_enabled: dict[tuple[Any, ...], set[tuple[bool, ...]]] = {}
            modeled = [name for name in names if name in declared]
            for values in itertools.product((False, True), repeat=len(names)):
                given = dict(zip(names, values))
                enabled = tuple(next((c.transition for c in found
                                      if guards[id(c)] is None or guards[id(c)]((), given)), None) for found in candidates)
                taken = tuple(transition for transition in enabled if transition is not None)
                by_enabled.setdefault(taken, set()).add(tuple(given[name] for name in modeled))
            for taken, cases in by_enabled.items():
                condition = _condition(modeled, cases, declared)
                if not taken:
                    outcomes.append(Outcome(position, event, condition, (), (), position))
                    continue
                step = table.microstep(key, taken)
                target = step.configuration
                if target not in index:
                    index[target] = len(keys)
                    keys.append(target)
                outcomes.append(Outcome(position, event, condition,
                                        tuple(f"{t.source.id} -> {t.target.id}" for t in step.transitions),
                                        _actions(machine, step), index[target]))
        position += 1
    configurations = tuple(tuple(states[value].id for value in key) for key in keys)
    return Flat(machine, configurations, frozenset(finals), tuple(outcomes), tuple(every_guard))


def _by_name(name: str) -> Any:
    """A guard name read from the values given for this step."""
    return lambda receivers, given: given[name]


def _condition(modeled: Sequence[str], cases: set[tuple[bool, ...]], declared: Any) -> str:
    """Promela that holds when the declared guards' values are one of `cases`."""
    if len(cases) == 2 ** len(modeled):
        return "true"
    terms = [" && ".join(f"({declared[name]})" if value else f"!({declared[name]})" for name, value in zip(modeled, case))
             for case in sorted(cases)]
    return terms[0] if len(terms) == 1 else " || ".join(f"({term})" for term in terms)


def _actions(machine: type[LinkMachine], step: Microstep) -> tuple[str, ...]:
    """The callbacks of a microstep, in the order the library runs them."""
    names: list[str] = []
    for transition in step.transitions:
        names += callback_names(machine, transition.before)
    for info in step.exits:
        names += callback_names(machine, info.state.exit)
    for transition in step.transitions:
        names += callback_names(machine, transition.on)
    for info in step.entries:
        names += callback_names(machine, info.state.enter)
        if info.state.id in step.default_entered:
            names += [name for t in info.state.transitions if t.initial for name in callback_names(machine, t.on)]
    for transition in step.transitions:
        names += callback_names(machine, transition.after)
    return tuple(names)


# -- Promela ------------------------------------------------------------------------------------


def promela(machine: type[LinkMachine], header: str = "Generated from the machine class.") -> str:
    """The Promela model of a machine, with its property and how each guard and action is exported."""
    flat = flatten(machine)
    safety = flat.safety
    name = machine.__name__
    lines = [
        f"/* {header}",
        f"   {machine.__module__}.{machine.__qualname__}: {_first_line(machine.__doc__)}",
        "   Check: spin -a -o3 FILE && gcc -DSAFETY -o pan pan.c && ./pan  (python -m meterlink.promela)",
        "",
        f"   Property: {safety.says}",
        *(f"   Assumes: {text}" for text in safety.assumptions),
        "   Also checked: no configuration that is not final accepts no event (assert(!STUCK), and pan's invalid",
        "   end states).",
        "",
        "   Guards (a name not declared is a free choice, one value per step):",
        *(f"     {guard}: {_guard_export(safety, guard)}" for guard in flat.guards),
        "   Actions exported (the others change nothing the property reads):",
        *(f"     {action}: {code}" for action, code in safety.actions.items()),
        "   Events carrying data the property reads:",
        *(f"     {event}: {code}" for event, code in safety.events.items()),
        "*/",
        "",
        "/* Configurations: */",
        *(f"/* {i:3}: {', '.join(states)}{' (final)' if i in flat.finals else ''} */"
          for i, states in enumerate(flat.configurations)),
        "",
    ]
    for state in dict.fromkeys(s for states in flat.configurations for s in states):
        found = [i for i, states in enumerate(flat.configurations) if state in states]
        lines.append(f"#define IN_{state} ({_cfg_in(found)})")
    events = flat.events
    for number, event in enumerate(events, 1):
        lines.append(f"#define E_{event} {number}")
    for event in events:
        sources = sorted({o.source for o in flat.outcomes if o.event == event})
        lines.append(f"#define ACCEPTS_{event} ({_cfg_in(sources)})")
    # The configurations found to take no event and not final, if any: SPIN tells whether a run
    # reaches one. (Written out rather than as a disjunction of the ACCEPTS_ macros, which would be
    # compiled once for every branch of the dispatch.)
    stuck = [i for i in range(len(flat.configurations))
             if i not in flat.finals and not any(o.source == i for o in flat.outcomes)]
    lines.append(f"#define STUCK ({_cfg_in(stuck)})")
    lines += [f"#define HOLDS ({safety.holds})", "", "byte cfg = 0;", "byte ev = 0;"]
    lines += [f"{declaration};" for declaration in safety.variables]
    lines += ["", f"active proctype {name}() {{"]
    if safety.setup:
        lines.append(f"  {safety.setup.strip()};")
    lines += ["  do", "  :: atomic {", "       /* an event the configuration takes */", "       if"]
    lines += [f"       :: ACCEPTS_{event} -> ev = E_{event}" for event in events]
    lines.append("       fi;")
    hooks = [event for event in events if event in safety.events]
    if hooks:
        lines += ["       /* the data it carries */", "       if"]
        lines += [f"       :: ev == E_{event} -> {safety.events[event].strip()}" for event in hooks]
        lines += ["       :: else -> skip", "       fi;"]
    lines += ["       /* what the machine does with it */", "       if"]
    for outcome in flat.outcomes:
        taken = "; ".join(outcome.transitions) or "refused: no transition"
        statements = [f"/* {taken} */"]
        for action in outcome.actions:
            code = safety.actions.get(action)
            statements.append(f"{code.strip()} /* {action} */;" if code else f"/* {action} */")
        if outcome.target != outcome.source:
            statements.append(f"cfg = {outcome.target};")
        condition = f"cfg == {outcome.source} && ev == E_{outcome.event}"
        if outcome.condition != "true":
            condition += f" && ({outcome.condition})"
        body = "\n            ".join(statements)
        lines.append(f"       :: {condition} ->\n            {body}")
    lines += ["       fi;", f"       {_end_of_step(safety)} }}"]
    for option in safety.environment:
        condition, statements = option.split("->", 1)
        lines.append(f"  :: atomic {{ {condition.strip()} -> {statements.strip()}; {_end_of_step(safety)} }}")
    if safety.restart is not None:
        restart = f"{safety.restart.strip()}; " if safety.restart.strip() else ""
        lines.append(f"  :: atomic {{ cfg != 0 -> /* the service restarts the machine */ {restart}cfg = 0; {_end_of_step(safety)} }}")
    elif flat.finals:
        lines.append(f"  :: {_cfg_in(sorted(flat.finals))} -> break")
    lines += ["  od", "}", ""]
    return "\n".join(lines)


def _end_of_step(safety: Safety) -> str:
    after = f"{safety.after.strip()}; " if safety.after.strip() else ""
    return f"{after}ev = 0; assert(!STUCK); assert(HOLDS)"


def _cfg_in(found: Sequence[int]) -> str:
    return " || ".join(f"cfg == {i}" for i in found) or "false"


def _guard_export(safety: Safety, guard: str) -> str:
    return f"modeled: {safety.guards[guard]}" if guard in safety.guards else "free choice"


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def guard_table(machine: type[LinkMachine]) -> list[tuple[str, str]]:
    """(guard, how it is exported) for every guard name the machine reads."""
    flat = flatten(machine)
    return [(guard, _guard_export(flat.safety, guard)) for guard in flat.guards]


# -- SPIN ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What SPIN's exhaustive search found for one model."""

    machine: str
    errors: int
    states: int
    """States stored."""
    transitions: int
    depth: int
    seconds: float
    """spin -a, the C compiler and pan together."""
    report: str
    """pan's output, and the error trail replayed by spin when there is an error."""
    unreached: frozenset[int]
    """Lines of the model with a statement no run reaches (pan's `unreached` list)."""


PAN_FLAGS = ("-DSAFETY", "-DNOFAIR", "-O0", "-w")
"""Safety checks only (assertions, invalid end states); -O0 compiles in a third of the time and
these state spaces are small. (spin's -o3, no statement merging, halves pan.c: merging copies the
end of a step into every branch of the dispatch.)"""


def verify(model: str, name: str, workdir: Path) -> Verdict:
    """Run spin -a, compile pan.c and search the whole state space of the model."""
    spin, cc = shutil.which("spin"), shutil.which("gcc") or shutil.which("cc")
    if spin is None or cc is None:
        raise ToolMissing("SPIN model checking needs `spin` and a C compiler (Debian: apt-get install spin gcc)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.pml").write_text(model)
    began = time.perf_counter()
    _run([spin, "-a", "-o3", f"{name}.pml"], workdir)
    _run([cc, *PAN_FLAGS, "-o", "pan", "pan.c"], workdir)
    report = _run(["./pan", "-m100000", "-w18"], workdir, check=False)
    seconds = time.perf_counter() - began
    errors = int(_field(report, r"errors: (\d+)"))
    if errors:
        report += "\n--- trail ---\n" + _run([spin, "-t", "-p", "-g", f"{name}.pml"], workdir, check=False)
    unreached = frozenset(int(line) for line in re.findall(rf"^\s+{re.escape(name)}\.pml:(\d+), state", report, re.MULTILINE))
    return Verdict(name, errors, int(_field(report, r"(\d+) states, stored")), int(_field(report, r"(\d+) transitions")),
                   int(_field(report, r"depth reached (\d+)")), seconds, report, unreached)


def _run(command: list[str], cwd: Path, check: bool = True) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def _field(report: str, pattern: str) -> str:
    found = re.search(pattern, report)
    if found is None:
        raise RuntimeError(f"pan's report has no {pattern!r}:\n{report}")
    return found[1]


def main(argv: list[str] | None = None) -> int:
    """`python -m meterlink.promela`: check every machine's model with SPIN, one line of figures each."""
    parser = argparse.ArgumentParser(prog="python -m meterlink.promela", description=__doc__.splitlines()[0])
    parser.add_argument("machines", nargs="*", help="machine class names (default: all)")
    args = parser.parse_args(argv)
    machines = [machine for machine in all_machines() if not args.machines or machine.__name__ in args.machines]
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        for machine in machines:
            try:
                verdict = verify(promela(machine), machine.__name__, Path(scratch) / machine.__name__)
            except ToolMissing as error:
                print(f"meterlink.promela: {error}", file=sys.stderr)
                return 2
            failed = failed or verdict.errors > 0
            print(f"{verdict.machine}: {'FAILED' if verdict.errors else 'ok'}, {verdict.states} states stored, "
                  f"{verdict.transitions} transitions, depth {verdict.depth}, {verdict.seconds:.2f} s")
            if verdict.errors:
                print(verdict.report, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
