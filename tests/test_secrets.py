"""Meter keys, device password and login throttle (seed 001 ch. C.1: no key in plain text)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from meterlink.service.secrets import (
    Credentials,
    KeyPair,
    KeyStore,
    KeyStoreUnreadable,
    LoginThrottle,
    MeterKey,
    SecretsError,
)

KEY_A_HEX = "36C66639E48A8CA4D6BC8B282A793BBB"
KEY_B_HEX = "000102030405060708090a0b0c0d0e0f"
AUTH_HEX = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
KEY_A, KEY_B, AUTH = (MeterKey.from_hex(h) for h in (KEY_A_HEX, KEY_B_HEX, AUTH_HEX))
PAIR_A, PAIR_B = KeyPair(KEY_A, AUTH), KeyPair(KEY_B)


def forms_of(key: MeterKey) -> list[bytes]:
    """Every way a key could show up in a file or a message."""
    hex_ = key.secret.hex()
    return [key.secret, hex_.encode(), hex_.upper().encode(), repr(key.secret).encode()]


def assert_no_key_material(data: bytes | str) -> None:
    raw = data.encode() if isinstance(data, str) else data
    for key in (KEY_A, KEY_B, AUTH):
        for form in forms_of(key):
            assert form not in raw


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "data" / "keys.bin", tmp_path / "secret" / "device.key"


def store(paths: tuple[Path, Path]) -> KeyStore:
    return KeyStore(*paths)


# --- MeterKey ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [KEY_A_HEX, KEY_A_HEX.lower(), "36 C6 66 39 E4 8A 8C A4 D6 BC 8B 28 2A 79 3B BB",
     "36:c6:66:39:e4:8a:8c:a4:d6:bc:8b:28:2a:79:3b:bb", "  36C66639 E48A8CA4\tD6BC8B28 2A793BBB\n"],
)
def test_from_hex_accepts_what_customers_type(text: str) -> None:
    assert MeterKey.from_hex(text).secret == bytes.fromhex(KEY_A_HEX)


@pytest.mark.parametrize(
    "text",
    [KEY_A_HEX[:-1], KEY_A_HEX + "0", KEY_A_HEX[:-1] + "G", "0x" + KEY_A_HEX[2:], KEY_A_HEX[:16] + "-" + KEY_A_HEX[16:],
     "\u0661" * 32, ""],
)
def test_from_hex_error_does_not_echo_the_input(text: str) -> None:
    with pytest.raises(SecretsError) as info:
        MeterKey.from_hex(text)
    assert str(info.value) == "meter key must be 32 hex digits (16 bytes)"
    if text:
        assert text not in str(info.value)
        assert KEY_A_HEX[2:18] not in str(info.value)


@pytest.mark.parametrize("secret", [b"\x00" * 15, b"\x00" * 17, "00" * 16])
def test_meter_key_must_be_16_bytes(secret: object) -> None:
    with pytest.raises(SecretsError, match="16 bytes"):
        MeterKey(secret)  # type: ignore[arg-type]


def test_repr_and_str_do_not_show_the_key() -> None:
    for text in (repr(KEY_A), str(KEY_A), f"{KEY_A}", repr(PAIR_A), str(PAIR_A)):
        assert_no_key_material(text)
    assert repr(KEY_A) == "MeterKey(****)"


# --- KeyStore: files --------------------------------------------------------------------------


def test_keys_round_trip_through_a_new_store(paths: tuple[Path, Path]) -> None:
    first = store(paths)
    first.set_key("mbus", KEY_A, AUTH)
    first.set_key("dlms", KEY_B)
    again = store(paths)
    assert again.candidates("mbus") == [KeyPair(KEY_A, AUTH)]
    assert again.candidates("dlms") == [KeyPair(KEY_B, None)]
    assert again.candidates("p1") == []
    assert again.has_key("mbus") and not again.has_key("p1")
    assert again.links() == ["dlms", "mbus"]


def test_store_file_holds_no_key_in_any_form(paths: tuple[Path, Path]) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A, AUTH)
    keys.set_key("mbus", KEY_B)
    raw = paths[0].read_bytes()
    assert len(raw) > 12 + 16
    assert_no_key_material(raw)
    assert b"mbus" not in raw  # the whole document is encrypted, not just the key fields
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o600
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["keys.bin"]  # no temp file left


def test_device_key_file_is_created_0600_with_32_bytes(paths: tuple[Path, Path]) -> None:
    store(paths).links()
    assert stat.S_IMODE(paths[1].stat().st_mode) == 0o600
    assert len(paths[1].read_bytes()) == 32


def test_device_key_is_kept_not_replaced(paths: tuple[Path, Path]) -> None:
    store(paths).links()
    before = paths[1].read_bytes()
    store(paths).links()
    assert paths[1].read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_device_key_open_to_others_is_refused(paths: tuple[Path, Path], mode: int) -> None:
    store(paths).links()
    os.chmod(paths[1], mode)
    keys = store(paths)  # the adapter still starts, and says what is wrong
    with pytest.raises(SecretsError) as info:
        keys.links()
    assert keys.problem() == str(info.value)
    assert str(paths[1]) in str(info.value)
    assert f"chmod 600 {paths[1]}" in str(info.value)


def test_damaged_device_key_is_refused(paths: tuple[Path, Path]) -> None:
    store(paths).links()
    paths[1].write_bytes(paths[1].read_bytes()[:20])
    with pytest.raises(SecretsError, match="damaged"):
        store(paths).links()


def tamper_flip(raw: bytes) -> bytes:
    return raw[:20] + bytes([raw[20] ^ 1]) + raw[21:]


@pytest.mark.parametrize("tamper", [tamper_flip, lambda raw: raw[:-1], lambda raw: raw[:5], lambda raw: b""])
def test_tampered_store_is_refused_without_key_material(paths: tuple[Path, Path], tamper) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A, AUTH)
    paths[0].write_bytes(tamper(paths[0].read_bytes()))
    again = store(paths)
    with pytest.raises(SecretsError) as info:
        again.candidates("mbus")
    message = str(info.value)
    assert message.startswith(f"key store unreadable: {paths[0]} cannot be decrypted with {paths[1]}: ")
    assert_no_key_material(message)


def test_store_under_another_device_key_is_refused(paths: tuple[Path, Path], tmp_path: Path) -> None:
    store(paths).set_key("mbus", KEY_A)
    KeyStore(tmp_path / "elsewhere" / "keys.bin", tmp_path / "other.key").links()
    other = KeyStore(paths[0], tmp_path / "other.key")
    with pytest.raises(SecretsError, match="cannot be decrypted with .*other.key"):
        other.links()


def test_a_missing_device_key_is_named_not_silently_replaced(paths: tuple[Path, Path]) -> None:
    """Issue 11 item 6: a new device key would hide why the stored keys stopped working."""
    store(paths).set_key("mbus", KEY_A)
    paths[1].unlink()
    keys = store(paths)
    assert keys.problem() == (f"key store unreadable: device key file {paths[1]} is missing, so {paths[0]} cannot "
                              "be decrypted; meter_factreset clears it (the meter keys must then be set again with "
                              "meter_setkey)")
    assert not paths[1].exists()
    keys.clear()
    keys.set_key("mbus", KEY_B)
    assert store(paths).candidates("mbus") == [PAIR_B]


@pytest.mark.parametrize("damage", ["empty", "directory", "short device key"])
def test_damaged_state_files_are_reported_and_cleared_by_a_reset(paths: tuple[Path, Path], damage: str) -> None:
    store(paths).set_key("mbus", KEY_A)
    if damage == "empty":
        paths[0].write_bytes(b"")
    elif damage == "directory":
        paths[0].unlink()
        paths[0].mkdir()
    else:
        paths[1].write_bytes(paths[1].read_bytes()[:31])
    keys = store(paths)
    problem = keys.problem()
    assert problem is not None and problem.startswith("key store unreadable: ")
    assert str(paths[0] if damage != "short device key" else paths[1]) in problem
    with pytest.raises(KeyStoreUnreadable):
        keys.set_key("mbus", KEY_B)
    keys.clear()
    assert keys.problem() is None
    keys.set_key("mbus", KEY_B)
    assert store(paths).candidates("mbus") == [PAIR_B]


def test_a_reset_replaces_the_device_key_and_removes_leftover_temporaries(paths: tuple[Path, Path]) -> None:
    """Issue 11 item 5: a copy of the store that an interrupted write left must not be readable after a reset."""
    store(paths).set_key("mbus", KEY_A, AUTH)
    leftover = paths[0].parent / ".keys.bin.k1ll3d.tmp"
    leftover.write_bytes(paths[0].read_bytes())
    old_device_key = paths[1].read_bytes()
    keys = store(paths)
    assert not leftover.exists()  # removed at start
    leftover.write_bytes(paths[0].read_bytes())
    keys.clear()
    assert not leftover.exists() and not paths[0].exists()
    assert len(paths[1].read_bytes()) == 32 and paths[1].read_bytes() != old_device_key


def test_an_interrupted_device_key_write_leaves_no_short_key(paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # stands for the power cut between the write and the link

    monkeypatch.setattr(os, "link", killed)
    with pytest.raises(KeyboardInterrupt):
        store(paths).links()
    monkeypatch.undo()
    assert not paths[1].exists() and list(paths[1].parent.iterdir()) == []
    store(paths).links()
    assert len(paths[1].read_bytes()) == 32


def test_clear_recovers_from_a_store_that_cannot_be_decrypted(paths: tuple[Path, Path]) -> None:
    store(paths).set_key("mbus", KEY_A)
    paths[0].write_bytes(tamper_flip(paths[0].read_bytes()))
    keys = store(paths)
    keys.clear()
    keys.set_key("mbus", KEY_B)
    assert store(paths).candidates("mbus") == [PAIR_B]


# --- KeyStore: hybrid change-over -------------------------------------------------------------


def test_hybrid_change_over(paths: tuple[Path, Path]) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A, AUTH)
    keys.set_key("mbus", KEY_B)
    assert keys.candidates("mbus") == [PAIR_B, PAIR_A]
    assert store(paths).candidates("mbus") == [PAIR_B, PAIR_A]
    keys.confirm("mbus", PAIR_B)
    assert keys.candidates("mbus") == [PAIR_B]
    assert store(paths).candidates("mbus") == [PAIR_B]


def test_telegrams_under_the_old_key_keep_the_new_one_pending(
    paths: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The meter keeps its old key until the operator switches it: the entered key must wait."""
    keys = store(paths)
    keys.set_key("mbus", KEY_A, AUTH)
    keys.set_key("mbus", KEY_B)
    raw = paths[0].read_bytes()
    caplog.set_level(logging.DEBUG, logger="meterlink.secrets")
    caplog.clear()  # what set-up logged (the device key file created) depends on the tests before
    for _ in range(3):
        keys.confirm("mbus", PAIR_A)
    assert keys.candidates("mbus") == [PAIR_B, PAIR_A]
    # confirm() runs for every telegram: no write (flash wear), no log line
    assert paths[0].read_bytes() == raw
    assert caplog.records == []


