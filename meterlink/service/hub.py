"""The readings hub: latest reading per meter, a rolling window of at most 60 s, fan-out.

Seed 001 (security): no history on the adapter beyond 60 s and nothing written to disk, so the
window lives in memory only. Links publish synchronously and never wait: each subscriber has a
bounded queue, and a subscriber that stops reading loses its oldest readings (counted), never
delaying a link or the other subscribers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import trio

from ..protocols.readings import Reading

WINDOW_SECONDS = 60.0
DEFAULT_MAX_METERS = 4
"""Meters kept per link unless its `max_meters` says otherwise."""


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
    """Where every link's readings meet every output.

    Every answer comes from the window: a meter silent for longer than `window_seconds` is gone
    from `meters()` and `latest()` alike, and its readings are released at the next publish. A link
    keeps at most its `max_meters`: a new meter id beyond that makes the hub forget the link's
    meter heard least recently, so a link whose id changes with every telegram cannot fill memory.
    """

    window_seconds: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.time
    max_meters: Mapping[str, int] = field(default_factory=dict)
    """Meters kept per link name; DEFAULT_MAX_METERS for a link not in it."""
    forgotten: Callable[[MeterKey], None] = lambda key: None
    """Told of each meter forgotten to make room for a new one on its link."""
    _windows: dict[MeterKey, deque[Reading]] = field(default_factory=dict)
    """Per meter, oldest first; the dict itself is ordered by when a meter was last heard."""
    _arrivals: deque[Reading] = field(default_factory=deque)
    """Every reading in the windows, in the order published: expiry looks only at its oldest end."""
    _subscribers: set[Subscription] = field(default_factory=set)

    def publish(self, reading: Reading) -> None:
        """Called by a link for each decoded reading; never blocks."""
        self._expire_all()
        key = MeterKey(reading.link, reading.meter_id)
        readings = self._windows.pop(key, None)
        if readings is None:
            readings = deque()
            self._make_room(key.link)
        readings.append(reading)
        self._windows[key] = readings
        self._arrivals.append(reading)
        for subscriber in list(self._subscribers):
            subscriber.offer(reading)

    def subscribe(self, size: int = 256) -> Subscription:
        subscription = Subscription(self, size)
        self._subscribers.add(subscription)
        return subscription

    def meters(self) -> list[MeterKey]:
        """The meters heard within the window, by link and id."""
        self._expire_all()
        return sorted(self._windows, key=lambda key: (key.link, key.meter_id or ""))

    def latest(self, key: MeterKey) -> Reading | None:
        """The meter's last reading, unless it is older than the window."""
        self._expire_all()
        readings = self._windows.get(key)
        return readings[-1] if readings else None

    def window(self, key: MeterKey) -> list[Reading]:
        """The readings of one meter received in the last `window_seconds`, oldest first."""
        self._expire_all()
        return list(self._windows.get(key, ()))

    def _make_room(self, link: str) -> None:
        """Forget the link's least recently heard meters until one more fits."""
        on_link = [key for key in self._windows if key.link == link]
        excess = len(on_link) + 1 - self.max_meters.get(link, DEFAULT_MAX_METERS)
        for key in on_link[:max(excess, 0)]:
            del self._windows[key]
            self.forgotten(key)

    def _expire_all(self) -> None:
        """Drop what is older than the window, at a cost of the readings dropped, not of the meters
        kept (a gateway with 1,000 links publishes 1,000 readings a second).

        Readings are published in the order they were received, give or take a task switch, so
        the oldest published are the oldest received; one received a moment before the reading
        published ahead of it goes when that one does.
        """
        horizon = self.clock() - self.window_seconds
        arrivals = self._arrivals
        while arrivals and (arrivals[0].received_at or 0.0) < horizon:
            oldest = arrivals.popleft()
            key = MeterKey(oldest.link, oldest.meter_id)
            readings = self._windows.get(key)
            if readings is None:
                continue  # forgotten to make room for another meter
            while readings and (readings[0].received_at or 0.0) < horizon:
                readings.popleft()
            if not readings:
                del self._windows[key]
