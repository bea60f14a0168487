import errno
import os
import socket
import termios

import pytest
import serial
import trio

from meterlink.transports import (
    SerialSettings,
    TransportError,
    memory_link_pair,
    open_link,
    open_pty,
    open_serial,
    parse_tcp_url,
    serve_tcp,
)

ALL_BYTES = bytes(range(256))


async def receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, f"end of file after {len(data)} of {size} bytes"
        data += chunk
    return data


class RecordingSerial:
    """Stands in for serial.Serial: records what it was asked to set.

    A pty ignores parity and 7-bit settings, so those can only be checked here.
    """

    instances: list["RecordingSerial"] = []

    def __init__(self, port, **kwargs):
        self.port = port
        self.kwargs = kwargs
        self.lines: list[tuple[str, bool]] = []
        self.fd = os.open(os.devnull, os.O_RDWR)
        self.closed = False
        RecordingSerial.instances.append(self)

    @property
    def rts(self):
        raise AssertionError("not read by open_serial")

    @rts.setter
    def rts(self, value):
        self.lines.append(("rts", value))

    @property
    def dtr(self):
        raise AssertionError("not read by open_serial")

    @dtr.setter
    def dtr(self, value):
        self.lines.append(("dtr", value))

    def fileno(self):
        return self.fd

    def close(self):
        os.close(self.fd)
        self.closed = True


@pytest.fixture
def recorder(monkeypatch):
    RecordingSerial.instances = []
    monkeypatch.setattr(serial, "Serial", RecordingSerial)
    return RecordingSerial.instances


def failing_serial(error):
    def fail(*args, **kwargs):
        raise error

    return fail


# --- SerialSettings -------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("115200 8N1", SerialSettings()),
        ("2400 8E1", SerialSettings(baudrate=2400, parity="E")),
        ("9600 7E1", SerialSettings(baudrate=9600, bytesize=7, parity="E")),
        ("9600 8o2", SerialSettings(baudrate=9600, parity="O", stopbits=2)),
        ("  300 5N1.5 ", SerialSettings(baudrate=300, bytesize=5, stopbits=1.5)),
    ],
)
def test_settings_parse(text, expected):
    assert SerialSettings.parse(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "expected BAUD and DATABITS-PARITY-STOPBITS"),
        ("8N1", "expected BAUD and DATABITS-PARITY-STOPBITS"),
        ("fast 8N1", "expected BAUD and DATABITS-PARITY-STOPBITS"),
        ("9600 8N1 extra", "expected BAUD and DATABITS-PARITY-STOPBITS"),
        ("9600 8X1", "parity must be N, E or O, not 'X'"),
        ("9600 9N1", "data bits must be 5, 6, 7 or 8, not 9"),
        ("9600 8N3", "stop bits must be 1, 1.5 or 2, not 3"),
        ("0 8N1", "baud rate must be a positive whole number, not 0"),
    ],
)
def test_settings_parse_errors(text, message):
    with pytest.raises(ValueError) as info:
        SerialSettings.parse(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"parity": "M"}, "not 'M'"),
        ({"parity": "e"}, "not 'e'"),
        ({"bytesize": 4}, "not 4"),
        ({"stopbits": 3}, "not 3"),
        ({"baudrate": -9600}, "not -9600"),
        ({"baudrate": 9600.0}, "not 9600.0"),
        ({"data_request": "cts"}, "not 'cts'"),
    ],
)
def test_settings_validation_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SerialSettings(**kwargs)


# --- open_serial against a recorder ---------------------------------------


async def test_open_serial_passes_settings_to_pyserial(recorder):
    settings = SerialSettings(baudrate=2400, bytesize=7, parity="E", stopbits=1.5, exclusive=True)
    stream = await open_serial("/dev/ttyAMA0", settings)
    async with stream:
        [port] = recorder
        assert port.port == "/dev/ttyAMA0"
        assert port.kwargs == {
            "baudrate": 2400,
            "bytesize": serial.SEVENBITS,
            "parity": serial.PARITY_EVEN,
            "stopbits": serial.STOPBITS_ONE_POINT_FIVE,
            "exclusive": True,
        }
        # pyserial's object is released; the stream owns a duplicate descriptor.
        assert port.closed
        assert stream.fileno() != port.fd
        os.fstat(stream.fileno())


async def test_open_serial_can_share_the_port(recorder):
    async with await open_serial("/dev/ttyS1", SerialSettings(parity="O", stopbits=2, exclusive=False)):
        [port] = recorder
        assert port.kwargs["exclusive"] is False
        assert port.kwargs["parity"] == serial.PARITY_ODD
        assert port.kwargs["stopbits"] == serial.STOPBITS_TWO


