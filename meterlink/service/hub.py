"""The readings hub: latest reading per meter, a rolling window of at most 60 s, fan-out.

Seed 001 (security): no history on the adapter beyond 60 s and nothing written to disk, so the
window lives in memory only. Links publish synchronously and never wait: each subscriber has a
bounded queue, and a subscriber that stops reading loses its oldest readings (counted), never
delaying a link or the other subscribers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ..protocols.readings import Reading

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class MeterKey:
    """A meter as the hub knows it: the link it is on and the id it reports."""

    link: str
    meter_id: str | None


class Subscription:
    """One subscriber's queue; iterate it with `async for reading in subscription`."""

    def __init__(self, hub: ReadingsHub, size: int) -> None:
        self._hub = hub
        self._queue: deque[Reading] = deque(maxlen=size)
        self._ready = trio.Event()
        self.dropped = 0

    @property
    def waiting(self) -> int:
        """Readings offered and not yet received."""
        return len(self._queue)

    def offer(self, reading: Reading) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(reading)
        self._ready.set()

    async def receive(self) -> Reading:
        while not self._queue:
            await self._ready.wait()
            self._ready = trio.Event()
        return self._queue.popleft()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Reading:
        return await self.receive()

    def close(self) -> None:
        self._hub._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class ReadingsHub:
    """Where every link's readings meet every output."""

    window_seconds: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.time
    _latest: dict[MeterKey, Reading] = field(default_factory=dict)
    _windows: dict[MeterKey, deque[Reading]] = field(default_factory=dict)
    _subscribers: set[Subscription] = field(default_factory=set)

    def publish(self, reading: Reading) -> None:
        """Called by a link for each decoded reading; never blocks."""
        key = MeterKey(reading.link, reading.meter_id)
        self._latest[key] = reading
        self._windows.setdefault(key, deque()).append(reading)
        self._expire(self._windows[key])
        for subscriber in list(self._subscribers):
            subscriber.offer(reading)

    def subscribe(self, size: int = 256) -> Subscription:
        subscription = Subscription(self, size)
        self._subscribers.add(subscription)
        return subscription

    def meters(self) -> list[MeterKey]:
        return sorted(self._latest, key=lambda key: (key.link, key.meter_id or ""))

    def latest(self, key: MeterKey) -> Reading | None:
        return self._latest.get(key)

    def window(self, key: MeterKey) -> list[Reading]:
        """The readings of one meter received in the last `window_seconds`, oldest first."""
        readings = self._windows.get(key)
        if readings is None:
            return []
        self._expire(readings)
        return list(readings)

    def _expire(self, readings: deque[Reading]) -> None:
        horizon = self.clock() - self.window_seconds
        while readings and (readings[0].received_at or 0.0) < horizon:
            readings.popleft()
