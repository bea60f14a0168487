"""Fuzzing the decoders of issue 12 with the real captures in tests/data as seeds.

Each test mutates real telegrams and frames (tests/mutations.py: bytes changed, inserted, deleted,
flipped, cut, runs repeated into floods) and feeds them to a decoder: only `ProtocolError` may escape a decoder, framers never
raise and never lose a byte or a frame, and whatever becomes a reading is strict JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from meterlink.machines.base import Publish
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.axdr import decode_data
from meterlink.protocols.dlms.describe import describe_capture
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.dlms.security import CipherKeys
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.framing import BadFrame, Noise
from meterlink.protocols.hdlc import Frame, HdlcFramer, Partial, Quiet, parse_frame
from meterlink.protocols.mbus import MBusFramer
from meterlink.protocols.p1 import P1Error, P1Framer, TelegramFramed
from mutations import FUZZ, cuts, edits, in_chunks, mutate, strict_json, with_crc
from test_describe_hdlc import assert_shown_as_sent
from test_mbus_codec import encoded as encoded_frame

DATA = Path(__file__).parent / "data"


def capture(name: str) -> dict:
    return json.loads((DATA / name).read_text())


P1_TELEGRAMS = [(DATA / name).read_bytes() for name in ("emucs_p1_1phase.txt", "emucs_p1_3phase.txt")]
MBUS_CAPTURES = {name: capture(name) for name in
                 ("kaifa_mbus_tinetz_doc.json", "kaifa_mbus_ma309_pl_gh905.json", "kaifa_mbus_gurux18232_nokey.json",
                  "sagemcom_mbus_evn_fkw9_overflow.json", "sagemcom_mbus_evn_gh155_overflow_nokey.json")}
MBUS_KEYS = [CipherKeys(bytes.fromhex(c["key_if_any"])) for c in MBUS_CAPTURES.values() if c["key_if_any"]]
MBUS_STREAMS = [bytes.fromhex(c["hex_or_text"]) for c in MBUS_CAPTURES.values()]
NOTIFICATIONS = [
    bytes.fromhex(capture("kaifa_vorarlberg_plaintext_gh539.json")["hex_or_text"]),
    bytes.fromhex(MBUS_CAPTURES["kaifa_mbus_tinetz_doc.json"]["expected_values_if_given"]["decrypted_apdu_hex_published"]),
    bytes.fromhex(MBUS_CAPTURES["kaifa_mbus_ma309_pl_gh905.json"]["expected_values_if_given"]["decrypted_apdu_hex_verified_by_us"]),
]
KAMSTRUP = capture("kamstrup_hdlc.json")
HDLC_FRAMES = [bytes.fromhex(exchange[side]) for session in ("public_association", "lls_profile_blocks")
               for exchange in KAMSTRUP[session]["exchanges"] for side in ("request", "response")]

# -- P1 ------------------------------------------------------------------------------------------


def in_values(body: bytes, changes: list) -> bytes:
    """`body` with each change made inside the parentheses of one of its data lines."""
    lines = body.split(b"\r\n")  # the identification line, a blank line, the data lines, "!"
    for kind, where, piece, times in changes:
        index = 2 + where % (len(lines) - 3)
        line = lines[index]
        lines[index] = mutate(line, [(kind, where >> 6, piece, times)], start=line.find(b"(") + 1, end=line.rfind(b")"))
    return b"\r\n".join(lines)


def check_p1(telegram: bytes, chunk_cuts: list[int]) -> None:
    for event in in_chunks(P1Framer(), telegram, chunk_cuts):
        if isinstance(event, TelegramFramed):
            assert event.error is None or isinstance(event.error, P1Error)
            if event.telegram is not None:
                strict_json(event.telegram.to_reading(None).to_json())


@FUZZ
@given(st.sampled_from(P1_TELEGRAMS), edits, cuts)
def test_p1_telegrams_with_a_right_crc_never_raise_but_a_p1_error(telegram, changes, chunk_cuts):
    bang = telegram.rindex(b"!")
    check_p1(with_crc(mutate(telegram[: bang + 1], changes, start=telegram.index(b"\n"), end=bang)), chunk_cuts)


@FUZZ
@given(st.sampled_from(P1_TELEGRAMS), edits.filter(bool), cuts)
def test_p1_values_with_a_right_crc_never_raise_but_a_p1_error(telegram, changes, chunk_cuts):
    check_p1(with_crc(in_values(telegram[: telegram.rindex(b"!") + 1], changes)), chunk_cuts)


# -- M-Bus ---------------------------------------------------------------------------------------


def encoded(event) -> bytes:
    """The bytes of a frame the framer found; nothing for what it threw away."""
    return b"" if isinstance(event, (BadFrame, Noise)) else encoded_frame(event)


@FUZZ
@given(st.sampled_from(MBUS_STREAMS), edits, cuts)
def test_the_mbus_framer_never_raises_nor_loses_a_byte(stream, changes, chunk_cuts):
    data = mutate(stream, changes)
    framer = MBusFramer()
    events = in_chunks(framer, data, chunk_cuts)
    position = 0
    for event in events:
        size = event.count if isinstance(event, (BadFrame, Noise)) else len(encoded(event))
        assert size >= 1
        if not isinstance(event, (BadFrame, Noise)):
            assert data[position : position + size] == encoded(event)  # a frame is bytes that were fed
        position += size
    assert position + framer.pending == len(data)


@FUZZ
@given(st.sampled_from(MBUS_STREAMS), edits, cuts)
def test_the_mbus_adapter_never_raises_and_publishes_json(stream, changes, chunk_cuts):
    adapter = MBusAdapter(keys=lambda: MBUS_KEYS)
    for event in in_chunks(MBusFramer(), mutate(stream, changes), chunk_cuts):
        adapter.handle(event, 1.0)
    for action in adapter.take_actions():
        if isinstance(action, Publish):
            strict_json(action.reading.to_json())


# -- A-XDR and data-notifications ----------------------------------------------------------------


@FUZZ
@given(st.sampled_from(NOTIFICATIONS), edits)
def test_notifications_raise_nothing_but_a_protocol_error(apdu, changes):
    mutated = mutate(apdu, changes)
    try:
        reading = to_reading(parse_notification(mutated), "mbus", None)
    except ProtocolError:
        return
    strict_json(reading.to_json())


@FUZZ
@given(st.sampled_from(NOTIFICATIONS), edits, st.integers(0, 400))
def test_axdr_data_raises_nothing_but_a_protocol_error(apdu, changes, offset):
    mutated = mutate(apdu, changes)
    try:
        decode_data(mutated, offset % (len(mutated) + 1))
    except ProtocolError:
        pass


# -- HDLC ----------------------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.sampled_from(HDLC_FRAMES), min_size=1, max_size=4), edits, cuts, st.sampled_from(HDLC_FRAMES))
def test_the_hdlc_framer_never_raises_and_finds_the_frame_after_garbage(frames, changes, chunk_cuts, last):
    garbage = mutate(b"".join(frames), changes)
    framer = HdlcFramer()
    events = in_chunks(framer, garbage + b"\x7e" * 2100 + last, chunk_cuts)
    assert all(isinstance(e, (Frame, BadFrame, Noise, Partial, Quiet)) for e in events)
    assert all(e.count >= 1 for e in events if isinstance(e, (BadFrame, Noise)))
    assert [e for e in events if isinstance(e, Frame)][-1] == parse_frame(last)
    assert framer.pending == 0


@FUZZ
@given(st.lists(st.sampled_from(HDLC_FRAMES), min_size=1, max_size=4), edits)
def test_describing_a_mutated_capture_never_raises_and_shows_every_byte(frames, changes):
    data = mutate(b"".join(frames), changes)
    entries = describe_capture(data)
    strict_json(entries)
    assert_shown_as_sent(entries, data)
