"""In-memory meters for actor tests: one fresh link per connection the actor opens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from meterlink.transports import memory_link_pair

Serve = Callable[[trio.abc.Stream], Awaitable[None]]


class Meters:
    """One fresh in-memory link per connection, each served by the next `serve` (the last repeats)."""

    def __init__(self, nursery: trio.Nursery, *serves: Serve) -> None:
        self.nursery = nursery
        self.serves = list(serves)
        self.connections = 0

    async def open(self) -> trio.abc.Stream:
        ours, theirs = memory_link_pair()
        serve = self.serves[min(self.connections, len(self.serves) - 1)]
        self.connections += 1
        self.nursery.start_soon(serve, theirs)
        return ours
