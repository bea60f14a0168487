"""The wireless M-Bus actor: a receiver's framer and a WMBusReceiver on one transport.

The sticks' serial settings are their documented defaults: iM871A 57600 8N1, AMB8465 9600 8N1,
CUL 38400 8N1; rtl_wmbus is a command whose output is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..machines.wmbus import WMBusReceiver, no_meter_keys
from ..protocols.dlms.security import CipherKeys
from ..protocols.wmbus_receivers import SETUP, Receiver, framer
from ..transports import SerialSettings, open_command, open_link
from .link import LinkHooks, LinkStatus, run_link

RECEIVER_SERIAL = {
    Receiver.IM871A: SerialSettings(baudrate=57600, bytesize=8, parity="N", stopbits=1),
    Receiver.AMB8465: SerialSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
    Receiver.CUL: SerialSettings(baudrate=38400, bytesize=8, parity="N", stopbits=1),
}


@dataclass(frozen=True)
class WMBusLink:
    receiver: Receiver
    port: str | None = None
    """A serial device or tcp://HOST:PORT; None for rtl_wmbus."""
    command: str | None = None
    """rtl_wmbus: the command whose output is read (e.g. "rtl_sdr -f 868.95M -s 1600000 - | rtl_wmbus")."""
    serial: SerialSettings | None = None
    meter_ids: tuple[str, ...] = ()
    push_interval: float = 120.0

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        if self.command is not None:
            command = self.command
            return lambda: open_command(command)
        assert self.port is not None
        port, serial = self.port, self.serial or RECEIVER_SERIAL.get(self.receiver, SerialSettings())
        return lambda: open_link(port, serial)


async def run_wmbus(
    link: WMBusLink,
    keys: Callable[[str], Sequence[CipherKeys]],
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
) -> None:
    """One life of the receiver's actor; the supervisor calls it again after a failure."""
    machine = WMBusReceiver(SETUP[link.receiver], keys or no_meter_keys, link.meter_ids, link.push_interval,
                            counters=status.counters)
    await run_link(open_stream or link.opener(), framer(link.receiver), machine, hooks, status)
