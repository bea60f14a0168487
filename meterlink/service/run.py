"""The running adapter: one supervisor tree with an actor per link and the HTTP server.

`meterlink run --config FILE` and `meterlink demo` both end up in `run_service`. SIGTERM or
SIGINT cancel the tree (the service is down well within 2 s); a root supervisor that gives up
makes the process exit non-zero so systemd starts it again; system_restart over the API starts
the links afresh in-process.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import trio
from hypercorn.config import Config as HypercornConfig

from ..actors.bsm import BSM_POLL_INTERVAL, BSM_SERIAL, BSM_UNIT, BsmLink, run_bsm
from ..actors.dlms import DLMS_SERIAL, DlmsLink
from ..actors.hdlc_push import HDLC_PUSH_INTERVAL, HDLC_PUSH_SERIAL, HdlcPushLink, run_hdlc_push
from ..actors.link import LinkHooks, LinkStatus
from ..actors.mbus import MBusLink, default_serial, run_mbus
from ..actors.mep import MEP_POLL_INTERVAL, MEP_SERIAL, MepLink, run_mep
from ..actors.wmbus import RECEIVER_SERIAL, WMBusLink, run_wmbus
from ..protocols.wmbus_receivers import Receiver
from ..actors.p1 import DSMR22_SERIAL, P1_SERIAL, P1Link, run_p1
from ..machines.bsm import BsmPlan
from ..machines.detect import DEFAULT_LISTEN_TIME
from ..protocols.dlms.security import CipherKeys, KeysUnavailable
from ..protocols.readings import Reading
from ..supervisor import Backoff, ChildSpec, ChildState, ChildStatus, Intensity, Supervisor
from .image_transfer import run_dlms_with_images
from .adapter import Adapter, ApiPolicy, DeviceInfo
from .config import Config, LedsSection, LinkSection, MqttSection, NetworkSection, SupervisorSection
from .detect import Found, detect, link_fields, notes, summary
from .httpserver import serve
from .hub import ReadingsHub
from .mqtt import MqttSettings, MqttStatus, mqtt_child
from ..machines.dlms import Association, Framing
from ..protocols.dlms.objects import AttributeRef
from .secrets import Credentials, KeyPair, KeyStore, LoginThrottle, MeterKey, SecretsError, meter_slot
from ..machines.leds import Role
from .ledclass import LedClass
from .leds import LedActor, observe
from .network import NetworkController, WindowStore, device_access_point
from .nmcli import find_networkmanager
from .startup import StartupError, bind_http, ensure_token, prepare_state_dir, raise_descriptor_limit
from .update import Unhealthy, Updater, from_config
from .wifi import SimulatedWifi, WifiBackend

log = logging.getLogger("meterlink.service")



@dataclass
class Outputs:
    """What the demo adds: where readings go besides the hub, and meter keys to store at start."""

    extra: list[Callable[[Reading], None]] = field(default_factory=list)
    keys: dict[str, MeterKey] = field(default_factory=dict)
    updates: bool = True
    """Whether the service updates itself (firmware_update, /ota): not the demo's."""


def link_child(section: LinkSection, hooks: LinkHooks, status: LinkStatus, keys: KeyStore) -> ChildSpec:
    """The supervised actor of one configured link."""
    if section.kind == "auto":
        return _auto_child(section, hooks, status, keys)
    if section.kind == "mbus":
        payload = section.payload or "auto"
        link = MBusLink(section.port, section.serial(default_serial(payload)), section.push_interval or 5.0, payload)
        return _keyed_child(section, partial(run_mbus, link), hooks, status, keys)
    if section.kind == "hdlc-push":
        hdlc = HdlcPushLink(section.port, section.serial(HDLC_PUSH_SERIAL), section.push_interval or HDLC_PUSH_INTERVAL)
        return _keyed_child(section, partial(run_hdlc_push, hdlc), hooks, status, keys)
    if section.kind == "dlms":
        return ChildSpec(section.name, partial(run_dlms_with_images, dlms_link(section), hooks, status))
    if section.kind == "bsm":
        return ChildSpec(section.name, partial(run_bsm, bsm_link(section), hooks, status))
    if section.kind == "wmbus":
        return _wmbus_child(section, hooks, status, keys)
    if section.kind == "mep":
        # The MEP Basic Key is in the key store (meter_setkey with the link's name).
        return _keyed_child(section, partial(run_mep, mep_link(section)), hooks, status, keys)
    serial = section.serial(DSMR22_SERIAL if section.legacy else P1_SERIAL)
    p1 = P1Link(section.port, serial, section.push_interval or 1.0, legacy=section.legacy)
    # Keys for encrypted P1 (Luxembourg Smarty, Energienetze Steiermark); plain telegrams need none.
    return _keyed_child(section, lambda keys, keyed, status: run_p1(p1, keyed, status, keys=keys), hooks, status, keys)


