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
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from statemachine.graph import iterate_states

from meterlink.actors.link import LinkStatus
from meterlink.machines.base import Dropped
from meterlink.machines.bsm import BsmClient
from meterlink.machines.mep import MepClient
from meterlink.machines.dlms import DlmsClient
from meterlink.machines.dlms import Association
from meterlink.machines.hdlc_push import HdlcPushReader
from meterlink.machines.image_transfer import Image
from meterlink.machines.mbus import MBusAdapter
from meterlink.machines.p1 import P1Reader
from meterlink.machines.wmbus import WMBusReceiver
from meterlink.protocols.p1 import P1Framer, TelegramFramed
from meterlink.protocols.readings import Reading, Value
from meterlink.service.hub import ReadingsHub
from meterlink.service.image_transfer import make_transfer
from meterlink.service.mqtt import MqttStatus
from meterlink.simulators.p1 import P1MeterModel
from meterlink.supervisor import ChildState, ChildStatus
from processes import METERLINK, free_port
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
ZONE = "Europe/Vienna"    # the browser's time zone: clock times on the page are checked in it


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
        await page.call("Emulation.setTimezoneOverride", timezoneId=ZONE)
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


def heat_pump_reading(at: float) -> Reading:
    """A DLMS meter drawing about 11 kW: on one scale with the P1 meter's 1 kW it would flatten that."""
    watts = round(11_000 + 400 * math.sin(at / 7))
    return Reading("KAM-HEATPUMP", "dlms", at, None, (Value("1-1:1.7.0.255", watts, "W", watts, 0, 27),
                                                       Value("1-1:2.7.0.255", 0, "W", 0, 0, 27)))


async def every(interval: float, start: float, emit: Callable[[int, float], None]) -> None:
    """emit(n, due) at due = start + n * interval; those due in the past at once.

    The readings' received_at is the scheduled time, so their intervals are exact and the only
    breaks the page may draw are the ones a test puts there.
    """
    for n in itertools.count():
        due = start + n * interval
        await trio.sleep(max(0.0, due - time.time()))
        emit(n, due)


def feed_p1(hub: ReadingsHub, link: LinkStatus) -> Callable[[int, float], None]:
    """One telegram a second, except the seconds in HOLE; the one at INCOMPLETE lacks 1-0:2.7.0."""
    model = P1MeterModel()

    def emit(second: int, due: float) -> None:
        if second in HOLE:
            return
        reading = p1_reading(model, due)
        if second == INCOMPLETE:
            reading = dataclasses.replace(reading, values=tuple(v for v in reading.values if v.obis != "1-0:2.7.0.255"))
        hub.publish(reading)
        link.note_reading(reading)

    return emit


def feed(hub: ReadingsHub, link: LinkStatus, reading: Callable[[float], Reading]) -> Callable[[int, float], None]:
    def emit(_: int, due: float) -> None:
        hub.publish(reading(due))
        link.note_reading(reading(due))

    return emit


class ImageShown:
    """What the DLMS link reports of an image transfer (service.image_transfer.Transfer.progress),
    set by the test: mid-transfer first, then over."""

    def __init__(self, progress: dict[str, Any]) -> None:
        self.now = progress

    def progress(self) -> dict[str, Any]:
        return self.now


IMAGE_RUNNING = {"state": "image_block_transfer invoked", "identification": "50981040-Q5", "blocks": 8,
                 "confirmed": 3, "sent": 4, "resent": 1, "bytes_sent": 800, "size": 1500}
IMAGE_FAILED = {**IMAGE_RUNNING, "state": "Failed", "confirmed": 8, "sent": 9, "bytes_sent": 1500, "verdict": {
    "result": "failed", "identification": "50981040-Q5", "size": 1500, "blocks": 8, "blocks_resent": 1,
    "revision_before": "50981040-Q1", "revision_after": None, "seconds": 12.345, "signature": None,
    "reason": "image_transfer_status 4: verification failed"}}
