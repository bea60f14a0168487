"""The DLMS machines (seed 002 ch. 2 and 4): DlmsClient and DlmsMeter.

Stateful model tests through tests/harness.py: the real client talks to the simulated meter (the
DlmsMeter machine with the Kamstrup object model) through a channel that loses, repeats, corrupts,
cuts and delays frames, injects DM, FRMR, stray frames and noise, lets deadlines pass at every state
and loses the link. Invariants after every step: on the wire, the client never sends an I-frame
before a UA answered its SNRM, nor a GET before an accepted AARE answered its AARQ, and numbers its
I-frames in sequence (a repeat is the same frame again); every value it publishes is what the meter
holds; every read ends as a published value or a named drop, none is lost; a client that is not
finished always has a deadline running (it cannot hang). Then one scenario per declared transition
(tests/test_dlms_transitions.py) takes every transition of both machines.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from datetime import datetime

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from harness import machine_harness
from meterlink.machines.base import Dropped, Publish, Resync, Send
from meterlink.machines.dlms import Association, DlmsClient, Framing
from meterlink.machines.dlms_meter import DlmsMeter
from meterlink.protocols.dlms.acse import AARE, AARQ, Aare
from meterlink.protocols.dlms.objects import KAMSTRUP_CLOCK, AttributeRef, ScalerUnit, attribute_value, range_access
from meterlink.protocols.dlms.xdlms import AttributeDescriptor
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.hdlc import LLC_RESPONSE, Address, Control, Frame, FrameType, HdlcFramer, HdlcParameters
from meterlink.protocols.hdlc import parse_unchecked
from meterlink.protocols.readings import Reading
from meterlink.protocols.wrapper import WrapperFrame, WrapperFramer
from meterlink.simulators.kamstrup import KamstrupMeterModel

NOW = datetime(2026, 11, 29, 12, 7, 30)
PROFILE_RANGE = dataclasses.replace(
    AttributeRef.parse("7:1.1.99.1.0.255:2"),
    access=range_access(AttributeDescriptor(8, KAMSTRUP_CLOCK, 2), datetime(2026, 11, 29, 5), datetime(2026, 11, 29, 11)),
)
LLS_READS = (
    AttributeRef.parse("1:1.1.0.0.1.255:2"),
    AttributeRef.parse("3:1.1.1.8.0.255:2"),  # with its scaler_unit read first
    AttributeRef.parse("1:1.1.0.0.4.255:2"),
    PROFILE_RANGE,  # 25 rows: three blocks, or HDLC segments
    AttributeRef.parse("23:0.0.22.0.0.255:8"),
)
PUBLIC_READS = (AttributeRef.parse("1:1.1.0.0.1.255:2"), AttributeRef.parse("1:1.1.96.1.1.255:2"))
RECEIVED_AT = 1796000000.0
PASSWORD = b"s3cret-LLS"


def note(text: str) -> None:
    """A hypothesis event for --hypothesis-show-statistics (ignored outside a hypothesis test)."""
    try:
        event(text)
    except InvalidArgument:
        pass


def truth(model: KamstrupMeterModel, client_sap: int, ref: AttributeRef) -> dict:
    """The value the meter holds, as the reading must show it."""
    scaler = None
    if ref.scaled:
        scaler = ScalerUnit.from_data(model.get(client_sap, ref.scaler_unit.descriptor, None))
    return attribute_value(ref, model.get(client_sap, ref.descriptor, ref.access), scaler).to_json()


class WireMonitor:
    """Watches what crosses the wire, independently of the machines' states."""

    def __init__(self) -> None:
        self.ua_since_snrm = False
        self.accepted_since_aarq = False
        self.last_i_frame: bytes | None = None
        self.next_from_meter = 0
        self.segments: list[bytes] = []

    def client_sent(self, data: bytes, hdlc: bool) -> None:
        if not hdlc:
            self._request(data[8:])
            return
        frame, _ = parse_unchecked(data)
        if frame.kind is FrameType.SNRM:
            self.ua_since_snrm = self.accepted_since_aarq = False
            self.last_i_frame = None
        if frame.kind is not FrameType.I:
            return
        assert self.ua_since_snrm, f"I-frame {data.hex()} before a UA answered the SNRM"
        if data != self.last_i_frame:
            expected = 0 if self.last_i_frame is None else (parse_unchecked(self.last_i_frame)[0].control.send_sequence + 1) % 8
            assert frame.control.send_sequence == expected, f"N(S) {frame.control.send_sequence}, expected {expected}"
        first_segment = self.last_i_frame is None or not parse_unchecked(self.last_i_frame)[0].segmented
        self.last_i_frame = data
        if first_segment:
            self._request(frame.information[3:])

    def _request(self, apdu: bytes) -> None:
        if apdu[:1] == bytes((AARQ,)):
            self.accepted_since_aarq = False
        elif apdu[:1] in (b"\xc0", b"\xc1", b"\xc3"):
            assert self.accepted_since_aarq, f"request {apdu.hex()} before an accepted AARE"

    def client_received(self, data: bytes, hdlc: bool) -> None:
        if not hdlc:
            self._answer(data[8:])
            return
        try:
            frame, checks = parse_unchecked(data)
        except ProtocolError:
            return
        if checks.fcs != checks.fcs_computed or checks.hcs != checks.hcs_computed:
            return
        if frame.kind is FrameType.UA and self.last_i_frame is None:
            self.ua_since_snrm = True
            self.next_from_meter, self.segments = 0, []
        if frame.kind is FrameType.I and frame.control.send_sequence == self.next_from_meter and self._acknowledges(frame):
            # Join the meter's segments in sequence, as HDLC does; repeats and strays are skipped.
            self.next_from_meter = (self.next_from_meter + 1) % 8
            self.segments.append(frame.information)
            if not frame.segmented:
                self._answer(b"".join(self.segments)[len(LLC_RESPONSE):])
                self.segments = []

    def _acknowledges(self, frame: Frame) -> bool:
        """The meter's I-frame acknowledges the client's last one (N(R) one past its N(S))."""
        if self.last_i_frame is None:
            return False
        return frame.control.receive_sequence == (parse_unchecked(self.last_i_frame)[0].control.send_sequence + 1) % 8

    def _answer(self, apdu: bytes) -> None:
        if apdu[:1] == bytes((AARE,)):
            try:
                self.accepted_since_aarq = self.accepted_since_aarq or Aare.parse(apdu).accepted
            except ProtocolError:
                pass


