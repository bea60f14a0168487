"""The image transfer actor and machine against the simulated meter's class 18 object, with every
fault it can inject (seed 002 ch. 3.8), on trio's MockClock; the HDLC segmentation of the long
ACTION requests with a segment or an RR lost; the class 18 decoders fuzzed."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from image_line import meter, transfer
from meterlink.machines.base import Resync, Send
from meterlink.machines.dlms import Answered, Association, DlmsClient, Invoke
from meterlink.machines.dlms_meter import DlmsMeter
from meterlink.machines.image_transfer import Image, Outcome
from meterlink.protocols.dlms import image as cls18
from meterlink.protocols.dlms.axdr import AxdrError, decode_data
from meterlink.protocols.dlms.xdlms import ActionResult
from meterlink.protocols.errors import ProtocolError
from meterlink.protocols.hdlc import FrameType, HdlcFramer, HdlcParameters, parse_frame
from meterlink.simulators.image_transfer import Faults

IDENTIFIER = b"50981040-Q2"


def image(size: int, seed: int = 1) -> Image:
    return Image(IDENTIFIER, random.Random(seed).randbytes(size))


class Spy:
    """Every request the actor hands a DLMS session and every answer, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[tuple[str, object]] = []
        request, complete = DlmsClient.request, DlmsClient.complete_get

        def spy_request(client: DlmsClient, ref) -> None:
            self.log.append(("request", ref))
            request(client, ref)

        def spy_complete(client: DlmsClient, apdu, received_at) -> None:
            complete(client, apdu, received_at)
            self.log += [("answer", a) for a in client.actions if isinstance(a, Answered)][-1:]

        monkeypatch.setattr(DlmsClient, "request", spy_request)
        monkeypatch.setattr(DlmsClient, "complete_get", spy_complete)

    def activations_follow_a_verification(self) -> bool:
        """Each image_activate comes after a verification the meter reported successful (image_verify
        success or image_transfer_status 3), with no initiate or block in between."""
        verified = False
        for kind, item in self.log:
            if kind == "request" and isinstance(item, Invoke):
                if item.method.method in (cls18.INITIATE, cls18.BLOCK_TRANSFER):
                    verified = False
                elif item.method.method == cls18.ACTIVATE and not verified:
                    return False
            elif kind == "answer":
                answered = item.request
                if isinstance(answered, Invoke) and answered.method.method == cls18.VERIFY:
                    verified = verified or item.result is ActionResult.SUCCESS
                elif getattr(answered, "attribute", None) == cls18.STATUS and answered.class_id == 18:
                    verified = getattr(item.result, "value", None) == 3
        return True


def check_verdict(run, sent: Image) -> None:
    """The image active in the meter is exactly the one sent, or the machine failed and says why."""
    server = run.model.image
    if run.machine.outcome is Outcome.ACTIVE:
        assert server.activations[-1] == (sent.identifier, sent.data)
        assert run.machine.revision_after == IDENTIFIER.decode() != run.machine.revision_before
    else:
        assert run.machine.outcome is Outcome.FAILED and run.machine.reason
        assert all(activated == (sent.identifier, sent.data) for activated in server.activations)
    assert all(server.verified_before_activation)


@pytest.mark.parametrize(("faults", "outcome", "reason"), [
    (Faults(), Outcome.ACTIVE, None),
    (Faults(drop_blocks=frozenset({1, 7})), Outcome.ACTIVE, None),
    (Faults(busy_blocks=frozenset({0, 9})), Outcome.ACTIVE, None),
    (Faults(verify_fails=True), Outcome.FAILED, "verification of the image failed"),
    (Faults(activation_refusals=2), Outcome.ACTIVE, None),
    (Faults(activation_refusals=4), Outcome.FAILED, "image_activate did not start"),
    (Faults(activation_broken=True), Outcome.FAILED, "the new image is not active"),
    (Faults(reboot_seconds=60), Outcome.ACTIVE, None),
    (Faults(reboot_seconds=3600), Outcome.FAILED, "did not answer after 8 attempts"),
    (Faults(drop_link_after=5), Outcome.ACTIVE, None),
])
def test_every_fault_ends_with_the_image_sent_active_or_a_clear_failure(monkeypatch, faults, outcome, reason):
    spy = Spy(monkeypatch)
    sent = image(9500)
    run = transfer(sent, meter(faults))
    check_verdict(run, sent)
    assert run.machine.outcome is outcome and (reason is None or reason in run.machine.reason)
    assert spy.log and spy.activations_follow_a_verification()
    if faults.verify_fails:
        assert not any(kind == "request" and isinstance(item, Invoke) and item.method.method == cls18.ACTIVATE
                       for kind, item in spy.log)
    # Dropped and busy blocks are sent again, each exactly once more.
    again = faults.drop_blocks | faults.busy_blocks
    assert run.machine.blocks_resent == len(again) + (1 if faults.drop_link_after else 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 6000), block_size=st.sampled_from([100, 333, 985, 1000]), data=st.data())
