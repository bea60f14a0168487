#!/usr/bin/env python3
"""BSM-WS36A: snapshot verifications per second, and Modbus RTU round trips per second against the
simulated meter over TCP (issue 17, "bench/"). See bench/README.md, section "BSM-WS36A".

Verification, on the real signed current snapshot of bsm-python's documentation (tests/data,
Apache-2.0; signed by a real meter) and its real OCMF string:

  meterlink Snapshot.verify     a decoded snapshot -> appendix D hash input, SHA-256, DER key load,
                                ECDSA P-256 verify (what `bsm snapshot` does after reading the block)
  meterlink bsm verify path     the saved JSON text -> json.loads, Snapshot.from_json, verify (what
                                `bsm verify FILE` does, without reading the file)
  cryptography, key each time   load_der_public_key + verify of the same DER signature over the same
                                hash input bytes (prepared once): the floor with meterlink's key work
  cryptography, key loaded once verify alone: the floor
  OCMF: meterlink parse_ocmf(text).verify(key) against cryptography's verify over the payload bytes

Round trips, against `meterlink simulate bsm` in its own process on 127.0.0.1 (Modbus RTU frames
over TCP, as an RS-485-to-Ethernet converter carries them), one request in flight at a time: a
read of 1 register (a snapshot's status St, what the snapshot lifecycle polls) and of the AC meter
model's 105 registers (what a link reads every poll interval):

  meterlink codec over trio     ModbusRtuClient.read -> send_all; receive_some -> feed until the
                                response is decoded (the actor's I/O without the machine)
  meterlink BsmClient actor     the link as the service runs it: run_bsm with a tiny poll interval,
                                the BsmClient machine deciding each read (AC model only), counted
                                by the requests that went out after its first reading
  pymodbus async client         AsyncModbusTcpClient(framer=RTU).read_holding_registers on asyncio
  pymodbus sync client          ModbusTcpClient(framer=RTU).read_holding_registers

Checks before timing (untimed; the script stops if one fails): the real snapshot verifies and its
SHA-256 is the digest bsmtool printed; a changed field and a changed OCMF character fail; every
round-trip variant reads the same registers (the simulated meter's contactor is open, so the AC
model does not change between reads).

    .venv/bin/python bench/bsm.py [--rounds 5] [--seconds 0.4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import trio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient
from pymodbus.framer import FramerType

from meterlink.actors.bsm import BsmLink, run_bsm
from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.machines.bsm import BsmPlan
from meterlink.protocols.bsm import Snapshot, hash_input
from meterlink.protocols.ocmf import parse_ocmf
from meterlink.protocols.sunspec import BASE_ADDRESS, ModbusRtuClient, RegistersRead
from meterlink.simulators.bsm import CHAIN
from meterlink.transports import open_link

from report import Report, Table, add_json_option, describe, emit

ROOT = Path(__file__).resolve().parent.parent
SIGNED = json.loads((ROOT / "tests" / "data" / "bsm_python_signed.json").read_text())
UNIT = 42


def model_address(model_id: int) -> tuple[int, int]:
    """Data-model address of a model's first payload register and its length, from the chain."""
    address = BASE_ADDRESS + 2
    for chained, length in CHAIN:
        if chained == model_id:
            return address + 2, length
        address += 2 + length
    raise LookupError(model_id)


AC_ADDRESS, AC_LENGTH = model_address(203)
STATUS_ADDRESS = model_address(64901)[0] + 1  # St of the current snapshot (offset 3 of the model)
READS = {"1 register (snapshot St)": (STATUS_ADDRESS, 1), f"{AC_LENGTH} registers (AC meter model)": (AC_ADDRESS, AC_LENGTH)}


# --- verification ---------------------------------------------------------------------------------


