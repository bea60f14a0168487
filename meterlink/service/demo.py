"""`meterlink demo`: the adapter with simulated meters on every link implemented so far (P1, M-Bus, HDLC
push, DLMS, the BSM-WS36A signing meter of a charging station on Modbus RTU, the AMIS meter's OMS on
M-Bus, wireless M-Bus through an iM871A stick, and an NES meter on its MEP port).

The simulators serve on loopback TCP, as real meters behind a serial-to-Ethernet converter would,
and the adapter reads them through the same supervised actors and serves the same API as
`meterlink run`. Nothing is kept: the state directory is a temporary one.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..protocols.readings import Reading, Value
from ..protocols.wmbus_receivers import Receiver
from ..simulators.amis import AMIS_DEMO_KEY, AmisMeterModel, run_amis_meter
from ..simulators.bsm import BsmMeter, run_bsm_meter
from ..simulators.clock import local_zone
from ..simulators.hdlc_push import HdlcPushMeterModel, push_notifications
from ..simulators.kaifa import DEMO_KEY, KaifaMeterModel, run_kaifa_meter
from ..simulators.kamstrup import OMNIPOWER_MAX_RECEIVE_PDU, KamstrupMeterModel, run_kamstrup_meter
from ..simulators.mep import DEMO_MEP_KEY, MepMeter, run_mep_meter
from ..simulators.p1 import P1MeterModel, push_telegrams
from ..simulators.wmbus import NES_DEMO_KEY, NES_ID, NesMeterModel, run_stick
from ..transports import serve_tcp
from .config import parse_config
from .ledclass import stand_in
from .run import Outputs, run_service
from .secrets import MeterKey, meter_slot


async def run_demo(
    listen: str,
    token: str | None,
    announce: Callable[[str], None],
    on_reading: Callable[[Reading], None] | None = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="meterlink-demo-") as state_dir:
        async with trio.open_nursery() as nursery:
            p1_url = await nursery.start(serve_tcp, _p1_meter, "tcp://127.0.0.1:0")
            mbus_url = await nursery.start(serve_tcp, _kaifa_meter, "tcp://127.0.0.1:0")
            hdlc_url = await nursery.start(serve_tcp, _hdlc_push_meter, "tcp://127.0.0.1:0")
            dlms_url = await nursery.start(serve_tcp, _kamstrup_meter, "tcp://127.0.0.1:0")
            amis_url = await nursery.start(serve_tcp, _amis_meter, "tcp://127.0.0.1:0")
            wmbus_url = await nursery.start(serve_tcp, _wmbus_stick, "tcp://127.0.0.1:0")
            bsm_url = await nursery.start(serve_tcp, _bsm_meter(), "tcp://127.0.0.1:0")
            mep_url = await nursery.start(serve_tcp, _mep_meter(), "tcp://127.0.0.1:0")
            config = parse_config(
                {
                    "adapter": {"state_dir": str(Path(state_dir))},
                    "http": {"listen": listen, "open_reads": LOOPBACK},
                    # Never the real Wi-Fi of the machine the demo runs on.
                    "network": {"backend": "simulated"},
                    # Never the real LEDs either: a directory standing in for /sys/class/leds.
                    "leds": {"sysfs": str(stand_in(Path(state_dir) / "leds", list(DEMO_LEDS.values()))), **DEMO_LEDS},
                    "link": [
                        {"name": "p1", "kind": "p1", "port": p1_url},
                        {"name": "mbus", "kind": "mbus", "port": mbus_url, "push_interval": 1.0},
                        {"name": "hdlc", "kind": "hdlc-push", "port": hdlc_url, "push_interval": 1.0},
                        {"name": "amis", "kind": "mbus", "payload": "oms", "port": amis_url, "push_interval": 1.0},
                        {"name": "wmbus", "kind": "wmbus", "receiver": "im871a", "port": wmbus_url, "push_interval": 2.0},
                        {"name": "dlms", "kind": "dlms", "port": dlms_url, "password": "12345", "poll_interval": 2.0,
                         "objects": DEMO_OBJECTS},
                        {"name": "bsm", "kind": "bsm", "port": bsm_url, "poll_interval": 2.0},
                        {"name": "mep", "kind": "mep", "port": mep_url, "poll_interval": 3.0},
                    ],
                },
                "demo",
            )
            outputs = Outputs([on_reading] if on_reading else [], {"mbus": MeterKey(DEMO_KEY), "hdlc": MeterKey(DEMO_KEY),
                                                                   "amis": MeterKey(AMIS_DEMO_KEY),
                                                                   meter_slot("wmbus", NES_ID): MeterKey(NES_DEMO_KEY),
                                                                   "mep": MeterKey(DEMO_MEP_KEY)},
                              updates=False)
            await run_service(config, announce, outputs, token=token)
            nursery.cancel_scope.cancel()


BERLIN = local_zone("Europe/Berlin")

DEMO_LEDS = {"power": "demo:green:power", "data": "demo:yellow:data", "fault": "demo:red:fault"}
"""The demo's stand-in LEDs, under leds/ in its state directory: watch them with
`watch -n 0.2 'grep . /tmp/meterlink-demo-*/leds/*/brightness'`."""

LOOPBACK = ["127.0.0.0/8", "::1"]
"""The demo's meters are simulated and its page is opened on the same machine: reading from there
needs no token (configuration commands still do)."""

DEMO_OBJECTS = [
    "1:1-1:0.0.1.255:2", "8:0-1:1.0.0.255:2", "3:1-1:1.7.0.255:2", "3:1-1:2.7.0.255:2", "3:1-1:1.8.0.255:2",
    "3:1-1:2.8.0.255:2", "3:1-1:32.7.0.255:2", "3:1-1:52.7.0.255:2", "3:1-1:72.7.0.255:2", "3:1-1:31.7.0.255:2",
    "3:1-1:51.7.0.255:2", "3:1-1:71.7.0.255:2",
]
"""What the demo polls from the simulated Kamstrup meter every 2 s (LLS association)."""


async def _p1_meter(stream: trio.abc.Stream) -> None:
    async with stream:
        await push_telegrams(stream, P1MeterModel())


async def _kaifa_meter(stream: trio.abc.Stream) -> None:
    async with stream:
        await run_kaifa_meter(stream, KaifaMeterModel(), interval=1.0)


async def _amis_meter(stream: trio.abc.Stream) -> None:
    async with stream:
        await run_amis_meter(stream, AmisMeterModel())


async def _wmbus_stick(stream: trio.abc.Stream) -> None:
    # A Linz Netz NES meter heard through an iM871A stick.
    async with stream:
        await run_stick(stream, Receiver.IM871A, NesMeterModel(), interval=2.0)


async def _hdlc_push_meter(stream: trio.abc.Stream) -> None:
    # An L+G E450 as some Austrian operators run it: encrypted, in general-block-transfer blocks.
    async with stream:
        await push_notifications(stream, HdlcPushMeterModel(key=DEMO_KEY, blocks=True, seed=2), interval=1.0)


_KAMSTRUP = KamstrupMeterModel(max_receive_pdu=OMNIPOWER_MAX_RECEIVE_PDU)
"""One meter for every connection, an OMNIPOWER that takes image blocks: an image sent through the
API survives the link's reconnections."""