IMAGE_ACTIVE = {**IMAGE_FAILED, "state": "New image active, revision confirmed", "verdict": {
    **IMAGE_FAILED["verdict"], "result": "active", "revision_after": "50981040-Q5", "reason": None}}


def test_the_image_progress_shown_has_the_keys_of_a_transfer() -> None:
    transfer = make_transfer(Image(b"50981040-Q5", bytes(1500)), "tcp://meter:4059", Association())
    assert set(IMAGE_RUNNING) == set(transfer.progress())
    transfer.machine.send("interrupt")
    assert set(IMAGE_FAILED) == set(transfer.progress()) and set(IMAGE_FAILED["verdict"]) >= set(transfer.verdict())


def the_links(start: float) -> dict[str, LinkStatus]:
    """A P1 link whose one dropped telegram is history, an M-Bus link that has no key (a problem
    now) and was restarted, and a DLMS link sending a firmware image."""
    p1 = LinkStatus("p1", "p1", state="hunting", state_label="Waiting for '/'", connected=True,
                    counters=Counter(noise_bytes=17))
    p1.note_drop(Dropped("crc_error", "CRC 1A2B, computed 3C4D"), start - 1)
    mbus = LinkStatus("mbus", "mbus", state="listening", state_label="Data mode, between telegrams", connected=True)
    for second in range(4):
        mbus.note_drop(Dropped("no_key", "no meter key is set for this link"), start + second)
    dlms = LinkStatus("dlms", "dlms", state="associated,quiet", state_label="Associated", connected=True)
    dlms.image = ImageShown(IMAGE_RUNNING)
    return {"p1": p1, "mbus": mbus, "dlms": dlms}


def the_supervisor(start: float) -> tuple[ChildStatus, ...]:
    mbus = ChildStatus("mbus", ChildState.RUNNING, 2, "LinkLost: mbus: the peer closed the link", start + 2, None)
    return (ChildStatus("links", ChildState.RUNNING, 0, None, None, None, children=(mbus,)),)


MQTT = MqttStatus(connected=False, connects=3, published=1234, in_flight=2, queued=17, dropped=5, expired=1,
                  last_error="connection refused")


@asynccontextmanager
async def serve_adapter(tmp_path: Path) -> AsyncIterator[tuple[str, float, dict[str, LinkStatus]]]:
    """The API and page on a free loopback port, with meters feeding its hub; yields (url, start, links)."""
    start = math.floor(time.time()) - HISTORY_S
    links = the_links(start)
    hub = ReadingsHub()
    adapter = make_adapter(tmp_path, hub, links)
    adapter.supervisor_status = lambda: the_supervisor(start)
    adapter.outputs = {"mqtt": lambda: MQTT}
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    async with trio.open_nursery() as nursery:
        nursery.start_soon(every, 1.0, start, feed_p1(hub, links["p1"]))
        nursery.start_soon(every, 2.0, start, feed(hub, links["dlms"], heat_pump_reading))
        binds = await nursery.start(partial(hypercorn_serve, web_app(adapter), config))  # type: ignore[arg-type]
        yield binds[0], start, links
        nursery.cancel_scope.cancel()


# --- what the page shows ----------------------------------------------------------------------------------

TABLE_ROWS = """[...document.querySelectorAll('#meters tbody tr')].map(tr => [...tr.cells].map(td => td.innerText))"""
P1_SERIES = "window.meterlink.series.find(s => s.link === 'p1')"

# Pixels of the series' colour in its plot between two times (device pixels), read back from its
# canvas; the x scale is the one of the last draw, from the test hook.
PIXELS_BETWEEN = """((series, ta, tb) => {
  const p = series.plot, canvas = document.getElementById(series.canvas);
  const ratio = canvas.width / canvas.clientWidth;
  const [r, g, b] = [1, 3, 5].map(i => parseInt(series.color.slice(i, i + 2), 16));
  const x = t => p.left + (t - p.t0) / (p.t1 - p.t0) * (p.right - p.left);
  const x0 = Math.ceil(x(ta) * ratio), x1 = Math.floor(x(tb) * ratio);
  const y0 = Math.floor(p.top * ratio), y1 = Math.ceil(p.bottom * ratio);
  const data = canvas.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4)
    if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60 && data[i + 3] > 200) n++;
  return {columns: x1 - x0, n};
})"""