def _keyed_child(section: LinkSection, run: Callable[..., Awaitable[None]], hooks: LinkHooks, status: LinkStatus,
                 keys: KeyStore) -> ChildSpec:
    """A link whose telegrams are decrypted with the key store's keys for it; a telegram that decrypts
    with a pending key of a change-over makes that key current."""
    keyed = LinkHooks(hooks.publish, hooks.dropped, partial(_confirm_key, keys, section.name))
    return ChildSpec(section.name, partial(run, partial(cipher_keys, keys, section.name), keyed, status))


def _wmbus_child(section: LinkSection, hooks: LinkHooks, status: LinkStatus, keys: KeyStore) -> ChildSpec:
    """A wireless M-Bus receiver: each meter's telegrams are decrypted with its own key (meter_setkey
    with its meter_id), else with the link's."""
    receiver = Receiver(section.receiver)
    serial = None if receiver is Receiver.RTL_WMBUS else section.serial(RECEIVER_SERIAL[receiver])
    link = WMBusLink(receiver, section.port, section.command, serial, tuple(m.upper() for m in section.meters),
                     section.push_interval or 120.0)

    def meter_keys(meter_id: str) -> list[CipherKeys]:
        return cipher_keys(keys, meter_slot(section.name, meter_id)) or cipher_keys(keys, section.name)

    def confirm(used: CipherKeys) -> None:
        try:
            slots = [slot for slot in keys.links() if slot == section.name or slot.startswith(section.name + "/")]
        except SecretsError as error:
            log.error("%s: %s", section.name, error)
            return
        for slot in slots:
            _confirm_key(keys, slot, used)

    keyed = LinkHooks(hooks.publish, hooks.dropped, confirm)
    return ChildSpec(section.name, partial(run_wmbus, link, meter_keys, keyed, status))


class NoMeterFound(Exception):
    """Detection found no meter on an auto link; the supervisor tries again after its backoff."""


def _auto_child(section: LinkSection, hooks: LinkHooks, status: LinkStatus, keys: KeyStore) -> ChildSpec:
    """Detect the meter at the first start, then run the link found; a restart runs that link
    again, and detects afresh only while nothing was found."""
    found: LinkSection | None = None

    async def run() -> None:
        nonlocal found
        if found is None:
            found = await detected_link(section, status, keys)
        await link_child(found, hooks, status, keys).start()

    return ChildSpec(section.name, run)


async def detected_link(section: LinkSection, status: LinkStatus, keys: KeyStore,
                        wallclock: Callable[[], float] = time.time) -> LinkSection:
    """The `[[link]]` that reads the meter detection finds on an auto link's port; the link's
    status shows the detector's state, and then the kind found."""
    try:
        candidates = cipher_keys(keys, section.name)
    except KeysUnavailable:
        candidates = []  # the key check only: the link found reports the store's problem on each telegram
    result = await detect(section.port, candidates, section.listen_time or DEFAULT_LISTEN_TIME, status,
                          wallclock=wallclock)
    if not isinstance(result, Found):
        raise NoMeterFound(f"{section.name}: {summary(result)}; " + " ".join(notes(result)))
    status.kind = result.detection.framing.kind
    status.detected = summary(result)
    log.warning("%s: %s", section.name, status.detected)
    fields = link_fields(result, section.name) | {"max_meters": section.max_meters}
    if section.push_interval is not None:
        fields["push_interval"] = section.push_interval
    return LinkSection.model_validate(fields)


