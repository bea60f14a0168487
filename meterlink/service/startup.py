"""What the service checks and takes before anything runs: its state directory, its HTTP port and
its API token.

A mistake here cannot be mended by a restart (a busy port, a state directory that is a file, a
damaged token hash), so it ends the start with one line naming the key or file and what is wrong
(`StartupError`, exit 2, which the systemd unit does not restart), instead of a supervisor
restarting a child forever. The order matters: the HTTP port is taken before a token is made, and a
new token is shown before anything else can fail, so a user never ends up with a stored token hash
whose token nobody saw.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
from pathlib import Path

from .secrets import Credentials, SecretsError

LISTEN_BACKLOG = 100
SPARE_DESCRIPTORS = 256
"""Descriptors beyond one per link: the HTTP server and its clients, MQTT, state files, detection."""


class StartupError(Exception):
    """The service cannot start; the message is one line naming the key or file and what is wrong."""


def prepare_state_dir(path: Path) -> Path:
    """The state directory (`adapter.state_dir`), created 0700 if missing, and writable."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise StartupError(f"adapter.state_dir: {path} is not a directory") from None
    except OSError as error:
        raise StartupError(f"adapter.state_dir: cannot create {path}: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"adapter.state_dir: {path} is not writable by this user (uid {os.geteuid()})")
    return path


def bind_http(listen: str) -> socket.socket:
    """A listening socket on `http.listen` (HOST:PORT, [v6]:PORT), taken now so a port in use is
    found at start; the HTTP server serves from it for the service's whole life."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, ValueError) as error:
        reason = error.strerror.lower() if isinstance(error, socket.gaierror) else "not a port number"
        raise StartupError(f"{listen}: {reason} (expected HOST:PORT to serve HTTP on)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart must not wait for TIME_WAIT
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        raise StartupError(f"{listen}: {_reason(error)}") from None
    return sock


def _reason(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return "address already in use (another meterlink, or another server, has this port)"
    if error.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root; use e.g. 8080)"
    return (error.strerror or str(error)).lower()


def ensure_token(credentials: Credentials, configured: str | None) -> str | None:
    """The newly made token to show the user once, or None when one is stored or configured."""
    try:
        return credentials.ensure(configured)
    except SecretsError as error:
        raise StartupError(str(error)) from None


def raise_descriptor_limit(links: int) -> str | None:
    """Make room for one open descriptor per link and `SPARE_DESCRIPTORS` more.

    A gateway's links are sockets (bench/README.md, "Gateway scale": 1,000 links hold 1,011), and
    the usual soft limit is 1024 (systemd's default LimitNOFILE=1024:524288). The soft limit is raised
    towards the hard one as far as needed; where the hard limit is too low the start goes on (the
    links beyond it fail and are retried) with the line returned here for the log.
    """
    needed = links + SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    room = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if room > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (room, hard))
    if room < needed:
        return (f"{links} links need about {needed} open files, the hard limit is {hard}: "
                f"raise it (systemd LimitNOFILE=, ulimit -Hn)")
    return None
