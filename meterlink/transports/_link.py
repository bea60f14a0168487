from __future__ import annotations

import trio

from ._errors import TransportError
from ._serial import open_serial
from ._settings import SerialSettings
from ._tcp import open_tcp


async def open_link(port: str, settings: SerialSettings = SerialSettings()) -> trio.abc.Stream:
    """Open the link named by *port*: ``tcp://HOST:PORT`` or a serial device path.

    *settings* apply to serial devices only (over TCP the converter owns the
    line settings). Raises `TransportError` with a message for the user.
    """
    if port.startswith("tcp://"):
        return await open_tcp(port)
    if "://" in port:
        raise TransportError(f"invalid port {port!r}: expected tcp://HOST:PORT or a serial device path")
    return await open_serial(port, settings)
