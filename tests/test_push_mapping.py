"""The push mapping (issue 13 item 1) on real telegrams of seed 001 ch. B.5's data models.

Each capture in tests/data (sources in tests/data/README.md) is decrypted with its published key,
the plaintext compared with the one the file records (checked there without meterlink), and the
reading compared with the values the file states: the source's own where it gives them, else
dlms-cosem's (each file's `expected_values_source` says which). The M-Bus segments are joined by
the frame layout the file records, not by meterlink's framer, so that the Sagemcom T210-D whose
length field overflows is read here too. HDLC captures are used for the mapping only: their link
is issue 14.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from meterlink.protocols.dlms.axdr import Data, DataTag, encode_data, octet_string, structure
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.dlms.security import CipherKeys, decrypt, parse_ciphered
from meterlink.protocols.hdlc import parse_frame
from meterlink.protocols.readings import Reading
from meterlink.service.api import ReadingOut
from meterlink.service.meterextension import meter_block
from meterlink.service.mqtt import sensors, state_of
from test_mbus_realworld import published, run_adapter

DATA = Path(__file__).parent / "data"
TSAP = 2  # each M-Bus segment's data begins with the source and destination TSAP (01 67)
LLC = 3   # each HDLC frame's information begins with the LLC header E6 E7 00


def capture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def expected(name: str) -> dict:
    return capture(name)["expected_values_if_given"]


def ciphered_apdu(name: str) -> bytes:
    """The general-glo-ciphering APDU of a capture, from its M-Bus frames or its HDLC frame."""
    found = capture(name)
    raw = bytes.fromhex(found["hex_or_text"])
    if found["link"] == "mbus":
        return b"".join(raw[frame["offset"] + 7 + TSAP : frame["offset"] + 7 + frame["data_bytes"]] for frame in found["frames"])
    return parse_frame(raw).information[LLC:]


def plaintext(name: str) -> bytes:
    found = capture(name)
    auth_key = found.get("auth_key_if_any")
    return decrypt(parse_ciphered(ciphered_apdu(name)), bytes.fromhex(found["key_if_any"]),
                   bytes.fromhex(auth_key) if auth_key else None)


def reading_of(name: str, received_at: float | None = None) -> Reading:
    return to_reading(parse_notification(plaintext(name)), "mbus", received_at, parse_ciphered(ciphered_apdu(name)).system_title)


def local_time(stated: str) -> str:
    """A time stamp as a reading's captured_at has it: the meter's local time, without its offset."""
    return datetime.fromisoformat(stated).replace(tzinfo=None).isoformat()


VARIANT_7 = ["kaifa_mbus_evn_netznoe_doc", "kaifa_mbus_evn_fkw9", "sagemcom_mbus_evn_fkw9_overflow", "sagemcom_mbus_evn_rddl"]
KEYED = VARIANT_7 + ["iskra_hdlc_kaerntennetz_gh787", "iskra_hdlc_wienernetze_rddl", "landisgyr_hdlc_netzburgenland_gh501"]


@pytest.mark.parametrize("name", KEYED)
def test_the_published_key_decrypts_to_the_recorded_plaintext(name):
    recorded = expected(name)
    stated = recorded.get("decrypted_apdu_hex_published") or recorded["decrypted_apdu_hex_verified_by_us"]
    assert plaintext(name) == bytes.fromhex(stated)


# -- variant 7: Netz NÖ / EVN, Kaifa and Sagemcom T210-D ------------------------------------------


def assert_register(reading: Reading, obis: str, stated: dict) -> None:
    value = reading.value_of(obis)
    assert value is not None, obis
    assert (value.raw, value.scaler, value.value) == (stated["raw"], stated["scaler"], stated["value"]), obis
    if stated["unit"] == "(none)":  # the COSEM unit 255, "no unit"
        assert value.unit_code == 255 and not value.unit, obis
    else:
        assert value.unit == stated["unit"], obis


def test_netznoe_document_sample_reads_as_the_operator_states_it():
    stated = expected("kaifa_mbus_evn_netznoe_doc")
    reading = reading_of("kaifa_mbus_evn_netznoe_doc")
    assert reading.meter_id == stated["0-0:96.1.0"] == "181220000009"
    published_clock = datetime.strptime(stated["clock_as_published"], "%d.%m.%Y %H:%M:%S%z")
    assert reading.captured_at == published_clock.replace(tzinfo=None).isoformat() == "2021-09-27T09:47:15"
    assert [value.obis for value in reading.values] == ["0-0:1.0.0.255", *stated["values"], "0-0:96.1.0.255"]
    for obis, register in stated["values"].items():
        assert_register(reading, obis, register)
    volts, power_factor = reading.value_of("1-0:32.7.0.255"), reading.value_of("1-0:13.7.0.255")
    assert (volts.value, volts.unit) == (233.7, "V")
    assert power_factor.value == 1.0


@pytest.mark.parametrize("name", VARIANT_7)
def test_variant_7_captures_read_every_stated_value(name):
    stated = expected(name)
    reading = reading_of(name)
    assert reading.meter_id == stated["0-0:96.1.0"]
    assert reading.value_of("0-0:96.1.0.255").value == stated["0-0:96.1.0"]
    assert [value.obis for value in reading.values] == ["0-0:1.0.0.255", *stated["values"], "0-0:96.1.0.255"]
    assert all(value.index is None for value in reading.values)
    for obis, register in stated["values"].items():
        assert_register(reading, obis, register)
    if "clock_dlms_cosem" in stated:
        assert reading.captured_at == local_time(stated["clock_dlms_cosem"])


def test_the_rddl_sagemcom_raw_values_are_those_its_source_asserts():
    reading = reading_of("sagemcom_mbus_evn_rddl")
    for obis, raw in expected("sagemcom_mbus_evn_rddl")["as_asserted_by_source_raw"].items():
        assert reading.value_of(obis).raw == raw, obis


@pytest.mark.parametrize("name", ["kaifa_mbus_evn_netznoe_doc", "kaifa_mbus_evn_fkw9", "sagemcom_mbus_evn_rddl"])
def test_variant_7_telegrams_read_through_the_mbus_adapter(name):
    found = capture(name)
    _, actions = run_adapter(bytes.fromhex(found["hex_or_text"]), [CipherKeys(bytes.fromhex(found["key_if_any"]))])
    (reading,) = published(actions)
    assert reading.to_json()["values"] == reading_of(name).to_json()["values"]
    assert reading.meter_id == found["expected_values_if_given"]["0-0:96.1.0"]


# -- variant 2 (Salzburg Netz Kaifa) and the Salzburg Netz document's flat sample ------------------


def test_salzburgnetz_kaifa_pairs_layout():
    found = capture("kaifa_salzburgnetz_plaintext_nooxnet")
    notification = parse_notification(bytes.fromhex(found["hex_or_text"]))
    source = found["expected_values_if_given"]["as_asserted_by_source"]
    assert notification.invoke_id == source["long_invoke_id"]
    reading = to_reading(notification, "mbus", None)
    assert reading.captured_at == local_time(source["date_time"])
    stated = found["expected_values_if_given"]["dlms_cosem"]
    assert reading.meter_id == stated["0-0:96.1.0.255"]
    assert {value.obis: value.value for value in reading.values} == {"0-0:1.0.0.255": reading.captured_at, **stated}


def test_salzburgnetz_document_sample_is_flat_like_variant_7():
    found = capture("elster_mbus_salzburgnetz_doc_nokey")
    stated = found["expected_values_if_given"]
    # No key is published: the frame is checked only as far as its header, and the plaintext the
    # same source attributes to the document is mapped on its own.
    ciphered = parse_ciphered(ciphered_apdu("elster_mbus_salzburgnetz_doc_nokey"))
    assert (ciphered.system_title.hex().upper(), f"{ciphered.frame_counter:08X}") == (stated["system_title"], stated["frame_counter"])
    reading = to_reading(parse_notification(bytes.fromhex(stated["plaintext_from_same_doc_unverified"])), "mbus", None)
    decoded = stated["plaintext_decoded_by_dlms_cosem"]
    assert reading.captured_at == local_time(decoded["notification_datetime"].split(" (")[0])
    assert [value.obis for value in reading.values] == ["0-0:1.0.0.255", "1-0:1.8.0.255", "1-0:3.8.0.255"]
    for obis in ("1-0:1.8.0.255", "1-0:3.8.0.255"):
        value = reading.value_of(obis)
        assert (value.raw, value.scaler, value.unit) == (decoded[obis]["raw"], decoded[obis]["scaler"], decoded[obis]["unit"])


# -- HDLC data models without OBIS codes: variants 1, 3 and 6 -------------------------------------


def nameless(reading: Reading) -> list[tuple[int | None, object]]:
    return [(value.index, value.value) for value in reading.values if value.obis is None]


def test_variant_1_kaerntennetz_iskra_keeps_its_values_by_position():
    stated = expected("iskra_hdlc_kaerntennetz_gh787")
    elements = stated["dlms_cosem_elements"]
    reading = reading_of("iskra_hdlc_kaerntennetz_gh787")
    # IDIS: the push list begins with the push setup's own logical name, 00 06 19 09 00 FF.
    first = reading.values[0]
    assert (first.obis, first.value) == ("0-6:25.9.0.255", "0006190900ff")
    # Elements 2 and 3 are the time and date octet-strings the file spells "(octets 150B1100)" and
    # "(octets 07E8050702)"; a push value that is neither text nor a date-time is shown in hex.
    assert nameless(reading) == list(enumerate([elements[1], "150b1100", "07e8050702", *elements[4:]], start=1))
    assert reading.captured_at == local_time(stated["notification_datetime_dlms_cosem"])
    assert reading.meter_id == "49534b6974ac008f"  # the system title: variant 1 names nothing by OBIS


def test_variant_3_wienernetze_iskra_is_named_by_the_seeds_list():
    by_position = expected("iskra_hdlc_wienernetze_rddl")["by_seed001_variant3_position"]
    reading = reading_of("iskra_hdlc_wienernetze_rddl")
    clock = local_time(by_position.pop("0-0:1.0.0").split(" (")[0])
    assert (reading.values[0].obis, reading.values[0].value) == ("0-0:1.0.0.255", clock)
    assert reading.captured_at == clock
    # The file's keys read "1-0:1.8.0 Wh": the OBIS code and the unit seed 001 gives the register.
    registers = {f"{key.split()[0]}.255": (raw, key.split()[1]) for key, raw in by_position.items()}
    assert [value.obis for value in reading.values[1:]] == list(registers)
    for obis, (raw, unit) in registers.items():
        value = reading.value_of(obis)
        assert (value.raw, value.scaler, value.value, value.unit) == (raw, 0, raw, unit), obis


def test_variant_6_netzburgenland_landisgyr_ends_with_the_meter_number():
    elements = expected("landisgyr_hdlc_netzburgenland_gh501")["dlms_cosem_elements"]
    reading = reading_of("landisgyr_hdlc_netzburgenland_gh501")
    assert nameless(reading) == list(enumerate(elements[:-1]))
    assert (reading.values[-1].obis, reading.values[-1].value) == ("0-0:96.1.0.255", elements[-1])
    assert reading.meter_id == "30137181"  # amsreader's README: "meter ID 30137181"
    assert reading.captured_at == "2023-03-28T19:11:20"  # the header's 07E7031C02130B14FF800000


# -- where nameless values go --------------------------------------------------------------------


def test_nameless_values_are_in_the_reading_but_not_in_mqtt_or_meter_reading():
    reading = reading_of("landisgyr_hdlc_netzburgenland_gh501", received_at=1679000000.0)
    shown = reading.to_json()["values"]
    assert shown[0] == {"obis": None, "index": 0, "value": 236, "raw": 236}
    assert "index" not in shown[-1]
    ReadingOut.model_validate(reading.to_json())  # what /api/v1 and SSE send
    assert set(state_of(reading)) == {"0-0_96_1_0", "captured_at", "received_at"}
    assert sensors(reading) == []
    assert [data.OBIS for data in meter_block("mbus", [reading]).data] == ["0-0:96.1.0.255"]


def test_the_named_values_of_variant_7_reach_mqtt_and_home_assistant():
    reading = reading_of("kaifa_mbus_evn_netznoe_doc", received_at=1632728835.0)
    assert state_of(reading)["1-0_32_7_0"] == 233.7
    assert {sensor.key for sensor in sensors(reading)} >= {"1-0_1_8_0", "1-0_32_7_0", "1-0_13_7_0"}
    assert "0-0:96.1.0.255" in [data.OBIS for data in meter_block("mbus", [reading]).data]


# -- the rules on bodies built by hand -----------------------------------------------------------


def body_reading(*elements: Data) -> Reading:
    return to_reading(parse_notification(b"\x0f\x00\x00\x00\x01\x00" + encode_data(structure(*elements))), "mbus", None)


def number(value: int) -> Data:
    return Data(DataTag.LONG_UNSIGNED, value)


def scaler_unit(scaler: int, unit: int) -> Data:
    return structure(Data(DataTag.INTEGER, scaler), Data(DataTag.ENUM, unit))


VOLTAGE = octet_string(bytes((1, 0, 32, 7, 0, 255)))


def test_index_counts_every_element_of_the_body():
    reading = body_reading(VOLTAGE, number(2337), scaler_unit(-1, 35), number(5), scaler_unit(-2, 33), number(7))
    assert [(v.obis, v.index, v.value, v.unit) for v in reading.values] == [
        ("1-0:32.7.0.255", None, 233.7, "V"), (None, 3, 0.05, "A"), (None, 5, 7, None)]


@pytest.mark.parametrize("text", [b"", b"12345", b"ABCDEF", b"1234 5678", "181220000009".encode() * 3])
def test_a_last_text_that_is_no_meter_number_stays_nameless(text):
    reading = body_reading(VOLTAGE, number(1), octet_string(text))
    assert (reading.values[-1].obis, reading.values[-1].index) == (None, 2)


def test_a_last_text_is_not_a_second_meter_number():
    meter = octet_string(bytes((0, 0, 96, 1, 0, 255)))
    reading = body_reading(meter, Data(DataTag.VISIBLE_STRING, "1KFM0200234804"), Data(DataTag.VISIBLE_STRING, "181220000009"))
    assert reading.meter_id == "1KFM0200234804"
    assert (reading.values[-1].obis, reading.values[-1].index) == (None, 2)


def test_a_nameless_structure_is_kept_as_a_list():
    reading = body_reading(structure(number(1), Data(DataTag.BOOLEAN, True)))
    assert json.loads(json.dumps(reading.to_json()))["values"] == [{"obis": None, "index": 0, "value": [1, True]}]
