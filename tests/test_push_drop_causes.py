"""Why a pushed telegram is dropped, in causes a user can act on (issue 13 item 3).

The key causes come from real captures with wrong key material: Netz NÖ's document sample (SC
0x20, no tag) and a Netz Burgenland L&G E450 with a tag and both keys (HDLC on the wire; its APDU
is what the security layer sees). The unsupported suite and layout come from the Netz NÖ capture
ALTERED as each test says: its security byte changed, or its plaintext changed and encrypted again
under the capture's own key, system title and frame counter.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from meterlink.machines.base import Dropped, Publish
from meterlink.machines.mbus import MBusAdapter
from meterlink.protocols.dlms.push import NO_KEY_SET, Outcome, decode_push
from meterlink.protocols.dlms.security import CipherKeys, encrypt, parse_ciphered, unverified_plaintext
from meterlink.protocols.hdlc import parse_frame
from meterlink.protocols.mbus import MBusFramer, segment_payload, split_segments

DATA = Path(__file__).parent / "data"
README = Path(__file__).parent.parent / "README.md"


def vector(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


NETZNOE = vector("kaifa_mbus_evn_netznoe_doc")
GH501 = vector("landisgyr_hdlc_netzburgenland_gh501")
NETZNOE_KEY = bytes.fromhex(NETZNOE["key_if_any"])
GH501_KEY = bytes.fromhex(GH501["key_if_any"])
GH501_AUTH = bytes.fromhex(GH501["auth_key_if_any"])
OTHER = bytes.fromhex("000102030405060708090A0B0C0D0E0F")

NETZNOE_APDU = b"".join(segment_payload(frame) for frame in MBusFramer().feed(bytes.fromhex(NETZNOE["hex_or_text"])))
GH501_APDU = parse_frame(bytes.fromhex(GH501["hex_or_text"])).information[3:]  # after the LLC bytes E6 E7 00
NETZNOE_PLAINTEXT = bytes.fromhex(NETZNOE["expected_values_if_given"]["decrypted_apdu_hex_published"])
GH501_PLAINTEXT = bytes.fromhex(GH501["expected_values_if_given"]["decrypted_apdu_hex_verified_by_us"])
BODY = 18  # 0F, invoke id (4), 0C and the date-time (12)


def mbus(apdu: bytes) -> bytes:
    """An APDU in M-Bus long frames as the Kaifa and Sagemcom meters cut them."""
    return b"".join(split_segments(apdu, 0x53, 0xFF))


def with_security_control(apdu: bytes, security_control: int) -> bytes:
    """ALTERED: the capture with its security byte changed (it follows the length, before the counter)."""
    at = len(apdu) - len(parse_ciphered(apdu).payload) - 5
    return apdu[:at] + bytes((security_control,)) + apdu[at + 1 :]


def reciphered(apdu: bytes, plaintext: bytes, key: bytes, auth_key: bytes | None = None) -> bytes:
    """ALTERED: `plaintext` in place of the capture's, encrypted under its key, title, counter and SC."""
    ciphered = parse_ciphered(apdu)
    return encrypt(plaintext, ciphered.system_title, ciphered.frame_counter, key, ciphered.security_control, auth_key)


BODY_UNWRAPPED = reciphered(NETZNOE_APDU, NETZNOE_PLAINTEXT[:BODY] + bytes.fromhex("090C") + b"181220000009", NETZNOE_KEY)
"""The Netz NÖ telegram whose body is its last element alone (the meter number), not a structure."""
EVENT_IN_CLEAR = bytes((0xC2,)) + NETZNOE_PLAINTEXT[1:]
"""The Netz NÖ plaintext sent unciphered with its APDU tag changed to event-notification (0xC2)."""
TAGGED_EVENT = reciphered(GH501_APDU, bytes((0xC2,)) + GH501_PLAINTEXT[1:], GH501_KEY, GH501_AUTH)
"""The L&G telegram with its plaintext's APDU tag changed to 0xC2, tag made with both keys."""


def verdict(apdu: bytes, *keys: CipherKeys):
    return decode_push(apdu, list(keys), None, "mbus", None)


# -- the published captures decode with their keys -----------------------------------------------


