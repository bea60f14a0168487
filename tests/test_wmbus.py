"""Wireless M-Bus (issue 20 item 3): the receivers' framings on byte sequences laid out as their
documentation gives them (and rtl_wmbus lines as wmbusmeters' test suite publishes them), the
WMBusReceiver machine (every declared transition, and a hypothesis stateful test against a model),
the actor against each simulated stick on MockClock, `decode wmbus` / `read wmbus` / `simulate wmbus`
as a user runs them, the config's wmbus keys and meter_setkey's meter_id."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.wmbus import WMBusLink, run_wmbus
from meterlink.machines import base, transition_keys
from meterlink.machines.base import Dropped, KeyConfirmed, Publish, Send
from meterlink.machines.wmbus import SETUP_TRIES, WMBusReceiver
from meterlink.protocols.crc import crc16_x25
from meterlink.protocols.dlms.security import CipherKeys, KeysUnavailable
from meterlink.protocols.framing import BadFrame, Noise
from meterlink.protocols.wmbus import parse_frame, with_crcs_a, with_crcs_b
from meterlink.protocols.wmbus_receivers import (AMB8465_SETUP, CUL_SETUP, IM871A_SETUP, SETUP, Amb8465Framer,
                                                 CulFramer, Im871aFramer, RadioFrame, Receiver, RtlWmbusFramer,
                                                 StickReply, StickText)
from meterlink.service.config import ConfigError, parse_config
from meterlink.simulators.wmbus import NES_DEMO_KEY, NES_ID, NesMeterModel, run_stick
from meterlink.transports import memory_link_pair

from harness import Recorder
from processes import meterlink, start_simulator, stop
from test_api import KEY, api_client, command, make_rig, stored

DATA = Path(__file__).parent / "data"
WMBUSMETERS = {t["name"]: t for t in json.loads((DATA / "wmbus_wmbusmeters_keyed.json").read_text())["telegrams"]}
WATERSTARM = bytes.fromhex(WMBUSMETERS["waterstarm"]["hex"])
WATERSTARM_KEY = bytes.fromhex(WMBUSMETERS["waterstarm"]["key"])
SONTEX_WITH_CRCS = bytes.fromhex(WMBUSMETERS["frames with their block CRCs"]["hex"][1])
RTL_LINES = WMBUSMETERS["rtl_wmbus plain T1"]["lines"]
START = datetime(2026, 12, 4, 6, 0)


def xor(data: bytes) -> int:
    out = 0
    for byte in data:
        out ^= byte
    return out


# -- receiver framings --------------------------------------------------------------------------

# iM871A (IMST "WMBus USB Adapter HCI"): A5, control (high nibble) | endpoint, message id, length,
# payload (the frame from C on), then RSSI when control bit 2 is set.
IM871A_TELEGRAM = bytes.fromhex("A5" "42" "03") + bytes((WATERSTARM[0],)) + WATERSTARM[1:] + bytes.fromhex("5A")
IM871A_SET_CONFIG_OK = bytes.fromhex("A5 01 04 01 00")
IM871A_SET_CONFIG_REFUSED = bytes.fromhex("A5 01 04 01 01")
# AMB8465 (Amber manual, CMD_DATA_IND): FF 03 length, the frame from C on, RSSI, XOR of all before.
AMB_BODY = bytes.fromhex("FF 03") + bytes((WATERSTARM[0] + 1,)) + WATERSTARM[1:] + bytes.fromhex("B4")
AMB_TELEGRAM = AMB_BODY + bytes((xor(AMB_BODY),))
AMB_SET_MODE_OK = bytes.fromhex("FF 84 01 00 7A")
# CUL (culfw with X21): b, the frame with its block CRCs in hex, LQI and RSSI, CR LF.
CUL_TELEGRAM = b"b" + SONTEX_WITH_CRCS.hex().upper().encode() + b"2A60\r\n"


def test_im871a_telegram_and_answers_fed_byte_by_byte():
    framer = Im871aFramer()
    events = []
    for byte in b"\x00\x17" + IM871A_SET_CONFIG_OK + IM871A_TELEGRAM + IM871A_SET_CONFIG_REFUSED:
        events += framer.feed(bytes((byte,)))
    assert events == [Noise(1), Noise(1), StickReply("set_config", True), RadioFrame(WATERSTARM, 0x5A),
                      StickReply("set_config", False)]
    assert parse_frame(events[3].data).meter_id == "20096221"


def test_im871a_with_timestamp_and_crc_fields():
    body = bytes.fromhex("E2 03") + bytes((WATERSTARM[0],)) + WATERSTARM[1:] + bytes.fromhex("01020304 5A")
    message = b"\xa5" + body + crc16_x25(body).to_bytes(2, "little")
    assert Im871aFramer().feed(message) == [RadioFrame(WATERSTARM, 0x5A)]
    damaged = message[:-1] + bytes((message[-1] ^ 1,))
    (bad, *rest) = Im871aFramer().feed(damaged)
    assert isinstance(bad, BadFrame) and "CRC" in bad.reason


def test_im871a_setup_is_set_config_t1_with_rssi():
    assert IM871A_SETUP == (bytes.fromhex("A5 01 03 06 00 02 03 30 01 00"),)


def test_amb8465_telegram_answer_and_checksum():
    assert Amb8465Framer().feed(AMB_SET_MODE_OK + AMB_TELEGRAM) == [StickReply("set_mode", True),
                                                                     RadioFrame(WATERSTARM, 0xB4)]
    damaged = AMB_TELEGRAM[:-1] + bytes((AMB_TELEGRAM[-1] ^ 0xFF,))
    bad, *_ = Amb8465Framer().feed(damaged)
    assert isinstance(bad, BadFrame) and "checksum" in bad.reason
    assert AMB8465_SETUP[0] == bytes.fromhex("FF 0A 02 45 01 B3")  # CMD_GET_REQ RSSI_Enable
    assert AMB8465_SETUP[2] == bytes.fromhex("FF 04 01 08 F2")  # CMD_SET_MODE_REQ, T2-Other


@pytest.mark.parametrize("value, satisfied", [(1, True), (0, False)])
def test_amb8465_rssi_already_on_spares_the_write(value, satisfied):
    """CMD_SET_REQ writes the stick's non-volatile memory: sent only where CMD_GET_REQ says RSSI is off."""
    body = bytes.fromhex("FF 8A 03 45 01") + bytes((value,))
    (reply,) = Amb8465Framer().feed(body + bytes((xor(body),)))
    assert reply == StickReply("get", True, satisfied=satisfied)
    machine = receiver(setup=AMB8465_SETUP)
    machine.send("configure")
    machine.handle(reply)
    sent = [a.data for a in machine.take_actions() if isinstance(a, Send)]
    assert sent == [AMB8465_SETUP[0], AMB8465_SETUP[2] if satisfied else AMB8465_SETUP[1]]


