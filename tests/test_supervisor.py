"""The supervisor at work, on trio's autojump MockClock: every time below is virtual and exact."""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio

from meterlink.supervisor import (
    Backoff,
    ChildSpec,
    ChildState,
    ChildStatus,
    Intensity,
    IntensityExceeded,
    Restart,
    Strategy,
    Supervisor,
    exit_code_for,
)

STEADY = Backoff(initial=1, factor=1, maximum=1, jitter=0)  # every restart after exactly 1 s
DOUBLING = Backoff(initial=1, factor=2, maximum=8, jitter=0)  # 1, 2, 4, 8, 8, ... s
LENIENT = Intensity(max_restarts=1000, period=60)


@dataclass(frozen=True)
class Step:
    kind: str  # "fail", "exit" or "hang"
    after: float = 0.0


def fail(after: float = 0.0) -> Step:
    return Step("fail", after)


def exit_(after: float = 0.0) -> Step:
    return Step("exit", after)


HANG = Step("hang", math.inf)


@dataclass
class Recorder:
    """Scripted children that log (time, event, id) for start, fail, exit and cancelled."""

    events: list[tuple[float, str, str]] = field(default_factory=list)

    def child(self, id: str, *plan: Step, then: Step = HANG, restart: Restart = Restart.PERMANENT) -> ChildSpec:
        """Each run of the child takes the next step of `plan`; once that is used up, `then`."""
        steps = iter(plan)

        async def start() -> None:
            step = next(steps, then)
            self.log("start", id)
            try:
                await trio.sleep(step.after)
            except trio.Cancelled:
                self.log("cancelled", id)
                raise
            if step.kind == "fail":
                self.log("fail", id)
                raise RuntimeError(f"{id} broke")
            self.log("exit", id)

        return ChildSpec(id, start, restart)

    def log(self, event: str, id: str) -> None:
        self.events.append((trio.current_time(), event, id))

    def of(self, event: str) -> list[tuple[float, str]]:
        return [(t, id) for t, e, id in self.events if e == event]

    def starts(self, id: str) -> list[float]:
        return [t for t, child in self.of("start") if child == id]


def task_names() -> list[str]:
    """Names of every task alive in this trio run."""
    names = []

    def walk(task: trio.lowlevel.Task) -> None:
        names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return names


def by_id(statuses: tuple[ChildStatus, ...]) -> dict[str, ChildStatus]:
    return {status.id: status for status in statuses}


# --- strategies -------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy, restarted", [
    (Strategy.ONE_FOR_ONE, ["b"]),
    (Strategy.ONE_FOR_ALL, ["a", "b", "c", "d"]),
    (Strategy.REST_FOR_ONE, ["b", "c", "d"]),
])
async def test_strategy_picks_which_children_restart_and_in_which_order(
    autojump_clock: trio.testing.MockClock, strategy: Strategy, restarted: list[str],
) -> None:
    rec = Recorder()
    children = [rec.child("a"), rec.child("b", fail(after=2)), rec.child("c"), rec.child("d")]
    sup = Supervisor(children, strategy=strategy, backoff=STEADY)
    with trio.move_on_after(10):
        await sup.run()
    assert rec.of("start") == [(0, "a"), (0, "b"), (0, "c"), (0, "d")] + [(3, id) for id in restarted]
    assert sorted(rec.of("cancelled")) == [(2, id) for id in restarted if id != "b"] + [(10, id) for id in "abcd"]
    assert {s.id: s.restarts for s in sup.status()} == {id: int(id in restarted) for id in "abcd"}


async def test_group_restart_starts_children_in_order_every_time(autojump_clock: trio.testing.MockClock) -> None:
    # trio runs a batch of woken tasks in random order; the supervisor must not depend on it.
    ids = [f"c{i}" for i in range(6)]
    for _ in range(30):
        rec = Recorder()
        children = [rec.child(id, *([fail(after=1)] if id == "c3" else [])) for id in ids]
        with trio.move_on_after(5):
            await Supervisor(children, strategy=Strategy.ONE_FOR_ALL, backoff=STEADY).run()
        assert [id for _, id in rec.of("start")] == ids + ids


