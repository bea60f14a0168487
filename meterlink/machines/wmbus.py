"""A wireless M-Bus receiver and the meters it hears (EN 13757-4 mode T1; issue 20 item 3).

Seed 001 ch. A: Linz Netz's NES meters send OMS telegrams (short header CI 0x7A, mode 5) by radio.
A USB receiver hands them over in its own framing (`protocols.wmbus_receivers`); most need set-up
commands first (the iM871A and AMB8465 a link mode, a CUL `brt`), each answered before the next is
sent. A receiver that does not answer is tried again, then listened to as it is (it may have kept
its mode from before). rtl_wmbus needs none.

Every telegram heard gets a verdict: one of another meter (not in the link's list of ids), a
duplicate (the same meter's access number again: radio meters repeat a telegram, and two receivers
may hear one), or what the push links say of a telegram (decoded and published with the meter's own
key, no key, wrong key, a security mode other than 0 and 5, unparseable including a bad CRC).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from statemachine import State
from statemachine.transition_list import TransitionList

from ..protocols.dlms.push import NO_KEY_SET, Outcome, PushResult
from ..protocols.dlms.security import CipherKeys, KeysUnavailable
from ..protocols.errors import ProtocolError
from ..protocols.framing import BadFrame, Noise
from ..protocols.mbus_app import parse_transport, without_ell
from ..protocols.oms import decode_oms_push
from ..protocols.wmbus import parse_frame
from ..protocols.wmbus_receivers import RadioFrame, StickReply, StickText
from .base import KeyConfirmed, LinkMachine, Publish, Send, StateTimeout

VERDICTS = ("decoded", "duplicate", "other_meter", "no_key", "wrong_key", "unsupported_suite", "unparseable")
"""Every verdict a telegram can get; each is a guard of the `verdict` event."""
SETUP_TRIES = 3


def no_meter_keys(meter_id: str) -> list[CipherKeys]:
    return []


_VERDICT_ACTIONS = {"decoded": "publish", "duplicate": "count_duplicate", "other_meter": "count_other_meter"}


def verdicts(*states: State) -> TransitionList:
    """The `verdict` event's transitions: one per verdict in each state, staying in it."""
    transitions = [state.to.itself(internal=True, cond=name, on=_VERDICT_ACTIONS.get(name, "drop_telegram"))
                   for state in states for name in VERDICTS]
    combined = transitions[0]
    for transition in transitions[1:]:
        combined |= transition
    return combined


