"""A simulated NES meter on its MEP port (MEP Client Developer's Guide v1.1; seed 001 ch. B.1, B.2
variant 3).

It holds the tables the client reads (BT00, ET03, BT21, BT22, BT23, BT27, BT28, BT52) with the
guide's layouts and LSB-first data, energy that grows with a household's load, and answers reads
with the MEP's digest under its key. The sequence number moves as ch. 2 says: a request is taken
when its number is 1 to 8 ahead of the last taken; any other gets 0x0C with the meter's number, and
the identical repeat of the last request gets the same answer again (the guide also tells clients to
resend unchanged bytes on a timeout). A request whose digest does not match the key gets 0x0B.
Writes are refused (0x03): meterlink never sends one.

`MepMeter` is the meter's logic without I/O; `run_mep_meter` puts it on a stream with the port's
timing: responses in 117-byte segments 25 ms apart, at most one request served every 100 ms, `00 00`
every second while alerts are pending (held off 1 s after a request), and silence while an optical
session holds the shared UART (Gen 3).
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import trio

from ..protocols.c1219 import BT00, BT21, BT22, BT23, BT27, BT28, BT52, ET03
from ..protocols.mep import (
    SEQUENCE_WINDOW, Code, Message, MepError, MepReceiver, Refused, SignedRequest, TableData, WantSequence,
    WriteRequest, decode_request, digest_update, encode_response, mep_key,
)

SEGMENT = 117
SEGMENT_GAP = 0.025
REQUEST_SPACING = 0.1
ALERT_EVERY = 1.0
DEMO_MEP_KEY = bytes.fromhex("4d45502d44454d4f2d4b45592d303031")
"""The demo's and `simulate mep`'s default key ("MEP-DEMO-KEY-001"); a real meter's comes from its operator."""

SUMMATION_SOURCES = (0, 1, 2, 3, 4, 5, 6, 7, 26, 27, 28)
"""BT22 of a meter without demand configured: 11 summations (the guide's BT23 layout)."""
VALUE_SOURCES = (8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19)
"""BT27: the first twelve present values of the guide's BT28 layout."""
PRESENT_DEMAND_SOURCES = (8,)


