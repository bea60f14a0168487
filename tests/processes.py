"""meterlink as a user runs it: real processes for the command-line tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

METERLINK = [sys.executable, "-m", "meterlink.cli"]


def meterlink(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*METERLINK, *args], input=stdin, capture_output=True, timeout=timeout)


def start_simulator(meter: str, *args: str) -> tuple[subprocess.Popen, str]:
    """`meterlink simulate METER ...` and the first line it prints: where it listens."""
    process = subprocess.Popen([*METERLINK, "simulate", meter, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    where = process.stdout.readline().decode().strip()
    return process, where


def stop(process: subprocess.Popen) -> bytes:
    """Ctrl-C, as a user stops a simulator; its stderr."""
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
