"""Safe self-update (issue 19): bundles, the boot check, and the update machine under faults.

A hypothesis stateful model runs updates with a fault injected at every step (a download cut short
or stalled, the disk full part-way through any write, an install that fails, a bad, altered,
unsigned or foreign bundle, a new release that is unhealthy, crashes at start or never answers) and
kills the process between any two steps or in the middle of a write; a killed or restarted process
is modelled by a new service made from what is on disk, after the unit's boot check. After every
step: `current` names the base release or a complete release installed from a bundle signed by the
trusted key, never anything else; an update that was refused changed nothing. Then one scenario per
path and a check that every UpdateMachine transition was taken. Time is trio's MockClock and a
wall clock the test moves by hand.
"""

from __future__ import annotations

import errno
import os
import json
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import trio
from cryptography.hazmat.primitives.serialization import load_pem_public_key
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from harness import Recorder
from meterlink.cli import main
from meterlink.machines import base, transition_keys
from meterlink.machines.update import UpdateAction, UpdateMachine
from meterlink.service.release import BundleError, Host, Manifest, sign_bundle, trusted_keys, verify_bundle
from meterlink.service.update import (MARKER, DownloadFailed, FileSource, InstallError, Outcome, Unhealthy, Updater,
                                      UpdatePaths, UpdateSettings, check_boot, fetch, is_complete, read_pending,
                                      read_status, target_of)
from update_rig import (HOST, KEY, OTHER_KEY, PUBLIC_KEY, adapter_layout, bundle, manifest_digest, tampered)

RECORDER = Recorder()
base.observers.append(RECORDER)

NOW = 4_000_000_000.0  # 2096: the overdue check run by the CLI (wall clock) sees no deadline passed
SETTINGS = UpdateSettings(max_size=32 * 1024, download_timeout=60.0, confirm_seconds=120.0, max_boots=3,
                          restart_delay=1.0)


class Killed(BaseException):
    """The process dies here (a power cut, SIGKILL): nothing after it runs."""


# --- bundles -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_bundles(tmp_path_factory.mktemp("bundles"))


def make_bundles(directory: Path) -> dict[str, Path]:
    good2 = bundle(directory, "2.0.0")
    return {
        "good2": good2,
        "good3": bundle(directory, "3.0.0"),
        "tampered": tampered(good2, directory / "t"),
        "unsigned": bundle(directory, "4.0.0", key=None),
        "other_signer": bundle(directory, "5.0.0", key=OTHER_KEY),
        "other_platform": bundle(directory, "6.0.0", platform="manylinux2014_armv7l" if HOST.machine != "armv7l"
                                 else "manylinux2014_aarch64"),
        "other_python": bundle(directory, "7.0.0", python="2.7"),
        "oversized": bundle(directory, "8.0.0", padding=SETTINGS.max_size),
    }


GOOD = ("good2", "good3")
TRUSTED = [load_pem_public_key(PUBLIC_KEY.read_bytes())]


def test_a_signed_bundle_is_verified(bundles: dict[str, Path]) -> None:
    manifest = verify_bundle(bundles["good2"], TRUSTED, HOST)
    assert (manifest.version, manifest.requirement, manifest.python) == ("2.0.0", "meterlink==2.0.0", HOST.python)
    assert [entry.path for entry in manifest.files] == ["wheels/meterlink-2.0.0-py3-none-any.whl"]


@pytest.mark.parametrize(("name", "why"), [
    ("tampered", "does not match the hash in the manifest"),
    ("unsigned", "the bundle is not signed"),
    ("other_signer", "the signature is not that of a trusted key"),
    ("other_platform", "this adapter is"),
    ("other_python", "the bundle is for Python 2.7"),
])
def test_a_bad_bundle_is_refused_with_the_reason(bundles: dict[str, Path], name: str, why: str) -> None:
    with pytest.raises(BundleError, match=why):
        verify_bundle(bundles[name], TRUSTED, HOST)


def test_only_the_trusted_keys_count(tmp_path: Path, bundles: dict[str, Path]) -> None:
    (tmp_path / "other.pem").write_bytes((PUBLIC_KEY.parent / "other_key.pub.pem").read_bytes())
    (tmp_path / "junk.pem").write_text("not a key")
    assert len(trusted_keys(tmp_path)) == 1
    with pytest.raises(BundleError, match="not that of a trusted key"):
        verify_bundle(bundles["good2"], trusted_keys(tmp_path), HOST)
    with pytest.raises(BundleError, match="no trusted update key"):
        verify_bundle(bundles["good2"], trusted_keys(tmp_path / "missing"), HOST)


