"""A push `read` that gets only telegrams it cannot use gives up with exit 1 (issue 12, item 5):
after `--max-failures` telegrams in a row (default 3; 0: never), naming the cause; a reading
resets the count, and noise or bad frames between telegrams do not count."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial

import trio
import trio.testing

from meterlink.actors.mbus import MBusLink, run_mbus
from meterlink.actors.p1 import P1Link, run_p1
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.readings import Reading
from meterlink.service.read import ReadUntil, RunLink, read_one_link
from meterlink.simulators.kaifa import DEMO_KEY, KaifaMeterModel, push_one_way, run_kaifa_meter
from meterlink.simulators.p1 import P1MeterModel

from links import Meters, Serve
from processes import meterlink, start_simulator, stop

OTHER_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GIVING_UP = "giving up after {} telegrams in a row that failed: {}"
START = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def meter_clock():
    origin = trio.current_time()
    return lambda: START + timedelta(seconds=trio.current_time() - origin)


@dataclass
class Printed:
    readings: list[Reading] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def drops(self) -> list[str]:
        return [line for line in self.warnings if line.startswith("telegram dropped")]


async def read(kind: str, run_link: RunLink, serve: Serve, until: ReadUntil) -> tuple[int, Printed]:
    printed = Printed()
    async with trio.open_nursery() as nursery:
        meters = Meters(nursery, serve)
        code = await read_one_link(kind, meters.open, run_link, until, printed.readings.append, printed.warnings.append)
        nursery.cancel_scope.cancel()
    return code, printed


def mbus_reader(key: bytes = DEMO_KEY) -> RunLink:
    return partial(run_mbus, MBusLink("memory", push_interval=1.0), lambda: [CipherKeys(key)])


def kaifa_meter(key: bytes) -> Serve:
    return lambda stream: run_kaifa_meter(stream, KaifaMeterModel(key=key), 1.0, meter_clock())


# -- in-process, on trio's MockClock -------------------------------------------------------------


async def test_a_wrong_key_gives_up_after_three_telegrams_in_a_row(autojump_clock):
    code, printed = await read("mbus", mbus_reader(), kaifa_meter(OTHER_KEY), ReadUntil(count=2, max_failures=3))
    assert code == 1 and printed.readings == []
    assert len(printed.drops()) == 3 and all("(wrong_key)" in line for line in printed.drops())
    assert printed.warnings[-1].startswith(GIVING_UP.format(3, "wrong_key: "))
    assert len(printed.warnings) == 4  # nothing after the line that gives up


async def test_max_failures_sets_the_limit_and_0_never_gives_up(autojump_clock):
    code, printed = await read("mbus", mbus_reader(), kaifa_meter(OTHER_KEY), ReadUntil(count=None, max_failures=5))
    assert code == 1 and len(printed.drops()) == 5
    assert printed.warnings[-1].startswith(GIVING_UP.format(5, "wrong_key"))
    with trio.move_on_after(600) as still_reading:
        await read("mbus", mbus_reader(), kaifa_meter(OTHER_KEY), ReadUntil(count=None, max_failures=0))
    assert still_reading.cancelled_caught


def bad_crc(telegram: bytes) -> bytes:
    """The telegram with another last CRC digit ("...!1A2B\r\n")."""
    last = telegram[-3:-2]
    return telegram[:-3] + (b"1" if last == b"0" else b"0") + b"\r\n"


def p1_telegrams(*good: bool) -> Serve:
    """A P1 meter that sends these telegrams a second apart, a bad CRC where not good, then nothing."""
    async def serve(stream: trio.abc.Stream) -> None:
        model, clock = P1MeterModel(), meter_clock()
        for ok in good:
            telegram = model.telegram(clock())
            await stream.send_all(telegram if ok else bad_crc(telegram))
            await trio.sleep(1.0)
        await trio.sleep_forever()
    return serve


P1_READER = partial(run_p1, P1Link("memory", push_interval=1.0))


async def test_a_reading_resets_the_count(autojump_clock):
    code, printed = await read("p1", P1_READER, p1_telegrams(False, False, True, False, False, True), ReadUntil(2, 3))
    assert len(printed.readings) == 2 and len(printed.drops()) == 4
    assert code == 1 and not any(line.startswith("giving up") for line in printed.warnings)  # 1: telegrams failed
    code, printed = await read("p1", P1_READER, p1_telegrams(True, False, False, False, True), ReadUntil(2, 3))
    assert code == 1 and len(printed.readings) == 1
    assert printed.warnings[-1].startswith(GIVING_UP.format(3, "crc_error"))


async def noise_then_one_way_meter(stream: trio.abc.Stream) -> None:
    # A frame start that is none, four times apart: four bad frames, none of them a telegram.
    for _ in range(4):
        await stream.send_all(b"\x68\x00\x00\x00")
        await trio.sleep(0.2)
    await push_one_way(stream, KaifaMeterModel(), 1.0, meter_clock())


async def test_bad_frames_between_telegrams_do_not_count(autojump_clock):
    code, printed = await read("mbus", mbus_reader(), noise_then_one_way_meter, ReadUntil(count=2, max_failures=3))
    assert len(printed.readings) == 2 and len(printed.drops()) == 4
    assert all("(bad_frame)" in line for line in printed.drops())
    assert code == 1 and not any(line.startswith("giving up") for line in printed.warnings)


# -- as a user runs it: real processes over TCP ----------------------------------------------------


def test_read_mbus_with_a_wrong_key_exits_1_after_three_telegrams():
    simulator, url = start_simulator("kaifa", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5",
                                     "--key", OTHER_KEY.hex())
    common = ("read", "mbus", "--port", url, "--key", DEMO_KEY.hex(), "--push-interval", "0.5")
    try:
        counted = meterlink(*common, "--count", "2", timeout=30)
        endless = meterlink(*common, timeout=30)
        once = meterlink(*common, "--max-failures", "1", timeout=30)
    finally:
        stop(simulator)
    for result, failures in ((counted, 3), (endless, 3), (once, 1)):
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 1 and result.stdout == b"", lines
        assert lines[-1].startswith("meterlink: " + GIVING_UP.format(failures, "wrong_key: ")), lines
        assert sum("telegram dropped (wrong_key)" in line for line in lines) == failures
    negative = meterlink(*common, "--max-failures", "-1")
    assert negative.returncode == 2 and b"--max-failures" in negative.stderr
