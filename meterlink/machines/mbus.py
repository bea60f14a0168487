"""The M-Bus push link, both sides (seed 001 ch. B.4 variant 2; EN 13757-2).

The meter is the M-Bus master and pushes. In search mode it sends a search telegram (SND_NKE to
primary address 240) about once a minute; once the adapter acknowledges it with 0xE5 the meter
switches to data mode and sends SND_UD telegrams at its push interval, each acknowledged with
0xE5. After 10 missing acknowledgements the meter goes back to search mode. A telegram is often
split over several long frames (DLMS segments numbered in the CI field); the Sagemcom T210-D's
first one overflows its L field (`protocols.mbus`), counted as `length_overflow`. Some grid
operators run the interface one-way: the adapter reads such a meter the same way, its acks simply
go unheard.

Netz OÖ's AMIS meters (seed 001 ch. A, variant 2) run the same handshake at 9600 8E1 on the optical
head, but their SND_UD carries an OMS telegram (EN 13757-3, CI 0x5B, mode 5: `protocols.oms`)
instead of DLMS segments. The CI field tells the two apart; `payload` fixes one where a link should
read nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from statemachine import State

from ..protocols.dlms.security import CipherKeys
from ..protocols.mbus_app import APPLICATION_CIS
from ..protocols.oms import decode_oms_push
from ..protocols.mbus import (
    ACK,
    ADDRESS_BROADCAST_NO_REPLY,
    ADDRESS_SEARCH_TELEGRAM,
    BadFrame,
    CField,
    FramerEvent,
    LongFrame,
    Noise,
    ShortFrame,
    SingleChar,
    encode_short,
    is_dlms_segment,
    is_last_segment,
    segment_number,
    segment_payload,
)
from .base import LinkMachine, Send, StateTimeout
from .safety import Safety
from .push import PushDecoder, no_keys, telegram_outcomes

DATA_ADDRESSES = (ADDRESS_SEARCH_TELEGRAM, ADDRESS_BROADCAST_NO_REPLY)
ACK_BYTES = bytes((ACK,))


PAYLOADS = ("auto", "dlms", "oms")
"""What SND_UD telegrams carry: told by their CI field (auto), or only DLMS segments, or only OMS."""


def no_telegram() -> list[bytes]:
    return []


class MBusAdapter(PushDecoder, LinkMachine):
    """Adapter side: acknowledge the search telegram and every data frame, join, decrypt, publish."""

    search = State("Search mode (waiting for SND_NKE to 240)", initial=True)
    listening = State("Data mode, between telegrams")
    joining = State("Data mode, joining segments")
    stale = State("Stale (meter silent)")
    closed = State("Link closed", final=True)

    search_telegram = (
        search.to(listening, on="ack")
        | listening.to(listening, on=["ack", "count_search_in_data_mode"])
        | joining.to(listening, on=["ack", "drop_partial"])
        | stale.to(listening, on="ack")
    )
    segment = (
        search.to(joining, cond="first and not last", on=["ack", "collect"])
        | listening.to(joining, cond="first and not last", on=["ack", "collect"])
        | stale.to(joining, cond="first and not last", on=["ack", "collect"])
        | search.to(listening, cond="first and last", on=["ack", "collect", "complete"])
        | listening.to(listening, cond="first and last", on=["ack", "collect", "complete"])
        | stale.to(listening, cond="first and last", on=["ack", "collect", "complete"])
        | joining.to(joining, cond="in_order and not last", on=["ack", "collect"])
        | joining.to(listening, cond="in_order and last", on=["ack", "collect", "complete"])
        | joining.to(listening, cond="first and last", on=["ack", "drop_partial", "collect", "complete"])
        | joining.to(joining, cond="first", on=["ack", "drop_partial", "collect"])
        | joining.to(listening, on=["ack", "drop_partial", "drop_out_of_order"])
        | search.to(listening, on=["ack", "drop_out_of_order"])
        | listening.to(listening, on=["ack", "drop_out_of_order"])
        | stale.to(listening, on=["ack", "drop_out_of_order"])
    )
    oms_telegram = (
        search.to(listening, on=["ack", "decode_oms"])
        | listening.to(listening, on=["ack", "decode_oms"])
        | joining.to(listening, on=["ack", "drop_partial", "decode_oms"])
        | stale.to(listening, on=["ack", "decode_oms"])
    )
    telegram = telegram_outcomes(listening)
    unsupported_data = (
        search.to(listening, on=["ack", "count_unsupported"])
        | listening.to(listening, on=["ack", "count_unsupported"])
        | joining.to(joining, on=["ack", "count_unsupported"])
        | stale.to(listening, on=["ack", "count_unsupported"])
    )
    foreign_frame = (
        search.to.itself(internal=True, on="count_foreign")
        | listening.to.itself(internal=True, on="count_foreign")
        | joining.to.itself(internal=True, on="count_foreign")
        | stale.to.itself(internal=True, on="count_foreign")
    )
    bad_frame = (
        search.to.itself(internal=True, on="count_bad_frame")
        | listening.to.itself(internal=True, on="count_bad_frame")
        | joining.to.itself(internal=True, on="count_bad_frame")
        | stale.to.itself(internal=True, on="count_bad_frame")
    )
    noise = (
        search.to.itself(internal=True, on="count_noise")
        | listening.to.itself(internal=True, on="count_noise")
        | joining.to.itself(internal=True, on="count_noise")
        | stale.to.itself(internal=True, on="count_noise")
    )
    silence = search.to(stale, on="report_stale") | listening.to(stale, on="report_stale")
    segment_timeout = joining.to(listening, on="drop_partial")
    link_lost = (
        search.to(closed)
        | listening.to(closed)
        | joining.to(closed, on="drop_partial")
        | stale.to(closed)
    )

    timeouts = (
        StateTimeout("search", after="search_silence", event="silence"),
        StateTimeout("listening", after="data_silence", event="silence"),
        StateTimeout("joining", after="segment_gap", event="segment_timeout"),
    )

    kind = "mbus"

    safety = Safety(
        says="the adapter never acks a frame with a bad checksum",
        holds="!acked_bad_checksum",
        variables=("bool bad_checksum = false", "bool acked_bad_checksum = false"),
        actions={"ack": "acked_bad_checksum = acked_bad_checksum || bad_checksum"},
        events={"bad_frame": "bad_checksum = true"},
        after="bad_checksum = false",
        assumptions=(
            "the framer (protocols/mbus) checks every frame's checksum, stop byte and length, and hands a frame "
            "that fails over as BadFrame, which `handle` sends as bad_frame; every other event carries a frame "
            "whose checksum held, or no frame",
        ),
    )

    def __init__(
        self,
        keys: Callable[[], Sequence[CipherKeys]] = no_keys,
        push_interval: float = 5.0,
        silence_intervals: int = 3,
        search_interval: float = 60.0,
        segment_gap: float = 3.0,
        counters: Counter[str] | None = None,
        payload: str = "auto",
    ) -> None:
        if payload not in PAYLOADS:
            raise ValueError(f"payload {payload!r}: one of {', '.join(PAYLOADS)}")
        self.payload = payload
        self.data_silence = push_interval * silence_intervals
        self.search_silence = search_interval * 2 + 10
        self.segment_gap = segment_gap
        self._parts: list[bytes] = []
        self._received_at: float | None = None
        super().__init__(keys, counters)

    def handle(self, event: FramerEvent, received_at: float | None = None) -> None:
        """Feed one framer event; only well-formed frames to 240 or 0xFF are ours to acknowledge."""
        match event:
            case ShortFrame(c, a) if CField.of(c) is CField.SND_NKE and a == ADDRESS_SEARCH_TELEGRAM:
                self.send("search_telegram")
            case LongFrame() if event.function is CField.SND_UD and event.a in DATA_ADDRESSES:
                if event.ci in APPLICATION_CIS and self.payload != "dlms":
                    self.send("oms_telegram", frame=event, received_at=received_at)
                elif is_dlms_segment(event) and self.payload != "oms":
                    self.send("segment", frame=event, received_at=received_at)
                else:
                    self.send("unsupported_data", frame=event)
            case SingleChar(count):
                self.send("foreign_frame", count=count)
            case ShortFrame() | LongFrame():
                self.send("foreign_frame", count=1)
            case BadFrame():
                self.send("bad_frame", bad=event)
            case Noise(count):
                self.send("noise", count=count)

    # -- guards -----------------------------------------------------------------------------

    def first(self, frame: LongFrame) -> bool:
        return segment_number(frame) == 0

    def last(self, frame: LongFrame) -> bool:
        return is_last_segment(frame)

    def in_order(self, frame: LongFrame) -> bool:
        return segment_number(frame) == len(self._parts)

    # -- actions ----------------------------------------------------------------------------

    def ack(self) -> None:
        self.actions.append(Send(ACK_BYTES))

    def collect(self, frame: LongFrame, received_at: float | None) -> None:
        if frame.length_overflow:
            # Read all the same (the framer checked it at L + 256), and shown: a meter's quirk.
            self.counters["length_overflow"] += 1
        self._parts.append(segment_payload(frame) if len(frame.data) >= 2 else b"")
        self._received_at = received_at

    def complete(self) -> None:
        apdu = b"".join(self._parts)
        self._parts.clear()
        self.decode_telegram(apdu, self._received_at)

    def decode_oms(self, frame: LongFrame, received_at: float | None) -> None:
        keys, no_key = self._keys()
        self._result = decode_oms_push(bytes((frame.ci,)) + frame.data, keys, self.kind, received_at, no_key=no_key)
        self.raise_("telegram")

    def drop_partial(self) -> None:
        self._parts.clear()
        self.drop("incomplete", "a telegram's segments stopped before its last one")

    def drop_out_of_order(self, frame: LongFrame) -> None:
        self._parts.clear()
        self.drop("out_of_order", f"segment CI 0x{frame.ci:02X} arrived out of order")

    def count_search_in_data_mode(self) -> None:
        self.counters["search_in_data_mode"] += 1

    def count_unsupported(self, frame: LongFrame) -> None:
        # Acknowledged all the same (EN 13757-2: every SND_UD gets its E5), so the meter stays in data mode.
        self.counters["unsupported_data"] += 1

    def count_foreign(self, count: int) -> None:
        self.counters["foreign_frames"] += count

    def count_bad_frame(self, bad: BadFrame) -> None:
        self.count_noise(bad.noise)
        self.drop("bad_frame", bad.detail)

    @property
    def is_stale(self) -> bool:
        return self.stale.is_active


class MBusMeter(LinkMachine):
    """Meter side, for the simulator: search every minute until acknowledged, then a data telegram
    every push interval; after 10 unacknowledged telegrams back to search (seed 001 ch. B.4)."""

    powering_up = State("Powering up", initial=True)
    searching = State("Search mode")
    awaiting_search_ack = State("Search telegram sent")
    pushing = State("Data mode")
    closed = State("Link closed", final=True)

    send_search = powering_up.to(awaiting_search_ack, on="emit_search") | searching.to(awaiting_search_ack, on="emit_search")
    search_acked = awaiting_search_ack.to(pushing, on="acknowledged")
    search_unanswered = awaiting_search_ack.to(searching)
    send_data = (
        pushing.to(searching, cond="too_many_missed", on="give_up")
        | pushing.to(pushing, on="emit_data")
    )
    data_acked = pushing.to.itself(internal=True, on="acknowledged")
    stray_ack = powering_up.to.itself(internal=True) | searching.to.itself(internal=True)
    link_lost = (
        powering_up.to(closed)
        | searching.to(closed)
        | awaiting_search_ack.to(closed)
        | pushing.to(closed)
    )

    timeouts = (
        StateTimeout("powering_up", after="power_up_delay", event="send_search"),
        StateTimeout("searching", after="search_interval", event="send_search"),
        StateTimeout("awaiting_search_ack", after="ack_timeout", event="search_unanswered"),
        StateTimeout("pushing", after="push_interval", event="send_data"),
    )

    MAX_MISSED_ACKS = 10

    def __init__(
        self,
        telegram: Callable[[], list[bytes]] = no_telegram,
        push_interval: float = 5.0,
        search_interval: float = 60.0,
        ack_timeout: float = 0.5,
        power_up_delay: float = 0.2,
        counters: Counter[str] | None = None,
    ) -> None:
        self.telegram = telegram
        self.push_interval = push_interval
        self.search_interval = search_interval
        self.ack_timeout = ack_timeout
        self.power_up_delay = power_up_delay
        self.missed = 0
        self.unacknowledged = False
        super().__init__(counters)

    def handle(self, event: FramerEvent, received_at: float | None = None) -> None:
        if not isinstance(event, SingleChar):
            return
        if self.awaiting_search_ack.is_active:
            self.send("search_acked")
        elif self.pushing.is_active:
            self.send("data_acked")
        else:
            self.send("stray_ack")

    def too_many_missed(self) -> bool:
        return self.unacknowledged and self.missed + 1 >= self.MAX_MISSED_ACKS

    def emit_search(self) -> None:
        self.counters["search_telegrams"] += 1
        self.actions.append(Send(encode_short(CField.SND_NKE, ADDRESS_SEARCH_TELEGRAM)))

    def emit_data(self) -> None:
        if self.unacknowledged:
            self.missed += 1
            self.counters["missed_acks"] += 1
        self.unacknowledged = True
        self.counters["data_telegrams"] += 1
        self.actions.append(Send(b"".join(self.telegram())))

    def acknowledged(self) -> None:
        self.missed = 0
        self.unacknowledged = False

    def give_up(self) -> None:
        self.counters["missed_acks"] += 1
        self.counters["fallbacks_to_search"] += 1
        self.missed = 0
        self.unacknowledged = False
