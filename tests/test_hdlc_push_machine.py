"""The HDLC push machine, HdlcPushReader (issue 14 item 1).

Stateful model tests through tests/harness.py: the simulated meter's notifications (every list
style, in clear, encrypted with and without tag, in one frame, in segments, in general-block-transfer
blocks and both) and real captures, through a line that drops, repeats, reorders, corrupts and cuts
frames, in random chunk sizes, with noise, a client's session and stray frames between, deadlines
passing and the link lost, against a model of what the machine must do with each event the framer
reports. Then one scenario per declared transition, with its own check that each is taken.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from harness import Driver as MachineDriver
from harness import Recorder, machine_harness
from kamstrup_session import exchanges
from test_mbus_machine import note
from test_push_drop_causes import GH501_APDU, GH501_AUTH, GH501_KEY, GH501_PLAINTEXT, reciphered, with_security_control
from meterlink.machines import base, transition_keys
from meterlink.machines.base import Dropped, KeyConfirmed, Publish, Resync, Send
from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.protocols.dlms.gbt import Block, parse_block
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.framing import BadFrame, Noise
from meterlink.protocols.hdlc import Address, Control, Frame, FrameType, HdlcFramer, Partial, Quiet
from meterlink.simulators.hdlc_push import HdlcPushMeterModel, Layout, push_frames
from meterlink.simulators.kaifa import DEMO_KEY

DATA = Path(__file__).parent / "data"
START = datetime(2026, 11, 23, 12, 0, 0)
RECEIVED_AT = 1700000000.0
AUTH_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
WRONG_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
WRONG_AUTH = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF")
LLC = (b"\xe6\xe7\x00", b"\xe6\xe6\x00")
PUSHED = {0x0F, 0xC2, 0xCA, 0xD2, 0xDB, 0xDC}
"""data-notification, event-notification (in clear, glo-, ded-), general-glo and -ded-ciphering."""


def capture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def keys_of(found: dict) -> CipherKeys:
    auth = found.get("auth_key_if_any")
    return CipherKeys(bytes.fromhex(found["key_if_any"]), bytes.fromhex(auth) if auth else None)


# -- the notifications the stimuli draw from -----------------------------------------------------


@dataclass(frozen=True)
class Notification:
    name: str
    frames: tuple[bytes, ...] = field(repr=False)
    apdu: bytes = field(repr=False)
    """What the machine hands decode_push: the joined segments or blocks, without the LLC header."""
    cause: str | None = None
    """What it is dropped as with KEYRING (unless replayed); None: it decodes."""

    @property
    def data(self) -> bytes:
        return b"".join(self.frames)


def simulated(name: str, count: int, cause: str | None = None, **model: object) -> list[Notification]:
    meter = HdlcPushMeterModel(**model)  # type: ignore[arg-type]
    notifications = []
    for n in range(count):
        apdu = meter.apdu(START + timedelta(seconds=10 * n))
        frames = tuple(push_frames(apdu, meter.segmented, meter.blocks))
        notifications.append(Notification(f"{name}{n}", frames, apdu, cause))
    return notifications


def parsed(*raw: bytes) -> list[Frame]:
    return [event for event in HdlcFramer().feed(b"".join(raw)) if isinstance(event, Frame)]


def real(name: str, cause: str | None = None) -> Notification:
    """A capture of one frame: its APDU follows the LLC header."""
    raw = bytes.fromhex(capture(name)["hex_or_text"])
    (frame,) = parsed(raw)
    return Notification(name, (raw,), frame.information[3:], cause)


def altered(name: str, apdu: bytes, cause: str) -> Notification:
    return Notification(name, tuple(push_frames(apdu)), apdu, cause)


GH787, GH501, WIENER, SHRDZM = (capture(n) for n in (
    "iskra_hdlc_kaerntennetz_gh787", "landisgyr_hdlc_netzburgenland_gh501", "iskra_hdlc_wienernetze_rddl", "iskra_am550_hdlc_shrdzm"))
KEYRING = [CipherKeys(DEMO_KEY, AUTH_KEY), keys_of(GH787), keys_of(GH501), keys_of(WIENER), keys_of(SHRDZM)]
NRD = capture("landisgyr_hdlc_gbt_nrd")
GBT_REAL = Notification("nrd-gbt", tuple(bytes.fromhex(f) for f in NRD["frames"]),
                        bytes.fromhex(NRD["expected_values_if_given"]["joined_block_data_hex_verified_by_us"]))

SIM = simulated("plain", 2)
SEGMENTED = simulated("segmented", 2, key=DEMO_KEY, segmented=True, frame_counter=0x2000)
BLOCKS = simulated("blocks", 2, key=DEMO_KEY, auth_key=AUTH_KEY, blocks=True, frame_counter=0x3000)
BOTH = simulated("aidon-segmented-blocks", 1, layout=Layout.AIDON, segmented=True, blocks=True, seed=2)
KAMSTRUP = simulated("kamstrup", 1, layout=Layout.KAMSTRUP, key=DEMO_KEY, frame_counter=0x4000)
KAIFA = simulated("kaifa", 1, layout=Layout.KAIFA, segmented=True)
WRONG = simulated("wrong-key", 1, "wrong_key", key=WRONG_KEY, frame_counter=0x5000)
WRONG_AUTH_SIM = simulated("wrong-auth", 1, "wrong_auth_key", key=DEMO_KEY, auth_key=WRONG_AUTH, frame_counter=0x6000)
NO_AUTH = simulated("no-auth", 1, "no_auth_key", key=bytes.fromhex(GH787["key_if_any"]), auth_key=AUTH_KEY,
                    frame_counter=0x7000)
REAL = [real(n) for n in ("iskra_hdlc_kaerntennetz_gh787", "landisgyr_hdlc_netzburgenland_gh501", "iskra_hdlc_wienernetze_rddl",
                          "iskra_am550_hdlc_shrdzm", "kamstrup_han_gh216-1", "kamstrup_han_gh741-1", "aidon_hdlc_gh1119")]
SUITE = altered("gh501-suite-2", with_security_control(GH501_APDU, 0x32), "unsupported_suite")
EVENT = altered("gh501-event", reciphered(GH501_APDU, bytes((0xC2,)) + GH501_PLAINTEXT[1:], GH501_KEY, GH501_AUTH),
                "unsupported_layout")
BAD_BLOCK_APDU = bytes.fromhex("E0C000010000FF") + bytes(3)
"""A last block whose length byte says 255 and 3 bytes follow."""
BAD_BLOCK = Notification("bad-block", tuple(push_frames(BAD_BLOCK_APDU)), BAD_BLOCK_APDU, "unparseable")
NOTIFICATIONS = [*SIM, *SEGMENTED, *BLOCKS, *BOTH, *KAMSTRUP, *KAIFA, *WRONG, *WRONG_AUTH_SIM, *NO_AUTH, *REAL, GBT_REAL,
                 SUITE, EVENT]
KNOWN = {n.apdu: n for n in NOTIFICATIONS}
SESSION = b"".join(x.request + x.response for x in exchanges("public_association"))
"""A client's session (seed 002 ch. 4.1): SNRM/UA, then AARQ, AARE, GET and its answer in I-frames."""
CLIENT, METER = Address.client(16), Address.server(1)
STRAY = [Frame(METER, CLIENT, Control(kind)).to_bytes() for kind in (FrameType.SNRM, FrameType.DISC, FrameType.RR)]
STRAY.append(Frame(CLIENT, METER, Control(FrameType.UI)).to_bytes())  # a UI frame without information


