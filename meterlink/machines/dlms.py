"""The DLMS/COSEM client link over HDLC or the IEC 62056-47 wrapper (seed 002 ch. 2, 4; IEC 62056-46).

The meter is the server. A session connects the data link (SNRM, answered by UA with the
negotiated maximum information field lengths and windows), associates (AARQ, answered by AARE:
the public association without security, or Low Level Security with a password), sends its GET
requests one at a time (long answers come in blocks fetched with GET-request-next, or in HDLC
segments each acknowledged with RR) and ends with DISC, answered by UA or DM. Over the wrapper there
is no data link: the session associates at once and releases with RLRQ.

Timeouts (ch. 2.5): no answer within the response timeout (2 s) sends the same frame again, up to
three times, then the session gives up; a frame that stops for longer than the inter-octet timeout
(HDLC setup attribute 7, 500 ms) is discarded; the meter drops an idle association after its
inactivity timeout (attribute 8, 20 s), so an association kept open between polls is kept alive
with RR, or released and built again at the next poll.

A driven client (`driven=True`) reads nothing of its own: whoever drives it (the image transfer)
hands it one GET or ACTION at a time with `request`, learns of the association from `Associated`
and of each answer from `Answered`, and ends the session with `release`. An ACTION longer than the
negotiated information field goes out in HDLC segments, each sent on the meter's RR.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, deque
from dataclasses import dataclass, field

from statemachine import State

from ..protocols.dlms.acse import LLS_CONFORMANCE, MECHANISM_LLS, PUBLIC_CONFORMANCE, Aare, Aarq, Conformance, InitiateRequest
from ..protocols.dlms.acse import InitiateResponse, ReleaseRequest, ReleaseResponse
from ..protocols.dlms.apdu import Apdu
from ..protocols.dlms.axdr import AxdrError, Data, decode_data
from ..protocols.dlms.objects import CLOCK, AttributeRef, ObjectError, ScalerUnit, attribute_value, meter_name
from ..protocols.dlms.xdlms import INVOKE_ID_AND_PRIORITY, DataAccessResult, GetRequestNext, GetRequestNormal, GetResponseNormal
from ..protocols.dlms.xdlms import ActionRequestNormal, ActionResponseNormal, ActionResult, ExceptionResponse
from ..protocols.dlms.xdlms import GetResponseWithDataBlock, MethodDescriptor
from ..protocols.errors import ProtocolError
from ..protocols.hdlc import LLC_REQUEST, LLC_RESPONSE, Address, Frame, FrameType, HdlcParameters
from ..protocols.readings import Reading, Value
from ..protocols.wrapper import WrapperFrame
from .base import LinkMachine, Publish, Resync, StateTimeout
from .hdlc_station import HdlcStation, receiver_region
from .safety import Safety

PUBLIC_CLIENT, PUBLIC_SERVER = 16, 1
"""The public association without security (seed 002 ch. 2.4.2)."""
LLS_CLIENT, LLS_SERVER = 18, 16
"""The primary module port's association with Low Level Security (seed 002 ch. 2.4.3)."""


class Framing(enum.Enum):
    HDLC = "hdlc"
    WRAPPER = "wrapper"


@dataclass(frozen=True, repr=False)
class Association:
    """Whom the client talks to and how: addresses, password, framing, what it proposes.

    The defaults are the seed's sessions (ch. 4): without a password the public association (client
    SAP 16, server logical device 1), with one LLS on the primary module port (18 and 16); SNRM
    proposes 512-byte information fields and window 1, AARQ the seed's conformance and a maximum
    PDU of 0xFFFF. The repr never shows the password.
    """

    password: bytes | None = None
    client_sap: int | None = None
    server_logical: int | None = None
    server_physical: int | None = None
    framing: Framing = Framing.HDLC
    proposal: HdlcParameters = HdlcParameters(512, 512, 1, 1)
    max_pdu: int = 0xFFFF

    @property
    def client(self) -> int:
        if self.client_sap is not None:
            return self.client_sap
        return LLS_CLIENT if self.password is not None else PUBLIC_CLIENT

    @property
    def server(self) -> int:
        if self.server_logical is not None:
            return self.server_logical
        return LLS_SERVER if self.password is not None else PUBLIC_SERVER

    def aarq(self) -> Aarq:
        if self.password is None:
            return Aarq(InitiateRequest(PUBLIC_CONFORMANCE, self.max_pdu))
        return Aarq(InitiateRequest(LLS_CONFORMANCE, self.max_pdu), mechanism=MECHANISM_LLS,
                    authentication_value=self.password)

    def __repr__(self) -> str:
        secret = "****" if self.password is not None else "None"
        return (f"Association(client={self.client}, server={self.server}/{self.server_physical}, "
                f"framing={self.framing.value}, password={secret})")


