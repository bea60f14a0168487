"""How the wireless M-Bus receivers people plug into Linux hand telegrams over (issue 20 item 3).

Each framer is sans-IO: feed it what the receiver wrote, get `RadioFrame`s (a wireless M-Bus frame,
L first, for `protocols.wmbus.parse_frame`), `StickReply`s (the answer to a set-up command),
`StickText` (other lines), `BadFrame`s and `Noise`. Each receiver also names its serial setting,
its set-up commands, and how it wraps a frame (for the simulated sticks).

- IMST iM871A (WMBus USB adapter HCI, 57600 8N1): `A5`, control/endpoint (high nibble: bit 1
  timestamp, bit 2 RSSI, bit 3 CRC attached; low nibble the endpoint: 1 device management, 2 radio
  link), message id, payload length, payload, then the attached fields. A received telegram is
  radio link message 0x03 whose payload is the frame from C on, CRCs removed (L is the length).
  Set-up: DEVMGMT SET_CONFIG (0x03): temporary, set the link mode (T1 = 3) and RSSI on; the answer
  is SET_CONFIG_RSP (0x04) with status 0.
- Amber AMB8465 (9600 8N1): `FF cmd len payload CS`, CS the XOR of all bytes before it. A received
  telegram is CMD_DATA_IND (0x03), payload the frame from C on, then one RSSI byte (RSSI output is
  switched on at set-up). Answers carry the command | 0x80 and a status byte (0 = done). Set-up:
  CMD_GET_REQ (0x0A) of RSSI_Enable (memory 0x45); CMD_SET_REQ (0x09) RSSI_Enable = 1 only where it
  is not (it writes the stick's non-volatile memory: not at every start of the link); then
  CMD_SET_MODE_REQ (0x04) T2-Other (0x08), the mode that receives T1 meters.
- CUL / nanoCUL with culfw (38400 8N1): text lines. `X21` reports RSSI and LQI, `brt` sets T mode
  (`brc` C mode), `V` answers the version; a telegram is `b` and its hex with the block CRCs still
  inside (`bY` for frame format B), then two bytes of LQI and RSSI.
- rtl_wmbus (an RTL-SDR, lines on a command's standard output): `MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;
  PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_ID;0x<frame without CRCs>`; a line with CRC_OK 0 failed its
  checks on air; lines of other shape are rtl_sdr's messages.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .crc import crc16_x25
from .framing import BadFrame, BufferedFramer, Noise, StartByteFramer, add_event
from .wmbus import FrameFormat, frame_length


class Receiver(enum.Enum):
    IM871A = "im871a"
    AMB8465 = "amb8465"
    CUL = "cul"
    RTL_WMBUS = "rtl_wmbus"


@dataclass(frozen=True, slots=True)
class RadioFrame:
    """A wireless M-Bus frame as received, L first (CRCs inside for a CUL, removed by the others)."""

    data: bytes
    rssi: int | None = None
    """What the receiver reports, in its own units (dBm for rtl_wmbus, a raw byte for the sticks)."""


@dataclass(frozen=True, slots=True)
class StickReply:
    """The answer to a set-up command: `ok` when the receiver did it."""

    what: str
    ok: bool
    satisfied: bool = False
    """The receiver already has what the next set-up command would set: that one is left out."""


@dataclass(frozen=True, slots=True)
class StickText:
    """A line that is neither a telegram nor an answer (a CUL's or rtl_sdr's messages)."""

    line: str


ReceiverEvent = RadioFrame | StickReply | StickText | BadFrame | Noise

# -- iM871A ------------------------------------------------------------------------------------

IM871A_SOF = 0xA5
IM_DEVMGMT, IM_RADIOLINK = 0x01, 0x02
IM_PING_REQ, IM_PING_RSP, IM_SET_CONFIG_REQ, IM_SET_CONFIG_RSP = 0x01, 0x02, 0x03, 0x04
IM_WMBUS_MSG_IND = 0x03
IM_LINK_MODE_T1 = 0x03
IM_TIMESTAMP, IM_RSSI, IM_CRC = 0x2, 0x4, 0x8
IM871A_SETUP = (bytes((IM871A_SOF, IM_DEVMGMT, IM_SET_CONFIG_REQ, 6, 0x00, 0x02, IM_LINK_MODE_T1, 0x30, 0x01, 0x00)),)
"""SET_CONFIG: in RAM only (0), IIFlag1 = set the link mode (0x02), T1, IIFlag2 = RSSI and
timestamp fields present (0x30), RSSI on (1), timestamp off (0)."""


def im871a_message(endpoint: int, message: int, payload: bytes, rssi: int | None = None, crc: bool = False) -> bytes:
    """One HCI message as the stick sends it (for the simulated stick and tests)."""
    control = (IM_RSSI if rssi is not None else 0) | (IM_CRC if crc else 0)
    body = bytes(((control << 4) | endpoint, message, len(payload))) + payload
    if rssi is not None:
        body += bytes((rssi,))
    if crc:
        body += crc16_x25(body).to_bytes(2, "little")
    return bytes((IM871A_SOF,)) + body


class Im871aFramer(StartByteFramer[ReceiverEvent]):
    def _next(self) -> ReceiverEvent | None:
        buffer = self._buffer
        if buffer[0] != IM871A_SOF:
            return self._skip_to(IM871A_SOF)
        if len(buffer) < 4:
            return None
        control, endpoint, message, length = buffer[1] >> 4, buffer[1] & 0x0F, buffer[2], buffer[3]
        if control & 0x1 or endpoint not in (IM_DEVMGMT, IM_RADIOLINK, 0x03, 0x04):
            del buffer[:1]
            return BadFrame(f"iM871A message: control/endpoint byte 0x{buffer[0]:02X} is not one the stick sends", 1)
        extra = (4 if control & IM_TIMESTAMP else 0) + (1 if control & IM_RSSI else 0) + (2 if control & IM_CRC else 0)
        end = 4 + length + extra
        if len(buffer) < end:
            return None
        message_bytes = bytes(buffer[:end])
        if control & IM_CRC and crc16_x25(message_bytes[1:-2]).to_bytes(2, "little") != message_bytes[-2:]:
            del buffer[:1]
            return BadFrame(f"iM871A message 0x{message:02X}: CRC {message_bytes[-2:].hex()} does not match", 1)
        del buffer[:end]
        payload = message_bytes[4:4 + length]
        rssi = message_bytes[4 + length + (4 if control & IM_TIMESTAMP else 0)] if control & IM_RSSI else None
        if endpoint == IM_RADIOLINK and message == IM_WMBUS_MSG_IND:
            return RadioFrame(bytes((length,)) + payload, rssi)
        if endpoint == IM_DEVMGMT and message == IM_SET_CONFIG_RSP:
            return StickReply("set_config", payload[:1] == b"\x00")
        if endpoint == IM_DEVMGMT and message == IM_PING_RSP:
            return StickReply("ping", True)
        return StickText(f"iM871A message 0x{message:02X} on endpoint {endpoint}: {payload.hex()}")


# -- AMB8465 -----------------------------------------------------------------------------------

AMB_SOF = 0xFF
AMB_DATA_IND, AMB_SET_MODE_REQ, AMB_SET_REQ, AMB_GET_REQ = 0x03, 0x04, 0x09, 0x0A
AMB_MODE_T2_OTHER = 0x08
AMB_RSSI_ENABLE = 0x45


def amb_command(command: int, payload: bytes) -> bytes:
    body = bytes((AMB_SOF, command, len(payload))) + payload
    checksum = 0
    for byte in body:
        checksum ^= byte
    return body + bytes((checksum,))


AMB8465_SETUP = (amb_command(AMB_GET_REQ, bytes((AMB_RSSI_ENABLE, 1))),
                 amb_command(AMB_SET_REQ, bytes((AMB_RSSI_ENABLE, 1, 1))),
                 amb_command(AMB_SET_MODE_REQ, bytes((AMB_MODE_T2_OTHER,))))
"""Is RSSI output on? If not, on (one byte after each telegram); then the T2-Other mode, which
hears T1 meters."""
_AMB_ANSWERS = {AMB_SET_REQ | 0x80: "set", AMB_SET_MODE_REQ | 0x80: "set_mode"}


class Amb8465Framer(StartByteFramer[ReceiverEvent]):
    def _next(self) -> ReceiverEvent | None:
        buffer = self._buffer
        if buffer[0] != AMB_SOF:
            return self._skip_to(AMB_SOF)
        if len(buffer) < 3:
            return None
        command, length = buffer[1], buffer[2]
        end = 4 + length
        if len(buffer) < end:
            return None
        checksum = 0
        for byte in buffer[:end - 1]:
            checksum ^= byte
        if checksum != buffer[end - 1]:
            sent = buffer[end - 1]
            del buffer[:1]
            return BadFrame(f"AMB8465 message 0x{command:02X}: checksum 0x{sent:02X}, computed 0x{checksum:02X}", 1)
        payload = bytes(buffer[3:end - 1])
        del buffer[:end]
        if command == AMB_DATA_IND:
            if len(payload) < 2:
                return BadFrame("AMB8465 telegram: too short for a frame and its RSSI byte", end)
            frame = payload[:-1]
            return RadioFrame(bytes((len(frame),)) + frame, payload[-1])
        if command == AMB_GET_REQ | 0x80:
            # memory position, length, the values: RSSI_Enable already 1 spares the write that sets it
            rssi_on = payload[:3] == bytes((AMB_RSSI_ENABLE, 1, 1))
            return StickReply("get", len(payload) >= 2, satisfied=rssi_on)
        if command in _AMB_ANSWERS:
            return StickReply(_AMB_ANSWERS[command], payload[:1] == b"\x00")
        return StickText(f"AMB8465 message 0x{command:02X}: {payload.hex()}")


# -- text receivers --------------------------------------------------------------------------------


class LineFramer(BufferedFramer):
    """Lines ended by LF (CR LF too); a line longer than `MAX_LINE` is noise."""

    MAX_LINE = 2048

    def feed(self, data: bytes) -> list[ReceiverEvent]:
        self._buffer += data
        events: list[ReceiverEvent] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.MAX_LINE:
                    add_event(events, Noise(len(self._buffer)))
                    self._buffer.clear()
                break
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            if line:
                add_event(events, self.line(line.decode("latin-1")))
        return events

    def line(self, text: str) -> ReceiverEvent:
        raise NotImplementedError


CUL_SETUP = (b"X21\r\nbrt\r\nV\r\n",)
"""One step: RSSI and LQI with each telegram, T mode (neither is answered), then the version, whose
answer says the CUL is there and has read the two before it."""
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def cul_line(frame_with_crcs: bytes, format_b: bool = False, lqi: int = 0x2A, rssi: int = 0x60) -> bytes:
    """A telegram as culfw prints it with X21 (for the simulated stick and tests)."""
    return b"b" + (b"Y" if format_b else b"") + (frame_with_crcs + bytes((lqi, rssi))).hex().upper().encode() + b"\r\n"


class CulFramer(LineFramer):
    def line(self, text: str) -> ReceiverEvent:
        if text.startswith("V "):
            return StickReply("version", True)
        if not text.startswith("b"):
            return StickText(text)
        form = FrameFormat.B if text.startswith("bY") else FrameFormat.A
        digits = text[2:] if form is FrameFormat.B else text[1:]
        if len(digits) % 2 or not _HEX.match(digits):
            return BadFrame(f"CUL line {text[:24]!r}: not hex", len(text))
        data = bytes.fromhex(digits)
        if not data:
            return BadFrame("CUL line 'b' without a telegram", len(text))
        length = frame_length(data[0], form)
        if len(data) < length:
            return BadFrame(f"CUL telegram of {len(data)} bytes, its L field says {length}", len(text))
        extra = data[length:]
        return RadioFrame(data[:length], extra[1] if len(extra) >= 2 else None)


def rtl_wmbus_line(frame: bytes, meter_id: str, timestamp: str = "2026-12-04 06:00:00.000", rssi: int = 97) -> bytes:
    """A telegram as rtl_wmbus prints it (for the simulated receiver and tests)."""
    return f"T1;1;1;{timestamp};{rssi};148;{meter_id};0x{frame.hex()}\n".encode()


class RtlWmbusFramer(LineFramer):
    def line(self, text: str) -> ReceiverEvent:
        if text.startswith("0x"):
            fields = ["", "1", "1", "", "", "", "", text]
        else:
            fields = text.split(";")
            if len(fields) < 8 or fields[0] not in ("T1", "C1", "S1"):
                return StickText(text)
        if fields[1] != "1":
            return BadFrame(f"rtl_wmbus: a {fields[0]} telegram that failed its CRC checks on air", len(text))
        digits = fields[7].strip()[2:]
        if not digits or len(digits) % 2 or not _HEX.match(digits):
            return BadFrame(f"rtl_wmbus line: {fields[7][:24]!r} is not 0x and hex", len(text))
        rssi = int(fields[4]) if fields[4].lstrip("-").isdigit() else None
        return RadioFrame(bytes.fromhex(digits), rssi)


SETUP: dict[Receiver, tuple[bytes, ...]] = {
    Receiver.IM871A: IM871A_SETUP, Receiver.AMB8465: AMB8465_SETUP, Receiver.CUL: CUL_SETUP, Receiver.RTL_WMBUS: (),
}
"""Each receiver's set-up commands, sent one by one, each awaiting its `StickReply`."""


def framer(receiver: Receiver) -> BufferedFramer:
    return {Receiver.IM871A: Im871aFramer, Receiver.AMB8465: Amb8465Framer, Receiver.CUL: CulFramer,
            Receiver.RTL_WMBUS: RtlWmbusFramer}[receiver]()
