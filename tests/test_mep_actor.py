"""The MEP actor against the simulated meter over an in-memory stream, on trio's MockClock: the
port's segment timing, alerts and throttling as `run_mep_meter` produces them."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.mep import MepLink, MepSessionFailed, mep_key_of, run_mep
from meterlink.machines.base import Dropped
from meterlink.protocols.dlms.security import CipherKeys, KeysUnavailable
from meterlink.protocols.readings import Reading
from meterlink.simulators.mep import DEMO_MEP_KEY, MepMeter, PortFaults, run_mep_meter


async def _run(meter: MepMeter, key: bytes, seconds: float, faults: PortFaults | None = None) -> tuple[list[Reading], list[Dropped], LinkStatus, BaseException | None]:
    client_end, meter_end = trio.testing.memory_stream_pair()
    readings: list[Reading] = []
    drops: list[Dropped] = []
    status = LinkStatus("house", "mep")
    failure: BaseException | None = None

    async def opener() -> trio.abc.Stream:
        return client_end

    async def client() -> None:
        nonlocal failure
        try:
            await run_mep(MepLink("tcp://meter:1"), lambda: [CipherKeys(key)], LinkHooks(readings.append, drops.append), status, opener)
        except MepSessionFailed as error:
            failure = error

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_mep_meter, meter_end, meter, faults)
            nursery.start_soon(client)
    return readings, drops, status, failure


async def test_readings_every_poll_interval_with_alerts_pending(autojump_clock: trio.testing.MockClock) -> None:
    meter = MepMeter(alerts_pending=True, wallclock=lambda: 1_796_356_800.0)
    readings, drops, status, failure = await _run(meter, DEMO_MEP_KEY, 23.0)
    assert failure is None and drops == []
    assert len(readings) == 5 and {r.name for r in readings} == {"house"}
    values = {value.obis: value.value for value in readings[-1].values}
    assert values["1-0:1.7.0.255"] == 1500 and values["1-0:32.7.0.255"] == 230.1 and values["0-0:1.0.0.255"] == "2026-12-04T04:00:00Z"
    assert status.counters["alerts"] >= 5 and status.counters["sequence_resyncs"] == 1


async def test_an_optical_session_pauses_the_readings(autojump_clock: trio.testing.MockClock) -> None:
    faults = PortFaults()
    faults.optical_session(trio.current_time() + 3.0, 20.0)
    readings, _, status, failure = await _run(MepMeter(), DEMO_MEP_KEY, 40.0, faults)
    assert failure is None and status.counters["silences"] >= 1
    assert len(readings) >= 3


async def test_a_wrong_key_fails_the_session_as_a_key_error(autojump_clock: trio.testing.MockClock) -> None:
    readings, drops, status, failure = await _run(MepMeter(), bytes(16), 10.0)
    assert readings == [] and isinstance(failure, MepSessionFailed)
    assert str(failure) == "the meter rejects the key (authentication failure 0x0B, twice)"
    assert drops[-1].cause == "session_failed" and status.last_drop is not None and DEMO_MEP_KEY.hex() not in status.last_drop


def test_no_key_in_the_store() -> None:
    with pytest.raises(KeysUnavailable, match="meter_setkey"):
        mep_key_of([])
