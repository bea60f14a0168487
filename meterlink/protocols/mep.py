"""The MEP protocol of OSGP meters (NES MTR1000/3000), RC4 authentication without encryption.

Seed 001 ch. B.1 (physical interface 2: 9600 8N1) and ch. B.2 variant 3; the protocol is the OSGP
Alliance's MEP Client Developer's Guide v1.1 (ch. 2, appendix A). A message is a 2-byte big-endian
length of everything after it, an ANSI C12.18 service (0x30 full read: table, count; 0x3F partial
read: table, 3-byte offset, count; 0x40/0x4F writes), a 4-byte sequence number and an 8-byte digest;
a response is a code (0x00 then count and data for a read; 0x0C then the sequence number the meter
wants), then the digest. Only C12.18's service codes are used, not its link layer. A message is at
most 476 bytes after its length. While alert conditions are pending the meter sends `00 00` about
once a second: a zero length that starts no message.

The digest (appendix A) is keyed with the first 16 bytes of the MEP key. Every message byte is mixed
with one key bit into one of eight digest bytes; the key is walked 1.5 times (24 bytes of 16) per
pass, and the last pass is finished with zero bytes. A request's digest covers code through
sequence number; the response's digest continues from the request's unfinished state over the
response (code through data). Digest and sequence number of a request therefore bind its response.

RC4 encryption (a per-message option the meter mirrors) is not implemented: the guide has no
ciphertext example to test it against. Neither is TLS-PSK (Python's ssl has no PSK before 3.13).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import ProtocolError

MAX_MESSAGE = 476
"""Bytes of a request or response after its length field (ch. 2, "MEP Protocol Overview")."""
DIGEST_SIZE = 8
SEQUENCE_SIZE = 4
KEY_SIZE = 16
"""The key bytes used: keys are handed out as up to 20 bytes, of which the first 16 count."""
MAX_READ_DATA = MAX_MESSAGE - 1 - 2 - DIGEST_SIZE
"""Table bytes one read response can carry (code, count, data, digest)."""
SEQUENCE_WINDOW = 8
"""ch. 2, "RC4 Authentication": the meter accepts a sequence number up to 8 ahead of the last."""


class MepError(ProtocolError):
    """A MEP message that cannot be decoded or does not authenticate."""


class Service(enum.IntEnum):
    """C12.18 request codes the MEP carries (Table 2.6)."""

    FULL_READ = 0x30
    PARTIAL_READ = 0x3F
    FULL_WRITE = 0x40
    PARTIAL_WRITE = 0x4F


class Code(enum.IntEnum):
    """Response codes (Tables 2.5 and 2.7)."""

    OK = 0x00
    UNRECOGNIZED = 0x01
    UNSUPPORTED = 0x02
    NO_PERMISSION = 0x03
    NOT_POSSIBLE = 0x04
    TABLE_NOT_POSSIBLE = 0x05
    AUTHENTICATION_FAILURE = 0x0B
    INVALID_SEQUENCE = 0x0C


def mep_key(secret: bytes) -> bytes:
    """The 16 key bytes the digest uses, from a key of 16 to 20 bytes (ch. 2, "Access Levels")."""
    if not 16 <= len(secret) <= 20:
        raise MepError(f"MEP key of {len(secret)} bytes: expected 16 (or 20, of which the first 16 are used)")
    return bytes(secret[:KEY_SIZE])


@dataclass(frozen=True, slots=True)
class DigestState:
    """Where a digest computation stands: the eight digest bytes, the key byte and its bit."""

    digest: bytes = bytes(DIGEST_SIZE)
    key_index: int = 0
    bit: int = 0


def digest_update(key: bytes, data: bytes, state: DigestState = DigestState(), end: bool = True) -> DigestState:
    """Mix `data` into `state` (appendix A). With `end` the pass over the key is finished with
    zero bytes and `state.digest` is the digest; without it the state can be continued."""
    out = bytearray(state.digest)
    passes = len(key) if len(key) == 6 else len(key) + len(key) // 2
    index, bit, pos = state.key_index, state.bit, 0
    while True:
        while index < passes:
            key_bits = key[index % len(key)] >> bit
            last = out[(8 - bit) & 7]
            for place in range(7 - bit, -1, -1):
                if pos < len(data):
                    byte = data[pos]
                    pos += 1
                elif end:
                    byte = 0  # the message is over: zeros use up the pass's remaining key bits
                else:
                    return DigestState(bytes(out), index, 7 - place)
                n = ~(out[place] + place) & 0xFF
                if key_bits & 1:
                    mixed = (n << 1 | n >> 7) & 0xFF
                else:
                    mixed = -((n >> 1 | n << 7) & 0xFF)
                last = out[place] = (last + byte + mixed) & 0xFF
                key_bits >>= 1
            bit = 0
            index += 1
        index = 0
        if pos >= len(data):
            return DigestState(bytes(out), index, bit)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """A C12.18 table read: partial (offset given) or full (offset None)."""

    table: int
    count: int
    offset: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.table <= 0xFFFF or not 0 <= self.count <= MAX_READ_DATA:
            raise MepError(f"read of table {self.table}, {self.count} bytes: table 0..65535, count 0..{MAX_READ_DATA}")
        if self.offset is not None and not 0 <= self.offset <= 0xFFFFFF:
            raise MepError(f"read at offset {self.offset}: 3 bytes")

    def service(self) -> bytes:
        if self.offset is None:
            return struct.pack(">BHH", Service.FULL_READ, self.table, self.count)
        return struct.pack(">BH", Service.PARTIAL_READ, self.table) + self.offset.to_bytes(3, "big") + struct.pack(">H", self.count)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as sent, with the digest state its response's digest continues from."""

    request: ReadRequest
    sequence: int
    message: bytes
    state: DigestState


