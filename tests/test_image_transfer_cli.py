"""`meterlink image-transfer` as a user runs it, against `meterlink simulate kamstrup` over TCP:
the verdict as one JSON object, progress lines on stderr, exit 0 / 1 / 2, the transfer record
beside the image, Ctrl-C (exit 130, the record kept, `--resume` sends only what is missing),
and the password in no output."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from processes import METERLINK, meterlink, start_simulator, stop

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


def test_ctrl_c_exits_130_keeps_the_record_and_resume_sends_only_what_is_missing(tmp_path):
    # 600 kB in 985-byte blocks (610): long enough on loopback to be stopped after the first tenth.
    firmware = tmp_path / "50981040-Q3.bin"
    firmware.write_bytes(random.Random(130).randbytes(600_000))
    blocks = -(-600_000 // 985)
    with simulator() as port:
        process = subprocess.Popen([*METERLINK, "image-transfer", "--port", port, "--password", PASSWORD,
                                    "--image", str(firmware)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # Plain progress lines (stderr is a pipe): one per tenth of the blocks confirmed.
            confirmed = 0
            for line in process.stderr:
                if match := re.search(rb"image_block_transfer invoked: (\d+)/\d+ blocks", line):
                    confirmed = int(match[1])
                    if confirmed > 0:
                        break
            assert confirmed > 0, "no block was confirmed"
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130
        interrupted = json.loads(out)
        assert interrupted["result"] == "interrupted" and interrupted["blocks"] == blocks
        record = json.loads((tmp_path / "50981040-Q3.bin.transfer.json").read_text())
        assert record["size"] == 600_000 and bytes.fromhex(record["identifier"]) == b"50981040-Q3"

        resumed = meterlink("image-transfer", "--port", port, "--password", PASSWORD, "--image", str(firmware),
                            "--resume", timeout=180)
    verdict = json.loads(resumed.stdout)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert verdict["result"] == "active" and verdict["revision_after"] == "50981040-Q3" and verdict["blocks_resent"] == 0
    assert b"image_transfer_initiate invoked" not in resumed.stderr  # initiate again would cancel the partial image
    # The blocks the meter confirmed before Ctrl-C were not sent again: the resumed run sent at
    # most the rest (the meter may hold a few more, in flight at Ctrl-C).
    sent = int(re.findall(rb"(\d+) bytes sent", resumed.stderr)[-1])
    assert 0 < sent <= 600_000 - confirmed * 985
    assert not (tmp_path / "50981040-Q3.bin.transfer.json").exists()
