"""What every push link's machine does with a telegram it has joined (seed 001 ch. B.3).

The telegram goes to `decode_push` with the link's keys (a pending key of a hybrid change-over
first) and the last frame counter accepted; the machine's `telegram` event then publishes the
reading or drops the telegram under its outcome, each cause counted apart because what a user
does about it differs. `telegram_outcomes` declares those transitions, one per outcome, so that
the diagrams and the transition coverage show every cause.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from statemachine import State
from statemachine.transition_list import TransitionList

from ..protocols.dlms.push import NO_KEY_SET, Outcome, PushResult, decode_push
from ..protocols.dlms.security import CipherKeys, KeysUnavailable
from .base import KeyConfirmed, Publish


def no_keys() -> list[CipherKeys]:
    return []


def telegram_outcomes(state: State, dropped_to: State | None = None, decoded: str = "publish") -> TransitionList:
    """The `telegram` event's transitions: a decoded telegram goes to the action `decoded`, staying
    in `state`; any other is dropped under its outcome's guard (named as the outcome), staying in
    `state` or going to `dropped_to`."""
    transitions = state.to.itself(internal=True, cond="decoded", on=decoded)
    for outcome in Outcome:
        if outcome is not Outcome.DECODED:
            if dropped_to is None:
                transitions |= state.to.itself(internal=True, cond=outcome.value, on="drop_telegram")
            else:
                transitions |= state.to(dropped_to, cond=outcome.value, on="drop_telegram")
    return transitions


class PushDecoder:
    """Mixed into a push link's machine before LinkMachine; `kind` is the link kind its readings carry."""

    kind: ClassVar[str]
    # Provided by LinkMachine:
    actions: list[Any]
    counters: Counter[str]
    drop: Any
    raise_: Any

    def __init__(self, keys: Callable[[], Sequence[CipherKeys]], counters: Counter[str] | None) -> None:
        self.keys = keys
        self.last_frame_counter: int | None = None
        """Kept by the actor across restarts, so a telegram replayed after one is refused."""
        self._result: PushResult | None = None
        super().__init__(counters)  # type: ignore[call-arg]

    def decode_telegram(self, apdu: bytes, received_at: float | None) -> None:
        keys, no_key = self._keys()
        self._result = self.verdict(apdu, keys, no_key, received_at)
        self.raise_("telegram")

    def verdict(self, apdu: bytes, keys: Sequence[CipherKeys], no_key: str, received_at: float | None) -> PushResult:
        """The verdict on one telegram; a link whose telegrams are no data-notifications has its own."""
        return decode_push(apdu, keys, self.last_frame_counter, self.kind, received_at, no_key)

    def _keys(self) -> tuple[Sequence[CipherKeys], str]:
        """The keys to try, and what to say when there are none."""
        try:
            return self.keys(), NO_KEY_SET
        except KeysUnavailable as error:
            return (), f"the telegram is encrypted and cannot be decrypted: {error}"

    # -- guards, one per outcome --------------------------------------------------------------

    def decoded(self) -> bool:
        return self._outcome() is Outcome.DECODED

    def replayed(self) -> bool:
        return self._outcome() is Outcome.REPLAYED

    def no_key(self) -> bool:
        return self._outcome() is Outcome.NO_KEY

    def wrong_key(self) -> bool:
        return self._outcome() is Outcome.WRONG_KEY

    def no_auth_key(self) -> bool:
        return self._outcome() is Outcome.NO_AUTH_KEY

    def wrong_auth_key(self) -> bool:
        return self._outcome() is Outcome.WRONG_AUTH_KEY

    def unsupported_suite(self) -> bool:
        return self._outcome() is Outcome.UNSUPPORTED_SUITE

    def unsupported_layout(self) -> bool:
        return self._outcome() is Outcome.UNSUPPORTED_LAYOUT

    def unparseable(self) -> bool:
        return self._outcome() is Outcome.UNPARSEABLE

    def _outcome(self) -> Outcome:
        assert self._result is not None
        return self._result.outcome

    # -- actions ----------------------------------------------------------------------------

    def publish(self) -> None:
        result = self.accept()
        assert result.reading is not None
        self.counters["telegrams"] += 1
        self.actions.append(Publish(result.reading))

    def accept(self) -> PushResult:
        """A telegram the keys opened: its frame counter is the last one, its keys confirmed."""
        result = self._result
        assert result is not None
        if result.frame_counter is not None:
            self.last_frame_counter = result.frame_counter
        if result.keys is not None:
            self.actions.append(KeyConfirmed(result.keys))
        return result

    def drop_telegram(self) -> None:
        """Dropped under its outcome's name: each cause is counted apart (what to do differs)."""
        result = self._result
        assert result is not None
        self.drop(result.outcome.value, result.detail)
