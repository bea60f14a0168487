"""download_file and request_post (seed 000 ch. 3.4.5): off by default, only to listed hosts (SSRF).

A tiny HTTP server on 127.0.0.1 stands in for the host the adapter may reach.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import trio

from meterlink.service.adapter import ApiPolicy
from meterlink.service.api import FETCH_LIMIT
from test_api import Rig, api_client, command, make_rig

FILE = b"firmware notes\n" * 100


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    port: int
    seen: list[Seen] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


ROUTES: dict[str, tuple[str, dict[str, str], bytes]] = {
    "/test.txt": ("200 OK", {}, FILE),
    "/big.bin": ("200 OK", {}, b"x" * (FETCH_LIMIT + 1)),
    "/missing": ("404 Not Found", {}, b"no"),
    "/moved": ("302 Found", {"Location": "http://192.0.2.9/test.txt"}, b""),
    "/api": ("201 Created", {}, b'{"result":"OK"}'),
}


async def _handle(server: Server, stream: trio.SocketStream) -> None:
    """One HTTP/1.1 request per connection; enough for httpx."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += await stream.receive_some()
    method, path, _ = request_line.split(" ")
    server.seen.append(Seen(method, path, headers, body))
    status, extra, content = ROUTES.get(path, ("404 Not Found", {}, b""))
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(content)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in extra.items()]
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + content)
    await stream.aclose()


@asynccontextmanager
async def http_server() -> AsyncIterator[Server]:
    async with trio.open_nursery() as nursery:
        server = Server(0)
        listeners = await nursery.start(partial(trio.serve_tcp, partial(_handle, server), 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


def listing(tmp_path: Path, *hosts: str) -> Rig:
    return make_rig(tmp_path, policy=ApiPolicy(fetch_hosts=hosts))


@pytest.mark.parametrize("allowed", [(), ("localhost",), ("127.0.0.1",), ("127.0.0.10",)])
async def test_refused_unless_the_host_is_listed(tmp_path: Path, allowed: tuple[str, ...]) -> None:
    """Listed without the server's port, a host is reached on 80 (http) or 443 (https) only (issue 12 item 8)."""
    rig = listing(tmp_path, *allowed)
    async with http_server() as server, api_client(rig.adapter) as client:
        download = await command(client, {"cmd": "download_file", "file_uri": server.url("/test.txt")})
        posted = await command(client, {"cmd": "request_post", "file_uri": server.url("/api"), "message": "{}"})
        # The user-info part is not the host: this URL goes to 192.0.2.9.
        disguised = await command(client, {"cmd": "download_file", "file_uri": "http://127.0.0.1@192.0.2.9/test.txt"})
    for response in (download, posted, disguised):
        assert response.status_code == 403
        assert response.json()["error"] == "fetch_not_allowed" and "fetch_hosts" in response.json()["message"]
    assert server.seen == []


async def test_download_file_from_a_listed_host(tmp_path: Path) -> None:
    async with http_server() as server, api_client(listing(tmp_path, f"127.0.0.1:{server.port}").adapter) as client:
        response = await command(client, {"cmd": "download_file", "file_uri": server.url("/test.txt"),
                                          "cert": "ca_cert.pem", "id": "5"})
    assert response.status_code == 200
    assert response.json() == {"size": len(FILE), "sha256": hashlib.sha256(FILE).hexdigest(), "result": "OK", "id": "5"}
    assert [(seen.method, seen.path) for seen in server.seen] == [("GET", "/test.txt")]


@pytest.mark.parametrize(("path", "error"), [("/missing", "download_failed"), ("/big.bin", "download_too_large"),
                                             ("/moved", "download_failed")])
async def test_download_failures(tmp_path: Path, path: str, error: str) -> None:
    async with http_server() as server, api_client(listing(tmp_path, f"127.0.0.1:{server.port}").adapter) as client:
        response = await command(client, {"cmd": "download_file", "file_uri": server.url(path)})
    assert response.status_code == 502
    assert response.json()["error"] == error
    # A redirect is not followed, not even to look.
    assert [seen.path for seen in server.seen] == [path]


async def test_unreachable_listed_host(tmp_path: Path) -> None:
    async with http_server() as server:
        closed = server.url("/test.txt")
    async with api_client(listing(tmp_path, f"127.0.0.1:{server.port}").adapter) as client:
        response = await command(client, {"cmd": "download_file", "file_uri": closed})
    assert response.status_code == 502
    assert response.json()["message"] == "the server could not be reached (ConnectError)"


async def test_request_post_to_a_listed_host(tmp_path: Path) -> None:
    message = '{"cmd":"meter_reading"}'
    async with http_server() as server, api_client(listing(tmp_path, f"LocalHost:{server.port}").adapter) as client:
        as_json = await command(client, {"cmd": "request_post", "file_uri": server.url("/api", "localhost"),
                                         "message": message})
        as_text = await command(client, {"cmd": "request_post", "file_uri": server.url("/missing", "localhost"),
                                         "message": "hello"})
    assert as_json.json() == {"status": 201, "result": "OK"}
    assert as_text.json() == {"status": 404, "result": "OK"}
    first, second = server.seen
    assert (first.method, first.path, first.body, first.headers["content-type"]) == (
        "POST", "/api", message.encode(), "application/json")
    assert (second.body, second.headers["content-type"]) == (b"hello", "text/plain; charset=utf-8")
