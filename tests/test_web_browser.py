"""The web page end to end in Debian's headless Chromium (seed 001 ch. C.7).

The real API and page are served by hypercorn on a loopback port, from a real ReadingsHub that
this test feeds with P1 telegrams of the simulated meter, one a second, with a run of 10 s left
out. Chromium loads the page, is asked for the token, and must then fill the table and draw the
power graph with a gap where the telegrams are missing. Screenshots go to test-artifacts/.

Chromium is driven over the DevTools protocol on `--remote-debugging-pipe` (JSON messages ending
in NUL on fds 3 and 4): no pip package, no downloaded browser, no TCP port for the browser. The
test skips when chromium is not installed, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from meterlink.actors.link import LinkStatus
from meterlink.protocols.p1 import P1Framer, TelegramFramed
from meterlink.protocols.readings import Reading
from meterlink.service.hub import ReadingsHub
from meterlink.simulators.p1 import P1MeterModel
from test_web import TOKEN, make_adapter, web_app

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900", "--remote-debugging-pipe",
]
HISTORY_S = 40            # readings already in the adapter's 60 s window when the page opens
HOLE = range(15, 25)      # seconds of that history without a telegram: 10 in a row
INCOMPLETE = 30           # the second whose reading lacks 1-0:2.7.0: its power is unknown, not 1.7.0 - 0
LAPTOP = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 375, "height": 740, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; a plain (not async) fixture, so that skip and fail reach pytest directly."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed; the test command installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


# --- the DevTools protocol over a pipe -----------------------------------------------------------------


class CdpError(Exception):
    pass


class Browser:
    """A minimal DevTools client: commands with replies, and a log of the events that arrive."""

    def __init__(self, to_browser: trio.lowlevel.FdStream, from_browser: trio.lowlevel.FdStream) -> None:
        self._send = to_browser
        self._receive = from_browser
        self._next_id = 0
        self._waiting: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        done, reply = self._waiting[self._next_id] = (trio.Event(), [])
        await self._send.send_all(json.dumps(message).encode() + b"\0")
        with trio.fail_after(15):
            await done.wait()
        if "error" in reply[0]:
            raise CdpError(f"{method}: {reply[0]['error']}")
        return reply[0]["result"]

    async def read_messages(self) -> None:
        buffer = b""
        while chunk := await self._receive.receive_some(65536):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message and message["id"] in self._waiting:
                    done, reply = self._waiting.pop(message["id"])
                    reply.append(message)
                    done.set()
                else:
                    self.events.append(message)


@asynccontextmanager
async def open_browser(executable: str, profile: Path, log: Path) -> AsyncIterator[Browser]:
    """Start chromium with a fresh profile; its DevTools pipe is its fds 3 (commands) and 4 (replies)."""
    commands_r, commands_w = os.pipe()
    replies_r, replies_w = os.pipe()
    # Copies at fd >= 10, so that putting them on 3 and 4 in the child cannot overwrite each other.
    child_in = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_out = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(commands_r)
    os.close(replies_w)

    def pipe_fds() -> None:  # runs in the child before exec; dup2 leaves 3 and 4 inheritable
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    with log.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            pass_fds=(3, 4), preexec_fn=pipe_fds,
        )
    os.close(child_in)
    os.close(child_out)
    browser = Browser(trio.lowlevel.FdStream(commands_w), trio.lowlevel.FdStream(replies_r))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(browser.read_messages)
            try:
                yield browser
            finally:
                with trio.move_on_after(5):
                    with trio.move_on_after(2):
                        await browser.call("Browser.close")
                    await process.wait()
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    @classmethod
    async def open(cls, browser: Browser, viewport: dict[str, Any]) -> Page:
        target = await browser.call("Target.createTarget", url="about:blank")
        attached = await browser.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = cls(browser, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setDeviceMetricsOverride", **viewport)
        return page

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.call(method, self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression!r}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 10) -> Any:
        """Poll `expression` until it is truthy; on timeout a screenshot shows how the page looked."""
        value = None
        with trio.move_on_after(timeout):
            # Until the page has loaded, the expression may throw: that counts as "not yet".
            while not (value := await self.evaluate(f"(() => {{ try {{ return {expression}; }} catch {{ return null; }} }})()")):
                await trio.sleep(0.1)
            return value
        await self.screenshot(ARTIFACTS / "web-timeout.png")
        raise AssertionError(f"timed out waiting for {what} (last value {value!r}); see test-artifacts/web-timeout.png")

    async def screenshot(self, path: Path, full_page: bool = True) -> None:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path.write_bytes(base64.b64decode(shot["data"]))

    def errors(self) -> list[dict[str, Any]]:
        """Script exceptions and console errors; a refused request (the first 401) is expected."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(params)
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
                found.append(params)
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error" \
                    and params["entry"].get("source") != "network":
                found.append(params["entry"])
        return found


