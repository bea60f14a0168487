"""The MQTT output's counters in GET /api/v1/links: `meterlink run` in a real process, a simulated P1
meter and a real Mosquitto that goes down and comes back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mosquitto import Mosquitto
from processes import free_port, start_simulator, stop
from test_api import api_client, bearer, make_rig
from test_service import TOKEN, Running

QUEUE_SIZE = 3


def eventually(read: Callable[[], Any], condition: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    """`read()` again until `condition` holds for what it returns; that value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = read()
            if condition(value):
                return value
        except httpx.HTTPError:
            value = None
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s; last: {value}")
        time.sleep(0.1)


def test_the_mqtt_counters_in_links_while_the_broker_goes_down_and_back(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    broker.start()
    meter, meter_url = start_simulator("p1", "--listen", "tcp://127.0.0.1:0", "--interval", "0.2")
    port = free_port()
    config = tmp_path / "meterlink.toml"
    config.write_text(
        f'[adapter]\nstate_dir = "{tmp_path / "state"}"\ntoken = "{TOKEN}"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "meterlink-service-test"\n'
        f"queue_size = {QUEUE_SIZE}\n"
        f'[[link]]\nname = "p1"\nkind = "p1"\nport = "{meter_url}"\npush_interval = 0.2\n',
        encoding="utf-8",
    )
    service = Running("run", "--config", str(config))

    def mqtt() -> dict[str, Any]:
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/links", headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=5)
        (output,) = answer.json()["outputs"]
        return output

    try:
        up = eventually(mqtt, lambda o: o["connected"] and o["published"] >= 3)
        assert set(up) == {"name", "connected", "connects", "published", "in_flight", "queued", "dropped", "expired",
                           "last_error"}
        assert (up["name"], up["connects"], up["dropped"], up["expired"], up["last_error"]) == ("mqtt", 1, 0, 0, None)

        broker.stop()  # telegrams go on arriving, five a second, and the queue holds three
        down = eventually(mqtt, lambda o: o["dropped"] > 0)
        assert not down["connected"] and down["last_error"] is not None
        assert down["queued"] >= QUEUE_SIZE  # the full hub subscription, and what was in flight when it went

        broker.start()
        back = eventually(mqtt, lambda o: o["connected"] and o["published"] > down["published"])
        assert back["connects"] == 2 and back["dropped"] >= down["dropped"]
    finally:
        service.stop()
        stop(meter)
        broker.stop()


async def test_no_outputs_without_mqtt(tmp_path: Path) -> None:
    async with api_client(make_rig(tmp_path).adapter) as client:
        answer = (await client.get("/api/v1/links", headers=bearer())).json()
    assert answer["outputs"] == []
