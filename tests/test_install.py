"""deploy/install.sh and the unit it installs, run the way systemd runs them (issue 11, item 1).

The unit runs meterlink as a dynamic user, who cannot read the 640 root:root config: systemd hands
it over as a credential instead. systemd is not PID 1 in CI, so these tests install with --prefix
into a temporary root and do by hand what systemd does for the installed unit (credential copy,
state directory, umask, user and groups), then run its ExecStart as an unprivileged uid.
"""

from __future__ import annotations

import grp
import os
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from processes import free_port, start_simulator, stop

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "deploy" / "install.sh"
SERVICE_UID = 65534  # nobody: as unprivileged as the unit's dynamic user
DEFAULT_PYTHON = "/usr/bin/python3"


def _cannot(reason: str) -> None:
    """Skip where the machine cannot run this; in CI a skip would hide a broken install path."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _install(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), "--prefix", str(root)], capture_output=True, text=True, timeout=300)


def read_unit(path: Path) -> dict[str, list[str]]:
    """`Key=value` settings of a unit file, every value of a key in order (sections are not needed)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and line[0] not in "#;[" and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@dataclass
class Installed:
    root: Path
    unit: dict[str, list[str]]
    config: Path
    edited: bytes
    http_port: int
    meter_port: int

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")


@pytest.fixture(scope="module")
def installed():
    if os.geteuid() != 0:
        _cannot("install.sh needs root (sudo), and the service must run as another uid")
    if shutil.which("setpriv") is None:
        _cannot("setpriv (util-linux) is missing: cannot run the service as an unprivileged uid")
    version_ok = subprocess.run([DEFAULT_PYTHON, "-c", "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"],
                                capture_output=True)
    if version_ok.returncode != 0:
        _cannot(f"{DEFAULT_PYTHON}, install.sh's default, cannot make a Python >= 3.11 venv")
    root = Path(tempfile.mkdtemp(prefix="meterlink-install-"))
    try:
        root.chmod(0o755)  # the service's uid walks through it, as through /
        result = _install(root)
        assert result.returncode == 0, result.stderr
        config = root / "etc/meterlink/meterlink.toml"
        # As a user edits it: the HTTP port, the meter's port, and a state dir inside the test's root.
        http_port, meter_port = free_port(), free_port()
        text = config.read_text(encoding="utf-8")
        for pattern, replacement in [
            (r'^listen = "0\.0\.0\.0:8080"', f'listen = "127.0.0.1:{http_port}"'),
            (r'^state_dir = "/var/lib/meterlink"', f'state_dir = "{root}/var/lib/meterlink"'),
            (r'^port = "/dev/ttyUSB0"', f'port = "tcp://127.0.0.1:{meter_port}"'),
        ]:
            text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            assert count == 1, f"meterlink.example.toml has no line {pattern!r} any more"
        config.write_text(text, encoding="utf-8")
        unit = read_unit(root / "etc/systemd/system/meterlink.service")
        yield Installed(root, unit, config, config.read_bytes(), http_port, meter_port)
    finally:
        shutil.rmtree(root)


def as_service_user(installed: Installed, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start argv as the unit's user would run: its uid, SupplementaryGroups, UMask, a bare environment, cwd /."""
    groups = ",".join(str(grp.getgrnam(name).gr_gid) for value in installed.unit.get("SupplementaryGroups", [])
                      for name in value.split())
    identity = ["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}"]
    identity += [f"--groups={groups}"] if groups else ["--clear-groups"]
    umask = int(installed.unit.get("UMask", ["0022"])[-1], 8)
    return subprocess.Popen([*identity, *argv], env={"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})},
                            cwd="/", umask=umask, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_unit(installed: Installed) -> subprocess.Popen:
    """What systemd does to start the installed unit: LoadCredential=, StateDirectory=, then ExecStart=."""
    unit = installed.unit
    credentials = installed.path("/run/credentials/meterlink.service")
    credentials.mkdir(parents=True)
    for value in unit.get("LoadCredential", []):
        name, _, source = value.partition(":")
        shutil.copyfile(source, credentials / name)
        os.chown(credentials / name, SERVICE_UID, SERVICE_UID)
        (credentials / name).chmod(0o400)
    os.chown(credentials, SERVICE_UID, SERVICE_UID)
    credentials.chmod(0o500)
    [state_name] = unit["StateDirectory"]
    state = installed.path(f"/var/lib/{state_name}")
    state.mkdir(parents=True)
    os.chown(state, SERVICE_UID, SERVICE_UID)
    state.chmod(int(unit.get("StateDirectoryMode", ["0755"])[-1], 8))
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(state)}
    [exec_start] = unit["ExecStart"]
    argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda match: env[match.group(1)], exec_start))
    assert argv[0].startswith("/"), f"ExecStart= without an absolute path or with a prefix: {exec_start}"
    return as_service_user(installed, argv, env)


