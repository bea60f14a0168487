"""Encrypted P1 (issue 15 item 2): the codec and the P1 reader on real captures.

The Luxembourg Smarty capture of NEXXTLAB/go-smarty-reader and the Energienetze Steiermark
Sagemcom capture of rddl-network/EnergyAgent (tests/data). Expected values come from dsmr_parser
1.11.2, which decrypts the APDUs itself (through dlms-cosem), and from the sources' statements;
the plaintexts are checked with the `cryptography` package directly, never with meterlink.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from dlms_cosem.security import SecurityControlField, encrypt as dlms_cosem_encrypt
from dsmr_parser import telegram_specifications
from dsmr_parser.exceptions import DecryptionError
from dsmr_parser.parsers import TelegramParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterlink.machines.base import Dropped, KeyConfirmed, Noted, Publish
from meterlink.machines.p1 import P1Reader
from meterlink.protocols.dlms.push import Outcome
from meterlink.protocols.dlms.security import CipherKeys, KeysUnavailable, encrypt
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.p1 import (
    CrcStatus,
    EncryptedTelegram,
    NoiseDiscarded,
    P1Framer,
    TelegramFramed,
    check_telegram,
    telegram_bytes,
)
from meterlink.protocols.p1_encrypted import LUXEMBOURG_AUTH_KEY, decrypt_telegram

DATA = Path(__file__).parent / "data"
SMARTY = json.loads((DATA / "sagemcom_p1_smarty_nexxtlab.json").read_text())
STEIERMARK = json.loads((DATA / "sagemcom_p1_steiermark_rddl.json").read_text())
SMARTY_APDU = bytes.fromhex(SMARTY["hex_or_text"])
SMARTY_KEY = bytes.fromhex(SMARTY["key_if_any"])
STEIERMARK_APDU = bytes.fromhex(STEIERMARK["hex_or_text"])
STEIERMARK_KEY = bytes.fromhex(STEIERMARK["key_if_any"])
STEIERMARK_AUTH_KEY = bytes.fromhex(STEIERMARK["auth_key_if_any"])
OTHER_KEY = bytes(range(16))
TITLE = b"SAG5" + bytes(4)


def gcm_open(apdu: bytes, key: bytes, aad: bytes) -> bytes:
    """The plaintext by the `cryptography` package alone, tag checked (header as in the Green Book:
    DB 08 title(8) 82 LL LL SC FC(4) ciphertext tag(12))."""
    iv, tag = apdu[2:10] + apdu[14:18], apdu[-12:]
    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(apdu[18:-12]) + decryptor.finalize()


def ctr_open(apdu: bytes, key: bytes) -> bytes:
    """The plaintext without the tag: GCM's keystream is AES-CTR from IV || 00000002."""
    iv = apdu[2:10] + apdu[14:18]
    decryptor = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor()
    return decryptor.update(apdu[18:-12]) + decryptor.finalize()


def values(telegram) -> dict[str, object]:
    return {value.obis: value.value for value in telegram.values}


# -- the codec on the real captures -----------------------------------------------------------


def test_the_smarty_capture_decrypts_to_its_telegram_and_dsmr_parser_values() -> None:
    """The tag verifies with the Smarty specification's published AK (checked with `cryptography`
    alone); the plaintext's CRC holds and its values are dsmr_parser's."""
    independent = gcm_open(SMARTY_APDU, SMARTY_KEY, b"\x30" + LUXEMBOURG_AUTH_KEY)
    assert independent.decode("ascii") == SMARTY["expected_values_if_given"]["decrypted_text_by_dlms_cosem"]
    expected = TelegramParser(telegram_specifications.SAGEMCOM_T210_D_R).parse(
        SMARTY["hex_or_text"], encryption_key=SMARTY["key_if_any"], authentication_key=LUXEMBOURG_AUTH_KEY.hex())

    result = decrypt_telegram(SMARTY_APDU, [CipherKeys(SMARTY_KEY)])  # no AK: the published one is tried
    assert result.outcome is Outcome.DECODED and result.plaintext == independent
    assert result.frame_counter == 0x0005A8E3
    framed = check_telegram(result.plaintext)
    assert framed.crc is CrcStatus.OK and framed.telegram is not None
    read = values(framed.telegram)
    assert Decimal(str(read["1-0:1.8.0.255"])) == expected.ELECTRICITY_IMPORTED_TOTAL.value == Decimal("6.695")
    assert Decimal(str(read["1-0:2.8.0.255"])) == expected.ELECTRICITY_EXPORTED_TOTAL.value == Decimal("0.025")
    assert Decimal(str(read["1-0:3.8.0.255"])) == expected.ELECTRICITY_REACTIVE_IMPORTED_TOTAL.value
    assert Decimal(str(read["1-0:4.8.0.255"])) == expected.ELECTRICITY_REACTIVE_EXPORTED_TOTAL.value
    # dsmr_parser gives the time in UTC (09:21:22Z); the telegram's W means CET, 10:21:22 local.
    assert framed.telegram.captured_at == "2018-01-30T10:21:22"
    assert expected.P1_MESSAGE_TIMESTAMP.value.isoformat() == "2018-01-30T09:21:22+00:00"


