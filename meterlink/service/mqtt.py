"""MQTT output: readings as JSON, Home Assistant discovery, availability, reconnect with backoff.

Topic tree (`<link>` and `<meter>` are the link name and the meter id with every character other
than letters, digits, '-' and '_' replaced by '_'; `<meter>` is the link name when the meter has no id):

    <base>/status                     "online" (retained) once connected; the last will, and a clean
                                      stop, set "offline" (retained)
    <base>/<link>/status              {"kind", "state", "connected", "stale"} (retained) when it changes
    <base>/<link>/<meter>/reading     the reading, exactly as `meterlink decode` prints it
    <base>/<link>/<meter>/state       {"1-0_1_8_0": 1.955, ..., "captured_at": ..., "received_at": ...}
    <prefix>/sensor/meterlink_<meter>/<obis key>/config       Home Assistant discovery (retained)
    <prefix>/binary_sensor/<adapter>/<link>_link/config       the link's connectivity (retained)
    <prefix>/status                   subscribed: Home Assistant's "online" (its birth message) makes
                                      meterlink publish discovery, availability and link states again

A meter's sensors are available while both `<base>/status` is "online" and its link's status says
connected and not stale, so a dead link shows in Home Assistant as unavailable, not as frozen values.

An OBIS key is `A-B_C_D_E` (with `_F` appended when F is not 255): safe as a topic level, as a Home
Assistant object id and inside a Jinja template.

Delivery: readings go out with the configured QoS; availability, link status and discovery with QoS 1,
retained. At QoS 1 delivery is at least once and in order: a reading is removed from the publisher
only when the broker has acknowledged it, so a reading in flight when the connection drops is sent
again after the reconnect and may arrive twice. Readings that arrive while the broker is unreachable
wait in the hub subscription (`queue_size`); beyond that the oldest are dropped and counted. Seed 001
allows interim storage of at most 60 s, so a reading older than the hub's window (by its `received_at`)
is not sent but counted as expired; after a longer outage the paho client and the messages it still
holds are discarded too.

paho under trio, without a thread for the I/O: paho only ever sees non-blocking calls from our tasks.
`reconnect()` is the one blocking call (DNS, TCP and TLS handshake), so it runs in a worker thread with
paho's socket callbacks detached. Then one reader task waits `wait_readable` and calls `loop_read`, one
writer task waits for paho's `on_socket_register_write` and then `wait_writable` and `loop_write`, and a
tick task calls `loop_misc` (keepalive) each second. paho calls `on_socket_close` before closing a socket,
where we tell trio (`notify_closing`) so no task waits on a closed descriptor.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ..actors.link import LinkStatus
from ..protocols.obis import Obis, ObisError
from ..protocols.readings import Reading, Value, non_finite
from ..supervisor import Backoff, ChildSpec
from .hub import MeterKey, ReadingsHub
from .version import software_version

log = logging.getLogger("meterlink.mqtt")

WINDOW = 50
"""Readings handed to paho and not yet confirmed; bounds what paho itself keeps in memory."""
TICK = 1.0
"""Seconds between `loop_misc` calls (keepalive) and link-status checks."""
CONNECT_TIMEOUT = 5.0
"""For the TCP/TLS connect, and again for the broker's CONNACK."""
GOODBYE_TIMEOUT = 1.0
"""A clean stop ("offline", DISCONNECT) may take this long; the service must be down within 2 s."""


def _default_client_id() -> str:
    return f"meterlink-{socket.gethostname()}"


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish. `password` is a secret: it never appears in repr, logs or errors."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str = field(default_factory=_default_client_id)
    base_topic: str = "meterlink"
    qos: int = 1
    retain_state: bool = False
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    keepalive: int = 30
    tls: bool = False
    queue_size: int = 1000
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {self.qos}")
        for name in ("base_topic", "discovery_prefix"):
            topic = getattr(self, name)
            if not topic or topic.startswith("/") or topic.endswith("/") or any(c in topic for c in "+#\0"):
                raise ValueError(f"{name} must be a topic without wildcards or leading/trailing '/', got {topic!r}")
        if not self.client_id:
            raise ValueError("client_id must not be empty (the broker keeps the session under it)")
        if self.keepalive < 1:
            raise ValueError(f"keepalive must be at least 1 s, got {self.keepalive}")
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size}")
        self.backoff()  # checks the backoff bounds

    def backoff(self) -> Backoff:
        return Backoff(initial=self.backoff_initial, maximum=self.backoff_max)


