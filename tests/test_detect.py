"""`meterlink detect` below the transport (issue 15 item 3).

Real captures others published are sent as their meters send them (the meter's serial setting), and
each usual setting hears what a UART at that setting reads from the line (tests/uart.py): a pty
would pass the bytes whatever the setting, so the wrong settings are tested here. The detector must
recognise each meter at the settings that read its bytes unchanged and at no other, and the search
over the usual settings must report the meter's own setting (8E1 before 8N1, which also reads an
8E1 meter). Time is trio's MockClock: the listening times pass without waiting.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st

from harness import Driver, Recorder, machine_harness
from uart import received
from meterlink.actors.link import LinkStatus
from meterlink.machines import base, transition_keys
from meterlink.machines.base import Send
from meterlink.machines.detect import DEFAULT_LISTEN_TIME, SEARCH_LISTEN_TIME, Detector, Heard, Probes, Reply
from meterlink.protocols.detect import Framing, ciphered_title, maker_of, p1_framing, push_interval
from meterlink.protocols.dlms.push import Outcome
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.p1 import P1Framer
from meterlink.service.config import LinkSection
from meterlink.service.detect import USUAL_SETTINGS, Found, NotFound, detect, link_block, notes, report, summary
from meterlink.transports import SerialSettings

DATA = Path(__file__).parent / "data"
P1_8N1 = SerialSettings(115200, 8, "N", 1)
MBUS_8E1 = SerialSettings(2400, 8, "E", 1)
HAN_8N1 = SerialSettings(2400, 8, "N", 1)
WRONG_KEY = CipherKeys(bytes.fromhex("000102030405060708090A0B0C0D0E0F"))


def capture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def hex_of(name: str) -> bytes:
    return bytes.fromhex(capture(name)["hex_or_text"])


def key_of(name: str) -> CipherKeys:
    found = capture(name)
    auth = found.get("auth_key_if_any")
    return CipherKeys(bytes.fromhex(found["key_if_any"]), bytes.fromhex(auth) if auth else None)


@dataclass(frozen=True)
class Meter:
    """A real meter's telegram, the setting it sends at, and what detection must say of it."""

    name: str
    telegram: bytes
    serial: SerialSettings
    framing: Framing
    interval: float
    maker: str | None = None
    keys: CipherKeys | None = None


METERS = [
    # e-MUCs P1 (seed 003 annex B 5.2, its CRC as a meter computes it)
    Meter("emucs-p1", (DATA / "emucs_p1_3phase.txt").read_bytes(), P1_8N1, Framing.P1, 1.0),
    # Landis+Gyr E350, DSMR 4.2 (basjes)
    Meter("lg-e350-p1", (DATA / "landisgyr_e350_p1_dsmr4_basjes.txt").read_bytes(), P1_8N1, Framing.P1, 10.0),
    # Iskra MT382, DSMR 2.2 without CRC at 9600 7E1 (dsmr_parser's test telegram)
    Meter("dsmr22", (DATA / "dsmr22_p1_gas_nextline_dsmr_parser.txt").read_bytes(), SerialSettings(9600, 7, "E", 1),
          Framing.P1_LEGACY, 10.0),
    # Luxembourg Smarty, encrypted P1 (NEXXTLAB/go-smarty-reader)
    Meter("smarty", hex_of("sagemcom_p1_smarty_nexxtlab"), P1_8N1, Framing.P1_ENCRYPTED, 10.0, "Sagemcom",
          key_of("sagemcom_p1_smarty_nexxtlab")),
    # EVN / Netz NÖ Kaifa MA309, M-Bus push (the operator's document)
    Meter("evn-kaifa", hex_of("kaifa_mbus_evn_netznoe_doc"), MBUS_8E1, Framing.MBUS, 5.0, "Kaifa",
          key_of("kaifa_mbus_evn_netznoe_doc")),
    # Kamstrup OMNIPOWER HAN port, 2400 8N1 (amsreader issue 216)
    Meter("kamstrup-han", hex_of("kamstrup_han_gh216-1"), HAN_8N1, Framing.HDLC_PUSH, 10.0),
    # Aidon 6534 HAN port, 2400 8E1 (amsreader issue 1119)
    Meter("aidon-han", hex_of("aidon_hdlc_gh1119"), MBUS_8E1, Framing.HDLC_PUSH, 10.0),
    # Wiener Netze L+G E450, encrypted HDLC push
    Meter("wn-e450", hex_of("landisgyr_hdlc_wienernetze_rddl"), SerialSettings(9600, 8, "N", 1), Framing.HDLC_PUSH,
          1.0, "Landis+Gyr", key_of("landisgyr_hdlc_wienernetze_rddl")),
]


def reads_unchanged(meter: Meter, setting: SerialSettings) -> bool:
    return received([meter.telegram], meter.serial, setting) == meter.telegram