async def _kamstrup_meter(stream: trio.abc.Stream) -> None:
    async with stream:
        await run_kamstrup_meter(stream, _KAMSTRUP)


def _bsm_meter() -> Callable[[trio.abc.Stream], Awaitable[None]]:
    """A charging station's BSM-WS36A with a vehicle charging; one meter for every connection, so
    its energy and counters outlive a reconnect."""
    meters: list[BsmMeter] = []

    async def serve(stream: trio.abc.Stream) -> None:
        if not meters:
            meters.append(BsmMeter(charging=True))
        async with stream:
            await run_bsm_meter(stream, meters[0])

    return serve


def _mep_meter() -> Callable[[trio.abc.Stream], Awaitable[None]]:
    """An NES MTR3000 on its MEP port with alert flags pending (its `00 00` pairs are skipped); one meter
    for every connection, so its registers and sequence number outlive a reconnect."""
    meters: list[MepMeter] = []

    async def serve(stream: trio.abc.Stream) -> None:
        if not meters:
            meters.append(MepMeter(alerts_pending=True))
        async with stream:
            await run_mep_meter(stream, meters[0])

    return serve


def summary(reading: Reading) -> str:
    """One line for a person: time, meter, net power and the phase voltages."""

    def value_of(cde: str) -> Value | None:
        # Whatever the channel: Kamstrup and seed 001's OMS meters number the same registers 1-1.
        found = [v for v in reading.values if v.obis and v.obis.startswith("1-") and v.obis.endswith(f":{cde}")]
        return min(found, key=lambda v: int(v.obis.split(":")[0].split("-")[1]), default=None)

    def watts(cde: str) -> float:
        value = value_of(cde)
        if value is None or not isinstance(value.value, (int, float)):
            return 0.0
        return float(value.value) * (1000 if value.unit == "kW" else 1)

    def volts(cde: str) -> str:
        value = value_of(cde)
        return f"{value.value:.1f}" if value is not None and isinstance(value.value, (int, float)) else "-"

    # A meter that states its net power (the BSM's SunSpec W, 16.7.0) is shown as it states it.
    power = watts("16.7.0.255") if value_of("16.7.0.255") else watts("1.7.0.255") - watts("2.7.0.255")
    phases = " ".join(volts(f"{c}.7.0.255") for c in (32, 52, 72))
    # A meter that sends no time of its own (the BSM's AC meter model) is shown at the adapter's
    # clock, in the central European time the demo's other meters keep.
    at = reading.captured_at or datetime.fromtimestamp(reading.received_at or 0, BERLIN).replace(tzinfo=None).isoformat(timespec="seconds")
    if at.endswith("Z"):  # a clock kept in UTC (the MEP meter's BT52), shown in the same local time
        at = datetime.fromisoformat(at[:-1] + "+00:00").astimezone(BERLIN).replace(tzinfo=None).isoformat(timespec="seconds")
    return f"{at}  {reading.link:<5} {reading.meter_id or '-':<14}  {power:+8.0f} W  {phases} V"
