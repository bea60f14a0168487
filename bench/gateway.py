#!/usr/bin/env python3
"""Gateway scale: one meterlink process with N simulated P1 push links on loopback TCP, 1 telegram/s each.

Issue 23 item 1. The question: how many push links one meterlink process carries on this machine,
with the latency from the last byte of a telegram to the published reading (in the hub and on MQTT),
the CPU it uses and its memory. Aim for 1,000 links on 2 cores: p99 < 50 ms, RSS < 200 MB.

Processes (so that only the service's own work is counted against it):

  service     the real one: `run_service` (supervisor tree, one P1 link actor per link, hypercorn and
              the API, the MQTT publisher with its defaults: QoS 1, Home Assistant discovery) in a child
              process (`--serve`) with a generated TOML config of N `[[link]]` sections, kind p1, each
              on tcp://127.0.0.1:PORT as a serial-to-Ethernet converter would be. One extra output
              (`Outputs.extra`, called right after `hub.publish`) stamps each reading: "hub".
  simulators  `--sim-processes` children (`--simulate`), each serving its share of the links, one
              listening port per link. Link g is a `P1MeterModel` with its own seed and meter id; its
              telegram k carries the clock time BASE + k s (so captured_at names the telegram) and is
              written at t0 + k + g/N s (the links' pushes spread evenly over each second) with one
              send_all; the stamp right after it returns is "last byte".
  broker      a Mosquitto on a free loopback port (bench/latency.py's, no persistence).
  subscriber  a paho client in this process on meterlink/+/+/reading (QoS 0, its own thread) stamps
              each message in on_message: "MQTT".

Every stamp is time.monotonic() (CLOCK_MONOTONIC, one clock for every process on the machine). This
process samples /proc/PID/stat, statm and schedstat of the children once a second: CPU (user +
system) over the measured telegrams, RSS, the service's time waiting for a CPU; it counts the
service's open descriptors at the end, and the service records its garbage collections. Telegrams
0 .. warmup-1 of each link are not counted (the first reading of each meter sends its discovery
configs); then `--seconds` telegrams per link are. Timings are reported, never asserted.

The service and each simulator run in a session of their own: under autogroup scheduling (Linux's
default) sessions share the CPUs fairly, as a systemd service's cgroup would. On a machine shared
with other work, `--nice -10` (root) raises them, their sessions' groups included.

    .venv/bin/python bench/gateway.py                          # 100, 300, 1000 links; about 5 min
    .venv/bin/python bench/gateway.py --links 100,300,500,1000 --nice -10 --dump gateway.json
    .venv/bin/python bench/gateway.py --links 300 --profile service.prof     # cProfile of the service
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parent))
from latency import Mosquitto, MqttClient, free_port, gc_pauses, percentile, tool_versions  # noqa: E402
from report import Report, Table, add_json_option, cpu_model, emit, load_average  # noqa: E402

TOKEN = "bench-gateway-token"
BASE = datetime(2026, 1, 10, tzinfo=timezone.utc)
"""Telegram k of every link carries BASE + k s."""
START_TIMEOUT = 120.0
DRAIN = 2.0
"""Seconds after the last telegram's schedule for the last arrivals."""
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def link_name(g: int) -> str:
    return f"l{g:05d}"


def meter_id(g: int) -> str:
    return f"1SAG{3100000000 + g}"


# --- the service, in its child process ---------------------------------------------------------------


def serve(config_path: Path, record_path: Path, profile_path: Path | None) -> int:
    """run_service with an extra output that stamps each reading right after hub.publish, and the
    collector's pauses."""
    import logging

    from meterlink.service.config import load_config
    from meterlink.service.run import Outputs, run_service

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="service: %(name)s %(message)s")
    stamps, links, captures = array("d"), array("l"), array("l")
    captured: dict[str, int] = {}  # captured_at -> its number here: every link sends the same clock times

    def stamp(reading) -> None:  # type: ignore[no-untyped-def]
        stamps.append(time.monotonic())
        links.append(int(reading.link[1:]))
        captures.append(captured.setdefault(reading.captured_at, len(captured)))

    pauses = gc_pauses(time.monotonic)
    outputs = Outputs(extra=[stamp])
    config = load_config(config_path)
    profiler = None
    if profile_path is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        trio.run(run_service, config, lambda line: print(line, flush=True), outputs)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        record_path.write_text(json.dumps({"stamps": stamps.tolist(), "links": links.tolist(),
                                           "captures": captures.tolist(), "captured": list(captured),
                                           "gc": pauses}))
    return 0


