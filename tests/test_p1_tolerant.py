"""Tolerant P1 (issue 15 item 1): every line variant real meters send is read, a line that does not
parse is skipped, named and counted (bad_lines) while the rest of the telegram is published, and a
CRC mismatch still rejects the whole telegram.

Expected values come from the sources' own assertions (dsmr_parser's tests, MIT; nielsbasjes/
dsmr-tools' tests, Apache-2.0) and, where installed, from dsmr_parser itself; see tests/data/README.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterlink.cli import main
from meterlink.machines.base import Dropped, Noted, Publish
from meterlink.machines.p1 import P1Reader
from meterlink.protocols.crc import crc16_arc
from meterlink.protocols.p1 import CrcStatus, P1Framer, P1Telegram, SkippedLine, TelegramFramed

DATA = Path(__file__).parent / "data"


def framed(raw: bytes) -> TelegramFramed:
    (event,) = [e for e in P1Framer().feed(raw) if isinstance(e, TelegramFramed)]
    return event


def telegram_of(name: str) -> P1Telegram:
    event = framed((DATA / name).read_bytes())
    assert event.error is None and event.telegram is not None
    return event.telegram


def value(telegram: P1Telegram, obis: str):
    (found,) = [v for v in telegram.values if v.obis == obis]
    return found


def with_crc(body: bytes) -> bytes:
    """`body` up to and including `!`, with its CRC line."""
    return body + f"{crc16_arc(body):04X}\r\n".encode("ascii")


def body_of(raw: bytes) -> bytes:
    return raw[: raw.rindex(b"!") + 1]


# -- each variant, read ---------------------------------------------------------------------------


def test_dsmr22_gas_value_on_the_next_line_and_a_12_digit_equipment_id():
    """dsmr_parser test_parse_v2_2: gas 1.001 m3 (GAS_METER_READING), equipment id '000000000000'."""
    telegram = telegram_of("dsmr22_p1_gas_nextline_dsmr_parser.txt")
    assert telegram.skipped == ()
    gas = value(telegram, "0-1:24.3.0.255")
    assert (gas.value, gas.unit, gas.raw, gas.scaler) == (1.001, "m3", 1001, -3)
    assert gas.time == "2016-11-07T19:00:00"  # (161107190000): DSMR 2.2 sends no season letter
    assert value(telegram, "0-1:96.1.0.255").value == "000000000000"
    assert value(telegram, "0-1:24.4.0.255").value == 1  # the line after the gas value is read too
    assert value(telegram, "1-0:1.8.1.255").value == 1.001
    assert telegram.meter_id == "00000000000000"


def test_dsmr22_needs_legacy_and_is_published_by_the_reader():
    reader = P1Reader(legacy=True)
    for event in P1Framer().feed((DATA / "dsmr22_p1_gas_nextline_dsmr_parser.txt").read_bytes()):
        reader.handle(event, 1.0)
    (publish,) = reader.take_actions()
    assert isinstance(publish, Publish) and publish.reading.value_of("0-1:24.3.0.255").value == 1.001


def test_placeholder_time_is_no_time_and_the_value_is_read():
    """dsmr_parser test_parse_fluvius (to_json of TELEGRAM_FLUVIUS_V171_ALT): the first month's peak
    0.0 kW 'occurred' None; the others 1.862, 4.229, 4.927 kW with their times."""
    telegram = telegram_of("fluvius_p1_no_time_dsmr_parser.txt")
    assert telegram.skipped == ()
    rows = value(telegram, "0-0:98.1.0.255").value
    assert [(r.value, r.unit) for r in rows] == [(0.0, "kW"), (1.862, "kW"), (4.229, "kW"), (4.927, "kW")]
    assert rows[0].time is None and rows[0].entry_time == "2023-08-01T00:00:00"
    assert rows[0].to_json()["time"] is None  # "time": null, as the issue asks: the meter said it has none
    assert rows[1].time == "2023-08-31T18:15:00"
    assert telegram.captured_at == "2023-11-02T12:15:48"  # 231102121548W; dsmr_parser: 11:15:48 UTC


def test_placeholder_time_of_the_telegram_is_captured_at_none():
    """The same capture with its clock sending the placeholder (as a meter does that has no time)."""
    raw = (DATA / "fluvius_p1_no_time_dsmr_parser.txt").read_bytes()
    body = body_of(raw).replace(b"0-0:1.0.0(231102121548W)", b"0-0:1.0.0(632525252525W)")
    telegram = framed(with_crc(body)).telegram
    assert telegram.skipped == () and telegram.captured_at is None
    assert telegram.to_reading(None).to_json()["captured_at"] is None
    assert value(telegram, "1-0:1.8.1.255").value == 301.548


def test_placeholder_time_of_a_value_is_time_null():
    """dsmr_parser issue 120 and its test_gas_timestamp_invalid: `0-1:24.2.1(632525252525S)(00000.000)`."""
    raw = (DATA / "fluvius_p1_no_time_dsmr_parser.txt").read_bytes()
    body = body_of(raw).replace(b"0-2:24.2.1(231102121532W)(00008.579*m3)", b"0-2:24.2.1(632525252525S)(00000.000)")
    gas = value(framed(with_crc(body)).telegram, "0-2:24.2.1.255")
    assert (gas.value, gas.time) == ("00000.000", None)
    assert gas.to_json()["time"] is None
    assert "time" not in value(framed(with_crc(body)).telegram, "1-0:1.8.1.255").to_json()  # a value sent without one


def test_landis_gyr_e350_dsmr4_as_sent():
    """nielsbasjes/dsmr-tools testParseRealTelegramWithGas: 2019-09-05 21:40:03, +A T1 3235.689 kWh,
    gas 1091.352 m3 at 21:00:00, equipment id E0031003239456716."""
    telegram = telegram_of("landisgyr_e350_p1_dsmr4_basjes.txt")
    assert telegram.skipped == () and telegram.captured_at == "2019-09-05T21:40:03"
    assert telegram.meter_id == "E0031003239456716"
    assert value(telegram, "1-0:1.8.1.255").value == 3235.689
    gas = value(telegram, "0-1:24.2.1.255")
    assert (gas.value, gas.unit, gas.time) == (1091.352, "m3", "2019-09-05T21:00:00")


def test_lowercase_season_letters_are_read_as_s_and_w():
    """No published capture with lowercase season letters was found: the L+G E350 capture above with
    its letters lowercased (CRC made right) must read the same values."""
    raw = (DATA / "landisgyr_e350_p1_dsmr4_basjes.txt").read_bytes()
    body = body_of(raw).replace(b"214003S)", b"214003s)").replace(b"210000S)", b"210000s)")
    body = body.replace(b"065912W)", b"065912w)")
    assert body.count(b"s)") >= 2 and body != body_of(raw)
    telegram = framed(with_crc(body)).telegram
    original = telegram_of("landisgyr_e350_p1_dsmr4_basjes.txt")
    assert telegram.skipped == () and telegram.values == original.values


def test_eon_hungary_vendor_buffer_is_the_one_line_skipped():
    """dsmr_parser test_parse_v5_eon_hungary: +A 173.640 kWh, -A 627.177 kWh, power factor 4.556,
    50.00 Hz, 2023-07-24 15:07:30; its 0-0:98.1.0 (a time then 19 values, no count and no capture
    objects) names no column, so that line is skipped and named, never the telegram."""
    telegram = telegram_of("eon_hu_p1_dsmr_parser.txt")
    (skipped,) = telegram.skipped
    assert (skipped.line, skipped.obis) == (46, "0-0:98.1.0.255")
    assert skipped.text.startswith("0-0:98.1.0(230701000000S)(000040.777*kWh)") and len(skipped.text) == 60
    assert telegram.captured_at == "2023-07-24T15:07:30"
    assert value(telegram, "1-0:1.8.0.255").value == 173.64
    assert value(telegram, "1-0:2.8.0.255").value == 627.177
    assert value(telegram, "1-0:13.7.0.255").value == "4.556"  # no unit: kept as sent
    assert value(telegram, "1-0:14.7.0.255").value == 50.0
    assert value(telegram, "0-0:96.13.0.255").value == ""  # the line after the skipped one is read


def test_easymeter_q3d_d0_codes_with_star_255():
    """dsmr_parser example TELEGRAM_ESY5Q3DB1024_V304 (its Q3D spec): +A 52185.7825309 kWh,
    -A 19949.3221493 kWh, identifier 0272031312565 and 1ESY1313002565. The COM-1 gateway's two
    lines after `!` are noise to the framer."""
    events = P1Framer().feed((DATA / "easymeter_q3d_p1_dsmr_parser.txt").read_bytes())
    (event,) = [e for e in events if isinstance(e, TelegramFramed)]
    assert event.crc is CrcStatus.ABSENT and event.telegram.skipped == ()
    telegram = event.telegram
    plus_a = value(telegram, "1-0:1.8.0.255")
    assert (plus_a.value, plus_a.unit, plus_a.raw, plus_a.scaler) == (52185.7825309, "kWh", 521857825309, -7)
    assert value(telegram, "1-0:2.8.0.255").value == 19949.3221493
    assert value(telegram, "1-0:0.0.0.255").value == "0272031312565"
    assert value(telegram, "0-0:96.1.255.255").value == "1ESY1313002565"
    assert value(telegram, "1-0:1.7.0.255").value == 2124.86


def test_three_digit_crc_is_accepted_when_its_value_matches():
    """dsmr_parser test_checksum_missing_crc_byte: the NWA heat interface's `!B9F`; 240.860 GJ."""
    event = framed((DATA / "nwa_warmtelink_p1_crc3_dsmr_parser.txt").read_bytes())
    assert event.crc is CrcStatus.OK and event.telegram.skipped == ()
    heat = value(event.telegram, "0-1:24.2.1.255")
    assert (heat.value, heat.unit, heat.time) == (240.86, "GJ", "2026-02-15T20:05:23")
    assert event.telegram.header == "NWA-WARMTELINK"


