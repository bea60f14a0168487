"""The P1 reader (seed 003 ch. 3; DSMR P1 5.0.2 ch. 6).

The meter pushes a telegram every push interval (1 s for e-MUCs). The reader waits for `/`, reads
to `!` and the CRC line, checks the CRC-16/ARC and hands the telegram out. No telegram for three
push intervals reports the link stale. Garbage, truncated, oversized and bad-CRC telegrams are
dropped and counted. Framing is the codec's: the machine gets one event per telegram boundary.

Some meters send each telegram encrypted (the Luxembourg Smarty, Energienetze Steiermark's
Sagemcom T210-D-r and T216-D: `protocols.p1_encrypted`). Such a telegram is opened with the link's
keys under the push links' verdicts (`machines.push`: wrong_key, no_auth_key, replayed, ...), and
its plaintext then follows the rules of a plain one; plain telegrams are read on the same link.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from statemachine import State

from ..protocols.dlms.push import PushResult
from ..protocols.dlms.security import CipherKeys
from ..protocols.p1 import (
    CrcStatus,
    EncryptedTelegram,
    FramerEvent,
    NoiseDiscarded,
    TelegramFramed,
    TelegramOversized,
    TelegramStarted,
    TelegramTruncated,
    check_telegram,
)
from ..protocols.p1_encrypted import decrypt_telegram
from .base import LinkMachine, Publish, Resync, StateTimeout
from .push import PushDecoder, no_keys, telegram_outcomes


class P1Reader(PushDecoder, LinkMachine):
    """Adapter side of a P1 port, plain or encrypted."""

    hunting = State("Waiting for '/'", initial=True)
    reading = State("Reading to '!' and CRC")
    stale = State("Stale (no telegram)")
    closed = State("Link closed", final=True)

    start_of_telegram = hunting.to(reading) | stale.to(reading)
    end_of_telegram = (
        reading.to(hunting, cond="crc_ok and parsed", on="publish")
        | reading.to(hunting, cond="crc_absent and legacy and parsed", on="publish")
        | reading.to(hunting, cond="crc_mismatch", on="drop_crc_error")
        | reading.to(hunting, cond="crc_absent and not legacy", on="drop_crc_missing")
        | reading.to(hunting, on="drop_unparseable")
    )
    encrypted_telegram = reading.to.itself(internal=True, on="decrypt")
    telegram = telegram_outcomes(reading, dropped_to=hunting, decoded="open_telegram")
    truncated = reading.to(reading, on="drop_truncated")
    oversized = reading.to(hunting, on="drop_oversized")
    noise = hunting.to.itself(internal=True, on="count_noise") | stale.to.itself(internal=True, on="count_noise")
    silence = hunting.to(stale, on="report_stale")
    telegram_timeout = reading.to(hunting, on=["drop_incomplete", "resync"])
    link_lost = (
        hunting.to(closed)
        | stale.to(closed)
        | reading.to(closed, on="drop_incomplete")
    )

    timeouts = (
        StateTimeout("hunting", after="silence_timeout", event="silence"),
        StateTimeout("reading", after="max_telegram_time", event="telegram_timeout"),
    )

    kind = "p1"

    def __init__(
        self,
        keys: Callable[[], Sequence[CipherKeys]] = no_keys,
        push_interval: float = 1.0,
        silence_intervals: int = 3,
        telegram_timeout: float = 2.0,
        legacy: bool = False,
        counters: Counter[str] | None = None,
    ) -> None:
        self.silence_timeout = push_interval * silence_intervals
        self.max_telegram_time = telegram_timeout
        self.legacy = legacy
        self._received_at: float | None = None
        super().__init__(keys, counters)

    def handle(self, event: FramerEvent, received_at: float | None = None) -> None:
        """Feed one framer event."""
        match event:
            case TelegramStarted():
                self.send("start_of_telegram")
            case TelegramFramed():
                self.send("end_of_telegram", frame=event, received_at=received_at)
            case EncryptedTelegram(apdu):
                self.send("encrypted_telegram", apdu=apdu, received_at=received_at)
            case NoiseDiscarded(count):
                self.send("noise", count=count)
            case TelegramOversized():
                self.send("oversized")
            case TelegramTruncated():
                self.send("truncated")

    def crc_ok(self, frame: TelegramFramed) -> bool:
        return frame.crc is CrcStatus.OK

    def crc_absent(self, frame: TelegramFramed) -> bool:
        return frame.crc is CrcStatus.ABSENT

    def crc_mismatch(self, frame: TelegramFramed) -> bool:
        return frame.crc is CrcStatus.MISMATCH

    def parsed(self, frame: TelegramFramed) -> bool:
        return frame.telegram is not None

    def publish(self, frame: TelegramFramed, received_at: float | None) -> None:
        assert frame.telegram is not None
        self.counters["telegrams"] += 1
        self.actions.append(Publish(frame.telegram.to_reading(received_at)))
        for line in frame.telegram.skipped:  # the rest of the telegram is published (issue 15)
            self.note("bad_lines", str(line))

    def decrypt(self, apdu: bytes, received_at: float | None) -> None:
        self._received_at = received_at
        self.decode_telegram(apdu, received_at)

    def verdict(self, apdu: bytes, keys: Sequence[CipherKeys], no_key: str, received_at: float | None) -> PushResult:
        return decrypt_telegram(apdu, keys, self.last_frame_counter, no_key)

    def open_telegram(self) -> None:
        """The keys opened the telegram: its text ends the telegram as a plain one would (CRC, lines)."""
        result = self.accept()
        assert result.plaintext is not None
        self.raise_("end_of_telegram", frame=check_telegram(result.plaintext), received_at=self._received_at)

    def drop_crc_error(self, frame: TelegramFramed) -> None:
        detail = str(frame.error) if frame.error else "CRC-16 does not match the telegram"
        self.drop("crc_error", detail)

    def drop_crc_missing(self) -> None:
        self.drop("crc_missing", "telegram without CRC, and the link is not configured for DSMR 2.2/3")

    def drop_unparseable(self, frame: TelegramFramed) -> None:
        self.drop("unparseable", str(frame.error))

    def drop_truncated(self) -> None:
        self.drop("truncated", "a new telegram began before '!'")

    def drop_oversized(self) -> None:
        self.drop("oversized", "telegram longer than 8 KiB")

    def drop_incomplete(self) -> None:
        self.drop("incomplete", "telegram did not end")

    def resync(self) -> None:
        self.actions.append(Resync())

    @property
    def is_stale(self) -> bool:
        return self.stale.is_active
