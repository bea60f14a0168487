"""hypercorn's HTTP protocol on trio, serving the socket taken at start, with writes that can end.

hypercorn's own `serve` shields each write to a client from cancellation, so that a response is
never cut half-way. A client that stops reading (an SSE client whose window is full) then blocks
its connection's task in that write for ever, and with it the end of the server: SIGTERM left the
service running until systemd killed it (issue 12 item 3). Here a write gives up, closing the
connection, when the client has taken nothing for `SEND_TIMEOUT` seconds, and at once when the
server stops. The connections are hypercorn's own (`TCPServer`); only the stream under them is ours.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState
from hypercorn.utils import wrap_app

SEND_TIMEOUT = 30.0
"""Seconds a client may take no byte of an answer before its connection is closed (twice the SSE
keep-alive interval, so a client on a poor link is not dropped between two comments)."""


class Writes:
    """The writes in progress on every connection, so that stopping the server can end them."""

    def __init__(self, timeout: float = SEND_TIMEOUT) -> None:
        self.timeout = timeout
        self._scopes: set[trio.CancelScope] = set()
        self._stopped = False

    @contextmanager
    def limited(self) -> Iterator[trio.CancelScope]:
        """A scope for one write: cancelled after `timeout` seconds or when the server stops."""
        scope = trio.CancelScope(deadline=trio.current_time() + self.timeout)
        if self._stopped:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    def stop(self) -> None:
        self._stopped = True
        for scope in self._scopes:
            scope.cancel()


class ClientStream(trio.abc.HalfCloseableStream):
    """A client's connection whose writes end with `Writes`; an ended write closes it.

    hypercorn takes the closed stream (BrokenResourceError) as a client that went away.
    """

    def __init__(self, stream: trio.SocketStream, writes: Writes) -> None:
        self._stream = stream
        self._writes = writes

    @property
    def socket(self) -> trio.socket.SocketType:
        """hypercorn reads the client's and the server's address from it."""
        return self._stream.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._writes.limited() as scope:
            await self._stream.send_all(data)
        if scope.cancelled_caught:
            # Part of `data` may have been sent: the connection cannot go on.
            await trio.aclose_forcefully(self._stream)
            raise trio.BrokenResourceError("the client took nothing for too long, or the server stopped")

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


class ClientListener(trio.abc.Listener[ClientStream]):
    def __init__(self, listener: trio.SocketListener, writes: Writes) -> None:
        self._listener = listener
        self._writes = writes

    async def accept(self) -> ClientStream:
        return ClientStream(await self._listener.accept(), self._writes)

    async def aclose(self) -> None:
        await self._listener.aclose()


async def serve(app: ASGIFramework, config: HypercornConfig, listener: socket.socket) -> None:
    """Serve `app` on a listening socket until cancelled; the socket itself stays open for a restart."""
    writes = Writes()
    # A copy: the trio listener closes its socket when it ends.
    clients = ClientListener(trio.SocketListener(trio.socket.from_stdlib_socket(listener.dup())), writes)
    connection = partial(TCPServer, wrap_app(app, config.wsgi_max_body_size, "asgi"), config, WorkerContext(None),
                         ConnectionState({}))
    async with trio.open_nursery() as connections:
        try:
            await trio.serve_listeners(connection, [clients], handler_nursery=connections)
        finally:
            # Before the nursery waits for the connections: a blocked write must not hold it.
            writes.stop()