def test_cul_lines():
    lines = b"V 1.67 nanoCUL868\r\n" + CUL_TELEGRAM + b"bZZ\r\n" + b"LOVF\r\n"
    reply, telegram, bad, text = CulFramer().feed(lines)
    assert reply == StickReply("version", True) and telegram == RadioFrame(SONTEX_WITH_CRCS, 0x60)
    assert parse_frame(telegram.data).meter_id == "27293981"  # wmbusmeters: id 27293981, SON
    assert isinstance(bad, BadFrame) and text == StickText("LOVF")
    assert CUL_SETUP == (b"X21\r\nbrt\r\nV\r\n",)


def test_cul_format_b_line():
    framed = b"bY" + bytes.fromhex("0E44B338341207300402") .hex().encode()
    assert isinstance(CulFramer().feed(framed + b"\n")[0], BadFrame)  # L says more than the line holds


def test_rtl_wmbus_lines_as_wmbusmeters_publishes_them():
    framer = RtlWmbusFramer()
    text = "\n".join(RTL_LINES).encode() + b"\nFound 1 device(s):\nT1;0;0;2021-12-29 13:50:57.000;8;101;91625359;0x2944\n0x" + WATERSTARM.hex().encode() + b"\n"
    first, second, found, crc_failed, bare = framer.feed(text)
    assert [parse_frame(f.data).meter_id for f in (first, second)] == ["00010203", "11772288"] and first.rssi == 97
    assert found == StickText("Found 1 device(s):")
    assert isinstance(crc_failed, BadFrame) and "failed its CRC" in crc_failed.reason
    assert bare == RadioFrame(WATERSTARM, None)


# -- the machine ----------------------------------------------------------------------------------


def receiver(setup=(b"S1", b"S2"), keys=None, meter_ids=()) -> WMBusReceiver:
    machine = WMBusReceiver(setup, keys or (lambda meter_id: [CipherKeys(WATERSTARM_KEY)]), meter_ids, push_interval=10)
    return machine


