"""The M-Bus machines (seed 001 ch. B.4): MBusAdapter and MBusMeter.

Stateful model tests through tests/harness.py: random stimuli (search telegrams, simulator and
real telegrams in random chunk sizes, the Sagemcom frame whose L overflowed, flipped bits,
truncated frames, frames to other addresses, wrong keys and authentication keys, unsupported
security and content, replayed frame counters, out-of-order segments, noise, link lost, deadlines
passing)
against an independent model of what the machine must do with each frame the framer reports. Then
one scenario per declared transition, with its own check that every transition of both machines is
taken (so 100 % transition coverage does not depend on what hypothesis happens to draw).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import event, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st

from harness import Driver as MachineDriver
from harness import Recorder, machine_harness
from test_push_drop_causes import BODY_UNWRAPPED, EVENT_IN_CLEAR, NETZNOE, NETZNOE_APDU, NETZNOE_KEY, with_security_control
from meterlink.machines import base, transition_keys
from meterlink.machines.base import Dropped, KeyConfirmed, Publish, Send
from meterlink.machines.mbus import MBusAdapter, MBusMeter
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys, encrypt
from meterlink.protocols.mbus import (
    BadFrame,
    LongFrame,
    MBusFramer,
    Noise,
    ShortFrame,
    SingleChar,
    encode_long,
    encode_short,
    split_segments,
)
from meterlink.simulators.kaifa import DEMO_KEY, METER_NUMBER, SYSTEM_TITLE, KaifaMeterModel

DATA = Path(__file__).parent / "data"
START = datetime(2026, 11, 23, 12, 0, 0)
AUTH_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
WRONG_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
WRONG_AUTH = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF")
ACK = Send(b"\xe5")
SEARCH = encode_short(0x40, 0xF0)


def vector(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


TINETZ, GH905, GURUX, VORARLBERG, SAGEMCOM, SAGEMCOM_NOKEY = (vector(n) for n in (
    "kaifa_mbus_tinetz_doc", "kaifa_mbus_ma309_pl_gh905", "kaifa_mbus_gurux18232_nokey", "kaifa_vorarlberg_plaintext_gh539",
    "sagemcom_mbus_evn_fkw9_overflow", "sagemcom_mbus_evn_gh155_overflow_nokey"))
TINETZ_KEY = bytes.fromhex(TINETZ["key_if_any"])
KEYRING = [CipherKeys(DEMO_KEY, AUTH_KEY), CipherKeys(TINETZ_KEY), CipherKeys(bytes.fromhex(GH905["key_if_any"])),
           CipherKeys(bytes.fromhex(SAGEMCOM["key_if_any"])), CipherKeys(NETZNOE_KEY)]


def note(text: str) -> None:
    """A hypothesis event for --hypothesis-show-statistics (ignored when a plain test runs the model)."""
    try:
        event(text)
    except InvalidArgument:
        pass


# -- the telegrams the stimuli draw from ---------------------------------------------------------


@dataclass(frozen=True)
class Telegram:
    name: str
    frames: tuple[bytes, ...] = field(repr=False)
    frame_counter: int | None  # None: an unencrypted APDU
    cause: str | None  # what it is dropped as with KEYRING; None: it decodes (a plaintext one without keys too)
    meter_id: str | None = None
    captured_at: str | None = None

    @property
    def apdu(self) -> bytes:
        return b"".join(frame[9:-2] for frame in self.frames)  # 68 L L 68 C A CI 01 67 | ... | CS 16

    @property
    def data(self) -> bytes:
        return b"".join(self.frames)


def simulated(name: str, model: KaifaMeterModel, count: int, cause: str | None, first: datetime = START) -> list[Telegram]:
    telegrams = []
    for n in range(count):
        at = first + timedelta(seconds=5 * n)
        frames = tuple(model.frames(at))
        telegrams.append(Telegram(f"{name}{n}", frames, model.frame_counter, cause, METER_NUMBER, at.isoformat()))
    return telegrams


def with_checksum_fixed(frame: bytes) -> bytes:
    return frame[:-2] + bytes((sum(frame[4:-2]) & 0xFF, 0x16))


def tag_flipped(telegram: Telegram) -> Telegram:
    *head, last = telegram.frames
    at = len(last) - 2 - 5
    last = with_checksum_fixed(last[:at] + bytes((last[at] ^ 0x04,)) + last[at + 1 :])
    return Telegram(telegram.name + "-tag-flipped", (*head, last), telegram.frame_counter, "wrong_auth_key")


def real(capture: dict, frame_counter: int, cause: str | None, meter_id: str | None, captured_at: str | None) -> Telegram:
    return framed(capture["path"], bytes.fromhex(capture["hex_or_text"]), frame_counter, cause, meter_id, captured_at)


def framed(name: str, data: bytes, frame_counter: int | None, cause: str | None, meter_id: str | None = None,
           captured_at: str | None = None) -> Telegram:
    frames = tuple(encode_long(e.c, e.a, e.ci, e.data, e.length_overflow) for e in MBusFramer().feed(data))
    return Telegram(name, frames, frame_counter, cause, meter_id, captured_at)


def altered(name: str, apdu: bytes, frame_counter: int | None, cause: str) -> Telegram:
    """A real capture ALTERED as tests/test_push_drop_causes.py says, cut into frames as Kaifa meters do."""
    return Telegram(name, tuple(split_segments(apdu, 0x53, 0xFF)), frame_counter, cause)


def one_frame_plaintext() -> Telegram:
    """A data-notification short enough for one long frame (CI 0x10): 0-0:96.1.0 only."""
    apdu = bytes.fromhex("0F00000001 00 0202 0906 0000600100FF 090E") + b"1KFM0300000001"
    return Telegram("one-frame", tuple(split_segments(apdu, 0x53, 0xFF)), None, None, "1KFM0300000001", None)


SIM = simulated("sim", KaifaMeterModel(), 4, None)
TAGGED = simulated("tagged", KaifaMeterModel(auth_key=AUTH_KEY, frame_counter=0x3000), 3, None)
WRONG = simulated("wrong-key", KaifaMeterModel(key=WRONG_KEY, frame_counter=0x4000), 2, "wrong_key")
WRONG_AUTH_TELEGRAMS = simulated("wrong-auth", KaifaMeterModel(auth_key=WRONG_AUTH, frame_counter=0x5000), 2, "wrong_auth_key")
BAD_TAG = [tag_flipped(t) for t in simulated("bad-tag", KaifaMeterModel(auth_key=AUTH_KEY, frame_counter=0x6000), 1, None)]
NO_AUTH = simulated("no-auth", KaifaMeterModel(key=TINETZ_KEY, auth_key=AUTH_KEY, frame_counter=0x7000), 1, "no_auth_key")
REAL = [
    real(TINETZ, 0x00295B9A, None, "1KFM0100000035", "2021-07-19T15:46:35"),
    real(GH905, 0x00000A28, None, "1KFM0200169986", "2021-09-27T20:56:00"),
    real(GURUX, 0x0000E554, "wrong_key", None, None),
    real(SAGEMCOM, 0x00001576, None, "178210431186", "2023-04-14T17:56:05"),
    real(SAGEMCOM_NOKEY, 0x0000DC9B, "wrong_key", None, None),
    real(NETZNOE, 0x00000023, None, "181220000009", "2021-09-27T09:47:15"),
]
UNSUPPORTED_SUITE = altered("netznoe-suite-2", with_security_control(NETZNOE_APDU, 0x22), 0x00000023, "unsupported_suite")
UNSUPPORTED_LAYOUT = altered("netznoe-body-unwrapped", BODY_UNWRAPPED, 0x00000023, "unsupported_layout")
EVENT = altered("netznoe-event-in-clear", EVENT_IN_CLEAR, None, "unsupported_layout")
PLAIN = Telegram("vorarlberg-plain", tuple(split_segments(bytes.fromhex(VORARLBERG["hex_or_text"]), 0x53, 0xFF)), None, None,
                 "1KFM0200182517", "2023-04-25T10:59:30")
ONE_FRAME = one_frame_plaintext()
TELEGRAMS = [*SIM, *TAGGED, *WRONG, *WRONG_AUTH_TELEGRAMS, *BAD_TAG, *NO_AUTH, *REAL, UNSUPPORTED_SUITE, UNSUPPORTED_LAYOUT,
             EVENT, PLAIN]
KNOWN = {t.apdu: t for t in [*TELEGRAMS, ONE_FRAME]}
UNSUPPORTED = [
    encode_long(0x53, 0xFF, 0x51, bytes(8)),  # SND_UD with an M-Bus application CI, not a DLMS segment
    encode_long(0x73, 0xF0, 0xA0, bytes(12)),  # a manufacturer-specific CI
]
OMS_SPEC = json.loads((Path(__file__).parent / "data" / "amis_mbus_netzooe_spec.json").read_text())
"""Netz OÖ's AMIS example: an SND_UD whose CI (0x5B) carries an OMS telegram (tests/test_amis.py)."""
FOREIGN = [
    encode_short(0x40, 0x01),  # SND_NKE to another primary address
    encode_short(0x40, 0xFD),
    encode_short(0x5B, 0xFE),  # REQ_UD2
    encode_short(0x7B, 0xF0),
    encode_long(0x53, 0x05, 0x00, b"\x01\x67" + bytes(20)),  # a DLMS segment to another address
    encode_long(0x08, 0xF0, 0x72, bytes(12)),  # RSP_UD
    encode_long(0x5B, 0xFF, 0x00, b"\x01\x67"),
    b"\xe5",  # a single character: the meter never sends one
]


