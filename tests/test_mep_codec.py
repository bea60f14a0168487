"""The MEP framing, digest and C12.19 tables against the guide's RC4 examples (key 01 x 16)."""

from __future__ import annotations

import pytest

from meterlink.protocols.c1219 import (
    Dimensions, TableError, decode_bt00, decode_bt21, decode_bt23, decode_bt28, decode_bt52, decode_serial, mep_reading,
    CurrentRegisters,
)
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.mep import (
    Alert, BadLength, Message, MepError, MepReceiver, ReadRequest, Refused, Started, TableData, WantSequence, WriteRequest,
    decode_request, decode_response, digest_update, encode_request, encode_response, mep_key, split_messages,
)

from mep_data import KEY, guide_pairs

EXAMPLE1_FIRST, EXAMPLE1_SECOND, EXAMPLE2 = guide_pairs()
BT23_44 = ReadRequest(23, 44, offset=0)


def test_request_digests_of_the_guide() -> None:
    first = encode_request(BT23_44, 0x01020304, KEY)
    second = encode_request(BT23_44, 0x77635B91, KEY)
    assert first.message == EXAMPLE1_FIRST[0]
    assert second.message == EXAMPLE1_SECOND[0]
    # Example 2 is a write, which meterlink never sends: its digest alone, over code..sequence.
    body = EXAMPLE2[0][2:-8]
    assert digest_update(KEY, body).digest == EXAMPLE2[0][-8:]


def test_response_digests_continue_from_the_request() -> None:
    first = encode_request(BT23_44, 0x01020304, KEY)
    assert decode_response(EXAMPLE1_FIRST[1][2:], first, KEY) == WantSequence(0x77635B90)
    second = encode_request(BT23_44, 0x77635B91, KEY)
    answer = decode_response(EXAMPLE1_SECOND[1][2:], second, KEY)
    assert isinstance(answer, TableData) and answer.data == EXAMPLE1_SECOND[1][5:-8]
    # Example 2's answer is a bare 0x00: the digest continues over one zero byte, which is what the
    # final zero padding of the request's pass already mixed in, so it equals the request's digest.
    state = digest_update(KEY, EXAMPLE2[0][2:-8], end=False)
    assert digest_update(KEY, EXAMPLE2[1][2:-8], state).digest == EXAMPLE2[1][-8:] == EXAMPLE2[0][-8:]


def test_the_meter_side_reproduces_the_guide_responses() -> None:
    first = encode_request(BT23_44, 0x01020304, KEY)
    assert encode_response(WantSequence(0x77635B90), first, KEY) == EXAMPLE1_FIRST[1]
    second = encode_request(BT23_44, 0x77635B91, KEY)
    assert encode_response(TableData(EXAMPLE1_SECOND[1][5:-8]), second, KEY) == EXAMPLE1_SECOND[1]


def test_digest_split_anywhere_equals_in_one_go() -> None:
    data = bytes(range(200))
    whole = digest_update(KEY, data).digest
    for cut in (0, 1, 7, 8, 9, 23, 24, 25, 191, 192, 193):
        state = digest_update(KEY, data[:cut], end=False)
        assert digest_update(KEY, data[cut:], state).digest == whole


def test_the_appendix_example_needs_a_key_the_guide_does_not_give() -> None:
    # Table A.1: 3F 00 34 00 00 00 00 06 F5 2F 54 81 -> 7C FF 9A 53 47 DB AB FC, key unstated.
    assert digest_update(KEY, bytes.fromhex("3F003400000000 06F52F5481".replace(" ", ""))).digest != bytes.fromhex("7CFF9A5347DBABFC")


def test_a_wrong_key_or_a_flipped_bit_fails_the_digest() -> None:
    second = encode_request(BT23_44, 0x77635B91, KEY)
    with pytest.raises(MepError, match="digest"):
        decode_response(EXAMPLE1_SECOND[1][2:], second, bytes([2]) * 16)
    flipped = bytearray(EXAMPLE1_SECOND[1][2:])
    flipped[20] ^= 1
    with pytest.raises(MepError, match="digest"):
        decode_response(bytes(flipped), second, KEY)


