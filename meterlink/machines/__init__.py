"""One python-statemachine machine per link; pure decisions, events in, actions out."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from statemachine.graph import iterate_states

from .base import LinkMachine


@dataclass(frozen=True, slots=True)
class TransitionKey:
    """A declared transition as auditors and the coverage check name it."""

    machine: str
    source: str
    target: str
    event: str
    cond: str
    internal: bool

    def __str__(self) -> str:
        guard = f" [{self.cond}]" if self.cond else ""
        return f"{self.machine}: {self.source} --{self.event}{guard}--> {self.target}"


def guard_text(transition: Any) -> str:
    """The guard of a transition as written in the class (`a and not b`), '' when it has none."""
    return " and ".join(str(spec) for spec in transition.cond)


def transition_keys(machine: type[LinkMachine]) -> list[TransitionKey]:
    """Every declared transition of a machine, in declaration order of states."""
    keys = []
    for state in iterate_states(machine.states):
        for transition in state.transitions:
            for event in transition.events:
                keys.append(key_of(machine.__name__, transition, str(event)))
    return keys


def key_of(machine: str, transition: Any, event: str) -> TransitionKey:
    return TransitionKey(machine, transition.source.id, transition.target.id, event, guard_text(transition), transition.internal)


def callback_names(machine: type[LinkMachine], specs: Iterable[Any]) -> tuple[str, ...]:
    """The callbacks a transition or state runs, by name.

    Naming-convention callbacks (`on_<event>`, `after_transition`, ...) count only where the
    machine defines them, and not those of LinkMachine itself: they are its bookkeeping on every
    transition and say nothing about this one.
    """
    return tuple(
        str(spec) for spec in specs
        if not spec.is_convention or (hasattr(machine, spec.func) and not hasattr(LinkMachine, spec.func))
    )


def all_machines() -> list[type[LinkMachine]]:
    """Every link machine class in meterlink.machines, sorted by name."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    found: dict[str, type[LinkMachine]] = {}
    pending = list(LinkMachine.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith(__name__ + "."):
            found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return [found[name] for name in sorted(found)]
