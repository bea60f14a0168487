"""The actor loop every link runs: bytes and deadlines in, the machine's actions out.

An actor owns a transport, a codec and a machine. It is a short loop with one deadline: read the
transport, feed the codec, hand each codec event to the machine, and carry out what the machine
asks (send bytes, publish a reading under the link's name, report a dropped frame). Decisions live
in the machine.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import trio

from ..machines.base import Dropped, KeyConfirmed, LinkMachine, Noted, Publish, Resync, Send
from ..protocols.dlms.security import CipherKeys
from ..protocols.readings import Reading

log = logging.getLogger("meterlink.link")

RECEIVE_SIZE = 4096


class LinkLost(Exception):
    """The peer closed the link; the supervisor restarts the actor."""


class Codec(Protocol):
    def feed(self, data: bytes) -> list[Any]: ...

    def reset(self) -> None: ...


@dataclass
class LinkStatus:
    """What the service shows of one link; it outlives the actor, so counts survive restarts."""

    name: str
    kind: str
    state: str = "starting"
    """The machine's active states by id (`associated,quiet`), for machines and tests."""
    state_label: str = "Starting"
    """The same by the name the diagrams give it, for people."""
    counters: Counter[str] = field(default_factory=Counter)
    connected: bool = False
    last_reading_at: float | None = None
    readings: int = 0
    """Readings published."""
    drops: Counter[str] = field(default_factory=Counter)
    """Frames dropped, per cause: the part of `counters` that means something was lost."""
    last_drop: str | None = None
    last_drop_at: float | None = None
    readings_at_last_drop: int = 0
    last_frame_counter: int | None = None
    """The last DLMS frame counter accepted, so a telegram replayed after a restart is refused."""
    meters_forgotten: int = 0
    """Meters the hub forgot to keep the link within its `max_meters`."""
    last_meter_forgotten: str | None = None
    detected: str | None = None
    """kind = "auto": what detection found (setting, framing, maker), for people."""
    last_note: str | None = None
    """The last part of a frame left out while the rest was published (a P1 line that does not
    parse), with its counter: `bad_lines: line 7 (1-0:1.8.1.255) skipped: ...`."""
    last_note_at: float | None = None
    image: Any = None
    """A DLMS link's image transfer (service.image_transfer.Transfer), the running or the last one."""
    pause_polling: trio.CancelScope | None = None
    """Cancelled to hand a DLMS link's port from its polling to a new image transfer."""

    @property
    def readings_since_drop(self) -> int:
        return self.readings - self.readings_at_last_drop

    @property
    def last_drop_cleared(self) -> bool:
        """A reading was published after the last drop: what caused it has stopped (for now)."""
        return self.last_drop is not None and self.readings_since_drop > 0

    def show_state(self, machine: LinkMachine) -> None:
        self.state = machine.state_name
        self.state_label = machine.state_label

    def note_reading(self, reading: Reading) -> None:
        self.last_reading_at = reading.received_at
        self.readings += 1

    def note_forgotten(self, meter_id: str | None) -> None:
        self.meters_forgotten += 1
        self.last_meter_forgotten = meter_id

    def note_drop(self, drop: Dropped, at: float) -> None:
        self.drops[drop.cause] += 1
        self.last_drop = f"{drop.cause}: {drop.detail}"
        self.last_drop_at = at
        self.readings_at_last_drop = self.readings


def wall_time() -> float:
    """The wall clock that stamps readings and drops: `time.time`, looked up at each call rather than
    bound as a default, so that a run on trio's MockClock (tests/soak) can move it with trio's time."""
    return time.time()


@dataclass(frozen=True)
class LinkHooks:
    """Where the actor delivers what the machine produced."""

    publish: Callable[[Reading], None]
    dropped: Callable[[Dropped], None] = lambda drop: None
    key_confirmed: Callable[[CipherKeys], None] = lambda keys: None


async def run_link(
    open_stream: Callable[[], Awaitable[trio.abc.Stream]],
    codec: Codec,
    machine: LinkMachine,
    hooks: LinkHooks,
    status: LinkStatus,
    wallclock: Callable[[], float] = wall_time,
) -> None:
    """Run one link until the peer goes away (LinkLost) or the caller cancels."""
    stream = await open_stream()
    status.connected = True
    try:
        async with stream:
            await _loop(stream, codec, machine, hooks, status, wallclock)
    finally:
        status.connected = False
        status.show_state(machine)


