"""One scenario per declared transition of ImageTransfer (seed 002 ch. 3.8), the machine alone: the
test plays the meter's answers. The last test runs them all again with a recorder and checks that
every transition was taken."""

from __future__ import annotations

import pytest

from harness import Recorder
from meterlink.machines import base, transition_keys
from meterlink.machines.dlms import Answered, Associated, Invoke
from meterlink.machines.image_transfer import (
    Connect,
    Image,
    ImageTransfer,
    Outcome,
    Record,
    Release,
    Request,
    TransferRecord,
)
from meterlink.protocols.dlms import image as cls18
from meterlink.protocols.dlms.axdr import Data, DataTag, array, octet_string
from meterlink.protocols.dlms.image import ImageToActivate
from meterlink.protocols.dlms.xdlms import ActionResult, DataAccessResult

DATA = bytes(range(256)) * 10  # 2560 bytes: three blocks of 1000
IMAGE = Image(b"50981040-Q2", DATA)
BLOCK = 1000
SUCCESS, TEMPORARY, REFUSED = ActionResult.SUCCESS, ActionResult.TEMPORARY_FAILURE, ActionResult.OTHER_REASON


def text(value: str) -> Data:
    return Data(DataTag.VISIBLE_STRING, value)


def status(value: int) -> Data:
    return Data(DataTag.ENUM, value)


def info(size: int = len(DATA), identification: bytes = IMAGE.identifier, signature: bytes = IMAGE.sha256) -> Data:
    return array(ImageToActivate(size, identification, signature).to_data())


class Meter:
    """The machine and what it asked for; the test answers as the meter would."""

    def __init__(self, **options) -> None:
        self.machine = ImageTransfer(IMAGE, meter="m", **options)
        self.actions: list = []

    def take(self) -> Meter:
        self.actions += self.machine.take_actions()
        return self

    def associate(self, max_pdu: int = 0x400) -> Meter:
        self.machine.handle(Associated(max_pdu, 128))
        return self.take()

    def answer(self, *results: object) -> Meter:
        for result in results:
            self.machine.handle(Answered(self.last_request(), result))  # type: ignore[arg-type]
            self.take()
        return self

    def send(self, event: str) -> Meter:
        self.machine.send(event)
        return self.take()

    def ended(self) -> Meter:
        self.machine.session_closed()
        return self.take()

    def last_request(self):
        return [a.ref for a in self.actions if isinstance(a, Request)][-1]

    def requests(self) -> list:
        return [a.ref for a in self.actions if isinstance(a, Request)]

    @property
    def state(self) -> str:
        return self.machine.state_name


def bits(count: int, *have: int) -> Data:
    return cls18.blocks_status(have, count)


def inspected(meter: Meter, enabled: bool = True, block_size: int = BLOCK, state: int = 0, blocks: Data | None = None) -> Meter:
    return meter.answer(Data(DataTag.BOOLEAN, enabled), cls18.u32(block_size), status(state), blocks or bits(0))


def started(**options) -> Meter:
    """Associated, revision read, transfer initiated: the first block is out."""
    meter = Meter(**options).associate().answer(text("50981040-Q1"))
    inspected(meter).answer(SUCCESS)
    assert meter.state == "sending"
    return meter


def sent(**options) -> Meter:
    """Every block accepted: the machine reads the block status."""
    meter = started(**options).answer(SUCCESS, SUCCESS, SUCCESS)
    assert meter.state == "checking"
    return meter


def verifying(**options) -> Meter:
    meter = sent(**options).answer(bits(3, 0, 1, 2))
    assert meter.state == "verifying"
    return meter


def at_info(**options) -> Meter:
    return verifying(**options).answer(SUCCESS)


def activating(**options) -> Meter:
    meter = at_info(**options).answer(info())
    assert meter.state == "activating"
    return meter


def rebooting(**options) -> Meter:
    meter = activating(**options).answer(SUCCESS)
    assert meter.state == "rebooting" and Release() in meter.actions
    return meter


def verdict(meter: Meter) -> tuple[Outcome | None, str | None]:
    return meter.machine.outcome, meter.machine.reason


# -- the whole way -------------------------------------------------------------------------------


