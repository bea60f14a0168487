"""The TOML configuration of `meterlink run` (annotated example: meterlink.example.toml).

An invalid file fails at start with one line per problem naming the key (`link[0].baud`) and
what is wrong with it; unknown keys are errors too, so a typo never silently does nothing.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator,
                      model_validator)

from ..protocols.dlms.objects import AttributeRef, ObjectError
from ..transports import SerialSettings, parse_tcp_url
from .hub import DEFAULT_MAX_METERS

LED_NAME = r"^[A-Za-z0-9_.:+-]{1,64}$"
"""An LED class device name as drivers make them (`led0`, `ACT`, `green:status`): no slash."""

log = logging.getLogger("meterlink.config")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdapterSection(_Section):
    state_dir: Path = Path("/var/lib/meterlink")
    """Encrypted meter keys, the device key (0600) and the API token's hash live here."""
    token: str | None = Field(default=None, min_length=8)
    """The API token / device password; without it one is generated at first start and shown once."""


DEFAULT_PORTS = {"http": 80, "https": 443}
_FETCH_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\s/?#@:\[\]]+))(?::(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True)
class FetchHost:
    """An entry of `http.fetch_hosts`: a host, and the one port download_file may reach it on.

    Without a port only the scheme's own (80 for http, 443 for https): listing `localhost` must not
    open every other service on the adapter (issue 12 item 8).
    """

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> FetchHost:
        """`host`, `host:port`, `[v6]` or `[v6]:port`; ValueError says what is wrong."""
        match = _FETCH_HOST.fullmatch(entry)
        if match is None or (match["v6"] is not None and not _is_ipv6(match["v6"])):
            raise ValueError(f"expected HOST or HOST:PORT such as homeassistant.local or 192.168.1.5:8123 "
                             f"([::1]:8080 for IPv6), got {entry!r}")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"{entry!r}: the port must be 1 to 65535")
        return cls(normal_host(match["v6"] or match["name"]), port)

    def allows(self, scheme: str, host: str, port: int | None) -> bool:
        """Whether a URL's scheme (http, https), host and port (None: the scheme's) are this entry's."""
        default = DEFAULT_PORTS[scheme]
        return normal_host(host) == self.host and (default if port is None else port) == (self.port or default)


def normal_host(host: str) -> str:
    """One spelling per host: an IP address in its short form, a name in lower case."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _fetch_host(entry: str) -> str:
    FetchHost.parse(entry)
    return entry


class HttpSection(_Section):
    listen: str = "127.0.0.1:8080"
    open_reads: list[str] = []
    """Networks (CIDR) that may read without credentials; configuration always needs them."""
    fetch_hosts: list[Annotated[str, AfterValidator(_fetch_host)]] = []
    """HOST or HOST:PORT that download_file and request_post may reach; none by default (SSRF)."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        problem = cls.listen_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @staticmethod
    def listen_problem(value: str) -> str | None:
        """What is wrong with a HOST:PORT to listen on, or None."""
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return f"expected HOST:PORT such as 127.0.0.1:8080, got {value!r}"
        return None

    @field_validator("open_reads")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network such as 192.168.0.0/16") from None
        return value


class MqttSection(_Section):
    """The MQTT output (meterlink/service/mqtt.py); off unless a host is given."""

    host: str | None = None
    port: int = Field(default=1883, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    base_topic: str = "meterlink"
    qos: Literal[0, 1, 2] = 1
    retain_state: bool = False
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    keepalive: int = Field(default=30, ge=1)
    tls: bool = False
    queue_size: int = Field(default=1000, ge=1)


class SupervisorSection(_Section):
    max_restarts: int = Field(default=10, ge=0)
    period: float = Field(default=60.0, gt=0)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)


