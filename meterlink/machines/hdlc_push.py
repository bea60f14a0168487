"""The HDLC push link: a meter that pushes DLMS data-notifications in HDLC frames (seed 001 ch. A
and B.5; IEC 62056-46 frame format type 3).

L+G E450, Iskraemeco AM550 and Siemens IM350 in Austria, and the Nordic HAN meters (Aidon,
Kamstrup, Kaifa) push a notification every few seconds in UI frames (`7E A0 .. 13 ..`), some in
I-frames, and expect no answer. A frame's information field begins with the LLC header
(E6 E7 00). A notification longer than a frame goes over several, the segmentation bit set on all
but the last and the LLC header in the first only; some meters (L+G E450 in some regions) send it
as general-block-transfer instead, numbered blocks (APDU 0xE0) each in a frame of its own, the LLC
header again only in the first. What is joined goes to `decode_push`: decrypted with the link's
keys and mapped to a reading.

Nothing numbers HDLC segments, so a frame that begins with the LLC header is taken as the first of
a notification (or of a block), and one that does not as a continuation; while blocks are held, a
frame that begins with the block tag starts the next block. A continuation with no first frame
before it is dropped as out of order, and a first frame while segments are held drops them as
incomplete. An APDU that no pushing meter sends (a client's session on the same line) is counted,
not dropped.

Timeouts: a frame that stops for longer than the inter-octet timeout is discarded (the receiver
region, the DLMS client's); half a notification whose line stays quiet for the inter-frame timeout
is dropped as incomplete; no notification for three push intervals makes the link stale.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from statemachine import State

from ..protocols.dlms.gbt import GENERAL_BLOCK_TRANSFER, Block, parse_block
from ..protocols.dlms.notification import DATA_NOTIFICATION
from ..protocols.dlms.push import Outcome, failed
from ..protocols.dlms.security import GENERAL_DED_CIPHERING, GENERAL_GLO_CIPHERING, CipherKeys
from ..protocols.errors import ProtocolError
from ..protocols.hdlc import LLC_REQUEST, LLC_RESPONSE, Frame, FrameType
from .base import LinkMachine, StateTimeout
from .hdlc_station import HdlcReceiver, receiver_region
from .push import PushDecoder, no_keys, telegram_outcomes

PUSHED_FRAMES = (FrameType.UI, FrameType.I)
LLC_HEADERS = (LLC_RESPONSE, LLC_REQUEST)
"""Either direction's: a client's request on the same line is a first frame too (then counted)."""
LLC_LENGTH = len(LLC_RESPONSE)
BLOCK_TAG = bytes((GENERAL_BLOCK_TRANSFER,))
EVENT_NOTIFICATION, GLO_EVENT_NOTIFICATION, DED_EVENT_NOTIFICATION = 0xC2, 0xCA, 0xD2
PUSHED_APDUS = frozenset({DATA_NOTIFICATION, EVENT_NOTIFICATION, GLO_EVENT_NOTIFICATION, DED_EVENT_NOTIFICATION,
                          GENERAL_GLO_CIPHERING, GENERAL_DED_CIPHERING})
"""What a server sends unsolicited, besides general-block-transfer: `decode_push` reads the data-notification
and names the others a layout it cannot map. A client's session (AARQ, GET, ...) is not a push."""