@pytest.mark.parametrize("line", ["rts", "dtr"])
async def test_data_request_raises_that_line_only(recorder, line):
    async with await open_serial("/dev/ttyUSB0", SerialSettings(data_request=line)):
        [port] = recorder
        assert port.lines == [(line, True)]


async def test_data_request_on_a_pty_is_not_an_error():
    # A pty has no modem lines (TIOCMBIS fails with ENOTTY); a simulator must still work.
    async with open_pty() as pty:
        async with await open_link(pty.path, SerialSettings(data_request="dtr")) as link:
            await pty.stream.send_all(b"/ISK5")
            assert await receive_exactly(link, 5) == b"/ISK5"


async def test_no_data_request_leaves_lines_alone(recorder):
    async with await open_serial("/dev/ttyUSB0", SerialSettings()):
        [port] = recorder
        assert port.lines == []


@pytest.mark.parametrize(
    "code, reason",
    [
        (errno.ENOENT, "no such device"),
        (errno.ENXIO, "no such device"),
        (errno.EBUSY, "it is busy (in use by another program)"),
        (errno.EACCES, "permission denied (add your user to the dialout group)"),
        (errno.EIO, "input/output error"),
    ],
)
async def test_open_errors_are_explained(monkeypatch, code, reason):
    # Tests run as root here, so permission denied cannot be produced for real.
    error = serial.SerialException(code, f"could not open port /dev/ttyS0: [Errno {code}]")
    monkeypatch.setattr(serial, "Serial", failing_serial(error))
    with pytest.raises(TransportError) as info:
        await open_link("/dev/ttyS0")
    assert str(info.value) == f"cannot open serial port /dev/ttyS0: {reason}"


# --- open_link errors on real files ---------------------------------------


async def test_missing_device():
    with pytest.raises(TransportError) as info:
        await open_link("/dev/ttyUSB9-does-not-exist")
    assert str(info.value) == "cannot open serial port /dev/ttyUSB9-does-not-exist: no such device"


async def test_not_a_tty():
    with pytest.raises(TransportError) as info:
        await open_link(os.devnull)
    assert str(info.value) == f"cannot open serial port {os.devnull}: not a serial device"


async def test_busy_port_is_refused_while_held_and_free_after_close():
    # Real flock on a pty slave: pyserial's exclusive lock does refuse a second
    # open. The first link's pyserial object is already closed, so this also
    # shows that the lock lives on in the stream's duplicate descriptor.
    async with open_pty() as pty:
        first = await open_link(pty.path)
        with pytest.raises(TransportError) as info:
            await open_link(pty.path)
        busy = f"cannot open serial port {pty.path}: it is busy (in use by another program)"
        assert str(info.value) == busy
        await first.aclose()
        second = await open_link(pty.path)
        await second.aclose()


async def test_shared_port_opens_twice():
    async with open_pty() as pty:
        shared = SerialSettings(exclusive=False)
        async with await open_link(pty.path, shared), await open_link(pty.path, shared):
            pass


async def test_configuration_survives_pyserial_close():
    # A pty keeps baud rate and stop bits (not parity or data bits).
    async with open_pty() as pty:
        async with await open_serial(pty.path, SerialSettings(baudrate=2400, stopbits=2)) as link:
            iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(link.fileno())
            assert ispeed == ospeed == termios.B2400
            assert cflag & termios.CSTOPB
            assert not lflag & (termios.ICANON | termios.ECHO)


async def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError) as info:
        await open_link(f"tcp://127.0.0.1:{port}")
    assert str(info.value) == f"cannot connect to tcp://127.0.0.1:{port}: connection refused"


async def test_unknown_host(monkeypatch):
    # Stubbed: a real lookup would depend on this machine's resolver.
    async def no_such_host(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(trio, "open_tcp_stream", no_such_host)
    with pytest.raises(TransportError) as info:
        await open_link("tcp://meter.invalid:4059")
    reason = "unknown host (Name or service not known)"
    assert str(info.value) == f"cannot connect to tcp://meter.invalid:4059: {reason}"


@pytest.mark.parametrize(
    "port, message",
    [
        ("tcp://nohost", "invalid port 'tcp://nohost': expected tcp://HOST:PORT"),
        ("tcp://host:99999", "invalid port 'tcp://host:99999': expected tcp://HOST:PORT"),
        ("udp://host:1", "invalid port 'udp://host:1': expected tcp://HOST:PORT or a serial device path"),
    ],
)
async def test_bad_url(port, message):
    with pytest.raises(TransportError) as info:
        await open_link(port)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "url, expected",
    [
        ("tcp://127.0.0.1:5999", ("127.0.0.1", 5999)),
        ("tcp://meter.local:4059", ("meter.local", 4059)),
        ("tcp://[::1]:0", ("::1", 0)),
        ("tcp://[fe80::1%eth0]:65535", ("fe80::1%eth0", 65535)),
    ],
)
def test_parse_tcp_url(url, expected):
    assert parse_tcp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "tcp://nohost",
        "tcp://:80",
        "tcp://host:",
        "tcp://host:80/path",
        "tcp://::1:80",
        "http://host:80",
        "host:80",
        "tcp://host:65536",
    ],
)
def test_parse_tcp_url_errors(url):
    with pytest.raises(ValueError, match=f"invalid port '{url}': expected tcp://HOST:PORT"):
        parse_tcp_url(url)