class NetworkSection(_Section):
    """The adapter's own Wi-Fi (README, "The adapter's network")."""

    backend: Literal["auto", "networkmanager", "simulated", "none"] = "auto"
    """auto: NetworkManager when nmcli answers and has a Wi-Fi device, else simulated; none: not managed."""
    interface: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,15}$")
    """The Wi-Fi device joining the home network (default: NetworkManager's first Wi-Fi device)."""
    ap_interface: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,15}$")
    """The device of the access point (default: `interface`; a second one lets sta_ap keep both up)."""
    ap_password: Literal["device", "seed"] = "device"
    """device: derived from this adapter's own secret (`meterlink device-info`); seed: welinkwmlink, the seed's."""


class LedsSection(_Section):
    """Status LEDs (seed 001 ch. C.8) through Linux's LED class: each role names an LED under `sysfs`;
    a role left out, or the whole section, means no such LED (README, "Status LEDs")."""

    sysfs: Path = Path("/sys/class/leds")
    power: str | None = Field(default=None, pattern=LED_NAME)
    data: str | None = Field(default=None, pattern=LED_NAME)
    fault: str | None = Field(default=None, pattern=LED_NAME)

    @model_validator(mode="after")
    def _distinct(self) -> LedsSection:
        named = [name for name in (self.power, self.data, self.fault) if name is not None]
        if any(name in (".", "..") for name in named):
            raise ValueError("an LED name is a directory under sysfs, not . or ..")
        if len(set(named)) != len(named):
            raise ValueError("power, data and fault must name different LEDs")
        return self


class UpdateSection(_Section):
    """Self-update with signed bundles (README, "Updating meterlink")."""

    keys_dir: Path = Path("/etc/meterlink/update-keys")
    """Ed25519 public keys (PEM, *.pem) whose signatures an update accepts; none: every bundle is refused."""
    ca_dir: Path = Path("/etc/meterlink/certs")
    """firmware_update's `cert` names a CA file here (default ca_cert.pem); absent: the system's CAs."""
    base_release: Path = Path("/opt/meterlink/.venv")
    """The release install.sh installed: where `current` points before any update, and the last fallback."""
    max_size: int = Field(default=256 * 1024 * 1024, gt=0)
    """Bytes a bundle may have."""
    download_timeout: float = Field(default=600.0, gt=0)
    confirm_seconds: float = Field(default=120.0, gt=0)
    """A new release must be healthy (links started, the API answering) within this after the switch."""
    max_boots: int = Field(default=3, ge=1)
    """Starts of an unconfirmed release before check-boot switches back."""