# -- the model ------------------------------------------------------------------------------


def classify(event) -> str:
    match event:
        case ShortFrame(c, a) if c in (0x40, 0x60) and a == 0xF0:
            return "search"
        case LongFrame(c, a, ci, _) if c in (0x43, 0x53, 0x63, 0x73) and a in (0xF0, 0xFF) and ci <= 0x1F:
            return "segment"
        case LongFrame(c, a, ci, _) if c in (0x43, 0x53, 0x63, 0x73) and a in (0xF0, 0xFF) and ci in (0x5A, 0x5B, 0x72, 0x78, 0x7A):
            return "oms"
        case LongFrame(c, a, ci, _) if c in (0x43, 0x53, 0x63, 0x73) and a in (0xF0, 0xFF):
            return "unsupported"
        case ShortFrame() | LongFrame() | SingleChar():
            return "foreign"
        case BadFrame():
            return "bad_frame"
        case Noise():
            return "noise"
    raise AssertionError(event)


@dataclass(frozen=True)
class Header:
    security_control: int
    frame_counter: int


def ciphered_header(apdu: bytes) -> Header | None:
    """The security header of a general-glo/ded-ciphering APDU that parses, else None."""
    if len(apdu) < 11 or apdu[0] not in (0xDB, 0xDC) or apdu[1] != 8:
        return None
    first = apdu[10]
    length, offset = first, 11
    if first >= 0x80:  # BER long form 0x8N + N bytes
        count = first & 0x7F
        if not 1 <= count <= 4 or 11 + count > len(apdu):
            return None
        length, offset = int.from_bytes(apdu[11 : 11 + count], "big"), 11 + count
    if length < 5 or offset + length > len(apdu):
        return None
    return Header(apdu[offset], int.from_bytes(apdu[offset + 1 : offset + 5], "big"))