def encode_request(request: ReadRequest, sequence: int, key: bytes) -> SignedRequest:
    """The request message: length, service, sequence number, digest."""
    body = request.service() + (sequence & 0xFFFFFFFF).to_bytes(SEQUENCE_SIZE, "big")
    state = digest_update(key, body, end=False)
    digest = digest_update(key, b"", state).digest
    message = struct.pack(">H", len(body) + DIGEST_SIZE) + body + digest
    return SignedRequest(request, sequence & 0xFFFFFFFF, message, state)


@dataclass(frozen=True, slots=True)
class TableData:
    """0x00 to a read: the table bytes."""

    data: bytes


@dataclass(frozen=True, slots=True)
class WantSequence:
    """0x0C: the sequence number the meter names; the next request uses it plus one."""

    sequence: int


@dataclass(frozen=True, slots=True)
class Refused:
    """An error code (0x01-0x05, 0x0B): the request was not carried out."""

    code: int

    @property
    def reason(self) -> str:
        name = Code(self.code).name.lower().replace("_", " ") if self.code in Code._value2member_map_ else "unknown code"
        return f"{name} (0x{self.code:02X})"


Answer = TableData | WantSequence | Refused


def decode_response(body: bytes, sent: SignedRequest, key: bytes) -> Answer:
    """A response (everything after its length) to `sent`, its digest checked.

    0x0B is the one answer whose digest is not checked: the meter sends it because no key it holds
    matches ours, so it cannot be bound to our key (appendix A gives no digest for it).
    """
    if len(body) < 1 + DIGEST_SIZE:
        raise MepError(f"response of {len(body)} bytes: at least a code and an 8-byte digest")
    payload, digest = body[:-DIGEST_SIZE], body[-DIGEST_SIZE:]
    code = payload[0]
    if code == Code.AUTHENTICATION_FAILURE:
        if len(payload) != 1:
            raise MepError(f"0x0B with {len(payload) - 1} bytes of data: it has none")
        return Refused(code)
    expected = digest_update(key, payload, sent.state).digest
    if digest != expected:
        raise MepError(f"response code 0x{code:02X}: the digest {digest.hex()} does not authenticate it")
    if code == Code.INVALID_SEQUENCE:
        if len(payload) != 1 + SEQUENCE_SIZE:
            raise MepError(f"0x0C with {len(payload) - 1} bytes of data: expected the 4-byte sequence number")
        return WantSequence(int.from_bytes(payload[1:], "big"))
    if code != Code.OK:
        if len(payload) != 1:
            raise MepError(f"error code 0x{code:02X} with {len(payload) - 1} bytes of data: it has none")
        return Refused(code)
    if len(payload) < 3:
        raise MepError(f"read response of {len(payload)} bytes: no 2-byte count")
    count = int.from_bytes(payload[1:3], "big")
    if count != len(payload) - 3:
        raise MepError(f"read response: count {count} but {len(payload) - 3} bytes of table data")
    if count != sent.request.count:
        raise MepError(f"read of {sent.request.count} bytes of table {sent.request.table} answered with {count}")
    return TableData(payload[3:])


# -- the byte stream from the meter ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """`00 00`: the meter has alert flags pending (ch. 2, "Alert Sequence")."""


