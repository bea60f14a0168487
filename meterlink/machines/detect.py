"""Finding the meter on a line: what it speaks at the serial setting being tried (`meterlink detect`,
`kind = "auto"`).

Probes hear the same bytes side by side, each through a link's own codec and, for the push links,
the link's own machine: a meter is recognised only by what its link would read, and an M-Bus meter
is acknowledged exactly as the adapter acknowledges it (its search telegram and every data frame),
so that it leaves search mode and pushes. A probe reports a whole telegram with its decoder's
verdict (decrypted, no key, wrong key, ...), and the M-Bus search telegram; nothing else, since at a
wrong setting a line delivers garbage that a framer may now and then take for a frame start.

`Detector` decides per setting: the first telegram (or search telegram) heard makes it time the
meter's telegrams until three have come or another listening time has passed; a setting where
nothing is recognised within the listening time is left. A probe is a class taking the keys; a
framing is added by adding its probe to `PROBES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from statemachine import State

from ..protocols.detect import Framing, ciphered_title, p1_framing, push_interval
from ..protocols.dlms.push import Outcome
from ..protocols.dlms.security import CipherKeys
from ..protocols.hdlc import Frame, HdlcFramer
from ..protocols.mbus import TSAP_PREFIX_LENGTH, LongFrame, MBusFramer, ShortFrame, segment_number, segment_payload
from ..protocols.p1 import EncryptedTelegram, NoiseDiscarded, P1Framer, check_telegram
from ..protocols.p1_encrypted import decrypt_telegram
from .base import Dropped, KeyConfirmed, LinkMachine, Publish, Send, StateTimeout
from .hdlc_push import LLC_HEADERS, LLC_LENGTH, HdlcPushReader
from .mbus import MBusAdapter

DEFAULT_LISTEN_TIME = 12.0
"""Seconds per setting: a P1 meter pushes every second, M-Bus and HDLC meters every 5 to 10 s."""
SEARCH_LISTEN_TIME = 70.0
"""Seconds that hear an M-Bus meter in search mode: it sends its SND_NKE about once a minute."""
TELEGRAMS_TO_TIME = 3
"""Telegrams heard before the push interval is taken as known: two gaps between them."""


@dataclass(frozen=True, slots=True)
class Heard:
    """A probe recognised its framing: a whole telegram, or an M-Bus search telegram (`telegram`
    False). `outcome` is the push decoder's verdict, `decrypted` whether a key opened it."""

    framing: Framing
    telegram: bool = True
    system_title: bytes | None = None
    outcome: Outcome | None = None
    decrypted: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """What the link's adapter answers to a frame heard (M-Bus: 0xE5)."""

    data: bytes


ProbeEvent = Heard | Reply


class Probe(Protocol):
    def feed(self, data: bytes) -> list[ProbeEvent]: ...


class P1Probe:
    """P1: the framer, and the keys for an encrypted telegram (a P1 meter is never answered).

    An encrypted telegram is a bare APDU on the line, so it counts only where nothing came before
    it since the last telegram: the same APDU inside an HDLC or M-Bus frame follows the frame's
    header, which the P1 framer discards as noise. A key that opens it to a telegram whose CRC
    holds proves it anywhere."""

    def __init__(self, keys: Sequence[CipherKeys]) -> None:
        self._framer = P1Framer()
        self._keys = keys
        self._quiet_before = True

    def feed(self, data: bytes) -> list[ProbeEvent]:
        heard: list[ProbeEvent] = []
        for event in self._framer.feed(data):
            if isinstance(event, NoiseDiscarded):
                self._quiet_before = False
            elif isinstance(event, EncryptedTelegram):
                heard += self._encrypted(event)
                self._quiet_before = True
            elif (framing := p1_framing(event)) is not None:
                heard.append(Heard(framing))
                self._quiet_before = True
        return heard

    def _encrypted(self, telegram: EncryptedTelegram) -> list[ProbeEvent]:
        result = decrypt_telegram(telegram.apdu, self._keys)
        opened = result.outcome is Outcome.DECODED and p1_framing(check_telegram(result.plaintext or b"")) is not None
        if opened:
            return [Heard(Framing.P1_ENCRYPTED, True, telegram.system_title, Outcome.DECODED, True)]
        if not self._quiet_before:
            return []
        outcome = Outcome.UNSUPPORTED_LAYOUT if result.outcome is Outcome.DECODED else result.outcome
        return [Heard(Framing.P1_ENCRYPTED, True, telegram.system_title, outcome)]


