"""The HDLC push link in the service (issue 14 item 1): `kind = "hdlc-push"` in the config with its
serial defaults, meter_setkey finding it, and `meterlink run` reading the simulated meter once its
keys are set, the pending pair of a change-over taking over when a notification decrypts with it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from meterlink.actors.hdlc_push import HDLC_PUSH_SERIAL
from meterlink.service.config import load_config, parse_config
from meterlink.service.mqtt import link_state
from meterlink.actors.link import LinkStatus

from processes import METERLINK
from test_api import KEY, api_client, command, stored
from test_api_setkey import AUTH_KEY, pair, rig_with
from test_config import EXAMPLE
from test_service import run_with_links, wait_for_readings

DEMO = "36C66639E48A8CA4D6BC8B282A793BBB"


def test_the_examples_hdlc_push_link_loads(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    block = text[text.index('# [[link]]\n# name = "house"') : text.index("\n\n", text.index('# name = "house"'))]
    config = tmp_path / "house.toml"
    config.write_text("\n".join(line[2:] for line in block.splitlines()), encoding="utf-8")
    (link,) = load_config(config).link
    assert (link.kind, link.push_interval) == ("hdlc-push", 10)
    assert link.serial(HDLC_PUSH_SERIAL) == HDLC_PUSH_SERIAL  # 2400 8E1
    kamstrup = parse_config({"link": [{"name": "han", "kind": "hdlc-push", "port": "/dev/ttyUSB0", "parity": "N"}]})
    assert kamstrup.link[0].serial(HDLC_PUSH_SERIAL).parity == "N"


async def test_meter_setkey_finds_the_hdlc_push_link(tmp_path: Path) -> None:
    rig = rig_with(tmp_path, ("house", "hdlc-push"), ("kamstrup", "dlms"))
    async with api_client(rig.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY, "auth_key": AUTH_KEY})
    assert response.json() == {"link": "house", "result": "OK"}
    assert stored(rig, "house") == [pair(KEY, AUTH_KEY)]


def test_a_stale_link_with_a_receiver_region_is_stale_in_mqtt() -> None:
    status = LinkStatus("house", "hdlc-push", state="stale,quiet", connected=True)
    assert link_state(status) == {"kind": "hdlc-push", "state": "stale,quiet", "connected": True, "stale": True}


def set_key(url: str, headers: dict[str, str], body: dict[str, str]) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.post(f"{url}/api", content=json.dumps({"cmd": "meter_setkey", **body}), headers=headers, timeout=5)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_run_reads_the_meter_once_its_keys_are_set(tmp_path: Path) -> None:
    meter = subprocess.Popen([*METERLINK, "simulate", "hdlc-push", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5",
                              "--key", DEMO, "--blocks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    meter_url = meter.stdout.readline().decode().strip()
    service, url, headers = run_with_links(
        tmp_path, f'[[link]]\nname = "house"\nkind = "hdlc-push"\nport = "{meter_url}"\npush_interval = 0.5\n')
    try:
        assert set_key(url, headers, {"key": KEY}).json() == {"link": "house", "result": "OK"}  # a wrong key first
        time.sleep(1.5)
        # The right pair waits as pending; the first notification that decrypts with it makes it current.
        assert set_key(url, headers, {"key": DEMO}).json() == {"link": "house", "result": "OK"}
        answer = wait_for_readings(url, headers, links=1)
        (link,) = httpx.get(f"{url}/api/v1/links", headers=headers, timeout=5).json()["links"]
    finally:
        took, code, stderr = service.stop()
        meter.kill()
    assert answer["meter"][0]["meterid"] == "1LGZ0301999999"
    assert link["kind"] == "hdlc-push" and link["state_label"] == "Between notifications"
    assert link["drops"]["wrong_key"] >= 1 and link["last_drop_cleared"]
    assert code == 0 and took < 2.0, stderr
    assert DEMO.encode() not in stderr.upper() and KEY.encode() not in stderr.upper()
