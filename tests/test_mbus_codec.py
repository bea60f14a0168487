"""The M-Bus link layer: MBusFramer, encode_short/encode_long, CField, split_segments.

Property tests check that the framer never invents a frame (every event accounts for input bytes
that re-encode to exactly what was fed), finds every frame whatever the chunking, and resyncs after
noise, flipped bits and truncated frames.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.mbus import (
    BadFrame,
    CField,
    LongFrame,
    MBusError,
    MBusFramer,
    Noise,
    ShortFrame,
    SingleChar,
    encode_long,
    encode_short,
    is_dlms_segment,
    is_last_segment,
    segment_number,
    segment_payload,
    split_segments,
)
from meterlink.simulators.kaifa import KaifaMeterModel

DATA = Path(__file__).parent / "data"
TINETZ = bytes.fromhex(json.loads((DATA / "kaifa_mbus_tinetz_doc.json").read_text())["hex_or_text"])
SAGEMCOM = bytes.fromhex(json.loads((DATA / "sagemcom_mbus_evn_fkw9_overflow.json").read_text())["hex_or_text"])
OVERFLOW_FRAME = SAGEMCOM[: 4 + 0x101 + 2]  # 68 01 01 68: L overflowed (issue 13 item 2)
SIM_FRAMES = KaifaMeterModel().frames(datetime(2026, 11, 23, 12))
OTHER_FRAMES = KaifaMeterModel(seed=2, frame_counter=0x7000).frames(datetime(2026, 11, 23, 13))
BOUNDED = settings(max_examples=150, deadline=None)


def encoded(event) -> bytes:
    match event:
        case SingleChar(count):
            return b"\xe5" * count
        case ShortFrame(c, a):
            return encode_short(c, a)
        case LongFrame(c, a, ci, data, length_overflow):
            return encode_long(c, a, ci, data, length_overflow)
    raise AssertionError(event)


def feed_in_chunks(framer: MBusFramer, data: bytes, cuts: list[int]) -> list:
    events = []
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    for start, end in zip(points, points[1:]):
        events += framer.feed(data[start:end])
    return events


def account(data: bytes, events: list, pending: int) -> None:
    """Each event stands for the next input bytes: frames re-encode to them exactly."""
    position = 0
    for event in events:
        match event:
            case Noise(count) | BadFrame(_, count):
                assert count >= 1
                if isinstance(event, Noise):
                    # Noise never swallows a byte that could start a frame, except at its first byte.
                    assert not set(data[position + 1 : position + count]) & {0xE5, 0x10, 0x68}
                position += count
            case _:
                raw = encoded(event)
                assert data[position : position + len(raw)] == raw, event
                position += len(raw)
    assert position + pending == len(data)


# -- encoding --------------------------------------------------------------------------------


def test_short_frame_layout():
    assert encode_short(0x40, 0xF0) == bytes.fromhex("1040F03016")
    assert encode_short(0x7B, 0xFE) == bytes((0x10, 0x7B, 0xFE, (0x7B + 0xFE) & 0xFF, 0x16))


def test_long_frame_layout():
    frame = encode_long(0x53, 0xFF, 0x00, b"\x01\x67\xdb")
    assert frame == bytes.fromhex("68 06 06 68 53 FF 00 01 67 DB") + bytes(((0x53 + 0xFF + 0x01 + 0x67 + 0xDB) & 0xFF, 0x16))
    assert len(encode_long(0x53, 0xFF, 0x00, bytes(252))) == 4 + 255 + 2
    with pytest.raises(MBusError):
        encode_long(0x53, 0xFF, 0x00, bytes(253))
    assert issubclass(MBusError, ProtocolError)
    # The Sagemcom overflow: 256 to 258 bytes from C on, L written 256 less.
    assert encode_long(0x53, 0xFF, 0x00, bytes(254), length_overflow=True)[:4] == bytes.fromhex("68010168")
    for size in (252, 256):
        with pytest.raises(MBusError):
            encode_long(0x53, 0xFF, 0x00, bytes(size), length_overflow=True)


@pytest.mark.parametrize(
    ("c", "function"),
    [
        (0x40, CField.SND_NKE), (0x60, CField.SND_NKE),
        (0x53, CField.SND_UD), (0x73, CField.SND_UD),
        (0x5B, CField.REQ_UD2), (0x7B, CField.REQ_UD2),
        (0x5A, CField.REQ_UD1), (0x7A, CField.REQ_UD1),
        (0x08, CField.RSP_UD), (0x18, CField.RSP_UD), (0x28, CField.RSP_UD),
        (0x00, None), (0x44, None), (0x0B, None),
    ],
)
def test_c_field_functions(c, function):
    assert CField.of(c) is function


def test_real_capture_frames():
    events = MBusFramer().feed(TINETZ)
    assert [type(e) for e in events] == [LongFrame, LongFrame]
    first, last = events
    assert [segment_number(first), segment_number(last)] == [0, 1]
    assert [is_last_segment(first), is_last_segment(last)] == [False, True]
    assert is_dlms_segment(first) and is_dlms_segment(last)
    assert b"".join(encoded(e) for e in events) == TINETZ


def test_split_segments_numbers_and_marks_the_last():
    assert split_segments(b"", 0x53, 0xFF) == [encode_long(0x53, 0xFF, 0x10, b"\x01\x67")]
    frames = split_segments(bytes(245 * 2 + 1), 0x53, 0xFF)
    assert [f[6] for f in frames] == [0x00, 0x01, 0x12]
    assert [f[1] for f in frames] == [0xFA, 0xFA, 0x06]
    assert len(split_segments(bytes(245 * 16), 0x53, 0xFF)) == 16
    with pytest.raises(MBusError):
        split_segments(bytes(245 * 16 + 1), 0x53, 0xFF)


def test_segment_payload_needs_the_tsap_prefix():
    with pytest.raises(MBusError, match="CI 0x10"):
        segment_payload(LongFrame(0x53, 0xFF, 0x10, b"\x01"))
    assert segment_payload(LongFrame(0x53, 0xFF, 0x10, b"\x01\x67abc")) == b"abc"
    assert not is_dlms_segment(LongFrame(0x53, 0xFF, 0x72, b""))


# -- framing properties ----------------------------------------------------------------------

frames = st.one_of(
    st.just(b"\xe5"),
    st.builds(encode_short, st.integers(0, 255), st.integers(0, 255)),
    st.builds(encode_long, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=252)),
    st.builds(encode_long, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.binary(min_size=253, max_size=255),
              st.just(True)),
    st.sampled_from([*SIM_FRAMES, OVERFLOW_FRAME]),
)
cuts = st.lists(st.integers(0, 2000), max_size=12)


@BOUNDED
@given(st.lists(frames, min_size=1, max_size=6), cuts)
def test_frames_come_out_as_fed_whatever_the_chunking(sent, chunk_cuts):
    data = b"".join(sent)
    framer = MBusFramer()
    events = feed_in_chunks(framer, data, chunk_cuts)
    assert b"".join(encoded(e) for e in events) == data
    assert framer.pending == 0
    assert not any(isinstance(e, (Noise, BadFrame)) for e in events)


@BOUNDED
@given(st.binary(min_size=1, max_size=80).map(lambda b: bytes(x for x in b if x not in (0xE5, 0x10, 0x68)) or b"\x00"),
       st.lists(frames, min_size=1, max_size=4), cuts)
def test_noise_before_frames_is_counted_and_skipped(noise, sent, chunk_cuts):
    framer = MBusFramer()
    events = feed_in_chunks(framer, noise + b"".join(sent), chunk_cuts)
    assert sum(e.count for e in events if isinstance(e, Noise)) == len(noise)
    assert b"".join(encoded(e) for e in events if not isinstance(e, Noise)) == b"".join(sent)


@BOUNDED
@given(st.binary(max_size=300), st.lists(frames, max_size=4), st.binary(max_size=300), cuts)
def test_the_framer_never_invents_a_frame(before, sent, after, chunk_cuts):
    """Whatever bytes arrive, every frame reported is made of input bytes that check out."""
    data = before + b"".join(sent) + after
    framer = MBusFramer()
    events = feed_in_chunks(framer, data, chunk_cuts)
    account(data, events, framer.pending)


@BOUNDED
@given(st.sampled_from([TINETZ[: TINETZ.index(b"\x16\x68") + 1], *SIM_FRAMES, OVERFLOW_FRAME]), st.integers(1, 1000), cuts)
def test_a_truncated_frame_is_resynced_over_by_the_next_one(frame, cut, chunk_cuts):
    """A long frame cut short: the framer waits for its length, then finds the frames after it."""
    cut = cut % len(frame)
    follow = [encode_short(0x40, 0xF0), *OTHER_FRAMES]
    data = frame[:cut] + b"".join(follow) + bytes(300)  # zero padding: enough bytes to reject any held header
    framer = MBusFramer()
    events = feed_in_chunks(framer, data, chunk_cuts)
    account(data, events, framer.pending)
    found = [encoded(e) for e in events if isinstance(e, (LongFrame, ShortFrame))]
    assert found[-len(OTHER_FRAMES) :] == OTHER_FRAMES
    assert frame not in found


@pytest.mark.parametrize("frame", [TINETZ[: TINETZ.index(b"\x16\x68") + 1], SIM_FRAMES[0], SIM_FRAMES[1], encode_short(0x40, 0xF0),
                                   OVERFLOW_FRAME], ids=["tinetz-0", "sim-0", "sim-1", "search", "sagemcom-overflow"])
def test_every_single_bit_flip_is_caught_and_the_next_frame_still_read(frame):
    """Exhaustively: one flipped bit anywhere never yields the frame (nor another frame of its
    length), and the intact frame after it is read."""
    good = OTHER_FRAMES[1]
    for bit in range(len(frame) * 8):
        flipped = bytearray(frame)
        flipped[bit // 8] ^= 1 << (bit % 8)
        data = bytes(flipped) + good + bytes(300)
        framer = MBusFramer()
        events = framer.feed(data)
        account(data, events, framer.pending)
        frames_out = [e for e in events if isinstance(e, (ShortFrame, LongFrame))]
        assert encoded(frames_out[-1]) == good, bit
        assert all(len(encoded(e)) != len(frame) for e in frames_out[:-1]), bit


def test_reset_drops_a_partial_frame():
    framer = MBusFramer()
    assert framer.feed(SIM_FRAMES[0][:100]) == []
    assert framer.pending == 100
    framer.reset()
    assert framer.pending == 0
    assert [encoded(e) for e in framer.feed(SIM_FRAMES[1])] == [SIM_FRAMES[1]]


def test_bad_header_and_bad_checksum_are_reported():
    framer = MBusFramer()
    bad_sum = bytearray(encode_short(0x40, 0xF0))
    bad_sum[3] ^= 0xFF
    events = framer.feed(bytes(bad_sum))
    assert isinstance(events[0], BadFrame) and "checksum" in events[0].reason
    events = MBusFramer().feed(bytes.fromhex("68 05 06 68") + bytes(10))
    assert isinstance(events[0], BadFrame) and "68 05 06 68" in events[0].reason
    # L < 3 leaves no room for C, A, CI: read as L + 256 (the Sagemcom overflow), and bad there too.
    assert MBusFramer().feed(bytes.fromhex("68 02 02 68 53 FF 52 16")) == []
    events = MBusFramer().feed(bytes.fromhex("68 02 02 68 53 FF 52 16") + bytes(256))
    assert isinstance(events[0], BadFrame) and "(L=0x02, read as 258 bytes): no stop byte" in events[0].reason
