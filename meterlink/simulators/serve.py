"""Serve a simulated meter on `tcp://HOST:PORT` or a new pty, as `meterlink simulate` does.

Each TCP connection gets a meter of its own, as a serial-to-Ethernet converter would hand the
meter's line to whoever is connected. The first line printed is where to connect. `push_every` is
the loop of a meter that pushes without listening.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ..transports import open_pty, serve_tcp

Meter = Callable[[trio.abc.Stream], Awaitable[None]]


async def serve_meter(listen: str, meter: Meter, announce: Callable[[str], None]) -> None:
    """Run `meter` on a pty (listen == "pty") or on every TCP connection to `listen`."""
    if listen == "pty":
        pty = open_pty()
        announce(pty.path)
        async with pty:
            await meter(pty.stream)
        return

    async def handler(stream: trio.abc.Stream) -> None:
        async with stream:
            await meter(stream)

    async with trio.open_nursery() as nursery:
        announce(await nursery.start(serve_tcp, handler, listen))


async def push_every(stream: trio.abc.SendStream, telegram: Callable[[], bytes], interval: float) -> None:
    """Send `telegram()` every `interval` seconds until the peer goes away or we are cancelled."""
    next_push = trio.current_time()
    while True:
        try:
            await stream.send_all(telegram())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        next_push += interval
        await trio.sleep_until(next_push)