# --- the adapter's side -----------------------------------------------------------------------------------


def p1_reading(model: P1MeterModel, at: float) -> Reading:
    """A telegram of the simulated meter at `at`, decoded as the P1 link decodes it."""
    framed = [e for e in P1Framer().feed(model.telegram(datetime.fromtimestamp(at, timezone.utc)))
              if isinstance(e, TelegramFramed)]
    assert framed and framed[0].telegram is not None
    return framed[0].telegram.to_reading(at)


async def feed_meter(hub: ReadingsHub, link: LinkStatus, start: float) -> None:
    """One reading a second from `start` on, except the seconds in HOLE; readings due in the past at once.

    received_at is the scheduled second, so the intervals are exactly 1 s and the only breaks the
    page may draw are the hole and the reading without 2.7.0.
    """
    model = P1MeterModel()
    for second in range(10_000):
        due = start + second
        await trio.sleep(max(0.0, due - time.time()))
        if second in HOLE:
            continue
        reading = p1_reading(model, due)
        if second == INCOMPLETE:
            reading = dataclasses.replace(reading, values=tuple(v for v in reading.values if v.obis != "1-0:2.7.0.255"))
        hub.publish(reading)
        link.last_reading_at = due


@asynccontextmanager
async def serve_adapter(tmp_path: Path) -> AsyncIterator[tuple[str, float]]:
    """The API and page on a free loopback port, with a meter feeding its hub; yields (url, start)."""
    start = math.floor(time.time()) - HISTORY_S
    link = LinkStatus("p1", "p1", state="hunting", connected=True)
    hub = ReadingsHub()
    adapter = make_adapter(tmp_path, hub, {"p1": link})
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed_meter, hub, link, start)
        binds = await nursery.start(partial(hypercorn_serve, web_app(adapter), config))  # type: ignore[arg-type]
        yield binds[0], start
        nursery.cancel_scope.cancel()


# --- the test -------------------------------------------------------------------------------------------

TABLE_ROWS = """[...document.querySelectorAll('#meters tbody tr')].map(tr => [...tr.cells].map(td => td.innerText))"""

# Pixels of the series' colour in the plot between two times (device pixels), read back from the
# canvas; the x scale is the one of the last draw, from the test hook.
PIXELS_BETWEEN = """((ta, tb) => {
  const m = window.meterlink, canvas = document.getElementById('chart');
  const ratio = canvas.width / canvas.clientWidth;
  const [r, g, b] = [1, 3, 5].map(i => parseInt(m.series[0].color.slice(i, i + 2), 16));
  const x = t => m.plot.left + (t - m.plot.t0) / (m.plot.t1 - m.plot.t0) * (m.plot.right - m.plot.left);
  const x0 = Math.ceil(x(ta) * ratio), x1 = Math.floor(x(tb) * ratio);
  const y0 = Math.floor(m.plot.top * ratio), y1 = Math.ceil(m.plot.bottom * ratio);
  const data = canvas.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4)
    if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60 && data[i + 3] > 200) n++;
  return {columns: x1 - x0, n};
})"""


