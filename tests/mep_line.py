"""A MEP client machine and a simulated meter joined by a faulty line, on a simulated clock.

No trio and no sleeps: the loop runs the machine's declared deadlines (armed when their state is
entered, as the actor's Deadlines does) and the line's deliveries in time order. The line can lose,
repeat or corrupt any message in either direction; the meter can have alerts pending, jump its
sequence number, and fall silent for an optical session.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from meterlink.machines.base import Publish, Resync, Send
from meterlink.machines.mep import MepClient
from meterlink.protocols.readings import Reading
from meterlink.simulators.mep import ALERT_EVERY, SEGMENT, SEGMENT_GAP, MepMeter

BYTE_TIME = 11 / 9600
"""One byte at 9600 8N1."""
TURNAROUND = 0.02


@dataclass
class Fate:
    """What the line does to one message."""

    lose: bool = False
    repeat: bool = False
    corrupt_at: int | None = None


@dataclass
class Line:
    machine: MepClient
    meter: MepMeter
    now: float = 0.0
    requests: Iterator[Fate] = field(default_factory=lambda: itertools.repeat(Fate()))
    responses: Iterator[Fate] = field(default_factory=lambda: itertools.repeat(Fate()))
    optical: tuple[float, float] = (0.0, 0.0)
    """The meter hears and says nothing in [start, end)."""
    jump_at: float | None = None
    alerts: tuple[float, float] = (0.0, 0.0)
    """The meter has alert flags pending in [start, end)."""
    readings: list[Reading] = field(default_factory=list)
    energy_at_answer: list[float] = field(default_factory=list)
    """The meter's import register each time it answered a BT23 read."""
    sent: list[bytes] = field(default_factory=list)
    transcript: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Each request the meter answered, with its answer: a capture as `decode mep` reads it."""

    def __post_init__(self) -> None:
        self._queue: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        self._armed: dict[str, tuple[int, float, str]] = {}
        self._last_frame = -1.0
        self._busy_until = 0.0
        """The meter serves one request every 100 ms."""
        self._next_alert = self.alerts[0]
        self.meter.clock = lambda: self.now

    def _deliver(self, at: float, data: bytes) -> None:
        heapq.heappush(self._queue, (at, next(self._order), data))

    def _carry_out(self) -> None:
        for action in self.machine.take_actions():
            if isinstance(action, Send):
                self.sent.append(action.data)
                self._request(action.data)
            elif isinstance(action, Publish):
                self.readings.append(action.reading)
            elif isinstance(action, Resync):
                self.machine.codec.reset()

    def _mangle(self, data: bytes, fate: Fate) -> list[bytes]:
        if fate.lose:
            return []
        if fate.corrupt_at is not None:
            out = bytearray(data)
            out[fate.corrupt_at % len(out)] ^= 0x5A
            data = bytes(out)
        return [data, data] if fate.repeat else [data]

    def _request(self, data: bytes) -> None:
        arrives = self.now + len(data) * BYTE_TIME
        for message in self._mangle(data, next(self.requests)):
            if self.optical[0] <= arrives < self.optical[1]:
                continue  # the UART is the optical port's
            self._last_frame = arrives
            answer_at = max(arrives + TURNAROUND, self._busy_until)
            if self.jump_at is not None and arrives >= self.jump_at:
                self.meter.jump_sequence()
                self.jump_at = None
            saved, self.now = self.now, answer_at
            response = self.meter.answer(message)
            if response is not None and message[2:5] == bytes([0x3F, 0, 23]) and response[2] == 0:
                self.energy_at_answer.append(self.meter.import_wh)
            self.now = saved
            if response is None:
                continue
            self.transcript.append((message, response))
            self._busy_until = answer_at + 0.1
            for copy in self._mangle(response, next(self.responses)):
                at = answer_at
                for start in range(0, len(copy), SEGMENT):
                    at += len(copy[start:start + SEGMENT]) * BYTE_TIME
                    self._deliver(at, copy[start:start + SEGMENT])
                    at += SEGMENT_GAP

    def _deadline(self) -> tuple[float, str, str] | None:
        armed = {}
        for timeout, seconds in self.machine.active_timeouts():
            entered = self.machine.entries[timeout.state]
            kept = self._armed.get(timeout.state)
            armed[timeout.state] = kept if kept is not None and kept[0] == entered else (entered, self.now + seconds, timeout.event)
        self._armed = armed
        if not armed:
            return None
        state, (_, at, event) = min(armed.items(), key=lambda item: item[1][1])
        return at, state, event

    def run(self, until: float) -> None:
        self._carry_out()
        while not self.machine.is_terminated:
            deadline = self._deadline()
            candidates = []
            if deadline is not None:
                candidates.append((deadline[0], 0))
            if self._queue:
                candidates.append((self._queue[0][0], 1))
            if self._next_alert < self.alerts[1]:
                candidates.append((self._next_alert, 2))
            if not candidates:
                return
            at, kind = min(candidates)
            if at > until:
                self.now = until
                return
            self.now = at
            if kind == 0:
                assert deadline is not None
                del self._armed[deadline[1]]
                self.machine.send(deadline[2])
            elif kind == 1:
                _, _, data = heapq.heappop(self._queue)
                for event in self.machine.codec.feed(data):
                    self.machine.handle(event, self.now)
            else:
                self._next_alert += ALERT_EVERY
                if self.now - self._last_frame >= ALERT_EVERY and not self.optical[0] <= self.now < self.optical[1]:
                    self._deliver(self.now + 2 * BYTE_TIME, b"\x00\x00")
            self._carry_out()