def test_authentication_failure_is_taken_without_a_digest() -> None:
    sent = encode_request(BT23_44, 5, KEY)
    assert decode_response(bytes([0x0B]) + bytes(8), sent, KEY) == Refused(0x0B)
    assert Refused(0x0B).reason == "authentication failure (0x0B)"
    assert encode_response(Refused(0x0B), sent, KEY) == bytes.fromhex("0009 0B") + bytes(8)


def test_error_codes_and_counts() -> None:
    sent = encode_request(BT23_44, 5, KEY)
    refused = encode_response(Refused(0x03), sent, KEY)
    assert decode_response(refused[2:], sent, KEY) == Refused(3)
    short = encode_response(TableData(bytes(40)), sent, KEY)
    with pytest.raises(MepError, match="answered with 40"):
        decode_response(short[2:], sent, KEY)
    with pytest.raises(MepError, match="at least"):
        decode_response(b"\x00\x00", sent, KEY)


def test_keys_of_16_to_20_bytes_use_the_first_16() -> None:
    assert mep_key(b"ABCDEFGHIJKLMNOPQRST") == b"ABCDEFGHIJKLMNOP"
    assert mep_key(KEY) == KEY
    with pytest.raises(MepError, match="15 bytes"):
        mep_key(bytes(15))


def test_receiver_skips_alerts_and_joins_segments() -> None:
    receiver = MepReceiver()
    response = EXAMPLE1_SECOND[1]
    assert receiver.feed(b"\x00\x00\x00") == [Alert()]
    assert receiver.feed(b"\x00" + response[:20]) == [Alert(), Started(0x37)]
    assert receiver.feed(response[20:40]) == []
    assert receiver.feed(response[40:] + b"\x00\x00") == [Message(response[2:]), Alert()]
    assert isinstance(receiver.feed(b"\x02\x00")[0], BadLength)
    receiver.reset()
    assert receiver.feed(EXAMPLE1_FIRST[1]) == [Started(13), Message(EXAMPLE1_FIRST[1][2:])]


def test_requests_decode_and_writes_are_named() -> None:
    sent, authentic = decode_request(EXAMPLE1_SECOND[0], KEY)
    assert authentic and sent.sequence == 0x77635B91 and sent.request == BT23_44
    assert decode_request(EXAMPLE1_SECOND[0], bytes(16))[1] is False
    with pytest.raises(WriteRequest, match="table 2098 at 30"):
        decode_request(EXAMPLE2[0], KEY)
    full = encode_request(ReadRequest(21, 10), 9, KEY)
    assert full.message[2] == 0x30 and decode_request(full.message, KEY)[0].request == ReadRequest(21, 10)


def test_split_messages_leaves_alerts_out() -> None:
    joined = b"\x00\x00" + EXAMPLE1_FIRST[0] + b"\x00\x00" + EXAMPLE1_FIRST[1]
    assert split_messages(joined) == [EXAMPLE1_FIRST[0], EXAMPLE1_FIRST[1]]
    with pytest.raises(MepError, match="bytes follow"):
        split_messages(EXAMPLE1_FIRST[0][:-1])