# -- the model ------------------------------------------------------------------------------------

TIMEOUTS = {"listening": [("silence", 30.0)], "segments": [("inter_frame_timeout", 2.0)],
            "blocks": [("inter_frame_timeout", 2.0)], "stale": []}
RECEIVING = [("inter_octet_timeout", 0.5)]


class ReaderUnderTest:
    """The machine with its framer, and a model of what it must have done."""

    def __init__(self, keys: Sequence[CipherKeys]) -> None:
        self.keys = list(keys)
        self.counters: Counter[str] = Counter()
        self.expected: Counter[str] = Counter()
        self.published: list = []
        self.completed: list[bytes] = []
        self.restart()

    def restart(self) -> None:
        """A new life, as the actor's: framer and machine afresh, counters and frame counter floor kept."""
        floor = getattr(self, "last_frame_counter", None)
        self.framer = HdlcFramer()
        self.machine = HdlcPushReader(keys=lambda: self.keys, counters=self.counters)
        self.machine.last_frame_counter = self.last_frame_counter = floor
        self.state, self.receiving = "listening", False
        self.parts: list[bytes] = []
        self.blocks: list[bytes] = []

    def feed(self, data: bytes, chunk: int) -> None:
        for start in range(0, len(data), chunk):
            for event in self.framer.feed(data[start : start + chunk]):
                self.handle(event)

    def handle(self, event: object) -> None:
        drops, reading = self.expect(event)
        self.machine.handle(event, RECEIVED_AT)
        self.check(self.machine.take_actions(), drops, reading)

    def check(self, actions: list, drops: list[str], reading: object) -> None:
        assert not any(isinstance(a, (Send, Resync)) for a in actions), "a push reader sends nothing, resyncs only on a timeout"
        assert [a.cause for a in actions if isinstance(a, Dropped)] == drops
        readings = [a.reading for a in actions if isinstance(a, Publish)]
        confirmed = [a.keys for a in actions if isinstance(a, KeyConfirmed)]
        if reading is None:
            assert readings == [] and confirmed == []
            return
        (published,) = readings
        assert published == reading
        self.published.append(published)
        assert all(keys in self.keys for keys in confirmed)

    # -- what the machine must do -------------------------------------------------------------

    def expect(self, event: object) -> tuple[list[str], object]:
        match event:
            case Partial():
                self.receiving = True
            case Quiet():
                self.receiving = False
            case Noise(count):
                self.expected["noise_bytes"] += count
            case BadFrame():
                self.expected["noise_bytes"] += event.noise
                return self._drop("bad_frame"), None
            case Frame() if event.kind in (FrameType.UI, FrameType.I) and event.information:
                return self.frame(event)
            case Frame():
                self.expected["stray_frames"] += 1
        return [], None

    def frame(self, frame: Frame) -> tuple[list[str], object]:
        info = frame.information
        first = info[:3] in LLC
        drops: list[str] = []
        if self.state == "segments":
            if first:
                drops = self._drop("incomplete")
                self.parts, self.blocks = [], []
            self.parts.append(info)
        elif first or (self.state == "blocks" and info[:1] == b"\xe0"):
            self.parts = [info]
        else:
            drops = self._drop("incomplete") if self.state == "blocks" else []
            self.state, self.blocks = "listening", []
            return drops + self._drop("out_of_order"), None
        if frame.segmented:
            self.state = "segments"
            return drops, None
        information, self.parts = b"".join(self.parts), []
        self.state = "blocks" if self.blocks else "listening"
        more, reading = self.apdu(information[3:] if information[:3] in LLC else information)
        return drops + more, reading

    def apdu(self, apdu: bytes) -> tuple[list[str], object]:
        if apdu[:1] == b"\xe0":
            return self.block(apdu)
        if not apdu or apdu[0] not in PUSHED:
            self.expected["foreign_apdus"] += 1
            return [], None
        drops = self._drop_blocks()
        return self.telegram(apdu, drops)

    def block(self, apdu: bytes) -> tuple[list[str], object]:
        try:
            block = parse_block(apdu)
        except ProtocolError:
            return self._drop_blocks() + self._drop("unparseable"), None
        drops: list[str] = []
        if block.number != len(self.blocks) + 1:
            if block.number != 1:
                return self._drop_blocks() + self._drop("out_of_order"), None
            drops = self._drop_blocks()
        self.blocks.append(block.data)
        if not block.last:
            self.state = "blocks"
            return drops, None
        joined = b"".join(self.blocks)
        self.blocks, self.state = [], "listening"
        return self.telegram(joined, drops)

    def telegram(self, apdu: bytes, drops: list[str]) -> tuple[list[str], object]:
        """decode_push's verdict; for a notification the model knows, the one it must have."""
        self.completed.append(apdu)
        result = decode_push(apdu, self.keys, self.last_frame_counter, "hdlc-push", RECEIVED_AT)
        known = KNOWN.get(apdu) if self.keys == KEYRING else None
        if known is not None and result.outcome is not Outcome.REPLAYED:
            assert result.outcome.value == (known.cause or "decoded"), known.name
        note(f"hdlc push: telegram {result.outcome.value}")
        if result.outcome is not Outcome.DECODED:
            return drops + self._drop(result.outcome.value), None
        if result.frame_counter is not None:
            self.last_frame_counter = result.frame_counter
        self.expected["telegrams"] += 1
        return drops, result.reading

    def _drop_blocks(self) -> list[str]:
        held, self.blocks, self.state = bool(self.blocks), [], "listening"
        return self._drop("incomplete") if held else []

    def _drop(self, cause: str) -> list[str]:
        self.expected[cause] += 1
        return [cause]

    # -- deadlines and the line ----------------------------------------------------------------

    def timed_out(self, event: str) -> None:
        actions = self.machine.take_actions()
        causes = [a.cause for a in actions if isinstance(a, Dropped)]
        if event == "silence":
            assert self.state == "listening" and causes == []
            self.state = "stale"
            self.expected["stale"] += 1
        elif event == "inter_frame_timeout":
            assert self.state in ("segments", "blocks")
            self.state, self.parts, self.blocks = "listening", [], []
            assert causes == self._drop("incomplete")
        else:
            assert event == "inter_octet_timeout" and self.receiving
            assert Resync() in actions and causes == self._drop("stalled_frame")
            self.framer.reset()  # as the actor carries out Resync
            self.receiving = False

    def lose_link(self) -> None:
        self.machine.send("link_lost")
        causes = [a.cause for a in self.machine.take_actions() if isinstance(a, Dropped)]
        assert causes == (self._drop("incomplete") if self.state in ("segments", "blocks") else [])
        assert self.machine.is_terminated and self.machine.pending_timeout() is None
        self.state = "closed"


