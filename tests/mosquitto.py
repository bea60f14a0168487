"""A real Mosquitto broker on a loopback port for the MQTT tests, and a subscriber to assert with.

`bash dev.sh test` installs Debian's mosquitto. Without the binary the MQTT tests are skipped, except
under CI (env CI set), where a missing broker is a failure of the test set-up.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

START_TIMEOUT = 5.0


def mosquitto_binary() -> str:
    """The broker's path; skips the test (fails it under CI) when it is not installed."""
    found = shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(path, os.X_OK)), None)
    if found is not None:
        return found
    message = "mosquitto is not installed (apt-get install mosquitto; `bash dev.sh test` does it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: required under CI")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    """One broker process; `stop()` and `start()` again keep the port (a broker restart)."""

    def __init__(self, directory: Path, *, persistence: bool = False, anonymous: bool = True) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {directory}/\n"
            f"user {getpass.getuser()}\n"  # as root, do not switch to a user that cannot write here
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self.binary = mosquitto_binary()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {START_TIMEOUT} s")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM lets a persistent broker save its sessions; SIGKILL is a crash."""
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Subscriber:
    """A paho client on its own thread (test code) that records every message it receives.

    With `client_id` it keeps a persistent session (clean_session False), so a persistent broker
    keeps its subscription and queues QoS 1 messages for it across a broker restart.
    """

    def __init__(self, broker: Mosquitto, topics: tuple[str, ...] = ("#",), client_id: str = "") -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._topics = topics
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id)
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT):
            raise RuntimeError("the test subscriber did not get its SUBACK")

    def _on_connect(self, client: paho.Client, userdata: object, *args: object) -> None:
        client.subscribe([(topic, 2) for topic in self._topics])

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, message.qos, bool(message.retain)))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [message for message in self.messages if message.topic == topic]

    def topics(self) -> set[str]:
        with self._lock:
            return {message.topic for message in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