def listen(meter: Meter, setting: SerialSettings, keys: Sequence[CipherKeys], telegrams: int = 3) -> Detector:
    """A detector at `setting` hearing `telegrams` of the meter's telegrams, `interval` apart."""
    probes = Probes(keys)
    detector = Detector()
    for number in range(telegrams):
        for event in probes.feed(received([meter.telegram], meter.serial, setting)):
            detector.handle(event, 1000.0 + number * meter.interval)
        detector.take_actions()
    return detector


# -- what each setting reads of a real meter --------------------------------------------------------


@pytest.mark.parametrize("meter", METERS, ids=lambda meter: meter.name)
@pytest.mark.parametrize("setting", USUAL_SETTINGS, ids=lambda serial: f"{serial.baudrate}{serial.bytesize}{serial.parity}")
def test_a_meter_is_recognised_exactly_where_its_bytes_arrive_unchanged(meter: Meter, setting: SerialSettings) -> None:
    detector = listen(meter, setting, [meter.keys] if meter.keys else [])
    if reads_unchanged(meter, setting):
        detection = detector.detection
        assert detection is not None
        assert detection.framing is meter.framing
        assert detection.push_interval == meter.interval
        assert (maker_of(detection.system_title) if detection.system_title else None) == meter.maker
        assert detection.encrypted is (meter.keys is not None)
        assert detection.key_ok is (True if meter.keys else None)
    else:
        # What a wrong setting delivers is garbage to every probe: no framing is ever taken from it.
        assert received([meter.telegram], meter.serial, setting) != meter.telegram
        assert detector.listening.is_active, f"recognised {meter.name} in what {setting} reads"


def test_the_line_model_reads_8e1_right_at_8n1_and_garbles_every_other_mismatch() -> None:
    # The reason the search tries 2400 8E1 before 2400 8N1 (service/detect.py).
    aidon = next(meter for meter in METERS if meter.name == "aidon-han")
    assert reads_unchanged(aidon, HAN_8N1)
    assert received([aidon.telegram], HAN_8N1, MBUS_8E1) != aidon.telegram
    for meter in METERS:
        others = [setting for setting in USUAL_SETTINGS if setting.baudrate != meter.serial.baudrate]
        assert all(not reads_unchanged(meter, setting) for setting in others)


@pytest.mark.parametrize("meter", METERS, ids=lambda meter: meter.name)
def test_the_search_reports_the_meters_own_setting(meter: Meter) -> None:
    result = run_detect(PushingMeter(meter), [meter.keys] if meter.keys else [])
    assert isinstance(result, Found)
    assert result.serial == meter.serial
    assert result.detection.framing is meter.framing
    fields = report(result)
    assert fields["kind"] == meter.framing.kind
    assert fields["serial"] == {"baud": meter.serial.baudrate, "parity": meter.serial.parity,
                                "bytesize": meter.serial.bytesize, "stopbits": 1}
    assert fields["push_interval"] == meter.interval
    assert fields["maker"] == meter.maker
    assert fields["encrypted"] is (meter.keys is not None)
    assert fields["key_ok"] is (True if meter.keys else None)
    block = link_block(result, "meter")
    section = LinkSection.model_validate(__import__("tomllib").loads(block)["link"][0])
    assert (section.kind, section.baud, section.parity, section.push_interval) == (
        meter.framing.kind, meter.serial.baudrate, meter.serial.parity, meter.interval)


def test_without_the_key_an_encrypted_meter_is_found_and_named_and_the_key_left_open() -> None:
    meter = next(meter for meter in METERS if meter.name == "evn-kaifa")
    result = run_detect(PushingMeter(meter), [])
    assert isinstance(result, Found)
    fields = report(result)
    assert (fields["encrypted"], fields["key_ok"], fields["maker"]) == (True, None, "Kaifa")
    assert fields["system_title"] == capture("kaifa_mbus_evn_netznoe_doc")["hex_or_text"][22:38]
    assert any("encrypted" in note and "--key" in note for note in notes(result))


@pytest.mark.parametrize("name", ["evn-kaifa", "smarty", "wn-e450"])
def test_a_wrong_key_is_reported_as_such(name: str) -> None:
    meter = next(meter for meter in METERS if meter.name == name)
    result = run_detect(PushingMeter(meter), [WRONG_KEY])
    assert isinstance(result, Found) and result.serial == meter.serial
    assert report(result)["key_ok"] is False
    assert any(note.startswith("wrong_key") for note in notes(result))
    assert "does not open" in summary(result)


def test_a_line_where_nothing_arrives_is_no_meter_and_names_the_search_mode() -> None:
    result = run_detect(SilentLine(), [])
    assert isinstance(result, NotFound)
    assert result.tried == USUAL_SETTINGS
    fields = report(result)
    assert fields["kind"] is None and fields["config"] is None
    assert "--listen-time 70" in notes(result)[0]
    assert notes(NotFound("/dev/ttyUSB0", USUAL_SETTINGS, SEARCH_LISTEN_TIME)) == []


