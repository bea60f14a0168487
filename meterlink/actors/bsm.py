"""The BSM-WS36A actor: Modbus RTU (pymodbus's framer) and a BsmClient on one transport.

Seed 004 ch. 9.1 and 17: the meter's port runs at 19200 baud, 8 data bits, even parity, 1 stop bit
(factory settings), unit 42. Over TCP the link keeps its RTU framing, as an RS-485-to-Ethernet
converter carries it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..machines.bsm import BsmClient, BsmPlan
from ..transports import SerialSettings, open_link
from .link import LinkHooks, LinkStatus, run_link

BSM_SERIAL = SerialSettings(baudrate=19200, bytesize=8, parity="E", stopbits=1)
BSM_UNIT = 42
BSM_POLL_INTERVAL = 5.0
"""Seconds between reads of the AC meter model when none is given (`read bsm`, a service link)."""


@dataclass(frozen=True)
class BsmLink:
    port: str
    plan: BsmPlan = BsmPlan()
    serial: SerialSettings = BSM_SERIAL

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        return lambda: open_link(self.port, self.serial)


async def run_bsm(
    link: BsmLink,
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
    machine: BsmClient | None = None,
) -> None:
    """One life of the BSM actor: until the plan is done (no poll interval), or for ever.
    `machine` lets a caller keep the finished machine to read its outcome."""
    machine = machine or BsmClient(link.plan, counters=status.counters)
    await run_link(open_stream or link.opener(), machine.codec, machine, hooks, status)
