"""The P1 reader machine: unit tests per transition and a stateful model test."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from hypothesis import settings
from hypothesis import strategies as st

from harness import machine_harness
from meterlink.machines.base import Dropped, Publish, Resync
from meterlink.machines.p1 import P1Reader
from meterlink.protocols.p1 import P1Framer
from meterlink.simulators.p1 import EQUIPMENT_ID, P1MeterModel

START = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
TELEGRAMS = [P1MeterModel(seed=n).telegram(START + timedelta(seconds=n)) for n in range(5)]
LEGACY = b"/ISk5\\2MT382-1000\r\n\r\n0-0:96.1.1(4B384547303034303436333935353037)\r\n1-0:1.8.1(00123.456*kWh)\r\n!\r\n"


def corrupt(telegram: bytes) -> bytes:
    at = telegram.index(b"*kWh") - 1
    return telegram[:at] + bytes([telegram[at] ^ 0x01]) + telegram[at + 1 :]


@dataclass
class P1UnderTest:
    legacy: bool
    counters: Counter = field(default_factory=Counter)
    published: list = field(default_factory=list)
    drops: list = field(default_factory=list)
    expected: Counter = field(default_factory=Counter)
    partial: bool = False
    stale: bool = False

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.framer = P1Framer(max_size=8192)
        self.machine = P1Reader(legacy=self.legacy, counters=self.counters)
        self.partial = False

    def feed(self, data: bytes, chunk: int) -> None:
        for start in range(0, len(data), chunk):
            for event in self.framer.feed(data[start : start + chunk]):
                self.machine.handle(event, received_at=1.0)
        self.carry_out()

    def carry_out(self) -> None:
        """What the actor does with the machine's actions."""
        for action in self.machine.take_actions():
            if isinstance(action, Resync):
                self.framer.reset()
            else:
                (self.published if isinstance(action, Publish) else self.drops).append(action)

    def whole(self, data: bytes, outcome: str, chunk: int) -> None:
        if self.partial:
            self.expected["truncated"] += 1
        self.feed(data, chunk)
        self.expected[outcome] += 1
        self.partial = False
        self.stale = False

    def timed_out(self, event: str) -> None:
        if event == "silence":
            self.stale = True
            self.expected["stale"] += 1
        elif event == "telegram_timeout":
            self.expected["incomplete"] += 1
            self.partial = False
        self.carry_out()


def valid(index: int, chunk: int):
    return lambda link: link.whole(TELEGRAMS[index], "telegrams", chunk)


def bad_crc(index: int, chunk: int):
    return lambda link: link.whole(corrupt(TELEGRAMS[index]), "crc_error", chunk)


def legacy(chunk: int):
    return lambda link: link.whole(LEGACY, "telegrams" if link.legacy else "crc_missing", chunk)


def noise(data: bytes):
    def apply(link: P1UnderTest) -> None:
        if link.partial:
            return  # inside a telegram these bytes would be telegram content, modelled by `partial`
        link.feed(data, 64)
        link.expected["noise_bytes"] += len(data)
    return apply


def partial(index: int, length: int):
    def apply(link: P1UnderTest) -> None:
        if link.partial:
            link.expected["truncated"] += 1
        link.feed(TELEGRAMS[index][:length], 64)
        link.partial = True
        link.stale = False
    return apply


def oversized(link: P1UnderTest) -> None:
    if link.partial:
        link.expected["truncated"] += 1
    link.feed(b"/" + b"X" * 9000, 9001)
    link.expected["oversized"] += 1
    link.partial = False
    link.stale = False


def link_lost(link: P1UnderTest) -> None:
    link.machine.send("link_lost")
    if link.partial:
        link.expected["incomplete"] += 1
    link.stale = False


chunks = st.sampled_from([1, 7, 64, 4096])
indexes = st.integers(0, len(TELEGRAMS) - 1)
stimuli = st.one_of(
    st.builds(valid, indexes, chunks),
    st.builds(bad_crc, indexes, chunks),
    st.builds(legacy, chunks),
    # No 0xDB: a DB at the end of the noise waits for the bytes that say whether an encrypted
    # telegram begins (tests/test_p1_encrypted.py covers stray DBs).
    st.builds(noise, st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"-").replace(b"\xdb", b"-"))),
    st.builds(partial, indexes, st.integers(1, 300)),
    st.just(oversized),
    st.just(link_lost),
)


def counts_match_the_model(link: P1UnderTest) -> None:
    for cause in ("telegrams", "crc_error", "crc_missing", "truncated", "oversized", "stale", "incomplete", "noise_bytes"):
        assert link.counters[cause] == link.expected[cause], cause


def only_good_telegrams_are_published(link: P1UnderTest) -> None:
    assert len(link.published) == link.expected["telegrams"]
    for action in link.published:
        assert action.reading.meter_id in (EQUIPMENT_ID, "K8EG004046395507")
    assert all(isinstance(d, Dropped) for d in link.drops)


def codec_and_machine_agree(link: P1UnderTest) -> None:
    assert link.machine.reading.is_active == link.framer.in_telegram
    assert link.machine.stale.is_active == link.stale


invariants = [counts_match_the_model, only_good_telegrams_are_published, codec_and_machine_agree]

P1Harness = machine_harness(lambda: P1UnderTest(legacy=False), stimuli, invariants)
TestP1Reader = P1Harness.TestCase
TestP1Reader.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
P1LegacyHarness = machine_harness(lambda: P1UnderTest(legacy=True), stimuli, invariants)
TestP1LegacyReader = P1LegacyHarness.TestCase
TestP1LegacyReader.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_a_bad_identification_line_with_good_crc_is_dropped():
    """Issue 15: only the identification line fails a whole telegram now; a bad data line is
    skipped (tests/test_p1_tolerant.py)."""
    from meterlink.protocols.p1 import telegram_bytes

    link = P1UnderTest(legacy=False)
    link.feed(telegram_bytes("12345", ["1-0:1.8.1(12.3*kWh)"]), 4096)
    assert link.counters["unparseable"] == 1 and not link.published
    assert "identification line" in link.drops[0].detail


def test_rest_of_an_oversized_telegram_is_noise():
    link = P1UnderTest(legacy=False)
    link.feed(b"/" + b"X" * 9000, 512)
    assert link.counters["oversized"] == 1
    assert link.counters["noise_bytes"] == 9001 - 17 * 512
    assert link.machine.hunting.is_active


def test_silence_timeout_is_three_push_intervals():
    machine = P1Reader(push_interval=10.0)
    assert machine.pending_timeout() == (30.0, "silence")
    machine.send("start_of_telegram")
    assert machine.pending_timeout() == (2.0, "telegram_timeout")
    machine.send("link_lost")
    assert machine.is_terminated and machine.counters["incomplete"] == 1
    machine.check_timeouts()