# -- an M-Bus meter in search mode -------------------------------------------------------------------


SND_NKE = bytes.fromhex("1040F03016")
"""The search telegram to the broadcast address (EN 13757-2 SND_NKE, checksum 0x30 = 0x40 + 0xF0)."""


def test_a_meter_in_search_mode_is_heard_only_with_70_seconds_and_pushes_once_acknowledged() -> None:
    meter = next(meter for meter in METERS if meter.name == "evn-kaifa")
    short = SearchModeMeter(meter)
    assert isinstance(run_detect(short, [], listen_time=DEFAULT_LISTEN_TIME, phase=30.0), NotFound)
    assert short.acknowledged_at is None

    searching = SearchModeMeter(meter)
    result = run_detect(searching, [meter.keys], listen_time=SEARCH_LISTEN_TIME, phase=30.0)
    assert isinstance(result, Found)
    assert result.serial == MBUS_8E1
    assert searching.acknowledged_at is not None, "the detector acknowledges the search telegram as the adapter does"
    assert result.detection.search_heard and result.detection.key_ok is True
    assert result.detection.push_interval == meter.interval


def test_a_search_telegram_without_data_telegrams_tells_to_check_the_transmit_line() -> None:
    meter = next(meter for meter in METERS if meter.name == "evn-kaifa")
    result = run_detect(SearchModeMeter(meter, hears=False), [], listen_time=SEARCH_LISTEN_TIME)
    assert isinstance(result, Found)
    assert result.detection.arrivals == () and result.detection.encrypted is None
    assert any("transmit line" in note for note in notes(result))


# -- the fake lines and the search run on MockClock -----------------------------------------------


class Line(trio.abc.Stream):
    """What the port delivers at one setting; the meter behind it sends at its own."""

    def __init__(self, setting: SerialSettings) -> None:
        self.setting = setting
        self.sent: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class SilentLine:
    def open(self, setting: SerialSettings | None) -> trio.abc.Stream:
        return Quiet(setting or P1_8N1)


class Quiet(Line):
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError


