"""Real HDLC push captures of issue 14 and the published lists that name their values (lists.py).

Each capture in tests/data (sources in tests/data/README.md) is read from its HDLC frame, decrypted
with its published key where it is encrypted, and mapped; the reading is compared with the values
the file states: the source's own, amsreader-firmware's decoder (`amsreader_decoder`) or
dlms-cosem's (`dlms_cosem_elements`), as each file's `expected_values_source` says. Raw values are
compared element by element with dlms-cosem's reading of the same body.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from meterlink.protocols.dlms.axdr import Data, DataTag, encode_data, octet_string, structure
from meterlink.protocols.dlms.cosem import CosemDateTime
from meterlink.protocols.dlms.notification import NotificationError, parse_notification, to_reading
from meterlink.protocols.dlms.security import decrypt, parse_ciphered
from meterlink.protocols.hdlc import parse_frame
from meterlink.protocols.readings import Reading, Value
from test_push_mapping import LLC, capture, expected, local_time

KAMSTRUP = ["kamstrup_hdlc_em001", "kamstrup_han_gh216-1", "kamstrup_han_gh741-1"]
AMSREADER = [*KAMSTRUP, "kaifa_hdlc_gh180-2", "aidon_hdlc_gh1119"]
ENCRYPTED = ["siemens_hdlc_wienernetze_rddl", "landisgyr_hdlc_wienernetze_rddl", "iskra_am550_hdlc_shrdzm"]
CAPTURES = [*AMSREADER, "kaifa_hdlc_gh180-1", "kaifa_hdlc_elwiz", "iskra_am550_hdlc_gh956-1", *ENCRYPTED]
DOC_EXAMPLES = [example["hex"] for example in capture("kamstrup_hdlc_nve_doc")["examples"]]
"""Kamstrup's own example frames: its interface description prints them, no meter sent them."""


def apdu_of(frame_hex: str, key: str | None = None) -> tuple[bytes, bytes | None]:
    """The data-notification in one HDLC frame, decrypted with `key` when ciphered, and the system title."""
    apdu = parse_frame(bytes.fromhex(frame_hex)).information[LLC:]
    if key is None:
        return apdu, None
    ciphered = parse_ciphered(apdu)
    return decrypt(ciphered, bytes.fromhex(key)), ciphered.system_title


def plaintext(name: str) -> bytes:
    found = capture(name)
    return apdu_of(found["hex_or_text"], found["key_if_any"])[0]


def reading_of(frame_hex: str, key: str | None = None) -> Reading:
    apdu, system_title = apdu_of(frame_hex, key)
    return to_reading(parse_notification(apdu), "hdlc-push", None, system_title)


def reading(name: str) -> Reading:
    found = capture(name)
    return reading_of(found["hex_or_text"], found["key_if_any"])


def cosem_time(stated: str) -> str:
    """dlms-cosem's "2022-02-01 09:17:20[+01:00]" as a reading's captured_at: the meter's local time."""
    return datetime.fromisoformat(stated).replace(tzinfo=None).isoformat()


def raw_values(reading: Reading) -> list[object]:
    """What the meter sent for each value, as the files record dlms-cosem's elements."""
    return [value.raw if value.raw is not None else value.value for value in reading.values]


def named(reading: Reading, obis: str) -> Value:
    value = reading.value_of(obis)
    assert value is not None, obis
    return value


@pytest.mark.parametrize("name", ENCRYPTED)
def test_the_published_key_decrypts_to_the_recorded_plaintext(name):
    assert plaintext(name) == bytes.fromhex(expected(name)["decrypted_apdu_hex_verified_by_us"])


# -- Kamstrup_V0001: OBIS codes on the wire, scalers from Kamstrup's HAN-NVE document -------------


