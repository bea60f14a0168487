"""The MeterExtension #1 wire format (seed 000 ch. 3.5.1, 5): unit re-expression and meter blocks."""

from __future__ import annotations

import re

import pytest

from meterlink.protocols.p1 import P1Framer, TelegramFramed
from meterlink.protocols.readings import ProfileRow, Reading, Value
from meterlink.service.meterextension import (
    COMMANDS,
    NO_UNIT,
    OTHER_UNIT,
    READ_COMMANDS,
    UNIT_TEXTS,
    Expressed,
    MeterReadingAnswer,
    WifiStatusAnswer,
    express,
    meter_block,
)

SEED_COMMANDS = {
    "meter_reading", "meter_setkey", "wifi_config", "wifi_status", "system_status", "get_ip_info",
    "system_restart", "meter_factreset", "firmware_update", "download_file", "request_post",
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # P1 gives unit text and decimals; the MeterExtension has only COSEM codes, without kilo.
        (Value("1-0:1.8.2.255", 1.955, "kWh", 1955, -3), Expressed("1955", 0, 30)),
        (Value("1-0:1.4.0.255", 2.351, "kW", 2351, -3), Expressed("2351", 0, 27)),
        (Value("1-0:3.8.0.255", 12.5, "kvarh", 125, -1), Expressed("125", 2, 32)),
        (Value("1-0:3.7.0.255", 0.25, "kvar", 25, -2), Expressed("25", 1, 29)),
        (Value("1-0:9.8.0.255", 1.0, "kVAh", 1, 0), Expressed("1", 3, 31)),
        (Value("1-0:9.7.0.255", 1.0, "kVA", 1, 0), Expressed("1", 3, 28)),
        (Value("1-0:32.7.0.255", 234.6, "V", 2346, -1), Expressed("2346", -1, 35)),
        (Value("1-0:31.7.0.255", 0.0, "A", 0, -2), Expressed("0", -2, 33)),
        (Value("1-0:14.7.0.255", 50.01, "Hz", 5001, -2), Expressed("5001", -2, 44)),
        (Value("0-1:24.2.3.255", 112.384, "m3", 112384, -3), Expressed("112384", -3, 13)),
        # A DLMS link carries the COSEM code itself: used as is, no shift.
        (Value("1-0:1.8.0.255", 9108, "Wh", 9108, 0, 30), Expressed("9108", 0, 30)),
        (Value("1-0:32.7.0.255", 230.8, "V", 2308, -1, 35), Expressed("2308", -1, 35)),
        # Text keeps its string; counts without unit get "no unit".
        (Value("0-0:96.14.0.255", "0001"), Expressed("0001", 0, NO_UNIT)),
        (Value("0-0:96.13.0.255", ""), Expressed("", 0, NO_UNIT)),
        (Value("0-0:96.3.10.255", 1), Expressed("1", 0, NO_UNIT)),
        # A number without raw/scaler is split exactly, not through binary floating point.
        (Value("1-0:32.7.0.255", 230.8, "V"), Expressed("2308", -1, 35)),
        (Value("1-0:1.8.0.255", 5, "kWh"), Expressed("5", 3, 30)),
        # A float that is not finite: the spelling every other reading uses, not Python's "nan".
        (Value("1-0:1.7.0.255", float("nan"), "W"), Expressed("NaN", 0, NO_UNIT)),
        (Value("1-0:1.7.0.255", float("-inf"), "W"), Expressed("-Infinity", 0, NO_UNIT)),
        # A unit the table does not know is still sent, as COSEM's "other unit".
        (Value("1-0:99.7.0.255", 7, "furlong", 7, 0), Expressed("7", 0, OTHER_UNIT)),
    ],
)
def test_express(value: Value, expected: Expressed) -> None:
    assert express(value) == expected


def test_values_the_meterextension_cannot_carry() -> None:
    profile = Value("0-0:98.1.0.255", (ProfileRow(3.695, "2020-04-23T19:25:38", None, "kW", 3695, -3),))
    assert express(profile) is None
    assert express(Value("0-0:1.0.0.255", None)) is None