def readings_hub(sections: list[LinkSection], links: dict[str, LinkStatus]) -> ReadingsHub:
    """The hub, keeping each link within its `max_meters` and telling the link's status what it forgot."""
    return ReadingsHub(max_meters={section.name: section.max_meters for section in sections},
                       forgotten=lambda key: links[key.link].note_forgotten(key.meter_id))


DLMS_POLL_INTERVAL = 10.0


def dlms_link(section: LinkSection) -> DlmsLink:
    password = section.password.get_secret_value().encode("utf-8") if section.password is not None else None
    association = Association(password, section.client_sap, section.server_logical, section.server_physical,
                              Framing(section.framing))
    reads = tuple(AttributeRef.parse(text) for text in section.objects)
    return DlmsLink(section.port, association, reads, section.poll_interval or DLMS_POLL_INTERVAL,
                    section.serial(DLMS_SERIAL), section.inactivity_timeout)


def bsm_link(section: LinkSection) -> BsmLink:
    """A BSM-WS36A read as a service link: its AC meter model every poll interval, for ever."""
    plan = BsmPlan(unit=section.unit or BSM_UNIT, poll_interval=section.poll_interval or BSM_POLL_INTERVAL)
    return BsmLink(section.port, plan, section.serial(BSM_SERIAL))


def mep_link(section: LinkSection) -> MepLink:
    """An OSGP meter's MEP port read as a service link: every poll interval, for ever; a silent meter
    (an optical session) is asked again rather than given up."""
    return MepLink(section.port, section.poll_interval or MEP_POLL_INTERVAL, section.energy_unit or 1,
                   serial=section.serial(MEP_SERIAL))


def cipher_keys(keys: KeyStore, link: str) -> list[CipherKeys]:
    """The key store's candidates for a link (pending key first), as the decoder takes them.

    A store that cannot be read drops the encrypted telegrams with the reason, instead of failing
    the link into a restart loop that cannot mend the file.
    """
    try:
        return [_cipher(pair) for pair in keys.candidates(link)]
    except SecretsError as error:
        raise KeysUnavailable(str(error)) from None


def _cipher(pair: KeyPair) -> CipherKeys:
    auth = pair.authentication.secret if pair.authentication is not None else None
    return CipherKeys(pair.encryption.secret, auth)


def _confirm_key(keys: KeyStore, link: str, used: CipherKeys) -> None:
    try:
        for pair in keys.candidates(link):
            if _cipher(pair) == used:
                keys.confirm(link, pair)
                return
    except SecretsError as error:
        # The telegram is read all the same; the change-over is confirmed by a later one.
        log.error("%s: %s", link, error)


def mqtt_settings(section: MqttSection) -> MqttSettings | None:
    if section.host is None:
        return None
    fields = section.model_dump(exclude_none=True)
    return MqttSettings(**fields)


class RestartableSupervisor(Supervisor):
    """The links' supervisor: system_restart starts every link afresh while the API keeps serving
    the request that asked for it (and every other client)."""

    _scope: trio.CancelScope | None = None

    async def run(self) -> None:
        while True:
            with trio.CancelScope() as self._scope:
                await super().run()
                return
            log.warning("system_restart: starting the links afresh")

    def restart(self) -> None:
        if self._scope is not None:
            self._scope.cancel()


def supervisor(
    children: list[ChildSpec], name: str, settings: SupervisorSection, kind: type[Supervisor] = Supervisor
) -> Supervisor:
    return kind(
        children,
        name=name,
        intensity=Intensity(settings.max_restarts, settings.period),
        backoff=Backoff(initial=settings.backoff_initial, maximum=settings.backoff_max),
    )


def supervisor_of_links(children: list[ChildSpec], settings: SupervisorSection,
                        rng: random.Random | None = None) -> RestartableSupervisor:
    """The links' supervisor: `max_restarts` within `period` per link.

    Each link's restarts are spaced by its own backoff, so one link alone stays within the limit. A
    limit shared by all made links that fail together (two meters behind one converter that went
    away) exceed it, and the supervisor then restarted every link, the healthy ones with them
    (found by the soak, tests/soak).
    """
    return RestartableSupervisor(
        children,
        name="links",
        intensity=Intensity(settings.max_restarts * max(len(children), 1), settings.period),
        backoff=Backoff(initial=settings.backoff_initial, maximum=settings.backoff_max),
        rng=rng,
    )


