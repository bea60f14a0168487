"""Annotated HDLC captures for `meterlink decode hdlc` (IEC 62056-46 frame format type 3; DLMS UA
Green Book 9.3-9.5; seed 002 ch. 2.5-2.6 and the two sessions of ch. 4).

`read_capture` takes a capture as hex text (as the seed prints its sessions: `-->` / `<--` arrows,
wrapped lines, headings) or as binary. `describe_capture` cuts the bytes into frames on the flags
and the length field, as `HdlcFramer` does, and describes each frame field by field: addresses,
control field with N(S)/N(R), HCS/FCS as sent and whether they match, the SNRM/UA parameters, and
the APDU an I- or UI-frame carries, joined over HDLC segments per direction. `describe_apdu`
describes one APDU. Everything comes out as JSON-ready dicts, one per frame or run of noise.

Nothing here raises for any input bytes: what does not check or decode is described as far as it
goes and named in the entry's "error" (a refused association is an answer, not an error).

Passwords and secrets are not shown (ARCHITECTURE.md: never in logs): not in the description, and
not in a frame's hex, where each of their bytes reads `**`. Damaged frames are searched too: an
AARQ with any one byte changed, added or lost still hides its password.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ProtocolError
from ..hdlc import (
    FLAG,
    LENGTH_MASK,
    LLC_REQUEST,
    LLC_RESPONSE,
    SEGMENTED,
    Address,
    Control,
    Frame,
    FrameType,
    HdlcError,
    HdlcParameters,
    parse_frame,
    parse_unchecked,
)
from .acse import (
    AARQ,
    APPLICATION_CONTEXTS,
    MECHANISMS,
    Aare,
    Aarq,
    AcseServiceProvider,
    AcseServiceUser,
    ConfirmedServiceError,
    DiagnosticSource,
    InitiateResponse,
    ReleaseRequest,
    ReleaseResponse,
)
from .apdu import Apdu, parse_apdu
from .axdr import AxdrError, Data, DataTag, decode_length
from .notification import DATA_NOTIFICATION, json_of, octet_text, parse_notification
from .objects import ASSOCIATION_LN
from .security import GENERAL_GLO_CIPHERING, parse_ciphered
from .xdlms import (
    AccessSelection,
    ActionRequestNormal,
    ActionResponseNormal,
    DataAccessResult,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDataBlock,
    GetResponseWithList,
    GetResult,
    SetRequestNormal,
    SetResponseNormal,
)

Entry = dict[str, Any]

# -- reading a capture ---------------------------------------------------------------------------

_TEXT = re.compile(rb"[\x20-\x7e\t\n\v\f\r]*")
_COMMENT = re.compile(rb"#[^\n]*")
_ARROW = re.compile(rb"-->|<--")
# "*": the seed prints some bytes in bold (`**02 00**`).
_SEPARATORS = re.compile(rb"[\s:,*]+")
_HEX_PAIRS = re.compile(rb"(?:0[xX])?((?:[0-9A-Fa-f]{2})+)")


def read_capture(data: bytes) -> bytes:
    """The bytes of a capture given as hex text or binary. In hex text every line that holds only
    hex bytes counts: whitespace, the seed's "-->" / "<--" arrows and `**` bold marks, "#"-comments,
    "0x" prefixes and ":"/"," separators allowed; lines with words (headings, "Connect:", markdown
    fences) are left out. Anything else is taken as binary as is."""
    data = bytes(data)
    # A binary capture always holds a format byte 0xA0-0xA7, which no text does.
    if not _TEXT.fullmatch(data):
        return data
    digits = []
    for line in _COMMENT.sub(b"", data).splitlines():
        tokens = [token for token in _SEPARATORS.split(_ARROW.sub(b" ", line)) if token]
        pairs = [_HEX_PAIRS.fullmatch(token) for token in tokens]
        if tokens and all(pairs):
            digits += [pair.group(1) for pair in pairs if pair is not None]
    return bytes.fromhex(b"".join(digits).decode("ascii")) if digits else data


# -- cutting a capture into frames ---------------------------------------------------------------

_NOISE, _FRAME, _BROKEN, _FLOOD = "noise", "frame", "broken", "flood"


@dataclass(slots=True)
class _Piece:
    """Bytes `start` to `end` of a capture: a frame, a broken frame, noise, or a flood (pieces
    between two frames that hold `broken` broken frames, more than one, the first at `first`)."""

    kind: str
    start: int
    end: int
    broken: int = 0
    first: int = 0


def _runs(data: bytes) -> Iterator[_Piece]:
    """The pieces of a capture, one entry each, but a run of noise is one piece, and so is all
    between two frames once it holds a second broken frame: a flood of false starts (`7E A0`
    repeated) is one entry, not one per two bytes."""
    held: list[_Piece] = []
    for piece in _pieces(data):
        if piece.kind == _FRAME:
            yield from held
            held = []
            yield piece
            continue
        last = held[-1] if held else None
        if last is not None and (last.kind == _FLOOD or last.kind == piece.kind == _NOISE):
            last.end, last.broken = piece.end, last.broken + piece.broken
            continue
        held.append(piece)
        broken = sum(part.broken for part in held)
        if broken > 1:
            first = next(part.first for part in held if part.broken)
            held = [_Piece(_FLOOD, held[0].start, piece.end, broken, first)]
    yield from held


def _pieces(data: bytes) -> Iterator[_Piece]:
    """Every frame, broken frame and stretch of noise, in order. A frame ends where its length
    field says and must end there with a flag; its closing flag may open the next frame. A broken
    frame (a type-3 start whose length leads to no closing flag) runs to the next flag. Flags
    between frames are fill, not noise."""
    pos = 0
    opening = data.find(FLAG)
    while opening >= 0:
        run = opening
        while opening + 1 < len(data) and data[opening + 1] == FLAG:
            opening += 1
        if run > pos:
            yield _Piece(_NOISE, pos, run)
            pos = run
        found = _frame_end(data, opening)
        if found is None:
            opening = data.find(FLAG, opening + 1)
            continue
        end, closed = found
        yield _Piece(_FRAME, opening, end) if closed else _Piece(_BROKEN, opening, end, 1, opening)
        pos = end
        opening = end - 1 if closed else data.find(FLAG, end)
    if data[pos:].strip(bytes((FLAG,))):
        yield _Piece(_NOISE, pos, len(data))


def _frame_end(data: bytes, opening: int) -> tuple[int, bool] | None:
    """Where the frame opened by the flag at `opening` ends and whether a flag closes it there;
    None when no type-3 format field follows the flag."""
    head = data[opening + 1 : opening + 3]
    if not head or head[0] & 0xF0 != 0xA0:
        return None
    end = _closing(data, opening)
    if end is not None and not _hides_a_frame(data, opening, end):
        return end, True
    following = data.find(FLAG, opening + 1)
    return (len(data) if following < 0 else following), False


def _closing(data: bytes, opening: int) -> int | None:
    """The end of the frame opened at `opening` when its length field points at a flag."""
    head = data[opening + 1 : opening + 3]
    if len(head) < 2 or head[0] & 0xF0 != 0xA0:
        return None
    end = opening + 2 + ((head[0] << 8 | head[1]) & LENGTH_MASK)
    return end if end <= len(data) and data[end - 1] == FLAG else None


def _hides_a_frame(data: bytes, opening: int, end: int) -> bool:
    """Whether the frame from `opening` to `end`, if it does not check, holds the start of one that
    does: then it is noise whose length field happened to point at that frame's closing flag, and
    taking it for a frame would lose the real one."""
    if _checks(data, opening, end):
        return False
    inner = data.find(FLAG, opening + 1, end - 1)
    while inner >= 0:
        inner_end = _closing(data, inner)
        if inner_end is not None and _checks(data, inner, inner_end):
            return True
        inner = data.find(FLAG, inner + 1, end - 1)
    return False


def _checks(data: bytes, start: int, end: int) -> bool:
    try:
        parse_frame(data[start:end])
    except HdlcError:
        return False
    return True


def _broken_reason(data: bytes, start: int) -> str:
    if start + 3 > len(data):
        return "the capture ends inside the format field"
    length = (data[start + 1] << 8 | data[start + 2]) & LENGTH_MASK
    closing = start + length + 1
    if closing >= len(data):
        return f"length field {length}: the capture ends after {len(data) - start - 1} of its bytes"
    return f"length field {length}: byte {closing} is 0x{data[closing]:02X}, not the closing flag"


# -- describing a capture ------------------------------------------------------------------------


def describe_capture(data: bytes) -> list[Entry]:
    """One JSON-ready dict per frame, broken frame or run of noise in the raw byte stream `data`.

    A frame: {"frame", "offset", "hex", "format", "destination", "source", "control", "hcs"
    (with an information field), "fcs", "information" (when there is one), "error" (when something
    does not check or decode)}; noise: {"frame", "offset", "noise": count, "hex"}, with "error" when
    it holds broken frames (a flood of them is one entry). The information of SNRM/UA holds the
    link parameters; of I- and UI-frames the LLC header and the APDU (`describe_apdu`), which a
    segmented APDU shows on the frame that completes it."""
    return _Capture(bytes(data)).describe()


class _Capture:
    """One pass over a capture: the frames described so far, the segments waiting for the frame
    that completes their APDU, and the positions of secret bytes to mask in the hex (`hiding`:
    the pieces since a damaged AARQ began, until a frame checks again)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.entries: list[Entry] = []
        self.spans: list[tuple[Entry, int, int]] = []
        self.segments: dict[tuple[Address, Address], list[tuple[int, bytes]]] = {}
        self.secret: set[int] = set()
        self.hiding = False

    def describe(self) -> list[Entry]:
        for piece in _runs(self.data):
            kind, start, end = piece.kind, piece.start, piece.end
            entry: Entry = {"frame": len(self.entries) + 1, "offset": start}
            if kind in (_NOISE, _FLOOD):
                entry["noise"] = end - start
            entry["hex"] = ""
            self.entries.append(entry)
            self.spans.append((entry, start, end))
            if kind == _FRAME:
                self._frame(entry, start, end)
            elif kind == _BROKEN:
                entry |= _format(self.data[start:end])
                entry["error"] = _broken_reason(self.data, start)
            elif kind == _FLOOD:
                entry["error"] = (f"{piece.broken} frame starts lead to no frame, the first at byte {piece.first}: "
                                  f"{_broken_reason(self.data, piece.first)}")
            self._hide_unparsed(entry, start, end)
        for parts in self.segments.values():
            self._hide(parts)
        for span in _authentication_values(self.data):
            self.secret.update(span)
        for entry, start, end in self.spans:
            entry["hex"] = self._hex(start, end)
        return self.entries

    def _frame(self, entry: Entry, start: int, end: int) -> None:
        raw = self.data[start:end]
        entry |= _format(raw)
        try:
            frame, checks = parse_unchecked(raw)
        except HdlcError as error:
            entry["error"] = str(error)
            return
        problems = []
        control_at = 3 + frame.destination.size + frame.source.size
        entry["destination"] = _address(frame.destination)
        entry["source"] = _address(frame.source)
        entry["control"] = _control(raw[control_at], frame.control)
        if checks.hcs is not None:
            entry["hcs"] = _check(checks.hcs, checks.hcs_computed, "HCS", problems)
        entry["fcs"] = _check(checks.fcs, checks.fcs_computed, "FCS", problems)
        if frame.kind in (FrameType.SNRM, FrameType.DISC):
            self._forget(frame)
        if frame.information:
            entry["information"] = self._information(frame, start + control_at + 3, problems)
        if problems:
            entry["error"] = "; ".join(problems)

    def _information(self, frame: Frame, offset: int, problems: list[str]) -> Entry:
        information: Entry = {"length": len(frame.information)}
        if frame.kind in (FrameType.SNRM, FrameType.UA):
            try:
                information["parameters"] = _parameters(HdlcParameters.parse(frame.information))
            except HdlcError as error:
                problems.append(str(error))
            return information
        if frame.kind not in (FrameType.I, FrameType.UI):
            return information
        parts = self.segments.setdefault((frame.source, frame.destination), [])
        parts.append((offset, frame.information))
        if frame.segmented:
            information["segment"] = len(parts)
            return information
        del self.segments[(frame.source, frame.destination)]
        if len(parts) > 1:
            information["segments"] = len(parts)
        self._hide(parts)
        apdu = b"".join(part for _, part in parts)
        if apdu[:3] in (LLC_REQUEST, LLC_RESPONSE):
            information["llc"] = apdu[:3].hex().upper()
            information["direction"] = "to meter" if apdu[:3] == LLC_REQUEST else "from meter"
            apdu = apdu[3:]
        information["apdu"], problem = _apdu(apdu)
        if problem is not None:
            problems.append(problem)
        return information

    def _forget(self, frame: Frame) -> None:
        """A new link (SNRM) or its end (DISC) drops half-received segmented APDUs both ways."""
        self.segments.pop((frame.source, frame.destination), None)
        self.segments.pop((frame.destination, frame.source), None)

    def _hide(self, parts: list[tuple[int, bytes]]) -> None:
        """Mark the secret bytes of the APDU these information fields carry, wherever they lie."""
        apdu = b"".join(part for _, part in parts)
        skip = 3 if apdu[:3] in (LLC_REQUEST, LLC_RESPONSE) else 0
        spans = _secret_spans(apdu[skip:])
        positions = [offset + index for offset, part in parts for index in range(len(part))] if spans else []
        for start, end in spans:
            self.secret.update(positions[skip + start : skip + end])

    def _hide_unparsed(self, entry: Entry, start: int, end: int) -> None:
        """Noise, and frames that do not check or decode, may hold a damaged AARQ, maybe cut up by
        stray flags: hide all from its start until a frame checks again."""
        if "error" not in entry and "noise" not in entry:
            self.hiding = False
            return
        found = start if self.hiding else self.data.find(LLC_REQUEST + bytes((AARQ,)), start, end)
        if found >= 0:
            self.secret.update(range(found, end))
            self.hiding = True

    def _hex(self, start: int, end: int) -> str:
        if self.secret.isdisjoint(range(start, end)):
            return self.data[start:end].hex().upper()
        return "".join("**" if index in self.secret else f"{self.data[index]:02X}" for index in range(start, end))