def test_the_smarty_capture_with_a_wrong_key_or_auth_key() -> None:
    assert decrypt_telegram(SMARTY_APDU, [CipherKeys(OTHER_KEY)]).outcome is Outcome.WRONG_KEY
    wrong_auth = decrypt_telegram(SMARTY_APDU, [CipherKeys(SMARTY_KEY, OTHER_KEY)])
    assert wrong_auth.outcome is Outcome.WRONG_AUTH_KEY and "auth_key" in wrong_auth.detail
    with pytest.raises(DecryptionError):  # dsmr_parser agrees: that AK does not verify the tag
        TelegramParser(telegram_specifications.SAGEMCOM_T210_D_R).parse(
            SMARTY["hex_or_text"], encryption_key=SMARTY["key_if_any"], authentication_key=OTHER_KEY.hex())
    no_key = decrypt_telegram(SMARTY_APDU, [])
    assert no_key.outcome is Outcome.NO_KEY and no_key.frame_counter == 0x0005A8E3
    assert decrypt_telegram(SMARTY_APDU, [CipherKeys(SMARTY_KEY)], 0x0005A8E3).outcome is Outcome.REPLAYED
    assert decrypt_telegram(SMARTY_APDU, [CipherKeys(SMARTY_KEY)], 0x0005A8E2).outcome is Outcome.DECODED


def test_the_steiermark_capture_decrypts_but_its_published_auth_key_is_not_the_meters() -> None:
    """Investigated: the encryption key is right (the plaintext's CRC ED42 holds, and the energies
    are those the source asserts), but the tag verifies with neither the published AK nor any other
    additional data tried, and dsmr_parser refuses it the same way. The source's reader never checks
    the tag (PyCryptodome's decrypt() without verify()), so its AK was never tested; Energienetze
    Steiermark issues both keys (GUEK and GAK) in its portal. meterlink reports the AK as wrong."""
    plaintext = ctr_open(STEIERMARK_APDU, STEIERMARK_KEY)
    assert plaintext.decode("ascii") == STEIERMARK["expected_values_if_given"]["decrypted_text_verified_by_us"]
    for aad in (b"\x30" + STEIERMARK_AUTH_KEY, STEIERMARK_AUTH_KEY, b"\x30", b"", b"\x30" + LUXEMBOURG_AUTH_KEY):
        with pytest.raises(InvalidTag):
            gcm_open(STEIERMARK_APDU, STEIERMARK_KEY, aad)
    spec = telegram_specifications.AUSTRIA_ENERGIENETZE_STEIERMARK
    with pytest.raises(DecryptionError):
        TelegramParser(spec).parse(STEIERMARK["hex_or_text"], encryption_key=STEIERMARK["key_if_any"],
                                   authentication_key=STEIERMARK["auth_key_if_any"])
    unverified = TelegramParser(spec).parse(STEIERMARK["hex_or_text"], encryption_key=STEIERMARK["key_if_any"],
                                            authentication_key=None)  # dsmr_parser's opt-in: tag not checked
    framed = check_telegram(plaintext)
    assert framed.crc is CrcStatus.OK and framed.telegram is not None
    read = values(framed.telegram)
    assert read["1-0:1.8.0.255"] == unverified.ELECTRICITY_IMPORTED_TOTAL.value == 7112944  # the source's WirkenergieP
    assert read["1-0:2.8.0.255"] == unverified.ELECTRICITY_EXPORTED_TOTAL.value == 33153972  # WirkenergieN

    published = decrypt_telegram(STEIERMARK_APDU, [CipherKeys(STEIERMARK_KEY, STEIERMARK_AUTH_KEY)])
    assert published.outcome is Outcome.WRONG_AUTH_KEY and published.plaintext is None
    # Without an AK only the Smarty's published one is tried: the meter has its own (the GAK).
    without = decrypt_telegram(STEIERMARK_APDU, [CipherKeys(STEIERMARK_KEY)])
    assert without.outcome is Outcome.NO_AUTH_KEY and "GAK" in without.detail
    assert decrypt_telegram(STEIERMARK_APDU, [CipherKeys(OTHER_KEY)]).outcome is Outcome.WRONG_KEY
    assert decrypt_telegram(STEIERMARK_APDU, [CipherKeys(OTHER_KEY, STEIERMARK_AUTH_KEY)]).outcome is Outcome.WRONG_KEY


