"""Session-wide fixtures and the transition-coverage check.

Every link machine created during the session reports its transitions to one recorder. With
`--transition-coverage` (the README's test command passes it) the session fails when any declared
transition of any machine was never taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterlink.machines import TransitionKey, all_machines, base, key_of, transition_keys

DATA = Path(__file__).parent / "data"


class TransitionRecorder:
    def __init__(self) -> None:
        self.taken: set[TransitionKey] = set()

    def on_transition(self, machine: Any, event: Any, transition: Any) -> None:
        self.taken.add(key_of(type(machine).__name__, transition, str(event)))


RECORDER = TransitionRecorder()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--transition-coverage", action="store_true",
                     help="fail when a declared machine transition was never exercised")


def pytest_configure(config: pytest.Config) -> None:
    base.observers.append(RECORDER)


def missing_transitions() -> list[TransitionKey]:
    return [key for machine in all_machines() for key in transition_keys(machine) if key not in RECORDER.taken]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("--transition-coverage"):
        return
    declared = [key for machine in all_machines() for key in transition_keys(machine)]
    missing = missing_transitions()
    covered = len(declared) - len(missing)
    terminalreporter.write_line(f"transition coverage: {covered}/{len(declared)} declared transitions taken")
    for key in missing:
        terminalreporter.write_line(f"  never taken: {key}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--transition-coverage") and missing_transitions() and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture
def data_file():
    def read(name: str) -> bytes:
        return (DATA / name).read_bytes()
    return read
