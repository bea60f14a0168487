"""The P1 link actor: a P1Framer and a P1Reader on one transport (seed 003 ch. 3.1: 115200 8N1).

Encrypted telegrams (Luxembourg Smarty, Energienetze Steiermark) are opened with the keys the
caller provides, as on the other push links; the last frame counter accepted outlives a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..machines.p1 import P1Reader
from ..machines.push import no_keys
from ..protocols.dlms.security import CipherKeys
from ..protocols.p1 import P1Framer
from ..transports import SerialSettings, open_link
from .link import LinkHooks, LinkStatus, run_push_link

P1_SERIAL = SerialSettings(baudrate=115200, bytesize=8, parity="N", stopbits=1)
DSMR22_SERIAL = SerialSettings(baudrate=9600, bytesize=7, parity="E", stopbits=1)


@dataclass(frozen=True)
class P1Link:
    """How to reach one P1 port and what to expect of it."""

    port: str
    serial: SerialSettings = P1_SERIAL
    push_interval: float = 1.0
    silence_intervals: int = 3
    legacy: bool = False

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        return lambda: open_link(self.port, self.serial)


async def run_p1(
    link: P1Link,
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    keys: Callable[[], Sequence[CipherKeys]] = no_keys,
) -> None:
    """One life of the P1 actor; the supervisor calls it again after a failure."""
    machine = P1Reader(
        keys=keys,
        push_interval=link.push_interval,
        silence_intervals=link.silence_intervals,
        legacy=link.legacy,
        counters=status.counters,
    )
    await run_push_link(open_stream or link.opener(), P1Framer(), machine, hooks, status)
