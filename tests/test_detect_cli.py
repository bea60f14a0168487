"""`meterlink detect` and `kind = "auto"` end to end over TCP against every simulator (issue 15 item 3).

Over TCP the converter owns the serial line, so one connection is all there is: the framing, the
meter and its interval are found, the serial settings are reported as null. Each simulator pushes
fast, so detection ends on its third telegram, not on a listening time; only the Kamstrup meter,
which answers and never pushes, is listened to for the (short) whole time.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from processes import meterlink, start_simulator, stop
from test_service import run_with_links
from meterlink.service.config import LinkSection

KAIFA_KEY = "36C66639E48A8CA4D6BC8B282A793BBB"
WRONG_KEY = "000102030405060708090A0B0C0D0E0F"


def detect(url: str, *options: str) -> tuple[int, dict, str]:
    done = meterlink("detect", "--port", url, *options)
    return done.returncode, json.loads(done.stdout), done.stderr.decode()


@pytest.fixture
def simulator(request):
    meter, *options = request.param
    process, url = start_simulator(meter, "--listen", "tcp://127.0.0.1:0", *options)
    yield url
    stop(process)


@pytest.mark.parametrize("simulator, kind, maker, encrypted", [
    (("p1", "--interval", "0.2"), "p1", None, False),
    (("p1", "--interval", "0.2", "--key", KAIFA_KEY), "p1", "Sagemcom", True),
    (("kaifa", "--interval", "0.3", "--key", KAIFA_KEY), "mbus", "Kaifa", True),
    (("hdlc-push", "--interval", "0.3"), "hdlc-push", None, False),
    (("hdlc-push", "--interval", "0.3", "--key", KAIFA_KEY, "--blocks"), "hdlc-push", "Landis+Gyr", True),
], indirect=["simulator"], ids=["p1", "p1-encrypted", "kaifa-mbus", "hdlc-push", "hdlc-push-encrypted-blocks"])
def test_detect_finds_each_pushing_simulator(simulator: str, kind: str, maker: str | None, encrypted: bool) -> None:
    code, found, stderr = detect(simulator, *(["--key", KAIFA_KEY] if encrypted else []))
    assert code == 0, stderr
    assert (found["kind"], found["serial"], found["encrypted"]) == (kind, None, encrypted)
    assert found["key_ok"] is (True if encrypted else None)
    assert found["push_interval"] == pytest.approx(0.3 if kind != "p1" else 0.2, abs=0.15)
    assert found["maker"] == maker
    assert (found["system_title"] or "")[:6] == {"Kaifa": "4B464D", "Landis+Gyr": "4C475A", "Sagemcom": "534147",
                                                  None: ""}[maker]
    (link,) = tomllib.loads(found["config"])["link"]
    section = LinkSection.model_validate(link)
    assert (section.kind, section.port) == (kind, simulator)
    assert "found at the converter's setting" in stderr
    assert KAIFA_KEY not in stderr and KAIFA_KEY not in json.dumps(found)


@pytest.mark.parametrize("simulator", [("kaifa", "--interval", "0.3", "--key", KAIFA_KEY)], indirect=True)
def test_detect_says_when_the_key_is_wrong(simulator: str) -> None:
    code, found, stderr = detect(simulator, "--key", WRONG_KEY)
    assert code == 0
    assert (found["kind"], found["encrypted"], found["key_ok"]) == ("mbus", True, False)
    assert any(note.startswith("wrong_key") for note in found["notes"])
    assert "the key does not open them" in stderr


@pytest.mark.parametrize("simulator", [("kamstrup",)], indirect=True)
def test_a_meter_that_only_answers_is_no_pushing_meter(simulator: str) -> None:
    code, found, stderr = detect(simulator, "--listen-time", "1")
    assert code == 1
    assert found["kind"] is None and found["config"] is None
    assert "no meter recognised" in stderr and "--listen-time 70" in stderr


@pytest.mark.parametrize("options, says", [
    (["--listen-time", "0"], "--listen-time"),
    (["--key", "XYZ"], "--key"),
    (["--auth-key", "00"], "--auth-key"),
])
def test_usage_errors_are_one_line_and_exit_2(options: list[str], says: str) -> None:
    done = meterlink("detect", "--port", "tcp://127.0.0.1:9", *options)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert done.stdout == b""


def test_an_unusable_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = meterlink("detect", "--port", str(tmp_path / "ttyNONE"))
    assert done.returncode == 2
    assert len(done.stderr.decode().strip().splitlines()) == 1
    assert "Traceback" not in done.stderr.decode()


def test_an_auto_link_runs_the_link_it_found_and_says_what_it_found(tmp_path: Path) -> None:
    meter, meter_url = start_simulator("p1", "--listen", "tcp://127.0.0.1:0", "--interval", "0.2")
    service, url, headers = run_with_links(tmp_path, f'[[link]]\nname = "meter"\nkind = "auto"\nport = "{meter_url}"\n')
    try:
        deadline = time.monotonic() + 30
        while True:
            (link,) = httpx.get(f"{url}/api/v1/links", headers=headers, timeout=5).json()["links"]
            if link["readings"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert link["kind"] == "p1" and link["readings"] > 0
        assert link["detected"].startswith("found at the converter's setting: P1 telegrams with CRC")
    finally:
        service.stop()
        stop(meter)


def test_auto_takes_no_serial_settings_and_listen_time_only_with_auto() -> None:
    with pytest.raises(ValueError, match="baud"):
        LinkSection.model_validate({"name": "m", "kind": "auto", "port": "/dev/ttyUSB0", "baud": 2400})
    with pytest.raises(ValueError, match="listen_time"):
        LinkSection.model_validate({"name": "m", "kind": "p1", "port": "/dev/ttyUSB0", "listen_time": 70})
    assert LinkSection.model_validate({"name": "m", "kind": "auto", "port": "/dev/ttyUSB0", "listen_time": 70}).listen_time == 70