class WMBusReceiver(LinkMachine):
    """Set the receiver up, then judge every telegram it hands over."""

    starting = State("Starting", initial=True)
    configuring = State("Setting the receiver up")
    listening = State("Listening")
    stale = State("Stale (no telegram)")
    closed = State("Link closed", final=True)

    configure = starting.to(configuring, cond="has_setup", on="send_step") | starting.to(listening)
    setup_reply = (
        configuring.to(configuring, cond="more_steps", on="next_step")
        | configuring.to(listening, on="count_setup_done")
    )
    setup_failed = (
        configuring.to(configuring, cond="can_retry", on="retry_setup")
        | configuring.to(listening, on="count_setup_failed")
    )
    stray_reply = (
        listening.to.itself(internal=True, on="count_stray_reply")
        | stale.to.itself(internal=True, on="count_stray_reply")
    )
    radio_frame = (
        configuring.to.itself(internal=True, on="judge")
        | listening.to.itself(internal=True, on="judge")
        | stale.to(listening, on="judge")
    )
    verdict = verdicts(configuring, listening)
    text = (
        configuring.to.itself(internal=True, on="count_text")
        | listening.to.itself(internal=True, on="count_text")
        | stale.to.itself(internal=True, on="count_text")
    )
    bad_frame = (
        configuring.to.itself(internal=True, on="count_bad_frame")
        | listening.to.itself(internal=True, on="count_bad_frame")
        | stale.to.itself(internal=True, on="count_bad_frame")
    )
    noise = (
        configuring.to.itself(internal=True, on="count_noise")
        | listening.to.itself(internal=True, on="count_noise")
        | stale.to.itself(internal=True, on="count_noise")
    )
    silence = listening.to(stale, on="report_stale")
    link_lost = starting.to(closed) | configuring.to(closed) | listening.to(closed) | stale.to(closed)


    timeouts = (
        StateTimeout("starting", after="start_delay", event="configure"),
        StateTimeout("configuring", after="reply_timeout", event="setup_failed"),
        StateTimeout("listening", after="data_silence", event="silence"),
    )

    kind = "wmbus"

    def __init__(
        self,
        setup: Sequence[bytes] = (),
        keys: Callable[[str], Sequence[CipherKeys]] = no_meter_keys,
        meter_ids: Sequence[str] = (),
        push_interval: float = 120.0,
        silence_intervals: int = 3,
        reply_timeout: float = 2.0,
        counters: Counter[str] | None = None,
    ) -> None:
        self.setup = tuple(setup)
        self.keys = keys
        self.meter_ids = frozenset(meter_id.upper() for meter_id in meter_ids)
        self.start_delay = 0.0
        self.reply_timeout = reply_timeout
        self.data_silence = push_interval * silence_intervals
        self.step = 0
        self.tries = 1
        self.last_access: dict[str, int] = {}
        """Each meter's last access number: the same one again is the same telegram repeated."""
        self._result: PushResult | None = None
        self._verdict = ""
        super().__init__(counters)

    def handle(self, event: object, received_at: float | None = None) -> None:
        if self.starting.is_active:
            self.send("configure")  # what a receiver says before set-up was sent (no deadline passed yet) comes after it
        match event:
            case RadioFrame():
                self.send("radio_frame", frame=event, received_at=received_at)
            case StickReply(_, ok, satisfied) if self.configuring.is_active:
                if ok:
                    self.send("setup_reply", satisfied=satisfied)
                else:
                    self.send("setup_failed")
            case StickReply():
                self.send("stray_reply")
            case StickText():
                self.send("text")
            case BadFrame():
                self.send("bad_frame", bad=event)
            case Noise(count):
                self.send("noise", count=count)

    # -- set-up -----------------------------------------------------------------------------------

    def has_setup(self) -> bool:
        return bool(self.setup)

    def more_steps(self, satisfied: bool = False) -> bool:
        return self.step + self._advance(satisfied) < len(self.setup)

    @staticmethod
    def _advance(satisfied: bool) -> int:
        """Steps to move on: past the next one too when the receiver already has what it sets."""
        return 2 if satisfied else 1

    def can_retry(self) -> bool:
        return self.tries < SETUP_TRIES

    def send_step(self) -> None:
        self.actions.append(Send(self.setup[self.step]))

    def next_step(self, satisfied: bool = False) -> None:
        self.step += self._advance(satisfied)
        self.send_step()

    def retry_setup(self) -> None:
        self.tries += 1
        self.step = 0
        self.counters["setup_retries"] += 1
        self.send_step()

    def count_setup_done(self) -> None:
        self.counters["receiver_set_up"] += 1

    def count_setup_failed(self) -> None:
        # Listened to all the same: a stick keeps its mode from before, and telegrams tell.
        self.counters["receiver_setup_failed"] += 1

    def count_stray_reply(self) -> None:
        self.counters["stray_replies"] += 1

    def count_text(self) -> None:
        self.counters["receiver_text"] += 1

    def count_bad_frame(self, bad: BadFrame) -> None:
        self.count_noise(bad.noise)
        self.drop("bad_frame", bad.detail)

    # -- telegrams --------------------------------------------------------------------------------

    def judge(self, frame: RadioFrame, received_at: float | None) -> None:
        self._verdict, self._result = self._judge(frame.data, received_at)
        self.raise_("verdict")

    def _judge(self, data: bytes, received_at: float | None) -> tuple[str, PushResult]:
        try:
            link = parse_frame(data)
            transport = parse_transport(without_ell(link.apdu))
        except ProtocolError as error:
            return "unparseable", PushResult(Outcome.UNPARSEABLE, f"{error} (a frame damaged on air, or no M-Bus telegram)")
        meter_id = link.meter_id
        if self.meter_ids and meter_id not in self.meter_ids:
            return "other_meter", PushResult(Outcome.UNSUPPORTED_LAYOUT, meter_id)
        if transport.access_number is not None:
            if self.last_access.get(meter_id) == transport.access_number:
                return "duplicate", PushResult(Outcome.REPLAYED, meter_id)
            self.last_access[meter_id] = transport.access_number
        try:
            keys, no_key = self.keys(meter_id), NO_KEY_SET + f" for meter {meter_id}"
        except KeysUnavailable as error:
            keys, no_key = (), f"the telegram is encrypted and cannot be decrypted: {error}"
        result = decode_oms_push(link.apdu, keys, self.kind, received_at, link.address, no_key)
        return result.outcome.value, result

    def decoded(self) -> bool:
        return self._verdict == "decoded"

    def duplicate(self) -> bool:
        return self._verdict == "duplicate"

    def other_meter(self) -> bool:
        return self._verdict == "other_meter"

    def no_key(self) -> bool:
        return self._verdict == "no_key"

    def wrong_key(self) -> bool:
        return self._verdict == "wrong_key"

    def unsupported_suite(self) -> bool:
        return self._verdict == "unsupported_suite"

    def unparseable(self) -> bool:
        return self._verdict == "unparseable"

    def publish(self) -> None:
        result = self._result
        assert result is not None and result.reading is not None
        if result.keys is not None:
            self.actions.append(KeyConfirmed(result.keys))
        self.counters["telegrams"] += 1
        self.actions.append(Publish(result.reading))

    def count_duplicate(self) -> None:
        self.counters["duplicates"] += 1

    def count_other_meter(self) -> None:
        self.counters["other_meters"] += 1

    def drop_telegram(self) -> None:
        result = self._result
        assert result is not None
        self.drop(self._verdict, result.detail)

    @property
    def is_stale(self) -> bool:
        return self.stale.is_active