def build_adapter(config: Config, hub: ReadingsHub, links: dict[str, LinkStatus], root: Supervisor, keys: KeyStore,
                  credentials: Credentials) -> Adapter:
    policy = ApiPolicy(
        open_reads=tuple(ipaddress.ip_network(n, strict=False) for n in config.http.open_reads),
        fetch_hosts=tuple(config.http.fetch_hosts),
    )
    return Adapter(
        hub=hub,
        links=links,
        supervisor_status=root.status,
        keys=keys,
        credentials=credentials,
        throttle=LoginThrottle(),
        policy=policy,
        dlms_links={s.name: (s.port, dlms_link(s).association) for s in config.link if s.kind == "dlms"},
    )


async def choose_backend(section: NetworkSection) -> WifiBackend | None:
    """NetworkManager only when nmcli answers and has a Wi-Fi device; the log says which and why."""
    if section.backend == "none":
        return None
    if section.backend != "simulated":
        found, why = await find_networkmanager(section.interface, section.ap_interface)
        if found is not None:
            log.warning("network: backend NetworkManager (%s)", why)
            return found
        if section.backend == "networkmanager":
            raise StartupError(f"network.backend = \"networkmanager\": {why}")
        log.warning("network: simulated backend (%s)", why)
        return SimulatedWifi()
    log.warning("network: simulated backend (network.backend = \"simulated\")")
    return SimulatedWifi()


async def network_controller(section: NetworkSection, state: Path, mac: str) -> tuple[NetworkController | None, str | None]:
    """The adapter's network, and the line that shows its access point password once, when its secret is made."""
    backend = await choose_backend(section)
    if backend is None:
        return None, None
    try:
        access_point, new = device_access_point(state, await backend.hardware_address() or mac, section.ap_password)
    except (OSError, ValueError) as error:
        raise StartupError(f"adapter.state_dir: {error}") from None
    line = None
    # A simulated Wi-Fi has no access point to join; `meterlink device-info` shows the password anyway.
    if new and section.ap_password == "device" and backend.name != "simulated":
        line = (f"access point {access_point.ssid}, password (shown once; `meterlink device-info` shows it again): "
                f"{access_point.password}")
    return NetworkController(backend, access_point, WindowStore(state / "network.json")), line


def led_child(section: LedsSection, links: dict[str, LinkStatus], links_supervisor: Supervisor,
              network: NetworkController | None) -> ChildSpec | None:
    """The LED actor, when `[leds]` names at least one LED."""
    names = {role: name for role in Role if (name := getattr(section, role.value)) is not None}
    if not names:
        return None
    actor = LedActor(names, LedClass(section.sysfs), lambda: observe(links, links_supervisor.status(), network))
    return ChildSpec("leds", actor.run)


HEALTHY_CHECKS = 3
"""A new release is confirmed once it answered this many health checks in a row (service/update.py)."""


@dataclass
class Health:
    """A new release's health: no child given up on (raises Unhealthy), and the API answering over
    HTTP HEALTHY_CHECKS times in a row. A link waiting for its meter counts as started: a meter
    unplugged during an update must not roll a good release back."""

    root: Supervisor
    listen: str
    streak: int = 0

    async def __call__(self) -> bool:
        failed = [child.id for child in _children(self.root.status()) if child.state is ChildState.FAILED]
        if failed:
            raise Unhealthy(f"{', '.join(failed)} failed")
        host, _, port = self.listen.rpartition(":")
        host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)  # a wildcard is reached on loopback
        try:
            async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
                answering = (await client.get(f"http://{host}:{port}/openapi.json")).status_code == 200
        except httpx.HTTPError:
            answering = False
        self.streak = self.streak + 1 if answering else 0
        return self.streak >= HEALTHY_CHECKS


def _children(statuses: tuple[ChildStatus, ...]) -> list[ChildStatus]:
    return [found for status in statuses for found in (status, *_children(status.children))]


