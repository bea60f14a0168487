"""The MQTT output against a real Mosquitto on a loopback port (tests/mosquitto.py).

Each broker test bounds its waits with trio.fail_after; nothing sleeps for a protocol timeout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from meterlink.actors.link import LinkStatus
from meterlink.protocols.p1 import P1Framer
from meterlink.protocols.readings import Reading, Value
from meterlink.service.hub import ReadingsHub
from meterlink.service.mqtt import WINDOW, MqttPublisher, MqttSettings, manufacturer, obis_key, safe_name, sensors
from homeassistant import available, render
from mosquitto import Mosquitto, Received, Subscriber

DATA = Path(__file__).parent / "data"
METER = "1SAG1100000231"  # 0-0:96.1.1 of emucs_p1_1phase.txt, decoded from hex
READING_TOPIC = f"meterlink/p1/{METER}/reading"
STATE_TOPIC = f"meterlink/p1/{METER}/state"
CONFIG = f"homeassistant/sensor/meterlink_{METER}/{{}}/config"
CLIENT_ID = "meterlink-test"


T0 = 0.0
"""received_at of reading number 0, the start of the test in whole seconds: readings must be recent,
older than 60 s they expire (so it is taken when each test starts, not when the suite is collected)."""


@pytest.fixture(autouse=True)
def recent_t0() -> None:
    global T0
    T0 = float(int(time.time()))


def p1_reading(received_at: float | None = None) -> Reading:
    events = P1Framer().feed((DATA / "emucs_p1_1phase.txt").read_bytes())
    return events[-1].telegram.to_reading(T0 if received_at is None else received_at)


def numbered(count: int, start: int = 0) -> list[Reading]:
    """Readings told apart by received_at: reading n was received at T0 + n."""
    reading = p1_reading()
    return [replace(reading, received_at=T0 + n) for n in range(start, start + count)]


def received_numbers(subscriber: Subscriber) -> list[int]:
    return [round(json.loads(m.payload)["received_at"] - T0) for m in subscriber.on(READING_TOPIC)]


def settings(broker: Mosquitto | Proxy, **overrides: object) -> MqttSettings:
    values: dict[str, object] = {"client_id": CLIENT_ID, "backoff_initial": 0.05, "backoff_max": 0.2}
    values.update(overrides)
    return MqttSettings(broker.host, broker.port, **values)  # type: ignore[arg-type]


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


def payloads(messages: list[Received]) -> list[str]:
    return [m.payload.decode() for m in messages]


class Proxy:
    """A TCP relay in front of the broker, to cut the publisher's connection without a DISCONNECT.

    While `refusing`, a new connection is closed at once: the broker looks down to the publisher.
    While `stalled`, nothing is relayed: a broker that does not answer.
    """

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.host = "127.0.0.1"
        self.port = 0
        self.refusing = False
        self.stalled = False
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._relay, listeners)

    def cut(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    async def _relay(self, downstream: trio.SocketStream) -> None:
        async with downstream:
            if self.refusing:
                return
            async with await trio.open_tcp_stream(self.broker.host, self.broker.port) as upstream:
                with trio.CancelScope() as scope:
                    self._scopes.add(scope)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, downstream, upstream, scope)
                        nursery.start_soon(self._pump, upstream, downstream, scope)
                self._scopes.discard(scope)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            async for data in source:
                while self.stalled:
                    await trio.sleep(0.01)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


@pytest.fixture
def broker(tmp_path: Path):
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def subscriber(broker: Mosquitto):
    client = Subscriber(broker)
    yield client
    client.close()


async def retained_on(broker: Mosquitto, topic: str) -> list[Received]:
    """What a client subscribing now gets: the retained message, if any."""
    client = await trio.to_thread.run_sync(Subscriber, broker, (topic,))
    await trio.sleep(0.1)  # the broker sends retained messages right after the SUBACK
    await trio.to_thread.run_sync(client.close)
    return client.on(topic)


# --- the publisher against a broker -----------------------------------------------------------------

async def test_discovery_for_a_p1_meter(broker: Mosquitto, subscriber: Subscriber) -> None:
    hub = ReadingsHub()
    links = {"p1": LinkStatus("p1", "p1")}
    publisher = MqttPublisher(settings(broker), hub, links)
    reading = p1_reading()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        hub.publish(reading)
        await until(lambda: subscriber.on(STATE_TOPIC))
        nursery.cancel_scope.cancel()

    configs = {m.topic: json.loads(m.payload) for m in subscriber.messages
               if m.topic.startswith("homeassistant/sensor/")}
    keys = {"1-0_1_8_1", "1-0_1_8_2", "1-0_2_8_1", "1-0_2_8_2", "1-0_1_4_0", "1-0_1_6_0", "1-0_1_7_0",
            "1-0_2_7_0", "1-0_21_7_0", "1-0_22_7_0", "1-0_32_7_0", "1-0_31_7_0", "0-0_17_0_0", "1-0_31_4_0",
            "0-1_24_2_3", "0-2_24_2_1"}
    assert set(configs) == {CONFIG.format(key) for key in keys}  # no sensor for text, counters, device types

    energy = configs[CONFIG.format("1-0_1_8_1")]
    assert energy == {
        "name": "Active energy import tariff 1",
        "unique_id": f"meterlink_{METER}_1-0_1_8_1",
        "state_topic": STATE_TOPIC,
        "value_template": "{{ value_json['1-0_1_8_1'] }}",
        "unit_of_measurement": "kWh",
        "device_class": "energy",
        "state_class": "total_increasing",
        "availability": [
            {"topic": "meterlink/status"},
            {"topic": "meterlink/p1/status",
             "value_template": "{{ 'online' if value_json.connected and not value_json.stale else 'offline' }}"},
        ],
        "availability_mode": "all",
        "device": {"identifiers": [METER], "name": f"Meter {METER}", "manufacturer": "SAG", "model": "p1",
                   "via_device": CLIENT_ID},
        "origin": energy["origin"],
    }
    power = configs[CONFIG.format("1-0_1_7_0")]
    assert (power["unit_of_measurement"], power["device_class"], power["state_class"]) == ("kW", "power", "measurement")
    voltage = configs[CONFIG.format("1-0_32_7_0")]
    assert (voltage["name"], voltage["unit_of_measurement"], voltage["device_class"]) == ("Voltage L1", "V", "voltage")
    gas = configs[CONFIG.format("0-1_24_2_3")]
    assert (gas["unit_of_measurement"], gas["device_class"], gas["state_class"]) == ("m³", "gas", "total_increasing")
    assert configs[CONFIG.format("0-2_24_2_1")]["device_class"] == "water"  # device type 007

    state = json.loads(subscriber.on(STATE_TOPIC)[0].payload)
    for config in configs.values():
        key = config["value_template"].split("'")[1]
        assert isinstance(state[key], (int, float))
    assert state["1-0_1_8_2"] == 1.955 and state["captured_at"] == "2020-05-12T14:55:52"

    link = json.loads(subscriber.on(f"homeassistant/binary_sensor/{CLIENT_ID}/p1_link/config")[0].payload)
    assert (link["state_topic"], link["device_class"]) == ("meterlink/p1/status", "connectivity")

    retained = await retained_on(broker, CONFIG.format("1-0_1_8_1"))
    assert [m.retain for m in retained] == [True]


async def test_discovery_again_only_when_a_meters_sensors_change(broker: Mosquitto, subscriber: Subscriber) -> None:
    """A meter's readings are not examined for sensors again while they keep their shape (a
    gateway's 1,000 readings a second), but a value that turns up later still gets its config."""
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker), hub, {"p1": LinkStatus("p1", "p1")})
    first, second, third = numbered(3)
    extra = Value("1-0:14.7.0.255", 49.98, "Hz", 4998, -2)  # frequency: not in the telegram
    third = replace(third, values=(*third.values, extra))

    def configs() -> list[str]:
        return [m.topic for m in subscriber.messages if m.topic.startswith("homeassistant/sensor/")]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        hub.publish(first)
        await until(lambda: len(subscriber.on(STATE_TOPIC)) == 1)
        announced = len(configs())
        hub.publish(second)
        await until(lambda: len(subscriber.on(STATE_TOPIC)) == 2)
        assert len(configs()) == announced  # same shape: nothing announced again
        hub.publish(third)
        await until(lambda: len(subscriber.on(STATE_TOPIC)) == 3)
        nursery.cancel_scope.cancel()
    assert configs()[announced:] == [CONFIG.format("1-0_14_7_0")]