def _format(raw: bytes) -> Entry:
    if len(raw) < 3:
        return {}
    field = raw[1] << 8 | raw[2]
    return {"format": {"type": 3, "segmented": bool(field & SEGMENTED), "length": field & LENGTH_MASK}}


def _address(address: Address) -> Entry:
    return {"address": str(address), "bytes": address.size}


def _control(byte: int, control: Control) -> Entry:
    entry: Entry = {"byte": f"0x{byte:02X}", "frame": control.kind.value, "poll_final": control.poll_final}
    if control.kind is FrameType.I:
        entry["ns"] = control.send_sequence
    if control.kind in (FrameType.I, FrameType.RR, FrameType.RNR):
        entry["nr"] = control.receive_sequence
    return entry


def _check(sent: int, computed: int | None, name: str, problems: list[str]) -> Entry:
    """A check sequence as its CRC value (sent least significant byte first)."""
    if sent != computed:
        problems.append(f"{name} 0x{sent:04X} sent, 0x{computed:04X} computed")
    return {"value": f"0x{sent:04X}", "ok": sent == computed}


def _parameters(parameters: HdlcParameters) -> Entry:
    return {"max_info_tx": parameters.max_info_tx, "max_info_rx": parameters.max_info_rx,
            "window_tx": parameters.window_tx, "window_rx": parameters.window_rx}


