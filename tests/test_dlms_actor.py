"""The DLMS client actor (run_dlms) against the simulated Kamstrup meter and against meters that
misbehave, over in-memory links on trio's MockClock: a session, the response timeout and its three
retries, the inter-octet timeout, polling with and without keeping the association, the wrapper,
and a meter that hangs up."""

from __future__ import annotations

from datetime import datetime

import pytest
import trio

from meterlink.actors.dlms import DlmsLink, run_dlms
from meterlink.actors.link import LinkHooks, LinkLost, LinkStatus
from meterlink.machines.dlms import Association, Framing
from meterlink.protocols.dlms.objects import AttributeRef
from meterlink.protocols.hdlc import FrameType, HdlcFramer, parse_frame
from meterlink.simulators.kamstrup import KamstrupMeterModel, run_kamstrup_meter
from meterlink.transports import memory_link_pair

from kamstrup_session import public_session
from links import Tap

NOW = datetime(2026, 11, 29, 12, 7, 30)
METER_NUMBER = AttributeRef.parse("1:1.1.0.0.1.255:2")
ENERGY = AttributeRef.parse("3:1-1:1.8.0.255:2")
EPSILON = 1e-6


class Collector:
    def __init__(self) -> None:
        self.readings: list = []
        self.times: list[float] = []
        self.drops: list = []
        self.hooks = LinkHooks(publish=self.publish, dropped=self.drops.append)

    def publish(self, reading) -> None:
        self.readings.append(reading)
        self.times.append(trio.current_time())


def kinds(tap: Tap) -> list[tuple[float, FrameType]]:
    """What the client sent, frame by frame, with trio's time."""
    return [(at, parse_frame(data).kind) for at, data in tap.sent]


def opener(stream: trio.abc.Stream):
    async def open_stream() -> trio.abc.Stream:
        return stream
    return open_stream


def model() -> KamstrupMeterModel:
    return KamstrupMeterModel(password=b"12345", wallclock=lambda: NOW)


async def session(link: DlmsLink, meter, collector: Collector, status: LinkStatus | None = None) -> Tap:
    """Run the actor against `meter` (a coroutine function taking the meter's end) until it returns."""
    ours, theirs = memory_link_pair()
    client = Tap(ours)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(meter, theirs)
        await run_dlms(link, collector.hooks, status or LinkStatus("dlms", "dlms"), opener(client))
        nursery.cancel_scope.cancel()
    return client


async def test_a_session_reads_and_ends(autojump_clock):
    collector, status = Collector(), LinkStatus("dlms", "dlms")
    link = DlmsLink("memory", Association(password=b"12345"), (METER_NUMBER, ENERGY))
    client = await session(link, lambda s: run_kamstrup_meter(s, model()), collector, status)
    assert [r.values[0].to_json() for r in collector.readings] == [
        {"obis": "1-1:0.0.1.255", "value": 12345679, "raw": 12345679},
        {"obis": "1-1:1.8.0.255", "value": 18231400, "unit": "Wh", "raw": 1823140, "scaler": 1, "unit_code": 30},
    ]
    assert [kind for _, kind in kinds(client)] == [FrameType.SNRM, FrameType.I, FrameType.I, FrameType.I, FrameType.I, FrameType.DISC]
    assert status.state == "closed" and status.counters["readings"] == 2 and not collector.drops


async def silent(stream: trio.abc.Stream) -> None:
    """A meter that takes everything and never answers."""
    while await stream.receive_some():
        pass


async def test_no_answer_three_retries_two_seconds_apart_then_give_up(autojump_clock):
    collector = Collector()
    start = trio.current_time()
    client = await session(DlmsLink("memory", reads=(METER_NUMBER,)), silent, collector)
    times = [at - start for at, _ in client.sent]
    assert [kind for _, kind in kinds(client)] == [FrameType.SNRM] * 4
    assert all(abs(a - b) < EPSILON for a, b in zip(times, [0.0, 2.0, 4.0, 6.0]))
    assert abs(trio.current_time() - start - 8.0) < EPSILON  # the fourth attempt's 2 s, then give up
    assert [d.cause for d in collector.drops] == ["no_response", "get_failed"]


