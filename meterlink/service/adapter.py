"""What the outputs (REST API, MQTT, web page) see of the running adapter.

One `Adapter` is built by `meterlink run` / `meterlink demo` and handed to the outputs; they read
readings from the hub, link and supervisor status, and ask for configuration changes through it.
"""

from __future__ import annotations

import ipaddress
import platform
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ..actors.link import LinkStatus
from ..machines.dlms import Association
from ..supervisor import ChildStatus
from .hub import ReadingsHub
from .mqtt import MqttStatus
from .network import NetworkController
from .secrets import Credentials, KeyStore, LoginThrottle
from .version import software_version

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _mac_address() -> str:
    node = uuid.getnode()
    return ":".join(f"{(node >> shift) & 0xFF:02x}" for shift in range(40, -1, -8))


@dataclass(frozen=True)
class DeviceInfo:
    """system_status of seed 000 ch. 3.4.1."""

    model: str = "meterlink"
    sw_version: str = field(default_factory=software_version)
    hw_version: str = field(default_factory=platform.machine)
    mac: str = field(default_factory=_mac_address)


@dataclass(frozen=True)
class ApiPolicy:
    """Who may read without credentials, and where download_file / request_post may go."""

    open_reads: tuple[IPNetwork, ...] = ()
    fetch_hosts: tuple[str, ...] = ()
    max_body: int = 16 * 1024


@dataclass
class Adapter:
    hub: ReadingsHub
    links: dict[str, LinkStatus]
    supervisor_status: Callable[[], tuple[ChildStatus, ...]]
    keys: KeyStore
    credentials: Credentials
    throttle: LoginThrottle
    policy: ApiPolicy = ApiPolicy()
    device: DeviceInfo = field(default_factory=DeviceInfo)
    outputs: dict[str, Callable[[], MqttStatus]] = field(default_factory=dict)
    """How each output is doing, by name ("mqtt")."""
    dlms_links: dict[str, tuple[str, Association]] = field(default_factory=dict)
    """Port and association of each DLMS link, for image transfers."""
    request_restart: Callable[[], None] = lambda: None
    """system_restart: the service restarts its supervisor tree (systemd restarts the process if it exits)."""
    network: NetworkController | None = None
    """The adapter's own Wi-Fi (wifi_config, wifi_status); None where the service does not manage it."""
    announce: Callable[[str], None] = lambda line: None
    """Prints a line for the user once (the console, or the journal): a new token after a factory reset."""
    configured_token: str | None = None
    """`adapter.token` of the configuration: a factory reset keeps it, as the next start would put it back."""