class PushingMeter:
    """A meter pushing its telegram every interval, whatever it is answered."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def open(self, setting: SerialSettings | None) -> trio.abc.Stream:
        return Pushing(self.meter, setting or self.meter.serial)


class Pushing(Line):
    def __init__(self, meter: Meter, setting: SerialSettings) -> None:
        super().__init__(setting)
        self.meter = meter
        self.next_at = trio.current_time() + 0.7

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_until(self.next_at)
        self.next_at += self.meter.interval
        return received([self.meter.telegram], self.meter.serial, self.setting)


class SearchModeMeter:
    """An M-Bus meter that sends SND_NKE once a minute until it hears the adapter's 0xE5 at its own
    setting, and then pushes (seed 001 ch. B: the Kaifa and Sagemcom meters of EVN / Netz NÖ)."""

    def __init__(self, meter: Meter, hears: bool = True) -> None:
        self.meter = meter
        self.hears = hears
        self.acknowledged_at: float | None = None

    def open(self, setting: SerialSettings | None) -> trio.abc.Stream:
        return Searching(self, setting or self.meter.serial)


class Searching(Line):
    def __init__(self, meter: SearchModeMeter, setting: SerialSettings) -> None:
        super().__init__(setting)
        self.meter = meter

    async def send_all(self, data: bytes) -> None:
        await super().send_all(data)
        at_meter = received([data], self.setting, self.meter.meter.serial)
        if self.meter.hears and at_meter == b"\xe5" and self.meter.acknowledged_at is None:
            self.meter.acknowledged_at = trio.current_time()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        now = trio.current_time()
        meter = self.meter
        if meter.acknowledged_at is None:
            # The search telegram goes out on the minute, counted from when the meter started.
            await trio.sleep_until((now // 60 + 1) * 60)
            if meter.acknowledged_at is None:
                return received([SND_NKE], meter.meter.serial, self.setting)
        since = trio.current_time() - meter.acknowledged_at
        await trio.sleep_until(meter.acknowledged_at + (since // meter.meter.interval + 1) * meter.meter.interval)
        return received([meter.meter.telegram], meter.meter.serial, self.setting)


def run_detect(line, keys: Sequence[CipherKeys], listen_time: float = DEFAULT_LISTEN_TIME, phase: float = 0.0):
    async def main():
        await trio.sleep(phase)

        async def opener(setting):
            return line.open(setting)

        return await detect("/dev/ttyAMA0", keys, listen_time, LinkStatus("detect", "auto"), opener=opener,
                            wallclock=trio.current_time)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# -- the machine ------------------------------------------------------------------------------------


def test_a_telegram_without_crc_proves_dsmr_22_only_where_its_lines_read() -> None:
    # Noise at a wrong setting that happens to hold '/', three letters and '!' parses, every line
    # of it skipped: that is no meter.
    noise = b"/ABC7q\r\n\x02\xff(\x81\r\n1-0:\x8e\r\n!\r\n"
    assert [event for event in P1Framer().feed(noise) if p1_framing(event)] == []
    dsmr22 = (DATA / "dsmr22_p1_gas_nextline_dsmr_parser.txt").read_bytes()
    assert [p1_framing(event) for event in P1Framer().feed(dsmr22) if p1_framing(event)] == [Framing.P1_LEGACY]


def test_push_interval_is_the_median_gap_to_a_tenth() -> None:
    assert push_interval([0.0, 5.0, 10.02, 30.0, 35.0]) == 5.0
    assert push_interval([7.0]) is None
    assert push_interval([3.0, 3.0]) is None


@pytest.mark.parametrize("name, maker", [
    ("kaifa_mbus_evn_netznoe_doc", "Kaifa"), ("sagemcom_mbus_evn_rddl", "Sagemcom"),
    ("landisgyr_hdlc_wienernetze_rddl", "Landis+Gyr"), ("iskra_am550_hdlc_shrdzm", "Iskraemeco"),
    ("siemens_hdlc_wienernetze_rddl", "Smart Metering Solutions (Changsha)"),
])
def test_the_maker_is_read_from_the_system_title_in_the_first_frame(name: str, maker: str) -> None:
    data = hex_of(name)
    head = data[data.index(b"\xdb\x08"):]  # where the APDU starts; the probes find it by the framing
    title = ciphered_title(head)
    assert title is not None and maker_of(title) == maker
    assert maker_of(b"XYZ\x01\x02\x03\x04\x05") == "XYZ"
    assert maker_of(b"\x00\x01\x02\x03") is None


def test_each_transition_of_the_detector_is_taken() -> None:
    recorder = Recorder()
    base.observers.append(recorder)
    try:
        p1 = Heard(Framing.P1)
        mbus = Heard(Framing.MBUS, telegram=False)
        driver = Driver(Detector(), None, 1.0)
        driver.handle(Reply(b"\xe5"), mbus, Reply(b"\xe5"), p1, *[Heard(Framing.MBUS)] * 3)
        assert driver.machine.found.is_active
        assert [action.data for action in driver.actions if isinstance(action, Send)] == [b"\xe5", b"\xe5"]
        assert driver.machine.counters["other_framings"] == 1
        Driver(Detector(), None, 1.0).send("silence")
        Driver(Detector(), None, 1.0).handle(p1).send("timing_over")
        Driver(Detector(), None, 1.0).send("link_lost")
        lost = Driver(Detector(), None, 1.0).handle(p1).send("link_lost")
        assert lost.machine.detection is not None and lost.machine.detection.arrivals == (1.0,)
    finally:
        base.observers.remove(recorder)
    assert {str(key) for key in transition_keys(Detector)} <= {str(key) for key in recorder.taken}


# -- a stateful model ------------------------------------------------------------------------------


@dataclass
class DetectorUnderTest:
    machine: Detector
    first: Framing | None = None
    telegrams: int = 0
    timed_over: bool = False
    clock: float = 0.0

    def timed_out(self, event: str) -> None:
        self.timed_over = self.timed_over or event == "timing_over"

    def restart(self) -> None:
        self.__init__(Detector())  # type: ignore[misc]


def heard(framing: Framing, telegram: bool, outcome: Outcome | None):
    def stimulus(link: DetectorUnderTest) -> None:
        link.clock += 1.0
        was_listening = link.machine.listening.is_active
        link.machine.handle(Heard(framing, telegram, None, outcome), link.clock)
        link.machine.take_actions()
        if was_listening:
            link.first = framing
        if framing is link.first and telegram:
            link.telegrams += 1
    return stimulus


def lost(link: DetectorUnderTest) -> None:
    link.machine.send("link_lost")


STIMULI = st.one_of(
    st.builds(heard, st.sampled_from(list(Framing)), st.booleans(), st.sampled_from([None, *Outcome])),
    st.just(lost),
)


def found_only_with_three_telegrams_of_the_first_framing_or_after_timing(link: DetectorUnderTest) -> None:
    detection = link.machine.detection
    if link.machine.found.is_active and detection is not None:
        assert detection.framing is link.first
        assert len(detection.arrivals) == min(link.telegrams, 3)


DetectorHarness = machine_harness(lambda: DetectorUnderTest(Detector()), STIMULI,
                                  [found_only_with_three_telegrams_of_the_first_framing_or_after_timing])
TestDetector = DetectorHarness.TestCase
TestDetector.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
