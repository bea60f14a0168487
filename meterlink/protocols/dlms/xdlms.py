"""xDLMS services with logical-name referencing: GET, SET, ACTION and the exception response
(DLMS UA Green Book 9.3.6-9.3.9 and 9.5; A-XDR). Seed 002 ch. 2.3 (LN referencing), 3.4.3
(selective access to profile buffers) and 4 (the sessions).

Every request and response is a dataclass that encodes itself (`to_bytes`) and is decoded by
`parse_xdlms`; a malformed APDU raises `XdlmsError` naming the field and the byte.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ProtocolError
from ..obis import Obis
from .axdr import AxdrError, Data, decode_data, decode_length, encode_data, encode_length

GET_REQUEST, SET_REQUEST, ACTION_REQUEST = 0xC0, 0xC1, 0xC3
GET_RESPONSE, SET_RESPONSE, ACTION_RESPONSE = 0xC4, 0xC5, 0xC7
EXCEPTION_RESPONSE = 0xD8
NORMAL, NEXT, WITH_LIST = 0x01, 0x02, 0x03
WITH_DATABLOCK = 0x02

INVOKE_ID_AND_PRIORITY = 0x81
"""Invoke-id 1, high priority: what the seed's client sends on every request (ch. 4)."""


class XdlmsError(ProtocolError):
    """An xDLMS APDU that cannot be decoded."""


class DataAccessResult(enum.IntEnum):
    """Why a GET or SET of one attribute failed (Green Book 9.5, Data-Access-Result)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250

    def __str__(self) -> str:
        return self.name.lower().replace("_", "-")


class ActionResult(enum.IntEnum):
    """The result of an ACTION (Green Book 9.5, Action-Result)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250

    def __str__(self) -> str:
        return self.name.lower().replace("_", "-")


class StateError(enum.IntEnum):
    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ServiceError(enum.IntEnum):
    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6
    """Followed by the expected invocation counter (4 bytes)."""


def _result(value: int, kind: type[enum.IntEnum], what: str, offset: int) -> enum.IntEnum:
    try:
        return kind(value)
    except ValueError:
        raise XdlmsError(f"{what} at byte {offset}: {value} is not a {kind.__name__}") from None


@dataclass(frozen=True, slots=True)
class AttributeDescriptor:
    """Cosem-Attribute-Descriptor: class id, logical name, attribute index."""

    class_id: int
    instance: Obis
    attribute: int

    def to_bytes(self) -> bytes:
        return self.class_id.to_bytes(2, "big") + self.instance.to_bytes() + self.attribute.to_bytes(1, "big", signed=True)

    def __str__(self) -> str:
        return f"{self.class_id}:{self.instance}:{self.attribute}"


@dataclass(frozen=True, slots=True)
class MethodDescriptor:
    """Cosem-Method-Descriptor: class id, logical name, method index."""

    class_id: int
    instance: Obis
    method: int

    def to_bytes(self) -> bytes:
        return self.class_id.to_bytes(2, "big") + self.instance.to_bytes() + self.method.to_bytes(1, "big", signed=True)

    def __str__(self) -> str:
        return f"{self.class_id}:{self.instance}:method {self.method}"


@dataclass(frozen=True, slots=True)
class AccessSelection:
    """Selective access (seed 002 ch. 3.4.3): selector 1 = range_descriptor, 2 = entry_descriptor."""

    selector: int
    parameters: Data

    def to_bytes(self) -> bytes:
        return bytes((0x01, self.selector)) + encode_data(self.parameters)


def _access_bytes(access: AccessSelection | None) -> bytes:
    return b"\x00" if access is None else access.to_bytes()


