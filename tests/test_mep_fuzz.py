"""Hypothesis fuzz of the MEP and C12.19 decoders, seeded with the guide's examples: only
ProtocolError may escape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterlink.protocols.c1219 import decode_bt00, decode_bt21, decode_bt22, decode_bt23, decode_bt27, decode_bt28, decode_bt52, decode_serial
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.mep import MepReceiver, ReadRequest, decode_request, decode_response, encode_request, split_messages

from mep_data import KEY, guide_messages
from mutations import edits, mutate

MESSAGES = guide_messages()
SENT = encode_request(ReadRequest(23, 44, 0), 0x77635B91, KEY)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_stream_and_messages(data: st.DataObject) -> None:
    receiver = MepReceiver()
    for _ in range(data.draw(st.integers(1, 3))):
        receiver.feed(mutate(data.draw(st.sampled_from(MESSAGES)), data.draw(edits)))  # never raises
    blob = mutate(data.draw(st.sampled_from(MESSAGES)), data.draw(edits))
    for decode in (lambda: split_messages(blob), lambda: decode_request(blob, KEY), lambda: decode_response(blob[2:], SENT, KEY)):
        try:
            decode()
        except ProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_tables(blob: bytes) -> None:
    try:
        dims = decode_bt21(blob)
    except ProtocolError:
        dims = None
    for decode in (decode_bt00, decode_bt52, decode_serial):
        try:
            decode(blob)
        except ProtocolError:
            pass
    if dims is not None:
        for table in (decode_bt22, decode_bt23, decode_bt27, decode_bt28):
            try:
                table(blob, dims)
            except ProtocolError:
                pass