TIMEOUTS = {"search": (130.0, "silence"), "listening": (15.0, "silence"), "joining": (3.0, "segment_timeout"), "stale": None}


class AdapterUnderTest:
    """The adapter with its framer, and a model of what it must have done."""

    def __init__(self, keys: Sequence[CipherKeys]) -> None:
        self.keys = list(keys)
        self.counters: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.published: list = []
        self.expected_published: list[tuple[str | None, str | None]] = []
        self.completed: list[bytes] = []
        self.acks = 0
        self.expected_acks = 0
        self.restart()

    def restart(self) -> None:
        """What the actor does on a new life: a new framer and a new machine; counters are kept."""
        self.framer = MBusFramer()
        self.machine = MBusAdapter(keys=lambda: self.keys, push_interval=5.0, counters=self.counters)
        self.state = "search"
        self.parts: list[bytes] = []
        self.last_frame_counter: int | None = None

    # stimuli land here
    def feed(self, data: bytes, chunk: int) -> None:
        for start in range(0, len(data), chunk):
            for event in self.framer.feed(data[start : start + chunk]):
                self.handle(event)

    def handle(self, event) -> None:
        kind = classify(event)
        epoch = self.machine.epoch
        drops, publish = self.expect(kind, event)
        self.machine.handle(event, 1700000000.0)
        actions = self.machine.take_actions()
        acked = kind in ("search", "segment", "unsupported", "oms")
        self.check(actions, acked, drops, publish)
        assert self.machine.epoch - epoch == int(acked), "only an acknowledged frame restarts the state's deadline"

    def check(self, actions: list, acked: bool, drops: list[str], publish: Telegram | None) -> None:
        sends = [a for a in actions if isinstance(a, Send)]
        assert sends == ([ACK] if acked else []), (sends, acked)
        if acked:
            assert actions[0] == ACK, "the ack goes out before anything else"
            self.expected_acks += 1
        self.acks += len(sends)
        assert [a.cause for a in actions if isinstance(a, Dropped)] == drops
        readings = [a.reading for a in actions if isinstance(a, Publish)]
        confirmed = [a.keys for a in actions if isinstance(a, KeyConfirmed)]
        if publish is None:
            assert readings == [] and confirmed == []
            return
        (reading,) = readings
        assert (reading.meter_id, reading.captured_at, reading.link) == (publish.meter_id, publish.captured_at, "mbus")
        assert reading.received_at == 1700000000.0
        self.published.append(reading)
        self.expected_published.append((publish.meter_id, publish.captured_at))
        if publish.frame_counter is None:
            assert confirmed == []
        else:
            (keys,) = confirmed
            assert keys in self.keys

    def expect(self, kind: str, event) -> tuple[list[str], Telegram | None]:
        """Update the model for one framer event: the drops and the reading it must cause."""
        if kind == "noise":
            self.expected["noise_bytes"] += event.count
            return [], None
        if kind == "bad_frame":
            self.expected["noise_bytes"] += event.noise
            return self._drop(["bad_frame"]), None
        if kind == "foreign":
            self.expected["foreign_frames"] += event.count if isinstance(event, SingleChar) else 1
            return [], None
        if kind == "unsupported":
            self.expected["unsupported_data"] += 1
            if self.state != "joining":
                self.state = "listening"
            return [], None
        if kind == "oms":
            # The AMIS example's key is in no keyring here: the telegram is dropped, never published.
            drops = self._drop(["incomplete"]) if self.state == "joining" else []
            self.state, self.parts = "listening", []
            return drops + self._drop(["wrong_key" if self.keys else "no_key"]), None
        if kind == "search":
            drops = []
            if self.state == "joining":
                drops = self._drop(["incomplete"])
            elif self.state == "listening":
                self.expected["search_in_data_mode"] += 1
            self.state, self.parts = "listening", []
            return drops, None
        return self.segment(event)

    def segment(self, frame: LongFrame) -> tuple[list[str], Telegram | None]:
        number, last = frame.ci & 0x0F, bool(frame.ci & 0x10)
        payload = frame.data[2:] if len(frame.data) >= 2 else b""
        drops: list[str] = []
        if self.state == "joining" and number == len(self.parts):
            self.parts.append(payload)
        elif number == 0:
            if self.state == "joining":
                drops = self._drop(["incomplete"])
            self.parts = [payload]
        else:
            drops = self._drop(["incomplete", "out_of_order"] if self.state == "joining" else ["out_of_order"])
            self.state, self.parts = "listening", []
            return drops, None
        if 3 + len(frame.data) > 255:  # C, A, CI and data: more than an L field holds
            self.expected["length_overflow"] += 1
        if not last:
            self.state = "joining"
            return drops, None
        self.state = "listening"
        apdu, self.parts = b"".join(self.parts), []
        self.completed.append(apdu)
        cause, telegram = self.outcome(apdu)
        note(f"adapter: telegram {cause or 'published'}")
        if cause is not None:
            return drops + self._drop([cause]), None
        return drops, telegram

    def outcome(self, apdu: bytes) -> tuple[str | None, Telegram | None]:
        """decode_push's verdict, from what the model knows of the telegram."""
        telegram = KNOWN.get(apdu)
        if telegram is not None and telegram.frame_counter is None:  # sent in clear
            return self.verdict(telegram)
        if apdu[:1] not in (b"\xdb", b"\xdc"):
            # Segments of different telegrams sent in clear: a data-notification that does not parse.
            return ("unparseable" if apdu[:1] in (b"", b"\x0f") else "unsupported_layout"), None
        header = ciphered_header(apdu)
        if header is None:
            return "unparseable", None
        if header.security_control & 0x8E:  # a suite above 1, or compression
            return "unsupported_suite", None
        if self.last_frame_counter is not None and header.frame_counter <= self.last_frame_counter:
            return "replayed", None
        if not self.keys:
            return "no_key", None
        if telegram is None:
            return self.verdict(self.mixed(apdu, header.frame_counter))
        return self.verdict(telegram)

    def mixed(self, apdu: bytes, frame_counter: int) -> Telegram:
        """Segments of different telegrams. No key makes most of them a data-notification, but
        without a tag the last bytes of a free value (the Sagemcom meter number) may be anything:
        decode_push judges those."""
        result = decode_push(apdu, self.keys, None, "mbus", None)
        if result.outcome is not Outcome.DECODED:
            return Telegram("mixed", (), frame_counter, result.outcome.value)
        note("adapter: segments of two telegrams decoded")
        return Telegram("mixed", (), frame_counter, None, result.reading.meter_id, result.reading.captured_at)

    def verdict(self, telegram: Telegram) -> tuple[str | None, Telegram | None]:
        if telegram.cause is not None:
            return telegram.cause, None
        if telegram.frame_counter is not None:
            self.last_frame_counter = telegram.frame_counter
        self.expected["telegrams"] += 1
        return None, telegram

    def _drop(self, causes: list[str]) -> list[str]:
        for cause in causes:
            self.expected[cause] += 1
        return causes

    def timed_out(self, event: str) -> None:
        actions = self.machine.take_actions()
        if event == "silence":
            assert self.state in ("search", "listening")
            self.state = "stale"
            self.expected["stale"] += 1
            assert actions == []
        else:
            assert event == "segment_timeout" and self.state == "joining"
            self.state, self.parts = "listening", []
            assert [a.cause for a in actions] == self._drop(["incomplete"])

    def lose_link(self) -> None:
        self.machine.send("link_lost")
        actions = self.machine.take_actions()
        assert [a.cause for a in actions if isinstance(a, Dropped)] == (self._drop(["incomplete"]) if self.state == "joining" else [])
        assert not any(isinstance(a, Send) for a in actions)
        assert self.machine.is_terminated
        self.state = "closed"