# -- stimuli -------------------------------------------------------------------------------------

chunks = st.sampled_from([5, 64, 300, 4096])
notifications = st.sampled_from(NOTIFICATIONS)


def whole(notification: Notification, chunk: int):
    def apply(link: ReaderUnderTest) -> None:
        clean = link.framer.pending == 0
        before = len(link.completed)
        link.feed(notification.data, chunk)
        if clean:  # no reading lost that arrived intact, whatever the machine held
            assert link.completed[before:] == [notification.apdu], notification.name
    return apply


def frames_of(notification: Notification, order: list[int], chunk: int):
    """The notification's frames in `order` (indices wrap): some lost, repeated or reordered."""
    frames = notification.frames
    return lambda link: link.feed(b"".join(frames[i % len(frames)] for i in order), chunk)


def flipped(notification: Notification, bit: int, chunk: int):
    data = bytearray(notification.data)
    data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
    return lambda link: link.feed(bytes(data), chunk)


def truncated(notification: Notification, length: int, chunk: int):
    return lambda link: link.feed(notification.data[: length % len(notification.data)], chunk)


def fed(data: bytes, chunk: int):
    return lambda link: link.feed(data, chunk)


def lose_link(link: ReaderUnderTest) -> None:
    link.lose_link()


reader_stimuli = st.one_of(
    st.builds(whole, notifications, chunks),
    st.builds(whole, notifications, chunks),
    st.builds(frames_of, notifications, st.lists(st.integers(0, 7), min_size=1, max_size=6), chunks),
    st.builds(flipped, notifications, st.integers(0, 8 * 700), chunks),
    st.builds(truncated, notifications, st.integers(1, 700), chunks),
    st.builds(fed, st.sampled_from([SESSION, *STRAY, BAD_BLOCK.data]), chunks),
    st.builds(fed, st.binary(min_size=1, max_size=40), chunks),
    st.just(lose_link),
)