def test_kamstrup_doc_examples_read_as_the_document_prints_them():
    for example in capture("kamstrup_hdlc_nve_doc")["examples"]:
        reading = reading_of(example["hex"])
        elements = example["dlms_cosem_elements"]
        assert reading.meter_id == elements[2] == "5706567000000000"
        assert reading.captured_at == cosem_time(example["notification_datetime_dlms_cosem"])
        assert (reading.values[0].obis, reading.values[0].value) == ("1-1:0.2.129.255", "Kamstrup_V0001")
        assert len(reading.values) == (len(elements) + 1) // 2  # the id, then OBIS and value pairs
        assert all(value.obis is not None for value in reading.values)
        registers = [value for value in reading.values if value.raw is not None]
        assert registers and all(value.raw == 0 and value.unit for value in registers)


@pytest.mark.parametrize("name", KAMSTRUP)
def test_kamstrup_captures_read_as_amsreader_and_dlms_cosem_read_them(name):
    stated = expected(name)
    reading_ = reading(name)
    assert reading_.captured_at == cosem_time(stated["notification_datetime_dlms_cosem"])
    elements = stated["dlms_cosem_elements"]
    assert (reading_.values[0].obis, reading_.values[0].value) == ("1-1:0.2.129.255", elements[0])
    assert [value.obis for value in reading_.values[1:]] == [obis_text(code) for code in elements[1::2]]
    assert raw_values(reading_)[1:] == [cosem_value(element) for element in elements[2::2]]
    assert_amsreader_values(reading_, stated["amsreader_decoder"], "1-1")


def obis_text(element: str) -> str:
    """An element the files spell "octets 0101010700ff" as an OBIS code in full form."""
    a, b, c, d, e, f = bytes.fromhex(element.removeprefix("octets "))
    return f"{a}-{b}:{c}.{d}.{e}.{f}"


def cosem_value(element: object) -> object:
    """A value element as a reading keeps it: numbers and text as they are, a date-time in ISO 8601."""
    if isinstance(element, str) and element.startswith("octets "):
        raw = bytes.fromhex(element.removeprefix("octets "))
        year = int.from_bytes(raw[:2], "big")
        return datetime(year, raw[2], raw[3], raw[5], raw[6], raw[7]).isoformat()
    return element


def assert_amsreader_values(reading: Reading, stated: dict, group: str) -> None:
    """The values amsreader-firmware's decoder states (currents to 2 decimals, the energy in kWh);
    `group` is the OBIS codes' A-B: "1-1" for Kamstrup, "1-0" for Kaifa and Aidon."""
    assert (named(reading, f"{group}:1.7.0.255").value, named(reading, f"{group}:1.7.0.255").unit) == (stated["active_import_W"], "W")
    assert named(reading, f"{group}:2.7.0.255").value == stated["active_export_W"]
    for c, volts in zip((32, 52, 72), stated["voltage_V"]):
        value = named(reading, f"{group}:{c}.7.0.255")
        assert (value.value, value.unit) == (pytest.approx(volts), "V"), c
    for c, amperes in zip((31, 51, 71), stated["current_A"]):
        value = named(reading, f"{group}:{c}.7.0.255")
        assert (value.value, value.unit) == (pytest.approx(amperes, abs=0.005), "A"), c
    if stated["import_counter_kWh"]:
        energy = named(reading, f"{group}:1.8.0.255")
        assert (energy.value / 1000, energy.unit) == (pytest.approx(stated["import_counter_kWh"], abs=0.005), "Wh")
    assert reading.meter_id == (stated["meter_id"] or None)


# -- KFM_001: values only, named by position from Kaifa's document --------------------------------


def test_kaifa_list_2_reads_as_amsreader_reads_it():
    stated = expected("kaifa_hdlc_gh180-2")
    reading_ = reading("kaifa_hdlc_gh180-2")
    assert reading_.captured_at == cosem_time(stated["notification_datetime_dlms_cosem"])  # the header's 09 0C date-time
    assert all(value.obis is not None for value in reading_.values)
    assert raw_values(reading_) == stated["dlms_cosem_elements"]
    assert [value.obis for value in reading_.values[:3]] == ["1-1:0.2.129.255", "0-0:96.1.0.255", "0-0:96.1.7.255"]
    assert_amsreader_values(reading_, stated["amsreader_decoder"], "1-0")


