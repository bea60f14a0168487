"""The MEP actor: a MepClient on an OSGP meter's MEP port (seed 001 ch. B.1 interface 2: 9600 8N1,
isolated RS-232 or inverted TTL, powered from the meter's +24 V, COM_ENABLE held high). Over TCP the
link keeps the MEP framing, as a serial-to-Ethernet converter carries it.

The key is the MEP Basic Key from the key store (`meter_setkey` with the link's name), read at each
start of the actor, so a key set after a key error is used at the next restart.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..machines.base import Dropped
from ..machines.mep import MepClient, MepPlan
from ..protocols.dlms.security import CipherKeys, KeysUnavailable
from ..transports import SerialSettings, open_link
from .link import LinkHooks, LinkStatus, run_link

MEP_SERIAL = SerialSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1)
MEP_POLL_INTERVAL = 5.0


class MepSessionFailed(Exception):
    """The session ended on something a retry of the same request cannot mend (a key error, a
    refused read, a meter that stays silent for `read`): the supervisor starts it afresh."""


@dataclass(frozen=True)
class MepLink:
    """Where and how often; the key comes from the key store (or `--key`) at each start."""

    port: str
    poll_interval: float = MEP_POLL_INTERVAL
    energy_unit: int = 1
    patient: bool = True
    serial: SerialSettings = MEP_SERIAL

    def plan(self, key: bytes) -> MepPlan:
        return MepPlan(key, poll_interval=self.poll_interval, energy_unit=self.energy_unit, patient=self.patient)

    def opener(self) -> Callable[[], Awaitable[trio.abc.Stream]]:
        return lambda: open_link(self.port, self.serial)


def mep_key_of(keys: Sequence[CipherKeys]) -> bytes:
    """The key store's key for the link (a pending key of a change-over first)."""
    if not keys:
        raise KeysUnavailable("no MEP key for this link: set the meter's MEP Basic Key with meter_setkey")
    return keys[0].encryption


async def run_mep(
    link: MepLink,
    keys: Callable[[], Sequence[CipherKeys]],
    hooks: LinkHooks,
    status: LinkStatus,
    open_stream: Callable[[], Awaitable[trio.abc.Stream]] | None = None,
) -> None:
    """One life of the MEP actor: polls until the link breaks or the session fails."""
    machine = MepClient(link.plan(mep_key_of(keys())), counters=status.counters)
    await run_link(open_stream or link.opener(), machine.codec, machine, hooks, status)
    if machine.failure is not None:
        failed = Dropped("session_failed", machine.failure)
        status.note_drop(failed, time.time())
        hooks.dropped(failed)
        raise MepSessionFailed(machine.failure)
