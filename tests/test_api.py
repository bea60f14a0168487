"""POST /api, compatible with the MeterExtension #1 (seed 000 ch. 3), and its security (seed 001 ch. C.1).

The app runs in-process through httpx's ASGI transport under trio. Helpers here are shared with
the other tests/test_api_*.py files.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from meterlink.actors.link import LinkStatus
from meterlink.protocols.p1 import P1Framer, TelegramFramed
from meterlink.protocols.readings import Reading
from meterlink.service.adapter import Adapter, ApiPolicy
from meterlink.service.api import create_app
from meterlink.service.hub import ReadingsHub
from meterlink.service.network import NetworkController, WindowStore, access_point_ssid
from meterlink.service.wifi import AccessPoint, SimulatedWifi
from meterlink.service.secrets import Credentials, KeyPair, KeyStore, LoginThrottle
from meterlink.supervisor import ChildStatus

TOKEN = "correct-horse-battery"
KEY = "00112233445566778899AABBCCDDEEFF"
NOW = 1_795_443_931.0
CURL_FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what `curl -d` sends
LAN = ipaddress.ip_network("192.168.1.0/24")


class WallClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    adapter: Adapter
    clock: WallClock
    restarts: list[str] = field(default_factory=list)

    @property
    def hub(self) -> ReadingsHub:
        return self.adapter.hub


def make_rig(
    state: Path,
    links: dict[str, LinkStatus] | None = None,
    policy: ApiPolicy = ApiPolicy(),
    throttle: LoginThrottle | None = None,
    supervisor: tuple[ChildStatus, ...] = (),
) -> Rig:
    clock = WallClock()
    credentials = Credentials(state / "token.hash")
    credentials.set(TOKEN)
    adapter = Adapter(
        hub=ReadingsHub(clock=clock),
        links=links if links is not None else {"p1": LinkStatus("p1", "p1")},
        supervisor_status=lambda: supervisor,
        keys=KeyStore(state / "keys.bin", state / "device.key"),
        credentials=credentials,
        throttle=throttle or LoginThrottle(),
        policy=policy,
    )
    # The network controller is not run here: commands reach its queue, status reads its machine.
    adapter.network = NetworkController(SimulatedWifi(), AccessPoint(access_point_ssid(adapter.device.mac), "rig-ap-pass"),
                                        WindowStore(state / "network.json", boot_id=lambda: "test-boot"))
    rig = Rig(adapter, clock)
    adapter.request_restart = lambda: rig.restarts.append("restart")
    return rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


@asynccontextmanager
async def api_client(adapter: Adapter, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(adapter), client=(address, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://adapter") as client:
        yield client


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def command(client: httpx.AsyncClient, body: dict[str, Any] | str | bytes, auth: bool = True) -> httpx.Response:
    """POST /api as the seed's curl examples do: a JSON body sent as form content."""
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return await client.post("/api", content=content, headers=CURL_FORM | (bearer() if auth else {}))


def p1_reading(received_at: float) -> Reading:
    raw = (Path(__file__).parent / "data" / "emucs_p1_1phase.txt").read_bytes()
    framed = next(event for event in P1Framer().feed(raw) if isinstance(event, TelegramFramed))
    return framed.telegram.to_reading(received_at)


def stored(rig: Rig, link: str) -> list[KeyPair]:
    return rig.adapter.keys.candidates(link)