class Session:
    """The client and the meter, and the frames in flight between them."""

    def __init__(self, association: Association, reads: tuple[AttributeRef, ...], poll_interval: float | None = None,
                 meter: dict | None = None) -> None:
        self.association = association
        self.reads = reads
        self.poll_interval = poll_interval
        self.meter_options = meter or {}
        self.hdlc = association.framing is Framing.HDLC
        self.counters: Counter[str] = Counter()
        self.published: list[Reading] = []
        self.drops: list[Dropped] = []
        self.model = KamstrupMeterModel(password=PASSWORD, wallclock=lambda: NOW)
        self.expected = {str(ref.obis): truth(self.model, association.client, ref) for ref in reads}
        self.monitor = WireMonitor()
        self.restart()

    def restart(self) -> None:
        """A new connection, as the supervisor makes after the link was lost (the meter is new too)."""
        self.machine = DlmsClient(self.association, self.reads, self.poll_interval, counters=self.counters)
        self.meter = DlmsMeter(self.model, **self.meter_options)
        codec = HdlcFramer if self.hdlc else WrapperFramer
        self.client_codec, self.meter_codec = codec(), codec()
        self.to_meter: deque[bytes] = deque()
        self.to_client: deque[bytes] = deque()
        self.monitor = WireMonitor()

    # -- moving frames --------------------------------------------------------------------------------

    def collect(self) -> None:
        for action in self.machine.take_actions():
            match action:
                case Send(data):
                    self.monitor.client_sent(data, self.hdlc)
                    self.to_meter.append(data)
                case Publish(reading):
                    note("client published a reading")
                    self.published.append(reading)
                case Dropped(cause):
                    note(f"client dropped: {cause}")
                    self.drops.append(action)
                case Resync():
                    self.client_codec.reset()
        for action in self.meter.take_actions():
            match action:
                case Send(data):
                    self.to_client.append(data)
                case Resync():
                    self.meter_codec.reset()

    def to_client_side(self, data: bytes, chunk: int) -> None:
        self.monitor.client_received(data, self.hdlc)
        for start in range(0, len(data), chunk):
            for event in self.client_codec.feed(data[start : start + chunk]):
                self.machine.handle(event, RECEIVED_AT)
        self.collect()

    def to_meter_side(self, data: bytes, chunk: int) -> None:
        for start in range(0, len(data), chunk):
            for event in self.meter_codec.feed(data[start : start + chunk]):
                self.meter.handle(event)
        self.collect()

    def queue(self, to_meter: bool) -> deque[bytes]:
        return self.to_meter if to_meter else self.to_client

    def pass_on(self, to_meter: bool, data: bytes, chunk: int) -> None:
        (self.to_meter_side if to_meter else self.to_client_side)(data, chunk)

    def timed_out(self, event: str) -> None:
        """A client deadline passed: so did every meter deadline that is no longer."""
        passed = {"no_response": self.machine.response_timeout, "inter_octet_timeout": self.machine.inter_octet,
                  "connect": self.machine.connect_after, "idle": self.machine.idle_after}[event]
        for timeout, seconds in self.meter.active_timeouts():
            if seconds <= passed:
                self.meter.send(timeout.event)
        self.collect()