def counters_match_the_model(link: ReaderUnderTest) -> None:
    assert +link.counters == +link.expected


def readings_only_from_notifications_that_decoded(link: ReaderUnderTest) -> None:
    assert link.counters["telegrams"] == len(link.published)


def state_and_deadlines_match_the_model(link: ReaderUnderTest) -> None:
    machine = link.machine
    assert machine.state_name == f"{link.state},{'receiving' if link.receiving else 'quiet'}"
    expected = TIMEOUTS[link.state] + (RECEIVING if link.receiving else [])
    assert [(timeout.event, seconds) for timeout, seconds in machine.active_timeouts()] == expected
    assert link.receiving == (link.framer.pending > 0), "the receiver knows whether the framer holds a frame"
    assert machine.holds_partial == (link.state in ("segments", "blocks"))


reader_invariants = [counters_match_the_model, readings_only_from_notifications_that_decoded,
                     state_and_deadlines_match_the_model]

ReaderHarness = machine_harness(lambda: ReaderUnderTest(KEYRING), reader_stimuli, reader_invariants)
TestHdlcPushReader = ReaderHarness.TestCase
TestHdlcPushReader.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
NoKeyHarness = machine_harness(lambda: ReaderUnderTest([]), reader_stimuli, reader_invariants)
TestHdlcPushReaderWithoutKey = NoKeyHarness.TestCase
TestHdlcPushReaderWithoutKey.settings = settings(max_examples=15, stateful_step_count=20, deadline=None)