# -- stimuli ---------------------------------------------------------------------------------

chunks = st.sampled_from([1, 5, 64, 255, 4096])
telegrams = st.sampled_from(TELEGRAMS)


def whole(telegram: Telegram, chunk: int):
    def apply(link: AdapterUnderTest) -> None:
        clean = link.framer.pending == 0 and link.state != "joining"
        before = len(link.completed)
        link.feed(telegram.data, chunk)
        if clean:  # nothing held over: the telegram is joined on its own, from its own segments
            assert link.completed[before:] == [telegram.apdu]
    return apply


def one_frame(telegram: Telegram, index: int, chunk: int):
    return lambda link: link.feed(telegram.frames[index % len(telegram.frames)], chunk)


def reordered(telegram: Telegram, chunk: int):
    return lambda link: link.feed(b"".join(reversed(telegram.frames)), chunk)


def flipped(telegram: Telegram, bit: int, chunk: int):
    data = bytearray(telegram.data)
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return lambda link: link.feed(bytes(data), chunk)


def truncated(telegram: Telegram, length: int, chunk: int):
    return lambda link: link.feed(telegram.data[: length % len(telegram.data)], chunk)


def search(c: int):
    return lambda link: link.feed(encode_short(c, 0xF0), 5)


def single_frame_telegram(chunk: int):
    def apply(link: AdapterUnderTest) -> None:
        link.feed(ONE_FRAME.data, chunk)
    return apply


