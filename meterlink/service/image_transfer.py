"""`meterlink image-transfer` and the service's image endpoint: one class 18 update of one meter.

Composes the image transfer machine, its actor and the link: reads the image, keeps the transfer
record beside it (`IMAGE.transfer.json`: meter, identifier, size, block size) while a partial image
sits in the meter, and states the verdict as one JSON object.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio


from ..actors.dlms import DlmsLink, run_dlms
from ..actors.image_transfer import ImageHooks, run_image_transfer
from ..actors.link import LinkHooks, LinkStatus
from ..machines.dlms import Association
from ..machines.image_transfer import SOFTWARE_REVISION, Image, ImageTransfer, Outcome, Progress, TransferRecord
from ..protocols.dlms.objects import AttributeRef
from ..transports import SerialSettings, open_link
from .read import reopen_after_first


def record_path(image: Path) -> Path:
    """Where the transfer record of `image` is kept: beside it."""
    return image.with_name(image.name + ".transfer.json")


def load_record(path: Path) -> TransferRecord | None:
    """The record an earlier run left, None when there is none; ValueError when it is unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return TransferRecord.from_json(json.loads(text))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None


def keep_record(path: Path, record: TransferRecord | None) -> None:
    if record is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(json.dumps(record.to_json()) + "\n", encoding="utf-8")


def meter_key(port: str, association: Association) -> str:
    """What names the meter in a transfer record: the port and the addresses used on it."""
    return f"{port} client {association.client} server {association.server}/{association.server_physical}"


@dataclass
class Transfer:
    """One transfer as it goes: the machine and what the caller watches."""

    machine: ImageTransfer
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def verdict(self) -> dict[str, object]:
        """The final JSON object of `meterlink image-transfer` (and of the API once it is over)."""
        machine = self.machine
        outcome = machine.outcome
        result: dict[str, object] = {
            "result": outcome.value if outcome is not None else "running",
            "identification": _text(machine.image.identifier),
            "size": machine.image.size,
            "blocks": machine.blocks,
            "blocks_resent": machine.blocks_resent,
            "revision_before": machine.revision_before,
            "revision_after": machine.revision_after,
            "seconds": round(self.seconds, 3),
            "signature": machine.signature.hex() if machine.signature is not None else None,
        }
        if outcome is not Outcome.ACTIVE and machine.reason is not None:
            result["reason"] = machine.reason
        return result

    def progress(self) -> dict[str, object]:
        """What the API and the web page show while it runs."""
        now = self.machine.progress()
        return {"state": now.state, "identification": _text(self.machine.image.identifier),
                "blocks": now.blocks, "confirmed": now.confirmed, "sent": now.sent,
                "resent": now.resent, "bytes_sent": now.bytes_sent, "size": now.image_size,
                **({"verdict": self.verdict()} if self.machine.is_terminated else {})}


def _text(identifier: bytes) -> str:
    try:
        text = identifier.decode("ascii")
    except UnicodeDecodeError:
        return identifier.hex()
    return text if text.isprintable() else identifier.hex()


def make_transfer(image: Image, port: str, association: Association, record: TransferRecord | None = None,
                  revision: AttributeRef = SOFTWARE_REVISION, expect_revision: str | None = None,
                  signature_hash: str | None = None) -> Transfer:
    machine = ImageTransfer(image, meter_key(port, association), record, revision, expect_revision, signature_hash)
    return Transfer(machine)


async def run_transfer(transfer: Transfer, port: str, serial: SerialSettings, association: Association,
                       progress: Callable[[Progress], None] = lambda progress: None,
                       record_file: Path | None = None) -> None:
    """Run `transfer` on `port` until it ends. The first open raises TransportError (a usage error
    for the CLI); later ones are retried by the machine."""
    first = await open_link(port, serial)
    opener = reopen_after_first(first, lambda: open_link(port, serial))

    def record(kept: TransferRecord | None) -> None:
        if record_file is not None:
            keep_record(record_file, kept)

    try:
        await run_image_transfer(opener, association, transfer.machine, ImageHooks(progress, record))
    finally:
        transfer.finished = time.monotonic()



async def run_dlms_with_images(link: DlmsLink, hooks: LinkHooks, status: LinkStatus) -> None:
    """A DLMS link of the service: it polls, and hands its port to an image transfer asked for
    through the API (`start_image`), then polls again."""
    while True:
        transfer = status.image
        if isinstance(transfer, Transfer) and transfer.finished is None:
            status.state, status.state_label = "image_transfer", "Image transfer"
            await run_transfer(transfer, link.port, link.serial, link.association)
            continue
        with trio.CancelScope() as scope:
            status.pause_polling = scope
            await run_dlms(link, hooks, status)
        status.pause_polling = None
        if not scope.cancelled_caught:
            return


def start_image(status: LinkStatus, port: str, association: Association, image: Image) -> Transfer:
    """Ask a DLMS link to send `image` (ValueError when one is already on its way)."""
    if isinstance(status.image, Transfer) and status.image.finished is None:
        raise ValueError(f"link {status.name}: an image transfer is already running")
    transfer = make_transfer(image, port, association)
    status.image = transfer
    if status.pause_polling is not None:
        status.pause_polling.cancel()
    return transfer
