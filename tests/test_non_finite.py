"""NaN and infinity from a meter (issue 12, item 2).

A-XDR float32/float64 carry NaN and ±infinity, which JSON has no words for: once, one such value
made /api/v1/readings/latest and /window answer 500 for every meter, and SSE and `decode` printed
`NaN`. Everywhere a reading is shown it is now `"value": null` with `"raw": "NaN"`, `"Infinity"`
or `"-Infinity"`. Every check here parses or dumps JSON strictly (no NaN allowed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from meterlink.cli import main
from meterlink.protocols.dlms.axdr import Data, DataTag, encode_data, octet_string, structure
from meterlink.protocols.dlms.objects import AttributeRef, ScalerUnit, attribute_value
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys, encrypt
from meterlink.protocols.mbus import CField, ADDRESS_BROADCAST_NO_REPLY, split_segments
from meterlink.protocols.obis import Obis
from meterlink.protocols.readings import ProfileRow, Reading, Value
from meterlink.service.api import ReadingOut, reading_events
from meterlink.service.mqtt import state_of
from meterlink.simulators.kaifa import DEMO_KEY, SYSTEM_TITLE
from test_api import NOW, api_client, bearer, make_rig

SPELLED = {"1-0:1.7.0.255": "NaN", "1-0:2.7.0.255": "Infinity", "1-0:3.7.0.255": "-Infinity"}


def strict(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def float_register(obis: str, tag: DataTag, value: float) -> Data:
    return structure(octet_string(Obis.parse(obis).to_bytes()), Data(tag, value),
                     structure(Data(DataTag.INTEGER, 0), Data(DataTag.ENUM, 27)))


def notification() -> bytes:
    """A data-notification as a push meter sends it, with a float NaN and both infinities."""
    body = structure(
        octet_string(Obis.parse("0-0:96.1.0.255").to_bytes()), octet_string(b"1KFM0200999999"),
        float_register("1-0:1.7.0.255", DataTag.FLOAT32, math.nan),
        float_register("1-0:2.7.0.255", DataTag.FLOAT64, math.inf),
        float_register("1-0:3.7.0.255", DataTag.FLOAT64, -math.inf),
        float_register("1-0:4.7.0.255", DataTag.FLOAT32, 1.5),
    )
    return b"\x0f\x00\x00\x00\x01\x00" + encode_data(body)


def mbus_frames() -> bytes:
    apdu = encrypt(notification(), SYSTEM_TITLE, 0x2001, DEMO_KEY, 0x21)
    return b"".join(split_segments(apdu, CField.SND_UD, ADDRESS_BROADCAST_NO_REPLY))


def pushed_reading() -> Reading:
    result = decode_push(notification(), [], None, "mbus", NOW)
    assert result.outcome is Outcome.DECODED
    return result.reading


def assert_spelled(reading: dict) -> None:
    values = {value["obis"]: value for value in reading["values"]}
    for obis, spelling in SPELLED.items():
        assert values[obis]["value"] is None and values[obis]["raw"] == spelling, values[obis]
    assert values["1-0:4.7.0.255"]["value"] == 1.5 and "raw" not in values["1-0:4.7.0.255"]


@pytest.mark.parametrize(("number", "spelling"), [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")])
def test_a_value_and_a_profile_row(number, spelling):
    assert Value("1-0:1.7.0.255", number, "kW").to_json() == {"obis": "1-0:1.7.0.255", "value": None, "unit": "kW", "raw": spelling}
    row = Value("0-0:98.1.0.255", (ProfileRow(number, "2026-11-01T00:00:00", unit="kW"),)).to_json()
    assert row["value"] == [{"time": "2026-11-01T00:00:00", "value": None, "unit": "kW", "raw": spelling}]
    json.dumps(row, allow_nan=False)


def test_a_push_telegram_reads_as_null_with_its_spelling():
    reading = pushed_reading().to_json()
    json.dumps(reading, allow_nan=False)
    assert_spelled(reading)


@pytest.mark.parametrize("scaler_unit", [None, ScalerUnit(-3, 27)], ids=["unscaled", "register"])
@pytest.mark.parametrize(("number", "spelling"), [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")])
def test_a_dlms_get_result(scaler_unit, number, spelling):
    ref = AttributeRef.parse("3:1-0:1.7.0.255:2")
    shown = attribute_value(ref, Data(DataTag.FLOAT64, number), scaler_unit).to_json()
    assert shown["value"] is None and shown["raw"] == spelling
    json.dumps(shown, allow_nan=False)


def test_decode_mbus_prints_json(tmp_path, capsys):
    capture = tmp_path / "nan.bin"
    capture.write_bytes(mbus_frames())
    assert main(["decode", "mbus", "--key", DEMO_KEY.hex(), str(capture)]) == 0
    out, _ = capsys.readouterr()
    assert_spelled(strict(out))


@pytest.mark.parametrize("path", ["/api/v1/readings/latest", "/api/v1/readings/window"])
async def test_the_api_answers_200_with_json(tmp_path: Path, path: str) -> None:
    rig = make_rig(tmp_path)
    rig.hub.publish(pushed_reading())
    async with api_client(rig.adapter) as client:
        response = await client.get(path, headers=bearer())
    assert response.status_code == 200
    answer = strict(response.content)
    (reading,) = answer if path.endswith("latest") else answer[0]["readings"]
    assert_spelled(reading)
    ReadingOut.model_validate(reading)  # as /openapi.json describes it


async def test_the_stream_sends_json(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    events = reading_events(rig.adapter)
    assert await anext(events) == ": subscribed\n\n"
    rig.hub.publish(pushed_reading())
    event = await anext(events)
    await events.aclose()
    assert event.startswith("data: ") and event.endswith("\n\n")
    assert_spelled(strict(event.removeprefix("data: ")))


def test_mqtt_state_and_reading_payloads_are_json():
    reading = pushed_reading()
    state = state_of(reading)
    json.dumps(state, allow_nan=False)
    assert state["1-0_1_7_0"] is state["1-0_2_7_0"] is state["1-0_3_7_0"] is None and state["1-0_4_7_0"] == 1.5
    json.dumps(reading.to_json(), allow_nan=False)
