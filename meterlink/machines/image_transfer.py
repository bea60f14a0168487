"""DLMS image transfer, the client's side (class 18, 0.0.44.0.0.255; seed 002 ch. 3.8, Blue Book 4.4.6).

The machine drives a DLMS client session (machines.dlms, `driven=True`): it asks for one GET or
ACTION at a time (`Request`), hears each answer, and asks for a new session (`Connect`) after the
link was lost or the meter rebooted. Steps 1-3, which the seed's conversion lost, follow the Blue
Book: read image_transfer_enabled and image_block_size, invoke image_transfer_initiate with the
identifier and size, then image_block_transfer for every block. Step 4 checks completeness by
image_transferred_blocks_status (or, where the meter cannot give it, by
image_first_not_transferred_block_number) and sends what is missing. Step 5 invokes image_verify:
temporary-failure means the verification started (status 2), so the machine polls
image_transfer_status until 3 or 4. Step 6 reads image_to_activate_info: size and identification
must be the image sent; the signature is compared only when the caller names its hash (the seed
names no algorithm). Step 7 invokes image_activate: success means activation started (status 6,
the meter reboots after 10 s and is unreachable meanwhile), temporary-failure that it did not
start (status 7), retried a bounded number of times with backoff. After the reboot the machine
associates again with backoff and confirms the new software revision.

Invoking initiate again or writing image_block_size cancels a transfer, so after a lost link, or
with a record of an earlier run, a transfer the meter still holds (status 1, as many bits as blocks)
is resumed from the meter's block status without initiating again. Activation only ever follows
a verification the meter reported successful.
"""

from __future__ import annotations

import enum
import hashlib
from collections import Counter, deque
from dataclasses import dataclass, field

from statemachine import State

from ..protocols.dlms import image as cls18
from ..protocols.dlms.axdr import Data, DataTag
from ..protocols.dlms.image import ImageToActivate, TransferStatus
from ..protocols.dlms.objects import DATA, AttributeRef
from ..protocols.dlms.xdlms import ActionResult, DataAccessResult
from ..protocols.errors import ProtocolError
from ..protocols.obis import Obis
from .base import LinkMachine, StateTimeout
from .dlms import Answered, Associated, Invoke
from .safety import Safety

SOFTWARE_REVISION = AttributeRef(DATA, Obis(1, 1, 0, 2, 0, 255), 2)
"""Kamstrup's SoftwareNumberRevisionAscii (seed 002 ch. 2, table 2-2: "50981040-Q1")."""


@dataclass(frozen=True)
class Image:
    """What is sent: the identifier given to image_transfer_initiate, and the bytes."""

    identifier: bytes
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