# -- secrets -------------------------------------------------------------------------------------

_SECRET_ATTRIBUTES = {(ASSOCIATION_LN, 7)}
"""Association LN attribute 7, secret: the LLS password."""
_SECRET_METHODS = {(ASSOCIATION_LN, 2), (64, 2)}
"""Association LN change_HLS_secret; Security setup key_transfer (wrapped keys)."""
_SET_REQUEST_NORMAL, _ACTION_REQUEST_NORMAL = b"\xc1\x01", b"\xc3\x01"
_CALLING_AUTHENTICATION_VALUE = 0xAC
_AUTHENTICATION_VALUE = re.compile(rb"\xac([\x02-\x7f])\x80([\x00-\x7d])", re.DOTALL)


def _secret_spans(apdu: bytes) -> list[tuple[int, int]]:
    """Where the secret bytes of an APDU lie: an AARQ's calling-authentication-value, the value
    of a SET to an association's secret, the parameters of a method that sets a secret or a key."""
    if apdu[:1] == bytes((AARQ,)):
        return _aarq_secrets(apdu)
    if len(apdu) > 12 and apdu[:2] in (_SET_REQUEST_NORMAL, _ACTION_REQUEST_NORMAL):
        reference = (int.from_bytes(apdu[3:5], "big"), apdu[11])
        if reference in (_SECRET_ATTRIBUTES if apdu[:2] == _SET_REQUEST_NORMAL else _SECRET_METHODS):
            return [(12, len(apdu))]
    return []


