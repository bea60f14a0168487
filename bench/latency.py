#!/usr/bin/env python3
"""Adapter latency: last byte of a telegram on the link -> reading in the hub, on SSE, on MQTT.

Seed 001 ch. C.8 asks for a reading to be available within 50 % of the push interval and at most
0.5 s; we aim for p99 under 10 ms. This script runs the real service (`run_service`, the same
supervisor tree, link actors, hypercorn API and MQTT publisher as `meterlink run`) in a child
process with a generated TOML config, and plays everything around it in this process:

  meters      TCP servers the service's P1 and M-Bus links connect to (tcp://127.0.0.1:PORT, as a
              serial-to-Ethernet converter would be). We write each telegram with one send_all and
              take time.time() right after it returns: "last byte". The M-Bus meter also reads the
              adapter's 0xE5 acks (it is not one-way) and stamps them.
  broker      a Mosquitto started here on a free loopback port, in the service's [mqtt] section
              (QoS 1, discovery on: the defaults).
  SSE client  httpx streaming GET /api/v1/stream (Bearer token); each chunk is stamped on arrival,
              before it is parsed.
  MQTT client a paho subscriber on meterlink/+/+/reading, on its own thread, stamps in on_message.

In the service process an extra output (`Outputs.extra`, called by run_service right after
`hub.publish`) stamps time.time() for each reading; the child writes those stamps to a file when
it stops. Readings are matched to telegrams by (link, captured_at): every telegram carries its own
clock time, base + i seconds, so captured_at is unique. All stamps are time.time() on one machine
(the same CLOCK_REALTIME in both processes).

Paths reported, per telegram, in milliseconds:

  received_at   the reading's received_at - last byte: the link actor's receive_some woke up
  hub.publish   the reading is in the hub (decoded, published, fanned out to subscriber queues)
  SSE           the event arrived at the SSE client
  MQTT          the message arrived at the MQTT subscriber (service -> broker -> subscriber)
  M-Bus ack     the adapter's 0xE5 for the telegram's last frame arrived at the meter

Runs: a warm-up (not counted; the first reading of a meter sends Home Assistant discovery), then
P1 alone and M-Bus alone, each N telegrams at a fixed interval that does not queue (default 1000
at 25 ms), then both links at the real push interval (1 s, M-Bus offset by 0.5 s) for a few dozen
telegrams. Everything shares the machine: the client, the broker and the service compete for the
same cores, so the figures include that scheduling. Timings are reported, never asserted.

    .venv/bin/python bench/latency.py [--telegrams 1000] [--interval 0.025] [--slow 30]
                                      [--profile FILE]   # cProfile of the service process
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import trio

from report import Report, Table, add_json_option, cpu_model, emit, load_average, versions

TOKEN = "bench-latency-token"
START_TIMEOUT = 20.0
DRAIN = 1.5
"""Seconds to wait after a run's last telegram for the last arrivals."""
TOPIC_FILTER = "meterlink/+/+/reading"


# --- the service, in the child process -------------------------------------------------------------


def serve(config_path: Path, record_path: Path, profile_path: Path | None) -> int:
    """The child: run_service with an extra output that stamps each reading right after hub.publish."""
    import logging

    from meterlink.service.config import load_config
    from meterlink.service.run import Outputs, run_service
    from meterlink.service.secrets import MeterKey
    from meterlink.simulators.kaifa import DEMO_KEY

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="service: %(name)s %(message)s")
    stamps: list[tuple[float, str, str | None]] = []
    collections = gc_pauses(time.time)

    def stamp(reading) -> None:  # type: ignore[no-untyped-def]
        stamps.append((time.time(), reading.link, reading.captured_at))

    def announce(line: str) -> None:
        print(line, flush=True)

    outputs = Outputs(extra=[stamp], keys={"mbus": MeterKey(DEMO_KEY)})
    config = load_config(config_path)
    profiler = None
    if profile_path is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        trio.run(run_service, config, announce, outputs)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        record_path.write_text(json.dumps({"stamps": stamps, "gc": collections}))
    return 0


