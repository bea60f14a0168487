"""The accelerated soak: the service's links, supervisors and hub with every simulated meter, for
simulated hours on trio's MockClock, with the faults of a seeded schedule; `Report` is what it saw.

What runs is the service's own composition (`service.run.link_child` for each `[[link]]`, the
links' `RestartableSupervisor` under a root supervisor, the hub, the key store, the SSE event
generator of the API); only the ports are in-memory lines (`lines.py`) and the wall clock that
stamps readings follows trio's clock. HTTP (hypercorn) and MQTT (paho against Mosquitto) run on
real sockets and the wall clock, so they are not in this run (README.md says where they are tested).
"""

from __future__ import annotations

import gc
import math
import random
import resource
import time
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import meterlink.actors.bsm
import meterlink.actors.dlms
import meterlink.actors.hdlc_push
import meterlink.actors.link
import meterlink.actors.mbus
import meterlink.actors.p1
import meterlink.actors.wmbus
import meterlink.service.image_transfer
from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.protocols.readings import Reading
from meterlink.service.api import reading_events
from meterlink.service.config import Config, parse_config
from meterlink.service.image_transfer import Transfer, start_image
from meterlink.service.run import dlms_link, link_child, readings_hub, supervisor_of_links
from meterlink.machines.image_transfer import Image
from meterlink.service.secrets import KeyStore, MeterKey
from meterlink.simulators.bsm import BsmMeter, run_bsm_meter
from meterlink.simulators.hdlc_push import HdlcPushMeterModel
from meterlink.simulators.kaifa import DEMO_KEY, KaifaMeterModel
from meterlink.simulators.kamstrup import OMNIPOWER_MAX_RECEIVE_PDU, KamstrupMeterModel, run_kamstrup_meter
from meterlink.protocols.wmbus_receivers import Receiver
from meterlink.simulators.p1 import BRUSSELS, P1MeterModel
from meterlink.simulators.wmbus import NES_DEMO_KEY, NES_ID, REPEATS, NesMeterModel, answer, on_air
from meterlink.simulators.kaifa import VIENNA
from meterlink.supervisor import Backoff, ChildState, Intensity, Supervisor
from meterlink.supervisor.supervisor import IntensityExceeded

from .faults import DLMS_FAULTS, KEY_FAULTS, LINE_FAULTS, Fault, Schedule
from .lines import LINK_DOWN, SETTLE, Line, answer_set_up, push_meter, serve_polled

EPOCH = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
"""Simulated time 0 (no summer-time change within the next days in Brussels or Vienna)."""
WINDOW = 60.0
"""The hub's window: nothing older is served (seed 001)."""


@dataclass(frozen=True)
class Params:
    hours: float = 24.0
    seed: int = 1
    faults_per_hour: float = 1.0
    """Fault windows per link and simulated hour (each followed by QUIET_AFTER without one)."""
    p1_interval: float = 1.0
    mbus_interval: float = 5.0
    hdlc_interval: float = 10.0
    dlms_interval: float = 10.0
    bsm_interval: float = 5.0
    wmbus_interval: float = 120.0
    """The link's default; the NES meter's clock has minutes only, so one telegram a minute at most
    can be told apart by its time."""


PUSH = ("p1", "kaifa", "hdlc", "wmbus")
POLLED = ("kamstrup", "bsm")
KEYED = ("kaifa", "hdlc", "wmbus")
UNCHECKED = ("wmbus",)
"""Links whose telegrams reach the decryption unchecked (no CRC between receiver and adapter)."""


