"""The links' supervisor allows its restarts per link (issue 22: found by the soak).

With one limit for all links, two links whose port went away together (two meters behind one
serial-to-Ethernet converter) restarted more than 10 times in 60 s between them, although each
waited out its own backoff; the supervisor gave up and restarted every link, the healthy ones too.
"""

from __future__ import annotations

import random

import trio

from meterlink.service.config import SupervisorSection
from meterlink.service.run import supervisor_of_links
from meterlink.supervisor import ChildSpec, ChildState, IntensityExceeded


class PortGone(Exception):
    pass


def children(down_until: float, starts: dict[str, int]) -> list[ChildSpec]:
    def link(name: str, fails: bool):
        async def run() -> None:
            starts[name] += 1
            if fails and trio.current_time() < down_until:
                raise PortGone(f"{name}: the converter is gone")
            await trio.sleep_forever()
        return ChildSpec(name, run)

    return [link("house", True), link("heatpump", True), link("p1", False)]


async def states_after(seconds: float, specs: list[ChildSpec]) -> dict[str, ChildState]:
    supervisor = supervisor_of_links(specs, SupervisorSection(), random.Random(1))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)  # an IntensityExceeded would fail the test here
        await trio.sleep(seconds)
        states = {child.id: child.state for child in supervisor.status()}
        nursery.cancel_scope.cancel()
    return states


async def test_two_links_failing_together_leave_the_others_running(autojump_clock):
    starts = {"house": 0, "heatpump": 0, "p1": 0}
    states = await states_after(300, children(down_until=180, starts=starts))
    assert starts["p1"] == 1  # never restarted
    assert 7 <= starts["house"] <= 14 and 7 <= starts["heatpump"] <= 14  # each spaced by its backoff
    assert states == {"house": ChildState.RUNNING, "heatpump": ChildState.RUNNING, "p1": ChildState.RUNNING}


async def test_a_link_that_fails_at_once_each_time_still_makes_it_give_up(autojump_clock):
    """The limit still catches a crash loop: with no backoff, a link fails more than 10 times a
    minute per link."""
    starts = {"house": 0}

    async def run() -> None:
        starts["house"] += 1
        raise PortGone("house")

    settings = SupervisorSection(backoff_initial=0.01, backoff_max=0.01)
    supervisor = supervisor_of_links([ChildSpec("house", run)], settings, random.Random(1))
    try:
        await supervisor.run()
    except IntensityExceeded as error:
        assert error.child == "house"
    else:
        raise AssertionError("the supervisor did not give up")
    assert starts["house"] == 11
