"""The adapter's network (issue 18 item 1): NetworkMachine run by NetworkController on the simulated
backend, under trio's MockClock.

A hypothesis stateful model drives power cycles, service restarts and crashes, factory resets,
wifi_config with right and wrong passwords, networks that vanish or never answer, and time passing,
and checks after every step: the access point is never up more than 10 minutes after the last
power-up or factory reset; it is up whenever the machine says the window is; the client the machine
believes in is the one joined; no password is ever in a log line, the state directory or a status.
Then one scenario per behaviour the issue names, and a check that every transition was taken.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from harness import Recorder
from meterlink.machines import base, transition_keys
from meterlink.machines.network import WINDOW_SECONDS, NetworkMachine
from meterlink.service.network import (
    NetworkController,
    WindowStore,
    access_point_ssid,
    derive_ap_password,
    device_access_point,
)
from meterlink.service.wifi import SEED_AP_PASSWORD, AccessPoint, SimulatedWifi
from trio_thread import TrioThread

RECORDER = Recorder()
base.observers.append(RECORDER)

HOME_PASSWORD = "home-password"
WRONG_PASSWORD = "wrong-password-42"
AP = AccessPoint("meterextension:ab12", "ap-secret-pw-77")
SECRETS = (HOME_PASSWORD, WRONG_PASSWORD, AP.password)


class TestWifi(SimulatedWifi):
    """The simulated backend with a network whose join never answers."""

    async def join(self, ssid: str) -> None:
        if ssid == "silent":
            await trio.sleep_forever()
        await super().join(ssid)


def test_backend() -> TestWifi:
    return TestWifi(networks={"home": HOME_PASSWORD, "cafe": None, "silent": HOME_PASSWORD})


test_backend.__test__ = False  # type: ignore[attr-defined]
TestWifi.__test__ = False  # type: ignore[attr-defined]


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class Adapter:
    """One adapter: its backend (NetworkManager, which outlives the service), its state directory,
    the boot it is in, and the service's controller, which restarts and crashes."""

    def __init__(self, loop: TrioThread, state: Path) -> None:
        self.loop = loop
        self.state = state
        self.backend = test_backend()
        self.boot = 0
        self.windows = [loop.now()]
        """When each access point window opened: power-ups and factory resets."""
        self.store = WindowStore(state / "network.json", boot_id=lambda: f"boot-{self.boot}", clock=loop.now)
        self.controller: NetworkController | None = None
        self._scope: trio.CancelScope | None = None
        self.start()

    def start(self) -> None:
        controller = NetworkController(self.backend, AP, self.store)
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await controller.run(task_status=task_status)

        async def start() -> None:
            assert self.loop.nursery is not None
            await self.loop.nursery.start(run)

        self.loop.call(start)
        self.controller, self._scope = controller, scope

    def stop(self, stop_post: bool = True) -> None:
        """SIGTERM or SIGKILL alike: the controller keeps nothing that it must write on the way out.
        Then systemd runs the unit's ExecStopPost, `meterlink network-down`, whatever ended the service."""
        assert self._scope is not None
        self.loop.call(self._cancel)
        if stop_post:
            self.loop.call(self.backend.stop_access_point)

    async def _cancel(self) -> None:
        assert self._scope is not None
        self._scope.cancel()

    async def _power_cut(self) -> None:
        self.backend.power_cut()

    def restart(self) -> None:
        self.stop()
        self.start()

    def power_cycle(self) -> None:
        self.stop()
        self.loop.call(self._power_cut)
        self.boot += 1
        self.windows.append(self.loop.now())
        self.start()

    def factory_reset(self) -> None:
        assert self.controller is not None
        self.loop.call(self.controller.factory_reset)
        self.windows.append(self.loop.now())

    def configure(self, ssid: str, password: str | None, mode: str) -> None:
        assert self.controller is not None
        self.loop.call(self.controller.configure, ssid, password, mode)

    @property
    def machine(self) -> NetworkMachine:
        assert self.controller is not None
        return self.controller.machine

    def access_point_overstays(self) -> list[tuple[float, float, float]]:
        """(up at, down at, window opened at) of every time the access point stayed up past its window."""
        changes = list(self.backend.ap_changes)
        if self.backend.access_point is not None:
            changes.append((self.loop.now(), False))
        overstays, up_at = [], None
        for at, up in changes:
            if up:
                up_at = at
            elif up_at is not None:
                opened = max(w for w in self.windows if w <= up_at)
                if at > opened + WINDOW_SECONDS:
                    overstays.append((up_at, at, opened))
                up_at = None
        return overstays


