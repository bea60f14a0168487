"""What a framer reports besides frames, the same for every link's codec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame start whose frame did not check out (checksum, stop byte, length fields); `count`
    bytes were skipped to look for the next start.

    False starts that follow one another with only noise between them are one event: `frames` of
    them, `reason` the first's, `noise` of the `count` bytes skipped between them."""

    reason: str
    count: int
    frames: int = 1
    noise: int = 0

    @property
    def detail(self) -> str:
        if self.frames == 1:
            return self.reason
        return f"{self.frames} frame starts in {self.count} bytes did not check out; the first: {self.reason}"


@dataclass(frozen=True, slots=True)
class Noise:
    """Bytes that are no frame start, skipped while resynchronising."""

    count: int


def add_event(events: list[Any], event: object) -> None:
    """Append a framer event; skipped bytes right after skipped bytes join the last event, so a
    flood of noise or of false frame starts costs the link's machine one event, not one per byte."""
    last = events[-1] if events else None
    if not isinstance(event, (BadFrame, Noise)) or not isinstance(last, (BadFrame, Noise)):
        events.append(event)
    elif isinstance(last, Noise) and isinstance(event, Noise):
        events[-1] = Noise(last.count + event.count)
    else:  # one of the two is a BadFrame: the run is one, named by its first
        first = last if isinstance(last, BadFrame) else event
        events[-1] = BadFrame(first.reason, last.count + event.count, _frames(last) + _frames(event),
                              _noise(last) + _noise(event))


def _frames(skipped: BadFrame | Noise) -> int:
    return skipped.frames if isinstance(skipped, BadFrame) else 0


def _noise(skipped: BadFrame | Noise) -> int:
    return skipped.noise if isinstance(skipped, BadFrame) else skipped.count


class BufferedFramer:
    """What a framer holds of a frame that has not ended; `reset` forgets it (the link's resync)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def reset(self) -> None:
        self._buffer.clear()

    @property
    def pending(self) -> int:
        """Bytes held of a frame that has not ended yet."""
        return len(self._buffer)


EventT = TypeVar("EventT")


class StartByteFramer(BufferedFramer, Generic[EventT]):
    """A framer whose frames begin with a start byte: `_next` takes one frame, or a run of bytes
    skipped to the next start, off the buffer, or says (None) that the frame has not ended."""

    def feed(self, data: bytes) -> list[EventT]:
        self._buffer += data
        events: list[EventT] = []
        while self._buffer:
            event = self._next()
            if event is None:
                break
            add_event(events, event)
        return events

    def _next(self) -> EventT | None:
        raise NotImplementedError

    def _skip_to(self, start: int) -> Noise:
        """Drop the bytes before the next `start` byte (all of them if there is none)."""
        skip = self._buffer.find(start)
        skip = len(self._buffer) if skip < 0 else skip
        del self._buffer[:skip]
        return Noise(skip)