TELEGRAM_OUTCOMES = frozenset(outcome.value for outcome in Outcome)
"""Drop causes that mean a whole telegram arrived (its decoder's verdict), not a broken frame."""


class PushProbe:
    """A push link's framer and machine; its acknowledgements are passed on as replies, its
    readings and telegram drops as `Heard`. The system title is taken from each telegram's first
    frame, where a ciphered APDU names it in the clear."""

    framing: ClassVar[Framing]

    def __init__(self, framer: Any, machine: LinkMachine) -> None:
        self._framer = framer
        self._machine = machine
        self._title: bytes | None = None

    def feed(self, data: bytes) -> list[ProbeEvent]:
        events: list[ProbeEvent] = []
        for event in self._framer.feed(data):
            head = self.apdu_head(event)
            if head is not None:
                self._title = ciphered_title(head)
            self._machine.handle(event)
            events += self.report(event, self._machine.take_actions())
        return events

    def apdu_head(self, event: object) -> bytes | None:
        """The start of a telegram's APDU, when `event` is the frame that carries it."""
        raise NotImplementedError

    def report(self, event: object, actions: list[Any]) -> list[ProbeEvent]:
        events: list[ProbeEvent] = []
        decrypted = False
        for action in actions:
            match action:
                case Send(data):
                    events.append(Reply(data))
                case KeyConfirmed():
                    decrypted = True  # comes right before the Publish of the telegram it opened
                case Publish():
                    events.append(Heard(self.framing, True, self._title, Outcome.DECODED, decrypted))
                    decrypted = False
                case Dropped(cause) if cause in TELEGRAM_OUTCOMES:
                    events.append(Heard(self.framing, True, self._title, Outcome(cause)))
        return events


class MBusProbe(PushProbe):
    """M-Bus push, acknowledged as the adapter does; the search telegram is the one short frame
    the adapter acknowledges."""

    framing = Framing.MBUS

    def __init__(self, keys: Sequence[CipherKeys]) -> None:
        super().__init__(MBusFramer(), MBusAdapter(keys=lambda: keys))

    def apdu_head(self, event: object) -> bytes | None:
        if isinstance(event, LongFrame) and segment_number(event) == 0 and len(event.data) >= TSAP_PREFIX_LENGTH:
            return segment_payload(event)
        return None

    def report(self, event: object, actions: list[Any]) -> list[ProbeEvent]:
        events = super().report(event, actions)
        if isinstance(event, ShortFrame) and events:
            events.append(Heard(self.framing, telegram=False))
        return events


class HdlcPushProbe(PushProbe):
    """DLMS pushed in HDLC frames; a telegram's first frame begins with the LLC header."""

    framing = Framing.HDLC_PUSH

    def __init__(self, keys: Sequence[CipherKeys]) -> None:
        super().__init__(HdlcFramer(), HdlcPushReader(keys=lambda: keys))

    def apdu_head(self, event: object) -> bytes | None:
        if isinstance(event, Frame) and event.information[:LLC_LENGTH] in LLC_HEADERS:
            return event.information[LLC_LENGTH:]
        return None


PROBES: tuple[Callable[[Sequence[CipherKeys]], Probe], ...] = (P1Probe, MBusProbe, HdlcPushProbe)


class Probes:
    """Every probe on the same bytes: the codec a detecting link runs with."""

    def __init__(self, keys: Sequence[CipherKeys], probes: Sequence[Callable[[Sequence[CipherKeys]], Probe]] = PROBES) -> None:
        self._probes = [make(keys) for make in probes]

    def feed(self, data: bytes) -> list[ProbeEvent]:
        return [event for probe in self._probes for event in probe.feed(data)]


KEY_FAILURES = (Outcome.WRONG_KEY, Outcome.NO_AUTH_KEY, Outcome.WRONG_AUTH_KEY)
"""Verdicts that a key given does not open the telegrams, least telling first (push.py's order)."""
CIPHERED = frozenset({Outcome.NO_KEY, Outcome.UNSUPPORTED_SUITE, *KEY_FAILURES})


