"""The association service: AARQ, AARE, RLRQ, RLRE (DLMS UA Green Book 9.3.2; ISO 8650 ACSE in BER)
and the xDLMS InitiateRequest / InitiateResponse they carry (Green Book 9.4.6; A-XDR).

Seed 002 ch. 2.4.2-2.4.3 and 4: logical-name referencing without ciphering (application context
2.16.756.5.8.1.1), no security or Low Level Security (mechanism 2.16.756.5.8.2.1) with the password
as calling-authentication-value; the conformance block proposed and the one the meter grants.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ProtocolError
from .axdr import AxdrError, decode_length, encode_length


class AcseError(ProtocolError):
    """An association APDU that cannot be decoded."""


# Object identifiers under 2.16.756.5.8 (DLMS UA), BER-encoded.
LN_NO_CIPHERING = bytes.fromhex("60857405080101")
SN_NO_CIPHERING = bytes.fromhex("60857405080102")
LN_CIPHERING = bytes.fromhex("60857405080103")
SN_CIPHERING = bytes.fromhex("60857405080104")
MECHANISM_NONE = bytes.fromhex("60857405080200")
MECHANISM_LLS = bytes.fromhex("60857405080201")

APPLICATION_CONTEXTS = {LN_NO_CIPHERING: "logical-name, no ciphering", SN_NO_CIPHERING: "short-name, no ciphering",
                        LN_CIPHERING: "logical-name with ciphering", SN_CIPHERING: "short-name with ciphering"}
MECHANISMS = {MECHANISM_NONE: "lowest level security (none)", MECHANISM_LLS: "low level security (password)"}
for _n in range(2, 8):
    MECHANISMS[bytes.fromhex(f"608574050802{_n:02x}")] = f"high level security (mechanism {_n})"

AARQ, AARE, RLRQ, RLRE = 0x60, 0x61, 0x62, 0x63
INITIATE_REQUEST, INITIATE_RESPONSE, CONFIRMED_SERVICE_ERROR = 0x01, 0x08, 0x0E
DLMS_VERSION = 6
VAA_NAME_LN = 0x0007


class Conformance(enum.IntFlag):
    """The xDLMS conformance block (Green Book 9.4.6.1): bit n of the 24-bit string is 1 << (23 - n)."""

    RESERVED_ZERO = 1 << 23
    GENERAL_PROTECTION = 1 << 22
    GENERAL_BLOCK_TRANSFER = 1 << 21
    READ = 1 << 20
    WRITE = 1 << 19
    UNCONFIRMED_WRITE = 1 << 18
    DELTA_VALUE_ENCODING = 1 << 17
    """Bit 6, reserved-six in Green Book 7, delta-value-encoding since."""
    RESERVED_SEVEN = 1 << 16
    ATTRIBUTE0_SUPPORTED_WITH_SET = 1 << 15
    PRIORITY_MGMT_SUPPORTED = 1 << 14
    ATTRIBUTE0_SUPPORTED_WITH_GET = 1 << 13
    BLOCK_TRANSFER_WITH_GET_OR_READ = 1 << 12
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = 1 << 11
    BLOCK_TRANSFER_WITH_ACTION = 1 << 10
    MULTIPLE_REFERENCES = 1 << 9
    INFORMATION_REPORT = 1 << 8
    DATA_NOTIFICATION = 1 << 7
    ACCESS = 1 << 6
    PARAMETERIZED_ACCESS = 1 << 5
    GET = 1 << 4
    SET = 1 << 3
    SELECTIVE_ACCESS = 1 << 2
    EVENT_NOTIFICATION = 1 << 1
    ACTION = 1 << 0

    def names(self) -> list[str]:
        return [flag.name.lower().replace("_", "-") for flag in Conformance if flag in self and flag.name]


PUBLIC_CONFORMANCE = Conformance(0x00181D)
"""What the seed's client proposes on the public association (ch. 4.1)."""
LLS_CONFORMANCE = Conformance(0x00FE1F)
"""What the seed's client proposes with LLS (ch. 4.2)."""