@pytest.mark.parametrize("qos, retain_state", [(0, False), (1, True), (2, False)])
async def test_readings_as_json_with_the_configured_qos(
    broker: Mosquitto, subscriber: Subscriber, qos: int, retain_state: bool
) -> None:
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker, qos=qos, retain_state=retain_state, discovery=False), hub, {})
    readings = numbered(3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        for reading in readings:
            hub.publish(reading)
        await until(lambda: len(subscriber.on(STATE_TOPIC)) == 3)
        await until(lambda: publisher.status().published == 3)  # confirmed: PUBACK, PUBCOMP or written
        nursery.cancel_scope.cancel()

    messages = subscriber.on(READING_TOPIC)
    assert [json.loads(m.payload) for m in messages] == [r.to_json() for r in readings]
    assert {(m.qos, m.retain) for m in messages + subscriber.on(STATE_TOPIC)} == {(qos, False)}
    assert not any(t.startswith("homeassistant/") for t in subscriber.topics())
    retained = await retained_on(broker, STATE_TOPIC)
    assert len(retained) == (1 if retain_state else 0)


async def test_online_retained_and_offline_on_a_clean_stop(broker: Mosquitto, subscriber: Subscriber) -> None:
    publisher = MqttPublisher(settings(broker), ReadingsHub(), {})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        await until(lambda: subscriber.on("meterlink/status"))
        assert [(m.payload, m.retain) for m in await retained_on(broker, "meterlink/status")] == [(b"online", True)]
        nursery.cancel_scope.cancel()
    await until(lambda: payloads(subscriber.on("meterlink/status")) == ["online", "offline"])
    assert [(m.payload, m.retain) for m in await retained_on(broker, "meterlink/status")] == [(b"offline", True)]


async def test_last_will_when_the_connection_dies_then_reconnect(broker: Mosquitto, subscriber: Subscriber) -> None:
    proxy = Proxy(broker)
    hub = ReadingsHub()
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        publisher = MqttPublisher(settings(proxy), hub, {"p1": LinkStatus("p1", "p1")})
        nursery.start_soon(publisher.run)
        hub.publish(p1_reading())
        await until(lambda: subscriber.on(STATE_TOPIC))

        proxy.refusing = True
        proxy.cut()  # no DISCONNECT reaches the broker: it publishes the will
        await until(lambda: payloads(subscriber.on("meterlink/status")) == ["online", "offline"])
        assert [(m.payload, m.retain) for m in await retained_on(broker, "meterlink/status")] == [(b"offline", True)]
        assert not publisher.status().connected

        proxy.refusing = False
        await until(lambda: payloads(subscriber.on("meterlink/status"))[:3] == ["online", "offline", "online"])
        await until(lambda: len(subscriber.on(CONFIG.format("1-0_1_8_1"))) >= 2)  # discovery again
        assert publisher.status().connects == 2
        nursery.cancel_scope.cancel()


async def test_a_broker_restart_loses_no_reading(tmp_path: Path) -> None:
    # A persistent broker keeps the test subscriber's session, so it is not racing the publisher
    # to resubscribe after the restart; the publisher's side is what is under test.
    broker = Mosquitto(tmp_path, persistence=True)
    broker.start()
    subscriber = Subscriber(broker, (READING_TOPIC,), client_id="test-subscriber")
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker, qos=1, discovery=False), hub, {})
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher.run)
            for reading in numbered(5):
                hub.publish(reading)
            await until(lambda: received_numbers(subscriber) == list(range(5)))

            hub.publish(numbered(1, start=5)[0])  # likely still in flight when the broker goes
            broker.stop()
            await until(lambda: not publisher.status().connected)
            for reading in numbered(4, start=6):  # while the broker is down
                hub.publish(reading)
            broker.start()
            for reading in numbered(5, start=10):
                hub.publish(reading)

            await until(lambda: set(received_numbers(subscriber)) == set(range(15)), timeout=10.0)
            first_seen = list(dict.fromkeys(received_numbers(subscriber)))  # at least once: drop repeats
            assert first_seen == list(range(15))
            assert publisher.status().dropped == 0 and publisher.status().connects == 2
            nursery.cancel_scope.cancel()
    finally:
        subscriber.close()
        broker.stop()


