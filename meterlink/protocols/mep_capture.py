"""A capture of MEP request/response pairs (hex, one message per line, in order) as readings: what
`meterlink decode mep` reads.

A response's digest continues from its request's, and its bytes are a slice of a table that BT21,
BT22 and BT27 lay out, so the capture is replayed in order: each read answered with 0x00 is put
into its table at its offset; a complete BT52 read after BT23 ends a poll (the order meterlink's
client reads in) and makes a reading, as does a BT23 left at the end of the capture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .c1219 import (
    BT21, BT22, BT23, BT27, BT28, BT52, ET03, CurrentRegisters, TableError, decode_bt21, decode_bt22, decode_bt23,
    decode_bt27, decode_bt28, decode_bt52, decode_serial, mep_reading,
)
from .errors import ProtocolError
from .mep import MepError, Refused, TableData, WantSequence, WriteRequest, decode_request, decode_response
from .readings import Reading


@dataclass
class CaptureReplay:
    """Feed message pairs; `readings` and `problems` collect what they made."""

    key: bytes = field(repr=False)
    energy_unit: int = 1
    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What is no failure but worth telling: 0x0C answers, writes."""
    tables: dict[int, bytearray] = field(default_factory=dict)
    _poll: set[int] = field(default_factory=set)

    def pair(self, number: int, request: bytes, response: bytes | None) -> None:
        where = f"pair {number}"
        try:
            sent, authentic = decode_request(request, self.key)
        except WriteRequest as write:
            self.notes.append(f"{where}: {write} (not decoded; meterlink only reads)")
            return
        except MepError as error:
            self.problems.append(f"{where}: request: {error}")
            return
        if not authentic:
            self.problems.append(f"{where}: the request's digest does not match the key")
            return
        if response is None:
            self.problems.append(f"{where}: the capture ends before the response")
            return
        if len(response) < 2 or int.from_bytes(response[:2], "big") != len(response) - 2:
            self.problems.append(f"{where}: response of {len(response)} bytes: its length field does not match")
            return
        try:
            answer = decode_response(response[2:], sent, self.key)
        except MepError as error:
            self.problems.append(f"{where}: {error}")
            return
        match answer:
            case WantSequence(sequence):
                self.notes.append(f"{where}: 0x0C: the meter wants sequence number {sequence + 1:#010x}")
            case Refused():
                self.problems.append(f"{where}: table {sent.request.table}: {answer.reason}")
            case TableData(data):
                self._store(sent.request.table, sent.request.offset or 0, data)
                try:
                    self._poll_step(sent.request.table, (sent.request.offset or 0) + len(data))
                except TableError as error:
                    self.problems.append(f"{where}: {error}")

    def _store(self, table: int, offset: int, data: bytes) -> None:
        stored = self.tables.setdefault(table, bytearray())
        if len(stored) < offset + len(data):
            stored.extend(bytes(offset + len(data) - len(stored)))
        stored[offset:offset + len(data)] = data

    def _poll_step(self, table: int, end: int) -> None:
        if table in (BT23, BT28):
            self._poll.add(table)
        elif table == BT52 and end >= 7 and BT23 in self._poll:
            self._emit()

    def finish(self) -> None:
        if BT23 in self._poll:
            try:
                self._emit()
            except TableError as error:
                self.problems.append(f"end of capture: {error}")

    def _emit(self) -> None:
        self._poll.clear()
        if BT21 not in self.tables or BT22 not in self.tables:
            raise TableError("BT23 read without BT21 and BT22 in the capture: its registers cannot be named")
        dims = decode_bt21(bytes(self.tables[BT21]))
        registers = decode_bt23(bytes(self.tables[BT23]), dims) if dims.summations else CurrentRegisters(None, ())
        present: tuple[int, ...] = ()
        value_sources: tuple[int, ...] = ()
        if BT27 in self.tables and BT28 in self.tables and dims.present_values:
            value_sources = decode_bt27(bytes(self.tables[BT27]), dims)
            present = decode_bt28(bytes(self.tables[BT28]), dims)
        clock = decode_bt52(bytes(self.tables[BT52])) if BT52 in self.tables else None
        serial = decode_serial(bytes(self.tables[ET03])) if ET03 in self.tables else None
        self.readings.append(mep_reading(serial, decode_bt22(bytes(self.tables[BT22]), dims), registers, value_sources,
                                         present, clock, None, self.energy_unit))


def capture_lines(text: str) -> list[bytes]:
    """The messages of a capture: hex per line (spaces, '-' and ':' allowed), '#' comments."""
    messages = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0]
        digits = "".join(line.split()).replace("-", "").replace(":", "")
        if not digits:
            continue
        try:
            messages.append(bytes.fromhex(digits))
        except ValueError:
            raise ProtocolError(f"line {number}: not hex") from None
    return messages