@pytest.fixture
def adapter(tmp_path: Path):
    loop = TrioThread()
    try:
        yield Adapter(loop, tmp_path)
    finally:
        loop.close()


# --- the stateful model ---------------------------------------------------------------------------


class NetworkModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.logs = Logs()
        logging.getLogger("meterlink").addHandler(self.logs)
        logging.getLogger("meterlink").setLevel(logging.DEBUG)
        self.directory = Path(tempfile.mkdtemp(prefix="meterlink-network-"))
        self.loop = TrioThread()
        self.adapter = Adapter(self.loop, self.directory)

    def teardown(self) -> None:
        self.loop.close()
        logging.getLogger("meterlink").removeHandler(self.logs)
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(seconds=st.sampled_from([0.5, 2.0, 4.0, 30.0, 59.0, 61.0, 299.0, 301.0, 599.0, 601.0, 900.0])
          | st.floats(0.0, 1200.0))
    def time_passes(self, seconds: float) -> None:
        self.loop.sleep(seconds)

    @rule(ssid=st.sampled_from(["home", "cafe", "silent", "nowhere"]),
          password=st.sampled_from([HOME_PASSWORD, WRONG_PASSWORD, None]),
          mode=st.sampled_from(["sta", "sta_ap"]))
    def wifi_config(self, ssid: str, password: str | None, mode: str) -> None:
        self.adapter.configure(ssid, password, mode)

    @rule()
    def home_network_lost(self) -> None:
        self.adapter.backend.lose()

    @rule()
    def factory_reset(self) -> None:
        self.adapter.factory_reset()

    @rule()
    def restart_or_crash(self) -> None:
        self.adapter.restart()

    @rule()
    def power_cycle(self) -> None:
        self.adapter.power_cycle()

    @precondition(lambda self: self.adapter.backend.joined is None)
    @rule(seconds=st.floats(0.0, 30.0))
    def crash_then_time_passes_before_the_restart(self, seconds: float) -> None:
        self.adapter.stop()
        self.loop.sleep(seconds)
        self.adapter.start()

    @invariant()
    def access_point_never_outlives_its_window(self) -> None:
        assert self.adapter.access_point_overstays() == [], (self.adapter.windows, self.adapter.backend.ap_changes)

    @invariant()
    def access_point_up_while_the_machine_says_so(self) -> None:
        machine = self.adapter.machine
        if machine.window.is_active:
            assert self.adapter.backend.access_point == AP

    @invariant()
    def the_client_the_machine_believes_in_is_joined(self) -> None:
        machine = self.adapter.machine
        if machine.client_up and self.adapter.backend.joined is not None:
            assert self.adapter.backend.joined == machine.ssid

    @invariant()
    def no_password_anywhere(self) -> None:
        texts = [*self.logs.lines, repr(self.loop.call(self.adapter.controller.status))]
        texts += [path.read_text(errors="replace") for path in self.directory.iterdir() if path.is_file()]
        for secret in SECRETS:
            assert not any(secret in text for text in texts)


NetworkModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_network_model = NetworkModel.TestCase


# --- scenarios ------------------------------------------------------------------------------------


def test_first_power_up_opens_the_access_point_for_ten_minutes(adapter: Adapter) -> None:
    assert adapter.backend.access_point == AP
    assert adapter.machine.state_name == "setup"
    adapter.loop.sleep(WINDOW_SECONDS - 0.002)
    assert adapter.backend.access_point == AP
    adapter.loop.sleep(0.002)
    assert adapter.backend.access_point is None
    assert adapter.machine.state_name == "unconfigured"
    assert adapter.backend.ap_changes == [(0.0, True), (WINDOW_SECONDS - 0.001, False)]


def test_a_restart_inside_the_window_keeps_its_end(adapter: Adapter) -> None:
    adapter.loop.sleep(400)
    adapter.restart()
    assert adapter.backend.access_point == AP
    adapter.loop.sleep(200)
    assert adapter.backend.access_point is None
    assert json.loads(adapter.store.path.read_text())["closed"] is True


def test_a_restart_after_the_window_never_reopens_it(adapter: Adapter) -> None:
    adapter.loop.sleep(700)
    adapter.restart()
    adapter.loop.sleep(5)
    assert adapter.backend.access_point is None
    assert adapter.machine.state_name == "unconfigured"


def test_wifi_config_after_the_window_joins_without_the_access_point(adapter: Adapter) -> None:
    """Reached over Ethernet: an unconfigured adapter whose window is over still takes wifi_config."""
    adapter.loop.sleep(700)
    adapter.configure("home", HOME_PASSWORD, "sta")
    assert adapter.machine.state_name == "connecting"
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "online" and adapter.backend.access_point is None