def test_confirm_of_a_replaced_key_does_not_bring_it_back(paths: tuple[Path, Path]) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A)
    keys.set_key("mbus", KEY_B)
    keys.set_key("mbus", AUTH)  # a second correction while the first was pending
    keys.confirm("mbus", PAIR_B)
    assert keys.candidates("mbus") == [KeyPair(AUTH), KeyPair(KEY_A)]
    keys.confirm("unknown-link", PAIR_B)
    assert not keys.has_key("unknown-link")


def test_entering_the_current_key_again_cancels_a_pending_change(paths: tuple[Path, Path]) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A, AUTH)
    keys.set_key("mbus", KEY_B)
    keys.set_key("mbus", KEY_A, AUTH)
    assert keys.candidates("mbus") == [PAIR_A]
    assert store(paths).candidates("mbus") == [PAIR_A]


def test_a_different_authentication_key_is_a_different_pair(paths: tuple[Path, Path]) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A)
    keys.set_key("mbus", KEY_A, AUTH)
    assert keys.candidates("mbus") == [PAIR_A, KeyPair(KEY_A)]


def test_clear_forgets_every_key(paths: tuple[Path, Path]) -> None:
    keys = store(paths)
    keys.set_key("mbus", KEY_A)
    keys.set_key("dlms", KEY_B)
    keys.clear()
    assert not paths[0].exists()
    assert keys.links() == [] and keys.candidates("mbus") == []
    assert store(paths).links() == []
    keys.clear()  # twice is fine
    assert not paths[0].exists()


