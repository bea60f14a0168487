"""A reading's `link` is the configured link's name in the service, and `kind` the link kind
(issue 12, item 9): two M-Bus links named house and heatpump are two links, in the API and on MQTT;
`read` and `decode`, which have no configured name, print the kind as both."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import httpx
import trio

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.mbus import MBusLink, run_mbus
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.readings import Reading
from meterlink.service.hub import ReadingsHub
from meterlink.service.mqtt import MqttPublisher
from meterlink.simulators.kaifa import DEMO_KEY, METER_NUMBER, KaifaMeterModel, push_one_way
from meterlink.transports import memory_link_pair
from mosquitto import Mosquitto, Subscriber
from processes import METERLINK, free_port, meterlink
from test_mbus_cli import TINETZ
from test_mqtt import broker, settings, subscriber, until  # noqa: F401 (fixtures)
from test_service import TOKEN, Running

START = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


async def read_named(name: str) -> Reading:
    """One reading of a simulated Kaifa meter, as the M-Bus actor of a link with this name publishes it."""
    origin = trio.current_time()
    readings: list[Reading] = []
    done = trio.Event()

    def publish(reading: Reading) -> None:
        readings.append(reading)
        done.set()

    ours, theirs = memory_link_pair()

    async def already_open() -> trio.abc.Stream:
        return ours

    run = partial(run_mbus, MBusLink("memory", push_interval=1.0), lambda: [CipherKeys(DEMO_KEY)],
                  LinkHooks(publish), LinkStatus(name, "mbus"), already_open)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(push_one_way, theirs, KaifaMeterModel(), 1.0,
                           lambda: START + timedelta(seconds=trio.current_time() - origin))
        nursery.start_soon(run)
        await done.wait()
        nursery.cancel_scope.cancel()
    return readings[0]


async def test_the_link_actor_publishes_under_the_links_name(autojump_clock):
    reading = await read_named("heatpump")
    assert (reading.link, reading.kind) == ("heatpump", "mbus")
    document = reading.to_json()
    assert list(document)[:3] == ["meter_id", "link", "kind"]
    assert (document["link"], document["kind"]) == ("heatpump", "mbus")


async def test_mqtt_topics_and_availability_follow_the_links_name(broker: Mosquitto, subscriber: Subscriber):
    reading = await read_named("heatpump")  # on the wall clock: the meter pushes its first telegram at once
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker), hub, {"heatpump": LinkStatus("heatpump", "mbus")})
    base = f"meterlink/heatpump/{METER_NUMBER}"
    config_topic = f"homeassistant/sensor/meterlink_{METER_NUMBER}/1-0_1_8_0/config"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        hub.publish(reading)
        await until(lambda: subscriber.on(f"{base}/reading") and subscriber.on(config_topic))
        nursery.cancel_scope.cancel()
    assert json.loads(subscriber.on(f"{base}/reading")[0].payload)["link"] == "heatpump"
    config = json.loads(subscriber.on(config_topic)[0].payload)
    assert config["unique_id"] == f"meterlink_{METER_NUMBER}_1-0_1_8_0"  # by meter id: a renamed link keeps it
    assert [entry["topic"] for entry in config["availability"]] == ["meterlink/status", "meterlink/heatpump/status"]
    assert config["device"]["model"] == "mbus"


def test_decode_prints_the_kind_as_link_and_kind():
    result = meterlink("decode", "mbus", "--key", TINETZ["key_if_any"], "-", stdin=TINETZ["hex_or_text"].encode())
    assert result.returncode == 0, result.stderr
    reading = json.loads(result.stdout)
    assert (reading["link"], reading["kind"]) == ("mbus", "mbus")


def test_two_mbus_links_are_two_links_in_the_api(tmp_path: Path):
    """The issue's case: links named house and heatpump both showed as "mbus" (and, with the same
    meter id, as one meter)."""
    meters = [subprocess.Popen([*METERLINK, "simulate", "kaifa", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    port = free_port()
    config = tmp_path / "meterlink.toml"
    links = "".join(f'[[link]]\nname = "{name}"\nkind = "mbus"\nport = "{meter.stdout.readline().decode().strip()}"\n'
                    f'push_interval = 0.5\n' for name, meter in zip(("house", "heatpump"), meters))
    config.write_text(f'[adapter]\nstate_dir = "{tmp_path / "state"}"\ntoken = "{TOKEN}"\n'
                      f'[http]\nlisten = "127.0.0.1:{port}"\n{links}', encoding="utf-8")
    service = Running("run", "--config", str(config), cwd=tmp_path)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert service.line().startswith("meterlink: serving")
        for name in ("house", "heatpump"):  # two links take a key: each is named
            setkey = httpx.post(f"{url}/api", json={"cmd": "meter_setkey", "key": DEMO_KEY.hex(), "link": name},
                                headers=headers, timeout=5)
            assert setkey.json() == {"link": name, "result": "OK"}
        answer = until_two_meters(f"{url}/api/v1/meters", headers)
    finally:
        service.stop()
        for meter in meters:
            meter.kill()
    assert [(meter["link"], meter["kind"], meter["meter_id"]) for meter in answer] == [
        ("heatpump", "mbus", METER_NUMBER), ("house", "mbus", METER_NUMBER)]


def until_two_meters(url: str, headers: dict[str, str], timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    answer: list[dict] = []
    while time.monotonic() < deadline and len(answer) < 2:
        time.sleep(0.2)
        answer = httpx.get(url, headers=headers, timeout=5).json()
    return answer
