"""Encrypted P1 end to end (issue 15 item 2): the actor on MockClock, `read p1`/`decode p1` with
--key, `simulate p1 --key`, and meter_setkey on a P1 link of `meterlink run`."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import httpx
import trio
import trio.testing

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.p1 import P1Link, run_p1
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.simulators.p1 import EQUIPMENT_ID, P1Cipher, P1MeterModel, push_telegrams
from meterlink.supervisor import ChildSpec, Supervisor

from links import Meters
from processes import meterlink, start_simulator, stop
from test_api import api_client, command, stored
from test_api_setkey import pair, rig_with
from test_service import run_with_links, wait_for_readings

DATA = Path(__file__).parent / "data"
SMARTY = json.loads((DATA / "sagemcom_p1_smarty_nexxtlab.json").read_text())
KEY = "000102030405060708090A0B0C0D0E0F"
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
START = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def meter_clock():
    origin = trio.current_time()
    return lambda: START + timedelta(seconds=trio.current_time() - origin)


async def test_the_actor_reads_an_encrypting_meter_and_refuses_a_replay_after_a_restart(autojump_clock) -> None:
    cipher = P1Cipher(bytes.fromhex(KEY), bytes.fromhex(AUTH_KEY))
    keys = [CipherKeys(bytes.fromhex(KEY), bytes.fromhex(AUTH_KEY))]
    sent: list[bytes] = []

    async def pushing(stream: trio.abc.Stream) -> None:
        await push_telegrams(stream, P1MeterModel(), 1.0, meter_clock(), cipher)

    async def replaying(stream: trio.abc.Stream) -> None:
        """The next connection replays an old telegram first, then the meter goes on."""
        await stream.send_all(sent[0])
        await pushing(stream)

    async def two_then_gone(stream: trio.abc.Stream) -> None:
        model = P1MeterModel()
        for _ in range(2):
            sent.append(cipher.wrap(model.telegram(START)))
            await stream.send_all(sent[-1])
            await trio.sleep(1.0)
        await stream.aclose()

    readings: list = []
    drops: list = []
    status = LinkStatus("p1", "p1")
    async with trio.open_nursery() as nursery:
        meters = Meters(nursery, two_then_gone, replaying)
        child = ChildSpec("p1", partial(run_p1, P1Link("memory"), LinkHooks(readings.append, drops.append), status,
                                        meters.open, keys=lambda: keys))
        nursery.start_soon(Supervisor([child]).run)
        while len(readings) < 4:
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert [reading.meter_id for reading in readings[:4]] == [EQUIPMENT_ID] * 4
    # The first life accepted 0x101 and 0x102; the status kept 0x102 across the restart.
    assert [drop.cause for drop in drops] == ["replayed"] and "frame counter 257 is not above the last one (258)" in drops[0].detail
    assert status.last_frame_counter is not None and status.last_frame_counter >= 0x104


async def test_meter_setkey_goes_to_a_p1_link(tmp_path: Path) -> None:
    alone = rig_with(tmp_path / "alone", ("house", "p1"), ("kamstrup", "dlms"))
    async with api_client(alone.adapter) as client:
        response = await command(client, {"cmd": "meter_setkey", "key": KEY, "auth_key": AUTH_KEY})
    assert response.json() == {"link": "house", "result": "OK"}
    assert stored(alone, "house") == [pair(KEY, AUTH_KEY)]
    both = rig_with(tmp_path / "both", ("house", "p1"), ("heat", "mbus"))
    async with api_client(both.adapter) as client:
        refused = await command(client, {"cmd": "meter_setkey", "key": KEY})
        named = await command(client, {"cmd": "meter_setkey", "key": KEY, "link": "house"})
    assert refused.status_code == 422 and refused.json()["links"] == ["heat", "house"]
    assert named.json() == {"link": "house", "result": "OK"} and stored(both, "house") == [pair(KEY)]


def test_run_reads_an_encrypted_p1_meter_once_its_keys_are_set(tmp_path: Path) -> None:
    simulator, meter_url = start_simulator("p1", "--listen", "tcp://127.0.0.1:0", "--interval", "0.3",
                                           "--key", KEY, "--auth-key", AUTH_KEY)
    service, url, headers = run_with_links(
        tmp_path, f'[[link]]\nname = "house"\nkind = "p1"\nport = "{meter_url}"\npush_interval = 0.3\n')
    try:
        # Before its keys are set the link says why it drops the telegrams.
        deadline = 40
        link = {}
        while deadline and not link.get("drops", {}).get("no_key"):
            (link,) = httpx.get(f"{url}/api/v1/links", headers=headers, timeout=5).json()["links"]
            deadline -= 1
            time.sleep(0.25)
        body = {"cmd": "meter_setkey", "key": KEY, "auth_key": AUTH_KEY}
        assert httpx.post(f"{url}/api", content=json.dumps(body), headers=headers, timeout=5).json() == {
            "link": "house", "result": "OK"}
        answer = wait_for_readings(url, headers, links=1)
        (link,) = httpx.get(f"{url}/api/v1/links", headers=headers, timeout=5).json()["links"]
    finally:
        took, code, stderr = service.stop()
        stop(simulator)
    assert answer["meter"][0]["meterid"] == EQUIPMENT_ID
    assert link["kind"] == "p1" and link["drops"]["no_key"] >= 1 and link["last_drop_cleared"]
    assert code == 0, stderr
    assert KEY.encode() not in stderr.upper() and AUTH_KEY.encode() not in stderr.upper()


def test_read_p1_with_keys_from_the_simulator_in_key_mode() -> None:
    simulator, url = start_simulator("p1", "--listen", "tcp://127.0.0.1:0", "--interval", "0.2", "--key", KEY)
    try:
        result = meterlink("read", "p1", "--port", url, "--count", "3", "--key", KEY)
        without = meterlink("read", "p1", "--port", url, "--count", "1", "--max-failures", "2")
        wrong = meterlink("read", "p1", "--port", url, "--count", "1", "--key", AUTH_KEY, "--max-failures", "2")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert [reading["meter_id"] for reading in readings] == [EQUIPMENT_ID] * 3
    assert without.returncode == 1 and b"no_key" in without.stderr and not without.stdout
    assert wrong.returncode == 1 and b"wrong_key" in wrong.stderr
    for run in (result, without, wrong):
        assert KEY.encode() not in run.stderr.upper() + run.stdout.upper()
        assert AUTH_KEY.encode() not in run.stderr.upper() + run.stdout.upper()


def test_decode_p1_reads_the_smarty_capture_as_hex_or_binary(tmp_path: Path) -> None:
    """The values are dsmr_parser's (tests/test_p1_encrypted.py); hex text with line breaks, binary
    beside plain telegrams, and without a key or with a wrong one a line saying what to do."""
    apdu = bytes.fromhex(SMARTY["hex_or_text"])
    hex_file = tmp_path / "smarty.hex"
    hex_file.write_text("\n".join(SMARTY["hex_or_text"][at : at + 64] for at in range(0, len(SMARTY["hex_or_text"]), 64)))
    binary = tmp_path / "smarty.bin"
    binary.write_bytes(apdu + (DATA / "emucs_p1_1phase.txt").read_bytes())
    key = SMARTY["key_if_any"]
    from_hex = meterlink("decode", "p1", "--key", key, str(hex_file))
    from_binary = meterlink("decode", "p1", "--key", key, str(binary))
    without = meterlink("decode", "p1", str(hex_file))
    wrong_auth = meterlink("decode", "p1", "--key", key, "--auth-key", AUTH_KEY, "-", stdin=apdu)
    auth_alone = meterlink("decode", "p1", "--auth-key", AUTH_KEY, str(hex_file))
    assert from_hex.returncode == 0, from_hex.stderr
    (reading,) = [json.loads(line) for line in from_hex.stdout.splitlines()]
    energy = {value["obis"]: value["value"] for value in reading["values"]}
    assert energy["1-0:1.8.0.255"] == 6.695 and energy["1-0:2.8.0.255"] == 0.025
    assert reading["captured_at"] == "2018-01-30T10:21:22"
    assert from_binary.returncode == 0 and len(from_binary.stdout.splitlines()) == 2
    assert without.returncode == 1 and b"telegram 1: no_key" in without.stderr and b"--key" in without.stderr
    assert wrong_auth.returncode == 1 and b"wrong_auth_key" in wrong_auth.stderr
    assert auth_alone.returncode == 2
    for run in (from_hex, from_binary, without, wrong_auth, auth_alone):
        assert key.encode() not in run.stderr.upper() + run.stdout.upper()
        assert AUTH_KEY.encode() not in run.stderr.upper()