def test_an_update_goes_from_initiate_to_the_confirmed_revision():
    meter = rebooting().ended().send("reconnect")
    assert meter.state == "associating" and meter.actions.count(Connect()) == 1
    meter.associate().answer(text("50981040-Q2"))
    assert verdict(meter) == (Outcome.ACTIVE, None) and meter.machine.is_terminated
    assert meter.machine.revision_after == "50981040-Q2" and meter.actions[-1] == Record(None)
    methods = [r.method.method for r in meter.requests() if isinstance(r, Invoke)]
    assert methods == [cls18.INITIATE, cls18.BLOCK_TRANSFER, cls18.BLOCK_TRANSFER, cls18.BLOCK_TRANSFER, cls18.VERIFY,
                       cls18.ACTIVATE]
    blocks = [r.parameters.value for r in meter.requests() if isinstance(r, Invoke) and r.method.method == cls18.BLOCK_TRANSFER]
    assert b"".join(b[1].value for b in blocks) == DATA and [b[0].value for b in blocks] == [0, 1, 2]


def test_an_expected_revision_must_match():
    meter = rebooting(expect_revision="50981040-Q2").ended().send("reconnect").associate().answer(text("50981040-Q3"))
    assert verdict(meter)[0] is Outcome.FAILED and "not the expected" in verdict(meter)[1]


def test_an_unchanged_revision_is_a_failure():
    meter = rebooting().ended().send("reconnect").associate().answer(text("50981040-Q1"))
    assert verdict(meter)[0] is Outcome.FAILED and "still '50981040-Q1'" in verdict(meter)[1]


def test_an_unreadable_revision_fails_before_anything_is_sent():
    meter = Meter().associate().answer(DataAccessResult.OBJECT_UNDEFINED)
    assert verdict(meter)[0] is Outcome.FAILED and "object-undefined" in verdict(meter)[1]
    assert not any(isinstance(r, Invoke) for r in meter.requests())


# -- inspecting ----------------------------------------------------------------------------------


def test_a_disabled_transfer_or_an_unseen_object_fails():
    meter = inspected(Meter().associate().answer(text("Q1")), enabled=False)
    assert verdict(meter)[0] is Outcome.FAILED and "not enabled" in verdict(meter)[1]
    meter = Meter().associate().answer(text("Q1"), DataAccessResult.OBJECT_UNDEFINED, DataAccessResult.OBJECT_UNDEFINED,
                                       DataAccessResult.OBJECT_UNDEFINED, DataAccessResult.OBJECT_UNDEFINED)
    assert verdict(meter)[0] is Outcome.FAILED and "cannot read image_transfer_enabled" in verdict(meter)[1]


def test_blocks_larger_than_the_meter_takes_fail_clearly():
    meter = inspected(Meter().associate(max_pdu=0x7D).answer(text("Q1")))
    assert verdict(meter)[0] is Outcome.FAILED and "APDUs of at most 125" in verdict(meter)[1]


def test_a_recorded_transfer_resumes_from_the_meters_blocks_without_initiating():
    record = TransferRecord("m", IMAGE.identifier, len(DATA), BLOCK)
    meter = inspected(Meter(record=record).associate().answer(text("Q1")), state=1, blocks=bits(3, 0, 2))
    assert meter.state == "sending" and meter.machine.counters["resumed"] == 1
    assert [r.method.method for r in meter.requests() if isinstance(r, Invoke)] == [cls18.BLOCK_TRANSFER]
    assert meter.last_request().parameters.value[0].value == 1


def test_a_resume_with_every_block_there_verifies():
    record = TransferRecord("m", IMAGE.identifier, len(DATA), BLOCK)
    meter = inspected(Meter(record=record).associate().answer(text("Q1")), state=1, blocks=bits(3, 0, 1, 2))
    assert meter.state == "verifying" and meter.machine.sent == {}


@pytest.mark.parametrize(("record", "state", "blocks"), [
    (None, 1, bits(3, 0)),  # no record: the partial image may be anyone's
    (TransferRecord("m", b"other", len(DATA), BLOCK), 1, bits(3, 0)),
    (TransferRecord("m", IMAGE.identifier, len(DATA), BLOCK), 1, bits(4, 0)),  # not ceil(size / block size) bits
    (TransferRecord("m", IMAGE.identifier, len(DATA), BLOCK), 0, bits(0)),
])
def test_a_transfer_that_is_not_ours_is_initiated_anew(record, state, blocks):
    meter = inspected(Meter(record=record).associate().answer(text("Q1")), state=state, blocks=blocks)
    assert meter.state == "initiating"


