"""Netz OÖ's AMIS meters on the M-Bus link (issue 20 item 2): the existing handshake and machine, an
OMS payload. The machine on the specification's frame (every state an OMS telegram can arrive in),
the actor against the simulated AMIS meter on MockClock, the commands as a user runs them, the
config's `payload` key."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.mbus import AMIS_SERIAL, MBUS_SERIAL, MBusLink, default_serial, run_mbus
from meterlink.machines.base import Dropped, KeyConfirmed, Publish, Send
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.mbus import MBusFramer
from meterlink.service.config import ConfigError, parse_config
from meterlink.simulators.amis import AMIS_DEMO_KEY, AmisMeterModel, run_amis_meter
from meterlink.simulators.kaifa import DEMO_KEY, KaifaMeterModel
from meterlink.transports import memory_link_pair

from processes import meterlink, start_simulator, stop

DATA = Path(__file__).parent / "data"
SPEC = json.loads((DATA / "amis_mbus_netzooe_spec.json").read_text())
SPEC_FRAME = bytes.fromhex(SPEC["frame_hex"])
SPEC_KEYS = [CipherKeys(bytes.fromhex(SPEC["key"]))]
SEARCH = bytes.fromhex(SPEC["search_telegram_hex"])
VZLOGGER = json.loads((DATA / "amis_mbus_vzlogger.json").read_text())
START = datetime(2026, 12, 4, 6, 0)


def feed(machine: MBusAdapter, data: bytes) -> list:
    for event in MBusFramer().feed(data):
        machine.handle(event, 1.0)
    return machine.take_actions()


def published(actions: list) -> list:
    return [a.reading for a in actions if isinstance(a, Publish)]


def test_the_specification_frame_in_search_mode_is_acked_and_published():
    machine = MBusAdapter(keys=lambda: SPEC_KEYS)
    actions = feed(machine, SPEC_FRAME)
    assert actions[0] == Send(b"\xe5") and KeyConfirmed(SPEC_KEYS[0]) in actions
    (reading,) = published(actions)
    assert reading.kind == "mbus" and reading.meter_id is None and reading.captured_at == "2014-07-01T08:12:31"
    assert reading.value_of("1-1:1.8.0.255").value == 684544 and reading.value_of("1-1:2.7.0.255").value == 117
    assert machine.state_name == "listening" and machine.counters["telegrams"] == 1


def test_after_the_search_telegram_and_from_stale():
    machine = MBusAdapter(keys=lambda: SPEC_KEYS, push_interval=1.0)
    assert feed(machine, SEARCH) == [Send(b"\xe5")]
    assert len(published(feed(machine, SPEC_FRAME))) == 1  # listening
    machine.send("silence")
    assert machine.state_name == "stale"
    assert len(published(feed(machine, SPEC_FRAME))) == 1 and machine.state_name == "listening"


def test_an_oms_telegram_ends_a_dlms_telegram_being_joined():
    machine = MBusAdapter(keys=lambda: SPEC_KEYS + [CipherKeys(DEMO_KEY)])
    first, _second = KaifaMeterModel().frames(START)
    feed(machine, first)
    assert machine.state_name == "joining"
    actions = feed(machine, SPEC_FRAME)
    assert [a.cause for a in actions if isinstance(a, Dropped)] == ["incomplete"]
    assert len(published(actions)) == 1 and machine.state_name == "listening"


def test_a_real_meters_frames_as_vzlogger_keeps_them():
    """Four telegrams a second apart; the source asserts the second one's time. The values are what
    pymbusparser reads from the plaintext AES-128-CBC gives (IV as Netz OÖ's specification defines it)."""
    pymbusparser = pytest.importorskip("pymbusparser")
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = bytes.fromhex(VZLOGGER["key"])
    machine = MBusAdapter(keys=lambda: [CipherKeys(key)])
    readings = published(feed(machine, bytes.fromhex(VZLOGGER["stream_hex"])))
    assert machine.counters["telegrams"] == 4 and not machine.counters["wrong_key"]
    assert readings[1].captured_at == "2015-06-20T23:36:03"  # the source: 23:36:03, 20 June 2015
    assert [r.captured_at[-2:] for r in readings] == ["02", "03", "04", "05"]
    frames = [f for f in MBusFramer().feed(bytes.fromhex(VZLOGGER["stream_hex"])) if hasattr(f, "ci")]
    for frame, reading in zip(frames, readings):
        access, ciphertext = frame.data[8], frame.data[12:]
        iv = frame.data[4:6] + frame.data[0:4] + frame.data[6:8] + bytes((access,)) * 8
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        plaintext = decryptor.update(ciphertext) + decryptor.finalize()
        theirs = [r for r in pymbusparser.parse_records(plaintext) if r["value"]["kind"] == "decimal"]
        ours = [v for v in reading.values if v.raw is not None]
        assert [str(v.value) for v in ours] == [r["value"]["value"] for r in theirs]
    values = {v.obis: v.value for v in readings[0].values}
    assert values["1-1:1.8.0.255"] == 895563 and values["1-1:1.7.0.255"] == 435 and values["1-1:4.7.0.255"] == 134


@pytest.mark.parametrize("keys, cause", [([], "no_key"), ([CipherKeys(bytes(16))], "wrong_key")])
def test_no_key_and_a_wrong_key_are_dropped_under_their_causes(keys, cause):
    machine = MBusAdapter(keys=lambda: keys)
    actions = feed(machine, SPEC_FRAME)
    assert actions[0] == Send(b"\xe5")  # acknowledged all the same: the meter stays in data mode
    (drop,) = [a for a in actions if isinstance(a, Dropped)]
    assert drop.cause == cause and SPEC["key"] not in drop.detail
    assert machine.counters[cause] == 1 and not published(actions)


def test_a_damaged_and_an_unsupported_telegram():
    machine = MBusAdapter(keys=lambda: SPEC_KEYS)
    apdu_mode7 = bytearray(SPEC_FRAME)
    apdu_mode7[18] = 0x07  # configuration word high byte: mode 7
    apdu_mode7[-2] = sum(apdu_mode7[4:-2]) & 0xFF
    drops = [a for a in feed(machine, bytes(apdu_mode7)) if isinstance(a, Dropped)]
    assert [d.cause for d in drops] == ["unsupported_suite"] and "security mode 7" in drops[0].detail
    short = bytearray.fromhex("6808086853F05B0000000000")  # a long header cut short
    short += bytes((sum(short[4:]) & 0xFF, 0x16))
    drops = [a for a in feed(machine, bytes(short)) if isinstance(a, Dropped)]
    assert [d.cause for d in drops] == ["unparseable"]


def test_payload_fixes_what_a_link_reads():
    dlms_only = MBusAdapter(keys=lambda: SPEC_KEYS, payload="dlms")
    assert not published(feed(dlms_only, SPEC_FRAME)) and dlms_only.counters["unsupported_data"] == 1
    oms_only = MBusAdapter(keys=lambda: [CipherKeys(DEMO_KEY)], payload="oms")
    for frame in KaifaMeterModel().frames(START):
        assert not published(feed(oms_only, frame))
    assert oms_only.counters["unsupported_data"] == 2
    with pytest.raises(ValueError, match="payload 'xml'"):
        MBusAdapter(payload="xml")


def test_the_simulator_speaks_the_specification_layout():
    model = AmisMeterModel(key=bytes.fromhex(SPEC["key"]))
    frame = model.frame(START)
    assert frame[:7] == SPEC_FRAME[:7] and frame[7:15] == SPEC_FRAME[7:15]  # 68 5F 5F 68, C, 240, 5B, the address
    machine = MBusAdapter(keys=lambda: SPEC_KEYS)
    (reading,) = published(feed(machine, frame))
    assert [v.obis for v in reading.values] == [v.obis for v in published(feed(MBusAdapter(keys=lambda: SPEC_KEYS), SPEC_FRAME))[0].values]
    assert reading.captured_at == "2026-12-04T06:00:00"


def test_amis_serial_settings():
    assert (AMIS_SERIAL.baudrate, AMIS_SERIAL.parity, AMIS_SERIAL.bytesize, AMIS_SERIAL.stopbits) == (9600, "E", 8, 1)
    assert default_serial("oms") == AMIS_SERIAL and default_serial("auto") == MBUS_SERIAL


def test_config_payload_key():
    config = parse_config({"link": [{"name": "amis", "kind": "mbus", "port": "/dev/ttyUSB0", "payload": "oms"}]})
    assert config.link[0].payload == "oms"
    with pytest.raises(ConfigError, match=r"link\[0\].*payload: only for kind = \"mbus\""):
        parse_config({"link": [{"name": "p1", "kind": "p1", "port": "/dev/ttyUSB0", "payload": "oms"}]})


# -- the actor against the simulated meter ------------------------------------------------------


async def test_actor_reads_the_simulated_amis_meter_every_second(autojump_clock):
    ours, theirs = memory_link_pair()
    readings: list = []
    done = trio.Event()
    status = LinkStatus("amis", "mbus")

    def publish(reading) -> None:
        readings.append((trio.current_time(), reading))
        if len(readings) == 3:
            done.set()

    origin = trio.current_time()

    def clock() -> datetime:
        return START + timedelta(seconds=trio.current_time() - origin)

    async def opened() -> trio.abc.Stream:
        return ours

    link = MBusLink("memory", push_interval=1.0, payload="oms")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_amis_meter, theirs, AmisMeterModel(), 1.0, clock)
        nursery.start_soon(partial(run_mbus, link, lambda: [CipherKeys(AMIS_DEMO_KEY)], LinkHooks(publish), status, opened))
        await done.wait()
        nursery.cancel_scope.cancel()
    times = [at for at, _ in readings]
    assert all(abs(b - a - 1.0) < 1e-6 for a, b in zip(times, times[1:]))
    assert [r.captured_at for _, r in readings] == ["2026-12-04T06:00:01", "2026-12-04T06:00:02", "2026-12-04T06:00:03"]
    assert +status.counters == {"telegrams": 3} and status.state == "listening"