def test_kaifa_list_3_reads_as_its_source_asserts():
    stated = expected("kaifa_hdlc_elwiz")
    source = stated["as_asserted_by_source"]
    reading_ = reading("kaifa_hdlc_elwiz")
    assert raw_values(reading_)[3:13] == [source[key] for key in (
        "powImpActive", "powExpActive", "powImpReactive", "powExpReactive",
        "currentL1", "currentL2", "currentL3", "voltageL1", "voltageL2", "voltageL3")]
    energies = ("accumulatedConsumption", "accumulatedProduction", "cumuHourPowImpReactive", "cumuHourPowExpReactive")
    for obis, key, unit in zip(("1-0:1.8.0.255", "1-0:2.8.0.255", "1-0:3.8.0.255", "1-0:4.8.0.255"), energies,
                               ("Wh", "Wh", "varh", "varh")):
        value = named(reading_, obis)
        assert (value.raw, value.scaler, value.unit) == (source[key], 0, unit), obis
    assert reading_.meter_id == stated["dlms_cosem_elements"][1] == "6970631403757615"
    clock = cosem_time(stated["notification_datetime_dlms_cosem"])
    assert reading_.captured_at == named(reading_, "0-0:1.0.0.255").value == clock == "2022-10-16T21:00:10"


def test_kaifa_list_1_has_no_list_id_and_stays_nameless():
    stated = expected("kaifa_hdlc_gh180-1")
    reading_ = reading("kaifa_hdlc_gh180-1")
    assert [(value.obis, value.index, value.raw) for value in reading_.values] == [(None, 0, stated["dlms_cosem_elements"][0])]
    assert reading_.captured_at == cosem_time(stated["notification_datetime_dlms_cosem"])


# -- AIDON_V0001: {OBIS, value, {scaler, unit}} per object, no list definition needed --------------


def test_aidon_list_3_reads_as_amsreader_reads_it():
    stated = expected("aidon_hdlc_gh1119")
    reading_ = reading("aidon_hdlc_gh1119")
    assert reading_.captured_at == cosem_time(stated["clock_dlms_cosem"])
    for value, element in zip(reading_.values, stated["dlms_cosem_elements"]):
        assert value.obis == obis_text(element[0])
        if len(element) == 3:
            assert (value.raw, [value.scaler, value.unit_code]) == (element[1], element[2]), value.obis
    assert_amsreader_values(reading_, stated["amsreader_decoder"], "1-0")


# -- Wiener Netze (seed 001 variant 3) and the AM550 of variant 1 ---------------------------------


def test_wienernetze_landisgyr_is_named_by_variant_3():
    stated = expected("landisgyr_hdlc_wienernetze_rddl")
    reading_ = reading("landisgyr_hdlc_wienernetze_rddl")
    assert [value.obis for value in reading_.values] == [
        "0-0:1.0.0.255", "1-0:1.8.0.255", "1-0:2.8.0.255", "1-0:3.8.0.255", "1-0:4.8.0.255",
        "1-0:1.7.0.255", "1-0:2.7.0.255", "1-0:3.7.0.255", "1-0:4.7.0.255"]
    assert raw_values(reading_)[1:] == stated["dlms_cosem_elements"][1:]
    assert [value.unit for value in reading_.values[1:]] == ["Wh", "Wh", "varh", "varh", "W", "W", "var", "var"]
    assert reading_.captured_at == cosem_time(stated["notification_datetime_dlms_cosem"]) == named(reading_, "0-0:1.0.0.255").value
    assert reading_.meter_id == "4c475a67726d311e"  # the system title: variant 3 has no meter number


def test_wienernetze_im350_puts_its_meter_number_first_and_stays_nameless():
    # Ten elements, the meter number before variant 3's nine: no published list has this shape, so
    # its values keep their positions (the meter number is not last, the clock is not first).
    stated = expected("siemens_hdlc_wienernetze_rddl")
    reading_ = reading("siemens_hdlc_wienernetze_rddl")
    elements = stated["dlms_cosem_elements"]
    assert [(value.index, value.value) for value in reading_.values] == list(enumerate(
        [elements[0], cosem_value(elements[1]), *elements[2:]]))
    assert reading_.captured_at == cosem_time(stated["notification_datetime_dlms_cosem"])
    assert reading_.meter_id == "534d5367753ec614"


