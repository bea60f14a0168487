"""Serve a simulated meter on `tcp://HOST:PORT` or a new pty, as `meterlink simulate` does.

Each TCP connection gets its own push loop, as a serial-to-Ethernet converter would hand the
meter's output to whoever is connected. The first line printed is where to connect.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from ..transports import open_pty, serve_tcp
from .p1 import P1MeterModel, push_telegrams


async def serve_p1(listen: str, interval: float, announce: Callable[[str], None]) -> None:
    if listen == "pty":
        pty = open_pty()
        announce(pty.path)
        async with pty:
            await push_telegrams(pty.stream, P1MeterModel(), interval)
        return

    async def handler(stream: trio.abc.Stream) -> None:
        async with stream:
            await push_telegrams(stream, P1MeterModel(), interval)

    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_tcp, handler, listen)
        announce(bound)