# One valid body per command, and what it answers with credentials and the default policy.
COMMANDS: dict[str, tuple[dict[str, Any], int]] = {
    "meter_reading": ({"cmd": "meter_reading"}, 200),
    "wifi_status": ({"cmd": "wifi_status"}, 200),
    "system_status": ({"cmd": "system_status"}, 200),
    "get_ip_info": ({"cmd": "get_ip_info"}, 200),
    "meter_setkey": ({"cmd": "meter_setkey", "key": KEY, "link": "p1"}, 200),
    "wifi_config": ({"cmd": "wifi_config", "ssid": "home", "password": "wifi-pass-123", "mode": "sta"}, 200),
    "system_restart": ({"cmd": "system_restart"}, 200),
    "meter_factreset": ({"cmd": "meter_factreset"}, 200),
    "firmware_update": ({"cmd": "firmware_update", "firmware_uri": "http://192.0.2.9/x.bin"}, 200),
    "download_file": ({"cmd": "download_file", "file_uri": "http://192.0.2.9/test.txt"}, 403),
    "request_post": ({"cmd": "request_post", "file_uri": "http://192.0.2.9/api", "message": "hi"}, 403),
}
READS = ["meter_reading", "wifi_status", "system_status", "get_ip_info"]
CONFIGURATION = [name for name in COMMANDS if name not in READS]


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
async def test_every_command_needs_credentials(rig: Rig, name: str) -> None:
    body, status = COMMANDS[name]
    async with api_client(rig.adapter) as client:
        refused = await command(client, body, auth=False)
        accepted = await command(client, body)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.json()["result"] == "ERROR" and refused.json()["error"] == "unauthorized"
    assert accepted.status_code == status, accepted.text


@pytest.mark.parametrize("name", list(COMMANDS))
async def test_open_reads_let_a_listed_network_read_but_not_configure(tmp_path: Path, name: str) -> None:
    rig = make_rig(tmp_path, policy=ApiPolicy(open_reads=(LAN,)))
    body, status = COMMANDS[name]
    async with api_client(rig.adapter, address="192.168.1.20") as inside, \
            api_client(rig.adapter, address="192.168.2.20") as outside:
        from_inside = await command(inside, body, auth=False)
        from_outside = await command(outside, body, auth=False)
    assert from_outside.status_code == 401
    assert from_inside.status_code == (status if name in READS else 401)


