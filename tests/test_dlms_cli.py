"""The DLMS commands as a user runs them: `read dlms` against the simulated Kamstrup meter over
HDLC-over-TCP, the wrapper and a pty, and against a scripted meter that answers only the seed's
request frames byte for byte (so the defaults reproduce ch. 4 on a real socket); `decode hdlc` on
the seed's own text; the password never in any output."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kamstrup_session import Exchange, lls_session, public_session, row_times
from meterlink.protocols.hdlc import HdlcFramer, Quiet

from processes import meterlink, start_simulator, stop

DATA = Path(__file__).parent / "data"
PASSWORD = "12345"


def readings(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    process, where = start_simulator("kamstrup", *args)
    try:
        yield where
    finally:
        err = stop(process)
        assert b"Traceback" not in err, err[-500:]


# -- against the simulated meter --------------------------------------------------------------------


def test_public_association_over_tcp():
    with simulator("--listen", "tcp://127.0.0.1:0") as url:
        result = meterlink("read", "dlms", "--port", url, "--get", "1:1.1.0.0.1.255:2", "1:1-1:96.1.1.255:2")
    assert result.returncode == 0, result.stderr
    first, second = readings(result)
    assert first["values"] == [{"obis": "1-1:0.0.1.255", "value": 12345679, "raw": 12345679}]
    assert first["meter_id"] == "12345679" and first["link"] == first["kind"] == "dlms" and isinstance(first["received_at"], float)
    assert second["values"] == [{"obis": "1-1:96.1.1.255", "value": "6851125CD140111040"}]


def test_lls_registers_clock_and_a_profile_range_over_tcp():
    with simulator("--listen", "tcp://127.0.0.1:0") as url:
        result = meterlink("read", "dlms", "--port", url, "--password", PASSWORD, "--get", "3:1-1:1.8.0.255:2",
                           "8:0.1.1.0.0.255:2", "7:1.1.99.1.0.255:2", "--from", "2000-01-01", "--to", "2100-01-01")
    assert result.returncode == 0, result.stderr
    energy, clock, profile = readings(result)
    assert energy["values"][0]["unit"] == "Wh" and energy["values"][0]["scaler"] == 1
    assert clock["captured_at"] == clock["values"][0]["value"]
    rows = profile["values"][0]["value"]
    assert len(rows) == 7 * 96 and all(row["time"] == row["value"][0] for row in rows)
    assert rows == sorted(rows, key=lambda row: row["time"])
    assert PASSWORD.encode() not in result.stdout + result.stderr


def test_the_wrapper_over_tcp():
    with simulator("--listen", "tcp://127.0.0.1:0", "--framing", "wrapper") as url:
        result = meterlink("read", "dlms", "--port", url, "--framing", "wrapper", "--password", PASSWORD,
                           "--get", "1:1.1.0.0.4.255:2")
    assert result.returncode == 0, result.stderr
    assert readings(result)[0]["values"] == [{"obis": "1-1:0.0.4.255", "value": "1KAS0012345679"}]


def test_hdlc_segments_instead_of_blocks():
    with simulator("--listen", "tcp://127.0.0.1:0", "--no-blocks") as url:
        result = meterlink("read", "dlms", "--port", url, "--password", PASSWORD, "--get", "15:0.0.40.0.0.255:2")
    assert result.returncode == 0, result.stderr
    objects = readings(result)[0]["values"][0]["value"]
    assert "7:1-1:99.1.0.255" in objects and "18:0-0:44.0.0.255" in objects


def test_a_serial_line_on_a_pty():
    with simulator("--pty") as path:
        assert path.startswith("/dev/pts/")
        result = meterlink("read", "dlms", "--port", path, "--get", "1:1.1.0.0.1.255:2")
    assert result.returncode == 0, result.stderr
    assert readings(result)[0]["values"][0]["value"] == 12345679


def test_a_wrong_password_exits_1_naming_the_cause_not_the_password():
    with simulator("--listen", "tcp://127.0.0.1:0") as url:
        result = meterlink("read", "dlms", "--port", url, "--password", "secret-guess", "--get", "3:1-1:1.8.0.255:2")
    assert result.returncode == 1 and result.stdout == b""
    assert b"association_refused" in result.stderr and b"authentication failure" in result.stderr
    assert b"secret-guess" not in result.stderr


def test_an_object_the_meter_lacks_exits_1_after_reading_the_rest():
    with simulator("--listen", "tcp://127.0.0.1:0") as url:
        result = meterlink("read", "dlms", "--port", url, "--get", "1:1.1.0.0.9.255:2", "1:1.1.0.0.1.255:2")
    assert result.returncode == 1 and len(readings(result)) == 1
    assert b"GET 1:1-1:0.0.9.255:2: object-undefined" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--get", "1:1.1.0.0.1:2"], b"OBIS code"),
    (["--get", "7:1.1.99.1.0.255:2", "--from", "2013-10-25"], b"--from and --to go together"),
    (["--get", "1:1.1.0.0.1.255:2", "--from", "2013-10-25", "--to", "2013-10-26"], b"profile buffer"),
    (["--get", "7:1.1.99.1.0.255:2", "--from", "yesterday", "--to", "2013-10-26"], b"ISO 8601"),
    (["--get", "1:1.1.0.0.1.255:2", "--client-sap", "200"], b"client SAP 200"),
])
def test_usage_errors_exit_2(args, message):
    result = meterlink("read", "dlms", "--port", "tcp://127.0.0.1:9", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_port_that_cannot_be_opened_exits_2():
    result = meterlink("read", "dlms", "--port", "tcp://127.0.0.1:9", "--get", "1:1.1.0.0.1.255:2")
    assert result.returncode == 2 and b"cannot connect" in result.stderr


def test_simulated_meter_serves_one_reader_after_another():
    with simulator("--listen", "tcp://127.0.0.1:0") as url:
        first = meterlink("read", "dlms", "--port", url, "--get", "1:1.1.0.0.1.255:2")
        second = meterlink("read", "dlms", "--port", url, "--password", PASSWORD, "--get", "1:1.1.0.0.1.255:2")
    assert first.returncode == second.returncode == 0


# -- against the seed's frames -----------------------------------------------------------------------


@contextmanager
def scripted_meter(session: list[Exchange]) -> Iterator[tuple[str, list[bytes]]]:
    """A TCP meter that answers the seed's request frames, in order, with the seed's responses,
    and hangs up on anything else; yields its URL and the frames it received."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        framer, script = HdlcFramer(), list(session)
        with connection:
            while script and (data := connection.recv(4096)):
                for event in framer.feed(data):
                    if isinstance(event, Quiet) or not hasattr(event, "to_bytes"):
                        continue
                    received.append(event.to_bytes())
                    exchange = script.pop(0)
                    if event.to_bytes() != exchange.request:
                        return
                    connection.sendall(exchange.response)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}", received
    finally:
        server.close()
        thread.join(timeout=10)


