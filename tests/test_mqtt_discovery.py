"""Home Assistant discovery against Home Assistant's own device-class tables (releases 2025.7 to 2025.11,
tests/homeassistant.py): every sensor meterlink announces, through a real Mosquitto, for the real
readings in tests/data and for the simulated meters, and for every unit a COSEM meter can state."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import trio

from homeassistant import render, violations
from meterlink.actors.link import LinkStatus
from meterlink.machines.base import Publish
from meterlink.machines.dlms import Association, DlmsClient
from meterlink.machines.dlms_meter import DlmsMeter
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.dlms.objects import AttributeRef
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.obis import UNITS
from meterlink.protocols.p1 import P1Framer
from meterlink.protocols.readings import Reading, Value
from meterlink.service.demo import DEMO_OBJECTS
from meterlink.service.hub import ReadingsHub
from meterlink.service.mqtt import MqttPublisher, MqttSettings, Topics, sensor_config, sensors
from meterlink.simulators.kaifa import DEMO_KEY, KaifaMeterModel
from meterlink.simulators.kamstrup import KamstrupMeterModel
from meterlink.simulators.p1 import P1MeterModel
from mosquitto import Mosquitto, Subscriber
from test_dlms_session import pump
from test_mbus_realworld import GH905, TINETZ, VORARLBERG, published, run_adapter
from test_mqtt import broker, settings, subscriber, until  # noqa: F401 (fixtures)

DATA = Path(__file__).parent / "data"
NOW = datetime.now(timezone.utc)
KAMSTRUP_READS = [*DEMO_OBJECTS, "3:1-1:3.8.0.255:2", "3:1-1:4.8.0.255:2", "3:1-1:14.7.0.255:2",
                  "3:0-1:96.8.0.255:2", "4:1-1:1.6.0.255:2"]
"""Every register of the simulated Kamstrup meter."""


def p1(telegram: bytes) -> Reading:
    return P1Framer().feed(telegram)[-1].telegram.to_reading(None)


def mbus(capture: bytes, key: bytes) -> Reading:
    _, actions = run_adapter(capture, [CipherKeys(key)])
    (reading,) = published(actions)
    return reading


def kamstrup() -> Reading:
    """The simulated Kamstrup meter's registers, one GET each, as one reading."""
    client = DlmsClient(Association(password=b"12345"), reads=tuple(AttributeRef.parse(r) for r in KAMSTRUP_READS))
    actions = pump(client, DlmsMeter(KamstrupMeterModel()))
    readings = [action.reading for action in actions if isinstance(action, Publish)]
    assert len(readings) == len(KAMSTRUP_READS)
    return replace(readings[0], values=tuple(value for reading in readings for value in reading.values))


def reactive_and_apparent() -> Reading:
    """What no reading above carries: power factors and counters without a unit (COSEM unit 255), and
    reactive and apparent power in kvar and kVA as P1 meters state them."""
    return Reading("1LGZ0000000001", "dlms", None, None, (
        Value("1-0:13.7.0.255", 0.987, "", 987, -3, 255),
        Value("1-0:73.7.0.255", 0.95, "", 95, -2, 255),
        Value("0-0:96.7.21.255", 4, "", 4, 0, 255),
        Value("1-0:3.7.0.255", 0.321, "kvar", 321, -3),
        Value("1-0:9.7.0.255", 1.234, "kVA", 1234, -3),
        Value("1-0:3.8.0.255", 12.5, "kvarh", 12500, -3),
    ))


def sources() -> dict[str, Reading]:
    """Each reading under a link name of its own, so that their topics do not meet."""
    readings = {
        "emucs_1phase": p1((DATA / "emucs_p1_1phase.txt").read_bytes()),
        "emucs_3phase": p1((DATA / "emucs_p1_3phase.txt").read_bytes()),
        "tinetz": mbus(bytes.fromhex(TINETZ["hex_or_text"]), bytes.fromhex(TINETZ["key_if_any"])),
        "gh905": mbus(bytes.fromhex(GH905["hex_or_text"]), bytes.fromhex(GH905["key_if_any"])),
        "vorarlberg": to_reading(parse_notification(bytes.fromhex(VORARLBERG["hex_or_text"])), "mbus", None),
        "sim_p1": p1(P1MeterModel().telegram(NOW)),
        "sim_kaifa": mbus(b"".join(KaifaMeterModel().frames(NOW.replace(tzinfo=None))), DEMO_KEY),
        "sim_kamstrup": kamstrup(),
        "units": reactive_and_apparent(),
    }
    return {link: replace(reading, name=link) for link, reading in readings.items()}


async def test_every_announced_sensor_fits_home_assistants_tables(broker: Mosquitto, subscriber: Subscriber) -> None:
    readings = sources()
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker), hub, {link: LinkStatus(link, "p1") for link in readings})
    received_at = time.time()  # recent: readings older than 60 s are not sent
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        for reading in readings.values():
            hub.publish(replace(reading, received_at=received_at))
        expected = {publisher.topics.sensor_config(reading, sensor)
                    for reading in readings.values() for sensor in sensors(reading)}
        state_topics = {f"{publisher.topics.meter(reading)}/state" for reading in readings.values()}
        await until(lambda: expected | state_topics <= subscriber.topics())
        nursery.cancel_scope.cancel()

    announced = {m.topic: json.loads(m.payload) for m in subscriber.messages
                 if m.topic.startswith("homeassistant/sensor/")}
    states = {m.topic: m.payload for m in subscriber.messages if m.topic.endswith("/state")}
    assert set(announced) == expected and len(expected) > 80
    configs = announced.values()
    for config in configs:
        assert violations(config) == [], config["unique_id"]
        shown = render(config["value_template"], states[config["state_topic"]])
        assert math.isfinite(float(shown)), (config["unique_id"], shown)  # a sensor with a unit shows a number

    by_id = {config["unique_id"]: config for config in configs}
    apparent = by_id["meterlink_1LGZ0000000001_1-0_9_7_0"]
    assert (apparent["unit_of_measurement"], apparent["device_class"]) == ("VA", "apparent_power")
    assert render(apparent["value_template"], states[apparent["state_topic"]]) == "1234.0"
    assert "meterlink_1LGZ0000000001_0-0_96_7_21" not in by_id  # power failures: a count, not a power factor
    gas = by_id["meterlink_1SAG3101021605_0-1_24_2_3"]
    assert (gas["device_class"], gas["state_class"]) == ("gas", "total_increasing")


SHAPES = ["1-0:1.7.0.255", "1-0:1.8.0.255", "1-0:16.8.0.255", "1-0:13.7.0.255", "1-0:32.7.0.255",
          "0-1:24.2.1.255", "0-0:96.7.21.255", "0-0:1.0.0.255"]
"""OBIS codes of every kind meterlink names: power, energy counters, net energy, power factor, phase
values, a volume of an M-Bus channel, a counter, an abstract object."""


P1_UNITS = ["kWh", "kW", "kvar", "kvarh", "kVA", "kVAh", "MWh", "GJ", "m3", "l"]
"""Units P1 meters write (free text) that the COSEM enumeration spells otherwise or lacks."""


@pytest.mark.parametrize("unit", sorted(set(UNITS.values()) | set(P1_UNITS)))
def test_every_unit_a_meter_states_is_announced_only_as_home_assistant_takes_it(unit: str) -> None:
    reading = Reading("meter", "dlms", None, None, tuple(Value(obis, 1.5, unit, 15, -1) for obis in SHAPES))
    topics = Topics(MqttSettings("localhost"))
    for sensor in sensors(reading):
        assert violations(sensor_config(topics, reading, sensor, None)) == [], sensor