def seed_responses() -> list[bytes]:
    return [exchange.response for exchange in public_session()]


async def stalling_meter(stream: trio.abc.Stream) -> None:
    """Answers the seed's public session, but the UA stops after 10 bytes, and comes whole 1 s later."""
    framer = HdlcFramer()
    responses = seed_responses()
    while data := await stream.receive_some():
        for event in framer.feed(data):
            if not hasattr(event, "control"):
                continue
            response = responses.pop(0)
            if event.control.kind is FrameType.SNRM:
                await stream.send_all(response[:10])
                await trio.sleep(1.0)
            await stream.send_all(response)


async def test_a_frame_that_stops_is_discarded_after_the_inter_octet_timeout(autojump_clock):
    collector = Collector()
    start = trio.current_time()
    client = await session(DlmsLink("memory", reads=(METER_NUMBER,)), stalling_meter, collector)
    aarq_at = next(at for at, kind in kinds(client) if kind is FrameType.I)
    # The half UA was dropped at 0.5 s, so the whole one at 1 s connects: no retry at 2 s.
    assert abs(aarq_at - start - 1.0) < EPSILON
    assert [d.cause for d in collector.drops] == ["stalled_frame"]
    assert [r.values[0].value for r in collector.readings] == [12345679]


async def test_polling_keeps_the_association_between_close_polls(autojump_clock):
    collector = Collector()
    link = DlmsLink("memory", Association(password=b"12345"), (ENERGY,), poll_interval=5.0)
    with trio.move_on_after(16):
        await session(link, lambda s: run_kamstrup_meter(s, model()), collector)
    assert len(collector.readings) == 4
    assert all(abs((b - a) - 5.0) < 0.01 for a, b in zip(collector.times, collector.times[1:]))


async def test_polling_associates_again_when_polls_are_far_apart(autojump_clock):
    collector = Collector()
    ours, theirs = memory_link_pair()
    client = Tap(ours)
    link = DlmsLink("memory", Association(password=b"12345"), (ENERGY,), poll_interval=60.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_kamstrup_meter, theirs, model())
        with trio.move_on_after(130):
            await run_dlms(link, collector.hooks, LinkStatus("dlms", "dlms"), opener(client))
        nursery.cancel_scope.cancel()
    sent = [kind for _, kind in kinds(client)]
    assert len(collector.readings) == 3 and sent.count(FrameType.SNRM) == 3 and sent.count(FrameType.DISC) == 3


async def test_the_wrapper(autojump_clock):
    collector = Collector()
    link = DlmsLink("memory", Association(password=b"12345", framing=Framing.WRAPPER), (METER_NUMBER,))
    ours, theirs = memory_link_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_kamstrup_meter, theirs, model(), Framing.WRAPPER)
        await run_dlms(link, collector.hooks, LinkStatus("dlms", "dlms"), opener(ours))
        nursery.cancel_scope.cancel()
    assert [r.values[0].value for r in collector.readings] == [12345679] and not collector.drops


async def hangs_up_after_the_ua(stream: trio.abc.Stream) -> None:
    await stream.receive_some()
    await stream.send_all(seed_responses()[0])
    await stream.receive_some()
    await stream.aclose()


async def test_a_meter_that_hangs_up_ends_the_actor_with_link_lost(autojump_clock):
    collector, status = Collector(), LinkStatus("dlms", "dlms")
    with pytest.RaisesGroup(LinkLost, flatten_subgroups=True):
        await session(DlmsLink("memory", reads=(METER_NUMBER,)), hangs_up_after_the_ua, collector, status)
    assert [d.cause for d in collector.drops] == ["get_failed"] and status.state == "closed"