def verification_variants() -> dict[str, Callable[[], object]]:
    raw = SIGNED["snapshots"]["scs"]["raw"]
    der = bytes.fromhex(SIGNED["public_key"])
    saved = json.dumps(raw | {"PK": SIGNED["public_key"]})
    snapshot = Snapshot.from_json(json.loads(saved))
    signature = snapshot.signature
    data = hash_input(snapshot.values)
    key = load_der_public_key(der)
    ocmf_text = SIGNED["ocmf"]["oscs"]
    ocmf = parse_ocmf(ocmf_text)
    payload = ocmf.payload_text.encode()

    # Untimed checks: the same work, and it is real work.
    assert snapshot.verify() and snapshot.digest().hex() == SIGNED["digest_scs"], "the real snapshot must verify"
    assert not Snapshot.from_json(raw | {"PK": SIGNED["public_key"], "RCnt": raw["RCnt"] + 1}).verify()
    assert parse_ocmf(ocmf_text).verify(der)
    assert not parse_ocmf(ocmf_text.replace("001BZR1521070006", "001BZR1521070007", 1)).verify(der)
    key.verify(signature, data, ec.ECDSA(hashes.SHA256()))  # raises if the floor does other work

    def floor_each() -> None:
        load_der_public_key(der).verify(signature, data, ec.ECDSA(hashes.SHA256()))

    return {
        "meterlink Snapshot.verify": snapshot.verify,
        "meterlink bsm verify path (JSON text)": lambda: Snapshot.from_json(json.loads(saved)).verify(),
        "cryptography, key loaded each time": floor_each,
        "cryptography, key loaded once": lambda: key.verify(signature, data, ec.ECDSA(hashes.SHA256())),
        "meterlink OCMF parse + verify": lambda: parse_ocmf(ocmf_text).verify(der),
        "cryptography OCMF verify (key once)": lambda: key.verify(ocmf.signature, payload, ec.ECDSA(hashes.SHA256())),
    }


def rate(function: Callable[[], object], seconds: float) -> float:
    """Calls per second over about `seconds`."""
    n, began = 0, time.perf_counter()
    while True:
        for _ in range(20):
            function()
        n += 20
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return n / elapsed


# --- round trips ----------------------------------------------------------------------------------


async def meterlink_codec(url: str, address: int, count: int, seconds: float) -> tuple[float, tuple[int, ...]]:
    stream = await open_link(url)
    codec = ModbusRtuClient(UNIT)
    n, last = 0, ()
    async with stream:
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds or n == 0:
            await stream.send_all(codec.read(address, count))
            answer: list = []
            while not answer:
                answer = codec.feed(await stream.receive_some(4096))
            assert isinstance(answer[0], RegistersRead), answer
            last = answer[0].registers
            n += 1
    return n / elapsed, last