async def test_the_queue_bound_drops_the_oldest_and_counts(broker: Mosquitto, subscriber: Subscriber) -> None:
    proxy = Proxy(broker)
    proxy.refusing = True  # the broker is unreachable while the readings arrive
    hub = ReadingsHub()
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        publisher = MqttPublisher(settings(proxy, queue_size=5, discovery=False), hub, {})
        nursery.start_soon(publisher.run)
        for reading in numbered(12):
            hub.publish(reading)
        await until(lambda: publisher.status().last_error is not None)  # it tried, and failed
        assert publisher.status().dropped == 7 and publisher.status().connects == 0

        proxy.refusing = False
        await until(lambda: len(received_numbers(subscriber)) == 5)
        assert received_numbers(subscriber) == [7, 8, 9, 10, 11]
        nursery.cancel_scope.cancel()


async def test_a_broker_that_stops_answering_fills_the_window_only(
    broker: Mosquitto, subscriber: Subscriber
) -> None:
    proxy = Proxy(broker)
    hub = ReadingsHub()
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        publisher = MqttPublisher(settings(proxy, discovery=False), hub, {})
        nursery.start_soon(publisher.run)
        await until(lambda: publisher.status().connected)
        proxy.stalled = True
        for reading in numbered(WINDOW + 10):
            hub.publish(reading)
        await until(lambda: publisher.status().in_flight == WINDOW)  # the rest wait in the hub subscription
        proxy.stalled = False
        await until(lambda: len(received_numbers(subscriber)) == WINDOW + 10)
        assert received_numbers(subscriber) == list(range(WINDOW + 10))
        await until(lambda: publisher.status().published == WINDOW + 10)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("in_flight", [False, True])
