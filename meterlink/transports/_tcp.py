from __future__ import annotations

import os
import re
import socket
from collections.abc import Awaitable, Callable

import trio

from ._errors import TransportError

_TCP_URL_RE = re.compile(r"tcp://(?:\[([^\]\s/]+)\]|([^\s:/\[\]@?#]+)):(\d{1,5})")

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


def parse_tcp_url(url: str) -> tuple[str, int]:
    """Split ``tcp://HOST:PORT`` (IPv6 as ``tcp://[::1]:PORT``) into host and port."""
    match = _TCP_URL_RE.fullmatch(url)
    if match is None or int(match[3]) > 65535:
        raise ValueError(f"invalid port {url!r}: expected tcp://HOST:PORT")
    return match[1] or match[2], int(match[3])


def _format_tcp_url(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


async def open_tcp(url: str) -> trio.SocketStream:
    """Connect to ``tcp://HOST:PORT``; raise `TransportError` if that fails."""
    try:
        host, port = parse_tcp_url(url)
    except ValueError as exc:
        raise TransportError(str(exc)) from None
    try:
        return await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise TransportError(f"cannot connect to {url}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    # trio reports "all attempts failed" with each address's error in the cause.
    attempts = getattr(exc.__cause__, "exceptions", [exc])
    reasons = dict.fromkeys(
        os.strerror(e.errno).lower() if isinstance(e, OSError) and e.errno else str(e)
        for e in attempts
    )
    return ", ".join(reasons)


async def serve_tcp(
    handler: Handler,
    url: str,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``tcp://HOST:PORT`` and run ``handler(stream)`` for each connection.

    Port 0 picks a free port; ``task_status.started()`` gets the URL with the
    real port. The stream is closed when the handler returns. A client that goes
    away mid-conversation (`trio.BrokenResourceError` in the handler) ends only
    its own connection; any other exception from a handler ends the server.
    Raises `TransportError` if *url* is invalid or cannot be listened on.
    """
    try:
        host, port = parse_tcp_url(url)
    except ValueError as exc:
        raise TransportError(str(exc)) from None
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise TransportError(f"cannot listen on {url}: {_reason(exc)}") from None
    if port == 0:
        # Each address of a name like "localhost" got its own random port, and
        # the URL can name only one: keep the first.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    bound_port = listeners[0].socket.getsockname()[1]
    task_status.started(_format_tcp_url(host, bound_port))
    await trio.serve_listeners(_tolerating_disconnect(handler), listeners)


def _tolerating_disconnect(handler: Handler) -> Handler:
    async def run(stream: trio.abc.Stream) -> None:
        try:
            await handler(stream)
        except trio.BrokenResourceError:
            pass  # the client hung up: normal for a server, the next one may come

    return run