# -- stimuli --------------------------------------------------------------------------------------


def deliver(to_meter: bool, chunk: int):
    def apply(session: Session) -> None:
        queue = session.queue(to_meter)
        if queue:
            session.pass_on(to_meter, queue.popleft(), chunk)
    return apply


def flush(chunk: int):
    """A good stretch of line: everything in flight arrives, and what it causes, until all is quiet."""
    def apply(session: Session) -> None:
        while session.to_meter or session.to_client:
            to_meter = bool(session.to_meter)
            session.pass_on(to_meter, session.queue(to_meter).popleft(), chunk)
    return apply


def some(count: int):
    """Part of an exchange: the next `count` frames in flight arrive, then the line waits."""
    def apply(session: Session) -> None:
        for _ in range(count):
            if not (session.to_meter or session.to_client):
                return
            to_meter = bool(session.to_meter)
            session.pass_on(to_meter, session.queue(to_meter).popleft(), 4096)
    return apply


def drop(to_meter: bool):
    def apply(session: Session) -> None:
        if session.queue(to_meter):
            session.queue(to_meter).popleft()
    return apply


def repeat(to_meter: bool):
    def apply(session: Session) -> None:
        queue = session.queue(to_meter)
        if queue:
            queue.appendleft(queue[0])
    return apply


