"""The HDLC push commands as a user runs them (real processes over TCP and a pty): read hdlc-push
against simulate hdlc-push, and decode hdlc on real captures others published (expected values from
each file, never from meterlink), on a client's session and on broken input."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from meterlink import cli
from meterlink.simulators.hdlc_push import Layout
from meterlink.simulators.kaifa import DEMO_KEY

from kamstrup_session import SEED
from processes import meterlink, start_simulator, stop
from test_mbus_cli import assert_no_key, readings

DATA = Path(__file__).parent / "data"
DEMO = DEMO_KEY.hex().upper()
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"


def capture(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


# -- simulate hdlc-push + read hdlc-push ---------------------------------------------------------


def test_read_an_encrypted_meter_in_blocks_over_tcp():
    simulator, url = start_simulator("hdlc-push", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5", "--key", DEMO,
                                     "--auth-key", AUTH_KEY, "--blocks", "--segmented")
    try:
        assert url.startswith("tcp://127.0.0.1:") and not url.endswith(":0")
        result = meterlink("read", "hdlc-push", "--port", url, "--key", DEMO, "--auth-key", AUTH_KEY, "--count", "3",
                           "--push-interval", "0.5", "-v")
        again = meterlink("read", "hdlc-push", "--port", url, "--key", DEMO, "--auth-key", AUTH_KEY, "--count", "1",
                          "--push-interval", "0.5")
        assert simulator.poll() is None
    finally:
        err = stop(simulator)
    assert result.returncode == 0, result.stderr
    lines = readings(result)
    assert len(lines) == 3
    for line in lines:
        assert line["link"] == line["kind"] == "hdlc-push" and line["meter_id"] == "1LGZ0301999999"
        assert isinstance(line["received_at"], float) and line["captured_at"]
        volts = [v for v in line["values"] if v["obis"] == "1-0:32.7.0.255"][0]
        assert volts["unit"] == "V" and volts["scaler"] == -1 and volts["unit_code"] == 35
    assert again.returncode == 0 and len(readings(again)) == 1
    assert b"Traceback" not in err and b"LinkLost" not in err
    for key in (DEMO, AUTH_KEY):
        assert_no_key(key, result.stdout, result.stderr, err)


@pytest.mark.parametrize("layout", [layout.value for layout in Layout])
def test_read_a_plain_meter_of_each_list_style_over_a_pty(layout):
    simulator, path = start_simulator("hdlc-push", "--pty", "--interval", "0.5", "--segmented", "--layout", layout)
    try:
        assert path.startswith("/dev/pts/")
        result = meterlink("read", "hdlc-push", "--port", path, "--count", "2", "--push-interval", "0.5")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    lines = readings(result)
    assert [line["link"] for line in lines] == ["hdlc-push"] * 2
    assert all(line["meter_id"] == "1LGZ0301999999" for line in lines), layout


def test_read_gives_up_after_max_failures_with_the_wrong_key():
    simulator, url = start_simulator("hdlc-push", "--listen", "tcp://127.0.0.1:0", "--interval", "0.3", "--key", DEMO)
    wrong = "000102030405060708090A0B0C0D0E0F"
    try:
        result = meterlink("read", "hdlc-push", "--port", url, "--key", wrong, "--max-failures", "2", "--push-interval", "0.3")
    finally:
        stop(simulator)
    assert result.returncode == 1 and result.stdout == b""
    *_, last = result.stderr.decode().splitlines()
    assert last.startswith("meterlink: giving up after 2 telegrams in a row that failed: wrong_key")
    assert_no_key(wrong, result.stderr)


def test_the_cli_knows_the_simulators_layouts_and_the_links_push_interval():
    from meterlink.actors.hdlc_push import HDLC_PUSH_INTERVAL

    assert cli.LAYOUTS == tuple(layout.value for layout in Layout)
    assert cli.HDLC_PUSH_INTERVAL == HDLC_PUSH_INTERVAL


# -- decode hdlc on real captures -----------------------------------------------------------------


def decode(name: str, *keys: str) -> subprocess.CompletedProcess:
    found = capture(name)
    options = []
    if keys:
        options = ["--key", keys[0]] + (["--auth-key", keys[1]] if len(keys) > 1 else [])
    return meterlink("decode", "hdlc", *options, "-", stdin=found["hex_or_text"].encode())


def numbers(values: list) -> list[int]:
    """The whole numbers among a notification's top-level elements, in order."""
    return [value for value in values if isinstance(value, int) and not isinstance(value, bool)]


def raw_numbers(reading: dict) -> list[int]:
    return numbers([value.get("raw", value["value"]) for value in reading["values"]])


def local(stated: str) -> str:
    return datetime.fromisoformat(stated).replace(tzinfo=None).isoformat()


