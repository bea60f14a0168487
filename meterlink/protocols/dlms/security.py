"""General-glo-ciphering and general-ded-ciphering (DLMS UA Green Book 9.2.7; seed 001 ch. B.3).

`DB|DC 08 <system title> <length> <SC> <frame counter(4)> <ciphertext>[<tag(12)>]`. The security
control byte SC: bit 4 authentication, bit 5 encryption, low nibble the security suite (0 or 1:
both AES-GCM-128 here). IV = system title ‖ frame counter. Without the authentication bit there is
no tag, and GCM without its tag is AES-CTR from the counter block IV ‖ 00000002. With it, the last
12 bytes are the tag and SC ‖ authentication key is the additional data.

A tag that does not match cannot tell which of the two keys is wrong. `unverified_plaintext` is the
plaintext the encryption key gives without the tag: when it reads as an APDU, the encryption key is
right and the authentication key is not (the caller judges that, it knows which APDUs it expects).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import ProtocolError
from .axdr import AxdrError, decode_length, encode_length

GENERAL_GLO_CIPHERING = 0xDB
GENERAL_DED_CIPHERING = 0xDC  # Green Book 9.5: [220]; 0xDD [221] is general-ciphering, another layout
TAG_SIZE = 12


class SecurityError(ProtocolError):
    """A ciphered APDU that cannot be unwrapped."""


class DecryptionFailed(SecurityError):
    """Wrong or missing key, or a tag that does not match: reported as such, never with key bytes."""


class UnsupportedSecurity(SecurityError):
    """A security control byte this decoder cannot follow: a suite other than 0 and 1, or compression."""


class SecurityControl(enum.IntFlag):
    AUTHENTICATION = 0x10
    ENCRYPTION = 0x20
    BROADCAST_KEY = 0x40
    COMPRESSION = 0x80


@dataclass(frozen=True, slots=True)
class CipheredApdu:
    """A general-glo/ded-ciphering APDU before decryption."""

    tag: int
    system_title: bytes
    security_control: int
    frame_counter: int
    payload: bytes

    @property
    def authenticated(self) -> bool:
        return bool(self.security_control & SecurityControl.AUTHENTICATION)

    @property
    def encrypted(self) -> bool:
        return bool(self.security_control & SecurityControl.ENCRYPTION)

    @property
    def suite(self) -> int:
        return self.security_control & 0x0F

    @property
    def iv(self) -> bytes:
        return self.system_title + self.frame_counter.to_bytes(4, "big")


class KeysUnavailable(Exception):
    """Raised by a key provider whose store cannot be read: the telegram is dropped with this
    message, and the link goes on (a plaintext telegram is still read)."""


@dataclass(frozen=True, slots=True, repr=False)
class CipherKeys:
    """The keys one meter's telegrams are protected with; the repr never shows them."""

    encryption: bytes
    authentication: bytes | None = None

    def __repr__(self) -> str:
        return "CipherKeys(****)"


def parse_ciphered(apdu: bytes) -> CipheredApdu:
    if len(apdu) < 2 or apdu[0] not in (GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING):
        raise SecurityError(f"ciphered APDU: expected tag 0xDB or 0xDC, got {apdu[:1].hex() or 'nothing'}")
    title_length = apdu[1]
    if title_length != 8 or len(apdu) < 10:
        raise SecurityError(f"ciphered APDU: system title length {title_length}, expected 8")
    system_title = bytes(apdu[2:10])
    try:
        length, offset = decode_length(apdu, 10)
    except AxdrError as error:
        raise SecurityError(f"ciphered APDU: {error}") from None
    if length < 5 or offset + length > len(apdu):
        raise SecurityError(f"ciphered APDU: length {length} at byte 10, {len(apdu) - offset} bytes follow")
    security_control = apdu[offset]
    if security_control & (SecurityControl.COMPRESSION | 0x0E):
        raise UnsupportedSecurity(f"ciphered APDU: security control 0x{security_control:02X} is not supported (suite 0/1, no compression)")
    frame_counter = int.from_bytes(apdu[offset + 1 : offset + 5], "big")
    payload = bytes(apdu[offset + 5 : offset + length])
    if security_control & SecurityControl.AUTHENTICATION and len(payload) < TAG_SIZE:
        raise SecurityError(f"ciphered APDU: {len(payload)} bytes after the frame counter, shorter than its authentication tag")
    return CipheredApdu(apdu[0], system_title, security_control, frame_counter, payload)


def decrypt(ciphered: CipheredApdu, key: bytes, auth_key: bytes | None = None) -> bytes:
    """The plaintext APDU; DecryptionFailed when the tag does not match the keys."""
    if not ciphered.authenticated:
        return unverified_plaintext(ciphered, key)
    body, tag = ciphered.payload[:-TAG_SIZE], ciphered.payload[-TAG_SIZE:]
    decryptor = Cipher(_aes(key), modes.GCM(ciphered.iv, tag, min_tag_length=TAG_SIZE)).decryptor()
    additional = bytes((ciphered.security_control,)) + (auth_key or b"")
    # Authentication only: the body is sent in clear and is part of the additional data.
    decryptor.authenticate_additional_data(additional if ciphered.encrypted else additional + body)
    try:
        plaintext = decryptor.update(body) if ciphered.encrypted else body
        decryptor.finalize()
    except InvalidTag:
        raise DecryptionFailed(f"ciphered APDU (frame counter {ciphered.frame_counter}): authentication tag does not match") from None
    return plaintext


def unverified_plaintext(ciphered: CipheredApdu, key: bytes) -> bytes:
    """The plaintext without checking the tag: GCM's keystream is AES-CTR from IV ‖ 00000002."""
    body = ciphered.payload[:-TAG_SIZE] if ciphered.authenticated else ciphered.payload
    if not ciphered.encrypted:
        return body
    decryptor = Cipher(_aes(key), modes.CTR(ciphered.iv + b"\x00\x00\x00\x02")).decryptor()
    return decryptor.update(body) + decryptor.finalize()


def _aes(key: bytes) -> algorithms.AES:
    if len(key) != 16:
        raise DecryptionFailed("ciphered APDU: the encryption key must be 16 bytes (AES-128)")
    return algorithms.AES(key)


def encrypt(plaintext: bytes, system_title: bytes, frame_counter: int, key: bytes, security_control: int = 0x30,
            auth_key: bytes | None = None, tag: int = GENERAL_GLO_CIPHERING) -> bytes:
    """Wrap a plaintext APDU (the meter's side, for simulators and tests)."""
    iv = system_title + frame_counter.to_bytes(4, "big")
    if security_control & SecurityControl.AUTHENTICATION:
        encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        encryptor.authenticate_additional_data(bytes((security_control,)) + (auth_key or b""))
        body = encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag[:TAG_SIZE]
    else:
        encryptor = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).encryptor()
        body = encryptor.update(plaintext) + encryptor.finalize()
    inner = bytes((security_control,)) + frame_counter.to_bytes(4, "big") + body
    return bytes((tag, 8)) + system_title + encode_length(len(inner)) + inner
