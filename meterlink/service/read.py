"""`meterlink read LINK`: be the adapter on one link and print what it reads.

The link runs under a supervisor exactly as in the service, so a peer that goes away and comes
back is survived (the half telegram is dropped and counted, readings resume). Only the very first
open is different: a port that cannot be opened at all is a usage error, not something to retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

from ..actors.link import LinkHooks, LinkLost, LinkStatus
from ..machines.base import Dropped
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


async def read_one_link(
    kind: str,
    opener: Opener,
    run_link: RunLink,
    count: int | None,
    on_reading: Callable[[Reading], None],
    on_warning: Callable[[str], None],
) -> int:
    """Read until `count` readings were printed (or forever); the exit code of `meterlink read`."""
    status = LinkStatus(name=kind, kind=kind)
    failures = 0
    printed = 0
    done = trio.Event()

    def publish(reading: Reading) -> None:
        nonlocal printed
        if count is not None and printed >= count:
            return
        on_reading(reading)
        printed += 1
        if count is not None and printed >= count:
            done.set()

    def dropped(drop: Dropped) -> None:
        nonlocal failures
        failures += 1
        on_warning(f"telegram dropped ({drop.cause}): {drop.detail}")

    hooks = LinkHooks(publish=publish, dropped=dropped)
    first_then_new = reopen_after_first(await opener(), opener)
    supervisor = Supervisor([ChildSpec(kind, partial(run_link, hooks, status, first_then_new))], name="read")
    gave_up = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_run_until_escalation, supervisor, done)
            await done.wait()
            nursery.cancel_scope.cancel()
    except* IntensityExceeded as group:
        on_warning(f"giving up: {group.exceptions[0]}")
        gave_up = True
    return EXIT_FAILED if failures or gave_up else EXIT_OK


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