def foreign(frame: bytes):
    return lambda link: link.feed(frame, 64)


def noise(data: bytes):
    return lambda link: link.feed(data, 64)


def lose_link(link: AdapterUnderTest) -> None:
    link.lose_link()


adapter_stimuli = st.one_of(
    st.builds(search, st.sampled_from([0x40, 0x60])),
    st.builds(whole, telegrams, chunks),
    st.builds(whole, telegrams, chunks),
    st.builds(one_frame, telegrams, st.integers(0, 1), chunks),
    st.builds(reordered, telegrams, chunks),
    st.builds(flipped, telegrams, st.integers(0, 8 * 600), chunks),
    st.builds(truncated, telegrams, st.integers(1, 600), chunks),
    st.builds(single_frame_telegram, chunks),
    st.builds(foreign, st.sampled_from(FOREIGN)),
    st.builds(foreign, st.sampled_from(UNSUPPORTED)),
    st.builds(foreign, st.just(bytes.fromhex(OMS_SPEC["frame_hex"]))),
    st.builds(noise, st.binary(min_size=1, max_size=40)),
    st.just(lose_link),
)


def counters_match_the_model(link: AdapterUnderTest) -> None:
    assert +link.counters == +link.expected


def readings_only_from_telegrams_that_decoded(link: AdapterUnderTest) -> None:
    assert [(r.meter_id, r.captured_at) for r in link.published] == link.expected_published
    assert link.counters["telegrams"] == len(link.published)


def acks_for_exactly_the_frames_that_need_one(link: AdapterUnderTest) -> None:
    assert link.acks == link.expected_acks


def state_and_deadline_match_the_model(link: AdapterUnderTest) -> None:
    assert link.machine.state_name == link.state
    assert link.machine.pending_timeout() == TIMEOUTS[link.state]
    assert link.machine.is_stale == (link.state == "stale")


adapter_invariants = [counters_match_the_model, readings_only_from_telegrams_that_decoded,
                      acks_for_exactly_the_frames_that_need_one, state_and_deadline_match_the_model]

AdapterHarness = machine_harness(lambda: AdapterUnderTest(KEYRING), adapter_stimuli, adapter_invariants)
TestMBusAdapter = AdapterHarness.TestCase
TestMBusAdapter.settings = settings(max_examples=70, stateful_step_count=25, deadline=None)
NoKeyHarness = machine_harness(lambda: AdapterUnderTest([]), adapter_stimuli, adapter_invariants)
TestMBusAdapterWithoutKey = NoKeyHarness.TestCase
TestMBusAdapterWithoutKey.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


# -- the meter machine --------------------------------------------------------------------------

MISSED_ACKS_BEFORE_SEARCH = 10  # seed 001 ch. B.4: "If 10 acknowledgements are not received ..."
METER_TIMEOUTS = {
    "powering_up": (0.2, "send_search"),
    "searching": (60.0, "send_search"),
    "awaiting_search_ack": (0.5, "search_unanswered"),
    "pushing": (5.0, "send_data"),
}


def numbered_telegram(number: int) -> list[bytes]:
    payload = b"\x01\x67" + number.to_bytes(4, "big")
    return [encode_long(0x53, 0xFF, 0x00, payload), encode_long(0x53, 0xFF, 0x11, payload)]


class MeterUnderTest:
    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.restart()

    def restart(self) -> None:
        self.built = 0
        self.machine = MBusMeter(self._telegram, push_interval=5.0, search_interval=60.0, ack_timeout=0.5,
                                 power_up_delay=0.2, counters=self.counters)
        self.state = "powering_up"
        self.since_ack = 0  # data telegrams sent since the last ack

    def _telegram(self) -> list[bytes]:
        self.built += 1
        return numbered_telegram(self.built)

    def receive(self, event) -> None:
        epoch = self.machine.epoch
        self.machine.handle(event, None)
        assert self.machine.take_actions() == []
        if isinstance(event, SingleChar):
            if self.state == "awaiting_search_ack":
                self.state, self.since_ack = "pushing", 0
                assert self.machine.epoch == epoch + 1  # data mode starts its push interval afresh
                return
            if self.state == "pushing":
                self.since_ack = 0
        assert self.machine.epoch == epoch, "an ack in data mode does not move the push schedule"

    def timed_out(self, event: str) -> None:
        actions = self.machine.take_actions()
        if self.state in ("powering_up", "searching"):
            assert event == "send_search"
            self.state = "awaiting_search_ack"
            self.expected["search_telegrams"] += 1
            assert actions == [Send(SEARCH)]
        elif self.state == "awaiting_search_ack":
            assert event == "search_unanswered" and actions == []
            self.state = "searching"
        elif self.since_ack >= MISSED_ACKS_BEFORE_SEARCH:
            # The 10th telegram in a row went unacknowledged: back to search mode, nothing sent.
            assert self.since_ack == 10 and actions == []
            assert self.machine.searching.is_active
            note("meter: back to search after 10 missed acks")
            self.expected["missed_acks"] += 1
            self.expected["fallbacks_to_search"] += 1
            self.state, self.since_ack = "searching", 0
        else:
            if self.since_ack:
                self.expected["missed_acks"] += 1
            self.since_ack += 1
            self.expected["data_telegrams"] += 1
            assert actions == [Send(b"".join(numbered_telegram(self.built)))]