def corrupt(to_meter: bool, bit: int):
    def apply(session: Session) -> None:
        queue = session.queue(to_meter)
        if queue:
            data = bytearray(queue.popleft())
            data[(bit // 8) % len(data)] ^= 1 << (bit % 8)
            session.pass_on(to_meter, bytes(data), 64)
    return apply


def cut(to_meter: bool, length: int):
    """The head frame stops part-way: the rest never arrives."""
    def apply(session: Session) -> None:
        queue = session.queue(to_meter)
        if queue:
            data = queue.popleft()
            session.pass_on(to_meter, data[: 1 + length % (len(data) - 1)], 64)
    return apply


def noise(to_meter: bool, data: bytes):
    return lambda session: session.pass_on(to_meter, data, 64)


def meter_forgets(session: Session) -> None:
    """The meter's inactivity timeout passes (set shorter on the meter than the client assumes)."""
    if session.meter.accepts("inactivity"):
        session.meter.send("inactivity")
        session.collect()


def meter_answers(kind: FrameType):
    """The meter (or a second station on the line) sends a DM, FRMR, RR, RNR, UA or a stray frame."""
    def apply(session: Session) -> None:
        association = session.association
        frame = Frame(Address.client(association.client), Address.server(association.server), Control(kind, True, 0, 0))
        session.to_client.append(frame.to_bytes() if session.hdlc else WrapperFrame(99, 1, b"\xc4").to_bytes())
    return apply


def lose_link(session: Session) -> None:
    session.machine.send("link_lost")
    session.collect()
    assert session.machine.is_terminated


def stimuli(hdlc: bool) -> st.SearchStrategy:
    direction = st.booleans()
    common = [
        st.builds(flush, st.sampled_from([5, 64, 4096])),
        st.builds(flush, st.just(4096)),
        st.builds(some, st.integers(1, 12)),
        st.builds(deliver, direction, st.sampled_from([1, 9, 4096])),
        st.builds(drop, direction),
        st.builds(repeat, direction),
        st.just(meter_forgets),
        st.just(lose_link),
    ]
    if not hdlc:
        # TCP neither corrupts nor cuts what it carries: only losses and repeats of whole APDUs,
        # and a stray frame to another wPort.
        return st.one_of(*common, st.just(meter_answers(FrameType.I)))
    answers = [FrameType.DM, FrameType.FRMR, FrameType.RR, FrameType.RNR, FrameType.UA, FrameType.I]
    return st.one_of(
        *common,
        st.builds(corrupt, direction, st.integers(0, 8 * 600)),
        st.builds(cut, direction, st.integers(0, 600)),
        st.builds(noise, direction, st.binary(min_size=1, max_size=12)),
        st.builds(meter_answers, st.sampled_from(answers)),
    )


# -- invariants -----------------------------------------------------------------------------------


def values_are_what_the_meter_holds(session: Session) -> None:
    for reading in session.published:
        assert reading.link == "dlms" and reading.received_at == RECEIVED_AT
        for value in reading.values:
            assert value.to_json() == session.expected[value.obis]


def no_read_is_lost(session: Session) -> None:
    """Every read queued ends as a published value or a named drop, or is still on its way."""
    published = sum(len(reading.values) for reading in session.published)
    failed = sum(1 for drop in session.drops if drop.cause == "get_failed")
    pending = 0 if session.machine.is_terminated else session.machine.pending_reads
    assert session.counters["reads_queued"] == published + failed + pending


def never_hangs(session: Session) -> None:
    if not session.machine.is_terminated:
        assert session.machine.active_timeouts(), f"no deadline in {session.machine.state_name}"


def every_drop_names_its_cause_and_no_secret(session: Session) -> None:
    for drop in session.drops:
        assert drop.cause and drop.detail
        assert PASSWORD.decode() not in drop.detail and PASSWORD.hex() not in drop.detail


INVARIANTS = [values_are_what_the_meter_holds, no_read_is_lost, never_hangs, every_drop_names_its_cause_and_no_secret]
SETTINGS = settings(max_examples=30, stateful_step_count=50, deadline=None)


def harness(make, hdlc: bool = True, **options):
    test_case = machine_harness(make, stimuli(hdlc), INVARIANTS).TestCase
    test_case.settings = settings(SETTINGS, **options)
    return test_case


TestOneSessionLls = harness(lambda: Session(Association(password=PASSWORD), LLS_READS))
TestOneSessionPublic = harness(lambda: Session(Association(), PUBLIC_READS), max_examples=15)
TestPollingKeepsTheAssociation = harness(lambda: Session(Association(password=PASSWORD), LLS_READS, poll_interval=5.0))
TestPollingAssociatesEachTime = harness(lambda: Session(Association(password=PASSWORD), PUBLIC_READS[:1], poll_interval=30.0),
                                        max_examples=25)
TestSegmentsInsteadOfBlocks = harness(lambda: Session(Association(password=PASSWORD), LLS_READS,
                                                      meter={"block_transfer": False}), max_examples=20)
TestSmallFramesBothWays = harness(lambda: Session(Association(password=PASSWORD), LLS_READS,
                                                  meter={"supported": HdlcParameters(40, 24, 1, 1)}), max_examples=20)
TestWrapper = harness(lambda: Session(Association(password=PASSWORD, framing=Framing.WRAPPER), LLS_READS), hdlc=False,
                      max_examples=20)