@dataclass(frozen=True)
class MqttStatus:
    """What the service shows of the MQTT output."""

    connected: bool
    connects: int  # successful connections so far
    published: int  # readings confirmed by the broker (written to the socket at QoS 0)
    in_flight: int  # readings handed to paho and not yet confirmed
    queued: int  # readings waiting: in the hub subscription, and unconfirmed ones of a lost connection
    dropped: int  # readings lost to the queue bound, oldest first
    expired: int  # readings older than the hub's window (60 s) when their turn came
    last_error: str | None


# --- what a reading looks like on MQTT ---------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_name(text: str) -> str:
    """A topic level / Home Assistant id: anything but letters, digits, '-' and '_' becomes '_'."""
    return _UNSAFE.sub("_", text) or "_"


@functools.lru_cache(maxsize=4096)  # meters state the same few dozen codes in every reading
def obis_key(obis: str) -> str:
    """`1-0:1.8.0.255` -> `1-0_1_8_0`; `1-0:1.8.0.101` -> `1-0_1_8_0_101`."""
    return safe_name(obis.removesuffix(".255").replace(":", "_").replace(".", "_"))


def meter_name(reading: Reading) -> str:
    return safe_name(reading.meter_id or reading.link)


def state_of(reading: Reading) -> dict[str, Any]:
    """The flat state object: every single value by OBIS key (lists such as P1 0-0:98.1.0 and values
    without an OBIS code left out; NaN and infinity, which JSON lacks, as null)."""
    state: dict[str, Any] = {obis_key(v.obis): None if non_finite(v.value) else v.value
                             for v in reading.values if v.obis is not None and not isinstance(v.value, tuple)}
    state["captured_at"] = reading.captured_at
    state["received_at"] = reading.received_at
    return state


# --- Home Assistant discovery ------------------------------------------------------------------------

@dataclass(frozen=True)
class HaUnit:
    """How Home Assistant is told about a meter's unit: its spelling, a device class, and the factor
    that turns the meter's value into that unit (applied in the value template)."""

    unit: str | None
    device_class: str | None
    factor: int = 1


_UNITS: dict[str, HaUnit] = {
    "Wh": HaUnit("Wh", "energy"), "kWh": HaUnit("kWh", "energy"), "MWh": HaUnit("MWh", "energy"),
    "J": HaUnit("J", "energy"), "MJ": HaUnit("MJ", "energy"), "GJ": HaUnit("GJ", "energy"),
    "W": HaUnit("W", "power"), "kW": HaUnit("kW", "power"), "MW": HaUnit("MW", "power"),
    "var": HaUnit("var", "reactive_power"), "kvar": HaUnit("kvar", "reactive_power"),
    "VA": HaUnit("VA", "apparent_power"), "kVA": HaUnit("VA", "apparent_power", 1000),
    "varh": HaUnit("varh", "reactive_energy"), "kvarh": HaUnit("kvarh", "reactive_energy"),
    "V": HaUnit("V", "voltage"), "A": HaUnit("A", "current"), "Hz": HaUnit("Hz", "frequency"),
    "°C": HaUnit("°C", "temperature"),
    "m3": HaUnit("m³", None), "m³": HaUnit("m³", None),  # gas or water: the channel's device type decides
}
"""The meter's unit -> Home Assistant's. A device class is given only where Home Assistant 2025.7 to
2025.11 all accept it with that unit (tests/data/ha_sensor_tables.json): `kVA` only became valid for
apparent_power in 2025.10, so it is announced in VA. Apparent energy (VAh) has no device class there;
other units go out as the meter spells them, without one."""

_TOTALS = ("energy", "reactive_energy", "gas", "water")
"""Device classes that Home Assistant accepts only with state class total or total_increasing."""

_MEDIA = {3: "gas", 6: "water", 7: "water", 22: "water"}
"""Device type (DSMR 0-n:24.1.0, M-Bus medium) -> device class of the channel's volume register."""

_POWER_ROWS = {1: ("active", "import"), 2: ("active", "export"), 3: ("reactive", "import"),
               4: ("reactive", "export"), 9: ("apparent", "import"), 10: ("apparent", "export"),
               15: ("active", "absolute"), 16: ("active", "net")}
