"""The simulated NES meter: its sequence window, 0x0B and 0x0C answers, refused writes, and the
port's timing (117-byte segments 25 ms apart, one request per 100 ms, alerts held off after a
request, silence during an optical session), on trio's MockClock."""

from __future__ import annotations

import struct

import trio
import trio.testing

from meterlink.protocols.c1219 import BT23, ET03
from meterlink.protocols.mep import (
    Code, ReadRequest, Refused, TableData, WantSequence, decode_response, digest_update, encode_request,
)
from meterlink.simulators.mep import DEMO_MEP_KEY, MepMeter, PortFaults, run_mep_meter

KEY = DEMO_MEP_KEY
LAST = 1000


def meter() -> MepMeter:
    return MepMeter(clock=lambda: 0.0, wallclock=lambda: 1_796_356_800.0, sequence=LAST)


def ask(m: MepMeter, sequence: int, request: ReadRequest = ReadRequest(BT23, 4, 1), key: bytes = KEY) -> object:
    sent = encode_request(request, sequence, key)
    response = m.answer(sent.message)
    assert response is not None
    return decode_response(response[2:], sent, KEY)


def test_the_window_is_eight_ahead_of_the_last_number_taken() -> None:
    m = meter()
    assert ask(m, LAST) == WantSequence(LAST)  # the previous number again
    assert ask(m, LAST + 9) == WantSequence(LAST)
    assert isinstance(ask(m, LAST + 8), TableData)
    assert ask(m, LAST + 1) == WantSequence(LAST + 8)  # behind now
    assert isinstance(ask(m, 0x10000_0000 + LAST + 9 - 2**32), TableData)


def test_an_identical_repeat_gets_the_same_answer() -> None:
    m = meter()
    sent = encode_request(ReadRequest(BT23, 8, 1), LAST + 1, KEY)
    first = m.answer(sent.message)
    assert m.answer(sent.message) == first and m.repeats == 1


def test_a_wrong_digest_gets_0x0b_and_a_write_is_refused() -> None:
    m = meter()
    assert ask(m, LAST + 1, key=bytes(16)) == Refused(Code.AUTHENTICATION_FAILURE)
    body = bytes([0x4F, 0x08, 0x32, 0, 0, 0x1E, 0, 1, 1]) + (LAST + 1).to_bytes(4, "big")
    digest = digest_update(KEY, body).digest
    response = m.answer(struct.pack(">H", len(body) + 8) + body + digest)
    assert response is not None and response[2] == Code.NO_PERMISSION and m.writes_refused == 1
    assert response[-8:] == digest_update(KEY, bytes([Code.NO_PERMISSION]), digest_update(KEY, body, end=False)).digest


def test_reads_past_a_table_or_of_a_missing_one_are_refused() -> None:
    m = meter()
    assert ask(m, LAST + 1, ReadRequest(BT23, 40, 30)) == Refused(Code.TABLE_NOT_POSSIBLE)
    assert ask(m, LAST + 2, ReadRequest(9, 1, 0)) == Refused(Code.UNSUPPORTED)
    assert ask(m, LAST + 3, ReadRequest(ET03, 12)) == TableData(b"MTR3000-0042")  # a full read (0x30) with its length


async def _exchange(m: MepMeter, faults: PortFaults, requests: list[tuple[float, bytes]], listen: float) -> list[tuple[float, bytes]]:
    client, server = trio.testing.memory_stream_pair()
    received: list[tuple[float, bytes]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_mep_meter, server, m, faults)

        async def send() -> None:
            for at, message in requests:
                await trio.sleep_until(at)
                await client.send_all(message)

        nursery.start_soon(send)
        with trio.move_on_after(listen):
            while True:
                data = await client.receive_some(4096)
                received.append((trio.current_time(), data))
        nursery.cancel_scope.cancel()
    return received


async def test_long_answers_come_in_117_byte_segments(autojump_clock: trio.testing.MockClock) -> None:
    m = MepMeter(sequence=LAST, wallclock=lambda: 1_796_356_800.0)
    sent = encode_request(ReadRequest(ET03, 143, 0), LAST + 1, KEY)
    received = await _exchange(m, PortFaults(), [(trio.current_time(), sent.message)], 1.0)
    sizes = [len(data) for _, data in received]
    assert sizes == [117, 2 + 1 + 2 + 143 + 8 - 117]
    assert received[1][0] - received[0][0] >= 0.025
    assert decode_response(b"".join(data for _, data in received)[2:], sent, KEY) == TableData(m.tables()[ET03])


async def test_requests_are_served_100_ms_apart(autojump_clock: trio.testing.MockClock) -> None:
    m = MepMeter(sequence=LAST, wallclock=lambda: 1_796_356_800.0)
    now = trio.current_time()
    first = encode_request(ReadRequest(BT23, 4, 1), LAST + 1, KEY).message
    second = encode_request(ReadRequest(BT23, 4, 1), LAST + 2, KEY).message
    received = await _exchange(m, PortFaults(), [(now, first), (now + 0.01, second)], 1.0)
    assert len(received) == 2 and received[1][0] - received[0][0] >= 0.1


async def test_alerts_every_second_but_not_right_after_a_request(autojump_clock: trio.testing.MockClock) -> None:
    m = MepMeter(sequence=LAST, alerts_pending=True, wallclock=lambda: 1_796_356_800.0)
    now = trio.current_time()
    request = encode_request(ReadRequest(BT23, 4, 1), LAST + 1, KEY).message
    received = await _exchange(m, PortFaults(), [(now + 2.5, request)], 5.2)
    alerts = [at - now for at, data in received if data == b"\x00\x00"]
    assert [round(at) for at in alerts] == [1, 2, 4, 5]  # none at 3 s: within 1 s of the request


async def test_an_optical_session_silences_the_port(autojump_clock: trio.testing.MockClock) -> None:
    m = MepMeter(sequence=LAST, alerts_pending=True, wallclock=lambda: 1_796_356_800.0)
    faults = PortFaults()
    now = trio.current_time()
    faults.optical_session(now, 3.0)
    request = encode_request(ReadRequest(BT23, 4, 1), LAST + 1, KEY).message
    received = await _exchange(m, faults, [(now + 0.5, request)], 4.5)
    assert [round(at - now) for at, _ in received] == [3, 4]  # alerts only, after the session
    assert m.requests == 0
