"""The supervisor's pure parts: backoff delays, policy validation and exit codes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.supervisor import Backoff, Intensity, IntensityExceeded, exit_code_for


def test_backoff_without_jitter_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(jitter=0)
    rng = random.Random(0)
    assert [backoff.delay(n, rng) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_backoff_defaults() -> None:
    assert Backoff() == Backoff(initial=0.5, factor=2.0, maximum=30.0, jitter=0.2)
    assert Intensity() == Intensity(max_restarts=10, period=60.0)


def test_backoff_jitter_is_drawn_from_the_given_rng() -> None:
    backoff = Backoff()
    draws = random.Random(7)
    expected = [min(0.5 * 2**n, 30) * draws.uniform(0.8, 1.2) for n in range(8)]
    rng = random.Random(7)
    assert [backoff.delay(n, rng) for n in range(8)] == expected


@given(attempt=st.integers(min_value=0, max_value=100_000), seed=st.integers())
def test_backoff_jitter_stays_within_twenty_percent(attempt: int, seed: int) -> None:
    base = 30.0 if attempt >= 6 else 0.5 * 2**attempt
    delay = Backoff().delay(attempt, random.Random(seed))
    assert base * 0.8 - 1e-9 <= delay <= base * 1.2 + 1e-9  # the tolerance is float rounding only


def test_backoff_jitter_spreads_over_the_whole_band() -> None:
    rng = random.Random(1)
    delays = [Backoff(initial=10, maximum=10).delay(0, rng) for _ in range(2000)]
    assert min(delays) < 8.1 and max(delays) > 11.9


def test_backoff_survives_an_attempt_count_beyond_float_range() -> None:
    assert Backoff(jitter=0).delay(5000, random.Random(0)) == 30


@pytest.mark.parametrize("kwargs", [
    {"initial": -1}, {"initial": 40, "maximum": 30}, {"factor": 0.5}, {"jitter": -0.1}, {"jitter": 1.5},
])
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@pytest.mark.parametrize("kwargs", [{"max_restarts": -1}, {"period": 0}])
def test_intensity_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Intensity(**kwargs)


def test_intensity_exceeded_names_supervisor_child_and_last_error() -> None:
    exc = IntensityExceeded("links", "p1", "TransportError: cannot connect")
    assert (exc.supervisor, exc.child, exc.last_error) == ("links", "p1", "TransportError: cannot connect")
    assert "'links'" in str(exc) and "'p1'" in str(exc) and "TransportError: cannot connect" in str(exc)


ESCALATION = IntensityExceeded("root", "links", "IntensityExceeded: ...")


@pytest.mark.parametrize("exc, code", [
    (ESCALATION, 1),
    (ExceptionGroup("service", [ESCALATION]), 1),
    (ExceptionGroup("outer", [ExceptionGroup("service", [ESCALATION])]), 1),
    (BaseExceptionGroup("both", [KeyboardInterrupt(), ESCALATION]), 1),
    (RuntimeError("a bug"), 1),
    (KeyboardInterrupt(), 130),
    (BaseExceptionGroup("service", [KeyboardInterrupt()]), 130),
])
def test_exit_code_for(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code