_QUANTITY = {4: "{} power {} (average)", 6: "{} power {} (maximum demand)", 7: "{} power {}", 8: "{} energy {}"}
_PHASE_ROWS = {21: "active power import", 22: "active power export", 23: "reactive power import",
               24: "reactive power export", 31: "current", 32: "voltage", 33: "power factor"}
_POWER_FACTOR_ROWS = (13, 33, 53, 73)


@dataclass(frozen=True)
class Sensor:
    """One Home Assistant sensor of a meter; its state is the meter's value times `factor`, in `unit`."""

    key: str
    name: str
    unit: str | None
    device_class: str | None
    state_class: str
    factor: int = 1


def sensors(reading: Reading) -> list[Sensor]:
    """The numeric values of a reading that make a sensor: of those with an OBIS code, the ones with a
    unit, and power factors."""
    named = [value for value in reading.values if value.obis is not None]
    media: dict[str, str | None] = {}
    for value in named:
        if value.obis.startswith("0-") and ":24.1.0." in value.obis and isinstance(value.value, int):
            media[value.obis.split(":")[0]] = _MEDIA.get(value.value)
    found = [_sensor(value, media) for value in named]
    return [sensor for sensor in found if sensor is not None]


def sensor_shape(reading: Reading) -> tuple[Any, ...]:
    """What `sensors` reads of a reading: each named value's OBIS code, unit and type, and the
    device types (0-n:24.1.0) that make a volume gas or water. Equal shapes give equal sensors, so
    a meter whose readings keep their shape is not examined again for every reading."""
    return tuple((v.obis, v.unit, v.value if ":24.1.0." in v.obis else type(v.value))
                 for v in reading.values if v.obis is not None)


def _sensor(value: Value, media: dict[str, str | None]) -> Sensor | None:
    if isinstance(value.value, bool) or not isinstance(value.value, (int, float)):
        return None
    try:
        obis = Obis.parse(value.obis)
    except ObisError:
        return None
    ha = _ha_unit(obis, value.unit)
    if ha is None:
        return None
    volume = obis.a == 0 and obis.c == 24 and obis.d == 2
    device_class = media.get(f"{obis.a}-{obis.b}") if volume and ha.unit == "m³" else ha.device_class
    counter = (obis.a == 1 and obis.d == 8) or volume
    return Sensor(obis_key(value.obis), _sensor_name(obis, device_class), ha.unit, device_class,
                  _state_class(obis, device_class, counter), ha.factor)


def _ha_unit(obis: Obis, meter_unit: str | None) -> HaUnit | None:
    """None for a value without a unit that is no power factor."""
    unit = meter_unit or None  # COSEM unit 255 ("no unit") reads as "", P1 writes none
    if obis.a == 1 and obis.c in _POWER_FACTOR_ROWS and obis.d == 7 and unit in (None, "%"):
        return HaUnit(unit, "power_factor")
    if unit is None:
        return None  # counters (power failures 0-0:96.7.21), device types, breaker states: not a measurement
    return _UNITS.get(unit) or HaUnit(unit, None)


def _state_class(obis: Obis, device_class: str | None, counter: bool) -> str:
    if device_class in _TOTALS or (device_class is None and counter):
        return "total_increasing" if counter and obis.c != 16 else "total"  # net energy (16.8.x) can fall
    return "measurement"


def _sensor_name(obis: Obis, device_class: str | None) -> str:
    name = f"OBIS {obis}"
    if obis.a == 1 and obis.c in _POWER_ROWS and obis.d in _QUANTITY:
        name = _QUANTITY[obis.d].format(*_POWER_ROWS[obis.c])
        if obis.d == 8 and obis.e:
            name += f" tariff {obis.e}"
    elif obis.a == 1 and obis.d == 7 and obis.c == 14:
        name = "frequency"
    elif obis.a == 1 and obis.d == 7 and obis.c == 13:
        name = "power factor"
    elif obis.a == 1 and obis.d == 7 and 21 <= obis.c <= 80 and (obis.c - 1) % 20 + 21 in _PHASE_ROWS:
        name = f"{_PHASE_ROWS[(obis.c - 1) % 20 + 21]} L{(obis.c - 1) // 20}"
    elif obis.a == 0 and obis.c == 24 and obis.d == 2:
        name = f"{device_class or 'meter'} volume (channel {obis.b})"
    return name[0].upper() + name[1:]


