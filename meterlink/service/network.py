"""The adapter's network controller: runs `machines.network.NetworkMachine` against a Wi-Fi backend
(seed 000 ch. 2.1: access point for 10 minutes after power-up, then client mode).

The access point window opens at the first start of the service in a boot (the kernel's boot id,
/proc/sys/kernel/random/boot_id) or at a factory reset, and is kept in `network.json` in the state
directory: a restart or a crash of the service inside the same boot finds the window's opening
time there and never reopens it. Its deadline is counted in CLOCK_MONOTONIC, which every process of
one boot shares. The access point's password is derived from a per-device secret (`ap.secret`,
0600) made at the first start, unless `[network] ap_password = "seed"` asks for the seed's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import trio

from ..machines.network import (
    AccessPointDown,
    AccessPointUp,
    ClientMode,
    Forget,
    Join,
    NetworkMachine,
)
from .wifi import SEED_AP_PASSWORD, AccessPoint, ClientStatus, JoinFailed, WifiBackend

log = logging.getLogger("meterlink.network")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
WINDOW_FILE = "network.json"
AP_SECRET_FILE = "ap.secret"
AP_SECRET_SIZE = 32
AP_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
"""32 letters and digits that a label printer and a person cannot confuse (no l, o, 0, 1)."""
AP_PASSWORD_LENGTH = 12
"""60 bits: WPA2 needs at least 8 characters; an attacker has 10 minutes per power-up."""
WINDOW_MARGIN = 0.001
"""The window is closed this much early: its end is counted in CLOCK_MONOTONIC and armed in trio's
clock, and the rounding between the two must never make it a moment late."""
WATCH_INTERVAL = 30.0
"""Seconds between checks that the home network is still joined."""

ApPasswordSetting = Literal["device", "seed"]


def read_boot_id() -> str:
    """The kernel's id of this boot: it changes with every power-up."""
    return BOOT_ID.read_text().strip()


# --- the access point's name and password ---------------------------------------------------------


def access_point_ssid(mac: str) -> str:
    """`meterextension:xxxx`, xxxx the last four hex digits of the MAC address (seed 000 ch. 2.1.1)."""
    return "meterextension:" + mac.replace(":", "").lower()[-4:]


def derive_ap_password(secret: bytes) -> str:
    """The per-device access point password: 12 characters of HMAC-SHA256(secret) in an unambiguous alphabet."""
    digest = hmac.new(secret, b"meterlink access point password", hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    characters = []
    for _ in range(AP_PASSWORD_LENGTH):
        number, index = divmod(number, len(AP_PASSWORD_ALPHABET))
        characters.append(AP_PASSWORD_ALPHABET[index])
    return "".join(characters)


def ap_secret(state_dir: Path) -> tuple[bytes, bool]:
    """The per-device secret, made at the first start (True then); a factory reset keeps it,
    because the device's label shows the password derived from it."""
    path = state_dir / AP_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) != AP_SECRET_SIZE:
            raise ValueError(f"{path} is damaged: it must hold exactly {AP_SECRET_SIZE} bytes") from None
        return secret, False
    secret = secrets.token_bytes(AP_SECRET_SIZE)
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
        file.flush()
        os.fsync(file.fileno())
    return secret, True


def device_access_point(state_dir: Path, mac: str, setting: ApPasswordSetting) -> tuple[AccessPoint, bool]:
    """The adapter's access point, and whether its secret was made just now (show the password once)."""
    secret, new = ap_secret(state_dir)
    password = SEED_AP_PASSWORD if setting == "seed" else derive_ap_password(secret)
    return AccessPoint(access_point_ssid(mac), password), new


# --- the window record ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """When this boot's access point window opened (CLOCK_MONOTONIC seconds), and whether it is over."""

    boot_id: str
    opened_at: float
    closed: bool = False


