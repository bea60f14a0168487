"""The real M-Bus actor (run_mbus) against the simulated Kaifa meter over in-memory links, on trio's
MockClock: handshake, push interval, fallback to search after 10 missed acks, one-way meters,
stale links, corrupt input counted per cause, link loss under the supervisor."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from meterlink.actors.link import Codec, LinkHooks, LinkLost, LinkStatus
from meterlink.actors.mbus import MBusLink, run_mbus
from meterlink.machines.base import LinkMachine, Publish
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.mbus import MBusFramer, ShortFrame, encode_long, encode_short
from meterlink.simulators.kaifa import DEMO_KEY, METER_NUMBER, KaifaMeterModel, push_one_way, run_kaifa_meter
from meterlink.supervisor import ChildSpec, Supervisor
from meterlink.transports import memory_link_pair

from links import Meters, Tap

DATA = Path(__file__).parent / "data"
START = datetime(2026, 11, 23, 12, 0)
SEARCH = encode_short(0x40, 0xF0)
KEYS = [CipherKeys(DEMO_KEY)]
WRONG_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
EPSILON = 1e-6


def meter_clock():
    origin = trio.current_time()
    return lambda: START + timedelta(seconds=trio.current_time() - origin)


class MeterTap(Tap):
    def kinds(self) -> list[tuple[float, str]]:
        return [(at, "search" if data == SEARCH else "data") for at, data in self.sent]

    def acks(self) -> int:
        return b"".join(data for _, data in self.received).count(b"\xe5")


class Collector:
    def __init__(self, limit: int | None = None) -> None:
        self.readings: list = []
        self.times: list[float] = []
        self.drops: list = []
        self.confirmed: list = []
        self.limit = limit
        self.done = trio.Event()
        self.hooks = LinkHooks(publish=self.publish, dropped=self.drops.append, key_confirmed=self.confirmed.append)

    def publish(self, reading) -> None:
        self.readings.append(reading)
        self.times.append(trio.current_time())
        if self.limit is not None and len(self.readings) >= self.limit:
            self.done.set()


def opener(stream: trio.abc.Stream):
    async def open_stream() -> trio.abc.Stream:
        return stream
    return open_stream


Actor = Callable[[trio.abc.Stream, "Collector", LinkStatus], Callable[[], Awaitable[None]]]
"""One life of a link's actor on a stream, delivering to a collector."""


def adapter(stream: trio.abc.Stream, collector: Collector, status: LinkStatus, keys=lambda: KEYS, push_interval: float = 5.0):
    return partial(run_mbus, MBusLink("memory", push_interval=push_interval), keys, collector.hooks, status, opener(stream))


def spaced(times: list[float], interval: float) -> bool:
    return all(abs((b - a) - interval) < EPSILON for a, b in zip(times, times[1:]))


async def test_handshake_then_one_reading_per_push_interval(autojump_clock):
    ours, theirs = memory_link_pair()
    meter = MeterTap(theirs)
    collector = Collector(limit=4)
    status = LinkStatus("mbus", "mbus")
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(run_kaifa_meter, meter, KaifaMeterModel(), 5.0, meter_clock())
        nursery.start_soon(adapter(ours, collector, status))
        await collector.done.wait()
        nursery.cancel_scope.cancel()
    kinds = meter.kinds()
    # Search telegram at power-up (0.2 s), acknowledged: data mode, a telegram every 5 s.
    assert [kind for _, kind in kinds] == ["search", "data", "data", "data", "data"]
    assert abs(kinds[0][0] - start - 0.2) < EPSILON
    assert spaced([at for at, _ in kinds[1:]], 5.0) and abs(kinds[1][0] - kinds[0][0] - 5.0) < EPSILON
    assert spaced(collector.times, 5.0)
    assert [r.meter_id for r in collector.readings] == [METER_NUMBER] * 4
    assert len({r.captured_at for r in collector.readings}) == 4
    assert meter.acks() >= 1 + 2 * 3  # the search telegram and both frames of each telegram
    assert +status.counters == {"telegrams": 4}
    assert status.state == "listening" and collector.confirmed == KEYS * 4