def configured(machine: WMBusReceiver) -> WMBusReceiver:
    machine.send("configure")
    for _ in machine.setup:
        machine.handle(StickReply("x", True))
    machine.take_actions()
    return machine


def test_setup_step_by_step_then_listening():
    machine = receiver()
    machine.send("configure")
    assert machine.take_actions() == [Send(b"S1")]
    machine.handle(StickReply("x", True))
    assert machine.take_actions() == [Send(b"S2")] and machine.state_name == "configuring"
    machine.handle(StickReply("x", True))
    assert machine.state_name == "listening" and machine.counters["receiver_set_up"] == 1


def test_setup_refused_or_unanswered_is_retried_then_listened_to_anyway():
    machine = receiver()
    machine.send("configure")
    machine.handle(StickReply("x", False))
    assert machine.take_actions() == [Send(b"S1"), Send(b"S1")]
    for _ in range(SETUP_TRIES - 1):
        machine.send("setup_failed")
    assert machine.state_name == "listening" and machine.counters["receiver_setup_failed"] == 1
    assert machine.counters["setup_retries"] == SETUP_TRIES - 1


def test_a_receiver_without_setup_listens_at_once():
    machine = receiver(setup=())
    machine.send("configure")
    assert machine.state_name == "listening" and machine.take_actions() == []


def verdicts(machine: WMBusReceiver, frame: bytes) -> list:
    machine.handle(RadioFrame(frame), 1.0)
    return machine.take_actions()


def test_a_telegram_heard_before_setup_starts_it():
    machine = receiver()
    actions = verdicts(machine, WATERSTARM)
    assert actions[0] == Send(b"S1") and any(isinstance(a, Publish) for a in actions)
    assert machine.state_name == "configuring"


@pytest.mark.parametrize("state", ["configuring", "listening"])
def test_every_verdict(state):
    machine = receiver(meter_ids=["20096221", "27293981"])
    machine.send("configure")
    if state == "listening":
        machine.handle(StickReply("x", True))
        machine.handle(StickReply("x", True))
    machine.take_actions()
    published = verdicts(machine, WATERSTARM)
    assert KeyConfirmed(CipherKeys(WATERSTARM_KEY)) in published
    (reading,) = [a.reading for a in published if isinstance(a, Publish)]
    assert reading.kind == "wmbus" and reading.meter_id == "20096221" and reading.received_at == 1.0
    assert verdicts(machine, WATERSTARM) == [] and machine.counters["duplicates"] == 1
    other = bytearray(WATERSTARM)
    other[4] = 0x99  # another identification
    assert verdicts(machine, bytes(other)) == [] and machine.counters["other_meters"] == 1

    def cause(frame: bytes) -> str:
        (drop,) = [a for a in verdicts(machine, frame) if isinstance(a, Dropped)]
        return drop.cause

    again = bytearray(WATERSTARM)
    again[11] = 0x37  # a new access number: no longer the same telegram
    machine.keys = lambda meter_id: [CipherKeys(bytes(16))]
    assert cause(bytes(again)) == "wrong_key"
    again[11] = 0x38
    machine.keys = lambda meter_id: []
    assert cause(bytes(again)) == "no_key"
    again[11] = 0x39
    again[14] = 0x07  # mode 7
    assert cause(bytes(again)) == "unsupported_suite"
    assert cause(SONTEX_WITH_CRCS[:-1] + b"\x00") == "unparseable"  # a damaged block CRC
    assert machine.state_name == state


def test_an_unreadable_key_store_drops_the_telegram_with_its_reason():
    def broken(meter_id: str):
        raise KeysUnavailable("keys.bin cannot be read")

    machine = configured(receiver(keys=broken))
    (drop,) = [a for a in verdicts(machine, WATERSTARM) if isinstance(a, Dropped)]
    assert drop.cause == "no_key" and "keys.bin cannot be read" in drop.detail


def test_silence_stale_and_back():
    machine = configured(receiver())
    assert machine.pending_timeout() == (30.0, "silence")
    machine.send("silence")
    assert machine.is_stale
    assert any(isinstance(a, Publish) for a in verdicts(machine, WATERSTARM)) and machine.state_name == "listening"