def test_a_three_digit_crc_that_does_not_match_rejects_the_telegram():
    raw = (DATA / "nwa_warmtelink_p1_crc3_dsmr_parser.txt").read_bytes().replace(b"!B9F", b"!B9E")
    event = framed(raw)
    assert event.crc is CrcStatus.MISMATCH and event.telegram is None


CAPTURES = sorted(p.name for p in DATA.glob("*_p1_*.txt") if p.name != "easymeter_q3d_p1_dsmr_parser.txt")


@pytest.mark.parametrize("name", [n for n in CAPTURES if b"!\r\n" not in (DATA / n).read_bytes()])
def test_a_crc_mismatch_still_rejects_the_whole_telegram(name):
    raw = (DATA / name).read_bytes()
    at = raw.index(b"*kWh" if b"*kWh" in raw else b"*GJ") - 1
    damaged = raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]
    event = framed(damaged)
    assert event.crc is CrcStatus.MISMATCH and event.telegram is None
    reader = P1Reader()
    for e in P1Framer().feed(damaged):
        reader.handle(e, 1.0)
    assert [type(a) for a in reader.take_actions()] == [Dropped] and reader.counters["crc_error"] == 1


# -- bad lines: skipped, counted, named ------------------------------------------------------------

GOOD = (DATA / "fluvius_p1_no_time_dsmr_parser.txt").read_bytes()


