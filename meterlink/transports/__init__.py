"""Links to meters: serial devices, TCP (serial-to-Ethernet converters), ptys, in-memory pairs, a
command's output (rtl_wmbus).

Every link is a `trio.abc.Stream`. Opening raises `TransportError` with a
message for the user; a link that fails later raises `trio.BrokenResourceError`
(or reads end of file), as trio streams do. POSIX only.
"""

from ._command import open_command
from ._errors import TransportError
from ._link import open_link
from ._memory import memory_link_pair
from ._pty import Pty, open_pty
from ._serial import open_serial
from ._settings import SerialSettings
from ._tcp import parse_tcp_url, serve_tcp

__all__ = [
    "Pty",
    "SerialSettings",
    "TransportError",
    "memory_link_pair",
    "open_command",
    "open_link",
    "open_pty",
    "open_serial",
    "parse_tcp_url",
    "serve_tcp",
]