def test_a_steiermark_telegram_encrypted_by_dlms_cosem_opens_with_guek_and_gak() -> None:
    """The AAD is SC || GAK as dlms-cosem builds it (the encrypter dsmr_parser's Sagemcom T210-D-r
    tests use): the Steiermark telegram re-encrypted by dlms-cosem under a GUEK and GAK of ours."""
    guek, gak = bytes.fromhex("A8C74F67ECA8EF9C55C4743FF6F4F031"), bytes.fromhex("00" * 15 + "01")
    plaintext = STEIERMARK["expected_values_if_given"]["decrypted_text_verified_by_us"].encode("ascii")
    control = SecurityControlField(security_suite=0, authenticated=True, encrypted=True)
    body = dlms_cosem_encrypt(control, TITLE, 0x1234, guek, plaintext, gak)
    inner = bytes((control.to_bytes()[0],)) + (0x1234).to_bytes(4, "big") + body
    apdu = b"\xdb\x08" + TITLE + b"\x82" + len(inner).to_bytes(2, "big") + inner
    (event,) = [e for e in P1Framer().feed(apdu) if isinstance(e, EncryptedTelegram)]
    assert event.system_title == TITLE
    opened = decrypt_telegram(event.apdu, [CipherKeys(guek, gak)])
    assert opened.outcome is Outcome.DECODED and opened.plaintext == plaintext
    assert decrypt_telegram(event.apdu, [CipherKeys(guek)]).outcome is Outcome.NO_AUTH_KEY


# -- the framer -------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 2, 3, 11, 13, 64, 4096])
def test_the_framer_finds_apdus_split_across_feeds_amid_noise_and_plain_telegrams(chunk: int) -> None:
    plain = telegram_bytes("EST5\\253717584_A", ["1-0:1.8.0(007112944*Wh)"])
    stream = b"\x00\xff noise" + SMARTY_APDU + b"\r\n" + plain + b"\xdb" + STEIERMARK_APDU + SMARTY_APDU
    framer = P1Framer()
    events = [event for at in range(0, len(stream), chunk) for event in framer.feed(stream[at : at + chunk])]
    encrypted = [event.apdu for event in events if isinstance(event, EncryptedTelegram)]
    assert encrypted == [SMARTY_APDU, STEIERMARK_APDU, SMARTY_APDU]
    assert [event.raw for event in events if isinstance(event, TelegramFramed)] == [plain]
    assert sum(event.count for event in events if isinstance(event, NoiseDiscarded)) == len(b"\x00\xff noise") + 2 + 1
    assert not framer.in_telegram


def test_a_stray_db_in_noise_does_not_hold_the_stream() -> None:
    """`DB` followed by no system title (08 and three capital letters) is noise: the plain telegram
    after it is framed at once, not swallowed into an APDU of the length that follows."""
    plain = telegram_bytes("ISK5\\2M550T-1012", ["1-0:1.8.1(000123.456*kWh)"])
    for stray in (b"\xdb", b"\xdb\x08", b"\xdb\x08sag", b"\xdb\x08SA\x00", b"\xdb\x07SAG", b"\xdb\x08SAG12345\x83\xff\xff\xff"):
        framer = P1Framer()
        events = framer.feed(stray + plain)
        assert [event.raw for event in events if isinstance(event, TelegramFramed)] == [plain], stray
        assert not framer.in_telegram


# -- the P1 reader ----------------------------------------------------------------------------


