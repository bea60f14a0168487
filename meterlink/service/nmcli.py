"""The NetworkManager Wi-Fi backend: nmcli through trio.run_process (seed 000 ch. 2.1).

Two connection profiles of meterlink's own: `meterlink-ap` (the access point, mode ap, shared IPv4)
and `meterlink-client` (the home network), both `autoconnect no`, so that NetworkManager brings up
nothing the network machine did not ask for. Passwords never go on a command line, where any user
could read them in the process list: nmcli reads them from its standard input (`passwd-file
/dev/stdin`), and NetworkManager keeps them in its root-only profile files. nmcli's terse output
(`--terse`: fields split by ':', a ':' inside a value written '\\:') and its exit statuses (nmcli(1):
4 activation failed, 8 NetworkManager not running, 10 no such connection or device) are what is read.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

import trio

from .wifi import AccessPoint, ClientStatus, JoinFailed, ScannedNetwork, host_ip_info

log = logging.getLogger("meterlink.nmcli")

AP_PROFILE = "meterlink-ap"
CLIENT_PROFILE = "meterlink-client"
JOIN_WAIT = 45
"""Seconds nmcli waits for an activation (`--wait`); the network machine's own timeout is longer."""
COMMAND_TIMEOUT = 60.0
EXIT_ACTIVATION_FAILED = 4
EXIT_NOT_RUNNING = 8
EXIT_NOT_FOUND = 10

FAILURE_REASONS = {
    "(7) Secrets were required, but not provided": "wrong password (the network asked for it again)",
    "(53) The Wi-Fi network could not be found": "the network could not be found",
}
"""nmcli's activation errors (NMActiveConnectionStateReason) said for a person."""


class NmcliError(Exception):
    """nmcli failed; the message names the command (without secrets) and nmcli's own words."""

    def __init__(self, args: list[str], returncode: int, output: str) -> None:
        super().__init__(f"nmcli {' '.join(args[:4])}: exit {returncode}: {output}")
        self.returncode = returncode
        self.output = output


def split_terse(line: str) -> list[str]:
    """One line of `nmcli --terse` tabular output: fields split at ':', with '\\:' and '\\\\' escaped."""
    fields, current, escaped = [], [], False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def multiline_values(text: str) -> dict[str, str]:
    """`nmcli --terse ... device show` / `connection show`: one `NAME:value` per line, values unescaped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            values.setdefault(name, value)
    return values


def wifi_devices(text: str) -> list[str]:
    """The Wi-Fi devices in `nmcli --terse -f DEVICE,TYPE,DBUS-PATH device`, in NetworkManager's order."""
    found = []
    for line in text.splitlines():
        fields = split_terse(line)
        if len(fields) >= 2 and fields[1] == "wifi" and fields[0] not in found:
            found.append(fields[0])
    return found


def failure_reason(output: str) -> str:
    """What `nmcli connection up` printed on failure, said for a person."""
    for known, said in FAILURE_REASONS.items():
        if known in output:
            return said
    lines = [line.removeprefix("Error: ").strip() for line in output.splitlines() if line.startswith("Error:")]
    return lines[-1] if lines else (output.strip() or "NetworkManager gave no reason")