def config(params: Params) -> Config:
    return parse_config({"link": [
        {"name": "p1", "kind": "p1", "port": "/soak/p1", "push_interval": params.p1_interval},
        {"name": "kaifa", "kind": "mbus", "port": "/soak/kaifa", "push_interval": params.mbus_interval},
        {"name": "hdlc", "kind": "hdlc-push", "port": "/soak/hdlc", "push_interval": params.hdlc_interval},
        {"name": "kamstrup", "kind": "dlms", "port": "/soak/kamstrup", "password": "12345",
         "poll_interval": params.dlms_interval,
         "objects": ["1:1.1.0.0.1.255:2", "8:0.1.1.0.0.255:2", "3:1.1.1.8.0.255:2", "3:1.1.1.7.0.255:2"]},
        {"name": "bsm", "kind": "bsm", "port": "/soak/bsm", "poll_interval": params.bsm_interval},
        {"name": "wmbus", "kind": "wmbus", "receiver": "im871a", "port": "/soak/wmbus",
         "push_interval": params.wmbus_interval},
    ]})


@dataclass
class LinkReport:
    name: str
    kind: str
    sent: int = 0
    """Push: telegrams the simulator sent (a rebooting meter sends none); polled: answers."""
    received: int = 0
    """Push: telegrams the line delivered to the link (not lost in a hang, a hang-up or while no link
    was open); polled: the link's readings."""
    published: int = 0
    sent_by_cause: Counter[str] = field(default_factory=Counter)
    published_by_cause: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    opens: int = 0
    refused_opens: int = 0
    last_drop: str | None = None
    max_latency: float = 0.0
    """Simulated seconds from a clean telegram's sending to its publishing."""
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    params: Params
    links: dict[str, LinkReport]
    faults: dict[str, dict[str, int]]
    rss_start_kib: int
    rss_end_kib: int
    peak_rss_kib: int
    wall_seconds: float
    simulated_hours: float
    hub_readings_held: int
    sse_received: int
    sse_stalled_waiting: int
    sse_stalled_dropped: int
    published_total: int
    problems: list[str]
    transfers: list[dict[str, object]] = field(default_factory=list)
    image_cuts: int = 0
    links_supervisor_restarts: int = 0
    """Times the root restarted the links' supervisor (which restarts every link): it gave up."""

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_start_kib

    def table(self) -> str:
        rows = [f"soak: {self.simulated_hours:g} simulated hours in {self.wall_seconds:.1f} s wall, seed {self.params.seed}, "
                f"{self.params.faults_per_hour:g} fault windows per link and hour",
                f"memory: RSS {self.rss_start_kib / 1024:.1f} MiB at start, {self.rss_end_kib / 1024:.1f} MiB at end "
                f"(peak {self.peak_rss_kib / 1024:.1f} MiB); hub holds {self.hub_readings_held} readings",
                f"SSE: a live client got {self.sse_received} of {self.published_total} readings; a stalled one holds "
                f"{self.sse_stalled_waiting} and dropped {self.sse_stalled_dropped}",
                f"links supervisor restarted by the root: {self.links_supervisor_restarts}",
                f"image transfers: {len(self.transfers)}, cut half-way: {self.image_cuts}, verdicts: "
                f"{[(t['result'], t['blocks'], t['blocks_resent']) for t in self.transfers]}"]
        for report in self.links.values():
            rows.append(f"{report.name} ({report.kind}): sent {report.sent}, received {report.received}, "
                        f"published {report.published}, restarts {report.restarts}, opens {report.opens} "
                        f"(refused {report.refused_opens}), max latency {report.max_latency:.3f} s")
            rows.append(f"  faults: {self.faults.get(report.name, {})}")
            rows.append(f"  sent by cause: {dict(report.sent_by_cause)}; published of those: {dict(report.published_by_cause)}")
            rows.append(f"  link's drops: {dict(report.drops)}; last: {report.last_drop}")
            rows.extend(f"  PROBLEM {problem}" for problem in report.problems)
        rows.extend(f"PROBLEM {problem}" for problem in self.problems)
        return "\n".join(rows)


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() // 1024