@dataclass
class MepMeter:
    """The meter's tables and sequence number; `answer` serves one request message."""

    key: bytes = field(default=DEMO_MEP_KEY, repr=False)
    serial: str = "MTR3000-0042"
    clock: Callable[[], float] = trio.current_time
    wallclock: Callable[[], float] = time.time
    load_w: int = 1500
    """Imported power; negative: exported (a PV surplus)."""
    sequence: int = field(default_factory=lambda: random.getrandbits(32))
    """The number of the last request taken."""
    demand_reset_counter: bool = True
    alerts_pending: bool = False
    reject_next: int = 0
    """Answer this many authentic requests 0x0B anyway, as a line-noise hit would."""

    def __post_init__(self) -> None:
        self.key = mep_key(self.key)
        self.started = self.clock()
        self.import_wh = 12_345_678.0
        self.export_wh = 456_789.0
        self.last_energy_at = self.started
        self.requests = 0
        self.writes_refused = 0
        self.repeats = 0
        self._last: tuple[bytes, bytes] | None = None
        """The last request taken and the answer sent, for an identical repeat."""

    # -- tables -----------------------------------------------------------------------------

    def _power(self) -> tuple[int, int]:
        """(import W, export W) now."""
        return (max(self.load_w, 0), max(-self.load_w, 0))

    def _advance(self) -> None:
        now = self.clock()
        imported, exported = self._power()
        self.import_wh += imported * (now - self.last_energy_at) / 3600
        self.export_wh += exported * (now - self.last_energy_at) / 3600
        self.last_energy_at = now

    def tables(self) -> dict[int, bytes]:
        self._advance()
        flags = 0x42 | (0x04 if self.demand_reset_counter else 0)  # date/time fields, time remaining
        bt21 = bytes([flags, 0x0C, 0, len(SUMMATION_SOURCES), 0, 0, 0, 4, len(PRESENT_DEMAND_SOURCES), len(VALUE_SOURCES)])
        summations = [int(self.import_wh), int(self.export_wh), int(self.import_wh // 9), int(self.export_wh // 40),
                      0, 3, int(self.import_wh + self.export_wh), int(max(self.import_wh - self.export_wh, 0)), 0, 0, 0]
        imported, exported = self._power()
        current_ma = round(max(imported, exported) / 3 / 230 * 1000)
        present = [imported, exported, imported // 10, 0, current_ma, current_ma, current_ma,
                   230_100, 229_800, 231_200, 990, 50_010]
        stamp = datetime.fromtimestamp(self.wallclock(), timezone.utc)
        return {
            BT00: bytes([0x00, 0x0A, 0x88]) + b"NES " + bytes([2, 0, 255, 12, 1, 0, 10, 13, 2, 12, 9, 3]),
            ET03: self.serial.encode("ascii").ljust(30, b"\0") + bytes(113),
            BT21: bt21,
            BT22: bytes(SUMMATION_SOURCES),
            BT23: (bytes([2]) if self.demand_reset_counter else b"") + struct.pack(f"<{len(summations)}i", *summations),
            BT27: bytes(PRESENT_DEMAND_SOURCES + VALUE_SOURCES),
            BT28: bytes(3) + struct.pack("<i", imported) + struct.pack(f"<{len(present)}i", *present),
            BT52: bytes([stamp.year - 2000, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second,
                         (stamp.isoweekday() % 7) | 0x10]),
        }

    # -- requests ---------------------------------------------------------------------------

    def answer(self, message: bytes) -> bytes | None:
        """The response to one request message; None for what no meter answers."""
        if self._last is not None and message == self._last[0]:
            self.repeats += 1
            return self._last[1]
        try:
            sent, authentic = decode_request(message, self.key)
        except WriteRequest:
            self.writes_refused += 1
            return self._refuse_write(message)
        except MepError:
            return None  # not a request: a real meter stays silent
        if not authentic or self.reject_next > 0:
            self.reject_next = max(self.reject_next - 1, 0)
            return encode_response(Refused(Code.AUTHENTICATION_FAILURE), sent, self.key)
        ahead = (sent.sequence - self.sequence) % 2**32
        if not 1 <= ahead <= SEQUENCE_WINDOW:
            return encode_response(WantSequence(self.sequence), sent, self.key)
        self.sequence = sent.sequence
        self.requests += 1
        response = encode_response(self._read(sent), sent, self.key)
        self._last = (message, response)
        return response

    def _read(self, sent: SignedRequest) -> TableData | Refused:
        table = self.tables().get(sent.request.table)
        if table is None:
            return Refused(Code.UNSUPPORTED)
        # A full read (0x30) names its length too (Table 2.6): the table's first `count` bytes.
        offset, count = sent.request.offset or 0, sent.request.count
        if offset + count > len(table):
            return Refused(Code.TABLE_NOT_POSSIBLE)
        return TableData(table[offset:offset + count])

    def _refuse_write(self, message: bytes) -> bytes:
        body = message[2:-8]
        state = digest_update(self.key, body, end=False)
        payload = bytes([Code.NO_PERMISSION])
        digest = digest_update(self.key, payload, state).digest
        return struct.pack(">H", len(payload) + 8) + payload + digest

    def jump_sequence(self, by: int = 25) -> None:
        """What the meter does when its IDT version changes (ch. 4, "Dynamic Sizing of Tables")."""
        self.sequence = (self.sequence + by) % 2**32


@dataclass
class PortFaults:
    """What `run_mep_meter` does besides answering: pending alerts and optical sessions."""

    optical_until: float = -math.inf
    """While trio time is before this, the MEP side is switched out: nothing is heard or sent."""

    def optical_session(self, now: float, seconds: float) -> None:
        self.optical_until = now + seconds

    def optical(self, now: float) -> bool:
        return now < self.optical_until


async def run_mep_meter(stream: trio.abc.Stream, meter: MepMeter, faults: PortFaults | None = None) -> None:
    """Serve `meter` on `stream` with the port's timing, until the peer goes away."""
    faults = faults or PortFaults()
    receiver = MepReceiver()
    last_request = -math.inf
    send_lock = trio.Lock()

    async def send(data: bytes) -> None:
        async with send_lock:
            for start in range(0, len(data), SEGMENT):
                if start:
                    await trio.sleep(SEGMENT_GAP)
                await stream.send_all(data[start:start + SEGMENT])

    async def alerts() -> None:
        while True:
            await trio.sleep(ALERT_EVERY)
            now = trio.current_time()
            if meter.alerts_pending and now - last_request >= ALERT_EVERY and not faults.optical(now):
                await send(b"\x00\x00")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alerts)
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    break
                if faults.optical(trio.current_time()):
                    receiver.reset()
                    continue
                for event in receiver.feed(data):
                    if not isinstance(event, Message):
                        continue
                    # At most one request every 100 ms: a quicker one waits its turn.
                    await trio.sleep_until(last_request + REQUEST_SPACING)
                    last_request = trio.current_time()
                    response = meter.answer(struct.pack(">H", len(event.body)) + event.body)
                    if response is not None:
                        await send(response)
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass

