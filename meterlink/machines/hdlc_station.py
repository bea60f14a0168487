"""What both ends of an HDLC link do alike (IEC 62056-46; seed 002 ch. 2.5-2.6).

Each end numbers its I-frames (N(S) from its send state, N(R) = the next frame it expects), splits
an information field longer than the negotiated maximum into segments (S bit) and acknowledges
each segment it receives with RR, sends the same frame again when the answer does not come, and
counts what is not for it. `HdlcStation` is mixed into the DLMS client and the simulated meter;
their machines declare the transitions that call these actions. `HdlcReceiver`, the receiving
side alone, is also what the HDLC push link hears with.
"""

from __future__ import annotations

from typing import Any

from statemachine import State

from ..protocols.dlms.apdu import Apdu, parse_apdu
from ..protocols.errors import ProtocolError
from ..protocols.framing import BadFrame, Noise
from ..protocols.hdlc import Address, Control, Frame, FrameType, HdlcParameters, Partial, Quiet, split_information
from ..protocols.wrapper import WrapperFrame
from .base import Resync, Send

FRAME_EVENTS = {
    FrameType.SNRM: "snrm", FrameType.DISC: "disc", FrameType.UA: "ua", FrameType.DM: "dm", FrameType.FRMR: "frmr",
    FrameType.RR: "rr", FrameType.RNR: "rnr", FrameType.I: "i_frame", FrameType.UI: "ui",
}
"""The machine event each kind of frame becomes; a kind the current state does not take is stray."""


def receiver_region() -> State:
    """The receiving side of a station, a region of its machine: between frames, or inside one
    until it ends or stops for longer than the inter-octet timeout (IEC 62056-46 6.4.4.4.3.3, HDLC
    setup attribute 7). What is not a frame for us is counted here, without touching the session.
    A read that ends between frames while no frame was begun tells the receiver nothing, so
    `handle` sends `frame_ended` only from inside a frame."""

    class receiver(State.Compound, name="Receiver"):
        quiet = State("Between frames", initial=True)
        receiving = State("Inside a frame")

        partial_frame = quiet.to(receiving) | receiving.to(receiving)
        frame_ended = receiving.to(quiet)
        inter_octet_timeout = receiving.to(quiet, on="drop_stalled_frame")
        noise = quiet.to.itself(internal=True, on="count_noise") | receiving.to.itself(internal=True, on="count_noise")
        bad_frame = (
            quiet.to.itself(internal=True, on="count_bad_frame")
            | receiving.to.itself(internal=True, on="count_bad_frame")
        )
        stray_frame = (
            quiet.to.itself(internal=True, on="count_stray_frame")
            | receiving.to.itself(internal=True, on="count_stray_frame")
        )

    return receiver


class HdlcReceiver:
    """The framer events a `receiver_region()` takes, and its actions; the machine it is mixed into
    sets `inter_octet` and says in `received` what a whole frame means to it."""

    inter_octet: float
    # Provided by LinkMachine:
    actions: list[Any]
    counters: Any
    send: Any
    drop: Any
    count_noise: Any

    def handle(self, event: object, received_at: float | None = None) -> None:
        """Feed one framer event."""
        if self.is_terminated:  # type: ignore[attr-defined]
            return
        match event:
            case Partial():
                self.send("partial_frame")
            case Quiet():
                if self.receiving.is_active:  # type: ignore[attr-defined]
                    self.send("frame_ended")
            case BadFrame():
                self.send("bad_frame", bad=event)
            case Noise(count):
                self.send("noise", count=count)
            case _:
                self.received(event, received_at)

    def received(self, frame: object, received_at: float | None) -> None:
        raise NotImplementedError

    def drop_stalled_frame(self) -> None:
        self.actions.append(Resync())
        self.drop("stalled_frame", f"a frame stopped for more than {self.inter_octet:g} s (inter-octet timeout)")

    def count_bad_frame(self, bad: BadFrame) -> None:
        self.count_noise(bad.noise)
        self.drop("bad_frame", bad.detail)

    def count_stray_frame(self, detail: str) -> None:
        self.counters["stray_frames"] += 1