def test_the_captures_decode_with_their_keys():
    assert parse_ciphered(GH501_APDU).security_control == 0x30  # encrypted and authenticated, suite 0
    assert unverified_plaintext(parse_ciphered(GH501_APDU), GH501_KEY) == GH501_PLAINTEXT
    both = CipherKeys(GH501_KEY, GH501_AUTH)
    result = verdict(GH501_APDU, both)
    assert (result.outcome, result.keys, result.frame_counter) == (Outcome.DECODED, both, 0x002180F6)
    assert verdict(NETZNOE_APDU, CipherKeys(NETZNOE_KEY)).outcome is Outcome.DECODED


# -- the key causes, on real captures ------------------------------------------------------------


@pytest.mark.parametrize(("apdu", "keys", "outcome"), [
    (NETZNOE_APDU, CipherKeys(OTHER), Outcome.WRONG_KEY),
    (NETZNOE_APDU, CipherKeys(GH501_KEY, NETZNOE_KEY), Outcome.WRONG_KEY),
    (GH501_APDU, CipherKeys(OTHER, GH501_AUTH), Outcome.WRONG_KEY),
    (GH501_APDU, CipherKeys(OTHER), Outcome.WRONG_KEY),
    (GH501_APDU, CipherKeys(GH501_KEY), Outcome.NO_AUTH_KEY),
    (GH501_APDU, CipherKeys(GH501_KEY, OTHER), Outcome.WRONG_AUTH_KEY),
    (GH501_APDU, CipherKeys(GH501_KEY, GH501_KEY), Outcome.WRONG_AUTH_KEY),
    (GH501_APDU, CipherKeys(GH501_AUTH, GH501_KEY), Outcome.WRONG_KEY),
], ids=["netznoe-wrong-key", "netznoe-wrong-key-with-auth-key", "tagged-wrong-key", "tagged-wrong-key-no-auth-key",
        "tagged-no-auth-key", "tagged-wrong-auth-key", "tagged-key-given-twice", "tagged-keys-swapped"])
def test_key_material_is_named_by_the_key_that_is_wrong(apdu, keys, outcome):
    result = verdict(apdu, keys)
    assert result.outcome is outcome
    assert result.reading is None and result.keys is None
    assert result.frame_counter == parse_ciphered(apdu).frame_counter
    assert result.detail.endswith(outcome.advice) and outcome.advice


def test_no_key_at_all_is_no_key():
    for apdu in (NETZNOE_APDU, GH501_APDU):
        result = verdict(apdu)
        assert (result.outcome, result.detail) == (Outcome.NO_KEY, NO_KEY_SET)


@pytest.mark.parametrize(("candidates", "outcome"), [
    ([CipherKeys(OTHER, GH501_AUTH), CipherKeys(GH501_KEY, OTHER)], Outcome.WRONG_AUTH_KEY),
    ([CipherKeys(GH501_KEY, OTHER), CipherKeys(OTHER)], Outcome.WRONG_AUTH_KEY),
    ([CipherKeys(OTHER), CipherKeys(GH501_KEY)], Outcome.NO_AUTH_KEY),
    ([CipherKeys(GH501_KEY), CipherKeys(GH501_KEY, OTHER)], Outcome.WRONG_AUTH_KEY),
    ([CipherKeys(OTHER), CipherKeys(NETZNOE_KEY)], Outcome.WRONG_KEY),
], ids=["pending-wrong-key", "current-wrong-key", "pending-wrong-no-auth", "auth-key-wrong-over-missing", "both-wrong"])
def test_a_change_over_reports_the_most_telling_cause_of_its_keys(candidates, outcome):
    """During a hybrid change-over two key pairs are tried: the verdict of the one that got
    furthest into the telegram is the one the user needs."""
    assert verdict(GH501_APDU, *candidates).outcome is outcome


def test_a_change_over_decodes_with_whichever_pair_fits():
    pending, current = CipherKeys(GH501_KEY, GH501_AUTH), CipherKeys(GH501_KEY, OTHER)
    assert verdict(GH501_APDU, current, pending).keys == pending
    assert verdict(GH501_APDU, pending, current).keys == pending


# -- unsupported suite and layout, on real captures ALTERED ----------------------------------------


@pytest.mark.parametrize("security_control", [0x22, 0x2F, 0xA0, 0x32], ids=["suite-2", "suite-15", "compression", "tagged-suite-2"])
@pytest.mark.parametrize("keys", [[], [CipherKeys(NETZNOE_KEY)]], ids=["no-key", "key"])
def test_an_unsupported_security_control_is_unsupported_suite(security_control, keys):
    """ALTERED: the Netz NÖ capture's security byte 0x20 changed."""
    result = decode_push(with_security_control(NETZNOE_APDU, security_control), keys, None, "mbus", None)
    assert result.outcome is Outcome.UNSUPPORTED_SUITE
    assert f"security control 0x{security_control:02X}" in result.detail and result.detail.endswith(Outcome.UNSUPPORTED_SUITE.advice)