@pytest.mark.parametrize("state", ["configuring", "listening", "stale"])
def test_other_events_in_each_state(state):
    machine = receiver()
    machine.send("configure")
    if state != "configuring":
        machine.handle(StickReply("x", True))
        machine.handle(StickReply("x", True))
    if state == "stale":
        machine.send("silence")
    machine.take_actions()
    machine.handle(StickText("hello"))
    machine.handle(BadFrame("bad", 3))
    machine.handle(Noise(2))
    if state != "configuring":
        machine.handle(StickReply("late", True))
        assert machine.counters["stray_replies"] == 1
    assert machine.state_name == state
    assert machine.counters["receiver_text"] == 1 and machine.counters["bad_frame"] == 1
    assert machine.counters["noise_bytes"] == 2
    machine.send("link_lost")
    assert machine.state_name == "closed"


def test_link_lost_while_starting():
    machine = receiver()
    machine.send("link_lost")
    assert machine.state_name == "closed"


def test_the_scenarios_take_every_declared_transition():
    recorder = Recorder()
    base.observers.append(recorder)
    try:
        test_setup_step_by_step_then_listening()
        test_setup_refused_or_unanswered_is_retried_then_listened_to_anyway()
        test_a_receiver_without_setup_listens_at_once()
        test_a_telegram_heard_before_setup_starts_it()
        for state in ("configuring", "listening"):
            test_every_verdict(state)
        test_silence_stale_and_back()
        for state in ("configuring", "listening", "stale"):
            test_other_events_in_each_state(state)
        test_link_lost_while_starting()
    finally:
        base.observers.remove(recorder)
    missing = [str(key) for key in transition_keys(WMBusReceiver) if key not in recorder.taken]
    assert missing == [], missing


# -- stateful: the machine against a model -------------------------------------------------------


KEYS_BY_METER = {"20096221": WATERSTARM_KEY}


def variant(access: int, meter: int) -> bytes:
    frame = bytearray(WATERSTARM)
    frame[11] = access
    if meter:
        frame[4] = 0x99  # meter 20096299: no key
    return bytes(frame)


