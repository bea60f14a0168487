"""What a framer reports besides frames, the same for every link's codec."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame start whose frame did not check out (checksum, stop byte, length fields); `count`
    bytes were skipped to look for the next start."""

    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class Noise:
    """Bytes that are no frame start, skipped while resynchronising."""

    count: int


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