def with_bad_line(raw: bytes, after: bytes, line: bytes) -> bytes:
    body = body_of(raw)
    at = body.index(after) + len(after)
    return with_crc(body[:at] + line + b"\r\n" + body[at:])


def test_a_bad_line_is_skipped_named_and_the_lines_around_it_read():
    raw = with_bad_line(GOOD, b"1-0:1.8.2(000270.014*kWh)\r\n", b"1-0:2.8.1(0000x0.005*kWh)")
    telegram = framed(raw).telegram
    (skipped,) = telegram.skipped
    assert skipped == SkippedLine(8, "1-0:2.8.1.255", "1-0:2.8.1(0000x0.005*kWh)", "'0000x0.005' is not a decimal number")
    assert str(skipped) == "line 8 (1-0:2.8.1.255) skipped: '0000x0.005' is not a decimal number: '1-0:2.8.1(0000x0.005*kWh)'"
    assert value(telegram, "1-0:1.8.2.255").value == 270.014  # before
    assert [v.value for v in telegram.values if v.obis == "1-0:2.8.1.255"] == [0.005]  # after
    assert len(telegram.values) == len(telegram_of("fluvius_p1_no_time_dsmr_parser.txt").values)


def test_a_junk_line_without_obis_code_is_skipped_with_none():
    telegram = framed(with_bad_line(GOOD, b"0-0:96.14.0(0001)\r\n", b"rubbish \xff line")).telegram
    (skipped,) = telegram.skipped
    assert skipped.obis is None and skipped.line == 11 and skipped.text == "rubbish \xff line"


def test_the_reader_publishes_a_telegram_with_one_bad_line_and_counts_it():
    raw = with_bad_line(GOOD, b"1-0:1.8.2(000270.014*kWh)\r\n", b"1-0:2.8.1(0000x0.005*kWh)")
    reader = P1Reader()
    for event in P1Framer().feed(raw):
        reader.handle(event, 1.0)
    actions = reader.take_actions()
    assert [type(a) for a in actions] == [Publish, Noted]
    assert actions[1].cause == "bad_lines" and actions[1].detail.startswith("line 8 (1-0:2.8.1.255) skipped")
    assert reader.counters["bad_lines"] == 1 and reader.counters["telegrams"] == 1
    assert "unparseable" not in reader.counters and reader.state_name == "hunting"
    assert actions[0].reading.value_of("1-0:1.8.2.255").value == 270.014


def test_every_bad_line_counts_once():
    raw = with_bad_line(GOOD, b"0-0:96.14.0(0001)\r\n", b"1-0:1.4.0(x)(y)(z)\r\n1-0:99.9.9(((")
    reader = P1Reader()
    for event in P1Framer().feed(raw):
        reader.handle(event, 1.0)
    notes = [a for a in reader.take_actions() if isinstance(a, Noted)]
    assert [n.detail.split(" skipped")[0] for n in notes] == ["line 11 (1-0:1.4.0.255)", "line 12 (1-0:99.9.9.255)"]
    assert reader.counters["bad_lines"] == 2


