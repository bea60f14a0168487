"""One pushed DLMS telegram, from APDU to reading (seed 001 ch. B.3 and B.4).

The APDU is a general-glo/ded-ciphering wrapper around a data-notification, or (meters that do
not encrypt) the data-notification itself. Keys are tried in the order given (a pending key of a
hybrid change-over first); without an authentication tag a wrong key still "decrypts", so a key
counts as right only when the plaintext parses as a data-notification.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ProtocolError
from ..readings import Reading
from .notification import DATA_NOTIFICATION, parse_notification, to_reading
from .security import GENERAL_DED_CIPHERING, GENERAL_GLO_CIPHERING, CipherKeys, DecryptionFailed, decrypt, parse_ciphered


class Outcome(enum.Enum):
    DECODED = "decoded"
    REPLAYED = "replayed"
    NO_KEY = "no_key"
    WRONG_KEY = "wrong_key"
    UNPARSEABLE = "unparseable"


NO_KEY_SET = "the telegram is encrypted and no meter key is set"


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: Outcome
    detail: str = ""
    reading: Reading | None = None
    keys: CipherKeys | None = None
    frame_counter: int | None = None


def decode_push(
    apdu: bytes,
    keys: Sequence[CipherKeys],
    last_frame_counter: int | None,
    link: str,
    received_at: float | None,
    no_key: str = NO_KEY_SET,
) -> PushResult:
    """`no_key` is the drop's detail when the telegram is encrypted and `keys` is empty."""
    if apdu[:1] == bytes((DATA_NOTIFICATION,)):
        return _plaintext(apdu, link, received_at)
    if apdu[:1] not in (bytes((GENERAL_GLO_CIPHERING,)), bytes((GENERAL_DED_CIPHERING,))):
        return PushResult(Outcome.UNPARSEABLE, f"APDU tag {apdu[:1].hex() or 'missing'}: neither ciphered nor a data-notification")
    try:
        ciphered = parse_ciphered(apdu)
    except ProtocolError as error:
        return PushResult(Outcome.UNPARSEABLE, str(error))
    counter = ciphered.frame_counter
    if last_frame_counter is not None and counter <= last_frame_counter:
        return PushResult(Outcome.REPLAYED, f"frame counter {counter} is not above the last one ({last_frame_counter})", frame_counter=counter)
    if not keys:
        return PushResult(Outcome.NO_KEY, no_key, frame_counter=counter)
    failure = f"no key decrypts the telegram (frame counter {counter})"
    for candidate in keys:
        try:
            plaintext = decrypt(ciphered, candidate.encryption, candidate.authentication)
            notification = parse_notification(plaintext)
            reading = to_reading(notification, link, received_at, ciphered.system_title)
        except DecryptionFailed as error:
            failure = str(error)
            continue
        except ProtocolError:
            continue
        return PushResult(Outcome.DECODED, reading=reading, keys=candidate, frame_counter=counter)
    return PushResult(Outcome.WRONG_KEY, f"wrong key: {failure}", frame_counter=counter)


def _plaintext(apdu: bytes, link: str, received_at: float | None) -> PushResult:
    try:
        return PushResult(Outcome.DECODED, reading=to_reading(parse_notification(apdu), link, received_at))
    except ProtocolError as error:
        return PushResult(Outcome.UNPARSEABLE, str(error))