# --- the simulated meters, in their child processes -----------------------------------------------------


def simulate(first: int, count: int, total: int, record_path: Path) -> int:
    """Serve links first .. first+count-1; print the ports, then "connected"; read "T0 TELEGRAMS"; push."""
    return trio.run(_simulate, first, count, total, record_path)


async def _simulate(first: int, count: int, total: int, record_path: Path) -> int:
    from meterlink.simulators.p1 import P1MeterModel

    models = [P1MeterModel(seed=first + j + 1, equipment_id=meter_id(first + j)) for j in range(count)]
    listeners = [(await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=16))[0] for _ in range(count)]
    print(json.dumps([listener.socket.getsockname()[1] for listener in listeners]), flush=True)
    streams: list[trio.SocketStream | None] = [None] * count
    connections = [0] * count
    all_connected = trio.Event()
    lost = [0]

    async def accept(j: int) -> None:
        while True:  # a link that reconnects gets the meter again (counted)
            streams[j] = await listeners[j].accept()
            connections[j] += 1
            if all(streams):
                all_connected.set()

    async with trio.open_nursery() as nursery:
        for j in range(count):
            nursery.start_soon(accept, j)
        await all_connected.wait()
        print("connected", flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        t0, telegrams = float(line.split()[0]), int(line.split()[1])
        sends = [array("d", [math.nan]) * telegrams for _ in range(count)]
        offset = time.monotonic() - trio.current_time()  # monotonic - trio clock, both CLOCK_MONOTONIC here

        async def push(j: int) -> None:
            phase = (first + j) / total
            for k in range(telegrams):
                data = models[j].telegram(BASE + timedelta(seconds=k))
                await trio.sleep_until(t0 + k + phase - offset)
                stream = streams[j]
                try:
                    await stream.send_all(data)  # type: ignore[union-attr]
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    lost[0] += 1
                    continue
                sends[j][k] = time.monotonic()

        async with trio.open_nursery() as pushers:
            for j in range(count):
                pushers.start_soon(push, j)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        record_path.write_text(json.dumps({
            "first": first, "sends": [list(s) for s in sends], "connections": connections, "lost": lost[0],
            "cpu": usage.ru_utime + usage.ru_stime}))
        print("sent", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # keep the links open until the service is stopped
        nursery.cancel_scope.cancel()
    return 0


# --- this process: broker, subscriber, sampling ---------------------------------------------------------


class Subscriber(MqttClient):
    """The readings on MQTT at QoS 0, stamped with time.monotonic() (the simulators' clock)."""

    _CAPTURED = re.compile(rb'"captured_at": "([^"]*)"')

    def __init__(self, port: int) -> None:
        super().__init__(port, "bench-gateway-subscriber", qos=0, clock=time.monotonic)

    def keyed(self) -> list[tuple[float, int, str]]:
        """(arrival, link number, captured_at) of each reading message."""
        found = []
        for at, topic, payload in self.messages:
            match = self._CAPTURED.search(payload)
            if match is not None:
                found.append((at, int(topic.split("/")[1][1:]), match.group(1).decode()))
        return found


@dataclass
class Sample:
    at: float  # time.monotonic()
    cpu: dict[str, float]  # process -> CPU seconds (user + system) so far
    waited: float  # the service's main thread: seconds ready to run but not running, so far
    rss: dict[str, float]  # process -> MB


def autogroup_nice(pid: int, nice: int) -> None:
    """Under autogroup scheduling a nice value ranks processes only within their session; this
    ranks the session's group against the other sessions' (root for a negative value)."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass  # no autogroup scheduling here: the process's own nice value counts


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat)


def runqueue_wait(pid: int) -> float:
    """Seconds the process's main thread was ready to run but waited for a CPU (/proc/PID/schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Step:
    """The figures of one link count."""

    links: int
    telegrams: int  # measured telegrams sent (links x seconds, less any lost)
    hub: list[float]  # p50, p99, max in ms
    mqtt: list[float]
    hub_count: int
    mqtt_count: int
    service_cpu: float  # % of one core over the measured telegrams
    service_waited: float  # % of that time the service was ready to run and waited for a CPU
    cpu_per_reading: float  # ms of service CPU per reading published in that time
    rss_start: float  # MB once every link was connected, before the first telegram
    rss_max: float
    rss_end: float
    descriptors: int  # the service's open descriptors at the end
    broker_cpu: float
    simulators_cpu: float
    bench_cpu: float  # this process (the subscriber)
    full_collections: int  # the service's generation-2 garbage collections over the measured telegrams
    longest_pause: float  # ms, the longest collection of any generation in that time
    late: list[float]  # p50, p99 ms the simulators' send_all returned after schedule
    reconnects: int  # link connections beyond one each
    load: list[str]  # load average at the start and the end
    service_warnings: int
    mqtt_readings_per_s: float  # measured readings that reached the MQTT subscriber, per second
    mqtt_bytes_per_s: float  # their payloads
    retained_topics: int  # retained topics a fresh subscriber got at the end (exact at 100 links, short
    # of the broker's count at 300 and more; not looked into, probably Mosquitto's queue limit)
    note: str = ""


def run_step(n: int, args: argparse.Namespace, directory: Path) -> Step:
    directory.mkdir()
    broker = Mosquitto(directory)
    broker.start()
    simulators: list[subprocess.Popen[str]] = []
    service: subprocess.Popen[str] | None = None
    subscriber: Subscriber | None = None
    service_log = (directory / "service.log").open("w")
    record = directory / "hub.json"
    telegrams = args.warmup + args.seconds
    samples: list[Sample] = []
    try:
        parts = min(args.sim_processes, n)
        bounds = [n * i // parts for i in range(parts + 1)]
        ports: list[int] = []
        for i in range(parts):
            first, count = bounds[i], bounds[i + 1] - bounds[i]
            simulators.append(subprocess.Popen(
                [sys.executable, __file__, "--simulate", str(first), str(count), str(n), str(directory / f"sim{i}.json")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True))
        for sim in simulators:
            ports += json.loads(sim.stdout.readline())  # type: ignore[union-attr]
        http = f"127.0.0.1:{free_port()}"
        config = directory / "meterlink.toml"
        sections = [f'[[link]]\nname = "{link_name(g)}"\nkind = "p1"\nport = "tcp://127.0.0.1:{port}"\n'
                    for g, port in enumerate(ports)]
        config.write_text(
            f'[adapter]\nstate_dir = "{directory / "state"}"\ntoken = "{TOKEN}"\n'
            f'[http]\nlisten = "{http}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nclient_id = "meterlink-gateway"\nqos = {args.qos}\n'
            + "".join(sections))
        command = [sys.executable, __file__, "--serve", str(config), "--record", str(record)]
        if args.profile and n == max(args.links):
            command += ["--profile", str(Path(args.profile).resolve())]
        # A session of its own, as a systemd service has a cgroup of its own: with autogroup
        # scheduling (Linux's default) each session shares the CPUs fairly with the others.
        service = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=service_log, text=True,
                                   start_new_session=True)
        if args.nice:
            for pid in (service.pid, *(sim.pid for sim in simulators)):
                autogroup_nice(pid, args.nice)
        line = service.stdout.readline()  # type: ignore[union-attr]
        if "serving http://" not in line:
            raise RuntimeError(f"the service did not start: {line!r}")
        subscriber = Subscriber(broker.port)
        for sim in simulators:
            if sim.stdout.readline().strip() != "connected":  # type: ignore[union-attr]
                raise RuntimeError("a simulator ended before every link connected")
        pids = {"service": service.pid, "broker": broker.process.pid,  # type: ignore[union-attr]
                **{f"sim{i}": sim.pid for i, sim in enumerate(simulators)}}

        def sample() -> None:
            samples.append(Sample(time.monotonic(), {name: cpu_seconds(pid) for name, pid in pids.items()} |
                                  {"bench": time.process_time()}, runqueue_wait(service.pid),
                                  {name: rss_mb(pid) for name, pid in pids.items()}))

        load_start = load_average()
        sample()
        t0 = time.monotonic() + 1.0
        for sim in simulators:
            sim.stdin.write(f"{t0!r} {telegrams}\n")  # type: ignore[union-attr]
            sim.stdin.flush()  # type: ignore[union-attr]
        end = t0 + telegrams + DRAIN
        while (now := time.monotonic()) < end:
            time.sleep(min(1.0, end - now))
            sample()
        open_descriptors = descriptors(service.pid)
        load_end = load_average()
        for sim in simulators:
            if sim.stdout.readline().strip() != "sent":  # type: ignore[union-attr]
                raise RuntimeError("a simulator failed")
    finally:
        if subscriber is not None:
            subscriber.close()
        if service is not None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
        for sim in simulators:
            try:
                sim.stdin.write("stop\n")  # type: ignore[union-attr]
                sim.stdin.flush()  # type: ignore[union-attr]
                sim.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            if sim.poll() is None:
                sim.kill()
                sim.wait()
        retained = retained_count(broker.port) if broker.process and broker.process.poll() is None else -1
        broker.stop()
        service_log.close()

    # --- figures ---
    sent: dict[tuple[int, int], float] = {}
    connections, sim_cpu, lost = [], 0.0, 0
    for i in range(len(simulators)):
        found = json.loads((directory / f"sim{i}.json").read_text())
        connections += found["connections"]
        sim_cpu += found["cpu"]
        lost += found["lost"]
        for j, stamps in enumerate(found["sends"]):
            for k, at in enumerate(stamps):
                if k >= args.warmup and not math.isnan(at):
                    sent[(found["first"] + j, k)] = at
    numbers = telegram_numbers(telegrams)
    recorded = json.loads(record.read_text())
    captured = recorded["captured"]
    hub = {(g, numbers[captured[c]]): at for at, g, c in zip(recorded["stamps"], recorded["links"], recorded["captures"])}
    mqtt = {(g, numbers[c]): at for at, g, c in subscriber.keyed()} if subscriber else {}
    hub_delays = sorted((hub[key] - at) * 1000 for key, at in sent.items() if key in hub)
    mqtt_delays = sorted((mqtt[key] - at) * 1000 for key, at in sent.items() if key in mqtt)
    late = sorted((at - (t0 + k + g / n)) * 1000 for (g, k), at in sent.items()) or [0.0]

    measured = [s for s in samples if t0 + args.warmup - 1 <= s.at <= t0 + telegrams]
    first_sample, last_sample = measured[0], measured[-1]
    span = last_sample.at - first_sample.at

    def share(*names: str) -> float:
        return 100 * sum(last_sample.cpu[name] - first_sample.cpu[name] for name in names) / span

    pauses = [(generation, seconds) for at, generation, seconds in recorded.get("gc", [])
              if first_sample.at <= at <= last_sample.at]
    published = sum(1 for at in recorded["stamps"] if first_sample.at <= at <= last_sample.at)
    service_seconds = last_sample.cpu["service"] - first_sample.cpu["service"]

    sims = [name for name in first_sample.cpu if name.startswith("sim")]
    log_lines = (directory / "service.log").read_text().splitlines()
    warnings = [line for line in log_lines if "SIGTERM: shutting down" not in line]
    if warnings:
        print(f"{n} links, service stderr (first 5 of {len(warnings)}):\n" + "\n".join(warnings[:5]), file=sys.stderr)
    reading_bytes = sum(len(payload) for at, _, payload in subscriber.messages
                        if t0 + args.warmup <= at <= t0 + telegrams) if subscriber else 0
    per_second = lambda values: [percentile(values, 50), percentile(values, 99), values[-1]] if values else []  # noqa: E731
    return Step(
        links=n, telegrams=len(sent), hub=per_second(hub_delays), mqtt=per_second(mqtt_delays),
        hub_count=len(hub_delays), mqtt_count=len(mqtt_delays),
        service_cpu=share("service"), service_waited=100 * (last_sample.waited - first_sample.waited) / span,
        cpu_per_reading=1000 * service_seconds / max(published, 1), rss_start=samples[0].rss["service"],
        rss_max=max(s.rss["service"] for s in samples), rss_end=samples[-1].rss["service"],
        descriptors=open_descriptors, broker_cpu=share("broker"), simulators_cpu=share(*sims), bench_cpu=share("bench"),
        full_collections=sum(1 for generation, _ in pauses if generation == 2),
        longest_pause=1000 * max((seconds for _, seconds in pauses), default=0.0),
        late=[percentile(late, 50), percentile(late, 99)], reconnects=sum(connections) - n,
        load=[load_start, load_end], service_warnings=len(warnings),
        mqtt_readings_per_s=len(mqtt_delays) / args.seconds, mqtt_bytes_per_s=reading_bytes / args.seconds,
        retained_topics=retained, note=f"{lost} sends failed" if lost else "")


def telegram_numbers(count: int) -> dict[str, int]:
    """captured_at -> telegram number k, as the P1 codec reads the clock time BASE + k s."""
    from meterlink.protocols.p1 import check_telegram
    from meterlink.simulators.p1 import P1MeterModel

    model = P1MeterModel()
    numbers = {}
    for k in range(count):
        telegram = check_telegram(model.telegram(BASE + timedelta(seconds=k))).telegram
        assert telegram is not None and telegram.captured_at is not None
        numbers[telegram.captured_at] = k
    return numbers


def retained_count(port: int) -> int:
    """Retained messages the broker holds: a fresh subscriber to '#' gets each once with the retain flag."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    topics: set[str] = set()
    quiet = [time.monotonic()]

    def on_message(client: object, userdata: object, message: paho.MQTTMessage) -> None:
        if message.retain:
            topics.add(message.topic)
            quiet[0] = time.monotonic()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-gateway-retained")
    client.on_message = on_message
    client.on_connect = lambda client, *a: client.subscribe("#", qos=0)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and time.monotonic() - quiet[0] < 1.0:
        time.sleep(0.1)
    client.disconnect()
    client.loop_stop()
    return len(topics)


# --- the report ------------------------------------------------------------------------------------------


def machine(started: str) -> list[tuple[str, str]]:
    return [
        ("started", started),
        ("CPU", f"{os.cpu_count()} logical CPUs ({cpu_model()}), load average at start {load_average()}"),
        ("memory", f"{os.sysconf('SC_PHYS_PAGES') * PAGE / 2**30:.1f} GiB"),
        ("Python", f"CPython {platform.python_version()}, {platform.system()} {platform.release()}"),
        ("RLIMIT_NOFILE", "soft %d, hard %d" % resource.getrlimit(resource.RLIMIT_NOFILE)),
        ("versions", tool_versions()),
    ]


def report(steps: list[Step], args: argparse.Namespace, started: str) -> Report:
    notes = [f"service: [mqtt] qos = {args.qos}, discovery on (defaults otherwise); P1 push links on loopback TCP, "
             f"1 telegram/s each; {args.warmup} s warm-up not counted, then {args.seconds} telegrams per link; ms from "
             "the simulator's send_all of a telegram to the reading (nearest-rank percentiles); CPU in % of one core "
             "over the measured telegrams"]
    if args.nice:
        notes.append(f"every process of the benchmark (service, simulators, broker, subscriber) ran at nice {args.nice}, "
                     f"the service and each simulator in a session of its own whose autogroup had nice {args.nice}")

    def cells(s: Step, values: list[float], count: int) -> list[str]:
        if not values:
            return ["-", "-", "-"]
        shown = [f"{v:.1f}" for v in values]
        if count != s.telegrams:
            shown[-1] += f" ({count} of {s.telegrams})"
        return shown

    rows = [[str(s.links), str(s.telegrams), *cells(s, s.hub, s.hub_count), *cells(s, s.mqtt, s.mqtt_count),
             f"{s.service_cpu:.0f}", f"{s.service_waited:.0f}", f"{s.cpu_per_reading:.2f}",
             f"{s.rss_start:.0f} / {s.rss_max:.0f} / {s.rss_end:.0f}", str(s.descriptors), f"{s.broker_cpu:.0f}",
             f"{s.simulators_cpu:.0f}", f"{s.bench_cpu:.0f}", f"{s.load[0]} / {s.load[1]}"] for s in steps]
    table = Table("", ["links", "telegrams", "hub p50", "hub p99", "hub max", "MQTT p50", "MQTT p99", "MQTT max",
                       "service CPU %", "service waited for a CPU %", "CPU ms per reading", "RSS MB start / max / end",
                       "fds", "broker CPU %", "simulators CPU %", "subscriber CPU %", "load avg start / end"], rows, 0)
    for s in steps:
        notes.append(f"{s.links} links: sends began p50 {s.late[0]:.1f} ms / p99 {s.late[1]:.1f} ms after schedule; "
                     f"{s.reconnects} link reconnects; {s.service_warnings} service log lines; "
                     f"service GC: {s.full_collections} full collections, longest pause {s.longest_pause:.0f} ms; "
                     f"{s.mqtt_readings_per_s:.0f} readings/s reached the MQTT subscriber, payloads "
                     f"{s.mqtt_bytes_per_s / 1000:.0f} kB/s; a fresh subscriber got {s.retained_topics} retained topics at the end"
                     + (f"; {s.note}" if s.note else ""))
    return Report("gateway", "Gateway scale", machine(started), notes, [table])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=lambda text: [int(n) for n in text.split(",")], default=[100, 300, 1000],
                        help="link counts to run, comma-separated (default 100,300,1000)")
    parser.add_argument("--seconds", type=int, default=60, help="measured telegrams per link (one a second)")
    parser.add_argument("--warmup", type=int, default=15, help="telegrams per link before measuring")
    parser.add_argument("--sim-processes", type=int, default=4, help="simulator processes sharing the links")
    parser.add_argument("--qos", type=int, default=1, choices=(0, 1, 2), help="the service's [mqtt] qos (default 1, the service's own default)")
    parser.add_argument("--nice", type=int, default=0,
                        help="run every process of the benchmark at this nice value (negative needs root): "
                             "on a machine shared with other work")
    parser.add_argument("--dump", metavar="FILE", help="also write every step's figures as JSON")
    add_json_option(parser)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the service at the largest link count into FILE")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--simulate", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.serve, args.record, Path(args.profile) if args.profile else None)
    if args.simulate is not None:
        first, count, total, record = args.simulate
        return simulate(int(first), int(count), int(total), Path(record))
    if args.nice:
        os.nice(args.nice)  # the children inherit it
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    steps = []
    with tempfile.TemporaryDirectory(prefix="meterlink-gateway-") as directory:
        for n in args.links:
            steps.append(run_step(n, args, Path(directory) / f"links{n}"))
            print(f"{n} links done: hub p99 {steps[-1].hub[1:2]} ms, CPU {steps[-1].service_cpu:.0f} %", file=sys.stderr)
    emit(report(steps, args, started), args.json)
    if args.dump:
        Path(args.dump).write_text(json.dumps({"started": started, "steps": [asdict(step) for step in steps]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