def test_only_a_bad_identification_line_fails_the_telegram():
    raw = with_crc(b"/12\r\n\r\n1-0:1.8.1(000001.000*kWh)\r\n!")
    event = framed(raw)
    assert event.crc is CrcStatus.OK and event.telegram is None and "identification line" in str(event.error)
    reader = P1Reader()
    for e in P1Framer().feed(raw):
        reader.handle(e, 1.0)
    assert [a.cause for a in reader.take_actions()] == ["unparseable"]


def test_decode_p1_names_skipped_lines_on_stderr_and_prints_the_reading(tmp_path, capsys):
    capture = tmp_path / "capture.txt"
    capture.write_bytes((DATA / "eon_hu_p1_dsmr_parser.txt").read_bytes() + GOOD)
    assert main(["decode", "p1", str(capture)]) == 0
    out, err = capsys.readouterr()
    readings = [json.loads(line) for line in out.splitlines()]
    assert [r["captured_at"] for r in readings] == ["2023-07-24T15:07:30", "2023-11-02T12:15:48"]
    assert err.splitlines() == [
        "meterlink: telegram 1: line 46 (0-0:98.1.0.255) skipped: a list of 20 fields in no known layout: "
        "'0-0:98.1.0(230701000000S)(000040.777*kWh)(000008.950*kWh)(00'"]


def test_decode_p1_legacy_reads_the_dsmr22_and_easymeter_captures(capsys):
    for name in ("dsmr22_p1_gas_nextline_dsmr_parser.txt", "easymeter_q3d_p1_dsmr_parser.txt"):
        assert main(["decode", "p1", "--legacy", str(DATA / name)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and err == ""


# -- cross-check with dsmr_parser, an independent decoder -------------------------------------------


def test_dsmr_parser_reads_the_same_values():
    dsmr_parser = pytest.importorskip("dsmr_parser")
    from dsmr_parser import telegram_specifications as specs
    from dsmr_parser.parsers import TelegramParser

    def parse(name: str, spec):
        return TelegramParser(spec).parse((DATA / name).read_bytes().decode("latin-1"), throw_ex=True)

    assert dsmr_parser is not None
    v22 = parse("dsmr22_p1_gas_nextline_dsmr_parser.txt", specs.V2_2)
    ours = telegram_of("dsmr22_p1_gas_nextline_dsmr_parser.txt")
    assert v22.GAS_METER_READING.value == Decimal(str(value(ours, "0-1:24.3.0.255").value))
    # dsmr_parser takes the meter's local time as Europe/Amsterdam and states it in UTC
    amsterdam = v22.GAS_METER_READING.datetime.astimezone(ZoneInfo("Europe/Amsterdam")).replace(tzinfo=None)
    assert amsterdam == datetime.fromisoformat(value(ours, "0-1:24.3.0.255").time)

    fluvius = parse("fluvius_p1_no_time_dsmr_parser.txt", specs.BELGIUM_FLUVIUS)
    peaks = fluvius.BELGIUM_MAXIMUM_DEMAND_13_MONTHS
    rows = value(telegram_of("fluvius_p1_no_time_dsmr_parser.txt"), "0-0:98.1.0.255").value
    assert [p.value for p in peaks] == [Decimal(str(r.value)) for r in rows]
    assert [p.occurred is None for p in peaks] == [r.time is None for r in rows]

    eon = parse("eon_hu_p1_dsmr_parser.txt", specs.EON_HUNGARY)
    ours = telegram_of("eon_hu_p1_dsmr_parser.txt")
    assert eon.ELECTRICITY_IMPORTED_TOTAL.value == Decimal(str(value(ours, "1-0:1.8.0.255").value))
    assert eon.INSTANTANEOUS_POWER_FACTOR_TOTAL.value == Decimal(value(ours, "1-0:13.7.0.255").value)

    q3d = parse("easymeter_q3d_p1_dsmr_parser.txt", specs.Q3D)
    ours = telegram_of("easymeter_q3d_p1_dsmr_parser.txt")
    assert q3d.ELECTRICITY_IMPORTED_TOTAL.value == Decimal("52185.7825309") == Decimal(str(value(ours, "1-0:1.8.0.255").value))

    e350 = parse("landisgyr_e350_p1_dsmr4_basjes.txt", specs.V4)
    ours = telegram_of("landisgyr_e350_p1_dsmr4_basjes.txt")
    assert e350.HOURLY_GAS_METER_READING.value == Decimal(str(value(ours, "0-1:24.2.1.255").value))
