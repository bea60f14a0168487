"""`kind = "mep"` in the running service: the MEP Basic Key goes into the key store with
meter_setkey and the link's name, never into the config; readings follow and the key shows nowhere."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from meterlink.simulators.mep import DEMO_MEP_KEY

from processes import start_simulator, stop
from test_service import run_with_links, wait_for_readings

KEY = DEMO_MEP_KEY.hex().upper()


def test_a_mep_link_reads_once_its_key_is_set(tmp_path: Path) -> None:
    meter, meter_url = start_simulator("mep", "--listen", "tcp://127.0.0.1:0", "--alerts")
    service, url, headers = run_with_links(
        tmp_path, f'[[link]]\nname = "nes"\nkind = "mep"\nport = "{meter_url}"\npoll_interval = 3\n'
                  f'[[link]]\nname = "p1"\nkind = "p1"\nport = "tcp://127.0.0.1:9"\n')
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                setkey = httpx.post(f"{url}/api", content=json.dumps({"cmd": "meter_setkey", "key": KEY, "link": "nes"}),
                                    headers=headers, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert setkey.json() == {"link": "nes", "result": "OK"}
        answer = wait_for_readings(url, headers, links=1, timeout=40)
        links = httpx.get(f"{url}/api/v1/links", headers=headers, timeout=5).text
    finally:
        _, code, stderr = service.stop()
        stop(meter)
    [block] = answer["meter"]
    assert block["meterid"] == "MTR3000-0042"
    data = {d["OBIS"]: d for d in block["data"]}
    assert data["1-0:1.7.0.255"]["unit"] == "27" and data["1-0:32.7.0.255"]["scale"] == "-3"
    nes = next(link for link in json.loads(links)["links"] if link["name"] == "nes")
    assert nes["kind"] == "mep"
    for text in (stderr, links.encode(), (tmp_path / "meterlink.toml").read_bytes()):
        assert KEY.encode() not in text.upper()
    assert code == 0, stderr