def test_a_file_beside_the_manifest_is_refused(tmp_path: Path, bundles: dict[str, Path]) -> None:
    import io
    import tarfile

    smuggled = tmp_path / "smuggled.tar"
    shutil.copy(bundles["good2"], smuggled)
    with tarfile.open(smuggled, "a") as tar:
        info = tarfile.TarInfo("wheels/evil-1.0-py3-none-any.whl")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(BundleError, match="is in the bundle but not in its manifest"):
        verify_bundle(smuggled, TRUSTED, HOST)


def test_a_manifest_naming_a_path_outside_wheels_is_refused() -> None:
    document = {"format": 1, "name": "meterlink", "version": "1", "platform": "any", "python": "3.11",
                "requirement": "meterlink==1", "files": [{"path": "../../etc/passwd", "size": 1, "sha256": "00"}]}
    with pytest.raises(BundleError, match="only wheels/NAME.whl"):
        Manifest.from_bytes(json.dumps(document).encode())


def test_release_sign_adds_the_signature_once_and_never_prints_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unsigned = bundle(tmp_path, "2.1.0", key=None)
    assert main(["release", "sign", "--key", str(KEY), str(unsigned)]) == 0
    verify_bundle(unsigned, TRUSTED, HOST)
    assert main(["release", "sign", "--key", str(KEY), str(unsigned)]) == 2
    assert main(["release", "sign", "--key", str(tmp_path / "none.pem"), str(unsigned)]) == 2
    assert main(["release", "sign", "--key", str(PUBLIC_KEY), str(unsigned)]) == 2  # a public key cannot sign
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 3 and "signed already" in lines[0] and "cannot read" in lines[1] and "private key" in lines[2]
    key_body = "".join(KEY.read_text().splitlines()[1:-1])
    assert key_body not in captured.err


