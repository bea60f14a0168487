"""One pushed DLMS telegram, from APDU to reading (seed 001 ch. B.3 and B.4).

The APDU is a general-glo/ded-ciphering wrapper around a data-notification, or (meters that do
not encrypt) the data-notification itself. Keys are tried in the order given (a pending key of a
hybrid change-over first); without an authentication tag a wrong key still "decrypts", so a key
counts as right only when the plaintext parses as what the link carries (`Contents`): a
data-notification here, a P1 telegram on an encrypted P1 port (`protocols.p1_encrypted`).

A telegram that fails says why in terms a user can act on: which of the two keys is wrong, a tag
with no authentication key to check it, a security suite or a content this decoder cannot read.
With several candidate keys the most telling verdict is reported: the one whose key got furthest
into the telegram.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ..errors import ProtocolError
from ..readings import Reading
from .notification import DATA_NOTIFICATION, DataNotification, parse_notification, to_reading
from .security import (
    GENERAL_DED_CIPHERING,
    GENERAL_GLO_CIPHERING,
    CipheredApdu,
    CipherKeys,
    DecryptionFailed,
    UnsupportedSecurity,
    decrypt,
    parse_ciphered,
    unverified_plaintext,
)


class Outcome(enum.Enum):
    """What became of a telegram: published, or the cause it is dropped under, with what to do."""

    advice: str

    def __new__(cls, value: str, advice: str = "") -> Outcome:
        outcome = object.__new__(cls)
        outcome._value_ = value
        outcome.advice = advice
        return outcome

    DECODED = "decoded"
    REPLAYED = "replayed"
    NO_KEY = "no_key"
    """Its detail comes from the caller, who knows why there is no key."""
    WRONG_KEY = "wrong_key", "check the key (GUEK, 32 hex digits) from the grid operator and set it again with meter_setkey"
    NO_AUTH_KEY = "no_auth_key", ("set the grid operator's second key (authentication key, AK or GAK) as auth_key "
                                  "with meter_setkey, beside the key")
    WRONG_AUTH_KEY = "wrong_auth_key", ("check the grid operator's second key (authentication key, AK or GAK) and set "
                                        "it again as auth_key with meter_setkey")
    UNSUPPORTED_SUITE = "unsupported_suite", ("meterlink reads security suites 0 and 1 (AES-GCM-128) without "
                                              "compression; please report the meter type with this line")
    UNSUPPORTED_LAYOUT = "unsupported_layout", ("meterlink cannot map what this meter pushes (its keys are not the problem); "
                                                "please report the meter type and grid operator with this line")
    UNPARSEABLE = "unparseable", "the telegram is damaged or not DLMS; if every telegram fails, report the meter type"


NO_KEY_SET = "the telegram is encrypted and no meter key is set"

_TELLING = (Outcome.WRONG_KEY, Outcome.NO_AUTH_KEY, Outcome.WRONG_AUTH_KEY, Outcome.UNPARSEABLE, Outcome.UNSUPPORTED_LAYOUT)
"""A candidate key's failures, least telling first: each got further into the telegram than the one
before (a key that decrypts tells more than one that does not)."""


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: Outcome
    detail: str = ""
    reading: Reading | None = None
    keys: CipherKeys | None = None
    frame_counter: int | None = None
    plaintext: bytes | None = None
    """The meter's plaintext, where the link reads it on its own (a P1 telegram's text)."""


class Contents(Protocol):
    """What the ciphered APDUs of a link carry: how its plaintext tells a right key, and is read."""

    @property
    def default_auth_key(self) -> bytes | None:
        """Tried when a telegram has a tag and no authentication key is set: a key published for
        every meter of a kind (the Luxembourg Smarty's); None where there is none."""

    def recognise(self, plaintext: bytes, system_title: bytes) -> PushResult | None:
        """The verdict on a plaintext of this kind; None when it is none (a wrong key's, without a tag)."""

    def read(self, plaintext: bytes, system_title: bytes | None) -> PushResult:
        """The verdict on a plaintext known to be the meter's (sent in clear, or its tag checked)."""


@dataclass(frozen=True, slots=True)
class Notifications:
    """Data-notifications, each read into a reading of the link kind `link`."""

    link: str
    received_at: float | None
    default_auth_key: bytes | None = None

    def recognise(self, plaintext: bytes, system_title: bytes) -> PushResult | None:
        notification = _notification(plaintext)
        return None if notification is None else _reading(notification, self.link, self.received_at, system_title)

    def read(self, plaintext: bytes, system_title: bytes | None) -> PushResult:
        return _read(plaintext, self.link, self.received_at, system_title)


def decode_push(
    apdu: bytes,
    keys: Sequence[CipherKeys],
    last_frame_counter: int | None,
    link: str,
    received_at: float | None,
    no_key: str = NO_KEY_SET,
) -> PushResult:
    """`no_key` is the drop's detail when the telegram is encrypted and `keys` is empty."""
    notifications = Notifications(link, received_at)
    if apdu[:1] not in (bytes((GENERAL_GLO_CIPHERING,)), bytes((GENERAL_DED_CIPHERING,))):
        return notifications.read(apdu, None)
    return decode_ciphered(apdu, keys, last_frame_counter, notifications, no_key)


def decode_ciphered(
    apdu: bytes,
    keys: Sequence[CipherKeys],
    last_frame_counter: int | None,
    contents: Contents,
    no_key: str = NO_KEY_SET,
) -> PushResult:
    """The verdict on a ciphered APDU whose plaintext is `contents`: its keys tried in order, the
    frame counter above `last_frame_counter`."""
    try:
        ciphered = parse_ciphered(apdu)
    except UnsupportedSecurity as error:
        return failed(Outcome.UNSUPPORTED_SUITE, str(error))
    except ProtocolError as error:
        return failed(Outcome.UNPARSEABLE, str(error))
    counter = ciphered.frame_counter
    if last_frame_counter is not None and counter <= last_frame_counter:
        return failed(Outcome.REPLAYED, f"frame counter {counter} is not above the last one ({last_frame_counter})", counter)
    if not keys:
        return failed(Outcome.NO_KEY, no_key, counter)
    attempts = []
    for candidate in keys:
        attempt = _attempt(ciphered, candidate, contents)
        if attempt.outcome is Outcome.DECODED:
            return replace(attempt, keys=candidate, frame_counter=counter)
        attempts.append(attempt)
    return replace(max(attempts, key=lambda attempt: _TELLING.index(attempt.outcome)), frame_counter=counter)


def _attempt(ciphered: CipheredApdu, keys: CipherKeys, contents: Contents) -> PushResult:
    """One candidate's verdict on a ciphered telegram."""
    auth_key = keys.authentication or contents.default_auth_key
    if ciphered.authenticated and auth_key is not None:
        try:
            plaintext = decrypt(ciphered, keys.encryption, auth_key)
        except DecryptionFailed:
            return _tag_mismatch(ciphered, keys, contents)
        return contents.read(plaintext, ciphered.system_title)
    plaintext = unverified_plaintext(ciphered, keys.encryption)
    if not ciphered.encrypted:
        return _no_auth_key(ciphered) if ciphered.authenticated else contents.read(plaintext, ciphered.system_title)
    verdict = contents.recognise(plaintext, ciphered.system_title)
    if verdict is None:
        return _wrong_key(ciphered)
    if ciphered.authenticated:
        return _no_auth_key(ciphered)
    return verdict


def _tag_mismatch(ciphered: CipheredApdu, keys: CipherKeys, contents: Contents) -> PushResult:
    # GCM cannot say which key made the tag fail; a plaintext that reads says the key is right.
    if contents.recognise(unverified_plaintext(ciphered, keys.encryption), ciphered.system_title) is None:
        return _wrong_key(ciphered)
    if keys.authentication is None:
        return _no_auth_key(ciphered)  # only the published default was tried: the meter has its own
    return failed(Outcome.WRONG_AUTH_KEY, f"the key decrypts the telegram but its authentication tag does not match "
                                           f"the authentication key (frame counter {ciphered.frame_counter})")


def _wrong_key(ciphered: CipheredApdu) -> PushResult:
    return failed(Outcome.WRONG_KEY, f"the telegram does not decrypt with the key (frame counter {ciphered.frame_counter})")


def _no_auth_key(ciphered: CipheredApdu) -> PushResult:
    return failed(Outcome.NO_AUTH_KEY, f"the telegram carries an authentication tag and no authentication key is set "
                                        f"(frame counter {ciphered.frame_counter})")


def _notification(plaintext: bytes) -> DataNotification | None:
    """The data-notification, or None when the plaintext is none (a wrong key's, without a tag)."""
    try:
        return parse_notification(plaintext)
    except ProtocolError:
        return None


def _read(apdu: bytes, link: str, received_at: float | None, system_title: bytes | None) -> PushResult:
    """A plaintext APDU that is known to be the meter's (sent in clear, or its tag checked)."""
    if not apdu:
        return failed(Outcome.UNPARSEABLE, "the telegram is empty")
    if apdu[0] != DATA_NOTIFICATION:
        return failed(Outcome.UNSUPPORTED_LAYOUT, f"APDU tag 0x{apdu[0]:02X}: neither ciphered nor a data-notification")
    try:
        notification = parse_notification(apdu)
    except ProtocolError as error:
        return failed(Outcome.UNPARSEABLE, str(error))
    return _reading(notification, link, received_at, system_title)


def _reading(notification: DataNotification, link: str, received_at: float | None, system_title: bytes | None) -> PushResult:
    try:
        reading = to_reading(notification, link, received_at, system_title)
    except ProtocolError as error:
        return failed(Outcome.UNSUPPORTED_LAYOUT, str(error))
    return PushResult(Outcome.DECODED, reading=reading)


def failed(outcome: Outcome, what: str, frame_counter: int | None = None) -> PushResult:
    detail = f"{what}: {outcome.advice}" if outcome.advice else what
    return PushResult(outcome, detail, frame_counter=frame_counter)