def test_logs_name_links_never_keys(paths: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="meterlink.secrets")
    keys = store(paths)
    keys.set_key("mbus", KEY_A, AUTH)
    keys.set_key("mbus", KEY_B)
    keys.confirm("mbus", PAIR_B)
    keys.clear()
    assert "meter key for link mbus changed (pending)" in caplog.text
    assert_no_key_material(caplog.text)


# --- Credentials ------------------------------------------------------------------------------


def test_ensure_generates_a_token_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="meterlink.secrets")
    path = tmp_path / "credentials.json"
    token = Credentials(path).ensure()
    assert isinstance(token, str) and len(token) >= 32
    assert Credentials(path).ensure() is None
    creds = Credentials(path)
    assert creds.is_set()
    assert creds.check(token)
    assert not creds.check(token[:-1])
    assert not creds.check("")
    raw = path.read_bytes()
    assert token.encode() not in raw and token.encode().hex().encode() not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in caplog.text


def test_check_without_a_password_is_false(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "credentials.json")
    assert not creds.is_set()
    assert not creds.check("anything-at-all")


def test_configured_password_replaces_a_generated_token(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    token = Credentials(path).ensure()
    assert Credentials(path).ensure("correct horse battery") is None
    creds = Credentials(path)
    assert creds.check("correct horse battery")
    assert not creds.check(token)
    assert b"correct horse battery" not in path.read_bytes()
    raw = path.read_bytes()
    assert creds.ensure("correct horse battery") is None
    assert path.read_bytes() == raw  # same password at the next start: not hashed anew (fresh salt would differ)


def test_set_changes_the_password(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "credentials.json")
    creds.set("first-password")
    creds.set("second-password")
    assert creds.check("second-password")
    assert not creds.check("first-password")


def test_unicode_forms_of_one_password_match(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "credentials.json")
    creds.set("Gr\u00fc\u00dfe-aus-Wien")
    assert creds.check("Gru\u0308\u00dfe-aus-Wien")


@pytest.mark.parametrize("short", ["", "1234567", "\u00e4" * 7])
def test_too_short_password_is_refused(tmp_path: Path, short: str) -> None:
    creds = Credentials(tmp_path / "credentials.json")
    with pytest.raises(SecretsError, match="at least 8 characters") as info:
        creds.set(short)
    with pytest.raises(SecretsError):
        creds.ensure(short)
    assert not creds.is_set()
    if short:
        assert short not in str(info.value)


def scrypt_doc(**change: object) -> bytes:
    doc = {"algorithm": "scrypt", "n": 2**14, "r": 8, "p": 1, "salt": "00" * 16, "hash": "00" * 32, **change}
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", scrypt_doc(algorithm="md5"), scrypt_doc(salt="zz"), scrypt_doc(hash="00"),
     scrypt_doc(n=3), scrypt_doc(n=2**20), scrypt_doc(n="16384"), scrypt_doc(p=0)],
)
def test_damaged_credentials_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(content)
    creds = Credentials(path)
    with pytest.raises(SecretsError, match="credentials file .* is damaged"):
        creds.check("some-password")
    with pytest.raises(SecretsError, match="damaged"):
        creds.ensure()
    assert creds.ensure("configured-password") is None  # a configured password repairs it
    assert creds.check("configured-password")


