"""P1 telegrams with a valid CRC whose values the parser cannot take (issue 12, item 1).

Digits that `str.isdigit` accepts but `int()` refuses (Latin-1's superscripts) and numbers longer
than Python's int conversion takes (4,300 digits) once raised a bare ValueError out of the codec;
the supervisor restarted the link every ~30 s without end. Such a line is skipped and counted in
bad_lines, the rest of the telegram is published (issue 15; the whole telegram was once dropped as
unparseable), and the link goes on.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.p1 import P1Link, run_p1
from meterlink.cli import main
from meterlink.machines.base import Dropped, Noted, Publish
from meterlink.machines.p1 import P1Reader
from meterlink.protocols.crc import crc16_arc
from meterlink.protocols.p1 import CrcStatus, P1Framer, TelegramFramed
from meterlink.supervisor import ChildSpec, Supervisor

from links import Meters

DATA = Path(__file__).parent / "data"
GOOD = (DATA / "emucs_p1_1phase.txt").read_bytes()

HOSTILE = {
    "superscript-two": "0-0:96.7.21(\u00b2)",
    "superscript-digits": "0-0:96.7.9(1\u00b9\u00b3)",
    "device-type-superscript": "0-1:24.1.0(\u00b3)",
    "profile-count-superscript": "0-0:98.1.0(\u00b9)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.121*kW)",
    "5000-digit-measurement": "1-0:1.8.1(" + "1" * 5000 + "*kWh)",
    "5000-digit-counter": "0-0:96.7.21(" + "9" * 5000 + ")",
    "401-digit-decimal": "1-0:2.8.1(" + "7" * 400 + ".5*kWh)",  # a float of inf, once
    "21-digit-profile-count": "0-0:98.1.0(" + "1" * 21 + ")(1-0:1.6.0)(1-0:1.6.0)",
}


def with_line(telegram: bytes, line: str) -> bytes:
    """The telegram with `line` added as its last data line and its CRC made right again."""
    bang = telegram.rindex(b"!")
    body = telegram[:bang] + line.encode("latin-1") + b"\r\n!"
    return body + f"{crc16_arc(body):04X}\r\n".encode("ascii")


def framed(raw: bytes) -> TelegramFramed:
    (event,) = [e for e in P1Framer().feed(raw) if isinstance(e, TelegramFramed)]
    return event


@pytest.mark.parametrize("line", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_codec_names_the_line_and_the_problem(line):
    event = framed(with_line(GOOD, line))
    code = line.split("(", 1)[0]
    assert event.crc is CrcStatus.OK and event.error is None
    (skipped,) = event.telegram.skipped
    assert skipped.obis == code + ".255" and f"({code}.255) skipped" in str(skipped)
    assert len(event.telegram.values) == len(framed(GOOD).telegram.values)


def test_numbers_up_to_twenty_digits_are_read():
    event = framed(with_line(GOOD, "1-0:1.8.1(" + "1" * 17 + ".123*kWh)"))
    value = event.telegram.values[-1]
    assert (value.raw, value.scaler, value.unit) == (int("1" * 17 + "123"), -3, "kWh")


@pytest.mark.parametrize("line", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_reader_publishes_the_rest_counts_the_line_and_reads_the_next(line):
    reader = P1Reader()
    for event in P1Framer().feed(with_line(GOOD, line) + GOOD):
        reader.handle(event, 1.0)
    actions = reader.take_actions()
    assert not [a for a in actions if isinstance(a, Dropped)]
    assert [a.cause for a in actions if isinstance(a, Noted)] == ["bad_lines"]
    assert len([a for a in actions if isinstance(a, Publish)]) == 2
    assert reader.counters["bad_lines"] == 1 and reader.state_name == "hunting"


async def test_the_actor_goes_on_without_a_restart(autojump_clock):
    hostile = [with_line(GOOD, line) for line in HOSTILE.values()]

    async def meter(stream: trio.abc.Stream) -> None:
        for telegram in [*hostile, GOOD, GOOD]:
            await stream.send_all(telegram)
            await trio.sleep(1)
        await trio.sleep_forever()

    readings: list = []
    done = trio.Event()

    def publish(reading) -> None:
        readings.append(reading)
        if len(readings) == len(hostile) + 2:
            done.set()

    status = LinkStatus("p1", "p1")
    hooks = LinkHooks(publish=publish, dropped=lambda drop: None)
    async with trio.open_nursery() as nursery:
        meters = Meters(nursery, meter)
        supervisor = Supervisor([ChildSpec("p1", partial(run_p1, P1Link("memory"), hooks, status, meters.open))])
        nursery.start_soon(supervisor.run)
        await done.wait()
        (child,) = supervisor.status()
        nursery.cancel_scope.cancel()
    assert child.restarts == 0 and meters.connections == 1
    assert status.counters["bad_lines"] == len(HOSTILE) and status.counters["telegrams"] == len(HOSTILE) + 2
    assert not status.drops and status.last_note.startswith("bad_lines: line ")


def test_decode_p1_names_the_skipped_line_on_stderr_and_prints_the_reading(tmp_path, capsys):
    capture = tmp_path / "capture.bin"
    capture.write_bytes(with_line(GOOD, HOSTILE["superscript-two"]) + GOOD)
    assert main(["decode", "p1", str(capture)]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["meter_id"] for line in out.splitlines()] == ["1SAG1100000231"] * 2
    assert err.splitlines() == [
        "meterlink: telegram 1: line 31 (0-0:96.7.21.255) skipped: value '\u00b2' is not a number: '0-0:96.7.21(\u00b2)'"]
