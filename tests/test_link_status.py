"""What a user is shown of a link: its state by the diagrams' names, and a dropped frame as a
problem until readings come again (issue 11, items 8 and 9).

The web page's side of it is tested in test_web_browser.py.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from statemachine.graph import iterate_states
from statemachine.orderedset import OrderedSet

from meterlink.actors.link import LinkHooks, LinkStatus
from meterlink.actors.mbus import MBusLink, run_mbus
from meterlink.machines import all_machines
from meterlink.machines.base import LinkMachine
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.service.adapter import ApiPolicy
from meterlink.service.api import create_app
from meterlink.service.hub import ReadingsHub
from meterlink.simulators.kaifa import DEMO_KEY, KaifaMeterModel, push_one_way
from meterlink.transports import memory_link_pair
from test_mbus_actor import meter_clock, opener
from test_web import make_adapter

DIAGRAMS = Path(__file__).parent.parent / "diagrams"
MAIN_REGION = {"DlmsClient": "session", "DlmsMeter": "station", "HdlcPushReader": "push", "LedMachine": "power"}
"""The region of a parallel machine that says where the link is; the other (the frame receiver)
changes with every frame."""


def diagram_names(machine: type[LinkMachine]) -> dict[str, str]:
    """State id -> the name its committed Mermaid diagram shows (`state "NAME" as id`)."""
    text = (DIAGRAMS / f"{machine.__name__}.mmd").read_text()
    return {state_id: name for name, state_id in re.findall(r'^\s*state "([^"]*)" as (\w+)$', text, re.MULTILINE)}


def _path(state: Any) -> list[Any]:
    """The state and its ancestors, the outermost first."""
    path = []
    while state is not None:
        path.insert(0, state)
        state = state.parent
    return path


def put_in(machine: LinkMachine, leaf: Any) -> None:
    """Make `leaf` (and its compound ancestors) active in place of its region's current states; the
    other regions of a parallel state stay as they are."""
    leaf_path = _path(leaf)

    def other_region(state: Any) -> bool:
        common = [a for a, b in zip(_path(state), leaf_path) if a.id == b.id]
        return bool(common) and bool(common[-1].parallel) and common[-1].id != state.id

    kept = [state for state in machine.configuration if other_region(state)]
    machine.configuration = OrderedSet([*kept, *leaf_path])


def leaves(machine: LinkMachine) -> list[Any]:
    return [state for state in iterate_states(machine.states) if not state.states]


@pytest.mark.parametrize("machine_class", all_machines(), ids=lambda cls: cls.__name__)
def test_every_state_is_labelled_as_its_diagram_names_it(machine_class: type[LinkMachine]) -> None:
    names = diagram_names(machine_class)
    region = MAIN_REGION.get(machine_class.__name__)
    for leaf in leaves(machine_class()):
        machine = machine_class()
        put_in(machine, leaf)
        main = [state for state in machine.configuration if not state.states
                and (region is None or state.parent is None or region in {a.id for a in state.ancestors()})]
        assert len(main) == 1, (leaf.id, machine.state_name)
        assert machine.state_label == names[main[0].id], (leaf.id, machine.state_name)
        assert machine.state_label != machine.state_name  # never the id, never "associated,quiet"


async def links_answer(status: LinkStatus) -> dict[str, Any]:
    """GET /api/v1/links of an adapter with this one link, from a loopback client (open reads)."""
    adapter = replace(make_adapter(Path("/nonexistent"), ReadingsHub(), {status.name: status}),
                      policy=ApiPolicy(open_reads=(ipaddress.ip_network("127.0.0.0/8"),)))
    transport = httpx.ASGITransport(app=create_app(adapter), client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://adapter.local") as http:
        response = await http.get("/api/v1/links")
    assert response.status_code == 200
    [link] = response.json()["links"]
    return link


async def test_a_drop_is_shown_as_cleared_once_telegrams_decode_again(autojump_clock) -> None:
    # Issue 11 item 8: the meter pushes before its key is set (no_key), then meter_setkey; after
    # 90 decoded telegrams the drop is history, with the time it last happened.
    keys: list[CipherKeys] = []
    readings = []
    decoded_90 = trio.Event()

    def publish(reading) -> None:
        readings.append(reading)
        if len(readings) == 90:
            decoded_90.set()

    ours, theirs = memory_link_pair()
    status = LinkStatus("mbus", "mbus")
    run = partial(run_mbus, MBusLink("memory", push_interval=1.0), lambda: keys, LinkHooks(publish), status, opener(ours))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(push_one_way, theirs, KaifaMeterModel(), 1.0, meter_clock())
        nursery.start_soon(run)
        await trio.sleep(5.5)  # six telegrams, one a second from 0 s, none decoded
        without_key = await links_answer(status)
        keys.append(CipherKeys(DEMO_KEY))
        await decoded_90.wait()
        with_key = await links_answer(status)
        nursery.cancel_scope.cancel()

    assert without_key["state_label"] == "Data mode, between telegrams"
    assert without_key["drops"] == {"no_key": 6} and without_key["readings"] == 0
    assert without_key["last_drop"].startswith("no_key: ")
    assert without_key["last_drop_cleared"] is False and without_key["readings_since_drop"] == 0

    assert with_key["drops"] == {"no_key": 6} and with_key["readings"] == 90
    assert with_key["last_drop"] == without_key["last_drop"]
    assert with_key["last_drop_cleared"] is True and with_key["readings_since_drop"] == 90
    assert without_key["last_drop_at"] == with_key["last_drop_at"] <= readings[0].received_at
    assert with_key["counters"]["telegrams"] == 90  # the machine's own counters stay as they were