async def ack_search_only(stream: trio.abc.Stream) -> None:
    """A peer that answers search telegrams and never a data frame."""
    framer = MBusFramer()
    while data := await stream.receive_some():
        for event in framer.feed(data):
            if isinstance(event, ShortFrame):
                await stream.send_all(b"\xe5")


async def test_ten_missed_acks_send_the_meter_back_to_search(autojump_clock):
    ours, theirs = memory_link_pair()
    meter = MeterTap(theirs)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_kaifa_meter, meter, KaifaMeterModel(), 5.0, meter_clock())
        nursery.start_soon(ack_search_only, ours)
        await trio.sleep(130)
        nursery.cancel_scope.cancel()
    kinds = meter.kinds()
    assert [kind for _, kind in kinds[:13]] == ["search"] + ["data"] * 10 + ["search", "data"]
    last_data, search_again = kinds[10][0], kinds[11][0]
    # The 10th unacknowledged telegram's push deadline passes (5 s), then a search every minute.
    assert abs(search_again - last_data - (5.0 + 60.0)) < EPSILON


async def test_a_peer_that_never_acks_keeps_the_meter_searching(autojump_clock):
    ours, theirs = memory_link_pair()
    meter = MeterTap(theirs)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_kaifa_meter, meter, KaifaMeterModel(), 5.0, meter_clock())
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    kinds = meter.kinds()
    assert [kind for _, kind in kinds] == ["search"] * 4
    assert spaced([at for at, _ in kinds], 60.5)  # 0.5 s ack timeout, then the search interval


async def test_the_adapter_going_away_and_coming_back(autojump_clock):
    """Readings, then the adapter is gone (the line stays open, nobody acks): after 10 missed acks
    the meter searches again; a new adapter acknowledges the search and readings resume."""
    ours, theirs = memory_link_pair()
    meter = MeterTap(theirs)
    line = MeterTap(ours, close=False)
    status = LinkStatus("mbus", "mbus")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_kaifa_meter, meter, KaifaMeterModel(), 5.0, meter_clock())
        first = Collector(limit=2)
        async with trio.open_nursery() as adapter_nursery:
            adapter_nursery.start_soon(adapter(line, first, status))
            await first.done.wait()
            adapter_nursery.cancel_scope.cancel()
        gone_at = trio.current_time()
        with trio.move_on_after(70):  # nobody acks: the meter's telegrams go unanswered
            while True:
                await line.receive_some()
        second = Collector(limit=2)
        async with trio.open_nursery() as adapter_nursery:
            adapter_nursery.start_soon(adapter(line, second, LinkStatus("mbus", "mbus")))
            await second.done.wait()
            adapter_nursery.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    kinds = meter.kinds()
    away = [kind for at, kind in kinds if at > gone_at]
    assert away[:11] == ["data"] * 10 + ["search"]
    assert "data" in away[11:]
    assert [r.meter_id for r in second.readings] == [METER_NUMBER] * 2
    assert min(second.times) > gone_at + 60


async def test_a_one_way_meter_is_read_just_the_same(autojump_clock):
    ours, theirs = memory_link_pair()
    collector = Collector(limit=4)
    status = LinkStatus("mbus", "mbus")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(push_one_way, theirs, KaifaMeterModel(), 5.0, meter_clock())
        nursery.start_soon(adapter(ours, collector, status))
        await collector.done.wait()
        nursery.cancel_scope.cancel()
    assert [r.meter_id for r in collector.readings] == [METER_NUMBER] * 4
    assert spaced(collector.times, 5.0)
    assert +status.counters == {"telegrams": 4} and status.state == "listening"
    unread = b""
    while chunk := await theirs.receive_some():  # the adapter closed its end: this ends
        unread += chunk
    assert unread == b"\xe5" * 8  # the adapter acknowledged every frame; nobody listened


