"""The BSM-WS36A commands as a user runs them (issue 17 items 5-7): `simulate bsm` on loopback TCP
(Modbus RTU framing over TCP, as an RS-485-to-Ethernet converter carries it), `bsm snapshot` of each
kind with the fields named by register ID, `bsm verify` on saved snapshots and OCMF strings - the
maker's published real ones (bsm-python, tests/data) as well as the simulator's -, `read bsm`, and
usage errors: exit 2 with one line naming the problem, never a traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from bsm_data import SIGNED
from processes import free_port, meterlink, start_simulator, stop

FIELDS = ["Typ", "RCR", "TotWhExp", "Wh_SF", "W", "W_SF", "MA1", "RCnt", "OS", "Epoch", "TZO", "EpochSetCnt",
          "EpochSetOS", "DI", "DO", "Meta1", "Meta2", "Meta3", "Evt", "Sig", "PK"]
"""What issue 17 item 6 names: the register IDs of the seed, then the signature and key as hex DER."""
STRINGS = {"MA1", "Meta1", "Meta2", "Meta3", "Sig", "PK"}


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    process, where = start_simulator("bsm", "--listen", "tcp://127.0.0.1:0", *args)
    try:
        assert where.startswith("tcp://127.0.0.1:"), where
        yield where
    finally:
        err = stop(process)
        assert b"Traceback" not in err, err[-800:]


def snapshot(url: str, kind: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = meterlink("bsm", "snapshot", "--port", url, "--type", kind, *args)
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return result, json.loads(lines[0])


def assert_one_line_usage_error(result: subprocess.CompletedProcess, words: bytes) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == b""
    assert b"Traceback" not in result.stderr
    assert result.stderr.count(b"\n") == 1 and words in result.stderr, result.stderr


def save(tmp_path: Path, name: str, record: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


# -- against the simulated meter --------------------------------------------------------------------


def test_a_current_snapshot_names_every_field_by_register_id_and_verifies(tmp_path: Path) -> None:
    with simulator() as url:
        result, record = snapshot(url, "current", "--meta1", "contract-id: rfid:12345678abcdef")
    assert result.returncode == 0, result.stderr
    assert [name for name in record if name in FIELDS] == FIELDS  # in the order of the snapshot model
    assert record["signature_valid"] is True and record["Typ"] == 0 and record["St"] == 0
    for name in FIELDS:
        assert isinstance(record[name], str if name in STRINGS else int) and not isinstance(record[name], bool), name
    assert record["Meta1"] == "contract-id: rfid:12345678abcdef" and record["MA1"] == "001BZR1521070006"
    # Raw register values: 99,840 Wh stands as 9984 with Wh_SF 1, as the meter holds it.
    assert (record["TotWhExp"], record["Wh_SF"]) == (9984, 1)
    # PK and Sig are DER that any tool reads: a P-256 SubjectPublicKeyInfo and an ECDSA (r, s).
    key = load_der_public_key(bytes.fromhex(record["PK"]))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    r, s = decode_dss_signature(bytes.fromhex(record["Sig"]))
    assert r > 0 and s > 0
    # The snapshot saved as printed verifies with `bsm verify` (by its own PK, and by --public-key).
    saved = save(tmp_path, "current.json", record)
    verdict = meterlink("bsm", "verify", str(saved))
    assert (verdict.returncode, json.loads(verdict.stdout)) == (0, {"signature_valid": True}), verdict.stderr
    by_key = meterlink("bsm", "verify", "--public-key", record["PK"], str(saved))
    assert by_key.returncode == 0, by_key.stderr
    # So does its OCMF string, given the key; one character changed in it fails.
    ocmf = save(tmp_path, "current.ocmf", {})
    ocmf.write_text(record["OCMF"], encoding="utf-8")
    assert record["ocmf_signature_valid"] is True
    assert meterlink("bsm", "verify", "--public-key", record["PK"], str(ocmf)).returncode == 0
    ocmf.write_text(record["OCMF"].replace('"RV":0.0', '"RV":0.1'), encoding="utf-8")
    assert meterlink("bsm", "verify", "--public-key", record["PK"], str(ocmf)).returncode == 1


def test_a_tampered_saved_snapshot_exits_1(tmp_path: Path) -> None:
    with simulator() as url:
        result, record = snapshot(url, "start", "--meta2", "evse-id: DE*BDO*E8025334492*2")
    assert result.returncode == 0 and record["Typ"] == 3, result.stderr
    for name, changed in (("TotWhExp", record["TotWhExp"] + 1), ("Meta2", "evse-id: DE*BDO*E8025334492*3"),
                          ("Epoch", record["Epoch"] - 60)):
        verdict = meterlink("bsm", "verify", str(save(tmp_path, f"{name}.json", record | {name: changed})))
        assert (verdict.returncode, json.loads(verdict.stdout)) == (1, {"signature_valid": False}), name


def test_a_charging_session_turn_on_then_turn_off() -> None:
    # ch. 10.2: the meter switches the contactor itself; signed data within 10 s on, 8 s off.
    with simulator() as url:
        on, turned_on = snapshot(url, "turn-on", "--meta1", "session 17")
        off, turned_off = snapshot(url, "turn-off")
    assert on.returncode == off.returncode == 0, (on.stderr, off.stderr)
    assert (turned_on["Typ"], turned_off["Typ"]) == (1, 2)
    assert turned_on["signature_valid"] is turned_off["signature_valid"] is True
    assert turned_on["RCR"] == 0  # the reference counter starts at the turn-on
    assert turned_off["RCR"] > 0 and turned_off["TotWhExp"] > turned_on["TotWhExp"]  # 11 kW for ~8 s
    assert turned_off["RCnt"] > turned_on["RCnt"] and turned_off["Meta1"] == "session 17"
    assert turned_off["DO"] == 0 and turned_off["DI"] == 1  # released; the NC feedback says open


@pytest.mark.parametrize("kind, typ", [("turn-on", 1), ("turn-off", 2)])
def test_a_stuck_contactor_is_a_failed_snapshot_status_5(kind: str, typ: int) -> None:
    # Welded closed: the meter opens it first and its feedback stays closed past 0.5 s (ch. 10.2).
    with simulator("--contactor", "stuck") as url:
        result, record = snapshot(url, kind)
    assert result.returncode == 1
    assert set(record) == {"Typ", "St", "PK", "signature_valid"} and (record["Typ"], record["St"]) == (typ, 5)
    assert record["signature_valid"] is False
    assert result.stderr.count(b"\n") == 1 and f"{kind} snapshot not valid".encode() in result.stderr, result.stderr


def test_a_slow_contactor_fails_the_turn_off_with_status_5() -> None:
    with simulator("--contactor", "slow") as url:
        on, _ = snapshot(url, "turn-on")  # it was open already: nothing to wait for
        off, record = snapshot(url, "turn-off")  # 0.8 s to open, the meter waits 0.5 s
    assert on.returncode == 0 and off.returncode == 1 and (record["St"], record["signature_valid"]) == (5, False)


def test_a_withdrawn_charge_release_is_status_4() -> None:
    with simulator("--no-doe") as url:
        result, record = snapshot(url, "turn-on")
    assert result.returncode == 1 and (record["St"], record["signature_valid"]) == (4, False), record


def test_read_bsm_prints_the_ac_meter_as_json_lines() -> None:
    with simulator() as url:
        result = meterlink("read", "bsm", "--port", url, "--count", "2", "--interval", "0.2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    for reading in lines:
        assert (reading["link"], reading["kind"], reading["meter_id"]) == ("bsm", "bsm", "001BZR1521070006")
        assert isinstance(reading["received_at"], float)
        values = {value["obis"]: value for value in reading["values"]}
        assert values["1-0:1.8.0.255"] == {"obis": "1-0:1.8.0.255", "value": 99840, "unit": "Wh", "raw": 9984,
                                           "scaler": 1, "unit_code": 30}
        assert values["1-0:32.7.0.255"]["value"] == 230.1 and values["1-0:32.7.0.255"]["unit"] == "V"
        assert {"1-0:16.7.0.255", "1-0:31.7.0.255", "1-0:51.7.0.255", "1-0:71.7.0.255", "1-0:14.7.0.255"} <= set(values)


# -- bsm verify on the maker's real signed data (bsm-python's examples, tests/data) ------------------


@pytest.mark.parametrize("name", ["scs", "stons", "stoffs"])
def test_a_real_snapshot_saved_with_the_makers_names_verifies(tmp_path: Path, name: str) -> None:
    raw = SIGNED["snapshots"][name]["raw"]
    assert "TotWhImp" in raw and "TotWhExp" not in raw  # bsmtool's name for the energy register
    saved = save(tmp_path, f"{name}.json", raw | {"PK": SIGNED["public_key"]})
    verdict = meterlink("bsm", "verify", str(saved))
    assert (verdict.returncode, verdict.stdout) == (0, b'{"signature_valid": true}\n'), verdict.stderr
    tampered = save(tmp_path, f"{name}-tampered.json", raw | {"PK": SIGNED["public_key"], "TotWhImp": raw["TotWhImp"] + 1})
    assert meterlink("bsm", "verify", str(tampered)).returncode == 1


@pytest.mark.parametrize("name", ["oscs", "ostons", "ostoffs"])
def test_a_real_ocmf_string_needs_the_key_and_verifies_with_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.txt"
    path.write_text(SIGNED["ocmf"][name] + "\n", encoding="utf-8")
    without = meterlink("bsm", "verify", str(path))
    assert_one_line_usage_error(without, b"--public-key")
    verdict = meterlink("bsm", "verify", "--public-key", SIGNED["public_key"], str(path))
    assert (verdict.returncode, verdict.stdout) == (0, b'{"signature_valid": true}\n'), verdict.stderr
    from_stdin = meterlink("bsm", "verify", "--public-key", SIGNED["public_key"], "-", stdin=SIGNED["ocmf"][name].encode())
    assert from_stdin.returncode == 0
    changed = SIGNED["ocmf"][name].replace("001BZR1521070006", "001BZR1521070007", 1)
    path.write_text(changed, encoding="utf-8")
    assert meterlink("bsm", "verify", "--public-key", SIGNED["public_key"], str(path)).returncode == 1


# -- usage errors and unusable ports ------------------------------------------------------------------


def test_verify_usage_errors_are_one_line(tmp_path: Path) -> None:
    raw = SIGNED["snapshots"]["scs"]["raw"]
    no_key = save(tmp_path, "no-key.json", raw)
    assert_one_line_usage_error(meterlink("bsm", "verify", str(no_key)), b"carries no PK")
    assert_one_line_usage_error(meterlink("bsm", "verify", "--public-key", "zz", str(no_key)), b"--public-key")
    assert_one_line_usage_error(meterlink("bsm", "verify", str(tmp_path / "missing.json")), b"cannot read")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello", encoding="utf-8")
    assert_one_line_usage_error(meterlink("bsm", "verify", str(junk)), b"neither an OCMF string nor a snapshot")


def test_a_saved_snapshot_that_cannot_be_verified_says_why_in_one_line(tmp_path: Path) -> None:
    raw = dict(SIGNED["snapshots"]["scs"]["raw"]) | {"PK": SIGNED["public_key"]}
    del raw["Evt"]
    result = meterlink("bsm", "verify", str(save(tmp_path, "short.json", raw)))
    assert result.returncode == 1 and result.stdout == b"" and b"Traceback" not in result.stderr
    assert result.stderr.count(b"\n") == 1 and b"Evt" in result.stderr, result.stderr


@pytest.mark.parametrize("args", [
    ["bsm", "snapshot", "--type", "current"],
    ["bsm", "snapshot", "--type", "turn-on", "--unit", "7"],
    ["read", "bsm", "--count", "1"],
])
def test_a_port_that_cannot_be_used_is_one_line_exit_2(args: list[str]) -> None:
    refused = meterlink(*args, "--port", f"tcp://127.0.0.1:{free_port()}")
    assert_one_line_usage_error(refused, b"cannot connect")
    missing = meterlink(*args, "--port", "/dev/meterlink-no-such-port")
    assert_one_line_usage_error(missing, b"cannot open serial port")


def test_simulate_on_an_unusable_address_is_one_line_exit_2() -> None:
    assert_one_line_usage_error(meterlink("simulate", "bsm", "--listen", "tcp://nohost"), b"expected tcp://HOST:PORT")


def test_metadata_that_does_not_fit_is_refused_before_connecting() -> None:
    # Meta2 holds 50 registers, 100 bytes; 60 umlauts are 120 bytes in UTF-8. No meter at the port:
    # the refusal comes before the port is opened.
    result = meterlink("bsm", "snapshot", "--port", f"tcp://127.0.0.1:{free_port()}", "--type", "current",
                       "--meta2", "\u00fc" * 60)
    assert_one_line_usage_error(result, b"Meta2: 120 bytes do not fit in 50 registers")


@pytest.mark.parametrize(("args", "words"), [
    (["bsm", "snapshot", "--port", "tcp://127.0.0.1:9", "--type", "now"], b"argument --type: invalid choice"),
    (["bsm", "snapshot", "--port", "tcp://127.0.0.1:9"], b"the following arguments are required: --type"),
    (["bsm", "snapshot", "--port", "tcp://127.0.0.1:9", "--type", "current", "--unit", "0"], b"argument --unit: expected a Modbus RTU unit"),
    (["read", "bsm", "--port", "tcp://127.0.0.1:9", "--unit", "248"], b"argument --unit: expected a Modbus RTU unit"),
    (["read", "bsm", "--port", "tcp://127.0.0.1:9", "--interval", "0"], b"argument --interval: expected seconds"),
    (["read", "bsm", "--port", "tcp://127.0.0.1:9", "--count", "-1"], b"argument --count"),
    (["bsm", "verify"], b"the following arguments are required: FILE"),
])
def test_argument_errors_exit_2_naming_the_argument(args: list[str], words: bytes) -> None:
    # argparse's own errors: its usage summary, then one line naming the argument.
    result = meterlink(*args)
    assert result.returncode == 2 and result.stdout == b"" and b"Traceback" not in result.stderr
    assert words in result.stderr.splitlines()[-1], result.stderr