class HdlcStation(HdlcReceiver):
    """The data-link bookkeeping of one end; the machine it is mixed into sets `local`, `peer`,
    `llc_out` and `llc_in`, and has a `receiver_region()` beside its session."""

    local: Address
    peer: Address
    llc_out: bytes
    llc_in: bytes
    # Provided by LinkMachine:
    accepts: Any
    state_name: str

    def reset_link(self) -> None:
        """A new connection: sequence numbers from 0, default parameters, nothing held."""
        self.parameters = HdlcParameters()
        self._send_sequence = self._receive_sequence = 0
        self._last_sent = b""
        self._attempts = 0
        self._outgoing: list[bytes] = []
        self._incoming: list[bytes] = []

    # -- events in ---------------------------------------------------------------------------------

    def received(self, frame: object, received_at: float | None) -> None:
        """An HDLC or a wrapper frame."""
        match frame:
            case Frame():
                self._frame(frame, received_at)
            case WrapperFrame():
                self.wrapper_frame(frame, received_at)

    def _frame(self, frame: Frame, received_at: float | None) -> None:
        if not self.addressed_to_us(frame):
            self.send("stray_frame", detail=f"{frame.kind.value} frame from {frame.source} to {frame.destination}")
            return
        event = FRAME_EVENTS[frame.kind]
        if not self.accepts(event):
            self.send("stray_frame", detail=f"{frame.kind.value} frame in {self.state_name}")
            return
        self.send(event, frame=frame, received_at=received_at)

    def addressed_to_us(self, frame: Frame) -> bool:
        return frame.destination.same_station(self.local) and frame.source.same_station(self.peer)

    def wrapper_frame(self, frame: WrapperFrame, received_at: float | None) -> None:
        raise NotImplementedError

    def parse(self, apdu: bytes) -> Apdu | None:
        """The APDU, or None after counting it as bad."""
        try:
            return parse_apdu(apdu)
        except ProtocolError as error:
            self.drop("bad_apdu", str(error))
            return None

    # -- guards -------------------------------------------------------------------------------------

    def in_sequence(self, frame: Frame) -> bool:
        """The I-frame we expect, acknowledging everything we sent."""
        control = frame.control
        return control.send_sequence == self._receive_sequence and control.receive_sequence == self._send_sequence

    def segmented(self, frame: Frame) -> bool:
        return frame.segmented

    def segments_to_send(self, frame: Frame) -> bool:
        """The peer's RR acknowledges our last segment and more of the message is waiting."""
        return bool(self._outgoing) and frame.control.receive_sequence == self._send_sequence

    def retries_left(self) -> bool:
        return self._attempts <= self.retries  # type: ignore[attr-defined]

    # -- sending ------------------------------------------------------------------------------------

    def transmit(self, data: bytes) -> None:
        """Send a new frame; `send_again` repeats it."""
        self._last_sent = data
        self._attempts = 1
        self.counters["frames_sent"] += 1
        self.actions.append(Send(data))

    def send_again(self) -> None:
        self._attempts += 1
        self.counters["retries"] += 1
        self.actions.append(Resync())
        self.actions.append(Send(self._last_sent))

    def control_frame(self, kind: FrameType, information: bytes = b"") -> bytes:
        control = Control(kind, True, 0, self._receive_sequence)
        return Frame(self.peer, self.local, control, information).to_bytes()

    def _i_frame(self, information: bytes, more: bool) -> bytes:
        control = Control(FrameType.I, True, self._send_sequence, self._receive_sequence)
        self._send_sequence = (self._send_sequence + 1) % 8
        return Frame(self.peer, self.local, control, information, segmented=more).to_bytes()

    def send_information(self, apdu: bytes) -> None:
        """An APDU in I-frames: the LLC header first, segmented to the negotiated maximum."""
        self._incoming.clear()
        first, *rest = split_information(self.llc_out + apdu, self.parameters.max_info_tx)
        self._outgoing = rest
        self.transmit(self._i_frame(first, bool(rest)))

    def send_next_segment(self) -> None:
        segment = self._outgoing.pop(0)
        self.transmit(self._i_frame(segment, bool(self._outgoing)))

    # -- receiving ----------------------------------------------------------------------------------

    def collect_segment(self, frame: Frame) -> None:
        """One segment of a longer message: keep it and ask for the next with RR."""
        self._accept(frame)
        self.transmit(self.control_frame(FrameType.RR))

    def joined_apdu(self, frame: Frame) -> Apdu | None:
        """The message the last I-frame completes, without its LLC header, decoded; None (counted)
        when it does not decode."""
        self._accept(frame)
        information = b"".join(self._incoming)
        self._incoming.clear()
        if not information.startswith(self.llc_in):
            self.drop("bad_apdu", f"I-frame information starts {information[:3].hex() or 'empty'}, "
                                  f"not the LLC header {self.llc_in.hex()}")
            return None
        return self.parse(information[len(self.llc_in):])

    def _accept(self, frame: Frame) -> None:
        self._receive_sequence = (self._receive_sequence + 1) % 8
        self._incoming.append(frame.information)
