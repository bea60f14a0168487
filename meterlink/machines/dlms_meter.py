"""The meter's side of the DLMS/COSEM HDLC link, for the simulator (seed 002 ch. 2.2, 2.5, 4).

The meter starts in disconnected mode (NDM) and answers any frame but SNRM with DM. SNRM connects
it (UA with the negotiated parameters, sequence numbers from 0), AARQ associates it when the
association's password and context are right (AARE), and it answers each request; a long answer
goes out in blocks (GET-response-with-datablock, fetched with GET-request-next) or, when blocks are
off, in HDLC segments acknowledged one by one with RR. DISC ends the connection (UA); so does the
inactivity timeout (HDLC setup attribute 8, 20 s), silently. A request the meter did answer but
whose answer the client did not receive (the client repeats its frame: same N(S), N(R) behind)
gets the same answer again. Over the wrapper there is no data link: the first frame opens it.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from statemachine import State

from ..protocols.dlms.acse import AcseServiceUser, Aare, Aarq, AssociationResult, ReleaseRequest, ReleaseResponse
from ..protocols.dlms.apdu import Apdu
from ..protocols.dlms.axdr import Data, DataTag, encode_data, encode_length
from ..protocols.dlms.xdlms import (
    AccessSelection,
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResult,
    AttributeDescriptor,
    DataAccessResult,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetResponseNormal,
    GetResponseWithDataBlock,
    MethodDescriptor,
    ServiceError,
    SetRequestNormal,
    SetResponseNormal,
    StateError,
)
from ..protocols.hdlc import LLC_REQUEST, LLC_RESPONSE, Address, Frame, FrameType, HdlcParameters, parse_frame
from ..protocols.wrapper import WrapperFrame
from .base import LinkMachine, StateTimeout
from .hdlc_station import HdlcStation, receiver_region

BLOCK_OVERHEAD = 15
"""LLC (3) + C4 02 invoke (3) + last-block (1) + block number (4) + raw-data choice (1) + 82 LL LL (3)."""


class CosemServer(Protocol):
    """The meter's objects: what the machine asks of the simulated meter for each request."""

    def associate(self, client_sap: int, server_sap: int, aarq: Aarq) -> Aare:
        """Accept or refuse an association (the password, the context, the client's rights); a
        pure function of its arguments."""

    def get(self, client_sap: int, descriptor: AttributeDescriptor, access: AccessSelection | None) -> Data | DataAccessResult: ...

    def set(self, client_sap: int, descriptor: AttributeDescriptor, value: Data) -> DataAccessResult: ...

    def action(self, client_sap: int, descriptor: MethodDescriptor, parameters: Data | None) -> tuple[ActionResult, Data | None]: ...


