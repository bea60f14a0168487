"""Status LEDs (issue 18 item 5, seed 001 ch. C.8): LedMachine run by LedActor on a directory that
stands in for /sys/class/leds, under trio's MockClock.

A hypothesis stateful model publishes readings, drops frames, makes links stale and well again,
opens and closes the access point, lets time pass and stops and restarts the actor, and checks
after every step what the LED files say: power is lit while the actor runs (steady, or blinking
while the access point is up) and dark once it stopped; the fault LED is on whenever a link is
stale or given up or the network failed; the data LED is never lit longer than a flash after the
last reading, so never for a stale link; the fault LED is dark when nothing is wrong and no frame
was dropped in the last minute. Then the writer against the stand-in (files as the kernel expects
them, a missing LED logged once), the observation of real link statuses, the `[leds]` config, the
service with `[leds]` end to end, and a check that every LedMachine transition was taken.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from harness import Recorder
from meterlink.actors.link import LinkStatus
from meterlink.machines import base, transition_keys
from meterlink.machines.leds import (
    BLINK_FAST,
    BLINK_SLOW,
    DROP_HOLD,
    FLASH_SECONDS,
    OFF,
    ON,
    LedMachine,
    Observation,
    Role,
)
from meterlink.service.config import ConfigError, parse_config
from meterlink.service.ledclass import LedClass, stand_in
from meterlink.service.leds import POLL_INTERVAL, LedActor, observe
from meterlink.supervisor import ChildState, ChildStatus
from processes import free_port, start_simulator, stop
from trio_thread import TrioThread

RECORDER = Recorder()
base.observers.append(RECORDER)

NAMES = {Role.POWER: "board:green:power", Role.DATA: "board:yellow:data", Role.FAULT: "board:red:fault"}
SETTLE = POLL_INTERVAL + 1e-6
"""Long enough for the actor to have looked at a change."""


def brightness(root: Path, role: Role) -> str:
    return (root / NAMES[role] / "brightness").read_text().strip()


class World:
    """What the actor looks at: counts and faults the model sets."""

    def __init__(self) -> None:
        self.readings = 0
        self.drops = 0
        self.faults: set[str] = set()
        self.access_point = False

    def look(self) -> Observation:
        return Observation(self.readings, self.drops, tuple(sorted(self.faults)), self.access_point)


class LedModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = stand_in(Path(tempfile.mkdtemp(prefix="meterlink-leds-")), list(NAMES.values()))
        self.loop = TrioThread()
        self.world = World()
        self.actor = LedActor(NAMES, LedClass(self.root), self.world.look)
        self.scope: trio.CancelScope | None = None
        self.last_reading = -1e9
        self.last_drop = -1e9
        self.start()

    # --- the actor's life ---

    def start(self) -> None:
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                await self.actor.run()

        async def start() -> None:
            assert self.loop.nursery is not None
            self.loop.nursery.start_soon(run)

        self.loop.call(start)
        self.scope = scope

    async def _cancel(self) -> None:
        assert self.scope is not None
        self.scope.cancel()

    @property
    def running(self) -> bool:
        return self.scope is not None

    @precondition(lambda self: self.running)
    @rule()
    def stop(self) -> None:
        self.loop.call(self._cancel)
        self.scope = None

    @precondition(lambda self: not self.running)
    @rule()
    def restart(self) -> None:
        self.start()
        self.loop.sleep(SETTLE)

    # --- the service ---

    @rule(readings=st.integers(1, 3))
    def publish(self, readings: int) -> None:
        self.world.readings += readings
        self.last_reading = self.loop.now()
        self.loop.sleep(SETTLE)

    @rule()
    def drop(self) -> None:
        self.world.drops += 1
        self.last_drop = self.loop.now()
        self.loop.sleep(SETTLE)

    @rule(fault=st.sampled_from(["p1: stale", "mbus: given up", "network: wrong password"]))
    def fault(self, fault: str) -> None:
        self.world.faults.add(fault)
        self.loop.sleep(SETTLE)

    @rule(data=st.data())
    def mend(self, data: st.DataObject) -> None:
        if self.world.faults:
            self.world.faults.discard(data.draw(st.sampled_from(sorted(self.world.faults))))
        self.loop.sleep(SETTLE)

    @rule(up=st.booleans())
    def access_point(self, up: bool) -> None:
        self.world.access_point = up
        self.loop.sleep(SETTLE)

    @rule(seconds=st.sampled_from([0.05, FLASH_SECONDS, 0.5, 1.0, 3.0, DROP_HOLD + 1]))
    def wait(self, seconds: float) -> None:
        self.loop.sleep(seconds)

    # --- what the LEDs say ---

    @invariant()
    def power_says_whether_the_service_runs(self) -> None:
        power = brightness(self.root, Role.POWER)
        if not self.running:
            assert all(brightness(self.root, role) == "0" for role in Role)
        elif self.world.access_point:
            assert self.actor.machine.patterns()[Role.POWER] == BLINK_SLOW
        else:
            assert power == "255"

    @invariant()
    def fault_is_on_whenever_a_link_or_the_network_is_down(self) -> None:
        if self.running and self.world.faults:
            assert brightness(self.root, Role.FAULT) == "255"
            assert self.actor.machine.patterns()[Role.FAULT] == ON

    @invariant()
    def fault_is_off_when_all_is_well(self) -> None:
        quiet = self.loop.now() - self.last_drop > DROP_HOLD + POLL_INTERVAL
        if self.running and not self.world.faults and quiet:
            assert brightness(self.root, Role.FAULT) == "0"

    @invariant()
    def data_never_stays_lit(self) -> None:
        # A stale link publishes nothing: the LED is dark once a flash has passed.
        if self.loop.now() - self.last_reading > FLASH_SECONDS + 2 * POLL_INTERVAL:
            assert brightness(self.root, Role.DATA) == "0"

    @invariant()
    def the_kernel_triggers_are_off(self) -> None:
        for name in NAMES.values():
            assert (self.root / name / "trigger").read_text() in ("none\n", "[none] timer heartbeat\n")

    def teardown(self) -> None:
        if self.running:
            self.loop.call(self._cancel)
        self.loop.close()
        shutil.rmtree(self.root)


TestLedModel = LedModel.TestCase
TestLedModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                 suppress_health_check=[HealthCheck.too_slow])


# --- scenarios ---------------------------------------------------------------------------------------


def test_every_transition_of_a_day_in_the_life() -> None:
    machine = LedMachine()
    seen = World()

    def look() -> None:
        machine.observe(seen.look())

    look()  # the first look only takes the counts
    assert machine.patterns() == {Role.POWER: ON, Role.DATA: OFF, Role.FAULT: OFF}
    seen.access_point = True
    look()
    assert machine.patterns()[Role.POWER] == BLINK_SLOW
    seen.access_point = False
    look()
    seen.readings += 1
    look()
    assert machine.patterns()[Role.DATA] == ON
    seen.readings += 1
    look()  # a second reading within the flash: the flash goes on, its deadline running
    assert machine.entries["flash"] == 1
    machine.send("flash_over")
    assert machine.patterns()[Role.DATA] == OFF
    seen.drops += 1
    look()
    assert machine.patterns()[Role.FAULT] == BLINK_FAST
    seen.drops += 1
    look()  # another drop: the minute starts again
    assert machine.entries["dropping"] == 2
    machine.send("drops_stopped")
    assert machine.patterns()[Role.FAULT] == OFF
    seen.faults.add("p1: stale")
    look()
    assert machine.patterns()[Role.FAULT] == ON and machine.faults == ("p1: stale",)
    seen.drops += 1
    look()  # a drop while down changes nothing
    assert machine.patterns()[Role.FAULT] == ON
    seen.faults.clear()
    look()
    seen.drops += 1
    look()
    seen.faults.add("network: wrong password")
    look()  # dropping, then down
    assert machine.patterns()[Role.FAULT] == ON
    machine.send("stop")
    assert machine.patterns() == {role: OFF for role in Role}
    machine.observe(seen.look())  # a look after the stop is ignored
    assert machine.is_terminated


def test_the_writer_writes_what_the_kernel_expects(tmp_path: Path) -> None:
    root = stand_in(tmp_path, ["led0"])
    leds = LedClass(root)
    assert leds.set("led0", True)
    assert (root / "led0" / "trigger").read_text() == "none\n"
    assert (root / "led0" / "brightness").read_text() == "255\n"
    assert leds.set("led0", False)
    assert (root / "led0" / "brightness").read_text() == "0\n"
    (root / "led1").mkdir()  # no max_brightness: 1, which the kernel clamps to the maximum anyway
    (root / "led1" / "trigger").write_text("[heartbeat] none\n")
    assert leds.set("led1", True)
    assert (root / "led1" / "brightness").read_text() == "1\n"
    assert (root / "led1" / "trigger").read_text() == "none\n"


def test_a_missing_led_is_logged_once_and_works_once_it_appears(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    leds = LedClass(tmp_path)
    with caplog.at_level(logging.ERROR, logger="meterlink.leds"):
        assert not leds.set("late", True)
        assert not leds.set("late", False)
    assert len(caplog.records) == 1 and "LED late" in caplog.records[0].getMessage()
    stand_in(tmp_path, ["late"])
    assert leds.set("late", True)
    assert (tmp_path / "late" / "brightness").read_text() == "255\n"


def test_a_failed_write_never_stops_the_actor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = stand_in(tmp_path, [NAMES[Role.POWER], NAMES[Role.FAULT]])
    (root / NAMES[Role.POWER] / "brightness").unlink()
    (root / NAMES[Role.POWER] / "brightness").mkdir()  # writing it fails with EISDIR
    world = World()
    actor = LedActor(NAMES, LedClass(root), world.look)

    async def main() -> None:
        with trio.move_on_after(5):
            await actor.run()

    with caplog.at_level(logging.ERROR, logger="meterlink.leds"):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len([r for r in caplog.records if NAMES[Role.POWER] in r.getMessage()]) == 1
    assert len([r for r in caplog.records if NAMES[Role.DATA] in r.getMessage()]) == 1  # no such LED
    assert (root / NAMES[Role.FAULT] / "brightness").read_text() == "0\n"  # off again after the stop


def test_blinking_switches_at_the_pattern_s_rate(tmp_path: Path) -> None:
    root = stand_in(tmp_path, list(NAMES.values()))
    world = World()
    world.faults.add("p1: stale")
    world.access_point = True
    actor = LedActor(NAMES, LedClass(root), world.look)
    switches: list[tuple[float, str]] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor.run)
            last = None
            for _ in range(int(10 / 0.05)):
                await trio.sleep(0.05)
                now = brightness(root, Role.POWER)
                if now != last:
                    switches.append((trio.current_time(), now))
                    last = now
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    gaps = [round(b[0] - a[0], 2) for a, b in zip(switches, switches[1:])]
    assert gaps and all(abs(gap - BLINK_SLOW.on_ms / 1000) <= 0.06 for gap in gaps), gaps
    assert brightness(root, Role.FAULT) == "0" and brightness(root, Role.POWER) == "0"


def test_observe_reads_links_supervisor_and_network() -> None:
    p1, mbus, dlms = LinkStatus("p1", "p1"), LinkStatus("mbus", "mbus"), LinkStatus("dlms", "dlms")
    p1.state, p1.readings = "stale", 4
    mbus.drops = Counter(bad_crc=2, wrong_key=1)
    hdlc = LinkStatus("hdlc", "hdlc-push", state="stale,quiet")
    children = (ChildStatus("mbus", ChildState.BACKOFF, 1, None, None, 0.5),
                ChildStatus("dlms", ChildState.FAILED, 5, None, None, None))
    seen = observe({"p1": p1, "mbus": mbus, "dlms": dlms, "hdlc": hdlc}, children, None)
    assert seen == Observation(4, 3, ("p1: stale", "mbus: restarting", "dlms: given up", "hdlc: stale"), False)


def test_leds_config() -> None:
    assert parse_config({}).leds.power is None
    leds = parse_config({"leds": {"power": "ACT", "fault": "red:fault", "sysfs": "/tmp/leds"}}).leds
    assert (leds.power, leds.data, leds.fault, str(leds.sysfs)) == ("ACT", None, "red:fault", "/tmp/leds")
    for document, message in [
        ({"leds": {"powr": "ACT"}}, "leds.powr: unknown key"),
        ({"leds": {"data": "../../etc"}}, "leds.data: String should match pattern"),
        ({"leds": {"data": ".."}}, "leds: an LED name is a directory under sysfs"),
        ({"leds": {"data": "ACT", "fault": "ACT"}}, "leds: power, data and fault must name different LEDs"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(document, "config")


def test_the_service_drives_the_stand_in_leds(tmp_path: Path) -> None:
    """`meterlink run` with [leds]: power on, data flashing with the P1 telegrams, fault on for a link
    whose port refuses; everything off after SIGTERM."""
    from test_service import Running

    sysfs = stand_in(tmp_path / "sysfs", list(NAMES.values()))
    meter, where = start_simulator("p1", "--listen", f"tcp://127.0.0.1:{free_port()}")
    port = free_port()
    config = tmp_path / "meterlink.toml"
    config.write_text(
        f'[adapter]\nstate_dir = "{tmp_path / "state"}"\ntoken = "leds-test-token"\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n[network]\nbackend = "none"\n'
        f'[leds]\nsysfs = "{sysfs}"\npower = "{NAMES[Role.POWER]}"\ndata = "{NAMES[Role.DATA]}"\n'
        f'fault = "{NAMES[Role.FAULT]}"\n'
        f'[[link]]\nname = "p1"\nkind = "p1"\nport = "{where.split()[-1]}"\n'
        f'[[link]]\nname = "gone"\nkind = "p1"\nport = "tcp://127.0.0.1:{free_port()}"\n', encoding="utf-8")
    service = Running("run", "--config", str(config), cwd=tmp_path)
    try:
        assert service.line().startswith("meterlink: serving")
        seen: dict[Role, set[str]] = {role: set() for role in Role}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (seen[Role.DATA] >= {"0", "255"} and "255" in seen[Role.FAULT]):
            for role in Role:
                seen[role].add(brightness(sysfs, role))
            time.sleep(0.02)
        assert seen[Role.DATA] >= {"0", "255"}, seen
        assert "255" in seen[Role.FAULT] and brightness(sysfs, Role.POWER) == "255"
        assert all((sysfs / name / "trigger").read_text() == "none\n" for name in NAMES.values())
    finally:
        _, code, stderr = service.stop()
        stop(meter)
    assert code == 0, stderr
    assert [brightness(sysfs, role) for role in Role] == ["0", "0", "0"]


def test_every_led_transition_was_taken() -> None:
    test_every_transition_of_a_day_in_the_life()
    missing = [str(key) for key in transition_keys(LedMachine) if key not in RECORDER.taken]
    assert missing == [], missing