async def silence_makes_the_link_stale(telegram: Callable[[], bytes], actor: Actor, status: LinkStatus,
                                       between: str, stale: str) -> None:
    """Two telegrams 5 s apart, 30 s of silence, one more: the link (push interval 5 s) is in state
    `between` until 15 s after the last telegram, then `stale` until the next one."""

    async def two_then_pause(stream: trio.abc.Stream) -> None:
        for _ in range(2):
            await stream.send_all(telegram())
            await trio.sleep(5)
        await trio.sleep(30)
        await stream.send_all(telegram())
        await trio.sleep_forever()

    ours, theirs = memory_link_pair()
    collector = Collector(limit=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(two_then_pause, theirs)
        nursery.start_soon(actor(ours, collector, status))
        await collector.done.wait()
        last = collector.times[-1]
        await trio.sleep_until(last + 15.0 - 0.01)
        assert status.state == between
        await trio.sleep_until(last + 15.0 + 0.01)
        assert status.state == stale and status.counters["stale"] == 1
        collector.done = trio.Event()
        collector.limit = 3
        await collector.done.wait()
        assert status.state == between
        nursery.cancel_scope.cancel()
    assert status.counters["stale"] == 1 and status.counters["telegrams"] == 3


async def test_three_push_intervals_of_silence_make_the_link_stale(autojump_clock):
    model = KaifaMeterModel()
    await silence_makes_the_link_stale(lambda: b"".join(model.frames(START)), adapter, LinkStatus("mbus", "mbus"),
                                       "listening", "stale")


def corrupt_script() -> tuple[list[bytes], int]:
    """What a bad line delivers, in pieces 4 s apart; and how many telegrams in it are good."""
    model = KaifaMeterModel()
    telegrams = [model.frames(START + timedelta(seconds=5 * n)) for n in range(8)]
    wrong = KaifaMeterModel(key=WRONG_KEY, frame_counter=0x9000).frames(START)

    def flip(frame: bytes, at: int) -> bytes:
        return frame[:at] + bytes((frame[at] ^ 0x10,)) + frame[at + 1 :]

    pieces = [
        b"".join(telegrams[0]),  # good
        flip(telegrams[1][0], 100) + telegrams[1][1],  # flipped bit in the first frame
        telegrams[2][0][:150],  # truncated frame...
        b"".join(telegrams[3]),  # ...and the next telegram
        telegrams[4][0],  # the first segment only: the segment gap passes
        encode_short(0x40, 0x05) + encode_long(0x53, 0x07, 0x00, b"\x01\x67" + bytes(30)) + encode_short(0x5B, 0xFE) + b"\xe5",
        b"".join(wrong),  # wrong key
        b"".join(telegrams[0]),  # replayed frame counter
        telegrams[5][1] + telegrams[5][0],  # segments out of order
        bytes(range(0x20, 0x60)),  # noise
        b"".join(telegrams[6]),  # good
        b"".join(telegrams[7]),  # good
    ]
    return pieces, 4


def sans_io_counts(pieces: list[bytes], machine: LinkMachine, framer: Codec, gap_timeout: str) -> tuple[Counter, int]:
    """The same bytes through the framer and the machine without trio: after each piece that leaves
    part of a telegram held, its gap's timeout passes."""
    published = 0
    for piece in pieces:
        for event in framer.feed(piece):
            machine.handle(event, None)
        if machine.accepts(gap_timeout):
            machine.send(gap_timeout)
        published += sum(isinstance(a, Publish) for a in machine.take_actions())
    return +machine.counters, published


async def play_a_bad_line(pieces: list[bytes], actor: Actor, collector: Collector, status: LinkStatus) -> None:
    """The pieces 4 s apart to the actor, which must still be running after the last."""

    async def bad_line(stream: trio.abc.Stream) -> None:
        for piece in pieces:
            await stream.send_all(piece)
            await trio.sleep(4)
        await trio.sleep_forever()

    ours, theirs = memory_link_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bad_line, theirs)
        nursery.start_soon(actor(ours, collector, status))
        await trio.sleep(4 * len(pieces) + 1)
        assert status.connected  # the actor is still running
        nursery.cancel_scope.cancel()


