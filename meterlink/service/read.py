"""`meterlink read LINK`: be the adapter on one link and print what it reads.

The link runs under a supervisor exactly as in the service, so a peer that goes away and comes
back is survived (the half telegram is dropped and counted, readings resume). Only the very first
open is different: a port that cannot be opened at all is a usage error, not something to retry.
A push link whose telegrams keep failing (a wrong key) is given up after `--max-failures` in a row,
instead of printing the same cause for ever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from ..actors.link import LinkHooks, LinkLost, LinkStatus
from ..machines.base import Dropped
from ..protocols.dlms.push import Outcome
from ..protocols.readings import Reading
from ..supervisor import ChildSpec, IntensityExceeded, Supervisor

EXIT_OK, EXIT_FAILED = 0, 1


def reopen_after_first(first: trio.abc.Stream, opener: Callable[[], Awaitable[trio.abc.Stream]]) -> Callable[[], Awaitable[trio.abc.Stream]]:
    """An opener that hands out an already opened stream once, then opens new ones."""
    pending = [first]

    async def open_stream() -> trio.abc.Stream:
        return pending.pop() if pending else await opener()

    return open_stream


Opener = Callable[[], Awaitable[trio.abc.Stream]]
RunLink = Callable[[LinkHooks, LinkStatus, Opener], Awaitable[None]]
"""One life of a link actor, given its hooks, status and how to open the link."""


TELEGRAM_FAILURES = frozenset({outcome.value for outcome in Outcome if outcome is not Outcome.DECODED}
                              | {"crc_error", "crc_missing", "session_failed"})
"""Drop causes of a whole telegram that arrived and could not be used (not decrypted, not parsed,
not mapped, or replayed): what `--max-failures` counts, since a wrong key or wrong options fail
every telegram alike. Not counted: bad frames and noise between telegrams (one damaged frame can make several),
telegrams cut short (a line or peer that went away, which the supervisor restarts), a stale link.
A polled link's session that failed (MEP: a key error, a refused read) counts as one."""


@dataclass(frozen=True)
class ReadUntil:
    """When a push `read` ends: after `count` readings (None: never), or after `max_failures`
    telegrams in a row that fail (0: never)."""

    count: int | None
    max_failures: int


@dataclass
class Progress:
    """What a push `read` printed and dropped so far, and whether it is over."""

    until: ReadUntil
    printed: int = 0
    dropped: int = 0
    failed_in_a_row: int = 0
    """Telegrams failed since the last reading."""
    gave_up: str | None = None
    """Why the read stopped short of `count`."""

    @property
    def finished(self) -> bool:
        return self.gave_up is not None or (self.until.count is not None and self.printed >= self.until.count)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.dropped or self.gave_up is not None else EXIT_OK

    def note_reading(self) -> None:
        self.printed += 1
        self.failed_in_a_row = 0

    def note_drop(self, drop: Dropped) -> None:
        self.dropped += 1
        if drop.cause not in TELEGRAM_FAILURES:
            return
        self.failed_in_a_row += 1
        if self.failed_in_a_row == self.until.max_failures:  # never for 0: a failure makes it 1 or more
            self.gave_up = f"giving up after {self.failed_in_a_row} telegrams in a row that failed: {drop.cause}: {drop.detail}"


async def read_one_link(
    kind: str,
    opener: Opener,
    run_link: RunLink,
    until: ReadUntil,
    on_reading: Callable[[Reading], None],
    on_warning: Callable[[str], None],
) -> int:
    """Read until `until` says so (or forever); the exit code of `meterlink read`."""
    progress = Progress(until)
    done = trio.Event()

    def publish(reading: Reading) -> None:
        if progress.finished:  # the rest of the actions of the telegram that ended it
            return
        on_reading(reading)
        progress.note_reading()
        if progress.finished:
            done.set()

    def dropped(drop: Dropped) -> None:
        if progress.finished:
            return
        on_warning(f"telegram dropped ({drop.cause}): {drop.detail}")
        progress.note_drop(drop)
        if progress.gave_up is not None:
            on_warning(progress.gave_up)
            done.set()

    status = LinkStatus(name=kind, kind=kind)
    first_then_new = reopen_after_first(await opener(), opener)
    run = partial(run_link, LinkHooks(publish=publish, dropped=dropped), status, first_then_new)
    supervisor = Supervisor([ChildSpec(kind, run)], name="read")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run_until_escalation, supervisor, done)
            await done.wait()
            nursery.cancel_scope.cancel()
    except* IntensityExceeded as group:
        progress.gave_up = f"giving up: {group.exceptions[0]}"
        on_warning(progress.gave_up)
    return progress.exit_code


async def _run_until_escalation(supervisor: Supervisor, done: trio.Event) -> None:
    await supervisor.run()
    done.set()


async def read_session(
    kind: str,
    opener: Opener,
    run_link: RunLink,
    expected: int,
    on_reading: Callable[[Reading], None],
    on_warning: Callable[[str], None],
) -> int:
    """One session and no restart (`meterlink read dlms`): redoing it would print twice what was read.
    Exit 0 when all `expected` readings came, else 1."""
    status = LinkStatus(name=kind, kind=kind)
    printed = 0

    def publish(reading: Reading) -> None:
        nonlocal printed
        on_reading(reading)
        printed += 1

    def dropped(drop: Dropped) -> None:
        on_warning(f"{drop.cause}: {drop.detail}")

    stream = await opener()
    try:
        await run_link(LinkHooks(publish=publish, dropped=dropped), status, reopen_after_first(stream, opener))
    except (LinkLost, trio.BrokenResourceError) as error:
        on_warning(f"the link broke off: {error}")
    return EXIT_OK if printed == expected else EXIT_FAILED