def test_any_mix_of_faults(monkeypatch, size, block_size, data):
    count = cls18.block_count(size, block_size)
    blocks = st.frozensets(st.integers(0, count - 1), max_size=3)
    faults = Faults(drop_blocks=data.draw(blocks), busy_blocks=data.draw(blocks), verify_fails=data.draw(st.booleans()),
                    activation_refusals=data.draw(st.integers(0, 5)), activation_broken=data.draw(st.booleans()),
                    reboot_seconds=data.draw(st.sampled_from([1.0, 4.0, 45.0, 400.0])),
                    drop_link_after=data.draw(st.none() | st.integers(1, count + 2)))
    spy = Spy(monkeypatch)
    sent = image(size, seed=size)
    run = transfer(sent, meter(faults, block_size=block_size))
    check_verdict(run, sent)
    assert spy.activations_follow_a_verification()
    expected_fail = faults.verify_fails or faults.activation_refusals > 3 or faults.activation_broken or faults.reboot_seconds > 300
    assert (run.machine.outcome is Outcome.FAILED) == expected_fail


@pytest.mark.parametrize("seed", range(6))
def test_an_interrupted_transfer_resumes_without_resending_what_the_meter_holds(seed):
    sent = image(30_000, seed)
    model = meter()
    stop_after = random.Random(seed).randrange(1, 31)
    first = transfer(sent, model, interrupt_after_blocks=stop_after)
    assert first.machine.outcome is Outcome.INTERRUPTED and first.records and first.records[-1] is not None
    held = set(model.image.blocks)
    before = dict(model.image.received)
    assert held and len(held) < 31
    second = transfer(sent, model, record=first.records[-1])
    check_verdict(second, sent)
    assert second.machine.outcome is Outcome.ACTIVE and second.machine.counters["resumed"] == 1
    again = {n: model.image.received[n] - before.get(n, 0) for n in range(31)}
    assert all(again[n] == 0 for n in held)  # nothing the meter confirmed went again
    assert all(again[n] == 1 for n in range(31) if n not in held)
    assert sum(second.machine.sent.values()) == 31 - len(held)
    assert second.records[-1] is None  # the record is gone with the transfer


def test_without_the_record_a_partial_image_is_not_taken_for_ours():
    sent = image(20_000)
    model = meter()
    transfer(sent, model, interrupt_after_blocks=5)
    second = transfer(sent, model)
    assert second.machine.outcome is Outcome.ACTIVE and second.machine.counters["resumed"] == 0
    assert sum(second.machine.sent.values()) == 21


