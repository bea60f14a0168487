"""The P1 codec against the e-MUCs example telegrams (seed 003 annex B) and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterlink.protocols.crc import crc16_arc
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.p1 import (
    CrcStatus,
    NoiseDiscarded,
    P1Error,
    P1Framer,
    TelegramFramed,
    TelegramOversized,
    TelegramStarted,
    TelegramTruncated,
    check_telegram,
    parse_telegram,
    telegram_bytes,
    timestamp,
)

# (OBIS, value, unit, raw, scaler) as printed in seed 003 annex B 5.1.
ONE_PHASE = [
    ("0-0:96.1.4.255", "50217", None, None, None),
    ("0-0:96.1.1.255", "3153414731313030303030323331", None, None, None),
    ("1-0:1.8.1.255", 0.915, "kWh", 915, -3),
    ("1-0:1.8.2.255", 1.955, "kWh", 1955, -3),
    ("1-0:2.8.1.255", 0.0, "kWh", 0, -3),
    ("1-0:2.8.2.255", 0.030, "kWh", 30, -3),
    ("1-0:1.4.0.255", 2.351, "kW", 2351, -3),
    ("1-0:1.6.0.255", 2.589, "kW", 2589, -3),
    ("0-0:96.14.0.255", "0001", None, None, None),
    ("1-0:1.7.0.255", 0.0, "kW", 0, -3),
    ("1-0:2.7.0.255", 0.0, "kW", 0, -3),
    ("1-0:21.7.0.255", 0.0, "kW", 0, -3),
    ("1-0:22.7.0.255", 0.0, "kW", 0, -3),
    ("1-0:32.7.0.255", 234.6, "V", 2346, -1),
    ("1-0:31.7.0.255", 0.0, "A", 0, -2),
    ("0-0:96.3.10.255", 1, None, None, None),
    ("0-0:17.0.0.255", 999.9, "kW", 9999, -1),
    ("1-0:31.4.0.255", 999, "A", 999, 0),
    ("0-0:96.13.0.255", "", None, None, None),
    ("0-1:24.1.0.255", 3, None, None, None),
    ("0-1:96.1.1.255", "37464C4F32313139303333373333", None, None, None),
    ("0-1:24.4.0.255", 1, None, None, None),
    ("0-1:24.2.3.255", 112.384, "m3", 112384, -3),
    ("0-2:24.1.0.255", 7, None, None, None),
    ("0-2:96.1.1.255", "3853414731323334353637383930", None, None, None),
    ("0-2:24.2.1.255", 872.234, "m3", 872234, -3),
]


def framed(raw: bytes) -> TelegramFramed:
    events = [e for e in P1Framer().feed(raw) if isinstance(e, TelegramFramed)]
    assert len(events) == 1
    return events[0]


def test_one_phase_example_decodes_to_the_printed_values(data_file):
    frame = framed(data_file("emucs_p1_1phase.txt"))
    assert frame.crc is CrcStatus.OK
    telegram = frame.telegram
    assert telegram.header == "FLU5\\253770234_A"
    reading = telegram.to_reading(12.5)
    assert reading.meter_id == "1SAG1100000231"
    assert reading.captured_at == "2020-05-12T14:55:52"
    assert reading.link == "p1" and reading.received_at == 12.5
    for obis, value, unit, raw, scaler in ONE_PHASE:
        got = reading.value_of(obis)
        assert got is not None, obis
        assert (got.value, got.unit, got.raw, got.scaler) == (value, unit, raw, scaler), obis
    assert len(reading.values) == 28  # every data line of annex B 5.1


def test_values_with_their_own_capture_time(data_file):
    reading = framed(data_file("emucs_p1_1phase.txt")).telegram.to_reading(None)
    assert reading.value_of("1-0:1.6.0.255").time == "2020-05-09T13:45:58"
    assert reading.value_of("0-1:24.2.3.255").time == "2020-05-12T13:45:58"
    assert reading.value_of("0-2:24.2.1.255").time == "2020-05-12T13:45:58"


def test_max_demand_of_last_months_is_a_list_of_rows(data_file):
    rows = framed(data_file("emucs_p1_1phase.txt")).telegram.to_reading(None).value_of("0-0:98.1.0.255").value
    assert [(r.entry_time, r.time, r.value, r.unit) for r in rows] == [
        ("2020-05-01T00:00:00", "2020-04-23T19:25:38", 3.695, "kW"),
        ("2020-04-01T00:00:00", "2020-03-05T12:21:39", 5.980, "kW"),
        ("2020-03-01T00:00:00", "2020-02-10T03:54:21", 4.318, "kW"),
    ]


def test_three_phase_example(data_file):
    reading = framed(data_file("emucs_p1_3phase.txt")).telegram.to_reading(None)
    assert reading.meter_id == "1SAG3101021605"
    assert reading.captured_at == "2020-05-12T13:54:09"
    expected = {
        "1-0:1.8.1.255": 0.034, "1-0:1.8.2.255": 15.758, "1-0:2.8.2.255": 0.011,
        "1-0:32.7.0.255": 234.7, "1-0:52.7.0.255": 234.7, "1-0:72.7.0.255": 234.7,
        "1-0:41.7.0.255": 0.0, "1-0:62.7.0.255": 0.0, "1-0:71.7.0.255": 0.0,
    }
    for obis, value in expected.items():
        assert reading.value_of(obis).value == value, obis
    # As printed in the manual, the 3-phase example has neither of these.
    assert reading.value_of("1-0:1.7.0.255") is None
    assert reading.value_of("0-0:96.14.0.255") is None


def test_reading_json_shape(data_file):
    document = framed(data_file("emucs_p1_1phase.txt")).telegram.to_reading(None).to_json()
    assert list(document) == ["meter_id", "link", "kind", "received_at", "captured_at", "values"]
    assert document["link"] == document["kind"] == "p1"  # decode knows no configured name
    voltage = next(v for v in document["values"] if v["obis"] == "1-0:32.7.0.255")
    assert voltage == {"obis": "1-0:32.7.0.255", "value": 234.6, "unit": "V", "raw": 2346, "scaler": -1}
    text = next(v for v in document["values"] if v["obis"] == "0-0:96.14.0.255")
    assert text == {"obis": "0-0:96.14.0.255", "value": "0001"}


def test_crc16_arc_check_value():
    # The CRC catalogue's check value of CRC-16/ARC over "123456789".
    assert crc16_arc(b"123456789") == 0xBB3D


def test_vector_crc_lines_match(data_file):
    for name in ("emucs_p1_1phase.txt", "emucs_p1_3phase.txt"):
        raw = data_file(name)
        bang = raw.rindex(b"!")
        assert int(raw[bang + 1 : bang + 5], 16) == crc16_arc(raw[: bang + 1])


def test_crc_mismatch_is_reported_not_parsed(data_file):
    raw = bytearray(data_file("emucs_p1_1phase.txt"))
    raw[raw.index(b"234.6")] = ord("9")
    frame = framed(bytes(raw))
    assert frame.crc is CrcStatus.MISMATCH and frame.telegram is None


def test_legacy_telegram_without_crc():
    raw = b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.8.1(00123.456*kWh)\r\n0-0:96.14.0(0002)\r\n!\r\n"
    frame = framed(raw)
    assert frame.crc is CrcStatus.ABSENT
    assert frame.telegram.values[0].value == 123.456


def test_framer_events_for_noise_truncation_and_size(data_file):
    raw = data_file("emucs_p1_1phase.txt")
    events = P1Framer().feed(b"\x00\xffjunk" + raw[:100] + raw)
    kinds = [type(e) for e in events]
    assert kinds == [NoiseDiscarded, TelegramStarted, TelegramTruncated, TelegramFramed]
    assert events[0].count == 6 and events[2].count == 100
    framer = P1Framer(max_size=500)
    events = framer.feed(raw)
    assert TelegramOversized in [type(e) for e in events]
    assert not framer.in_telegram


def test_framer_handles_any_split(data_file):
    raw = data_file("emucs_p1_3phase.txt")
    for cut in range(0, len(raw), 7):
        framer = P1Framer()
        events = framer.feed(raw[:cut]) + framer.feed(raw[cut:])
        assert [type(e) for e in events if not isinstance(e, NoiseDiscarded)] == [TelegramStarted, TelegramFramed]


def test_a_bad_identification_line_fails_the_telegram():
    with pytest.raises(P1Error, match="identification line") as error:
        parse_telegram(b"FLU5 no slash")
    assert isinstance(error.value, ProtocolError)


@pytest.mark.parametrize(
    "body, where",
    [
        (b"/FLU5\\x\r\n\r\n1-0:1.8.1(000000.915*kWh)\r\nrubbish line\r\n", "line 4 skipped"),
        (b"/FLU5\\x\r\n\r\n1-0:1.8.1(0000x0.915*kWh)\r\n", "line 3 (1-0:1.8.1.255)"),
        (b"/FLU5\\x\r\n\r\n0-0:1.0.0(201312145552S)\r\n", "out of range"),
        (b"/FLU5\\x\r\n\r\n0-0:98.1.0(2)(1-0:1.6.0)(200501000000S)\r\n", "declares 2 entries"),
    ],
)
def test_a_bad_data_line_is_skipped_and_named(body, where):
    """Issue 15: a line that does not parse is skipped and named; the rest of the telegram is read
    (it once failed the whole telegram)."""
    telegram = parse_telegram(body)
    (skipped,) = telegram.skipped
    assert where in str(skipped)


def test_check_telegram_with_garbled_crc_line():
    frame = check_telegram(b"/FLU5\\x\r\n\r\n!ZZZZ\r\n")
    assert frame.crc is CrcStatus.MISMATCH and "CRC line" in str(frame.error)


def test_timestamps_are_the_meters_local_time():
    assert timestamp("200210035421W") == "2020-02-10T03:54:21"
    assert timestamp("200512145552S") == "2020-05-12T14:55:52"
    assert timestamp("200512145552") == "2020-05-12T14:55:52"


@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise_anything_but_events(data):
    framer = P1Framer()
    for start in range(0, len(data), 97):
        for event in framer.feed(data[start : start + 97]):
            if isinstance(event, TelegramFramed):
                assert event.telegram is None or event.crc is not CrcStatus.MISMATCH


@given(st.lists(st.tuples(st.sampled_from(["1-0:1.8.1", "1-0:32.7.0", "0-1:24.2.3"]),
                          st.integers(0, 10**6), st.integers(0, 3)), min_size=1, max_size=20))
def test_built_telegrams_round_trip(objects):
    lines = [f"{code}({raw / 10**digits:0.{digits}f}*kWh)" for code, raw, digits in objects]
    frame = framed(telegram_bytes("MLK5\\sim", lines))
    assert frame.crc is CrcStatus.OK
    got = [(v.obis, v.raw, v.scaler) for v in frame.telegram.values]
    assert got == [(f"{code}.255", raw, -digits) for code, raw, digits in objects]


def test_a_line_sent_again_unchanged_is_the_last_telegrams_object(data_file):
    """The framer keeps the objects of the meter's last telegram (a gateway holds 60 s of readings
    of every meter): a line sent again is the same Value, a changed line is parsed afresh, and every
    telegram reads exactly as without that memory."""
    text = data_file("emucs_p1_1phase.txt").decode("latin-1")
    header = text[1 : text.index("\r\n")]
    lines = text.split("\r\n\r\n", 1)[1].split("\r\n!")[0].split("\r\n")
    changed = [line.replace("(02.351*kW)", "(02.352*kW)") for line in lines]
    broken = [line.replace(".915*kWh", ".9x5*kWh") for line in changed]  # 1-0:1.8.1 does not parse
    framer = P1Framer()
    telegrams = [framer.feed(telegram_bytes(header, body))[-1].telegram for body in (lines, lines, changed, broken)]
    for body, telegram in zip((lines, lines, changed, broken), telegrams):
        raw = telegram_bytes(header, body)
        assert telegram == parse_telegram(raw[: raw.rindex(b"!")])
    first, again, moved, bad = telegrams
    assert [line.obis for line in bad.skipped] == ["1-0:1.8.1.255"] and not moved.skipped
    assert all(a is b for a, b in zip(first.values, again.values))
    power = next(i for i, value in enumerate(first.values) if value.obis == "1-0:1.4.0.255")
    assert moved.values[power].value == 2.352 and moved.values[power] is not again.values[power]
    assert [value is old for value, old in zip(moved.values, again.values)].count(False) == 1


@pytest.mark.parametrize("name", ["dsmr22_p1_gas_nextline_dsmr_parser.txt", "easymeter_q3d_p1_dsmr_parser.txt",
                                  "eon_hu_p1_dsmr_parser.txt", "fluvius_p1_no_time_dsmr_parser.txt",
                                  "landisgyr_e350_p1_dsmr4_basjes.txt", "nwa_warmtelink_p1_crc3_dsmr_parser.txt"])
def test_real_telegrams_sent_twice_read_as_without_the_memory(data_file, name):
    """Published captures (tests/data/README.md), each fed twice through one framer: the second
    reading, made from the remembered lines, equals a fresh parse, line continuations included."""
    raw = data_file(name)
    start, bang = raw.index(b"/"), raw.rindex(b"!")
    telegram = raw[start : raw.index(b"\n", bang) + 1]
    framer = P1Framer()
    first = [e for e in framer.feed(telegram) if isinstance(e, TelegramFramed)]
    again = [e for e in framer.feed(telegram) if isinstance(e, TelegramFramed)]
    fresh = parse_telegram(telegram[: telegram.rindex(b"!")])
    assert first[0].telegram == again[0].telegram == fresh
    assert fresh.values and all(a is b for a, b in zip(first[0].telegram.values, again[0].telegram.values))