async def test_rest_for_one_restart_of_an_earlier_child_supersedes_a_pending_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    children = [rec.child("a"), rec.child("b", fail(after=2)), rec.child("c", fail(after=1))]
    sup = Supervisor(children, strategy=Strategy.REST_FOR_ONE, backoff=Backoff(4, 1, 4, 0))
    with trio.move_on_after(10):
        await sup.run()
    # c would have come back at 5, but b failed at 2 and took c along into its own restart at 6.
    assert rec.of("start") == [(0, "a"), (0, "b"), (0, "c"), (6, "b"), (6, "c")]
    assert [s.restarts for s in sup.status()] == [0, 1, 1]


async def test_group_restart_stops_temporary_and_revives_transient_children_as_otp_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    children = [
        rec.child("a", fail(after=2)),
        rec.child("temp", restart=Restart.TEMPORARY),
        rec.child("trans", exit_(after=1), restart=Restart.TRANSIENT),
    ]
    sup = Supervisor(children, strategy=Strategy.ONE_FOR_ALL, backoff=STEADY)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1.5)
        assert by_id(sup.status())["trans"].state is ChildState.STOPPED  # ended normally, left alone
        await trio.sleep(2)
        assert rec.of("start") == [(0, "a"), (0, "temp"), (0, "trans"), (3, "a"), (3, "trans")]
        assert rec.of("cancelled") == [(2, "temp")]
        states = {s.id: s.state for s in sup.status()}
        assert states == {"a": ChildState.RUNNING, "temp": ChildState.STOPPED, "trans": ChildState.RUNNING}
        nursery.cancel_scope.cancel()


async def test_a_child_that_raises_while_being_stopped_for_a_group_restart_has_not_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def messy() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise ValueError("cleanup went wrong") from None

    rec = Recorder()
    sup = Supervisor([rec.child("a", fail(after=2)), ChildSpec("messy", messy)],
                     strategy=Strategy.ONE_FOR_ALL, backoff=STEADY, intensity=Intensity(1, 60))
    with trio.move_on_after(10):
        await sup.run()  # a second counted restart would raise IntensityExceeded
    messy_status = by_id(sup.status())["messy"]
    assert (messy_status.restarts, messy_status.last_error) == (1, None)
    assert rec.starts("a") == [0, 3]


async def test_children_failing_at_the_same_moment_make_one_group_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    children = [rec.child("a", fail(after=2)), rec.child("b", fail(after=2)), rec.child("c")]
    sup = Supervisor(children, strategy=Strategy.ONE_FOR_ALL, backoff=STEADY, intensity=Intensity(1, 60))
    with trio.move_on_after(10):
        await sup.run()  # a second restart would exceed the intensity
    assert rec.of("start") == [(0, "a"), (0, "b"), (0, "c"), (3, "a"), (3, "b"), (3, "c")]
    assert [s.restarts for s in sup.status()] == [1, 1, 1]


class StepCounter(trio.abc.Instrument):
    """Counts the steps of one task; past `limit` it cancels `scope`, so that a busy loop ends the test."""

    def __init__(self, name: str, limit: int, scope: trio.CancelScope) -> None:
        self.name, self.limit, self.scope, self.steps = name, limit, scope, 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == self.name:
            self.steps += 1
            if self.steps > self.limit:
                self.scope.cancel()


async def test_a_restart_waits_for_a_slow_child_to_finish_stopping(autojump_clock: trio.testing.MockClock) -> None:
    async def slow() -> None:
        rec.log("start", "slow")
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(5)  # e.g. closing a port politely

    rec = Recorder()
    # temp's failure at 3 wakes the supervisor while slow is still stopping and the backoff is over.
    children = [rec.child("temp", fail(after=3), restart=Restart.TEMPORARY), rec.child("a", fail(after=1)),
                ChildSpec("slow", slow)]
    sup = Supervisor(children, strategy=Strategy.REST_FOR_ONE, backoff=STEADY)
    with trio.CancelScope() as guard:
        counter = StepCounter("supervisor", 100, guard)
        trio.lowlevel.add_instrument(counter)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.run, name="supervisor")
            await trio.sleep(10)
            nursery.cancel_scope.cancel()
    trio.lowlevel.remove_instrument(counter)
    assert counter.steps <= 100, "the supervisor loop spun while waiting"
    assert rec.of("start") == [(0, "temp"), (0, "a"), (0, "slow"), (6, "a"), (6, "slow")]


# --- restart types ----------------------------------------------------------------------------