async def test_corrupt_input_is_counted_per_cause_and_readings_go_on(autojump_clock):
    pieces, good = corrupt_script()
    collector = Collector()
    status = LinkStatus("mbus", "mbus")
    await play_a_bad_line(pieces, adapter, collector, status)
    counters = +status.counters
    for cause in ("bad_frame", "noise_bytes", "foreign_frames", "incomplete", "wrong_key", "replayed", "out_of_order"):
        assert counters[cause] >= 1, (cause, counters)
    assert counters["telegrams"] == good == len(collector.readings)
    assert counters["wrong_key"] == 1 and counters["replayed"] == 1
    assert (counters, good) == sans_io_counts(pieces, MBusAdapter(keys=lambda: KEYS), MBusFramer(), "segment_timeout")
    # Readings went on after every kind of trouble: the last two good telegrams were read.
    assert [r.captured_at for r in collector.readings[-2:]] == ["2026-11-23T12:00:30", "2026-11-23T12:00:35"]
    assert {d.cause for d in collector.drops} >= {"bad_frame", "incomplete", "wrong_key", "replayed", "out_of_order"}
    assert status.last_drop is not None


async def test_a_meter_without_a_key_keeps_the_link_up_and_acknowledged(autojump_clock):
    capture = bytes.fromhex(json.loads((DATA / "kaifa_mbus_gurux18232_nokey.json").read_text())["hex_or_text"])

    async def gurux_meter(stream: trio.abc.Stream) -> None:
        for _ in range(3):
            await stream.send_all(capture)
            await trio.sleep(5)
        await trio.sleep_forever()

    ours, theirs = memory_link_pair()
    meter = MeterTap(theirs)
    collector = Collector()
    status = LinkStatus("mbus", "mbus")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gurux_meter, meter)
        nursery.start_soon(adapter(ours, collector, status, keys=lambda: []))
        await trio.sleep(12)
        with trio.move_on_after(1):
            while data := await theirs.receive_some():
                meter.received.append((trio.current_time(), data))
        assert status.connected and status.state == "listening"
        nursery.cancel_scope.cancel()
    assert +status.counters == {"no_key": 3}
    assert meter.acks() == 6 and collector.readings == []


async def test_a_new_key_is_used_from_the_next_telegram_on(autojump_clock):
    keys = [CipherKeys(WRONG_KEY)]
    ours, theirs = memory_link_pair()
    collector = Collector(limit=2)
    status = LinkStatus("mbus", "mbus")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(push_one_way, theirs, KaifaMeterModel(), 5.0, meter_clock())
        nursery.start_soon(adapter(ours, collector, status, keys=lambda: keys))
        await trio.sleep(7)
        assert status.counters["wrong_key"] == 2 and not collector.readings
        keys.insert(0, CipherKeys(DEMO_KEY))
        await collector.done.wait()
        nursery.cancel_scope.cancel()
    assert collector.confirmed == [CipherKeys(DEMO_KEY)] * 2


async def supervised(*serves, limit: int):
    """The real actor under a Supervisor against meters served in turn, until `limit` readings."""
    collector = Collector(limit=limit)
    status = LinkStatus("mbus", "mbus")
    async with trio.open_nursery() as nursery:
        meters = Meters(nursery, *serves)
        run = partial(run_mbus, MBusLink("memory"), lambda: KEYS, collector.hooks, status, meters.open)
        supervisor = Supervisor([ChildSpec("mbus", run)])
        nursery.start_soon(supervisor.run)
        await collector.done.wait()
        (child,) = supervisor.status()
        nursery.cancel_scope.cancel()
    return collector, status, meters, child