class LinkSection(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    kind: Literal["p1", "mbus", "hdlc-push", "dlms", "bsm", "mep", "auto", "wmbus"]
    """"auto": the link found at start by `meterlink detect`'s search (README, "Finding your meter's settings")."""
    port: str | None = None
    """A serial device path or tcp://HOST:PORT (every kind but a wmbus link with receiver = "rtl_wmbus")."""
    baud: int | None = Field(default=None, gt=0)
    parity: Literal["N", "E", "O"] | None = None
    bytesize: Literal[5, 6, 7, 8] | None = None
    stopbits: Literal[1, 1.5, 2] | None = None
    data_request: Literal["rts", "dtr"] | None = None
    push_interval: float | None = Field(default=None, gt=0)
    """Seconds between telegrams (default: P1 1 s, M-Bus 5 s, HDLC push 10 s); stale after 3 missing."""
    legacy: bool = False
    """P1: DSMR 2.2/3 telegrams without CRC (9600 7E1 unless given)."""
    objects: list[str] = []
    """DLMS: the attributes polled, CLASS:OBIS:ATTR (registers are read with their scaler and unit)."""
    poll_interval: float | None = Field(default=None, gt=0)
    """DLMS, BSM and MEP: seconds between polls (default DLMS 10, BSM 5, MEP 5; MEP at least 3)."""
    unit: int | None = Field(default=None, ge=1, le=247)
    """BSM: the meter's Modbus unit (default 42, the factory setting)."""
    energy_unit: Literal[1, 10, 100] | None = None
    """MEP: a CT meter's energy register unit (ET55): BT23 counts Wh and varh in 1 (default), 10 or 100."""
    password: SecretStr | None = None
    """DLMS: the LLS password; with it the defaults become client SAP 18, server logical 16."""
    client_sap: int | None = Field(default=None, ge=0, le=127)
    server_logical: int | None = Field(default=None, ge=0, le=0x3FFF)
    server_physical: int | None = Field(default=None, ge=0, le=0x3FFF)
    framing: Literal["hdlc", "wrapper"] = "hdlc"
    """DLMS: HDLC (serial, or over TCP) or the IEC 62056-47 wrapper (TCP port 4059)."""
    inactivity_timeout: float = Field(default=20.0, gt=0)
    """DLMS: the meter's inactivity timeout (HDLC setup attribute 8), so the association outlives no poll."""
    listen_time: float | None = Field(default=None, gt=0)
    """auto: seconds at each serial setting (default 12; 70 hears an M-Bus meter in search mode)."""
    payload: Literal["auto", "dlms", "oms"] | None = None
    """mbus: what the SND_UD telegrams carry; by default told by their CI field. "oms" (Netz OÖ's
    AMIS meters: EN 13757-3, OMS mode 5) also makes 9600 8E1 the default setting."""
    receiver: Literal["im871a", "amb8465", "cul", "rtl_wmbus"] | None = None
    """wmbus: the USB receiver (iM871A, AMB8465, CUL) on `port`, or rtl_wmbus reading `command`'s output."""
    command: str | None = None
    """wmbus with receiver = "rtl_wmbus": the command whose output is read."""
    meters: list[Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{8}$")]] = []
    """wmbus: the identification numbers of the meters to read (8 digits each); none: every meter heard.
    A meter's key is set with meter_setkey and its meter_id (a key without one serves every meter)."""
    max_meters: int = Field(default=DEFAULT_MAX_METERS, ge=1)
    """Meters whose readings are kept for this link; a new one beyond that forgets the least recently heard."""

    @field_validator("port")
    @classmethod
    def _port(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("tcp://"):
            parse_tcp_url(value)
        elif not value.startswith("/"):
            raise ValueError(f"expected a device path such as /dev/ttyUSB0 or tcp://HOST:PORT, got {value!r}")
        return value

    @field_validator("objects")
    @classmethod
    def _attributes(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                AttributeRef.parse(text)
            except ObjectError as error:
                raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _dlms_keys(self) -> LinkSection:
        dlms_only = ("objects", "password", "client_sap", "server_logical", "server_physical")
        if self.kind not in ("dlms", "bsm", "mep") and self.poll_interval is not None:
            raise ValueError("poll_interval: only for kind = \"dlms\", \"bsm\" or \"mep\"")
        if self.kind != "dlms":
            misplaced = [key for key in dlms_only if getattr(self, key)]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: only for kind = \"dlms\"")
        elif not self.objects:
            raise ValueError("objects: a dlms link polls at least one attribute, e.g. \"3:1-1:1.8.0.255:2\"")
        return self

    @model_validator(mode="after")
    def _wmbus_keys(self) -> LinkSection:
        wmbus_only = ("receiver", "command", "meters")
        if self.kind != "wmbus":
            misplaced = [key for key in wmbus_only if getattr(self, key)]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: only for kind = \"wmbus\"")
            if self.port is None:
                raise ValueError("port: required (a serial device path or tcp://HOST:PORT)")
        elif self.receiver is None:
            raise ValueError("receiver: a wmbus link names its receiver: \"im871a\", \"amb8465\", \"cul\" or \"rtl_wmbus\"")
        elif self.receiver == "rtl_wmbus" and (not self.command or self.port):
            raise ValueError("command: receiver = \"rtl_wmbus\" reads a command's output (give command, not port)")
        elif self.receiver != "rtl_wmbus" and (not self.port or self.command):
            raise ValueError(f"port: receiver = \"{self.receiver}\" is a serial stick (give port, not command)")
        return self

    @model_validator(mode="after")
    def _mbus_keys(self) -> LinkSection:
        if self.payload is not None and self.kind != "mbus":
            raise ValueError("payload: only for kind = \"mbus\"")
        return self

    @model_validator(mode="after")
    def _bsm_keys(self) -> LinkSection:
        if self.kind != "bsm":
            if self.unit is not None:
                raise ValueError("unit: only for kind = \"bsm\"")
            return self
        # A polled Modbus link: no telegram interval, no P1 data-request line, no DSMR variant.
        misplaced = [key for key in ("push_interval", "data_request", "legacy") if getattr(self, key)]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)}: not for kind = \"bsm\" (a polled link: poll_interval)")
        return self

    @model_validator(mode="after")
    def _mep_keys(self) -> LinkSection:
        if self.kind != "mep":
            if self.energy_unit is not None:
                raise ValueError("energy_unit: only for kind = \"mep\"")
            return self
        misplaced = [key for key in ("push_interval", "data_request", "legacy") if getattr(self, key)]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)}: not for kind = \"mep\" (a polled link: poll_interval)")
        if self.poll_interval is not None and self.poll_interval < 3:
            raise ValueError("poll_interval: at least 3 s for kind = \"mep\" (about one table read a second, as the MEP guide advises)")
        return self

    @model_validator(mode="after")
    def _auto_keys(self) -> LinkSection:
        found = ("baud", "parity", "bytesize", "stopbits", "legacy")
        if self.kind == "auto":
            misplaced = [key for key in found if getattr(self, key)]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)}: found by kind = \"auto\"; give them with the kind it found instead")
        elif self.listen_time is not None:
            raise ValueError("listen_time: only for kind = \"auto\"")
        return self

    def serial(self, default: SerialSettings) -> SerialSettings:
        return SerialSettings(
            baudrate=self.baud or default.baudrate,
            bytesize=self.bytesize or default.bytesize,
            parity=self.parity or default.parity,
            stopbits=self.stopbits or default.stopbits,
            data_request=self.data_request,
        )


