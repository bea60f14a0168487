"""Carries out the update machine's decisions: files, downloads, pip and the restart (machines/update.py).

Layout under the state directory (the unit's `StateDirectory=`; `ProtectSystem=strict` keeps /opt
read-only, so releases live here):

    current                 symlink to the release that runs: the base release (install.sh's
                            /opt/meterlink/.venv) or releases/VERSION-N; switched with os.replace
    releases/VERSION-N/     a virtual environment; complete once meterlink-release.json is in it
    update/staging/         the bundle while it is downloaded and checked
    update/pending.json     the release switched to but not yet confirmed, the one before it, the
                            confirmation deadline (wall clock: it must hold across a reboot) and
                            how often it was booted
    update/status.json      what the last update came to, for system_status

`current` only ever names the base release or a complete release made from a verified bundle:
every step before the switch writes elsewhere, and the pending record is written before the
switch. `check_boot` runs before every start from the base release (the unit's ExecStartPre), so
going back never depends on the new release running: it rolls back a pending release booted too
often or past its deadline, repairs a `current` that names nothing usable, and removes leftovers
of an update that was cut off. `check_overdue` (a timer, from the base release too) rolls back a
release that runs but hangs, so neither confirms nor rolls itself back nor exits.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import mmap
import os
import re
import shutil
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import httpx
import trio

from ..machines.update import (CleanUp, Confirm, Download, Install, Restart, RollBack, Switch, UpdateAction,
                               UpdateMachine, Verify)
from .config import UpdateSection
from .release import BundleError, Host, Manifest, Opener, trusted_keys, unpack_wheels, verify_bundle

log = logging.getLogger("meterlink.update")

MARKER = "meterlink-release.json"
MAX_BOOTS = 3
"""Starts of a pending release before check_boot gives up on it: a release that crashes at once is
restarted by systemd every RestartSec."""
HEALTH_INTERVAL = 2.0
OVERDUE_GRACE = 60.0
"""After a pending release's deadline, the time its own timer has to roll it back before the
update-check timer does (service/update.check_overdue)."""
CERT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
DEFAULT_CERT = "ca_cert.pem"
"""Seed 000 ch. 3.4.5: `cert` is optional, default ca_cert.pem."""


class UpdateError(Exception):
    """An update that cannot start (a bad URL or cert name, an unusable upload); one line for the user."""


class UpdateBusy(UpdateError):
    """Another update is under way."""


class UploadTooLarge(UpdateError):
    pass


class Unhealthy(Exception):
    """The new release reports itself broken (its links' supervisor gave up): no need to wait."""


@dataclass(frozen=True)
class UpdatePaths:
    state_dir: Path
    base: Path
    """The release install.sh put in place; always complete, never removed."""
    keys_dir: Path
    ca_dir: Path

    @property
    def current(self) -> Path:
        return self.state_dir / "current"

    @property
    def releases(self) -> Path:
        return self.state_dir / "releases"

    @property
    def work(self) -> Path:
        return self.state_dir / "update"

    @property
    def staging(self) -> Path:
        return self.work / "staging"

    @property
    def pending(self) -> Path:
        return self.work / "pending.json"

    @property
    def status(self) -> Path:
        return self.work / "status.json"

    @property
    def uploads(self) -> Path:
        """An /ota upload while it is received and copied to staging."""
        return self.work / "upload"

    @property
    def lock(self) -> Path:
        return self.work / "lock"


@dataclass(frozen=True)
class UpdateSettings:
    max_size: int = 256 * 1024 * 1024
    download_timeout: float = 600.0
    confirm_seconds: float = 120.0
    max_boots: int = MAX_BOOTS
    restart_delay: float = 1.0
    """Between deciding and restarting: /ota's answer reaches the browser first."""


@dataclass(frozen=True)
class UrlSource:
    url: str
    cert: str | None = None


@dataclass(frozen=True)
class FileSource:
    """A bundle already on this machine (an /ota upload, or `meterlink update FILE`)."""

    path: Path


Source = UrlSource | FileSource


@dataclass
class Pending:
    release: str
    previous: str
    deadline: float
    version: str
    boots: int = 0


@dataclass
class Progress:
    """What system_status shows of an update under way."""

    received: int = 0
    expected: int | None = None
    version: str | None = None


def default_open(path: Path) -> BinaryIO:
    return path.open("wb")


# --- the file system: releases, current, the pending record ---------------------------------------


def target_of(paths: UpdatePaths) -> Path | None:
    """Where `current` points, or None when it is missing or not a symlink."""
    try:
        return Path(os.readlink(paths.current))
    except OSError:
        return None


def is_complete(release: Path, paths: UpdatePaths) -> bool:
    """The base release, or a release directory whose install finished (its marker is written last)."""
    if release == paths.base:
        return True
    return release.parent == paths.releases and (release / MARKER).is_file()


def switch_current(paths: UpdatePaths, release: Path) -> None:
    """Point `current` at `release` in one step: a new symlink renamed over the old one."""
    temporary = paths.state_dir / ".current.new"
    temporary.unlink(missing_ok=True)
    os.symlink(release, temporary)
    os.replace(temporary, paths.current)
    _sync_dir(paths.state_dir)


def _sync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(path: Path, data: bytes, opener: Opener = default_open) -> None:
    temporary = path.with_name(path.name + ".new")
    with opener(temporary) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def try_lock(paths: UpdatePaths) -> int | None:
    """The update lock's descriptor, or None while another process (the service, `meterlink update`)
    updates; the kernel drops the lock with the process, however it ends."""
    paths.work.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def read_pending(paths: UpdatePaths) -> Pending | None:
    try:
        return Pending(**json.loads(paths.pending.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Pending("", "", 0.0, "")  # damaged: names no release, so it is dropped


def write_status(paths: UpdatePaths, result: str, reason: str | None, version: str | None, now: float) -> None:
    try:
        paths.work.mkdir(parents=True, exist_ok=True)
        write_atomic(paths.status, json.dumps({"result": result, "reason": reason, "version": version,
                                               "at": now}).encode())
    except OSError as error:
        log.error("update: cannot record the result (%s)", error.strerror)


def read_status(paths: UpdatePaths) -> dict[str, object]:
    try:
        status = json.loads(paths.status.read_bytes())
        return status if isinstance(status, dict) else {}
    except (OSError, ValueError):
        return {}


def check_boot(paths: UpdatePaths, now: float, max_boots: int = MAX_BOOTS) -> str:
    """Before a start: leave `current` on a complete release, counting the boots of a pending one and
    rolling it back once it was booted `max_boots` times or its deadline passed. Returns what was done."""
    paths.work.mkdir(parents=True, exist_ok=True)
    paths.releases.mkdir(parents=True, exist_ok=True)
    done = []
    target = target_of(paths)
    pending = read_pending(paths)
    if target is None or not is_complete(target, paths):
        fallback = Path(pending.previous) if pending is not None and pending.previous else paths.base
        fallback = fallback if is_complete(fallback, paths) else paths.base
        switch_current(paths, fallback)
        done.append(f"current named no complete release ({target}): now {fallback}")
        target = fallback
    if pending is not None:
        if Path(pending.release) != target:
            paths.pending.unlink()
            done.append("a pending record of a release that is not current was dropped")
        else:
            pending.boots += 1
            if pending.boots > max_boots or now > pending.deadline:
                previous = Path(pending.previous)
                previous = previous if is_complete(previous, paths) else paths.base
                switch_current(paths, previous)
                paths.pending.unlink()
                why = (f"started {max_boots} times without confirming its health" if pending.boots > max_boots
                       else "not confirmed before its deadline")
                write_status(paths, "rolled_back", f"{pending.version} {why}", pending.version, now)
                done.append(f"rolled back to {previous}: {pending.version} {why}")
            else:
                write_atomic(paths.pending, json.dumps(asdict(pending)).encode())
                done.append(f"{pending.version}: start {pending.boots} of at most {max_boots}, not confirmed yet")
    lock = try_lock(paths)
    if lock is None:  # `meterlink update` runs from a shell: its staging and release are not leftovers
        done.append("an update is under way: its files are left alone")
    else:
        done += remove_leftovers(paths)
        os.close(lock)
    return "; ".join(done) or "nothing to do"


def check_overdue(paths: UpdatePaths, now: float, grace: float = OVERDUE_GRACE) -> str | None:
    """While the service runs (a timer, as root): switch back from a pending release that is `grace`
    seconds past its deadline without confirming, which its own timer should have done, so it hangs.
    Returns what was done, None when nothing was; the caller restarts the service."""
    pending = read_pending(paths)
    target = target_of(paths)
    if pending is None or target is None or Path(pending.release) != target or now <= pending.deadline + grace:
        return None
    previous = Path(pending.previous)
    previous = previous if is_complete(previous, paths) else paths.base
    switch_current(paths, previous)
    paths.pending.unlink()
    write_status(paths, "rolled_back", f"{pending.version} hung: not confirmed {grace:.0f} s after its deadline",
                 pending.version, now)
    return f"rolled back to {previous}: {pending.version} was not confirmed {grace:.0f} s after its deadline"


def remove_leftovers(paths: UpdatePaths) -> list[str]:
    """The staging area, and release directories neither complete nor current nor pending."""
    done = []
    for area in (paths.staging, paths.uploads):
        if area.exists():
            shutil.rmtree(area, ignore_errors=True)
            done.append(f"{area.name} removed")
    keep = {target_of(paths)}
    pending = read_pending(paths)
    if pending is not None:
        keep |= {Path(pending.release), Path(pending.previous)}
    for release in sorted(paths.releases.iterdir()) if paths.releases.is_dir() else []:
        if release not in keep and not is_complete(release, paths):
            shutil.rmtree(release, ignore_errors=True)
            done.append(f"unfinished {release.name} removed")
    return done


def prune(paths: UpdatePaths) -> None:
    """Keep the current release and the newest other complete one (the next rollback's target)."""
    current = target_of(paths)
    others = sorted((r for r in paths.releases.iterdir() if r != current and is_complete(r, paths)),
                    key=lambda r: (r / MARKER).stat().st_mtime)
    for release in others[:-1]:
        shutil.rmtree(release, ignore_errors=True)


def next_release_dir(paths: UpdatePaths, version: str) -> Path:
    numbers = [int(m.group(1)) for r in paths.releases.glob(f"{version}-*")
               if (m := re.fullmatch(re.escape(version) + r"-([0-9]+)", r.name))]
    return paths.releases / f"{version}-{max(numbers, default=0) + 1}"


# --- installing and downloading ------------------------------------------------------------------------


class Installer(Protocol):
    async def __call__(self, release: Path, wheels: Path, manifest: Manifest) -> None:
        """Make `release` a runnable meterlink from `wheels`, offline; raise InstallError."""


class InstallError(Exception):
    pass


async def venv_installer(release: Path, wheels: Path, manifest: Manifest) -> None:
    """A virtual environment with the bundle's requirement installed by pip from its wheels only."""
    for command in ([sys.executable, "-m", "venv", str(release)],
                    [str(release / "bin" / "python"), "-m", "pip", "install", "--no-index", "--no-cache-dir",
                     "--disable-pip-version-check", "--find-links", str(wheels), manifest.requirement]):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False, env=_pip_env())
        if done.returncode != 0:
            lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
            raise InstallError(f"{Path(command[0]).name} {command[2]} failed: {lines[-1] if lines else done.returncode}")


def _pip_env() -> dict[str, str]:
    """No pip configuration or PIP_* variables of this machine: the bundle's wheels are all there is;
    no PYTHONPATH, through which pip would take a meterlink outside the release for installed."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("PIP_") and name not in ("PYTHONPATH", "PYTHONHOME")} | {"PIP_CONFIG_FILE": os.devnull}


Fetcher = Callable[[Source, Path, Opener, Progress, int, UpdatePaths], Awaitable[None]]


def ssl_context(paths: UpdatePaths, cert: str | None) -> ssl.SSLContext:
    """The CA file `cert` names in the CA directory (seed 000: default ca_cert.pem), else the system's CAs."""
    name = cert or DEFAULT_CERT
    if not CERT_NAME.fullmatch(name) or name in (".", ".."):
        raise UpdateError("cert names a file in the adapter's CA directory, such as ca_cert.pem")
    path = paths.ca_dir / name
    if path.is_file():
        return ssl.create_default_context(cafile=str(path))
    return ssl.create_default_context()


def check_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise UpdateError("firmware_uri must be an http or https URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UpdateError("firmware_uri must be an http or https URL")
    return parsed


class DownloadFailed(Exception):
    pass


async def fetch(source: Source, dest: Path, opener: Opener, progress: Progress, limit: int, paths: UpdatePaths) -> None:
    """Copy the bundle to `dest`, at most `limit` bytes. The host rules of download_file do not apply:
    the signature decides. No redirects, no proxy from the environment."""
    with opener(dest) as out:
        if isinstance(source, FileSource):
            await trio.to_thread.run_sync(_copy_file, source.path, out, progress, limit)
            return
        url = check_url(source.url)
        verify: ssl.SSLContext | bool = ssl_context(paths, source.cert) if url.scheme == "https" else False
        try:
            async with httpx.AsyncClient(verify=verify, follow_redirects=False, trust_env=False,
                                         timeout=30.0) as client, client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise DownloadFailed(f"the server answered HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                progress.expected = int(declared) if declared.isdigit() else None
                if progress.expected is not None and progress.expected > limit:
                    raise DownloadFailed(f"the bundle is larger than the limit of {limit} bytes")
                async for chunk in response.aiter_raw():
                    _take(out, chunk, progress, limit)
                if progress.expected is not None and progress.received != progress.expected:
                    raise DownloadFailed("the download was cut short")
        except httpx.HTTPError as error:
            raise DownloadFailed(f"the download failed ({type(error).__name__})") from None


def _copy_file(path: Path, out: BinaryIO, progress: Progress, limit: int) -> None:
    try:
        with path.open("rb") as source:
            progress.expected = os.fstat(source.fileno()).st_size
            while chunk := source.read(1024 * 1024):
                _take(out, chunk, progress, limit)
    except FileNotFoundError:
        raise DownloadFailed(f"{path} does not exist") from None


def _take(out: BinaryIO, chunk: bytes, progress: Progress, limit: int) -> None:
    progress.received += len(chunk)
    if progress.received > limit:
        raise DownloadFailed(f"the bundle is larger than the limit of {limit} bytes")
    out.write(chunk)


def exit_for_restart() -> None:
    """The real restart: stop the service as SIGTERM does; systemd (Restart=always) starts `current`."""
    log.warning("update: stopping, so that systemd starts the release current names")
    os.kill(os.getpid(), signal.SIGTERM)


# --- the updater -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How an update ended in this process: restarting into it, or refused with the reason."""

    result: str
    reason: str | None
    version: str | None


@dataclass
class Updater:
    """The update machine run on the real file system (or the tests' stand-ins)."""

    paths: UpdatePaths
    settings: UpdateSettings = UpdateSettings()
    restart: Callable[[], None] = exit_for_restart
    health: Callable[[], Awaitable[bool]] | None = None
    """The new release's check: True when healthy, False not yet; raises Unhealthy when broken."""
    installer: Installer = venv_installer
    opener: Opener = default_open
    fetcher: Fetcher = fetch
    host: Host = field(default_factory=Host.this)
    clock: Callable[[], float] = time.time
    step: Callable[[UpdateAction], None] = lambda action: None
    """Called before each action is carried out: the tests kill the process there."""

    def __post_init__(self) -> None:
        self.machine = UpdateMachine(self.settings.download_timeout, self.settings.confirm_seconds)
        self.progress = Progress()
        self._source: Source | None = None
        self._manifest: Manifest | None = None
        self._release: Path | None = None
        self._done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._lock: int | None = None

    @property
    def bundle(self) -> Path:
        return self.paths.staging / "bundle.tar"

    def boot(self) -> None:
        """At start (after check_boot): a pending release that is current waits for its confirmation."""
        pending = read_pending(self.paths)
        ours = pending is not None and Path(pending.release) == target_of(self.paths)
        self.machine.power_up(ours, pending.deadline - self.clock() if ours and pending else 0.0)
        if ours and pending is not None:
            self.progress.version = pending.version
            log.warning("update: %s runs unconfirmed; confirming its health within %.0f s",
                        pending.version, self.machine.confirm_seconds)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The service's update task: confirm a pending release, then carry out updates as they come."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.machine.starting.is_active:
                self.boot()
            task_status.started()
            await self.confirm()
            await trio.sleep_forever()

    def start(self, source: Source) -> trio.Event:
        """Begin an update in the service's update task; the event is set when it ends in this process."""
        if self._nursery is None:
            raise UpdateError("the updater is not running")
        event = self._begin(source)
        self._nursery.start_soon(self._carry_out)
        return event

    async def update(self, source: Source) -> Outcome:
        """Run an update to its end in this process: restarting into the new release, or refused."""
        self._begin(source)
        await self._carry_out()
        return self.outcome()

    def outcome(self) -> Outcome:
        return Outcome(self.machine.result or "", self.machine.reason, self.progress.version)

    def _begin(self, source: Source) -> trio.Event:
        if self.machine.starting.is_active:
            self.boot()
        if self.machine.busy:
            raise UpdateBusy(f"an update is under way ({self.machine.state_label})")
        if isinstance(source, UrlSource):
            check_url(source.url)
            ssl_context(self.paths, source.cert)
        self._lock = try_lock(self.paths)
        if self._lock is None:
            raise UpdateBusy("another process is updating this adapter (meterlink update)")
        self._source, self._manifest, self._release = source, None, None
        self.progress = Progress()
        self._done = trio.Event()
        self.machine.send("update")
        return self._done

    async def _carry_out(self) -> None:
        try:
            await self._drive()
        except Exception as error:
            if not self.machine.updating.is_active:
                raise  # confirming or rolling back: the supervisor restarts the task, check-boot has the rest
            # A fault of meterlink's own before the switch: current is unchanged; refuse, clean up, go on.
            log.exception("update: unexpected error")
            self.machine.fail(f"internal error ({type(error).__name__})")
            await self._drive()
        finally:
            self._done.set()
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    async def _drive(self) -> None:
        while actions := self.machine.take_actions():
            for action in actions:
                self.step(action)
                await self._perform(action)
                if self.machine.restarting.is_active or self.machine.idle.is_active:
                    self._done.set()  # decided: /ota answers before the restart

    async def _perform(self, action: UpdateAction) -> None:
        match action:
            case Download():
                await self._download()
            case Verify():
                await self._verify()
            case Install():
                await self._install()
            case Switch():
                self._switch()
            case Restart():
                log.warning("update: restarting into %s", target_of(self.paths))
                await trio.sleep(self.settings.restart_delay)
                self.restart()
            case CleanUp(reason=reason):
                self._clean_up(reason)
            case Confirm():
                self._confirm_release()
            case RollBack():
                self._roll_back()

    async def _download(self) -> None:
        assert self._source is not None
        self.paths.staging.mkdir(parents=True, exist_ok=True)
        with trio.move_on_after(self.settings.download_timeout) as deadline:
            try:
                await self.fetcher(self._source, self.bundle, self.opener, self.progress, self.settings.max_size,
                                   self.paths)
            except (DownloadFailed, UpdateError) as error:
                self.machine.fail(str(error))
                return
            except OSError as error:
                self.machine.fail(_disk_problem("the download", error))
                return
        if deadline.cancelled_caught:
            self.machine.send("download_timeout")
            return
        self.machine.send("downloaded")

    async def _verify(self) -> None:
        try:
            self._manifest = await trio.to_thread.run_sync(
                verify_bundle, self.bundle, trusted_keys(self.paths.keys_dir), self.host)
        except BundleError as error:
            self.machine.fail(str(error))
            return
        self.progress.version = self._manifest.version
        self.machine.send("verified")

    async def _install(self) -> None:
        manifest = self._manifest
        assert manifest is not None
        try:
            self.paths.releases.mkdir(parents=True, exist_ok=True)
            self._release = release = next_release_dir(self.paths, manifest.version)
            release.mkdir()
            wheels = self.paths.staging / "wheels"
            await trio.to_thread.run_sync(unpack_wheels, self.bundle, manifest, wheels, self.opener)
            await self.installer(release, wheels, manifest)
            marker = {"version": manifest.version, "manifest_sha256": manifest.digest, "installed_at": self.clock()}
            write_atomic(release / MARKER, json.dumps(marker).encode(), self.opener)
        except (InstallError, BundleError) as error:
            self.machine.fail(f"the install failed: {error}")
            return
        except OSError as error:
            self.machine.fail(_disk_problem("the install", error))
            return
        self.machine.send("installed")

    def _switch(self) -> None:
        assert self._release is not None and self._manifest is not None
        previous = target_of(self.paths) or self.paths.base
        pending = Pending(str(self._release), str(previous), self.clock() + self.settings.confirm_seconds,
                          self._manifest.version)
        try:
            write_atomic(self.paths.pending, json.dumps(asdict(pending)).encode(), self.opener)
            switch_current(self.paths, self._release)
        except OSError as error:
            self.machine.fail(_disk_problem("the switch", error))
            return
        shutil.rmtree(self.paths.staging, ignore_errors=True)
        write_status(self.paths, "restarting", None, self._manifest.version, self.clock())
        self.machine.send("switched")

    def _clean_up(self, reason: str) -> None:
        log.warning("update refused, nothing changed: %s", reason)
        current = target_of(self.paths)
        pending = read_pending(self.paths)
        if pending is not None and self._release is not None and Path(pending.release) == self._release != current:
            self.paths.pending.unlink(missing_ok=True)
        if self._release is not None and self._release != current:
            shutil.rmtree(self._release, ignore_errors=True)
        shutil.rmtree(self.paths.staging, ignore_errors=True)
        write_status(self.paths, "refused", reason, self.progress.version, self.clock())

    async def confirm(self) -> None:
        """A pending release that runs: ask the health check until it answers healthy, it fails, or
        the deadline passes; then keep the release or roll back and restart."""
        if not self.machine.confirming.is_active:
            return
        with trio.move_on_after(self.machine.confirm_seconds):
            while True:
                try:
                    healthy = self.health is not None and await self.health()
                except Unhealthy as error:
                    self.machine.send("unhealthy", reason=f"the new release is unhealthy: {error}")
                    break
                if healthy:
                    self.machine.send("healthy")
                    break
                await trio.sleep(HEALTH_INTERVAL)
        if self.machine.confirming.is_active:
            self.machine.send("confirm_timeout")
        await self._drive()

    def _confirm_release(self) -> None:
        pending = read_pending(self.paths)
        self.paths.pending.unlink(missing_ok=True)
        version = pending.version if pending else None
        write_status(self.paths, "confirmed", None, version, self.clock())
        log.warning("update: %s confirmed healthy", version)
        prune(self.paths)

    def _roll_back(self) -> None:
        pending = read_pending(self.paths)
        previous = Path(pending.previous) if pending and pending.previous else self.paths.base
        previous = previous if is_complete(previous, self.paths) else self.paths.base
        switch_current(self.paths, previous)
        self.paths.pending.unlink(missing_ok=True)
        write_status(self.paths, "rolled_back", self.machine.reason, pending.version if pending else None, self.clock())
        log.error("update rolled back to %s: %s", previous, self.machine.reason)
        self.machine.send("rolled_back")

    def status(self) -> dict[str, object]:
        """For system_status: the machine's state, progress under way, and the last result recorded."""
        last = read_status(self.paths)
        return {"state": self.machine.state_label, "received": self.progress.received,
                "expected": self.progress.expected, "version": self.progress.version,
                "last_result": last.get("result"), "last_reason": last.get("reason"),
                "last_version": last.get("version")}


def from_config(state_dir: Path, section: UpdateSection) -> tuple[UpdatePaths, UpdateSettings]:
    paths = UpdatePaths(state_dir, section.base_release, section.keys_dir, section.ca_dir)
    return paths, UpdateSettings(section.max_size, section.download_timeout, section.confirm_seconds, section.max_boots)


# --- /ota uploads --------------------------------------------------------------------------------------


def multipart_boundary(content_type: str) -> bytes:
    kind, _, parameters = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise UpdateError("upload the bundle as multipart/form-data (the page's form does)")
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary" and 0 < len(value.strip('"')) <= 70:
            return value.strip('"').encode("latin-1")
    raise UpdateError("the multipart upload names no boundary")


async def save_upload(updater: Updater, content_type: str, body: AsyncIterator[bytes]) -> Path:
    """The file of a multipart/form-data upload, written to the staging area within the size limit."""
    boundary = multipart_boundary(content_type)
    if updater.machine.busy:
        raise UpdateBusy(f"an update is under way ({updater.machine.state_label})")
    # Not the staging area: `meterlink update` may be using it. The caller removes the upload.
    staging = updater.paths.uploads
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    raw, bundle = staging / "upload.raw", staging / "upload.tar"
    limit, size = updater.settings.max_size + 64 * 1024, 0
    try:
        with updater.opener(raw) as out:
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"the bundle is larger than the limit of {updater.settings.max_size} bytes")
                out.write(chunk)
        await trio.to_thread.run_sync(_file_part, raw, boundary, bundle, updater.opener)
    except OSError as error:
        raise UpdateError(_disk_problem("the upload", error)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        raw.unlink(missing_ok=True)
    return bundle


def _file_part(raw: Path, boundary: bytes, dest: Path, opener: Opener) -> None:
    """Copy the first part with a filename out of a multipart body, without reading it all into memory."""
    delimiter = b"--" + boundary
    with raw.open("rb") as source:
        if os.fstat(source.fileno()).st_size == 0:
            raise UpdateError("the upload is empty")
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as data:
            position = 0
            while (start := data.find(delimiter, position)) >= 0 and data[start + len(delimiter):start + len(delimiter) + 2] != b"--":
                headers_end = data.find(b"\r\n\r\n", start)
                end = data.find(b"\r\n" + delimiter, headers_end)
                if headers_end < 0 or end < 0:
                    raise UpdateError("the upload was cut short")
                if b"filename=" in data[start:headers_end].lower():
                    with opener(dest) as out:
                        for offset in range(headers_end + 4, end, 1024 * 1024):
                            out.write(data[offset:min(end, offset + 1024 * 1024)])
                    return
                position = end + 2
    raise UpdateError("the upload holds no file")


def _disk_problem(step: str, error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return f"{step} stopped: the disk is full"
    return f"{step} stopped: {error.strerror or error}"