# -- one scenario per declared transition --------------------------------------------------------


class Driver(MachineDriver):
    """A reader fed frame by frame (or event by event), starting in `state`."""

    def __init__(self, state: str = "listening", keys: Sequence[CipherKeys] = KEYRING) -> None:
        super().__init__(HdlcPushReader(keys=lambda: keys), HdlcFramer(), RECEIVED_AT)
        {"listening": lambda: None, "segments": lambda: self.feed(SEGMENTED[0].frames[0]),
         "blocks": lambda: self.feed(BLOCKS[0].frames[0]), "stale": lambda: self.send("silence")}[state]()
        assert self.machine.state_name == f"{state},quiet"
        self.actions.clear()
        self.machine.counters.clear()


def expect(driver: Driver, state: str, causes: list[str], readings: int = 0, **counters: int) -> None:
    assert driver.machine.state_name.split(",")[0] == state
    assert driver.causes == causes
    assert len(driver.readings) == readings
    for name, count in counters.items():
        assert driver.machine.counters[name] == count, name


def ui(information: bytes, segmented: bool = False) -> bytes:
    return Frame(CLIENT, METER, Control(FrameType.UI), information, segmented).to_bytes()


def i_frame(information: bytes) -> bytes:
    return Frame(CLIENT, METER, Control(FrameType.I), information).to_bytes()


def block(number: int, last: bool, data: bytes = b"\x00" * 8) -> bytes:
    return Block(number, last, data).to_bytes()


PLAIN = SIM[0]
CONTINUATION = SEGMENTED[1].frames[1]
"""A segment that is not a notification's first (no LLC header), with the segmentation bit set."""
LAST_CONTINUATION = SEGMENTED[1].frames[-1]
PUSH_STATES = ["listening", "segments", "blocks", "stale"]


def test_the_simulator_frames_every_way_the_meters_do():
    def shape(notification: Notification) -> list[tuple[bytes, bool]]:
        return [(frame.information[:1], frame.segmented) for frame in parsed(*notification.frames)]

    assert shape(SIM[0]) == [(b"\xe6", False)]
    segmented = shape(SEGMENTED[0])
    assert len(segmented) >= 3 and segmented[0][0] == b"\xe6" and [s for _, s in segmented] == [True] * (len(segmented) - 1) + [False]
    # Blocks after the first go without the LLC header, as the L+G E450 sends them.
    assert shape(BLOCKS[0]) == [(b"\xe6", False)] + [(b"\xe0", False)] * (len(BLOCKS[0].frames) - 1)
    assert shape(BOTH[0])[0] == (b"\xe6", True) and (b"\xe0", False) in shape(BOTH[0]), "block 1 in segments"


