"""The JSON API /api/v1, its OpenAPI description, and the live stream of readings (Server-Sent Events)."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from meterlink.actors.link import LinkStatus
from meterlink.service.adapter import ApiPolicy
from meterlink.service.api import SSE_KEEPALIVE, create_app
from meterlink.service.meterextension import COMMANDS
from meterlink.supervisor import ChildState, ChildStatus
from test_api import LAN, NOW, TOKEN, Rig, api_client, bearer, make_rig, p1_reading, rig  # noqa: F401 (fixture)

ENDPOINTS = ["/api/v1/meters", "/api/v1/readings/latest", "/api/v1/readings/window", "/api/v1/links"]


def as_sent(document: Any) -> Any:
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("path", ENDPOINTS + ["/api/v1/stream"])
async def test_reading_endpoints_need_credentials_outside_open_reads(tmp_path: Path, path: str) -> None:
    rig = make_rig(tmp_path, policy=ApiPolicy(open_reads=(LAN,)))
    async with api_client(rig.adapter, address="10.0.0.5") as outside:
        refused = await outside.get(path)
        wrong = await outside.get(path, headers=bearer("wrong-token"))
    assert (refused.status_code, refused.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert refused.json()["error"] == "unauthorized"
    assert wrong.status_code == 401


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_reading_endpoints_with_credentials_or_from_open_reads(tmp_path: Path, path: str) -> None:
    rig = make_rig(tmp_path, policy=ApiPolicy(open_reads=(LAN,)))
    async with api_client(rig.adapter, address="10.0.0.5") as outside, \
            api_client(rig.adapter, address="192.168.1.7") as inside:
        with_token = await outside.get(path, headers=bearer())
        with_password = await outside.get(path, auth=("admin", TOKEN))
        open_read = await inside.get(path)
    assert with_token.status_code == with_password.status_code == open_read.status_code == 200


async def test_meters_and_readings(rig: Rig) -> None:
    old, latest = p1_reading(NOW - 70.0), p1_reading(NOW - 1.0)
    mbus = p1_reading(NOW - 2.0)
    mbus = type(mbus)(None, "mbus", mbus.received_at, None, mbus.values[:3])
    for reading in (old, latest, mbus):
        rig.hub.publish(reading)
    async with api_client(rig.adapter) as client:
        meters = (await client.get("/api/v1/meters", headers=bearer())).json()
        readings = (await client.get("/api/v1/readings/latest", headers=bearer())).json()
        window = (await client.get("/api/v1/readings/window", headers=bearer())).json()
    assert meters == [{"link": "mbus", "kind": "mbus", "meter_id": None, "received_at": NOW - 2.0},
                      {"link": "p1", "kind": "p1", "meter_id": "1SAG1100000231", "received_at": NOW - 1.0}]
    # Exactly the reading format of ARCHITECTURE.md: fields without a value are left out.
    assert readings == as_sent([mbus.to_json(), latest.to_json()])
    assert "unit" not in readings[1]["values"][0]
    assert window == as_sent([
        {"link": "mbus", "meter_id": None, "readings": [mbus.to_json()]},
        {"link": "p1", "meter_id": "1SAG1100000231", "readings": [latest.to_json()]},  # 70 s old is gone
    ])


async def test_links_and_supervisor_tree(tmp_path: Path) -> None:
    status = LinkStatus("p1", "p1", state="reading", state_label="Reading to '!' and CRC",
                        counters=Counter(telegrams=12, crc_errors=1), connected=True,
                        last_reading_at=NOW - 1, last_drop="crc: mismatch")
    tree = (
        ChildStatus("links", ChildState.RUNNING, 0, None, None, None, children=(
            ChildStatus("p1", ChildState.BACKOFF, 3, "LinkLost: p1: the peer closed the link", NOW - 5, 2.0),)),
        ChildStatus("http", ChildState.RUNNING, 0, None, None, None),
    )
    rig = make_rig(tmp_path, links={"p1": status}, supervisor=tree)
    async with api_client(rig.adapter) as client:
        answer = (await client.get("/api/v1/links", headers=bearer())).json()
    assert answer["links"] == [{"name": "p1", "kind": "p1", "state": "reading",
                                "state_label": "Reading to '!' and CRC",
                                "counters": {"telegrams": 12, "crc_errors": 1}, "connected": True,
                                "last_reading_at": NOW - 1, "readings": 0, "drops": {}, "last_drop": "crc: mismatch",
                                "last_drop_at": None, "last_drop_cleared": False, "readings_since_drop": 0,
                                "meters_forgotten": 0, "last_meter_forgotten": None, "detected": None,
                                "last_note": None, "last_note_at": None, "image": None}]
    links, http = answer["supervisor"]
    assert (links["id"], links["state"], http["id"], http["children"]) == ("links", "running", "http", [])
    assert links["children"] == [{"id": "p1", "state": "backoff", "restarts": 3,
                                  "last_error": "LinkLost: p1: the peer closed the link",
                                  "last_error_at": NOW - 5, "backoff": 2.0, "children": []}]


async def test_openapi_describes_commands_and_endpoints(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        response = await client.get("/openapi.json")
        redoc = await client.get("/redoc")
    assert response.status_code == 200 and redoc.status_code == 404
    schema = response.json()
    assert set(schema["paths"]) == {"/api", *ENDPOINTS, "/api/v1/stream", "/api/v1/links/{name}/image"}
    body = schema["paths"]["/api"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    command = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert command["discriminator"]["propertyName"] == "cmd"
    assert set(command["discriminator"]["mapping"]) == set(COMMANDS)
    for ref in command["discriminator"]["mapping"].values():
        assert ref.rsplit("/", 1)[1] in schema["components"]["schemas"]
    key = schema["components"]["schemas"]["MeterSetKeyCommand"]["properties"]["key"]
    assert key["writeOnly"] is True and key["pattern"] == "^[0-9A-Fa-f]{32}$"
    assert {"bearer", "basic"} == {s["scheme"] for s in schema["components"]["securitySchemes"].values()}
    assert "text/event-stream" in schema["paths"]["/api/v1/stream"]["get"]["responses"]["200"]["content"]


# --- the stream -----------------------------------------------------------------------------------------


class AsgiCall:
    """Drives one GET through the ASGI app by hand, so the test decides when the client goes away."""

    def __init__(self, app: Any, path: str, client: tuple[str, int]) -> None:
        self.app = app
        self.scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.1"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"adapter")], "client": client, "server": ("adapter", 80),
        }
        self.sent: list[dict[str, Any]] = []
        self.requested = False
        self.gone = trio.Event()
        self.finished = trio.Event()

    async def receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self) -> None:
        await self.app(self.scope, self.receive, self.send)
        self.finished.set()

    def body(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body" and m["body"]]


async def test_stream_sends_readings_and_ends_when_the_client_leaves(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    rig = make_rig(tmp_path, policy=ApiPolicy(open_reads=(LAN,)))
    call = AsgiCall(create_app(rig.adapter), "/api/v1/stream", ("192.168.1.7", 40000))
    reading = p1_reading(NOW)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call.run)
        await trio.testing.wait_all_tasks_blocked()
        start = call.sent[0]
        assert (start["status"], dict(start["headers"])[b"content-type"]) == (200, b"text/event-stream; charset=utf-8")
        assert call.body() == [b": subscribed\n\n"]
        rig.hub.publish(reading)
        await trio.testing.wait_all_tasks_blocked()
        assert call.body()[1] == f"data: {json.dumps(reading.to_json())}\n\n".encode()
        # A quiet stream still sends a comment now and then, so a vanished client is noticed.
        await trio.sleep(SSE_KEEPALIVE + 1)
        await trio.testing.wait_all_tasks_blocked()
        assert call.body()[2:] == [b": keepalive\n\n"]
        assert len(rig.hub._subscribers) == 1
        call.gone.set()
        await call.finished.wait()
    assert not rig.hub._subscribers  # the subscription ended with the response


async def test_stream_over_http_with_hypercorn(rig: Rig) -> None:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    readings = [p1_reading(NOW + n) for n in range(3)]
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn_serve, create_app(rig.adapter), config))
        async with httpx.AsyncClient(base_url=binds[0]) as client, \
                client.stream("GET", "/api/v1/stream", headers=bearer()) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            assert await anext(lines) == ": subscribed"
            for reading in readings:
                rig.hub.publish(reading)
            received = []
            async for line in lines:
                if line.startswith("data: "):
                    received.append(json.loads(line.removeprefix("data: ")))
                if len(received) == len(readings):
                    break
        nursery.cancel_scope.cancel()
    assert received == as_sent([reading.to_json() for reading in readings])