def _aarq_secrets(apdu: bytes) -> list[tuple[int, int]]:
    """The contents of the AARQ's calling-authentication-value; when the elements cannot be walked
    to it, everything from the one that fails, as the secret may lie there (it may have come in
    earlier segments, which show no error of their own)."""
    offset = 1
    try:
        _, offset = decode_length(apdu, 1)
        while offset < len(apdu):
            tag = apdu[offset]
            length, inner = decode_length(apdu, offset + 1)
            if tag == _CALLING_AUTHENTICATION_VALUE:
                return [(inner, min(inner + length, len(apdu)))]
            offset = inner + length
    except AxdrError:
        return [(offset, len(apdu))]
    return []


def _authentication_values(data: bytes) -> Iterator[range]:
    """Every `AC n 80 n-2 <value>` in a capture, wherever frames were damaged or cut around it."""
    for found in _AUTHENTICATION_VALUE.finditer(data):
        if found.group(1)[0] == found.group(2)[0] + 2:
            yield range(found.end(), min(found.end() + found.group(2)[0], len(data)))


def _hides_value(apdu: SetRequestNormal | ActionRequestNormal) -> bool:
    if isinstance(apdu, SetRequestNormal):
        return (apdu.descriptor.class_id, apdu.descriptor.attribute) in _SECRET_ATTRIBUTES
    return (apdu.descriptor.class_id, apdu.descriptor.method) in _SECRET_METHODS