async def serve_http(adapter: Adapter, listener: socket.socket) -> None:
    """Serve the API and the web page on the socket taken at start."""
    from .api import create_app
    from .web.web import mount_web

    app = create_app(adapter)
    mount_web(app)
    config = HypercornConfig()
    config.accesslog = None
    config.loglevel = "WARNING"  # our own lines say where we serve
    await serve(app, config, listener)  # type: ignore[arg-type]


async def run_service(
    config: Config,
    announce: Callable[[str], None],
    outputs: Outputs = Outputs(),
    token: str | None = None,
) -> None:
    """Run until SIGTERM/SIGINT; raises IntensityExceeded when the root supervisor gives up, and
    StartupError, before anything runs, for what no restart can mend."""
    links = {section.name: LinkStatus(section.name, section.kind) for section in config.link}
    hub = readings_hub(config.link, links)
    announced = False

    def publish(reading: Reading) -> None:
        hub.publish(reading)
        if announced:  # the URL and token come first on the console
            for output in outputs.extra:
                output(reading)

    state = prepare_state_dir(config.adapter.state_dir)
    short = raise_descriptor_limit(len(config.link))
    if short is not None:
        log.error("%s", short)
    with bind_http(config.http.listen) as listener:
        keys = KeyStore(state / "keys.bin", state / "device.key")
        for name, key in outputs.keys.items():
            keys.set_key(name, key)
        problem = keys.problem()
        if problem is not None:
            log.error("%s", problem)
        credentials = Credentials(state / "token.hash")
        new_token = ensure_token(credentials, token or config.adapter.token)
        link_children = [link_child(section, LinkHooks(publish), links[section.name], keys) for section in config.link]
        links_supervisor = supervisor_of_links(link_children, config.supervisor)
        children = [links_supervisor.as_child(), ChildSpec("http", lambda: serve_http(adapter, listener))]
        mqtt = mqtt_settings(config.mqtt)
        output_status: dict[str, Callable[[], MqttStatus]] = {}
        if mqtt is not None:
            publisher, child = mqtt_child(mqtt, hub, links)
            children.append(child)
            output_status["mqtt"] = publisher.status
        network, access_point_line = await network_controller(config.network, state, DeviceInfo().mac)
        if network is not None:
            children.append(ChildSpec("network", network.run))
        leds = led_child(config.leds, links, links_supervisor, network)
        if leds is not None:
            children.append(leds)
        updater = Updater(*from_config(state, config.update))
        if outputs.updates:
            children.append(ChildSpec("update", updater.run))
        root = supervisor(children, "meterlink", config.supervisor)
        updater.health = Health(root, config.http.listen)
        adapter = build_adapter(config, hub, links, root, keys, credentials)
        adapter.request_restart = links_supervisor.restart
        adapter.outputs = output_status
        adapter.network = network
        adapter.announce = announce
        adapter.configured_token = token or config.adapter.token
        adapter.updater = updater if outputs.updates else None
        async with trio.open_nursery() as nursery:
            await nursery.start(_cancel_on_signals, nursery.cancel_scope)  # before the user may send one
            _announce(announce, config.http.listen, list(links), new_token, token)
            if access_point_line is not None:
                announce(access_point_line)
            announced = True
            await root.run()
            nursery.cancel_scope.cancel()


def _announce(announce: Callable[[str], None], listen: str, links: list[str], new_token: str | None,
              token: str | None) -> None:
    """The first lines a user sees: the port is taken, so the URL answers as soon as the server runs."""
    announce(f"meterlink: serving http://{listen}/ (links: {', '.join(links) or 'none'})")
    if new_token is not None:
        announce(f"API token (shown once, stored only as a hash): {new_token}")
    elif token is not None:
        announce(f"API token: {token}")
    # Everything imported and built so far lives as long as the service: keep it out of the
    # collector's full passes, which otherwise stall a telegram for ~60 ms now and then.
    gc.collect()
    gc.freeze()


async def _cancel_on_signals(scope: trio.CancelScope, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            log.warning("%s: shutting down", signal.Signals(signum).name)
            scope.cancel()
            return