def meter_receives(event):
    return lambda link: link.receive(event)


def acks(count: int):
    def apply(link: MeterUnderTest) -> None:
        for _ in range(count):
            link.receive(SingleChar())
    return apply


def deadlines(count: int):
    """The meter's deadlines pass `count` times in a row with nobody answering."""
    def apply(link: MeterUnderTest) -> None:
        for _ in range(count):
            _, timeout_event = link.machine.pending_timeout()
            link.machine.send(timeout_event)
            link.timed_out(timeout_event)
    return apply


def adapter_hangs_up(link: MeterUnderTest) -> None:
    """The line closes: the meter's life ends quietly (nothing sent); the simulator starts a new one
    for the next connection."""
    link.machine.send("link_lost")
    assert link.machine.take_actions() == []
    assert link.machine.is_terminated and link.machine.pending_timeout() is None
    link.state = "closed"


meter_stimuli = st.one_of(
    st.builds(acks, st.integers(1, 3)),
    st.just(adapter_hangs_up),
    st.builds(deadlines, st.integers(1, 25)),
    st.builds(meter_receives, st.sampled_from([
        ShortFrame(0x40, 0xF0), ShortFrame(0x5B, 0xFE), LongFrame(0x53, 0xFF, 0x00, b"\x01\x67"),
        BadFrame("long frame: checksum", 1), Noise(3),
    ])),
)


def meter_state_matches(link: MeterUnderTest) -> None:
    assert link.machine.state_name == link.state
    assert link.machine.pending_timeout() == METER_TIMEOUTS[link.state]
    assert 0 <= link.since_ack <= MISSED_ACKS_BEFORE_SEARCH
    assert +link.counters == +link.expected


MeterHarness = machine_harness(MeterUnderTest, meter_stimuli, [meter_state_matches])
TestMBusMeter = MeterHarness.TestCase
TestMBusMeter.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_ten_missed_acks_send_the_meter_back_to_search_and_an_ack_keeps_it_pushing():
    meter = MeterUnderTest()
    meter.machine.send("send_search")
    meter.timed_out("send_search")
    meter.receive(SingleChar())
    for _ in range(10):
        meter.machine.send("send_data")
        meter.timed_out("send_data")
    assert meter.machine.pushing.is_active and meter.counters["missed_acks"] == 9
    meter.machine.send("send_data")
    meter.timed_out("send_data")
    assert meter.machine.searching.is_active
    assert meter.counters["missed_acks"] == 10 and meter.counters["fallbacks_to_search"] == 1
    assert meter.counters["data_telegrams"] == 10
    # Acked once in a while, the meter keeps pushing however long it runs.
    meter.machine.send("send_search")
    meter.timed_out("send_search")
    meter.receive(SingleChar())
    for n in range(50):
        meter.machine.send("send_data")
        meter.timed_out("send_data")
        if n % 9 == 8:
            meter.receive(SingleChar())
    assert meter.machine.pushing.is_active and meter.counters["fallbacks_to_search"] == 1


# -- one scenario per declared transition ------------------------------------------------------


class Driver(MachineDriver):
    """An adapter fed frame by frame, starting in `state`."""

    def __init__(self, keys: Sequence[CipherKeys] = KEYRING, state: str = "search") -> None:
        super().__init__(MBusAdapter(keys=lambda: keys), MBusFramer(), 1.0)
        {"search": lambda: None, "listening": lambda: self.feed(SEARCH),
         "joining": lambda: self.feed(SEARCH, SIM[0].frames[0]), "stale": lambda: self.send("silence")}[state]()
        assert self.machine.state_name == state
        self.actions.clear()
        self.machine.counters.clear()


THREE_SEGMENTS = split_segments(encrypt(KaifaMeterModel().plaintext(START), SYSTEM_TITLE, 0x9000, DEMO_KEY, 0x21),
                                0x53, 0xFF, max_length=0x80)
UNPARSEABLE = split_segments(b"\xdb\x07" + bytes(30), 0x53, 0xFF)
ADAPTER_STATES = ["search", "listening", "joining", "stale"]


def expect(driver: Driver, state: str, causes: list[str], readings: int = 0, acks: int = 0, **counters: int) -> None:
    assert driver.machine.state_name == state
    assert driver.causes == causes
    assert len(driver.readings) == readings
    assert driver.actions.count(ACK) == acks
    assert [a for a in driver.actions if isinstance(a, Send) and a != ACK] == []
    for name, count in counters.items():
        assert driver.machine.counters[name] == count, name