async def test_configuration_refused_without_credentials_changes_nothing(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        for name in CONFIGURATION:
            await command(client, COMMANDS[name][0], auth=False)
        status = (await command(client, {"cmd": "wifi_status"})).json()
    assert rig.restarts == [] and rig.adapter.keys.links() == []
    assert status["ssid"].startswith("meterextension:")


async def test_basic_auth_with_any_user_and_the_device_password(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        good = await client.post("/api", content='{"cmd":"system_status"}', auth=("anyone", TOKEN))
        bad = await client.post("/api", content='{"cmd":"system_status"}', auth=("anyone", "not-the-password"))
        garbled = await client.post("/api", content='{"cmd":"system_status"}', headers={"Authorization": "Basic %%%"})
        other_scheme = await client.post("/api", content='{"cmd":"system_status"}', headers={"Authorization": f"Token {TOKEN}"})
    assert good.status_code == 200 and good.json()["result"] == "OK"
    assert [r.status_code for r in (bad, garbled, other_scheme)] == [401, 401, 401]


async def test_wrong_token_is_401_with_a_json_error(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        response = await client.post("/api", content='{"cmd":"meter_reading","id":"7"}', headers=bearer("wrong-token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "unauthorized", "message": "wrong token or password", "result": "ERROR", "id": "7"}


async def test_repeated_failures_are_slowed_down(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    throttle = LoginThrottle(free_failures=0, base_delay=2.0, max_delay=30.0, clock=trio.current_time)
    rig = make_rig(tmp_path, throttle=throttle)

    async def attempt(client: httpx.AsyncClient, token: str) -> tuple[int, float]:
        start = trio.current_time()
        response = await client.post("/api", content='{"cmd":"system_status"}', headers=bearer(token))
        return response.status_code, trio.current_time() - start

    async with api_client(rig.adapter) as client, api_client(rig.adapter, address="127.0.0.2") as other:
        failures = [await attempt(client, "guess") for _ in range(4)]
        elsewhere = await attempt(other, "guess")
        # The right password waits out the delay too: a late answer must not give away a wrong guess.
        right = await attempt(client, TOKEN)
        after = await attempt(client, TOKEN)
    assert failures == [(401, 0.0), (401, 2.0), (401, 4.0), (401, 8.0)]
    assert elsewhere == (401, 0.0)
    assert right == (200, 16.0)
    assert after == (200, 0.0)


async def test_parallel_guesses_from_one_client_are_taken_one_at_a_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    throttle = LoginThrottle(free_failures=0, base_delay=2.0, max_delay=30.0, clock=trio.current_time)
    rig = make_rig(tmp_path, throttle=throttle)
    finished: list[float] = []

    async def guess(client: httpx.AsyncClient) -> None:
        response = await client.post("/api", content='{"cmd":"meter_setkey","key":"%s"}' % KEY, headers=bearer("guess"))
        assert response.status_code == 401
        finished.append(trio.current_time())

    start = trio.current_time()
    async with api_client(rig.adapter) as client, trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(guess, client)
    assert [at - start for at in sorted(finished)] == [0.0, 2.0, 6.0]
    assert rig.adapter.keys.links() == []


# --- the seed's request format ------------------------------------------------------------------------


async def test_json_body_is_read_whatever_the_content_type(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        as_form = await client.post("/api", content='{"cmd": "meter_reading"}', headers=CURL_FORM | bearer())
        as_json = await client.post("/api", json={"cmd": "meter_reading"}, headers=bearer())
        untyped = await client.post("/api", content=b'{"cmd": "meter_reading"}', headers=bearer())
    for response in (as_form, as_json, untyped):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"meter": [], "result": "OK"}


async def test_id_is_echoed_when_given_and_absent_otherwise(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        with_id = await command(client, {"cmd": "wifi_config", "ssid": "home", "id": "123"})
        numeric = await command(client, {"cmd": "system_restart", "id": 42})
        without = await command(client, {"cmd": "wifi_config", "ssid": "home"})
        refused = await command(client, {"cmd": "meter_setkey", "key": "12", "id": "9"})
    assert with_id.json() == {"result": "OK", "id": "123"}
    assert numeric.json() == {"result": "OK", "id": 42}
    assert without.json() == {"result": "OK"}
    assert refused.status_code == 400 and refused.json()["id"] == "9"


async def test_unknown_command_gets_the_documented_answer(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        with_id = await command(client, {"cmd": "make_coffee", "id": "123"})
        without = await command(client, {"cmd": "make_coffee"})
    assert with_id.status_code == 200
    assert with_id.json() == {"error": "unkown_cmd", "result": "ERROR", "id": "123"}
    assert without.json() == {"error": "unkown_cmd", "result": "ERROR"}


# --- bodies that must never reach a link or the key store ----------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ('{"cmd": "meter_setkey", "key": ', 400, "invalid_json"),
        ("", 400, "invalid_json"),
        (b"\xff\xfe{", 400, "invalid_json"),
        ('[{"cmd": "meter_setkey"}]', 400, "invalid_json"),
        ('"meter_reading"', 400, "invalid_json"),
        ("[" * 50_000 + "]" * 50_000, 413, "body_too_large"),
        ("[" * 5_000 + "]" * 5_000, 400, "invalid_json"),
        ('{"cmd": 5}', 422, "invalid_command"),
        ('{"id": "1"}', 422, "invalid_command"),
        ('{"cmd": "meter_setkey", "key": 7}', 422, "invalid_command"),
        ('{"cmd": "meter_setkey"}', 422, "invalid_command"),
        ('{"cmd": "meter_setkey", "key": "%s", "link": 3}' % KEY, 422, "invalid_command"),
        ('{"cmd": "meter_setkey", "key": "%s", "id": [1]}' % KEY, 422, "invalid_command"),
        ('{"cmd": "meter_setkey", "key": "%s", "link": "nowhere"}' % KEY, 422, "unknown_link"),
        ('{"cmd": "wifi_config", "ssid": ["home"]}', 422, "invalid_command"),
        ('{"cmd": "wifi_config", "ssid": "home", "mode": "ap"}', 422, "invalid_command"),
        ('{"cmd": "download_file"}', 422, "invalid_command"),
        ('{"cmd": "download_file", "file_uri": "file:///etc/passwd"}', 422, "invalid_uri"),
    ],
)
async def test_bad_bodies_get_a_4xx_json_error(tmp_path: Path, body: str | bytes, status: int, error: str) -> None:
    rig = make_rig(tmp_path, policy=ApiPolicy(max_body=16 * 1024, fetch_hosts=("localhost",)))
    async with api_client(rig.adapter) as client:
        response = await command(client, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == error and answer["result"] == "ERROR" and answer["message"]
    assert rig.adapter.keys.links() == []


async def test_oversized_body_is_refused_even_without_a_length(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, policy=ApiPolicy(max_body=64))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"cmd": "meter_setkey", "key": "%s", ' % KEY.encode()
        yield b'"padding": "' + b"x" * 64 + b'"}'

    async with api_client(rig.adapter) as client:
        streamed = await client.post("/api", content=chunks(), headers=bearer())
        declared = await command(client, {"cmd": "meter_reading", "padding": "x" * 64})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == declared.status_code == 413
    assert rig.adapter.keys.links() == []


# --- meter_reading --------------------------------------------------------------------------------------


async def test_meter_reading_of_a_p1_meter(rig: Rig) -> None:
    rig.hub.publish(p1_reading(NOW - 1.5))
    rig.hub.publish(p1_reading(NOW - 0.5))
    async with api_client(rig.adapter) as client:
        answer = (await command(client, {"cmd": "meter_reading", "id": "123"})).json()
    assert answer["result"] == "OK" and answer["id"] == "123"
    [meter] = answer["meter"]
    assert meter["meterid"] == "1SAG1100000231"
    data = {item["OBIS"]: item for item in meter["data"]}
    ts = [str(int(NOW - 1.5)), str(int(NOW - 0.5))]
    # 000001.955*kWh: raw 1955, scaler -3 in kWh is 1955 Wh (unit 30), scale 0.
    assert data["1-0:1.8.2.255"] == {"OBIS": "1-0:1.8.2.255", "scale": "0", "unit": "30",
                                     "entry": [{"val": "1955", "ts": ts[0]}, {"val": "1955", "ts": ts[1]}]}
    assert (data["1-0:32.7.0.255"]["scale"], data["1-0:32.7.0.255"]["unit"], data["1-0:32.7.0.255"]["entry"][0]["val"]) == (
        "-1", "35", "2346")
    assert (data["1-0:1.4.0.255"]["scale"], data["1-0:1.4.0.255"]["unit"]) == ("0", "27")
    assert (data["0-1:24.2.3.255"]["scale"], data["0-1:24.2.3.255"]["unit"]) == ("-3", "13")
    assert data["0-0:96.14.0.255"]["entry"][0]["val"] == "0001" and data["0-0:96.14.0.255"]["unit"] == "255"
    assert "0-0:98.1.0.255" not in data
    assert all(isinstance(v, str) for item in meter["data"] for e in item["entry"] for v in e.values())


async def test_meter_reading_entries_are_the_last_60_seconds(rig: Rig) -> None:
    for age in (90.0, 59.0, 30.0, 0.0):
        rig.hub.publish(p1_reading(NOW - age))
    async with api_client(rig.adapter) as client:
        answer = (await command(client, {"cmd": "meter_reading"})).json()
    entries = answer["meter"][0]["data"][0]["entry"]
    assert [e["ts"] for e in entries] == [str(int(NOW - age)) for age in (59.0, 30.0, 0.0)]


# --- meter_setkey ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [KEY[:-1], KEY + "0", KEY[:-1] + "G", "", "secret-meter-key-almost-right!!!"])
async def test_bad_key_is_400_without_echo(rig: Rig, caplog: pytest.LogCaptureFixture, bad: str) -> None:
    caplog.set_level(logging.DEBUG)
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": bad})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_key", "message": "the key must be 32 hex digits (16 bytes)", "result": "ERROR"}
    assert bad == "" or bad not in caplog.text
    assert rig.adapter.keys.links() == []


# --- wifi, system ---------------------------------------------------------------------------------------


async def test_wifi_config_status_and_factory_reset(rig: Rig, caplog: pytest.LogCaptureFixture,
                                                    mock_clock: trio.testing.MockClock) -> None:
    caplog.set_level(logging.DEBUG)
    password = "blub123ber-secret"
    network = rig.adapter.network
    network.backend.networks = {"solimlis": password}
    shown: list[str] = []
    rig.adapter.announce = shown.append
    async with trio.open_nursery() as nursery, api_client(rig.adapter) as client:
        await nursery.start(network.run)
        before = (await command(client, {"cmd": "wifi_status", "id": "1"})).json()
        configured = await command(client, {"cmd": "wifi_config", "ssid": "solimlis", "password": password, "mode": "sta_ap"})
        # Time moves by hand: an autojump clock would jump to the window's end while the client waits.
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(5)
        await trio.testing.wait_all_tasks_blocked()
        after = (await command(client, {"cmd": "wifi_status"})).json()
        await command(client, {"cmd": "meter_setkey", "key": KEY})
        reset = await command(client, {"cmd": "meter_factreset", "id": "123"})
        refused = await command(client, {"cmd": "wifi_status"})
        new_token = shown[-1].rsplit(" ", 1)[-1]
        again = (await client.post("/api", content='{"cmd": "wifi_status"}', headers=bearer(new_token))).json()
        nursery.cancel_scope.cancel()
    mac = rig.adapter.device.mac
    assert before == {"ssid": "meterextension:" + mac.replace(":", "")[-4:], "rssi": "0", "ap-mac": mac,
                      "IP": before["IP"], "backend": "simulated", "state": "Waiting for wifi_config",
                      "access_point": before["ssid"], "window_left": 600, "mode": "sta", "result": "OK", "id": "1"}
    ipaddress.ip_address(before["IP"])
    assert configured.json() == {"result": "OK"}
    assert (after["ssid"], after["rssi"], after["backend"]) == ("solimlis", "-63", "simulated")
    assert (after["state"], after["access_point"], after["mode"]) == ("Client mode beside the access point", before["ssid"], "sta_ap")
    assert reset.json() == {"result": "OK", "id": "123"}
    # The token is new, shown once as at the first start; the old one is refused.
    assert refused.status_code == 401 and len(shown) == 1 and shown[0].startswith("API token after the factory reset")
    assert (again["ssid"], again["state"], again["access_point"]) == (before["ssid"], "Waiting for wifi_config", before["ssid"])
    assert rig.adapter.keys.links() == [] and await network.backend.configured() is None
    assert password not in caplog.text and password not in json.dumps([before, after, again])
    assert new_token not in caplog.text


async def test_factory_reset_keeps_a_configured_token(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.adapter.configured_token = TOKEN
    shown: list[str] = []
    rig.adapter.announce = shown.append
    async with api_client(rig.adapter) as client:
        reset = await command(client, {"cmd": "meter_factreset"})
        still = await command(client, {"cmd": "system_status"})
    assert reset.status_code == still.status_code == 200 and shown == []


async def test_system_status(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        answer = (await command(client, {"cmd": "system_status", "id": "123"})).json()
    device = rig.adapter.device
    assert answer == {"model": device.model, "sw-version": device.sw_version, "hw-version": device.hw_version,
                      "mac": device.mac, "sys-ts": str(int(NOW)), "network_backend": "simulated",
                      "network_state": "Starting: window record read", "result": "OK", "id": "123"}


async def test_get_ip_info_is_json(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        answer = (await command(client, {"cmd": "get_ip_info"})).json()
    assert list(answer) == ["IP", "GW", "Net Mask", "result"]
    for name in ("IP", "GW", "Net Mask"):
        ipaddress.IPv4Address(answer[name])


async def test_system_restart_asks_the_service(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "system_restart", "id": "123"})
    assert response.json() == {"result": "OK", "id": "123"}
    assert rig.restarts == ["restart"]


async def test_firmware_update_is_not_available_yet(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        response = await command(client, COMMANDS["firmware_update"][0])
    assert response.status_code == 200
    assert response.json() == {"error": "firmware_update_not_available",
                               "message": "updating meterlink itself arrives in a later release", "result": "ERROR"}


async def test_other_paths_and_methods_answer_json(rig: Rig) -> None:
    async with api_client(rig.adapter) as client:
        missing = await client.get("/nothing")
        wrong_method = await client.get("/api")
        docs = await client.get("/docs")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert docs.status_code == 404