CAPTURES = {
    # name: the key of the time the file states
    "iskra_hdlc_kaerntennetz_gh787": "notification_datetime_dlms_cosem",
    "landisgyr_hdlc_netzburgenland_gh501": None,
    "iskra_hdlc_wienernetze_rddl": None,
    "kamstrup_han_gh216-1": "datetime",
    "kamstrup_han_gh741-1": "datetime",
    "iskra_am550_hdlc_shrdzm": "datetime",
    "landisgyr_hdlc_gbt_nrd": "notification_datetime_dlms_cosem",
}


def published_keys(found: dict) -> list[str]:
    return [found[key] for key in ("key_if_any", "auth_key_if_any") if found.get(key)]


@pytest.mark.parametrize("name", CAPTURES)
def test_decode_real_captures(name):
    found = capture(name)
    time_key = CAPTURES[name]
    keys = published_keys(found)
    result = decode(name, *keys)
    assert result.returncode == 0, result.stderr
    (reading,) = readings(result)
    assert reading["link"] == reading["kind"] == "hdlc-push" and reading["received_at"] is None
    stated = found["expected_values_if_given"]
    assert raw_numbers(reading) == numbers(stated["dlms_cosem_elements"])
    if time_key is not None:
        assert reading["captured_at"] == local(stated[time_key])
    for key in keys:
        assert_no_key(key, result.stdout, result.stderr)


def test_the_tagged_capture_names_the_missing_authentication_key():
    found = capture("landisgyr_hdlc_netzburgenland_gh501")
    result = decode("landisgyr_hdlc_netzburgenland_gh501", found["key_if_any"])
    assert result.returncode == 1 and result.stdout == b""
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("meterlink: telegram 1: no_auth_key: ")
    (reading,) = readings(decode("landisgyr_hdlc_netzburgenland_gh501", *published_keys(found)))
    assert reading["meter_id"] == "30137181"  # the meter number the amsreader README names


def test_the_shrdzm_am550_reads_the_values_its_source_states():
    found = capture("iskra_am550_hdlc_shrdzm")
    stated = found["expected_values_if_given"]
    (reading,) = readings(decode("iskra_am550_hdlc_shrdzm", *published_keys(found)))
    raws = raw_numbers(reading)
    assert raws[:2] == [stated["+A Wh"], stated["-A Wh"]] and stated["+P W"] in raws


def test_a_clients_session_has_no_data_notification():
    session = "".join(x[side] for part in ("public_association", "lls_profile_blocks") for x in SEED[part]["exchanges"]
                      for side in ("request", "response"))
    frames = sum(2 for part in ("public_association", "lls_profile_blocks") for _ in SEED[part]["exchanges"])
    result = meterlink("decode", "hdlc", "-", stdin=session.encode())
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode().splitlines() == [f"meterlink: no data-notification in {frames} frames (--annotate shows them)"]
    annotated = meterlink("decode", "hdlc", "--annotate", "-", stdin=session.encode())
    assert annotated.returncode == 0 and len(readings(annotated)) == frames


def test_decode_hdlc_of_the_simulators_frames_in_every_framing(tmp_path):
    from meterlink.simulators.hdlc_push import HdlcPushMeterModel

    model = HdlcPushMeterModel(layout=Layout.AIDON, key=DEMO_KEY, segmented=True, blocks=True)
    frames = [frame for n in range(3) for frame in model.frames(datetime(2026, 11, 23, 12, 0, n))]
    path = tmp_path / "capture.bin"
    path.write_bytes(b"".join(frames))
    result = meterlink("decode", "hdlc", "--key", DEMO, str(path))
    assert result.returncode == 0, result.stderr
    assert [r["captured_at"] for r in readings(result)] == [f"2026-11-23T12:00:0{n}" for n in range(3)]
    cut = meterlink("decode", "hdlc", "--key", DEMO, "-", stdin=b"".join(frames[:-1]).hex().encode())
    assert cut.returncode == 1 and len(readings(cut)) == 2
    assert cut.stderr.decode().splitlines() == ["meterlink: the input ends inside a notification"]


def test_decode_hdlc_usage_errors():
    capture_hex = capture("kamstrup_han_gh741-1")["hex_or_text"]
    for args in (["--annotate", "--key", DEMO], ["--auth-key", AUTH_KEY], ["--key", DEMO[:-1]]):
        result = meterlink("decode", "hdlc", *args, "-", stdin=capture_hex.encode())
        assert result.returncode == 2 and result.stdout == b"" and b"Traceback" not in result.stderr, args
        assert_no_key(DEMO, result.stderr)
        assert_no_key(AUTH_KEY, result.stderr)
    no_frames = meterlink("decode", "hdlc", "-", stdin=b"no frames here")
    assert no_frames.returncode == 1 and b"no HDLC frame" in no_frames.stderr