class ReceiverModel(RuleBasedStateMachine):
    """Telegrams of two meters (one keyed), repeated, damaged, with replies and deadlines between:
    what the machine publishes and counts is what a model of the verdicts says. The access number is
    part of the IV, so of the keyed meter's variants only the published one (0x36) decrypts."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = WMBusReceiver((b"S",), lambda meter_id: [CipherKeys(k) for k in [KEYS_BY_METER.get(meter_id)] if k])
        self.last: dict[int, int] = {}
        self.expected: Counter[str] = Counter()
        self.published = 0

    @rule(access=st.sampled_from([0x36, 0x37, 0x38]), meter=st.integers(0, 1))
    def telegram(self, access: int, meter: int) -> None:
        self.machine.handle(RadioFrame(variant(access, meter)), 0.0)
        if self.last.get(meter) == access:
            self.expected["duplicates"] += 1
            return
        self.last[meter] = access
        # Mode 5's 2F 2F lies in the IV's first half (the address): another access number passes it
        # and garbles the records behind it.
        self.expected["no_key" if meter else "telegrams" if access == 0x36 else "unparseable"] += 1

    @rule(data=st.binary(max_size=11))
    def garbage(self, data: bytes) -> None:
        self.machine.handle(RadioFrame(data), 0.0)
        self.expected["unparseable"] += 1

    @rule(ok=st.booleans())
    def reply(self, ok: bool) -> None:
        self.machine.handle(StickReply("x", ok))

    @rule()
    def deadline(self) -> None:
        pending = self.machine.pending_timeout()
        if pending is not None:
            self.machine.send(pending[1])

    @invariant()
    def counts_agree(self) -> None:
        self.published += sum(isinstance(a, Publish) for a in self.machine.take_actions())
        counters = self.machine.counters
        for name in ("duplicates", "no_key", "telegrams", "unparseable"):
            assert counters[name] == self.expected[name], name
        assert self.published == self.expected["telegrams"]  # a repeated telegram is never published twice
        assert self.machine.state_name in ("starting", "configuring", "listening", "stale")


TestReceiverModel = ReceiverModel.TestCase
TestReceiverModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# -- the actor against the simulated sticks -------------------------------------------------------


@pytest.mark.parametrize("kind", list(Receiver))
async def test_actor_reads_the_simulated_nes_meter_through_each_receiver(kind, autojump_clock):
    ours, theirs = memory_link_pair()
    readings: list = []
    done = trio.Event()
    status = LinkStatus("wmbus", "wmbus")
    origin = trio.current_time()

    def publish(reading) -> None:
        readings.append(reading)
        if len(readings) == 3:
            done.set()

    async def opened() -> trio.abc.Stream:
        return ours

    clock = lambda: START + timedelta(seconds=trio.current_time() - origin)  # noqa: E731
    link = WMBusLink(kind, push_interval=10.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_stick, theirs, kind, NesMeterModel(), 10.0, clock)
        nursery.start_soon(partial(run_wmbus, link, lambda meter_id: [CipherKeys(NES_DEMO_KEY)], LinkHooks(publish),
                                   status, opened))
        await done.wait()
        nursery.cancel_scope.cancel()
    assert [r.meter_id for r in readings] == [NES_ID] * 3
    assert [r.captured_at for r in readings] == ["2026-12-04T06:00:00", "2026-12-04T06:00:00", "2026-12-04T06:00:00"]
    obis = {v.obis for v in readings[0].values}
    assert {"1-1:1.8.0.255", "1-1:1.8.1.255", "1-1:1.8.2.255", "1-1:2.8.0.255", "1-1:1.7.0.255", "1-1:2.7.0.255",
            "1-1:32.7.0.255", "1-1:52.7.0.255", "1-1:72.7.0.255"} <= obis
    assert status.counters["telegrams"] == 3 and status.counters["duplicates"] >= 2  # each telegram is sent twice
    if SETUP[kind]:
        assert status.counters["receiver_set_up"] == 1


# -- the commands ---------------------------------------------------------------------------------


def test_decode_wmbus_reads_hex_lines_with_and_without_crcs_and_rtl_lines(tmp_path):
    path = tmp_path / "telegrams.txt"
    path.write_text("\n".join([
        "# wmbusmeters' waterstarm telegram, without CRCs, as format A with them, and as format B",
        WATERSTARM.hex(),
        with_crcs_a(bytes.fromhex(WMBUSMETERS["elf2"]["hex"])).hex(),
        WMBUSMETERS["apator162 over rtl_wmbus"]["line"],
        with_crcs_b(WATERSTARM).hex(" "),  # the same telegram again, as format B: a duplicate
    ]) + "\n")
    result = meterlink("decode", "wmbus", "--key", WATERSTARM_KEY.hex(), "--id", "20096221", str(path))
    assert result.returncode == 0, result.stderr
    (reading,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert reading["meter_id"] == "20096221" and reading["captured_at"] == "2020-07-30T10:40:00"
    result = meterlink("decode", "wmbus", "--key", WMBUSMETERS["elf2"]["key"], str(path))
    assert result.returncode == 1  # three meters, one key: two wrong_key lines
    assert [json.loads(line)["meter_id"] for line in result.stdout.splitlines()] == ["24271170"]
    assert result.stderr.count(b"wrong_key") == 2


def test_decode_wmbus_names_a_bad_line():
    result = meterlink("decode", "wmbus", "-", stdin=b"hello\n")
    assert result.returncode == 1 and b"line 1: not a telegram in hex" in result.stderr


def test_read_wmbus_through_rtl_wmbus_command():
    import sys
    command = f"{sys.executable} -m meterlink.cli simulate wmbus --receiver rtl_wmbus --interval 0.2"
    result = meterlink("read", "wmbus", "--receiver", "rtl_wmbus", "--command", command, "--key", NES_DEMO_KEY.hex(),
                       "--count", "2")
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["meter_id"] for r in readings] == [NES_ID, NES_ID] and readings[0]["kind"] == "wmbus"
    assert NES_DEMO_KEY.hex().encode() not in result.stdout.lower() + result.stderr.lower()


@pytest.mark.parametrize("kind", ["im871a", "amb8465", "cul"])
def test_read_wmbus_from_a_simulated_stick_over_tcp(kind):
    simulator, url = start_simulator("wmbus", "--receiver", kind, "--listen", "tcp://127.0.0.1:0", "--interval", "0.2")
    try:
        result = meterlink("read", "wmbus", "--receiver", kind, "--port", url, "--key", NES_DEMO_KEY.hex(),
                           "--id", NES_ID, "--count", "2")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["meter_id"] for line in result.stdout.splitlines()] == [NES_ID, NES_ID]


def test_read_wmbus_usage_errors():
    assert meterlink("read", "wmbus", "--receiver", "rtl_wmbus", "--port", "/dev/null").returncode == 2
    assert meterlink("read", "wmbus", "--receiver", "cul", "--command", "true").returncode == 2
    assert meterlink("read", "wmbus", "--receiver", "cul", "--port", "tcp://127.0.0.1:1", "--id", "12").returncode == 2


# -- config and keys ------------------------------------------------------------------------------


def test_config_wmbus_links():
    config = parse_config({"link": [
        {"name": "radio", "kind": "wmbus", "receiver": "im871a", "port": "/dev/ttyUSB0", "meters": ["30071234"]},
        {"name": "sdr", "kind": "wmbus", "receiver": "rtl_wmbus", "command": "rtl_wmbus"},
    ]})
    assert config.link[0].meters == ["30071234"] and config.link[1].port is None
    for link, problem in [
        ({"kind": "wmbus", "port": "/dev/ttyUSB0"}, "receiver"),
        ({"kind": "wmbus", "receiver": "rtl_wmbus", "port": "/dev/ttyUSB0"}, "command"),
        ({"kind": "wmbus", "receiver": "cul", "command": "x"}, "port"),
        ({"kind": "mbus", "port": "/dev/ttyUSB0", "receiver": "cul"}, "only for kind"),
        ({"kind": "mbus"}, "port: required"),
        ({"kind": "wmbus", "receiver": "cul", "port": "/dev/ttyUSB0", "meters": ["123"]}, "meters"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            parse_config({"link": [{"name": "x"} | link]})


async def test_meter_setkey_with_meter_id(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, links={"radio": LinkStatus("radio", "wmbus"), "house": LinkStatus("house", "mbus")})
    async with api_client(rig.adapter) as client:
        answer = await command(client, {"cmd": "meter_setkey", "key": KEY, "link": "radio", "meter_id": "30071234"})
        refused = await command(client, {"cmd": "meter_setkey", "key": KEY, "link": "house", "meter_id": "30071234"})
    assert answer.json() == {"link": "radio", "result": "OK"}
    assert rig.adapter.keys.links() == ["radio/30071234"]
    assert stored(rig, "radio/30071234")
    assert refused.status_code == 422 and "meter_id_not_wmbus" in refused.text


# -- fuzzing the receivers' framings --------------------------------------------------------------

STICK_STREAMS = {
    Receiver.IM871A: (Im871aFramer, IM871A_SET_CONFIG_OK + IM871A_TELEGRAM),
    Receiver.AMB8465: (Amb8465Framer, AMB_SET_MODE_OK + AMB_TELEGRAM),
    Receiver.CUL: (CulFramer, b"V 1.67 nanoCUL868\r\n" + CUL_TELEGRAM),
    Receiver.RTL_WMBUS: (RtlWmbusFramer, "\n".join(RTL_LINES).encode() + b"\n"),
}
EVENT_TYPES = (RadioFrame, StickReply, StickText, BadFrame, Noise)


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(list(Receiver)), data=st.data())
def test_fuzz_receiver_framings(kind, data):
    """Damaged, cut and noisy streams: a framer never raises, reports only its event types, and finds a
    whole telegram sent after the damage."""
    make, clean = STICK_STREAMS[kind]
    damaged = bytearray(clean)
    for _ in range(data.draw(st.integers(0, 5))):
        where = data.draw(st.integers(0, len(damaged) - 1))
        damaged[where:where + data.draw(st.integers(0, 3))] = data.draw(st.binary(max_size=4))
    framer = make()
    # A length-prefixed framing waits for as many bytes as a damaged length says (up to 262): whole
    # telegrams sent after that many are found again.
    stream = bytes(damaged) + b"\n" + clean * 6
    events = []
    position = 0
    while position < len(stream):
        step = data.draw(st.integers(1, 64))
        events += framer.feed(stream[position:position + step])
        position += step
    assert all(isinstance(event, EVENT_TYPES) for event in events)
    expected = [e for e in make().feed(clean) if isinstance(e, RadioFrame)][-1]
    assert [e for e in events if isinstance(e, RadioFrame)][-1] == expected


def test_amber_manual_commands_checksums():
    """Two commands as the AMB8426-M manual prints them (ch. 7.13): the XOR checksum holds."""
    example = json.loads((DATA / "amber_amb8426_manual_mode5.json").read_text())
    for name, message in example["commands_published"].items():
        (event,) = Amb8465Framer().feed(bytes.fromhex(message))
        assert isinstance(event, StickText), name