class Config(_Section):
    adapter: AdapterSection = AdapterSection()
    http: HttpSection = HttpSection()
    mqtt: MqttSection = MqttSection()
    supervisor: SupervisorSection = SupervisorSection()
    network: NetworkSection = NetworkSection()
    leds: LedsSection = LedsSection()
    update: UpdateSection = UpdateSection()
    link: list[LinkSection] = []

    @field_validator("link")
    @classmethod
    def _unique_names(cls, links: list[LinkSection]) -> list[LinkSection]:
        names = [link.name for link in links]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"link names must be unique; repeated: {', '.join(duplicates)}")
        return links


def load_config(path: Path) -> Config:
    """Read and check a config file; ConfigError names every problem with its key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        line = error.object.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02X} on line {line}); "
                          "save it as UTF-8") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    config = parse_config(document, str(path))
    if any(link.password is not None for link in config.link) and stat.S_IMODE(path.stat().st_mode) & 0o077:
        log.warning("%s holds a meter password and is readable by group or others: chmod 600 %s", path, path)
    return config


def parse_config(document: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(document)
    except ValidationError as error:
        problems = [f"{source}: {_key(problem['loc'])}: {_message(problem)}" for problem in error.errors()]
        raise ConfigError("\n".join(problems)) from None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
"""A TOML bare key; any other key is shown quoted, as TOML writes it."""


def _key(location: tuple) -> str:
    key = ""
    for part in location:
        if isinstance(part, int):
            key += f"[{part}]"
            continue
        # A quoted key may hold a newline or a ": ": shown raw it would fake a line of the report.
        name = str(part) if _BARE_KEY.fullmatch(str(part)) else json.dumps(str(part))
        key += f".{name}" if key else name
    return key


KEY_HINTS = {"key", "auth_key", "encryption_key", "authentication_key"}
"""Keys a user may try in a [[link]] for the meter key, which never goes into this file."""


def _message(problem: dict) -> str:
    location = problem["loc"]
    if problem["type"] == "extra_forbidden" and location[0] == "link" and location[-1] in KEY_HINTS:
        return ("unknown key: meter keys are not kept in this file; set them with meter_setkey "
                "(see README, \"Setting the meter key\")")
    if problem["type"] == "extra_forbidden":
        return "unknown key"
    return problem["msg"].removeprefix("Value error, ")
