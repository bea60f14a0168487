from __future__ import annotations

import errno
import os
import termios

import serial
import trio

from ._errors import TransportError
from ._settings import SerialSettings

_STOPBITS = {
    1: serial.STOPBITS_ONE,
    1.5: serial.STOPBITS_ONE_POINT_FIVE,
    2: serial.STOPBITS_TWO,
}

_REASONS = {
    errno.ENOENT: "no such device",
    errno.ENODEV: "no such device",
    errno.ENXIO: "no such device",
    # EBUSY: another program set TIOCEXCL; EAGAIN: another program holds the flock.
    errno.EBUSY: "it is busy (in use by another program)",
    errno.EAGAIN: "it is busy (in use by another program)",
    errno.EACCES: "permission denied (add your user to the dialout group)",
    errno.EPERM: "permission denied (add your user to the dialout group)",
    errno.EISDIR: "not a serial device",
    errno.ENOTTY: "not a serial device",
}

# A pty or a USB gadget without modem lines refuses TIOCMBIS with these;
# pyserial ignores them the same way when it sets the lines during open.
_NO_MODEM_LINES = (errno.EINVAL, errno.ENOTTY)


async def open_serial(path: str, settings: SerialSettings) -> trio.lowlevel.FdStream:
    """Open and configure the serial device at *path*; raise `TransportError` if it cannot be opened.

    pyserial does the configuration; the returned stream owns a duplicate of
    its file descriptor, so closing the stream closes the port. I/O failures
    later (a USB adapter unplugged) surface as `trio.BrokenResourceError`.
    """
    # Opening a device can stall on some drivers (USB, rfcomm): keep the loop free.
    fd = await trio.to_thread.run_sync(_open_configured_fd, path, settings)
    return trio.lowlevel.FdStream(fd)


def _open_configured_fd(path: str, settings: SerialSettings) -> int:
    try:
        port = serial.Serial(
            path,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=_STOPBITS[settings.stopbits],
            exclusive=settings.exclusive,
        )
    except (OSError, termios.error, ValueError) as exc:
        raise TransportError(f"cannot open serial port {path}: {_reason(exc)}") from None
    try:
        if settings.data_request is not None:
            _raise_line(port, settings.data_request)
        _block_until_a_byte(port.fileno())
        # The duplicate shares the open file description, hence the termios
        # settings and the flock. pyserial's close() only closes its own fd (it
        # restores nothing), and since the duplicate keeps the tty open it is not
        # the last close, so HUPCL does not drop DTR/RTS either.
        return os.dup(port.fileno())
    except OSError as exc:
        raise TransportError(f"cannot open serial port {path}: {_reason(exc)}") from None
    finally:
        port.close()


def _block_until_a_byte(fd: int) -> None:
    # pyserial leaves VMIN = VTIME = 0 (it times out with select), and then a read with no data
    # returns 0 bytes, which a trio stream takes for end of file. VMIN = 1 makes read() wait for
    # data like a socket, so FdStream's EAGAIN-then-wait_readable path works.
    try:
        attributes = termios.tcgetattr(fd)
    except termios.error as error:
        if error.args[0] == errno.ENOTTY:
            return  # not a terminal (a test double): nothing to set
        raise
    attributes[6][termios.VMIN] = 1
    attributes[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


def _raise_line(port: serial.Serial, line: str) -> None:
    try:
        setattr(port, line, True)
    except OSError as exc:
        if exc.errno not in _NO_MODEM_LINES:
            raise


def _reason(exc: Exception) -> str:
    code = _errno(exc)
    if code in _REASONS:
        return _REASONS[code]
    if code is not None:
        return os.strerror(code).lower()
    return str(exc)


def _errno(exc: BaseException) -> int | None:
    if isinstance(exc, termios.error):
        return exc.args[0]
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    # pyserial re-raises a failed tcgetattr ("not a tty") without an errno.
    if isinstance(exc.__context__, termios.error):
        return exc.__context__.args[0]
    return None