class CountingStream(trio.abc.Stream):
    """A stream that counts the requests sent through it."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner, self.sent = inner, 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def meterlink_actor(url: str, seconds: float) -> tuple[float, tuple[int, ...]]:
    """AC model round trips of the BsmClient link, after discovery (requests counted on the wire)."""
    link = BsmLink(url, BsmPlan(unit=UNIT, poll_interval=1e-6))
    stream = CountingStream(await open_link(url))
    mark: list[tuple[float, int]] = []
    values: list[object] = []
    done = trio.Event()

    def publish(reading: object) -> None:
        now = time.perf_counter()
        if not mark:
            mark.append((now, stream.sent))  # discovery is over: count from here
            return
        values.append(reading)
        if now - mark[0][0] >= seconds:
            mark.append((now, stream.sent))
            done.set()

    async def opener() -> trio.abc.Stream:
        return stream

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_bsm, link, LinkHooks(publish), LinkStatus("bsm", "bsm"), opener)
        await done.wait()
        nursery.cancel_scope.cancel()
    (began, sent_before), (ended, sent_after) = mark
    assert sent_after - sent_before == len(values), "one request per AC reading"
    reading = values[-1]
    raw = tuple(value.raw for value in reading.values)  # type: ignore[attr-defined]
    return (sent_after - sent_before) / (ended - began), raw


async def pymodbus_async(host: str, port: int, address: int, count: int, seconds: float) -> tuple[float, tuple[int, ...]]:
    client = AsyncModbusTcpClient(host, port=port, framer=FramerType.RTU, timeout=2, retries=0)
    await client.connect()
    n, last = 0, ()
    try:
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds or n == 0:
            answer = await client.read_holding_registers(address - 1, count=count, device_id=UNIT)
            assert not answer.isError(), answer
            last = tuple(answer.registers)
            n += 1
    finally:
        client.close()
    return n / elapsed, last


def pymodbus_sync(host: str, port: int, address: int, count: int, seconds: float) -> tuple[float, tuple[int, ...]]:
    client = ModbusTcpClient(host, port=port, framer=FramerType.RTU, timeout=2, retries=0)
    assert client.connect()
    n, last = 0, ()
    try:
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds or n == 0:
            answer = client.read_holding_registers(address - 1, count=count, device_id=UNIT)
            assert not answer.isError(), answer
            last = tuple(answer.registers)
            n += 1
    finally:
        client.close()
    return n / elapsed, last


def round_trip_variants(url: str) -> dict[str, Callable[[float], tuple[float, tuple[int, ...]]]]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    variants: dict[str, Callable[[float], tuple[float, tuple[int, ...]]]] = {}
    for label, (address, count) in READS.items():
        variants[f"meterlink codec over trio, {label}"] = (
            lambda s, a=address, c=count: trio.run(meterlink_codec, url, a, c, s))
        variants[f"pymodbus async client (RTU framer), {label}"] = (
            lambda s, a=address, c=count: asyncio.run(pymodbus_async(host, int(port), a, c, s)))
        variants[f"pymodbus sync client (RTU framer), {label}"] = (
            lambda s, a=address, c=count: pymodbus_sync(host, int(port), a, c, s))
    variants["meterlink BsmClient actor (AC model reads)"] = lambda s: trio.run(meterlink_actor, url, s)
    return variants


def check_round_trips(variants: dict[str, Callable[[float], tuple[float, tuple[int, ...]]]]) -> None:
    """Every variant reads the same registers (the actor: the same values, scaled from them)."""
    by_size: dict[int, set[tuple[int, ...]]] = {}
    for name, run in variants.items():
        _, registers = run(0.05)
        if "actor" in name:
            continue
        by_size.setdefault(len(registers), set()).add(registers)
    for size, seen in by_size.items():
        assert len(seen) == 1, f"the variants read different {size} registers: {seen}"


# --- report ---------------------------------------------------------------------------------------


def table(title: str, results: dict[str, list[float]], unit: str) -> Table:
    rows = []
    for name, rates in results.items():
        median = statistics.median(rates)
        rows.append([name, f"{max(rates):,.0f}", f"{median:,.0f}", f"{min(rates):,.0f}", f"{1e6 / median:,.0f}"])
    return Table(title, ["variant", f"best {unit}", f"median {unit}", f"worst {unit}", "median µs each"], rows, numeric=4)


def ratios(results: dict[str, list[float]], pairs: list[tuple[str, str]]) -> Table:
    rows = []
    for ours, theirs in pairs:
        per_round = [a / b for a, b in zip(results[ours], results[theirs])]
        rows.append([f"{ours} vs {theirs}", f"{statistics.median(results[ours]) / statistics.median(results[theirs]):.2f}x",
                     f"{statistics.median(per_round):.2f}x", f"{min(per_round):.2f}x-{max(per_round):.2f}x"])
    return Table("", ["meterlink against", "median / median", "median of per-round ratios", "per-round range"], rows, numeric=3)


def measure(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            results[name].append(variants[name]())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.4, help="per variant and round")
    add_json_option(parser)
    args = parser.parse_args()

    info = describe(ROOT, ["meterlink/protocols", "meterlink/machines/bsm.py", "meterlink/actors"],
                    ("cryptography", "pymodbus", "trio", "python-statemachine"))
    notes = [f"{args.rounds} rounds of {args.seconds} s per variant"]
    checks = verification_variants()
    verify = measure({name: (lambda f=f: rate(f, args.seconds)) for name, f in checks.items()}, args.rounds)
    tables = [
        table("Snapshot and OCMF verifications per second (real bsm-python signatures):", verify, "/s"),
        ratios(verify, [
            ("meterlink Snapshot.verify", "cryptography, key loaded each time"),
            ("meterlink Snapshot.verify", "cryptography, key loaded once"),
            ("meterlink bsm verify path (JSON text)", "cryptography, key loaded once"),
            ("meterlink OCMF parse + verify", "cryptography OCMF verify (key once)"),
        ]),
    ]

    simulator = subprocess.Popen([sys.executable, "-m", "meterlink.cli", "simulate", "bsm", "--listen", "tcp://127.0.0.1:0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        url = simulator.stdout.readline().decode().strip()  # type: ignore[union-attr]
        assert url.startswith("tcp://"), url
        trips = round_trip_variants(url)
        check_round_trips(trips)
        timed = measure({name: (lambda run=run: run(args.seconds)[0]) for name, run in trips.items()}, args.rounds)
    finally:
        simulator.terminate()
        simulator.wait()
    pairs = []
    for label in READS:
        pairs += [(f"meterlink codec over trio, {label}", f"pymodbus async client (RTU framer), {label}"),
                  (f"meterlink codec over trio, {label}", f"pymodbus sync client (RTU framer), {label}")]
    ac = f"{AC_LENGTH} registers (AC meter model)"
    pairs += [("meterlink BsmClient actor (AC model reads)", f"pymodbus async client (RTU framer), {ac}"),
              ("meterlink BsmClient actor (AC model reads)", f"meterlink codec over trio, {ac}")]
    tables += [table("Modbus RTU round trips per second against `meterlink simulate bsm` over TCP (loopback):", timed, "/s"),
               ratios(timed, pairs)]
    emit(Report("bsm", f"BSM-WS36A benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", info, notes, tables), args.json)


if __name__ == "__main__":
    main()
