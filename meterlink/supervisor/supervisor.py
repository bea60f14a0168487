"""The supervisor: runs children in a trio nursery and restarts them as their policy says.

All decisions are taken by one loop (`Supervisor._supervise`). Each run of a child is a task
that only reports how it ended; restarts wait out their backoff as deadlines of that loop, so
a child waiting to be restarted never blocks the handling of the others.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import trio

from .policy import Backoff, ChildSpec, Intensity, Restart, Strategy

log = logging.getLogger("meterlink.supervisor")


class ChildState(enum.Enum):
    RUNNING = "running"
    BACKOFF = "backoff"  # waiting to be restarted
    STOPPED = "stopped"  # ended normally, or stopped by its supervisor, and not restarted
    FAILED = "failed"  # ended by a failure and not restarted


@dataclass(frozen=True)
class ChildStatus:
    id: str
    state: ChildState
    restarts: int
    last_error: str | None  # "ExceptionType: message"
    last_error_at: float | None  # the supervisor's wallclock, normally time.time()
    backoff: float | None  # the delay being waited out while in BACKOFF, else None
    children: tuple[ChildStatus, ...] = ()  # the children of a nested supervisor


class IntensityExceeded(Exception):
    """A supervisor restarted its children more often than its `Intensity` allows, and gave up."""

    def __init__(self, supervisor: str, child: str, last_error: str | None) -> None:
        super().__init__(supervisor, child, last_error)
        self.supervisor = supervisor
        self.child = child
        self.last_error = last_error

    def __str__(self) -> str:
        return (f"supervisor {self.supervisor!r} gave up after too many restarts; "
                f"child {self.child!r}, last error: {self.last_error or 'none'}")


def exit_code_for(exc: BaseException) -> int:
    """Process exit status for the exception that ended the service.

    130 when it consists only of KeyboardInterrupt (Ctrl-C), else 1: an `IntensityExceeded` from the
    root supervisor, bare or inside an exception group, is a failure that systemd answers by
    restarting the process.
    """
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(KeyboardInterrupt)
        interrupted = rest is None
    else:
        interrupted = isinstance(exc, KeyboardInterrupt)
    return 130 if interrupted else 1


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    state: ChildState = ChildState.STOPPED
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    backoff: float | None = None  # the latest delay; status() shows it only in BACKOFF
    attempt: int = 0  # restarts since this child last ran stably; picks the backoff delay
    started_at: float = 0.0  # trio time of the latest start
    scope: trio.CancelScope | None = None  # set from a start until the loop has handled its end


class _Exit(NamedTuple):
    child: _Child
    scope: trio.CancelScope
    error: Exception | None


@dataclass(eq=False)
class _Restart:
    members: list[_Child]  # in start order
    at: float  # trio time when the backoff is over

    def waiting_for_exits(self) -> bool:
        return any(member.scope is not None for member in self.members)


class Supervisor:
    """Runs `children` and restarts them per their `Restart`, the `Strategy`, `Backoff` and `Intensity`."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        name: str = "root",
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: Intensity = Intensity(),
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        ids = [spec.id for spec in children]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child ids {duplicates}")
        self.name = name
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self._wallclock = wallclock
        self._children = [_Child(spec) for spec in children]
        self._pending: list[_Restart] = []
        self._restart_times: deque[float] = deque()
        self._running = False

    async def run(self) -> None:
        """Run the children until none needs restarting; raise `IntensityExceeded` on giving up.

        Cancelling this cancels every child. Exceptions that are not `Exception` (KeyboardInterrupt)
        propagate out of a child's run and end the supervisor, as they would without it.
        """
        if self._running:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        self._running = True
        # Each run starts afresh, as a restarted OTP supervisor does; the counters in status() stay.
        self._pending.clear()
        self._restart_times.clear()
        for child in self._children:
            child.attempt = 0
        escalation: IntensityExceeded | None = None
        send, receive = trio.open_memory_channel[_Exit](math.inf)
        try:
            with send, receive:
                async with trio.open_nursery() as nursery:
                    escalation = await self._supervise(nursery, send, receive)
                    nursery.cancel_scope.cancel()
        finally:
            self._running = False
            for child in self._children:
                if child.state in (ChildState.RUNNING, ChildState.BACKOFF):
                    child.state = ChildState.STOPPED
        if escalation is not None:
            # Raised outside the nursery, so that a parent supervisor sees a plain failure.
            raise escalation

    def status(self) -> tuple[ChildStatus, ...]:
        """A snapshot of every child, with nested supervisors' children below theirs."""
        return tuple(_status_of(child) for child in self._children)

    def as_child(self, id: str | None = None, restart: Restart = Restart.PERMANENT) -> ChildSpec:
        """A spec that runs this supervisor as a child of another (default id: this name)."""
        return ChildSpec(self.name if id is None else id, self.run, restart)

    async def _supervise(
        self,
        nursery: trio.Nursery,
        send: trio.MemorySendChannel[_Exit],
        exits: trio.MemoryReceiveChannel[_Exit],
    ) -> IntensityExceeded | None:
        for child in self._children:
            await self._start(nursery, send, child)
        while self._pending or any(child.scope is not None for child in self._children):
            await self._start_due(nursery, send)
            with trio.move_on_at(self._next_deadline()):
                escalation = self._on_exit(await exits.receive())
                if escalation is not None:
                    return escalation
        return None

    async def _start(self, nursery: trio.Nursery, send: trio.MemorySendChannel[_Exit], child: _Child) -> None:
        await nursery.start(self._run_child, child, send, name=f"{self.name}/{child.spec.id}")

    async def _run_child(
        self,
        child: _Child,
        send: trio.MemorySendChannel[_Exit],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        scope = trio.CancelScope()
        child.scope = scope
        child.state = ChildState.RUNNING
        child.started_at = trio.current_time()
        # Nothing yields between started() and the child's first step, so nursery.start returns
        # only once the child has run up to its first checkpoint: children start in order.
        task_status.started()
        error: Exception | None = None
        try:
            with scope:
                await child.spec.start()
        except Exception as exc:
            error = exc
        send.send_nowait(_Exit(child, scope, error))

    async def _start_due(self, nursery: trio.Nursery, send: trio.MemorySendChannel[_Exit]) -> None:
        now = trio.current_time()
        due = [r for r in self._pending if r.at <= now and not r.waiting_for_exits()]
        for restart in due:
            self._pending.remove(restart)
            for member in restart.members:
                member.restarts += 1
                await self._start(nursery, send, member)

    def _next_deadline(self) -> float:
        # A restart whose members are still shutting down is woken by their exits, not its deadline.
        return min((r.at for r in self._pending if not r.waiting_for_exits()), default=math.inf)

    def _on_exit(self, ended: _Exit) -> IntensityExceeded | None:
        child, error = ended.child, ended.error
        child.scope = None
        if ended.scope.cancel_called:
            # Stopped by this supervisor, possibly after it had already ended on its own but before
            # that end was handled here: either way it is part of a restart already decided.
            return None
        if error is not None:
            child.last_error = _describe(error)
            child.last_error_at = self._wallclock()
            log.warning("%s: child %s failed: %s", self.name, child.spec.id, child.last_error)
        if not _wants_restart(child.spec.restart, failed=error is not None):
            child.state = ChildState.STOPPED if error is None else ChildState.FAILED
            return None
        now = trio.current_time()
        if self._too_many_restarts(now):
            child.state = ChildState.STOPPED if error is None else ChildState.FAILED
            log.error("%s: more than %d restarts in %g s, giving up (child %s, last error: %s)",
                      self.name, self.intensity.max_restarts, self.intensity.period,
                      child.spec.id, child.last_error)
            escalation = IntensityExceeded(self.name, child.spec.id, child.last_error)
            escalation.__cause__ = error
            return escalation
        self._schedule_restart(child, now)
        return None

    def _too_many_restarts(self, now: float) -> bool:
        times = self._restart_times
        times.append(now)
        while now - times[0] >= self.intensity.period:
            times.popleft()
        return len(times) > self.intensity.max_restarts

    def _schedule_restart(self, child: _Child, now: float) -> None:
        if now - child.started_at > self.backoff.maximum:
            child.attempt = 0  # it had been running stably: this is a fresh failure, not a crash loop
        delay = self.backoff.delay(child.attempt, self._rng)
        child.attempt += 1
        group = self._group_of(child)
        # As in OTP, a group restart stops temporary children for good and starts the others,
        # including transient ones that had already ended normally.
        members = [m for m in group if m.spec.restart is not Restart.TEMPORARY]
        for member in group:
            if member.scope is not None:
                member.scope.cancel()
            if member in members:
                member.state = ChildState.BACKOFF
                member.backoff = delay
            elif member.state is ChildState.RUNNING:
                member.state = ChildState.STOPPED
        # A child in a newer group restart leaves the older one it was waiting in.
        for restart in self._pending:
            restart.members = [m for m in restart.members if m not in members]
        self._pending = [r for r in self._pending if r.members]
        self._pending.append(_Restart(members, now + delay))
        log.info("%s: restarting %s in %.3f s", self.name, ", ".join(m.spec.id for m in members), delay)

    def _group_of(self, child: _Child) -> list[_Child]:
        if self.strategy is Strategy.ONE_FOR_ONE:
            return [child]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return list(self._children)
        return self._children[self._children.index(child):]


def _wants_restart(restart: Restart, *, failed: bool) -> bool:
    return restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and failed)


def _describe(error: BaseException) -> str:
    """"Type: message" of the innermost causes: a child that fails inside a nursery raises an
    ExceptionGroup, whose own text ("Exceptions from Trio nursery") says nothing of what went wrong."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_describe(inner) for inner in error.exceptions))
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _status_of(child: _Child) -> ChildStatus:
    # A child started by another supervisor's run (as as_child() makes it) shows that tree.
    nested = getattr(child.spec.start, "__self__", None)
    return ChildStatus(
        id=child.spec.id,
        state=child.state,
        restarts=child.restarts,
        last_error=child.last_error,
        last_error_at=child.last_error_at,
        backoff=child.backoff if child.state is ChildState.BACKOFF else None,
        children=nested.status() if isinstance(nested, Supervisor) else (),
    )