CLOCK_TIME = re.compile(r"\d\d:\d\d:\d\d")
LINKS_TEXT = "[...document.querySelectorAll('#links > li')].map(li => li.innerText)"


def clock_time(t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(ZONE)).strftime("%H:%M:%S")


def assert_axes_readable(series: dict[str, Any]) -> None:
    """Each axis label lies inside its canvas and clear of every other; both axes are labelled, the
    x axis with clock times of the plotted span."""
    plot, labels = series["plot"], series["labels"]
    for box in labels:
        assert 0 <= box["x"] <= box["x"] + box["w"] <= plot["width"], box
        assert 0 <= box["y"] <= box["y"] + box["h"] <= plot["height"], box
    for a, b in itertools.combinations(labels, 2):
        assert (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]), (series["link"], a, b)
    times = [box["text"] for box in labels if CLOCK_TIME.fullmatch(box["text"])]
    shown = {clock_time(t) for t in range(math.ceil(plot["t0"]), math.floor(plot["t1"]) + 1)}
    assert len(times) >= 2 and set(times) <= shown, (series["link"], times)
    assert len(labels) - len(times) >= 2, (series["link"], labels)


async def on_plot(page: Page, series: dict[str, Any], t: float) -> dict[str, float]:
    """Where in the viewport the series' plot is at time `t`, half-way up."""
    box = await page.evaluate(f"document.getElementById({json.dumps(series['canvas'])}).getBoundingClientRect().toJSON()")
    plot = series["plot"]
    return {"x": box["x"] + plot["left"] + (t - plot["t0"]) / (plot["t1"] - plot["t0"]) * (plot["right"] - plot["left"]),
            "y": box["y"] + (plot["top"] + plot["bottom"]) / 2}


async def hover(page: Page, series: dict[str, Any], t: float) -> None:
    await page.call("Input.dispatchMouseEvent", type="mouseMoved", **await on_plot(page, series, t))