_FLAG_NAMES = {"ISK": "Iskraemeco", "KAM": "Kamstrup", "KFM": "Kaifa", "LGZ": "Landis+Gyr"}
_EQUIPMENT_ID = re.compile(r"\d([A-Z]{3})")


def manufacturer(meter_id: str | None) -> str:
    """From the FLAG id in a DIN 43863-5 meter number (`1KFM...`), else "unknown"."""
    match = _EQUIPMENT_ID.match(meter_id or "")
    return _FLAG_NAMES.get(match.group(1), match.group(1)) if match else "unknown"


@dataclass(frozen=True)
class Topics:
    """Every topic name, derived from the settings."""

    settings: MqttSettings

    @property
    def availability(self) -> str:
        return f"{self.settings.base_topic}/status"

    @property
    def birth(self) -> str:
        """Where Home Assistant says "online" when it (re)starts (its default birth message)."""
        return f"{self.settings.discovery_prefix}/status"

    def link(self, link: str) -> str:
        return f"{self.settings.base_topic}/{safe_name(link)}/status"

    def meter(self, reading: Reading) -> str:
        return f"{self.settings.base_topic}/{safe_name(reading.link)}/{meter_name(reading)}"

    def sensor_config(self, reading: Reading, sensor: Sensor) -> str:
        return f"{self.settings.discovery_prefix}/sensor/meterlink_{meter_name(reading)}/{sensor.key}/config"

    def link_config(self, link: str) -> str:
        adapter = safe_name(self.settings.client_id)
        return f"{self.settings.discovery_prefix}/binary_sensor/{adapter}/{safe_name(link)}_link/config"


_LINK_UP = "value_json.connected and not value_json.stale"
"""A link is up, judged from its status payload: connected, and telegrams arriving."""


def sensor_config(topics: Topics, reading: Reading, sensor: Sensor, link: LinkStatus | None) -> dict[str, Any]:
    """The discovery payload of one meter sensor."""
    meter = meter_name(reading)
    value = f"value_json['{sensor.key}']"
    if sensor.factor != 1:  # round: 1.234 kVA * 1000 is 1233.9999999999998 in floating point
        value = f"({value} * {sensor.factor}) | round(3)"
    config: dict[str, Any] = {
        "name": sensor.name,
        "unique_id": f"meterlink_{meter}_{sensor.key}",
        "state_topic": f"{topics.meter(reading)}/state",
        "value_template": f"{{{{ {value} }}}}",
        "state_class": sensor.state_class,
        **availability(topics, link),
        "device": {
            "identifiers": [reading.meter_id or meter],
            "name": f"Meter {reading.meter_id or reading.link}",
            "manufacturer": manufacturer(reading.meter_id),
            "model": reading.kind,
            "via_device": topics.settings.client_id,
        },
        "origin": {"name": "meterlink", "sw_version": software_version()},
    }
    if sensor.unit:
        config["unit_of_measurement"] = sensor.unit
    if sensor.device_class:
        config["device_class"] = sensor.device_class
    return config


def availability(topics: Topics, link: LinkStatus | None) -> dict[str, Any]:
    """A meter's sensors are available while the adapter is online and the meter's link is up, so a
    dead link shows as unavailable rather than as its last values. A link the publisher does not know
    is left out: Home Assistant would wait for its status for ever."""
    entries = [{"topic": topics.availability}]
    if link is not None:
        entries.append({"topic": topics.link(link.name),
                        "value_template": f"{{{{ 'online' if {_LINK_UP} else 'offline' }}}}"})
    return {"availability": entries, "availability_mode": "all"}


def link_config(topics: Topics, status: LinkStatus) -> dict[str, Any]:
    """The discovery payload of a link's connectivity; it also makes the adapter a device."""
    client_id = topics.settings.client_id
    return {
        "name": f"Link {status.name}",
        "unique_id": f"{safe_name(client_id)}_{safe_name(status.name)}_link",
        "state_topic": topics.link(status.name),
        "value_template": f"{{{{ 'ON' if {_LINK_UP} else 'OFF' }}}}",
        "device_class": "connectivity",
        "availability_topic": topics.availability,
        "device": {"identifiers": [client_id], "name": client_id, "manufacturer": "meterlink",
                   "model": "adapter", "sw_version": software_version()},
        "origin": {"name": "meterlink", "sw_version": software_version()},
    }