def test_read_dlms_sends_the_seeds_public_session_on_a_socket():
    with scripted_meter(public_session()) as (url, received):
        result = meterlink("read", "dlms", "--port", url, "--get", "1:1.1.0.0.1.255:2")
    assert received == [exchange.request for exchange in public_session()]
    assert result.returncode == 0, result.stderr
    assert readings(result)[0]["values"] == [{"obis": "1-1:0.0.1.255", "value": 12345679, "raw": 12345679}]


def test_read_dlms_sends_the_seeds_profile_session_on_a_socket():
    with scripted_meter(lls_session()) as (url, received):
        result = meterlink("read", "dlms", "--port", url, "--password", PASSWORD, "--get", "7:1.1.99.1.0.255:2",
                           "--from", "2013-10-25", "--to", "2013-10-26")
    assert received == [exchange.request for exchange in lls_session()]
    assert result.returncode == 0, result.stderr
    (reading,) = readings(result)
    rows = reading["values"][0]["value"]
    assert [row["time"] for row in rows] == [moment.isoformat() for moment in row_times()]
    assert rows[-1] == {"time": "2013-10-25T15:15:00", "value": ["2013-10-25T15:15:00", 0, 0, 1, 214008, 0, 3817, 1]}


# -- decode hdlc ----------------------------------------------------------------------------------


SEED_TEXT = """
#### Connect:

--> 7E A0 20 03 21 93 7D D9 81 80 14 05 02 **02 00** 06 02 **02 00** 07 04 00 00 00 01 08 04 00 00 00 01 6F EF 7E

<-- 7E A0 20 21 03 73 73 98 81 80 14 05 02 **02 00** 06 02 **00 80** 07 04 00 00 00 01 08 04 00 00 00 01 19 D4 7E

#### Request Data:

--> 7E A0 19 03 21 32 6F D8 E6 E6 00 C0 01 81 00 01 **01 01 00 00 01 FF 02** 00 A8 E3 7E

<-- 7E A0 15 21 03 52 5D 8A E6 E7 00 C4 01 81 00 06 **00 BC 61 4F** E4 36 7E
"""


def test_decode_hdlc_annotates_the_seed_as_printed():
    result = meterlink("decode", "hdlc", "--annotate", stdin=SEED_TEXT.encode())
    assert result.returncode == 0, result.stderr
    frames = readings(result)
    assert [f["control"]["frame"] for f in frames] == ["SNRM", "UA", "I", "I"]
    assert frames[1]["information"]["parameters"]["max_info_rx"] == 128
    assert frames[3]["information"]["apdu"]["result"] == 12345679


def test_decode_hdlc_finds_the_misprinted_block_of_the_manual(tmp_path):
    printed = bytearray(lls_session()[2].response)
    fifth_row = printed.index(bytes.fromhex("07DD0A1905010000FF"))  # 01:00, the vector's correction
    printed[fifth_row + 6] = 0x0F  # 01:15, as the manual prints it
    capture = tmp_path / "block1.bin"
    capture.write_bytes(bytes(printed))
    result = meterlink("decode", "hdlc", "--annotate", str(capture))
    assert result.returncode == 1 and b"FCS" in result.stderr
    assert readings(result)[0]["fcs"]["ok"] is False


def test_decode_hdlc_never_shows_the_password():
    capture = b"".join(exchange.request + exchange.response for exchange in lls_session()[:2])
    result = meterlink("decode", "hdlc", "--annotate", stdin=capture.hex().encode())
    assert result.returncode == 0, result.stderr
    assert b"12345" not in result.stdout and b"3132333435" not in result.stdout


def test_decode_hdlc_without_frames_exits_1():
    result = meterlink("decode", "hdlc", "--annotate", stdin=b"no frames here")
    assert result.returncode == 1 and b"no HDLC frame" in result.stderr