def test_the_guide_bt23_example_decodes_to_its_bytes() -> None:
    data = EXAMPLE1_SECOND[1][5:-8]
    dims = Dimensions(demand_reset_counter=False, time_remaining=False, summations=11, demands=0, coincidents=0,
                      occurrences=0, tiers=4, present_demands=0, present_values=0)
    assert dims.bt23_totals_size == 44
    registers = decode_bt23(data, dims)
    # Fwd, Rev Wh; import, export varh; outage seconds; outages; Fwd+Rev, Fwd-Rev; pulses 1, 2; errors.
    assert registers == CurrentRegisters(None, (0, 0, 0, 0, 8, 3, 0, 0, 0, 0, 6))
    reading = mep_reading(None, tuple(range(11)), registers, (), (), None, None)
    assert [(v.obis, v.value, v.unit) for v in reading.values] == [
        ("1-0:1.8.0.255", 0, "Wh"), ("1-0:2.8.0.255", 0, "Wh"), ("1-0:3.8.0.255", 0, "varh"), ("1-0:4.8.0.255", 0, "varh")]


def test_tables_from_their_layouts() -> None:
    bt00 = bytes([0x00, 0x0A, 0x88]) + b"NES " + bytes([2, 0, 255, 12, 1, 0, 10, 13, 2, 12, 9, 3])
    assert decode_bt00(bt00).manufacturer == "NES"
    with pytest.raises(TableError, match="MSB"):
        decode_bt00(b"\x01" + bt00[1:])
    dims = decode_bt21(bytes([0x46, 0x0E, 0, 15, 1, 2, 1, 4, 1, 3]))
    assert dims == Dimensions(True, True, 15, 1, 2, 1, 4, 1, 3)
    assert dims.bt22_size == 15 + 1 + 1 + 4 and dims.bt23_totals_size == 61 and dims.bt28_size == 7 + 12
    bt28 = bytes(7) + (1500).to_bytes(4, "little") + (-2).to_bytes(4, "little", signed=True) + (230100).to_bytes(4, "little")
    assert decode_bt28(bt28, dims) == (1500, -2, 230100)
    assert decode_bt52(bytes([26, 12, 4, 5, 6, 7, 0x12])) == "2026-12-04T05:06:07Z"
    with pytest.raises(TableError, match="no date"):
        decode_bt52(bytes([26, 13, 4, 5, 6, 7, 0]))
    assert decode_serial(b"ML-0001\0junk".ljust(30, b"\0")) == "ML-0001" and decode_serial(bytes(30)) is None
    with pytest.raises(TableError, match="BT21"):
        decode_bt21(bytes(9))


def test_reading_scales_ct_energy_and_present_units() -> None:
    registers = CurrentRegisters(2, (1234, 56))
    reading = mep_reading("ML-1", (0, 3), registers, (8, 15, 19, 4), (1500, 230100, 49990, 7), "2026-12-04T05:06:07Z", 1.0,
                          energy_unit=10)
    assert [(v.obis, v.value, v.unit, v.raw, v.scaler) for v in reading.values] == [
        ("0-0:1.0.0.255", "2026-12-04T05:06:07Z", None, None, None),
        ("1-0:1.8.0.255", 12340, "Wh", 1234, 1), ("1-0:4.8.0.255", 560, "varh", 56, 1),
        ("1-0:1.7.0.255", 1500, "W", 1500, 0), ("1-0:32.7.0.255", 230.1, "V", 230100, -3),
        ("1-0:14.7.0.255", 49.99, "Hz", 49990, -3)]
    assert reading.meter_id == "ML-1" and reading.captured_at == "2026-12-04T05:06:07Z"
    with pytest.raises(TableError, match="1, 10 or 100"):
        mep_reading(None, (), registers, (), (), None, None, energy_unit=5)


