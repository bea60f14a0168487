"""In-memory links for actor tests: one fresh link per connection the actor opens, and a tap that
notes what passes."""

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


class Tap(trio.abc.Stream):
    """A stream that notes, with trio's time, what passes through it."""

    def __init__(self, inner: trio.abc.Stream, close: bool = True) -> None:
        self.inner = inner
        self.close = close
        self.sent: list[tuple[float, bytes]] = []
        self.received: list[tuple[float, bytes]] = []

    async def send_all(self, data) -> None:
        self.sent.append((trio.current_time(), bytes(data)))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        self.received.append((trio.current_time(), bytes(data)))
        return data

    async def aclose(self) -> None:
        if self.close:
            await self.inner.aclose()
