"""The P1 commands as a user runs them: real processes, real TCP and pty links."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from processes import METERLINK, free_port, meterlink, start_simulator, stop

DATA = Path(__file__).parent / "data"


def test_decode_prints_one_reading_per_telegram():
    both = (DATA / "emucs_p1_1phase.txt").read_bytes() + (DATA / "emucs_p1_3phase.txt").read_bytes()
    result = meterlink("decode", "p1", "-", stdin=both)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["meter_id"] for line in lines] == ["1SAG1100000231", "1SAG3101021605"]
    assert all(line["received_at"] is None and line["link"] == line["kind"] == "p1" for line in lines)


def test_decode_reports_a_bad_telegram_and_goes_on(tmp_path):
    good = (DATA / "emucs_p1_1phase.txt").read_bytes()
    bad = good.replace(b"234.6", b"934.6")
    capture = tmp_path / "capture.bin"
    capture.write_bytes(bad + good)
    result = meterlink("decode", "p1", str(capture))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    assert b"telegram 1" in result.stderr and b"CRC" in result.stderr


def test_decode_usage_errors_exit_2(tmp_path):
    assert meterlink("decode", "p1", str(tmp_path / "missing")).returncode == 2
    assert meterlink("decode", "p1", "--no-such-option").returncode == 2


@pytest.mark.parametrize(("args", "says"), [
    (["read", "p1"], b"meterlink read p1: error: the following arguments are required: --port"),
    (["frob"], b"meterlink: error: argument COMMAND: invalid choice: 'frob'"),
    (["decode", "p1", "--no-such-option"], b"meterlink: error: unrecognized arguments: --no-such-option"),
])
def test_an_argparse_error_is_one_line_without_the_usage(args, says):
    result = meterlink(*args)
    assert result.returncode == 2 and result.stderr.startswith(says), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_read_from_the_simulator_over_tcp():
    simulator, url = start_simulator("p1", "--listen", "tcp://127.0.0.1:0")
    try:
        assert url.startswith("tcp://127.0.0.1:") and not url.endswith(":0")
        result = meterlink("read", "p1", "--port", url, "--count", "3")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(readings) == 3
    for reading in readings:
        assert reading["meter_id"] == "1SAG3101021605"
        assert isinstance(reading["received_at"], float)
        power = [v for v in reading["values"] if v["obis"] == "1-0:1.7.0.255"][0]
        assert power["unit"] == "kW" and power["scaler"] == -3


def test_read_from_the_simulator_over_a_pty():
    simulator, path = start_simulator("p1", "--pty")
    try:
        assert path.startswith("/dev/pts/")
        result = meterlink("read", "p1", "--port", path, "--count", "2")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_a_port_that_cannot_be_opened_exits_2():
    result = meterlink("read", "p1", "--port", "/dev/ttyUSB-meterlink-missing", "--count", "1")
    assert result.returncode == 2
    assert b"no such device" in result.stderr and b"Traceback" not in result.stderr


def test_reader_survives_the_meter_going_away_and_coming_back():
    url = f"tcp://127.0.0.1:{free_port()}"
    simulator, _ = start_simulator("p1", "--listen", url)
    reader = subprocess.Popen([*METERLINK, "read", "p1", "--port", url, "--count", "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = reader.stdout.readline()
        assert json.loads(first)["link"] == "p1"
        simulator.kill()
        simulator.wait()
        time.sleep(0.5)
        simulator, _ = start_simulator("p1", "--listen", url)
        out, err = reader.communicate(timeout=60)
    finally:
        stop(simulator)
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    assert len(out.splitlines()) == 3
    assert b"LinkLost" in err or b"peer closed" in err


def test_help_lists_the_contract_commands():
    result = meterlink("--help")
    for command in (b"demo", b"decode", b"read", b"simulate"):
        assert command in result.stdout