async def tap(page: Page, series: dict[str, Any], t: float) -> None:
    await page.call("Input.dispatchTouchEvent", type="touchStart", touchPoints=[await on_plot(page, series, t)])
    await page.call("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])


async def test_page_shows_tables_graphs_and_links(tmp_path: Path, chromium: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with trio.fail_after(50):
        async with serve_adapter(tmp_path) as (url, start, links), \
                open_browser(chromium, tmp_path / "profile", ARTIFACTS / "chromium.log") as browser:
            page = await Page.open(browser, LAPTOP)
            await page.call("Page.navigate", url=url + "/")

            # No open reads configured: the page asks for the token and says where it was printed.
            await page.wait_for("!document.getElementById('token-form').hidden", "the token form")
            form = await page.evaluate("document.getElementById('token-form').innerText")
            assert "printed once when meterlink first started: on the console" in form
            assert "journalctl -u meterlink" in form and "meterlink token --config FILE" in form
            await page.evaluate(f"document.getElementById('token-input').value = {json.dumps(TOKEN)};"
                                "document.getElementById('token-form').requestSubmit()")
            await check_tables(page)
            await check_graph(page, start)
            await check_links(page, start)
            await check_image_transfer(page, links["dlms"])
            await page.screenshot(ARTIFACTS / "web-demo.png")

            # A phone: the stored token is used without asking, and nothing is wider than the screen.
            await page.call("Emulation.setDeviceMetricsOverride", **PHONE)
            await page.call("Page.reload")
            await page.wait_for(f"{P1_SERIES}.segments.length === 3 && window.meterlink.series.length === 2 "
                                "&& document.querySelectorAll('#meters tbody tr').length > 20", "the page on a phone")
            assert await page.evaluate("document.getElementById('token-form').hidden")
            widths = await page.evaluate("({page: document.documentElement.scrollWidth, screen: window.innerWidth,"
                                         " chart: document.getElementById('panels').getBoundingClientRect().width})")
            assert widths["screen"] == 375 and widths["page"] <= widths["screen"], widths
            assert 300 < widths["chart"] <= 375, widths
            hook = await page.evaluate("window.meterlink")
            for series in hook["series"]:
                assert_axes_readable(series)
            # A tap shows the tooltip, and it stays after the finger lifted.
            await tap(page, hook["series"][0], start + 30)
            await trio.sleep(0.3)
            assert await page.evaluate("!document.querySelector('.tip').hidden")
            await page.screenshot(ARTIFACTS / "web-phone.png", full_page=False)

            assert page.errors() == []


async def check_tables(page: Page) -> None:
    rows = await page.wait_for(f"(() => {{ const r = {TABLE_ROWS}; return r.length > 20 && r; }})()",
                               "the table of current values")
    by_obis = {row[0]: row for row in rows}
    await page.wait_for("document.querySelectorAll('#meters .meter').length === 2", "a table per meter")
    for obis, name, unit in [("1-0:1.7.0", "Active power import (+P)", "kW"),
                             ("1-0:2.7.0", "Active power export (\u2212P)", "kW"),
                             ("1-0:32.7.0", "Voltage L1", "V"), ("1-0:1.8.1", "Import energy T1", "kWh")]:
        assert (by_obis[obis][1], by_obis[obis][3]) == (name, unit)
        float(by_obis[obis][2])  # the number as the meter sent it
    assert by_obis["0-1:24.2.3"][1] == "Channel 1 reading (gas)"
    assert by_obis["0-0:96.1.1"][2].endswith("1SAG3101021605")  # hex as sent, decoded text below


async def check_graph(page: Page, start: float) -> None:
    # The adapter's 60 s window is in the graph (fetched once the stream was subscribed) ...
    await page.wait_for(f"{P1_SERIES}.points[0][0] === {start}", "the adapter's window")
    loaded_at = await page.evaluate(f"Math.max(...{P1_SERIES}.points.map(p => p[0]))")

    # ... and readings that arrive later come over the stream (fetch + SSE parsing).
    await page.wait_for(f"{P1_SERIES}.points.some(p => p[0] >= {loaded_at + 2})", "live readings from the stream")
    hook = await page.evaluate("window.meterlink")
    p1, heat_pump = sorted(hook["series"], key=lambda s: s["link"] != "p1")
    times = [t for t, _ in p1["points"]]
    assert times == sorted(times) and len(times) == len(set(times))
    assert not any(start + s in times for s in HOLE), "a point was made up inside the hole"
    # The reading without 2.7.0 has no power (not 1.7.0 - 0); every other reading has one.
    assert [t for t, w in p1["points"] if w is None] == [start + INCOMPLETE]
    # The line stops at the last telegram before the hole and starts again at the first one
    # after it; it also stops before the reading without a power value and goes on after it.
    assert [segment[:2] for segment in p1["segments"]] == [
        [start, start + HOLE.start - 1],
        [start + HOLE.stop, start + INCOMPLETE - 1],
        [start + INCOMPLETE + 1, times[-1]],
    ], (start, p1["segments"], p1["threshold"])
    assert p1["threshold"] == pytest.approx(1.5)

    # The pixels agree: the series' colour inside the segments, none inside the hole.
    drawn = await page.evaluate(f"{PIXELS_BETWEEN}({P1_SERIES}, {start + 2}, {start + HOLE.start - 2})")
    hole = await page.evaluate(f"{PIXELS_BETWEEN}({P1_SERIES}, {start + HOLE.start + 0.5}, {start + HOLE.stop - 0.5})")
    assert drawn["n"] > 20 and hole["columns"] > 10 and hole["n"] == 0, (drawn, hole)

    # One panel per meter, each on its own scale: the 11 kW meter does not flatten the 1 kW one.
    assert heat_pump["meter_id"] == "KAM-HEATPUMP" and heat_pump["canvas"] != p1["canvas"]
    assert p1["plot"]["yMax"] <= 2000 and heat_pump["plot"]["yMax"] >= 11_400
    for series in hook["series"]:
        assert_axes_readable(series)
    assert len([box for box in p1["labels"] if CLOCK_TIME.fullmatch(box["text"])]) >= 4

    # Hovering shows the time and value of the nearest point.
    target = start + 8
    await hover(page, p1, target)
    tip = await page.wait_for(f"(() => {{ const tip = document.getElementById({P1_SERIES}.canvas).nextElementSibling;"
                              " return !tip.hidden && tip.innerText; })()", "the tooltip")
    shape = re.fullmatch(r"(-?\d+(?:\.\d+)?) (k?W) (\d\d:\d\d:\d\d)", tip.strip())
    assert shape is not None, tip
    value, unit, shown = shape.groups()
    [(t, w)] = [(t, w) for t, w in p1["points"] if clock_time(t) == shown]
    assert abs(t - target) <= 1, (shown, target)
    assert float(value) * (1000 if unit == "kW" else 1) == pytest.approx(w, abs=5)
    await page.screenshot(ARTIFACTS / "web-tooltip.png", full_page=False)
    await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=1, y=1)


async def check_links(page: Page, start: float) -> None:
    await page.wait_for("document.querySelectorAll('#links > li').length === 3", "the links")
    p1, mbus, dlms = await page.evaluate(LINKS_TEXT)
    # States by the diagrams' names; ids and machine counters only under "details", which is closed.
    assert p1.startswith("p1 (p1) Waiting for '/'\n") and "hunting" not in p1 and "noise" not in p1
    assert mbus.startswith("mbus (mbus) Data mode, between telegrams\n") and "listening" not in mbus
    assert dlms.startswith("dlms (dlms) Associated\n") and "quiet" not in dlms
    # What matters first: telegrams, drops by cause, the last error; a drop readings followed is history.
    lines = p1.split("\n")
    assert re.fullmatch(r"\d+ telegrams \u00b7 dropped: crc error 1", lines[2]), lines
    assert re.fullmatch(rf"last dropped at {clock_time(start - 1)}, cleared: \d+ telegrams decoded since", lines[3]), lines
    assert mbus.split("\n")[2:5] == [
        "0 telegrams \u00b7 dropped: no key 4",
        f"dropped at {clock_time(start + 3)}: no_key: no meter key is set for this link",
        f"last error at {clock_time(start + 2)}: LinkLost: mbus: the peer closed the link (restarted 2 times)",
    ]
    problems = await page.evaluate("[...document.querySelectorAll('#links .problem')].map(e => e.innerText)")
    assert [problem.split(":")[0] for problem in problems] == [f"dropped at {clock_time(start + 3)[:2]}"]
    assert re.search(r"\n\d+ readings \u00b7 nothing dropped\n", dlms)

    # The details open on a click, show the machine's own ids and counters, and stay open when
    # the list is drawn again.
    await page.evaluate("document.querySelector('#links > li details summary').click();"
                        "document.querySelector('#links > li').dataset.old = 'yes'")
    await page.wait_for("!document.querySelector('#links > li').dataset.old", "the links drawn again")
    p1 = (await page.evaluate(LINKS_TEXT))[0]
    assert "state hunting" in p1 and "noise_bytes 17" in p1 and "last drop: crc_error: CRC 1A2B" in p1

    outputs = await page.evaluate("!document.getElementById('outputs').hidden && document.getElementById('outputs').innerText")
    assert outputs.split("\n") == ["Outputs", "MQTT not connected",
                                   "published 1234 \u00b7 queued 17 \u00b7 dropped 5 \u00b7 expired 1",
                                   "last error: connection refused"]


async def check_image_transfer(page: Page, dlms: LinkStatus) -> None:
    """The DLMS link's panel shows the image transfer: its step and blocks with a bar while it runs,
    then the verdict; a failed one as the link's problem."""
    text = (await page.evaluate(LINKS_TEXT))[2].split("\n")
    assert text[3] == ("image 50981040-Q5: image_block_transfer invoked \u00b7 3/8 blocks (37 %), 1 resent"
                       " \u00b7 800 of 1500 bytes sent"), text
    bar = await page.evaluate("(() => { const p = document.querySelector('#links .image progress');"
                              " return [p.value, p.max]; })()")
    assert bar == [3, 8]
    await page.screenshot(ARTIFACTS / "web-image-transfer.png")
    dlms.image.now = IMAGE_FAILED
    problem = await page.wait_for("[...document.querySelectorAll('#links .problem.image')].map(e => e.innerText)[0]",
                                  "the failed image transfer")
    assert problem == ("image 50981040-Q5 failed: image_transfer_status 4: verification failed"
                       " \u00b7 8 blocks, 1 resent \u00b7 12.3 s")
    dlms.image.now = IMAGE_ACTIVE
    await page.wait_for("!document.querySelector('#links .problem.image')", "the image transfer over")
    text = (await page.evaluate(LINKS_TEXT))[2].split("\n")
    assert text[3] == "image 50981040-Q5 active: revision 50981040-Q1 \u2192 50981040-Q5 \u00b7 8 blocks, 1 resent \u00b7 12.3 s"
    assert await page.evaluate("document.querySelector('#links .image progress')") is None


# --- meterlink demo as a user starts it -------------------------------------------------------------------


async def test_demo_page_opens_without_a_token(tmp_path: Path, chromium: str) -> None:
    # The demo is local and simulated: opened on 127.0.0.1, its page shows readings at once.
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    demo = await trio.lowlevel.open_process([*METERLINK, "demo", "--http", f"127.0.0.1:{port}"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with trio.fail_after(60):
            async with open_browser(chromium, tmp_path / "profile", ARTIFACTS / "chromium-demo.log") as browser:
                page = await Page.open(browser, LAPTOP)
                await wait_until_serving(port)
                await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
                await page.wait_for("window.meterlink && window.meterlink.series.length === 8 "
                                    "&& window.meterlink.series.every(s => s.points.length >= 5)", "eight meters' graphs", 30)
                await page.wait_for("document.querySelectorAll('#links > li').length === 8", "the links")
                assert await page.evaluate("document.getElementById('token-form').hidden")
                assert await page.evaluate("localStorage.getItem('meterlink.token')") is None
                labels = {text.split("\n")[0] for text in await page.evaluate(LINKS_TEXT)}
                assert labels <= {f"{link} ({kind}) {name}" for link, (kind, machine) in DEMO_LINKS.items()
                                  for name in machine_state_names(machine)}, labels
                for series in (await page.evaluate("window.meterlink"))["series"]:
                    assert_axes_readable(series)
                await page.screenshot(ARTIFACTS / "web-demo-live.png", full_page=False)

                await page.call("Emulation.setDeviceMetricsOverride", **PHONE)
                await page.wait_for("window.meterlink.series.every(s => s.plot.width < 375)", "the phone layout")
                await trio.sleep(1.5)  # a draw after the layout settled
                for series in (await page.evaluate("window.meterlink"))["series"]:
                    assert_axes_readable(series)
                await page.screenshot(ARTIFACTS / "web-demo-live-phone.png", full_page=False)
                assert page.errors() == []
    finally:
        demo.terminate()
        await demo.wait()


DEMO_LINKS = {"p1": ("p1", P1Reader), "mbus": ("mbus", MBusAdapter), "hdlc": ("hdlc-push", HdlcPushReader),
              "amis": ("mbus", MBusAdapter), "wmbus": ("wmbus", WMBusReceiver),
              "dlms": ("dlms", DlmsClient), "bsm": ("bsm", BsmClient), "mep": ("mep", MepClient)}
"""The demo's links by name: their kind and machine."""


def machine_state_names(machine: type) -> set[str]:
    return {str(state.name) for state in iterate_states(machine.states) if not state.states}


async def wait_until_serving(port: int) -> None:
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.2)
            continue
        await stream.aclose()
        return