def test_release_build_offline_from_a_wheel_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`release build` as far as it goes without an index: an unusable checkout or wheel directory is
    a usage error (exit 2, one line). The real build, with pip download --platform, is the next test."""
    assert main(["release", "build", "--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    (tmp_path / "pyproject.toml").write_text("")
    assert main(["release", "build", "--source", str(tmp_path), "--wheels", str(tmp_path / "none")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "no pyproject.toml" in errors[0] and "not a directory" in errors[1]


def _index_reachable() -> bool:
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--dest", scratch, "setuptools"], capture_output=True, timeout=120)
    return done.returncode == 0


@pytest.mark.skipif(not _index_reachable(), reason="no package index reachable: release build needs one (or --wheels)")
def test_release_build_fetches_the_wheels_for_another_platform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real command on a one-module checkout, for aarch64: the bundle names that platform and its
    manifest hashes every file; signing it makes it verifiable by an aarch64 adapter only."""
    source = tmp_path / "src"
    (source / "meterlink").mkdir(parents=True)
    (source / "meterlink" / "__init__.py").write_text('RELEASE = "9.0.1"\n')
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "meterlink"\nversion = "9.0.1"\ndependencies = ["sniffio"]\n'
        '[tool.setuptools]\npackages = ["meterlink"]\n')
    assert main(["release", "build", "--source", str(source), "--out", str(tmp_path / "out"),
                 "--platform", "manylinux2014_aarch64", "--python", "3.11"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.name == "meterlink-9.0.1-manylinux2014_aarch64.tar"
    sign_bundle(path, KEY)
    manifest = verify_bundle(path, TRUSTED, Host("aarch64", "3.11"))
    assert sorted(entry.path.split("-")[0] for entry in manifest.files) == ["wheels/meterlink", "wheels/sniffio"]
    with pytest.raises(BundleError, match="manylinux2014_aarch64"):
        verify_bundle(path, TRUSTED, Host("x86_64", "3.11"))


# --- stand-ins for the disk, the installer, the process ----------------------------------------------------


class FaultyFile:
    """A file whose writes fail (ENOSPC) or kill the process once the budget of bytes is spent."""

    def __init__(self, file: BinaryIO, disk: Disk) -> None:
        self._file = file
        self._disk = disk

    def write(self, data: bytes) -> int:
        disk = self._disk
        if disk.budget is not None and disk.written + len(data) > disk.budget:
            self._file.write(data[:max(0, disk.budget - disk.written)])
            self._file.flush()
            disk.written = disk.budget
            if disk.fault == "kill":
                raise Killed()
            raise OSError(errno.ENOSPC, "No space left on device")
        disk.written += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        return self._file.fileno()

    def __enter__(self) -> FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


class Disk:
    def __init__(self) -> None:
        self.budget: int | None = None
        self.fault = "enospc"
        self.written = 0

    def open(self, path: Path) -> Any:
        return FaultyFile(path.open("wb"), self)


class Adapter:
    """One adapter's disk and its service processes: each start is a new Updater made from the disk."""

    def __init__(self, root: Path) -> None:
        self.paths = adapter_layout(root)
        self.now = NOW
        self.disk = Disk()
        self.kill_before: int | None = None
        """Kill the process before the action of this number (0: the first)."""
        self.steps = 0
        self.install_fails = False
        self.health: str = "healthy"
        self.fetch_fault: str | None = None
        self.restarts = 0
        self.alive = False
        self.updater: Updater | None = None
        self.start()

    # the process

    def start(self) -> str:
        """A service start: the unit's check-boot from the base release, then the service's updater boots."""
        done = check_boot(self.paths, self.now, SETTINGS.max_boots)
        self.updater = Updater(self.paths, SETTINGS, restart=self._restart, health=self._health,
                               installer=self._install, opener=self.disk.open, fetcher=self._fetch,
                               clock=lambda: self.now, step=self._step)
        self.updater.boot()
        self.alive, self.steps = True, 0
        return done

    def die(self) -> None:
        self.alive, self.updater = False, None

    def run(self, job: Any) -> Any:
        """Run a job of the live process under MockClock; a kill or a restart ends the process."""
        try:
            result = trio.run(job, clock=trio.testing.MockClock(autojump_threshold=0))
        except Killed:
            self.die()
            return None
        finally:
            self.disk.budget, self.kill_before = None, None
        if self.updater is not None and self.updater.machine.restarting.is_active:
            self.die()
        return result

    def update(self, path: Path) -> Outcome | None:
        updater = self.updater
        assert updater is not None
        return self.run(lambda: updater.update(FileSource(path)))

    def confirm(self) -> None:
        updater = self.updater
        assert updater is not None
        self.run(updater.confirm)

    # stand-ins

    def _restart(self) -> None:
        self.restarts += 1

    def _step(self, action: UpdateAction) -> None:
        if self.kill_before == self.steps:
            raise Killed()
        self.steps += 1

    async def _health(self) -> bool:
        if self.health == "unhealthy":
            raise Unhealthy("links failed")
        return self.health == "healthy"

    async def _install(self, release: Path, wheels: Path, manifest: Manifest) -> None:
        if self.install_fails:
            raise InstallError("pip install failed: No matching distribution found")
        (release / "bin").mkdir()
        with self.disk.open(release / "bin" / "meterlink") as out:
            out.write(f"#!/bin/sh\n# {manifest.version}\n".encode())

    async def _fetch(self, source: Any, dest: Path, opener: Any, progress: Any, limit: int, paths: UpdatePaths) -> None:
        if self.fetch_fault == "cut":
            with opener(dest) as out:
                out.write(source.path.read_bytes()[:100])
            raise DownloadFailed("the download was cut short")
        if self.fetch_fault == "stall":
            await trio.sleep_forever()
        await fetch(source, dest, opener, progress, limit, paths)

    # what is on disk

    @property
    def current(self) -> Path | None:
        return target_of(self.paths)

    def current_digest(self) -> str | None:
        current = self.current
        if current is None or current == self.paths.base:
            return None
        return json.loads((current / MARKER).read_text())["manifest_sha256"]


@pytest.fixture
def adapter(tmp_path: Path) -> Adapter:
    return Adapter(tmp_path)


# --- the stateful model -------------------------------------------------------------------------------------

FAULTS = ("none", "cut", "stall", "disk_full", "kill_writing", "install_fails", "kill_between_steps")
MODEL_BUNDLES: dict[str, Path] = {}


class UpdateModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        if not MODEL_BUNDLES:
            MODEL_BUNDLES.update(make_bundles(Path(tempfile.mkdtemp(prefix="meterlink-bundles-"))))
        self.good = {manifest_digest(MODEL_BUNDLES[name]) for name in GOOD}
        self.root = Path(tempfile.mkdtemp(prefix="meterlink-update-"))
        self.adapter = Adapter(self.root)

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _idle(self) -> bool:
        return self.adapter.alive and self.adapter.updater is not None and self.adapter.updater.machine.idle.is_active

    def _confirming(self) -> bool:
        return (self.adapter.alive and self.adapter.updater is not None
                and self.adapter.updater.machine.confirming.is_active)

    @precondition(lambda self: self._idle())
    # Good bundles twice as often: their faults reach the later steps. `at`: bytes written before a
    # disk-full or kill; a good update writes about 11 kB (the tar's 10 kB records, the wheel, the records).
    @rule(name=st.sampled_from(["good2", "good3", "good2", "good3", "tampered", "unsigned", "other_signer",
                                "other_platform", "other_python", "oversized"]),
          fault=st.sampled_from(FAULTS), at=st.integers(0, 12000))
    def update(self, name: str, fault: str, at: int) -> None:
        adapter = self.adapter
        before = adapter.current
        adapter.fetch_fault = fault if fault in ("cut", "stall") else None
        adapter.install_fails = fault == "install_fails"
        if fault in ("disk_full", "kill_writing"):
            adapter.disk.budget, adapter.disk.written = at, 0
            adapter.disk.fault = "kill" if fault == "kill_writing" else "enospc"
        if fault == "kill_between_steps":
            adapter.kill_before = at % 6
        outcome = adapter.update(MODEL_BUNDLES[name])
        adapter.fetch_fault, adapter.install_fails = None, False
        if outcome is not None and outcome.result == "refused":
            assert adapter.current == before, "a refused update changed current"
            assert name not in GOOD or fault != "none"
        if name not in GOOD:
            assert outcome is None or outcome.result == "refused"
        elif fault == "none":
            assert outcome is not None and outcome.result == "restarting"
            assert adapter.current_digest() == manifest_digest(MODEL_BUNDLES[name])

    @precondition(lambda self: not self.adapter.alive)
    @rule()
    def service_starts(self) -> None:
        self.adapter.start()
        pending = read_pending(self.adapter.paths)
        if pending is not None and Path(pending.release) == self.adapter.current:
            # An unconfirmed release runs neither more often than allowed nor past its deadline.
            assert pending.boots <= SETTINGS.max_boots and self.adapter.now <= pending.deadline

    @precondition(lambda self: self._confirming())
    @rule(health=st.sampled_from(["healthy", "unhealthy", "silent"]), killed=st.booleans())
    def new_release_checks_its_health(self, health: str, killed: bool) -> None:
        self.adapter.health = health
        self.adapter.kill_before = 0 if killed else None
        self.adapter.confirm()

    @precondition(lambda self: self._confirming())
    @rule()
    def new_release_crashes_at_start(self) -> None:
        self.adapter.die()

    @precondition(lambda self: self.adapter.alive)
    @rule()
    def power_cut(self) -> None:
        self.adapter.die()

    @rule(seconds=st.sampled_from([1.0, 60.0, 200.0]))
    def wall_clock_moves(self, seconds: float) -> None:
        self.adapter.now += seconds

    @invariant()
    def current_is_a_complete_verified_release(self) -> None:
        adapter = self.adapter
        current = adapter.current
        assert current is not None
        assert is_complete(current, adapter.paths)
        assert (current / "bin" / "meterlink").is_file()
        if current != adapter.paths.base:
            assert adapter.current_digest() in self.good

    @invariant()
    def a_confirmed_release_has_no_pending_record(self) -> None:
        if self._idle():
            pending = read_pending(self.adapter.paths)
            assert pending is None or Path(pending.release) != self.adapter.current


TestUpdateModel = UpdateModel.TestCase
TestUpdateModel.settings = settings(max_examples=100, stateful_step_count=14, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# --- scenarios -----------------------------------------------------------------------------------------------


def test_a_good_update_restarts_into_the_new_release_which_confirms_itself(adapter: Adapter, bundles: dict[str, Path]) -> None:
    outcome = adapter.update(bundles["good2"])
    assert outcome == Outcome("restarting", None, "2.0.0")
    assert adapter.restarts == 1 and not adapter.alive
    assert adapter.current is not None and adapter.current.name == "2.0.0-1"
    assert not adapter.paths.staging.exists()
    assert "start 1 of at most 3" in adapter.start()
    assert adapter.updater is not None and adapter.updater.machine.confirming.is_active
    adapter.confirm()
    assert adapter.updater.machine.idle.is_active and read_pending(adapter.paths) is None
    assert read_status(adapter.paths)["result"] == "confirmed"
    assert adapter.updater.status()["last_version"] == "2.0.0"


@pytest.mark.parametrize("health", ["unhealthy", "silent"])
def test_an_unhealthy_or_silent_release_is_rolled_back(adapter: Adapter, bundles: dict[str, Path], health: str) -> None:
    adapter.update(bundles["good2"])
    adapter.start()
    adapter.confirm()
    first = adapter.current
    adapter.update(bundles["good3"])
    adapter.start()
    adapter.health = health
    adapter.confirm()
    assert adapter.current == first and adapter.restarts == 3
    status = read_status(adapter.paths)
    assert status["result"] == "rolled_back" and status["version"] == "3.0.0"
    assert ("links failed" if health == "unhealthy" else "did not confirm its health in time") in str(status["reason"])


def test_a_release_that_crashes_at_every_start_is_rolled_back_by_the_boot_check(adapter: Adapter, bundles: dict[str, Path]) -> None:
    adapter.update(bundles["good2"])
    for boot in (1, 2, 3):
        assert f"start {boot} of at most 3" in adapter.start()
        adapter.die()
    assert "rolled back" in adapter.start() and adapter.current == adapter.paths.base
    assert adapter.updater is not None and adapter.updater.machine.idle.is_active


def test_a_release_started_after_its_deadline_is_rolled_back_by_the_boot_check(adapter: Adapter, bundles: dict[str, Path]) -> None:
    adapter.update(bundles["good2"])
    adapter.now += SETTINGS.confirm_seconds + 1
    assert "not confirmed before its deadline" in adapter.start()
    assert adapter.current == adapter.paths.base


def test_a_stalled_download_times_out_and_changes_nothing(adapter: Adapter, bundles: dict[str, Path]) -> None:
    adapter.fetch_fault = "stall"
    outcome = adapter.update(bundles["good2"])
    assert outcome is not None and outcome.result == "refused" and "did not finish within 60 s" in str(outcome.reason)
    assert adapter.current == adapter.paths.base and not adapter.paths.staging.exists()


def test_a_full_disk_during_the_install_leaves_nothing_behind(adapter: Adapter, bundles: dict[str, Path]) -> None:
    size = bundles["good2"].stat().st_size
    adapter.disk.budget = size + 100  # the download fits, the wheel's copy does not
    outcome = adapter.update(bundles["good2"])
    assert outcome is not None and outcome.reason == "the install stopped: the disk is full"
    assert adapter.current == adapter.paths.base
    assert list(adapter.paths.releases.iterdir()) == []


def test_a_kill_between_the_switch_and_the_restart_runs_the_new_release(adapter: Adapter, bundles: dict[str, Path]) -> None:
    adapter.kill_before = 4  # Download, Verify, Install, Switch, [killed] Restart
    assert adapter.update(bundles["good2"]) is None and not adapter.alive
    adapter.start()
    assert adapter.current is not None and adapter.current.name == "2.0.0-1"
    assert adapter.updater is not None and adapter.updater.machine.confirming.is_active


def test_a_kill_in_the_middle_of_the_install_is_cleaned_up_at_the_next_start(adapter: Adapter, bundles: dict[str, Path]) -> None:
    adapter.disk.budget, adapter.disk.fault = bundles["good2"].stat().st_size + 100, "kill"
    assert adapter.update(bundles["good2"]) is None
    assert [release.name for release in adapter.paths.releases.iterdir()] == ["2.0.0-1"]  # unfinished
    assert "unfinished 2.0.0-1 removed" in adapter.start()
    assert adapter.current == adapter.paths.base and list(adapter.paths.releases.iterdir()) == []


def test_a_dangling_current_is_pointed_at_the_base_release(adapter: Adapter) -> None:
    adapter.paths.current.unlink()
    adapter.paths.current.symlink_to(adapter.paths.releases / "gone-1")
    assert "named no complete release" in adapter.start()
    assert adapter.current == adapter.paths.base


def test_only_the_current_and_one_previous_release_are_kept(adapter: Adapter, bundles: dict[str, Path]) -> None:
    for name in ("good2", "good3", "good2"):
        adapter.update(bundles[name])
        adapter.start()
        adapter.confirm()
    assert sorted(release.name for release in adapter.paths.releases.iterdir()) == ["2.0.0-2", "3.0.0-1"]


def test_every_update_transition_is_taken() -> None:
    missing = [str(key) for key in transition_keys(UpdateMachine) if key not in RECORDER.taken]
    assert not missing, missing


def test_check_boot_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = adapter_layout(tmp_path)
    config = tmp_path / "meterlink.toml"
    config.write_text(f'[adapter]\nstate_dir = "{paths.state_dir}"\n[update]\nbase_release = "{paths.base}"\n'
                      f'keys_dir = "{paths.keys_dir}"\n')
    assert main(["check-boot", "--config", str(config)]) == 0
    assert "now " + str(paths.base) in capsys.readouterr().out
    assert target_of(paths) == paths.base
    assert main(["update", "--config", str(config), str(tmp_path / "missing.tar")]) == 2
    assert capsys.readouterr().err.strip().endswith("neither a file nor an http(s) URL")


def test_an_unexpected_error_before_the_switch_refuses_the_update_and_changes_nothing(adapter: Adapter,
                                                                                      bundles: dict[str, Path]) -> None:
    async def broken(release: Path, wheels: Path, manifest: Manifest) -> None:
        raise ValueError("a bug")

    assert adapter.updater is not None
    adapter.updater.installer = broken
    outcome = adapter.update(bundles["good2"])
    assert outcome is not None and outcome.result == "refused" and outcome.reason == "internal error (ValueError)"
    assert adapter.current == adapter.paths.base and list(adapter.paths.releases.iterdir()) == []
    assert adapter.updater.machine.idle.is_active


def test_the_ca_file_cert_names_else_the_systems_cas(tmp_path: Path) -> None:
    from meterlink.service.update import UpdateError, ssl_context
    from update_rig import make_ca

    paths = adapter_layout(tmp_path)
    (paths.ca_dir / "ca_cert.pem").write_bytes(make_ca().cert_pem)
    assert ssl_context(paths, None).cert_store_stats()["x509_ca"] == 1  # seed 000: default ca_cert.pem
    assert ssl_context(paths, "ca_cert.pem").cert_store_stats()["x509_ca"] == 1
    system = ssl_context(paths, "absent.pem")  # the file is not there: the system's CAs, still verifying
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    assert not any("meterlink test CA" in str(ca.get("subject")) for ca in system.get_ca_certs())
    for bad in ("../ca_cert.pem", "/etc/ssl/certs/x.pem", "..", "a/b"):
        with pytest.raises(UpdateError):
            ssl_context(paths, bad)


def test_a_release_that_hangs_past_its_deadline_is_rolled_back_by_the_timer(adapter: Adapter, bundles: dict[str, Path],
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """meterlink-update-check.timer: the new release runs but never confirms nor rolls itself back."""
    from meterlink.service.update import OVERDUE_GRACE, check_overdue

    adapter.update(bundles["good2"])
    adapter.start()  # confirming; it hangs from here on
    pending = read_pending(adapter.paths)
    assert pending is not None
    assert check_overdue(adapter.paths, pending.deadline + OVERDUE_GRACE) is None  # its own timer's turn
    config = adapter.paths.state_dir.parent / "meterlink.toml"
    config.write_text(f'[adapter]\nstate_dir = "{adapter.paths.state_dir}"\n[update]\nbase_release = "{adapter.paths.base}"\n')
    assert main(["check-boot", "--overdue", "--no-restart", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "meterlink check-boot: nothing to do\n"  # the wall clock is before NOW
    done = check_overdue(adapter.paths, pending.deadline + OVERDUE_GRACE + 1)
    assert done is not None and "was not confirmed 60 s after its deadline" in done
    assert adapter.current == adapter.paths.base and read_pending(adapter.paths) is None
    assert read_status(adapter.paths)["result"] == "rolled_back"
    assert check_overdue(adapter.paths, pending.deadline + 1000) is None


def test_the_overdue_check_never_makes_the_state_directory(tmp_path: Path) -> None:
    config = tmp_path / "meterlink.toml"
    config.write_text(f'[adapter]\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["check-boot", "--overdue", "--config", str(config)]) == 0
    assert not (tmp_path / "state").exists()


def test_one_update_at_a_time_across_processes(adapter: Adapter, bundles: dict[str, Path]) -> None:
    """`meterlink update` from a shell holds the lock: the service refuses another, and the boot check
    leaves that update's files alone."""
    from meterlink.service.update import UpdateBusy, try_lock

    held = try_lock(adapter.paths)
    assert held is not None
    try:
        (adapter.paths.staging).mkdir(parents=True)
        assert adapter.updater is not None
        with pytest.raises(UpdateBusy, match="another process"):
            trio.run(adapter.updater.update, FileSource(bundles["good2"]))
        assert adapter.updater.machine.idle.is_active
        assert "an update is under way" in adapter.start() and adapter.paths.staging.exists()
    finally:
        os.close(held)
    assert adapter.update(bundles["good2"]) == Outcome("restarting", None, "2.0.0")
