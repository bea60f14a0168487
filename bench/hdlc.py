#!/usr/bin/env python3
"""HDLC frames and DLMS GET round trips per second: meterlink against dlms-cosem (and Gurux for the round
trip), same frames, same run.

The frames are the seed's public-association session with a Kamstrup K351C (seed 002 ch. 4.1):
the client reads attribute 2 of Data object 1.1.0.0.1.255 and the meter answers with the
23-byte frame 7E A0 15 ... 7E (GET-Response-Normal, double-long-unsigned 12345679). Variants
(see bench/README.md, section "HDLC / DLMS client"):

  frame decode     the 23-byte GET-response frame -> a frame object, HCS and FCS checked:
                   meterlink parse_frame, meterlink HdlcFramer.feed, dlms-cosem InformationFrame.from_bytes
  frame encode     the 27-byte GET-request frame from its fields (addresses, N(S), N(R), information)
                   -> bytes: meterlink Frame.to_bytes, dlms-cosem InformationFrame.to_bytes
  encode + decode  one of each in the same iteration (the issue's headline figure)
  GET round trip   "the client wants 1:1.1.0.0.1.255:2" -> request frame bytes; response frame bytes
                   -> the value 12345679, on an association that stays open:
                   meterlink DlmsClient (the state machine the actor runs: `idle` event -> Send
                   action; HdlcFramer.feed -> DlmsClient.handle per event -> Publish action),
                   meterlink's codec alone (the same steps without the machine), dlms-cosem's
                   sans-IO DlmsConnection + HdlcConnection, dlms-cosem's own DlmsClient.get over
                   its SerialHdlcTransport with the serial port replaced by an in-memory meter, and
                   Gurux's GXDLMSClient (read -> request frame; getData + updateValue -> value).

Before timing, the script checks (untimed) that both libraries decode the response frame to the
same fields, reject a frame with a broken HCS or FCS, encode the request frames of all eight
sequence states to the same bytes (the first one byte-equal to the seed's), and that every
round-trip variant sends the seed's request bytes and gets the value 12345679. In the timed
round trips the simulated meter answers by looking the request's bytes up in a table of the
eight request frames, so a request that differs from the expected bytes stops the run.

Timings are reported, never asserted. dlms-cosem (BSL-licensed) and gurux-dlms (GPL-2.0) are
benchmark peers only; meterlink never imports them.

    .venv/bin/python bench/hdlc.py [--rounds 7] [--seconds 0.25] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dlms_cosem import cosem as cosem_objects
from dlms_cosem import enumerations
from dlms_cosem.clients.dlms_client import DlmsClient as CosemDlmsClient
from dlms_cosem.clients.hdlc_transport import SerialHdlcTransport
from dlms_cosem.connection import DlmsConnection, XDlmsApduFactory
from dlms_cosem.cosem.obis import Obis as CosemObis
from dlms_cosem.hdlc import address as cosem_address
from dlms_cosem.hdlc import frames as cosem_frames
from dlms_cosem.hdlc.connection import HdlcConnection
from dlms_cosem.hdlc.exceptions import HdlcParsingError
from dlms_cosem.hdlc.state import NEED_DATA
from dlms_cosem.protocol import xdlms as cosem_xdlms
from dlms_cosem.protocol.xdlms.invoke_id_and_priority import InvokeIdAndPriority
from dlms_cosem.utils import parse_as_dlms_data
from gurux_dlms import GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.objects import GXDLMSData

from meterlink.machines.base import Publish, Send
from meterlink.machines.dlms import DlmsClient
from meterlink.protocols.crc import crc16_x25
from meterlink.protocols.dlms.apdu import parse_apdu
from meterlink.protocols.dlms.objects import AttributeRef, attribute_value, meter_name
from meterlink.protocols.dlms.xdlms import GetRequestNormal, GetResponseNormal
from meterlink.protocols.framing import BadFrame
from meterlink.protocols.hdlc import LLC_REQUEST, LLC_RESPONSE, Address, Control, Frame, FrameType, HdlcError
from meterlink.protocols.hdlc import HdlcFramer, parse_frame
from meterlink.protocols.obis import Obis
from meterlink.protocols.readings import Reading

from report import Report, Table, add_json_option, describe, emit

# --- the seed's frames (seed 002 ch. 4.1, "Read Meter number without security": Kamstrup K351C,
# client SAP 16, server logical device 1, no security). Every HCS and FCS in them checks. -------
SEED_SNRM = bytes.fromhex("7EA0200321937DD981801405020200060202000704000000010804000000016FEF7E")
SEED_UA = bytes.fromhex("7EA0202103737398818014050202000602008007040000000108040000000119D47E")
SEED_AARQ = bytes.fromhex("7EA02B032110FBAFE6E600601DA109060760857405080101BE10040E01000000065F1F040000181DFFFF5FAF7E")
SEED_AARE = bytes.fromhex(
    "7EA0372103306C7CE6E7006129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F0400001010007D00077DEE7E"
)
SEED_GET_REQUEST = bytes.fromhex("7EA0190321326FD8E6E600C0018100010101000001FF0200A8E37E")
SEED_GET_RESPONSE = bytes.fromhex("7EA0152103525D8AE6E700C40181000600BC614FE4367E")
VALUE = 12345679

CLIENT_SAP, SERVER_LOGICAL = 16, 1
REF = AttributeRef(1, Obis(1, 1, 0, 0, 1, 255), 2)
GET_APDU = GetRequestNormal(REF.descriptor).to_bytes()  # C0 01 81 0001 0101000001FF 02 00
RESULT = bytes.fromhex("000600BC614F")  # Get-Data-Result: data, double-long-unsigned 12345679
ML_PEER, ML_LOCAL = Address.server(SERVER_LOGICAL), Address.client(CLIENT_SAP)
CO_SERVER = cosem_address.HdlcAddress(SERVER_LOGICAL, None, "server")
CO_CLIENT = cosem_address.HdlcAddress(CLIENT_SAP, None, "client")
CO_ATTRIBUTE = cosem_objects.CosemAttribute(enumerations.CosemInterface.DATA, CosemObis(1, 1, 0, 0, 1, 255), 2)
CO_INVOKE = InvokeIdAndPriority(invoke_id=1, confirmed=False, high_priority=True)  # 0x81, as the seed
RECEIVED_AT = 1795435200.0


class CheckFailed(RuntimeError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- the simulated meter: request frame bytes -> response frame bytes -----------------------------


def request_frame(ns: int, nr: int, apdu: bytes = GET_APDU) -> bytes:
    return Frame(ML_PEER, ML_LOCAL, Control(FrameType.I, True, ns, nr), LLC_REQUEST + apdu).to_bytes()


def response_frame(ns: int, nr: int, invoke: int = 0x81) -> bytes:
    information = LLC_RESPONSE + bytes((0xC4, 0x01, invoke)) + RESULT
    return Frame(ML_LOCAL, ML_PEER, Control(FrameType.I, True, ns, nr), information).to_bytes()


def meter_table(invoke: int = 0x81) -> dict[bytes, bytes]:
    """The meter's answer to the GET request in each of the eight sequence states. After the seed's
    association the client's k-th GET carries N(S) = N(R) = k mod 8 (k = 1: the seed's request), and
    the meter answers with N(S) = k, N(R) = k + 1."""
    apdu = bytes((0xC0, 0x01, invoke)) + GET_APDU[3:]
    return {request_frame(k, k, apdu): response_frame(k, (k + 1) % 8, invoke) for k in range(8)}


METER = meter_table()
METER_C1 = meter_table(0xC1)  # dlms-cosem's DlmsClient.get sends invoke-id-and-priority C1 (confirmed)


# --- meterlink -----------------------------------------------------------------------------------


def ml_associated_client() -> tuple[DlmsClient, HdlcFramer, list[str]]:
    """A DlmsClient driven through the seed's session up to its first reading, lingering in
    `associated` between polls (reads given, poll_interval well inside the inactivity timeout)."""
    machine = DlmsClient(reads=(REF,), poll_interval=1.0)
    check(machine.lingering, "DlmsClient(reads, poll_interval=1.0) would release the association after each poll")
    framer = HdlcFramer()
    sent: list[bytes] = []
    published: list[Reading] = []

    def collect() -> None:
        for action in machine.take_actions():
            if isinstance(action, Send):
                sent.append(action.data)
            elif isinstance(action, Publish):
                published.append(action.reading)

    machine.send("connect")
    collect()
    for answer in (SEED_UA, SEED_AARE, SEED_GET_RESPONSE):
        for event in framer.feed(answer):
            machine.handle(event, RECEIVED_AT)
        collect()
    check(sent == [SEED_SNRM, SEED_AARQ, SEED_GET_REQUEST], "meterlink's SNRM, AARQ and GET differ from the seed's")
    check(len(published) == 1 and published[0].values[0].value == VALUE, "meterlink did not publish 12345679")
    check(machine.state_name == "associated,quiet", f"meterlink left the association: {machine.state_name}")
    return machine, framer, [
        "meterlink DlmsClient: SNRM, AARQ and the first GET byte-equal to the seed's; reading 1-1:0.0.1.255 = 12345679 "
        f"(meter id {published[0].meter_id}); stays in `associated` (poll_interval 1 s, idle event starts the next GET)",
    ]


class MlMachineRoundTrip:
    """meterlink as the actor runs it: the poll timer's `idle` event -> Send; the meter's bytes ->
    HdlcFramer.feed -> DlmsClient.handle per event -> Publish."""

    def __init__(self) -> None:
        self.machine, self.framer, _ = ml_associated_client()

    def run(self, n: int) -> int:
        machine, framer, meter = self.machine, self.framer, METER
        done = 0
        for _ in range(n):
            machine.send("idle")
            (action,) = machine.take_actions()
            for event in framer.feed(meter[action.data]):  # type: ignore[union-attr]
                machine.handle(event, RECEIVED_AT)
            for action in machine.take_actions():
                if type(action) is Publish and action.reading.values[0].value == VALUE:
                    done += 1
        return done


class MlCodecRoundTrip:
    """meterlink's codec without the machine: the same encoders, framer and APDU parser, the
    sequence numbers and LLC header checked by hand."""

    def __init__(self) -> None:
        self.ns = self.nr = 1  # after the seed's association (AARQ was N(S)=0, AARE N(S)=0)
        self.framer = HdlcFramer()

    def run(self, n: int) -> int:
        framer, meter = self.framer, METER
        ns, nr = self.ns, self.nr
        done = 0
        for _ in range(n):
            apdu = GetRequestNormal(REF.descriptor, REF.access).to_bytes()
            data = Frame(ML_PEER, ML_LOCAL, Control(FrameType.I, True, ns, nr), LLC_REQUEST + apdu).to_bytes()
            ns = (ns + 1) % 8
            for event in framer.feed(meter[data]):
                if type(event) is Frame:
                    control = event.control
                    if control.send_sequence != nr or control.receive_sequence != ns:
                        raise CheckFailed("meterlink codec: response out of sequence")
                    nr = (nr + 1) % 8
                    information = event.information
                    if not information.startswith(LLC_RESPONSE):
                        raise CheckFailed("meterlink codec: no LLC response header")
                    response = parse_apdu(information[3:])
                    if type(response) is GetResponseNormal and response.result.value == VALUE:  # type: ignore[union-attr]
                        done += 1
        self.ns, self.nr = ns, nr
        return done


# --- dlms-cosem ----------------------------------------------------------------------------------


def co_associated() -> tuple[HdlcConnection, DlmsConnection, list[str]]:
    """dlms-cosem's sans-IO connections driven through the seed's session (its own SNRM and AARQ,
    the seed's UA and AARE) up to the first GET."""
    hdlc = HdlcConnection(client_address=CO_CLIENT, server_address=CO_SERVER)
    dlms = DlmsConnection(client_system_title=b"MTRLINK0")
    snrm = hdlc.send(cosem_frames.SetNormalResponseModeFrame(CO_SERVER, CO_CLIENT))
    hdlc.receive_data(SEED_UA)
    check(isinstance(hdlc.next_event(), cosem_frames.UnNumberedAcknowledgmentFrame), "dlms-cosem: no UA")
    aarq_apdu = dlms.send(dlms.get_aarq())
    aarq = hdlc.send(cosem_frames.InformationFrame(CO_SERVER, CO_CLIENT, LLC_REQUEST + aarq_apdu,
                                                   send_sequence_number=hdlc.server_ssn, receive_sequence_number=hdlc.server_rsn))
    hdlc.receive_data(SEED_AARE)
    frame = hdlc.next_event()
    dlms.receive_data(bytes(frame.payload[3:]))
    aare = dlms.next_event()
    check(aare.result is enumerations.AssociationResult.ACCEPTED, "dlms-cosem: association not accepted")
    request, value = co_get(hdlc, dlms, {SEED_GET_REQUEST: SEED_GET_RESPONSE})
    check(request == SEED_GET_REQUEST and value == VALUE, "dlms-cosem: first GET differs from the seed's")
    notes = [
        "dlms-cosem sans-IO: GET request byte-equal to the seed's (with invoke-id-and-priority 0x81 passed in), value 12345679",
        f"differences before the GET (untimed, legitimate): dlms-cosem's SNRM carries no parameters ({snrm.hex().upper()}, "
        "the seed's and meterlink's propose 512-byte fields, window 1); its AARQ "
        f"({len(aarq)} bytes, the seed's {len(SEED_AARQ)}) adds a calling-AP-title (its client system title) and proposes "
        f"conformance {aarq_apdu[-5:-2].hex().upper()} (the seed's and meterlink's 00181D)",
    ]
    return hdlc, dlms, notes


def co_get(hdlc: HdlcConnection, dlms: DlmsConnection, meter: dict[bytes, bytes]) -> tuple[bytes, object]:
    """One GET, dlms-cosem sans-IO: request APDU -> I-frame -> bytes; bytes -> frame -> APDU -> value."""
    apdu = dlms.send(cosem_xdlms.GetRequestNormal(CO_ATTRIBUTE, invoke_id_and_priority=CO_INVOKE))
    data = hdlc.send(cosem_frames.InformationFrame(CO_SERVER, CO_CLIENT, LLC_REQUEST + apdu,
                                                   send_sequence_number=hdlc.server_ssn, receive_sequence_number=hdlc.server_rsn))
    hdlc.receive_data(meter[data])
    frame = hdlc.next_event()
    if frame is NEED_DATA or not frame.payload.startswith(LLC_RESPONSE):
        raise CheckFailed("dlms-cosem: no I-frame with the LLC response header")
    dlms.receive_data(bytes(frame.payload[3:]))
    response = dlms.next_event()
    return data, parse_as_dlms_data(response.data)


class CoSansIoRoundTrip:
    def __init__(self) -> None:
        self.hdlc, self.dlms, _ = co_associated()

    def run(self, n: int) -> int:
        hdlc, dlms, meter = self.hdlc, self.dlms, METER
        done = 0
        for _ in range(n):
            if co_get(hdlc, dlms, meter)[1] == VALUE:
                done += 1
        return done


class MeterPort(SerialHdlcTransport):
    """dlms-cosem's serial HDLC transport with the port replaced by the simulated meter."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(serial=None, **kwargs)  # type: ignore[arg-type]
        self.written: list[bytes] = []
        self.setup_answers = [SEED_UA, SEED_AARE]
        self.answer = b""

    def _write_bytes(self, to_write: bytes) -> None:
        data = bytes(to_write)
        if self.setup_answers:  # SNRM, then AARQ: answered with the seed's UA and AARE
            self.written.append(data)
            self.answer = self.setup_answers.pop(0)
        else:
            self.answer = METER_C1[data]

    def _read_frame(self) -> bytes:
        answer, self.answer = self.answer, b""
        return answer


class CoClientRoundTrip:
    """dlms-cosem as its users call it: DlmsClient.get over SerialHdlcTransport, then parse_as_dlms_data."""

    def __init__(self) -> None:
        port = MeterPort(client_logical_address=CLIENT_SAP, server_logical_address=SERVER_LOGICAL, serial_port="meter")
        self.client = CosemDlmsClient(CLIENT_SAP, SERVER_LOGICAL, port, client_system_title=b"MTRLINK0")
        self.client.connect()
        self.client.associate()
        self.port = port

    def run(self, n: int) -> int:
        get = self.client.get
        done = 0
        for _ in range(n):
            if parse_as_dlms_data(get(CO_ATTRIBUTE)) == VALUE:
                done += 1
        return done


class GxClientRoundTrip:
    """Gurux's DLMS client as its users drive it: `read(object, 2)` gives the request frame, the meter
    answers, `getData` checks the frame and parses the GET response, `updateValue` sets the value.
    Associated first with the seed's UA and AARE answering its SNRM and AARQ."""

    def __init__(self) -> None:
        client = GXDLMSClient(True, CLIENT_SAP, SERVER_LOGICAL, Authentication.NONE, None, InterfaceType.HDLC)
        self.setup = [bytes(client.snrmRequest())]
        reply = GXReplyData()
        client.getData(SEED_UA, reply)
        client.parseUAResponse(reply.data)
        self.setup += [bytes(frame) for frame in client.aarqRequest()]
        reply = GXReplyData()
        client.getData(SEED_AARE, reply)
        client.parseAareResponse(reply.data)
        self.client, self.object = client, GXDLMSData("1.1.0.0.1.255")

    def get(self) -> tuple[bytes, object]:
        (request,) = self.client.read(self.object, 2)
        reply = GXReplyData()
        self.client.getData(METER_C1[bytes(request)], reply)
        self.client.updateValue(self.object, 2, reply.value)
        return bytes(request), self.object.value

    def run(self, n: int) -> int:
        done = 0
        for _ in range(n):
            if self.get()[1] == VALUE:
                done += 1
        return done


# --- the frame variants: each does n iterations and returns how many succeeded --------------------

REQ_INFORMATION = LLC_REQUEST + GET_APDU


def ml_parse(n: int) -> int:
    raw = SEED_GET_RESPONSE
    for _ in range(n):
        parse_frame(raw)
    return n


def ml_framer(n: int, framer: HdlcFramer = HdlcFramer()) -> int:
    raw = SEED_GET_RESPONSE
    done = 0
    for _ in range(n):
        for event in framer.feed(raw):
            if type(event) is Frame:
                done += 1
    return done


def co_decode(n: int) -> int:
    raw, parse = SEED_GET_RESPONSE, cosem_frames.InformationFrame.from_bytes
    for _ in range(n):
        parse(raw)
    return n


def ml_encode(n: int) -> int:
    peer, local, information = ML_PEER, ML_LOCAL, REQ_INFORMATION
    for _ in range(n):
        Frame(peer, local, Control(FrameType.I, True, 1, 1), information).to_bytes()
    return n


def co_encode(n: int) -> int:
    server, client, information, frame = CO_SERVER, CO_CLIENT, REQ_INFORMATION, cosem_frames.InformationFrame
    for _ in range(n):
        frame(server, client, information, send_sequence_number=1, receive_sequence_number=1).to_bytes()
    return n


def ml_encode_parse(n: int) -> int:
    peer, local, information, raw = ML_PEER, ML_LOCAL, REQ_INFORMATION, SEED_GET_RESPONSE
    for _ in range(n):
        Frame(peer, local, Control(FrameType.I, True, 1, 1), information).to_bytes()
        parse_frame(raw)
    return n


def ml_encode_framer(n: int, framer: HdlcFramer = HdlcFramer()) -> int:
    peer, local, information, raw = ML_PEER, ML_LOCAL, REQ_INFORMATION, SEED_GET_RESPONSE
    done = 0
    for _ in range(n):
        Frame(peer, local, Control(FrameType.I, True, 1, 1), information).to_bytes()
        for event in framer.feed(raw):
            if type(event) is Frame:
                done += 1
    return done


def co_encode_decode(n: int) -> int:
    server, client, information, raw = CO_SERVER, CO_CLIENT, REQ_INFORMATION, SEED_GET_RESPONSE
    frame = cosem_frames.InformationFrame
    for _ in range(n):
        frame(server, client, information, send_sequence_number=1, receive_sequence_number=1).to_bytes()
        frame.from_bytes(raw)
    return n


# --- untimed checks ------------------------------------------------------------------------------


def verify() -> list[str]:
    notes = []
    # Decode: the same fields from both.
    ours = parse_frame(SEED_GET_RESPONSE)
    theirs = cosem_frames.InformationFrame.from_bytes(SEED_GET_RESPONSE)
    check((ours.destination.upper, ours.source.upper) == (theirs.destination_address.logical_address,
                                                          theirs.source_address.logical_address) == (CLIENT_SAP, SERVER_LOGICAL),
          "the decoders disagree on the addresses")
    check(ours.kind is FrameType.I and (ours.control.send_sequence, ours.control.receive_sequence, ours.control.poll_final)
          == (theirs.send_sequence_number, theirs.receive_sequence_number, theirs.final) == (1, 2, True),
          "the decoders disagree on the control field")
    check(ours.segmented is theirs.segmented is False, "the decoders disagree on the segmentation bit")
    check(ours.information == bytes(theirs.payload) == LLC_RESPONSE + bytes.fromhex("C40181") + RESULT,
          "the decoders disagree on the information field")
    framed = HdlcFramer().feed(SEED_GET_RESPONSE)
    check(len(framed) == 2 and framed[0] == ours, "HdlcFramer does not give the frame parse_frame gives")
    check(parse_as_dlms_data(cosem_xdlms.GetResponseNormal.from_bytes(bytes(theirs.payload[3:])).data) == VALUE
          and parse_apdu(ours.information[3:]).result.value == VALUE, "the response does not carry 12345679")  # type: ignore[union-attr]
    notes.append("decode: both give destination 16, source 1, I-frame N(S)=1 N(R)=2 P/F=1, not segmented, "
                 "the same 12-byte information field (LLC E6 E7 00 + GET-Response-Normal, 12345679)")
    # Both check HCS and FCS: break one byte of each.
    for name, position in (("HCS", 6), ("FCS", len(SEED_GET_RESPONSE) - 3)):
        broken = bytearray(SEED_GET_RESPONSE)
        broken[position] ^= 0x01
        try:
            parse_frame(bytes(broken))
            raise CheckFailed(f"meterlink accepted a broken {name}")
        except HdlcError:
            pass
        check(any(isinstance(e, BadFrame) for e in HdlcFramer().feed(bytes(broken))), f"HdlcFramer accepted a broken {name}")
        try:
            cosem_frames.InformationFrame.from_bytes(bytes(broken))
            raise CheckFailed(f"dlms-cosem accepted a broken {name}")
        except HdlcParsingError:
            pass
    notes.append("HCS and FCS checked by both: one bit flipped in either is rejected "
                 "(meterlink HdlcError / the framer's BadFrame, dlms-cosem HdlcParsingError)")
    # Encode: byte-equal, in every sequence state.
    check(request_frame(1, 1) == SEED_GET_REQUEST, "meterlink's GET request frame differs from the seed's")
    for ns in range(8):
        for nr in range(8):
            ours_bytes = request_frame(ns, nr)
            theirs_bytes = cosem_frames.InformationFrame(CO_SERVER, CO_CLIENT, REQ_INFORMATION, send_sequence_number=ns,
                                                         receive_sequence_number=nr).to_bytes()
            check(ours_bytes == theirs_bytes, f"the encoders differ at N(S)={ns} N(R)={nr}")
            check(response_frame(ns, nr) == cosem_frames.InformationFrame(
                CO_CLIENT, CO_SERVER, LLC_RESPONSE + bytes.fromhex("C40181") + RESULT, send_sequence_number=ns,
                receive_sequence_number=nr).to_bytes(), f"the encoders differ on a response frame at N(S)={ns} N(R)={nr}")
    check(METER[SEED_GET_REQUEST] == SEED_GET_RESPONSE, "the simulated meter does not answer the seed's request with the seed's response")
    notes.append(f"encode: the GET request frame from its fields is byte-equal in both and to the seed's "
                 f"({len(SEED_GET_REQUEST)} bytes); so are all 64 N(S)/N(R) combinations of request and response frames")
    # Round trips: the first GET of each client is the seed's; then 16 more cycles each.
    _, _, machine_notes = ml_associated_client()
    notes += machine_notes
    _, _, cosem_notes = co_associated()
    notes += cosem_notes
    variants = (MlMachineRoundTrip(), MlCodecRoundTrip(), CoSansIoRoundTrip())
    for variant in variants:
        check(variant.run(16) == 16, f"{type(variant).__name__} lost a reading in 16 cycles (two turns of the sequence numbers)")
    client = CoClientRoundTrip()
    check(client.port.written[0] != SEED_SNRM and len(client.port.written) == 2, "dlms-cosem DlmsClient: unexpected setup")
    check(client.run(16) == 16, "dlms-cosem DlmsClient.get lost a value")
    gurux = GxClientRoundTrip()
    check(gurux.get() == (request_frame(1, 1, bytes.fromhex("C001C1") + GET_APDU[3:]), VALUE),
          "Gurux's first GET is not the seed's request with invoke-id-and-priority C1, or its value is not 12345679")
    check(gurux.run(16) == 16, "Gurux GXDLMSClient lost a value")
    notes.append("every round-trip variant: 16 further GETs (two turns of N(S)/N(R)), each request byte-equal to the expected "
                 "frame (the meter is a lookup table), each answer decoded to 12345679")
    notes.append("dlms-cosem's DlmsClient.get and Gurux's GXDLMSClient send invoke-id-and-priority C1 (service class "
                 "confirmed) where the seed and meterlink send 81: their meter table answers C1 requests (same length, "
                 "other HCS/FCS); otherwise Gurux's first GET is byte-equal to the seed's")
    notes.append(f"Gurux before the GET (untimed): its SNRM carries no parameters ({gurux.setup[0].hex().upper()}), its AARQ "
                 f"proposes conformance {gurux.setup[1][-8:-5].hex().upper()} (the seed's 00181D); the meter answers with the "
                 "seed's UA and AARE")
    external, raised = count_events(MlMachineRoundTrip())
    sent = external + raised
    notes.append(f"meterlink DlmsClient per GET round trip: {len(sent)} machine events, {len(external)} from outside "
                 f"({', '.join(external)}) and {len(raised)} raised inside ({', '.join(raised)})")
    return notes


def count_events(variant: MlMachineRoundTrip) -> tuple[list[str], list[str]]:
    """(events sent from outside, events raised inside) for one GET round trip."""
    machine = variant.machine
    sent: list[str] = []
    raised: list[str] = []
    send, raise_ = machine.send, machine.raise_

    inside_raise = []

    def counting_send(event: str, *args: object, **kwargs: object) -> object:
        if not inside_raise:  # the library's raise_ goes through send; the compiled one does not
            sent.append(event)
        return send(event, *args, **kwargs)

    def counting_raise(event: str, *args: object, **kwargs: object) -> object:
        raised.append(event)
        inside_raise.append(event)
        try:
            return raise_(event, *args, **kwargs)
        finally:
            inside_raise.pop()

    machine.send, machine.raise_ = counting_send, counting_raise  # type: ignore[method-assign]
    try:
        check(variant.run(1) == 1, "no reading while counting events")
    finally:
        del machine.send, machine.raise_
    return sent, raised


# --- timing --------------------------------------------------------------------------------------


def repeat(run: Callable[[int], int], minimum: float) -> Callable[[], float]:
    """A measurement of at least `minimum` seconds: `run(n)` does n iterations; returns iterations/s."""
    n = 16
    while True:
        started = time.perf_counter()
        check(run(n) == n, "a calibration pass lost iterations")
        elapsed = time.perf_counter() - started
        if elapsed >= minimum / 10:
            break
        n *= 4
    count = max(1, int(n * minimum / elapsed))

    def measured() -> float:
        gc.collect()  # each measurement starts from the same heap; gc stays on while timing
        started = time.perf_counter()
        done = run(count)
        elapsed = time.perf_counter() - started
        check(done == count, "a timed pass lost iterations")
        return count / elapsed
    return measured


def best_of(run: Callable[[int], int], n: int, repeat_count: int = 7) -> float:
    """Microseconds per iteration, best of `repeat_count` passes of n."""
    best = float("inf")
    for _ in range(repeat_count):
        gc.collect()
        started = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def loop(body: Callable[[], object]) -> Callable[[int], int]:
    def run(n: int) -> int:
        for _ in range(n):
            body()
        return n
    return run


def split(passes: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Where the time of one GET round trip goes, µs, best of `passes` (each step alone, in a loop)."""

    def best(run: Callable[[int], int], n: int) -> float:
        return best_of(run, n, passes)

    framer = HdlcFramer()
    body = SEED_GET_RESPONSE[1:-1]
    apdu = parse_frame(SEED_GET_RESPONSE).information[3:]
    data = parse_apdu(apdu).result  # type: ignore[union-attr]
    value = attribute_value(REF, data)  # type: ignore[arg-type]
    trivial = MlMachineRoundTrip().machine

    def ml_apdu() -> bytes:
        return GetRequestNormal(REF.descriptor, REF.access).to_bytes()

    def ml_frame() -> bytes:
        return Frame(ML_PEER, ML_LOCAL, Control(FrameType.I, True, 1, 1), REQ_INFORMATION).to_bytes()

    def ml_mapping() -> Reading:
        named = meter_name(REF.obis, value)
        return Reading(named[1] if named else None, "dlms", RECEIVED_AT, None, (attribute_value(REF, data),))  # type: ignore[arg-type]

    machine_total = best(MlMachineRoundTrip().run, 2000)
    codec_total = best(MlCodecRoundTrip().run, 5000)
    codec = [
        ("GetRequestNormal(descriptor).to_bytes() (APDU encode)", best(loop(ml_apdu), 20000)),
        ("Frame(...).to_bytes() (HDLC encode, HCS + FCS)", best(loop(ml_frame), 20000)),
        ("HdlcFramer.feed(response) -> Frame + Quiet (framing + parse_frame)", best(loop(lambda: framer.feed(SEED_GET_RESPONSE)), 20000)),
        ("parse_apdu(information[3:]) (GET-Response-Normal + A-XDR)", best(loop(lambda: parse_apdu(apdu)), 20000)),
    ]
    crc = best(loop(lambda: (crc16_x25(body[:4]), crc16_x25(body[:-2]))), 20000)
    codec_sum = sum(micros for _, micros in codec)
    mapping = best(loop(ml_mapping), 20000)
    event = best(loop(lambda: trivial.send("noise", count=1)), 2000)
    ml_steps = codec[:3] + [("  of which crc16_x25 for HCS and FCS", crc)] + codec[3:] + [
        ("codec steps together", codec_sum),
        ("meterlink codec round trip, measured (no machine)", codec_total),
        ("attribute_value + meter_name + Reading (the mapping complete_get adds)", mapping),
        ("meterlink DlmsClient round trip, measured", machine_total),
        ("machine overhead: DlmsClient minus codec steps minus mapping", machine_total - codec_sum - mapping),
        ("one trivial machine event: send('noise') between frames (internal self-transition, one counter)", event),
    ]

    request = cosem_frames.InformationFrame(CO_SERVER, CO_CLIENT, REQ_INFORMATION, send_sequence_number=1, receive_sequence_number=1)
    cosem_apdu = bytes(cosem_frames.InformationFrame.from_bytes(SEED_GET_RESPONSE).payload[3:])
    cosem_data = cosem_xdlms.GetResponseNormal.from_bytes(cosem_apdu).data

    def co_apdu() -> bytes:
        return cosem_xdlms.GetRequestNormal(CO_ATTRIBUTE, invoke_id_and_priority=CO_INVOKE).to_bytes()

    co_total = best(CoSansIoRoundTrip().run, 2000)
    co_steps = [
        ("GetRequestNormal(attribute).to_bytes() (APDU encode)", best(loop(co_apdu), 5000)),
        ("InformationFrame(...).to_bytes() (HDLC encode, HCS + FCS)", best(loop(request.to_bytes), 5000)),
        ("InformationFrame.from_bytes(response) (HDLC decode, HCS + FCS)",
         best(loop(lambda: cosem_frames.InformationFrame.from_bytes(SEED_GET_RESPONSE)), 5000)),
        ("XDlmsApduFactory.apdu_from_bytes (GET-Response-Normal)", best(loop(lambda: XDlmsApduFactory.apdu_from_bytes(cosem_apdu)), 5000)),
        ("parse_as_dlms_data (A-XDR value)", best(loop(lambda: parse_as_dlms_data(cosem_data)), 5000)),
    ]
    co_sum = sum(micros for _, micros in co_steps)
    co_steps += [
        ("steps together", co_sum),
        ("dlms-cosem sans-IO round trip, measured", co_total),
        ("connections' overhead (round trip minus the steps: states, buffers, N(S)/N(R), frame search)", co_total - co_sum),
    ]
    return ml_steps, co_steps


def profile() -> str:
    variant = MlMachineRoundTrip()
    profiler = cProfile.Profile()
    profiler.runcall(variant.run, 2000)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def machine_info() -> list[tuple[str, str]]:
    source = Path(parse_frame.__code__.co_filename).resolve().parents[2]
    paths = ["meterlink/protocols/hdlc.py", "meterlink/protocols/crc.py", "meterlink/protocols/dlms",
             "meterlink/machines/dlms.py", "meterlink/machines/hdlc_station.py", "meterlink/machines/base.py"]
    return describe(source, paths, ("meterlink", "dlms-cosem", "python-statemachine"))


VARIANTS: list[tuple[str, str, str, Callable[[], Callable[[int], int]]]] = [
    # (group, variant, what one iteration is, factory of run(n))
    ("frame decode", "meterlink parse_frame", "23-byte GET-response frame -> Frame", lambda: ml_parse),
    ("frame decode", "meterlink HdlcFramer.feed", "23-byte GET-response frame -> Frame, Quiet", lambda: ml_framer),
    ("frame decode", "dlms-cosem InformationFrame.from_bytes", "23-byte GET-response frame -> InformationFrame", lambda: co_decode),
    ("frame encode", "meterlink Frame.to_bytes", "GET-request fields -> 27 bytes", lambda: ml_encode),
    ("frame encode", "dlms-cosem InformationFrame.to_bytes", "GET-request fields -> 27 bytes", lambda: co_encode),
    ("encode + decode", "meterlink Frame.to_bytes + parse_frame", "one request encoded + one response decoded", lambda: ml_encode_parse),
    ("encode + decode", "meterlink Frame.to_bytes + HdlcFramer.feed", "one request encoded + one response decoded", lambda: ml_encode_framer),
    ("encode + decode", "dlms-cosem to_bytes + from_bytes", "one request encoded + one response decoded", lambda: co_encode_decode),
    ("GET round trip", "meterlink DlmsClient (state machine)", "idle -> request bytes; response bytes -> Publish", lambda: MlMachineRoundTrip().run),
    ("GET round trip", "meterlink codec, no machine", "GetRequestNormal -> Frame -> bytes; framer -> parse_apdu -> value", lambda: MlCodecRoundTrip().run),
    ("GET round trip", "dlms-cosem DlmsConnection + HdlcConnection (sans-IO)", "GetRequestNormal -> bytes; bytes -> value", lambda: CoSansIoRoundTrip().run),
    ("GET round trip", "dlms-cosem DlmsClient.get (in-memory serial port)", "get(attribute) -> parse_as_dlms_data", lambda: CoClientRoundTrip().run),
    ("GET round trip", "Gurux GXDLMSClient read + getData + updateValue", "read(object, 2) -> request bytes; response bytes -> value", lambda: GxClientRoundTrip().run),
]
PAIRS = [(0, 2), (1, 2), (3, 4), (5, 7), (6, 7), (8, 10), (9, 10), (8, 11), (8, 12), (9, 12)]  # meterlink variant -> peer variant


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measurements per variant (default 7)")
    parser.add_argument("--seconds", type=float, default=0.25, help="length of one measurement (default 0.25 s)")
    parser.add_argument("--passes", type=int, default=7, help="passes of each step in the split of a round trip (default 7)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of the DlmsClient round trip")
    add_json_option(parser)
    options = parser.parse_args()
    started = time.perf_counter()
    cpu_started = time.process_time()
    info = machine_info()
    notes = verify()

    measurements = [repeat(factory(), options.seconds) for _, _, _, factory in VARIANTS]
    rates: list[list[float]] = [[] for _ in VARIANTS]
    # Each meterlink variant runs next to the dlms-cosem variant of its group, and the order flips
    # every round, so that load from other processes hits both sides alike.
    order = list(range(len(VARIANTS)))
    collections = sum(stats["collections"] for stats in gc.get_stats())
    for round_number in range(options.rounds):
        for index in order if round_number % 2 == 0 else order[::-1]:
            rates[index].append(measurements[index]())
    collections = sum(stats["collections"] for stats in gc.get_stats()) - collections - options.rounds * len(VARIANTS)
    ratios = {pair: [a / b for a, b in zip(rates[pair[0]], rates[pair[1]])] for pair in PAIRS}
    ml_steps, co_steps = split(options.passes)

    notes = [f"checked: {note}" for note in notes]
    notes.append(f"{options.rounds} rounds of {options.seconds:g} s per variant; iterations per second over the rounds; "
                 f"gc on, gc.collect() before each measurement, {collections} automatic collections during the measurements")
    rows = []
    for (group, name, unit, _), values in zip(VARIANTS, rates):
        median = statistics.median(values)
        rows.append([group, name, unit, f"{max(values):,.0f}", f"{median:,.0f}", f"{min(values):,.0f}", f"{1e6 / median:,.1f}"])
    throughput = Table("", ["group", "variant", "one iteration", "best /s", "median /s", "worst /s", "median µs"], rows, numeric=4)
    against = Table("meterlink / peer (target: 3x dlms-cosem):",
                    ["meterlink", "against", "best / best", "median / median", "median of per-round ratios",
                     "per-round range"],
                    [[VARIANTS[mine][1], VARIANTS[theirs][1], f"{max(rates[mine]) / max(rates[theirs]):.2f}x",
                      f"{statistics.median(rates[mine]) / statistics.median(rates[theirs]):.2f}x",
                      f"{statistics.median(values):.2f}x", f"{min(values):.2f}x-{max(values):.2f}x"]
                     for (mine, theirs), values in ratios.items()], numeric=4)
    where = [Table(f"Where the time of one GET round trip goes, µs, best of {options.passes} passes (each step alone in a loop):" if who == "meterlink" else "",
                   [f"{who} step", "µs"], [[label, f"{micros:,.1f}"] for label, micros in steps], numeric=1)
             for who, steps in (("meterlink", ml_steps), ("dlms-cosem", co_steps))]
    if options.profile and not options.json:
        print("cProfile, meterlink DlmsClient, 2000 round trips (sorted by own time)\n")
        print("```")
        print(profile())
        print("```\n")
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    notes.append(f"{wall:.1f} s wall, {cpu:.1f} s CPU (a CPU share well under 1 means the process was pushed off its core)")
    emit(Report("hdlc", f"HDLC / DLMS client benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", info, notes,
                [throughput, against, *where]), options.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