@pytest.mark.parametrize("state", ADAPTER_STATES)
def test_search_telegram(state):
    driver = Driver(state=state).feed(SEARCH)
    expect(driver, "listening", ["incomplete"] if state == "joining" else [], acks=1,
           search_in_data_mode=int(state == "listening"))


@pytest.mark.parametrize("state", ADAPTER_STATES)
def test_first_segment_starts_joining(state):
    driver = Driver(state=state).feed(SIM[1].frames[0])
    expect(driver, "joining", ["incomplete"] if state == "joining" else [], acks=1)
    expect(driver.feed(SIM[1].frames[1]), "listening", driver.causes, readings=1, acks=2, telegrams=1)


@pytest.mark.parametrize("state", ["search", "listening", "stale"])
def test_a_one_frame_telegram_is_published_at_once(state):
    expect(Driver(state=state).feed(*ONE_FRAME.frames), "listening", [], readings=1, acks=1, telegrams=1)


def test_a_one_frame_telegram_ends_a_partial_one():
    driver = Driver(state="joining").feed(*ONE_FRAME.frames)
    expect(driver, "listening", ["incomplete"], readings=1, acks=1, telegrams=1)


@pytest.mark.parametrize("state", ADAPTER_STATES)
def test_a_segment_out_of_order_is_dropped(state):
    driver = Driver(state=state).feed(THREE_SEGMENTS[2])  # CI 0x12: segment 2 where 0 (or 1) belongs
    causes = ["incomplete", "out_of_order"] if state == "joining" else ["out_of_order"]
    expect(driver, "listening", causes, acks=1, out_of_order=1)


def test_segments_in_order_join_across_three_frames():
    assert [f[6] for f in THREE_SEGMENTS] == [0x00, 0x01, 0x12]
    driver = Driver(state="listening").feed(*THREE_SEGMENTS[:2])
    expect(driver, "joining", [], acks=2)
    expect(driver.feed(THREE_SEGMENTS[2]), "listening", [], readings=1, acks=3, telegrams=1)


def test_a_telegram_restarted_mid_way_drops_the_partial_one():
    driver = Driver(state="listening").feed(*THREE_SEGMENTS[:2], *THREE_SEGMENTS)
    expect(driver, "listening", ["incomplete"], readings=1, acks=5, incomplete=1, telegrams=1)


OUTCOMES = {
    "decoded": (KEYRING, [SIM[0]], None),
    "replayed-older": (KEYRING, [SIM[1], SIM[0]], "replayed"),
    "replayed-same": (KEYRING, [SIM[1], SIM[1]], "replayed"),
    "no-key": ([], [SIM[0]], "no_key"),
    "wrong-key": (KEYRING, [WRONG[0]], "wrong_key"),
    "no-auth-key": (KEYRING, [NO_AUTH[0]], "no_auth_key"),
    "wrong-auth-key": (KEYRING, [WRONG_AUTH_TELEGRAMS[0]], "wrong_auth_key"),
    "flipped-tag": (KEYRING, [BAD_TAG[0]], "wrong_auth_key"),
    "unsupported-suite": ([], [UNSUPPORTED_SUITE], "unsupported_suite"),
    "unsupported-layout": (KEYRING, [UNSUPPORTED_LAYOUT], "unsupported_layout"),
    "event-in-clear": ([], [EVENT], "unsupported_layout"),
    "unparseable": (KEYRING, [Telegram("x", tuple(UNPARSEABLE), None, "unparseable")], "unparseable"),
    "plaintext": ([], [PLAIN], None),
    "length-overflow": (KEYRING, [REAL[3]], None),
}
"""Keys, the telegrams fed, and what the last one is dropped as (None: published)."""


@pytest.mark.parametrize(("keys", "telegrams", "cause"), OUTCOMES.values(), ids=OUTCOMES.keys())
def test_telegram_outcomes(keys, telegrams, cause):
    driver = Driver(keys=keys, state="listening")
    for telegram in telegrams:
        driver.feed(telegram.data)
    good = len(telegrams) - (cause is not None)
    expect(driver, "listening", [cause] if cause else [], readings=good, acks=sum(len(t.frames) for t in telegrams), telegrams=good)
    if cause == "replayed":
        assert driver.machine.last_frame_counter == telegrams[0].frame_counter


@pytest.mark.parametrize("state", ADAPTER_STATES)
@pytest.mark.parametrize("frame", [*FOREIGN, bytes.fromhex("1040F03116"), b"\x00\x01\x02"], ids=lambda f: f[:3].hex())
def test_frames_that_are_not_ours_are_counted_and_never_acked(state, frame):
    driver = Driver(state=state)
    epoch = driver.machine.epoch
    driver.feed(frame)
    assert driver.machine.state_name == state and driver.machine.epoch == epoch  # no deadline moved either
    assert driver.actions.count(ACK) == 0
    counted = +driver.machine.counters
    assert counted in ({"foreign_frames": 1}, {"bad_frame": 1, "noise_bytes": 4}, {"noise_bytes": 3}), counted