def test_a_crash_takes_the_access_point_down_until_the_restart(adapter: Adapter) -> None:
    adapter.loop.sleep(100)
    adapter.stop()
    assert adapter.backend.access_point is None
    adapter.loop.sleep(5)  # RestartSec
    adapter.start()
    assert adapter.backend.access_point == AP
    adapter.loop.sleep(495)
    assert adapter.backend.access_point is None


def test_an_access_point_left_up_past_the_window_is_taken_down_at_the_restart(adapter: Adapter) -> None:
    adapter.stop(stop_post=False)  # were ExecStopPost to fail, NetworkManager would keep the hotspot
    adapter.loop.sleep(700)
    assert adapter.backend.access_point == AP
    adapter.start()
    assert adapter.backend.access_point is None
    assert adapter.access_point_overstays() == [(0.0, 700.0, 0.0)]


def test_a_power_cycle_reopens_the_window(adapter: Adapter) -> None:
    adapter.loop.sleep(700)
    adapter.power_cycle()
    assert adapter.backend.access_point == AP
    assert adapter.machine.state_name == "setup"


def test_a_damaged_record_opens_a_new_window(adapter: Adapter) -> None:
    adapter.loop.sleep(700)
    adapter.stop()
    adapter.store.path.write_text("{not json")
    adapter.start()
    assert adapter.backend.access_point == AP


def test_sta_ap_keeps_the_access_point_beside_the_client_until_the_window_ends(adapter: Adapter) -> None:
    adapter.configure("home", HOME_PASSWORD, "sta_ap")
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "sharing"
    assert adapter.backend.joined == "home" and adapter.backend.access_point == AP
    adapter.loop.sleep(WINDOW_SECONDS)
    assert adapter.machine.state_name == "online" and adapter.backend.access_point is None


def test_sta_closes_the_access_point_once_joined(adapter: Adapter) -> None:
    adapter.configure("home", HOME_PASSWORD, "sta")
    assert adapter.machine.state_name == "joining" and adapter.backend.access_point == AP
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "online" and adapter.backend.access_point is None
    adapter.restart()
    adapter.loop.sleep(2)
    assert adapter.backend.access_point is None and adapter.machine.state_name == "online"


def test_a_wrong_password_goes_back_to_the_access_point_with_the_reason(adapter: Adapter) -> None:
    adapter.configure("home", WRONG_PASSWORD, "sta")
    adapter.loop.sleep(2)
    status = adapter.loop.call(adapter.controller.status)
    assert adapter.machine.state_name == "waiting" and adapter.backend.access_point == AP
    assert status.reason == "wrong password (the network refused it)"
    assert status.access_point == AP.ssid and status.configured == "home"


def test_a_configured_adapter_joins_at_once_after_a_power_cut_with_the_access_point_beside(adapter: Adapter) -> None:
    adapter.configure("home", HOME_PASSWORD, "sta")
    adapter.loop.sleep(2)
    adapter.loop.sleep(1000)
    adapter.power_cycle()
    assert adapter.machine.state_name == "joining" and adapter.backend.access_point == AP
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "sharing" and adapter.backend.joined == "home"
    adapter.loop.sleep(WINDOW_SECONDS)
    assert adapter.machine.state_name == "online" and adapter.backend.access_point is None


def test_after_the_window_a_lost_network_is_retried_with_backoff_in_client_mode(adapter: Adapter) -> None:
    adapter.configure("home", HOME_PASSWORD, "sta")
    adapter.loop.sleep(2)
    networks = adapter.backend.networks
    adapter.backend.networks = {}  # the router is gone
    adapter.backend.lose()
    adapter.loop.sleep(30)  # the watch notices within its interval
    assert adapter.machine.state_name == "retrying"
    joins = adapter.machine.counters["joins"]
    adapter.loop.sleep(5 + 2 + 10 + 2 + 20 + 2)
    assert adapter.machine.counters["joins"] == joins + 3
    assert adapter.machine.retry_delay == 40
    adapter.backend.networks = networks
    adapter.loop.sleep(40 + 2)
    assert adapter.machine.state_name == "online" and adapter.machine.reason is None
    assert adapter.backend.access_point is None