class Service:
    """The service's links, as `run_service` composes them, on the soak's lines."""

    def __init__(self, cfg: Config, state: Path, rng: random.Random, wallclock: Callable[[], float]) -> None:
        self.links = {s.name: LinkStatus(s.name, s.kind) for s in cfg.link}
        self.hub = readings_hub(cfg.link, self.links)
        self.hub.clock = wallclock
        self.keys = KeyStore(state / "keys.bin", state / "device.key")
        self.config = cfg
        self.raise_next: set[str] = set()
        self.transfers: list[Transfer] = []
        self.image_cuts = 0
        self.published = 0
        self.watch: dict[str, Callable[[str | None, float], None]] = {}
        """Per link, told of each reading published (its tag and trio time)."""
        children = [link_child(s, LinkHooks(partial(self.publish, s.name)), self.links[s.name], self.keys)
                    for s in cfg.link]
        settings = cfg.supervisor
        # As run_service composes them, with seeded generators for the backoff's jitter.
        self.links_supervisor = supervisor_of_links(children, settings, random.Random(rng.random()))
        self.root = Supervisor([self.links_supervisor.as_child()], name="meterlink",
                               intensity=Intensity(settings.max_restarts, settings.period),
                               backoff=Backoff(initial=settings.backoff_initial, maximum=settings.backoff_max),
                               rng=random.Random(rng.random()), wallclock=wallclock)

    def publish(self, link: str, reading: Reading) -> None:
        self.hub.publish(reading)
        self.published += 1
        self.watch[link](reading.captured_at, trio.current_time())
        if link in self.raise_next:
            self.raise_next.discard(link)
            raise RuntimeError(f"{link}: soak: the actor raises after a publish")


def meter_clock(zone) -> Callable[[], datetime]:
    """A meter's local clock (naive, as the meters keep it), on trio's clock."""
    return lambda: (EPOCH + timedelta(seconds=trio.current_time())).astimezone(zone).replace(tzinfo=None)


def utc_clock() -> datetime:
    """The P1 simulator's clock: aware, in UTC (it writes Belgian local time itself)."""
    return EPOCH + timedelta(seconds=trio.current_time())


def local_tag(zone) -> Callable[[datetime], str]:
    """A telegram's tag: its timestamp as the link publishes it (`captured_at`, local time, no offset)."""
    return lambda now: (now.astimezone(zone) if now.tzinfo else now).replace(tzinfo=None).isoformat()


IMAGE_SIZE = 16_384


async def drive_faults(schedule: Schedule, line: Line, service: Service, keyed: dict[str, object] | None,
                       rng: random.Random) -> None:
    """What happens at a window's start and end beyond the line: hang-ups, keys, a raising actor,
    an image transfer."""
    for window in schedule.windows[line.name]:
        await trio.sleep_until(window.start)
        if window.fault is Fault.IMAGE_CUT:
            await cut_image_transfer(line, service, rng, window.end)
        elif window.fault is Fault.HANGUP:
            await line.hang_up()
        elif window.fault is Fault.ACTOR_RAISES:
            service.raise_next.add(line.name)
        elif window.fault in KEY_FAULTS and keyed is not None:
            new = rng.randbytes(16)
            if window.fault is Fault.KEY_CHANGE:
                service.keys.set_key(line.name, MeterKey(new))  # entered first: pending
                await trio.sleep_until(window.end)
                keyed["model"].key = new  # the operator switches the meter
            else:
                keyed["model"].key = new  # the operator switched the meter unannounced
                await trio.sleep_until(window.end)
                service.keys.set_key(line.name, MeterKey(new))


async def cut_image_transfer(line: Line, service: Service, rng: random.Random, end: float) -> None:
    """Ask the DLMS link for an image transfer as the API's start_image does, cut its line once about
    half of the blocks are confirmed, and note how the transfer ended."""
    section = next(s for s in service.config.link if s.name == line.name)
    number = len(service.transfers) + 1
    image = Image(f"SOAK-{number}".encode(), rng.randbytes(IMAGE_SIZE))
    transfer = start_image(service.links[line.name], section.port, dlms_link(section).association, image)
    service.transfers.append(transfer)
    cut = False
    while transfer.finished is None and trio.current_time() < end:
        progress = transfer.machine.progress()
        if not cut and progress.blocks and progress.confirmed >= progress.blocks // 2:
            await line.hang_up()
            cut = True
        await trio.sleep(0.05 if not cut else 1.0)
    service.image_cuts += cut