class Lines:
    """A process's stdout lines as they come, with a deadline: a hung or failed service fails the test at once."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._process = process
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next(self, timeout: float = 30) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None
        if line is None:
            raise AssertionError(f"meterlink exited {self._process.wait()}: {self._process.stderr.read()}")
        return line


def test_the_unit_restarts_except_on_a_config_error_and_agrees_with_the_example_config(installed):
    unit = installed.unit
    assert unit["DynamicUser"] == ["yes"]
    assert unit["Restart"] == ["always"] and unit["RestartPreventExitStatus"] == ["2"]
    example = tomllib.loads((REPO / "meterlink.example.toml").read_text(encoding="utf-8"))
    assert example["adapter"]["state_dir"] == f"/var/lib/{unit['StateDirectory'][0]}"


def test_the_installed_unit_runs_meterlink_as_an_unprivileged_user(installed):
    meter, _ = start_simulator("p1", "--listen", f"tcp://127.0.0.1:{installed.meter_port}")
    service = start_unit(installed)
    url = f"http://127.0.0.1:{installed.http_port}"
    try:
        output = Lines(service)
        assert output.next() == f"meterlink: serving {url}/ (links: p1)"
        token_line = output.next()
        assert token_line.startswith("API token (shown once"), token_line
        token = token_line.rpartition(": ")[2]
        links = httpx.get(f"{url}/api/v1/links", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert links.status_code == 200, links.text
        assert [link["name"] for link in links.json()["links"]] == ["p1"]
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if service.poll() is None:
            service.kill()
        stop(meter)
    stderr = service.stderr.read()
    assert code == 0, stderr
    assert took < float(installed.unit["TimeoutStopSec"][0]), f"SIGTERM took {took:.1f} s: systemd would kill it"
    assert "Traceback" not in stderr
    state = installed.path("/var/lib/meterlink")
    assert (state / "token.hash").stat().st_uid == SERVICE_UID


def test_without_the_credential_the_service_user_cannot_read_the_config(installed):
    """Why the unit needs LoadCredential=: the config is 640 root:root and DynamicUser is not root."""
    info = installed.config.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 0)
    meterlink = installed.path("/opt/meterlink/.venv/bin/meterlink")
    process = as_service_user(installed, [str(meterlink), "run", "--config", str(installed.config)])
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    [line] = err.splitlines()
    assert str(installed.config) in line and "Permission denied" in line
    assert out == ""


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(installed):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = installed.path("/etc/systemd/system/meterlink.service")
    # verify starts its own manager in test mode: it works without systemd as PID 1.
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).splitlines()
    assert [line for line in output if "meterlink" in line] == []
    if result.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot check units on this machine: {' / '.join(output)}")


def test_a_second_install_upgrades_meterlink_and_keeps_the_edited_config(installed):
    [record] = installed.root.glob("opt/meterlink/.venv/lib/python*/site-packages/meterlink-*.dist-info/RECORD")
    before = record.stat().st_mtime_ns
    result = _install(installed.root)
    assert result.returncode == 0, result.stderr
    assert f"keeping {installed.config}" in result.stderr
    assert installed.config.read_bytes() == installed.edited
    info = installed.config.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, 0)
    [record] = installed.root.glob("opt/meterlink/.venv/lib/python*/site-packages/meterlink-*.dist-info/RECORD")
    assert record.stat().st_mtime_ns > before
    assert read_unit(installed.path("/etc/systemd/system/meterlink.service")) == installed.unit
    assert installed.path("/usr/local/bin/meterlink").readlink() == installed.path("/opt/meterlink/.venv/bin/meterlink")


def test_the_led_rule_opens_the_leds_to_a_group_the_unit_gives_the_service(installed):
    """Issue 18 item 5: the service user may write the status LEDs' brightness and trigger."""
    rule = installed.path("/etc/udev/rules.d/90-meterlink-leds.rules")
    assert stat.S_IMODE(rule.stat().st_mode) == 0o644
    text = rule.read_text(encoding="utf-8")
    [group] = re.findall(r"/bin/chgrp (\S+) /sys%p/brightness /sys%p/trigger", text)
    assert group in " ".join(installed.unit["SupplementaryGroups"]).split()
    assert "/bin/chmod g+w /sys%p/brightness /sys%p/trigger" in text


def test_install_sh_answers_help_and_names_a_wrong_argument():
    helped = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True, timeout=10)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: sudo bash deploy/install.sh")
    wrong = subprocess.run(["bash", str(INSTALL), "--prefx", "/tmp"], capture_output=True, text=True, timeout=10)
    assert wrong.returncode == 2
    assert wrong.stderr == "install.sh: unknown argument: --prefx (see --help)\n"
