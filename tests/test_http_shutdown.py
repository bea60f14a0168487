"""A client that stops reading holds neither the service's end nor the other clients (issue 12 item 3).

hypercorn shields its writes from cancellation; a `/api/v1/stream` client whose window is full kept
SIGTERM from ending the service. The first test is the service as systemd runs it, with a raw
socket client that sends its GET and then never reads; the others drive `ClientStream` on MockClock.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from meterlink.service.httpserver import ClientStream, Writes
from processes import free_port
from test_service import TOKEN, Running

STALL_READINGS = 60
"""At most this many readings (the demo makes about 3.5 a second) until the stalled client blocks the server."""


@contextmanager
def client_that_never_reads(port: int) -> Iterator[socket.socket]:
    """A stream client with a tiny receive buffer that sends its request and reads nothing ever after."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET /api/v1/stream HTTP/1.1\r\nHost: adapter\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        yield sock


@contextmanager
def live_readings(port: int) -> Iterator[Iterator[str]]:
    """The `data:` lines of a client that reads the stream."""
    url = f"http://127.0.0.1:{port}/api/v1/stream"
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as response:
        yield (line for line in response.iter_lines() if line.startswith("data: "))


def unsent(server_port: int, client_port: int) -> int:
    """Bytes the service has queued for a loopback client and the client has not taken (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        if (local, remote) == (server_port, client_port):
            return int(fields[4].split(":")[0], 16)
    raise AssertionError("the stalled client's connection is gone")


def wait_until_blocked(readings: Iterator[str], server_port: int, client_port: int) -> None:
    """Until the service's queue to the stalled client stays the same while readings go out to others:
    the client's window is full and the service's write to it is blocked."""
    seen: list[int] = []
    for _ in range(STALL_READINGS):
        next(readings)
        seen.append(unsent(server_port, client_port))
        if len(seen) >= 4 and seen[-1] > 0 and len(set(seen[-4:])) == 1:
            return
    raise AssertionError(f"the service never blocked on the stalled client: {seen}")


def test_sigterm_ends_the_service_within_2_s_while_a_stream_client_never_reads() -> None:
    port = free_port()
    demo = Running("demo", "--http", f"127.0.0.1:{port}", "--token", TOKEN)
    try:
        assert demo.line().startswith("meterlink: serving")
        demo.line()
        with client_that_never_reads(port) as stalled, live_readings(port) as readings:
            wait_until_blocked(readings, port, stalled.getsockname()[1])
            # The stalled client holds up neither the links nor another client.
            after = [next(readings) for _ in range(3)]
            took, code, stderr = demo.stop()
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
    assert len(after) == 3
    assert took < 2.0, f"SIGTERM took {took:.2f} s"
    assert code == 0, stderr
    assert b"Traceback" not in stderr


async def test_a_write_the_client_never_takes_ends_after_the_timeout(autojump_clock: trio.testing.MockClock) -> None:
    server, _client = trio.testing.lockstep_stream_pair()  # the client never calls receive_some
    stream = ClientStream(server, Writes(timeout=30.0))  # type: ignore[arg-type]
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError):
        await stream.send_all(b"data: {}\n\n")
    assert trio.current_time() - start == 30.0
    # Part of the answer may be gone: the connection is closed, not reused.
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"data: {}\n\n")


async def test_stopping_ends_blocked_writes_at_once_and_refuses_new_ones(autojump_clock: trio.testing.MockClock) -> None:
    writes = Writes(timeout=30.0)
    blocked, _ = trio.testing.lockstep_stream_pair()
    later, _ = trio.testing.lockstep_stream_pair()
    ended: list[float] = []

    async def write(stream: ClientStream) -> None:
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"data: {}\n\n")
        ended.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, ClientStream(blocked, writes))  # type: ignore[arg-type]
        await trio.sleep(5.0)
        writes.stop()
    await write(ClientStream(later, writes))  # type: ignore[arg-type]
    assert ended == [5.0, 5.0]


async def test_a_client_that_reads_gets_the_whole_write(autojump_clock: trio.testing.MockClock) -> None:
    server, client = trio.testing.lockstep_stream_pair()
    stream = ClientStream(server, Writes(timeout=30.0))  # type: ignore[arg-type]
    received = bytearray()

    async def read() -> None:
        while len(received) < 4:
            received.extend(await client.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await stream.send_all(b"data")
    assert bytes(received) == b"data"
