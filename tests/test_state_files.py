"""The state directory after the accidents a box in a meter cabinet meets (issue 11 items 5 and 6).

Real processes: a service SIGKILLed in the middle of meter_setkey, then started again and reset;
a service started on a damaged key store, with an M-Bus link fed by the simulated Kaifa meter.
Nothing of the old keys may survive a factory reset in any file, and damaged key files are named
once at start, answered with 503 by meter_setkey and shown on the link, never a restart loop.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meterlink.service.secrets import NONCE_SIZE, STORE_AAD
from processes import METERLINK, free_port, start_simulator, stop
from test_service import KAIFA_KEY, Running

TOKEN = "state-files-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
OLD_KEY = "000102030405060708090A0B0C0D0E0F"

KILL_BEFORE_STORE_RENAME = """
import os, signal, sys
rename = os.replace
def replace(source, target, *args, **kwargs):
    if str(target).endswith("keys.bin"):
        os.kill(os.getpid(), signal.SIGKILL)  # the new store is written and synced, not yet in place
    return rename(source, target, *args, **kwargs)
os.replace = replace
from meterlink.cli import main
sys.exit(main(sys.argv[1:]))
"""


def config(path: Path, state: Path, port: int, links: str = "") -> Path:
    path.write_text(f'[adapter]\nstate_dir = "{state}"\ntoken = "{TOKEN}"\n'
                    f'[http]\nlisten = "127.0.0.1:{port}"\n{links}')
    return path


def command(port: int, document: dict, timeout: float = 10) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/api", content=json.dumps(document), headers=HEADERS, timeout=timeout)


def key_forms(hex_key: str) -> list[bytes]:
    raw = bytes.fromhex(hex_key)
    return [raw, hex_key.lower().encode(), hex_key.upper().encode()]


def test_a_reset_after_a_sigkill_in_meter_setkey_leaves_nothing_of_the_old_keys(tmp_path: Path) -> None:
    state, port = tmp_path / "state", free_port()
    with socket.socket() as meter:  # a meter that says nothing: the link only has to take a key
        meter.bind(("127.0.0.1", 0))
        meter.listen()
        link = f'[[link]]\nname = "house"\nkind = "mbus"\nport = "tcp://127.0.0.1:{meter.getsockname()[1]}"\n'
        conf = config(tmp_path / "m.toml", state, port, link)
        sigkill_in_setkey_then_reset(state, port, conf)


def sigkill_in_setkey_then_reset(state: Path, port: int, conf: Path) -> None:
    first = Running("run", "--config", str(conf))
    first.line()
    assert command(port, {"cmd": "meter_setkey", "key": OLD_KEY}).json()["result"] == "OK"
    first.stop()

    killed = subprocess.Popen([*METERLINK[:1], "-c", KILL_BEFORE_STORE_RENAME, "run", "--config", str(conf)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed.stdout.readline()
    with pytest.raises(httpx.HTTPError):
        command(port, {"cmd": "meter_setkey", "key": KAIFA_KEY})
    assert killed.wait(timeout=10) == -signal.SIGKILL
    leftovers = list(state.glob(".keys.bin.*.tmp"))
    assert len(leftovers) == 1  # the interrupted write: both keys in it, readable with device.key
    evidence = {path.name: path.read_bytes() for path in [*leftovers, state / "keys.bin", state / "device.key"]}
    old_device_key = evidence["device.key"]
    assert AESGCM(old_device_key).decrypt(evidence[leftovers[0].name][:NONCE_SIZE],
                                          evidence[leftovers[0].name][NONCE_SIZE:], STORE_AAD)

    again = Running("run", "--config", str(conf))
    try:
        again.line()
        assert list(state.glob(".*.tmp")) == []  # removed at start
        reset = command(port, {"cmd": "meter_factreset"})
    finally:
        again.stop()
    assert reset.json()["result"] == "OK"

    new_device_key = (state / "device.key").read_bytes()
    assert new_device_key != old_device_key and len(new_device_key) == 32
    for name, blob in evidence.items():
        if name != "device.key":  # a copy someone kept of the old store is now noise
            with pytest.raises(InvalidTag):
                AESGCM(new_device_key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], STORE_AAD)
    for path in state.rglob("*"):
        content = path.read_bytes()
        assert old_device_key not in content
        for form in key_forms(OLD_KEY) + key_forms(KAIFA_KEY):
            assert form not in content, path
    # beside the keys: the access point's password and window (issue 18), neither holds a meter key
    assert sorted(path.name for path in state.iterdir()) == ["ap.secret", "device.key", "network.json", "token.hash"]


def empty_store(state: Path) -> Path:
    (state / "keys.bin").write_bytes(b"")
    return state / "keys.bin"


def store_a_directory(state: Path) -> Path:
    (state / "keys.bin").unlink()
    (state / "keys.bin").mkdir()
    return state / "keys.bin"


def device_key_missing(state: Path) -> Path:
    (state / "device.key").unlink()
    return state / "device.key"


@pytest.mark.parametrize("damage", [empty_store, store_a_directory, device_key_missing])
def test_a_damaged_key_store_is_named_answered_503_and_shown_on_the_link(
    tmp_path: Path, damage: Callable[[Path], Path]
) -> None:
    meter, where = start_simulator("kaifa", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5", "--one-way")
    state, port = tmp_path / "state", free_port()
    conf = config(tmp_path / "m.toml", state, port,
                  f'[[link]]\nname = "house"\nkind = "mbus"\nport = "{where}"\npush_interval = 0.5\n')
    service = Running("run", "--config", str(conf))
    try:
        service.line()
        assert command(port, {"cmd": "meter_setkey", "key": OLD_KEY}).json()["result"] == "OK"
        took, _, _ = service.stop()
        damaged = damage(state)

        service = Running("run", "--config", str(conf))
        service.line()
        refused = command(port, {"cmd": "meter_setkey", "key": KAIFA_KEY})
        link = wait_for(port, lambda link: "key store unreadable" in (link["last_drop"] or ""))
        restarts = supervisor_restarts(port, "house")
        reset = command(port, {"cmd": "meter_factreset"})
        stored = command(port, {"cmd": "meter_setkey", "key": KAIFA_KEY})
        recovered = wait_for(port, lambda link: link["last_reading_at"] is not None)
    finally:
        _, code, stderr = service.stop()
        stop(meter)
    assert refused.status_code == 503
    assert refused.json()["error"] == "key_store_unavailable"
    assert str(damaged) in refused.json()["message"] and "meter_factreset" in refused.json()["message"]
    assert link["last_drop"].startswith("no_key: the telegram is encrypted and cannot be decrypted: key store unreadable")
    assert restarts == 0
    assert (reset.json()["result"], stored.json()["result"]) == ("OK", "OK")
    assert recovered["connected"]
    errors = [line for line in stderr.decode().splitlines() if "key store unreadable" in line]
    # named once at start and once for the refused meter_setkey, never per telegram
    assert [" meterlink.service " in line for line in errors] == [True, False]
    assert str(damaged) in errors[0]
    assert "Traceback" not in stderr.decode() and code == 0


def links_answer(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/api/v1/links", headers=HEADERS, timeout=5).json()


def wait_for(port: int, condition: Callable[[dict], bool], timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link = links_answer(port)["links"][0]
        if condition(link):
            return link
        time.sleep(0.1)
    raise AssertionError(f"the link never got there: {link}")


def supervisor_restarts(port: int, name: str) -> int:
    def find(children: list[dict]) -> int | None:
        for child in children:
            if child["id"] == name:
                return child["restarts"]
            found = find(child["children"])
            if found is not None:
                return found
        return None

    restarts = find(links_answer(port)["supervisor"])
    assert restarts is not None
    return restarts
