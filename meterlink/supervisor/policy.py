"""What a supervisor restarts, how long it waits first, and how often it may do so."""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


class Restart(enum.Enum):
    """When a child that has ended is started again."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after a failure, not after a normal return
    TEMPORARY = "temporary"  # never


class Strategy(enum.Enum):
    """Which children a restart takes along."""

    ONE_FOR_ONE = "one_for_one"  # the child that ended
    ONE_FOR_ALL = "one_for_all"  # every child
    REST_FOR_ONE = "rest_for_one"  # the child that ended and every child after it


@dataclass(frozen=True)
class ChildSpec:
    """One child: ``start()`` runs it; returning is a normal exit, raising an `Exception` a failure."""

    id: str
    start: Callable[[], Awaitable[None]]
    restart: Restart = Restart.PERMANENT


@dataclass(frozen=True)
class Backoff:
    """Delay before a restart: ``initial * factor**attempt``, capped at `maximum`, then +-`jitter`."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.initial <= self.maximum:
            raise ValueError(f"backoff needs 0 <= initial <= maximum, got {self.initial} and {self.maximum}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before restart number `attempt` (0 for the first)."""
        try:
            base = min(self.initial * self.factor**attempt, self.maximum)
        except OverflowError:  # a child that has kept failing for days: factor**attempt left float range
            base = self.maximum
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


@dataclass(frozen=True)
class Intensity:
    """More than `max_restarts` restarts within `period` seconds and the supervisor gives up."""

    max_restarts: int = 10
    period: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must not be negative, got {self.max_restarts}")
        if self.period <= 0:
            raise ValueError(f"period must be positive, got {self.period}")
