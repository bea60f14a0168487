"""Safe self-update of meterlink (seed 000 ch. 3.1.2 and 3.4.5 firmware_update; seed 001 ch. C.7-8).

A signed bundle is downloaded to a staging area, its signature and every file's hash checked,
installed side by side into a new release directory, and only then is the `current` symlink
switched to it, after a pending record names the release and the one to go back to. The process
restarts into the new release, which must confirm its health within a deadline; if it does not, it
switches back. Every failure before the switch leaves `current` as it was (the shared exit of
`updating`). The machine only decides: service/update.py downloads, verifies, installs, switches
and restarts, and feeds back what happened.

A process killed at any point is taken up by `meterlink check-boot`, which the unit runs from the
base release before every start (service/update.py), and by `boot` here: a pending release that is
current is confirmed or rolled back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from statemachine import State

from .base import LinkMachine, StateTimeout
from .safety import Safety

DOWNLOAD_TIMEOUT = 600.0
CONFIRM_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Download:
    """Fetch the bundle into the staging area."""


@dataclass(frozen=True, slots=True)
class Verify:
    """Check the staged bundle's signature against the trusted keys and every file's hash."""


@dataclass(frozen=True, slots=True)
class Install:
    """Install the verified bundle into a new release directory, marked complete last."""


@dataclass(frozen=True, slots=True)
class Switch:
    """Write the pending record (new release, previous one, deadline), then switch `current`."""


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart the service into whatever `current` names."""


@dataclass(frozen=True, slots=True)
class Confirm:
    """The new release is healthy: drop the pending record, keep it."""


@dataclass(frozen=True, slots=True)
class RollBack:
    """Switch `current` back to the previous release and drop the pending record."""


@dataclass(frozen=True, slots=True)
class CleanUp:
    """Remove the staging area and a release directory left incomplete; `current` is untouched."""

    reason: str


UpdateAction = Download | Verify | Install | Switch | Restart | Confirm | RollBack | CleanUp


class UpdateMachine(LinkMachine):
    """Download, verify, install side by side, switch, restart, confirm or roll back."""

    starting = State("Starting: pending record read", initial=True)
    idle = State("Running a confirmed release")

    class updating(State.Compound, name="Updating (current unchanged)"):
        downloading = State("Downloading the bundle to staging", initial=True)
        verifying = State("Verifying the signature and every file's hash")
        installing = State("Installing side by side into releases/")
        switching = State("Pending record written, switching current")

    restarting = State("Restarting into current", final=True)
    confirming = State("New release running: confirming its health")
    rolling_back = State("Switching current back to the previous release")

    boot = starting.to(confirming, cond="pending") | starting.to(idle)
    update = idle.to(updating, on="begin")
    downloaded = updating.downloading.to(updating.verifying, on="verify")
    verified = updating.verifying.to(updating.installing, on="install")
    installed = updating.installing.to(updating.switching, on="switch")
    switched = updating.switching.to(restarting, on="restart_into_new")
    # Declared once from the whole compound: whatever step failed, current still names the release
    # that runs, and the staging area and an unfinished release directory go.
    failed = updating.to(idle, on="clean_up")
    download_timeout = updating.downloading.to(idle, on="timed_out")
    healthy = confirming.to(idle, on="confirm")
    unhealthy = confirming.to(rolling_back, on="roll_back")
    confirm_timeout = confirming.to(rolling_back, on="roll_back")
    rolled_back = rolling_back.to(restarting, on="restart")

    timeouts = (
        StateTimeout("downloading", after="download_timeout_seconds", event="download_timeout"),
        StateTimeout("confirming", after="confirm_seconds", event="confirm_timeout"),
    )

    safety = Safety(
        says="an update never leaves the device without a runnable release: `current` always names a release "
             "verified and installed whole, and the machine never settles (idle) with an unconfirmed release current",
        holds="current_complete && !(IN_idle && current_pending)",
        variables=("bool staged_verified = false", "bool staged_installed = false", "bool switch_target = false",
                   "bool current_complete = true", "bool current_pending = false", "bool previous_complete = true"),
        guards={"pending": "current_pending"},
        actions={
            "begin": "staged_verified = false; staged_installed = false; switch_target = false",
            "switch": "switch_target = staged_verified && staged_installed",
            "confirm": "current_pending = false",
            "roll_back": "current_complete = previous_complete; current_pending = false",
        },
        events={
            "verified": "staged_verified = true",
            "installed": "staged_installed = true",
            "switched": "previous_complete = current_complete; current_complete = switch_target; current_pending = true",
        },
        restart="",
        assumptions=(
            "service/update.py sends verified only when the bundle's signature and every file's hash held, and "
            "installed only when the release directory is complete (marked complete last); any failure is `failed`",
            "Switch writes the pending record (new and previous release), then switches `current` with one atomic "
            "rename: `switched` says it was switched, `failed` that `current` is as it was",
            "the process may be killed at any step; `boot` then reads whether `current` is a pending release (the "
            "pending guard), and roll_back switches back to the release the pending record names as previous",
        ),
    )

    def __init__(self, download_timeout: float = DOWNLOAD_TIMEOUT, confirm_seconds: float = CONFIRM_SECONDS,
                 counters: Counter[str] | None = None) -> None:
        self.download_timeout_seconds = download_timeout
        self.confirm_seconds = confirm_seconds
        """Left of the pending record's deadline when the machine boots (the deadline is on disk)."""
        self.result: str | None = None
        """What the last update came to, for system_status: None before any."""
        self.reason: str | None = None
        super().__init__(counters)

    # --- what the service feeds ---------------------------------------------------------------------

    def power_up(self, pending: bool, seconds_left: float = 0.0) -> None:
        """The service starts; `pending`: current is a release that was never confirmed."""
        if pending:
            self.confirm_seconds = max(0.0, seconds_left)
        self.send("boot", pending=pending)

    def fail(self, reason: str) -> None:
        self.send("failed", reason=reason)

    # --- guards -------------------------------------------------------------------------------------

    def pending(self, pending: bool) -> bool:
        return pending

    # --- actions ------------------------------------------------------------------------------------

    def begin(self) -> None:
        self.result, self.reason = "updating", None
        self.counters["updates"] += 1
        self.actions.append(Download())

    def verify(self) -> None:
        self.actions.append(Verify())

    def install(self) -> None:
        self.actions.append(Install())

    def switch(self) -> None:
        self.actions.append(Switch())

    def restart_into_new(self) -> None:
        self.result = "restarting"
        self.restart()

    def restart(self) -> None:
        self.actions.append(Restart())

    def clean_up(self, reason: str) -> None:
        self.result, self.reason = "refused", reason
        self.counters["refused"] += 1
        self.actions.append(CleanUp(reason))

    def timed_out(self) -> None:
        self.clean_up(f"the download did not finish within {self.download_timeout_seconds:g} s")

    def confirm(self) -> None:
        self.result, self.reason = "confirmed", None
        self.actions.append(Confirm())

    def roll_back(self, reason: str = "the new release did not confirm its health in time") -> None:
        self.result, self.reason = "rolled_back", reason
        self.counters["rolled_back"] += 1
        self.actions.append(RollBack())

    @property
    def busy(self) -> bool:
        """An update is under way: another one is refused."""
        return not bool(self.idle.is_active)