@pytest.mark.parametrize("state", ADAPTER_STATES)
def test_an_oms_telegram_is_acknowledged_and_published(state):
    driver = Driver(keys=[CipherKeys(bytes.fromhex(OMS_SPEC["key"]))], state=state).feed(bytes.fromhex(OMS_SPEC["frame_hex"]))
    expect(driver, "listening", ["incomplete"] if state == "joining" else [], readings=1, acks=1, telegrams=1)


@pytest.mark.parametrize("state", ADAPTER_STATES)
def test_other_data_to_us_is_acknowledged_and_counted(state):
    driver = Driver(state=state).feed(UNSUPPORTED[0])
    assert driver.actions.count(ACK) == 1
    assert driver.machine.state_name == ("joining" if state == "joining" else "listening")
    assert driver.machine.counters["unsupported_data"] == 1


@pytest.mark.parametrize("state", ["search", "listening"])
def test_silence_makes_the_link_stale(state):
    driver = Driver(state=state)
    assert driver.machine.pending_timeout() == TIMEOUTS[state]
    expect(driver.send("silence"), "stale", [], stale=1)
    assert driver.machine.is_stale and driver.machine.pending_timeout() is None


def test_a_telegram_that_stops_half_way_times_out():
    driver = Driver(state="joining")
    expect(driver.send("segment_timeout"), "listening", ["incomplete"], incomplete=1)
    assert driver.machine.pending_timeout() == (15.0, "silence")


@pytest.mark.parametrize("state", ADAPTER_STATES)
def test_link_lost_closes_the_machine(state):
    driver = Driver(state=state).send("link_lost")
    assert driver.machine.is_terminated and driver.machine.state_name == "closed"
    assert driver.causes == (["incomplete"] if state == "joining" else [])


def test_timeouts_follow_the_push_interval():
    adapter = MBusAdapter(push_interval=1.0, silence_intervals=3, search_interval=60.0, segment_gap=2.0)
    assert adapter.pending_timeout() == (130.0, "silence")
    MBusAdapter.check_timeouts()
    MBusMeter.check_timeouts()
    adapter.handle(ShortFrame(0x40, 0xF0))
    assert adapter.pending_timeout() == (3.0, "silence")


METER_PATHS = {"powering_up": [], "searching": ["send_search", "search_unanswered"], "awaiting_search_ack": ["send_search"],
               "pushing": ["send_search", "ack"]}


def meter_in(state: str) -> MeterUnderTest:
    """A meter model driven into `state` by acks and passing deadlines."""
    meter = MeterUnderTest()
    for step in METER_PATHS[state]:
        if step == "ack":
            meter.receive(SingleChar())
        else:
            meter.machine.send(step)
            meter.timed_out(step)
    assert meter.machine.state_name == state
    return meter


@pytest.mark.parametrize("state", list(METER_TIMEOUTS))
def test_meter_in_each_state(state):
    meter = meter_in(state)
    meter.receive(SingleChar())  # stray in powering_up/searching; search_acked; data_acked
    meter.receive(Noise(2))
    pending = meter.machine.pending_timeout()
    assert pending is not None
    meter.machine.send(pending[1])
    meter.timed_out(pending[1])
    meter_state_matches(meter)


@pytest.mark.parametrize("state", list(METER_TIMEOUTS))
def test_meter_stops_when_the_adapter_hangs_up(state):
    meter = meter_in(state)
    meter.machine.send("link_lost")
    assert meter.machine.is_terminated and meter.machine.pending_timeout() is None


def test_the_scenarios_take_every_declared_transition():
    """The unit tests above, run once more with a recorder: every transition of both machines."""
    recorder = Recorder()
    base.observers.append(recorder)
    try:
        for state in ADAPTER_STATES:
            test_search_telegram(state)
            test_first_segment_starts_joining(state)
            test_a_segment_out_of_order_is_dropped(state)
            test_link_lost_closes_the_machine(state)
            test_other_data_to_us_is_acknowledged_and_counted(state)
            test_an_oms_telegram_is_acknowledged_and_published(state)
            for frame in (FOREIGN[0], bytes.fromhex("1040F03116"), b"\x00\x01\x02"):
                test_frames_that_are_not_ours_are_counted_and_never_acked(state, frame)
        for state in ("search", "listening", "stale"):
            test_a_one_frame_telegram_is_published_at_once(state)
        for state in ("search", "listening"):
            test_silence_makes_the_link_stale(state)
        test_segments_in_order_join_across_three_frames()
        test_a_telegram_restarted_mid_way_drops_the_partial_one()
        test_a_telegram_that_stops_half_way_times_out()
        for keys, telegrams, cause in OUTCOMES.values():
            test_telegram_outcomes(keys, telegrams, cause)
        test_a_one_frame_telegram_ends_a_partial_one()
        for state in METER_TIMEOUTS:
            test_meter_in_each_state(state)
            test_meter_stops_when_the_adapter_hangs_up(state)
        test_ten_missed_acks_send_the_meter_back_to_search_and_an_ack_keeps_it_pushing()
    finally:
        base.observers.remove(recorder)
    for machine in (MBusAdapter, MBusMeter):
        missing = [str(key) for key in transition_keys(machine) if key not in recorder.taken]
        assert missing == [], missing