def test_a_recorded_transfer_being_verified_is_polled_and_a_verified_one_checked():
    record = TransferRecord("m", IMAGE.identifier, len(DATA), BLOCK)
    meter = inspected(Meter(record=record).associate().answer(text("Q1")), state=2)
    assert meter.state == "verification_wait"
    meter = inspected(Meter(record=record).associate().answer(text("Q1")), state=3)
    assert meter.state == "checking_info" and meter.machine.blocks == 3


# -- blocks and completeness ---------------------------------------------------------------------


def test_a_block_refused_for_now_is_sent_again_later_a_bounded_number_of_times():
    meter = started(temporary_retries=2).answer(TEMPORARY)
    assert meter.machine.sent == {0: 1, 1: 1}
    meter.answer(SUCCESS, SUCCESS)
    assert meter.state == "sending" and meter.machine.sent[0] == 2
    meter.answer(TEMPORARY)
    assert meter.state == "sending" and meter.machine.sent[0] == 3
    meter.answer(TEMPORARY)
    assert verdict(meter)[0] is Outcome.FAILED and "temporary-failure" in verdict(meter)[1]


def test_a_block_refused_fails():
    meter = started().answer(REFUSED)
    assert verdict(meter)[0] is Outcome.FAILED and "block 0 refused: other-reason" in verdict(meter)[1]


def test_an_initiate_refused_fails():
    meter = inspected(Meter().associate().answer(text("Q1"))).answer(ActionResult.READ_WRITE_DENIED)
    assert verdict(meter)[0] is Outcome.FAILED and "initiate refused" in verdict(meter)[1]


def test_missing_blocks_are_sent_again_then_verified():
    meter = sent().answer(bits(3, 0, 2))
    assert meter.state == "sending" and meter.last_request().parameters.value[0].value == 1
    meter.answer(SUCCESS, bits(3, 0, 1, 2))
    assert meter.state == "verifying" and meter.machine.blocks_resent == 1


def test_blocks_that_keep_missing_fail_after_the_rounds():
    meter = sent(check_rounds=1).answer(bits(3, 0, 2), SUCCESS, bits(3, 0, 2))
    assert verdict(meter)[0] is Outcome.FAILED and "still missing" in verdict(meter)[1]


def test_without_the_bit_string_the_first_block_not_transferred_is_asked():
    meter = sent().answer(DataAccessResult.READ_WRITE_DENIED)
    assert meter.last_request() == cls18.attribute(cls18.FIRST_NOT_TRANSFERRED)
    meter.answer(cls18.u32(1))
    assert meter.state == "sending" and meter.last_request().parameters.value[0].value == 1
    meter.answer(SUCCESS, cls18.u32(3))
    assert meter.state == "verifying"


def test_when_neither_tells_which_blocks_arrived_it_fails():
    meter = sent().answer(DataAccessResult.READ_WRITE_DENIED, DataAccessResult.READ_WRITE_DENIED)
    assert verdict(meter)[0] is Outcome.FAILED and "cannot tell which blocks" in verdict(meter)[1]


# -- verification --------------------------------------------------------------------------------


def test_a_verification_started_is_polled_until_it_succeeds():
    meter = verifying().answer(TEMPORARY)
    assert meter.state == "verification_wait" and meter.machine.pending_timeout() == (2.0, "poll")
    meter.send("poll").answer(status(2)).send("poll").answer(status(3))
    assert meter.state == "checking_info" and meter.machine.counters["associations"] == 1


def test_a_failed_verification_fails_and_nothing_is_activated():
    meter = verifying().answer(TEMPORARY).send("poll").answer(status(4))
    assert verdict(meter)[0] is Outcome.FAILED and "status 4" in verdict(meter)[1]
    assert not any(isinstance(r, Invoke) and r.method.method == cls18.ACTIVATE for r in meter.requests())


def test_a_verification_that_does_not_end_fails_after_the_polls():
    meter = verifying(max_polls=1).answer(TEMPORARY).send("poll").answer(status(2))
    assert verdict(meter)[0] is Outcome.FAILED and "did not end" in verdict(meter)[1]


def test_a_verification_that_could_not_start_fails():
    meter = verifying().answer(REFUSED)
    assert verdict(meter)[0] is Outcome.FAILED and "could not be started" in verdict(meter)[1]