# -- describing an APDU --------------------------------------------------------------------------


def describe_apdu(apdu: bytes) -> Entry:
    """One APDU as a JSON-ready dict: its "type" and fields; one that does not decode as
    {"type": its tag's name or "unknown", "error": why}."""
    return _apdu(bytes(apdu))[0]


def _apdu(apdu: bytes) -> tuple[Entry, str | None]:
    """The description, and why it does not decode (None when it does)."""
    entry: Entry = {"type": _apdu_type(apdu)}
    try:
        if apdu[:1] == bytes((DATA_NOTIFICATION,)):
            entry |= _notification(apdu)
        elif apdu[:1] == bytes((GENERAL_GLO_CIPHERING,)):
            entry |= _ciphered(apdu)
        else:
            entry |= _fields(parse_apdu(apdu))
    except ProtocolError as error:
        entry["error"] = str(error)
        return entry, str(error)
    return entry, None


_TAGS = {
    0x0E: "confirmed-service-error", 0x0F: "data-notification", 0x60: "AARQ", 0x61: "AARE", 0x62: "RLRQ",
    0x63: "RLRE", 0xC2: "event-notification-request", 0xD8: "exception-response", 0xDB: "general-glo-ciphering",
    0xDC: "general-ded-ciphering", 0xDD: "general-ciphering", 0xDF: "general-signing", 0xE0: "general-block-transfer",
}
_SERVICES = {0xC0: "GET-Request", 0xC1: "SET-Request", 0xC3: "ACTION-Request",
             0xC4: "GET-Response", 0xC5: "SET-Response", 0xC7: "ACTION-Response"}