class DlmsMeter(HdlcStation, LinkMachine):
    """Meter side, for the simulator: the HDLC station in NDM/NRM and the association on top."""

    class link(State.Parallel, name="DLMS meter"):
        class station(State.Compound, name="Station"):
            ndm = State("Disconnected mode (NDM)", initial=True)
            nrm = State("Connected (NRM), not associated")
            associated = State("Associated")

            snrm = (
                ndm.to(nrm, on="accept_connection")
                | nrm.to(nrm, on="accept_connection")
                | associated.to(nrm, on="accept_connection")
            )
            wrapper_opened = ndm.to(nrm, on="open_wrapper")
            disc = (
                ndm.to.itself(internal=True, on="answer_dm")
                | nrm.to(ndm, on="answer_ua")
                | associated.to(ndm, on="answer_ua")
            )
            i_frame = (
                ndm.to.itself(internal=True, on="answer_dm")
                | nrm.to(nrm, cond="repeated", on="send_again")
                | associated.to(associated, cond="repeated", on="send_again")
                | nrm.to.itself(internal=True, cond="not in_sequence", on="drop_out_of_sequence")
                | associated.to.itself(internal=True, cond="not in_sequence", on="drop_out_of_sequence")
                | nrm.to(nrm, cond="segmented", on="collect_segment")
                | associated.to(associated, cond="segmented", on="collect_segment")
                | nrm.to(nrm, on="collect_request")
                | associated.to(associated, on="collect_request")
            )
            rr = (
                ndm.to.itself(internal=True, on="answer_dm")
                | nrm.to(nrm, cond="segments_to_send", on="send_next_segment")
                | associated.to(associated, cond="segments_to_send", on="send_next_segment")
                | nrm.to(nrm, cond="repeat_asked", on="send_again")
                | associated.to(associated, cond="repeat_asked", on="send_again")
                | nrm.to(nrm, on="answer_rr")
                | associated.to(associated, on="answer_rr")
            )
            apdu = (
                nrm.to(associated, cond="association_accepted", on="answer_association")
                | nrm.to(nrm, cond="association_request", on="answer_association")
                | nrm.to.itself(internal=True, on="answer_not_associated")
                | associated.to(nrm, cond="release_request", on="answer_release")
                | associated.to(associated, cond="association_accepted", on="answer_association")
                | associated.to(nrm, cond="association_request", on="answer_association")
                | associated.to.itself(internal=True, on="answer_request")
            )
            inactivity = nrm.to(ndm, on="drop_connection") | associated.to(ndm, on="drop_connection")

        receiver = receiver_region()

    closed = State("Link closed", final=True)

    link_lost = link.to(closed)

    timeouts = (
        StateTimeout("nrm", after="inactivity_timeout", event="inactivity"),
        StateTimeout("associated", after="inactivity_timeout", event="inactivity"),
        StateTimeout("receiving", after="inter_octet", event="inter_octet_timeout"),
    )

    def __init__(
        self,
        objects: CosemServer | None = None,
        logical_devices: tuple[int, ...] = (1, 16),
        physical_address: int = 32,
        supported: HdlcParameters = HdlcParameters(512, 128, 1, 1),
        block_transfer: bool = True,
        inactivity_timeout: float = 20.0,
        inter_octet: float = 0.5,
        counters: Counter[str] | None = None,
    ) -> None:
        """The meter answers to its logical devices (seed 002 ch. 2.4: 1 the management device, 16
        the electricity meter), with or without its physical address (ch. 2.5: 32 by default);
        `supported` are the parameters it takes, the seed's K351C: it sends 512 and takes 128 bytes."""
        self.objects = objects
        self.logical_devices = logical_devices
        self.physical_address = physical_address
        self.local = Address.server(logical_devices[0])
        self.peer = Address.client(0)
        self.supported = supported
        self.block_transfer = block_transfer
        self.inactivity_timeout = inactivity_timeout
        self.inter_octet = inter_octet
        self.retries = 0
        self.llc_out, self.llc_in = LLC_RESPONSE, LLC_REQUEST
        self.client_max_pdu = 0xFFFF
        self.wrapper_port: int | None = None
        """The logical device (wPort) a wrapper client talks to; None on HDLC."""
        self._blocks: list[bytes] = []
        self._block_number = 0
        self.reset_link()
        super().__init__(counters)

    # -- events in ----------------------------------------------------------------------------------

    def addressed_to_us(self, frame: Frame) -> bool:
        # Any client may call any of our logical devices with SNRM (and get DM for anything else
        # while disconnected); once connected, only that client and device.
        destination = frame.destination
        if destination.upper not in self.logical_devices or destination.lower not in (None, self.physical_address):
            return False
        if frame.kind is FrameType.SNRM or self.ndm.is_active:
            return True
        return frame.source.same_station(self.peer) and destination.same_station(self.local)

    def wrapper_frame(self, frame: WrapperFrame, received_at: float | None) -> None:
        if self.ndm.is_active and frame.destination in self.logical_devices:
            self.send("wrapper_opened", frame=frame)
        if frame.source != self.peer.upper or frame.destination != self.wrapper_port:
            self.send("stray_frame", detail=f"wrapper frame from wPort {frame.source} to {frame.destination}")
            return
        apdu = self.parse(frame.apdu)
        if apdu is not None:
            self.send("apdu", apdu=apdu)

    # -- guards -------------------------------------------------------------------------------------

    def repeated(self, frame: Frame) -> bool:
        """The client sends its last I-frame again: it did not receive our answer, an I-frame, or
        the RR with which we acknowledged a segment of its request (then its N(R) is not behind)."""
        control = frame.control
        if not self._last_sent or control.send_sequence != (self._receive_sequence - 1) % 8:
            return False
        answered_with_rr = parse_frame(self._last_sent).kind is FrameType.RR
        return control.receive_sequence == (self._send_sequence - (0 if answered_with_rr else 1)) % 8

    def repeat_asked(self, frame: Frame) -> bool:
        """An RR whose N(R) is behind ours: the client did not receive our last frame."""
        return bool(self._last_sent) and frame.control.receive_sequence == (self._send_sequence - 1) % 8

    def association_request(self, apdu: Apdu) -> bool:
        return isinstance(apdu, Aarq)

    def association_accepted(self, apdu: Apdu) -> bool:
        return isinstance(apdu, Aarq) and self._association(apdu).accepted

    def release_request(self, apdu: Apdu) -> bool:
        return isinstance(apdu, ReleaseRequest)

    # -- actions ------------------------------------------------------------------------------------

    def _association(self, aarq: Aarq) -> Aare:
        if self.objects is None:
            return Aare(AssociationResult.REJECTED_PERMANENT, AcseServiceUser.NO_REASON_GIVEN)
        return self.objects.associate(self.peer.upper, self.local.upper, aarq)

    def accept_connection(self, frame: Frame) -> None:
        self.reset_link()
        self.peer, self.local = frame.source, frame.destination
        self._blocks.clear()
        self.parameters = self.supported.answer(HdlcParameters.parse(frame.information))
        self.counters["connections"] += 1
        self.transmit(self.control_frame(FrameType.UA, self.parameters.to_bytes()))

    def open_wrapper(self, frame: WrapperFrame) -> None:
        self.reset_link()
        self.peer, self.local = Address.client(frame.source & 0x7F), Address.server(frame.destination)
        self.wrapper_port = frame.destination
        self.parameters = self.supported

    def answer_ua(self) -> None:
        self.transmit(self.control_frame(FrameType.UA))

    def answer_dm(self) -> None:
        self.transmit(self.control_frame(FrameType.DM))

    def answer_rr(self) -> None:
        self.transmit(self.control_frame(FrameType.RR))

    def collect_request(self, frame: Frame) -> None:
        apdu = self.joined_apdu(frame)
        if apdu is not None:
            self.raise_("apdu", apdu=apdu)

    def drop_out_of_sequence(self, frame: Frame) -> None:
        self.drop("out_of_sequence", f"I-frame N(S)={frame.control.send_sequence}, expected {self._receive_sequence}")

    def drop_connection(self) -> None:
        self.counters["inactivity_timeouts"] += 1

    def answer_association(self, apdu: Aarq) -> None:
        aare = self._association(apdu)
        self.client_max_pdu = apdu.user_information.max_receive_pdu_size
        self.counters["associations" if aare.accepted else "refused_associations"] += 1
        self._answer(aare.to_bytes())

    def answer_release(self) -> None:
        self._answer(ReleaseResponse().to_bytes())

    def answer_not_associated(self) -> None:
        self._answer(ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, ServiceError.OPERATION_NOT_POSSIBLE).to_bytes())

    def answer_request(self, apdu: Apdu) -> None:
        objects = self.objects
        client = self.peer.upper
        if objects is None:
            return
        self.counters["requests"] += 1
        match apdu:
            case GetRequestNormal(descriptor, access, invoke):
                self._answer_get(objects.get(client, descriptor, access), invoke)
            case GetRequestNext(number, invoke):
                self._answer_next_block(number, invoke)
            case SetRequestNormal(descriptor, value, _, invoke):
                self._answer(SetResponseNormal(objects.set(client, descriptor, value), invoke).to_bytes())
            case ActionRequestNormal(descriptor, parameters, invoke):
                result, value = objects.action(client, descriptor, parameters)
                self._answer(ActionResponseNormal(result, value, invoke).to_bytes())
            case _:
                self._answer(ExceptionResponse(StateError.SERVICE_UNKNOWN, ServiceError.SERVICE_NOT_SUPPORTED).to_bytes())

    def _answer(self, apdu: bytes) -> None:
        if self.wrapper_port is not None:
            self.transmit(WrapperFrame(self.wrapper_port, self.peer.upper, apdu).to_bytes())
        else:
            self.send_information(apdu)

    def _answer_get(self, result: Data | DataAccessResult, invoke: int) -> None:
        normal = GetResponseNormal(result, invoke).to_bytes()
        limit = min(self.parameters.max_info_tx, self.client_max_pdu)
        if len(LLC_RESPONSE) + len(normal) <= limit or not self.block_transfer or isinstance(result, DataAccessResult):
            self._answer(normal)  # in HDLC segments when it is longer than a frame
            return
        self._blocks = _split(result, limit - BLOCK_OVERHEAD)
        self._block_number = 0
        self._answer_next_block(0, invoke)

    def _answer_next_block(self, acknowledged: int, invoke: int) -> None:
        if not self._blocks:
            self._answer(GetResponseWithDataBlock(True, acknowledged, DataAccessResult.NO_LONG_GET_IN_PROGRESS, invoke).to_bytes())
            return
        if acknowledged != self._block_number:
            self._blocks.clear()
            self._answer(GetResponseWithDataBlock(True, acknowledged, DataAccessResult.DATA_BLOCK_NUMBER_INVALID, invoke).to_bytes())
            return
        self._block_number += 1
        block = self._blocks.pop(0)
        self._answer(GetResponseWithDataBlock(not self._blocks, self._block_number, block, invoke).to_bytes())


def _split(data: Data, room: int) -> list[bytes]:
    """The blocks of a long answer: an array in whole elements per block as Kamstrup meters send
    profile buffers (seed 002 ch. 4.2: ten 46-byte rows a block), anything else cut at `room` bytes."""
    if data.tag is not DataTag.ARRAY:
        encoded = encode_data(data)
        return [encoded[i : i + room] for i in range(0, len(encoded), room)]
    blocks: list[bytes] = []
    current = bytes((DataTag.ARRAY,)) + encode_length(len(data.value))
    for item in data.value:
        encoded = encode_data(item)
        if len(current) + len(encoded) > room and current:
            blocks.append(current)
            current = b""
        current += encoded
    blocks.append(current)
    return blocks