def test_the_appendix_example_frames_and_holds_a_bt52_clock() -> None:
    from pathlib import Path

    text = (Path(__file__).parent / "data" / "mep_guide_appendix_example.txt").read_text()
    request, response = [bytes.fromhex(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    sent, authentic = decode_request(request, KEY)
    assert sent.request == ReadRequest(52, 6, 0) and sent.sequence == 0xF52F5481 and not authentic  # key unstated
    assert split_messages(request + b"\x00\x00" + response) == [request, response]
    assert response[2:5] == bytes([0, 0, 6])
    assert decode_bt52(response[5:-8]) == "2004-02-16T15:59:55Z"


def test_requests_the_protocol_cannot_carry_are_refused() -> None:
    with pytest.raises(MepError, match="count 0..465"):
        ReadRequest(23, 466, 0)
    with pytest.raises(MepError, match="3 bytes"):
        ReadRequest(23, 4, 1 << 24)
    too_many = bytearray(encode_request(ReadRequest(23, 465, 0), 1, KEY).message)
    too_many[8:10] = (466).to_bytes(2, "big")
    with pytest.raises(MepError, match="at most 465"):
        decode_request(bytes(too_many), KEY)


@pytest.mark.parametrize(("payload", "words"), [
    (bytes([0x0B, 1]), "0x0B with 1 bytes"),
    (bytes([0x0C, 1, 2]), "0x0C with 2 bytes"),
    (bytes([0x03, 1]), "error code 0x03 with 1 bytes"),
    (bytes([0x00, 0]), "no 2-byte count"),
    (bytes([0x00, 0, 5, 1]), "count 5 but 1 bytes"),
])
def test_responses_that_do_not_fit_their_code(payload: bytes, words: str) -> None:
    sent = encode_request(BT23_44, 9, KEY)
    digest = bytes(8) if payload[0] == 0x0B else digest_update(KEY, payload, sent.state).digest
    with pytest.raises(MepError, match=words):
        decode_response(payload + digest, sent, KEY)


def test_capture_replay_in_process() -> None:
    from meterlink.protocols.mep_capture import CaptureReplay, capture_lines
    from meterlink.machines.mep import MepClient, MepPlan
    from meterlink.simulators.mep import DEMO_MEP_KEY, MepMeter

    from mep_line import Line

    line = Line(MepClient(MepPlan(DEMO_MEP_KEY)), MepMeter(clock=lambda: 0.0, wallclock=lambda: 1_796_356_800.0, sequence=0x77635B90))
    line.run(until=7.0)
    text = "# a session\n" + "".join(f"{a.hex('-')}\n{b.hex(':')}  # answer\n" for a, b in line.transcript)
    messages = capture_lines(text)
    replay = CaptureReplay(DEMO_MEP_KEY)
    for number, start in enumerate(range(0, len(messages), 2), start=1):
        replay.pair(number, messages[start], messages[start + 1])
    replay.finish()
    # A poll cut off by the end of the capture (BT23 without BT52 yet) still makes a reading at its end.
    assert [r.values for r in replay.readings[:len(line.readings)]] == [r.values for r in line.readings]
    assert len(replay.readings) <= len(line.readings) + 1 and replay.problems == []
    assert replay.notes == ["pair 1: 0x0C: the meter wants sequence number 0x77635b91"]

    broken = CaptureReplay(DEMO_MEP_KEY)
    first, answer = line.transcript[1]
    broken.pair(1, first[:5], answer)
    broken.pair(2, first, None)
    broken.pair(3, first, answer[:-1])
    broken.pair(4, first, answer[:2] + bytes([answer[2] ^ 1]) + answer[3:])
    refused = bytes.fromhex("0009 02") + digest_update(DEMO_MEP_KEY, b"\x02", decode_request(first, DEMO_MEP_KEY)[0].state).digest
    broken.pair(5, first, refused)
    assert [p.split(":")[0] for p in broken.problems] == ["pair 1", "pair 2", "pair 3", "pair 4", "pair 5"]
    assert "unsupported (0x02)" in broken.problems[4]
    with pytest.raises(ProtocolError, match="line 2: not hex"):
        capture_lines("00 14\nzz\n")
    lone = CaptureReplay(DEMO_MEP_KEY)
    bt23 = next((a, b) for a, b in line.transcript if a[3:5] == bytes([0, 23]))
    lone.pair(1, *bt23)
    lone.finish()
    assert lone.problems == ["end of capture: BT23 read without BT21 and BT22 in the capture: its registers cannot be named"]