_CHOICES = {
    0xC0: ("Normal", "Next", "With-List"),
    0xC1: ("Normal", "With-First-Datablock", "With-Datablock", "With-List", "With-List-And-First-Datablock"),
    0xC3: ("Normal", "Next-Pblock", "With-List", "With-First-Pblock", "With-List-And-First-Pblock", "With-Pblock"),
    0xC4: ("Normal", "With-Datablock", "With-List"),
    0xC5: ("Normal", "Ack-Block", "Last-Datablock", "Last-Datablock-With-List", "With-List"),
    0xC7: ("Normal", "With-Pblock", "With-List", "Next-Pblock"),
}
"""The CHOICE names of each xDLMS service (Green Book 9.5), numbered from 1."""


def _apdu_type(apdu: bytes) -> str:
    """The name of the APDU by its tag (and, for GET/SET/ACTION, its choice), whether or not it decodes."""
    if not apdu:
        return "unknown"
    service = _SERVICES.get(apdu[0])
    if service is None:
        return _TAGS.get(apdu[0], "unknown")
    choices = _CHOICES[apdu[0]]
    if len(apdu) > 1 and 1 <= apdu[1] <= len(choices):
        return f"{service}-{choices[apdu[1] - 1]}"
    return service


def _fields(apdu: Apdu) -> Entry:
    match apdu:
        case Aarq():
            return _aarq(apdu)
        case Aare():
            return _aare(apdu)
        case ReleaseRequest() | ReleaseResponse():
            return {"reason": _words(apdu.reason.name)}
        case ConfirmedServiceError():
            return {"error": str(apdu)}
        case ExceptionResponse():
            return {"state_error": _words(apdu.state_error.name), "service_error": _words(apdu.service_error.name)}
    entry: Entry = {"invoke_id_and_priority": f"0x{apdu.invoke_id:02X}"}
    match apdu:
        case GetRequestNormal():
            entry["attribute"] = str(apdu.descriptor)
            entry |= _access(apdu.access)
        case GetRequestNext():
            entry["block_number"] = apdu.block_number
        case GetRequestWithList():
            entry["attributes"] = [{"attribute": str(descriptor)} | _access(access) for descriptor, access in apdu.items]
        case SetRequestNormal():
            entry["attribute"] = str(apdu.descriptor)
            entry |= _access(apdu.access)
            entry |= _value(apdu.value, "value", secret=_hides_value(apdu))
        case ActionRequestNormal():
            entry["method"] = str(apdu.descriptor)
            if apdu.parameters is not None:
                entry |= _value(apdu.parameters, "parameters", secret=_hides_value(apdu))
        case GetResponseNormal():
            entry |= _result(apdu.result, "result")
        case GetResponseWithDataBlock():
            entry |= {"last_block": apdu.last_block, "block_number": apdu.block_number}
            if isinstance(apdu.raw, DataAccessResult):
                entry["data_access_result"] = str(apdu.raw)
            else:
                entry["raw_data_length"] = len(apdu.raw)
        case GetResponseWithList():
            entry["results"] = [_result(result, "result") for result in apdu.results]
        case SetResponseNormal():
            entry["result"] = str(apdu.result)
        case ActionResponseNormal():
            entry["result"] = str(apdu.result)
            if apdu.return_value is not None:
                entry |= _result(apdu.return_value, "return_value")
    return entry