def minute_tag(now: datetime) -> str:
    """The NES meter's clock (EN 13757-3 type F) has no seconds."""
    return now.replace(second=0).isoformat()


def key_fault(schedule: Schedule, name: str) -> Callable[[], Fault | None]:
    def fault() -> Fault | None:
        window = schedule.active(name, trio.current_time())
        return Fault.WRONG_KEY if window is not None and window.fault is Fault.WRONG_KEY else None
    return fault


async def soak(params: Params, state: Path, progress: Callable[[str], None] = lambda line: None) -> Report:
    """Run the soak; the caller gives trio a MockClock."""
    started = time.monotonic()
    rng = random.Random(params.seed)
    seconds = params.hours * 3600
    kinds = {name: LINE_FAULTS + (KEY_FAULTS if name in KEYED else ()) for name in PUSH}
    kinds |= {name: LINE_FAULTS + (DLMS_FAULTS if name == "kamstrup" else ()) for name in POLLED}
    schedule = Schedule.draw(rng, kinds, seconds, params.faults_per_hour)
    wallclock = lambda: EPOCH.timestamp() + trio.current_time()  # noqa: E731
    cfg = config(params)
    service = Service(cfg, state, rng, wallclock)
    for name in KEYED:
        service.keys.set_key(name, MeterKey(NES_DEMO_KEY if name == "wmbus" else DEMO_KEY))
    lines = {s.name: Line(s.name, schedule, random.Random(rng.random())) for s in cfg.link}
    models = {"p1": P1MeterModel(), "kaifa": KaifaMeterModel(), "hdlc": HdlcPushMeterModel(key=DEMO_KEY),
              "wmbus": NesMeterModel()}
    telegrams: dict[str, Callable[[datetime], bytes]] = {
        "p1": models["p1"].telegram,
        "kaifa": lambda now: b"".join(models["kaifa"].frames(now)),
        "hdlc": lambda now: b"".join(models["hdlc"].frames(now)),
        # Radio meters send each telegram twice; the receiver hands over both (simulators/wmbus.py).
        "wmbus": lambda now: on_air(Receiver.IM871A, models["wmbus"].frame(now), NES_ID) * REPEATS,
    }
    zones = {"p1": BRUSSELS, "kaifa": VIENNA, "hdlc": VIENNA, "wmbus": VIENNA}
    intervals = {"p1": params.p1_interval, "kaifa": params.mbus_interval, "hdlc": params.hdlc_interval,
                 "wmbus": params.wmbus_interval}
    # An OMNIPOWER, as the demo's: it takes image blocks (kamstrup.py).
    kamstrup = KamstrupMeterModel(wallclock=meter_clock(VIENNA), max_receive_pdu=OMNIPOWER_MAX_RECEIVE_PDU)
    bsm = BsmMeter(wallclock=wallclock, charging=True)

    for name in PUSH:
        service.watch[name] = lines[name].ledger.note_published
    for name, poll in (("kamstrup", params.dlms_interval), ("bsm", params.bsm_interval)):
        service.watch[name] = PollWatch([(w.start - poll, w.end + RECOVERY) for w in schedule.windows[name]], poll)

    async def soak_open(port: str, settings: object = None):
        return await lines[port.removeprefix("/soak/")].open()

    sse_live = sse_stalled = stalled_dropped = 0
    end_state: list[str] = []
    gave_up: list[str] = []
    rss_start = 0
    with pytest.MonkeyPatch.context() as patch:
        for module in (meterlink.actors.p1, meterlink.actors.mbus, meterlink.actors.hdlc_push, meterlink.actors.dlms,
                       meterlink.actors.bsm, meterlink.actors.wmbus, meterlink.service.image_transfer):
            patch.setattr(module, "open_link", soak_open)
        patch.setattr(meterlink.actors.link, "time", types.SimpleNamespace(time=wallclock))
        async with trio.open_nursery() as nursery:
            for name in PUSH:
                clock = utc_clock if name == "p1" else meter_clock(zones[name])
                tag = minute_tag if name == "wmbus" else local_tag(zones[name])
                nursery.start_soon(push_meter, lines[name], intervals[name], telegrams[name], clock, tag,
                                   key_fault(schedule, name))
                nursery.start_soon(drive_faults, schedule, lines[name], service,
                                   {"model": models[name]} if name in KEYED else None, random.Random(rng.random()))
            nursery.start_soon(answer_set_up, lines["wmbus"], partial(answer, Receiver.IM871A))
            nursery.start_soon(serve_polled, lines["kamstrup"], partial(run_kamstrup_meter, model=kamstrup))
            nursery.start_soon(serve_polled, lines["bsm"], partial(run_bsm_meter, meter=bsm))
            for name in POLLED:
                nursery.start_soon(drive_faults, schedule, lines[name], service, None, random.Random(rng.random()))

            events = reading_events(types.SimpleNamespace(hub=service.hub))  # an SSE client that stops reading
            await events.__anext__()

            async def live_client() -> None:
                nonlocal sse_live
                async for event in reading_events(types.SimpleNamespace(hub=service.hub)):
                    sse_live += event.startswith("data: ")

            nursery.start_soon(live_client)

            async def run_root() -> None:
                try:
                    await service.root.run()
                except IntensityExceeded as error:
                    gave_up.append(str(error))
                    nursery.cancel_scope.cancel()

            nursery.start_soon(run_root)

            async def settle() -> None:
                while True:
                    await trio.sleep(60)
                    for name in PUSH:
                        lines[name].ledger.settle(trio.current_time() - SETTLE)

            nursery.start_soon(settle)
            await trio.sleep_until(min(600.0, seconds / 2))  # past the start: links up, imports done
            gc.collect()
            rss_start = rss_kib()
            for hour in range(1, int(params.hours) + 1):
                await trio.sleep_until(hour * 3600.0)
                progress(f"{hour} h simulated, {time.monotonic() - started:.0f} s wall, "
                         f"{service.published} readings, RSS {rss_kib() / 1024:.1f} MiB")
            await trio.sleep_until(seconds)
            await trio.testing.wait_all_tasks_blocked()  # what was published by now has reached the clients
            end_state = final_checks(service, cfg)
            stalled = max(service.hub._subscribers, key=lambda s: s.waiting)  # the stalled client's queue
            sse_stalled, stalled_dropped = stalled.waiting, stalled.dropped
            nursery.cancel_scope.cancel()
        await events.aclose()
    gc.collect()
    rss_end = rss_kib()
    problems = end_state + [f"the service gave up: {error}" for error in gave_up]
    verdicts = [transfer.verdict() for transfer in service.transfers]
    problems += [f"image transfer {n + 1} ended {verdict}" for n, verdict in enumerate(verdicts) if verdict["result"] != "active"]
    reports = {name: account(name, service, lines[name]) for name in lines}
    statuses = {child.id: child for child in service.links_supervisor.status()}
    for name, report in reports.items():
        report.restarts = statuses[name].restarts
    held = sum(len(service.hub.window(key)) for key in service.hub.meters())
    return Report(params, reports, schedule.count(), rss_start, rss_end,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic() - started, params.hours,
                  held, sse_live, sse_stalled, stalled_dropped, service.published, problems, verdicts, service.image_cuts,
                  service.root.status()[0].restarts)