def test_the_shrdzm_am550_is_variant_1_as_the_kaerntennetz_one():
    stated = expected("iskra_am550_hdlc_shrdzm")
    reading_ = reading("iskra_am550_hdlc_shrdzm")
    assert (reading_.values[0].obis, reading_.values[0].value) == ("0-6:25.9.0.255", "0006190900ff")
    by_index = {value.index: value.raw for value in reading_.values}
    assert (by_index[4], by_index[5], by_index[8]) == (stated["+A Wh"], stated["-A Wh"], stated["+P W"])
    assert reading_.captured_at == local_time(stated["datetime"])


def test_a_slovenian_am550_sends_values_no_published_list_names():
    stated = expected("iskra_am550_hdlc_gh956-1")
    reading_ = reading("iskra_am550_hdlc_gh956-1")
    assert [(value.index, value.value) for value in reading_.values] == list(enumerate(stated["dlms_cosem_elements"]))
    assert reading_.captured_at == cosem_time(stated["notification_datetime_dlms_cosem"])


# -- the list definitions apply only where the telegram names them --------------------------------


def body_reading(*elements: Data, header: bytes = b"\x00") -> Reading:
    return to_reading(parse_notification(b"\x0f\x40\x00\x00\x00" + header + encode_data(structure(*elements))), "hdlc-push", None)


def text(value: str) -> Data:
    return octet_string(value.encode())


def number(value: int) -> Data:
    return Data(DataTag.DOUBLE_LONG_UNSIGNED, value)


KAIFA_LIST_2 = (text("KFM_001"), text("6970631403275928"), text("MA304H3E"), *(number(n) for n in range(10)))


def test_a_kaifa_list_of_another_length_keeps_the_general_rules():
    reading_ = body_reading(*KAIFA_LIST_2[:-1])
    assert [value.index for value in reading_.values] == list(range(12))


def test_a_kaifa_list_with_text_where_a_number_belongs_keeps_the_general_rules():
    reading_ = body_reading(*KAIFA_LIST_2[:-1], text("2397"))
    assert reading_.values[0].index == 0


def test_a_kaifa_list_of_the_right_shape_is_named():
    reading_ = body_reading(*KAIFA_LIST_2)
    assert (reading_.meter_id, named(reading_, "1-0:72.7.0.255").value) == ("6970631403275928", 0.9)


def test_a_nine_element_body_is_variant_3_only_with_a_clock_first():
    clock = CosemDateTime.from_datetime(datetime(2021, 11, 3, 4, 56, 57)).to_bytes()
    assert body_reading(octet_string(clock), *(number(n) for n in range(8))).values[1].obis == "1-0:1.8.0.255"
    assert body_reading(number(1), *(number(n) for n in range(8))).values[1].obis is None


def test_kamstrup_scalers_need_the_list_id_first():
    power = octet_string(bytes((1, 1, 31, 7, 0, 255)))
    assert named(body_reading(Data(DataTag.VISIBLE_STRING, "Kamstrup_V0001"), power, number(189)), "1-1:31.7.0.255").value == 1.89
    unnamed = named(body_reading(power, number(189), Data(DataTag.VISIBLE_STRING, "Kamstrup_V0001")), "1-1:31.7.0.255")
    assert (unnamed.value, unnamed.scaler) == (189, None)


def test_a_scaler_the_meter_sends_wins_over_the_lists():
    power = octet_string(bytes((1, 1, 31, 7, 0, 255)))
    scaler_unit = structure(Data(DataTag.INTEGER, -1), Data(DataTag.ENUM, 33))
    reading_ = body_reading(Data(DataTag.VISIBLE_STRING, "Kamstrup_V0001"), power, number(189), scaler_unit)
    assert named(reading_, "1-1:31.7.0.255").value == 18.9


@pytest.mark.parametrize("header", [b"\x09\x0b", b"\x09\x0c" + bytes(11), b"\x0a\x0c"])
def test_a_header_date_time_other_than_absent_or_12_octets_is_refused(header):
    with pytest.raises(NotificationError):
        parse_notification(b"\x0f\x40\x00\x00\x00" + header)
