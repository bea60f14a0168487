"""The real P1 actor against the P1 simulator over in-memory links, on trio's MockClock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial

import trio
import trio.testing

from meterlink.actors.link import LinkHooks, LinkLost, LinkStatus
from meterlink.actors.p1 import P1Link, run_p1
from meterlink.simulators.p1 import EQUIPMENT_ID, P1MeterModel, push_telegrams
from meterlink.supervisor import ChildSpec, Supervisor

from links import Meters

START = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def meter_clock() -> callable:
    """A meter clock that follows trio's (mock) clock."""
    origin = trio.current_time()
    return lambda: START + timedelta(seconds=trio.current_time() - origin)


async def pushing(stream: trio.abc.Stream) -> None:
    await push_telegrams(stream, P1MeterModel(), 1.0, meter_clock())


def collector(limit: int, done: trio.Event) -> tuple[list, LinkHooks]:
    readings: list = []
    drops: list = []

    def publish(reading) -> None:
        readings.append(reading)
        if len(readings) >= limit:
            done.set()

    return readings, LinkHooks(publish=publish, dropped=drops.append)


async def test_actor_publishes_each_telegram(autojump_clock):
    done = trio.Event()
    readings, hooks = collector(5, done)
    status = LinkStatus("p1", "p1")
    async with trio.open_nursery() as nursery:
        meter = Meters(nursery, pushing)
        nursery.start_soon(partial(run_p1, P1Link("memory"), hooks, status, meter.open))
        await done.wait()
        nursery.cancel_scope.cancel()
    assert [r.meter_id for r in readings] == [EQUIPMENT_ID] * 5
    # One telegram per push interval, stamped with the time of its last byte.
    stamps = [r.received_at for r in readings]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert status.counters["telegrams"] == 5 and status.state == "hunting"


async def test_silence_for_three_push_intervals_makes_the_link_stale(autojump_clock):
    async def two_then_silent(stream: trio.abc.Stream) -> None:
        model = P1MeterModel()
        for _ in range(2):
            await stream.send_all(model.telegram(START))
        await trio.sleep_forever()

    done = trio.Event()
    readings, hooks = collector(2, done)
    status = LinkStatus("p1", "p1")
    async with trio.open_nursery() as nursery:
        meter = Meters(nursery, two_then_silent)
        nursery.start_soon(partial(run_p1, P1Link("memory", push_interval=1.0), hooks, status, meter.open))
        await done.wait()
        start = trio.current_time()
        await trio.sleep(2.9)
        assert status.state == "hunting"
        await trio.sleep(0.2)
        assert status.state == "stale"
        assert 3.0 <= trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert status.counters["stale"] == 1


async def test_peer_gone_mid_telegram_is_survived_under_the_supervisor(autojump_clock):
    """The meter dies half-way through a telegram and comes back: the actor is restarted by the
    supervisor, the half telegram is dropped and counted, readings resume."""

    async def dies_mid_telegram(stream: trio.abc.Stream) -> None:
        model = P1MeterModel()
        clock = meter_clock()
        for _ in range(2):
            await stream.send_all(model.telegram(clock()))
            await trio.sleep(1)
        telegram = model.telegram(clock())
        await stream.send_all(telegram[: len(telegram) // 2])
        await stream.aclose()

    done = trio.Event()
    readings, hooks = collector(5, done)
    status = LinkStatus("p1", "p1")
    async with trio.open_nursery() as nursery:
        meter = Meters(nursery, dies_mid_telegram, pushing)
        supervisor = Supervisor([ChildSpec("p1", partial(run_p1, P1Link("memory"), hooks, status, meter.open))])
        nursery.start_soon(supervisor.run)
        await done.wait()
        (child,) = supervisor.status()
        nursery.cancel_scope.cancel()
    assert meter.connections == 2
    assert child.restarts == 1 and LinkLost.__name__ in child.last_error
    assert status.counters["incomplete"] == 1
    assert status.counters["telegrams"] == 5 and len(readings) == 5


async def test_a_telegram_that_never_ends_is_dropped_and_the_codec_resyncs(autojump_clock):
    async def stalls_then_recovers(stream: trio.abc.Stream) -> None:
        model = P1MeterModel()
        telegram = model.telegram(START)
        await stream.send_all(telegram[:200])
        await trio.sleep(5)  # past the 2 s telegram timeout
        await stream.send_all(telegram[200:])  # the tail alone is noise: no '/'
        await stream.send_all(model.telegram(START))
        await trio.sleep_forever()

    done = trio.Event()
    readings, hooks = collector(1, done)
    status = LinkStatus("p1", "p1")
    async with trio.open_nursery() as nursery:
        meter = Meters(nursery, stalls_then_recovers)
        nursery.start_soon(partial(run_p1, P1Link("memory"), hooks, status, meter.open))
        await done.wait()
        nursery.cancel_scope.cancel()
    assert status.counters["incomplete"] == 1
    assert status.counters["noise_bytes"] > 0
    assert len(readings) == 1
