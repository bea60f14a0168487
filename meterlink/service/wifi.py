"""Wi-Fi for wifi_config / wifi_status / meter_factreset (seed 000 ch. 2.1, 3.3), and the host's addresses.

The adapter's network mode (access point for configuration, client mode, sta_ap) will be a link
machine of its own (ARCHITECTURE.md, "Adapter network mode"). Until then the API talks to
`SimulatedWifi`, which only remembers what it was told and says so in every status
(`backend = "simulated"`). The Wi-Fi password is a secret: no backend returns or logs it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger("meterlink.wifi")

WifiMode = Literal["ap", "sta", "sta_ap"]
"""ap: the adapter's own access point (factory state); sta: client of the home network; sta_ap: both."""

SIMULATED_RSSI = -63


@dataclass(frozen=True, slots=True)
class IpInfo:
    """The host's address on its default route (get_ip_info, seed 000 ch. 3.4.4)."""

    ip: str
    gateway: str
    netmask: str


@dataclass(frozen=True, slots=True)
class WifiStatus:
    """wifi_status of seed 000 ch. 3.3.2."""

    ssid: str
    rssi: int
    ap_mac: str
    ip: str
    mode: WifiMode


class WifiBackend(Protocol):
    name: str
    """Shown as `backend` in wifi_status."""

    def status(self) -> WifiStatus: ...

    def configure(self, ssid: str, password: str | None, mode: Literal["sta", "sta_ap"]) -> None:
        """Join `ssid` (wifi_config); `password` None for an open network."""

    def reset(self) -> None:
        """Forget the home network and go back to the access point (meter_factreset)."""


class SimulatedWifi:
    """A Wi-Fi that connects at once to whatever it is told; the host's real address as IP.

    It never keeps the password: nothing here would use it.
    """

    name = "simulated"

    def __init__(self, mac: str) -> None:
        self._mac = mac
        self._ssid: str | None = None
        self._mode: WifiMode = "ap"

    def status(self) -> WifiStatus:
        if self._ssid is None:
            return WifiStatus(self.ap_ssid(), 0, self._mac, host_ip_info().ip, "ap")
        return WifiStatus(self._ssid, SIMULATED_RSSI, self._mac, host_ip_info().ip, self._mode)

    def configure(self, ssid: str, password: str | None, mode: Literal["sta", "sta_ap"]) -> None:
        self._ssid, self._mode = ssid, mode
        log.info("simulated wifi: joined %r in mode %s (%s)", ssid, mode, "with password" if password else "open")

    def reset(self) -> None:
        self._ssid, self._mode = None, "ap"
        log.info("simulated wifi: back to access point %s", self.ap_ssid())

    def ap_ssid(self) -> str:
        """`meterextension:xxxx`, xxxx the last two bytes of the MAC address (seed 000 ch. 2.1.1)."""
        return "meterextension:" + self._mac.replace(":", "")[-4:]


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