async def _loop(
    stream: trio.abc.Stream,
    codec: Codec,
    machine: LinkMachine,
    hooks: LinkHooks,
    status: LinkStatus,
    wallclock: Callable[[], float],
) -> None:
    deadlines = Deadlines()
    while True:
        data = None
        with trio.move_on_at(deadlines.earliest(machine)):
            data = await stream.receive_some(RECEIVE_SIZE)
        if data is None:
            machine.send(deadlines.fire())
        elif not data:
            machine.send("link_lost")
        else:
            received_at = wallclock()
            for event in codec.feed(data):
                machine.handle(event, received_at)
        try:
            await _carry_out(stream, codec, machine.take_actions(), hooks, status, wallclock())
        except trio.BrokenResourceError:
            # The peer went away under our reply: the machine must still count what it loses.
            machine.send("link_lost")
            lost = [a for a in machine.take_actions() if not isinstance(a, Send)]
            await _carry_out(stream, codec, lost, hooks, status, wallclock())
            status.show_state(machine)
            raise LinkLost(f"{status.name}: the peer closed the link") from None
        status.show_state(machine)
        if data == b"":
            raise LinkLost(f"{status.name}: the peer closed the link")
        if machine.is_terminated:
            return  # the machine finished its work (a one-shot DLMS session released)


async def run_push_link(
    open_stream: Callable[[], Awaitable[trio.abc.Stream]],
    codec: Codec,
    machine: Any,
    hooks: LinkHooks,
    status: LinkStatus,
) -> None:
    """`run_link` for a push link's machine (a `PushDecoder`): the last frame counter it accepted is
    kept in `status`, which outlives the actor, so a telegram replayed after a restart is refused."""
    machine.last_frame_counter = status.last_frame_counter

    def publish(reading: Reading) -> None:
        status.last_frame_counter = machine.last_frame_counter
        hooks.publish(reading)

    await run_link(open_stream, codec, machine, LinkHooks(publish, hooks.dropped, hooks.key_confirmed), status)


class Deadlines:
    """The deadline of each active state that declares one, armed when the state is entered.

    A flat machine has at most one; a parallel one may run one per region. A deadline restarts
    when its state is entered again, and is armed afresh after it fired if the state stays.
    """

    def __init__(self) -> None:
        self._armed: dict[str, tuple[int, float, str]] = {}
        """state -> (its entry count when armed, trio time, event)"""
        self._due = ""

    def earliest(self, machine: LinkMachine) -> float:
        """The trio time of the next deadline (inf when there is none); `fire` names its event."""
        now = trio.current_time()
        armed = {}
        for timeout, seconds in machine.active_timeouts():
            entered = machine.entries[timeout.state]
            kept = self._armed.get(timeout.state)
            armed[timeout.state] = kept if kept is not None and kept[0] == entered else (entered, now + seconds, timeout.event)
        self._armed = armed
        self._due, (_, at, _) = min(armed.items(), key=lambda item: item[1][1], default=("", (0, math.inf, "")))
        return at

    def fire(self) -> str:
        """The event of the deadline that passed; that state's deadline is re-armed if it stays."""
        _, _, event = self._armed.pop(self._due)
        return event


async def _carry_out(
    stream: trio.abc.Stream, codec: Codec, actions: list[Any], hooks: LinkHooks, status: LinkStatus, now: float
) -> None:
    for action in actions:
        match action:
            case Send(data):
                await stream.send_all(data)
            case Resync():
                codec.reset()
            case Publish(reading):
                status.note_reading(reading)
                hooks.publish(replace(reading, name=status.name))
            case KeyConfirmed(keys):
                hooks.key_confirmed(keys)
            case Noted(cause, detail):
                status.last_note, status.last_note_at = f"{cause}: {detail}", now
                log.info("%s: published a frame without a part of it (%s): %s", status.name, cause, detail)
            case Dropped(cause, detail):
                status.note_drop(action, now)
                log.info("%s: dropped a frame (%s): %s", status.name, cause, detail)
                hooks.dropped(action)