def test_suite_1_reads_as_suite_0():
    """ALTERED: 0x20 changed to 0x21, what TINETZ's Kaifa meters send: suite 1 ciphers push data with
    AES-GCM-128 too (without a tag the security byte is not authenticated, so the key still fits)."""
    assert verdict(with_security_control(NETZNOE_APDU, 0x21), CipherKeys(NETZNOE_KEY)).outcome is Outcome.DECODED


@pytest.mark.parametrize(("apdu", "keys"), [
    (BODY_UNWRAPPED, [CipherKeys(NETZNOE_KEY)]),
    (EVENT_IN_CLEAR, []),
    (TAGGED_EVENT, [CipherKeys(GH501_KEY, GH501_AUTH)]),
], ids=["body-not-a-structure", "event-notification-in-clear", "tagged-event-notification"])
def test_content_that_cannot_be_mapped_is_unsupported_layout(apdu, keys):
    result = decode_push(apdu, keys, None, "mbus", None)
    assert result.outcome is Outcome.UNSUPPORTED_LAYOUT and result.reading is None
    assert result.detail.endswith(Outcome.UNSUPPORTED_LAYOUT.advice)


def test_an_untagged_event_notification_cannot_be_told_from_a_wrong_key():
    """ALTERED as TAGGED_EVENT, but under the untagged Netz NÖ telegram: without a tag only the
    plaintext's shape says whether the key fits, so it is a wrong key."""
    altered = reciphered(NETZNOE_APDU, bytes((0xC2,)) + NETZNOE_PLAINTEXT[1:], NETZNOE_KEY)
    assert verdict(altered, CipherKeys(NETZNOE_KEY)).outcome is Outcome.WRONG_KEY


# -- each cause has its own counter on the link ----------------------------------------------------


def test_the_mbus_link_counts_each_cause_apart():
    """One telegram per cause through framer and machine; a good one after each, with keys that fit."""
    script = [
        (NETZNOE_APDU, [CipherKeys(OTHER)], "wrong_key"),
        (GH501_APDU, [CipherKeys(GH501_KEY)], "no_auth_key"),
        (GH501_APDU, [CipherKeys(GH501_KEY, OTHER)], "wrong_auth_key"),
        (with_security_control(NETZNOE_APDU, 0x22), [CipherKeys(NETZNOE_KEY)], "unsupported_suite"),
        (BODY_UNWRAPPED, [CipherKeys(NETZNOE_KEY)], "unsupported_layout"),
        (EVENT_IN_CLEAR, [], "unsupported_layout"),
    ]
    keys: list[CipherKeys] = []
    adapter = MBusAdapter(keys=lambda: keys)
    framer = MBusFramer()
    drops: list[Dropped] = []
    for apdu, candidates, _ in script:
        keys[:] = candidates
        for event in framer.feed(mbus(apdu)):
            adapter.handle(event, 1.0)
        actions = adapter.take_actions()
        assert not any(isinstance(action, Publish) for action in actions)
        drops += [action for action in actions if isinstance(action, Dropped)]
    assert [drop.cause for drop in drops] == [cause for _, _, cause in script]
    assert adapter.counters == Counter({"wrong_key": 1, "no_auth_key": 1, "wrong_auth_key": 1, "unsupported_suite": 1,
                                        "unsupported_layout": 2})
    assert len({drop.detail for drop in drops}) == len(drops)
    for drop in drops:
        for key in (NETZNOE_KEY, GH501_KEY, GH501_AUTH, OTHER):
            assert key.hex() not in drop.detail.lower()
    keys[:] = [CipherKeys(GH501_KEY, GH501_AUTH)]
    for event in framer.feed(mbus(GH501_APDU)):
        adapter.handle(event, 1.0)
    assert sum(isinstance(action, Publish) for action in adapter.take_actions()) == 1


# -- the README says what to do -------------------------------------------------------------------


def test_the_readme_says_what_to_do_for_every_drop_cause():
    section = README.read_text(encoding="utf-8").split("\n## Troubleshooting\n")[1].split("\n## ")[0]
    for outcome in Outcome:
        if outcome is not Outcome.DECODED:
            assert f"`{outcome.value}`" in section, outcome
    assert "`length_overflow`" in section