def link_state(status: LinkStatus) -> dict[str, Any]:
    # A machine with parallel regions names a state per region: "stale,quiet".
    return {"kind": status.kind, "state": status.state, "connected": status.connected,
            "stale": "stale" in status.state.split(",")}


# --- the publisher -----------------------------------------------------------------------------------

@dataclass(eq=False)
class _Item:
    """A reading handed to paho; done when all its messages are confirmed."""

    reading: Reading
    pending: int = 0


class _ConnectFailed(Exception):
    """The connection could not be opened; retried after a backoff."""


def mqtt_child(
    settings: MqttSettings, hub: ReadingsHub, links: dict[str, LinkStatus]
) -> tuple[MqttPublisher, ChildSpec]:
    """The publisher and its supervisor child; the publisher (and its queue) outlives restarts."""
    publisher = MqttPublisher(settings, hub, links)
    return publisher, ChildSpec("mqtt", publisher.run)


class MqttPublisher:
    """Publishes the hub's readings to one broker, reconnecting with backoff, for the service's life.

    A broker that is down is an expected condition, not a failure: `run` keeps retrying with backoff
    and only raises for a bug, so a long outage never uses up the supervisor's restart intensity.
    The hub subscription is taken here, not in `run`, so readings wait in it while the supervisor
    restarts `run`.
    """

    def __init__(self, settings: MqttSettings, hub: ReadingsHub, links: dict[str, LinkStatus]) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self._hub = hub
        self._links = links
        self._subscription = hub.subscribe(settings.queue_size)
        self._retry: deque[Reading] = deque()  # handed to a paho client that is gone, not confirmed
        self._sent: deque[_Item] = deque()  # handed to the current client, oldest first
        self._mids: dict[int, _Item] = {}
        self._window_open = trio.Event()
        self._write_wanted = trio.Event()
        self._connack = trio.Event()
        self._connack_reason: str | None = None
        self._announced: dict[MeterKey, set[str]] = {}
        self._shapes: dict[MeterKey, tuple[Any, ...]] = {}
        """The sensor shape of each meter's last announced reading (`sensor_shape`)."""
        self._link_states: dict[str, dict[str, Any]] = {}
        self._rng = random.Random()
        self._connected = False
        self._connects = 0
        self._published = 0
        self._expired = 0
        self._last_error: str | None = None

    def status(self) -> MqttStatus:
        in_flight = sum(1 for item in self._sent if item.pending)
        queued = self._subscription.waiting + len(self._retry)
        return MqttStatus(self._connected, self._connects, self._published, in_flight, queued,
                          self._subscription.dropped, self._expired, self._last_error)

    async def run(self) -> None:
        """Connect, publish and reconnect until cancelled; on cancellation say "offline" and disconnect."""
        client = self._new_client()
        failures = 0
        try:
            while True:
                if self._sent and self._too_old(self._sent[0].reading):
                    client = self._replace_client(client)  # so paho does not resend what has expired
                try:
                    await self._connect(client)
                    await self._serve(client)
                    failures = 0
                except _ConnectFailed as error:
                    self._last_error = str(error)
                    log.warning("mqtt %s:%d: %s", self.settings.host, self.settings.port, error)
                    failures += 1
                if self.settings.qos == 0:
                    self._requeue()  # paho forgets unwritten QoS 0 messages on reconnect
                await trio.sleep(self.settings.backoff().delay(failures, self._rng))
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(GOODBYE_TIMEOUT):
                await self._goodbye(client)
            self._release(client)
            self._requeue()  # this client and its store are gone: the next run sends these again

    # --- one connection ---

    def _new_client(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.settings.client_id,
                             clean_session=False, protocol=paho.MQTTv311)
        if self.settings.username is not None:
            client.username_pw_set(self.settings.username, self.settings.password)
        if self.settings.tls:
            client.tls_set()
        client.connect_timeout = CONNECT_TIMEOUT
        client.max_inflight_messages_set(0)  # our WINDOW bounds what is in flight, paho queues nothing
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        return client

    def _replace_client(self, client: paho.Client) -> paho.Client:
        self._release(client)
        self._requeue()
        return self._new_client()

    async def _connect(self, client: paho.Client) -> None:
        """Open the socket and send CONNECT, in a thread: DNS, TCP and TLS block."""
        old = client.socket()
        if old is not None:  # a connection that never got its CONNACK; paho closes it in reconnect()
            trio.lowlevel.notify_closing(old)
        self._attach(client, False)  # paho must not call into trio from the worker thread
        self._connack = trio.Event()
        self._connack_reason = None
        try:
            rc = await trio.to_thread.run_sync(client.reconnect, abandon_on_cancel=True)
        except OSError as error:  # also socket.gaierror, TimeoutError and ssl.SSLError
            raise _ConnectFailed(f"cannot connect: {error}") from None
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _ConnectFailed(f"cannot send CONNECT: {paho.error_string(rc)}")
        self._attach(client, True)

    async def _serve(self, client: paho.Client) -> None:
        """Run the connection's I/O until it is lost; _ConnectFailed if it never got going."""
        established = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_loop, client, nursery.cancel_scope)
            nursery.start_soon(self._write_loop, client, nursery.cancel_scope)
            nursery.start_soon(self._tick_loop, client, nursery.cancel_scope)
            with trio.move_on_after(CONNECT_TIMEOUT) as connack_wait:
                await self._connack.wait()
            if connack_wait.cancelled_caught:
                self._connack_reason = f"no CONNACK within {CONNECT_TIMEOUT:g} s"
            if client.is_connected():
                established = True
                await self._session(client)
            nursery.cancel_scope.cancel()
        if not established:
            raise _ConnectFailed(self._connack_reason or "the connection closed before CONNACK")
        self._last_error = "connection lost"
        log.warning("mqtt %s:%d: connection lost", self.settings.host, self.settings.port)

    async def _session(self, client: paho.Client) -> None:
        self._connected = True
        self._connects += 1
        log.info("mqtt: connected to %s:%d", self.settings.host, self.settings.port)
        try:
            client.subscribe(self.topics.birth, qos=1)
            self._announce_all(client)
            await self._send_loop(client)
        finally:
            self._connected = False

    def _attach(self, client: paho.Client, attached: bool) -> None:
        client.on_socket_close = self._on_socket_close if attached else None
        client.on_socket_register_write = self._on_register_write if attached else None

    def _release(self, client: paho.Client) -> None:
        """Leave the client to the garbage collector without callbacks into a trio that may be gone."""
        sock = client.socket()
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
        self._attach(client, False)

    async def _read_loop(self, client: paho.Client, scope: trio.CancelScope) -> None:
        while (sock := client.socket()) is not None:
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.ClosedResourceError:
                break
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            # TLS may hold decrypted bytes the descriptor no longer signals
            while (sock := client.socket()) is not None and getattr(sock, "pending", lambda: 0)():
                if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        scope.cancel()

    async def _write_loop(self, client: paho.Client, scope: trio.CancelScope) -> None:
        while (sock := client.socket()) is not None:
            if not client.want_write():
                await self._write_wanted.wait()
                self._write_wanted = trio.Event()
                continue
            try:
                await trio.lowlevel.wait_writable(sock)
            except trio.ClosedResourceError:
                break
            if client.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        scope.cancel()

    async def _tick_loop(self, client: paho.Client, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(TICK)
            if not self._connected:
                continue  # no PINGREQ before the CONNACK; _serve bounds that wait
            if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            self._publish_links(client)
        scope.cancel()

    async def _send_loop(self, client: paho.Client) -> None:
        while True:
            while len(self._sent) >= WINDOW:
                self._window_open = trio.Event()
                await self._window_open.wait()
            reading = self._retry.popleft() if self._retry else await self._subscription.receive()
            if not client.is_connected():  # lost while we waited: the reader is ending this connection
                self._retry.appendleft(reading)
                return
            if self._too_old(reading):
                self._expired += 1
            else:
                self._publish_reading(client, reading)

    # --- what goes out ---

    def _publish_reading(self, client: paho.Client, reading: Reading) -> None:
        if self.settings.discovery:
            self._announce(client, reading)
        base = self.topics.meter(reading)
        item = _Item(reading)
        messages = ((f"{base}/reading", reading.to_json(), False),
                    (f"{base}/state", state_of(reading), self.settings.retain_state))
        for topic, payload, retain in messages:
            # with on_socket_register_write set, paho only queues here: on_publish comes later
            info = client.publish(topic, json.dumps(payload), self.settings.qos, retain)
            self._mids[info.mid] = item
            item.pending += 1
        self._sent.append(item)

    def _announce_all(self, client: paho.Client) -> None:
        """After every (re)connect: availability, link states and discovery again (a broker may forget)."""
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        self._announced.clear()
        self._shapes.clear()
        self._link_states.clear()
        if self.settings.discovery:
            for status in self._links.values():
                client.publish(self.topics.link_config(status.name), json.dumps(link_config(self.topics, status)),
                               qos=1, retain=True)
            for key in self._hub.meters():
                latest = self._hub.latest(key)
                if latest is not None:
                    self._announce(client, latest)
        self._publish_links(client)

    def _announce(self, client: paho.Client, reading: Reading) -> None:
        """Discovery for the sensors of this meter not yet announced on this connection."""
        key = MeterKey(reading.link, reading.meter_id)
        shape = sensor_shape(reading)
        if self._shapes.get(key) == shape:
            return  # the sensors of the meter's last reading: announced already
        if key not in self._announced:
            self._forget_gone_meters()
        announced = self._announced.setdefault(key, set())
        link = self._links.get(reading.link)
        for sensor in sensors(reading):
            if sensor.key not in announced:
                config = sensor_config(self.topics, reading, sensor, link)
                client.publish(self.topics.sensor_config(reading, sensor), json.dumps(config), qos=1, retain=True)
                announced.add(sensor.key)
        self._shapes[key] = shape

    def _forget_gone_meters(self) -> None:
        """Remember announcements only for the hub's meters, or a meter whose id changes with every
        telegram grows this without bound; a meter that comes back is announced again (retained)."""
        kept = set(self._hub.meters())
        self._announced = {key: done for key, done in self._announced.items() if key in kept}
        self._shapes = {key: shape for key, shape in self._shapes.items() if key in kept}

    def _publish_links(self, client: paho.Client) -> None:
        for status in self._links.values():
            state = link_state(status)
            if self._link_states.get(status.name) != state:
                client.publish(self.topics.link(status.name), json.dumps(state), qos=1, retain=True)
                self._link_states[status.name] = state

    async def _goodbye(self, client: paho.Client) -> None:
        """A clean stop: "offline" and DISCONNECT (so the broker does not send the will)."""
        if not client.is_connected():
            return
        client.publish(self.topics.availability, "offline", qos=1, retain=True)
        client.disconnect()
        while (sock := client.socket()) is not None and client.want_write():
            await trio.lowlevel.wait_writable(sock)
            client.loop_write()

    # --- bookkeeping ---

    def _prune(self) -> None:
        while self._sent and not self._sent[0].pending:
            self._sent.popleft()
            self._published += 1
        if len(self._sent) < WINDOW:
            self._window_open.set()

    def _requeue(self) -> None:
        """Unconfirmed readings go back in front of the queue, in order, for the next client."""
        unconfirmed = [item.reading for item in self._sent if item.pending]
        self._published += len(self._sent) - len(unconfirmed)
        self._retry.extendleft(reversed(unconfirmed))
        self._sent.clear()
        self._mids.clear()

    def _too_old(self, reading: Reading) -> bool:
        """Outside the hub's window: seed 001 allows interim storage of at most 60 s."""
        return (reading.received_at or 0.0) < self._hub.clock() - self._hub.window_seconds

    # --- paho callbacks (called from paho calls made by our tasks, in the trio thread) ---

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._connack_reason = f"broker refused the connection: {reason}"
        self._connack.set()

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        item = self._mids.pop(mid, None)
        if item is not None:
            item.pending -= 1
            self._prune()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # A broker without persistence loses the retained configs when it restarts, and Home Assistant
        # then starts with none: its birth message is how it asks for them (MQTT discovery documentation).
        if message.topic == self.topics.birth and message.payload == b"online":
            log.info("mqtt: Home Assistant is online: discovery again")
            self._announce_all(client)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        trio.lowlevel.notify_closing(sock)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._write_wanted.set()