@pytest.mark.parametrize("restart, step, restarted, end_state", [
    (Restart.PERMANENT, exit_(after=1), True, None),
    (Restart.PERMANENT, fail(after=1), True, None),
    (Restart.TRANSIENT, exit_(after=1), False, ChildState.STOPPED),
    (Restart.TRANSIENT, fail(after=1), True, None),
    (Restart.TEMPORARY, exit_(after=1), False, ChildState.STOPPED),
    (Restart.TEMPORARY, fail(after=1), False, ChildState.FAILED),
])
async def test_restart_type_decides_after_normal_exit_and_failure(
    autojump_clock: trio.testing.MockClock, restart: Restart, step: Step, restarted: bool,
    end_state: ChildState | None,
) -> None:
    rec = Recorder()
    sup = Supervisor([rec.child("x", step, restart=restart)], backoff=STEADY)
    with trio.move_on_after(10) as scope:
        await sup.run()
    if restarted:
        assert scope.cancelled_caught
        assert rec.starts("x") == [0, 2]
    else:
        # Nothing left that needs restarting: run() returns as soon as x has ended.
        assert not scope.cancelled_caught and trio.current_time() == 1
        assert rec.starts("x") == [0]
        assert sup.status()[0].state is end_state


async def test_temporary_failure_does_not_count_and_does_not_bring_others_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    children = [rec.child("a"), rec.child("temp", fail(after=1), restart=Restart.TEMPORARY), rec.child("c")]
    sup = Supervisor(children, strategy=Strategy.ONE_FOR_ALL, intensity=Intensity(max_restarts=0))
    with trio.move_on_after(10):
        await sup.run()
    assert rec.of("start") == [(0, "a"), (0, "temp"), (0, "c")]
    assert sorted(rec.of("cancelled")) == [(10, "a"), (10, "c")]
    temp = by_id(sup.status())["temp"]
    assert (temp.state, temp.restarts, temp.last_error) == (ChildState.FAILED, 0, "RuntimeError: temp broke")


async def test_run_returns_when_every_child_has_ended_without_needing_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    children = [
        rec.child("once", exit_(after=1), restart=Restart.TRANSIENT),
        rec.child("retry", fail(after=1), exit_(after=2), restart=Restart.TRANSIENT),
        rec.child("temp", fail(after=4), restart=Restart.TEMPORARY),
    ]
    sup = Supervisor(children, backoff=STEADY)
    await sup.run()
    assert trio.current_time() == 4
    assert rec.starts("retry") == [0, 2]
    states = {s.id: s.state for s in sup.status()}
    assert states == {"once": ChildState.STOPPED, "retry": ChildState.STOPPED, "temp": ChildState.FAILED}


async def test_run_without_children_returns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    await Supervisor([]).run()
    assert trio.current_time() == 0


async def test_a_child_failing_before_its_first_checkpoint_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def hasty() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("no config")
        await trio.sleep_forever()

    sup = Supervisor([ChildSpec("hasty", hasty)], backoff=STEADY)
    with trio.move_on_after(5):
        await sup.run()
    assert runs == 3
    assert (sup.status()[0].restarts, sup.status()[0].last_error) == (2, "RuntimeError: no config")


