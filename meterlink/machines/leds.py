"""Status LEDs: the power, data and fault LEDs' patterns, from the links and the network (seed 001 ch. C.8).

Seed 001 ch. C.8 asks for LEDs that show "power supply, successful decoding of telegrams, problems
with the communication connection". meterlink's three:

- power: on while the service runs; blinks slowly while the adapter's access point is up (the
  10-minute window after power-up or factory reset: the adapter can be configured now); off when
  the service stops.
- data: flashes once for each reading published (a successfully decoded telegram or poll), and is
  otherwise off; so it is dark whenever no link delivers, and never stays lit for a stale link.
- fault: on while the adapter cannot deliver readings: a configured link is stale (its meter went
  silent), restarting or given up by its supervisor, or the adapter's network failed (a join that
  failed, or no home network and no access point); blinks quickly for a minute after a frame was
  dropped (bad CRC, wrong key, truncated) while readings still flow; off otherwise.

The machine is pure: the LED actor (service/leds.py) feeds it `Observation`s of the links, their
supervisor and the network, and realises the `Light` actions it records on the LEDs named in
`[leds]`. Each region's states name the pattern its LED shows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

from statemachine import State

from .base import LinkMachine, StateTimeout

FLASH_SECONDS = 0.2
"""How long the data LED lights for one reading: visible, and dark again well before the next
telegram of the fastest link (P1, one a second)."""
DROP_HOLD = 60.0
"""The fault LED blinks this long after the last dropped frame."""


class Role(Enum):
    """The LEDs of seed 001 ch. C.8, as `[leds]` names them."""

    POWER = "power"
    DATA = "data"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Pattern:
    """Steady on or off, or blinking: `on_ms` lit then `off_ms` dark, over and over."""

    lit: bool
    on_ms: int = 0
    off_ms: int = 0

    @property
    def blinking(self) -> bool:
        return self.on_ms > 0 and self.off_ms > 0


OFF = Pattern(False)
ON = Pattern(True)
BLINK_SLOW = Pattern(True, 1000, 1000)
"""Power while the access point is up: calm, so it reads as "waiting for you", not as an alarm."""
BLINK_FAST = Pattern(True, 150, 150)
"""Fault while frames are dropped."""


@dataclass(frozen=True, slots=True)
class Light:
    """Show `pattern` on the LED of `role`."""

    role: Role
    pattern: Pattern


@dataclass(frozen=True, slots=True)
class Observation:
    """What the LED actor sees of the service at one moment."""

    readings: int
    """Readings published so far, all links together."""
    drops: int
    """Frames dropped so far, all links together."""
    faults: tuple[str, ...]
    """Why readings cannot be delivered, one line each ("p1: stale"); empty when nothing is wrong."""
    access_point: bool
    """The adapter's access point is up."""


class LedMachine(LinkMachine):
    """The patterns of the power, data and fault LEDs, from what the links and the network do."""

    class running(State.Parallel, name="Service running"):
        class power(State.Compound, name="Power LED"):
            steady = State("On: the service runs", initial=True, enter="power_on")
            access_point = State("Blinking slowly: access point up, adapter can be configured", enter="power_blink")

            access_point_opened = steady.to(access_point)
            access_point_closed = access_point.to(steady)

        class data(State.Compound, name="Data LED"):
            dark = State("Off: waiting for the next reading", initial=True, enter="data_off")
            flash = State("On: a reading was just published", enter="data_on")

            reading = dark.to(flash) | flash.to.itself(internal=True)
            flash_over = flash.to(dark)

        class fault(State.Compound, name="Fault LED"):
            clear = State("Off: every link delivers", initial=True, enter="fault_off")
            dropping = State("Blinking fast: frames dropped in the last minute", enter="fault_blink")
            down = State("On: a link is stale, restarting or given up, or the network failed", enter="fault_on")

            telegram_dropped = (
                clear.to(dropping)
                | dropping.to.itself()  # the minute starts again
                | down.to.itself(internal=True)
            )
            drops_stopped = dropping.to(clear)
            fault_found = clear.to(down) | dropping.to(down)
            fault_cleared = down.to(clear)

    stopped = State("Service stopped: all LEDs off", final=True, enter="all_off")

    stop = running.to(stopped)

    timeouts = (
        StateTimeout("flash", after="flash_seconds", event="flash_over"),
        StateTimeout("dropping", after="drop_hold", event="drops_stopped"),
    )

    def __init__(self, flash_seconds: float = FLASH_SECONDS, drop_hold: float = DROP_HOLD,
                 counters: Counter[str] | None = None) -> None:
        self.flash_seconds = flash_seconds
        self.drop_hold = drop_hold
        self.faults: tuple[str, ...] = ()
        self._seen: tuple[int, int] | None = None
        """(readings, drops) of the last observation; None before the first, which only sets them."""
        self.lights: list[Light] = []
        super().__init__(counters)

    # --- what the actor feeds --------------------------------------------------------------------

    def observe(self, seen: Observation) -> None:
        """One look at the service: each region takes the events that change what its LED shows."""
        if self.is_terminated:
            return
        self._send_if_taken("access_point_opened" if seen.access_point else "access_point_closed")
        if self._seen is not None:
            readings, drops = self._seen
            if seen.readings > readings:
                self.send("reading")
            if seen.drops > drops:
                self.send("telegram_dropped")
        self._seen = (seen.readings, seen.drops)
        self.faults = seen.faults
        self._send_if_taken("fault_found" if seen.faults else "fault_cleared")

    def _send_if_taken(self, event: str) -> None:
        # A level (the access point is up, a fault exists) becomes an event only where it changes a state.
        if self.accepts(event):
            self.send(event)

    # --- actions ---------------------------------------------------------------------------------

    def take_lights(self) -> list[Light]:
        """The LED changes recorded since the last call, in order."""
        lights, self.lights = self.lights, []
        return lights

    def power_on(self) -> None:
        self.lights.append(Light(Role.POWER, ON))

    def power_blink(self) -> None:
        self.lights.append(Light(Role.POWER, BLINK_SLOW))

    def data_off(self) -> None:
        self.lights.append(Light(Role.DATA, OFF))

    def data_on(self) -> None:
        self.lights.append(Light(Role.DATA, ON))

    def fault_off(self) -> None:
        self.lights.append(Light(Role.FAULT, OFF))

    def fault_blink(self) -> None:
        self.lights.append(Light(Role.FAULT, BLINK_FAST))

    def fault_on(self) -> None:
        self.lights.append(Light(Role.FAULT, ON))

    def all_off(self) -> None:
        self.lights += [Light(role, OFF) for role in Role]

    # --- what the LEDs show ----------------------------------------------------------------------

    def patterns(self) -> dict[Role, Pattern]:
        """The pattern each LED shows in the current states."""
        if self.stopped.is_active:
            return {role: OFF for role in Role}
        return {
            Role.POWER: BLINK_SLOW if self.access_point.is_active else ON,
            Role.DATA: ON if self.flash.is_active else OFF,
            Role.FAULT: ON if self.down.is_active else BLINK_FAST if self.dropping.is_active else OFF,
        }
