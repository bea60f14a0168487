"""The MEP client of an OSGP meter (NES MTR1000/3000; seed 001 ch. B.1 interface 2, B.2 variant 3).

The client starts every exchange (MEP Client Developer's Guide v1.1, ch. 2). A session reads BT00
(data order and integer formats), ET03 (the utility serial number), BT21 (the dimensions), then BT22
and BT27 (the sources of BT23's summations and of BT28's present values); every poll reads BT23,
BT28 and BT52 (the UTC clock) and publishes one reading. A table larger than one response is read in
partial reads of at most 465 bytes.

Timing (ch. 2, "MEP Protocol Timing"): 500 ms from the request to the first two non-zero length
bytes; the rest of a response comes in 117-byte segments 25 ms apart, so the client gives the whole
message its own deadline. On no answer it sends the same bytes again (same sequence number and
digest). At least 100 ms between requests, and with the default 5 s poll interval three table reads
in 5 s, within the guide's advice of about one a second. `00 00` alert pairs are counted and never
answered.

Sequence numbers: the meter accepts a number up to 8 ahead of its last; a 0x0C answer names the
meter's number and the client goes on with that plus one (RC4 Example 1). The guide also tells
clients to increment on every send, retries included; a meter that refuses the identical retry
answers 0x0C and the client adopts its number again. A 0x0C after the tables are sized (the meter
adds 25 when its interface definition changes) has the next poll read BT21, BT22 and BT27 again. A 0x0B (authentication failure) is retried
once with the next number, since line noise causes it too; a second one is a key error. A 0x0B has no
digest to bind it to its request, so the retry first waits out any answer to a stale copy. A meter that
stays silent after the retries - a Gen 3 meter while its optical port is in use - is asked again
every `quiet_retry` seconds by the service; `read mep` gives up instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from statemachine import State

from ..protocols.c1219 import (
    BT00, BT00_SIZE, BT21, BT21_SIZE, BT22, BT23, BT27, BT28, BT52, BT52_SIZE, ENERGY_UNITS, ET03, SERIAL_SIZE,
    CurrentRegisters, Dimensions, TableError, decode_bt00, decode_bt21, decode_bt22, decode_bt23, decode_bt27,
    decode_bt28, decode_bt52, decode_serial, mep_reading,
)
from ..protocols.mep import (
    MAX_READ_DATA, Alert, BadLength, Code, Message, MepError, ReadRequest, Refused, SignedRequest, Started, TableData,
    WantSequence, decode_response, encode_request, mep_key, MepReceiver, StreamEvent,
)
from .base import LinkMachine, Publish, Resync, Send, StateTimeout

MIN_POLL_INTERVAL = 3.0
"""Three table reads a poll at about one a second (ch. 2, "MEP Protocol Timing")."""
MIN_REQUEST_GAP = 0.1
"""The meter takes at most one request every 100 ms."""
MAX_RESYNCS = 3
"""0x0C answers in a row before the client stops believing the meter's number."""


@dataclass(frozen=True)
class MepPlan:
    """How a session runs. The key never shows in a repr."""

    key: bytes | None = field(default=None, repr=False)
    """The MEP key (16 bytes used). None only for a machine that never sends: the diagrams'."""
    poll_interval: float = 5.0
    energy_unit: int = 1
    """ET55's energy register unit of CT meters: BT23's Wh and varh count in 1, 10 or 100."""
    response_timeout: float = 0.5
    message_timeout: float = 1.5
    """From the length to the last byte: 476 bytes at 9600 baud and the segment gaps take ~0.6 s."""
    request_gap: float = 0.1
    retries: int = 2
    quiet_retry: float = 5.0
    patient: bool = True
    """Keep asking a silent meter (the service); False gives up after the retries (`read mep`)."""
    first_sequence: int = 0
    """The client does not know the meter's number; the first answer tells it (0x0C)."""

    def __post_init__(self) -> None:
        if self.key is not None:
            object.__setattr__(self, "key", mep_key(self.key))
        if self.poll_interval < MIN_POLL_INTERVAL:
            raise ValueError(f"poll interval {self.poll_interval:g} s: at least {MIN_POLL_INTERVAL:g} s "
                             "(about one table read a second, as the guide advises)")
        if self.request_gap < MIN_REQUEST_GAP:
            raise ValueError(f"request gap {self.request_gap:g} s: the meter takes one request every 100 ms")
        if self.energy_unit not in ENERGY_UNITS:
            raise ValueError(f"energy unit {self.energy_unit}: 1, 10 or 100 (ET55)")


@dataclass
class _Read:
    """One table read, in chunks of at most MAX_READ_DATA bytes."""

    table: int
    size: int
    data: bytearray = field(default_factory=bytearray)

    def request(self) -> ReadRequest:
        return ReadRequest(self.table, min(MAX_READ_DATA, self.size - len(self.data)), offset=len(self.data))

    def completed_by(self, chunk: bytes) -> bool:
        return len(self.data) + len(chunk) >= self.size


POLL = (BT23, BT28, BT52)