# -- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    descriptor: AttributeDescriptor
    access: AccessSelection | None = None
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        return bytes((GET_REQUEST, NORMAL, self.invoke_id)) + self.descriptor.to_bytes() + _access_bytes(self.access)


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    """Ask for the block after `block_number`, the last one received (Green Book 9.3.6)."""

    block_number: int
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        return bytes((GET_REQUEST, NEXT, self.invoke_id)) + self.block_number.to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    items: tuple[tuple[AttributeDescriptor, AccessSelection | None], ...]
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        body = b"".join(descriptor.to_bytes() + _access_bytes(access) for descriptor, access in self.items)
        return bytes((GET_REQUEST, WITH_LIST, self.invoke_id)) + encode_length(len(self.items)) + body


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    descriptor: AttributeDescriptor
    value: Data
    access: AccessSelection | None = None
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        return (bytes((SET_REQUEST, NORMAL, self.invoke_id)) + self.descriptor.to_bytes() + _access_bytes(self.access)
                + encode_data(self.value))


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    descriptor: MethodDescriptor
    parameters: Data | None = None
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        parameters = b"\x00" if self.parameters is None else b"\x01" + encode_data(self.parameters)
        return bytes((ACTION_REQUEST, NORMAL, self.invoke_id)) + self.descriptor.to_bytes() + parameters


Request = GetRequestNormal | GetRequestNext | GetRequestWithList | SetRequestNormal | ActionRequestNormal


# -- responses -----------------------------------------------------------------------------------

GetResult = Data | DataAccessResult
"""Get-Data-Result: the value, or why there is none."""


def _get_result_bytes(result: GetResult) -> bytes:
    if isinstance(result, DataAccessResult):
        return bytes((0x01, result))
    return b"\x00" + encode_data(result)


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    result: GetResult
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        return bytes((GET_RESPONSE, NORMAL, self.invoke_id)) + _get_result_bytes(self.result)


@dataclass(frozen=True, slots=True)
class GetResponseWithDataBlock:
    """One block of a long GET (Green Book 9.3.6): `raw` is this block's share of the A-XDR encoded
    value; the blocks joined decode as one Data."""

    last_block: bool
    block_number: int
    raw: bytes | DataAccessResult
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        head = bytes((GET_RESPONSE, WITH_DATABLOCK, self.invoke_id, 0x01 if self.last_block else 0x00))
        head += self.block_number.to_bytes(4, "big")
        if isinstance(self.raw, DataAccessResult):
            return head + bytes((0x01, self.raw))
        # Always the three-byte length form, as Kamstrup meters write it (seed 002 ch. 4.2: 82 00 5C
        # for 92 bytes); BER allows the long form for any length.
        return head + b"\x00\x82" + len(self.raw).to_bytes(2, "big") + self.raw


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    results: tuple[GetResult, ...]
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        body = b"".join(_get_result_bytes(result) for result in self.results)
        return bytes((GET_RESPONSE, WITH_LIST, self.invoke_id)) + encode_length(len(self.results)) + body


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    result: DataAccessResult
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        return bytes((SET_RESPONSE, NORMAL, self.invoke_id, self.result))


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    result: ActionResult
    return_value: GetResult | None = None
    invoke_id: int = INVOKE_ID_AND_PRIORITY

    def to_bytes(self) -> bytes:
        head = bytes((ACTION_RESPONSE, NORMAL, self.invoke_id, self.result))
        return head + (b"\x00" if self.return_value is None else b"\x01" + _get_result_bytes(self.return_value))


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """The server could not handle the request at all (Green Book 9.3.10)."""

    state_error: StateError
    service_error: ServiceError
    invocation_counter: int | None = None
    """What the server expected, with INVOCATION_COUNTER_ERROR."""

    def to_bytes(self) -> bytes:
        counter = b"" if self.invocation_counter is None else self.invocation_counter.to_bytes(4, "big")
        return bytes((EXCEPTION_RESPONSE, self.state_error, self.service_error)) + counter

    def __str__(self) -> str:
        return (f"exception-response: {self.state_error.name.lower().replace('_', '-')}, "
                f"{self.service_error.name.lower().replace('_', '-')}")


Response = (GetResponseNormal | GetResponseWithDataBlock | GetResponseWithList | SetResponseNormal
            | ActionResponseNormal | ExceptionResponse)
Xdlms = Request | Response


# -- decoding ------------------------------------------------------------------------------------