def test_well_formed_credentials_file_is_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_bytes(scrypt_doc())
    assert not Credentials(path).check("some-password")
    assert Credentials(path).ensure() is None


# --- LoginThrottle ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, client: str, times: int) -> None:
    for _ in range(times):
        throttle.failed(client)


def test_delays_free_then_doubling_then_capped() -> None:
    throttle = LoginThrottle(clock=FakeClock())
    delays = []
    for _ in range(12):
        delays.append(throttle.delay_for("10.0.0.7"))
        throttle.failed("10.0.0.7")
    assert delays == [0, 0, 0, 0, 0.5, 1, 2, 4, 8, 16, 30, 30]


def test_many_failures_stay_at_the_cap() -> None:
    throttle = LoginThrottle(clock=FakeClock())
    fail(throttle, "10.0.0.7", 5000)
    assert throttle.delay_for("10.0.0.7") == 30.0


def test_clients_are_throttled_separately() -> None:
    throttle = LoginThrottle(clock=FakeClock())
    fail(throttle, "10.0.0.7", 5)
    assert throttle.delay_for("10.0.0.7") == 1.0
    assert throttle.delay_for("10.0.0.8") == 0.0


def test_success_resets_the_client() -> None:
    throttle = LoginThrottle(clock=FakeClock())
    fail(throttle, "10.0.0.7", 6)
    throttle.succeeded("10.0.0.7")
    assert throttle.delay_for("10.0.0.7") == 0.0
    fail(throttle, "10.0.0.7", 4)
    assert throttle.delay_for("10.0.0.7") == 0.5


def test_failures_are_forgotten_after_quiet_time() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(forget_after=600.0, clock=clock)
    fail(throttle, "10.0.0.7", 6)
    clock.now += 599.0
    assert throttle.delay_for("10.0.0.7") == 2.0
    throttle.failed("10.0.0.7")  # a new failure restarts the quiet time
    clock.now += 599.0
    assert throttle.delay_for("10.0.0.7") == 4.0
    clock.now += 1.0
    assert throttle.delay_for("10.0.0.7") == 0.0
    throttle.failed("10.0.0.7")
    assert throttle.delay_for("10.0.0.7") == 0.0  # counts from one again


def test_client_count_is_bounded_dropping_the_oldest() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=0, clock=clock)
    fail(throttle, "attacker", 3)
    for i in range(5000):
        throttle.failed(f"flood-{i}")
    assert len(throttle._failures) == 4096
    assert throttle.delay_for("attacker") == 0.0  # dropped: the oldest
    assert throttle.delay_for("flood-0") == 0.0
    assert throttle.delay_for("flood-4999") == 0.5


def test_recent_failure_moves_a_client_to_the_back() -> None:
    throttle = LoginThrottle(free_failures=0, clock=FakeClock(), max_clients=3)
    for client in ("a", "b", "c"):
        throttle.failed(client)
    throttle.failed("a")
    throttle.failed("d")
    assert throttle.delay_for("b") == 0.0
    assert [throttle.delay_for(c) for c in ("a", "c", "d")] == [1.0, 0.5, 0.5]
