from __future__ import annotations

import os
import termios
from dataclasses import dataclass, field

import trio


@dataclass
class Pty(trio.abc.AsyncResource):
    """A pseudo-terminal for simulators.

    The meter side talks through `stream` (the master); users open `path` (the
    slave) like a serial device, e.g. with `open_link`. The slave is also held
    open here, so the master never sees EIO between users. Bytes written while
    nobody has the slave open wait in the pty's buffer (a few KiB, then
    `send_all` blocks); pyserial flushes them when a user opens the port.

    `aclose` closes both sides; a user who still has `path` open then reads
    end of file (``b""``). Use ``async with open_pty() as pty:``.
    """

    stream: trio.lowlevel.FdStream
    path: str
    _slave_fd: int = field(repr=False)

    async def aclose(self) -> None:
        if self._slave_fd >= 0:
            os.close(self._slave_fd)
            self._slave_fd = -1
        await self.stream.aclose()


def open_pty() -> Pty:
    """Open a pseudo-terminal in raw mode, so binary protocols pass unchanged."""
    master, slave = os.openpty()
    try:
        _make_raw(slave)
        path = os.ttyname(slave)
        return Pty(trio.lowlevel.FdStream(master), path, slave)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise


def _make_raw(fd: int) -> None:
    # cfmakeraw(3); tty.setraw before Python 3.12 leaves INLCR, IGNCR and PARMRK
    # on, which would still rewrite CR, LF and 0xFF. A pty pair has one set of
    # termios, the slave's, and it governs both directions.
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    iflag &= ~(
        termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
        | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
