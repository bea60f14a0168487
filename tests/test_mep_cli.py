"""The MEP commands as a user runs them: `simulate mep` over TCP and a pty, `read mep` printing what
the simulator's tables hold, `decode mep` on the guide's examples and on a session's capture, and
usage errors: one line, exit 2."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from meterlink.machines.mep import MepClient, MepPlan
from meterlink.simulators.mep import DEMO_MEP_KEY, MepMeter

from mep_line import Line
from processes import meterlink, start_simulator, stop

DATA = Path(__file__).parent / "data"
KEY = DEMO_MEP_KEY.hex()


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    process, where = start_simulator("mep", *args)
    try:
        yield where
    finally:
        err = stop(process)
        assert b"Traceback" not in err, err[-800:]


def readings(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def assert_simulated(reading: dict, serial: str = "MTR3000-0042", load: int = 1500) -> None:
    values = {value["obis"]: value for value in reading["values"]}
    assert reading["meter_id"] == serial and reading["kind"] == "mep" and reading["link"] == "mep"
    assert values["0-0:1.0.0.255"]["value"] == reading["captured_at"] and reading["captured_at"].endswith("Z")
    assert values["1-0:1.8.0.255"]["unit"] == "Wh" and values["1-0:1.8.0.255"]["value"] >= 12_345_678
    assert values["1-0:2.8.0.255"]["value"] == 456_789 and values["1-0:4.8.0.255"]["value"] == 11_419
    assert (values["1-0:1.7.0.255"]["value"], values["1-0:1.7.0.255"]["unit"]) == (max(load, 0), "W")
    assert (values["1-0:2.7.0.255"]["value"], values["1-0:3.7.0.255"]["value"]) == (max(-load, 0), max(load, 0) // 10)
    assert [values[f"1-0:{c}.7.0.255"]["value"] for c in (32, 52, 72)] == [230.1, 229.8, 231.2]
    assert (values["1-0:14.7.0.255"]["value"], values["1-0:14.7.0.255"]["raw"], values["1-0:14.7.0.255"]["scaler"]) == (50.01, 50010, -3)
    assert values["1-0:31.7.0.255"]["unit"] == "A" and values["1-0:31.7.0.255"]["scaler"] == -3


def test_read_over_tcp_prints_what_the_meter_holds() -> None:
    with simulator("--listen", "tcp://127.0.0.1:0", "--load", "-800", "--serial", "NES-4711") as url:
        result = meterlink("read", "mep", "--port", url, "--key", KEY, "--count", "2", "--interval", "3")
    assert result.returncode == 0, result.stderr
    printed = readings(result)
    assert len(printed) == 2
    for reading in printed:
        assert_simulated(reading, "NES-4711", -800)


def test_read_over_a_pty_with_the_ascii_key_and_alerts() -> None:
    with simulator("--pty", "--alerts") as path:
        assert path.startswith("/dev/")
        result = meterlink("read", "mep", "--port", path, "--key-ascii", "MEP-DEMO-KEY-001", "--count", "1")
    assert result.returncode == 0, result.stderr
    [reading] = readings(result)
    assert_simulated(reading)


def test_a_20_byte_key_uses_its_first_16() -> None:
    with simulator("--listen", "tcp://127.0.0.1:0", "--key-ascii", "MEP-DEMO-KEY-001ABCD") as url:
        result = meterlink("read", "mep", "--port", url, "--key", KEY + "41424344", "--count", "1")
    assert result.returncode == 0, result.stderr


def test_a_wrong_key_is_a_key_error_and_never_printed() -> None:
    wrong = "00112233445566778899aabbccddeeff"
    with simulator("--listen", "tcp://127.0.0.1:0") as url:
        result = meterlink("read", "mep", "--port", url, "--key", wrong, "--count", "1")
    assert result.returncode == 1 and result.stdout == b""
    assert b"the meter rejects the key (authentication failure 0x0B, twice)" in result.stderr
    assert wrong.encode() not in result.stderr and KEY.encode() not in result.stderr


def test_decode_the_guide_examples() -> None:
    result = meterlink("decode", "mep", "--key", "01" * 16, str(DATA / "mep_guide_rc4_examples.txt"))
    # Every digest authenticates; the 0x0C and the write are named; the 44 BT23 bytes alone cannot be
    # named without BT21 and BT22, which the guide does not print.
    assert result.returncode == 1 and result.stdout == b""
    err = result.stderr.decode()
    assert "pair 1: 0x0C: the meter wants sequence number 0x77635b91" in err
    assert "pair 3: write of 1 bytes to table 2098 at 30" in err
    assert "digest" not in err and "BT23 read without BT21 and BT22" in err
    wrong = meterlink("decode", "mep", "--key", "02" * 16, str(DATA / "mep_guide_rc4_examples.txt"))
    assert b"pair 1: the request's digest does not match the key" in wrong.stderr


def test_decode_a_session_capture_gives_the_client_readings(tmp_path: Path) -> None:
    line = Line(MepClient(MepPlan(DEMO_MEP_KEY)), MepMeter(clock=lambda: 0.0, wallclock=lambda: 1_796_356_800.0))
    line.run(until=12.0)
    capture = tmp_path / "session.txt"
    capture.write_text("".join(f"{request.hex(' ')}\n{response.hex(' ')}\n" for request, response in line.transcript))
    result = meterlink("decode", "mep", "--key", KEY, "-", stdin=capture.read_bytes())
    assert result.returncode == 0, result.stderr
    decoded = readings(result)
    assert [r["values"] for r in decoded] == [r.to_json()["values"] for r in line.readings]
    assert {r["received_at"] for r in decoded} == {None}


@pytest.mark.parametrize(("args", "words"), [
    (["read", "mep", "--port", "tcp://127.0.0.1:1", "--key", "0011"], b"--key: a MEP key is 32 hex digits"),
    (["read", "mep", "--port", "tcp://127.0.0.1:1", "--key-ascii", "short"], b"--key-ascii: a MEP key is 16 to 20"),
    (["read", "mep", "--port", "tcp://127.0.0.1:1", "--key", KEY, "--interval", "1"], b"--interval: at least 3 s"),
    (["read", "mep", "--port", "/dev/nonexistent-meter", "--key", KEY], b"/dev/nonexistent-meter"),
    (["read", "mep", "--port", "tcp://127.0.0.1:1"], b"one of the arguments --key --key-ascii is required"),
    (["read", "mep", "--port", "tcp://127.0.0.1:1", "--key", KEY, "--key-ascii", "MEP-DEMO-KEY-001"], b"not allowed with"),
    (["decode", "mep", "--key", KEY, "/nonexistent/capture.txt"], b"cannot read /nonexistent/capture.txt"),
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str], words: bytes) -> None:
    result = meterlink(*args)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == b"" and b"Traceback" not in result.stderr
    assert result.stderr.count(b"\n") == 1 and words in result.stderr, result.stderr
