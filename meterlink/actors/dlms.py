"""The DLMS/COSEM client actor: an HdlcFramer (or WrapperFramer) and a DlmsClient on one transport.

Seed 002 ch. 2.6: the meter's port runs at 9600 baud, 8 data bits, no parity, 1 stop bit; over TCP
the link keeps its HDLC framing (a serial-to-Ethernet converter, or Kamstrup's IP module on port
1025), or uses the IEC 62056-47 wrapper (the DLMS standard port 4059).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..machines.dlms import Association, DlmsClient, Framing
from ..protocols.dlms.objects import AttributeRef
from ..protocols.hdlc import HdlcFramer
from ..protocols.wrapper import WrapperFramer
from ..transports import SerialSettings, open_link
from .link import Codec, LinkHooks, LinkStatus, run_link

DLMS_SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1)


@dataclass(frozen=True)
class DlmsLink:
    """How to reach one meter and what to read from it: once (`poll_interval` None) or every interval."""

    port: str
    association: Association = Association()
    reads: tuple[AttributeRef, ...] = ()
    poll_interval: float | None = None
    serial: SerialSettings = DLMS_SERIAL
    inactivity_timeout: float = 20.0

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        return lambda: open_link(self.port, self.serial)

    def codec(self) -> Codec:
        return HdlcFramer() if self.association.framing is Framing.HDLC else WrapperFramer()


async def run_dlms(
    link: DlmsLink,
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
) -> None:
    """One life of the DLMS actor: until its one session ends (no `poll_interval`), or for ever."""
    machine = DlmsClient(link.association, link.reads, link.poll_interval,
                         inactivity_timeout=link.inactivity_timeout, counters=status.counters)
    await run_link(open_stream or link.opener(), link.codec(), machine, hooks, status)