@pytest.mark.parametrize("shown", [
    info(size=1), info(identification=b"other"), array(), Data(DataTag.NULL_DATA), DataAccessResult.OTHER_REASON,
])
def test_image_to_activate_info_must_show_the_image_sent(shown):
    meter = at_info().answer(shown)
    assert verdict(meter)[0] is Outcome.FAILED and "image_to_activate_info" in verdict(meter)[1]


def test_the_signature_is_compared_only_with_a_hash_named():
    meter = at_info().answer(info(signature=b"\x01\x02"))
    assert meter.state == "activating" and meter.machine.signature == b"\x01\x02"
    meter = at_info(signature_hash="sha256").answer(info(signature=b"\x01\x02"))
    assert verdict(meter)[0] is Outcome.FAILED and "SHA-256" in verdict(meter)[1]


# -- activation ------------------------------------------------------------------------------------


def test_an_activation_not_started_is_tried_again_with_backoff_then_given_up():
    meter = activating(activation_retries=2).answer(TEMPORARY)
    assert meter.state == "activation_wait" and meter.machine.pending_timeout() == (2.0, "retry")
    meter.send("retry").answer(TEMPORARY)
    assert meter.machine.pending_timeout() == (4.0, "retry")
    meter.send("retry").answer(TEMPORARY)
    assert verdict(meter)[0] is Outcome.FAILED and "after 3 attempts" in verdict(meter)[1]


def test_an_activation_refused_fails():
    meter = activating().answer(ActionResult.READ_WRITE_DENIED)
    assert verdict(meter)[0] is Outcome.FAILED and "image_activate refused" in verdict(meter)[1]


# -- the link --------------------------------------------------------------------------------------


def test_the_reboot_is_waited_out_before_associating_again():
    meter = rebooting()
    assert meter.machine.pending_timeout() == (12.0, "reconnect")
    meter.ended()
    assert meter.state == "rebooting"
    meter.send("reconnect").ended()
    assert meter.state == "reconnect_wait" and meter.machine.pending_timeout() == (2.0, "reconnect")
    meter.send("reconnect").ended().send("reconnect")
    assert meter.machine.pending_timeout() is None and meter.state == "associating"
    meter.ended()
    assert meter.machine.pending_timeout() == (8.0, "reconnect")


def test_a_link_lost_mid_transfer_associates_again_and_goes_on_from_the_meters_blocks():
    meter = started().answer(SUCCESS).ended()
    assert meter.state == "reconnect_wait"
    meter.send("reconnect").associate()
    assert meter.state == "inspecting"  # the revision is known already
    inspected(meter, state=1, blocks=bits(3, 0))
    assert meter.state == "sending" and meter.last_request().parameters.value[0].value == 1


def test_a_meter_that_does_not_come_back_fails():
    meter = Meter(reconnects=1).ended()
    assert meter.state == "reconnect_wait"
    meter.send("reconnect").ended()
    assert verdict(meter)[0] is Outcome.FAILED and "did not answer" in verdict(meter)[1]
    meter = started(reconnects=0).ended()
    assert verdict(meter)[0] is Outcome.FAILED


def test_ctrl_c_stops_and_keeps_the_partial_image():
    meter = started().send("interrupt")
    assert meter.machine.outcome is Outcome.INTERRUPTED and meter.actions[-1] == Release()
    assert Record(TransferRecord("m", IMAGE.identifier, len(DATA), BLOCK)) in meter.actions
    assert Record(None) not in meter.actions


# -- every transition ------------------------------------------------------------------------------


def test_the_scenarios_take_every_declared_transition():
    recorder = Recorder()
    base.observers.append(recorder)
    try:
        for name, function in sorted(globals().items()):
            if name.startswith("test_") and name != "test_the_scenarios_take_every_declared_transition":
                for arguments in _cases(function):
                    function(**arguments)
    finally:
        base.observers.remove(recorder)
    missing = [str(key) for key in transition_keys(ImageTransfer) if key not in recorder.taken]
    assert missing == [], missing


def _cases(function) -> list[dict]:
    cases: list[dict] = [{}]
    for mark in getattr(function, "pytestmark", []):
        names, values = mark.args
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        rows = [dict(zip(names, value if len(names) > 1 else (value,))) for value in values]
        cases = [{**case, **row} for case in cases for row in rows]
    return cases