class AssociationResult(enum.IntEnum):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class AcseServiceUser(enum.IntEnum):
    """result-source-diagnostic, acse-service-user (Green Book 9.3.2, AARE)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


class AcseServiceProvider(enum.IntEnum):
    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2


class DiagnosticSource(enum.IntEnum):
    """Which CHOICE of result-source-diagnostic the AARE carries."""

    SERVICE_USER = 1
    SERVICE_PROVIDER = 2


class InitiateError(enum.IntEnum):
    """ServiceError initiate (Green Book 9.4.6.2): why the xDLMS context was refused."""

    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_THE_VDE_HANDLER = 4


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """xDLMS-Initiate.request; A-XDR: `01 | dedicated-key? | response-allowed (default) | QoS? |
    version | 5F 1F 04 00 <conformance(3)> | client-max-receive-pdu-size(2)`."""

    conformance: Conformance
    max_receive_pdu_size: int = 0xFFFF
    dlms_version: int = DLMS_VERSION

    def to_bytes(self) -> bytes:
        return (bytes((INITIATE_REQUEST, 0x00, 0x00, 0x00, self.dlms_version)) + _conformance_bytes(self.conformance)
                + self.max_receive_pdu_size.to_bytes(2, "big"))

    @classmethod
    def parse(cls, data: bytes) -> InitiateRequest:
        if data[:1] != bytes((INITIATE_REQUEST,)):
            raise AcseError(f"InitiateRequest: expected tag 0x01, got {data[:1].hex() or 'nothing'}")
        offset = 1
        offset = _skip_optional(data, offset, "dedicated-key", octets=True)
        offset = _skip_optional(data, offset, "response-allowed", fixed=1)
        offset = _skip_optional(data, offset, "proposed-quality-of-service", fixed=1)
        if offset + 10 != len(data):
            raise AcseError(f"InitiateRequest: {len(data) - offset} bytes after the optional fields, expected 10")
        conformance = _parse_conformance(data, offset + 1, "InitiateRequest")
        return cls(conformance, int.from_bytes(data[offset + 8 : offset + 10], "big"), data[offset])


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS-Initiate.response; A-XDR: `08 | QoS? | version | 5F 1F 04 00 <conformance(3)> |
    server-max-receive-pdu-size(2) | vaa-name(2)`."""

    conformance: Conformance
    max_receive_pdu_size: int
    dlms_version: int = DLMS_VERSION
    vaa_name: int = VAA_NAME_LN

    def to_bytes(self) -> bytes:
        return (bytes((INITIATE_RESPONSE, 0x00, self.dlms_version)) + _conformance_bytes(self.conformance)
                + self.max_receive_pdu_size.to_bytes(2, "big") + self.vaa_name.to_bytes(2, "big"))

    @classmethod
    def parse(cls, data: bytes) -> InitiateResponse:
        if data[:1] != bytes((INITIATE_RESPONSE,)):
            raise AcseError(f"InitiateResponse: expected tag 0x08, got {data[:1].hex() or 'nothing'}")
        offset = _skip_optional(data, 1, "negotiated-quality-of-service", fixed=1)
        if offset + 12 != len(data):
            raise AcseError(f"InitiateResponse: {len(data) - offset} bytes after the optional field, expected 12")
        conformance = _parse_conformance(data, offset + 1, "InitiateResponse")
        return cls(conformance, int.from_bytes(data[offset + 8 : offset + 10], "big"), data[offset],
                   int.from_bytes(data[offset + 10 : offset + 12], "big"))


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """confirmedServiceError (0x0E): which service failed (1 = initiateError), the kind of
    ServiceError (6 = initiate) and its value (`InitiateError` for the initiate kind)."""

    service: int
    kind: int
    value: int

    def to_bytes(self) -> bytes:
        return bytes((CONFIRMED_SERVICE_ERROR, self.service, self.kind, self.value))

    @classmethod
    def parse(cls, data: bytes) -> ConfirmedServiceError:
        if len(data) != 4 or data[0] != CONFIRMED_SERVICE_ERROR:
            raise AcseError(f"confirmed-service-error {data.hex()}: expected 0E and three bytes")
        return cls(data[1], data[2], data[3])

    def __str__(self) -> str:
        if self.kind == 6 and self.value in InitiateError._value2member_map_:
            return f"initiate error: {_words(InitiateError(self.value).name)}"
        return f"service error (service {self.service}, kind {self.kind}, value {self.value})"


def _conformance_bytes(conformance: Conformance) -> bytes:
    return b"\x5f\x1f\x04\x00" + int(conformance).to_bytes(3, "big")


def _parse_conformance(data: bytes, offset: int, what: str) -> Conformance:
    if data[offset : offset + 4] != b"\x5f\x1f\x04\x00":
        raise AcseError(f"{what}: conformance block at byte {offset}: expected 5F 1F 04 00, got {data[offset:offset + 4].hex()}")
    return Conformance(int.from_bytes(data[offset + 4 : offset + 7], "big"))


