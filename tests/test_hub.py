"""The readings hub: latest per meter, the 60 s window, and fan-out that never blocks a link."""

from __future__ import annotations

import trio
import trio.testing

from meterlink.protocols.readings import Reading, Value
from meterlink.service.hub import MeterKey, ReadingsHub


def reading(at: float, meter: str = "M1", link: str = "p1", watts: int = 100) -> Reading:
    return Reading(meter, link, at, None, (Value("1-0:1.7.0.255", watts, "W", watts, 0, 27),))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_latest_and_window_per_meter():
    clock = Clock()
    hub = ReadingsHub(clock=clock)
    for second in range(90):
        clock.now = 1000.0 + second
        hub.publish(reading(clock.now, watts=second))
        hub.publish(reading(clock.now, meter="M2", link="mbus"))
    key = MeterKey("p1", "M1")
    assert hub.meters() == [MeterKey("mbus", "M2"), key]
    assert hub.latest(key).values[0].value == 89
    window = hub.window(key)
    # At most 60 s back: nothing older than now - 60 is kept.
    assert [r.received_at for r in window] == [1000.0 + s for s in range(29, 90)]
    clock.now += 120
    # Nothing older than 60 s is served, not even as the latest reading (seed 001).
    assert hub.window(key) == [] and hub.latest(key) is None and hub.meters() == []
    assert hub.window(MeterKey("p1", "unknown")) == []


def test_many_meters_expire_by_their_own_readings():
    """Expiry works from the oldest reading published, not by visiting every meter: a meter heard
    every few seconds keeps its last 60 s, a meter gone silent goes, a meter forgotten to make room
    stays gone, whatever order they were last heard in."""
    clock = Clock()
    hub = ReadingsHub(clock=clock, max_meters={"p1": 2})
    for second in range(100):
        clock.now = 1000.0 + second
        hub.publish(reading(clock.now, meter="EVERY", link="mbus"))
        if second % 7 == 0:
            hub.publish(reading(clock.now, meter="SEVENTH", link="mbus"))
        if second < 30:
            hub.publish(reading(clock.now, meter="EARLY", link="dlms"))
        if second in (10, 20, 25):  # a third meter on p1: A goes to make room
            hub.publish(reading(clock.now, meter={10: "A", 20: "B", 25: "C"}[second]))
    assert hub.meters() == [MeterKey("mbus", "EVERY"), MeterKey("mbus", "SEVENTH")]
    assert [r.received_at for r in hub.window(MeterKey("mbus", "EVERY"))] == [1000.0 + s for s in range(39, 100)]
    assert [r.received_at for r in hub.window(MeterKey("mbus", "SEVENTH"))] == [1000.0 + s for s in range(42, 100, 7)]
    assert hub.window(MeterKey("dlms", "EARLY")) == [] and hub.latest(MeterKey("p1", "A")) is None


async def test_a_subscriber_that_stops_reading_does_not_delay_the_others():
    hub = ReadingsHub(clock=Clock())
    stalled = hub.subscribe(size=4)
    live = hub.subscribe(size=4)
    got = []

    async def consume() -> None:
        async for item in live:
            got.append(item.values[0].value)
            if len(got) == 100:
                return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            for n in range(100):
                hub.publish(reading(1000.0, watts=n))  # synchronous: a link never waits
                await trio.testing.wait_all_tasks_blocked()
    assert got == list(range(100))
    assert stalled.dropped == 96
    assert [(await stalled.receive()).values[0].value for _ in range(4)] == [96, 97, 98, 99]


async def test_closed_subscription_gets_nothing_more():
    hub = ReadingsHub(clock=Clock())
    with hub.subscribe() as subscription:
        hub.publish(reading(1000.0))
    hub.publish(reading(1001.0))
    assert (await subscription.receive()).received_at == 1000.0
    with trio.move_on_after(0.01):
        await subscription.receive()
        raise AssertionError("a closed subscription received a reading")
