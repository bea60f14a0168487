"""The simulated meter's image transfer object (class 18, 0.0.44.0.0.255; seed 002 ch. 3.8), with faults.

It behaves as seed 002 ch. 3.8.1 says: image_transfer_initiate starts (or restarts) a transfer
(status 1); each image_block_transfer stores a block; image_verify answers temporary-failure when
it started the verification (status 2), which ends after `verify_seconds` with 3 (and
image_to_activate_info filled in) or 4; image_activate answers success when activation started
(status 6; the meter reboots 10 s later and is unreachable for `reboot_seconds`) or
temporary-failure when it did not (status 7); after the reboot the status is 0. Writing
image_block_size cancels a transfer (status 0). The meter never activates an image whose
verification did not succeed. The image's identifier, as text, becomes the meter's software
revision after activation.

Faults (`Faults`): blocks lost once although acknowledged, blocks refused once with
temporary-failure, a verification that fails, activations refused with temporary-failure, an
activation after which the old image stays active, a reboot slower than the seed's, and the link
dropped after some blocks. Time comes from `clock` (trio's in the simulator, so MockClock drives it).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocols.dlms import image as cls18
from ..protocols.dlms.axdr import Data, DataTag, array
from ..protocols.dlms.image import ImageToActivate, TransferStatus
from ..protocols.dlms.xdlms import ActionResult, DataAccessResult

REBOOT_AFTER = 10.0
"""Seed 002 ch. 3.8.1, step 7: the server reboots 10 seconds after activation started."""
OMNIPOWER_BLOCK_SIZE = 985
"""Seed 002 ch. 3.8, figure 15."""


@dataclass(frozen=True)
class Faults:
    """What goes wrong in the simulated meter (all off by default)."""

    drop_blocks: frozenset[int] = frozenset()
    """Blocks acknowledged with success the first time but not stored: the completeness check finds them missing."""
    busy_blocks: frozenset[int] = frozenset()
    """Blocks answered temporary-failure the first time ("send this block again later")."""
    verify_fails: bool = False
    """The verification ends with image_transfer_status 4."""
    activation_refusals: int = 0
    """image_activate answers temporary-failure (status 7) this many times first."""
    activation_broken: bool = False
    """The meter reboots but the old image stays active."""
    reboot_seconds: float = 4.0
    """How long the meter is unreachable once it reboots (slow reboot: more)."""
    drop_link_after: int | None = None
    """Drop the link once after this many blocks were received."""


@dataclass
class ImageTransferServer:
    """Class 18 in the simulated meter; `revision` is the active image's software revision."""

    faults: Faults = Faults()
    block_size: int = OMNIPOWER_BLOCK_SIZE
    revision: str = "50981040-Q1"
    verify_seconds: float = 3.0
    clock: Callable[[], float] = time.monotonic
    status: TransferStatus = TransferStatus.NOT_INITIATED
    identifier: bytes = b""
    size: int = 0
    blocks: dict[int, bytes] = field(default_factory=dict)
    to_activate: tuple[ImageToActivate, ...] = ()
    active_image: bytes | None = None
    """The bytes of the image activated last (None: the factory image)."""
    received: Counter[int] = field(default_factory=Counter)
    """How often each block number arrived, over every transfer and connection (tests count resends)."""
    activations: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(identifier, image) of every image activated, in order."""
    verified_before_activation: list[bool] = field(default_factory=list)
    _verify_done_at: float | None = None
    _reboot_at: float | None = None
    _pending: tuple[bytes, bytes] | None = None
    _dropped: set[int] = field(default_factory=set)
    _busy: set[int] = field(default_factory=set)
    _refusals: int = 0
    _link_dropped: bool = False
    link_drop_due: bool = False
    """Set when the link is to be dropped now; the meter's runner closes it and clears this."""

    # -- time ----------------------------------------------------------------------------------------

    def _advance(self) -> None:
        now = self.clock()
        if self._verify_done_at is not None and now >= self._verify_done_at:
            self._verify_done_at = None
            if self.faults.verify_fails:
                self.status = TransferStatus.VERIFICATION_FAILED
            else:
                self.status = TransferStatus.VERIFICATION_SUCCESSFUL
                data = self._image()
                self.to_activate = (ImageToActivate(len(data), self.identifier, hashlib.sha256(data).digest()),)
        if self._reboot_at is not None and now >= self._reboot_at + self.faults.reboot_seconds:
            self._finish_reboot()

    def offline_until(self) -> float | None:
        """While the meter reboots: when it is back (its clock); None when it is reachable."""
        self._advance()
        if self._reboot_at is None or self.clock() < self._reboot_at:
            return None
        return self._reboot_at + self.faults.reboot_seconds

    def reboot_starts_at(self) -> float | None:
        return self._reboot_at

    def _finish_reboot(self) -> None:
        self._reboot_at = None
        if self._pending is not None and not self.faults.activation_broken:
            identifier, data = self._pending
            self.active_image = data
            self.activations.append((identifier, data))
            self.revision = _revision(identifier)
        self._pending = None
        self.status = TransferStatus.NOT_INITIATED
        self.identifier, self.size, self.blocks, self.to_activate = b"", 0, {}, ()

    def _image(self) -> bytes:
        return b"".join(self.blocks[n] for n in range(self.count))[: self.size]

    @property
    def count(self) -> int:
        return cls18.block_count(self.size, self.block_size)

    # -- attributes ----------------------------------------------------------------------------------

    def get(self, index: int) -> Data | DataAccessResult:
        self._advance()
        match index:
            case cls18.BLOCK_SIZE:
                return cls18.u32(self.block_size)
            case cls18.BLOCKS_STATUS:
                count = self.count if self.status is not TransferStatus.NOT_INITIATED else 0
                return cls18.blocks_status(self.blocks, count)
            case cls18.FIRST_NOT_TRANSFERRED:
                missing = [n for n in range(self.count) if n not in self.blocks]
                return cls18.u32(missing[0] if missing else self.count)
            case cls18.ENABLED:
                return Data(DataTag.BOOLEAN, True)
            case cls18.STATUS:
                return Data(DataTag.ENUM, int(self.status))
            case cls18.TO_ACTIVATE:
                return array(*(image.to_data() for image in self.to_activate))
        return DataAccessResult.READ_WRITE_DENIED

    def set(self, index: int, value: Data) -> DataAccessResult:
        """Only image_block_size is writable; writing it cancels the transfer (ch. 3.8.1)."""
        if index != cls18.BLOCK_SIZE:
            return DataAccessResult.READ_WRITE_DENIED
        if value.tag is not DataTag.DOUBLE_LONG_UNSIGNED or not 1 <= value.value <= 0xFFFF:
            return DataAccessResult.TYPE_UNMATCHED
        self.block_size = value.value
        self._cancel(TransferStatus.NOT_INITIATED)
        return DataAccessResult.SUCCESS

    def _cancel(self, status: TransferStatus) -> None:
        self.status = status
        self.blocks, self.to_activate, self._verify_done_at = {}, (), None

    # -- methods ---------------------------------------------------------------------------------------

    def action(self, index: int, parameters: Data | None) -> ActionResult:
        self._advance()
        fields = parameters.value if parameters is not None and parameters.tag is DataTag.STRUCTURE else ()
        match index:
            case cls18.INITIATE:
                return self._initiate(fields)
            case cls18.BLOCK_TRANSFER:
                return self._block(fields)
            case cls18.VERIFY:
                return self._verify()
            case cls18.ACTIVATE:
                return self._activate()
        return ActionResult.OBJECT_UNAVAILABLE

    def _initiate(self, fields: tuple[Data, ...]) -> ActionResult:
        if len(fields) != 2 or fields[0].tag is not DataTag.OCTET_STRING or fields[1].tag is not DataTag.DOUBLE_LONG_UNSIGNED:
            return ActionResult.TYPE_UNMATCHED
        self._cancel(TransferStatus.INITIATED)
        self.identifier, self.size = fields[0].value, fields[1].value
        self._dropped.clear()
        self._busy.clear()
        return ActionResult.SUCCESS

    def _block(self, fields: tuple[Data, ...]) -> ActionResult:
        if self.status is not TransferStatus.INITIATED:
            return ActionResult.OTHER_REASON
        if len(fields) != 2 or fields[0].tag is not DataTag.DOUBLE_LONG_UNSIGNED or fields[1].tag is not DataTag.OCTET_STRING:
            return ActionResult.TYPE_UNMATCHED
        number, block = fields[0].value, fields[1].value
        last = number == self.count - 1
        if number >= self.count or len(block) != (self.size - number * self.block_size if last else self.block_size):
            return ActionResult.OTHER_REASON
        self.received[number] += 1
        limit = self.faults.drop_link_after
        if limit is not None and not self._link_dropped and sum(self.received.values()) >= limit:
            self._link_dropped = self.link_drop_due = True
        if number in self.faults.busy_blocks and number not in self._busy:
            self._busy.add(number)
            return ActionResult.TEMPORARY_FAILURE
        if number in self.faults.drop_blocks and number not in self._dropped:
            self._dropped.add(number)
            return ActionResult.SUCCESS  # acknowledged, but lost inside the meter
        self.blocks[number] = block
        return ActionResult.SUCCESS

    def _verify(self) -> ActionResult:
        if self.status not in (TransferStatus.INITIATED, TransferStatus.VERIFICATION_FAILED) or len(self.blocks) != self.count:
            return ActionResult.OTHER_REASON  # not started; the status stays
        self.status = TransferStatus.VERIFICATION_INITIATED
        self._verify_done_at = self.clock() + self.verify_seconds
        return ActionResult.TEMPORARY_FAILURE

    def _activate(self) -> ActionResult:
        if self.status not in (TransferStatus.VERIFICATION_SUCCESSFUL, TransferStatus.ACTIVATION_FAILED):
            return ActionResult.OTHER_REASON
        if self._refusals < self.faults.activation_refusals:
            self._refusals += 1
            self.status = TransferStatus.ACTIVATION_FAILED
            return ActionResult.TEMPORARY_FAILURE
        self.verified_before_activation.append(bool(self.to_activate))
        self.status = TransferStatus.ACTIVATION_SUCCESSFUL
        self._pending = (self.identifier, self._image())
        self._reboot_at = self.clock() + REBOOT_AFTER
        return ActionResult.SUCCESS


def _revision(identifier: bytes) -> str:
    try:
        text = identifier.decode("ascii")
    except UnicodeDecodeError:
        return identifier.hex()
    return text if text.isprintable() else identifier.hex()