# --- round trips ----------------------------------------------------------


async def test_pty_round_trip_all_byte_values():
    with trio.fail_after(5):
        async with open_pty() as pty, await open_link(pty.path) as link:
            await pty.stream.send_all(ALL_BYTES * 4)
            assert await receive_exactly(link, 1024) == ALL_BYTES * 4
            await link.send_all(ALL_BYTES[::-1])
            # Exactly the reply: an echo of what the master sent would come first.
            assert await receive_exactly(pty.stream, 256) == ALL_BYTES[::-1]


async def test_a_serial_link_with_no_data_waits_instead_of_reading_end_of_file(autojump_clock):
    # pyserial leaves VMIN = 0, where read() on an idle tty returns b"" (taken for EOF by trio).
    async with open_pty() as pty, await open_link(pty.path) as link:
        with trio.move_on_after(5) as waited:
            data = await link.receive_some()
            raise AssertionError(f"an idle serial link returned {data!r}")
        assert waited.cancelled_caught
        await pty.stream.send_all(b"late")
        assert await link.receive_some() == b"late"


async def test_pty_is_raw_without_pyserial():
    # Open the slave the plain way, so only open_pty's raw mode is in force.
    with trio.fail_after(5):
        async with open_pty() as pty:
            async with trio.lowlevel.FdStream(os.open(pty.path, os.O_RDWR | os.O_NOCTTY)) as user:
                await pty.stream.send_all(ALL_BYTES)
                assert await receive_exactly(user, 256) == ALL_BYTES
                await user.send_all(ALL_BYTES)
                assert await receive_exactly(pty.stream, 256) == ALL_BYTES


async def test_pty_master_does_not_hang_up_without_a_user():
    async with open_pty() as pty:
        # Nobody has the slave open: with no slave fd held, this read would fail with EIO.
        with pytest.raises(BlockingIOError):
            os.read(pty.stream.fileno(), 1)


async def test_pty_close_gives_users_end_of_file():
    with trio.fail_after(5):
        pty = open_pty()
        async with await open_link(pty.path) as link:
            await pty.aclose()
            assert await link.receive_some() == b""
            await pty.aclose()  # closing twice is harmless


async def test_tcp_round_trip_through_serve_tcp():
    async def echo(stream):
        async for data in stream:
            await stream.send_all(data)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_tcp, echo, "tcp://127.0.0.1:0")
            host, port = parse_tcp_url(url)
            assert host == "127.0.0.1"
            assert port != 0
            async with await open_link(url) as link:
                await link.send_all(ALL_BYTES)
                assert await receive_exactly(link, 256) == ALL_BYTES
            nursery.cancel_scope.cancel()


async def test_serve_tcp_errors():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(TransportError) as info:
            await serve_tcp(lambda stream: trio.sleep(0), url)
        assert str(info.value) == f"cannot listen on {url}: address already in use"
    with pytest.raises(TransportError, match="invalid port 'tcp://:0': expected tcp://HOST:PORT"):
        await serve_tcp(lambda stream: trio.sleep(0), "tcp://:0")


async def test_serve_tcp_outlives_a_client_that_hangs_up():
    handler_done = trio.Event()

    async def flood(stream):
        try:
            while True:
                await stream.send_all(b"x" * 65536)
        finally:
            handler_done.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_tcp, flood, "tcp://127.0.0.1:0")
            async with await open_link(url) as link:
                assert await link.receive_some(1) == b"x"
            await handler_done.wait()
            async with await open_link(url) as link:
                assert await link.receive_some(1) == b"x"
            nursery.cancel_scope.cancel()


async def test_memory_link_pair_round_trip_and_eof():
    left, right = memory_link_pair()
    await left.send_all(ALL_BYTES)
    assert await receive_exactly(right, 256) == ALL_BYTES
    await right.send_all(b"\xe5")
    assert await left.receive_some() == b"\xe5"
    await left.aclose()
    assert await right.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError):
        await right.send_all(b"\x10\x40\xf0\x30\x16")