@dataclass(frozen=True, slots=True)
class Started:
    """A non-zero length arrived: a response is coming (it ends the 500 ms response timeout)."""

    length: int


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: everything after its length."""

    body: bytes


@dataclass(frozen=True, slots=True)
class BadLength:
    """A length no message has; what was buffered is dropped."""

    detail: str


StreamEvent = Alert | Started | Message | BadLength


class MepReceiver:
    """Splits the meter's byte stream into alerts and messages (segments arrive with gaps)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length: int | None = None

    def reset(self) -> None:
        """Forget a partial message (its segments stopped coming)."""
        self._buffer.clear()
        self._length = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        self._buffer += data
        events: list[StreamEvent] = []
        while True:
            if self._length is None:
                if len(self._buffer) < 2:
                    return events
                length = int.from_bytes(self._buffer[:2], "big")
                del self._buffer[:2]
                if length == 0:
                    events.append(Alert())
                    continue
                if not 1 + DIGEST_SIZE <= length <= MAX_MESSAGE:
                    events.append(BadLength(f"length {length} (a message has 9..{MAX_MESSAGE} bytes); "
                                            f"{len(self._buffer)} buffered bytes dropped"))
                    self._buffer.clear()
                    return events
                self._length = length
                events.append(Started(length))
            if len(self._buffer) < self._length:
                return events
            events.append(Message(bytes(self._buffer[:self._length])))
            del self._buffer[:self._length]
            self._length = None


def split_messages(data: bytes) -> list[bytes]:
    """Whole messages (length included) in `data`, alerts left out; for captures and tests."""
    messages = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise MepError(f"{len(data) - pos} byte at offset {pos}: no length field")
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length and not 1 + DIGEST_SIZE <= length <= MAX_MESSAGE:
            raise MepError(f"length {length} at offset {pos}: a message has 9..{MAX_MESSAGE} bytes")
        if pos + 2 + length > len(data):
            raise MepError(f"message at offset {pos}: length {length} but {len(data) - pos - 2} bytes follow")
        if length:
            messages.append(data[pos:pos + 2 + length])
        pos += 2 + length
    return messages


def decode_request(message: bytes, key: bytes) -> tuple[SignedRequest, bool]:
    """A request message (length included) and whether its digest authenticates with `key`; for
    the simulator and `decode mep`. Writes are decoded as far as their table and count."""
    if len(message) < 2 or int.from_bytes(message[:2], "big") != len(message) - 2:
        raise MepError(f"request of {len(message)} bytes: its length field does not match")
    body = message[2:-DIGEST_SIZE]
    if not body:
        raise MepError("request without a service")
    code = body[0]
    sizes = {Service.FULL_READ: 5, Service.PARTIAL_READ: 8, Service.FULL_WRITE: 5, Service.PARTIAL_WRITE: 8}
    if code not in sizes or len(body) < sizes[Service(code)] + SEQUENCE_SIZE:
        raise MepError(f"request code 0x{code:02X} with {len(body)} bytes: not a C12.18 table service")
    table = int.from_bytes(body[1:3], "big")
    if code in (Service.PARTIAL_READ, Service.PARTIAL_WRITE):
        offset: int | None = int.from_bytes(body[3:6], "big")
        count = int.from_bytes(body[6:8], "big")
    else:
        offset, count = None, int.from_bytes(body[3:5], "big")
    if code in (Service.FULL_WRITE, Service.PARTIAL_WRITE):
        raise WriteRequest(table, offset, count)
    if len(body) != sizes[Service(code)] + SEQUENCE_SIZE:
        raise MepError(f"read request of {len(body)} bytes before its digest: expected {sizes[Service(code)] + SEQUENCE_SIZE}")
    if count > MAX_READ_DATA:
        raise MepError(f"read of {count} bytes: at most {MAX_READ_DATA} fit a response")
    sequence = int.from_bytes(body[-SEQUENCE_SIZE:], "big")
    state = digest_update(key, body, end=False)
    authentic = digest_update(key, b"", state).digest == message[-DIGEST_SIZE:]
    return SignedRequest(ReadRequest(table, count, offset), sequence, message, state), authentic


class WriteRequest(MepError):
    """A table write: meterlink never sends one, and its simulated meter takes none."""

    def __init__(self, table: int, offset: int | None, count: int) -> None:
        super().__init__(f"write of {count} bytes to table {table}" + (f" at {offset}" if offset is not None else ""))
        self.table = table


def encode_response(answer: Answer, sent: SignedRequest, key: bytes) -> bytes:
    """The meter's side: a response to `sent` with its digest (0x0B gets eight zero bytes)."""
    match answer:
        case TableData(data):
            payload = bytes([Code.OK]) + struct.pack(">H", len(data)) + data
        case WantSequence(sequence):
            payload = bytes([Code.INVALID_SEQUENCE]) + sequence.to_bytes(SEQUENCE_SIZE, "big")
        case Refused(code):
            payload = bytes([code])
    if payload[0] == Code.AUTHENTICATION_FAILURE:
        digest = bytes(DIGEST_SIZE)
    else:
        digest = digest_update(key, payload, sent.state).digest
    return struct.pack(">H", len(payload) + DIGEST_SIZE) + payload + digest
