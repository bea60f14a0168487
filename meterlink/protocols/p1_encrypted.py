"""Encrypted P1: the telegram inside a general-glo-ciphering APDU (Luxembourg Smarty P1
specification 1.1.3 ch. 3.2.5; Energienetze Steiermark's Sagemcom T210-D-r and T216-D).

The meter sends `DB 08 <system title> <length> <SC> <frame counter> <ciphertext>[<tag>]` on its P1
port instead of the telegram; the plaintext is the telegram, `/` to its CRC line. Decryption and
the verdict on the keys are the push links' (`dlms.push.decode_ciphered`, `dlms.security`): a key
is right when the plaintext is a whole telegram, and a tag that does not match says which key is
wrong. Every Smarty authenticates with the key its specification publishes, so that key is tried
when a telegram has a tag and the user set no authentication key.

How to use it::

    for event in P1Framer().feed(data):                  # plain and encrypted telegrams alike
        if isinstance(event, EncryptedTelegram):
            result = decrypt_telegram(event.apdu, [CipherKeys(key, auth_key)])
            if result.outcome is Outcome.DECODED:
                framed = check_telegram(result.plaintext)  # CRC and lines, as for a plain telegram
            else:
                print(result.outcome.value, result.detail)  # wrong_key, no_auth_key, ...

`event.system_title` names the meter (its first three letters are the maker's FLAG id) without a
key. Pass the last frame counter accepted to refuse replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .dlms.push import NO_KEY_SET, Outcome, PushResult, decode_ciphered, failed
from .dlms.security import CipherKeys
from .p1 import is_telegram

LUXEMBOURG_AUTH_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
"""The authentication key of every Luxembourg Smarty (its P1 specification, ch. 3.2.5); grid
operators there hand out only the encryption key."""


@dataclass(frozen=True, slots=True)
class Telegrams:
    """The contents of an encrypted P1 port: one telegram per APDU, kept as text for the P1 reader."""

    default_auth_key: bytes | None = LUXEMBOURG_AUTH_KEY

    def recognise(self, plaintext: bytes, system_title: bytes) -> PushResult | None:
        return PushResult(Outcome.DECODED, plaintext=plaintext) if is_telegram(plaintext) else None

    def read(self, plaintext: bytes, system_title: bytes | None) -> PushResult:
        return self.recognise(plaintext, system_title or b"") or failed(
            Outcome.UNSUPPORTED_LAYOUT, f"the decrypted APDU is no P1 telegram: it begins {plaintext[:16].hex(' ')}")


TELEGRAMS = Telegrams()


def decrypt_telegram(
    apdu: bytes,
    keys: Sequence[CipherKeys],
    last_frame_counter: int | None = None,
    no_key: str = NO_KEY_SET,
) -> PushResult:
    """The verdict on one encrypted telegram: DECODED with its text in `plaintext` (not yet checked
    against its CRC), else the cause and a detail saying what to do. `no_key` is the detail when
    `keys` is empty."""
    return decode_ciphered(apdu, keys, last_frame_counter, TELEGRAMS, no_key)