class Link:
    """A framer and a P1 reader as the actor drives them, with keys that can change."""

    def __init__(self, keys: list[CipherKeys] | None = None, legacy: bool = False) -> None:
        self.keys = keys or []
        self.unavailable: str | None = None
        self.framer = P1Framer()
        self.machine = P1Reader(keys=self.provide, legacy=legacy)
        self.actions: list = []

    def provide(self) -> list[CipherKeys]:
        if self.unavailable:
            raise KeysUnavailable(self.unavailable)
        return self.keys

    def feed(self, data: bytes) -> list:
        for event in self.framer.feed(data):
            self.machine.handle(event, 7.0)
        actions = self.machine.take_actions()
        self.actions += actions
        return actions

    def drops(self) -> list[str]:
        return [action.cause for action in self.actions if isinstance(action, Dropped)]


def ours(plaintext: bytes, counter: int, key: bytes = OTHER_KEY, auth_key: bytes | None = None, sc: int | None = None) -> bytes:
    control = sc if sc is not None else (0x30 if auth_key is not None else 0x20)
    return encrypt(plaintext, TITLE, counter, key, control, auth_key)


PLAIN = telegram_bytes("EST5\\253717584_A", ["0-0:1.0.0(230817152425S)", "1-0:1.8.0(007112944*Wh)"])


def test_the_reader_publishes_the_smarty_telegram_and_confirms_its_key() -> None:
    link = Link([CipherKeys(SMARTY_KEY)])
    actions = link.feed(SMARTY_APDU)
    assert [type(action) for action in actions] == [KeyConfirmed, Publish]
    assert actions[0].keys == CipherKeys(SMARTY_KEY)
    reading = actions[1].reading
    assert reading.kind == "p1" and reading.received_at == 7.0 and reading.captured_at == "2018-01-30T10:21:22"
    # 0-0:42.0.0 (53414731...) is the ASCII of the meter's name, as the Smarty P1 specification states
    assert reading.meter_id == bytes.fromhex("53414731303330373030313134303034").decode("ascii") == "SAG1030700114004"
    assert link.machine.last_frame_counter == 0x0005A8E3 and link.machine.hunting.is_active
    assert link.machine.counters["telegrams"] == 1
    link.feed(SMARTY_APDU)  # the same telegram again: replayed
    assert link.drops() == ["replayed"] and link.machine.counters["replayed"] == 1


def test_plain_telegrams_still_read_on_a_link_with_keys() -> None:
    link = Link([CipherKeys(OTHER_KEY)])
    link.feed(PLAIN + ours(PLAIN, 5) + PLAIN)
    published = [action for action in link.actions if isinstance(action, Publish)]
    assert len(published) == 3 and link.drops() == [] and link.machine.last_frame_counter == 5


@pytest.mark.parametrize("cause, keys, apdu", [
    ("no_key", [], SMARTY_APDU),
    ("wrong_key", [CipherKeys(OTHER_KEY)], SMARTY_APDU),
    ("no_auth_key", [CipherKeys(STEIERMARK_KEY)], STEIERMARK_APDU),
    ("wrong_auth_key", [CipherKeys(STEIERMARK_KEY, STEIERMARK_AUTH_KEY)], STEIERMARK_APDU),
    ("unsupported_suite", [CipherKeys(OTHER_KEY)], ours(PLAIN, 9, sc=0x22)),
    ("unsupported_layout", [CipherKeys(OTHER_KEY, OTHER_KEY)], ours(b"not a telegram at all", 9, auth_key=OTHER_KEY)),
    ("unparseable", [CipherKeys(OTHER_KEY)], b"\xdb\x08" + TITLE + b"\x09\x30" + bytes(8)),  # shorter than its tag
])
def test_each_cause_drops_the_telegram_and_says_what_to_do(cause: str, keys: list[CipherKeys], apdu: bytes) -> None:
    link = Link(keys)
    link.feed(apdu)
    (drop,) = [action for action in link.actions if isinstance(action, Dropped)]
    assert drop.cause == cause and link.machine.counters[cause] == 1
    outcome = Outcome(cause)
    assert outcome.advice in drop.detail
    assert link.machine.hunting.is_active and not link.framer.in_telegram
    link.feed(PLAIN)  # the link goes on
    assert isinstance(link.actions[-1], Publish)


def test_keys_that_cannot_be_read_drop_as_no_key_with_the_reason() -> None:
    link = Link([CipherKeys(OTHER_KEY)])
    link.unavailable = "the key store keys.bin cannot be read"
    link.feed(ours(PLAIN, 3))
    (drop,) = [action for action in link.actions if isinstance(action, Dropped)]
    assert drop.cause == "no_key" and "keys.bin cannot be read" in drop.detail