def test_a_join_that_never_answers_times_out(adapter: Adapter) -> None:
    adapter.configure("silent", HOME_PASSWORD, "sta")
    adapter.loop.sleep(60)
    assert adapter.machine.state_name == "waiting"
    assert adapter.machine.reason == "no answer within the connect timeout"
    adapter.configure("silent", HOME_PASSWORD, "sta")  # the user tries again at once
    assert adapter.machine.state_name == "joining"
    adapter.loop.sleep(WINDOW_SECONDS)
    joins = adapter.machine.counters["joins"]
    adapter.loop.sleep(400)
    assert adapter.machine.state_name in {"retrying", "connecting"}
    assert adapter.machine.counters["join_failures"] > 2 and adapter.machine.counters["joins"] > joins
    adapter.configure("home", HOME_PASSWORD, "sta")
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "online"


def test_factory_reset_returns_to_the_first_power_up_state(adapter: Adapter) -> None:
    adapter.configure("home", HOME_PASSWORD, "sta")
    adapter.loop.sleep(800)
    adapter.factory_reset()
    assert adapter.machine.state_name == "setup" and adapter.backend.access_point == AP
    assert adapter.loop.call(adapter.backend.configured) is None
    adapter.restart()
    assert adapter.backend.access_point == AP
    adapter.loop.sleep(WINDOW_SECONDS)
    assert adapter.backend.access_point is None and adapter.access_point_overstays() == []


def test_wifi_config_while_joining_or_after_the_window(adapter: Adapter) -> None:
    adapter.configure("silent", HOME_PASSWORD, "sta")
    adapter.configure("cafe", None, "sta_ap")
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "sharing" and adapter.backend.joined == "cafe"
    adapter.configure("home", HOME_PASSWORD, "sta")
    adapter.loop.sleep(WINDOW_SECONDS)
    for ssid in ("silent", "home", "home"):
        adapter.configure(ssid, HOME_PASSWORD, "sta")
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "online"
    adapter.configure("home", WRONG_PASSWORD, "sta")
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "retrying" and adapter.backend.access_point is None


def test_a_window_closing_while_joining_or_waiting_goes_on_in_client_mode(adapter: Adapter) -> None:
    adapter.loop.sleep(WINDOW_SECONDS - 1)
    adapter.configure("home", HOME_PASSWORD, "sta")
    adapter.loop.sleep(1)
    assert adapter.machine.state_name == "connecting"
    adapter.loop.sleep(1)
    assert adapter.machine.state_name == "online"
    adapter.power_cycle()
    adapter.backend.networks = {}
    adapter.loop.sleep(WINDOW_SECONDS - 1)
    assert adapter.machine.state_name == "waiting"
    adapter.loop.sleep(1)
    assert adapter.machine.state_name == "retrying"
    adapter.backend.networks = {"home": HOME_PASSWORD}
    adapter.power_cycle()
    adapter.loop.sleep(2)
    assert adapter.machine.state_name == "sharing"
    adapter.backend.lose()
    adapter.loop.sleep(30)
    assert adapter.machine.state_name == "waiting"  # lost beside the access point: retried, the AP stays up
    assert adapter.backend.access_point == AP


def test_the_access_point_name_and_password(tmp_path: Path) -> None:
    assert access_point_ssid("b8:27:eb:12:AB:cd") == "meterextension:abcd"
    access_point, new = device_access_point(tmp_path, "b8:27:eb:12:ab:cd", "device")
    again, new_again = device_access_point(tmp_path, "b8:27:eb:12:ab:cd", "device")
    assert new and not new_again and access_point == again
    assert len(access_point.password) == 12 and access_point.password != SEED_AP_PASSWORD
    assert access_point.password == derive_ap_password((tmp_path / "ap.secret").read_bytes())
    assert (tmp_path / "ap.secret").stat().st_mode & 0o777 == 0o600
    assert device_access_point(tmp_path, "b8:27:eb:12:ab:cd", "seed")[0].password == "welinkwmlink"
    assert access_point.password not in repr(access_point)
    other, _ = device_access_point(tmp_path / "other", "b8:27:eb:12:ab:cd", "device") if (tmp_path / "other").mkdir() is None else (None, None)
    assert other is not None and other.password != access_point.password


def test_every_network_transition_is_taken() -> None:
    missing = [str(key) for key in transition_keys(NetworkMachine) if key not in RECORDER.taken]
    assert missing == [], missing


def test_device_info_shows_the_label_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meterlink.cli import main

    config = tmp_path / "meterlink.toml"
    config.write_text(f'[adapter]\nstate_dir = "{tmp_path / "state"}"\n[network]\nbackend = "simulated"\n')
    assert main(["device-info", "--config", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    secret = (tmp_path / "state" / "ap.secret").read_bytes()
    assert shown["password"] == derive_ap_password(secret) and shown["ssid"].startswith("meterextension:")
    config.write_text(config.read_text() + 'ap_password = "seed"\n')
    assert main(["device-info", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["password"] == "welinkwmlink"