@dataclass(frozen=True, slots=True)
class Invoke:
    """An ACTION a driver asks for: a method of an object, with its parameters (Green Book 9.3.9)."""

    method: MethodDescriptor
    parameters: Data | None = None

    def __str__(self) -> str:
        return str(self.method)


@dataclass(frozen=True, slots=True)
class Associated:
    """Action of a driven client: the association stands; what the meter takes per APDU and per
    information field."""

    max_receive_pdu: int
    max_info_tx: int


@dataclass(frozen=True, slots=True)
class Answered:
    """Action of a driven client: the answer to one of its driver's requests. `result` is the value
    read, why there is none (DataAccessResult), an ACTION's result, or the text of an exception
    response or of an answer that did not decode."""

    request: AttributeRef | Invoke
    result: Data | DataAccessResult | ActionResult | str


@dataclass(frozen=True, slots=True)
class _Get:
    """One request of the current cycle: a GET (`for_scaler` marks the scaler_unit read before a
    register's value), or a driver's GET or ACTION (`driven`), answered with `Answered`."""

    ref: AttributeRef | Invoke
    for_scaler: bool = False
    driven: bool = False


@dataclass
class _Cycle:
    """What one round of reads has gathered."""

    values: list[Value] = field(default_factory=list)
    received_at: float | None = None
    captured_at: str | None = None
    """The meter's clock, when the round read it."""