async def test_page_shows_table_and_graph_with_a_gap(tmp_path: Path, chromium: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with trio.fail_after(40):
        async with serve_adapter(tmp_path) as (url, start), \
                open_browser(chromium, tmp_path / "profile", ARTIFACTS / "chromium.log") as browser:
            page = await Page.open(browser, LAPTOP)
            await page.call("Page.navigate", url=url + "/")

            # No open reads configured: the page asks for the token, then shows the readings.
            await page.wait_for("!document.getElementById('token-form').hidden", "the token form")
            await page.evaluate(f"document.getElementById('token-input').value = {json.dumps(TOKEN)};"
                                "document.getElementById('token-form').requestSubmit()")
            rows = await page.wait_for(f"(() => {{ const r = {TABLE_ROWS}; return r.length > 20 && r; }})()",
                                       "the table of current values")
            by_obis = {row[0]: row for row in rows}
            assert await page.evaluate("document.querySelectorAll('#meters .meter').length") == 1
            for obis, name, unit in [("1-0:1.7.0", "Active power import (+P)", "kW"),
                                     ("1-0:2.7.0", "Active power export (\u2212P)", "kW"),
                                     ("1-0:32.7.0", "Voltage L1", "V"), ("1-0:1.8.1", "Import energy T1", "kWh")]:
                assert (by_obis[obis][1], by_obis[obis][3]) == (name, unit)
                float(by_obis[obis][2])  # the number as the meter sent it
            assert by_obis["0-1:24.2.3"][1] == "Channel 1 reading (gas)"
            assert by_obis["0-0:96.1.1"][2].endswith("1SAG3101021605")  # hex as sent, decoded text below
            # The adapter's 60 s window is in the graph (fetched once the stream was subscribed) ...
            await page.wait_for(f"window.meterlink.series[0].points[0][0] === {start}", "the adapter's window")
            loaded_at = await page.evaluate("Math.max(...window.meterlink.series[0].points.map(p => p[0]))")

            # ... and readings that arrive later come over the stream (fetch + SSE parsing).
            await page.wait_for(f"window.meterlink.series[0].points.some(p => p[0] >= {loaded_at + 2})",
                                "live readings from the stream")
            hook = await page.evaluate("window.meterlink")
            series = hook["series"][0]
            times = [t for t, _ in series["points"]]
            assert times == sorted(times) and len(times) == len(set(times))
            assert not any(start + s in times for s in HOLE), "a point was made up inside the hole"
            # The reading without 2.7.0 has no power (not 1.7.0 - 0); every other reading has one.
            assert [t for t, w in series["points"] if w is None] == [start + INCOMPLETE]
            # The line stops at the last telegram before the hole and starts again at the first one
            # after it; it also stops before the reading without a power value and goes on after it.
            assert hook["segments"] == 3, (start, series["segments"], series["threshold"])
            assert [segment[:2] for segment in series["segments"]] == [
                [start, start + HOLE.start - 1],
                [start + HOLE.stop, start + INCOMPLETE - 1],
                [start + INCOMPLETE + 1, times[-1]],
            ]
            assert series["threshold"] == pytest.approx(1.5)

            # The pixels agree: the series' colour inside the segments, none inside the hole.
            drawn = await page.evaluate(f"{PIXELS_BETWEEN}({start + 2}, {start + HOLE.start - 2})")
            hole = await page.evaluate(f"{PIXELS_BETWEEN}({start + HOLE.start + 0.5}, {start + HOLE.stop - 0.5})")
            assert drawn["n"] > 20 and hole["columns"] > 10 and hole["n"] == 0, (drawn, hole)

            links = await page.evaluate("document.getElementById('links').innerText")
            assert "p1" in links and "hunting" in links and "connected" in links
            assert " s ago" in links
            power_now = await page.evaluate("document.getElementById('power-now').innerText")
            assert "W" in power_now and "1SAG3101021605" in power_now
            await page.screenshot(ARTIFACTS / "web-demo.png")

            # A phone: the stored token is used without asking, and nothing is wider than the screen.
            await page.call("Emulation.setDeviceMetricsOverride", **PHONE)
            await page.call("Page.reload")
            await page.wait_for("window.meterlink && window.meterlink.segments === 3 "
                                "&& document.querySelectorAll('#meters tbody tr').length > 20", "the page on a phone")
            assert await page.evaluate("document.getElementById('token-form').hidden")
            widths = await page.evaluate("({page: document.documentElement.scrollWidth, screen: window.innerWidth,"
                                         " chart: document.getElementById('chart').getBoundingClientRect().width})")
            assert widths["screen"] == 375 and widths["page"] <= widths["screen"], widths
            assert 300 < widths["chart"] <= 375, widths
            await page.screenshot(ARTIFACTS / "web-phone.png", full_page=False)

            assert page.errors() == []