@dataclass(frozen=True, slots=True)
class Detection:
    """What was heard at the setting where a meter was found."""

    framing: Framing
    arrivals: tuple[float, ...]
    """When each whole telegram arrived."""
    system_title: bytes | None
    outcomes: frozenset[Outcome]
    decrypted: bool
    search_heard: bool

    @property
    def push_interval(self) -> float | None:
        return push_interval(self.arrivals)

    @property
    def encrypted(self) -> bool | None:
        """None when no telegram came (only a search telegram)."""
        if not self.arrivals:
            return None
        return self.decrypted or self.system_title is not None or bool(self.outcomes & CIPHERED)

    @property
    def key_ok(self) -> bool | None:
        """True when a key opened a telegram that then parsed; False when the keys given do not
        open them; None without a key, or when the telegrams needed none."""
        if self.decrypted:
            return True
        return False if self.key_failure is not None else None

    @property
    def key_failure(self) -> Outcome | None:
        """The most telling of the verdicts against the keys given."""
        failures = [outcome for outcome in KEY_FAILURES if outcome in self.outcomes]
        return failures[-1] if failures else None


class Detector(LinkMachine):
    """One serial setting: listen, and time the telegrams of the first framing heard."""

    listening = State("Listening at a serial setting", initial=True)
    timing = State("Meter heard, timing its telegrams")
    found = State("Meter found", final=True)
    silent = State("Nothing recognised at this setting", final=True)

    reply = listening.to.itself(internal=True, on="answer") | timing.to.itself(internal=True, on="answer")
    heard = (
        listening.to(timing, on="note")
        | timing.to(found, cond="same_framing and completes_timing", on="note")
        | timing.to.itself(internal=True, cond="same_framing", on="note")
        | timing.to.itself(internal=True, on="count_other_framing")
    )
    silence = listening.to(silent)
    timing_over = timing.to(found)
    link_lost = listening.to(silent) | timing.to(found)

    timeouts = (
        StateTimeout("listening", after="listen_time", event="silence"),
        StateTimeout("timing", after="listen_time", event="timing_over"),
    )

    def __init__(self, listen_time: float = DEFAULT_LISTEN_TIME, counters: Counter[str] | None = None) -> None:
        self.listen_time = listen_time
        self._framing: Framing | None = None
        self._arrivals: list[float] = []
        self._title: bytes | None = None
        self._outcomes: set[Outcome] = set()
        self._decrypted = False
        self._search_heard = False
        super().__init__(counters)

    def handle(self, event: ProbeEvent, received_at: float | None = None) -> None:
        """Feed one probe event; what follows the decision in the same read is not needed."""
        if self.is_terminated:
            return
        match event:
            case Reply(data):
                self.send("reply", data=data)
            case Heard():
                self.send("heard", heard=event, received_at=received_at)

    @property
    def detection(self) -> Detection | None:
        """What was found, once the machine has decided that a meter is there."""
        if not self.found.is_active or self._framing is None:
            return None
        return Detection(self._framing, tuple(self._arrivals), self._title, frozenset(self._outcomes),
                         self._decrypted, self._search_heard)

    # -- guards -----------------------------------------------------------------------------

    def same_framing(self, heard: Heard) -> bool:
        return heard.framing is self._framing

    def completes_timing(self, heard: Heard) -> bool:
        return heard.telegram and len(self._arrivals) + 1 >= TELEGRAMS_TO_TIME

    # -- actions ----------------------------------------------------------------------------

    def answer(self, data: bytes) -> None:
        self.actions.append(Send(data))

    def note(self, heard: Heard, received_at: float) -> None:
        self._framing = heard.framing
        if not heard.telegram:
            self._search_heard = True
            return
        self._arrivals.append(received_at)
        self._title = self._title or heard.system_title
        if heard.outcome is not None:
            self._outcomes.add(heard.outcome)
        self._decrypted = self._decrypted or heard.decrypted

    def count_other_framing(self) -> None:
        # Two framings on one line at once is no meter we know: the first one heard is kept.
        self.counters["other_framings"] += 1


def may_miss_search_mode(listen_time: float) -> bool:
    """Whether a meter in M-Bus search mode may have gone unheard at its setting."""
    return listen_time < SEARCH_LISTEN_TIME
