"""The LED actor: feeds `machines.leds.LedMachine` what the links, their supervisor and the network
show, and puts the patterns it records on the LEDs of `[leds]` (seed 001 ch. C.8).

It looks at the service every `poll_interval` seconds, arms the machine's deadlines (the data LED's
flash, the fault LED's minute after a drop) and switches blinking LEDs itself (see ledclass.py for
why not with the kernel's timer trigger). When the service stops, every LED goes off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ..actors.link import Deadlines, LinkStatus
from ..machines.leds import LedMachine, Light, Observation, Pattern, Role
from ..supervisor import ChildState, ChildStatus
from .ledclass import LedClass
from .network import NetworkController

POLL_INTERVAL = 0.1
"""Seconds between looks at the service: a reading lights the data LED at most this late."""

NETWORK_FAULTS = {"waiting", "retrying", "unconfigured"}
"""NetworkMachine states in which the adapter's network failed: a join failed and waits to retry, or
no home network is known and the access point's window is over (only a power cycle helps)."""


def observe(links: dict[str, LinkStatus], children: Sequence[ChildStatus],
            network: NetworkController | None) -> Observation:
    """What the LEDs show of the service now."""
    faults = []
    supervised = {child.id: child.state for child in children}
    for name, status in links.items():
        if "stale" in status.state.split(","):  # a parallel machine names one state per region
            faults.append(f"{name}: stale")
        elif supervised.get(name) == ChildState.BACKOFF:
            faults.append(f"{name}: restarting")
        elif supervised.get(name) == ChildState.FAILED:
            faults.append(f"{name}: given up")
    access_point = False
    if network is not None:
        machine = network.machine
        access_point = machine.access_point_up
        if any(state.id in NETWORK_FAULTS for state in machine.configuration):
            faults.append(f"network: {machine.reason or machine.state_label}")
    return Observation(sum(status.readings for status in links.values()),
                       sum(sum(status.drops.values()) for status in links.values()), tuple(faults), access_point)


@dataclass
class _Blink:
    pattern: Pattern
    lit: bool
    due: float
    """trio time of the next switch."""


class LedActor:
    """Runs the LED machine for the LEDs named in `names` (role -> LED name; a role may be absent)."""

    def __init__(self, names: dict[Role, str], leds: LedClass, look: Callable[[], Observation],
                 machine: Callable[[], LedMachine] = LedMachine, poll_interval: float = POLL_INTERVAL) -> None:
        self.names = names
        self.leds = leds
        self.look = look
        self._new_machine = machine
        self.machine = machine()
        self.poll_interval = poll_interval
        self._blinking: dict[Role, _Blink] = {}

    async def run(self) -> None:
        """Until cancelled; then every LED goes off. A restart begins with a fresh machine."""
        self.machine = machine = self._new_machine()
        self._blinking.clear()
        deadlines = Deadlines()
        try:
            next_look = trio.current_time()
            while True:
                now = trio.current_time()
                if now >= next_look:
                    machine.observe(self.look())
                    next_look = now + self.poll_interval
                self._show(machine.take_lights(), now)
                due = deadlines.earliest(machine)
                blink = min((blink.due for blink in self._blinking.values()), default=math.inf)
                await trio.sleep_until(min(due, next_look, blink))
                now = trio.current_time()
                if due <= now:
                    machine.send(deadlines.fire())
                self._switch_blinking(now)
        finally:
            # Cancelled (the service stops) or failed: the LEDs must not go on saying it runs.
            machine.send("stop")
            self._show(machine.take_lights(), trio.current_time())

    def _show(self, lights: list[Light], now: float) -> None:
        for light in lights:
            self._blinking.pop(light.role, None)
            if light.pattern.blinking:
                self._blinking[light.role] = _Blink(light.pattern, True, now + light.pattern.on_ms / 1000)
            self._write(light.role, light.pattern.lit)

    def _switch_blinking(self, now: float) -> None:
        for role, blink in self._blinking.items():
            if blink.due <= now:
                blink.lit = not blink.lit
                blink.due = now + (blink.pattern.on_ms if blink.lit else blink.pattern.off_ms) / 1000
                self._write(role, blink.lit)

    def _write(self, role: Role, lit: bool) -> None:
        name = self.names.get(role)
        if name is not None:
            self.leds.set(name, lit)