# -- the commands ---------------------------------------------------------------------------------


def test_decode_mbus_reads_the_specification_frame(tmp_path):
    path = tmp_path / "amis.hex"
    path.write_text(SPEC["search_telegram_hex"] + "\n" + SPEC["frame_hex"] + "\n")
    result = meterlink("decode", "mbus", "--key", SPEC["key"], str(path))
    assert result.returncode == 0, result.stderr
    (reading,) = [json.loads(line) for line in result.stdout.splitlines()]
    values = {v["obis"]: v for v in reading["values"]}
    assert values["1-1:3.8.1.255"] == {"obis": "1-1:3.8.1.255", "value": 357918, "unit": "varh", "raw": 357918,
                                       "scaler": 0, "description": "reactive energy, tariff 1"}
    assert reading["captured_at"] == "2014-07-01T08:12:31"


def test_decode_mbus_with_a_wrong_key_exits_1_naming_the_cause():
    result = meterlink("decode", "mbus", "--key", "00" * 16, "-", stdin=SPEC["frame_hex"].encode())
    assert result.returncode == 1 and b"wrong_key" in result.stderr and not result.stdout


def test_read_mbus_from_the_amis_simulator_over_tcp():
    key = "0F0E0D0C0B0A09080706050403020100"
    simulator, url = start_simulator("amis", "--listen", "tcp://127.0.0.1:0", "--key", key, "--interval", "0.3")
    try:
        result = meterlink("read", "mbus", "--port", url, "--payload", "oms", "--key", key, "--count", "2",
                           "--push-interval", "0.3")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(readings) == 2 and all(r["kind"] == "mbus" for r in readings)
    assert {v["obis"] for v in readings[0]["values"]} >= {"1-1:1.8.0.255", "1-1:1.7.0.255", "1-1:2.7.0.255"}
    assert key.encode() not in result.stdout + result.stderr


def test_home_assistant_names_the_oms_values_whatever_their_channel():
    from meterlink.service.mqtt import sensors

    (reading,) = published(feed(MBusAdapter(keys=lambda: SPEC_KEYS), SPEC_FRAME))
    names = {sensor.key: sensor.name for sensor in sensors(reading)}
    assert names["1-1_1_7_0"] == "Active power import" and names["1-1_2_8_0"] == "Active energy export"
    assert names["1-1_3_8_1"] == "Reactive energy import tariff 1" and names["1-1_4_7_0"] == "Reactive power export"