def test_unit_table_covers_the_p1_fixtures(data_file) -> None:
    for name in ("emucs_p1_1phase.txt", "emucs_p1_3phase.txt"):
        units = {match.decode() for match in re.findall(rb"\*([^)]+)\)", data_file(name))}
        assert units and units <= set(UNIT_TEXTS), units - set(UNIT_TEXTS)


def p1_reading(data_file, received_at: float) -> Reading:
    events = P1Framer().feed(data_file("emucs_p1_1phase.txt"))
    framed = next(event for event in events if isinstance(event, TelegramFramed))
    return framed.telegram.to_reading(received_at)


def test_meter_block_from_a_p1_reading(data_file) -> None:
    reading = p1_reading(data_file, 1700000000.75)
    block = meter_block("p1", [reading])
    data = {item.OBIS: item for item in block.data}
    assert block.meterid == "1SAG1100000231"
    energy = data["1-0:1.8.2.255"]
    assert (energy.scale, energy.unit, [e.model_dump() for e in energy.entry]) == (
        "0", "30", [{"val": "1955", "ts": "1700000000"}])
    assert (data["1-0:32.7.0.255"].scale, data["1-0:32.7.0.255"].unit) == ("-1", "35")
    assert data["0-0:96.14.0.255"].entry[0].val == "0001"
    # Profile values have no place in an entry; every other value of the telegram is there.
    assert "0-0:98.1.0.255" not in data
    assert len(data) == len(reading.values) - 1


def reading_at(at: float, watts: int, unit: str = "W", link: str = "mbus", meter: str | None = "M1") -> Reading:
    return Reading(meter, link, at, None, (Value("1-0:1.7.0.255", watts, unit, watts, 0),
                                           Value("0-0:96.14.0.255", str(watts))))


def test_entries_come_from_the_window_oldest_first() -> None:
    window = [reading_at(100.0, 1), reading_at(101.0, 2), reading_at(102.9, 3)]
    block = meter_block("mbus", window)
    power = block.data[0]
    assert [(e.val, e.ts) for e in power.entry] == [("1", "100"), ("2", "101"), ("3", "102")]
    assert [e.val for e in block.data[1].entry] == ["1", "2", "3"]


def test_entries_with_another_scale_are_left_out() -> None:
    # 5 kW is scale 3 in Wh; read with the latest reading's scale 0 it would say 5 W.
    window = [reading_at(100.0, 5, "kW"), reading_at(101.0, 7)]
    power = meter_block("mbus", window).data[0]
    assert (power.scale, power.unit, [e.val for e in power.entry]) == ("0", "27", ["7"])


def test_the_link_name_stands_in_for_a_missing_id() -> None:
    latest = reading_at(50.0, 9, meter=None)
    block = meter_block("mbus", [latest])
    assert block.meterid == "mbus"
    assert [(e.val, e.ts) for e in block.data[0].entry] == [("9", "50")]


def test_commands_are_those_of_the_seed() -> None:
    # wifi_scan is meterlink's: seed 000 ch. 3.1.1 names the look-up of networks but no command for it.
    assert set(COMMANDS) == SEED_COMMANDS | {"wifi_scan"}
    assert READ_COMMANDS == {"meter_reading", "wifi_status", "wifi_scan", "system_status", "get_ip_info"}


def test_answers_use_the_seed_names_with_result_and_id_last() -> None:
    answer = WifiStatusAnswer(ssid="home", rssi="-63", ap_mac="02:00:00:00:00:01", IP="192.0.2.2", backend="simulated",
                              state="Client mode", window_left=0, mode="sta")
    assert list(answer.to_json()) == ["ssid", "rssi", "ap-mac", "IP", "backend", "state", "window_left", "mode", "result"]
    with_id = MeterReadingAnswer(meter=[]).model_copy(update={"id": "123"}).to_json()
    assert with_id == {"meter": [], "result": "OK", "id": "123"}
    assert list(with_id) == ["meter", "result", "id"]