def final_checks(service: Service, cfg: Config) -> list[str]:
    """At the end: every link running and read within the window, nothing older served."""
    problems = []
    now = service.hub.clock()
    served = {key.link: key for key in service.hub.meters()}
    for child in service.links_supervisor.status():
        if child.state is not ChildState.RUNNING:
            problems.append(f"link {child.id} is {child.state.value} at the end ({child.last_error})")
    for section in cfg.link:
        status = service.links[section.name]
        if section.name not in served:
            problems.append(f"link {section.name}: no reading in the hub's window at the end")
        if "stale" in status.state:
            problems.append(f"link {section.name} is stale at the end ({status.state})")
    for key in service.hub.meters():
        oldest = min(reading.received_at or 0.0 for reading in service.hub.window(key))
        if now - oldest > WINDOW:
            problems.append(f"{key.link}/{key.meter_id}: a reading {now - oldest:.1f} s old is served")
    return problems


RECOVERY = 120.0
"""Simulated seconds after a fault window within which a polled link need not have read yet."""


@dataclass
class PollWatch:
    """A polled link: a reading every poll interval while no fault is near, never two at once."""

    near: list[tuple[float, float]]
    interval: float
    last: float | None = None
    published: int = 0
    problems: list[str] = field(default_factory=list)

    def __call__(self, tag: str | None, at: float) -> None:
        self.published += 1
        before, self.last = self.last, at
        if before is None or at - before == 0.0 or any(start < at and before < end for start, end in self.near):
            return  # one poll's readings come together; a restarted link reads at once; a fault's gap is the fault's
        if at - before < self.interval / 2 and len(self.problems) < 20:
            self.problems.append(f"two polls {at - before:.2f} s apart at {before:.1f} s, no fault near")
        if at - before > 1.5 * self.interval and len(self.problems) < 20:
            self.problems.append(f"no reading from {before:.1f} s to {at:.1f} s, no fault near")


