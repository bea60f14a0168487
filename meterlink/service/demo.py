"""`meterlink demo`: the adapter with simulated meters on every link implemented so far.

The simulators serve on loopback TCP as real meters behind a serial-to-Ethernet converter would,
and the adapter reads them through the same supervised actors as `meterlink run`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import trio

from ..actors.link import LinkHooks, LinkStatus
from ..actors.p1 import P1Link, run_p1
from ..protocols.readings import Reading
from ..simulators.p1 import P1MeterModel, push_telegrams
from ..supervisor import ChildSpec, Supervisor
from ..transports import serve_tcp


async def run_demo(on_reading: Callable[[Reading], None], announce: Callable[[str], None]) -> None:
    async with trio.open_nursery() as nursery:
        meter_url = await nursery.start(serve_tcp, _p1_meter, "tcp://127.0.0.1:0")
        announce(f"simulated P1 meter on {meter_url}; readings follow (Ctrl-C to stop)")
        status = LinkStatus(name="p1", kind="p1")
        link = P1Link(meter_url)
        supervisor = Supervisor([ChildSpec("p1", partial(run_p1, link, LinkHooks(on_reading), status))], name="demo")
        nursery.start_soon(supervisor.run)


async def _p1_meter(stream: trio.abc.Stream) -> None:
    async with stream:
        await push_telegrams(stream, P1MeterModel())


def summary(reading: Reading) -> str:
    """One line for a person: time, meter, net power and the phase voltages."""
    def number(obis: str) -> float:
        value = reading.value_of(obis)
        return float(value.value) if value is not None and isinstance(value.value, (int, float)) else 0.0

    power_kw = number("1-0:1.7.0.255") - number("1-0:2.7.0.255")
    volts = " ".join(f"{number(f'1-0:{c}.7.0.255'):.1f}" for c in (32, 52, 72))
    return f"{reading.captured_at}  {reading.link}  {reading.meter_id}  {power_kw:+.3f} kW  {volts} V"
