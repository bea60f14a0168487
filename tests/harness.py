"""A hypothesis stateful harness that any link machine plugs into.

A machine plugs in with a "link under test": an object holding the machine (and its codec), a
model of what must have happened, and a `restart()` that does what the supervisor does after the
link closed. The harness draws random stimuli (valid frames, garbage, commands, ...) from a
strategy, lets deadlines pass at random points, and checks the invariants after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meterlink.machines.base import LinkMachine


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

        @rule()
        def deadline_passes(self) -> None:
            pending = self.link.machine.pending_timeout()
            if pending is not None:
                self.link.machine.send(pending[1])
                self.link.timed_out(pending[1])
                self._restart_if_closed()

        @invariant()
        def invariants_hold(self) -> None:
            timeout = self.link.machine.pending_timeout()
            assert timeout is None or timeout[0] > 0
            for check in invariants:
                check(self.link)

        def _restart_if_closed(self) -> None:
            if self.link.machine.is_terminated:
                self.link.restart()

    return Harness