async def test_readings_older_than_60_s_expire_unsent(
    broker: Mosquitto, subscriber: Subscriber, in_flight: bool
) -> None:
    now = [T0]
    proxy = Proxy(broker)
    hub = ReadingsHub(clock=lambda: now[0])
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        publisher = MqttPublisher(settings(proxy, discovery=False), hub, {})
        if in_flight:  # handed to paho, never acknowledged: paho would resend them after the reconnect
            nursery.start_soon(publisher.run)
            await until(lambda: publisher.status().connected)
            proxy.stalled = True
            for reading in numbered(3):
                hub.publish(reading)
            await until(lambda: publisher.status().in_flight == 3)
            proxy.refusing = True
            proxy.cut()
            proxy.stalled = False
        else:  # waiting in the hub subscription
            proxy.refusing = True
            nursery.start_soon(publisher.run)
            for reading in numbered(3):
                hub.publish(reading)
        await until(lambda: not publisher.status().connected and publisher.status().last_error)
        now[0] = T0 + 70  # more than a minute passes with the broker unreachable
        for reading in numbered(2, start=70):
            hub.publish(reading)

        proxy.refusing = False
        await until(lambda: len(received_numbers(subscriber)) == 2)
        assert received_numbers(subscriber) == [70, 71]
        assert publisher.status().expired == 3
        nursery.cancel_scope.cancel()