class MepClient(LinkMachine):
    """Setup reads, then BT23, BT28 and BT52 every poll interval."""

    class link(State.Compound, name="MEP client"):
        starting = State("Starting", initial=True)
        requesting = State("Awaiting the length")
        receiving = State("Receiving the response")
        pausing = State("Pausing between requests")
        idle = State("Idle between polls")
        silent = State("Meter silent (optical session?)")
        settling = State("Waiting out stale answers")

        start = starting.to(requesting, on="send_next")
        length_seen = requesting.to(receiving)
        answer = receiving.to(pausing, cond="more_to_read", on="take_data") | receiving.to(idle, on="publish")
        gap_over = pausing.to(requesting, on="send_next")
        poll_due = idle.to(requesting, on="start_poll")
        try_again = silent.to(requesting, on="send_fresh")
        sequence_rejected = receiving.to(pausing, cond="can_resync", on="adopt_sequence")
        auth_failed = receiving.to(settling, cond="first_auth_failure", on="next_sequence")
        settled = settling.to(requesting, on="send_next")
        no_answer = (
            requesting.to.itself(internal=True, cond="can_retry", on="resend")
            | receiving.to(requesting, cond="can_retry", on="resend_after_cut")
            | requesting.to(silent, cond="patient", on="fell_silent")
            | receiving.to(silent, cond="patient", on="fell_silent")
        )

    closed = State("Closed", final=True)

    no_answer = link.to(closed, on="gave_up")
    sequence_rejected = link.to(closed, on="sequence_unusable")
    auth_failed = link.to(closed, on="key_rejected")
    refused = link.to(closed, on="was_refused")
    bad_answer = link.to(closed, on="answer_unusable")
    link_lost = link.to(closed)

    timeouts = (
        StateTimeout("starting", after="start_after", event="start"),
        StateTimeout("requesting", after="response_timeout", event="no_answer"),
        StateTimeout("receiving", after="message_timeout", event="no_answer"),
        StateTimeout("pausing", after="request_gap", event="gap_over"),
        StateTimeout("idle", after="poll_interval", event="poll_due"),
        StateTimeout("silent", after="quiet_retry", event="try_again"),
        StateTimeout("settling", after="response_timeout", event="settled"),
    )

    def __init__(self, plan: MepPlan = MepPlan(), counters: Counter[str] | None = None) -> None:
        self.plan = plan
        self.codec = MepReceiver()
        self.start_after = 0.0
        self.response_timeout = plan.response_timeout
        self.message_timeout = plan.message_timeout
        self.request_gap = plan.request_gap
        self.poll_interval = plan.poll_interval
        self.quiet_retry = plan.quiet_retry
        self.sequence = plan.first_sequence
        self.failure: str | None = None
        """Why the session closed."""
        self.serial: str | None = None
        self.dims: Dimensions | None = None
        self.summation_sources: tuple[int, ...] = ()
        self.value_sources: tuple[int, ...] = ()
        self._queue: list[_Read] = [_Read(BT00, BT00_SIZE), _Read(ET03, SERIAL_SIZE), _Read(BT21, BT21_SIZE)]
        self._tables: dict[int, bytes] = {}
        self._sent: SignedRequest | None = None
        self._chunk = b""
        self._tries = 0
        self._resyncs = 0
        self._redimension = False
        self._auth_failures = 0
        self._wanted = 0
        self._error: str | None = None
        self._received_at: float | None = None
        super().__init__(counters)

    # -- the codec's events -----------------------------------------------------------------

    def handle(self, event: StreamEvent, received_at: float | None = None) -> None:
        match event:
            case Alert():
                self.counters["alerts"] += 1  # the meter has alert flags pending: never answered
            case BadLength(detail):
                self.drop("bad_length", detail)
            case Started() if self.accepts("length_seen"):
                self.send("length_seen")
            case Started():
                pass  # a late answer to a request given up on: its message is dropped below
            case Message(body) if self._sent is not None and self.accepts("answer"):
                self._received_at = received_at
                self._answered(body)
            case Message(body):
                self.drop("unexpected", f"a {len(body)}-byte message with no request outstanding")

    def _answered(self, body: bytes) -> None:
        assert self._sent is not None
        try:
            answer = decode_response(body, self._sent, self._key)
        except MepError as error:
            self.drop("bad_response", str(error))
            self.send("no_answer")  # the meter answered; what came is unusable: ask again
            return
        match answer:
            case TableData(data):
                self._chunk = data
                self._error = None
                self.send("answer")
                if self._error is not None:
                    self.send("bad_answer", detail=self._error)
            case WantSequence(sequence):
                self.counters["sequence_resyncs"] += 1
                self._wanted = sequence
                self.send("sequence_rejected")
            case Refused(code) if code == Code.AUTHENTICATION_FAILURE:
                self.counters["authentication_failures"] += 1
                self.send("auth_failed")
            case Refused():
                self.send("refused", detail=f"table {self._sent.request.table}: {answer.reason}")

    # -- requests ---------------------------------------------------------------------------

    @property
    def _key(self) -> bytes:
        if self.plan.key is None:
            raise ValueError("a MEP client needs the meter's key")
        return self.plan.key

    def _send(self, sequence: int) -> None:
        self._sent = encode_request(self._queue[0].request(), sequence, self._key)
        self.sequence = self._sent.sequence
        self.actions.append(Send(self._sent.message))

    def send_next(self) -> None:
        self._tries = 0
        self._send(self.sequence + 1)

    def send_fresh(self) -> None:
        self.send_next()

    def start_poll(self) -> None:
        if self._redimension:
            # BT21's decoding queues BT22, BT27 and the poll's reads after it.
            self._redimension = False
            self._queue.append(_Read(BT21, BT21_SIZE))
        else:
            self._enqueue(POLL)
        self.send_next()

    def can_retry(self) -> bool:
        return self._tries < self.plan.retries

    def resend(self) -> None:
        assert self._sent is not None
        self._tries += 1
        self.counters["retries"] += 1
        self.actions.append(Send(self._sent.message))

    def resend_after_cut(self) -> None:
        self.actions.append(Resync())  # the cut message's bytes are not the start of the next one
        self.resend()

    def patient(self) -> bool:
        return self.plan.patient

    def fell_silent(self) -> None:
        self.counters["silences"] += 1
        self.actions.append(Resync())

    def can_resync(self) -> bool:
        return self._resyncs < MAX_RESYNCS

    def adopt_sequence(self) -> None:
        self._resyncs += 1
        # The meter moves its number by 25 when its interface definition changes (ch. 4, "Dynamic
        # Sizing of Tables"): a 0x0C once the tables are sized has the next poll size them again.
        self._redimension = self.dims is not None
        self._auth_failures = 0  # a 0x0C's digest authenticates: the key is right
        self.sequence = self._wanted  # the next request goes out with this plus one

    def first_auth_failure(self) -> bool:
        return self._auth_failures == 0

    def next_sequence(self) -> None:
        # A 0x0B carries no digest, so it cannot be told from the answer to a stale copy of a request:
        # the retry waits until such answers are over, then goes out with the next number.
        self._auth_failures += 1
        self.actions.append(Resync())

    # -- table data -------------------------------------------------------------------------

    def _enqueue(self, tables: tuple[int, ...]) -> None:
        """Queue reads of `tables` as BT21 sizes them; a table with nothing configured is empty."""
        assert self.dims is not None
        sizes = {BT22: self.dims.summations, BT27: self.dims.bt27_size, BT23: self.dims.bt23_totals_size,
                 BT28: self.dims.bt28_size, BT52: BT52_SIZE}
        for table in tables:
            if sizes[table]:
                self._queue.append(_Read(table, sizes[table]))
            else:
                self._tables[table] = b""

    def more_to_read(self) -> bool:
        read = self._queue[0]
        return not (read.table == BT52 and read.completed_by(self._chunk))

    def take_data(self) -> None:
        self._resyncs = self._auth_failures = 0
        read = self._queue[0]
        read.data += self._chunk
        if len(read.data) < read.size:
            return
        self._queue.pop(0)
        self._tables[read.table] = bytes(read.data)
        try:
            self._decode(read.table, bytes(read.data))
        except TableError as error:
            self._error = str(error)

    def _decode(self, table: int, data: bytes) -> None:
        if table == BT00:
            decode_bt00(data)
        elif table == ET03:
            self.serial = decode_serial(data)
        elif table == BT21:
            self.dims = decode_bt21(data)
            self._enqueue((BT22, BT27) + POLL)
        elif table == BT22:
            assert self.dims is not None
            self.summation_sources = decode_bt22(data, self.dims)
        elif table == BT27:
            assert self.dims is not None
            self.value_sources = decode_bt27(data, self.dims)

    def publish(self) -> None:
        self.take_data()  # BT52's last bytes; the poll's tables are decoded here, not in take_data
        assert self.dims is not None
        try:
            registers = decode_bt23(self._tables[BT23], self.dims) if self.dims.summations else CurrentRegisters(None, ())
            present = decode_bt28(self._tables[BT28], self.dims) if self.dims.present_values else ()
            clock = decode_bt52(self._tables[BT52])
        except TableError as error:
            self._error = str(error)
            return
        reading = mep_reading(self.serial, self.summation_sources, registers, self.value_sources, present, clock,
                              self._received_at, self.plan.energy_unit)
        self.actions.append(Publish(reading))

    # -- endings ----------------------------------------------------------------------------

    def gave_up(self) -> None:
        self.failure = f"no answer after {self.plan.retries + 1} tries"

    def sequence_unusable(self) -> None:
        self.failure = f"the meter rejected the sequence number {MAX_RESYNCS + 1} times in a row"

    def key_rejected(self) -> None:
        self.failure = "the meter rejects the key (authentication failure 0x0B, twice)"

    def was_refused(self, detail: str) -> None:
        self.failure = f"the meter refused: {detail}"

    def answer_unusable(self, detail: str) -> None:
        self.failure = f"unusable answer: {detail}"

    def on_enter_closed(self) -> None:
        self._sent = None
