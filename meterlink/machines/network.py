"""The adapter's own network: access point, then client of the home network (seed 000 ch. 2.1, 3.1).

After the first power-up the adapter opens its access point (`meterextension:xxxx`) for
configuration; wifi_config names the home network and the mode: `sta` (client only) or `sta_ap`
(client, with the access point beside it while the window lasts). The access point is up only
inside a window of 10 minutes from power-up or factory reset (seed 000 ch. 2.1.1: "disabled after
10 Minutes for security reasons"); after it, only a power cycle reopens it. A configured adapter
joins its home network at once after power-up, with the access point beside it during the window,
so a power cut never takes the home connection away; a join that fails inside the window keeps the
access point up and says why, one that fails after it retries with backoff.

The machine is pure and never sees a password: wifi_config hands the credentials to the backend
(NetworkManager keeps them), the machine only the network's name and the mode. The window's
deadline counts from when the window opened, not from entering a state: the controller keeps that
instant in the state directory (service/network.py), so a restart or a crash inside one boot never
reopens it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from statemachine import State

from .base import LinkMachine, StateTimeout
from .safety import Safety

WINDOW_SECONDS = 600.0
"""Seed 000 ch. 2.1.1: the access point is disabled after 10 minutes."""
CONNECT_TIMEOUT = 60.0
RETRY_FIRST = 5.0
RETRY_MAX = 300.0

ClientMode = Literal["sta", "sta_ap"]


@dataclass(frozen=True, slots=True)
class AccessPointUp:
    """Open the adapter's access point."""


@dataclass(frozen=True, slots=True)
class AccessPointDown:
    """Close the access point: the window is over (until the next power-up, or a factory reset)."""


@dataclass(frozen=True, slots=True)
class Join:
    """Join the home network the backend holds the credentials of."""

    ssid: str


@dataclass(frozen=True, slots=True)
class Forget:
    """Factory reset: forget the home network and its credentials, open a new window."""


NetworkAction = AccessPointUp | AccessPointDown | Join | Forget