async def test_link_status_when_it_changes(broker: Mosquitto, subscriber: Subscriber) -> None:
    status = LinkStatus("p1", "p1", state="hunting", connected=True)
    publisher = MqttPublisher(settings(broker), ReadingsHub(), {"p1": status})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        await until(lambda: subscriber.on("meterlink/p1/status"))
        status.state = "stale"
        await until(lambda: len(subscriber.on("meterlink/p1/status")) == 2)
        nursery.cancel_scope.cancel()
    assert [json.loads(m.payload) for m in subscriber.on("meterlink/p1/status")] == [
        {"kind": "p1", "state": "hunting", "connected": True, "stale": False},
        {"kind": "p1", "state": "stale", "connected": True, "stale": True},
    ]


async def retained_payloads(broker: Mosquitto, topics: list[str]) -> dict[str, bytes]:
    """The retained payload of each topic that has one, as a client subscribing now gets it."""
    return {topic: found[-1].payload for topic in topics if (found := await retained_on(broker, topic))}


async def test_a_meters_sensors_are_unavailable_while_its_link_is_down(
    broker: Mosquitto, subscriber: Subscriber
) -> None:
    status = LinkStatus("p1", "p1", state="reading", connected=True)
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker), hub, {"p1": status})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        hub.publish(p1_reading())
        await until(lambda: subscriber.on(CONFIG.format("1-0_1_8_1")))
        config = json.loads(subscriber.on(CONFIG.format("1-0_1_8_1"))[0].payload)
        topics = [entry["topic"] for entry in config["availability"]]
        assert topics == ["meterlink/status", "meterlink/p1/status"]
        await until(lambda: subscriber.on("meterlink/p1/status"))
        assert available(config, await retained_payloads(broker, topics))

        status.connected = False  # the link goes down: its status is checked once a second
        await until(lambda: len(subscriber.on("meterlink/p1/status")) == 2)
        down = await retained_payloads(broker, topics)
        assert json.loads(down["meterlink/p1/status"])["connected"] is False
        assert render(config["availability"][1]["value_template"], down["meterlink/p1/status"]) == "offline"
        assert not available(config, down)

        status.connected, status.state = True, "stale"  # back, but no telegram arrives
        await until(lambda: len(subscriber.on("meterlink/p1/status")) == 3)
        assert not available(config, await retained_payloads(broker, topics))

        status.state = "reading"
        await until(lambda: len(subscriber.on("meterlink/p1/status")) == 4)
        assert available(config, await retained_payloads(broker, topics))
        nursery.cancel_scope.cancel()
    await until(lambda: payloads(subscriber.on("meterlink/status"))[-1] == "offline")  # a clean stop
    assert not available(config, await retained_payloads(broker, topics))


async def test_home_assistants_birth_message_brings_discovery_again(broker: Mosquitto, subscriber: Subscriber) -> None:
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker), hub, {"p1": LinkStatus("p1", "p1", connected=True)})
    link_config = f"homeassistant/binary_sensor/{CLIENT_ID}/p1_link/config"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        hub.publish(p1_reading())
        await until(lambda: subscriber.on(CONFIG.format("1-0_1_8_1")) and subscriber.on("meterlink/p1/status"))

        # Home Assistant's will ("offline") asks for nothing; its birth ("online") for everything again.
        # They come from one client, in order: had "offline" started a round, it would be seen first.
        subscriber.client.publish("homeassistant/status", "offline", qos=1)
        subscriber.client.publish("homeassistant/status", "online", qos=1)
        await until(lambda: len(subscriber.on("meterlink/p1/status")) == 2)  # the last message of a round
        assert len(subscriber.on(CONFIG.format("1-0_1_8_1"))) == 2
        assert len(subscriber.on(link_config)) == 2
        assert payloads(subscriber.on("meterlink/status")) == ["online", "online"]
        nursery.cancel_scope.cancel()