def test_the_reboot_wait_and_the_association_after_it_run_on_mockclock():
    """Activation started: the meter reboots 10 s later and is gone for 30 s; the client waits its
    12 s, then associates again with backoff until the meter answers. Trio's MockClock jumps over
    every wait: the test takes no wall-clock time for them."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    sent = image(3000)
    run = transfer(sent, meter(Faults(reboot_seconds=30)), clock=clock)
    check_verdict(run, sent)
    assert run.machine.outcome is Outcome.ACTIVE
    assert run.machine.entries["rebooting"] == 1 and run.machine.counters["reconnects"] >= 2
    assert run.seconds >= 10 + 30  # virtual seconds: the meter came back 40 s after activation started
    assert run.connections == 2 + run.machine.counters["reconnects"]


# -- HDLC segmentation of an image block --------------------------------------------------------


class Line:
    """A driven client and the simulated meter; frames move by hand so that one can be lost."""

    def __init__(self) -> None:
        model = meter()
        self.model = model
        self.client = DlmsClient(Association(password=b"12345"), driven=True)
        self.meter = DlmsMeter(model, supported=HdlcParameters(512, 128, 1, 1))
        self.client_codec, self.meter_codec = HdlcFramer(), HdlcFramer()
        self.to_meter: list[bytes] = []
        self.to_client: list[bytes] = []
        self.answers: list[Answered] = []
        self.collect()

    def collect(self) -> None:
        for action in self.client.take_actions():
            if isinstance(action, Send):
                self.to_meter.append(action.data)
            elif isinstance(action, Resync):
                self.client_codec.reset()
            elif isinstance(action, Answered):
                self.answers.append(action)
        for action in self.meter.take_actions():
            if isinstance(action, Send):
                self.to_client.append(action.data)

    def run(self) -> None:
        while self.to_meter or self.to_client:
            while self.to_meter:
                for event in self.meter_codec.feed(self.to_meter.pop(0)):
                    self.meter.handle(event)
                self.collect()
            while self.to_client:
                for event in self.client_codec.feed(self.to_client.pop(0)):
                    self.client.handle(event)
                self.collect()


def block_line() -> tuple[Line, int]:
    """Associated, initiated, and the first 985-byte block asked for: its first segment is out."""
    line = Line()
    line.client.send("connect")
    line.collect()
    line.run()
    line.client.request(Invoke(cls18.method(cls18.INITIATE), cls18.initiate_parameters(IDENTIFIER, 2000)))
    line.collect()
    line.run()
    block = bytes(range(256)) * 3 + bytes(217)
    line.client.request(Invoke(cls18.method(cls18.BLOCK_TRANSFER), cls18.block_parameters(0, block)))
    line.collect()
    return line, 1 + (3 + cls18.block_request_size(985) - 1) // 128


def test_a_block_longer_than_the_information_field_goes_in_segments_on_rr():
    line, segments = block_line()
    assert segments == 8 and line.client.parameters.max_info_tx == 128
    first = parse_frame(line.to_meter[0])
    assert first.segmented and len(first.information) == 128
    line.run()
    assert line.answers[-1].result is ActionResult.SUCCESS and line.model.image.received[0] == 1
    assert line.client.counters["frames_sent"] >= segments


def test_a_lost_segment_is_sent_again_after_the_response_timeout():
    line, _ = block_line()

    for _ in range(3):  # three segments arrive, the fourth is lost
        for event in line.meter_codec.feed(line.to_meter.pop(0)):
            line.meter.handle(event)
        line.collect()
        for event in line.client_codec.feed(line.to_client.pop(0)):
            line.client.handle(event)
        line.collect()
    lost = line.to_meter.pop(0)
    line.client.send("no_response")
    line.collect()
    assert line.to_meter == [lost] and line.client.counters["retries"] == 1
    line.run()
    assert line.answers[-1].result is ActionResult.SUCCESS and line.model.image.blocks[0][:3] == b"\x00\x01\x02"


def test_a_lost_rr_makes_the_meter_acknowledge_the_repeated_segment_again():
    line, _ = block_line()
    segment = line.to_meter.pop(0)
    for event in line.meter_codec.feed(segment):
        line.meter.handle(event)
    line.collect()
    assert parse_frame(line.to_client.pop(0)).kind is FrameType.RR  # lost on the way
    line.client.send("no_response")
    line.collect()
    assert line.to_meter == [segment]
    line.run()
    assert line.meter.counters["retries"] == 1 and line.meter.counters.get("out_of_sequence", 0) == 0
    assert line.answers[-1].result is ActionResult.SUCCESS and line.model.image.received[0] == 1


def test_a_driven_client_releases_when_asked():
    line = Line()
    line.client.send("connect")
    line.collect()
    line.run()
    assert line.client.associated.is_active
    line.client.release()
    line.collect()
    line.run()
    assert line.client.is_terminated


# -- decoders --------------------------------------------------------------------------------------


@given(st.binary(max_size=80))
def test_the_class_18_decoders_raise_only_protocol_errors(raw):
    try:
        value, _ = decode_data(raw)
    except AxdrError:
        return
    for decoder in (cls18.images_to_activate, cls18.transferred_blocks, cls18.status, cls18.enabled,
                    lambda v: cls18.unsigned(v, "x")):
        try:
            decoder(value)
        except ProtocolError:
            pass


def test_the_block_status_bit_string_is_numbered_from_the_first_bit():
    value = cls18.blocks_status({0, 9}, 10)
    assert value.value.data == bytes((0x80, 0x40)) and cls18.transferred_blocks(value) == (10, frozenset({0, 9}))