# --- the world around it, in this process -------------------------------------------------------------


def gc_pauses(clock: Callable[[], float]) -> list[tuple[float, int, float]]:
    """The collector's pauses in this process from now on, as they happen: (`clock()` at the end of
    each, its generation, seconds)."""
    import gc

    pauses: list[tuple[float, int, float]] = []
    started = [0.0]

    def phase(name: str, info: dict) -> None:
        if name == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((clock(), info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(phase)
    return pauses


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"user {getpass.getuser()}\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("mosquitto did not listen within 5 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)


class MqttClient:
    """paho on its own thread, subscribed to every reading; stamps `clock()` first thing in on_message."""

    def __init__(self, port: int, client_id: str = "bench-latency-subscriber", qos: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[float, str, bytes]] = []
        """(arrival, topic, payload) of each message."""
        self._clock = clock
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = lambda client, *args: client.subscribe(TOPIC_FILTER, qos=qos)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise RuntimeError("the MQTT subscriber got no SUBACK")

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        self.messages.append((self._clock(), message.topic, message.payload))  # type: ignore[attr-defined]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Meter:
    """One meter port: the service's link connects here; we write telegrams to whoever is connected."""

    name: str
    listener: trio.SocketListener
    stream: trio.SocketStream | None = None
    connections: int = 0
    connected: trio.Event = field(default_factory=trio.Event)
    acks: list[float] = field(default_factory=list)  # time.time() of each 0xE5 received

    @property
    def port(self) -> int:
        return self.listener.socket.getsockname()[1]

    async def accept(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                stream = await self.listener.accept()
                self.stream = stream
                self.connections += 1
                self.connected.set()
                nursery.start_soon(self._read_acks, stream)

    async def _read_acks(self, stream: trio.SocketStream) -> None:
        try:
            while data := await stream.receive_some(4096):
                now = time.time()
                self.acks.extend([now] * data.count(0xE5))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


@dataclass(frozen=True)
class Telegram:
    link: str
    captured_at: str
    data: bytes
    frames: int  # M-Bus long frames (acks) in it; 0 for P1


def p1_telegrams(model: object, base: datetime, count: int) -> list[Telegram]:
    from meterlink.protocols.p1 import check_telegram

    telegrams = []
    for i in range(count):
        raw = model.telegram(base + timedelta(seconds=i))  # type: ignore[attr-defined]
        telegram = check_telegram(raw).telegram
        assert telegram is not None and telegram.captured_at is not None
        telegrams.append(Telegram("p1", telegram.captured_at, raw, 0))
    return telegrams


def mbus_telegrams(model: object, base: datetime, count: int) -> list[Telegram]:
    from meterlink.protocols.dlms.push import decode_push
    from meterlink.protocols.dlms.security import CipherKeys
    from meterlink.protocols.mbus import MBusFramer, segment_payload
    from meterlink.simulators.kaifa import DEMO_KEY

    telegrams = []
    for i in range(count):
        frames = model.frames(base + timedelta(seconds=i))  # type: ignore[attr-defined]
        raw = b"".join(frames)
        apdu = b"".join(segment_payload(frame) for frame in MBusFramer().feed(raw))
        reading = decode_push(apdu, [CipherKeys(DEMO_KEY, None)], None, "mbus", None).reading
        assert reading is not None and reading.captured_at is not None
        telegrams.append(Telegram("mbus", reading.captured_at, raw, len(frames)))
    return telegrams


@dataclass
class Sent:
    telegram: Telegram
    at: float  # time.time() right after send_all returned
    late: float  # how late the send began against its schedule, s
    ack_index: int  # index in Meter.acks of the ack of the last frame, -1 for P1


async def send_run(meter: Meter, telegrams: list[Telegram], interval: float, offset: float, out: list[Sent]) -> None:
    start = trio.current_time() + offset
    for i, telegram in enumerate(telegrams):
        planned = start + i * interval
        await trio.sleep_until(planned)
        late = trio.current_time() - planned
        assert meter.stream is not None
        await meter.stream.send_all(telegram.data)
        at = time.time()
        out.append(Sent(telegram, at, late, -1))


class SseClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[tuple[float, bytes]] = []
        self.subscribed = trio.Event()

    async def run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", self.url, headers=headers) as response:
            response.raise_for_status()
            buffer = b""
            async for chunk in response.aiter_raw():
                now = time.time()
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    if event.startswith(b": subscribed"):
                        self.subscribed.set()
                    elif event.startswith(b"data: "):
                        self.events.append((now, event[6:]))


# --- statistics and the report ----------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def row(run: str, path: str, delays: list[float], expected: int) -> list[str]:
    if not delays:
        return [run, path, f"0 of {expected}", "-", "-", "-", "-"]
    values = sorted(d * 1000 for d in delays)
    count = f"{len(values)}" if len(values) == expected else f"{len(values)} of {expected}"
    return [run, path, count, *(f"{percentile(values, p):.2f}" for p in (50, 90, 99)), f"{values[-1]:.2f}"]


def tool_versions() -> str:
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()
    return ", ".join([versions(("meterlink", "trio", "hypercorn", "fastapi", "starlette", "httpx", "paho-mqtt")),
                      mosquitto[0].replace("mosquitto version", "mosquitto") if mosquitto else "mosquitto ?"])


# --- the benchmark --------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    sent: list[Sent] = field(default_factory=list)


async def bench(args: argparse.Namespace, directory: Path) -> tuple[list[Run], dict]:
    from meterlink.simulators.kaifa import KaifaMeterModel
    from meterlink.simulators.p1 import P1MeterModel

    # every telegram made (and checked) before anything is timed; bases a day apart keep captured_at unique
    p1_model, mbus_model = P1MeterModel(), KaifaMeterModel()
    day = timedelta(days=1)
    base_utc = datetime(2026, 1, 10, tzinfo=timezone.utc)
    base_local = datetime(2026, 1, 10)
    warm_p1 = p1_telegrams(p1_model, base_utc, args.warmup)
    warm_mbus = mbus_telegrams(mbus_model, base_local, args.warmup)
    fast_p1 = p1_telegrams(p1_model, base_utc + day, args.telegrams)
    fast_mbus = mbus_telegrams(mbus_model, base_local + 2 * day, args.telegrams)
    slow_p1 = p1_telegrams(p1_model, base_utc + 3 * day, args.slow)
    slow_mbus = mbus_telegrams(mbus_model, base_local + 3 * day, args.slow)

    broker = Mosquitto(directory)
    broker.start()
    process: subprocess.Popen[bytes] | None = None
    mqtt: MqttClient | None = None
    service_log = (directory / "service.log").open("wb")
    record = directory / "hub.json"
    try:
        async with trio.open_nursery() as nursery:
            meters = {}
            for name in ("p1", "mbus"):
                listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
                meters[name] = Meter(name, listener)
                nursery.start_soon(meters[name].accept)
            http = f"127.0.0.1:{free_port()}"
            config = directory / "meterlink.toml"
            config.write_text(
                "[adapter]\n"
                f'state_dir = "{directory / "state"}"\n'
                f'token = "{TOKEN}"\n'
                "[http]\n"
                f'listen = "{http}"\n'
                "[mqtt]\n"
                'host = "127.0.0.1"\n'
                f"port = {broker.port}\n"
                'client_id = "meterlink-bench"\n'
                "[[link]]\n"
                'name = "p1"\nkind = "p1"\n'
                f'port = "tcp://127.0.0.1:{meters["p1"].port}"\n'
                "[[link]]\n"
                'name = "mbus"\nkind = "mbus"\n'
                f'port = "tcp://127.0.0.1:{meters["mbus"].port}"\n'
            )
            command = [sys.executable, __file__, "--serve", str(config), "--record", str(record)]
            if args.profile:
                command += ["--profile", str(Path(args.profile).resolve())]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=service_log)
            assert process.stdout is not None
            with trio.fail_after(START_TIMEOUT):
                line = await trio.to_thread.run_sync(process.stdout.readline)
                if b"serving http://" not in line:
                    raise RuntimeError(f"the service did not start: {line!r}")
                mqtt = await trio.to_thread.run_sync(MqttClient, broker.port)
                sse = SseClient(f"http://{http}/api/v1/stream")
                nursery.start_soon(sse.run)
                await sse.subscribed.wait()
                for meter in meters.values():
                    await meter.connected.wait()

            runs = [Run("warm-up"), Run(f"P1, {args.telegrams} every {args.interval * 1000:g} ms"),
                    Run(f"M-Bus, {args.telegrams} every {args.interval * 1000:g} ms"),
                    Run(f"P1 + M-Bus, {args.slow} each every 1 s")]
            async with trio.open_nursery() as senders:
                senders.start_soon(send_run, meters["p1"], warm_p1, 0.05, 0.0, runs[0].sent)
                senders.start_soon(send_run, meters["mbus"], warm_mbus, 0.05, 0.025, runs[0].sent)
            await trio.sleep(DRAIN)
            await send_run(meters["p1"], fast_p1, args.interval, 0.0, runs[1].sent)
            await trio.sleep(DRAIN)
            await send_run(meters["mbus"], fast_mbus, args.interval, 0.0, runs[2].sent)
            await trio.sleep(DRAIN)
            async with trio.open_nursery() as senders:
                senders.start_soon(send_run, meters["p1"], slow_p1, 1.0, 0.0, runs[3].sent)
                senders.start_soon(send_run, meters["mbus"], slow_mbus, 1.0, 0.5, runs[3].sent)
            await trio.sleep(DRAIN)
            connections = {name: meter.connections for name, meter in meters.items()}
            acks = list(meters["mbus"].acks)
            nursery.cancel_scope.cancel()
    finally:
        if mqtt is not None:
            mqtt.close()
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        service_log.close()
        broker.stop()

    # the ack of a telegram's last frame: acks come in order, frames per telegram are known
    index = -1
    for run in runs:
        for sent in sorted(run.sent, key=lambda s: s.at):
            if sent.telegram.link == "mbus":
                index += sent.telegram.frames
                sent.ack_index = index
    recorded = json.loads(record.read_text()) if record.exists() else {"stamps": [], "gc": []}
    hub_stamps, collections = recorded["stamps"], recorded["gc"]
    arrivals = {
        "hub": {(link, captured): at for at, link, captured in hub_stamps},
        "sse": {},
        "mqtt": {},
        "received_at": {},
    }
    for at, payload in sse.events:
        reading = json.loads(payload)
        key = (reading["link"], reading["captured_at"])
        arrivals["sse"][key] = at
        arrivals["received_at"][key] = reading["received_at"]
    for at, _, payload in mqtt.messages:
        reading = json.loads(payload)
        arrivals["mqtt"][(reading["link"], reading["captured_at"])] = at
    log = (directory / "service.log").read_text()
    unexpected = [line for line in log.splitlines() if "SIGTERM: shutting down" not in line]
    if unexpected:
        print("service stderr:\n" + "\n".join(unexpected), file=sys.stderr)
    extra = {"connections": connections, "gc": collections, "acks": acks, "hub_stamps": len(hub_stamps),
             "sse_events": len(sse.events), "mqtt_messages": len(mqtt.messages),
             "service_exit": process.returncode if process is not None else None}
    return runs, {"arrivals": arrivals, **extra}


def report(runs: list[Run], found: dict, info: list[tuple[str, str]]) -> Report:
    arrivals = found["arrivals"]
    acks = found["acks"]
    rows = []
    for run in runs[1:]:
        for link in ("p1", "mbus"):
            sent = [s for s in run.sent if s.telegram.link == link]
            if not sent:
                continue
            label = f"{run.name}" if len({s.telegram.link for s in run.sent}) == 1 else f"{run.name}: {link}"
            paths = [("received_at", "received_at"), ("hub", "hub.publish"), ("sse", "SSE event"), ("mqtt", "MQTT message")]
            for key, path in paths:
                delays = []
                for s in sent:
                    at = arrivals[key].get((link, s.telegram.captured_at))
                    if at is not None:
                        delays.append(at - s.at)
                rows.append(row(label, path, delays, len(sent)))
            if link == "mbus":
                delays = [acks[s.ack_index] - s.at for s in sent if 0 <= s.ack_index < len(acks)]
                rows.append(row(label, "0xE5 ack of last frame", delays, len(sent)))
    timed = [s for run in runs[1:] for s in run.sent]
    late = sorted(s.late * 1000 for s in timed) or [0.0]
    begin, end = min((s.at for s in timed), default=0.0), max((s.at for s in timed), default=0.0) + 0.5  # not the shutdown
    pauses = [(generation, seconds * 1000) for at, generation, seconds in found["gc"] if begin <= at <= end]
    full = [ms for generation, ms in pauses if generation == 2]
    notes = [
        f"service GC during the timed runs: {len(pauses)} collections, the longest {max((ms for _, ms in pauses), default=0):.1f} ms; "
        f"{len(full)} of generation 2 ({', '.join(f'{ms:.1f}' for ms in full) or '-'} ms)",
        f"client: sends began p50 {percentile(late, 50):.2f} ms, p99 {percentile(late, 99):.2f} ms, "
        f"max {late[-1]:.2f} ms after their schedule; link connections {found['connections']} (1 each = no restart); "
        f"service exit code {found['service_exit']}; readings stamped at hub.publish {found['hub_stamps']}, "
        f"SSE events {found['sse_events']}, MQTT reading messages {found['mqtt_messages']} "
        f"(sent {sum(len(run.sent) for run in runs)} incl. warm-up)",
    ]
    table = Table("Milliseconds from the last byte of a telegram written to the link (time.time() after send_all) to each "
                  "point; nearest-rank percentiles; warm-up not counted. Requirement: 500 ms; aim: p99 under 10 ms:",
                  ["run", "last byte ->", "telegrams", "p50", "p90", "p99", "max"], rows, numeric=5)
    return Report("latency", "Latency", info, notes, [table])


def dump(path: Path, runs: list[Run], found: dict) -> None:
    arrivals = found["arrivals"]
    telegrams = []
    for run in runs:
        for s in run.sent:
            key = (s.telegram.link, s.telegram.captured_at)
            telegrams.append({
                "run": run.name, "link": s.telegram.link, "captured_at": s.telegram.captured_at, "sent": s.at,
                "late": s.late, **{name: arrivals[name].get(key) for name in ("received_at", "hub", "sse", "mqtt")},
                "ack": found["acks"][s.ack_index] if 0 <= s.ack_index < len(found["acks"]) else None,
            })
    path.write_text(json.dumps({"telegrams": telegrams, "gc": found["gc"]}, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--telegrams", type=int, default=1000, help="telegrams per link in the fast runs")
    parser.add_argument("--interval", type=float, default=0.025, help="seconds between telegrams in the fast runs")
    parser.add_argument("--slow", type=int, default=30, help="telegrams per link at the real 1 s push interval")
    parser.add_argument("--warmup", type=int, default=20, help="telegrams per link before timing")
    parser.add_argument("--dump", metavar="FILE", help="write every telegram's stamps and the service's GC pauses as JSON")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the service process into FILE (pstats)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.record, Path(args.profile) if args.profile else None)
    info = [("CPU", f"{os.cpu_count()} logical CPUs ({cpu_model()}), load average at start {load_average()}"),
            ("Python", f"{platform.python_version()}, {platform.system()} {platform.release()}"), ("versions", tool_versions())]
    with tempfile.TemporaryDirectory(prefix="meterlink-latency-") as directory:
        runs, found = trio.run(bench, args, Path(directory))
    emit(report(runs, found, info), args.json)
    if args.dump:
        dump(Path(args.dump), runs, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