async def test_a_refused_login_is_retried_and_the_password_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = Mosquitto(tmp_path, anonymous=False)  # no password file: every login is refused
    broker.start()
    secret = "s3cret-pa55word"
    config = settings(broker, username="meter", password=secret)
    publisher = MqttPublisher(config, ReadingsHub(), {})
    caplog.set_level(logging.INFO, logger="meterlink.mqtt")
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher.run)
            await until(lambda: len([r for r in caplog.records if "refused" in r.getMessage()]) >= 2)
            nursery.cancel_scope.cancel()
    finally:
        broker.stop()
    status = publisher.status()
    assert "refused" in (status.last_error or "") and status.connects == 0
    assert secret not in caplog.text and secret not in repr(config) and secret not in repr(status)


# --- the pure parts -----------------------------------------------------------------------------------

def test_obis_keys_and_names_are_safe() -> None:
    assert obis_key("1-0:1.8.0.255") == "1-0_1_8_0"
    assert obis_key("1-0:1.8.0.101") == "1-0_1_8_0_101"
    assert safe_name("meter/1+#") == "meter_1__"


def test_dlms_registers_become_sensors() -> None:
    reading = Reading("1KFM0100000035", "mbus", None, None, (
        Value("1-0:1.8.0.255", 9108, "Wh", 9108, 0, 30),
        Value("1-0:16.8.0.255", -12, "Wh", -12, 0, 30),
        Value("1-0:13.7.0.255", 0.98, "", 98, -2, 255),  # COSEM unit 255 "no unit" decodes to ""
        Value("1-0:33.7.0.255", 0.97, "", 97, -2, 255),
        Value("0-0:96.7.21.255", 4, "", 4, 0, 255),  # number of power failures: a counter, no sensor
        Value("1-0:3.8.0.255", 12, "varh", 12, 0, 32),
        Value("1-0:3.7.0.255", 1.5, "kvar", 15, -1, None),
        Value("1-0:9.7.0.255", 1.234, "kVA", 1234, -3, None),
        Value("1-0:9.8.0.255", 77, "VAh", 77, 0, 31),
        Value("1-0:52.7.0.255", 230.8, "V", 2308, -1, 35),
        Value("0-0:42.0.0.255", "KFM1200200000035"),
    ))
    found = {s.key: (s.name, s.unit, s.device_class, s.state_class, s.factor) for s in sensors(reading)}
    assert found == {
        "1-0_1_8_0": ("Active energy import", "Wh", "energy", "total_increasing", 1),
        "1-0_16_8_0": ("Active energy net", "Wh", "energy", "total", 1),
        "1-0_13_7_0": ("Power factor", None, "power_factor", "measurement", 1),
        "1-0_33_7_0": ("Power factor L1", None, "power_factor", "measurement", 1),
        "1-0_3_8_0": ("Reactive energy import", "varh", "reactive_energy", "total_increasing", 1),
        "1-0_3_7_0": ("Reactive power import", "kvar", "reactive_power", "measurement", 1),  # kvar: valid from 2025.7
        "1-0_9_7_0": ("Apparent power import", "VA", "apparent_power", "measurement", 1000),  # kVA: not before 2025.10
        "1-0_9_8_0": ("Apparent energy import", "VAh", None, "total_increasing", 1),
        "1-0_52_7_0": ("Voltage L2", "V", "voltage", "measurement", 1),
    }
    assert manufacturer("1KFM0100000035") == "Kaifa" and manufacturer(None) == "unknown"


@pytest.mark.parametrize("overrides, problem", [
    ({"qos": 3}, "qos"),
    ({"base_topic": "a/#"}, "base_topic"),
    ({"discovery_prefix": "/ha"}, "discovery_prefix"),
    ({"client_id": ""}, "client_id"),
    ({"queue_size": 0}, "queue_size"),
    ({"backoff_initial": 60.0}, "backoff"),
])
def test_settings_name_what_is_wrong(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MqttSettings("localhost", password="hidden", **overrides)  # type: ignore[arg-type]
