"""One scenario per declared transition of DlmsClient and DlmsMeter (seed 002 ch. 2 and 4), each
with what it must send and report; the last test runs them all again with a recorder and checks
that every transition of both machines was taken."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from harness import Recorder
from meterlink.machines import base, transition_keys
from parametrized import cases
from meterlink.machines.base import Dropped, Publish, Resync, Send
from meterlink.machines.dlms import Association, DlmsClient, Framing
from meterlink.machines.dlms_meter import DlmsMeter
from meterlink.protocols.dlms.acse import Aarq, ReleaseRequest
from meterlink.protocols.dlms.objects import KAMSTRUP_CLOCK, AttributeRef, range_access
from meterlink.protocols.dlms.xdlms import (
    AttributeDescriptor,
    DataAccessResult,
    ExceptionResponse,
    GetRequestNormal,
    GetResponseNormal,
    GetResponseWithDataBlock,
)
from meterlink.protocols.framing import BadFrame, Noise
from meterlink.protocols.hdlc import (
    LLC_REQUEST,
    LLC_RESPONSE,
    Address,
    Control,
    Frame,
    FrameType,
    HdlcFramer,
    HdlcParameters,
    Partial,
    Quiet,
    parse_frame,
)
from meterlink.protocols.wrapper import WrapperFrame, WrapperFramer
from meterlink.simulators.kamstrup import KamstrupMeterModel

NOW = datetime(2026, 11, 29, 12, 7, 30)
PASSWORD = b"lls-secret"
METER_NUMBER = AttributeRef.parse("1:1.1.0.0.1.255:2")
PROFILE = dataclasses.replace(
    AttributeRef.parse("7:1.1.99.1.0.255:2"),
    access=range_access(AttributeDescriptor(8, KAMSTRUP_CLOCK, 2), datetime(2026, 11, 29, 6), datetime(2026, 11, 29, 11)),
)
CLIENT, SERVER = Address.client(18), Address.server(16)
SMALL = HdlcParameters(40, 24, 1, 1)
"""A meter that sends 40 and takes 24 bytes an information field: both sides segment."""


class Line:
    """A client and a simulated meter; the test moves every frame between them by hand."""

    def __init__(self, association: Association = Association(password=PASSWORD), reads=(METER_NUMBER,),
                 poll_interval: float | None = None, **meter) -> None:
        self.hdlc = association.framing is Framing.HDLC
        self.client = DlmsClient(association, reads, poll_interval)
        self.meter = DlmsMeter(KamstrupMeterModel(password=PASSWORD, wallclock=lambda: NOW), **meter)
        codec = HdlcFramer if self.hdlc else WrapperFramer
        self.client_codec, self.meter_codec = codec(), codec()
        self.to_meter: list[bytes] = []
        self.to_client: list[bytes] = []
        self.client_actions: list = []
        self.meter_actions: list = []

    def collect(self) -> Line:
        for action in self.client.take_actions():
            self.client_actions.append(action)
            if isinstance(action, Send):
                self.to_meter.append(action.data)
            elif isinstance(action, Resync):
                self.client_codec.reset()
        for action in self.meter.take_actions():
            self.meter_actions.append(action)
            if isinstance(action, Send):
                self.to_client.append(action.data)
            elif isinstance(action, Resync):
                self.meter_codec.reset()
        return self

    def fire(self, event: str, on_meter: bool = False) -> Line:
        (self.meter if on_meter else self.client).send(event)
        return self.collect()

    def feed_client(self, data: bytes) -> Line:
        for event in self.client_codec.feed(data):
            self.client.handle(event, 7.0)
        return self.collect()

    def feed_meter(self, data: bytes) -> Line:
        for event in self.meter_codec.feed(data):
            self.meter.handle(event)
        return self.collect()

    def meter_takes(self, count: int = 1) -> Line:
        """The meter receives the next `count` frames the client sent."""
        for _ in range(count):
            self.feed_meter(self.to_meter.pop(0))
        return self

    def client_takes(self, count: int = 1) -> Line:
        for _ in range(count):
            self.feed_client(self.to_client.pop(0))
        return self

    def exchange(self, rounds: int = 1) -> Line:
        """`rounds` times: the meter takes everything sent to it, then the client everything back."""
        for _ in range(rounds):
            while self.to_meter:
                self.meter_takes()
            while self.to_client:
                self.client_takes()
        return self

    def run(self) -> Line:
        """Exchange frames until nothing is in flight."""
        while self.to_meter or self.to_client:
            self.exchange()
        return self

    def until(self, state: str) -> Line:
        """Exchange frames until the client is in `state` (one region's leaf)."""
        for _ in range(60):
            if state in self.client.state_name.split(","):
                return self
            if self.to_meter:
                self.meter_takes()
            elif self.to_client:
                self.client_takes()
            else:
                break
        raise AssertionError(f"the client did not reach {state}: {self.client.state_name}")

    def drops(self, of_meter: bool = False) -> list[str]:
        return [a.cause for a in (self.meter_actions if of_meter else self.client_actions) if isinstance(a, Dropped)]

    def readings(self) -> list:
        return [a.reading for a in self.client_actions if isinstance(a, Publish)]

    def sent(self) -> list[Frame]:
        """What the client has sent so far, as frames (HDLC)."""
        return [parse_frame(a.data) for a in self.client_actions if isinstance(a, Send)]


def started(**options) -> Line:
    return Line(**options).fire("connect")


def in_state(state: str, **options) -> Line:
    line = started(**options)
    if state != "snrm_sent":
        line.until(state)
    return line


def meter_frame(kind: FrameType, ns: int = 0, nr: int = 0, information: bytes = b"", segmented: bool = False,
                to: Address = CLIENT) -> bytes:
    return Frame(to, SERVER, Control(kind, True, ns, nr), information, segmented).to_bytes()


def answer(line: Line, apdu: bytes) -> bytes:
    """An I-frame from the meter carrying `apdu`, in sequence with what the client sent last."""
    last = parse_frame(line.to_meter[-1]).control
    return meter_frame(FrameType.I, last.receive_sequence, (last.send_sequence + 1) % 8, LLC_RESPONSE + apdu)


# -- the client: connecting ------------------------------------------------------------------------


def test_connect_sends_the_seeds_snrm_and_ua_connects():
    line = started()
    assert line.to_meter == [bytes.fromhex("7EA0202125939E0881801405020200060202000704000000010804000000016FEF7E")]
    line.exchange()
    assert line.client.state_name == "aarq_sent,quiet" and line.client.parameters.max_info_tx == 128


def test_the_wrapper_associates_at_once_and_releases_with_rlrq():
    line = started(association=Association(password=PASSWORD, framing=Framing.WRAPPER))
    aarq = Association(password=PASSWORD).aarq().to_bytes()
    assert line.client.state_name == "aarq_sent,quiet" and line.to_meter == [WrapperFrame(18, 16, aarq).to_bytes()]
    line.run()
    assert line.client.is_terminated and [r.values[0].value for r in line.readings()] == [12345679]
    assert line.meter.state_name == "nrm,quiet" and line.meter.counters["associations"] == 1


@pytest.mark.parametrize(("kind", "cause"), [(FrameType.DM, "connection_refused"), (FrameType.FRMR, "frame_rejected")])
def test_dm_or_frmr_to_snrm_ends_the_session(kind, cause):
    line = started().feed_client(meter_frame(kind))
    assert line.drops() == [cause, "get_failed"] and line.client.is_terminated and len(line.to_meter) == 1


@pytest.mark.parametrize("state", ["snrm_sent", "aarq_sent", "awaiting_response", "disc_sent"])
def test_no_answer_sends_the_same_frame_three_times_more_then_gives_up(state):
    line = in_state(state)
    waiting = line.to_meter[-1]
    for _ in range(3):
        line.fire("no_response")
        assert line.to_meter[-1] == waiting and line.client.state_name.startswith(state)
    line.fire("no_response")
    assert line.to_meter.count(waiting) == 4 and line.client.is_terminated
    assert line.drops()[0] == "no_response" and line.client.counters["retries"] == 3


def test_the_wrapper_gives_up_on_an_unanswered_release():
    line = in_state("rlrq_sent", association=Association(password=PASSWORD, framing=Framing.WRAPPER))
    line.fire("no_response").fire("no_response").fire("no_response").fire("no_response")
    assert line.drops() == ["no_response"] and line.client.is_terminated


# -- the client: associating -----------------------------------------------------------------------


def test_an_aare_in_hdlc_segments_is_joined_with_rr():
    line = in_state("aarq_sent", supported=SMALL).until("awaiting_response")
    received = [parse_frame(a.data) for a in line.meter_actions if isinstance(a, Send)]
    aare_segments = [f for f in received if f.kind is FrameType.I]
    assert len(aare_segments) == 2 and aare_segments[0].segmented and not aare_segments[1].segmented
    assert line.client.initiate is not None


def test_an_aarq_in_hdlc_segments_goes_piece_by_piece_on_rr():
    line = started(supported=SMALL).exchange()
    first = parse_frame(line.to_meter[-1])
    assert first.segmented and len(first.information) == 24
    line.meter_takes()
    assert parse_frame(line.to_client[-1]).kind is FrameType.RR
    line.client_takes()
    assert len(parse_frame(line.to_meter[-1]).information) <= 24 and line.client.state_name == "aarq_sent,quiet"


@pytest.mark.parametrize("state", ["aarq_sent", "awaiting_response"])
def test_an_i_frame_out_of_sequence_is_dropped(state):
    line = in_state(state)
    line.feed_client(meter_frame(FrameType.I, 5, 5, LLC_RESPONSE + GetResponseNormal(DataAccessResult.SUCCESS).to_bytes()))
    assert line.drops() == ["out_of_sequence"] and line.client.state_name.startswith(state)


def test_an_apdu_that_does_not_answer_the_aarq_is_dropped():
    line = in_state("aarq_sent")
    line.feed_client(answer(line, GetResponseNormal(DataAccessResult.SUCCESS).to_bytes()))
    assert line.drops() == ["unexpected_apdu"] and line.client.state_name == "aarq_sent,quiet"


def test_a_refused_association_is_released_with_disc():
    line = in_state("aarq_sent", association=Association(password=b"wrong"))
    line.exchange()
    assert line.drops() == ["association_refused", "get_failed"] and line.client.state_name == "disc_sent,quiet"
    line.exchange()
    assert line.client.is_terminated


def test_a_refused_wrapper_association_ends_at_once():
    line = started(association=Association(password=b"wrong", framing=Framing.WRAPPER)).exchange()
    assert line.drops() == ["association_refused", "get_failed"] and line.client.is_terminated


@pytest.mark.parametrize("state", ["aarq_sent", "awaiting_response"])
@pytest.mark.parametrize(("kind", "counter"), [(FrameType.RR, "receive_ready"), (FrameType.RNR, "receiver_busy")])
def test_rr_or_rnr_without_segments_waiting_is_counted(state, kind, counter):
    line = in_state(state)
    line.feed_client(meter_frame(kind, nr=line.client._send_sequence))
    assert line.client.counters[counter] == 1 and line.client.state_name.startswith(state) and not line.drops()


@pytest.mark.parametrize(("state", "cause"), [("aarq_sent", "disconnected_mode"), ("awaiting_response", "disconnected_mode"),
                                               ("disc_sent", None)])
def test_dm_ends_the_session(state, cause):
    line = in_state(state).feed_client(meter_frame(FrameType.DM))
    assert line.client.is_terminated
    assert line.drops()[:1] == ([cause] if cause else [])


@pytest.mark.parametrize("state", ["aarq_sent", "awaiting_response"])
def test_frmr_is_answered_with_disc(state):
    line = in_state(state).feed_client(meter_frame(FrameType.FRMR, information=b"\x10\x00\x01"))
    assert line.drops()[0] == "frame_rejected" and line.client.state_name == "disc_sent,quiet"
    assert parse_frame(line.to_meter[-1]).kind is FrameType.DISC


def test_frmr_to_disc_ends_the_session():
    line = in_state("disc_sent").feed_client(meter_frame(FrameType.FRMR))
    assert line.client.is_terminated and line.drops() == []


# -- the client: reading ---------------------------------------------------------------------------


def test_a_profile_in_blocks_is_fetched_with_get_request_next():
    line = started(reads=(PROFILE,)).run()
    (reading,) = line.readings()
    assert len(reading.values[0].value) == 21 and line.client.counters["requests"] == 1
    assert line.meter.counters["requests"] == 3  # the GET and two GET-request-next


def test_a_profile_in_hdlc_segments_is_joined_with_rr():
    line = started(reads=(PROFILE,), block_transfer=False).run()
    (reading,) = line.readings()
    assert len(reading.values[0].value) == 21
    segments = [f for f in meter_sent(line) if f.kind is FrameType.I and f.segmented]
    assert segments and [f.kind for f in line.sent()].count(FrameType.RR) == len(segments)


def test_a_long_request_goes_in_segments_on_rr():
    line = started(reads=(PROFILE,), supported=SMALL).until("awaiting_response")
    assert parse_frame(line.to_meter[-1]).segmented
    line.run()
    assert len(line.readings()) == 1 and line.client.is_terminated


def test_an_apdu_that_does_not_answer_the_get_is_dropped():
    line = in_state("awaiting_response")
    line.feed_client(answer(line, GetResponseWithDataBlock(False, 7, b"\x00").to_bytes()))
    assert line.drops() == ["unexpected_apdu"] and line.client.state_name == "awaiting_response,quiet"


def test_polling_keeps_the_association_and_polls_when_idle():
    line = started(poll_interval=5.0).until("associated")
    assert len(line.readings()) == 1 and line.client.active_timeouts()[0][1] == 5.0
    line.fire("idle").exchange()
    assert len(line.readings()) == 2 and line.client.state_name == "associated,quiet"
    assert [f.kind for f in line.sent()].count(FrameType.SNRM) == 1


def test_polling_rarely_associates_each_time():
    line = started(poll_interval=60.0).until("disconnected")
    assert len(line.readings()) == 1 and line.client.active_timeouts()[0][1] == 60.0
    line.fire("connect").until("disconnected")
    assert len(line.readings()) == 2 and [f.kind for f in line.sent()].count(FrameType.SNRM) == 2


def test_a_round_cut_short_publishes_what_it_read():
    line = started(reads=(METER_NUMBER, PROFILE), poll_interval=5.0)
    profile_get = GetRequestNormal(PROFILE.descriptor, PROFILE.access).to_bytes()
    while not any(isinstance(a, Send) and profile_get in a.data for a in line.client_actions):
        line.meter_takes() if line.to_meter else line.client_takes()
    line.fire("link_lost")  # the profile's GET is on its way
    (reading,) = line.readings()
    assert [v.obis for v in reading.values] == ["1-1:0.0.1.255"] and line.drops() == ["get_failed"]


def test_the_meter_forgetting_the_connection_is_answered_with_dm():
    line = started(poll_interval=5.0).until("associated")
    line.fire("inactivity", on_meter=True).fire("idle").exchange()
    assert line.drops() == ["disconnected_mode", "get_failed"] and line.client.state_name == "disconnected,quiet"


def test_a_wrapper_frame_to_another_port_or_out_of_turn_is_stray():
    line = started(association=Association(password=PASSWORD, framing=Framing.WRAPPER))
    line.feed_client(WrapperFrame(1, 18, b"\x61\x00").to_bytes())
    line.feed_client(WrapperFrame(16, 18, GetResponseNormal(DataAccessResult.SUCCESS).to_bytes()).to_bytes())
    assert line.client.counters["stray_frames"] == 1 and line.drops() == ["unexpected_apdu"]
    line = in_state("rlrq_sent", association=Association(password=PASSWORD, framing=Framing.WRAPPER))
    line.feed_client(WrapperFrame(16, 18, GetResponseNormal(DataAccessResult.SUCCESS).to_bytes()).to_bytes())
    assert line.drops() == ["unexpected_apdu"] and line.client.state_name == "rlrq_sent,quiet"


# -- the client: the receiver region ----------------------------------------------------------------


def test_a_frame_in_pieces_is_inside_a_frame_until_it_ends():
    line = started()
    line.meter_takes()
    ua = line.to_client.pop()
    line.feed_client(ua[:5])
    assert line.client.state_name == "snrm_sent,receiving"
    line.feed_client(ua[5:20])
    assert line.client.state_name == "snrm_sent,receiving"
    line.feed_client(ua[20:])
    assert line.client.state_name == "aarq_sent,quiet"


def test_a_frame_that_stops_is_dropped_after_the_inter_octet_timeout():
    line = started()
    line.meter_takes()
    line.feed_client(line.to_client.pop()[:9]).fire("inter_octet_timeout")
    assert line.drops() == ["stalled_frame"] and line.client.state_name == "snrm_sent,quiet"
    assert any(isinstance(a, Resync) for a in line.client_actions)


@pytest.mark.parametrize("inside", [False, True])
def test_noise_bad_and_stray_frames_are_counted_in_either_receiver_state(inside):
    line = started()
    if inside:
        line.feed_client(meter_frame(FrameType.UA)[:4])
    line.client.handle(BadFrame("FCS does not match", 1))
    line.client.handle(Partial(4) if inside else Quiet())
    line.client.handle(Noise(3))
    line.client.handle(Frame(Address.client(99), SERVER, Control(FrameType.UA)))
    line.collect()
    assert line.client.counters["stray_frames"] == 1 and line.client.counters["noise_bytes"] >= 1
    assert "bad_frame" in line.drops()


def test_link_lost_abandons_what_was_asked():
    line = in_state("awaiting_response").fire("link_lost")
    assert line.client.is_terminated and line.drops() == ["get_failed"] and not line.client.pending_reads


# -- the meter ------------------------------------------------------------------------------------


def client_frame(kind: FrameType, ns: int = 0, nr: int = 0, information: bytes = b"", to: Address = SERVER) -> bytes:
    return Frame(to, CLIENT, Control(kind, True, ns, nr), information).to_bytes()


def meter_sent(line: Line) -> list[Frame]:
    return [parse_frame(a.data) for a in line.meter_actions if isinstance(a, Send)]


@pytest.mark.parametrize(("kind", "answer_kind"), [(FrameType.DISC, FrameType.DM), (FrameType.I, FrameType.DM),
                                                   (FrameType.RR, FrameType.DM)])
def test_a_disconnected_meter_answers_dm(kind, answer_kind):
    line = Line().feed_meter(client_frame(kind, information=LLC_REQUEST + ReleaseRequest().to_bytes() if kind is FrameType.I else b""))
    assert [f.kind for f in meter_sent(line)] == [answer_kind] and line.meter.state_name == "ndm,quiet"


@pytest.mark.parametrize("state", ["nrm", "associated"])
def test_snrm_reconnects_and_disc_disconnects(state):
    line = meter_in(state)
    line.feed_meter(client_frame(FrameType.SNRM, information=HdlcParameters(512, 512).to_bytes()))
    assert meter_sent(line)[-1].kind is FrameType.UA and line.meter.state_name == "nrm,quiet"
    line = meter_in(state).feed_meter(client_frame(FrameType.DISC))
    assert meter_sent(line)[-1].kind is FrameType.UA and line.meter.state_name == "ndm,quiet"


def meter_in(state: str, **options) -> Line:
    """A meter connected ("nrm": UA sent) or associated ("associated": AARE sent and received)."""
    line = started(**options)
    line.meter_takes().client_takes()
    if state == "associated":
        line.meter_takes().client_takes()
    assert line.meter.state_name.startswith(state)
    return line


@pytest.mark.parametrize("password", [PASSWORD, b"wrong"])
def test_a_repeated_aarq_gets_the_same_aare_again(password):
    """The client did not receive the AARE and sends its AARQ again (same N(S), N(R) behind): the
    meter, associated or not, answers the same again instead of taking it for a new request."""
    line = started(association=Association(password=password))
    line.meter_takes().client_takes().meter_takes()
    aarq = next(a.data for a in line.client_actions if isinstance(a, Send) and parse_frame(a.data).kind is FrameType.I)
    aare = line.to_client.pop()
    line.feed_meter(aarq)
    assert line.to_client == [aare] and line.meter.counters["retries"] == 1
    assert line.meter.state_name == ("associated,quiet" if password == PASSWORD else "nrm,quiet")


@pytest.mark.parametrize("state", ["nrm", "associated"])
def test_the_meter_repeats_when_the_client_asks_with_rr(state):
    line = meter_in(state)
    answered = [a.data for a in line.meter_actions if isinstance(a, Send)][-1]
    behind = (line.meter._send_sequence - 1) % 8
    line.feed_meter(client_frame(FrameType.RR, nr=behind))
    assert [a.data for a in line.meter_actions if isinstance(a, Send)][-1] == answered
    line.feed_meter(client_frame(FrameType.RR, nr=line.meter._send_sequence))
    assert meter_sent(line)[-1].kind is FrameType.RR


@pytest.mark.parametrize("state", ["nrm", "associated"])
def test_the_meter_drops_an_i_frame_out_of_sequence(state):
    line = meter_in(state).feed_meter(client_frame(FrameType.I, 5, 0, LLC_REQUEST + b"\xc0"))
    assert line.drops(of_meter=True) == ["out_of_sequence"]


def test_the_meter_joins_segments_and_answers_in_segments():
    line = started(supported=SMALL, reads=(PROFILE,), block_transfer=False).run()
    assert len(line.readings()) == 1 and line.client.is_terminated
    assert line.meter.counters["frames_sent"] > 10


def test_a_refused_association_goes_out_in_segments_too():
    line = started(association=Association(password=b"wrong"), supported=HdlcParameters(16, 128, 1, 1)).run()
    refusal = [f for f in meter_sent(line) if f.kind is FrameType.I]
    assert len(refusal) == 2 and refusal[0].segmented and line.drops()[0] == "association_refused"


def test_a_get_before_the_association_gets_an_exception_response():
    line = meter_in("nrm")
    get = GetRequestNormal(METER_NUMBER.descriptor).to_bytes()
    line.feed_meter(client_frame(FrameType.I, line.meter._receive_sequence, line.meter._send_sequence, LLC_REQUEST + get))
    assert meter_sent(line)[-1].information[3:] == ExceptionResponse(1, 1).to_bytes()  # type: ignore[arg-type]


@pytest.mark.parametrize("password", [PASSWORD, b"wrong"])
def test_an_aarq_while_associated_associates_again_or_drops_the_association(password):
    line = meter_in("associated")
    aarq = Association(password=password).aarq().to_bytes()
    line.feed_meter(client_frame(FrameType.I, line.meter._receive_sequence, line.meter._send_sequence, LLC_REQUEST + aarq))
    assert line.meter.state_name == ("associated,quiet" if password == PASSWORD else "nrm,quiet")


def test_rlrq_releases_the_association():
    line = meter_in("associated")
    rlrq = ReleaseRequest().to_bytes()
    line.feed_meter(client_frame(FrameType.I, line.meter._receive_sequence, line.meter._send_sequence, LLC_REQUEST + rlrq))
    assert line.meter.state_name == "nrm,quiet" and meter_sent(line)[-1].information[3:4] == b"\x63"


@pytest.mark.parametrize("state", ["nrm", "associated"])
def test_inactivity_drops_the_connection_silently(state):
    line = meter_in(state)
    sent = len(line.meter_actions)
    line.fire("inactivity", on_meter=True)
    assert line.meter.state_name == "ndm,quiet" and len(line.meter_actions) == sent
    assert line.meter.counters["inactivity_timeouts"] == 1


def test_a_wrapper_meter_opens_on_the_first_frame():
    line = Line(association=Association(password=PASSWORD, framing=Framing.WRAPPER))
    aarq = Association(password=PASSWORD).aarq().to_bytes()
    line.feed_meter(WrapperFrame(18, 16, aarq).to_bytes())
    assert line.meter.state_name == "associated,quiet"
    line.feed_meter(WrapperFrame(19, 16, aarq).to_bytes())
    assert line.meter.counters["stray_frames"] == 1


@pytest.mark.parametrize("inside", [False, True])
def test_the_meters_receiver_region(inside):
    line = Line()
    if inside:
        line.feed_meter(client_frame(FrameType.SNRM)[:4])
        assert line.meter.state_name == "ndm,receiving"
    line.meter.handle(BadFrame("FCS", 1))
    line.meter.handle(Noise(2))
    line.meter.handle(Frame(Address.server(5), CLIENT, Control(FrameType.SNRM)))
    line.meter.handle(Partial(3))
    line.meter.send("inter_octet_timeout")
    line.meter.handle(Quiet())
    line.meter.handle(Partial(5))
    line.meter.handle(Quiet())
    line.collect()
    assert line.meter.state_name == "ndm,quiet"
    assert line.drops(of_meter=True) == ["bad_frame", "stalled_frame"] and line.meter.counters["stray_frames"] == 1
    line.meter.send("link_lost")
    assert line.meter.is_terminated


# -- every transition ----------------------------------------------------------------------------


def test_the_scenarios_take_every_declared_transition():
    recorder = Recorder()
    base.observers.append(recorder)
    try:
        for name, function in sorted(globals().items()):
            if name.startswith("test_") and name != "test_the_scenarios_take_every_declared_transition":
                for arguments in cases(function):
                    function(**arguments)
    finally:
        base.observers.remove(recorder)
    for machine in (DlmsClient, DlmsMeter):
        missing = [str(key) for key in transition_keys(machine) if key not in recorder.taken]
        assert missing == [], missing