@dataclass
class NetworkManagerWifi:
    """A Wi-Fi backend on NetworkManager; `interface` the client's device, `ap_interface` the access point's.

    One radio (`ap_interface` = `interface`) cannot be client and access point at once in
    NetworkManager: joining the home network there takes the access point down.
    """

    interface: str
    ap_interface: str
    nmcli: str = "nmcli"
    name: str = "networkmanager"
    _password: str | None = None
    """The password of wifi_config until a join succeeded with it: NetworkManager keeps it from then on."""

    async def start_access_point(self, access_point: AccessPoint) -> None:
        await self._delete(AP_PROFILE)
        await self._run("connection", "add", "type", "wifi", "ifname", self.ap_interface, "con-name", AP_PROFILE,
                        "autoconnect", "no", "ssid", access_point.ssid, "802-11-wireless.mode", "ap",
                        "ipv4.method", "shared", "wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.psk-flags", "0")
        await self._run("--wait", str(JOIN_WAIT), "connection", "up", "id", AP_PROFILE, "passwd-file", "/dev/stdin",
                        secret=access_point.password)

    async def stop_access_point(self) -> None:
        await self._run("connection", "down", "id", AP_PROFILE, allowed=(EXIT_NOT_FOUND,))

    async def store(self, ssid: str, password: str | None) -> None:
        await self._delete(CLIENT_PROFILE)
        security = ["wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.psk-flags", "0"] if password else []
        await self._run("connection", "add", "type", "wifi", "ifname", self.interface, "con-name", CLIENT_PROFILE,
                        "autoconnect", "no", "ssid", ssid, *security)
        self._password = password

    async def configured(self) -> str | None:
        result = await self._run("--terse", "-f", "802-11-wireless.ssid", "connection", "show", "id", CLIENT_PROFILE,
                                 allowed=(EXIT_NOT_FOUND,))
        if result.returncode == EXIT_NOT_FOUND:
            return None
        return multiline_values(result.stdout).get("802-11-wireless.ssid") or None

    async def join(self, ssid: str) -> None:
        secret = self._password
        extra = ["passwd-file", "/dev/stdin"] if secret else []
        result = await self._run("--wait", str(JOIN_WAIT), "connection", "up", "id", CLIENT_PROFILE, *extra,
                                 secret=secret, allowed=(1, 3, EXIT_ACTIVATION_FAILED, EXIT_NOT_FOUND))
        output = result.stdout + result.stderr
        # nmcli has printed activation errors on stdout with exit 0 (ushiboy/nmcli#49): read the text too.
        if result.returncode != 0 or "Error:" in output:
            raise JoinFailed(failure_reason(output))
        self._password = None

    async def forget(self) -> None:
        self._password = None
        await self._delete(CLIENT_PROFILE)

    async def client(self) -> ClientStatus:
        result = await self._run("--terse", "-f", "GENERAL,GENERAL.HWADDR,WIFI-PROPERTIES", "dev", "show",
                                 self.interface, allowed=(EXIT_NOT_FOUND,))
        values = multiline_values(result.stdout)
        connected = values.get("GENERAL.STATE", "").startswith("100 ")
        if not connected or values.get("GENERAL.CONNECTION") != CLIENT_PROFILE:
            return ClientStatus(None, None, None)
        return ClientStatus(await self.configured(), None, host_ip_info().ip)

    async def scan(self) -> list[ScannedNetwork]:
        result = await self._run("--terse", "-f", "SSID,SIGNAL,SECURITY", "device", "wifi", "list",
                                 "ifname", self.interface)
        networks = []
        for line in result.stdout.splitlines():
            fields = split_terse(line)
            if len(fields) == 3 and fields[0] and fields[1].isdigit():
                # NetworkManager gives the signal as 0-100 %; rssi in dBm is about % / 2 - 100.
                networks.append(ScannedNetwork(fields[0], int(fields[1]) // 2 - 100, fields[2]))
        return networks

    async def hardware_address(self) -> str | None:
        result = await self._run("--terse", "-f", "GENERAL,GENERAL.HWADDR,WIFI-PROPERTIES", "dev", "show",
                                 self.interface, allowed=(EXIT_NOT_FOUND,))
        return multiline_values(result.stdout).get("GENERAL.HWADDR") or None

    async def _delete(self, profile: str) -> None:
        await self._run("connection", "delete", "id", profile, allowed=(EXIT_NOT_FOUND,))

    async def _run(self, *args: str, secret: str | None = None,
                   allowed: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
        stdin = f"802-11-wireless-security.psk:{secret}\n".encode() if secret else b""
        command = [self.nmcli, *args]
        with trio.fail_after(COMMAND_TIMEOUT):
            result = await trio.run_process(command, stdin=stdin, capture_stdout=True, capture_stderr=True,
                                            check=False, env=_environment())
        completed = subprocess.CompletedProcess(command, result.returncode, result.stdout.decode(errors="replace"),
                                                result.stderr.decode(errors="replace"))
        if completed.returncode != 0 and completed.returncode not in allowed:
            raise NmcliError(list(args), completed.returncode, (completed.stderr or completed.stdout).strip())
        return completed


def _environment() -> dict[str, str]:
    """English messages (the C locale: `failure_reason` reads them), and the service's own PATH."""
    return {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


async def find_networkmanager(interface: str | None, ap_interface: str | None,
                              nmcli: str = "nmcli") -> tuple[NetworkManagerWifi | None, str]:
    """NetworkManager with a Wi-Fi device, or None; and why, for the log line that says which backend runs."""
    if shutil.which(nmcli) is None:
        return None, "nmcli not found"
    try:
        with trio.fail_after(COMMAND_TIMEOUT):
            result = await trio.run_process([nmcli, "--terse", "-f", "DEVICE,TYPE,DBUS-PATH", "device"],
                                            capture_stdout=True, capture_stderr=True, check=False,
                                            env=_environment())
    except (OSError, trio.TooSlowError) as error:
        return None, f"nmcli could not be run ({type(error).__name__})"
    if result.returncode == EXIT_NOT_RUNNING:
        return None, "NetworkManager is not running"
    if result.returncode != 0:
        return None, f"nmcli exit {result.returncode}: {result.stderr.decode(errors='replace').strip()}"
    devices = wifi_devices(result.stdout.decode(errors="replace"))
    if interface is not None and interface not in devices:
        return None, f"NetworkManager has no Wi-Fi device {interface} (it has: {', '.join(devices) or 'none'})"
    if not devices:
        return None, "NetworkManager has no Wi-Fi device"
    chosen = interface or devices[0]
    return NetworkManagerWifi(chosen, ap_interface or chosen, nmcli), f"NetworkManager, Wi-Fi device {chosen}"