class WindowStore:
    """`network.json`: the window of the current boot, replaced whole (a power cut leaves old or new)."""

    def __init__(self, path: Path, boot_id: Callable[[], str] = read_boot_id,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._boot_id = boot_id
        self.clock = clock

    def current(self) -> WindowRecord:
        """This boot's window; a new one opening now when the record is of another boot (a power-up),
        missing, or unreadable (then the adapter would otherwise never be configurable again)."""
        boot = self._boot_id()
        record = self._read()
        if record is not None and record.boot_id == boot:
            return record
        return self.open()

    def open(self) -> WindowRecord:
        """A window opening now (first start in a boot, or a factory reset)."""
        return self._write(WindowRecord(self._boot_id(), self.clock()))

    def close(self, record: WindowRecord) -> WindowRecord:
        return self._write(WindowRecord(record.boot_id, record.opened_at, closed=True))

    def left(self, record: WindowRecord, seconds: float) -> float:
        """Seconds the window has left; 0 when it is over."""
        if record.closed:
            return 0.0
        return max(0.0, record.opened_at + seconds - self.clock())

    def _read(self) -> WindowRecord | None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return WindowRecord(str(document["boot_id"]), float(document["opened_at"]), bool(document["closed"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("%s cannot be read (%s): the access point window opens anew", self.path, type(error).__name__)
            return None

    def _write(self, record: WindowRecord) -> WindowRecord:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(asdict(record), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, self.path)
        return record


# --- the controller -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    """What wifi_status and system_status show of the network (never a password)."""

    backend: str
    state: str
    """The machine's state as the diagram names it."""
    access_point: str | None
    """The access point's SSID while it is up."""
    window_left: float
    mode: ClientMode
    configured: str | None
    reason: str | None
    client: ClientStatus


Event = Callable[[NetworkMachine], None]


class NetworkController:
    """The actor of the network machine: arms its deadlines, carries out its actions on the backend.

    Joins run beside the loop, so the window closes on time even while one is under way; a join's
    answer counts only for the attempt still current.
    """

    def __init__(self, backend: WifiBackend, access_point: AccessPoint, window: WindowStore,
                 machine: Callable[[], NetworkMachine] | None = None, watch_interval: float = WATCH_INTERVAL) -> None:
        self.backend = backend
        self.access_point = access_point
        self.window = window
        self._new_machine = machine or NetworkMachine
        self.machine = self._new_machine()
        self.watch_interval = watch_interval
        self._record: WindowRecord | None = None
        self._attempt = 0
        self._armed: dict[str, tuple[int, float]] = {}
        self._send, self._receive = trio.open_memory_channel[Event](64)

    # --- what the API asks ---

    async def configure(self, ssid: str, password: str | None, mode: ClientMode) -> None:
        """wifi_config: the backend keeps the credentials, the machine hears of the network's name only."""
        await self.backend.store(ssid, password)
        log.info("wifi_config: joining %r in mode %s (%s)", ssid, mode, "with a password" if password else "open network")
        await self._send.send(lambda machine: machine.wifi_config(ssid, mode))

    async def factory_reset(self) -> None:
        await self._send.send(lambda machine: machine.send("factory_reset"))

    async def status(self) -> NetworkStatus:
        record = self._record
        left = self.window.left(record, self.machine.window_seconds) if record is not None else 0.0
        up = self.machine.access_point_up
        return NetworkStatus(self.backend.name, self.machine.state_label, self.access_point.ssid if up else None,
                             left if up else 0.0, self.machine.mode, self.machine.ssid, self.machine.reason,
                             await self.backend.client())

    # --- the loop ---

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; a run after a supervisor restart starts from power-up with a fresh machine."""
        self.machine = self._new_machine()
        self._armed.clear()
        record = self._record = self.window.current()
        window_open = self.window.left(record, self.machine.window_seconds) > 0
        if not window_open:
            # A crash may have left the access point up in NetworkManager; nothing else takes it down.
            await self.backend.stop_access_point()
            if not record.closed:
                self._record = self.window.close(record)
        self.machine.power_up(window_open, await self.backend.configured())
        log.warning("network: %s (backend %s, access point window %s)", self.machine.state_label, self.backend.name,
                    f"{self.window.left(record, self.machine.window_seconds):.0f} s left" if window_open else "over")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch)
            task_status.started()
            while True:
                await self._carry_out(nursery)
                at, timeout_event = self._next_deadline()
                with trio.move_on_at(at) as deadline:
                    event = await self._receive.receive()
                if deadline.cancelled_caught:
                    self.machine.send(timeout_event)
                else:
                    event(self.machine)

    async def _carry_out(self, nursery: trio.Nursery) -> None:
        for action in self.machine.take_actions():
            match action:
                case AccessPointUp():
                    await self.backend.start_access_point(self.access_point)
                case AccessPointDown():
                    # Recorded first: a crash between the two must not let a restart reopen it.
                    if self._record is not None and not self._record.closed:
                        self._record = self.window.close(self._record)
                    await self.backend.stop_access_point()
                case Join(ssid):
                    self._attempt += 1
                    nursery.start_soon(self._join, self._attempt, ssid)
                case Forget():
                    self._attempt += 1  # a join under way is of the forgotten network
                    self._record = self.window.open()
                    self._armed.clear()
                    await self.backend.forget()
                    log.warning("factory reset: home network forgotten, access point window open for %.0f s",
                                self.machine.window_seconds)

    async def _join(self, attempt: int, ssid: str) -> None:
        try:
            await self.backend.join(ssid)
        except JoinFailed as failure:
            reason = str(failure)
            log.warning("network: joining %r failed: %s", ssid, reason)
            await self._answer(attempt, "join_failed", lambda machine: machine.failed(reason))
        else:
            log.warning("network: joined %r", ssid)
            await self._answer(attempt, "joined", lambda machine: machine.send("joined"))

    async def _answer(self, attempt: int, name: str, event: Event) -> None:
        def current(machine: NetworkMachine) -> None:
            # A join that timed out, or that a newer wifi_config or a reset replaced, says nothing.
            if attempt == self._attempt and machine.accepts(name):
                event(machine)

        await self._send.send(current)

    async def _watch(self) -> None:
        while True:
            await trio.sleep(self.watch_interval)
            if self.machine.client_up and (await self.backend.client()).ssid is None:
                await self._send.send(lambda machine: machine.lost("the home network was lost")
                                      if machine.client_up else None)

    def _next_deadline(self) -> tuple[float, str]:
        """The earliest deadline of the active states. The window's counts from its recorded opening;
        every other from when its state was entered."""
        now = trio.current_time()
        earliest, event = math.inf, ""
        for timeout, seconds in self.machine.active_timeouts():
            if timeout.state == "window":
                assert self._record is not None
                at = now + max(0.0, self.window.left(self._record, seconds) - WINDOW_MARGIN)
            else:
                entered = self.machine.entries[timeout.state]
                armed = self._armed.get(timeout.state)
                if armed is None or armed[0] != entered:
                    armed = self._armed[timeout.state] = (entered, now + seconds)
                at = armed[1]
            if at < earliest:
                earliest, event = at, timeout.event
        return earliest, event
