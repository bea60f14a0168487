"""The M-Bus push link actor: an MBusFramer and an MBusAdapter on one transport.

M-Bus runs at 2400 baud, 8 data bits, even parity, 1 stop bit (EN 13757-2; the Kaifa customer
interface of seed 001 ch. B.4); Netz OÖ's AMIS meters at 9600 8E1 on the optical head (their
specification of 2021-11-05, ch. 2.3), with OMS telegrams.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..machines.mbus import MBusAdapter
from ..protocols.dlms.security import CipherKeys
from ..protocols.mbus import MBusFramer
from ..transports import SerialSettings, open_link
from .link import LinkHooks, LinkStatus, run_push_link

MBUS_SERIAL = SerialSettings(baudrate=2400, bytesize=8, parity="E", stopbits=1)
AMIS_SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="E", stopbits=1)


def default_serial(payload: str) -> SerialSettings:
    """An OMS-only link is an AMIS meter's optical head (9600 8E1); otherwise M-Bus's 2400 8E1."""
    return AMIS_SERIAL if payload == "oms" else MBUS_SERIAL


@dataclass(frozen=True)
class MBusLink:
    port: str
    serial: SerialSettings = MBUS_SERIAL
    push_interval: float = 5.0
    payload: str = "auto"
    """auto (DLMS segments or OMS telegrams, told by their CI field), dlms or oms."""

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        return lambda: open_link(self.port, self.serial)


async def run_mbus(
    link: MBusLink,
    keys: Callable[[], Sequence[CipherKeys]],
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
) -> None:
    """One life of the M-Bus actor; the supervisor calls it again after a failure."""
    machine = MBusAdapter(keys=keys, push_interval=link.push_interval, counters=status.counters, payload=link.payload)
    await run_push_link(open_stream or link.opener(), MBusFramer(), machine, hooks, status)