def _skip_optional(data: bytes, offset: int, name: str, fixed: int = 0, octets: bool = False) -> int:
    """Skip an A-XDR OPTIONAL/DEFAULT field: 00 absent, 01 and the value."""
    if offset >= len(data):
        raise AcseError(f"{name} at byte {offset}: data ends")
    if data[offset] == 0:
        return offset + 1
    if data[offset] != 1:
        raise AcseError(f"{name} at byte {offset}: presence flag 0x{data[offset]:02X}, expected 00 or 01")
    if octets:
        length, after = _length(data, offset + 1, name)
        return after + length
    return offset + 1 + fixed


def _length(data: bytes, offset: int, what: str) -> tuple[int, int]:
    try:
        length, after = decode_length(data, offset)
    except AxdrError as error:
        raise AcseError(f"{what}: {error}") from None
    if after + length > len(data):
        raise AcseError(f"{what} at byte {offset}: length {length}, {len(data) - after} bytes follow")
    return length, after


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def _elements(data: bytes, what: str) -> dict[int, bytes]:
    """The tag -> contents of a BER sequence of one-byte tags (what AARQ, AARE, RLRQ and RLRE use)."""
    elements = {}
    offset = 0
    while offset < len(data):
        tag = data[offset]
        length, after = _length(data, offset + 1, what)
        elements[tag] = bytes(data[after : after + length])
        offset = after + length
    return elements


def _apdu_body(apdu: bytes, tag: int, what: str) -> bytes:
    if not apdu or apdu[0] != tag:
        raise AcseError(f"{what}: expected tag 0x{tag:02X}, got {apdu[:1].hex() or 'nothing'}")
    length, after = _length(apdu, 1, what)
    if after + length != len(apdu):
        raise AcseError(f"{what}: length {length}, {len(apdu) - after} bytes follow")
    return bytes(apdu[after:])


def _inner(element: bytes, tag: int, what: str) -> bytes:
    """The value of an EXPLICIT element's one inner TLV (e.g. A1 09 [06 07 <oid>])."""
    if not element or element[0] != tag:
        raise AcseError(f"{what}: expected inner tag 0x{tag:02X}, got {element[:1].hex() or 'nothing'}")
    length, after = _length(element, 1, what)
    return element[after : after + length]


def _user_information(initiate: bytes) -> bytes:
    return _tlv(0xBE, _tlv(0x04, initiate))


@dataclass(frozen=True, slots=True, repr=False)
class Aarq:
    """AARQ (Green Book 9.3.2): the client's association request. `authentication_value` is the LLS
    password; the repr never shows it."""

    user_information: InitiateRequest
    application_context: bytes = LN_NO_CIPHERING
    mechanism: bytes | None = None
    authentication_value: bytes | None = None

    def to_bytes(self) -> bytes:
        body = _tlv(0xA1, _tlv(0x06, self.application_context))
        if self.mechanism is not None:
            body += _tlv(0x8A, b"\x07\x80")  # sender-acse-requirements: authentication
            body += _tlv(0x8B, self.mechanism)
        if self.authentication_value is not None:
            body += _tlv(0xAC, _tlv(0x80, self.authentication_value))
        body += _user_information(self.user_information.to_bytes())
        return _tlv(AARQ, body)

    @classmethod
    def parse(cls, apdu: bytes) -> Aarq:
        elements = _elements(_apdu_body(apdu, AARQ, "AARQ"), "AARQ")
        if 0xA1 not in elements or 0xBE not in elements:
            raise AcseError("AARQ: application-context-name or user-information missing")
        auth = _inner(elements[0xAC], 0x80, "AARQ calling-authentication-value") if 0xAC in elements else None
        initiate = _inner(elements[0xBE], 0x04, "AARQ user-information")
        return cls(InitiateRequest.parse(initiate), _inner(elements[0xA1], 0x06, "AARQ application-context-name"),
                   elements.get(0x8B), auth)

    def __repr__(self) -> str:
        secret = "None" if self.authentication_value is None else "****"
        return (f"Aarq(user_information={self.user_information!r}, application_context={self.application_context.hex()}, "
                f"mechanism={self.mechanism.hex() if self.mechanism else None}, authentication_value={secret})")


