"""Fuzzing the push mapping (issue 13 item 1, the published lists of issue 14) with the real
data-notifications of tests/data as seeds.

Two ways in: the decrypted APDUs with bytes changed, inserted, deleted and repeated; and bodies put
together from the real bodies' elements in any order and number, so that OBIS codes, scaler-unit
structures and nameless values meet in every arrangement. Only `ProtocolError` may escape; every
reading is strict JSON, every value has either an OBIS code or its index in the body, and what
needs an OBIS code (MQTT state, Home Assistant discovery, `meter_reading`) takes only named values.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meterlink.protocols.dlms.axdr import array, encode_data, structure
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.obis import Obis
from meterlink.protocols.readings import Reading
from meterlink.service.meterextension import meter_block
from meterlink.service.mqtt import obis_key, sensors, state_of
from mutations import FUZZ, edits, mutate, strict_json
from test_hdlc_push_captures import CAPTURES, DOC_EXAMPLES, apdu_of
from test_hdlc_push_captures import plaintext as hdlc_plaintext
from test_push_mapping import KEYED, capture, plaintext

SEEDS = [plaintext(name) for name in KEYED] + [
    bytes.fromhex(capture("kaifa_salzburgnetz_plaintext_nooxnet")["hex_or_text"]),
    bytes.fromhex(capture("elster_mbus_salzburgnetz_doc_nokey")["expected_values_if_given"]["plaintext_from_same_doc_unverified"]),
    *(hdlc_plaintext(name) for name in CAPTURES),
    *(apdu_of(frame)[0] for frame in DOC_EXAMPLES),
]
ELEMENTS = sorted({element for seed in SEEDS for element in parse_notification(seed).body.value}, key=repr)
HEADERS = sorted({seed[: len(seed) - len(encode_data(parse_notification(seed).body))] for seed in SEEDS})
"""The bytes before each seed's body: tag, invoke id and date-time (absent, 12 octets, or Kaifa's 09 0C + 12)."""


def check(reading: Reading, body_length: int | None = None) -> None:
    strict_json(reading.to_json())
    indexes = [value.index for value in reading.values if value.obis is None]
    assert all(index is not None for index in indexes)
    assert indexes == sorted(set(indexes))
    if body_length is not None:
        assert all(0 <= index < body_length for index in indexes)
    for value in reading.values:
        if value.obis is not None:
            assert value.index is None and str(Obis.parse(value.obis)) == value.obis
    named = {obis_key(value.obis) for value in reading.values if value.obis is not None}
    assert set(state_of(reading)) - {"captured_at", "received_at"} <= named
    assert {sensor.key for sensor in sensors(reading)} <= named
    assert all(data.OBIS is not None for data in meter_block("mbus", [reading]).data)


@FUZZ
@given(st.sampled_from(SEEDS), edits)
def test_mutated_notifications_map_or_raise_a_protocol_error(apdu, changes):
    try:
        reading = to_reading(parse_notification(mutate(apdu, changes)), "mbus", 1.0)
    except ProtocolError:
        return
    check(reading)


@FUZZ
@given(st.sampled_from(HEADERS), st.lists(st.sampled_from(ELEMENTS), max_size=40), st.sampled_from([structure, array]))
def test_real_elements_in_any_arrangement_map_to_strict_json(header, elements, container):
    # Well-formed A-XDR always maps: nothing may raise here, not even a ProtocolError.
    reading = to_reading(parse_notification(header + encode_data(container(*elements))), "mbus", 1.0)
    check(reading, len(elements))