@dataclass(frozen=True)
class TransferRecord:
    """What the client keeps beside the image between runs: the meter holds no identifier or size
    of a partial transfer before verification, so only this says the partial image is ours."""

    meter: str
    identifier: bytes
    size: int
    block_size: int

    def to_json(self) -> dict[str, object]:
        return {"meter": self.meter, "identifier": self.identifier.hex(), "size": self.size, "block_size": self.block_size}

    @classmethod
    def from_json(cls, data: object) -> TransferRecord:
        if not isinstance(data, dict):
            raise ValueError("a transfer record is a JSON object")
        try:
            return cls(str(data["meter"]), bytes.fromhex(str(data["identifier"])), int(data["size"]), int(data["block_size"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"a transfer record needs meter, identifier (hex), size, block_size: {error}") from None


@dataclass(frozen=True, slots=True)
class Request:
    """Ask the DLMS session for this GET or ACTION."""

    ref: AttributeRef | Invoke


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a new DLMS session (connect and associate)."""


@dataclass(frozen=True, slots=True)
class Release:
    """End the DLMS session."""


@dataclass(frozen=True, slots=True)
class Record:
    """Keep this record beside the image (None: remove it; the transfer is over)."""

    record: TransferRecord | None


ImageAction = Request | Connect | Release | Record


class Outcome(enum.Enum):
    ACTIVE = "active"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class Progress:
    """What a person watching the transfer sees."""

    state: str
    blocks: int
    confirmed: int
    sent: int
    resent: int
    bytes_sent: int
    image_size: int


@dataclass
class _Inspection:
    """What the machine read of the meter's image transfer object after associating."""

    enabled: bool | None = None
    block_size: int | None = None
    status: TransferStatus | None = None
    bits: tuple[int, frozenset[int]] | None = None


class ImageTransfer(LinkMachine):
    """Client side of a class 18 image transfer: one image to one meter, from initiate to the
    confirmed new revision."""

    class update(State.Compound, name="Image transfer"):
        associating = State("Associating", initial=True)
        reconnect_wait = State("Waiting to associate again")
        rebooting = State("Waiting out the meter's reboot")

        class session(State.Compound, name="Associated"):
            reading_revision = State("Reading the software revision", initial=True)
            inspecting = State("Reading enabled, block size, status, blocks")
            initiating = State("image_transfer_initiate invoked")
            sending = State("image_block_transfer invoked")
            checking = State("Reading which blocks arrived")
            verifying = State("image_verify invoked")
            verification_wait = State("Verification running")
            polling = State("Reading image_transfer_status")
            checking_info = State("Reading image_to_activate_info")
            activating = State("image_activate invoked")
            activation_wait = State("Waiting to invoke image_activate again")
            confirming = State("Reading the new software revision")

            inspected = (
                inspecting.to.itself(internal=True, cond="not transfer_enabled", on="fail_disabled")
                | inspecting.to.itself(internal=True, cond="blocks_too_big", on="fail_too_big")
                | inspecting.to(verification_wait, cond="ours and status_verifying")
                | inspecting.to(checking_info, cond="ours and status_verified", on="read_info")
                | inspecting.to(verifying, cond="resumable and nothing_missing", on=["resume", "verify"])
                | inspecting.to(sending, cond="resumable", on=["resume", "send_block"])
                | inspecting.to(initiating, on="initiate")
            )
            poll = verification_wait.to(polling, on="read_status")
            retry = activation_wait.to(activating, on="activate")

        answer = (
            session.reading_revision.to(session.inspecting, cond="readable", on=["note_revision_before", "inspect"])
            | session.reading_revision.to.itself(internal=True, on="fail_revision")
            | session.inspecting.to.itself(internal=True, on="note_inspected")
            | session.initiating.to(session.sending, cond="succeeded", on=["note_initiated", "send_block"])
            | session.initiating.to.itself(internal=True, on="fail_initiate")
            | session.sending.to.itself(internal=True, cond="more_blocks", on=["note_block", "send_block"])
            | session.sending.to(session.checking, cond="succeeded", on=["note_block", "read_blocks_status"])
            | session.sending.to.itself(internal=True, on="fail_block")
            | session.checking.to(session.sending, cond="blocks_missing and rounds_left", on=["queue_missing", "send_block"])
            | session.checking.to(session.verifying, cond="image_complete", on="verify")
            | session.checking.to.itself(internal=True, cond="bit_string_unavailable", on="read_first_not_transferred")
            | session.checking.to.itself(internal=True, on="fail_check")
            | session.verifying.to(session.checking_info, cond="succeeded", on="read_info")
            | session.verifying.to(session.verification_wait, cond="temporary")
            | session.verifying.to.itself(internal=True, on="fail_verify")
            | session.polling.to(session.checking_info, cond="verified", on="read_info")
            | session.polling.to(session.verification_wait, cond="still_verifying and polls_left")
            | session.polling.to.itself(internal=True, on="fail_verification")
            | session.checking_info.to(session.activating, cond="info_matches", on=["note_signature", "activate"])
            | session.checking_info.to.itself(internal=True, on="fail_info")
            | session.activating.to(rebooting, cond="succeeded", on="note_activation")
            | session.activating.to(session.activation_wait, cond="temporary and activations_left", on="back_off_activation")
            | session.activating.to.itself(internal=True, on="fail_activation")
            | session.confirming.to.itself(internal=True, cond="revision_confirmed", on="note_revision_after")
            | session.confirming.to.itself(internal=True, on="fail_confirm")
        )
        associated = (
            associating.to(session.confirming, cond="activation_started", on=["note_association", "read_revision"])
            | associating.to(session.inspecting, cond="revision_known", on=["note_association", "inspect"])
            | associating.to(session.reading_revision, on=["note_association", "read_revision"])
        )
        reconnect = rebooting.to(associating, on="connect") | reconnect_wait.to(associating, on="connect")
        session_ended = (
            rebooting.to.itself(internal=True)
            | associating.to(reconnect_wait, cond="reconnects_left", on="back_off_reconnect")
            | session.to(reconnect_wait, cond="reconnects_left", on="back_off_reconnect")
            | associating.to.itself(internal=True, on="fail_link")
            | session.to.itself(internal=True, on="fail_link")
        )

    active = State("New image active, revision confirmed", final=True)
    failed = State("Failed", final=True)
    interrupted = State("Interrupted, partial image kept", final=True)

    done = update.to(active, cond="outcome_active") | update.to(failed)
    interrupt = update.to(interrupted, on="stop")

    safety = Safety(
        says="image_activate is never invoked unless the meter reported a successful verification of this image "
             "after its last block was sent: image_verify answered success, image_transfer_status read as 3 "
             "(verification successful), or an inspection found status 3 for this image",
        holds="!activated_unverified",
        variables=(
            "mtype = { ASKED_NONE, ASKED_VERIFY, ASKED_STATUS, ASKED_INSPECT, ASKED_OTHER, SUCCESS, TEMPORARY, "
            "STATUS_VERIFYING, STATUS_VERIFIED, OTHER_RESULT }",
            "mtype asked = ASKED_NONE", "mtype result = OTHER_RESULT", "bool inspected_verified = false",
            "bool inspected_ours = false", "bool verified = false", "bool activated_unverified = false",
        ),
        guards={"succeeded": "result == SUCCESS", "temporary": "result == TEMPORARY",
                "verified": "result == STATUS_VERIFIED", "still_verifying": "result == STATUS_VERIFYING",
                "status_verified": "inspected_verified", "ours": "inspected_ours"},
        actions={
            "inspect": "asked = ASKED_INSPECT",
            "verify": "asked = ASKED_VERIFY",
            "read_status": "asked = ASKED_STATUS",
            "initiate": "asked = ASKED_OTHER; verified = false",
            "resume": "verified = false",
            "send_block": "asked = ASKED_OTHER; verified = false",
            "read_revision": "asked = ASKED_OTHER",
            "read_blocks_status": "asked = ASKED_OTHER",
            "read_first_not_transferred": "asked = ASKED_OTHER",
            "read_info": "asked = ASKED_OTHER",
            "activate": "activated_unverified = activated_unverified || !verified; asked = ASKED_OTHER",
            "connect": "asked = ASKED_NONE",
        },
        events={
            "answer": "if :: result = SUCCESS :: result = TEMPORARY :: result = STATUS_VERIFYING "
                      ":: result = STATUS_VERIFIED :: result = OTHER_RESULT fi; "
                      "if :: (asked == ASKED_VERIFY && result == SUCCESS) || (asked == ASKED_STATUS && "
                      "result == STATUS_VERIFIED) -> verified = true :: else -> skip fi",
            "inspected": "if :: inspected_verified = true :: inspected_verified = false fi; "
                         "if :: inspected_ours = true :: inspected_ours = false fi; "
                         "if :: asked == ASKED_INSPECT && inspected_verified && inspected_ours -> verified = true "
                         ":: else -> skip fi",
        },
        after="result = OTHER_RESULT; inspected_verified = false; inspected_ours = false",
        assumptions=(
            "an `answer` event carries the driven DLMS client's answer to the last request the machine asked for "
            "(machines/dlms.py answers one request at a time); its value is the datum modeled",
            "`inspected` follows the inspection's reads; `ours` judges rightly whether the meter's transfer is this "
            "image (initiated in this run, or the stored record of an earlier run)",
        ),
    )

    timeouts = (
        StateTimeout("verification_wait", after="poll_interval", event="poll"),
        StateTimeout("activation_wait", after="activation_delay", event="retry"),
        StateTimeout("rebooting", after="reboot_wait", event="reconnect"),
        StateTimeout("reconnect_wait", after="reconnect_delay", event="reconnect"),
    )

    def __init__(
        self,
        image: Image = Image(b"", b""),
        meter: str = "",
        record: TransferRecord | None = None,
        revision: AttributeRef = SOFTWARE_REVISION,
        expect_revision: str | None = None,
        signature_hash: str | None = None,
        obis: Obis = cls18.IMAGE_TRANSFER_OBIS,
        poll_interval: float = 2.0,
        max_polls: int = 60,
        activation_retries: int = 3,
        activation_backoff: float = 2.0,
        reboot_wait: float = 12.0,
        reconnects: int = 8,
        reconnect_backoff: float = 2.0,
        max_reconnect_delay: float = 30.0,
        temporary_retries: int = 5,
        check_rounds: int = 5,
        counters: Counter[str] | None = None,
    ) -> None:
        """`record` is what an earlier run kept beside the image (`--resume`); `reboot_wait` is
        the seed's 10 s before the reboot and a little more; `signature_hash` "sha256" compares
        image_to_activate_signature with the image's SHA-256."""
        self.image = image
        self.meter = meter
        self.record = record
        self.revision = revision
        self.expect_revision = expect_revision
        self.signature_hash = signature_hash
        self.obis = obis
        self.poll_interval = poll_interval
        self.max_polls = max_polls
        self.activation_retries = activation_retries
        self.activation_backoff = activation_backoff
        self.activation_delay = activation_backoff
        self.reboot_wait = reboot_wait
        self.reconnects = reconnects
        self.reconnect_backoff = reconnect_backoff
        self.max_reconnect_delay = max_reconnect_delay
        self.reconnect_delay = reconnect_backoff
        self.temporary_retries = temporary_retries
        self.check_rounds = check_rounds

        self.outcome: Outcome | None = None
        self.reason: str | None = None
        """Why the transfer failed, for a person."""
        self.revision_before: str | None = None
        self.revision_after: str | None = None
        self.signature: bytes | None = None
        """image_to_activate_signature as the meter reported it."""
        self.block_size = 0
        self.max_receive_pdu = 0xFFFF
        self.confirmed: set[int] = set()
        """Blocks the meter accepted (success) or reported transferred."""
        self.sent: Counter[int] = Counter()
        """How often each block was sent in this run."""
        self.bytes_sent = 0
        self.initiated = False
        """This run initiated the transfer the meter holds."""
        self.activation_started = False
        self._queue: deque[int] = deque()
        self._current: int | None = None
        self._temporary: Counter[int] = Counter()
        self._inspection = _Inspection()
        self._pending_reads: deque[int] = deque()
        self._polls = 0
        self._activations = 0
        self._reconnects = 0
        self._rounds = 0
        super().__init__(counters)

    # -- events in ----------------------------------------------------------------------------------

    def handle(self, event: object, received_at: float | None = None) -> None:
        """What the driven DLMS client reported (`Associated`, `Answered`)."""
        if self.is_terminated:
            return
        match event:
            case Associated(max_pdu, _):
                self.send("associated", max_receive_pdu=max_pdu)
            case Answered(_, result):
                self.send("answer", result=result)

    def session_closed(self) -> None:
        """The DLMS session ended (released, lost, given up)."""
        if not self.is_terminated:
            self.send("session_ended")

    # -- what is known ------------------------------------------------------------------------------

    @property
    def blocks(self) -> int:
        # Resumed at verification, the block size is the meter's, read when inspecting.
        return cls18.block_count(self.image.size, self.block_size or self._inspection.block_size or 0)

    @property
    def blocks_resent(self) -> int:
        return sum(count - 1 for count in self.sent.values() if count > 1)

    def progress(self) -> Progress:
        return Progress(self.state_label, self.blocks, len(self.confirmed), sum(self.sent.values()),
                        self.blocks_resent, self.bytes_sent, self.image.size)

    def _record(self) -> TransferRecord:
        return TransferRecord(self.meter, self.image.identifier, self.image.size, self.block_size)

    # -- guards -------------------------------------------------------------------------------------

    def readable(self, result: object) -> bool:
        return _text(result) is not None

    def succeeded(self, result: object) -> bool:
        return result is ActionResult.SUCCESS

    def temporary(self, result: object) -> bool:
        return result is ActionResult.TEMPORARY_FAILURE

    def more_blocks(self, result: object) -> bool:
        """The block was taken (or is to be sent again later) and some block still waits."""
        if result is ActionResult.TEMPORARY_FAILURE:
            return self._current is not None and self._temporary[self._current] < self.temporary_retries
        return result is ActionResult.SUCCESS and bool(self._queue)

    def bit_string_unavailable(self, result: object) -> bool:
        """The meter cannot give image_transferred_blocks_status; ask for the first block missing."""
        return not isinstance(result, Data) and not self._by_first_missing

    def blocks_missing(self, result: object) -> bool:
        missing = self._missing(result)
        return missing is not None and bool(missing)

    def image_complete(self, result: object) -> bool:
        missing = self._missing(result)
        return missing is not None and not missing

    def rounds_left(self) -> bool:
        return self._rounds < self.check_rounds

    def verified(self, result: object) -> bool:
        return self._status(result) is TransferStatus.VERIFICATION_SUCCESSFUL

    def still_verifying(self, result: object) -> bool:
        return self._status(result) is TransferStatus.VERIFICATION_INITIATED

    def polls_left(self) -> bool:
        return self._polls < self.max_polls

    def info_matches(self, result: object) -> bool:
        return self._image_to_activate(result) is not None

    def activations_left(self) -> bool:
        return self._activations <= self.activation_retries

    def revision_confirmed(self, result: object) -> bool:
        """The revision read after the reboot is the one expected, or else differs from before."""
        text = _text(result)
        if text is None:
            return False
        if self.expect_revision is not None:
            return text == self.expect_revision
        return text != self.revision_before

    def transfer_enabled(self) -> bool:
        return bool(self._inspection.enabled)

    def blocks_too_big(self) -> bool:
        size = self._inspection.block_size or 0
        return size <= 0 or cls18.block_request_size(size) > self.max_receive_pdu

    def ours(self) -> bool:
        """The meter's transfer is this image: initiated in this run, or recorded by an earlier one
        for this meter, identifier, size and block size."""
        if self.initiated:
            return self._inspection.block_size == self.block_size
        return self.record is not None and self.record == TransferRecord(
            self.meter, self.image.identifier, self.image.size, self._inspection.block_size or 0)

    def status_verifying(self) -> bool:
        return self._inspection.status is TransferStatus.VERIFICATION_INITIATED

    def status_verified(self) -> bool:
        return self._inspection.status is TransferStatus.VERIFICATION_SUCCESSFUL

    def resumable(self) -> bool:
        """Status 1 and a bit-string of ceil(size / block size) bits: go on from the meter's blocks."""
        bits = self._inspection.bits
        size = self._inspection.block_size or 0
        return (self.ours() and self._inspection.status is TransferStatus.INITIATED and bits is not None
                and bits[0] == cls18.block_count(self.image.size, size))

    def nothing_missing(self) -> bool:
        count, transferred = self._inspection.bits or (0, frozenset())
        return len(transferred) == count

    def revision_known(self) -> bool:
        return self.revision_before is not None

    def reconnects_left(self) -> bool:
        return self._reconnects < self.reconnects

    def outcome_active(self) -> bool:
        return self.outcome is Outcome.ACTIVE

    # -- helpers for guards -----------------------------------------------------------------------

    @property
    def _by_first_missing(self) -> bool:
        return self._checking_attribute == cls18.FIRST_NOT_TRANSFERRED

    _checking_attribute = cls18.BLOCKS_STATUS

    def _missing(self, result: object) -> list[int] | None:
        """The blocks the meter lacks by its answer in `checking`; None when the answer says nothing."""
        if not isinstance(result, Data):
            return None
        try:
            if self._by_first_missing:
                first = cls18.unsigned(result, "image_first_not_transferred_block_number")
                return [first] if first < self.blocks else []
            count, transferred = cls18.transferred_blocks(result)
        except ProtocolError:
            return None
        if count != self.blocks:
            return None
        return [n for n in range(count) if n not in transferred]

    def _status(self, result: object) -> TransferStatus | None:
        try:
            return cls18.status(result) if isinstance(result, Data) else None
        except ProtocolError:
            return None

    def _image_to_activate(self, result: object) -> ImageToActivate | None:
        if not isinstance(result, Data):
            return None
        try:
            images = cls18.images_to_activate(result)
        except ProtocolError:
            return None
        for candidate in images:
            if candidate.size == self.image.size and candidate.identification == self.image.identifier:
                if self.signature_hash is None or candidate.signature == self.image.sha256:
                    return candidate
        return None

    # -- actions ------------------------------------------------------------------------------------

    def _ask(self, ref: AttributeRef | Invoke) -> None:
        self.actions.append(Request(ref))

    def _get(self, index: int) -> None:
        self._ask(cls18.attribute(index, self.obis))

    def _invoke(self, index: int, parameters: Data) -> None:
        self._ask(Invoke(cls18.method(index, self.obis), parameters))

    def connect(self) -> None:
        self.actions.append(Connect())

    def note_association(self, max_receive_pdu: int) -> None:
        self.max_receive_pdu = max_receive_pdu
        self._reconnects = 0
        self.reconnect_delay = self.reconnect_backoff
        self.counters["associations"] += 1

    def read_revision(self) -> None:
        self._ask(self.revision)

    def note_revision_before(self, result: object) -> None:
        self.revision_before = _text(result)

    def inspect(self) -> None:
        """Read enabled, block size, status and the block status, one after the other."""
        self._inspection = _Inspection()
        self._pending_reads = deque((cls18.ENABLED, cls18.BLOCK_SIZE, cls18.STATUS, cls18.BLOCKS_STATUS))
        self._get(self._pending_reads[0])

    def note_inspected(self, result: object) -> None:
        index = self._pending_reads.popleft()
        inspection = self._inspection
        if not isinstance(result, Data) and index in (cls18.ENABLED, cls18.BLOCK_SIZE):
            # Without these there is no transfer; the likely cause is an association that does
            # not see the object (seed 002 ch. 3.8: the password-protected ones do).
            names = {cls18.ENABLED: "image_transfer_enabled", cls18.BLOCK_SIZE: "image_block_size"}
            self.reason = self.reason or f"cannot read {names[index]} of {self.obis}: {_why(result)}"
        try:
            if isinstance(result, Data):
                if index == cls18.ENABLED:
                    inspection.enabled = cls18.enabled(result)
                elif index == cls18.BLOCK_SIZE:
                    inspection.block_size = cls18.unsigned(result, "image_block_size")
                elif index == cls18.STATUS:
                    inspection.status = cls18.status(result)
                else:
                    inspection.bits = cls18.transferred_blocks(result)
        except ProtocolError as error:
            self.counters["bad_attributes"] += 1
            self.reason = str(error)
        if self._pending_reads:
            self._get(self._pending_reads[0])
        else:
            self.raise_("inspected")

    def initiate(self) -> None:
        self.block_size = self._inspection.block_size or 0
        self.confirmed.clear()
        self._invoke(cls18.INITIATE, cls18.initiate_parameters(self.image.identifier, self.image.size))

    def note_initiated(self) -> None:
        self.initiated = True
        self._queue = deque(range(self.blocks))
        self.actions.append(Record(self._record()))

    def queue_missing(self, result: object) -> None:
        """Queue what the meter lacks by its answer in `checking`."""
        self._rounds += 1
        missing = self._missing(result) or []
        self.confirmed.difference_update(missing)
        self._queue = deque(missing)

    def resume(self) -> None:
        """Go on with the transfer the meter holds: queue the blocks its bit-string lacks."""
        self.block_size = self._inspection.block_size or 0
        count, transferred = self._inspection.bits or (0, frozenset())
        self.confirmed = set(transferred)
        self._queue = deque(n for n in range(count) if n not in transferred)
        self.counters["resumed"] += 1

    def send_block(self) -> None:
        number = self._queue.popleft()
        self._current = number
        start = number * self.block_size
        block = self.image.data[start : start + self.block_size]
        self.sent[number] += 1
        self.bytes_sent += len(block)
        self._invoke(cls18.BLOCK_TRANSFER, cls18.block_parameters(number, block))

    def note_block(self, result: object) -> None:
        number = self._current
        assert number is not None
        if result is ActionResult.TEMPORARY_FAILURE:
            self._temporary[number] += 1
            self.counters["blocks_temporary_failure"] += 1
            self._queue.append(number)
        else:
            self.confirmed.add(number)

    def read_blocks_status(self) -> None:
        """Step 4: the bit-string, or the first block missing where the meter could not give it."""
        self._get(self._checking_attribute)

    def read_first_not_transferred(self) -> None:
        self._checking_attribute = cls18.FIRST_NOT_TRANSFERRED
        self._get(cls18.FIRST_NOT_TRANSFERRED)

    def verify(self) -> None:
        self.confirmed = set(range(self.blocks))
        self._invoke(cls18.VERIFY, Data(DataTag.INTEGER, 0))

    def read_status(self) -> None:
        self._polls += 1
        self._get(cls18.STATUS)

    def read_info(self) -> None:
        self._get(cls18.TO_ACTIVATE)

    def note_signature(self, result: object) -> None:
        found = self._image_to_activate(result)
        self.signature = found.signature if found is not None else None

    def activate(self) -> None:
        self._activations += 1
        self._invoke(cls18.ACTIVATE, Data(DataTag.INTEGER, 0))

    def back_off_activation(self) -> None:
        self.activation_delay = self.activation_backoff * 2 ** (self._activations - 1)

    def note_activation(self) -> None:
        self.activation_started = True
        self.actions.append(Release())

    def note_revision_after(self, result: object) -> None:
        self.revision_after = _text(result)
        self.outcome = Outcome.ACTIVE
        self.actions.append(Release())
        self.actions.append(Record(None))
        self.raise_("done")

    def back_off_reconnect(self) -> None:
        self._reconnects += 1
        self.counters["reconnects"] += 1
        self.reconnect_delay = min(self.max_reconnect_delay, self.reconnect_backoff * 2 ** (self._reconnects - 1))

    def stop(self) -> None:
        self.outcome = Outcome.INTERRUPTED
        self.reason = "interrupted; the meter keeps the partial image for --resume"
        self.actions.append(Release())

    # -- failures: each says why, then the machine ends in `failed` ------------------------------------

    def _fail(self, reason: str) -> None:
        self.outcome = Outcome.FAILED
        self.reason = reason
        self.actions.append(Release())
        self.raise_("done")

    def fail_revision(self, result: object) -> None:
        self._fail(f"cannot read the software revision {self.revision}: {_why(result)}")

    def fail_disabled(self) -> None:
        self._fail(self.reason or "image transfer is not enabled on the meter (image_transfer_enabled is false)")

    def fail_too_big(self) -> None:
        if self.reason is not None:
            self._fail(self.reason)
            return
        size = self._inspection.block_size or 0
        self._fail(f"the meter announces {size}-byte blocks; an image_block_transfer of that size needs "
                   f"{cls18.block_request_size(size)} bytes but the meter takes APDUs of at most {self.max_receive_pdu}")

    def fail_initiate(self, result: object) -> None:
        self._fail(f"image_transfer_initiate refused: {_why(result)}")

    def fail_block(self, result: object) -> None:
        if result is ActionResult.TEMPORARY_FAILURE:
            self._fail(f"block {self._current} refused {self.temporary_retries} times (temporary-failure)")
        else:
            self._fail(f"image_block_transfer of block {self._current} refused: {_why(result)}")

    def fail_check(self, result: object) -> None:
        if self._missing(result):
            self._fail(f"blocks still missing after {self._rounds} rounds of sending them again")
        else:
            self._fail(f"cannot tell which blocks the meter holds: {_why(result)}")

    def fail_verify(self, result: object) -> None:
        self._fail(f"image_verify could not be started: {_why(result)}")

    def fail_verification(self, result: object) -> None:
        status = self._status(result)
        if status is TransferStatus.VERIFICATION_FAILED:
            self._fail("the meter's verification of the image failed (image_transfer_status 4)")
        elif status is TransferStatus.VERIFICATION_INITIATED:
            self._fail(f"the verification did not end within {self.max_polls} polls")
        else:
            self._fail(f"image_transfer_status after image_verify: {_why(result)}")

    def fail_info(self, result: object) -> None:
        try:
            images = cls18.images_to_activate(result) if isinstance(result, Data) else None
        except ProtocolError as error:
            images, result = None, str(error)
        if images is None:
            self._fail(f"cannot read image_to_activate_info: {_why(result)}")
            return
        seen = ", ".join(f"{i.identification.hex()} ({i.size} bytes, signature {i.signature.hex() or 'none'})" for i in images)
        self._fail(f"image_to_activate_info does not show the image sent ({self.image.identifier.hex()}, "
                   f"{self.image.size} bytes{', SHA-256 ' + self.image.sha256.hex() if self.signature_hash else ''}): "
                   f"{seen or 'empty'}")

    def fail_activation(self, result: object) -> None:
        if result is ActionResult.TEMPORARY_FAILURE:
            self._fail(f"image_activate did not start after {self._activations} attempts (temporary-failure, status 7)")
        else:
            self._fail(f"image_activate refused: {_why(result)}")

    def fail_confirm(self, result: object) -> None:
        text = _text(result)
        self.revision_after = text
        if text is None:
            self._fail(f"cannot read the software revision after the reboot: {_why(result)}")
        elif self.expect_revision is not None:
            self._fail(f"the revision after the reboot is {text!r}, not the expected {self.expect_revision!r}")
        else:
            self._fail(f"the revision after the reboot is still {text!r}: the new image is not active")

    def fail_link(self) -> None:
        self._fail(f"the meter did not answer after {self._reconnects} attempts to associate again")


def _text(result: object) -> str | None:
    """A revision as text: a visible or UTF-8 string, an octet-string that is printable."""
    if not isinstance(result, Data):
        return None
    if result.tag in (DataTag.VISIBLE_STRING, DataTag.UTF8_STRING) and isinstance(result.value, str):
        return result.value
    if result.tag is DataTag.OCTET_STRING and isinstance(result.value, bytes):
        try:
            text = result.value.decode("ascii")
        except UnicodeDecodeError:
            return result.value.hex()
        return text if text.isprintable() else result.value.hex()
    return None


def _why(result: object) -> str:
    if isinstance(result, Data):
        return f"unexpected {result.tag.name.lower()} {result.value!r}"
    if isinstance(result, (ActionResult, DataAccessResult)):
        return str(result)
    return str(result)
