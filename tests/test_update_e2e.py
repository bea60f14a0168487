"""Self-update end to end (issue 19): firmware_update and /ota against a local HTTPS server with a test
CA, the real download, verification and pip install into a virtual environment, restarts modelled
by a new updater made from the disk after the unit's boot check.

A good bundle is installed, restarted into and confirmed, and its interpreter imports the new
release; an altered, unsigned, oversized or cut-short bundle, and one from a server the CA does not
vouch for, are refused with current unchanged while the API keeps answering; an unhealthy release
is rolled back. The restart is a callback here (the service's stops the process for systemd).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from meterlink.service.adapter import Adapter
from meterlink.service.update import (Unhealthy, Updater, UpdatePaths, UpdateSettings, check_boot, read_status,
                                      target_of)
from test_api import TOKEN, api_client, bearer, command, make_rig
from update_rig import adapter_layout, bundle, make_ca, serve_files, tampered

SETTINGS = UpdateSettings(max_size=64 * 1024, download_timeout=120.0, confirm_seconds=120.0, restart_delay=0.0)
GUARD = 300.0
"""Seconds before a hung test fails (a venv and a pip install take a few seconds); nothing is timed."""


class Service:
    """The adapter's API with an updater; `restarted` is set when the updater asks for a restart."""

    def __init__(self, root: Path, paths: UpdatePaths, health: str = "healthy") -> None:
        self.rig = make_rig(root)
        self.paths = paths
        self.restarted = trio.Event()
        self.health = health
        self.updater = Updater(paths, SETTINGS, restart=self.restarted.set, health=self._health)
        self.rig.adapter.updater = self.updater

    @property
    def adapter(self) -> Adapter:
        return self.rig.adapter

    async def _health(self) -> bool:
        if self.health == "unhealthy":
            raise Unhealthy("the links' supervisor gave up")
        return True


async def start(nursery: trio.Nursery, root: Path, paths: UpdatePaths, health: str = "healthy") -> Service:
    """A service start: the unit's check-boot, then the service with its update task."""
    check_boot(paths, time.time())
    service = Service(root, paths, health)
    await nursery.start(service.updater.run)
    return service


async def https_server(nursery: trio.Nursery, tmp_path: Path, routes: dict) -> int:
    ca = make_ca()
    (tmp_path / "certs").mkdir(exist_ok=True)
    (tmp_path / "certs" / "ca_cert.pem").write_bytes(ca.cert_pem)

    async def handler(stream: trio.SSLStream) -> None:
        try:
            await serve_files(stream, routes)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up (a refused download stops reading)

    listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, handler, 0, ca.server_context(tmp_path),
                                            host="127.0.0.1", https_compatible=True))
    return listeners[0].transport_listener.socket.getsockname()[1]


async def system_status(service: Service) -> dict:
    async with api_client(service.adapter) as client:
        response = await command(client, {"cmd": "system_status"})
    assert response.status_code == 200
    return response.json()


async def firmware_update(service: Service, uri: str, **extra: str) -> dict:
    async with api_client(service.adapter) as client:
        response = await command(client, {"cmd": "firmware_update", "firmware_uri": uri, **extra})
    return {"status": response.status_code, **response.json()}


async def until_decided(service: Service) -> None:
    """Until the update has ended in this process (refused, or restarting); the API answers meanwhile."""
    while service.updater.machine.busy and not service.restarted.is_set():
        assert (await system_status(service))["result"] == "OK"
        await trio.sleep(0.05)


def release_of(paths: UpdatePaths) -> str:
    """What the interpreter of `current` imports: the release really installed there."""
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(paths.current / "bin" / "python"), "-c", "import meterlink; print(meterlink.RELEASE)"],
                          capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


@pytest.fixture
def layout(tmp_path: Path) -> UpdatePaths:
    return adapter_layout(tmp_path / "adapter")


async def test_firmware_update_over_https_installs_restarts_and_confirms(tmp_path: Path, layout: UpdatePaths) -> None:
    good = bundle(tmp_path / "b", "2.0.0")
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            port = await https_server(nursery, layout.ca_dir.parent, {"/good.tar": lambda: (good.read_bytes(), None)})
            service = await start(nursery, tmp_path / "s1", layout)
            answer = await firmware_update(service, f"https://127.0.0.1:{port}/good.tar", cert="ca_cert.pem", id="7")
            assert answer == {"status": 200, "result": "OK", "id": "7"}
            await until_decided(service)
            await service.restarted.wait()
            assert (await system_status(service))["update"]["last_result"] == "restarting"
            assert target_of(layout) == layout.releases / "2.0.0-1"
            assert release_of(layout) == "2.0.0"

            restarted = await start(nursery, tmp_path / "s2", layout)  # the new release confirms itself
            update = (await system_status(restarted))["update"]
            assert update["last_result"] == "confirmed" and update["last_version"] == "2.0.0"
            assert not layout.pending.exists() and release_of(layout) == "2.0.0"
            nursery.cancel_scope.cancel()