def test_a_decrypted_telegram_follows_the_crc_legacy_and_line_rules() -> None:
    bad_crc = PLAIN.replace(b"007112944", b"007112945")
    legacy = b"/ISk5\\2MT382-1000\r\n\r\n1-0:1.8.1(00123.456*kWh)\r\n!\r\n"
    bad_line = telegram_bytes("SAG5\\253717584_A", ["1-0:1.8.0(007112944*Wh)", "1-0:99.99.9(what)(ever)(x)"])
    link = Link([CipherKeys(OTHER_KEY)])
    link.feed(ours(bad_crc, 1) + ours(legacy, 2) + ours(bad_line, 3))
    assert link.drops() == ["crc_error", "crc_missing"]
    assert [type(action) for action in link.actions if not isinstance(action, KeyConfirmed)][-2:] == [Publish, Noted]
    # The key opened all three: the frame counter is the meter's, whatever the text then holds.
    assert link.machine.last_frame_counter == 3
    legacy_link = Link([CipherKeys(OTHER_KEY)], legacy=True)
    legacy_link.feed(ours(legacy, 2))
    assert isinstance(legacy_link.actions[-1], Publish)


def test_an_authenticated_telegram_with_our_keys_and_no_tag_without_an_auth_key() -> None:
    tagged = Link([CipherKeys(OTHER_KEY, STEIERMARK_AUTH_KEY)])
    tagged.feed(ours(PLAIN, 1, auth_key=STEIERMARK_AUTH_KEY))
    assert isinstance(tagged.actions[-1], Publish)
    untagged = Link([CipherKeys(OTHER_KEY)])
    untagged.feed(ours(PLAIN, 1))  # SC 0x20: a right key is told by the whole telegram it gives
    assert isinstance(untagged.actions[-1], Publish)
    with_smarty_key = Link([CipherKeys(SMARTY_KEY)])
    with_smarty_key.feed(ours(PLAIN, 1))  # a wrong key without a tag: garbage, no telegram
    assert with_smarty_key.drops() == ["wrong_key"]


def test_a_pending_key_of_a_change_over_is_tried_first_and_confirmed() -> None:
    link = Link([CipherKeys(OTHER_KEY), CipherKeys(SMARTY_KEY)])  # pending first, as the key store gives them
    actions = link.feed(SMARTY_APDU)
    assert actions[0] == KeyConfirmed(CipherKeys(SMARTY_KEY))


# -- fuzz ---------------------------------------------------------------------------------------


SEEDS = [SMARTY_APDU, STEIERMARK_APDU, ours(PLAIN, 1, auth_key=OTHER_KEY), ours(PLAIN, 2)]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    apdu = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        at = draw(st.integers(0, len(apdu)))
        if kind == "flip" and at < len(apdu):
            apdu[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del apdu[at : at + draw(st.integers(1, 40))]
        elif kind == "insert":
            apdu[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "header" and len(apdu) > 18:
            apdu[draw(st.integers(10, 17))] = draw(st.integers(0, 255))
    return bytes(apdu)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.lists(mutated(), min_size=1, max_size=3), chunk=st.sampled_from([1, 5, 64, 4096]),
       key=st.sampled_from([[CipherKeys(SMARTY_KEY)], [CipherKeys(STEIERMARK_KEY, STEIERMARK_AUTH_KEY)],
                            [CipherKeys(OTHER_KEY, OTHER_KEY)], []]))
def test_mutated_encrypted_telegrams_never_crash(data: list[bytes], chunk: int, key: list[CipherKeys]) -> None:
    """The framer, decrypt_telegram, check_telegram and the reader on damaged APDUs: only
    ProtocolError may escape a decoder, and the reader takes everything."""
    stream = b"".join(data)
    for apdu in data:
        try:
            result = decrypt_telegram(apdu, key)
        except ProtocolError:
            continue
        if result.plaintext is not None:
            check_telegram(result.plaintext)
    machine = P1Reader(keys=lambda: key)
    framer = P1Framer()
    counted = Counter()
    for at in range(0, len(stream), chunk):
        for event in framer.feed(stream[at : at + chunk]):
            machine.handle(event, 1.0)
            counted[type(event).__name__] += 1
    for action in machine.take_actions():
        assert isinstance(action, (Publish, Dropped, Noted, KeyConfirmed))