class HdlcPushReader(HdlcReceiver, PushDecoder, LinkMachine):
    """Join a pushed notification's frames (segments, or general-block-transfer blocks), decrypt, publish."""

    class link(State.Parallel, name="HDLC push"):
        class push(State.Compound, name="Push"):
            listening = State("Between notifications", initial=True)
            segments = State("Joining a notification's frames")
            blocks = State("Between general-block-transfer blocks")
            stale = State("Stale (meter silent)")

            segment = (
                listening.to(segments, cond="first", on="collect")
                | stale.to(segments, cond="first", on="collect")
                | blocks.to(segments, cond="first or block_frame", on="collect")
                | segments.to(segments, cond="first", on=["drop_partial", "collect"])
                | segments.to(segments, on="collect")
                | listening.to(listening, on="drop_out_of_order")
                | stale.to(listening, on="drop_out_of_order")
                | blocks.to(listening, on=["drop_partial", "drop_out_of_order"])
            )
            last_segment = (
                listening.to(listening, cond="first", on=["collect", "complete"])
                | stale.to(listening, cond="first", on=["collect", "complete"])
                | blocks.to(blocks, cond="first or block_frame", on=["collect", "complete"])
                | segments.to(listening, cond="first", on=["drop_partial", "collect", "complete"])
                | segments.to(blocks, cond="blocks_held", on=["collect", "complete"])
                | segments.to(listening, on=["collect", "complete"])
                | listening.to(listening, on="drop_out_of_order")
                | stale.to(listening, on="drop_out_of_order")
                | blocks.to(listening, on=["drop_partial", "drop_out_of_order"])
            )
            apdu = (
                listening.to(blocks, cond="block and next_block and not last_block", on="collect_block")
                | listening.to.itself(internal=True, cond="block and next_block", on=["collect_block", "join_blocks"])
                | listening.to.itself(internal=True, cond="block", on="drop_block_out_of_order")
                | listening.to.itself(internal=True, cond="bad_block", on="reject_block")
                | listening.to.itself(internal=True, cond="pushed", on="decode")
                | listening.to.itself(internal=True, on="count_foreign_apdu")
                | blocks.to(blocks, cond="block and next_block and not last_block", on="collect_block")
                | blocks.to(listening, cond="block and next_block", on=["collect_block", "join_blocks"])
                | blocks.to(blocks, cond="block and first_block and not last_block", on=["drop_partial", "collect_block"])
                | blocks.to(listening, cond="block and first_block", on=["drop_partial", "collect_block", "join_blocks"])
                | blocks.to(listening, cond="block", on=["drop_partial", "drop_block_out_of_order"])
                | blocks.to(listening, cond="bad_block", on=["drop_partial", "reject_block"])
                | blocks.to(listening, cond="pushed", on=["drop_partial", "decode"])
                | blocks.to.itself(internal=True, on="count_foreign_apdu")
            )
            telegram = telegram_outcomes(listening)
            # Bytes of the next frame arriving: the line is not quiet, the inter-frame deadline starts afresh.
            partial_frame = segments.to(segments) | blocks.to(blocks)
            silence = listening.to(stale, on="report_stale")
            inter_frame_timeout = segments.to(listening, on="drop_partial") | blocks.to(listening, on="drop_partial")

        receiver = receiver_region()

    closed = State("Link closed", final=True)

    link_lost = (
        link.push.listening.to(closed)
        | link.push.segments.to(closed, on="drop_partial")
        | link.push.blocks.to(closed, on="drop_partial")
        | link.push.stale.to(closed)
    )

    timeouts = (
        StateTimeout("listening", after="data_silence", event="silence"),
        StateTimeout("segments", after="inter_frame", event="inter_frame_timeout"),
        StateTimeout("blocks", after="inter_frame", event="inter_frame_timeout"),
        StateTimeout("receiving", after="inter_octet", event="inter_octet_timeout"),
    )

    kind = "hdlc-push"

    def __init__(
        self,
        keys: Callable[[], Sequence[CipherKeys]] = no_keys,
        push_interval: float = 10.0,
        silence_intervals: int = 3,
        inter_frame: float = 2.0,
        inter_octet: float = 0.5,
        counters: Counter[str] | None = None,
    ) -> None:
        self.data_silence = push_interval * silence_intervals
        self.inter_frame = inter_frame
        self.inter_octet = inter_octet
        self._parts: list[bytes] = []
        """The information fields of the frames held, the LLC header first."""
        self._blocks: list[bytes] = []
        """The data of the general-block-transfer blocks held, block 1 first."""
        self._apdu = b""
        self._block: Block | None = None
        self._block_error: str | None = None
        self._received_at: float | None = None
        super().__init__(keys, counters)

    def received(self, frame: object, received_at: float | None) -> None:
        """A whole frame: UI- and I-frames with information are the meter's push, anything else stray."""
        match frame:
            case Frame() if frame.kind in PUSHED_FRAMES and frame.information:
                self.send("segment" if frame.segmented else "last_segment", frame=frame, received_at=received_at)
            case Frame():
                self.send("stray_frame", detail=f"{frame.kind.value} frame from {frame.source} to {frame.destination}")

    @property
    def holds_partial(self) -> bool:
        """Part of a notification is held: its frames or blocks so far."""
        return self.segments.is_active or self.blocks.is_active

    # -- guards -----------------------------------------------------------------------------

    def first(self, frame: Frame) -> bool:
        return frame.information[:LLC_LENGTH] in LLC_HEADERS

    def block_frame(self, frame: Frame) -> bool:
        return frame.information[:1] == BLOCK_TAG

    def blocks_held(self) -> bool:
        return bool(self._blocks)

    def block(self) -> bool:
        return self._block is not None

    def bad_block(self) -> bool:
        return self._block_error is not None

    def next_block(self) -> bool:
        assert self._block is not None
        return self._block.number == len(self._blocks) + 1

    def first_block(self) -> bool:
        assert self._block is not None
        return self._block.number == 1

    def last_block(self) -> bool:
        assert self._block is not None
        return self._block.last

    def pushed(self) -> bool:
        return self._apdu[:1] != b"" and self._apdu[0] in PUSHED_APDUS

    # -- actions ----------------------------------------------------------------------------

    def collect(self, frame: Frame, received_at: float | None) -> None:
        self._parts.append(frame.information)
        self._received_at = received_at

    def complete(self) -> None:
        """The frames held make one APDU: a general-block-transfer block, or a whole one."""
        information = b"".join(self._parts)
        self._parts.clear()
        self._apdu = information[LLC_LENGTH:] if information[:LLC_LENGTH] in LLC_HEADERS else information
        self._block, self._block_error = None, None
        if self._apdu[:1] == BLOCK_TAG:
            try:
                self._block = parse_block(self._apdu)
            except ProtocolError as error:
                self._block_error = str(error)
        self.raise_("apdu")

    def decode(self) -> None:
        self.decode_telegram(self._apdu, self._received_at)

    def collect_block(self) -> None:
        assert self._block is not None
        self._blocks.append(self._block.data)

    def join_blocks(self) -> None:
        apdu = b"".join(self._blocks)
        self._blocks.clear()
        self.decode_telegram(apdu, self._received_at)

    def reject_block(self) -> None:
        # A block that arrived whole and does not decode fails its telegram, as a damaged notification does.
        assert self._block_error is not None
        self._result = failed(Outcome.UNPARSEABLE, self._block_error)
        self.raise_("telegram")

    def drop_partial(self) -> None:
        self._parts.clear()
        self._blocks.clear()
        self.drop("incomplete", "a notification's frames stopped before its last one")

    def drop_out_of_order(self) -> None:
        self.drop("out_of_order", "a frame continues a notification whose first frame did not arrive")

    def drop_block_out_of_order(self) -> None:
        assert self._block is not None
        self.drop("out_of_order", f"general-block-transfer block {self._block.number} arrived out of order")

    def count_foreign_apdu(self) -> None:
        self.counters["foreign_apdus"] += 1