class NetworkMachine(LinkMachine):
    """The adapter's Wi-Fi: access point window, joining the home network, client mode."""

    starting = State("Starting: window record read", initial=True)

    class running(State.Compound, name="Running"):
        class window(State.Compound, name="Access point up (10 min from power-up or factory reset)"):
            setup = State("Waiting for wifi_config", initial=True)
            joining = State("Joining the home network")
            waiting = State("Join failed: retrying after backoff")
            sharing = State("Client mode beside the access point")

        class after_window(State.Compound, name="Access point off until the next power-up"):
            unconfigured = State("No home network: power-cycle the adapter", initial=True)
            connecting = State("Joining the home network")
            retrying = State("Join failed: retrying after backoff")
            online = State("Client mode")

    start = (
        starting.to(running.window.setup, cond="window_open and not configured")
        | starting.to(running.window.joining, cond="window_open", on="join_beside")
        | starting.to(running.after_window.connecting, cond="configured", on="join")
        | starting.to(running.after_window.unconfigured)
    )
    # wifi_config: a new join from wherever the machine is (a join under way starts afresh).
    configure = (
        running.window.setup.to(running.window.joining, on=["remember", "join"])
        | running.window.joining.to(running.window.joining, on=["remember", "join"])
        | running.window.waiting.to(running.window.joining, on=["remember", "join"])
        | running.window.sharing.to(running.window.joining, on=["remember", "join"])
        | running.after_window.unconfigured.to(running.after_window.connecting, on=["remember", "join"])
        | running.after_window.connecting.to(running.after_window.connecting, on=["remember", "join"])
        | running.after_window.retrying.to(running.after_window.connecting, on=["remember", "join"])
        | running.after_window.online.to(running.after_window.connecting, on=["remember", "join"])
    )
    joined = (
        running.window.joining.to(running.window.sharing, cond="beside", on="joined_home")
        # sta: the home network is joined and the access point's job is done until the next power-up.
        | running.window.joining.to(running.after_window.online, on="joined_home")
        | running.after_window.connecting.to(running.after_window.online, on="joined_home")
    )
    join_failed = (
        running.window.joining.to(running.window.waiting, on="back_off")
        | running.after_window.connecting.to(running.after_window.retrying, on="back_off")
    )
    join_timeout = (
        running.window.joining.to(running.window.waiting, on="back_off")
        | running.after_window.connecting.to(running.after_window.retrying, on="back_off")
    )
    connection_lost = (
        running.window.sharing.to(running.window.waiting, on="back_off")
        | running.after_window.online.to(running.after_window.retrying, on="back_off")
    )
    retry = (
        running.window.waiting.to(running.window.joining, on="join")
        | running.after_window.retrying.to(running.after_window.connecting, on="join")
    )
    window_closes = (
        running.window.setup.to(running.after_window.unconfigured)
        | running.window.joining.to(running.after_window.connecting)
        | running.window.waiting.to(running.after_window.retrying)
        | running.window.sharing.to(running.after_window.online)
    )
    factory_reset = running.to(running.window, on="forget")

    timeouts = (
        StateTimeout("window", after="window_seconds", event="window_closes"),
        StateTimeout("joining", after="connect_timeout", event="join_timeout"),
        StateTimeout("connecting", after="connect_timeout", event="join_timeout"),
        StateTimeout("waiting", after="retry_delay", event="retry"),
        StateTimeout("retrying", after="retry_delay", event="retry"),
    )

    safety = Safety(
        says="the access point is never up after its 10-minute window without a power cycle",
        holds="!(ap_up && window_over)",
        variables=("bool ap_up = false", "bool window_over = false"),
        guards={"window_open": "!window_over"},
        actions={"on_enter_window": "ap_up = true", "on_exit_window": "ap_up = false",
                 "forget": "window_over = false"},
        events={"window_closes": "window_over = true"},
        environment=("!window_over && !ACCEPTS_window_closes && !IN_starting -> window_over = true",),
        restart="ap_up = ap_up && !window_over",
        assumptions=(
            "one boot: a power cycle starts a new model; the service may restart the machine at any step "
            "(a crash), and on a start after the window takes the access point down (service/network.py run); "
            "power_up follows the restart at once (the supervisor's restart delay is not modeled: a window "
            "that ends inside it leaves the access point up until the restarted controller takes it down)",
            "power_up's window_open is the controller's record: true while less than 10 minutes have passed "
            "since power-up or the last factory reset (a factory reset, `forget`, opens a new window)",
            "the window's end passes at any step; in a state that takes window_closes it passes with that "
            "event (the actor arms the window's deadline while `window` is active and sends it at the end)",
        ),
    )

    def __init__(
        self,
        window_seconds: float = WINDOW_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
        counters: Counter[str] | None = None,
    ) -> None:
        self.window_seconds = window_seconds
        """Counted from when the window opened (kept by the controller), not from entering the state."""
        self.connect_timeout = connect_timeout
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.ssid: str | None = None
        """The home network's name; its credentials are the backend's."""
        self.mode: ClientMode = "sta"
        self.failures = 0
        self.reason: str | None = None
        """Why the last join failed or the connection was lost, for wifi_status; None once joined."""
        self.beside_window = False
        super().__init__(counters)

    # --- what the controller feeds ---------------------------------------------------------------

    def power_up(self, window_open: bool, ssid: str | None) -> None:
        """The service starts: is the window of this boot still open, which home network is known."""
        self.ssid = ssid
        self.send("start", window_open=window_open)

    def wifi_config(self, ssid: str, mode: ClientMode) -> None:
        self.send("configure", ssid=ssid, mode=mode)

    def failed(self, reason: str) -> None:
        self.send("join_failed", reason=reason)

    def lost(self, reason: str) -> None:
        self.send("connection_lost", reason=reason)

    # --- guards ----------------------------------------------------------------------------------

    def window_open(self, window_open: bool) -> bool:
        return window_open

    def configured(self) -> bool:
        return self.ssid is not None

    def beside(self) -> bool:
        """Keep the access point beside the client: sta_ap, or joining after power-up."""
        return self.beside_window or self.mode == "sta_ap"

    # --- actions ---------------------------------------------------------------------------------

    def on_enter_window(self) -> None:
        self.actions.append(AccessPointUp())

    def on_exit_window(self) -> None:
        self.actions.append(AccessPointDown())

    def join_beside(self) -> None:
        self.beside_window = True
        self.join()

    def remember(self, ssid: str, mode: ClientMode) -> None:
        self.ssid, self.mode, self.beside_window, self.failures = ssid, mode, False, 0

    def join(self) -> None:
        assert self.ssid is not None
        self.counters["joins"] += 1
        self.actions.append(Join(self.ssid))

    def joined_home(self) -> None:
        self.failures, self.reason = 0, None

    def back_off(self, reason: str = "no answer within the connect timeout") -> None:
        self.failures += 1
        self.reason = reason
        self.counters["join_failures"] += 1

    def forget(self) -> None:
        self.ssid, self.mode, self.beside_window, self.failures, self.reason = None, "sta", False, 0, None
        self.actions.append(Forget())

    @property
    def retry_delay(self) -> float:
        """Doubles with each failure in a row, from retry_first up to retry_max."""
        return min(self.retry_max, self.retry_first * 2 ** max(0, self.failures - 1))

    @property
    def access_point_up(self) -> bool:
        return bool(self.window.is_active)

    @property
    def client_up(self) -> bool:
        return bool(self.sharing.is_active or self.online.is_active)