class DlmsClient(HdlcStation, LinkMachine):
    """Client side: connect (SNRM/UA), associate (AARQ/AARE), GET with blocks and segments, release."""

    class link(State.Parallel, name="DLMS client"):
        class session(State.Compound, name="Session"):
            disconnected = State("Disconnected", initial=True)
            connected = State("Connected (UA: parameters applied)")
            associated = State("Associated")

            class waiting(State.Compound, name="Waiting for the meter's answer"):
                """The states with a response timeout: each sends its frame again while retries
                are left, and all give up the same way (declared once, below)."""

                snrm_sent = State("SNRM sent", initial=True)
                aarq_sent = State("AARQ sent")
                awaiting_response = State("Request in progress")
                rlrq_sent = State("RLRQ sent (wrapper)")
                disc_sent = State("DISC sent")

            # Short names for the transitions below; deleted at the end of the class body, so the
            # states stay declared once, inside `waiting`.
            snrm_sent, aarq_sent, awaiting_response = waiting.snrm_sent, waiting.aarq_sent, waiting.awaiting_response
            rlrq_sent, disc_sent = waiting.rlrq_sent, waiting.disc_sent

            connect = (
                disconnected.to(snrm_sent, cond="hdlc", on="send_snrm")
                | disconnected.to(connected, on="open_wrapper")
            )
            ua = (
                snrm_sent.to(connected, on="apply_parameters")
                | disc_sent.to(disconnected, on="end_session")
            )
            associate = connected.to(aarq_sent, on="send_aarq")
            i_frame = (
                aarq_sent.to.itself(internal=True, cond="not in_sequence", on="drop_out_of_sequence")
                | aarq_sent.to(aarq_sent, cond="segmented", on="collect_segment")
                | aarq_sent.to.itself(internal=True, on="collect_apdu")
                | awaiting_response.to.itself(internal=True, cond="not in_sequence", on="drop_out_of_sequence")
                | awaiting_response.to(awaiting_response, cond="segmented", on="collect_segment")
                | awaiting_response.to.itself(internal=True, on="collect_apdu")
            )
            apdu = (
                aarq_sent.to(associated, cond="association_accepted", on="apply_initiate_response")
                | aarq_sent.to(disc_sent, cond="association_refused and hdlc", on=["report_refusal", "send_disc"])
                | aarq_sent.to(disconnected, cond="association_refused", on=["report_refusal", "end_session"])
                | aarq_sent.to.itself(internal=True, on="drop_unexpected_apdu")
                | awaiting_response.to(awaiting_response, cond="block_follows", on="request_next_block")
                | awaiting_response.to(associated, cond="answers_request", on="complete_get")
                | awaiting_response.to.itself(internal=True, on="drop_unexpected_apdu")
                | rlrq_sent.to(disconnected, cond="release_answered", on="end_session")
                | rlrq_sent.to.itself(internal=True, on="drop_unexpected_apdu")
            )
            next = (
                associated.to(awaiting_response, cond="get_pending", on="send_get")
                | associated.to(disc_sent, cond="release_due and hdlc", on="send_disc")
                | associated.to(rlrq_sent, cond="release_due", on="send_rlrq")
                | associated.to.itself(internal=True)
            )
            idle = associated.to(awaiting_response, on=["start_cycle", "send_get"])
            rr = (
                aarq_sent.to(aarq_sent, cond="segments_to_send", on="send_next_segment")
                | aarq_sent.to.itself(internal=True, on="count_receive_ready")
                | awaiting_response.to(awaiting_response, cond="segments_to_send", on="send_next_segment")
                | awaiting_response.to.itself(internal=True, on="count_receive_ready")
            )
            rnr = (
                aarq_sent.to.itself(internal=True, on="count_receiver_busy")
                | awaiting_response.to.itself(internal=True, on="count_receiver_busy")
            )
            dm = (
                snrm_sent.to(disconnected, on=["report_connection_refused", "end_session"])
                | aarq_sent.to(disconnected, on=["report_disconnected_mode", "end_session"])
                | awaiting_response.to(disconnected, on=["report_disconnected_mode", "end_session"])
                | disc_sent.to(disconnected, on="end_session")
            )
            frmr = (
                snrm_sent.to(disconnected, on=["report_frame_reject", "end_session"])
                | aarq_sent.to(disc_sent, on=["report_frame_reject", "send_disc"])
                | awaiting_response.to(disc_sent, on=["report_frame_reject", "send_disc"])
                | disc_sent.to(disconnected, on="end_session")
            )
            no_response = (
                snrm_sent.to(snrm_sent, cond="retries_left", on="send_again")
                | aarq_sent.to(aarq_sent, cond="retries_left", on="send_again")
                | awaiting_response.to(awaiting_response, cond="retries_left", on="send_again")
                | rlrq_sent.to(rlrq_sent, cond="retries_left", on="send_again")
                | disc_sent.to(disc_sent, cond="retries_left", on="send_again")
                | waiting.to(disconnected, on=["give_up", "end_session"])
            )
            del snrm_sent, aarq_sent, awaiting_response, rlrq_sent, disc_sent

        receiver = receiver_region()

    closed = State("Link closed", final=True)

    finished = link.to(closed)
    link_lost = link.to(closed, on="lose_session")

    timeouts = (
        StateTimeout("disconnected", after="connect_after", event="connect"),
        StateTimeout("snrm_sent", after="response_timeout", event="no_response"),
        StateTimeout("aarq_sent", after="response_timeout", event="no_response"),
        StateTimeout("associated", after="idle_after", event="idle"),
        StateTimeout("awaiting_response", after="response_timeout", event="no_response"),
        StateTimeout("rlrq_sent", after="response_timeout", event="no_response"),
        StateTimeout("disc_sent", after="response_timeout", event="no_response"),
        StateTimeout("receiving", after="inter_octet", event="inter_octet_timeout"),
    )

    safety = Safety(
        says="no GET or ACTION request (the client sends no SET) goes out outside an association the meter "
             "accepted: an AARE accepting the AARQ sent in this connection, over HDLC both in I-frames",
        holds="!request_outside",
        variables=("mtype = { NONE, AARQ_SENT, ACCEPTED, AARE_ACCEPTED, AARE_REFUSED, OTHER_APDU }",
                   "mtype association = NONE", "mtype apdu_kind = OTHER_APDU", "bool request_outside = false"),
        guards={"association_accepted": "apdu_kind == AARE_ACCEPTED", "association_refused": "apdu_kind == AARE_REFUSED"},
        actions={
            "send_snrm": "association = NONE",
            "send_aarq": "association = AARQ_SENT",
            "send_get": "request_outside = request_outside || association != ACCEPTED",
            "request_next_block": "request_outside = request_outside || association != ACCEPTED",
            # The frame sent again, or the next segment, is the request's while one is in progress.
            "send_again": "request_outside = request_outside || (IN_awaiting_response && association != ACCEPTED)",
            "send_next_segment": "request_outside = request_outside || (IN_awaiting_response && association != ACCEPTED)",
            "send_disc": "association = NONE",
            "send_rlrq": "association = NONE",
            "end_session": "association = NONE",
        },
        events={
            "apdu": "if :: apdu_kind = AARE_ACCEPTED :: apdu_kind = AARE_REFUSED :: apdu_kind = OTHER_APDU fi; "
                    "if :: apdu_kind == AARE_ACCEPTED && association == AARQ_SENT -> association = ACCEPTED "
                    ":: else -> skip fi",
            "dm": "association = NONE",
            "ua": "association = NONE",
            "link_lost": "association = NONE",
        },
        after="apdu_kind = OTHER_APDU",
        assumptions=(
            "an `apdu` event carries an APDU the meter sent: over HDLC joined from I-frames (collect_apdu), over "
            "the wrapper from a wrapper frame; whether it is an AARE that accepts is the datum modeled",
            "a DM or UA from the meter, or the link closing, ends any association; so does the client's own SNRM, "
            "DISC or RLRQ",
        ),
    )

    def __init__(
        self,
        association: Association = Association(),
        reads: tuple[AttributeRef, ...] = (),
        poll_interval: float | None = None,
        response_timeout: float = 2.0,
        retries: int = 3,
        inter_octet: float = 0.5,
        inactivity_timeout: float = 20.0,
        counters: Counter[str] | None = None,
        driven: bool = False,
    ) -> None:
        self.association = association
        self.driven = driven
        self._release_asked = False
        self.reads = reads
        self.poll_interval = poll_interval
        self.response_timeout = response_timeout
        self.retries = retries
        self.inter_octet = inter_octet
        # Keep the association between polls only while the next poll comes well within the meter's
        # inactivity timeout (the poll itself keeps it alive); otherwise release it after each poll
        # and associate again at the next.
        keep_for = 0.75 * inactivity_timeout
        self.lingering = bool(reads) and poll_interval is not None and poll_interval <= keep_for
        self.idle_after = poll_interval if self.lingering and poll_interval is not None else keep_for
        if driven:
            # The driver decides when the association ends; while it waits (a meter verifying its
            # image) it asks often enough, or the meter drops the association and the driver
            # associates again.
            self.idle_after = math.inf
        self.connect_after = 0.0
        self.local = Address.client(association.client)
        self.peer = Address.server(association.server, association.server_physical)
        self.llc_out, self.llc_in = LLC_REQUEST, LLC_RESPONSE
        self.reset_link()
        self.initiate: InitiateResponse | None = None
        self.meter_id: str | None = None
        """The meter's number, from the most telling identity object read so far (objects.meter_name)."""
        self._meter_rank: float = math.inf
        self._gets: deque[_Get] = deque()
        self._current: _Get | None = None
        self._blocks: list[bytes] = []
        self._scalers: dict[AttributeRef, ScalerUnit] = {}
        self._cycle = _Cycle()
        self._invoke_id = INVOKE_ID_AND_PRIORITY
        super().__init__(counters)
        self._queue_cycle()

    # -- a driver's requests ----------------------------------------------------------------------

    def request(self, ref: AttributeRef | Invoke) -> None:
        """Queue a GET or an ACTION for a driven client; sent at once when the client is idle."""
        self._gets.append(_Get(ref, driven=True))
        if self.associated.is_active:  # type: ignore[attr-defined]
            self.send("next")

    def release(self) -> None:
        """End a driven client's session (DISC, or RLRQ over the wrapper) once nothing is pending."""
        self._release_asked = True
        if self.associated.is_active:  # type: ignore[attr-defined]
            self.send("next")

    # -- codec events in ----------------------------------------------------------------------

    def wrapper_frame(self, frame: WrapperFrame, received_at: float | None) -> None:
        if frame.source != self.association.server or frame.destination != self.association.client:
            self.send("stray_frame", detail=f"wrapper frame from wPort {frame.source} to {frame.destination}")
        elif not self.accepts("apdu"):
            self.send("stray_frame", detail=f"APDU in {self.state_name}")
        else:
            apdu = self.parse(frame.apdu)
            if apdu is not None:
                self.send("apdu", apdu=apdu, received_at=received_at)

    # -- guards ---------------------------------------------------------------------------------

    def hdlc(self) -> bool:
        return self.association.framing is Framing.HDLC

    def association_accepted(self, apdu: Apdu) -> bool:
        return isinstance(apdu, Aare) and apdu.accepted and isinstance(apdu.user_information, InitiateResponse)

    def association_refused(self, apdu: Apdu) -> bool:
        return isinstance(apdu, Aare) and not self.association_accepted(apdu)

    def block_follows(self, apdu: Apdu) -> bool:
        return (isinstance(apdu, GetResponseWithDataBlock) and self._ours(apdu) and not apdu.last_block
                and isinstance(apdu.raw, bytes) and apdu.block_number == len(self._blocks) + 1)

    def answers_request(self, apdu: Apdu) -> bool:
        current = self._current
        if current is not None and isinstance(current.ref, Invoke):
            return isinstance(apdu, ActionResponseNormal) and self._ours(apdu) or isinstance(apdu, ExceptionResponse)
        if isinstance(apdu, ExceptionResponse):
            return current is not None and current.driven
        if isinstance(apdu, GetResponseNormal):
            return self._ours(apdu) and not self._blocks
        return isinstance(apdu, GetResponseWithDataBlock) and self._ours(apdu) and (
            isinstance(apdu.raw, DataAccessResult) or apdu.block_number == len(self._blocks) + 1)

    def _ours(self, apdu: GetResponseNormal | GetResponseWithDataBlock | ActionResponseNormal) -> bool:
        """The answer to the request in progress: the same invoke id (meters may answer with other
        priority and service-class bits)."""
        return apdu.invoke_id & 0x0F == self._invoke_id & 0x0F

    def release_answered(self, apdu: Apdu) -> bool:
        return isinstance(apdu, ReleaseResponse)

    def get_pending(self) -> bool:
        return bool(self._gets)

    def release_due(self) -> bool:
        return self._release_asked if self.driven else not self.lingering

    def polling(self) -> bool:
        return self.poll_interval is not None

    # -- sending ----------------------------------------------------------------------------------

    def _send_apdu(self, apdu: bytes) -> None:
        if self.hdlc():
            self.send_information(apdu)
        else:
            association = self.association
            self.transmit(WrapperFrame(association.client, association.server, apdu).to_bytes())

    def send_snrm(self) -> None:
        self.reset_link()
        self.transmit(self.control_frame(FrameType.SNRM, self.association.proposal.to_bytes()))

    def open_wrapper(self) -> None:
        self.raise_("associate")

    def apply_parameters(self, frame: Frame) -> None:
        try:
            answered = HdlcParameters.parse(frame.information)
        except ProtocolError as error:
            self.drop("bad_parameters", f"UA: {error}; using the defaults")
            answered = HdlcParameters()
        self.parameters = self.association.proposal.answered_by(answered)
        self.raise_("associate")

    def send_aarq(self) -> None:
        self._send_apdu(self.association.aarq().to_bytes())

    def send_get(self) -> None:
        self._current = self._gets.popleft()
        self._blocks.clear()
        self.counters["requests"] += 1
        if not self.hdlc():
            # The wrapper numbers nothing: a late answer to a repeated request would be taken for
            # the next one's, so each GET gets its own invoke id (1-15). Over HDLC N(S)/N(R) tell
            # repeats apart, and every request carries the seed's 0x81.
            invoke = self._invoke_id & 0x0F
            self._invoke_id = self._invoke_id & 0xF0 | (invoke % 15 + 1)
        ref = self._current.ref
        if isinstance(ref, Invoke):
            self._send_apdu(ActionRequestNormal(ref.method, ref.parameters, self._invoke_id).to_bytes())
        else:
            self._send_apdu(GetRequestNormal(ref.descriptor, ref.access, self._invoke_id).to_bytes())

    def request_next_block(self, apdu: GetResponseWithDataBlock) -> None:
        self._blocks.append(apdu.raw)  # type: ignore[arg-type]
        self._send_apdu(GetRequestNext(apdu.block_number, self._invoke_id).to_bytes())

    def send_rlrq(self) -> None:
        self._send_apdu(ReleaseRequest().to_bytes())

    def send_disc(self) -> None:
        self.transmit(self.control_frame(FrameType.DISC))

    # -- receiving --------------------------------------------------------------------------------

    def collect_apdu(self, frame: Frame, received_at: float | None) -> None:
        apdu = self.joined_apdu(frame)
        if apdu is not None:
            self.raise_("apdu", apdu=apdu, received_at=received_at)

    def apply_initiate_response(self, apdu: Aare) -> None:
        self.initiate = apdu.user_information  # type: ignore[assignment]
        self.counters["associations"] += 1
        if self.driven:
            max_pdu = apdu.user_information.max_receive_pdu_size  # type: ignore[union-attr]
            self.actions.append(Associated(max_pdu, self.parameters.max_info_tx if self.hdlc() else max_pdu))
        self.raise_("next")

    def complete_get(self, apdu: GetResponseNormal | GetResponseWithDataBlock | ActionResponseNormal | ExceptionResponse,
                     received_at: float | None) -> None:
        current = self._current
        assert current is not None
        self._current = None
        result = self._result(apdu)
        self._cycle.received_at = received_at
        if current.driven:
            self.actions.append(Answered(current.ref, result))  # type: ignore[arg-type]
        elif isinstance(result, DataAccessResult):
            self._failed(current, str(result))
        elif current.for_scaler:
            self._learn_scaler(current.ref, result)
        else:
            self._record(current.ref, result)
        if not self._gets:
            self._end_cycle()
        self.raise_("next")

    def _result(self, apdu: GetResponseNormal | GetResponseWithDataBlock | ActionResponseNormal | ExceptionResponse) -> object:
        if isinstance(apdu, ExceptionResponse):
            self._blocks.clear()
            return str(apdu)
        if isinstance(apdu, ActionResponseNormal):
            return apdu.result
        if isinstance(apdu, GetResponseNormal):
            return apdu.result
        if isinstance(apdu.raw, DataAccessResult):
            return apdu.raw
        raw = b"".join(self._blocks) + apdu.raw
        self._blocks.clear()
        try:
            data, end = decode_data(raw)
        except AxdrError as error:
            return f"the blocks joined do not decode: {error}"
        return data if end == len(raw) else f"{len(raw) - end} bytes left over after the value in the blocks"

    def _failed(self, get: _Get, reason: str) -> None:
        if get.for_scaler:
            # The value is still read; it just stays unscaled.
            self.counters["scaler_unavailable"] += 1
            return
        self.drop("get_failed", f"GET {get.ref}: {reason}")

    def _learn_scaler(self, ref: AttributeRef, result: Data | str) -> None:
        try:
            if isinstance(result, str):
                raise ObjectError(result)
            self._scalers[ref] = ScalerUnit.from_data(result)
        except ObjectError:
            self.counters["scaler_unavailable"] += 1

    def _record(self, ref: AttributeRef, result: object) -> None:
        if isinstance(result, str):
            self.drop("get_failed", f"GET {ref}: {result}")
            return
        try:
            value = attribute_value(ref, result, self._scalers.get(ref.scaler_unit))  # type: ignore[arg-type]
        except ProtocolError as error:
            self.drop("get_failed", f"GET {ref}: {error}")
            return
        named = meter_name(ref.obis, value)
        if named is not None and named[0] <= self._meter_rank:
            self._meter_rank, self.meter_id = named
        clock = value.value if ref.class_id == CLOCK and ref.attribute == 2 and isinstance(value.value, str) else None
        if self.polling():
            self._cycle.values.append(value)
            self._cycle.captured_at = clock or self._cycle.captured_at
        else:
            self._publish([value], clock)

    def _end_cycle(self) -> None:
        if self.polling() and self._cycle.values:
            self._publish(self._cycle.values, self._cycle.captured_at)
        self._cycle = _Cycle()

    def _publish(self, values: list[Value], captured_at: str | None) -> None:
        """One reading: of one GET (a one-off session) or of one round of polls."""
        self.counters["readings"] += 1
        self.actions.append(Publish(Reading(self.meter_id, "dlms", self._cycle.received_at, captured_at, tuple(values))))

    def start_cycle(self) -> None:
        self._queue_cycle()

    def _queue_cycle(self) -> None:
        self.counters["reads_queued"] += len(self.reads)
        for ref in self.reads:
            if ref.scaled and ref.scaler_unit not in self._scalers:
                self._gets.append(_Get(ref.scaler_unit, for_scaler=True))
            self._gets.append(_Get(ref))

    @property
    def pending_reads(self) -> int:
        """Reads of the current round that have not ended yet, in a published reading or a drop
        (a polled value waits for the round's reading)."""
        pending = [*self._gets, *([self._current] if self._current is not None else [])]
        return sum(not get.for_scaler for get in pending) + len(self._cycle.values)

    # -- endings ----------------------------------------------------------------------------------

    def end_session(self) -> None:
        """The session is over: a one-shot client is finished, a polling one connects again later."""
        self._outgoing.clear()
        self._incoming.clear()
        self.initiate = None
        if self._current is not None or self._gets:
            self._abandon("the session ended")
        if self.polling():
            self.connect_after = self.poll_interval or 0.0
            self._queue_cycle()
        else:
            self.raise_("finished")

    def _abandon(self, why: str) -> None:
        """The reads not answered yet fail; what the round did read is published all the same."""
        pending = ([self._current] if self._current is not None else []) + list(self._gets)
        self._current = None
        self._gets.clear()
        self._blocks.clear()
        for get in pending:
            # A driver learns of the session's end and asks again in the next one.
            if not get.for_scaler and not get.driven:
                self.drop("get_failed", f"GET {get.ref}: not answered ({why})")
        self._end_cycle()

    def report_refusal(self, apdu: Aare) -> None:
        self.drop("association_refused", f"the meter refused the association ({apdu.reason()})")
        self._abandon("no association")

    def report_connection_refused(self) -> None:
        self.drop("connection_refused", "the meter answered SNRM with DM: it does not take a connection now")

    def report_disconnected_mode(self) -> None:
        self.drop("disconnected_mode", "the meter answered DM: it dropped the connection (inactivity timeout?)")
        self._abandon("the meter is disconnected")

    def report_frame_reject(self, frame: Frame) -> None:
        self.drop("frame_rejected", f"the meter rejected a frame (FRMR {frame.information.hex()})")
        self._abandon("frame rejected")

    def give_up(self) -> None:
        self.actions.append(Resync())
        self.drop("no_response", f"no answer after {self._attempts} attempts of {self.response_timeout:g} s in {self.state_name}")
        self._abandon("no answer")

    def lose_session(self) -> None:
        self._abandon("the link closed")

    # -- bookkeeping ------------------------------------------------------------------------------

    def drop_out_of_sequence(self, frame: Frame) -> None:
        control = frame.control
        self.drop("out_of_sequence", f"I-frame N(S)={control.send_sequence} N(R)={control.receive_sequence}, "
                                     f"expected N(S)={self._receive_sequence} N(R)={self._send_sequence} (a repeat?)")

    def drop_unexpected_apdu(self, apdu: Apdu) -> None:
        self.drop("unexpected_apdu", f"{type(apdu).__name__} does not answer the request in {self.state_name}")

    def count_receive_ready(self) -> None:
        self.counters["receive_ready"] += 1

    def count_receiver_busy(self) -> None:
        self.counters["receiver_busy"] += 1