@pytest.mark.parametrize("state", ["listening", "stale"])
def test_a_first_segment_starts_joining(state):
    driver = Driver(state).feed(SEGMENTED[1].frames[0])
    expect(driver, "segments", [])
    expect(driver.feed(*SEGMENTED[1].frames[1:]), "listening", [], readings=1, telegrams=1)


def test_a_first_segment_drops_the_segments_held():
    driver = Driver("segments").feed(*SEGMENTED[1].frames)
    expect(driver, "listening", ["incomplete"], readings=1, incomplete=1, telegrams=1)


def test_segmented_blocks_are_joined():
    driver = Driver().feed(*BOTH[0].frames)
    expect(driver, "listening", [], readings=1, telegrams=1)


def test_the_next_block_in_segments_with_the_llc_header():
    first = parse_block(parsed(BLOCKS[0].frames[0])[0].information[3:])
    information = b"\xe6\xe7\x00" + Block(2, True, BLOCKS[0].apdu[len(first.data) :]).to_bytes()
    driver = Driver("blocks").feed(ui(information[:20], segmented=True))
    expect(driver, "segments", [])
    expect(driver.feed(ui(information[20:])), "listening", [], readings=1, telegrams=1)


@pytest.mark.parametrize("state", ["listening", "stale"])
def test_a_segment_without_its_first_is_out_of_order(state):
    expect(Driver(state).feed(CONTINUATION), "listening", ["out_of_order"], out_of_order=1)
    expect(Driver(state).feed(LAST_CONTINUATION), "listening", ["out_of_order"], out_of_order=1)


def test_a_segment_without_its_first_while_blocks_are_held():
    expect(Driver("blocks").feed(CONTINUATION), "listening", ["incomplete", "out_of_order"])
    expect(Driver("blocks").feed(LAST_CONTINUATION), "listening", ["incomplete", "out_of_order"])


def test_segments_in_order_are_joined():
    driver = Driver("segments").feed(*SEGMENTED[0].frames[1:-1])
    expect(driver, "segments", [])
    expect(driver.feed(SEGMENTED[0].frames[-1]), "listening", [], readings=1, telegrams=1)


@pytest.mark.parametrize("state", ["listening", "stale"])
def test_a_notification_in_one_frame_is_published_at_once(state):
    expect(Driver(state).feed(*PLAIN.frames), "listening", [], readings=1, telegrams=1)


def test_a_notification_in_one_frame_ends_the_segments_held():
    expect(Driver("segments").feed(*PLAIN.frames), "listening", ["incomplete"], readings=1, telegrams=1)


def test_blocks_in_order_are_joined():
    driver = Driver().feed(BLOCKS[1].frames[0])
    expect(driver, "blocks", [])
    expect(driver.feed(*BLOCKS[1].frames[1:-1]), "blocks", [])
    expect(driver.feed(BLOCKS[1].frames[-1]), "listening", [], readings=1, telegrams=1)


def test_a_real_general_block_transfer_is_joined():
    driver = Driver(keys=[]).feed(*GBT_REAL.frames)
    expect(driver, "listening", [], readings=1, telegrams=1)


