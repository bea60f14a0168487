"""The M-Bus push codec on telegrams that real Kaifa meters sent (tests/data/kaifa_*.json, sources in
tests/data/README.md), and on tagged / tagless telegrams of both security suites.

Every value asserted here is one the source publishes or one read off the hex by hand; the AES-GCM
oracle is `cryptography`'s own AESGCM class, not meterlink's code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meterlink.machines.base import Dropped, KeyConfirmed, Publish, Send
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.notification import parse_notification, to_reading
from meterlink.protocols.dlms.push import Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys, decrypt, encrypt, parse_ciphered
from meterlink.protocols.mbus import LongFrame, MBusFramer, encode_long, segment_payload, split_segments
from meterlink.simulators.kaifa import DEMO_KEY, METER_NUMBER, SYSTEM_TITLE, KaifaMeterModel

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 23, 12, 0, 0)
AUTH_KEY = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
OTHER_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def vector(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


TINETZ = vector("kaifa_mbus_tinetz_doc")
GH905 = vector("kaifa_mbus_ma309_pl_gh905")
GURUX = vector("kaifa_mbus_gurux18232_nokey")
VORARLBERG = vector("kaifa_vorarlberg_plaintext_gh539")


def frames_of(capture: dict) -> list[LongFrame]:
    framer = MBusFramer()
    events = framer.feed(bytes.fromhex(capture["hex_or_text"]))
    assert framer.pending == 0
    assert all(isinstance(event, LongFrame) for event in events), events
    return events


def apdu_of(capture: dict) -> bytes:
    return b"".join(segment_payload(frame) for frame in frames_of(capture))


def run_adapter(data: bytes, keys: Sequence[CipherKeys], chunk: int = 4096) -> tuple[MBusAdapter, list]:
    adapter = MBusAdapter(keys=lambda: keys)
    framer = MBusFramer()
    actions = []
    for start in range(0, len(data), chunk):
        for event in framer.feed(data[start : start + chunk]):
            adapter.handle(event, 1700000000.0)
        actions += adapter.take_actions()
    return adapter, actions


def published(actions: list) -> list:
    return [action.reading for action in actions if isinstance(action, Publish)]


def value(reading, obis: str):
    found = reading.value_of(obis)
    assert found is not None, f"{obis} missing from {reading}"
    return found


# -- TINETZ (fneur/smart-meter-tirol doc/EXAMPLE.md) ----------------------------------------------


def test_tinetz_frames_and_security_header():
    first, second = frames_of(TINETZ)
    assert (first.c, first.a, first.ci, len(first.data)) == (0x53, 0xFF, 0x00, 0xFA - 3)
    assert (second.c, second.a, second.ci, len(second.data)) == (0x53, 0xFF, 0x11, 0x26 - 3)
    assert first.data[:2] == second.data[:2] == b"\x01\x67"
    ciphered = parse_ciphered(apdu_of(TINETZ))
    assert ciphered.system_title == bytes.fromhex("4B464D1010000023")  # "KFM" 1010000023
    assert ciphered.security_control == 0x21 and not ciphered.authenticated and ciphered.suite == 1
    assert ciphered.frame_counter == 0x00295B9A


def test_tinetz_decrypts_to_the_published_plaintext():
    key = bytes.fromhex(TINETZ["key_if_any"])
    published_plaintext = bytes.fromhex(TINETZ["expected_values_if_given"]["decrypted_apdu_hex_published"])
    ciphered = parse_ciphered(apdu_of(TINETZ))
    assert decrypt(ciphered, key) == published_plaintext
    # The same plaintext through an independent GCM (cryptography's AESGCM): tagless GCM is the
    # GCM ciphertext without its tag.
    assert AESGCM(key).encrypt(ciphered.iv, published_plaintext, None)[:-16] == ciphered.payload


def test_tinetz_reading_has_every_value_the_source_states():
    keys = [CipherKeys(bytes.fromhex(TINETZ["key_if_any"]))]
    adapter, actions = run_adapter(bytes.fromhex(TINETZ["hex_or_text"]), keys)
    assert actions.count(Send(b"\xe5")) == 2
    (reading,) = published(actions)
    assert reading.meter_id == "1KFM0100000035"
    assert reading.link == "mbus"
    assert reading.captured_at == "2021-07-19T15:46:35"
    assert value(reading, "0-0:96.1.0.255").value == "1KFM0100000035"
    assert value(reading, "0-0:42.0.0.255").value == "KFM1100100000035"
    volts = value(reading, "1-0:32.7.0.255")
    assert (volts.value, volts.unit, volts.raw, volts.scaler, volts.unit_code) == (230.8, "V", 2308, -1, 35)
    energy = value(reading, "1-0:1.8.0.255")
    assert (energy.value, energy.unit, energy.raw, energy.scaler, energy.unit_code) == (9108, "Wh", 9108, 0, 30)
    assert KeyConfirmed(keys[0]) in actions
    assert adapter.counters == {"telegrams": 1}
    assert adapter.last_frame_counter == 0x00295B9A


def test_tinetz_with_a_wrong_key_is_wrong_key():
    adapter, actions = run_adapter(bytes.fromhex(TINETZ["hex_or_text"]), [CipherKeys(OTHER_KEY)])
    assert not published(actions)
    drops = [action for action in actions if isinstance(action, Dropped)]
    assert [drop.cause for drop in drops] == ["wrong_key"]
    assert adapter.counters == {"wrong_key": 1}
    assert actions.count(Send(b"\xe5")) == 2  # both frames were well-formed: acked all the same


# -- gh905 (amsreader-firmware test/payloads/kaifa) ---------------------------------------------


def test_gh905_decrypts_to_the_stated_apdu():
    key = bytes.fromhex(GH905["key_if_any"])
    ciphered = parse_ciphered(apdu_of(GH905))
    assert ciphered.system_title == b"KFM\x10\x20\x02\x98\x02"
    expected = bytes.fromhex(GH905["expected_values_if_given"]["decrypted_apdu_hex_verified_by_us"])
    assert decrypt(ciphered, key) == expected
    assert AESGCM(key).encrypt(ciphered.iv, expected, None)[:-16] == ciphered.payload


def test_gh905_reading():
    keys = [CipherKeys(bytes.fromhex(GH905["key_if_any"]))]
    _, actions = run_adapter(bytes.fromhex(GH905["hex_or_text"]), keys, chunk=7)
    (reading,) = published(actions)
    assert reading.meter_id == "1KFM0200169986"
    assert value(reading, "0-0:96.1.0.255").value == "1KFM0200169986"
    # Read off the plaintext by hand: 07E5 09 1B .. 14 38 00 -> 2021-09-27 20:56:00;
    # 1-0:1.8.0 06 00043E19 = 278041 Wh; 1-0:31.7.0 12 04D9 scaler -2 = 12.41 A.
    assert reading.captured_at == "2021-09-27T20:56:00"
    assert value(reading, "1-0:1.8.0.255").raw == 0x00043E19 == 278041
    current = value(reading, "1-0:31.7.0.255")
    assert (current.value, current.unit, current.scaler) == (12.41, "A", -2)


# -- the gurux capture: framing only, no key published -----------------------------------------


def test_gurux_capture_framing():
    first, second = frames_of(GURUX)
    assert (first.ci, second.ci) == (0x00, 0x11)
    assert (first.c, first.a, second.c, second.a) == (0x53, 0xFF, 0x53, 0xFF)
    apdu = apdu_of(GURUX)
    assert apdu[:2] == b"\xdb\x08" and apdu[10:13] == b"\x82\x01\x55"  # 2-byte BER length form
    ciphered = parse_ciphered(apdu)
    assert len(apdu) - 13 == GURUX["expected_values_if_given"]["apdu_length_field"] == 341
    assert len(ciphered.payload) == 341 - 5  # SC and frame counter are inside the length
    assert ciphered.security_control == 0x21


def test_gurux_without_a_key_is_counted_no_key_and_the_link_keeps_acking():
    capture = bytes.fromhex(GURUX["hex_or_text"])
    adapter, actions = run_adapter(capture, [])
    assert actions == [Send(b"\xe5"), Send(b"\xe5"), Dropped("no_key", "the telegram is encrypted and no meter key is set")]
    assert adapter.counters == {"no_key": 1}
    assert adapter.listening.is_active
    framer = MBusFramer()
    for event in framer.feed(capture + capture):  # the same telegram again: replay is judged before keys
        adapter.handle(event, None)
    again = adapter.take_actions()
    assert again.count(Send(b"\xe5")) == 4
    assert adapter.counters["no_key"] == 3 and adapter.listening.is_active
    assert decode_push(apdu_of(GURUX), [], None, "mbus", None).outcome is Outcome.NO_KEY


# -- Vorarlberg plaintext (amsreader-firmware gh539-4) -------------------------------------------


def test_vorarlberg_plaintext_notification_decodes():
    apdu = bytes.fromhex(VORARLBERG["hex_or_text"])
    notification = parse_notification(apdu)
    assert notification.invoke_id == 0x002A3CB4
    reading = to_reading(notification, "mbus", None)
    # By hand from the hex:
    #   0-0:96.1.0  09 0E "1KFM0200182517"
    #   1-0:1.8.0   06 0015689C  02 02 0F 00 16 1E  -> 1403036 Wh
    #   1-0:2.8.0   06 0010D546  ...        16 1E  -> 1103174 Wh
    #   1-0:32.7.0  12 091A      02 02 0F FF 16 23 -> 2330 * 10^-1 V
    #   clock       07E7 04 19 .. 0A 3B 1E         -> 2023-04-25 10:59:30
    assert reading.meter_id == "1KFM0200182517"
    assert reading.captured_at == "2023-04-25T10:59:30"
    energy = value(reading, "1-0:1.8.0.255")
    assert (energy.raw, energy.value, energy.unit, energy.scaler, energy.unit_code) == (0x0015689C, 1403036, "Wh", 0, 30)
    assert value(reading, "1-0:2.8.0.255").raw == 0x0010D546
    volts = value(reading, "1-0:32.7.0.255")
    assert (volts.raw, volts.value, volts.unit) == (0x091A, 233.0, "V")
    assert value(reading, "0-0:42.0.0.255").value == "KFM1200200182517"


def test_an_unencrypted_push_telegram_over_mbus_is_published_without_a_key():
    apdu = bytes.fromhex(VORARLBERG["hex_or_text"])
    frames = split_segments(apdu, 0x53, 0xFF)
    assert len(frames) == 2
    adapter, actions = run_adapter(b"".join(frames), [])
    (reading,) = published(actions)
    assert reading.meter_id == "1KFM0200182517"
    assert adapter.counters == {"telegrams": 1}
    assert adapter.last_frame_counter is None  # a plaintext telegram carries no frame counter


# -- tagged (SC 0x30/0x31) and tagless (0x20/0x21) ----------------------------------------------


def kaifa_frames(model: KaifaMeterModel) -> bytes:
    return b"".join(model.frames(NOW))


def test_simulator_telegrams_are_what_kaifa_meters_send():
    tagless = KaifaMeterModel().frames(NOW)
    tagged = KaifaMeterModel(auth_key=AUTH_KEY).frames(NOW)
    for frames in (tagless, tagged):
        assert len(frames) == 2 and frames[0][:8] == bytes.fromhex("68FAFA6853FF0001")
    assert parse_ciphered(b"".join(segment_payload(f) for f in MBusFramer().feed(b"".join(tagless)))).security_control == 0x21
    ciphered = parse_ciphered(b"".join(segment_payload(f) for f in MBusFramer().feed(b"".join(tagged))))
    assert ciphered.security_control == 0x31 and ciphered.system_title == SYSTEM_TITLE
    # Independent oracle: the 12-byte DLMS tag is the full GCM tag cut short; AAD = SC || AK.
    model = KaifaMeterModel(auth_key=AUTH_KEY)
    model.frame_counter = ciphered.frame_counter  # frames() counts up, then builds the plaintext
    oracle = AESGCM(DEMO_KEY).encrypt(ciphered.iv, model.plaintext(NOW), b"\x31" + AUTH_KEY)
    assert ciphered.payload == oracle[:-16] + oracle[-16:-4]


@pytest.mark.parametrize("security_control", [0x30, 0x31])
def test_tagged_telegram_decodes_with_the_keys(security_control):
    plaintext = KaifaMeterModel().plaintext(NOW)
    apdu = encrypt(plaintext, SYSTEM_TITLE, 77, DEMO_KEY, security_control, AUTH_KEY)
    keys = [CipherKeys(DEMO_KEY, AUTH_KEY)]
    adapter, actions = run_adapter(b"".join(split_segments(apdu, 0x53, 0xFF)), keys)
    (reading,) = published(actions)
    assert reading.meter_id == METER_NUMBER and adapter.last_frame_counter == 77


@pytest.mark.parametrize("security_control", [0x20, 0x21])
def test_tagless_telegram_decodes_with_the_key_and_not_with_another(security_control):
    plaintext = KaifaMeterModel().plaintext(NOW)
    frames = b"".join(split_segments(encrypt(plaintext, SYSTEM_TITLE, 78, DEMO_KEY, security_control), 0x53, 0xFF))
    _, good = run_adapter(frames, [CipherKeys(DEMO_KEY)])
    assert [r.meter_id for r in published(good)] == [METER_NUMBER]
    adapter, bad = run_adapter(frames, [CipherKeys(OTHER_KEY)])
    assert not published(bad) and adapter.counters == {"wrong_key": 1}


@pytest.mark.parametrize(("keys", "cause"), [
    (CipherKeys(DEMO_KEY, OTHER_KEY), "wrong_auth_key"),
    (CipherKeys(DEMO_KEY), "no_auth_key"),
    (CipherKeys(OTHER_KEY, AUTH_KEY), "wrong_key"),
    (CipherKeys(OTHER_KEY), "wrong_key"),
], ids=["wrong-auth-key", "no-auth-key", "wrong-key", "wrong-key-no-auth-key"])
def test_tagged_telegram_with_a_wrong_or_missing_key_names_the_key(keys, cause):
    frames = kaifa_frames(KaifaMeterModel(auth_key=AUTH_KEY))
    adapter, actions = run_adapter(frames, [keys])
    assert not published(actions)
    assert adapter.counters == {cause: 1}
    assert adapter.last_frame_counter is None
    assert not any(isinstance(action, KeyConfirmed) for action in actions)


def with_checksum_fixed(frame: bytes) -> bytes:
    """The frame with its M-Bus checksum recomputed: only the DLMS layer can notice a change."""
    body = frame[4:-2]
    return frame[:-2] + bytes((sum(body) & 0xFF, 0x16))


@pytest.mark.parametrize("back", [1, 6, 12])
def test_a_flipped_tag_byte_is_rejected_like_a_wrong_authentication_key(back):
    """GCM cannot tell a tag changed on the way from one made with another key (the M-Bus checksum
    catches what the line damages)."""
    first, last = KaifaMeterModel(auth_key=AUTH_KEY).frames(NOW)
    at = len(last) - 2 - back  # inside the 12-byte tag at the end of the last segment
    tampered = with_checksum_fixed(last[:at] + bytes((last[at] ^ 0x01,)) + last[at + 1 :])
    adapter, actions = run_adapter(first + tampered, [CipherKeys(DEMO_KEY, AUTH_KEY)])
    assert actions.count(Send(b"\xe5")) == 2
    assert not published(actions)
    assert adapter.counters == {"wrong_auth_key": 1}
    # ...and the intact telegram after it is still read.
    framer = MBusFramer()
    for event in framer.feed(first + last):
        adapter.handle(event, None)
    assert len(published(adapter.take_actions())) == 1


def test_a_flipped_ciphertext_byte_of_a_tagged_telegram_is_rejected():
    first, last = KaifaMeterModel(auth_key=AUTH_KEY).frames(NOW)
    at = 60
    tampered = with_checksum_fixed(first[:at] + bytes((first[at] ^ 0x80,)) + first[at + 1 :])
    adapter, actions = run_adapter(tampered + last, [CipherKeys(DEMO_KEY, AUTH_KEY)])
    # The changed byte is inside a value: the plaintext still reads, only the tag tells.
    assert not published(actions) and adapter.counters == {"wrong_auth_key": 1}


def test_keys_are_tried_in_order_and_the_one_that_fits_is_confirmed():
    pending, current = CipherKeys(OTHER_KEY), CipherKeys(DEMO_KEY)
    _, actions = run_adapter(kaifa_frames(KaifaMeterModel()), [pending, current])
    assert len(published(actions)) == 1
    assert [a.keys for a in actions if isinstance(a, KeyConfirmed)] == [current]


def test_segment_frames_built_by_hand_join_like_split_segments():
    apdu = bytes(range(256)) * 2
    frames = split_segments(apdu, 0x53, 0xFF)
    assert [f[6] for f in frames] == [0x00, 0x01, 0x12]  # CI: three segments 0x00, 0x01, 0x12
    assert frames[0] == encode_long(0x53, 0xFF, 0x00, b"\x01\x67" + apdu[:245])
    events = MBusFramer().feed(b"".join(frames))
    assert b"".join(segment_payload(e) for e in events) == apdu