@dataclass(frozen=True, slots=True)
class Aare:
    """AARE (Green Book 9.3.2): the meter's answer; accepted with an InitiateResponse, or refused
    with a diagnostic (and, for a refused xDLMS context, a confirmed-service-error)."""

    result: AssociationResult
    diagnostic: int = 0
    diagnostic_source: DiagnosticSource = DiagnosticSource.SERVICE_USER
    user_information: InitiateResponse | ConfirmedServiceError | None = None
    application_context: bytes = LN_NO_CIPHERING

    @property
    def accepted(self) -> bool:
        return self.result is AssociationResult.ACCEPTED

    def to_bytes(self) -> bytes:
        body = _tlv(0xA1, _tlv(0x06, self.application_context))
        body += _tlv(0xA2, _tlv(0x02, bytes((self.result,))))
        body += _tlv(0xA3, _tlv(0xA0 | self.diagnostic_source, _tlv(0x02, bytes((self.diagnostic,)))))
        if self.user_information is not None:
            body += _user_information(self.user_information.to_bytes())
        return _tlv(AARE, body)

    @classmethod
    def parse(cls, apdu: bytes) -> Aare:
        elements = _elements(_apdu_body(apdu, AARE, "AARE"), "AARE")
        if 0xA2 not in elements or 0xA3 not in elements:
            raise AcseError("AARE: result or result-source-diagnostic missing")
        result = _integer(_inner(elements[0xA2], 0x02, "AARE result"), "AARE result")
        if result not in AssociationResult._value2member_map_:
            raise AcseError(f"AARE: result {result} is not 0, 1 or 2")
        diagnostic_element = elements[0xA3]
        source = diagnostic_element[:1]
        if source not in (b"\xa1", b"\xa2"):
            raise AcseError(f"AARE result-source-diagnostic: expected A1 or A2, got {source.hex() or 'nothing'}")
        diagnostic = _integer(_inner(_inner(diagnostic_element, source[0], "AARE result-source-diagnostic"), 0x02,
                                     "AARE diagnostic"), "AARE diagnostic")
        user_information: InitiateResponse | ConfirmedServiceError | None = None
        if 0xBE in elements:
            initiate = _inner(elements[0xBE], 0x04, "AARE user-information")
            if initiate[:1] == bytes((CONFIRMED_SERVICE_ERROR,)):
                user_information = ConfirmedServiceError.parse(initiate)
            else:
                user_information = InitiateResponse.parse(initiate)
        context = _inner(elements[0xA1], 0x06, "AARE application-context-name") if 0xA1 in elements else LN_NO_CIPHERING
        return cls(AssociationResult(result), diagnostic, DiagnosticSource(source[0] & 0x0F), user_information, context)

    def reason(self) -> str:
        """Why the meter refused, in words (for a person and for the log)."""
        if self.diagnostic_source is DiagnosticSource.SERVICE_USER and self.diagnostic in AcseServiceUser._value2member_map_:
            text = _words(AcseServiceUser(self.diagnostic).name)
        elif self.diagnostic_source is DiagnosticSource.SERVICE_PROVIDER and self.diagnostic in AcseServiceProvider._value2member_map_:
            text = _words(AcseServiceProvider(self.diagnostic).name)
        else:
            text = f"diagnostic {self.diagnostic}"
        if isinstance(self.user_information, ConfirmedServiceError):
            text += f"; {self.user_information}"
        return f"{_words(self.result.name)}: {text}"


def _integer(value: bytes, what: str) -> int:
    if not value:
        raise AcseError(f"{what}: empty INTEGER")
    return int.from_bytes(value, "big", signed=True)


def _words(name: str) -> str:
    return name.lower().replace("_", " ")


class ReleaseReason(enum.IntEnum):
    NORMAL = 0
    URGENT = 1
    USER_DEFINED = 30


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """RLRQ: `62 03 80 01 <reason>` (Green Book 9.3.3)."""

    reason: ReleaseReason = ReleaseReason.NORMAL

    def to_bytes(self) -> bytes:
        return _tlv(RLRQ, _tlv(0x80, bytes((self.reason,))))

    @classmethod
    def parse(cls, apdu: bytes) -> ReleaseRequest:
        return cls(_release_reason(_elements(_apdu_body(apdu, RLRQ, "RLRQ"), "RLRQ"), "RLRQ"))


@dataclass(frozen=True, slots=True)
class ReleaseResponse:
    """RLRE: `63 03 80 01 <reason>` (Green Book 9.3.3)."""

    reason: ReleaseReason = ReleaseReason.NORMAL

    def to_bytes(self) -> bytes:
        return _tlv(RLRE, _tlv(0x80, bytes((self.reason,))))

    @classmethod
    def parse(cls, apdu: bytes) -> ReleaseResponse:
        return cls(_release_reason(_elements(_apdu_body(apdu, RLRE, "RLRE"), "RLRE"), "RLRE"))


def _release_reason(elements: dict[int, bytes], what: str) -> ReleaseReason:
    raw = elements.get(0x80, b"\x00")
    if len(raw) != 1 or raw[0] not in ReleaseReason._value2member_map_:
        raise AcseError(f"{what}: reason {raw.hex()} is not 0, 1 or 30")
    return ReleaseReason(raw[0])
