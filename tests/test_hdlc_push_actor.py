"""The real HDLC push actor (run_hdlc_push) against the simulated meter over in-memory links, on
trio's MockClock: one reading per push, stale links, notifications and frames that stop half-way
(inter-frame and inter-octet timeouts), a bad line counted per cause, keys, and the link lost
under the supervisor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

import pytest
import trio
import trio.testing

from meterlink.actors.hdlc_push import HdlcPushLink, run_hdlc_push
from meterlink.actors.link import LinkHooks, LinkLost, LinkStatus
from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.hdlc import HdlcFramer
from meterlink.simulators.hdlc_push import METER_NUMBER, HdlcPushMeterModel, Layout, push_notifications
from meterlink.simulators.kaifa import DEMO_KEY
from meterlink.supervisor import ChildSpec, Supervisor
from meterlink.transports import memory_link_pair

from links import Meters
from test_hdlc_push_machine import GET_REQUEST, STRAY, WRONG_KEY
from test_mbus_actor import (START, Collector, meter_clock, opener, play_a_bad_line, sans_io_counts,
                             silence_makes_the_link_stale, spaced)

KEYS = [CipherKeys(DEMO_KEY)]
LINK = HdlcPushLink("memory", push_interval=5.0)


def reader(stream: trio.abc.Stream, collector: Collector, status: LinkStatus, keys=lambda: KEYS):
    return partial(run_hdlc_push, LINK, keys, collector.hooks, status, opener(stream))


async def read_until_done(meter: Callable[[trio.abc.Stream], Awaitable[None]], collector: Collector,
                          status: LinkStatus) -> None:
    """The reader against `meter` on an in-memory line until `collector` has what it waits for."""
    ours, theirs = memory_link_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(meter, theirs)
        nursery.start_soon(reader(ours, collector, status))
        await collector.done.wait()
        nursery.cancel_scope.cancel()


def encrypted(**model: object) -> HdlcPushMeterModel:
    return HdlcPushMeterModel(key=DEMO_KEY, **model)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", [
    HdlcPushMeterModel(),
    encrypted(segmented=True),
    encrypted(blocks=True, auth_key=None),
    encrypted(segmented=True, blocks=True, layout=Layout.AIDON),
], ids=["plain", "segmented", "blocks", "segmented-blocks"])
async def test_one_reading_per_push_interval(autojump_clock, model):
    collector = Collector(limit=4)
    status = LinkStatus("house", "hdlc-push")
    await read_until_done(partial(push_notifications, model=model, interval=5.0, wallclock=meter_clock()), collector, status)
    assert [r.meter_id for r in collector.readings] == [METER_NUMBER] * 4
    assert {r.link for r in collector.readings} == {"house"} and {r.kind for r in collector.readings} == {"hdlc-push"}
    assert len({r.captured_at for r in collector.readings}) == 4
    assert spaced(collector.times, 5.0)
    assert +status.counters == {"telegrams": 4}
    assert status.state == "listening,quiet" and status.state_label == "Between notifications"
    assert collector.confirmed == (KEYS * 4 if model.key else [])


async def test_three_push_intervals_of_silence_make_the_link_stale(autojump_clock):
    model = HdlcPushMeterModel()
    await silence_makes_the_link_stale(lambda: b"".join(model.frames(START)), reader, LinkStatus("hdlc-push", "hdlc-push"),
                                       "listening,quiet", "stale,quiet")


async def test_notifications_and_frames_that_stop_half_way_time_out(autojump_clock):
    """A notification whose last segment never comes is dropped after the inter-frame timeout
    (2 s); a frame that stops is discarded after the inter-octet timeout (0.5 s): the next
    notification reads clean, without a bad frame."""
    model = encrypted(segmented=True)
    halves = [model.frames(START + timedelta(seconds=n)) for n in range(3)]

    async def line(stream: trio.abc.Stream) -> None:
        await stream.send_all(b"".join(halves[0][:-1]))  # the last segment is lost
        await trio.sleep(1.9)
        assert status.state == "segments,quiet"
        await trio.sleep(0.2)
        assert status.state == "listening,quiet" and status.counters["incomplete"] == 1
        await stream.send_all(halves[1][0][:50])  # the line stops inside a frame
        await trio.sleep(0.4)
        assert status.state == "listening,receiving"
        await trio.sleep(0.2)
        assert status.state == "listening,quiet" and status.counters["stalled_frame"] == 1
        await stream.send_all(b"".join(halves[2]))
        await trio.sleep_forever()

    collector = Collector(limit=1)
    status = LinkStatus("hdlc-push", "hdlc-push")
    await read_until_done(line, collector, status)
    assert +status.counters == {"incomplete": 1, "stalled_frame": 1, "telegrams": 1}
    assert [d.cause for d in collector.drops] == ["incomplete", "stalled_frame"]


def bad_line() -> tuple[list[bytes], int]:
    """What a bad line delivers, in pieces 4 s apart; and how many notifications in it are good."""
    model = encrypted(segmented=True, blocks=True)
    notifications = [model.frames(START + timedelta(seconds=5 * n)) for n in range(7)]
    wrong = HdlcPushMeterModel(key=WRONG_KEY, frame_counter=0x9000).frames(START)

    def flip(frame: bytes, at: int) -> bytes:
        return frame[:at] + bytes((frame[at] ^ 0x10,)) + frame[at + 1 :]

    pieces = [
        b"".join(notifications[0]),  # good
        flip(notifications[1][0], 60) + b"".join(notifications[1][1:]),  # a flipped bit in the first frame
        notifications[2][0][:90] + b"".join(notifications[3]),  # a cut frame, then a notification
        b"".join(notifications[4][:-1]),  # the last frame lost: the inter-frame timeout passes
        b"".join(STRAY) + GET_REQUEST,  # stray frames and a client's request
        b"".join(wrong),  # the wrong key
        b"".join(notifications[0]),  # replayed frame counter
        b"".join(reversed(notifications[5])),  # frames out of order
        bytes(range(0x20, 0x60)),  # noise
        b"".join(notifications[6]),  # good
    ]
    return pieces, 3


async def test_a_bad_line_is_counted_per_cause_and_readings_go_on(autojump_clock):
    pieces, good = bad_line()
    collector = Collector()
    status = LinkStatus("hdlc-push", "hdlc-push")
    await play_a_bad_line(pieces, reader, collector, status)
    counters = +status.counters
    for cause in ("bad_frame", "noise_bytes", "stray_frames", "foreign_apdus", "incomplete", "wrong_key", "replayed",
                  "out_of_order"):
        assert counters[cause] >= 1, (cause, counters)
    assert counters["telegrams"] == good == len(collector.readings)
    assert (counters, good) == sans_io_counts(pieces, HdlcPushReader(keys=lambda: KEYS), HdlcFramer(), "inter_frame_timeout")
    assert collector.readings[-1].captured_at == (START + timedelta(seconds=30)).isoformat()


async def test_a_plain_meter_needs_no_key_and_an_encrypted_one_waits_for_it(autojump_clock):
    keys: list[CipherKeys] = []
    ours, theirs = memory_link_pair()
    collector = Collector(limit=2)
    status = LinkStatus("hdlc-push", "hdlc-push")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(push_notifications, theirs, encrypted(blocks=True), 5.0, meter_clock())
        nursery.start_soon(reader(ours, collector, status, keys=lambda: keys))
        await trio.sleep(7)
        assert status.counters["no_key"] == 2 and not collector.readings and status.connected
        keys.append(CipherKeys(DEMO_KEY))
        await collector.done.wait()
        nursery.cancel_scope.cancel()
    assert collector.confirmed == [CipherKeys(DEMO_KEY)] * 2


async def test_link_lost_mid_notification_is_survived_under_the_supervisor(autojump_clock):
    model = encrypted(segmented=True)

    async def dies_mid_notification(stream: trio.abc.Stream) -> None:
        await stream.send_all(b"".join(model.frames(START)))
        await trio.sleep(5)
        await stream.send_all(model.frames(START)[0])
        await trio.sleep(0.1)
        await stream.aclose()

    async def pushing(stream: trio.abc.Stream) -> None:
        await push_notifications(stream, model, 5.0, meter_clock())

    collector = Collector(limit=3)
    status = LinkStatus("hdlc-push", "hdlc-push")
    async with trio.open_nursery() as nursery:
        meters = Meters(nursery, dies_mid_notification, pushing)
        run = partial(run_hdlc_push, LINK, lambda: KEYS, collector.hooks, status, meters.open)
        supervisor = Supervisor([ChildSpec("hdlc-push", run)])
        nursery.start_soon(supervisor.run)
        await collector.done.wait()
        (child,) = supervisor.status()
        nursery.cancel_scope.cancel()
    assert meters.connections == 2 and child.restarts == 1 and LinkLost.__name__ in child.last_error
    assert status.counters["incomplete"] == 1 and status.counters["telegrams"] == 3


async def test_a_notification_replayed_after_a_restart_is_refused(autojump_clock):
    """The frame counter floor lives in the link status, which outlives the actor."""
    notification = b"".join(encrypted().frames(START))
    status = LinkStatus("hdlc-push", "hdlc-push")
    published = []

    async def one_life() -> None:
        ours, theirs = memory_link_pair()

        async def meter() -> None:
            await theirs.send_all(notification)
            await trio.testing.wait_all_tasks_blocked()
            await theirs.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(meter)
            with pytest.raises(LinkLost):
                await run_hdlc_push(LINK, lambda: KEYS, LinkHooks(published.append), status, opener(ours))

    await one_life()
    await one_life()
    assert len(published) == 1
    assert status.counters["telegrams"] == 1 and status.counters["replayed"] == 1
