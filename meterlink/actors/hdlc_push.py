"""The HDLC push link actor: an HdlcFramer and an HdlcPushReader on one transport.

2400 baud, 8 data bits, even parity, 1 stop bit on M-Bus ports and most Nordic HAN ports (seed
001 ch. A); Kamstrup HAN (2400 8N1), optical interfaces (9600 8N1) and P1 ports that carry HDLC
(115200 8N1) are configured with the usual serial overrides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..machines.hdlc_push import HdlcPushReader
from ..protocols.dlms.security import CipherKeys
from ..protocols.hdlc import HdlcFramer
from ..transports import SerialSettings, open_link
from .link import LinkHooks, LinkStatus, run_push_link

HDLC_PUSH_SERIAL = SerialSettings(baudrate=2400, bytesize=8, parity="E", stopbits=1)
HDLC_PUSH_INTERVAL = 10.0
"""Seconds between notifications unless configured: Kamstrup and Kaifa's list 2 every 10 s; a
meter that pushes faster only makes the stale check later."""


@dataclass(frozen=True)
class HdlcPushLink:
    port: str
    serial: SerialSettings = HDLC_PUSH_SERIAL
    push_interval: float = HDLC_PUSH_INTERVAL

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        return lambda: open_link(self.port, self.serial)


async def run_hdlc_push(
    link: HdlcPushLink,
    keys: Callable[[], Sequence[CipherKeys]],
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
) -> None:
    """One life of the HDLC push actor; the supervisor calls it again after a failure."""
    machine = HdlcPushReader(keys=keys, push_interval=link.push_interval, counters=status.counters)
    await run_push_link(open_stream or link.opener(), HdlcFramer(), machine, hooks, status)