async def test_an_exception_group_from_a_child_is_a_failure(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def grouped() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ExceptionGroup("link down", [OSError("reset"), ValueError("bad frame")])
        await trio.sleep_forever()

    sup = Supervisor([ChildSpec("g", grouped)], backoff=STEADY)
    with trio.move_on_after(5):
        await sup.run()
    assert runs == 2
    assert sup.status()[0].last_error == "OSError: reset; ValueError: bad frame"


async def test_a_failure_inside_a_nursery_names_its_innermost_cause(autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 item 3: never "ExceptionGroup: Exceptions from Trio nursery (1 sub-exception)"."""

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as inner:
                inner.start_soon(partial(_raise, OSError(98, "Address already in use")))
            nursery.start_soon(trio.sleep_forever)

    sup = Supervisor([ChildSpec("http", serve)], backoff=STEADY, intensity=Intensity(0, 60))
    with pytest.raises(IntensityExceeded) as info:
        await sup.run()
    assert info.value.last_error == "OSError: [Errno 98] Address already in use"


async def _raise(error: Exception) -> None:
    raise error


# --- backoff ----------------------------------------------------------------------------------

async def test_backoff_doubles_per_failure_up_to_the_maximum(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    sup = Supervisor([rec.child("x", *[fail()] * 6)], backoff=DOUBLING, intensity=LENIENT)
    with trio.move_on_after(100):
        await sup.run()
    # delays 1, 2, 4, 8, 8, 8
    assert rec.starts("x") == [0, 1, 3, 7, 15, 23, 31]


async def test_backoff_jitter_comes_from_the_injected_rng(autojump_clock: trio.testing.MockClock) -> None:
    backoff = Backoff(initial=1, factor=2, maximum=8, jitter=0.2)
    rec = Recorder()
    sup = Supervisor([rec.child("x", *[fail()] * 6)], backoff=backoff, intensity=LENIENT, rng=random.Random(42))
    with trio.move_on_after(100):
        await sup.run()
    starts = rec.starts("x")
    delays = [later - earlier for earlier, later in zip(starts, starts[1:])]
    same_draws = random.Random(42)
    assert delays == pytest.approx([backoff.delay(n, same_draws) for n in range(6)])
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8]):
        assert 0.8 * base <= delay <= 1.2 * base
    assert delays != pytest.approx([1, 2, 4, 8, 8, 8])  # jitter did move them


async def test_backoff_starts_over_after_a_run_longer_than_the_maximum(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    plan = [fail(), fail(), fail(), fail(after=9), fail()]
    sup = Supervisor([rec.child("x", *plan)], backoff=DOUBLING, intensity=LENIENT)
    with trio.move_on_after(100):
        await sup.run()
    # delays 1, 2, 4; then a 9 s run (> 8 s maximum): 1 again, then 2.
    assert rec.starts("x") == [0, 1, 3, 7, 17, 19]


async def test_backoff_does_not_start_over_after_a_run_of_exactly_the_maximum(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    sup = Supervisor([rec.child("x", fail(), fail(), fail(after=8))], backoff=DOUBLING, intensity=LENIENT)
    with trio.move_on_after(100):
        await sup.run()
    assert rec.starts("x") == [0, 1, 3, 3 + 8 + 4]


async def test_group_restart_waits_the_failing_childs_backoff(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    children = [rec.child("a", fail(), fail(), fail()), rec.child("b", HANG, HANG, HANG, fail(after=1))]
    sup = Supervisor(children, strategy=Strategy.ONE_FOR_ALL, backoff=DOUBLING, intensity=LENIENT)
    with trio.move_on_after(20):
        await sup.run()
    # a's failures wait 1, 2, 4 s; b's first failure (at 8) waits b's own first delay, 1 s.
    assert rec.starts("a") == [0, 1, 3, 7, 9]
    assert rec.starts("b") == rec.starts("a")


# --- intensity --------------------------------------------------------------------------------

async def test_exactly_max_restarts_are_allowed_and_the_next_escalates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    sup = Supervisor([rec.child("x", then=fail()), rec.child("y")], name="links",
                     backoff=STEADY, intensity=Intensity(max_restarts=3, period=10))
    with pytest.raises(IntensityExceeded) as info:
        await sup.run()
    assert rec.starts("x") == [0, 1, 2, 3]  # the first run and 3 restarts
    assert trio.current_time() == 3
    assert (info.value.supervisor, info.value.child, info.value.last_error) == ("links", "x", "RuntimeError: x broke")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert rec.of("cancelled") == [(3, "y")]
    assert not [name for name in task_names() if name.startswith("links/")]
    states = {s.id: s.state for s in sup.status()}
    assert states == {"x": ChildState.FAILED, "y": ChildState.STOPPED}


@pytest.mark.parametrize("max_restarts, escalates", [(3, False), (2, True)])
async def test_intensity_counts_restarts_within_a_sliding_period(
    autojump_clock: trio.testing.MockClock, max_restarts: int, escalates: bool,
) -> None:
    # A restart every second: any 2.5 s window holds 3 of them.
    rec = Recorder()
    sup = Supervisor([rec.child("x", then=fail())], backoff=STEADY,
                     intensity=Intensity(max_restarts=max_restarts, period=2.5))
    with trio.move_on_after(20.5):
        if escalates:
            with pytest.raises(IntensityExceeded):
                await sup.run()
        else:
            await sup.run()
    assert len(rec.starts("x")) == (3 if escalates else 21)


async def test_a_restart_exactly_one_period_later_is_outside_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    sup = Supervisor([rec.child("x", then=fail())], backoff=Backoff(2, 1, 2, 0), intensity=Intensity(1, 2))
    with trio.move_on_after(9):
        await sup.run()
    assert rec.starts("x") == [0, 2, 4, 6, 8]


async def test_default_intensity_allows_ten_restarts_a_minute(autojump_clock: trio.testing.MockClock) -> None:
    # Ten children that fail at once: each waits its own first backoff, all ten restarts count.
    rec = Recorder()
    children = [rec.child(f"c{i}", fail()) for i in range(10)] + [rec.child("last", fail(after=59))]
    sup = Supervisor(children, rng=random.Random(3))
    with pytest.raises(IntensityExceeded) as info:
        await sup.run()
    assert trio.current_time() == 59
    assert len(rec.of("start")) == 21  # 11 first runs, 10 restarts
    assert info.value.child == "last"


# --- escalation through a tree ----------------------------------------------------------------

async def test_escalation_restarts_a_nested_supervisor_and_then_escalates_from_the_root(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    inner = Supervisor([rec.child("leaf", then=fail())], name="inner", backoff=DOUBLING, intensity=Intensity(1, 10))
    root = Supervisor([rec.child("sibling"), inner.as_child()], backoff=Backoff(5, 1, 5, 0),
                      intensity=Intensity(1, 100))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_expect_escalation, root)
        await trio.sleep(3)
        # inner gave up at 1 (its second restart); the root waits 5 s before restarting it.
        status = by_id(root.status())["inner"]
        assert (status.state, status.backoff, status.restarts) == (ChildState.BACKOFF, 5, 0)
        assert status.last_error is not None
        assert status.last_error.startswith("IntensityExceeded: supervisor 'inner'")
        assert status.children[0].id == "leaf" and status.children[0].state is ChildState.FAILED
        await trio.sleep(3.5)
        status = by_id(root.status())["inner"]
        assert (status.state, status.restarts) == (ChildState.RUNNING, 1)
        # A restarted supervisor starts afresh: leaf's backoff is 1 s again, not 2 s.
        assert (status.children[0].state, status.children[0].backoff) == (ChildState.BACKOFF, 1)
    assert rec.starts("leaf") == [0, 1, 6, 7]
    assert rec.starts("sibling") == [0]
    assert rec.of("cancelled") == [(7, "sibling")]


async def _expect_escalation(root: Supervisor) -> None:
    with pytest.raises(IntensityExceeded) as info:
        await root.run()
    assert (info.value.supervisor, info.value.child) == ("root", "inner")
    inner_escalation = info.value.__cause__
    assert isinstance(inner_escalation, IntensityExceeded)
    assert (inner_escalation.supervisor, inner_escalation.child) == ("inner", "leaf")
    assert isinstance(inner_escalation.__cause__, RuntimeError)


async def test_escalation_behind_a_nursery_arrives_as_a_group_and_maps_to_exit_code_1(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    root = Supervisor([rec.child("x", then=fail())], backoff=STEADY, intensity=Intensity(0, 10))
    caught: list[BaseException] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(root.run)
    except* IntensityExceeded as group:
        caught.append(group)
    assert len(caught) == 1 and isinstance(caught[0], ExceptionGroup)
    assert exit_code_for(caught[0]) == 1


# --- status -----------------------------------------------------------------------------------

async def test_status_reports_state_restarts_last_error_and_backoff(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    sup = Supervisor([rec.child("a", fail(after=2)), rec.child("b")], name="links",
                     backoff=Backoff(4, 1, 4, 0), wallclock=lambda: 1_700_000_000 + trio.current_time())
    idle = ChildStatus("a", ChildState.STOPPED, 0, None, None, None)
    assert sup.status()[0] == idle
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        assert [s.state for s in sup.status()] == [ChildState.RUNNING, ChildState.RUNNING]
        await trio.sleep(2)
        failed_at = 1_700_000_002
        assert sup.status()[0] == ChildStatus("a", ChildState.BACKOFF, 0, "RuntimeError: a broke", failed_at, 4)
        await trio.sleep(4)
        assert sup.status()[0] == ChildStatus("a", ChildState.RUNNING, 1, "RuntimeError: a broke", failed_at, None)
        assert sup.status()[1] == ChildStatus("b", ChildState.RUNNING, 0, None, None, None)
        nursery.cancel_scope.cancel()
    assert [s.state for s in sup.status()] == [ChildState.STOPPED, ChildState.STOPPED]
    assert sup.status()[0].restarts == 1  # history outlives the run


async def test_status_shows_a_nested_supervisor_as_a_tree(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    links = Supervisor([rec.child("mbus"), rec.child("p1", fail(after=1))], name="links", backoff=STEADY)
    root = Supervisor([rec.child("api"), links.as_child()])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(root.run)
        await trio.sleep(1.5)
        tree = root.status()
        nursery.cancel_scope.cancel()
    assert [(s.id, s.state) for s in tree] == [("api", ChildState.RUNNING), ("links", ChildState.RUNNING)]
    assert tree[0].children == ()
    assert [(s.id, s.state, s.backoff, s.last_error) for s in tree[1].children] == [
        ("mbus", ChildState.RUNNING, None, None), ("p1", ChildState.BACKOFF, 1, "RuntimeError: p1 broke")]
    assert [(s.id, s.state) for s in root.status()[1].children] == [
        ("mbus", ChildState.STOPPED), ("p1", ChildState.STOPPED)]


def test_as_child_takes_the_supervisors_name_unless_given_an_id() -> None:
    sup = Supervisor([], name="links")
    assert (sup.as_child().id, sup.as_child().restart) == ("links", Restart.PERMANENT)
    assert (sup.as_child("meters", Restart.TRANSIENT).id, sup.as_child("meters", Restart.TRANSIENT).restart) == (
        "meters", Restart.TRANSIENT)
    assert sup.as_child().start == sup.run


# --- cancellation and what must propagate -----------------------------------------------------

async def test_cancelling_run_cancels_every_child_and_leaves_no_task(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    inner = Supervisor([rec.child("leaf")], name="inner")
    sup = Supervisor([rec.child("a"), rec.child("b", fail(after=1)), inner.as_child()], backoff=Backoff(10, 1, 10, 0))
    with trio.move_on_after(5) as scope:
        await sup.run()
    assert scope.cancelled_caught  # the Cancelled went through run(), not swallowed by it
    assert sorted(rec.of("cancelled")) == [(5, "a"), (5, "leaf")]
    assert not [name for name in task_names() if name.startswith(("root/", "inner/"))]
    assert [s.state for s in sup.status()] == [ChildState.STOPPED, ChildState.STOPPED, ChildState.STOPPED]
    assert sup.status()[1].backoff is None
    assert inner.status()[0].state is ChildState.STOPPED


class Abort(BaseException):
    """Stands in for KeyboardInterrupt, which pytest would take as the user stopping the session."""


async def test_a_base_exception_from_a_child_propagates_and_stops_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def abort() -> None:
        await trio.sleep(1)
        raise Abort

    rec = Recorder()
    sup = Supervisor([rec.child("a"), ChildSpec("abort", abort)])
    with pytest.RaisesGroup(Abort):
        await sup.run()
    assert rec.of("cancelled") == [(1, "a")]
    assert sup.status()[1].last_error is None
    assert not [name for name in task_names() if name.startswith("root/")]


async def test_a_supervisor_runs_once_at_a_time(autojump_clock: trio.testing.MockClock) -> None:
    sup = Supervisor([ChildSpec("x", trio.sleep_forever)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await trio.sleep(1)
        with pytest.raises(RuntimeError, match="already running"):
            await sup.run()
        nursery.cancel_scope.cancel()


def test_child_ids_must_be_unique() -> None:
    with pytest.raises(ValueError, match="duplicate child ids"):
        Supervisor([ChildSpec("x", trio.sleep_forever), ChildSpec("x", trio.sleep_forever)])


# --- logging ----------------------------------------------------------------------------------

async def test_one_log_line_per_failure_restart_and_escalation(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="meterlink.supervisor")
    rec = Recorder()
    sup = Supervisor([rec.child("x", then=fail())], name="links", backoff=STEADY, intensity=Intensity(1, 10))
    with pytest.raises(IntensityExceeded):
        await sup.run()
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("meterlink.supervisor", "WARNING", "links: child x failed: RuntimeError: x broke"),
        ("meterlink.supervisor", "INFO", "links: restarting x in 1.000 s"),
        ("meterlink.supervisor", "WARNING", "links: child x failed: RuntimeError: x broke"),
        ("meterlink.supervisor", "ERROR",
         "links: more than 1 restarts in 10 s, giving up (child x, last error: RuntimeError: x broke)"),
    ]