async def test_bad_bundles_are_refused_and_the_api_keeps_answering(tmp_path: Path, layout: UpdatePaths) -> None:
    good = bundle(tmp_path / "b", "2.0.0")
    routes = {
        "/tampered.tar": lambda: (tampered(good, tmp_path / "t").read_bytes(), None),
        "/unsigned.tar": lambda: (bundle(tmp_path / "u", "2.0.0", key=None).read_bytes(), None),
        "/oversized.tar": lambda: (bundle(tmp_path / "o", "2.0.0", padding=SETTINGS.max_size).read_bytes(), None),
        "/cut.tar": lambda: (good.read_bytes()[:5000], good.stat().st_size),
    }
    expected = {
        "/tampered.tar": "does not match the hash in the manifest",
        "/unsigned.tar": "the bundle is not signed",
        "/oversized.tar": "larger than the limit",
        "/cut.tar": "the download failed",
        "/missing.tar": "the server answered HTTP 404",
    }
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            port = await https_server(nursery, layout.ca_dir.parent, routes)
            service = await start(nursery, tmp_path / "s1", layout)
            for path, reason in expected.items():
                assert (await firmware_update(service, f"https://127.0.0.1:{port}{path}"))["result"] == "OK"
                await until_decided(service)
                update = (await system_status(service))["update"]
                assert update["last_result"] == "refused" and reason in update["last_reason"], (path, update)
                assert target_of(layout) == layout.base and not service.restarted.is_set()
                assert list(layout.releases.iterdir()) == [] and not layout.staging.exists()

            # A CA file that does not vouch for the server: the TLS handshake fails, nothing changes.
            (layout.ca_dir / "other.pem").write_bytes(make_ca().cert_pem)
            await firmware_update(service, f"https://127.0.0.1:{port}/tampered.tar", cert="other.pem")
            await until_decided(service)
            assert "ConnectError" in (await system_status(service))["update"]["last_reason"]

            for body, error in ([{"firmware_uri": "ftp://example.org/x.tar"}, "invalid_update"],
                                [{"firmware_uri": f"https://127.0.0.1:{port}/x", "cert": "../../etc/shadow"}, "invalid_update"],
                                [{}, "invalid_command"]):
                async with api_client(service.adapter) as client:
                    response = await command(client, {"cmd": "firmware_update", **body})
                assert response.status_code == 422 and response.json()["error"] == error
            assert target_of(layout) == layout.base
            nursery.cancel_scope.cancel()


async def test_ota_upload_of_an_unhealthy_release_is_rolled_back(tmp_path: Path, layout: UpdatePaths) -> None:
    """/ota answers as the seed's page; the new release's health check fails; the previous one returns."""
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            service = await start(nursery, tmp_path / "s1", layout)
            async with api_client(service.adapter) as client:
                assert (await client.get("/ota")).headers["www-authenticate"].startswith("Basic")
                page = await client.get("/ota", headers=bearer())
                assert 'enctype="multipart/form-data"' in page.text
                upload = await client.post("/ota", headers=bearer(),
                                           files={"update": ("good.tar", bundle(tmp_path / "b", "2.0.0").read_bytes())})
            assert (upload.status_code, upload.text) == (200, "Update_Success!_Rebooting...")
            await service.restarted.wait()
            confirmed = await start(nursery, tmp_path / "s2", layout)
            assert (await system_status(confirmed))["update"]["last_result"] == "confirmed"

            async with api_client(confirmed.adapter) as client:
                refused = await client.post("/ota", auth=("any", TOKEN),
                                            files={"update": ("bad.tar", bundle(tmp_path / "u", "3.0.0", key=None).read_bytes())})
                assert (refused.status_code, refused.text) == (400, "Update_Failed: the bundle is not signed")
                upload = await client.post("/ota", auth=("any", TOKEN),
                                           files={"update": ("next.tar", bundle(tmp_path / "c", "3.0.0").read_bytes())})
            assert upload.text == "Update_Success!_Rebooting..."
            await confirmed.restarted.wait()
            assert release_of(layout) == "3.0.0"

            unhealthy = await start(nursery, tmp_path / "s3", layout, health="unhealthy")
            await unhealthy.restarted.wait()  # rolled back, restarting into the previous release
            assert target_of(layout) == layout.releases / "2.0.0-1" and release_of(layout) == "2.0.0"
            again = await start(nursery, tmp_path / "s4", layout)
            update = (await system_status(again))["update"]
            assert (update["state"], update["last_result"], update["last_version"]) == (
                "Running a confirmed release", "rolled_back", "3.0.0")
            assert "the links' supervisor gave up" in update["last_reason"]
            nursery.cancel_scope.cancel()


async def test_ota_refuses_without_credentials_and_what_is_not_multipart(tmp_path: Path, layout: UpdatePaths) -> None:
    async with trio.open_nursery() as nursery:
        service = await start(nursery, tmp_path / "s1", layout)
        async with api_client(service.adapter) as client:
            anonymous = await client.post("/ota", files={"update": ("x.tar", b"x")})
            assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
            raw = await client.post("/ota", headers=bearer() | {"Content-Type": "application/octet-stream"}, content=b"x")
            assert raw.status_code == 400 and "multipart/form-data" in raw.text
            empty = await client.post("/ota", headers=bearer(), files={"note": (None, b"no file")})
            assert empty.status_code == 400 and "holds no file" in empty.text
            huge = await client.post("/ota", headers=bearer(), files={"update": ("x.tar", b"\0" * (SETTINGS.max_size * 2))})
            assert huge.status_code == 413 and "larger than the limit" in huge.text
        assert not layout.uploads.exists()
        assert json.loads(json.dumps(read_status(layout))) == {} and target_of(layout) == layout.base
        nursery.cancel_scope.cancel()
