"""Nothing older than 60 s is served, and each link keeps at most `max_meters` meters (issue 12, item 6).

Every reader of the hub agrees: /api/v1/meters, /readings/latest, /readings/window, meter_reading
and MQTT's re-announcement after a reconnect all go through `meters()` and `latest()`/`window()`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from meterlink.actors.link import LinkStatus
from meterlink.protocols.readings import Reading, Value
from meterlink.service.config import ConfigError, parse_config
from meterlink.service.hub import MeterKey, ReadingsHub
from meterlink.service.mqtt import MqttPublisher
from meterlink.service.run import readings_hub
from mosquitto import Mosquitto, Subscriber
from test_api import NOW, Rig, api_client, bearer, command, make_rig
from test_mqtt import broker, settings, subscriber, until  # noqa: F401 (fixtures)


def reading(at: float, meter: str = "M1", link: str = "house") -> Reading:
    return Reading(meter, "mbus", at, None, (Value("1-0:1.7.0.255", 100, "W", 100, 0, 27),), name=link)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_a_vanished_meters_reading_is_not_served_past_60_s():
    clock = Clock()
    hub = ReadingsHub(clock=clock)
    hub.publish(reading(NOW))
    key = MeterKey("house", "M1")
    clock.now = NOW + 60.0
    assert hub.meters() == [key] and hub.latest(key) is not None
    clock.now = NOW + 61.0  # the issue saw 61-89 s old readings served
    assert hub.meters() == [] and hub.latest(key) is None and hub.window(key) == []


def test_a_new_meter_beyond_max_meters_forgets_the_one_heard_least_recently():
    clock = Clock()
    forgotten: list[MeterKey] = []
    hub = ReadingsHub(clock=clock, max_meters={"house": 2}, forgotten=forgotten.append)
    for meter in ("M1", "M2", "M1", "M3"):  # M2 is now the one heard least recently
        clock.now += 1.0
        hub.publish(reading(clock.now, meter))
    for meter in ("P1", "P2", "P3", "P4"):  # another link: 4 by default, its own count
        hub.publish(reading(clock.now, meter, link="p1"))
    assert forgotten == [MeterKey("house", "M2")]
    assert [key for key in hub.meters() if key.link == "house"] == [MeterKey("house", "M1"), MeterKey("house", "M3")]
    assert len(hub.meters()) == 6


def service_rig(tmp_path: Path, **link: object) -> tuple[Rig, LinkStatus]:
    """An API whose hub is the service's, for one M-Bus link named "house"."""
    sections = parse_config({"link": [{"name": "house", "kind": "mbus", "port": "/dev/ttyUSB0", **link}]}).link
    status = LinkStatus("house", "mbus")
    rig = make_rig(tmp_path, links={"house": status})
    rig.adapter.hub = replace(readings_hub(sections, {"house": status}), clock=rig.clock)
    return rig, status


async def test_a_meter_whose_id_changes_every_telegram_stays_within_max_meters(tmp_path: Path):
    rig, status = service_rig(tmp_path)
    for n in range(458):  # the 458 entries in 90 s
        rig.clock.now = NOW + n * 0.2
        rig.hub.publish(reading(rig.clock.now, f"ID{n:04d}"))
    async with api_client(rig.adapter) as client:
        meters = (await client.get("/api/v1/meters", headers=bearer())).json()
        [link] = (await client.get("/api/v1/links", headers=bearer())).json()["links"]
    assert [meter["meter_id"] for meter in meters] == ["ID0454", "ID0455", "ID0456", "ID0457"]  # the default 4
    assert (link["meters_forgotten"], link["last_meter_forgotten"]) == (454, "ID0453")
    assert status.meters_forgotten == 454


async def test_max_meters_is_configured_per_link(tmp_path: Path):
    rig, status = service_rig(tmp_path, max_meters=1)
    rig.hub.publish(reading(NOW, "A"))
    rig.hub.publish(reading(NOW, "B"))
    assert rig.hub.meters() == [MeterKey("house", "B")] and status.last_meter_forgotten == "A"
    with pytest.raises(ConfigError, match=r"link\[0\]\.max_meters"):
        parse_config({"link": [{"name": "house", "kind": "mbus", "port": "/dev/ttyUSB0", "max_meters": 0}]})
    assert parse_config({"link": [{"name": "p1", "kind": "p1", "port": "/dev/ttyUSB0"}]}).link[0].max_meters == 4


async def test_every_reader_of_the_api_agrees_after_60_s(tmp_path: Path):
    rig, _ = service_rig(tmp_path)
    rig.hub.publish(reading(NOW - 30.0, "GONE"))
    rig.hub.publish(reading(NOW - 1.0, "HERE"))
    rig.clock.now = NOW + 31.0  # GONE last heard 61 s ago, HERE 32 s ago
    async with api_client(rig.adapter) as client:
        meters = (await client.get("/api/v1/meters", headers=bearer())).json()
        latest = (await client.get("/api/v1/readings/latest", headers=bearer())).json()
        window = (await client.get("/api/v1/readings/window", headers=bearer())).json()
        answer = (await command(client, {"cmd": "meter_reading"})).json()
    assert [meter["meter_id"] for meter in meters] == ["HERE"]
    assert [reading["meter_id"] for reading in latest] == ["HERE"]
    assert [meter["meter_id"] for meter in window] == ["HERE"]
    assert [meter["meterid"] for meter in answer["meter"]] == ["HERE"]


async def test_mqtt_remembers_announcements_only_of_the_hubs_meters(broker: Mosquitto, subscriber: Subscriber):
    """The same leak next door: the publisher noted every meter id it announced, for as long as it
    stayed connected."""
    hub = ReadingsHub()
    publisher = MqttPublisher(settings(broker), hub, {"house": LinkStatus("house", "mbus")})
    now = time.time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher.run)
        for n in range(50):
            hub.publish(reading(now, f"ID{n:04d}"))
        await until(lambda: subscriber.on("meterlink/house/ID0049/reading"))
        nursery.cancel_scope.cancel()
    # The memory itself (no public view shows it): the hub's meters, and the one announced last,
    # which the hub may have forgotten by the time its reading goes out.
    assert len(publisher._announced) <= len(hub.meters()) + 1 == 5
