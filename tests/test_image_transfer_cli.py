"""`meterlink image-transfer` as a user runs it, against `meterlink simulate kamstrup` over TCP:
the verdict as one JSON object, progress lines on stderr, exit 0 / 1 / 2, the transfer record
beside the image, and the password in no output."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from processes import meterlink, start_simulator, stop

PASSWORD = "12345"


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    process, where = start_simulator("kamstrup", "--listen", "tcp://127.0.0.1:0", *args)
    try:
        yield where
    finally:
        err = stop(process)
        assert b"Traceback" not in err, err[-500:]


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    path = tmp_path / "50981040-Q2.bin"
    path.write_bytes(random.Random(7).randbytes(4000))
    return path


def test_an_update_ends_active_and_confirmed(firmware):
    with simulator("--reboot-seconds", "1", "--drop-blocks", "2") as port:
        result = meterlink("image-transfer", "--port", port, "--password", PASSWORD, "--image", str(firmware),
                           "--signature-hash", "sha256", timeout=120)
    verdict = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert verdict["result"] == "active" and verdict["identification"] == "50981040-Q2"
    assert verdict["blocks"] == 5 and verdict["blocks_resent"] == 1
    assert verdict["revision_before"] == "50981040-Q1" and verdict["revision_after"] == "50981040-Q2"
    assert len(result.stdout.splitlines()) == 1 and b"New image active" in result.stderr
    assert PASSWORD.encode() not in result.stdout + result.stderr
    assert not (firmware.parent / "50981040-Q2.bin.transfer.json").exists()


def test_a_failed_verification_exits_1_and_keeps_the_record(firmware):
    with simulator("--verify-fails") as port:
        result = meterlink("image-transfer", "--port", port, "--password", PASSWORD, "--image", str(firmware),
                           "--identifier", "50981040-Q9", timeout=120)
    verdict = json.loads(result.stdout)
    assert result.returncode == 1 and verdict["result"] == "failed" and "status 4" in verdict["reason"]
    assert verdict["identification"] == "50981040-Q9" and verdict["revision_after"] is None
    record = json.loads((firmware.parent / "50981040-Q2.bin.transfer.json").read_text())
    assert record["size"] == 4000 and record["block_size"] == 985 and bytes.fromhex(record["identifier"]) == b"50981040-Q9"


@pytest.mark.parametrize(("args", "names"), [
    (["--image", "/nonexistent/image.bin"], b"/nonexistent/image.bin"),
    (["--revision-obis", "not-obis"], b"--revision-obis"),
    (["--signature-hash", "md5"], b"--signature-hash"),  # argparse: its usage, then the one error line
    (["--port", "/dev/nonexistent-meterlink-port"], b"/dev/nonexistent-meterlink-port"),
])
def test_usage_errors_exit_2_naming_the_problem(firmware, args, names):
    options = {"--port": "tcp://127.0.0.1:1", "--image": str(firmware), "--password": PASSWORD}
    options.update(zip(args[::2], args[1::2]))
    result = meterlink("image-transfer", *[part for pair in options.items() for part in pair])
    assert result.returncode == 2 and result.stdout == b"" and b"Traceback" not in result.stderr
    assert names in result.stderr.strip().splitlines()[-1]
