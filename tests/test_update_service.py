"""Self-update in real processes (issue 19): `meterlink run` takes firmware_update, installs the bundle and
ends itself for systemd to restart (exit 0, as on SIGTERM); check-boot counts the new release's start;
the service started on a pending release confirms it once its API answers; `meterlink update` from a
shell.

The installed release is a one-module stand-in (update_rig): what runs after the "restart" is this
checkout's meterlink, playing the new release.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from processes import meterlink
from test_service import Running
from test_update_e2e import release_of
from meterlink.service.update import UpdatePaths, read_status, target_of
from processes import free_port
from update_rig import adapter_layout, bundle

TOKEN = "update-test-token"
GUARD = 120.0
"""Seconds before a hung test fails; nothing is timed."""


def config_for(tmp_path: Path, paths: UpdatePaths, port: int) -> Path:
    config = tmp_path / "meterlink.toml"
    config.write_text(f'[adapter]\nstate_dir = "{paths.state_dir}"\ntoken = "{TOKEN}"\n'
                      f'[http]\nlisten = "127.0.0.1:{port}"\n'
                      f'[network]\nbackend = "none"\n'
                      f'[update]\nbase_release = "{paths.base}"\nkeys_dir = "{paths.keys_dir}"\n'
                      f'ca_dir = "{paths.ca_dir}"\nconfirm_seconds = 60\n', encoding="utf-8")
    return config


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server of a directory: its URL and the directory."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + GUARD
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {GUARD} s: {what}")
        time.sleep(0.1)


def test_the_service_updates_exits_for_systemd_and_the_next_start_confirms(tmp_path: Path, files: tuple[str, Path]) -> None:
    url, www = files
    bundle(tmp_path / "b", "2.0.0").rename(www / "good.tar")
    paths = adapter_layout(tmp_path / "adapter")
    port = free_port()
    config = config_for(tmp_path, paths, port)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    assert "now " + str(paths.base) in meterlink("check-boot", "--config", str(config)).stdout.decode()
    service = Running("run", "--config", str(config), cwd=tmp_path)
    assert service.line().startswith(f"meterlink: serving http://127.0.0.1:{port}/")
    answer = httpx.post(f"http://127.0.0.1:{port}/api", headers=headers, timeout=10,
                        content=json.dumps({"cmd": "firmware_update", "firmware_uri": f"{url}/good.tar"})).json()
    assert answer == {"result": "OK"}
    assert service.process.wait(timeout=GUARD) == 0  # it ended itself, for systemd's Restart=always
    stderr = service.process.stderr.read().decode()
    assert "update: restarting into" in stderr and TOKEN not in stderr
    assert target_of(paths) == paths.releases / "2.0.0-1" and release_of(paths) == "2.0.0"

    # systemd starts the unit again: ExecStartPre, then (standing in for the new release) meterlink run.
    assert "start 1 of at most 3" in meterlink("check-boot", "--config", str(config)).stdout.decode()
    restarted = Running("run", "--config", str(config), cwd=tmp_path)
    try:
        assert restarted.line().startswith("meterlink: serving")
        until(lambda: read_status(paths).get("result") == "confirmed", "the new release confirmed")
        status = httpx.post(f"http://127.0.0.1:{port}/api", headers=headers, timeout=10,
                            content='{"cmd": "system_status"}').json()["update"]
        assert (status["state"], status["last_result"], status["last_version"]) == (
            "Running a confirmed release", "confirmed", "2.0.0")
        assert not paths.pending.exists()
    finally:
        restarted.stop()


def test_meterlink_update_from_a_shell(tmp_path: Path) -> None:
    paths = adapter_layout(tmp_path / "adapter")
    config = config_for(tmp_path, paths, free_port())
    refused = meterlink("update", "--config", str(config), "--no-restart", str(bundle(tmp_path / "u", "2.0.0", key=None)))
    assert refused.returncode == 1 and refused.stderr.decode().splitlines() == [
        "meterlink: update refused: the bundle is not signed"]
    done = meterlink("update", "--config", str(config), "--no-restart", str(bundle(tmp_path / "b", "2.0.0")), timeout=GUARD)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"result": "installed", "version": "2.0.0"}
    assert target_of(paths) == paths.releases / "2.0.0-1" and release_of(paths) == "2.0.0"
    bad = meterlink("update", "--config", str(config), "ftp://example.org/x.tar")
    assert bad.returncode == 2 and len(bad.stderr.decode().splitlines()) == 1


def test_launch_runs_the_release_current_names(tmp_path: Path) -> None:
    """The unit's ExecStart: exec the release an update switched to (here a script that says so)."""
    paths = adapter_layout(tmp_path / "adapter")
    config = config_for(tmp_path, paths, free_port())
    release = paths.releases / "2.0.0-1"
    (release / "bin").mkdir(parents=True)
    (release / "bin" / "meterlink").write_text('#!/bin/sh\necho "release 2.0.0-1: $*"\n')
    (release / "bin" / "meterlink").chmod(0o755)
    paths.current.symlink_to(release)
    launched = meterlink("launch", "--config", str(config))
    assert launched.returncode == 0 and launched.stdout.decode() == f"release 2.0.0-1: run --config {config}\n"
