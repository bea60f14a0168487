"""The M-Bus commands as a user runs them (real processes, TCP and a pty), and the rule that a
meter key never shows in output, logs or exceptions."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from meterlink import cli
from meterlink.protocols.dlms.push import decode_push
from meterlink.protocols.dlms.security import CipherKeys, DecryptionFailed, decrypt, parse_ciphered
from meterlink.protocols.mbus import MBusFramer, segment_payload
from meterlink.simulators.kaifa import DEMO_KEY, METER_NUMBER

from processes import meterlink, start_simulator, stop

DATA = Path(__file__).parent / "data"
TINETZ = json.loads((DATA / "kaifa_mbus_tinetz_doc.json").read_text())
GH905 = json.loads((DATA / "kaifa_mbus_ma309_pl_gh905.json").read_text())
GURUX = json.loads((DATA / "kaifa_mbus_gurux18232_nokey.json").read_text())
AUTH_KEY = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
DEMO = DEMO_KEY.hex().upper()


def readings(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_no_key(key_hex: str, *outputs: bytes) -> None:
    key = bytes.fromhex(key_hex)
    for output in outputs:
        assert key_hex.upper().encode() not in output.upper()
        assert key not in output
        spaced = " ".join(f"{b:02x}" for b in key).encode()
        assert spaced not in output.lower()


# -- simulate kaifa + read mbus ------------------------------------------------------------------


def test_read_three_readings_from_the_simulator_over_tcp():
    simulator, url = start_simulator("kaifa", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5")
    try:
        assert url.startswith("tcp://127.0.0.1:") and not url.endswith(":0")
        result = meterlink("read", "mbus", "--port", url, "--key", DEMO, "--count", "3", "--push-interval", "0.5")
        # The simulator outlives its reader: a second one is served too.
        again = meterlink("read", "mbus", "--port", url, "--key", DEMO, "--count", "1", "--push-interval", "0.5")
        assert simulator.poll() is None
    finally:
        err = stop(simulator)
    assert result.returncode == 0, result.stderr
    lines = readings(result)
    assert len(lines) == 3
    for line in lines:
        assert line["link"] == line["kind"] == "mbus" and line["meter_id"] == METER_NUMBER
        assert isinstance(line["received_at"], float) and line["captured_at"]
        energy = [v for v in line["values"] if v["obis"] == "1-0:1.8.0.255"][0]
        assert energy["unit"] == "Wh" and energy["scaler"] == 0 and energy["unit_code"] == 30
    assert again.returncode == 0 and len(readings(again)) == 1
    assert b"TransitionNotAllowed" not in err and b"LinkLost" not in err  # readers hanging up are no error
    assert_no_key(DEMO, result.stdout, result.stderr, err)


def test_ctrl_c_stops_the_simulator_cleanly():
    simulator, url = start_simulator("kaifa", "--listen", "tcp://127.0.0.1:0")
    assert url.startswith("tcp://")
    err = stop(simulator)
    assert simulator.returncode == 0 and b"Traceback" not in err, err[-300:]


def test_read_from_the_simulator_over_a_pty():
    # One-way: with the handshake, the meter's first search telegram goes out before the reader
    # has opened the pty (pyserial drops it on open), and the next one comes a minute later.
    simulator, path = start_simulator("kaifa", "--pty", "--interval", "0.5", "--one-way")
    try:
        assert path.startswith("/dev/pts/")
        result = meterlink("read", "mbus", "--port", path, "--key", DEMO, "--count", "3", "--push-interval", "0.5")
    finally:
        stop(simulator)
    assert result.returncode == 0, result.stderr
    assert [line["link"] for line in readings(result)] == ["mbus"] * 3


def test_read_a_one_way_meter_with_an_authentication_key():
    simulator, url = start_simulator("kaifa", "--listen", "tcp://127.0.0.1:0", "--interval", "0.5", "--one-way", "--auth-key", AUTH_KEY)
    try:
        result = meterlink("read", "mbus", "--port", url, "--key", DEMO, "--auth-key", AUTH_KEY, "--count", "2",
                           "--push-interval", "0.5", "-v")
    finally:
        err = stop(simulator)
    assert result.returncode == 0, result.stderr
    assert [line["meter_id"] for line in readings(result)] == [METER_NUMBER] * 2
    assert_no_key(DEMO, result.stdout, result.stderr, err)
    assert_no_key(AUTH_KEY, result.stdout, result.stderr, err)


# -- decode mbus -----------------------------------------------------------------------------------


def test_decode_hex_text_of_the_real_capture():
    hex_text = TINETZ["hex_or_text"]
    spread = "\n".join(hex_text[i : i + 64] for i in range(0, len(hex_text), 64)).lower()
    result = meterlink("decode", "mbus", "--key", TINETZ["key_if_any"], "-", stdin=spread.encode())
    assert result.returncode == 0, result.stderr
    (reading,) = readings(result)
    assert reading["meter_id"] == "1KFM0100000035" and reading["received_at"] is None
    assert reading["captured_at"] == "2021-07-19T15:46:35"
    values = {v["obis"]: v for v in reading["values"]}
    assert values["1-0:1.8.0.255"]["value"] == 9108 and values["1-0:32.7.0.255"]["value"] == 230.8
    assert values["0-0:42.0.0.255"]["value"] == "KFM1100100000035"
    assert_no_key(TINETZ["key_if_any"], result.stdout, result.stderr)


def test_decode_binary_files_of_the_real_captures(tmp_path):
    for capture, meter_id in ((TINETZ, "1KFM0100000035"), (GH905, "1KFM0200169986")):
        path = tmp_path / "capture.bin"
        path.write_bytes(bytes.fromhex(capture["hex_or_text"]))
        result = meterlink("decode", "mbus", "--key", capture["key_if_any"].lower(), str(path))
        assert result.returncode == 0, result.stderr
        assert [r["meter_id"] for r in readings(result)] == [meter_id]


def test_a_wrong_key_exits_1_naming_the_cause(tmp_path):
    path = tmp_path / "two.bin"
    # gurux's frame counter (58708) is below TINETZ's: first, or it would count as replayed
    path.write_bytes(bytes.fromhex(GURUX["hex_or_text"]) + bytes.fromhex(TINETZ["hex_or_text"]))
    result = meterlink("decode", "mbus", "--key", TINETZ["key_if_any"], str(path))
    assert result.returncode == 1
    assert [r["meter_id"] for r in readings(result)] == ["1KFM0100000035"]  # the good one still printed
    (line,) = result.stderr.decode().splitlines()
    assert "wrong_key" in line and line.startswith("meterlink: telegram 1")
    assert_no_key(TINETZ["key_if_any"], result.stdout, result.stderr)
    wrong = meterlink("decode", "mbus", "--key", DEMO, "-", stdin=TINETZ["hex_or_text"].encode())
    assert wrong.returncode == 1 and wrong.stdout == b"" and b"wrong_key" in wrong.stderr
    assert_no_key(DEMO, wrong.stdout, wrong.stderr)


def test_an_input_that_ends_inside_a_telegram_exits_1():
    first_frame = TINETZ["hex_or_text"][: 2 * (6 + 0xFA)]
    result = meterlink("decode", "mbus", "--key", TINETZ["key_if_any"], "-", stdin=first_frame.encode())
    assert result.returncode == 1 and b"ends inside a telegram" in result.stderr


BAD_KEYS = [DEMO[:-1] + "X", DEMO[:-2], DEMO + "00", "not a key " + DEMO]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_a_malformed_key_exits_2_without_echoing_it(bad, capsys, monkeypatch, tmp_path):
    capture = tmp_path / "capture.hex"
    capture.write_text(TINETZ["hex_or_text"])
    for args in (["decode", "mbus", "--key", bad, str(capture)], ["decode", "mbus", "--key", DEMO, "--auth-key", bad, str(capture)],
                 ["read", "mbus", "--port", "tcp://127.0.0.1:9", "--key", bad, "--count", "1"]):
        assert cli.main(args) == 2, args
        out, err = capsys.readouterr()
        assert "32 hex digits" in err
        assert bad not in out + err and DEMO[:16] not in (out + err).upper()


def test_a_malformed_key_exits_2_as_a_process():
    result = meterlink("decode", "mbus", "--key", BAD_KEYS[0], "-", stdin=TINETZ["hex_or_text"].encode())
    assert result.returncode == 2 and b"--key: a meter key is 32 hex digits" in result.stderr
    assert BAD_KEYS[0].encode() not in result.stderr + result.stdout and b"Traceback" not in result.stderr


# -- the key never shows -------------------------------------------------------------------------


def test_cipher_keys_never_show_their_bytes():
    keys = CipherKeys(DEMO_KEY, bytes.fromhex(AUTH_KEY))
    for text in (repr(keys), str(keys), f"{keys}", repr([keys]), repr({"keys": keys})):
        assert DEMO not in text.upper() and AUTH_KEY not in text.upper() and str(DEMO_KEY) not in text
        assert "****" in text


def test_decoder_errors_and_results_never_carry_the_key():
    key = bytes.fromhex(TINETZ["key_if_any"])
    apdu = b"".join(segment_payload(frame) for frame in MBusFramer().feed(bytes.fromhex(TINETZ["hex_or_text"])))
    ciphered = parse_ciphered(apdu)
    texts = []
    with pytest.raises(DecryptionFailed) as short_key:
        decrypt(ciphered, key[:15])
    texts.append(str(short_key.value))
    tagged = parse_ciphered(apdu[:13] + b"\x31" + apdu[14:])
    with pytest.raises(DecryptionFailed) as bad_tag:
        decrypt(tagged, key, key)
    texts.append(str(bad_tag.value))
    wrong = decode_push(apdu, [CipherKeys(DEMO_KEY)], None, "mbus", None)
    good = decode_push(apdu, [CipherKeys(key)], None, "mbus", None)
    texts += [wrong.detail, repr(wrong), repr(good), json.dumps(good.reading.to_json())]
    for text in texts:
        assert TINETZ["key_if_any"] not in text.upper() and DEMO not in text.upper()
        assert key.hex() not in text and repr(key) not in text and repr(DEMO_KEY) not in text


def test_decode_in_process_logs_nothing_of_the_key(caplog, capsys, monkeypatch, tmp_path):
    path = tmp_path / "capture.hex"
    path.write_text(GURUX["hex_or_text"] + TINETZ["hex_or_text"])
    caplog.set_level(logging.DEBUG)
    for key in (TINETZ["key_if_any"], DEMO):
        code = cli.main(["decode", "mbus", "-v", "--key", key.lower(), str(path)])
        assert code == 1
        out, err = capsys.readouterr()
        assert "wrong_key" in err
        assert_no_key(key, out.encode(), err.encode(), caplog.text.encode())
        caplog.clear()
