"""The web page as files: served at `/` and `/static/`, and nothing in it points off the adapter.

The page in a browser is tested in test_web_browser.py.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import trio
from fastapi import FastAPI

from meterlink.actors.link import LinkStatus
from meterlink.service.adapter import Adapter
from meterlink.service.api import create_app
from meterlink.service.hub import ReadingsHub
from meterlink.service.secrets import Credentials, KeyStore, LoginThrottle
from meterlink.service.web import mount_web

TOKEN = "web-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ASSETS = ["index.html", "app.js", "style.css"]


def make_adapter(state: Path, hub: ReadingsHub | None = None, links: dict[str, LinkStatus] | None = None) -> Adapter:
    credentials = Credentials(state / "token.hash")
    credentials.set(TOKEN)
    return Adapter(
        hub=hub or ReadingsHub(),
        links=links if links is not None else {"p1": LinkStatus("p1", "p1")},
        supervisor_status=lambda: (),
        keys=KeyStore(state / "keys.bin", state / "device.key"),
        credentials=credentials,
        throttle=LoginThrottle(),
    )


def web_app(adapter: Adapter) -> FastAPI:
    """The API with the page, as the service serves it (run.serve_http mounts the page on create_app's app)."""
    app = create_app(adapter)
    if not any(getattr(route, "path", None) == "/" for route in app.routes):
        mount_web(app)
    return app


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return web_app(make_adapter(tmp_path))


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://adapter.local")


async def test_index_is_served_without_credentials(app: FastAPI) -> None:
    # The page itself holds no data; it must load before the user has typed a token.
    async with client(app) as http:
        page = await http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == files("meterlink.service.web").joinpath("index.html").read_text()
    assert 'id="panels"' in page.text
    assert 'src="/static/app.js"' in page.text and 'href="/static/style.css"' in page.text


@pytest.mark.parametrize(("name", "media_type"), [("app.js", "text/javascript"), ("style.css", "text/css")])
async def test_assets_are_served_with_their_types(app: FastAPI, name: str, media_type: str) -> None:
    async with client(app) as http:
        asset = await http.get(f"/static/{name}")
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith(media_type)
    assert asset.content == files("meterlink.service.web").joinpath(name).read_bytes()


async def test_only_the_page_files_can_be_asked_for(app: FastAPI) -> None:
    async with client(app) as http:
        answers = [await http.get(path) for path in
                   ["/static/web.py", "/static/__init__.py", "/static/../web.py", "/static/%2e%2e/api.py", "/static/"]]
    assert [answer.status_code for answer in answers] == [404] * len(answers)


async def test_the_browser_is_told_to_load_nothing_from_elsewhere(app: FastAPI) -> None:
    async with client(app) as http:
        for path in ["/", "/static/app.js", "/static/style.css"]:
            policy = (await http.get(path)).headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
            assert directives["default-src"] == "'none'"
            for directive in ("script-src", "style-src", "connect-src"):
                assert directives[directive] == "'self'", (path, directive)


@pytest.mark.parametrize("name", ASSETS)
def test_no_file_of_the_page_refers_to_the_internet(name: str) -> None:
    # The adapter has no internet connection (seed 001): no CDN, no web fonts, no external links.
    text = files("meterlink.service.web").joinpath(name).read_text()
    assert not re.search(r"https?://|//cdn|@import|url\(\s*['\"]?(?!data:)", text, re.IGNORECASE), name


async def test_meterlink_demo_serves_the_page() -> None:
    # `meterlink demo` as a user starts it: the page, its assets and the readings it asks for. The
    # demo is local and simulated: reads from loopback need no token, configuration still does.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = await trio.lowlevel.open_process(
        [sys.executable, "-m", "meterlink.cli", "demo", "--http", f"127.0.0.1:{port}", "--token", TOKEN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            with trio.fail_after(20):
                while True:
                    try:
                        page = await http.get("/")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.2)
                script = await http.get("/static/app.js")
                while (reads := await http.get("/api/v1/readings/latest")).status_code == 200 and not reads.json():
                    await trio.sleep(0.2)
                set_key = {"cmd": "meter_setkey", "key": "00" * 16, "link": "mbus"}  # the demo has three keyed links
                without_token = await http.post("/api", json=set_key)
                with_token = await http.post("/api", json=set_key, headers=BEARER)
    finally:
        demo.terminate()
        await demo.wait()
    assert reads.status_code == 200, "a read from loopback needs no token in the demo"
    assert (without_token.status_code, with_token.status_code) == (401, 200)
    assert page.status_code == 200 and 'id="panels"' in page.text
    assert script.status_code == 200
    latest = reads.json()
    powers = {value["obis"] for reading in latest for value in reading["values"]}
    assert {"1-0:1.7.0.255", "1-0:2.7.0.255"} <= powers


def test_the_files_are_package_data() -> None:
    # setuptools only ships them with [tool.setuptools.package-data]; a wheel without them has no page.
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert re.search(r'"meterlink\.service\.web"\s*=\s*\[[^\]]*"\*\.html"[^\]]*"\*\.js"[^\]]*"\*\.css"', pyproject)