def account(name: str, service: Service, line: Line) -> LinkReport:
    status = service.links[name]
    report = LinkReport(name, status.kind, drops=+status.drops, opens=line.opens, refused_opens=line.refused,
                        last_drop=status.last_drop)
    watch = service.watch[name]
    if isinstance(watch, PollWatch):
        report.sent = sum(line.answers.values())
        report.sent_by_cause = Counter(line.answers)
        report.received = report.published = watch.published
        report.problems = watch.problems
        return report
    ledger = line.ledger
    ledger.settle(math.inf)
    report.sent = sum(ledger.sent_by_cause.values())
    lost_on_line = (Fault.HANG.value, Fault.HANGUP.value, LINK_DOWN)
    report.received = sum(count for cause, count in ledger.sent_by_cause.items() if cause not in lost_on_line)
    report.published = ledger.published
    report.sent_by_cause, report.published_by_cause = ledger.sent_by_cause, ledger.published_by_cause
    report.max_latency = ledger.max_latency
    report.problems = list(ledger.problems)
    wrong_key = report.sent_by_cause[Fault.WRONG_KEY.value] - report.published_by_cause[Fault.WRONG_KEY.value]
    damaged = sum(report.sent_by_cause[f.value] - report.published_by_cause[f.value] for f in (Fault.BIT_FLIP, Fault.TRUNCATE))
    # Through an iM871A (no CRC on its serial line) a damaged OMS mode 5 telegram is caught only by its
    # decryption, which cannot tell it from a wrong key: there, damaged telegrams may count as wrong_key.
    read_as_wrong_key = report.drops["wrong_key"] - wrong_key
    damaged_copies = report.sent_by_cause[Fault.BIT_FLIP.value] + report.sent_by_cause[Fault.TRUNCATE.value]
    if not 0 <= read_as_wrong_key <= (damaged_copies if name in UNCHECKED else 0):
        report.problems.append(f"{wrong_key} telegrams under a wrong key, {report.drops['wrong_key']} counted as wrong_key")
    framing = sum(count for cause, count in report.drops.items() if cause != "wrong_key") + max(read_as_wrong_key, 0)
    if framing < damaged:
        report.problems.append(f"{damaged} damaged telegrams lost, only {framing} drops counted")
    return report