GET_REQUEST = i_frame(b"\xe6\xe6\x00" + bytes.fromhex("C0018100010101000001FF0200"))
"""A client's GET in an I-frame (seed 002 ch. 4.1): no push."""
APDU_CASES = {
    # state, frames, push state after, causes, readings, foreign APDUs
    "one-block": ("listening", [ui(b"\xe6\xe7\x00" + block(1, True, PLAIN.apdu))], "listening", [], 1, 0),
    "block-2-alone": ("listening", [ui(b"\xe6\xe7\x00" + block(2, False))], "listening", ["out_of_order"], 0, 0),
    "bad-block": ("listening", [ui(b"\xe6\xe7\x00" + BAD_BLOCK_APDU)], "listening", ["unparseable"], 0, 0),
    "block-1-again": ("blocks", [ui(b"\xe6\xe7\x00" + block(1, False))], "blocks", ["incomplete"], 0, 0),
    "block-1-again-last": ("blocks", [ui(b"\xe6\xe7\x00" + block(1, True, PLAIN.apdu))], "listening", ["incomplete"], 1, 0),
    "block-3-after-1": ("blocks", [ui(block(3, False))], "listening", ["incomplete", "out_of_order"], 0, 0),
    "bad-block-while-held": ("blocks", [ui(BAD_BLOCK_APDU)], "listening", ["incomplete", "unparseable"], 0, 0),
    "notification-while-held": ("blocks", list(PLAIN.frames), "listening", ["incomplete"], 1, 0),
    "session-while-held": ("blocks", [GET_REQUEST], "blocks", [], 0, 1),
    "session": ("listening", [GET_REQUEST], "listening", [], 0, 1),
}


@pytest.mark.parametrize(("state", "frames", "after", "causes", "readings", "foreign"), APDU_CASES.values(),
                         ids=APDU_CASES.keys())
def test_apdus(state, frames, after, causes, readings, foreign):
    driver = Driver(state).feed(*frames)
    expect(driver, after, causes, readings=readings, foreign_apdus=foreign)


OUTCOMES = {
    "decoded": (KEYRING, [SEGMENTED[0]], None),
    "replayed": (KEYRING, [BLOCKS[1], BLOCKS[0]], "replayed"),
    "no-key": ([], [SEGMENTED[0]], "no_key"),
    "wrong-key": (KEYRING, WRONG, "wrong_key"),
    "no-auth-key": (KEYRING, NO_AUTH, "no_auth_key"),
    "wrong-auth-key": (KEYRING, WRONG_AUTH_SIM, "wrong_auth_key"),
    "unsupported-suite": (KEYRING, [SUITE], "unsupported_suite"),
    "unsupported-layout": (KEYRING, [EVENT], "unsupported_layout"),
    "unparseable": (KEYRING, [altered("short", bytes.fromhex("DB07") + bytes(30), "unparseable")], "unparseable"),
}
"""Keys, the notifications fed, and what the last one is dropped as (None: published)."""


@pytest.mark.parametrize(("keys", "fed", "cause"), OUTCOMES.values(), ids=OUTCOMES.keys())
def test_telegram_outcomes(keys, fed, cause):
    driver = Driver(keys=keys)
    for notification in fed:
        driver.feed(*notification.frames)
    good = len(fed) - (cause is not None)
    expect(driver, "listening", [cause] if cause else [], readings=good, telegrams=good)


@pytest.mark.parametrize("state", ["segments", "blocks"])
def test_bytes_arriving_restart_the_inter_frame_deadline(state):
    driver = Driver(state)
    entered = driver.machine.entries[state]
    driver.handle(Partial(5), Partial(9))
    assert driver.machine.entries[state] == entered + 2 and driver.machine.state_name == f"{state},receiving"
    expect(driver.handle(Quiet()), state, [])
    assert driver.machine.state_name == f"{state},quiet"


def test_silence_makes_the_link_stale():
    driver = Driver()
    assert driver.machine.pending_timeout() == (30.0, "silence")
    expect(driver.send("silence"), "stale", [], stale=1)
    assert driver.machine.pending_timeout() is None


@pytest.mark.parametrize("state", ["segments", "blocks"])
def test_a_notification_that_stops_half_way_times_out(state):
    driver = Driver(state)
    assert driver.machine.pending_timeout() == (2.0, "inter_frame_timeout")
    expect(driver.send("inter_frame_timeout"), "listening", ["incomplete"], incomplete=1)
    expect(driver.feed(*PLAIN.frames), "listening", ["incomplete"], readings=1)