async def test_link_lost_mid_telegram_is_survived_under_the_supervisor(autojump_clock):
    """The line closes after the first segment of a telegram (the meter heard its ack): the actor
    counts the half telegram, ends with LinkLost, and the supervisor's restart reads on."""
    model = KaifaMeterModel()

    async def dies_mid_telegram(stream: trio.abc.Stream) -> None:
        await stream.send_all(b"".join(model.frames(START)))
        await trio.sleep(5)
        await stream.send_all(model.frames(START)[0])
        await stream.receive_some()  # the acks so far
        await trio.sleep(0.1)
        await stream.aclose()

    async def pushing(stream: trio.abc.Stream) -> None:
        await push_one_way(stream, model, 5.0, meter_clock())

    collector, status, meters, child = await supervised(dies_mid_telegram, pushing, limit=4)
    assert meters.connections == 2
    assert child.restarts == 1 and LinkLost.__name__ in child.last_error
    assert status.counters["incomplete"] == 1  # the half telegram, counted across the restart
    assert status.counters["telegrams"] == 4 and len(collector.readings) == 4


async def test_a_line_that_breaks_under_an_ack_is_restarted(autojump_clock):
    """The meter's end is gone before the adapter's ack goes out: the send fails, the supervisor
    restarts the actor all the same and readings resume."""
    model = KaifaMeterModel()

    async def gone_at_once(stream: trio.abc.Stream) -> None:
        await stream.send_all(model.frames(START)[0])
        await stream.aclose()

    async def pushing(stream: trio.abc.Stream) -> None:
        await push_one_way(stream, model, 5.0, meter_clock())

    collector, status, meters, child = await supervised(gone_at_once, pushing, limit=2)
    assert meters.connections == 2 and child.restarts == 1
    assert status.counters["telegrams"] == 2


async def test_the_simulated_meter_ends_quietly_when_the_adapter_hangs_up(autojump_clock):
    ours, theirs = memory_link_pair()
    meter = MeterTap(theirs)
    collector = Collector(limit=1)
    ended = []

    async def meter_task() -> None:
        await run_kaifa_meter(meter, KaifaMeterModel(), 5.0, meter_clock())
        ended.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(meter_task)
        async with trio.open_nursery() as adapter_nursery:
            adapter_nursery.start_soon(adapter(ours, collector, LinkStatus("mbus", "mbus")))
            await collector.done.wait()
            adapter_nursery.cancel_scope.cancel()  # run_link closes its end of the line
        hung_up = trio.current_time()
        await trio.sleep(30)
    assert len(ended) == 1 and ended[0] - hung_up < 0.01
    assert all(at <= hung_up for at, _ in meter.sent)  # nothing sent after the hang-up


async def test_a_telegram_replayed_after_a_restart_is_refused(autojump_clock):
    """The frame counter floor lives in the link status, which outlives the actor."""
    telegram = b"".join(KaifaMeterModel().frames(datetime(2026, 11, 23, 12, 0)))
    status = LinkStatus("mbus", "mbus")
    published = []

    async def one_life() -> None:
        ours, theirs = memory_link_pair()

        async def opened() -> trio.abc.Stream:
            return ours

        async def meter() -> None:
            await theirs.send_all(telegram)
            await trio.testing.wait_all_tasks_blocked()
            await theirs.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(meter)
            with pytest.raises(LinkLost):
                await run_mbus(MBusLink("memory"), lambda: [CipherKeys(DEMO_KEY)], LinkHooks(published.append), status, opened)

    await one_life()
    await one_life()
    assert len(published) == 1
    assert status.counters["telegrams"] == 1 and status.counters["replayed"] == 1
