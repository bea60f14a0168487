"""The soak's faults: a schedule of windows per link, drawn from a seeded random generator, and the
ways a window changes what crosses the line.

Every window is on trio's (Mock)Clock. Windows of one link never overlap, and each is followed by a
quiet spell, so every telegram is either clean or touched by exactly one fault, the one it is
accounted under.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class Fault(enum.Enum):
    NOISE = "noise"
    """Bursts of random bytes on the line between telegrams (mid-interval); telegrams stay whole."""
    BIT_FLIP = "bit_flip"
    """One bit of every telegram (or answer) flipped."""
    TRUNCATE = "truncate"
    """Every telegram (or answer) cut short at a random point."""
    REBOOT = "reboot"
    """The meter is silent: a push meter sends nothing, a polled one answers nothing."""
    HANGUP = "hangup"
    """The line goes away (end of file to the link); reopening fails until the window ends."""
    HANG = "hang"
    """The transport hangs: nothing gets through either way, and the link's writes block."""
    WRONG_KEY = "wrong_key"
    """The operator switched the meter's key; the user enters the new key only at the window's end."""
    KEY_CHANGE = "key_change"
    """A change-over done right: the new key is entered (pending) first, the meter switches at the end."""
    ACTOR_RAISES = "actor_raises"
    """The link's actor raises once, right after publishing a reading; the supervisor restarts it."""
    IMAGE_CUT = "image_cut"
    """A DLMS link: an image transfer asked for (as through the API), its line cut half-way through."""


LINE_FAULTS = (Fault.NOISE, Fault.BIT_FLIP, Fault.TRUNCATE, Fault.REBOOT, Fault.HANGUP, Fault.HANG,
               Fault.ACTOR_RAISES)
KEY_FAULTS = (Fault.WRONG_KEY, Fault.KEY_CHANGE)
DLMS_FAULTS = (Fault.IMAGE_CUT,)

DURATION = {
    Fault.NOISE: (120.0, 600.0),
    Fault.BIT_FLIP: (60.0, 300.0),
    Fault.TRUNCATE: (60.0, 300.0),
    Fault.REBOOT: (60.0, 900.0),
    Fault.HANGUP: (5.0, 120.0),
    Fault.HANG: (60.0, 600.0),
    Fault.WRONG_KEY: (120.0, 900.0),
    Fault.KEY_CHANGE: (120.0, 900.0),
    Fault.ACTOR_RAISES: (0.0, 0.0),
    Fault.IMAGE_CUT: (900.0, 900.0),
}
"""Seconds a window lasts, drawn uniformly between the two."""

QUIET_AFTER = 180.0
"""Seconds without a fault after each window: the link recovers before the next one."""
QUIET_START = 300.0
QUIET_END = 600.0
"""No fault in the first and last minutes: the end state is the recovered one."""


@dataclass(frozen=True)
class Window:
    link: str
    fault: Fault
    start: float
    end: float

    def covers(self, at: float) -> bool:
        return self.start <= at < self.end if self.end > self.start else False


@dataclass
class Schedule:
    """Every link's windows, in time order."""

    windows: dict[str, list[Window]]

    @classmethod
    def draw(cls, rng: random.Random, links: dict[str, tuple[Fault, ...]], seconds: float,
             per_hour: float) -> Schedule:
        """About `per_hour` windows per link and simulated hour, each fault kind in turn (shuffled),
        so that a short run still sees every kind on every link."""
        windows: dict[str, list[Window]] = {}
        for link, faults in links.items():
            kinds: list[Fault] = []
            at = QUIET_START + rng.uniform(0, 3600 / per_hour)
            found: list[Window] = []
            while True:
                if not kinds:
                    kinds = list(faults)
                    rng.shuffle(kinds)
                fault = kinds.pop()
                low, high = DURATION[fault]
                end = at + rng.uniform(low, high)
                if end > seconds - QUIET_END:
                    break
                found.append(Window(link, fault, at, end))
                at = end + QUIET_AFTER + rng.expovariate(per_hour / 3600)
            windows[link] = found
        return cls(windows)

    def active(self, link: str, at: float) -> Window | None:
        for window in self.windows.get(link, ()):
            if window.covers(at):
                return window
            if window.start > at:
                return None
        return None

    def count(self) -> dict[str, dict[str, int]]:
        return {link: {fault.value: sum(w.fault is fault for w in found) for fault in Fault if any(w.fault is fault for w in found)}
                for link, found in self.windows.items()}


def flip_bit(data: bytes, rng: random.Random) -> bytes:
    bit = rng.randrange(len(data) * 8)
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def noise(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(1, 64))