@pytest.mark.parametrize("state", ["listening", "segments"])
def test_a_frame_that_stops_is_discarded_after_the_inter_octet_timeout(state):
    driver = Driver(state).feed(PLAIN.frames[0][:40])
    assert driver.machine.state_name == f"{state},receiving"
    assert driver.machine.active_timeouts()[-1][1] == 0.5
    driver.send("inter_octet_timeout")
    assert Resync() in driver.actions and driver.causes == ["stalled_frame"]
    assert driver.machine.state_name == f"{state},quiet"


@pytest.mark.parametrize("receiving", [False, True])
def test_noise_bad_and_stray_frames_are_counted_between_and_inside_frames(receiving):
    driver = Driver()
    if receiving:
        driver.handle(Partial(3))
    epoch = driver.machine.epoch
    driver.handle(Noise(4), BadFrame("checksum", 5, noise=4), Frame(METER, CLIENT, Control(FrameType.RR)))
    assert driver.machine.epoch == epoch, "nothing between frames moves a deadline"
    assert +driver.machine.counters == {"noise_bytes": 8, "bad_frame": 1, "stray_frames": 1}
    assert driver.causes == ["bad_frame"]


def test_a_frame_ending_the_read_brings_the_receiver_back_between_frames():
    driver = Driver().feed(PLAIN.frames[0][:30])
    assert driver.machine.state_name == "listening,receiving"
    driver.feed(PLAIN.frames[0][30:])
    assert driver.machine.state_name == "listening,quiet" and len(driver.readings) == 1


@pytest.mark.parametrize("state", PUSH_STATES)
def test_link_lost_closes_the_machine(state):
    driver = Driver(state).send("link_lost")
    assert driver.machine.is_terminated and driver.machine.state_name == "closed"
    assert driver.causes == (["incomplete"] if state in ("segments", "blocks") else [])


def test_timeouts_follow_the_push_interval():
    HdlcPushReader.check_timeouts()
    reader = HdlcPushReader(push_interval=2.5, silence_intervals=4, inter_frame=1.0, inter_octet=0.2)
    assert reader.pending_timeout() == (10.0, "silence")
    reader.handle(Partial(3))
    assert [seconds for _, seconds in reader.active_timeouts()] == [10.0, 0.2]


def test_the_scenarios_take_every_declared_transition():
    """The scenarios above, run once more with a recorder: every transition of the machine."""
    recorder = Recorder()
    base.observers.append(recorder)
    try:
        for state in ("listening", "stale"):
            test_a_first_segment_starts_joining(state)
            test_a_segment_without_its_first_is_out_of_order(state)
            test_a_notification_in_one_frame_is_published_at_once(state)
        test_a_first_segment_drops_the_segments_held()
        test_segmented_blocks_are_joined()
        test_the_next_block_in_segments_with_the_llc_header()
        test_a_segment_without_its_first_while_blocks_are_held()
        test_segments_in_order_are_joined()
        test_a_notification_in_one_frame_ends_the_segments_held()
        test_blocks_in_order_are_joined()
        test_a_real_general_block_transfer_is_joined()
        for case in APDU_CASES.values():
            test_apdus(*case)
        for case in OUTCOMES.values():
            test_telegram_outcomes(*case)
        for state in ("segments", "blocks"):
            test_bytes_arriving_restart_the_inter_frame_deadline(state)
            test_a_notification_that_stops_half_way_times_out(state)
        test_silence_makes_the_link_stale()
        for state in ("listening", "segments"):
            test_a_frame_that_stops_is_discarded_after_the_inter_octet_timeout(state)
        for receiving in (False, True):
            test_noise_bad_and_stray_frames_are_counted_between_and_inside_frames(receiving)
        test_a_frame_ending_the_read_brings_the_receiver_back_between_frames()
        for state in PUSH_STATES:
            test_link_lost_closes_the_machine(state)
    finally:
        base.observers.remove(recorder)
    missing = [str(key) for key in transition_keys(HdlcPushReader) if key not in recorder.taken]
    assert missing == [], missing