def _aarq(aarq: Aarq) -> Entry:
    entry: Entry = {"application_context": _context(aarq.application_context)}
    if aarq.mechanism is not None:
        entry["mechanism"] = MECHANISMS.get(aarq.mechanism, aarq.mechanism.hex().upper())
    if aarq.authentication_value is not None:
        entry["calling_authentication_value"] = f"{len(aarq.authentication_value)} bytes, not shown"
    initiate = aarq.user_information
    return entry | {"dlms_version": initiate.dlms_version, "conformance": initiate.conformance.names(),
                    "max_receive_pdu_size": initiate.max_receive_pdu_size}


def _aare(aare: Aare) -> Entry:
    entry: Entry = {"application_context": _context(aare.application_context), "result": _words(aare.result.name),
                    "diagnostic": _diagnostic(aare)}
    information = aare.user_information
    if isinstance(information, InitiateResponse):
        entry |= {"dlms_version": information.dlms_version, "conformance": information.conformance.names(),
                  "max_receive_pdu_size": information.max_receive_pdu_size, "vaa_name": f"0x{information.vaa_name:04X}"}
    elif isinstance(information, ConfirmedServiceError):
        entry["error"] = str(information)
    return entry


def _diagnostic(aare: Aare) -> str:
    kind = AcseServiceUser if aare.diagnostic_source is DiagnosticSource.SERVICE_USER else AcseServiceProvider
    if aare.diagnostic in kind._value2member_map_:
        return _words(kind(aare.diagnostic).name)
    return f"diagnostic {aare.diagnostic}"


def _context(oid: bytes) -> str:
    return APPLICATION_CONTEXTS.get(oid, oid.hex().upper())


def _access(access: AccessSelection | None) -> Entry:
    if access is None:
        return {}
    return {"access": {"selector": access.selector, "parameters": _json(access.parameters)}}


def _value(data: Data, key: str, secret: bool = False) -> Entry:
    if secret:
        return {key: "not shown", "data_type": _type_name(data.tag)}
    return {key: _json(data), "data_type": _type_name(data.tag)}


def _result(result: GetResult, key: str) -> Entry:
    if isinstance(result, DataAccessResult):
        return {"data_access_result": str(result)}
    return _value(result, key)


def _notification(apdu: bytes) -> Entry:
    notification = parse_notification(apdu)
    entry: Entry = {"long_invoke_id_and_priority": f"0x{notification.invoke_id:08X}"}
    if notification.date_time is not None:
        entry["date_time"] = octet_text(notification.date_time.to_bytes())
    return entry | _value(notification.body, "body")


def _ciphered(apdu: bytes) -> Entry:
    """The header of a ciphered APDU: without the key its content stays unread."""
    ciphered = parse_ciphered(apdu)
    return {"system_title": ciphered.system_title.hex().upper(), "security_control": f"0x{ciphered.security_control:02X}",
            "frame_counter": ciphered.frame_counter, "ciphered_length": len(ciphered.payload)}


def _json(data: Data) -> Any:
    """json_of with lists for tuples, so that the annotations are plain JSON values."""
    return _lists(json_of(data))


def _lists(value: Any) -> Any:
    return [_lists(item) for item in value] if isinstance(value, tuple) else value


def _type_name(tag: DataTag) -> str:
    return _words(tag.name)


def _words(name: str) -> str:
    """An enum member's name as the Green Book writes it: `AUTHENTICATION_FAILURE` -> authentication-failure."""
    return name.lower().replace("_", "-")