class _Reader:
    """A cursor over one APDU that turns running off its end into an XdlmsError naming the field."""

    def __init__(self, apdu: bytes, what: str) -> None:
        self.apdu = apdu
        self.offset = 0
        self.what = what

    def take(self, count: int, field: str) -> bytes:
        end = self.offset + count
        if end > len(self.apdu):
            raise XdlmsError(f"{self.what}: {field} at byte {self.offset} needs {count} bytes, {len(self.apdu) - self.offset} left")
        chunk = self.apdu[self.offset : end]
        self.offset = end
        return chunk

    def byte(self, field: str) -> int:
        return self.take(1, field)[0]

    def integer(self, count: int, field: str, signed: bool = False) -> int:
        return int.from_bytes(self.take(count, field), "big", signed=signed)

    def length(self, field: str) -> int:
        try:
            length, self.offset = decode_length(self.apdu, self.offset)
        except AxdrError as error:
            raise XdlmsError(f"{self.what}: {field}: {error}") from None
        return length

    def data(self, field: str) -> Data:
        try:
            value, self.offset = decode_data(self.apdu, self.offset)
        except AxdrError as error:
            raise XdlmsError(f"{self.what}: {field}: {error}") from None
        return value

    def flag(self, field: str) -> bool:
        flag = self.byte(field)
        if flag not in (0, 1):
            raise XdlmsError(f"{self.what}: {field} at byte {self.offset - 1}: presence flag 0x{flag:02X}, expected 00 or 01")
        return flag == 1

    def end(self) -> None:
        if self.offset != len(self.apdu):
            raise XdlmsError(f"{self.what}: {len(self.apdu) - self.offset} bytes left over at byte {self.offset}")

    def attribute_descriptor(self) -> AttributeDescriptor:
        class_id = self.integer(2, "class id")
        return AttributeDescriptor(class_id, Obis.from_bytes(self.take(6, "logical name")), self.integer(1, "attribute id", signed=True))

    def method_descriptor(self) -> MethodDescriptor:
        class_id = self.integer(2, "class id")
        return MethodDescriptor(class_id, Obis.from_bytes(self.take(6, "logical name")), self.integer(1, "method id", signed=True))

    def access(self) -> AccessSelection | None:
        if not self.flag("access-selection"):
            return None
        selector = self.byte("access selector")
        return AccessSelection(selector, self.data("access parameters"))

    def get_result(self, field: str) -> GetResult:
        choice = self.byte(field)
        if choice == 0:
            return self.data(field)
        if choice == 1:
            return _result(self.byte("data-access-result"), DataAccessResult, f"{self.what}: {field}", self.offset - 1)
        raise XdlmsError(f"{self.what}: {field} at byte {self.offset - 1}: choice {choice}, expected 0 (data) or 1 (data-access-result)")


def parse_xdlms(apdu: bytes) -> Xdlms:
    """Decode one xDLMS GET/SET/ACTION request or response, or an exception-response."""
    if len(apdu) < 2:
        raise XdlmsError(f"xDLMS APDU {apdu.hex()}: too short")
    tag, choice = apdu[0], apdu[1]
    parser = _PARSERS.get((tag, choice))
    if parser is None:
        if tag == EXCEPTION_RESPONSE:
            return _exception_response(apdu)
        raise XdlmsError(f"xDLMS APDU: tag 0x{tag:02X} choice {choice} is not supported")
    reader = _Reader(apdu, parser.__doc__ or "xDLMS APDU")
    reader.take(2, "tag")
    message = parser(reader)
    reader.end()
    return message


def _get_request_normal(r: _Reader) -> GetRequestNormal:
    """GET-Request-Normal"""
    invoke = r.byte("invoke-id-and-priority")
    return GetRequestNormal(r.attribute_descriptor(), r.access(), invoke)


def _get_request_next(r: _Reader) -> GetRequestNext:
    """GET-Request-Next"""
    invoke = r.byte("invoke-id-and-priority")
    return GetRequestNext(r.integer(4, "block number"), invoke)


def _get_request_with_list(r: _Reader) -> GetRequestWithList:
    """GET-Request-With-List"""
    invoke = r.byte("invoke-id-and-priority")
    count = r.length("attribute count")
    return GetRequestWithList(tuple((r.attribute_descriptor(), r.access()) for _ in range(count)), invoke)


