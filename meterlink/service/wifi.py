"""The Wi-Fi backends: what the adapter's network controller asks of the system (seed 000 ch. 2.1, 3.3).

A backend carries out, and never decides: the access point window, joins and retries are
`machines/network.py`'s, the controller `service/network.py` hands them here. Two backends:
NetworkManager through nmcli (`service/nmcli.py`) on a real adapter, and `SimulatedWifi` for the
demo and the tests. A backend keeps the home network's password (NetworkManager in its 0600
connection file): the controller and the machine only ever know the network's name, and no
backend returns or logs the password.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

log = logging.getLogger("meterlink.wifi")

SIMULATED_RSSI = -63
SEED_AP_PASSWORD = "welinkwmlink"
"""Seed 000 ch. 2.1.1: the same access point password on every device (`[network] ap_password = "seed"`)."""


@dataclass(frozen=True, slots=True)
class IpInfo:
    """The host's address on its default route (get_ip_info, seed 000 ch. 3.4.4)."""

    ip: str
    gateway: str
    netmask: str


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """The client side of the Wi-Fi as the backend sees it (wifi_status of seed 000 ch. 3.3.2)."""

    ssid: str | None
    """The home network joined, None when not joined."""
    rssi: int | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class ScannedNetwork:
    ssid: str
    rssi: int
    security: str
    """As the backend names it: "WPA2", "WPA1 WPA2", "" for an open network."""


@dataclass(frozen=True, slots=True)
class AccessPoint:
    """The adapter's own access point: `meterextension:xxxx` and its WPA2 passphrase."""

    ssid: str
    password: str = field(repr=False)


class JoinFailed(Exception):
    """A join did not succeed; the message says why for a person and never holds the password."""


class WifiBackend(Protocol):
    name: str
    """Shown as `backend` in wifi_status and system_status: "networkmanager" or "simulated"."""

    async def start_access_point(self, access_point: AccessPoint) -> None: ...

    async def stop_access_point(self) -> None: ...

    async def store(self, ssid: str, password: str | None) -> None:
        """Keep the home network's credentials (replacing any earlier); `password` None: open network."""

    async def configured(self) -> str | None:
        """The home network whose credentials are kept, if any."""

    async def join(self, ssid: str) -> None:
        """Join the stored home network; JoinFailed says why it did not."""

    async def forget(self) -> None:
        """Factory reset: leave and forget the home network and its credentials."""

    async def client(self) -> ClientStatus: ...

    async def scan(self) -> list[ScannedNetwork]: ...

    async def hardware_address(self) -> str | None:
        """The Wi-Fi device's MAC address (the access point's name ends in it), None if unknown."""


@dataclass
class SimulatedWifi:
    """A Wi-Fi whose networks are a table: a join succeeds where the password is the table's.

    It stands for NetworkManager in the demo and the tests, so it outlives a restart of the
    controller as NetworkManager outlives one of the service; `join_time` is what a join takes (in
    trio's clock). Every change of the access point is noted with the time, for the tests.
    """

    networks: dict[str, str | None] = field(default_factory=lambda: {"home": "home-password"})
    """ssid -> password (None: open). The demo's one network, "home", is joined with "home-password"."""
    join_time: float = 2.0
    name: str = "simulated"
    access_point: AccessPoint | None = None
    ap_changes: list[tuple[float, bool]] = field(default_factory=list)
    joined: str | None = None
    _stored: tuple[str, str | None] | None = field(default=None, repr=False)

    async def start_access_point(self, access_point: AccessPoint) -> None:
        if self.access_point is None:
            self.ap_changes.append((trio.current_time(), True))
        self.access_point = access_point
        log.info("simulated wifi: access point %s up", access_point.ssid)

    async def stop_access_point(self) -> None:
        if self.access_point is not None:
            self.ap_changes.append((trio.current_time(), False))
            log.info("simulated wifi: access point down")
        self.access_point = None

    async def store(self, ssid: str, password: str | None) -> None:
        self._stored = (ssid, password)

    async def configured(self) -> str | None:
        return self._stored[0] if self._stored else None

    async def join(self, ssid: str) -> None:
        await trio.sleep(self.join_time)
        if self._stored is None or self._stored[0] != ssid or ssid not in self.networks:
            raise JoinFailed(f"network {ssid!r} not found")
        if self.networks[ssid] != self._stored[1]:
            raise JoinFailed("wrong password (the network refused it)")
        self.joined = ssid

    async def forget(self) -> None:
        self._stored, self.joined = None, None

    async def client(self) -> ClientStatus:
        if self.joined is None:
            return ClientStatus(None, None, None)
        return ClientStatus(self.joined, SIMULATED_RSSI, host_ip_info().ip)

    async def scan(self) -> list[ScannedNetwork]:
        return [ScannedNetwork(ssid, SIMULATED_RSSI, "WPA2" if password else "") for ssid, password in self.networks.items()]

    async def hardware_address(self) -> str | None:
        return None

    def lose(self) -> None:
        """The home network goes away (tests)."""
        self.joined = None

    def power_cut(self) -> None:
        """What a power cut does to NetworkManager's running state: nothing is up (tests)."""
        if self.access_point is not None:
            self.ap_changes.append((trio.current_time(), False))
        self.access_point, self.joined = None, None


# --- the host's addresses (best effort: every failure gives "0.0.0.0") -----------------------------------

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B
_UNKNOWN = "0.0.0.0"
_ROUTES = Path("/proc/net/route")


def host_ip_info() -> IpInfo:
    """IPv4 address, gateway and netmask of the interface on the default route (Linux)."""
    route = _default_route()
    if route is None:
        return IpInfo(_outbound_ip(), _UNKNOWN, _UNKNOWN)
    interface, gateway = route
    return IpInfo(
        _interface_address(interface, _SIOCGIFADDR) or _outbound_ip(),
        gateway,
        _interface_address(interface, _SIOCGIFNETMASK) or _UNKNOWN,
    )


def _default_route() -> tuple[str, str] | None:
    """(interface, gateway) of the first IPv4 default route in /proc/net/route."""
    try:
        lines = _ROUTES.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000":
            try:
                gateway = ipaddress.IPv4Address(struct.pack("<I", int(fields[2], 16)))
            except ValueError:
                continue
            return fields[0], str(gateway)
    return None


def _interface_address(interface: str, request: int) -> str | None:
    """An IPv4 address of `interface` by ioctl (SIOCGIFADDR or SIOCGIFNETMASK)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            answer = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", interface.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(answer[20:24])


def _outbound_ip() -> str:
    """The source address the host would use towards the internet; connecting UDP sends nothing."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet leaves, only a route lookup
            return str(sock.getsockname()[0])
    except OSError:
        return _UNKNOWN