def _set_request_normal(r: _Reader) -> SetRequestNormal:
    """SET-Request-Normal"""
    invoke = r.byte("invoke-id-and-priority")
    descriptor, access = r.attribute_descriptor(), r.access()
    return SetRequestNormal(descriptor, r.data("value"), access, invoke)


def _action_request_normal(r: _Reader) -> ActionRequestNormal:
    """ACTION-Request-Normal"""
    invoke = r.byte("invoke-id-and-priority")
    descriptor = r.method_descriptor()
    return ActionRequestNormal(descriptor, r.data("parameters") if r.flag("method-invocation-parameters") else None, invoke)


def _get_response_normal(r: _Reader) -> GetResponseNormal:
    """GET-Response-Normal"""
    invoke = r.byte("invoke-id-and-priority")
    return GetResponseNormal(r.get_result("result"), invoke)


def _get_response_with_datablock(r: _Reader) -> GetResponseWithDataBlock:
    """GET-Response-With-Datablock"""
    invoke = r.byte("invoke-id-and-priority")
    last = r.byte("last-block")
    number = r.integer(4, "block number")
    choice = r.byte("result")
    if choice == 0:
        raw = r.take(r.length("raw-data length"), "raw-data")
        return GetResponseWithDataBlock(last != 0, number, bytes(raw), invoke)
    if choice == 1:
        dar = _result(r.byte("data-access-result"), DataAccessResult, "GET-Response-With-Datablock", r.offset - 1)
        return GetResponseWithDataBlock(last != 0, number, dar, invoke)  # type: ignore[arg-type]
    raise XdlmsError(f"GET-Response-With-Datablock: result at byte {r.offset - 1}: choice {choice}, expected 0 or 1")


def _get_response_with_list(r: _Reader) -> GetResponseWithList:
    """GET-Response-With-List"""
    invoke = r.byte("invoke-id-and-priority")
    count = r.length("result count")
    return GetResponseWithList(tuple(r.get_result(f"result {n}") for n in range(count)), invoke)


def _set_response_normal(r: _Reader) -> SetResponseNormal:
    """SET-Response-Normal"""
    invoke = r.byte("invoke-id-and-priority")
    result = _result(r.byte("result"), DataAccessResult, "SET-Response-Normal", r.offset - 1)
    return SetResponseNormal(result, invoke)  # type: ignore[arg-type]


def _action_response_normal(r: _Reader) -> ActionResponseNormal:
    """ACTION-Response-Normal"""
    invoke = r.byte("invoke-id-and-priority")
    result = _result(r.byte("action-result"), ActionResult, "ACTION-Response-Normal", r.offset - 1)
    value = r.get_result("return-parameters") if r.flag("return-parameters") else None
    return ActionResponseNormal(result, value, invoke)  # type: ignore[arg-type]


def _exception_response(apdu: bytes) -> ExceptionResponse:
    if len(apdu) < 3:
        raise XdlmsError(f"exception-response {apdu.hex()}: expected D8, state-error and service-error")
    state = _result(apdu[1], StateError, "exception-response state-error", 1)
    service = _result(apdu[2], ServiceError, "exception-response service-error", 2)
    expected = 7 if service is ServiceError.INVOCATION_COUNTER_ERROR else 3
    if len(apdu) != expected:
        raise XdlmsError(f"exception-response {apdu.hex()}: {len(apdu)} bytes, expected {expected}")
    counter = int.from_bytes(apdu[3:7], "big") if expected == 7 else None
    return ExceptionResponse(state, service, counter)  # type: ignore[arg-type]


_PARSERS = {
    (GET_REQUEST, NORMAL): _get_request_normal,
    (GET_REQUEST, NEXT): _get_request_next,
    (GET_REQUEST, WITH_LIST): _get_request_with_list,
    (SET_REQUEST, NORMAL): _set_request_normal,
    (ACTION_REQUEST, NORMAL): _action_request_normal,
    (GET_RESPONSE, NORMAL): _get_response_normal,
    (GET_RESPONSE, WITH_DATABLOCK): _get_response_with_datablock,
    (GET_RESPONSE, WITH_LIST): _get_response_with_list,
    (SET_RESPONSE, NORMAL): _set_response_normal,
    (ACTION_RESPONSE, NORMAL): _action_response_normal,
}
